//! Plain file mode applies only a state someone finished writing: a change is
//! planned once every file it read (group files, overlays, `grattr.yaml`) holds the
//! same content across the settle interval, and a group that disappears (cleared and
//! forgotten with `--prune`) is removed only after a longer confirmation. Content,
//! not events, decides: a write that raises no event (or whose event was lost) still
//! starts the wait again.

use super::files::{Debouncer, canonical};
use super::{ConfigError, Remote, WatchError, Watcher};
use crate::model::GroupId;
use crate::plan::{Action, Plan};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What each path read held: a digest of its content (of every file below it for
/// a directory), or of its absence or read error, which are states too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Fingerprint(BTreeMap<PathBuf, [u8; 32]>);

impl Fingerprint {
    /// Reads and digests `paths`.
    pub(super) fn of(paths: impl IntoIterator<Item = PathBuf>) -> Fingerprint {
        Fingerprint(
            paths
                .into_iter()
                .map(|path| {
                    let mut hasher = Sha256::new();
                    digest(&path, &mut hasher, true);
                    (path, hasher.finalize().into())
                })
                .collect(),
        )
    }

    /// The paths whose content differs in `now` (or that only one of them holds).
    pub(super) fn changed(&self, now: &Fingerprint) -> BTreeSet<PathBuf> {
        let mut changed: BTreeSet<PathBuf> =
            self.0.iter().filter(|(path, d)| now.0.get(*path) != Some(d)).map(|(p, _)| p.clone()).collect();
        changed.extend(now.0.keys().filter(|p| !self.0.contains_key(*p)).cloned());
        changed
    }

    /// The paths.
    pub(super) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.0.keys()
    }

    /// Takes what `newer` says of its paths.
    fn extend(&mut self, newer: Fingerprint) {
        self.0.extend(newer.0);
    }
}

/// Feeds what `path` holds to `hasher`: a file's bytes, a directory's entries by
/// name (a symlink inside it by its target, not followed: no loops), or why it
/// cannot be read. Each kind is tagged, so that no two states digest alike.
fn digest(path: &Path, hasher: &mut Sha256, follow: bool) {
    let metadata = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    match metadata {
        Err(e) => {
            hasher.update(b"E");
            hasher.update(format!("{:?}", e.kind()).as_bytes());
        }
        Ok(m) if m.file_type().is_symlink() => {
            hasher.update(b"L");
            let target = std::fs::read_link(path).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            hasher.update(target.as_bytes());
            hasher.update([0]);
            digest(path, hasher, true);
        }
        Ok(m) if m.is_dir() => {
            hasher.update(b"D");
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
                Err(e) => {
                    hasher.update(format!("{:?}", e.kind()).as_bytes());
                    return;
                }
            };
            entries.sort();
            for entry in entries {
                let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                hasher.update((name.len() as u64).to_le_bytes());
                hasher.update(name.as_bytes());
                // A symlinked directory inside is digested by its target only.
                match std::fs::symlink_metadata(&entry) {
                    Ok(m) if m.file_type().is_symlink() && entry.is_dir() => {
                        let target = std::fs::read_link(&entry).unwrap_or_default();
                        hasher.update(b"L");
                        hasher.update(target.to_string_lossy().as_bytes());
                        hasher.update([0]);
                    }
                    _ => digest(&entry, hasher, false),
                }
            }
            hasher.update(b"d");
        }
        // A FIFO or a device would block or never end: its kind is what counts.
        Ok(m) if !m.is_file() => hasher.update(b"S"),
        Ok(_) => match std::fs::read(path) {
            Ok(bytes) => {
                hasher.update(b"F");
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
            Err(e) => {
                hasher.update(b"E");
                hasher.update(format!("{:?}", e.kind()).as_bytes());
            }
        },
    }
}

/// A change read but not planned yet: waiting for its files to stay as read.
#[derive(Debug)]
pub(super) struct Settling {
    /// What the files held once read.
    read: Fingerprint,
    /// A file changed while it was being read: what was read may be neither version,
    /// so every file is read again at the end of the interval, whatever it holds then.
    torn: bool,
    /// Plan every group once settled (SIGHUP, a lost event), not only those changed.
    all: bool,
    /// How long reading the change took, re-reads included: with the plan, what
    /// `planned_in_ms` logs (the wait in between is not planning).
    reading: Duration,
    /// When to look again.
    pub(super) due: Instant,
}

impl Settling {
    /// Plans every group once settled.
    pub(super) fn plan_all(&mut self) {
        self.all = true;
    }
}

/// A group no longer declared, whose removal waits for its confirmation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Removal {
    /// When it can be removed, if it stays absent.
    pub(super) due: Instant,
    /// A cycle was asked for at `due` (it plans it, or defers it with the rest).
    pub(super) asked: bool,
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// What a change to `changed` reads: those paths, the configuration and the
    /// overlays (small, and read again whenever the configuration is).
    fn reads(&self, changed: impl IntoIterator<Item = PathBuf>) -> BTreeSet<PathBuf> {
        let mut paths: BTreeSet<PathBuf> = changed.into_iter().collect();
        paths.insert(self.config_path.clone());
        paths.extend(super::canonical_overlays(&self.remote.environment).into_iter().map(|o| o.path));
        paths
    }

    /// Reads a change to `paths` (every file when `all`, or when `paths` is empty:
    /// events were lost), then waits for it to settle: what is read is digested just
    /// before and just after it is read, and the wait starts again.
    pub(super) async fn read_change(
        &mut self,
        paths: Vec<PathBuf>,
        first: Instant,
        all: bool,
        debouncer: &mut Debouncer,
    ) -> Result<(), WatchError> {
        // No paths: events may have been lost, so every file is read again.
        let all = all || paths.is_empty();
        // Only what is read counts: the lockfile and its journal, beside grattr.yaml, change with every apply.
        let config = &self.config_path;
        let paths: Vec<PathBuf> = paths
            .into_iter()
            .filter(|p| {
                p.starts_with(&self.groups_dir) || self.index.is_overlay(p) || p == config || &canonical(p) == config
            })
            .collect();
        if paths.is_empty() && !all {
            return Ok(());
        }
        self.planning_started = Instant::now();
        let reads = self.reads(if all { vec![self.groups_dir.clone()] } else { paths.clone() });
        let listed = reads.clone();
        let Some(before) = self.blocking(move || Fingerprint::of(listed)).await? else { return Ok(()) };
        if !self.read_files(paths, first, all, debouncer).await? {
            self.end_planning();
            return Ok(());
        }
        // The configuration read may list other overlays.
        let reads = self.reads(reads);
        let Some(after) = self.blocking(move || Fingerprint::of(reads)).await? else { return Ok(()) };
        self.end_planning();
        let torn = !before.changed(&after).is_empty();
        let settle = self.options.settle;
        let settling = self.settling.get_or_insert_with(|| Settling {
            read: Fingerprint::default(),
            torn: false,
            all: false,
            reading: Duration::ZERO,
            due: Instant::now(),
        });
        settling.reading += self.planning_started.elapsed();
        settling.read.extend(after);
        settling.torn |= torn;
        settling.all |= all;
        // With no interval, due at once: the loop's next turn plans it.
        settling.due = Instant::now() + settle;
        tracing::debug!(files = settling.read.paths().count(), settle = ?settle, "read a change; waiting for its files to settle");
        Ok(())
    }

    /// At the end of the settle interval: plans the change if every file it read
    /// still holds what was read, or else reads what changed and waits again.
    pub(super) async fn check_settled(&mut self, debouncer: &mut Debouncer) -> Result<(), WatchError> {
        let Some(settling) = self.settling.take() else { return Ok(()) };
        self.planning_started = Instant::now();
        let paths: Vec<PathBuf> = settling.read.paths().cloned().collect();
        let Some(now) = self.blocking(move || Fingerprint::of(paths)).await? else { return Ok(()) };
        self.end_planning();
        let changed = settling.read.changed(&now);
        if changed.is_empty() && !settling.torn {
            let started = self.planning_started.checked_sub(settling.reading);
            self.planning_started = started.unwrap_or(self.planning_started);
            let dirty = std::mem::take(&mut self.dirty);
            return self.reconcile(if settling.all { None } else { Some(dirty) }).await;
        }
        let again: Vec<PathBuf> = match settling.torn {
            true => settling.read.paths().cloned().collect(),
            false => changed.into_iter().collect(),
        };
        tracing::info!(
            files = again.len(),
            "files changed during the settle interval; reading them again and waiting for them to settle"
        );
        self.settling = Some(Settling { torn: false, due: Instant::now() + self.options.settle, ..settling });
        self.read_change(again, Instant::now(), false, debouncer).await
    }

    /// Holds back the removals (clear and forget, with `--prune`) not yet confirmed:
    /// a group must stay undeclared for `--confirm-removal`, in settled files, before
    /// it is removed; one declared again cancels its removal. Other changes go ahead.
    pub(super) fn hold_removals(&mut self, plan: &mut Plan, now: Instant) {
        let confirm = self.options.confirm_removal;
        let (groups, recorded) = (self.index.groups(), &self.lockfile.groups);
        self.pending_removals.retain(|id, removal| {
            let declared = groups.contains_key(id);
            if declared && removal.due > now {
                tracing::info!(group = %id, "removal cancelled: the group is declared again");
            }
            // Removed already (no longer recorded): nothing to wait for.
            !declared && recorded.contains_key(id)
        });
        let pending = &mut self.pending_removals;
        plan.changes.retain(|change| {
            if change.action != Action::Delete {
                return true;
            }
            let removal = pending.entry(change.group_id.clone()).or_insert_with(|| {
                tracing::warn!(
                    group = %change.group_id,
                    confirm_in = %humantime::format_duration(confirm),
                    "removal pending: the group is no longer declared; it is cleared and forgotten if it stays so"
                );
                Removal { due: now + confirm, asked: false }
            });
            removal.due <= now
        });
        self.metrics.removal_pending.set(self.pending_removals.values().filter(|r| r.due > now).count() as i64);
    }

    /// The removals whose confirmation is over, for the cycle that removes them.
    pub(super) fn removals_due(&mut self) -> BTreeSet<GroupId> {
        let now = Instant::now();
        let due = self.pending_removals.iter_mut().filter(|(_, r)| !r.asked && r.due <= now);
        due.map(|(id, r)| {
            r.asked = true;
            id.clone()
        })
        .collect()
    }

    /// When the next removal's confirmation is over: never while a change settles
    /// (the files are not stable) or applying is paused (the pause's end plans it).
    pub(super) fn next_removal(&self) -> Option<Instant> {
        if self.settling.is_some() || self.paused.is_some() {
            return None;
        }
        self.pending_removals.values().filter(|r| !r.asked).map(|r| r.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_changes_with_content_not_with_a_rewrite_of_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "groups: []\n").unwrap();
        let first = Fingerprint::of([file.clone(), dir.path().to_path_buf()]);
        std::fs::write(&file, "groups: []\n").unwrap();
        assert!(first.changed(&Fingerprint::of([file.clone(), dir.path().to_path_buf()])).is_empty());
        std::fs::write(&file, "groups: [\n").unwrap();
        let changed = first.changed(&Fingerprint::of([file.clone(), dir.path().to_path_buf()]));
        assert_eq!(changed, BTreeSet::from([dir.path().to_path_buf(), file.clone()]));
    }

    #[test]
    fn absence_and_a_new_file_in_a_directory_are_changes_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.yaml");
        let first = Fingerprint::of([file.clone(), dir.path().to_path_buf()]);
        assert!(first.changed(&Fingerprint::of([file.clone(), dir.path().to_path_buf()])).is_empty());
        std::fs::write(&file, "").unwrap();
        assert_eq!(first.changed(&Fingerprint::of([file.clone(), dir.path().to_path_buf()])).len(), 2);
    }
}

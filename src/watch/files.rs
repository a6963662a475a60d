//! Watching the files: the groups directory and the configuration's directory
//! (editors replace files by rename), bursts of events coalesced into one
//! reconcile, and symlinked checkouts (git-sync) followed when they move.

use super::{ConfigError, Remote, WatchError, Watcher};
use crate::desired::index::DesiredIndex;
use notify_debouncer_full::notify::RecursiveMode;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(super) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) type Debouncer = notify_debouncer_full::Debouncer<
    notify_debouncer_full::notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

pub(super) fn watch(debouncer: &mut Debouncer, path: &Path, mode: RecursiveMode) -> Result<(), WatchError> {
    debouncer.watch(path, mode).map_err(|e| WatchError::Watch { path: path.to_path_buf(), message: e.to_string() })
}

pub(super) fn config_dir(config_path: &Path) -> PathBuf {
    config_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Watches the groups directory, and the configuration's directory: editors replace
/// files by rename, so the file itself is not what to watch.
pub(super) fn watch_dirs(debouncer: &mut Debouncer, groups_dir: &Path, config_path: &Path) -> Result<(), WatchError> {
    watch(debouncer, groups_dir, RecursiveMode::Recursive)?;
    watch(debouncer, &config_dir(config_path), RecursiveMode::NonRecursive)
}

/// The resolved directories that hold a symlink on the way to one of `paths`.
pub(super) fn link_dirs(paths: &[&Path]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for path in paths {
        let Ok(path) = std::path::absolute(path) else { continue };
        for ancestor in path.ancestors() {
            let is_link = std::fs::symlink_metadata(ancestor).is_ok_and(|m| m.file_type().is_symlink());
            if let (true, Some(parent)) = (is_link, ancestor.parent()) {
                dirs.insert(canonical(parent));
            }
        }
    }
    dirs
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// Waits until file events have been quiet for half the debounce time, so that a
    /// `git checkout` of hundreds of files is one reconcile.
    pub(super) async fn coalesce(
        &self,
        mut paths: Vec<PathBuf>,
        mut first: Instant,
        events: &mut mpsc::UnboundedReceiver<(Vec<PathBuf>, Instant)>,
    ) -> (Vec<PathBuf>, Instant) {
        let quiet = (self.options.debounce / 2).max(Duration::from_millis(20));
        loop {
            tokio::select! {
                more = events.recv() => match more {
                    Some((more, at)) => {
                        paths.extend(more);
                        first = first.min(at);
                    }
                    None => break,
                },
                () = tokio::time::sleep(quiet) => break,
                () = self.stop.cancelled() => break,
            }
        }
        (paths, first)
    }

    pub(super) async fn on_files_changed(&mut self, paths: Vec<PathBuf>, first: Instant) -> Result<(), WatchError> {
        self.planning_started = Instant::now();
        let config_changed = paths.iter().any(|p| canonical(p) == self.config_path || p == &self.config_path);
        let affected = if config_changed {
            tracing::info!("the configuration changed; reloading it");
            self.reload_config();
            self.index.rescan()
        } else if paths.is_empty() {
            self.index.rescan()
        } else {
            let relevant: Vec<PathBuf> = paths.into_iter().filter(|p| p.starts_with(&self.groups_dir)).collect();
            if relevant.is_empty() {
                return Ok(());
            }
            self.index.update(relevant)
        };
        tracing::debug!(groups = affected.len(), "files changed");
        for id in &affected {
            self.changed_at.entry(id.clone()).or_insert(first);
        }
        self.dirty.extend(affected);
        let dirty = std::mem::take(&mut self.dirty);
        self.reconcile(Some(dirty)).await
    }

    /// Follows a symlink on the way to the configuration or the groups that now leads
    /// elsewhere (git-sync publishing a commit as a new checkout): watches the new
    /// place, stops watching the old one (which goes away), and reads every file again.
    /// Returns whether it moved; the caller then plans every group.
    pub(super) fn follow_move(&mut self, debouncer: &mut Debouncer) -> Result<bool, WatchError> {
        let groups_dir = canonical(&self.remote.environment.groups_dir);
        let config_path = canonical(&self.config_link);
        if groups_dir == self.groups_dir && config_path == self.config_path {
            return Ok(false);
        }
        tracing::info!(
            from = %crate::escape::path(&self.groups_dir),
            to = %crate::escape::path(&groups_dir),
            "the repository moved (a symlink now leads to another checkout); following it"
        );
        // The old checkout may be gone already: nothing to stop watching then.
        let _ = debouncer.unwatch(&self.groups_dir);
        if config_dir(&config_path) != config_dir(&self.config_path) {
            let _ = debouncer.unwatch(config_dir(&self.config_path));
        }
        watch_dirs(debouncer, &groups_dir, &config_path)?;
        self.groups_dir = groups_dir;
        self.config_path = config_path;
        self.reload_config();
        self.index = DesiredIndex::load(&self.groups_dir);
        self.index.set_default_ownership(self.remote.environment.ownership);
        self.planning_started = Instant::now();
        Ok(true)
    }
}

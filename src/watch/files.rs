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

/// What to watch for the overlays (resolved paths): an overlay directory with all
/// below it; for an overlay file, its directory (editors replace files by rename);
/// for an overlay not there (yet), the nearest directory above it that is, so that
/// its creation is seen. What the groups directory's or the configuration's watch
/// covers already is left out.
pub(super) fn overlay_watches(
    overlays: &[crate::desired::OverlayPath],
    groups_dir: &Path,
    config_path: &Path,
) -> Vec<(PathBuf, RecursiveMode)> {
    let mut watches: Vec<(PathBuf, RecursiveMode)> = Vec::new();
    for overlay in overlays {
        let (path, mode) = if overlay.path.is_dir() {
            (overlay.path.clone(), RecursiveMode::Recursive)
        } else {
            match overlay.path.ancestors().skip(1).find(|dir| dir.is_dir()) {
                Some(dir) => (dir.to_path_buf(), RecursiveMode::NonRecursive),
                None => continue,
            }
        };
        let covered = path.starts_with(groups_dir)
            || (mode == RecursiveMode::Recursive && groups_dir.starts_with(&path))
            || (mode == RecursiveMode::NonRecursive && path == config_dir(config_path));
        if !covered && !watches.contains(&(path.clone(), mode)) {
            watches.push((path, mode));
        }
    }
    // One watch a directory: what a recursive watch covers is left to it.
    let recursive: Vec<PathBuf> =
        watches.iter().filter(|(_, m)| *m == RecursiveMode::Recursive).map(|(p, _)| p.clone()).collect();
    watches.retain(|(path, mode)| {
        !recursive.iter().any(|r| path.starts_with(r) && (path != r || *mode == RecursiveMode::NonRecursive))
    });
    watches
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

    /// Reads a change to `paths` (every file when `all`, or when events may have been
    /// lost: `paths` empty) into the index, off the loop, and marks the groups it may
    /// have changed dirty. Returns whether anything was read (false when the paths are
    /// none of ours, or when stopped meanwhile).
    pub(super) async fn read_files(
        &mut self,
        paths: Vec<PathBuf>,
        first: Instant,
        all: bool,
        debouncer: &mut Debouncer,
    ) -> Result<bool, WatchError> {
        let config_changed = paths.iter().any(|p| canonical(p) == self.config_path || p == &self.config_path);
        let affected = if config_changed || all || paths.is_empty() {
            if config_changed {
                tracing::info!("the configuration changed; reloading it");
            }
            if !self.reload_config(debouncer).await? {
                return Ok(false);
            }
            match self.off_loop(DesiredIndex::rescan).await? {
                Some(affected) => affected,
                None => return Ok(false),
            }
        } else {
            let relevant: Vec<PathBuf> =
                paths.into_iter().filter(|p| p.starts_with(&self.groups_dir) || self.index.is_overlay(p)).collect();
            if relevant.is_empty() {
                return Ok(false);
            }
            let overlays = relevant.iter().any(|p| self.index.is_overlay(p));
            let Some(affected) = self.off_loop(move |index| index.update(relevant)).await? else { return Ok(false) };
            if overlays {
                // An overlay directory created or removed: what to watch changes with it.
                self.sync_overlay_watches(debouncer)?;
            }
            affected
        };
        tracing::debug!(groups = affected.len(), "files changed");
        for id in &affected {
            self.changed_at.entry(id.clone()).or_insert(first);
        }
        self.dirty.extend(affected);
        Ok(true)
    }

    /// Follows a symlink on the way to the configuration or the groups that now leads
    /// elsewhere (git-sync publishing a commit as a new checkout): watches the new
    /// place, stops watching the old one (which goes away), and reads every file again.
    /// Returns whether it moved; the caller then plans every group.
    pub(super) async fn follow_move(&mut self, debouncer: &mut Debouncer) -> Result<bool, WatchError> {
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
        // The overlays are watched anew where the moved configuration puts them.
        for (path, _) in std::mem::take(&mut self.overlay_watches) {
            let _ = debouncer.unwatch(&path);
        }
        self.planning_started = Instant::now();
        // What was read of the old checkout and not planned yet is superseded.
        self.settling = None;
        if !self.reload_config(debouncer).await? {
            return Ok(false);
        }
        let overlays = super::canonical_overlays(&self.remote.environment);
        let (dir, ownership) = (self.groups_dir.clone(), self.remote.environment.ownership);
        let load = move |index: &mut DesiredIndex| {
            *index = DesiredIndex::load_with(&dir, &overlays);
            index.set_default_ownership(ownership);
        };
        if self.off_loop(load).await?.is_none() {
            return Ok(false);
        }
        self.sync_overlay_watches(debouncer)?;
        self.end_planning();
        Ok(true)
    }

    /// Watches what the overlays need now (see [`overlay_watches`]), and stops
    /// watching what they no longer do.
    pub(super) fn sync_overlay_watches(&mut self, debouncer: &mut Debouncer) -> Result<(), WatchError> {
        let overlays = super::canonical_overlays(&self.remote.environment);
        let wanted = overlay_watches(&overlays, &self.groups_dir, &self.config_path);
        for (path, mode) in &self.overlay_watches {
            if !wanted.contains(&(path.clone(), *mode)) {
                // Gone already, perhaps: nothing to stop watching then.
                let _ = debouncer.unwatch(path);
            }
        }
        for (path, mode) in &wanted {
            if !self.overlay_watches.contains(&(path.clone(), *mode)) {
                watch(debouncer, path, *mode)?;
            }
        }
        self.overlay_watches = wanted;
        Ok(())
    }
}

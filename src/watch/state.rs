//! The watcher's record: its lock taken and its state opened at start, and the
//! journal checkpointed into the lockfile when quiet rather than every cycle.

use super::{ConfigError, Remote, WatchError, Watcher};
use crate::desired::Environment;
use crate::lockfile::{self, LockError, LockGuard, Lockfile, LockfileError};
use std::time::{Duration, Instant};

/// Takes the lock of the environment's lockfile, seeds a state directory never
/// written from the repository's lockfile, and folds an interrupted run's journal.
pub(super) fn open_state(
    environment: &Environment,
    lock_timeout: Duration,
) -> Result<(LockGuard, Lockfile), OpenError> {
    let (path, seed) = (&environment.lockfile, environment.seed_lockfile.as_deref());
    let lock = lockfile::lock(path, seed, "watch", lock_timeout).map_err(|e| match e {
        LockError::Held { .. } => OpenError::Held(e),
        other @ LockError::Io { .. } => OpenError::Unusable(other.to_string()),
    })?;
    let (lockfile, opened) = lockfile::open(path, seed, environment.sdkappid)?;
    if let (Some(groups), Some(seed)) = (opened.seeded, seed) {
        tracing::info!(
            groups,
            from = %crate::escape::path(seed),
            to = %crate::escape::path(path),
            "seeded the state from the repository's lockfile; from now on the state is the record, and the \
             repository's lockfile is not read again"
        );
    }
    if opened.recovered > 0 {
        tracing::info!(records = opened.recovered, "recovered the records of an interrupted run");
    }
    Ok((lock, lockfile))
}

/// Why the state could not be opened.
pub(super) enum OpenError {
    /// Another writer holds the lock.
    Held(LockError),
    /// The state cannot be used now: why.
    Unusable(String),
}

impl From<LockfileError> for OpenError {
    fn from(e: LockfileError) -> Self {
        OpenError::Unusable(e.to_string())
    }
}

/// The journal grows by a few records per cycle; rewriting the whole lockfile (66 MB at
/// 100,000 groups) after every cycle would cost each edit time in proportion to the
/// repository. The lockfile is written once the watcher has been quiet for
/// [`CHECKPOINT_IDLE`], at the latest [`CHECKPOINT_MAX_AGE`] after the oldest record it
/// lacks, at once when [`CHECKPOINT_RECORDS`] accumulate, and on exit. The journal is
/// durable meanwhile, and every reader of the lockfile replays it.
pub(super) const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
/// See [`CHECKPOINT_IDLE`].
pub(super) const CHECKPOINT_MAX_AGE: Duration = Duration::from_secs(30);
/// See [`CHECKPOINT_IDLE`].
pub(super) const CHECKPOINT_RECORDS: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct Unfolded {
    pub(super) records: usize,
    oldest: Option<Instant>,
    newest: Option<Instant>,
}

impl Unfolded {
    pub(super) fn add(&mut self, records: usize) {
        if records > 0 {
            let now = Instant::now();
            self.records += records;
            self.oldest.get_or_insert(now);
            self.newest = Some(now);
        }
    }

    /// When the lockfile should be written, if it lacks anything.
    pub(super) fn checkpoint_at(&self) -> Option<Instant> {
        match (self.oldest, self.newest) {
            _ if self.records >= CHECKPOINT_RECORDS => Some(Instant::now()),
            (Some(oldest), Some(newest)) => Some((newest + CHECKPOINT_IDLE).min(oldest + CHECKPOINT_MAX_AGE)),
            _ => None,
        }
    }
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// Writes the lockfile if it lacks records of the journal, and removes the journal.
    pub(super) fn checkpoint(&mut self) -> Result<(), WatchError> {
        if self.unfolded.records > 0 {
            let started = Instant::now();
            self.lockfile.checkpoint(&self.remote.environment.lockfile, self.remote.environment.sdkappid)?;
            tracing::debug!(
                records = self.unfolded.records,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "wrote the lockfile"
            );
            self.unfolded = Unfolded::default();
        }
        Ok(())
    }
}

//! The watcher's record: its lease taken (or waited for, standing by) and its state
//! opened at start, and the journal checkpointed into the record when quiet rather
//! than every cycle.

use super::{ConfigError, Remote, WatchError, Watcher};
use crate::desired::Environment;
use crate::lockfile::Lockfile;
use crate::state::{Leadership, Lease, StateError};
use std::time::{Duration, Instant};

/// Takes the leadership of the environment's record and reads the record: with
/// local files, takes their lock (held while leading), seeds a state directory never
/// written from the repository's lockfile, and folds an interrupted run's journal.
pub(super) async fn open_state(environment: &Environment) -> Result<Leading, OpenError> {
    let store = crate::workspace::store(environment).await?;
    let (mut leadership, writer) = match store.try_lead("watch", environment.lease_ttl).await? {
        Ok(taken) => taken,
        Err(StateError::Held { lease, .. }) => return Err(OpenError::Standby(lease.holder.to_string())),
        Err(StateError::Lock(crate::lockfile::LockError::Held { holder, .. })) => {
            let holder = holder.map_or_else(|| "another process".to_string(), |h| h.to_string());
            return Err(OpenError::Standby(holder));
        }
        Err(other) => return Err(other.into()),
    };
    let (lockfile, writer) = match writer {
        Some(mut writer) => {
            let (lockfile, opened) = writer.open().await?;
            if let (Some(groups), Some(seed)) = (opened.seeded, environment.seed_lockfile.as_deref()) {
                tracing::info!(
                    groups,
                    from = %crate::escape::path(seed),
                    to = %crate::escape::path(&environment.lockfile),
                    "seeded the state from the repository's lockfile; from now on the state is the record, and the \
                     repository's lockfile is not read again"
                );
            }
            if opened.recovered > 0 {
                tracing::info!(records = opened.recovered, "recovered the records of an interrupted run");
            }
            (lockfile, Some(writer))
        }
        None => (leadership.read().await?, None),
    };
    Ok(Leading { leadership, writer, lockfile })
}

/// What a leader starts from.
pub(super) struct Leading {
    /// The leadership.
    pub(super) leadership: Leadership,
    /// The writer's lease, held while leading (local files).
    pub(super) writer: Option<Lease>,
    /// The record.
    pub(super) lockfile: Lockfile,
}

/// Why the state could not be opened.
pub(super) enum OpenError {
    /// Another writer holds the lease: who (this process stands by).
    Standby(String),
    /// The state cannot be used now: why.
    Unusable(String),
}

impl From<StateError> for OpenError {
    fn from(e: StateError) -> Self {
        OpenError::Unusable(e.to_string())
    }
}

/// The journal grows by a few records per cycle; rewriting the whole lockfile (66 MB at
/// 100,000 groups) after every cycle would cost each edit time in proportion to the
/// repository. The lockfile is written once the watcher has been quiet for
/// [`CHECKPOINT_IDLE`], at the latest [`CHECKPOINT_MAX_AGE`] after the oldest record it
/// lacks, at once when [`CHECKPOINT_RECORDS`] accumulate, and on exit. The journal is
/// durable meanwhile, and every reader of the record replays it.
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
    /// Writes the record if it lacks records of the journal, and empties the journal.
    pub(super) async fn checkpoint(&mut self) -> Result<(), WatchError> {
        if self.unfolded.records > 0
            && let Some(writer) = &mut self.writer
        {
            let started = Instant::now();
            writer.checkpoint(&mut self.lockfile).await?;
            tracing::debug!(
                records = self.unfolded.records,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "wrote the record"
            );
            self.unfolded = Unfolded::default();
        }
        Ok(())
    }
}

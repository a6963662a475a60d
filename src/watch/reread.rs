//! Group files whose read failed for a reason that passes (too many open files, no
//! memory) are read again on a growing back-off, so that the watcher recovers on its
//! own: no file event would ever come for them, as the files did not change.

use super::{ConfigError, Remote, WatchError, Watcher};
use std::time::{Duration, Instant};

/// The longest wait between two tries.
const REREAD_MAX: Duration = Duration::from_secs(60);

/// When to read the files again, and how many tries were made.
#[derive(Debug, Default)]
pub(super) struct Reread {
    attempts: u32,
    next: Option<Instant>,
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// When the files whose read failed for a reason that passes are read again, if
    /// any did: `--retry-base` after the failure, doubling up to [`REREAD_MAX`].
    pub(super) fn reread_at(&mut self) -> Option<Instant> {
        if self.index.transient_failures() == 0 {
            self.reread = Reread::default();
            return None;
        }
        let attempts = self.reread.attempts.min(16);
        let delay = self.options.retry_base.saturating_mul(1 << attempts).min(REREAD_MAX);
        Some(*self.reread.next.get_or_insert_with(|| Instant::now() + delay))
    }

    /// Reads those files again and reconciles what they declare.
    pub(super) async fn reread(&mut self) -> Result<(), WatchError> {
        self.planning_started = Instant::now();
        tracing::info!(
            files = self.index.transient_failures(),
            "reading again the files a passing failure kept unread"
        );
        self.reread.attempts += 1;
        self.reread.next = None;
        let affected = self.index.reread_transient();
        let now = Instant::now();
        for id in &affected {
            self.changed_at.entry(id.clone()).or_insert(now);
        }
        self.dirty.extend(affected);
        let dirty = std::mem::take(&mut self.dirty);
        self.reconcile(Some(dirty)).await
    }
}

//! Group files whose read failed for a reason that passes (too many open files, no
//! memory) are read again on a growing back-off, so that the watcher recovers on its
//! own: no file event would ever come for them, as the files did not change.

use super::files::Debouncer;
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

    /// Reads those files again, as a change to them: through the settle interval, like
    /// any other (the listing of the directory failed: every file).
    pub(super) async fn reread(&mut self, debouncer: &mut Debouncer) -> Result<(), WatchError> {
        tracing::info!(
            files = self.index.transient_failures(),
            "reading again the files a passing failure kept unread"
        );
        self.reread.attempts += 1;
        self.reread.next = None;
        match self.index.transient_paths() {
            Some(paths) => self.read_change(paths.into_iter().collect(), Instant::now(), false, debouncer).await,
            None => self.read_change(Vec::new(), Instant::now(), true, debouncer).await,
        }
    }
}

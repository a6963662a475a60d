//! Progress of a long run: a bar with rate and ETA on a terminal; elsewhere
//! (CI logs) a line every few seconds.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Counts groups done and failed, and shows it.
pub(super) struct Progress {
    what: &'static str,
    bar: ProgressBar,
    total: u64,
    done: Cell<u64>,
    failed: Cell<u64>,
    started: Instant,
    last_line: Cell<Instant>,
}

impl Progress {
    /// Progress of `what` (`apply`, `drift`) over `total` groups.
    pub(super) fn new(what: &'static str, total: u64) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} groups  {per_sec}  ETA {eta}  {msg}")
            {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        let now = Instant::now();
        Progress { what, bar, total, done: Cell::new(0), failed: Cell::new(0), started: now, last_line: Cell::new(now) }
    }

    /// One group done; `failure` says why it failed, if it did.
    pub(super) fn tick(&self, failure: Option<&str>) {
        self.done.set(self.done.get() + 1);
        if let Some(failure) = failure {
            self.failed.set(self.failed.get() + 1);
            self.bar.suspend(|| {
                let _ = writeln!(anstream::stderr(), "failed: {failure}");
            });
            self.bar.set_message(format!("{} failed", self.failed.get()));
        }
        self.bar.inc(1);
        if self.bar.is_hidden() && self.last_line.get().elapsed() >= Duration::from_secs(5) {
            self.last_line.set(Instant::now());
            let rate = self.done.get() as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let _ = writeln!(
                anstream::stderr(),
                "{}: {}/{} groups done ({}%), {} failed, {rate:.0}/s",
                self.what,
                self.done.get(),
                self.total,
                self.done.get() * 100 / self.total.max(1),
                self.failed.get()
            );
        }
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

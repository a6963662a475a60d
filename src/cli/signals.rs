//! The signals grattr's long commands answer: Ctrl-C and SIGTERM stop, SIGHUP
//! (for `watch`) reloads.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed signal handlers. Install them once, early, and keep them: a signal
/// that arrives while no handler waits is kept for the next wait.
pub(super) struct Signals {
    term: Option<Signal>,
    hup: Option<Signal>,
}

impl Signals {
    /// Handles Ctrl-C and SIGTERM.
    pub(super) fn stop_only() -> Signals {
        Signals { term: signal(SignalKind::terminate()).ok(), hup: None }
    }

    /// Handles Ctrl-C, SIGTERM and SIGHUP.
    pub(super) fn with_hangup() -> Signals {
        Signals { hup: signal(SignalKind::hangup()).ok(), ..Signals::stop_only() }
    }

    /// Waits for the next signal.
    pub(super) async fn next(&mut self) -> Received {
        let term = async {
            match &mut self.term {
                Some(term) => term.recv().await,
                None => std::future::pending().await,
            }
        };
        let hup = async {
            match &mut self.hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Received::Stop,
            _ = term => Received::Stop,
            _ = hup => Received::Hangup,
        }
    }

    /// Waits for Ctrl-C or SIGTERM.
    pub(super) async fn stop(&mut self) {
        while self.next().await != Received::Stop {}
    }
}

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// Ctrl-C or SIGTERM.
    Stop,
    /// SIGHUP.
    Hangup,
}

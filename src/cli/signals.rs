//! The signals grattr's long commands answer: Ctrl-C and SIGTERM stop, SIGHUP
//! (for `watch`) reloads. On Windows, Ctrl-C and Ctrl-Break stop (a console's
//! Ctrl-Break is what service wrappers and `taskkill`-less tools send to ask for a
//! clean stop); Windows has no hangup, so `watch` reloads on its own events only.

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};
#[cfg(windows)]
use tokio::signal::windows::{CtrlBreak, ctrl_break};

/// Installed signal handlers. Install them once, early, and keep them: a signal
/// that arrives while no handler waits is kept for the next wait.
pub(super) struct Signals {
    #[cfg(unix)]
    term: Option<Signal>,
    #[cfg(unix)]
    hup: Option<Signal>,
    #[cfg(windows)]
    brk: Option<CtrlBreak>,
}

impl Signals {
    /// Handles Ctrl-C and SIGTERM (Ctrl-C and Ctrl-Break on Windows).
    pub(super) fn stop_only() -> Signals {
        Signals {
            #[cfg(unix)]
            term: signal(SignalKind::terminate()).ok(),
            #[cfg(unix)]
            hup: None,
            #[cfg(windows)]
            brk: ctrl_break().ok(),
        }
    }

    /// Handles Ctrl-C, SIGTERM and SIGHUP.
    #[cfg(unix)]
    pub(super) fn with_hangup() -> Signals {
        Signals { hup: signal(SignalKind::hangup()).ok(), ..Signals::stop_only() }
    }

    /// As [`Signals::stop_only`]: there is no hangup to handle.
    #[cfg(not(unix))]
    pub(super) fn with_hangup() -> Signals {
        Signals::stop_only()
    }

    /// Waits for the next signal.
    pub(super) async fn next(&mut self) -> Received {
        #[cfg(unix)]
        let (term, hup) = (
            async {
                match &mut self.term {
                    Some(term) => term.recv().await,
                    None => std::future::pending().await,
                }
            },
            async {
                match &mut self.hup {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            },
        );
        // Ctrl-Break asks to stop, as SIGTERM does; nothing on Windows asks to reload.
        #[cfg(windows)]
        let (term, hup) = (
            async {
                match &mut self.brk {
                    Some(brk) => brk.recv().await,
                    None => std::future::pending().await,
                }
            },
            std::future::pending::<Option<()>>(),
        );
        #[cfg(not(any(unix, windows)))]
        let (term, hup) = (std::future::pending::<Option<()>>(), std::future::pending::<Option<()>>());
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Received::Stop,
            _ = term => Received::Stop,
            _ = hup => Received::Hangup,
        }
    }

    /// Waits for Ctrl-C or SIGTERM (Ctrl-C or Ctrl-Break on Windows).
    pub(super) async fn stop(&mut self) {
        while self.next().await != Received::Stop {}
    }
}

/// What arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// Ctrl-C or SIGTERM (Ctrl-Break on Windows).
    Stop,
    /// SIGHUP (never on Windows).
    Hangup,
}

//! A local stand-in for the Chat REST API, faithful to the reference: the
//! attribute endpoints and group lifecycle with their documented fields, limits
//! and error codes, UserSig authentication, rate limits, fault injection, call
//! statistics and a state file. Tests, benchmarks and demos run against it.

mod service;
mod state;

pub use state::{GroupStats, Stats, Write};

use crate::api::usersig::SecretKey;
use crate::api::wire::GroupType;
use crate::model::{GroupId, limits};
use state::Shared;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Added latency of every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// None.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between the two.
    Between(Duration, Duration),
}

impl std::str::FromStr for Latency {
    type Err = String;
    /// `20` (milliseconds) or `10..50`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ms = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{t:?} is not a number of milliseconds"))
        };
        match text.split_once("..") {
            Some((low, high)) => {
                let (low, high) = (ms(low)?, ms(high)?);
                if low > high {
                    return Err(format!("{text:?}: the low end is above the high end"));
                }
                Ok(Latency::Between(low, high))
            }
            None => Ok(match ms(text)? {
                Duration::ZERO => Latency::None,
                fixed => Latency::Fixed(fixed),
            }),
        }
    }
}

/// The rate limits the emulator enforces, like the real service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Calls per second to each endpoint (the service: [`limits::MAX_CALLS_PER_SECOND`]).
    pub per_endpoint: u32,
    /// Writes per second to one group (the service: [`limits::MAX_GROUP_WRITES_PER_SECOND`]).
    pub group_writes: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { per_endpoint: limits::MAX_RATE_LIMIT, group_writes: limits::MAX_GROUP_WRITE_RATE }
    }
}

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The one app it serves.
    pub sdkappid: u64,
    /// The app admin accounts.
    pub admins: Vec<String>,
    /// The app's secret key, to verify UserSigs.
    pub key: SecretKey,
    /// Groups that exist from the start.
    pub groups: Vec<(GroupId, GroupType)>,
    /// Groups dismissed before the start (answered as dismissed, not as never created).
    pub dismissed: Vec<GroupId>,
    /// Create unknown groups on their first attribute write instead of answering that
    /// they do not exist. Dismissed groups are never created again this way.
    pub auto_create_groups: bool,
    /// Rate limits, or none (for benchmarks).
    pub limits: Option<RateLimits>,
    /// Added latency.
    pub latency: Latency,
    /// The probability of a fault per request: an internal server error, HTTP 502, a
    /// stall, or a dropped connection.
    pub fault_rate: f64,
    /// How long a stall lasts (it should exceed the client's timeout).
    pub stall: Duration,
    /// Where state is loaded from and saved to.
    pub state_file: Option<PathBuf>,
}

impl EmulatorConfig {
    /// An emulator of `sdkappid` with one admin, the documented limits and no faults.
    pub fn new(sdkappid: u64, admin: impl Into<String>, key: SecretKey) -> EmulatorConfig {
        EmulatorConfig {
            sdkappid,
            admins: vec![admin.into()],
            key,
            groups: Vec::new(),
            dismissed: Vec::new(),
            auto_create_groups: false,
            limits: Some(RateLimits::default()),
            latency: Latency::None,
            fault_rate: 0.0,
            stall: Duration::from_secs(60),
            state_file: None,
        }
    }
}

/// Why the emulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state file cannot be read or written.
    #[error("state file {path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A running emulator. Dropping it stops the server without saving; call
/// [`Emulator::shutdown`] to stop it cleanly.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving in the background.
    pub async fn start(config: EmulatorConfig, listen: SocketAddr) -> Result<Emulator, EmulatorError> {
        let shared = Arc::new(Shared::new(config)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| EmulatorError::Listen { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| EmulatorError::Listen { addr: listen, source })?;
        let stop = CancellationToken::new();
        let app = service::router(shared.clone(), stop.clone());
        let serve_stop = stop.clone();
        let saver = shared.clone();
        let task = tokio::spawn(async move {
            let autosave = saver.clone().autosave(serve_stop.clone());
            let server = axum::serve(listener, app).with_graceful_shutdown(serve_stop.cancelled_owned());
            let (served, ()) = tokio::join!(server, autosave);
            if let Err(e) = served {
                tracing::error!(error = %e, "the emulator stopped");
            }
        });
        tracing::info!(%addr, "emulator listening");
        Ok(Emulator { addr, shared, stop, task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure as `endpoint`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the call statistics.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The writes that changed groups, in the order applied (the most recent 100,000).
    pub fn writes(&self) -> Vec<Write> {
        self.shared.writes()
    }

    /// The attributes a group has now, or `None` if it does not exist.
    pub fn attributes(&self, group: &GroupId) -> Option<crate::model::AttributeSet> {
        self.shared.attributes(group)
    }

    /// Dismisses (destroys) `group`, as `destroy_group` does: from now on the
    /// emulator answers calls about it as about a dismissed group.
    pub fn dismiss(&self, group: &GroupId) {
        self.shared.dismiss(group);
    }

    /// A token that stops the emulator when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops serving, waits for in-flight requests, and saves the state file.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.save()
    }

    /// Serves until the stop token is cancelled, then saves.
    pub async fn wait(mut self) -> Result<(), EmulatorError> {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.save()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

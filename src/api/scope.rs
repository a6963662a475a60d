//! Whether a failed call is about one group or about the whole app. A wrong key,
//! a wrong data centre or a host that cannot be reached fails every group the same
//! way: `apply` and the live reads stop at the first such failure instead of sending
//! every group to meet it ([`Probe`], [`Stopped`]), and `watch` pauses. The codes are
//! classified next to their table ([`super::codes::app_wide`]); transport failures here.

use super::error::{ApiError, ErrorKind};
use crate::model::Region;
use serde::Serialize;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// What an app-wide failure is about; each has one likely fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppWide {
    /// The UserSig or the secret key was refused (after one renewal).
    Credentials,
    /// The admin account was refused.
    Account,
    /// The app itself was refused: unknown, disabled, expired, or this machine not allowed.
    App,
    /// The app is not known at this host: another data centre, or a wrong URL.
    Region,
    /// Something other than the REST API answers at the endpoint: a status, a body
    /// or JSON the API never gives ([`super::error::ErrorKind::NotTheApi`]).
    NotTheApi,
    /// The host's name does not resolve.
    Dns,
    /// The host refused the connection.
    Refused,
    /// The TLS handshake failed.
    Tls,
    /// No connection could be made otherwise (a connect timeout, an unreachable network).
    Unreachable,
}

impl AppWide {
    /// What the user can most likely do about it.
    pub fn fix(self) -> &'static str {
        match self {
            AppWide::Credentials => "check secret_key_env / --secret-key-file",
            AppWide::Account => "check admin in grattr.yaml (an app admin account)",
            AppWide::App => "check sdkappid in grattr.yaml and the app in the console",
            AppWide::Region | AppWide::NotTheApi => "check region/endpoint in grattr.yaml",
            AppWide::Dns | AppWide::Refused => "check region/endpoint, or the network or proxy",
            AppWide::Tls | AppWide::Unreachable => "check the network or proxy",
        }
    }
}

/// Why a run stopped before its end: a failure about the whole app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// What the failure is about.
    pub reason: AppWide,
    /// The failure that stopped the run (its group is among the failed).
    pub error: ApiError,
    /// The host calls went to.
    pub host: String,
    /// The region whose host that is, if it is one.
    pub region: Option<&'static str>,
    /// How many calls were not attempted.
    pub not_attempted: usize,
    /// What those calls were, counted: [`Stopped::CHANGES`] or [`Stopped::READS`].
    pub what: &'static str,
}

impl Stopped {
    /// Changes of a plan, not attempted.
    pub const CHANGES: &'static str = "change(s)";
    /// Reads of live groups, not attempted.
    pub const READS: &'static str = "read(s)";

    /// Why a run whose calls went to `host` stopped, naming the region whose host it is.
    pub fn at(host: String, reason: AppWide, error: ApiError, not_attempted: usize, what: &'static str) -> Stopped {
        let region = Region::ALL.iter().find(|r| r.domain == host).map(|r| r.name);
        Stopped { reason, error, host, region, not_attempted, what }
    }
}

impl fmt::Display for Stopped {
    /// One clause that says how many calls were not attempted, why, and the likely
    /// fix; callers put it in their own sentence ("Stopped: …", "paused: …").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.region {
            Some(region) => format!("{} (region {region})", self.host),
            None => self.host.clone(),
        };
        let code = || match &self.error.kind {
            ErrorKind::Api { code, .. } => {
                let meaning = super::codes::lookup(*code).map_or("undocumented error", |c| c.meaning);
                format!("{meaning} [{code}]")
            }
            _ => self.error.to_string(),
        };
        write!(f, "{} {} not attempted because ", self.not_attempted, self.what)?;
        match self.reason {
            AppWide::Credentials => write!(f, "{host} refused the credentials ({})", code())?,
            AppWide::Account => write!(f, "{host} refused the admin account ({})", code())?,
            AppWide::App => write!(f, "{host} refused the app ({})", code())?,
            AppWide::Region => write!(f, "{host} does not know the app ({})", code())?,
            AppWide::NotTheApi => {
                let answer = self.error.answer().unwrap_or_else(|| self.error.to_string());
                write!(f, "{host} is not the Chat REST API (it answered {answer})")?;
            }
            AppWide::Dns => {
                // A name, not an address: the port is no part of what does not resolve.
                let name = self.host.rsplit_once(':').map_or(self.host.as_str(), |(name, _)| name);
                match self.region {
                    Some(region) => write!(f, "the host name {name} (region {region}) does not resolve")?,
                    None => write!(f, "the host name {name} does not resolve")?,
                }
            }
            AppWide::Refused => write!(f, "the connection to {host} was refused")?,
            AppWide::Tls => write!(f, "the TLS handshake with {host} failed")?,
            AppWide::Unreachable => write!(f, "{host} could not be reached")?,
        }
        write!(f, "; {}", self.reason.fix())
    }
}

/// How a connection could not be made: no request reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The name did not resolve.
    Dns,
    /// The connection was refused.
    Refused,
    /// The TLS handshake failed.
    Tls,
    /// Anything else before the request was sent (a connect timeout, no route).
    Other,
}

impl ConnectFailure {
    /// The app-wide reason it is, when nothing has reached the host.
    pub fn app_wide(self) -> AppWide {
        match self {
            ConnectFailure::Dns => AppWide::Dns,
            ConnectFailure::Refused => AppWide::Refused,
            ConnectFailure::Tls => AppWide::Tls,
            ConnectFailure::Other => AppWide::Unreachable,
        }
    }

    /// Classifies a connect error from its chain of causes. The HTTP stack wraps the
    /// causes in its own types, so the I/O kind and the TLS error are looked for by
    /// type, and the resolver's failure (an I/O error of no particular kind) by text.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> ConnectFailure {
        let mut source = Some(error);
        let mut dns = false;
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return ConnectFailure::Refused;
            }
            if cause.downcast_ref::<rustls::Error>().is_some() {
                return ConnectFailure::Tls;
            }
            let text = cause.to_string();
            dns |= text.starts_with("dns error") || text.contains("failed to lookup address");
            if text.contains("Connection refused") {
                return ConnectFailure::Refused;
            }
            source = cause.source();
        }
        if dns { ConnectFailure::Dns } else { ConnectFailure::Other }
    }
}

/// The gate of a run's calls: the first goes alone, the others wait until an answer
/// shows that the app and the host are fine, or the run stops; a failure about the
/// whole app halts the run. `apply` and the live reads (`drift`, `plan --refresh`,
/// `import`, `watch`'s resync) share it, so that a wrong setting costs one call
/// whatever the command. Shared by the calls of one run (a `buffer_unordered` stream,
/// which may run in a spawned task).
pub struct Probe {
    halt: CancellationToken,
    open: tokio::sync::watch::Sender<bool>,
    probing: AtomicBool,
    /// Whether anything has had an answer from the host: until then, a failure to
    /// connect is about the host, not the group.
    reached: AtomicBool,
    stopped: Mutex<Option<(AppWide, ApiError)>>,
}

impl Probe {
    /// A gate that cancels `halt` when a failure is about the whole app.
    pub fn new(halt: CancellationToken) -> Probe {
        Probe {
            halt,
            open: tokio::sync::watch::Sender::new(false),
            probing: AtomicBool::new(false),
            reached: AtomicBool::new(false),
            stopped: Mutex::new(None),
        }
    }

    /// Waits until a call may start: the first call at once (it is the one whose
    /// call this is, counted when this is called, not when it is awaited), the
    /// others once the gate opens. False when the run stopped before.
    pub fn admit(&self) -> impl Future<Output = bool> + '_ {
        let first = !self.probing.swap(true, Ordering::Relaxed);
        let mut gate = self.open.subscribe();
        async move {
            if first {
                return true;
            }
            tokio::select! {
                biased;
                () = self.halt.cancelled() => false,
                open = gate.wait_for(|open| *open) => open.is_ok(),
            }
        }
    }

    /// Hears how a call ended. A failure about the whole app halts the run (the
    /// first such one is kept for [`Probe::stopped`]) and its reason is returned;
    /// anything else opens the gate.
    pub fn answered(&self, result: Result<(), &ApiError>) -> Option<AppWide> {
        let error = match result {
            Ok(()) => {
                self.reached.store(true, Ordering::Relaxed);
                self.open.send_replace(true);
                return None;
            }
            Err(error) => error,
        };
        let app_wide = error.app_wide(self.reached.load(Ordering::Relaxed));
        if error.connect_failure().is_none() {
            self.reached.store(true, Ordering::Relaxed);
        }
        match app_wide {
            Some(reason) => {
                self.halt.cancel();
                self.kept().get_or_insert_with(|| (reason, error.clone()));
            }
            None => {
                self.open.send_replace(true);
            }
        }
        app_wide
    }

    /// The failure about the whole app that halted the run, if one did.
    pub fn stopped(&self) -> Option<(AppWide, ApiError)> {
        self.kept().take()
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(AppWide, ApiError)>> {
        self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::Operation;

    fn error(kind: ErrorKind) -> ApiError {
        ApiError { operation: Operation::GetGroupAttr, kind, attempts: 1 }
    }

    #[tokio::test]
    async fn the_first_call_goes_alone_and_an_app_wide_failure_stops_the_rest() {
        let halt = CancellationToken::new();
        let probe = Probe::new(halt.clone());
        let (first, second) = (probe.admit(), probe.admit());
        assert!(first.await, "the first call starts at once");
        let impostor = error(ErrorKind::NotTheApi { status: 501, content_type: None, body: String::new() });
        assert_eq!(probe.answered(Err(&impostor)), Some(AppWide::NotTheApi));
        assert!(halt.is_cancelled(), "the run halts");
        assert!(!second.await, "the others never start");
        assert_eq!(probe.stopped().map(|(reason, _)| reason), Some(AppWide::NotTheApi));

        // A failure about the group opens the gate like a success.
        let probe = Probe::new(CancellationToken::new());
        let (first, second) = (probe.admit(), probe.admit());
        assert!(first.await);
        let missing = error(ErrorKind::Api { code: 10010, info: String::new() });
        assert_eq!(probe.answered(Err(&missing)), None);
        assert!(second.await);
        assert!(probe.stopped().is_none());
    }

    #[test]
    fn a_stop_at_an_impostor_names_what_answered() {
        let kind = ErrorKind::NotTheApi {
            status: 404,
            content_type: Some("text/html".into()),
            body: "<h1>Not\nFound</h1>".into(),
        };
        let stopped = Stopped::at("127.0.0.1:8000".into(), AppWide::NotTheApi, error(kind), 63, Stopped::READS);
        assert_eq!(
            stopped.to_string(),
            r#"63 read(s) not attempted because 127.0.0.1:8000 is not the Chat REST API (it answered HTTP 404, text/html, "<h1>Not\nFound</h1>"); check region/endpoint in grattr.yaml"#
        );
    }
}

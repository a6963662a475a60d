//! Whether a failed call is about one group or about the whole app. A wrong key,
//! a wrong data centre or a host that cannot be reached fails every group the same
//! way: `apply` stops at the first such failure instead of sending every group to
//! meet it, and `watch` pauses. The codes are classified next to their table
//! ([`super::codes::app_wide`]); transport failures here.

use serde::Serialize;

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
            AppWide::Region => "check region/endpoint in grattr.yaml",
            AppWide::Dns | AppWide::Refused => "check region/endpoint, or the network or proxy",
            AppWide::Tls | AppWide::Unreachable => "check the network or proxy",
        }
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

//! A `postgres://` state URL, read as libpq reads its URI form and its environment,
//! and turned into a connection configuration. The password is kept out of every
//! rendering of it: [`Config::label`], `Debug`, and the errors about the URL.

use super::super::StateError;
use percent_encoding::percent_decode_str;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long one call to the store may take unless a URL's `connect_timeout` or
/// [`Config::with_timeout`] says otherwise: long enough for a loaded server, short
/// enough that a writer notices a lost database well within a lease.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `sslmode` of libpq: whether to encrypt, and what to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without verifying its certificate (libpq's default).
    Prefer,
    /// TLS or nothing, without verifying the certificate (unless an sslrootcert file
    /// exists: then as `VerifyCa`, as libpq does).
    Require,
    /// TLS, with a certificate signed by a trusted root; any host name.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted root and issued for the host.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Which certificates a verifying TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The system's roots (`sslrootcert=system`).
    System,
    /// The certificates of a PEM file.
    File(PathBuf),
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address (an IPv6 address without brackets).
    Tcp(String),
    /// The directory of a unix socket (`host=/path`, or a percent-encoded path as host).
    Socket(PathBuf),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Tcp(name) if name.contains(':') => write!(f, "[{name}]"),
            Host::Tcp(name) => f.write_str(name),
            Host::Socket(dir) => {
                f.write_str(&percent_encoding::utf8_percent_encode(&dir.to_string_lossy(), PATH).to_string())
            }
        }
    }
}

/// What a socket directory shown as a URL's host must encode.
const PATH: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A parsed `postgres://` / `postgresql://` URL (libpq's URI form) and libpq's environment:
/// PGPASSWORD (and password in the URL), PGHOST/PGPORT/PGUSER/PGDATABASE when the URL omits them,
/// `sslmode` (disable | prefer | require | verify-ca | verify-full; default prefer as libpq),
/// `sslrootcert` (a PEM file, or `system`), `host=/path` or a percent-encoded socket dir for unix
/// sockets, `application_name` defaulting to "grattr", `connect_timeout`. Debug/Display never show
/// the password.
#[derive(Clone)]
pub struct Config {
    /// Where the server listens.
    pub host: Host,
    /// Its port (also names the unix socket's file).
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// The database.
    pub dbname: String,
    password: Option<Zeroizing<String>>,
    /// Whether to encrypt, and what to verify.
    pub sslmode: SslMode,
    /// The roots a verifying connection trusts; `None`: `~/.postgresql/root.crt` when it exists.
    pub sslrootcert: Option<RootCert>,
    /// What the server shows in `pg_stat_activity`.
    pub application_name: String,
    /// How long connecting may take (libpq's `connect_timeout`); `None`: [`Config::timeout`].
    pub connect_timeout: Option<Duration>,
    /// How long one call may take, connecting aside: the statement timeout, and the
    /// client's own bound on a call.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Config {
    /// Parses `url`, filling what it omits from libpq's environment variables, then from
    /// libpq's defaults: port 5432, the user `$USER`, a database named as the user,
    /// `sslmode=prefer`. A URL with no host and no PGHOST means `localhost` (libpq would
    /// try its compiled-in socket directory: name it with `host=/path` instead).
    /// `~/.pgpass` is not read: give the password in the URL or PGPASSWORD.
    pub fn parse(url: &str) -> Result<Config, StateError> {
        Config::parse_with(url, |name| std::env::var(name).ok())
    }

    /// For people: `postgres://USER@HOST:PORT/DB` (no password, no query).
    pub fn label(&self) -> String {
        let encode = |text: &str| percent_encoding::utf8_percent_encode(text, PATH).to_string();
        format!("postgres://{}@{}:{}/{}", encode(&self.user), self.host, self.port, encode(&self.dbname))
    }

    /// The password, if the URL or PGPASSWORD gave one.
    pub(super) fn password(&self) -> Option<&str> {
        self.password.as_deref().map(String::as_str)
    }

    /// The same configuration with another bound on each call (tests use short ones).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take.
    pub(super) fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.timeout)
    }

    /// [`Config::parse`], with the environment read through `env`.
    fn parse_with(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, StateError> {
        let fail = |message: String| StateError::Url { url: redact(url), message };
        let rest = ["postgres://", "postgresql://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| fail("a PostgreSQL state URL starts with postgres:// or postgresql://".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        // The user info ends at the last `@`, so that a password with an unencoded `/`
        // or `@` stays whole and never lands in a host or port shown in an error.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        if hostport.contains(',') {
            return Err(fail("several hosts are not supported: name one".into()));
        }
        let decode = |part: &str, what: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| fail(format!("the {what} is not UTF-8 once percent-decoded")))
        };

        let mut user = None;
        let mut password = None;
        if let Some(userinfo) = userinfo {
            let (name, secret) = match userinfo.split_once(':') {
                Some((name, secret)) => (name, Some(secret)),
                None => (userinfo, None),
            };
            user = Some(decode(name, "user name")?).filter(|name| !name.is_empty());
            if let Some(secret) = secret {
                password = Some(Zeroizing::new(decode(secret, "password")?));
            }
        }
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| fail("the host is not HOST, HOST:PORT or [IPv6]:PORT".into()))?;
        let mut host = Some(decode(host, "host")?).filter(|host| !host.is_empty());
        let mut port = Some(port).filter(|port| !port.is_empty()).map(str::to_string);
        let mut dbname = Some(decode(path, "database name")?).filter(|name| !name.is_empty());

        let mut sslmode = None;
        let mut sslrootcert = None;
        let mut application_name = None;
        let mut connect_timeout = None;
        // Not form_urlencoded: libpq reads `+` as itself, not as a space.
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name, "parameter name")?;
            let value = decode(value, "parameter value")?;
            match &*name {
                "host" => host = Some(value),
                "port" => port = Some(value),
                "user" => user = Some(value),
                "password" => password = Some(Zeroizing::new(value)),
                "dbname" => dbname = Some(value),
                "sslmode" => sslmode = Some(value),
                "sslrootcert" => sslrootcert = Some(value),
                "application_name" => application_name = Some(value),
                "connect_timeout" => connect_timeout = Some(value),
                other => {
                    return Err(fail(format!(
                        "unknown parameter `{}` (known: host, port, user, password, dbname, sslmode, sslrootcert, application_name, connect_timeout)",
                        crate::escape::text(other)
                    )));
                }
            }
        }

        let host = match host.or_else(|| env("PGHOST").filter(|host| !host.is_empty())) {
            Some(host) if host.starts_with('/') => Host::Socket(PathBuf::from(host)),
            Some(host) => Host::Tcp(host),
            None => Host::Tcp("localhost".into()),
        };
        let port = match port.or_else(|| env("PGPORT").filter(|port| !port.is_empty())) {
            Some(port) => port.parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(|| {
                fail(format!("port `{}` is not a number from 1 to {}", crate::escape::text(&port), u16::MAX))
            })?,
            None => 5432,
        };
        let user = user
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .filter(|user| !user.is_empty())
            .unwrap_or_else(|| "postgres".into());
        let dbname =
            dbname.or_else(|| env("PGDATABASE")).filter(|name| !name.is_empty()).unwrap_or_else(|| user.clone());
        let password = password.or_else(|| env("PGPASSWORD").map(Zeroizing::new));
        let sslmode = match sslmode.or_else(|| env("PGSSLMODE")) {
            Some(mode) => SslMode::parse(&mode).ok_or_else(|| {
                fail(format!(
                    "sslmode `{}` is none of disable, prefer, require, verify-ca, verify-full",
                    crate::escape::text(&mode)
                ))
            })?,
            None => SslMode::Prefer,
        };
        let sslrootcert =
            sslrootcert.or_else(|| env("PGSSLROOTCERT")).filter(|path| !path.is_empty()).map(|path| match &*path {
                "system" => RootCert::System,
                _ => RootCert::File(PathBuf::from(path)),
            });
        if sslrootcert == Some(RootCert::System) && sslmode != SslMode::VerifyFull {
            // As libpq: the system's roots vouch for any name they signed, so they mean
            // something only when the name is checked too.
            return Err(fail("sslrootcert=system needs sslmode=verify-full".into()));
        }
        let application_name = application_name.or_else(|| env("PGAPPNAME")).unwrap_or_else(|| "grattr".into());
        let connect_timeout = match connect_timeout.or_else(|| env("PGCONNECT_TIMEOUT")) {
            // libpq: zero, negative or absent means wait forever; grattr bounds it anyway.
            Some(text) => match text.trim().parse::<i64>() {
                Ok(seconds) if seconds > 0 => Some(Duration::from_secs(seconds.max(2).unsigned_abs())),
                Ok(_) => None,
                Err(_) => {
                    return Err(fail(format!(
                        "connect_timeout `{}` is not a number of seconds",
                        crate::escape::text(&text)
                    )));
                }
            },
            None => None,
        };
        Ok(Config {
            host,
            port,
            user,
            dbname,
            password,
            sslmode,
            sslrootcert,
            application_name,
            connect_timeout,
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT` → (host, port); the port may be empty.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, "")),
            _ => Some((host, after.strip_prefix(':')?)),
        };
    }
    Some(hostport.rsplit_once(':').unwrap_or((hostport, "")))
}

/// `url` with any password taken out (in the user info, and a `password=` parameter),
/// for messages about a URL that may not even parse.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    // As the parser reads it: the user info ends at the last `@`.
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, after)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{after}"),
            None => format!("{userinfo}@{after}"),
        },
        None => rest.to_string(),
    };
    let mut out = match scheme {
        "" => rest,
        _ => format!("{scheme}://{rest}"),
    };
    if let Some(query) = query {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if percent_decode_str(name).decode_utf8_lossy() == "password" => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&query.join("&"));
    }
    crate::escape::text(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_string())
    }

    fn parse(url: &str, vars: &[(&str, &str)]) -> Result<Config, StateError> {
        Config::parse_with(url, env(vars))
    }

    #[test]
    fn a_full_url_gives_every_part() {
        let config = parse(
            "postgresql://ops:s%40cret@db.example.com:6432/grattr?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=ci&connect_timeout=7",
            &[],
        )
        .unwrap();
        assert_eq!(config.host, Host::Tcp("db.example.com".into()));
        assert_eq!(config.port, 6432);
        assert_eq!(config.user, "ops");
        assert_eq!(config.password(), Some("s@cret"));
        assert_eq!(config.dbname, "grattr");
        assert_eq!(config.sslmode, SslMode::VerifyFull);
        assert_eq!(config.sslrootcert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(config.application_name, "ci");
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(config.label(), "postgres://ops@db.example.com:6432/grattr");
    }

    #[test]
    fn what_the_url_omits_comes_from_libpqs_environment_then_its_defaults() {
        let vars = [
            ("PGHOST", "pg.internal"),
            ("PGPORT", "5433"),
            ("PGUSER", "app"),
            ("PGPASSWORD", "pw"),
            ("PGDATABASE", "state"),
        ];
        let config = parse("postgres://", &vars).unwrap();
        assert_eq!(config.label(), "postgres://app@pg.internal:5433/state");
        assert_eq!(config.password(), Some("pw"));
        // The URL wins over the environment.
        let config = parse("postgres://me:url-pw@h/d", &vars).unwrap();
        assert_eq!((config.user.as_str(), config.password(), config.dbname.as_str()), ("me", Some("url-pw"), "d"));
        // No environment: localhost, 5432, $USER, a database named as the user, prefer, "grattr".
        let config = parse("postgres://", &[("USER", "dev")]).unwrap();
        assert_eq!(config.label(), "postgres://dev@localhost:5432/dev");
        assert_eq!(config.sslmode, SslMode::Prefer);
        assert_eq!(config.application_name, "grattr");
        assert_eq!(config.connect_timeout, None);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn unix_sockets_are_named_by_a_path_as_host() {
        let config = parse("postgres://u@%2Fvar%2Frun%2Fpostgresql:5433/db", &[]).unwrap();
        assert_eq!(config.host, Host::Socket("/var/run/postgresql".into()));
        assert_eq!(config.port, 5433);
        let config = parse("postgres:///db?host=/tmp/pg%20dir&user=u", &[]).unwrap();
        assert_eq!(config.host, Host::Socket("/tmp/pg dir".into()));
        assert_eq!(config.label(), "postgres://u@%2Ftmp%2Fpg%20dir:5432/db");
        let config = parse("postgres://u@/db", &[("PGHOST", "/run/pg")]).unwrap();
        assert_eq!(config.host, Host::Socket("/run/pg".into()));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let config = parse("postgres://u@[::1]:6000/db", &[]).unwrap();
        assert_eq!(config.host, Host::Tcp("::1".into()));
        assert_eq!(config.port, 6000);
        assert_eq!(config.label(), "postgres://u@[::1]:6000/db");
        assert_eq!(parse("postgres://u@[::1]/db", &[]).unwrap().port, 5432);
    }

    #[test]
    fn sslmodes_are_libpqs() {
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(parse(&format!("postgres://h/d?sslmode={text}"), &[]).unwrap().sslmode, mode);
        }
        assert_eq!(parse("postgres://h/d", &[("PGSSLMODE", "require")]).unwrap().sslmode, SslMode::Require);
        let system = parse("postgres://h/d?sslmode=verify-full&sslrootcert=system", &[]).unwrap();
        assert_eq!(system.sslrootcert, Some(RootCert::System));
    }

    #[test]
    fn mistakes_are_named_and_the_password_is_never_shown() {
        let cases = [
            ("mysql://u:hunter2@h/d", "starts with postgres://"),
            ("postgres://u:hunter2@h:99999/d", "port `99999` is not a number from 1 to 65535"),
            ("postgres://u:hunter2@h/d?sslmode=maybe", "sslmode `maybe` is none of"),
            ("postgres://u:hunter2@h/d?password=hunter2&colour=blue", "unknown parameter `colour`"),
            ("postgres://u:hunter2@a,b/d", "several hosts"),
            ("postgres://u:hunter2@h/d?sslrootcert=system", "sslrootcert=system needs sslmode=verify-full"),
            ("postgres://u:hunter2@h/d?connect_timeout=soon", "connect_timeout `soon`"),
            ("postgres://u:hunter2@[::1/d", "the host is not"),
        ];
        for (url, expected) in cases {
            let error = parse(url, &[]).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
            assert!(!format!("{error:?}").contains("hunter2"), "{url}: {error:?}");
        }
        let error = parse("postgres://u:hunter2@h/d?password=hunter2&colour=blue", &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "state URL postgres://u:***@h/d?password=***&colour=blue: unknown parameter `colour` (known: host, port, user, password, dbname, sslmode, sslrootcert, application_name, connect_timeout)"
        );
    }

    #[test]
    fn a_password_with_unencoded_slashes_and_ats_stays_whole() {
        let config = parse("postgres://u:p/ss@w:rd@h:5433/d", &[]).unwrap();
        assert_eq!((config.user.as_str(), config.password()), ("u", Some("p/ss@w:rd")));
        assert_eq!(config.label(), "postgres://u@h:5433/d");
        let error = parse("postgres://u:p/ss@w:rd@h:x/d", &[]).unwrap_err().to_string();
        assert_eq!(error, "state URL postgres://u:***@h:x/d: port `x` is not a number from 1 to 65535");
        assert_eq!(redact("not a url u:p/ss@w:rd@h"), "not a url u:***@h");
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let config = parse("postgres://u:hunter2@h/d", &[]).unwrap();
        let from_env = parse("postgres://u@h/d", &[("PGPASSWORD", "hunter2")]).unwrap();
        for config in [config, from_env] {
            assert_eq!(config.password(), Some("hunter2"));
            for shown in [format!("{config:?}"), config.to_string(), config.label()] {
                assert!(!shown.contains("hunter2"), "{shown}");
            }
            assert!(format!("{config:?}").contains("<redacted>"));
        }
    }

    #[test]
    fn connect_timeout_is_at_least_two_seconds_and_zero_means_the_default() {
        assert_eq!(
            parse("postgres://h/d?connect_timeout=1", &[]).unwrap().connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse("postgres://h/d?connect_timeout=0", &[]).unwrap().connect_timeout, None);
        let config = parse("postgres://h/d", &[]).unwrap().with_timeout(Duration::from_millis(300));
        assert_eq!(config.connect_timeout(), Duration::from_millis(300));
    }
}

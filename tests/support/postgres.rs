//! A throwaway PostgreSQL server for a test: its own data directory in a temporary
//! directory, listening on a free loopback port and on a unix socket in that directory,
//! with durability off (fsync) so that tests are fast. The data directory is copied from
//! one made by `initdb` once per test binary (and kept under cargo's target tmp dir), so
//! a server starts in a fraction of a second. PostgreSQL refuses to run as root: as root,
//! its programs run as the `postgres` user (`runuser`), in directories that user owns.
//!
//! TCP logins need a password (scram-sha-256, [`PASSWORD`]); unix-socket logins are trusted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The superuser's password on every test server.
pub const PASSWORD: &str = "pg-test-Zq9-secret";

/// A running (or stopped) throwaway server.
pub struct Pg {
    dir: Option<tempfile::TempDir>,
    port: u16,
    running: bool,
    /// Server options beyond the usual (TLS).
    extra: String,
}

impl Pg {
    /// Starts a new server on a free loopback port; panics with what to install when
    /// PostgreSQL's programs are missing (a test that needs it never skips).
    pub fn start() -> Pg {
        Pg::start_with(false)
    }

    /// Starts a server that also speaks TLS, with a certificate for `localhost` (and no
    /// other name) issued by the test CA in [`Pg::ca_file`]; made with the openssl tool.
    pub fn start_tls() -> Pg {
        Pg::start_with(true)
    }

    /// Starts a server that keeps what it commits as a production server does (fsync,
    /// synchronous commit, full page writes on): for benchmarks.
    pub fn start_durable() -> Pg {
        let mut pg = Pg::start();
        pg.extra = " -c fsync=on -c synchronous_commit=on -c full_page_writes=on".into();
        pg.restart();
        pg
    }

    /// The test CA's certificate (PEM) of a [`Pg::start_tls`] server.
    pub fn ca_file(&self) -> PathBuf {
        self.socket_dir().join("ca.crt")
    }

    fn start_with(tls: bool) -> Pg {
        let template = template();
        let dir = tempfile::Builder::new().prefix("grattr-pg-").tempdir().unwrap();
        give_to_server_user(dir.path());
        let extra = match tls {
            true => make_certificates(dir.path()),
            false => String::new(),
        };
        let copied = Command::new("cp").arg("-a").arg(template).arg(dir.path().join("data")).output().unwrap();
        assert!(
            copied.status.success(),
            "copying the template data directory: {}",
            String::from_utf8_lossy(&copied.stderr)
        );
        let mut pg = Pg { dir: Some(dir), port: 0, running: false, extra };
        // A port free when we looked may be taken before the server binds it: try another.
        for attempt in 0.. {
            pg.port = free_port();
            match pg.try_start() {
                Ok(()) => return pg,
                Err(log) if attempt < 5 && (log.contains("could not bind") || log.contains("already in use")) => {
                    continue;
                }
                Err(log) => panic!("PostgreSQL did not start on port {}:\n{log}", pg.port),
            }
        }
        unreachable!()
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres` (TCP, TLS off).
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `dbname` over TCP.
    pub fn url_of(&self, dbname: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/{dbname}?sslmode=disable", self.port)
    }

    /// The URL of database `dbname` over the unix socket (no password).
    pub fn socket_url_of(&self, dbname: &str) -> String {
        format!("postgres://postgres@/{dbname}?host={}&port={}", self.socket_dir().display(), self.port)
    }

    /// The port it listens on (the same across [`Pg::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Makes an empty database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url_of(name)
    }

    /// Runs `sql` in `dbname` with psql over the socket; returns its unaligned output
    /// (one line per row, columns separated by `|`).
    pub fn sql(&self, dbname: &str, sql: &str) -> String {
        let output = self.psql(dbname, sql).output().unwrap();
        assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim_end().to_string()
    }

    /// The psql command that runs `sql` in `dbname` over the socket, to run or spawn.
    pub fn psql(&self, dbname: &str, sql: &str) -> Command {
        let mut command = Command::new(program("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-d", dbname, "-c", sql]);
        command
    }

    /// Stops it at once, as a crash would (connections are cut).
    pub fn stop(&mut self) {
        if self.running {
            let _ = pg_ctl(&["stop", "-m", "immediate", "-s", "-D"], self.data());
            self.running = false;
        }
    }

    /// Starts it again, on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not restart on port {}:\n{log}", self.port);
        }
    }

    fn data(&self) -> PathBuf {
        self.socket_dir().join("data")
    }

    /// `pg_ctl start`, waiting until it accepts connections; `Err(its log)` if not.
    fn try_start(&mut self) -> Result<(), String> {
        let log = self.socket_dir().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100 -c shared_buffers=16MB -c logging_collector=off{}",
            self.port,
            self.socket_dir().display(),
            self.extra
        );
        let output = Command::new(program("pg_ctl"))
            .args(["start", "-w", "-s", "-t", "30", "-o", &options, "-l"])
            .arg(&log)
            .arg("-D")
            .arg(self.data())
            .as_server_user()
            .output()
            .unwrap();
        if output.status.success() {
            self.running = true;
            return Ok(());
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        Err(format!("{}{text}", String::from_utf8_lossy(&output.stderr)))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a PostgreSQL program as the user PostgreSQL accepts.
trait AsServerUser {
    fn as_server_user(&mut self) -> &mut Command;
}

impl AsServerUser for Command {
    fn as_server_user(&mut self) -> &mut Command {
        if !is_root() {
            return self;
        }
        // Command cannot be rewritten in place: make `runuser -u postgres -- PROGRAM ARGS`.
        let mut wrapped = Command::new("runuser");
        wrapped.args(["-u", "postgres", "--"]).arg(self.get_program()).args(self.get_args());
        *self = wrapped;
        self
    }
}

fn pg_ctl(args: &[&str], data: PathBuf) -> Output {
    Command::new(program("pg_ctl")).args(args).arg(data).as_server_user().output().unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Lets the server's user own `dir` (when we are root; otherwise it is ours already).
fn give_to_server_user(dir: &Path) {
    if !is_root() {
        return;
    }
    let id = |flag: &str| -> u32 {
        let output = Command::new("id").args([flag, "postgres"]).output().unwrap();
        assert!(output.status.success(), "running as root, PostgreSQL needs a `postgres` user: {}", install_hint());
        String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
    };
    std::os::unix::fs::chown(dir, Some(id("-u")), Some(id("-g"))).unwrap();
}

/// A PostgreSQL program: on PATH, or in Debian's versioned directory (the newest).
fn program(name: &str) -> PathBuf {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file()))
    };
    if name == "psql"
        && let Some(psql) = on_path("psql")
    {
        return psql;
    }
    let bin = BIN.get_or_init(|| {
        on_path("initdb")
            .and_then(|initdb| initdb.canonicalize().ok())
            .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
            .or_else(|| {
                let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|entry| entry.path().join("bin"))
                    .filter(|bin| bin.join("initdb").is_file())
                    .collect();
                dirs.sort_by_key(|dir| {
                    dir.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
                });
                dirs.pop()
            })
    });
    match bin {
        Some(bin) => bin.join(name),
        None => {
            panic!("PostgreSQL's initdb was not found on PATH nor in /usr/lib/postgresql/*/bin: {}", install_hint())
        }
    }
}

fn install_hint() -> &'static str {
    "install PostgreSQL (Debian: `apt-get install -y postgresql`, then put /usr/lib/postgresql/*/bin on PATH; .ci/run does both)"
}

/// The data directory `initdb` made, once per test binary and kept under cargo's target
/// tmp dir across runs (keyed by PostgreSQL's version): copying it is far faster than
/// running initdb for every server.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = Command::new(program("initdb"))
            .arg("--version")
            .output()
            .unwrap_or_else(|error| panic!("running {}: {error}: {}", program("initdb").display(), install_hint()));
        let version: String = String::from_utf8_lossy(&version.stdout)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' })
            .collect();
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-template-{}", version.trim_matches('-')));
        if kept.join("PG_VERSION").is_file() {
            return kept;
        }
        // initdb runs where the server's user may write; the result is then moved into
        // place at once, so that test binaries running together never see half of it.
        let work = tempfile::Builder::new().prefix("grattr-initdb-").tempdir().unwrap();
        give_to_server_user(work.path());
        let password_file = work.path().join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        give_to_server_user(&password_file);
        let data = work.path().join("data");
        let output = Command::new(program("initdb"))
            .args([
                "-A",
                "trust",
                "--auth-host=scram-sha-256",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .arg("-D")
            .arg(&data)
            .as_server_user()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        let staged = kept.with_extension(format!("{}.tmp", std::process::id()));
        let copied = Command::new("cp").arg("-a").arg(&data).arg(&staged).output().unwrap();
        assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
        if std::fs::rename(&staged, &kept).is_err() {
            // Another test binary got there first: use theirs.
            let _ = std::fs::remove_dir_all(&staged);
        }
        kept
    })
}

/// A test CA and a server certificate for `localhost` it issued, in `dir`, for the
/// server's user; returns the server options that use them.
fn make_certificates(dir: &Path) -> String {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|error| {
            panic!("the TLS tests make their certificates with the openssl tool ({error}): install it (Debian: apt-get install openssl)")
        });
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"],
            &key[..],
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=grattr test CA"],
        ]
        .concat(),
    );
    openssl(&[&["req"], &key[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    for file in ["server.crt", "server.key"] {
        give_to_server_user(&dir.join(file));
    }
    std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(" -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key", dir.display())
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

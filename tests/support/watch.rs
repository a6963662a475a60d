//! A running `grattr watch` for tests: started on an ephemeral port against a
//! repository, its log lines collected (and checked for secrets), its HTTP
//! endpoint read without proxies, killed when dropped.

use super::Repo;
use super::emulator::{KEY, Server};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen: far longer than it takes,
/// so that only a failure (and not a busy machine) makes a wait give up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `grattr watch`, its log lines collected.
pub struct Watch {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
}

impl Watch {
    /// Starts `grattr watch` in `repo` with `args`, a 200 ms debounce and retry base,
    /// a 100 ms settle interval and a 300 ms confirmation of removals (unless `args`
    /// say otherwise), and grattr's debug logs.
    pub fn start(repo: &Repo, args: &[&str]) -> Watch {
        Watch::start_logging(repo, args, "200ms", "warn,grattr=debug")
    }

    /// [`Watch::start`] with another retry base and `GRATTR_LOG` filter.
    pub fn start_logging(repo: &Repo, args: &[&str], retry_base: &str, log: &str) -> Watch {
        Watch::start_command(repo, args, retry_base, log, |_| {})
    }

    /// [`Watch::start_logging`], the command changed by `configure` before it is spawned
    /// (a limit set in the child, a variable).
    pub fn start_command(
        repo: &Repo,
        args: &[&str],
        retry_base: &str,
        log: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Watch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grattr"));
        command
            .current_dir(repo.path())
            .args(["watch", "--listen", "127.0.0.1:0", "--debounce", "200ms", "--retry-base", retry_base])
            .args(args)
            .args(if args.contains(&"--settle") { &[][..] } else { &["--settle", "100ms"][..] })
            .args(if args.contains(&"--confirm-removal") { &[][..] } else { &["--confirm-removal", "300ms"][..] })
            .env("GRATTR_SECRET_KEY", KEY)
            .env("GRATTR_LOG", log)
            .env("NO_PROXY", "*")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A developer's own cloud credentials and settings never reach a run: S3 tests give theirs.
        for (key, _) in std::env::vars_os().filter(|(key, _)| key.to_string_lossy().starts_with("AWS_")) {
            command.env_remove(key);
        }
        configure(&mut command);
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                assert!(!line.contains(KEY) && !line.contains("usersig="), "a secret leaked: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut watch = Watch { child, lines, base: String::new() };
        let address = watch.wait_for_log("serving /healthz");
        let port = address.rsplit(':').next().unwrap().trim().to_string();
        watch.base = format!("http://127.0.0.1:{port}");
        watch
    }

    /// The address of the health and metrics endpoint (`127.0.0.1:PORT`).
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Waits for a log line containing `text`, and returns it.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many log lines contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| l.contains(text)).count()
    }

    /// Polls `check` until it holds or [`PATIENCE`] passes; the log tells why not.
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !check() {
            assert!(Instant::now() < deadline, "{what} did not happen within {PATIENCE:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The status and body of `path` on the health and metrics endpoint.
    pub fn get(&self, server: &Server, path: &str) -> (u16, String) {
        server.block_on(async {
            grattr::api::client::install_tls_provider();
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let answer = client.get(format!("{}{path}", self.base)).send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        })
    }

    /// `/readyz`.
    pub fn readyz(&self, server: &Server) -> (u16, String) {
        self.get(server, "/readyz")
    }

    /// A counter or gauge from /metrics (0 when absent).
    pub fn metric(&self, server: &Server, name: &str) -> f64 {
        let (_, text) = self.get(server, "/metrics");
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the watcher has handled every change made to the files so far,
    /// once what those changes apply is live: saves a file that declares nothing, and
    /// waits for a cycle with nothing to do. Cycles run one at a time and the events
    /// of the file come after the others', so by then every cycle of theirs has ended
    /// and is counted in the metrics (any later cycle of theirs has nothing left to do).
    pub fn settle(&self, server: &Server, repo: &Repo) {
        let noop = "grattr_reconcile_cycles_total{outcome=\"noop\"}";
        let before = self.metric(server, noop);
        std::fs::write(repo.join("groups/settle.yaml"), "groups: []\n").unwrap();
        let deadline = Instant::now() + PATIENCE;
        while self.metric(server, noop) <= before {
            assert!(Instant::now() < deadline, "no cycle with nothing to do after the changes:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits: how it exited and how long it took.
    #[cfg(unix)]
    pub fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        // SAFETY: kill(2) on the child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status, started.elapsed())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds or `within` passes.
pub fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

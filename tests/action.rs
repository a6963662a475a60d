//! The GitHub Action at the repository root: its scripts (`action/*.sh`) driven with bash
//! against stand-ins on 127.0.0.1 (a release server, the GitHub REST API, an emulator of the
//! Chat API, git remotes on disk), and every CI recipe parsed as YAML with the invariants that
//! keep it safe (pinned actions, permissions, no expressions spliced into shell).
//! Unix only: the Action's steps are bash scripts, run here as executables with Unix
//! file modes beside symlinked stand-ins of grattr; GitHub runs the Action on Linux runners.
#![cfg(unix)]

mod support;

use grattr::api::wire::GroupType;
use grattr::model::GroupId;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use support::Repo;
use support::emulator::{KEY, Server, groups_yaml};
use support::postgres::{PASSWORD, Pg};

const TOKEN: &str = "test-token-not-a-secret";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One request a stand-in received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with a handler, one request per
/// connection, recording every request before it answers (so a script that has exited has
/// had all its requests recorded).
struct StandIn {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    fn start(handler: impl Fn(&Request) -> (u16, Vec<u8>) + Send + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        // The thread blocks in accept until the test process ends; nothing waits for it.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else { continue };
                let (status, body) = handler(&request);
                recorded.lock().unwrap().push(request);
                let head = format!(
                    "HTTP/1.1 {status} Stand-in\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
            }
        });
        StandIn { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The method and path of each request, in order, and forgets them.
    fn take(&self) -> Vec<String> {
        self.requests.lock().unwrap().drain(..).map(|r| format!("{} {}", r.method, r.path)).collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (key, value) = line.split_once(':')?;
        headers.push((key.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request { method, path, headers, body: Vec::new() };
    if request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let length: usize = request.header("content-length").map_or(0, |v| v.parse().unwrap());
    request.body.resize(length, 0);
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// A directory whose `grattr` is the binary cargo built, to put first on the PATH.
fn grattr_on_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("grattr");
    if !link.exists() {
        let real = env!("CARGO_BIN_EXE_grattr");
        if validate_speaks_github() {
            std::os::unix::fs::symlink(real, &link).unwrap();
        } else {
            std::fs::write(&link, GITHUB_FORMAT_SHIM.replace("@REAL@", real)).unwrap();
            let mut permissions = std::fs::metadata(&link).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            std::fs::set_permissions(&link, permissions).unwrap();
        }
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// Whether this build of grattr has `validate --format github`, which another change adds.
fn validate_speaks_github() -> bool {
    static SPEAKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPEAKS.get_or_init(|| {
        let probe = Command::new(env!("CARGO_BIN_EXE_grattr"))
            .args(["validate", "--format", "github", "--help"])
            .output()
            .unwrap();
        probe.status.success()
    })
}

/// Until `validate --format github` is in this build, a stand-in for it that turns the text
/// diagnostics into GitHub's workflow commands; every other command is the real binary. Once
/// the format is built in, the tests run the real binary alone (see `validate_speaks_github`).
const GITHUB_FORMAT_SHIM: &str = r#"#!/usr/bin/env bash
real='@REAL@'
if [[ "${1:-}" == validate && " $* " == *" --format github "* ]]; then
  args=()
  skip=0
  for arg in "${@:2}"; do
    if ((skip)); then skip=0; continue; fi
    if [[ "$arg" == --format ]]; then skip=1; continue; fi
    args+=("$arg")
  done
  status=0
  out=$("$real" validate "${args[@]}" 2>&1) || status=$?
  printf '%s\n' "$out" | sed -n 's/^\([^:]*\):\([0-9]*\):\([0-9]*\): error: \(.*\)$/::error file=\1,line=\2,col=\3::\4/p'
  exit "$status"
fi
exec "$real" "$@"
"#;

/// Runs `action/<script>` with bash in `dir`, with only the environment given (and a PATH
/// whose `grattr` is ours), as the runner would: nothing leaks in from the test's own
/// environment or the user's git configuration.
fn script(name: &str, dir: &Path, scratch: &Path, env: &[(&str, &str)]) -> Output {
    let home = scratch.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut command = Command::new("bash");
    command
        .arg(root().join("action").join(name))
        .current_dir(dir)
        .env_clear()
        .env("PATH", grattr_on_path(scratch))
        .env("HOME", &home)
        .env("RUNNER_TEMP", scratch)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

// ---------------------------------------------------------------------------------------------
// install

/// A tar.xz as cargo-dist makes it, holding `path` (`grattr-<target>/grattr` or `grattr`) whose
/// content is `binary`.
fn tar_xz(scratch: &Path, path: &str, binary: &Path) -> Vec<u8> {
    let stage = scratch.join("stage");
    let full = stage.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    // Stripped, as release binaries are: the debug build's symbols would make the test's
    // compression take most of its time.
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&full)
        .arg(binary)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(binary, &full).unwrap();
    }
    let archive = scratch.join("archive.tar.xz");
    let top = path.split('/').next().unwrap();
    let status = Command::new("tar")
        .args(["-cJf", archive.to_str().unwrap(), "-C", stage.to_str().unwrap(), top])
        // The fastest preset: the test is about the bytes, not the ratio.
        .env("XZ_OPT", "-0 -T2")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&stage).unwrap();
    std::fs::read(archive).unwrap()
}

/// A release server for version 9.9.9 serving `archive` and the checksum file `checksum`.
fn release_server(target: &str, archive: Vec<u8>, checksum: String) -> StandIn {
    let archive_path = format!("/v9.9.9/grattr-{target}.tar.xz");
    let checksum_path = format!("{archive_path}.sha256");
    StandIn::start(move |request| {
        if request.path == archive_path {
            (200, archive.clone())
        } else if request.path == checksum_path {
            (200, checksum.clone().into_bytes())
        } else {
            (404, b"Not Found".to_vec())
        }
    })
}

fn install(scratch: &Path, server: &StandIn, dir: &Path) -> Output {
    let github_path = scratch.join("github_path");
    script(
        "install.sh",
        scratch,
        scratch,
        &[
            ("GRATTR_VERSION", "9.9.9"),
            ("GRATTR_TARGET", "x86_64-unknown-linux-musl"),
            ("GRATTR_DIR", dir.to_str().unwrap()),
            ("GRATTR_RELEASE_BASE_URL", &server.url),
            ("GITHUB_PATH", github_path.to_str().unwrap()),
        ],
    )
}

#[test]
fn the_target_follows_the_runner() {
    let scratch = tempfile::tempdir().unwrap();
    let cases = [
        ("Linux", "X64", "x86_64-unknown-linux-musl"),
        ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
        ("macOS", "X64", "x86_64-apple-darwin"),
        ("macOS", "ARM64", "aarch64-apple-darwin"),
        ("Windows", "X64", "x86_64-pc-windows-msvc"),
    ];
    for (os, arch, target) in cases {
        let outputs = scratch.path().join("outputs");
        let env = [
            ("GRATTR_VERSION", "1.2.3"),
            ("RUNNER_OS", os),
            ("RUNNER_ARCH", arch),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ];
        let run = script("target.sh", scratch.path(), scratch.path(), &env);
        assert!(run.status.success(), "{}", text(&run));
        let written = std::fs::read_to_string(&outputs).unwrap();
        std::fs::remove_file(&outputs).unwrap();
        assert!(written.contains(&format!("target={target}\n")), "{os} {arch}: {written}");
        assert!(written.contains(&format!("/grattr/1.2.3/{target}\n")), "{written}");
    }
    let run = script(
        "target.sh",
        scratch.path(),
        scratch.path(),
        &[("GRATTR_VERSION", "1.2.3"), ("RUNNER_OS", "Windows"), ("RUNNER_ARCH", "ARM64")],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let run = script(
        "target.sh",
        scratch.path(),
        scratch.path(),
        &[("GRATTR_VERSION", "1.2.3; rm -rf /"), ("RUNNER_OS", "Linux"), ("RUNNER_ARCH", "X64")],
    );
    assert_eq!(run.status.code(), Some(1), "a version that is not a number is refused\n{}", text(&run));
}

#[test]
fn a_checksum_mismatch_is_refused_and_nothing_is_installed() {
    let scratch = tempfile::tempdir().unwrap();
    let fake = scratch.path().join("fake");
    std::fs::write(&fake, "#!/bin/sh\necho tampered\n").unwrap();
    let archive = tar_xz(scratch.path(), "grattr-x86_64-unknown-linux-musl/grattr", &fake);
    let wrong = format!("{}  grattr-x86_64-unknown-linux-musl.tar.xz\n", sha256_hex(b"something else"));
    let server = release_server("x86_64-unknown-linux-musl", archive, wrong);
    let dir = scratch.path().join("tools");
    let run = install(scratch.path(), &server, &dir);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("::error title=grattr action::checksum mismatch for grattr-x86_64-unknown-linux-musl.tar.xz")
    );
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(!dir.exists(), "nothing was installed");
    assert!(!scratch.path().join("github_path").exists(), "nothing was added to the PATH");
    assert!(!String::from_utf8_lossy(&run.stdout).contains("tampered"), "the binary never ran");
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("grattr-action."))
        .collect();
    assert!(leftovers.is_empty(), "the download was removed: {leftovers:?}");
}

#[test]
fn install_verifies_and_puts_a_working_grattr_on_the_path() {
    let scratch = tempfile::tempdir().unwrap();
    // The binary at the top of the archive (the other layout is in the mismatch test), and the
    // checksum file in binary mode ("<hex> *<name>"), as sha256sum -b writes it.
    let archive = tar_xz(scratch.path(), "grattr", Path::new(env!("CARGO_BIN_EXE_grattr")));
    let checksum = format!("{} *grattr-x86_64-unknown-linux-musl.tar.xz\n", sha256_hex(&archive));
    let server = release_server("x86_64-unknown-linux-musl", archive, checksum);
    let dir = scratch.path().join("tools");
    let run = install(scratch.path(), &server, &dir);
    assert!(run.status.success(), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("SHA-256 verified"), "{stdout}");
    assert!(stdout.contains(&format!("grattr {}", env!("CARGO_PKG_VERSION"))), "prints grattr --version: {stdout}");
    let github_path = std::fs::read_to_string(scratch.path().join("github_path")).unwrap();
    assert_eq!(github_path, format!("{}\n", dir.display()));
    let version = Command::new(dir.join("grattr")).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        server.take(),
        [
            "GET /v9.9.9/grattr-x86_64-unknown-linux-musl.tar.xz",
            "GET /v9.9.9/grattr-x86_64-unknown-linux-musl.tar.xz.sha256"
        ]
    );
    // The binary restored from the cache is used without a download.
    let again = install(scratch.path(), &server, &dir);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("from the cache"));
    assert!(server.take().is_empty(), "no download");
}

// ---------------------------------------------------------------------------------------------
// plan: the GitHub REST API stand-in

struct Comment {
    id: u64,
    body: String,
    bot: bool,
}

#[derive(Default)]
struct Issue {
    comments: Vec<Comment>,
    /// A fork's read-only token: reading works, writing answers 403.
    read_only: bool,
    /// What `GET /repos/owner/repo/commits/{sha}/pulls` answers: the pull requests that
    /// contain the commit, merged or not (GitHub lists open ones too).
    pulls: Vec<Value>,
}

/// The issue-comment endpoints of pull request #7 of owner/repo, as GitHub serves them.
fn github(issue: Arc<Mutex<Issue>>) -> StandIn {
    StandIn::start(move |request| {
        if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return (401, br#"{"message":"Bad credentials"}"#.to_vec());
        }
        let mut issue = issue.lock().unwrap();
        let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
        let forbidden = (403, br#"{"message":"Resource not accessible by integration"}"#.to_vec());
        match (request.method.as_str(), path) {
            ("GET", "/repos/owner/repo/issues/7/comments") => {
                let param = |name: &str| {
                    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<usize>().ok())
                };
                let (per_page, page) = (param("per_page").unwrap_or(30), param("page").unwrap_or(1));
                let list: Vec<Value> = issue
                    .comments
                    .iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|c| {
                        let (login, kind) = if c.bot { ("github-actions[bot]", "Bot") } else { ("someone", "User") };
                        json!({"id": c.id, "body": c.body, "user": {"login": login, "type": kind}})
                    })
                    .collect();
                (200, serde_json::to_vec(&list).unwrap())
            }
            ("GET", path) if path.starts_with("/repos/owner/repo/commits/") && path.ends_with("/pulls") => {
                (200, serde_json::to_vec(&issue.pulls).unwrap())
            }
            ("POST", "/repos/owner/repo/issues/7/comments") if issue.read_only => forbidden,
            ("POST", "/repos/owner/repo/issues/7/comments") => {
                let id = 1000 + issue.comments.len() as u64;
                let body = request.json()["body"].as_str().unwrap().to_string();
                issue.comments.push(Comment { id, body, bot: true });
                (201, serde_json::to_vec(&json!({"id": id})).unwrap())
            }
            ("PATCH", _) if issue.read_only => forbidden,
            ("PATCH", path) if path.starts_with("/repos/owner/repo/issues/comments/") => {
                let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let body = request.json()["body"].as_str().unwrap().to_string();
                match issue.comments.iter_mut().find(|c| c.id == id) {
                    Some(comment) => {
                        comment.body = body;
                        (200, serde_json::to_vec(&json!({"id": id})).unwrap())
                    }
                    None => (404, b"{}".to_vec()),
                }
            }
            _ => (404, br#"{"message":"Not Found"}"#.to_vec()),
        }
    })
}

/// A pull request (#7 of owner/repo) and the files the runner gives a step.
struct PullRequest {
    api: StandIn,
    issue: Arc<Mutex<Issue>>,
    scratch: tempfile::TempDir,
}

struct PlanRun {
    output: Output,
    summary: String,
    outputs: String,
}

const HEAD_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

impl PullRequest {
    fn new() -> PullRequest {
        let issue = Arc::new(Mutex::new(Issue::default()));
        let scratch = tempfile::tempdir().unwrap();
        let event = json!({"pull_request": {"number": 7, "head": {"sha": HEAD_SHA}}});
        std::fs::write(scratch.path().join("event.json"), event.to_string()).unwrap();
        PullRequest { api: github(issue.clone()), issue, scratch }
    }

    /// Plans `repo` as a pull request that leaves the lockfile as the base branch has it:
    /// the files are committed, and that commit is both the checkout and the base.
    fn plan(&self, repo: &Repo) -> PlanRun {
        self.plan_with(repo, &[])
    }

    /// [`PullRequest::plan`] with more variables for the step (a PATH, an environment).
    fn plan_with(&self, repo: &Repo, extra: &[(&str, &str)]) -> PlanRun {
        if !repo.join(".git").exists() {
            git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
        }
        git(repo.path(), &["add", "--all"]);
        git(repo.path(), &["commit", "--quiet", "--allow-empty", "-m", "the base branch"]);
        let base = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
        self.event(&base, HEAD_SHA, &[]);
        self.plan_in(repo.path(), extra)
    }

    /// The event of pull request #7: its base and head commits, and its labels.
    fn event(&self, base: &str, head: &str, labels: &[&str]) {
        let labels: Vec<Value> = labels.iter().map(|name| json!({"name": name})).collect();
        let event =
            json!({"pull_request": {"number": 7, "head": {"sha": head}, "base": {"sha": base}, "labels": labels}});
        std::fs::write(self.scratch.path().join("event.json"), event.to_string()).unwrap();
    }

    /// Runs plan.sh in `dir` (a checkout) with the runner's variables and `extra` ones.
    fn plan_in(&self, dir: &Path, extra: &[(&str, &str)]) -> PlanRun {
        let path = |name: &str| self.scratch.path().join(name).to_str().unwrap().to_string();
        // Each step has files of its own.
        for name in ["summary.md", "outputs"] {
            let _ = std::fs::remove_file(path(name));
        }
        let mut env = vec![
            ("GRATTR_WORKING_DIRECTORY", dir.to_str().unwrap().to_string()),
            ("GRATTR_ENVIRONMENT", String::new()),
            ("GRATTR_GITHUB_TOKEN", TOKEN.to_string()),
            ("GITHUB_API_URL", self.api.url.clone()),
            ("GITHUB_SERVER_URL", "https://github.example".to_string()),
            ("GITHUB_REPOSITORY", "owner/repo".to_string()),
            ("GITHUB_RUN_ID", "42".to_string()),
            ("GITHUB_EVENT_PATH", path("event.json")),
            ("GITHUB_STEP_SUMMARY", path("summary.md")),
            ("GITHUB_OUTPUT", path("outputs")),
        ];
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key, value.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = script("plan.sh", dir, self.scratch.path(), &env);
        let read = |name: &str| std::fs::read_to_string(path(name)).unwrap_or_default();
        PlanRun { summary: read("summary.md"), outputs: read("outputs"), output }
    }

    fn bot_comments(&self) -> Vec<(u64, String)> {
        self.issue.lock().unwrap().comments.iter().filter(|c| c.bot).map(|c| (c.id, c.body.clone())).collect()
    }
}

#[test]
fn the_plan_comment_is_created_once_then_updated_in_place() {
    let pr = PullRequest::new();
    {
        // A full first page of people's comments, one quoting our marker: the plan comment
        // lands on page 2, and a person's comment is never taken for ours.
        let mut issue = pr.issue.lock().unwrap();
        for id in 0..100 {
            let body = if id == 50 { "<!-- grattr-plan -->\nI quote the bot".into() } else { format!("comment {id}") };
            issue.comments.push(Comment { id, body, bot: false });
        }
    }
    let repo = Repo::new().file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")])]));
    let first = pr.plan(&repo);
    assert_eq!(first.output.status.code(), Some(0), "{}", text(&first.output));
    assert_eq!(
        pr.api.take(),
        [
            "GET /repos/owner/repo/issues/7/comments?per_page=100&page=1",
            "GET /repos/owner/repo/issues/7/comments?per_page=100&page=2",
            "POST /repos/owner/repo/issues/7/comments",
        ]
    );
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1);
    let (id, body) = &comments[0];
    assert!(body.starts_with("<!-- grattr-plan -->\n### grattr plan for sdkappid 1400000000"), "{body}");
    assert!(body.contains("<code>lobby</code> will be created"), "{body}");
    assert!(body.contains(&format!("For commit {HEAD_SHA}.")), "{body}");
    assert!(body.contains("(https://github.example/owner/repo/actions/runs/42)"), "{body}");
    assert!(first.summary.contains("<code>lobby</code> will be created"), "{}", first.summary);
    assert!(first.outputs.contains("has-changes=true\n"), "{}", first.outputs);
    let plan_file = first.outputs.lines().find_map(|l| l.strip_prefix("plan-file=")).unwrap();
    assert_eq!(&std::fs::read_to_string(plan_file).unwrap(), body, "the plan file is what was posted");
    // The plan reaches the log with workflow commands off: the text is the pull request's.
    let stdout = String::from_utf8_lossy(&first.output.stdout);
    assert!(stdout.contains("::stop-commands::"), "{stdout}");

    // A new push: the same comment is updated, no second comment appears.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "light")])]));
    let second = pr.plan(&repo);
    assert_eq!(second.output.status.code(), Some(0), "{}", text(&second.output));
    assert_eq!(
        pr.api.take(),
        [
            "GET /repos/owner/repo/issues/7/comments?per_page=100&page=1",
            "GET /repos/owner/repo/issues/7/comments?per_page=100&page=2",
            format!("PATCH /repos/owner/repo/issues/comments/{id}").as_str(),
        ]
    );
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "one comment, updated in place");
    assert!(comments[0].1.contains(r#"theme = "light""#), "{}", comments[0].1);
    assert!(!comments[0].1.contains(r#"theme = "dark""#), "{}", comments[0].1);
    assert_eq!(pr.issue.lock().unwrap().comments[50].body, "<!-- grattr-plan -->\nI quote the bot");

    // No changes: still a comment (saying so), and has-changes=false.
    let unchanged = Repo::new();
    let third = pr.plan(&unchanged);
    assert_eq!(third.output.status.code(), Some(0), "{}", text(&third.output));
    assert!(third.outputs.contains("has-changes=false\n"), "{}", third.outputs);
    assert_eq!(pr.bot_comments().len(), 1);
}

#[test]
fn a_failed_validation_replaces_the_plan_comment_with_the_errors_and_fails() {
    let pr = PullRequest::new();
    let repo = Repo::new().file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")])]));
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let long_key = "k".repeat(40);
    let repo = repo.file("groups/b.yaml", &groups_yaml(&[("support", &[(long_key.as_str(), "x")])]));
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    // The annotations: validate's own --format github lines.
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(stdout.contains("::error file=groups/b.yaml,line=4,"), "{stdout}");
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = &comments[0].1;
    assert!(body.starts_with("<!-- grattr-plan -->\n### grattr: validation failed"), "{body}");
    assert!(body.contains("is 40 bytes, limit 32 bytes [10045]"), "{body}");
    assert!(!body.contains("will be created"), "the stale plan is gone: {body}");
    assert!(run.summary.contains("limit 32 bytes"), "{}", run.summary);
    assert!(run.outputs.contains("has-changes=false\n"), "{}", run.outputs);
    assert!(String::from_utf8_lossy(&run.output.stderr).contains("::error title=grattr action::validation failed"));
}

#[test]
fn a_read_only_token_still_writes_the_summary_and_does_not_fail() {
    let pr = PullRequest::new();
    pr.issue.lock().unwrap().read_only = true;
    let repo = Repo::new().file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")])]));
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("::warning title=grattr action::could not comment on pull request #7 (HTTP 403"),
        "{stderr}"
    );
    assert!(run.summary.contains("<code>lobby</code> will be created"), "{}", run.summary);
    assert!(run.outputs.contains("has-changes=true\n"));
    assert!(pr.bot_comments().is_empty());
    assert!(pr.api.requests().iter().all(|r| !r.body.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes())));
    assert!(!text(&run.output).contains(TOKEN), "the token is never printed");
}

/// The lockfile grattr writes after applying `pairs` to `group` (the digest is unkeyed:
/// anyone can write one).
fn lockfile_recording(group: &str, pairs: &[(&str, &str)]) -> String {
    let mut lockfile = grattr::lockfile::Lockfile::new(1_400_000_000);
    let record = grattr::model::AppliedGroup::new(support::emulator::attrs(pairs));
    lockfile.groups.insert(GroupId::parse(group).unwrap(), record);
    String::from_utf8(lockfile.to_json()).unwrap()
}

/// A repository whose main records `shop` applied with price 100, and pull request #7 that
/// sets the price to `price` and writes `files` (a lockfile, say) in the same commit, checked
/// out as actions/checkout does for `pull_request`: the merge commit GitHub made.
struct Merged {
    repo: Repo,
    base: String,
    head: String,
}

fn pull_request_merged(config: &str, base_files: &[(&str, String)], price: &str, files: &[(&str, String)]) -> Merged {
    let mut repo = Repo::new().file("grattr.yaml", config);
    repo = repo.file("groups/shop.yaml", &groups_yaml(&[("shop", &[("price", "100")])]));
    for (path, text) in base_files {
        repo = repo.file(path, text);
    }
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "-m", "main: shop applied at 100"]);
    let base = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    git(repo.path(), &["checkout", "--quiet", "-b", "cheaper"]);
    let mut repo = repo.file("groups/shop.yaml", &groups_yaml(&[("shop", &[("price", price)])]));
    for (path, text) in files {
        repo = repo.file(path, text);
    }
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "-m", "shop: a new price"]);
    let head = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    git(repo.path(), &["checkout", "--quiet", "--detach", "main"]);
    git(repo.path(), &["merge", "--quiet", "--no-ff", "-m", "Merge pull request #7", "cheaper"]);
    Merged { repo, base, head }
}

#[test]
fn a_lockfile_edited_in_the_pull_request_hides_nothing_is_flagged_and_fails_unless_labelled() {
    // The pull request lowers the price and rewrites the record to say price 1 was applied.
    let forged = lockfile_recording("shop", &[("price", "1")]);
    let merged = pull_request_merged(
        support::CONFIG,
        &[("grattr.lock", lockfile_recording("shop", &[("price", "100")]))],
        "1",
        &[("grattr.lock", forged)],
    );
    let pr = PullRequest::new();
    pr.event(&merged.base, &merged.head, &[]);
    let run = pr.plan_in(merged.repo.path(), &[]);
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{}", text(&run.output));
    let body = &comments[0].1;
    // The plan compares with main's record: the change shows, whatever the lockfile says.
    assert!(!body.contains("No changes"), "the change is hidden from the plan: {body}");
    assert!(body.contains("<code>shop</code> will be updated"), "{body}");
    assert!(body.contains(r#""100""#) && body.contains(r#""1""#), "{body}");
    assert!(run.outputs.contains("has-changes=true\n"), "{}", run.outputs);
    // Flagged in the comment, and the check fails.
    assert!(body.contains("This pull request edits the lockfile"), "{body}");
    assert!(body.contains("<code>grattr.lock</code>"), "{body}");
    assert!(body.contains("grattr-lockfile-edit"), "the comment says how to accept it: {body}");
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("::error title=grattr action::this pull request edits the lockfile grattr.lock"),
        "{stderr}"
    );

    // A maintainer who reviewed the edit labels the pull request: the check passes, and the
    // comment still says what was accepted and still plans against main's record.
    pr.event(&merged.base, &merged.head, &["documentation", "grattr-lockfile-edit"]);
    let run = pr.plan_in(merged.repo.path(), &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "updated in place");
    let body = &comments[0].1;
    assert!(body.contains("This pull request edits the lockfile"), "{body}");
    assert!(body.contains("accepted by the label"), "{body}");
    assert!(body.contains("<code>shop</code> will be updated"), "{body}");
}

#[test]
fn a_shallow_checkout_fetches_the_base_commit_and_an_unedited_lockfile_passes() {
    let merged = pull_request_merged(
        support::CONFIG,
        &[("grattr.lock", lockfile_recording("shop", &[("price", "100")]))],
        "1",
        &[],
    );
    // actions/checkout's default: the merge commit alone, depth 1; its parents are not there.
    let job = tempfile::tempdir().unwrap();
    let merge = git(merged.repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    let origin = format!("file://{}", merged.repo.path().display());
    git(job.path(), &["init", "--quiet"]);
    git(job.path(), &["remote", "add", "origin", &origin]);
    git(
        job.path(),
        &["fetch", "--quiet", "--no-tags", "--depth=1", "origin", &format!("+{merge}:refs/remotes/pull/7/merge")],
    );
    git(job.path(), &["checkout", "--quiet", "--detach", &merge]);
    let present = Command::new("git")
        .args(["cat-file", "-e", &format!("{}^{{commit}}", merged.base)])
        .current_dir(job.path())
        .status()
        .unwrap();
    assert!(!present.success(), "the base commit is not in the shallow checkout");

    let pr = PullRequest::new();
    pr.event(&merged.base, &merged.head, &[]);
    let run = pr.plan_in(job.path(), &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let body = &pr.bot_comments()[0].1;
    assert!(body.contains("<code>shop</code> will be updated"), "{body}");
    assert!(!body.contains("edits the lockfile"), "{body}");
    assert!(!text(&run.output).contains("edits the lockfile"), "{}", text(&run.output));
}

#[test]
fn an_environment_lockfile_absent_from_the_base_and_a_journal_added_by_the_pull_request() {
    // The first pull request of a repository: main has no lockfile yet. The environment keeps
    // its lockfile under state/, and the pull request adds a journal beside it, which a later
    // apply would fold into the record.
    let config = "admin: administrator\nenvironments:\n  staging:\n    sdkappid: 1400000000\n    endpoint: http://127.0.0.1:9\n    lockfile: state/staging.lock\n";
    let merged =
        pull_request_merged(config, &[], "1", &[("state/.staging.lock.journal", "{\"forged\":true}\n".into())]);
    let pr = PullRequest::new();
    pr.event(&merged.base, &merged.head, &[]);
    let run = pr.plan_in(merged.repo.path(), &[("GRATTR_ENVIRONMENT", "staging")]);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    let body = &pr.bot_comments()[0].1;
    assert!(body.starts_with("<!-- grattr-plan env=staging -->\n"), "{body}");
    assert!(body.contains("<code>shop</code> will be created"), "nothing is recorded on main: {body}");
    assert!(body.contains("This pull request edits the lockfile"), "{body}");
    assert!(body.contains("<code>state/.staging.lock.journal</code>"), "{body}");

    // Without the journal, the same pull request passes: no lockfile on either side.
    let merged = pull_request_merged(config, &[], "1", &[]);
    pr.event(&merged.base, &merged.head, &[]);
    let run = pr.plan_in(merged.repo.path(), &[("GRATTR_ENVIRONMENT", "staging")]);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let body = &pr.bot_comments()[0].1;
    assert!(body.contains("<code>shop</code> will be created"), "{body}");
    assert!(!body.contains("edits the lockfile"), "{body}");
}

#[test]
fn a_plan_killed_half_way_replaces_the_comment_with_the_failure() {
    let pr = PullRequest::new();
    let repo = Repo::new().file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")])]));
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    assert!(pr.bot_comments()[0].1.contains("<code>lobby</code> will be created"));

    // A grattr that is killed (as by the OOM killer) as soon as it plans.
    let path = grattr_on_path(pr.scratch.path());
    let killer = pr.scratch.path().join("killer");
    std::fs::create_dir_all(&killer).unwrap();
    let real = pr.scratch.path().join("bin/grattr");
    std::fs::write(
        killer.join("grattr"),
        format!(
            "#!/usr/bin/env bash\nif [[ \"${{1:-}}\" == plan ]]; then kill -9 $$; fi\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(killer.join("grattr")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(killer.join("grattr"), permissions).unwrap();
    let path = format!("{}:{path}", killer.display());

    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "light")])]));
    let run = pr.plan_with(&repo, &[("PATH", &path)]);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = &comments[0].1;
    assert!(!body.contains("will be created"), "the stale plan stays up: {body}");
    assert!(body.starts_with("<!-- grattr-plan -->\n### grattr: plan failed"), "{body}");
    assert!(body.contains("exit 137"), "{body}");
    assert!(run.summary.contains("plan failed"), "{}", run.summary);
    assert!(run.outputs.contains("has-changes=false\n"), "{}", run.outputs);
}

// ---------------------------------------------------------------------------------------------
// apply: git remotes on disk

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}\n{}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

fn grattr_apply(dir: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_grattr"))
        .arg("apply")
        .args(args)
        .arg("--yes")
        .current_dir(dir)
        .env("GRATTR_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

/// A bare remote whose main has `grattr.yaml` (the emulator's), `alpha` applied and recorded,
/// and then a merged change to `alpha` not yet applied; and a clone of it to run the job in.
struct Remote {
    scratch: tempfile::TempDir,
}

impl Remote {
    fn new(server: &Server) -> Remote {
        Remote::seeded(server, &groups_yaml(&[("alpha", &[("v", "1")])]), &groups_yaml(&[("alpha", &[("v", "2")])]))
    }

    /// A remote whose main has `groups/alpha.yaml` as `applied` (applied and recorded), then
    /// a merged change to `merged`, not yet applied.
    fn seeded(server: &Server, applied: &str, merged: &str) -> Remote {
        let scratch = tempfile::tempdir().unwrap();
        let remote = Remote { scratch };
        git(remote.scratch.path(), &["init", "--quiet", "--bare", "--initial-branch=main", "remote.git"]);
        git(remote.scratch.path(), &["clone", "--quiet", "remote.git", "seed"]);
        let seed = remote.path("seed");
        std::fs::write(seed.join("grattr.yaml"), server.config()).unwrap();
        std::fs::write(seed.join(".gitignore"), ".*.lck\n.*.journal\n").unwrap();
        std::fs::create_dir(seed.join("groups")).unwrap();
        std::fs::write(seed.join("groups/alpha.yaml"), applied).unwrap();
        grattr_apply(&seed, &[]);
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "--quiet", "-m", "alpha v1, applied"]);
        std::fs::write(seed.join("groups/alpha.yaml"), merged).unwrap();
        git(&seed, &["commit", "--quiet", "-am", "Merge pull request #1: alpha v2"]);
        git(&seed, &["push", "--quiet", "origin", "main"]);
        remote
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn clone(&self, name: &str) -> PathBuf {
        git(self.scratch.path(), &["clone", "--quiet", "remote.git", name]);
        self.path(name)
    }

    fn hook(&self, text: &str) {
        let hook = self.path("remote.git/hooks/pre-receive");
        std::fs::write(&hook, text).unwrap();
        let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&hook, permissions).unwrap();
    }

    /// The first push to main loses a race: the hook moves main to `pending` (outside git's
    /// quarantine of the incoming objects, where ref updates are refused) and rejects the push.
    fn lose_the_first_race(&self) {
        self.hook(
            "#!/bin/sh\n\
             if [ ! -e raced ]; then\n\
               touch raced\n\
               env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\\n\
                 git update-ref refs/heads/main refs/heads/pending\n\
               echo 'main moved: another push won' >&2\n\
               exit 1\n\
             fi\n",
        );
    }

    fn apply(&self, job: &Path) -> Output {
        self.apply_with(job, &[])
    }

    /// [`Remote::apply`] with more variables for the step.
    fn apply_with(&self, job: &Path, extra: &[(&str, &str)]) -> Output {
        let mut env = vec![
            ("GRATTR_WORKING_DIRECTORY", job.to_str().unwrap()),
            ("GRATTR_SECRET_KEY", KEY),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_RUN_ID", "42"),
            ("GRATTR_PUSH_BACKOFF", "0"),
        ];
        env.extend_from_slice(extra);
        script("apply.sh", job, self.scratch.path(), &env)
    }

    /// The lockfile at the remote's `main`, as JSON.
    fn lockfile(&self) -> Value {
        serde_json::from_str(&git(&self.path("remote.git"), &["show", "main:grattr.lock"])).unwrap()
    }
}

#[test]
fn a_lost_push_race_is_fetched_rebased_with_the_merge_driver_and_retried() {
    let server = Server::start(|_| {});
    let remote = Remote::new(&server);
    // The job checks out main as the merge left it.
    let job = remote.clone("job");
    // Meanwhile another pull request (beta) is merged and its apply records beta: a commit the
    // remote's main moves to while our first push is on its way.
    let other = remote.clone("other");
    std::fs::write(other.join("groups/beta.yaml"), groups_yaml(&[("beta", &[("w", "1")])])).unwrap();
    git(&other, &["add", "."]);
    git(&other, &["commit", "--quiet", "-m", "Merge pull request #2: beta"]);
    grattr_apply(&other, &["--target", "beta"]);
    git(&other, &["commit", "--quiet", "-am", "grattr: record applied state"]);
    git(&other, &["push", "--quiet", "origin", "HEAD:refs/heads/pending"]);
    assert_eq!(server.sets(), 2, "alpha v1 and beta");
    remote.lose_the_first_race();

    let run = remote.apply(&job);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let log = text(&run);
    assert!(log.contains("main moved: rebasing the lockfile onto it (attempt 2 of 5)"), "{log}");
    assert!(log.contains("Pushed the lockfile to main."), "{log}");
    assert!(!log.contains(KEY), "the secret key is never printed");
    assert!(log.contains("::stop-commands::"), "apply's output reaches the log with workflow commands off: {log}");
    // Both records are on main, each as applied.
    let lockfile = remote.lockfile();
    assert_eq!(lockfile["groups"]["alpha"]["attributes"], json!({"v": "2"}), "{lockfile}");
    assert_eq!(lockfile["groups"]["beta"]["attributes"], json!({"w": "1"}), "{lockfile}");
    // Our record sits on top of the other apply's commit, by the bot.
    let remote_git = remote.path("remote.git");
    let history = git(&remote_git, &["log", "--format=%an|%s", "main"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines[0], "github-actions[bot]|grattr: record applied state", "{history}");
    assert_eq!(lines[1], "dev|grattr: record applied state", "{history}");
    assert_eq!(lines[2], "dev|Merge pull request #2: beta", "{history}");
    // alpha v2 once; the converging apply after the rebase had nothing to do.
    assert_eq!(server.sets(), 3);
    assert_eq!(server.live("alpha"), Some(support::emulator::attrs(&[("v", "2")])));
}

#[test]
fn a_refused_push_that_no_race_explains_fails_at_once_and_keeps_the_records() {
    let server = Server::start(|_| {});
    let remote = Remote::new(&server);
    let job = remote.clone("job");
    // Branch protection: main refuses every push; other branches are open.
    remote.hook(
        "#!/bin/sh\n\
         while read -r old new ref; do\n\
           if [ \"$ref\" = refs/heads/main ]; then echo 'protected branch' >&2; exit 1; fi\n\
         done\n",
    );
    let run = remote.apply(&job);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let log = text(&run);
    assert!(log.contains("the push to main was refused, and main did not move: is it protected?"), "{log}");
    assert!(!log.contains("attempt 2"), "no pointless retries: {log}");
    assert!(log.contains("the lockfile with this run's records is on the branch grattr-rescue/42"), "{log}");
    let rescued: Value =
        serde_json::from_str(&git(&remote.path("remote.git"), &["show", "refs/heads/grattr-rescue/42:grattr.lock"]))
            .unwrap();
    assert_eq!(rescued["groups"]["alpha"]["attributes"], json!({"v": "2"}));
}

#[test]
fn a_partial_failure_is_still_committed_and_pushed_then_fails() {
    let server = Server::start(|config| {
        config.auto_create_groups = false;
        config.groups = vec![(GroupId::parse("alpha").unwrap(), GroupType::Public)];
    });
    let remote = Remote::new(&server);
    // A second merged change declares a group that does not exist: its call fails, alpha's not.
    let dev = remote.clone("dev");
    std::fs::write(dev.join("groups/ghost.yaml"), groups_yaml(&[("ghost", &[("x", "1")])])).unwrap();
    git(&dev, &["add", "."]);
    git(&dev, &["commit", "--quiet", "-m", "Merge pull request #3: ghost"]);
    git(&dev, &["push", "--quiet", "origin", "main"]);
    // The job was started for the first merge; it applies the newest main all the same.
    let job = remote.clone("job");
    git(&job, &["checkout", "--quiet", "--detach", "HEAD~1"]);
    let run = remote.apply(&job);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(text(&run).contains("Pushed the lockfile to main."), "{}", text(&run));
    let lockfile = remote.lockfile();
    assert_eq!(lockfile["groups"]["alpha"]["attributes"], json!({"v": "2"}), "the success is recorded: {lockfile}");
    assert!(lockfile["groups"].get("ghost").is_none(), "{lockfile}");
}

// ---------------------------------------------------------------------------------------------
// a shared record (PostgreSQL): apply commits nothing, plan reads the record

/// The password of the plan job's role (see the README: the grants a plan needs).
const PLANNER_PASSWORD: &str = "planner-test-Hq4-secret";

fn grattr_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grattr"));
    command.args(args).current_dir(dir).env_remove("GRATTR_STATE").env_remove("GRATTR_STATE_DIR");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

#[test]
fn with_a_shared_record_apply_commits_nothing_and_a_plan_reads_the_record() {
    let server = Server::start(|_| {});
    // main: alpha v1 applied and recorded in grattr.lock, then alpha v2 merged.
    let remote = Remote::new(&server);
    let pg = Pg::start();
    let url = pg.database("grattr").replace(&format!(":{PASSWORD}"), "");
    let job = remote.clone("job");
    // The team moves its record into PostgreSQL once, from the verified lockfile.
    let writer = [("GRATTR_STATE", url.as_str()), ("PGPASSWORD", PASSWORD)];
    let pushed = grattr_with(&job, &["state", "push"], &writer);
    assert!(pushed.status.success(), "{}", text(&pushed));
    let main = || git(&remote.path("remote.git"), &["rev-parse", "main"]);
    let before = main();

    let shared = [("GRATTR_RECORD", "shared"), writer[0], writer[1]];
    let run = remote.apply_with(&job, &shared);
    let log = text(&run);
    assert_eq!(run.status.code(), Some(0), "{log}");
    assert!(log.contains("Each success is recorded in the shared record: nothing to commit."), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains(KEY), "no secret is printed: {log}");
    assert_eq!(main(), before, "nothing was committed nor pushed");
    assert_eq!(server.sets(), 2, "alpha v1 (before the move), then v2");
    let out = job.join("pulled.lock");
    let pulled = grattr_with(&job, &["state", "pull", "--out", out.to_str().unwrap()], &writer);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(record["groups"]["alpha"]["attributes"], json!({"v": "2"}), "{record}");
    // The next run (or a watch on the same record) applies nothing again.
    let again = remote.apply_with(&job, &shared);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(server.sets(), 2, "nothing applied twice");

    // A pull request's plan reads the record, with a role that may read it: the committed
    // grattr.lock (alpha v1, stale since the record moved) would show alpha as an update.
    pg.sql(
        "grattr",
        &format!(
            "CREATE ROLE planner LOGIN PASSWORD '{PLANNER_PASSWORD}'; \
             GRANT SELECT ON grattr_schema, grattr_record, grattr_journal, grattr_lease TO planner"
        ),
    );
    let planner = url.replacen("postgres://postgres@", "postgres://planner@", 1);
    let pr = PullRequest::new();
    let plan = pr.plan_in(
        &job,
        &[("GRATTR_RECORD", "shared"), ("GRATTR_STATE", planner.as_str()), ("PGPASSWORD", PLANNER_PASSWORD)],
    );
    let log = text(&plan.output);
    assert_eq!(plan.output.status.code(), Some(0), "{log}");
    assert!(plan.outputs.contains("has-changes=false\n"), "{}\n{log}", plan.outputs);
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(!comments[0].1.contains("edits the lockfile"), "no lockfile is compared: {}", comments[0].1);
    assert!(!log.contains(PLANNER_PASSWORD), "{log}");
    // The role cannot write the record: a plan job's password takes no lease.
    let refused = grattr_with(
        &job,
        &["state", "push", "--force"],
        &[("GRATTR_STATE", planner.as_str()), ("PGPASSWORD", PLANNER_PASSWORD)],
    );
    assert!(!refused.status.success(), "{}", text(&refused));

    // GitLab's plan job, switched to the shared record, reads it with the plan's own role.
    let gitlab = yaml("examples/gitlab/.gitlab-ci.yml");
    let script: Vec<&str> =
        gitlab[0]["grattr-plan"]["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let scratch = tempfile::tempdir().unwrap();
    let gitlab_plan = Command::new("sh")
        .arg("-c")
        .arg(script.join("\n"))
        .current_dir(&job)
        .env_clear()
        .env("PATH", grattr_on_path(scratch.path()))
        .env("HOME", scratch.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GRATTR_RECORD", "shared")
        .env("GRATTR_PLAN_STATE", &planner)
        .env("GRATTR_PLAN_PGPASSWORD", PLANNER_PASSWORD)
        .output()
        .unwrap();
    let note = std::fs::read_to_string(job.join("plan.md")).unwrap();
    assert_eq!(gitlab_plan.status.code(), Some(0), "{}\n{note}", text(&gitlab_plan));
    assert!(note.contains("0 to create, 0 to update, 0 to delete"), "{note}");
    assert!(!note.contains("edits the lockfile") && !note.contains(PLANNER_PASSWORD), "{note}");

    // Without the store's address (a pull request from a fork gets no secrets), the plan
    // fails and says why, rather than planning against no record at all.
    let pr = PullRequest::new();
    let plan = pr.plan_in(&job, &[("GRATTR_RECORD", "shared")]);
    let log = text(&plan.output);
    assert_eq!(plan.output.status.code(), Some(1), "{log}");
    assert!(log.contains("names no shared store"), "{log}");
    let comments = pr.bot_comments();
    assert!(comments.len() == 1 && comments[0].1.contains("plan failed"), "{comments:?}");
}

/// The lines of `log` outside every stretch that `::stop-commands::TOKEN` opens and
/// `::TOKEN::` closes: the lines the runner reads as workflow commands.
fn outside_stop_commands(log: &str) -> Vec<&str> {
    let mut outside = Vec::new();
    let mut end: Option<String> = None;
    for line in log.lines() {
        match &end {
            Some(token) if line == token => end = None,
            Some(_) => {}
            None => match line.strip_prefix("::stop-commands::") {
                Some(token) => end = Some(format!("::{token}::")),
                None => outside.push(line),
            },
        }
    }
    outside
}

#[test]
fn hostile_ids_and_template_names_reach_the_log_only_with_workflow_commands_off() {
    let server = Server::start(|_| {});
    let remote = Remote::new(&server);
    // main declares a group whose id is a workflow command, and a template (unused, so every
    // plan warns about it) whose name is another one.
    let group = "::error::forged by a group id";
    let template = "::set-output name=forged::by a template name";
    let dev = remote.clone("dev");
    std::fs::write(dev.join("groups/hostile.yaml"), groups_yaml(&[(group, &[("v", "1")])])).unwrap();
    std::fs::write(dev.join("groups/_templates.yaml"), format!("templates:\n  {}:\n    k: v\n", json!(template)))
        .unwrap();
    git(&dev, &["add", "."]);
    git(&dev, &["commit", "--quiet", "-m", "Merge pull request #4: hostile"]);
    git(&dev, &["push", "--quiet", "origin", "main"]);
    let job = remote.clone("job");
    // Another apply records the same group with other attributes and wins the race to main:
    // the merge driver leaves the group out and says so, naming it.
    let other = remote.clone("other");
    std::fs::write(other.join("groups/hostile.yaml"), groups_yaml(&[(group, &[("v", "3")])])).unwrap();
    git(&other, &["commit", "--quiet", "-am", "Merge pull request #5: hostile v3"]);
    grattr_apply(&other, &["--target", group]);
    git(&other, &["commit", "--quiet", "-am", "grattr: record applied state"]);
    git(&other, &["push", "--quiet", "origin", "HEAD:refs/heads/pending"]);
    remote.lose_the_first_race();

    let run = remote.apply(&job);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stdout.contains("main moved: rebasing the lockfile onto it"), "{}", text(&run));
    // The driver's line and the post-rebase plan's warning were printed (inside a stretch).
    assert!(stdout.contains(&format!("{group}: recorded with other attributes on each side")), "{}", text(&run));
    assert!(
        stdout.matches(template).count() >= 2,
        "warned by the first apply and by the plan after the rebase: {}",
        text(&run)
    );
    for hostile in [group, template, "::error::", "::set-output"] {
        let raw: Vec<&str> = outside_stop_commands(&stdout).into_iter().filter(|l| l.contains(hostile)).collect();
        assert!(raw.is_empty(), "{hostile:?} reaches the command parser on stdout: {raw:#?}");
        let raw: Vec<&str> = stderr.lines().filter(|l| l.contains(hostile)).collect();
        assert!(raw.is_empty(), "{hostile:?} reaches the command parser on stderr: {raw:#?}");
    }
    assert_eq!(remote.lockfile()["groups"][group]["attributes"], json!({"v": "3"}));
}

// ---------------------------------------------------------------------------------------------
// the recipes

/// Every `uses:` and `run:` in a parsed YAML tree, with where it stood.
fn walk<'a>(value: &'a Value, at: &str, found: &mut Vec<(String, &'a str, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{at}.{key}");
                if key == "uses" || key == "run" {
                    found.push((here.clone(), key.as_str(), inner));
                }
                walk(inner, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                walk(inner, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn pinned(uses: &str) -> bool {
    let Some((action, sha)) = uses.split_once('@') else { return false };
    let parts: Vec<&str> = action.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| !p.is_empty())
        && sha.len() == 40
        && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_steps(path: &str, doc: &Value) {
    let mut found = Vec::new();
    walk(doc, "", &mut found);
    for (at, key, value) in found {
        let value = value.as_str().unwrap_or_else(|| panic!("{path}{at} is not text"));
        match key {
            // grattr's own action goes by the release's tag, the one form that works as copied
            // (a commit cannot name its own SHA); every other action by commit.
            "uses" if value.starts_with("OWNER/grattr@") => {
                assert_eq!(value, concat!("OWNER/grattr@v", env!("CARGO_PKG_VERSION")), "{path}{at}");
            }
            "uses" => assert!(pinned(value), "{path}{at}: {value} is not pinned to a commit SHA"),
            _ => assert!(!value.contains("${{"), "{path}{at}: an expression spliced into a run: script"),
        }
    }
}

#[test]
fn every_recipe_is_valid_yaml_pinned_and_least_privileged() {
    let workflows: Vec<String> = std::fs::read_dir(root().join("examples/github-actions"))
        .unwrap()
        .map(|e| format!("examples/github-actions/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".yml") || p.ends_with(".yaml"))
        .collect();
    assert!(workflows.len() >= 2, "{workflows:?}");
    for path in &workflows {
        for doc in yaml(path) {
            check_steps(path, &doc);
            // The alternative recipes for a shared record (PostgreSQL): the action's step says
            // so, and reads the store's URL and password from secrets, never from the file.
            let action_steps: Vec<&Value> = doc["jobs"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|job| job["steps"].as_array().unwrap())
                .filter(|step| step["uses"].as_str().is_some_and(|u| u.starts_with("OWNER/grattr@")))
                .collect();
            let shared = action_steps.iter().any(|step| step["with"]["record"] == "shared");
            assert_eq!(shared, path.ends_with("-shared.yml"), "{path}: record: shared in the -shared recipes only");
            for step in action_steps.iter().filter(|_| shared) {
                for variable in ["GRATTR_STATE", "PGPASSWORD"] {
                    let value = step["env"][variable].as_str().unwrap_or_else(|| panic!("{path}: no {variable}"));
                    assert!(value.starts_with("${{ secrets.") && value.ends_with(" }}"), "{path}: {variable}: {value}");
                }
            }
            assert!(doc.get("on").is_some(), "{path}: no trigger");
            assert!(doc["on"].get("pull_request_target").is_none(), "{path}: pull_request_target");
            assert_eq!(doc["permissions"], json!({}), "{path}: the workflow grants nothing by default");
            for (name, job) in doc["jobs"].as_object().unwrap() {
                assert!(job["permissions"].is_object(), "{path}: job {name} has no permissions:");
            }
            if let Some(pull_request) = doc["on"].get("pull_request") {
                // A pull request's plan never gets the apply's password, which writes the record.
                for step in action_steps.iter().filter(|_| shared) {
                    assert_eq!(step["env"]["PGPASSWORD"], "${{ secrets.GRATTR_PLAN_PGPASSWORD }}", "{path}");
                }
                // A required check that never reports blocks a pull request forever.
                assert!(pull_request.get("paths").is_none(), "{path}: a paths filter on the required check");
                let plan = &doc["jobs"]["plan"];
                assert_eq!(plan["permissions"], json!({"contents": "read", "pull-requests": "write"}), "{path}");
                assert!(plan["concurrency"]["cancel-in-progress"] == json!(true), "{path}");
                // The plan compares with the base branch's lockfile: the merge commit's parents
                // are checked out, and a label that accepts a lockfile edit runs it again.
                let checkout = plan["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/checkout@")));
                assert_eq!(checkout.unwrap()["with"]["fetch-depth"], json!(2), "{path}");
                let types = &pull_request["types"];
                for kind in ["opened", "synchronize", "reopened", "labeled", "unlabeled"] {
                    assert!(types.as_array().is_some_and(|t| t.contains(&json!(kind))), "{path}: types lacks {kind}");
                }
            }
            if doc["on"].get("push").is_some() {
                let apply = &doc["jobs"]["apply"];
                // Push the lockfile (a shared record: nothing to push); read the merged pull
                // request's labels and report back on it.
                let contents = if shared { "read" } else { "write" };
                assert_eq!(apply["permissions"], json!({"contents": contents, "pull-requests": "write"}), "{path}");
                assert_eq!(apply["environment"], json!("production"), "{path}: the secret is an environment's");
                assert_eq!(apply["concurrency"]["cancel-in-progress"], json!(false), "{path}");
            }
        }
    }

    let action = yaml("action.yml");
    assert_eq!(action.len(), 1);
    check_steps("action.yml", &action[0]);
    let inputs = action[0]["inputs"].as_object().unwrap();
    for input in
        ["mode", "version", "working-directory", "github-token", "environment", "force-label", "record", "lock-timeout"]
    {
        assert!(inputs.contains_key(input), "action.yml lacks the input {input}");
    }
    assert_eq!(inputs["record"]["default"], "lockfile", "the lockfile committed stays the default");
    assert!(!inputs.keys().any(|k| k.contains("secret") || k.contains("key")), "the secret key is never an input");
    let version = inputs["version"]["default"].as_str().unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "the action installs the release it is part of");

    let gitlab = yaml("examples/gitlab/.gitlab-ci.yml");
    assert_eq!(gitlab.len(), 1);
    let plan_script = gitlab[0]["grattr-plan"]["script"].to_string();
    assert!(plan_script.contains("grattr plan --lockfile"), "GitLab plans against the target branch's lockfile");
    assert!(plan_script.contains("grattr-lockfile-edit"), "GitLab flags a lockfile edit");
    for (name, job) in gitlab[0].as_object().unwrap() {
        for key in ["before_script", "script", "after_script"] {
            let Some(lines) = job.get(key) else { continue };
            for line in lines.as_array().unwrap_or_else(|| panic!("{name}.{key} is not a list")) {
                assert!(line.is_string(), "{name}.{key}: {line} is not a shell line (YAML read it as a mapping)");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// what decides that grattr's inputs changed (issue 23, part 3)

/// Whether `pattern`, a glob of GitHub's `paths:` or GitLab's `changes:`, matches `path`: the
/// subset both share, `**` for any run of characters (`**/` for no or any directories), `*` and
/// `?` within one path segment.
fn glob(pattern: &[u8], path: &[u8]) -> bool {
    match (pattern.first(), path.first()) {
        (None, _) => path.is_empty(),
        (Some(b'*'), _) if pattern.get(1) == Some(&b'*') => match pattern[2..].strip_prefix(b"/") {
            Some(rest) => {
                glob(rest, path) || path.iter().enumerate().any(|(i, &c)| c == b'/' && glob(rest, &path[i + 1..]))
            }
            None => (0..=path.len()).any(|i| glob(&pattern[2..], &path[i..])),
        },
        (Some(b'*'), _) => {
            (0..=path.len()).take_while(|&i| i == 0 || path[i - 1] != b'/').any(|i| glob(&pattern[1..], &path[i..]))
        }
        (Some(b'?'), Some(&c)) => c != b'/' && glob(&pattern[1..], &path[1..]),
        (Some(p), Some(c)) => p == c && glob(&pattern[1..], &path[1..]),
        (Some(_), None) => false,
    }
}

#[test]
fn the_glob_of_the_filter_checks_matches_as_github_and_gitlab_do() {
    let cases = [
        ("groups/**", "groups/a/b.yaml", true),
        ("groups/**", "overlays/production/a.yaml", false),
        ("groups/**/*", "groups/a.yaml", true),
        ("**/*.yaml", "grattr.yaml", true),
        ("*.yaml", "overlays/a.yaml", false),
        ("grattr.yaml", "grattr.yaml", true),
        ("grattr.?ock", "grattr.lock", true),
    ];
    for (pattern, path, hit) in cases {
        assert_eq!(glob(pattern.as_bytes(), path.as_bytes()), hit, "{pattern} ~ {path}");
    }
}

/// Whether a GitHub workflow's trigger (`on.push`, `on.pull_request`) starts it for a change of
/// the files `changed`: `paths:` in order, a `!` pattern taking back what earlier ones matched,
/// or `paths-ignore:`.
fn github_trigger_runs(trigger: &Value, changed: &[&str]) -> bool {
    let patterns = |key: &str| -> Option<Vec<&str>> {
        trigger.get(key).map(|list| list.as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect())
    };
    if let Some(paths) = patterns("paths") {
        changed.iter().any(|file| {
            paths.iter().fold(false, |hit, pattern| match pattern.strip_prefix('!') {
                Some(negated) => hit && !glob(negated.as_bytes(), file.as_bytes()),
                None => hit || glob(pattern.as_bytes(), file.as_bytes()),
            })
        })
    } else if let Some(ignored) = patterns("paths-ignore") {
        changed.iter().any(|file| !ignored.iter().any(|pattern| glob(pattern.as_bytes(), file.as_bytes())))
    } else {
        true
    }
}

/// Whether a GitLab job's `changes:` (in any rule, or under `only:`) lets a change of `changed`
/// start it: every such filter must select it.
fn gitlab_changes_allow(job: &Value, changed: &[&str]) -> bool {
    let mut filters: Vec<&Value> =
        job["rules"].as_array().into_iter().flatten().filter_map(|r| r.get("changes")).collect();
    filters.extend(job.get("only").and_then(|only| only.get("changes")));
    filters.into_iter().all(|changes| {
        let patterns = changes.get("paths").unwrap_or(changes).as_array().unwrap();
        changed
            .iter()
            .any(|file| patterns.iter().any(|pattern| glob(pattern.as_str().unwrap().as_bytes(), file.as_bytes())))
    })
}

/// Whether `pattern` (a pre-commit `files:` or `exclude:`, a Python regular expression; the
/// hooks here keep to what POSIX extended expressions read alike) is found in `text`.
fn regex_found(pattern: &str, text: &str) -> bool {
    let mut grep =
        Command::new("grep").args(["-Eq", "--", pattern]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    grep.stdin.take().unwrap().write_all(format!("{text}\n").as_bytes()).unwrap();
    match grep.wait().unwrap().code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("grep -E {pattern:?} failed ({other:?}): not an extended expression?"),
    }
}

/// Whether pre-commit runs `hook` for a commit that stages `staged`.
fn hook_runs(hook: &Value, staged: &[&str]) -> bool {
    if hook["always_run"] == json!(true) {
        return true;
    }
    // pre-commit also filters by file type; a type other than "file" could leave an input out.
    for key in ["types", "types_or"] {
        if let Some(types) = hook.get(key) {
            assert_eq!(types, &json!(["file"]), "the hook filters {key}: {types}");
        }
    }
    let files = hook["files"].as_str().unwrap_or("");
    let exclude = hook["exclude"].as_str();
    staged.iter().any(|file| regex_found(files, file) && !exclude.is_some_and(|e| regex_found(e, file)))
}

/// Runs the pre-commit hook `id` of `.pre-commit-hooks.yaml` as pre-commit would in `dir` for a
/// commit that stages `staged`: `None` when the hook is not run at all.
fn pre_commit(id: &str, dir: &Path, staged: &[&str]) -> Option<Output> {
    let hooks = yaml(".pre-commit-hooks.yaml");
    let hook = hooks[0].as_array().unwrap().iter().find(|h| h["id"] == json!(id)).unwrap();
    if !hook_runs(hook, staged) {
        return None;
    }
    let mut entry = hook["entry"].as_str().unwrap().split_whitespace();
    assert_eq!(entry.next(), Some("grattr"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_grattr"));
    command.args(entry).current_dir(dir).env_remove("GRATTR_ENV").env_remove("GRATTR_CONFIG");
    for arg in hook["args"].as_array().into_iter().flatten() {
        command.arg(arg.as_str().unwrap());
    }
    if hook["pass_filenames"] != json!(false) {
        command.args(staged);
    }
    Some(command.output().unwrap())
}

#[test]
fn an_overlay_only_change_is_validated_planned_and_applied_by_the_recipes() {
    let server = Server::start(|_| {});
    let scratch = tempfile::tempdir().unwrap();
    let remote = Remote { scratch };
    git(remote.scratch.path(), &["init", "--quiet", "--bare", "--initial-branch=main", "remote.git"]);
    // production sets alpha's v with an overlay; the group file says v 1 for every environment.
    let seed = remote.clone("seed");
    let config = format!("{}environments:\n  production:\n    overlays: [overlays/production]\n", server.config());
    let overlay = |id: &str, v: &str| format!("groups:\n  - id: {id}\n    attributes: {{v: \"{v}\"}}\n");
    std::fs::write(seed.join("grattr.yaml"), config).unwrap();
    std::fs::write(seed.join(".gitignore"), ".*.lck\n.*.journal\n").unwrap();
    std::fs::create_dir_all(seed.join("groups")).unwrap();
    std::fs::create_dir_all(seed.join("overlays/production")).unwrap();
    std::fs::write(seed.join("groups/alpha.yaml"), groups_yaml(&[("alpha", &[("v", "1")])])).unwrap();
    std::fs::write(seed.join("overlays/production/alpha.yaml"), overlay("alpha", "2")).unwrap();
    grattr_apply(&seed, &["--env", "production"]);
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "--quiet", "-m", "alpha v2 in production, applied"]);
    git(&seed, &["push", "--quiet", "origin", "main"]);
    assert_eq!(server.live("alpha"), Some(support::emulator::attrs(&[("v", "2")])));

    // A pull request changes only the overlay, first with a typo in the group's id.
    let dev = remote.clone("dev");
    git(&dev, &["checkout", "--quiet", "-b", "overlay"]);
    std::fs::write(dev.join("overlays/production/alpha.yaml"), overlay("alpah", "3")).unwrap();
    git(&dev, &["commit", "--quiet", "-am", "production: alpha v3"]);
    let changed = git(&dev, &["diff", "--name-only", "main", "HEAD"]);
    let changed: Vec<&str> = changed.lines().collect();
    assert_eq!(changed, ["overlays/production/alpha.yaml"]);

    // Every filter that decides whether a recipe runs selects the change.
    for entry in std::fs::read_dir(root().join("examples/github-actions")).unwrap() {
        let path = format!("examples/github-actions/{}", entry.unwrap().file_name().to_string_lossy());
        for doc in yaml(&path) {
            for (event, trigger) in doc["on"].as_object().unwrap() {
                assert!(github_trigger_runs(trigger, &changed), "{path}: on.{event} skips a change of an overlay");
            }
        }
    }
    let gitlab = &yaml("examples/gitlab/.gitlab-ci.yml")[0];
    for (name, job) in gitlab.as_object().unwrap() {
        if job.get("script").is_some() {
            assert!(gitlab_changes_allow(job, &changed), "GitLab's {name} skips a change of an overlay");
        }
    }

    // The pre-commit hook runs, and refuses the commit, naming the overlay.
    let hook = pre_commit("grattr-validate", &dev, &changed).expect("the hook skips a change of an overlay");
    assert_eq!(hook.status.code(), Some(1), "{}", text(&hook));
    let log = text(&hook);
    assert!(log.contains("overlays/production/alpha.yaml:2") && log.contains("alpah"), "{log}");
    // Corrected, it passes.
    std::fs::write(dev.join("overlays/production/alpha.yaml"), overlay("alpha", "3")).unwrap();
    assert_eq!(pre_commit("grattr-validate", &dev, &changed).unwrap().status.code(), Some(0));
    git(&dev, &["commit", "--quiet", "-am", "production: alpha v3, the id spelled right"]);

    // The plan of the pull request shows the overlay's change.
    let base = git(&dev, &["rev-parse", "main"]).trim().to_string();
    let head = git(&dev, &["rev-parse", "HEAD"]).trim().to_string();
    git(&dev, &["checkout", "--quiet", "--detach", "main"]);
    git(&dev, &["merge", "--quiet", "--no-ff", "-m", "Merge pull request #7: alpha v3", "overlay"]);
    let pr = PullRequest::new();
    pr.event(&base, &head, &[]);
    let plan = pr.plan_in(&dev, &[("GRATTR_ENVIRONMENT", "production")]);
    assert_eq!(plan.output.status.code(), Some(0), "{}", text(&plan.output));
    assert!(plan.outputs.contains("has-changes=true\n"), "{}", plan.outputs);
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{}", text(&plan.output));
    assert!(comments[0].1.contains("<code>alpha</code> will be updated"), "{}", comments[0].1);

    // Merged, it is applied, and its record pushed.
    git(&dev, &["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    let apply = |name: &str| {
        let job = remote.clone(name);
        let env = [
            ("GRATTR_WORKING_DIRECTORY", job.to_str().unwrap()),
            ("GRATTR_ENVIRONMENT", "production"),
            ("GRATTR_SECRET_KEY", KEY),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_RUN_ID", "42"),
            ("GRATTR_PUSH_BACKOFF", "0"),
        ];
        script("apply.sh", &job, remote.scratch.path(), &env)
    };
    let run = apply("job");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("Pushed the lockfile to main."), "{}", text(&run));
    assert_eq!(server.live("alpha"), Some(support::emulator::attrs(&[("v", "3")])));
    assert_eq!(remote.lockfile()["groups"]["alpha"]["attributes"], json!({"v": "3"}));

    // With no filter, the lockfile's own commit starts the apply again (when pushed with a
    // token that starts workflows): it finds nothing to do, calls nothing and pushes nothing.
    let calls = |server: &Server| server.emulator().stats().calls.values().sum::<u64>();
    let (before, main) = (calls(&server), git(&remote.path("remote.git"), &["rev-parse", "main"]));
    let run = apply("again");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(calls(&server), before, "{}", text(&run));
    assert_eq!(git(&remote.path("remote.git"), &["rev-parse", "main"]), main, "{}", text(&run));
}

// ---------------------------------------------------------------------------------------------
// the GitLab recipe's keys (issue 23, part 4)

#[test]
fn the_gitlab_recipe_keeps_its_keys_from_merge_requests() {
    let path = "examples/gitlab/.gitlab-ci.yml";
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let doc = &yaml(path)[0];
    let (comment, push, secret) = ("GRATTR_MR_COMMENT_TOKEN", "GRATTR_PUSH_TOKEN", "GRATTR_SECRET_KEY");
    // The header says which variable is which.
    let header: Vec<&str> = text.lines().take_while(|line| line.starts_with('#')).collect();
    let header = header.join("\n");
    for variable in [comment, push, secret] {
        assert!(header.contains(variable), "{path}: the header does not name {variable}");
    }
    assert!(header.contains("protected"), "{path}: the header does not say which variables are protected");
    // The token that both commented and pushed is gone (the header may tell to delete it).
    assert!(!doc.to_string().contains("GRATTR_GITLAB_TOKEN"), "{path}: GRATTR_GITLAB_TOKEN is still used");
    let top = doc["variables"].as_object().unwrap();
    assert!(top.keys().all(|k| !k.contains("TOKEN") && !k.contains("KEY")), "{path}: a secret in variables: {top:?}");

    let reserved = ["stages", "variables", "default", "workflow", "include"];
    let jobs: Vec<(&String, &Value)> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()) && !k.starts_with('.'))
        .collect();
    assert!(jobs.len() >= 2, "{jobs:?}");
    let mut merge_request_jobs = 0;
    for (name, job) in jobs {
        // The YAML parser expands anchors, so a job's text is all it runs.
        let body = job.to_string();
        let conditions: Vec<&str> =
            job["rules"].as_array().into_iter().flatten().map(|rule| rule["if"].as_str().unwrap_or("")).collect();
        // A job without rules (or with a rule without `if`) runs in every pipeline.
        let on_merge_requests =
            conditions.is_empty() || conditions.iter().any(|c| c.is_empty() || c.contains("merge_request_event"));
        let default_branch_only = !conditions.is_empty()
            && conditions.iter().all(|c| c.contains("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH") && !c.contains("||"));
        if on_merge_requests {
            merge_request_jobs += 1;
            for key in [push, secret] {
                assert!(!body.contains(key), "{path}: {name} runs for merge requests and reads {key}");
            }
            // Environment-scoped variables reach every job that names the environment.
            assert!(job.get("environment").is_none(), "{path}: {name} runs for merge requests in an environment");
        }
        if body.contains(push) || body.contains(secret) {
            assert!(
                default_branch_only,
                "{path}: {name} reads a protected variable, but not only on the default branch"
            );
            assert_eq!(job["environment"]["name"], json!("production"), "{path}: {name}");
        }
    }
    assert_eq!(merge_request_jobs, 1, "{path}: one job plans merge requests");
    assert!(doc["grattr-plan"]["script"].to_string().contains(comment), "{path}: the plan job comments with {comment}");
    assert!(doc["grattr-apply"]["script"].to_string().contains(push), "{path}: the apply job pushes with {push}");
}

/// `count` groups `g-00`… with `v` set to `value`, as one group file.
fn numbered_groups(count: usize, value: &str) -> String {
    let ids: Vec<String> = (0..count).map(|i| format!("g-{i:02}")).collect();
    let pairs = [("v", value)];
    groups_yaml(&ids.iter().map(|id| (id.as_str(), &pairs[..])).collect::<Vec<_>>())
}

/// A lockfile recording `count` groups `g-00`… applied with `v` set to `value`.
fn numbered_lockfile(count: usize, value: &str) -> String {
    let mut lockfile = grattr::lockfile::Lockfile::new(1_400_000_000);
    for i in 0..count {
        let record = grattr::model::AppliedGroup::new(support::emulator::attrs(&[("v", value)]));
        lockfile.groups.insert(GroupId::parse(&format!("g-{i:02}")).unwrap(), record);
    }
    String::from_utf8(lockfile.to_json()).unwrap()
}

#[test]
fn a_plan_the_guard_refuses_says_so_first_and_fails_unless_a_reviewer_labels_it() {
    // Main records 12 groups; the pull request changes 5 of them (42%, over 30%).
    let mut changed = numbered_groups(12, "1");
    for i in 0..5 {
        changed = changed.replacen(
            &format!("\"g-{i:02}\"\n    attributes:\n      v: \"1\""),
            &format!("\"g-{i:02}\"\n    attributes:\n      v: \"2\""),
            1,
        );
    }
    assert_eq!(changed.matches("v: \"2\"").count(), 5, "{changed}");
    let repo = Repo::new().file("grattr.lock", &numbered_lockfile(12, "1")).file("groups/a.yaml", &changed);
    let pr = PullRequest::new();
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "{}", text(&run.output));
    let body = &comments[0].1;
    // The refusal is the comment's first news, before the plan and its groups.
    assert!(body.starts_with("<!-- grattr-plan -->\n### The safety guard refuses this plan\n"), "{body}");
    assert!(body.contains("**The check fails.**") && body.contains("<code>grattr:force</code>"), "{body}");
    let verdict = "> **Safety guard: refused — 5 of the 12 recorded groups (41%) would be updated or deleted, \
                   over the threshold of 30%; apply will refuse this plan without `--force`.**";
    assert!(body.contains(verdict), "{body}");
    assert!(body.find("The safety guard refuses").unwrap() < body.find("### grattr plan for").unwrap());
    assert!(body.contains("Cost: 5 API calls"), "{body}");
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("::error title=grattr action::the safety guard refuses this plan"), "{stderr}");
    assert!(run.outputs.contains("safety-verdict=refused\n"), "{}", run.outputs);
    assert!(run.outputs.contains("has-changes=true\n"), "{}", run.outputs);

    // A label that only looks like it (and one that tries to be a workflow command) accepts nothing.
    let base = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    pr.event(&base, HEAD_SHA, &["grattr:force ", "GRATTR:FORCE", "x\n::error::forged"]);
    let run = pr.plan_in(repo.path(), &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    assert!(!text(&run.output).contains("::error::forged"), "a label is never printed");

    // A reviewer who checked every group labels the pull request: the check passes, and the
    // comment still leads with the refusal, saying who accepted it and what the merge will do.
    pr.event(&base, HEAD_SHA, &["documentation", "grattr:force"]);
    let run = pr.plan_in(repo.path(), &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let comments = pr.bot_comments();
    assert_eq!(comments.len(), 1, "updated in place");
    let body = &comments[0].1;
    assert!(body.starts_with("<!-- grattr-plan -->\n### The safety guard refuses this plan\n"), "{body}");
    assert!(body.contains("accepted it with the label <code>grattr:force</code>"), "{body}");
    assert!(body.contains("runs with `--force`"), "{body}");
    assert!(!body.contains("**The check fails.**"), "{body}");

    // An empty force-label input allows no override.
    let run = pr.plan_in(repo.path(), &[("GRATTR_FORCE_LABEL", "")]);
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));

    // Under the threshold: approved, said beside the summary, no note on top.
    let repo = repo.file("groups/a.yaml", &numbered_groups(12, "1").replacen("v: \"1\"", "v: \"2\"", 1));
    let run = pr.plan(&repo);
    assert_eq!(run.output.status.code(), Some(0), "{}", text(&run.output));
    let body = &pr.bot_comments()[0].1;
    assert!(body.starts_with("<!-- grattr-plan -->\n### grattr plan for"), "{body}");
    assert!(body.contains("Safety guard: approved — 1 of the 12 recorded groups (8%)"), "{body}");
    assert!(run.outputs.contains("safety-verdict=approved\n"), "{}", run.outputs);
}

/// The stand-in's answer about the pull request that merged `sha`: #7, merged as `sha`,
/// with `labels`, beside an open pull request that contains the commit and carries the force
/// label (it was never merged: it counts for nothing).
fn merged_as(sha: &str, labels: &[&str]) -> Vec<Value> {
    let labels: Vec<Value> = labels.iter().map(|name| json!({"name": name})).collect();
    vec![
        json!({"number": 9, "merged_at": null, "merge_commit_sha": sha, "labels": [{"name": "grattr:force"}]}),
        json!({"number": 7, "merged_at": "2026-01-01T00:00:00Z", "merge_commit_sha": sha, "labels": labels}),
    ]
}

#[test]
fn apply_forces_only_what_a_reviewer_labelled_and_reports_back_on_the_merged_pull_request() {
    let server = Server::start(|_| {});
    // Main applied 10 groups; the merged pull request changes all of them.
    let remote = Remote::seeded(&server, &numbered_groups(10, "1"), &numbered_groups(10, "2"));
    let sha = git(&remote.path("remote.git"), &["rev-parse", "main"]).trim().to_string();
    let issue = Arc::new(Mutex::new(Issue::default()));
    issue.lock().unwrap().pulls = merged_as(&sha, &["documentation"]);
    let api = github(issue.clone());
    let summary = remote.path("summary.md");
    let env = [
        ("GITHUB_SHA", sha.as_str()),
        ("GITHUB_API_URL", api.url.as_str()),
        ("GITHUB_REPOSITORY", "owner/repo"),
        ("GITHUB_SERVER_URL", "https://github.example"),
        ("GRATTR_GITHUB_TOKEN", TOKEN),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let sets = server.sets();

    // Without the label: refused after merge as the plan said, nothing applied, and the pull
    // request is told.
    let job = remote.clone("job");
    let run = remote.apply_with(&job, &env);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_eq!(server.sets(), sets, "nothing applied");
    assert!(!text(&run).contains("applying with --force"), "{}", text(&run));
    let bot: Vec<String> = issue.lock().unwrap().comments.iter().filter(|c| c.bot).map(|c| c.body.clone()).collect();
    assert_eq!(bot.len(), 1, "{}", text(&run));
    assert!(bot[0].starts_with("<!-- grattr-apply -->\n### grattr apply: failed (exit 1)\n"), "{}", bot[0]);
    assert!(bot[0].contains("refusing to apply: the plan updates or deletes 10 of the 10 groups"), "{}", bot[0]);
    assert!(bot[0].contains("[The run](https://github.example/owner/repo/actions/runs/42)"), "{}", bot[0]);
    let requests = api.take();
    assert!(requests.contains(&format!("GET /repos/owner/repo/commits/{sha}/pulls?per_page=100")), "{requests:?}");

    // The reviewer's label on the merged pull request: --force, everything applied and
    // pushed, and the same comment now says so.
    issue.lock().unwrap().pulls = merged_as(&sha, &["grattr:force"]);
    let job = remote.clone("job2");
    let run = remote.apply_with(&job, &env);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("carries the label grattr:force: applying with --force"), "{}", text(&run));
    assert_eq!(server.sets(), sets + 10);
    assert_eq!(remote.lockfile()["groups"]["g-09"]["attributes"], json!({"v": "2"}));
    let bot: Vec<String> = issue.lock().unwrap().comments.iter().filter(|c| c.bot).map(|c| c.body.clone()).collect();
    assert_eq!(bot.len(), 1, "one comment, updated in place");
    let body = &bot[0];
    assert!(body.starts_with("<!-- grattr-apply -->\n### grattr apply: applied\n"), "{body}");
    assert!(body.contains(&format!("Applied main at {sha}. The lockfile was pushed to main.")), "{body}");
    assert!(body.contains("$ grattr apply --force"), "{body}");
    assert!(body.contains("Apply complete: 10 applied, 0 failed"), "{body}");
    assert!(std::fs::read_to_string(&summary).unwrap().contains("Apply complete: 10 applied"));
    assert!(!text(&run).contains(TOKEN) && !body.contains(KEY), "no secret anywhere");
}

#[test]
fn the_gitlab_plan_job_fails_on_a_refused_plan_unless_a_reviewer_labels_it() {
    let gitlab = yaml("examples/gitlab/.gitlab-ci.yml");
    let script: Vec<&str> =
        gitlab[0]["grattr-plan"]["script"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let script = script.join("\n");
    let mut changed = numbered_groups(12, "1");
    for i in 0..4 {
        let from = format!("\"g-{i:02}\"\n    attributes:\n      v: \"1\"");
        changed = changed.replacen(&from, &from.replace("v: \"1\"", "v: \"2\""), 1);
    }
    let repo = Repo::new().file("grattr.lock", &numbered_lockfile(12, "1")).file("groups/a.yaml", &changed);
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "-m", "the target branch"]);
    let base = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    let scratch = tempfile::tempdir().unwrap();
    // A merge request pipeline without the token (a fork's): the note is plan.md alone.
    let run = |labels: &str| {
        let output = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(repo.path())
            .env_clear()
            .env("PATH", grattr_on_path(scratch.path()))
            .env("HOME", scratch.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("CI_MERGE_REQUEST_TARGET_BRANCH_SHA", &base)
            .env("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base)
            .env("CI_MERGE_REQUEST_LABELS", labels)
            .output()
            .unwrap();
        (output.status.code(), repo.read("plan.md"), text(&output))
    };
    let (code, note, log) = run("documentation");
    assert_eq!(code, Some(1), "{log}\n{note}");
    assert!(note.starts_with("<!-- grattr-plan -->\n### The safety guard refuses this plan\n"), "{note}");
    assert!(note.contains("**The pipeline fails.**") && note.contains("<code>grattr:force</code>"), "{note}");
    assert!(note.contains("> **Safety guard: refused — 4 of the 12 recorded groups (33%)"), "{note}");
    assert!(log.contains("the safety guard refuses this plan"), "{log}");
    let (code, note, log) = run("documentation,grattr:force");
    assert_eq!(code, Some(0), "{log}\n{note}");
    assert!(note.contains("accepted it with the label <code>grattr:force</code>"), "{note}");
}

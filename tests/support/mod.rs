//! A small fluent builder for CLI scenarios: a temporary repository, files in
//! it, a run of the real `grattr` binary, and assertions on what it printed.
#![allow(dead_code, unreachable_pub)]

pub mod emulator;
#[cfg(unix)]
pub mod postgres;
#[cfg(unix)]
pub mod s3;
pub mod watch;

use assert_cmd::Command;
use std::panic::Location;
use std::path::{Path, PathBuf};

/// The configuration most scenarios use.
pub const CONFIG: &str = "sdkappid: 1400000000\nadmin: administrator\nendpoint: http://127.0.0.1:9\n";

/// What grattr prints on stderr when `groups/a.yaml` declares no groups.
pub const NO_GROUPS: &str = "groups/a.yaml:1:1: warning: file declares no groups\n  \
                             help: declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file\n";

/// A temporary repository to run grattr in.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// An empty repository with [`CONFIG`] and an empty `groups/`.
    pub fn new() -> Repo {
        let repo = Repo { dir: tempfile::tempdir().unwrap() };
        repo.file("grattr.yaml", CONFIG).dir("groups")
    }

    /// Writes a file (creating its directories).
    pub fn file(self, path: &str, text: &str) -> Repo {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
        self
    }

    /// Creates a directory.
    pub fn dir(self, path: &str) -> Repo {
        std::fs::create_dir_all(self.dir.path().join(path)).unwrap();
        self
    }

    /// Removes a file.
    pub fn remove(self, path: &str) -> Repo {
        std::fs::remove_file(self.dir.path().join(path)).unwrap();
        self
    }

    /// The repository's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the repository.
    pub fn join(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    /// Reads a file of the repository.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.join(path)).unwrap()
    }

    /// Runs grattr with `args` in the repository; see [`Run`] for what it checks.
    #[must_use = "a run checks its output only through its assertions, e.g. `.code(1).stderr(\"…\")`"]
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    /// Runs grattr with `args` and extra environment variables.
    #[must_use = "a run checks its output only through its assertions, e.g. `.code(1).stderr(\"…\")`"]
    #[track_caller]
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::cargo_bin("grattr").unwrap();
        command.current_dir(self.path()).args(args).env_remove("GRATTR_ENV").env_remove("GRATTR_CONFIG");
        // A developer's own cloud credentials and settings never reach a run: S3 tests give theirs.
        for (key, _) in std::env::vars_os().filter(|(key, _)| key.to_string_lossy().starts_with("AWS_")) {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
            checked: Checked::default(),
            started_at: Location::caller(),
        }
    }
}

impl AsRef<Path> for Repo {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// Runs git in `dir` (a [`Repo`] or a path) with a fixed identity and no signing,
/// asserts it succeeded, and returns its stdout.
pub fn git(dir: impl AsRef<Path>, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .current_dir(dir.as_ref())
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// What a run of grattr printed and how it exited, checked exactly by default.
///
/// Assertions say what a stream must be: [`Run::stdout`] and [`Run::stderr`] exactly,
/// [`Run::stdout_contains`] and [`Run::stderr_contains`] in part, where a test means
/// to check only part of it; [`Run::json`], [`Run::into_stdout`] and
/// [`Run::into_stderr`] hand a stream over for the test to check; [`Run::ignore_stdout`]
/// and [`Run::ignore_stderr`] say that it is not the test's subject. Whatever no
/// assertion covered is checked when the run is dropped: the exit code must be 0, and
/// stdout and stderr empty.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    checked: Checked,
    started_at: &'static Location<'static>,
}

/// What the assertions of a [`Run`] covered.
#[derive(Debug, Default)]
struct Checked {
    code: bool,
    stdout: bool,
    stderr: bool,
}

impl Run {
    /// Asserts the exit code.
    #[track_caller]
    pub fn code(mut self, expected: i32) -> Run {
        assert_eq!(self.code, expected, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self.checked.code = true;
        self
    }

    /// Asserts stdout is exactly `expected`.
    #[track_caller]
    pub fn stdout(mut self, expected: &str) -> Run {
        self.assert_exact("stdout", &self.stdout, expected);
        self.checked.stdout = true;
        self
    }

    /// Asserts stderr is exactly `expected`.
    #[track_caller]
    pub fn stderr(mut self, expected: &str) -> Run {
        self.assert_exact("stderr", &self.stderr, expected);
        self.checked.stderr = true;
        self
    }

    /// Asserts stdout contains `text`, and checks nothing else of it.
    #[track_caller]
    pub fn stdout_contains(mut self, text: &str) -> Run {
        self.assert_contains("stdout", &self.stdout, text);
        self.checked.stdout = true;
        self
    }

    /// Asserts stderr contains `text`, and checks nothing else of it.
    #[track_caller]
    pub fn stderr_contains(mut self, text: &str) -> Run {
        self.assert_contains("stderr", &self.stderr, text);
        self.checked.stderr = true;
        self
    }

    /// Checks nothing of stdout: what it says is not this test's subject.
    pub fn ignore_stdout(mut self) -> Run {
        self.checked.stdout = true;
        self
    }

    /// Checks nothing of stderr: what it says is not this test's subject.
    pub fn ignore_stderr(mut self) -> Run {
        self.checked.stderr = true;
        self
    }

    /// Parses stdout as JSON, for the test to check; stderr is still checked on drop.
    #[track_caller]
    pub fn json(mut self) -> serde_json::Value {
        self.checked.stdout = true;
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Stdout, for the test to check; stderr is still checked on drop.
    pub fn into_stdout(mut self) -> String {
        self.checked.stdout = true;
        std::mem::take(&mut self.stdout)
    }

    /// Stderr, for the test to check; stdout is still checked on drop.
    pub fn into_stderr(mut self) -> String {
        self.checked.stderr = true;
        std::mem::take(&mut self.stderr)
    }

    /// Stdout and stderr, for the test to check.
    pub fn into_streams(mut self) -> (String, String) {
        self.checked.stdout = true;
        self.checked.stderr = true;
        (std::mem::take(&mut self.stdout), std::mem::take(&mut self.stderr))
    }

    #[track_caller]
    fn assert_exact(&self, name: &str, stream: &str, expected: &str) {
        if stream != expected {
            let diff =
                similar::TextDiff::from_lines(expected, stream).unified_diff().header("expected", "actual").to_string();
            panic!("{name} differs:\n{diff}\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        }
    }

    #[track_caller]
    fn assert_contains(&self, name: &str, stream: &str, text: &str) {
        assert!(
            stream.contains(text),
            "{name} lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let unchecked = |checked: bool, what: &str, ok: bool| (!checked && !ok).then(|| what.to_string());
        let problems: Vec<String> = [
            unchecked(self.checked.code, format!("exit code {} (not 0)", self.code).as_str(), self.code == 0),
            unchecked(self.checked.stdout, "stdout not empty", self.stdout.is_empty()),
            unchecked(self.checked.stderr, "stderr not empty", self.stderr.is_empty()),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(
            problems.is_empty(),
            "the run started at {} is unchecked: {} (assert it, or opt out explicitly)\n--- stdout\n{}\n--- stderr\n{}",
            self.started_at,
            problems.join(", "),
            self.stdout,
            self.stderr
        );
    }
}

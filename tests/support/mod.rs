//! A small fluent builder for CLI scenarios: a temporary repository, files in
//! it, a run of the real `grattr` binary, and assertions on what it printed.
#![allow(dead_code, unreachable_pub)]

pub mod emulator;
pub mod watch;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The configuration most scenarios use.
pub const CONFIG: &str = "sdkappid: 1400000000\nadmin: administrator\nendpoint: http://127.0.0.1:9\n";

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

    /// Runs grattr with `args` in the repository.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    /// Runs grattr with `args` and extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::cargo_bin("grattr").unwrap();
        command.current_dir(self.path()).args(args).env_remove("GRATTR_ENV").env_remove("GRATTR_CONFIG");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
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

/// What a run of grattr printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(self.code, expected, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(self, text: &str) -> Run {
        self.assert_has("stdout", &self.stdout, text);
        self
    }

    /// Asserts stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Run {
        self.assert_has("stderr", &self.stderr, text);
        self
    }

    #[track_caller]
    fn assert_has(&self, name: &str, stream: &str, text: &str) {
        assert!(
            stream.contains(text),
            "{name} lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// Asserts stdout is empty.
    #[track_caller]
    pub fn no_stdout(self) -> Run {
        assert!(self.stdout.is_empty(), "stdout should be empty:\n{}", self.stdout);
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

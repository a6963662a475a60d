//! A `grattr emulator` process for benchmarks, as users run it.
#![allow(dead_code, unreachable_pub)] // Each benchmark uses its own part of this module.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The secret key the benchmarks' emulators verify UserSigs with.
pub const KEY: &str = "bench-secret-key";

/// A running emulator process; killed when dropped.
pub struct EmulatorProcess {
    child: Child,
    /// Its base URL.
    pub base: String,
}

impl EmulatorProcess {
    /// Starts `grattr emulator` on a free port, creating groups on first write, with `args`.
    pub fn start(args: &[&str]) -> EmulatorProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grattr"))
            .args(["emulator", "--listen", "127.0.0.1:0", "--auto-create-groups"])
            .args(args)
            .env("GRATTR_SECRET_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read its address");
        let base = line.split_whitespace().nth(4).expect("the address").to_string();
        EmulatorProcess { child, base }
    }

    /// Its call statistics.
    pub fn stats(&self) -> serde_json::Value {
        // grattr builds reqwest without a default TLS provider: choose the one it uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            reqwest::get(format!("{}/emulator/stats", self.base)).await.unwrap().json().await.unwrap()
        })
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmarked `grattr` in `root` with `args` and `env`, with the emulators'
/// key (and no configuration or environment of the caller's), as users run it; panics
/// when it fails. Returns its wall time and standard output.
pub fn grattr(root: &Path, args: &[&str], env: &[(&str, &str)]) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_grattr"))
        .current_dir(root)
        .args(args)
        .env("GRATTR_SECRET_KEY", KEY)
        .env_remove("GRATTR_CONFIG")
        .env_remove("GRATTR_ENV")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run grattr");
    let elapsed = started.elapsed();
    assert!(output.status.success(), "grattr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    (elapsed, String::from_utf8_lossy(&output.stdout).into_owned())
}

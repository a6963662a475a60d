//! A `grattr emulator` process for benchmarks, as users run it.
#![allow(dead_code, unreachable_pub)] // Each benchmark uses its own part of this module.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

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

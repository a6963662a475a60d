//! Names the build in `grattr --version`: the package version, and for release
//! builds the commit and its date (`0.1.0 (3f2a9c1b7e4d 2026-11-27)`), so that a
//! shipped binary says exactly what it was built from. Debug builds skip git, so
//! that a commit does not rebuild the crate during development.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=GRATTR_BUILD_COMMIT");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    // A build from a source archive has no git: the packager may name the commit.
    let commit = std::env::var("GRATTR_BUILD_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        if !release {
            return None;
        }
        // Rebuild when HEAD moves: HEAD itself, and the branch file it points to.
        // (A path that does not exist would rerun this script on every build.)
        let reference = git(&["symbolic-ref", "-q", "HEAD"]);
        for name in ["HEAD", "packed-refs"].into_iter().chain(reference.as_deref()) {
            if let Some(path) = git(&["rev-parse", "--git-path", name]).filter(|p| Path::new(p).exists()) {
                println!("cargo::rerun-if-changed={path}");
            }
        }
        let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
        let date = git(&["log", "-1", "--format=%cs", "HEAD"]).unwrap_or_default();
        Some(format!("{hash} {date}").trim().to_string())
    });
    let described = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None if release => format!("{version} (commit unknown)"),
        None => format!("{version} (dev build)"),
    };
    println!("cargo::rustc-env=GRATTR_VERSION={described}");
}

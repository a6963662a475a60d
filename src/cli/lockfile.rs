//! `grattr lockfile merge`: git's merge driver for `grattr.lock`, so that two
//! branches that each applied groups merge without a conflict.

use super::exit;
use crate::escape;
use crate::lockfile::merge::{self, Resolution};
use crate::lockfile::{Lockfile, LockfileError};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Commands on lockfiles.
#[derive(Debug, clap::Subcommand)]
pub(super) enum Command {
    /// Merge two lockfiles with their common ancestor, as git's merge driver
    /// (`grattr lockfile merge %O %A %B %P`): writes the result over OURS.
    Merge(MergeArgs),
}

/// Options of `grattr lockfile merge`.
#[derive(Debug, clap::Args)]
pub(super) struct MergeArgs {
    /// The common ancestor (git's %O; empty when there is none).
    base: PathBuf,
    /// Our side (git's %A), replaced by the merged lockfile.
    ours: PathBuf,
    /// Their side (git's %B).
    theirs: PathBuf,
    /// The lockfile's path in the repository (git's %P), for messages.
    name: Option<PathBuf>,
}

/// Runs a `grattr lockfile` command.
pub(super) fn run(command: &Command) -> anyhow::Result<u8> {
    match command {
        Command::Merge(args) => run_merge(args),
    }
}

/// Reads one side; an empty or missing file (git's %O without a common ancestor)
/// is a lockfile that records nothing. Every side is checked as any lockfile is.
fn read(path: &Path) -> Result<Lockfile, LockfileError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Lockfile::default()),
        Ok(bytes) => Lockfile::parse(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lockfile::default()),
        Err(source) => Err(LockfileError::Io { path: path.to_path_buf(), source }),
    }
}

fn run_merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let name = args.name.as_deref().unwrap_or(Path::new("grattr.lock"));
    // Git leaves OURS as the conflicted result when the driver fails: it is only
    // replaced once the merge succeeded.
    let (base, ours, theirs) = (read(&args.base)?, read(&args.ours)?, read(&args.theirs)?);
    let merged = merge::merge(&base, &ours, &theirs).with_context(|| format!("cannot merge {}", escape::path(name)))?;
    merged.lockfile.write(&args.ours)?;
    let mut err = anstream::stderr().lock();
    for resolution in &merged.resolutions {
        let _ = match resolution {
            Resolution::Unrecorded(id) => {
                let same_attributes =
                    ours.groups.get(id).map(|g| &g.attributes) == theirs.groups.get(id).map(|g| &g.attributes);
                let other =
                    if same_attributes { "the same attributes but another ownership" } else { "other attributes" };
                writeln!(
                    err,
                    "{}: {}: recorded with {other} on each side; left out of the merged lockfile, so that the next apply sets it to its desired state",
                    escape::path(name),
                    escape::text(id.as_str())
                )
            }
            Resolution::Kept(id) => writeln!(
                err,
                "{}: {}: pruned on one side, applied on the other; kept as applied, so that it stays managed",
                escape::path(name),
                escape::text(id.as_str())
            ),
        };
    }
    Ok(exit::OK)
}

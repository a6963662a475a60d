//! `grattr lockfile merge`: git's merge driver for `grattr.lock`, so that two
//! branches that each applied groups merge without a conflict.

use super::output::Stdout;
use super::{ConfigArgs, exit};
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
    /// Print the path of the lockfile grattr.yaml configures (for --env), as grattr
    /// reads it from the current directory: for scripts, such as CI reading the base
    /// branch's lockfile.
    Path(PathArgs),
}

/// Options of `grattr lockfile path`.
#[derive(Debug, clap::Args)]
pub(super) struct PathArgs {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
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
        Command::Path(args) => run_path(args),
    }
}

/// One line a script reads: a path that is not text, or holds a control character
/// (a newline would make it two lines), is refused rather than altered.
fn run_path(args: &PathArgs) -> anyhow::Result<u8> {
    let environment = args.config.load()?.environment(args.config.env.as_deref(), None)?;
    let path = &environment.lockfile;
    let Some(text) = path.to_str().filter(|text| !text.chars().any(char::is_control)) else {
        anyhow::bail!("the lockfile path {} is not printable as one line of text", escape::path(path));
    };
    let mut out = Stdout::raw();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(exit::OK)
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

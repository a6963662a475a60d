//! `grattr state`: where the record lives. `show` prints it and its lease, `unlock
//! --force` clears the lease of a holder that is gone, `push` seeds the record from a
//! lockfile and `pull` writes it back as one, so that a team can move its record
//! between files and a shared store in either direction.

use super::output::Stdout;
use super::{ConfigArgs, StateArgs, exit};
use crate::desired::Environment;
use crate::escape;
use crate::lockfile::{Lockfile, journal_path};
use crate::state::{LeaseInfo, LeaseName, Shown, Store};
use anyhow::bail;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Commands on the record.
#[derive(Debug, clap::Subcommand)]
pub(super) enum Command {
    /// Print where the record lives, its version and size, and who holds its lease.
    Show(ShowArgs),
    /// Clear the writer's lease on the record after its holder died (a shared store's
    /// lease also expires by itself): says who held it.
    Unlock(UnlockArgs),
    /// Replace the record with a lockfile, verified as any lockfile is (grattr.lock by
    /// default): to move a repository's record into a shared store.
    Push(PushArgs),
    /// Write the record, verified, as a lockfile (grattr.lock by default): to move a
    /// shared store's record back into the repository, or to look at it.
    Pull(PullArgs),
}

/// Which record: the configuration and where the record lives.
#[derive(Debug, clap::Args)]
pub(super) struct Common {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    #[command(flatten)]
    pub(super) state: StateArgs,
}

/// How `state show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

/// Options of `grattr state show`.
#[derive(Debug, clap::Args)]
pub(super) struct ShowArgs {
    #[command(flatten)]
    common: Common,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Options of `grattr state unlock`.
#[derive(Debug, clap::Args)]
pub(super) struct UnlockArgs {
    #[command(flatten)]
    common: Common,
    /// Clear the lease even though its holder may still run (required: a holder that
    /// is alive loses its lease and records nothing more).
    #[arg(long)]
    force: bool,
}

/// Options of `grattr state push`.
#[derive(Debug, clap::Args)]
pub(super) struct PushArgs {
    #[command(flatten)]
    common: Common,
    /// The lockfile to push (default: the lockfile grattr.yaml configures).
    file: Option<PathBuf>,
    /// Replace a record that already holds groups.
    #[arg(long)]
    force: bool,
    /// How long to wait for another writer holding the record's lease.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
}

/// Options of `grattr state pull`.
#[derive(Debug, clap::Args)]
pub(super) struct PullArgs {
    #[command(flatten)]
    common: Common,
    /// Where to write the lockfile (default: the lockfile grattr.yaml configures).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl Command {
    /// The options every `state` command takes.
    pub(super) fn common(&mut self) -> &mut Common {
        match self {
            Command::Show(args) => &mut args.common,
            Command::Unlock(args) => &mut args.common,
            Command::Push(args) => &mut args.common,
            Command::Pull(args) => &mut args.common,
        }
    }
}

/// Runs a `grattr state` command.
pub(super) fn run(command: &Command) -> anyhow::Result<u8> {
    let runtime = super::runtime()?;
    match command {
        Command::Show(args) => {
            let (_, store) = open(&args.common)?;
            let shown = runtime.block_on(store.show())?;
            show(&shown, args.format)
        }
        Command::Unlock(args) => {
            let (_, store) = open(&args.common)?;
            unlock(&store, args.force)
        }
        Command::Push(args) => push(args),
        Command::Pull(args) => pull(args),
    }
}

/// The environment the options select, and its record's store.
fn open(common: &Common) -> anyhow::Result<(Environment, Store)> {
    let config = common.config.load()?;
    let environment = common.state.apply(config.environment(common.config.env.as_deref(), None)?);
    let store = super::runtime()?.block_on(crate::workspace::store(&environment))?;
    Ok((environment, store))
}

fn show(shown: &Shown, format: Format) -> anyhow::Result<u8> {
    let mut out = Stdout::raw();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, shown)?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(out, "Record:  {}", shown.store)?;
            if let Some(version) = shown.version {
                writeln!(out, "Version: {version}")?;
            }
            let journal = match shown.journal {
                0 => String::new(),
                n => format!(" ({n} journal record(s) not folded yet)"),
            };
            writeln!(out, "Groups:  {}{journal}", shown.groups)?;
            let lease = match &shown.locked_by {
                Some(holder) => format!("held by {holder}"),
                None => lease_line(shown.lease.as_ref(), shown.held),
            };
            writeln!(out, "Lease:   {lease}")?;
            if shown.leader.is_some() {
                writeln!(out, "Leader:  {}", lease_line(shown.leader.as_ref(), shown.leading))?;
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// The lease as `state show` says it.
fn lease_line(lease: Option<&LeaseInfo>, held: bool) -> String {
    let when = |time: SystemTime| humantime::format_rfc3339_seconds(time).to_string();
    match lease {
        None => "free".into(),
        Some(lease) if held => {
            format!("held by {}, token {}, expires {} unless renewed", lease.holder, lease.token, when(lease.expires))
        }
        Some(lease) => {
            format!("free (last held by {}, token {}, expired {})", lease.holder, lease.token, when(lease.expires))
        }
    }
}

fn unlock(store: &Store, force: bool) -> anyhow::Result<u8> {
    let runtime = super::runtime()?;
    let shown = match runtime.block_on(store.show()) {
        Ok(shown) => shown,
        // A shared record whose lease another tool damaged cannot be shown; forced, the
        // leases are cleared all the same (a damaged one is replaced by a released one).
        Err(e) if force && !store.is_local() => {
            let _ = writeln!(anstream::stderr(), "warning: {e}");
            for name in [LeaseName::Writer, LeaseName::Leader] {
                if let Some(cleared) = runtime.block_on(store.unlock(name))? {
                    writeln!(anstream::stdout(), "Cleared the {} lease held by {}.", name.as_str(), cleared.holder)?;
                }
            }
            writeln!(anstream::stdout(), "The leases on {} are free.", store.label())?;
            return Ok(exit::OK);
        }
        Err(e) => return Err(e.into()),
    };
    if store.is_local() {
        match &shown.locked_by {
            Some(holder) => bail!(
                "{} is locked by {holder}, which is alive: the operating system holds the lock of local files for as \
                 long as its holder runs and releases it when it exits, so there is nothing to unlock; stop that process",
                shown.store,
            ),
            None => {
                writeln!(anstream::stdout(), "{} is not locked; nothing to unlock.", shown.store)?;
                return Ok(exit::OK);
            }
        }
    }
    let held: Vec<(LeaseName, &LeaseInfo)> = [
        (LeaseName::Writer, shown.lease.as_ref().filter(|_| shown.held)),
        (LeaseName::Leader, shown.leader.as_ref().filter(|_| shown.leading)),
    ]
    .into_iter()
    .filter_map(|(name, lease)| lease.map(|lease| (name, lease)))
    .collect();
    if held.is_empty() {
        writeln!(anstream::stdout(), "The leases on {} are free; nothing to unlock.", shown.store)?;
        return Ok(exit::OK);
    }
    if !force {
        let who: Vec<String> = held
            .iter()
            .map(|(name, lease)| {
                format!(
                    "the {} lease by {} (token {}, expires by itself at {})",
                    name.as_str(),
                    lease.holder,
                    lease.token,
                    humantime::format_rfc3339_seconds(lease.expires)
                )
            })
            .collect();
        bail!(
            "{} holds {}; if that process is gone, clear it with `grattr state unlock --force`. A holder still \
             running loses its lease and records nothing more",
            shown.store,
            who.join(" and ")
        );
    }
    for (name, _) in held {
        let said = match runtime.block_on(store.unlock(name))? {
            Some(cleared) => format!(
                "Cleared the {} lease on {} held by {} (token {}).",
                name.as_str(),
                shown.store,
                cleared.holder,
                cleared.token
            ),
            None => format!("The {} lease on {} was released meanwhile.", name.as_str(), shown.store),
        };
        writeln!(anstream::stdout(), "{said}")?;
    }
    Ok(exit::OK)
}

fn push(args: &PushArgs) -> anyhow::Result<u8> {
    let (environment, store) = open(&args.common)?;
    let file = args.file.clone().unwrap_or_else(|| environment.lockfile.clone());
    if store.is_local() && same_path(&file, &environment.lockfile) {
        bail!("{} is the record already: nothing to push", escape::path(&file));
    }
    let lockfile = Lockfile::read(&file, environment.sdkappid)?;
    lockfile.check_app(&file, environment.sdkappid)?;
    if lockfile.sdkappid.is_none() && !file.exists() {
        bail!("{} does not exist: nothing to push", escape::path(&file));
    }
    let runtime = super::runtime()?;
    let pushed = runtime.block_on(async {
        let mut lease = store.lease("state push", args.lock_timeout, environment.lease_ttl).await?;
        let pushed = lease.replace(lockfile, args.force).await;
        lease.release().await;
        pushed
    })?;
    writeln!(anstream::stdout(), "Pushed {pushed} group(s) from {} to {}.", escape::path(&file), store.label())?;
    Ok(exit::OK)
}

fn pull(args: &PullArgs) -> anyhow::Result<u8> {
    let (environment, store) = open(&args.common)?;
    let out = args.out.clone().unwrap_or_else(|| environment.lockfile.clone());
    if store.is_local() && same_path(&out, &environment.lockfile) {
        bail!("{} is the record already: nothing to pull", escape::path(&out));
    }
    if journal_path(&out).exists() {
        bail!(
            "{} lies beside {}: the journal of a run cut short, which every reader would replay on top of what \
             is pulled; fold it first (`grattr plan --lockfile {}` shows it) or remove it",
            escape::path(&journal_path(&out)),
            escape::path(&out),
            escape::path(&out)
        );
    }
    let mut record = super::runtime()?.block_on(store.read())?;
    record.sdkappid.get_or_insert(environment.sdkappid);
    record.write(&out)?;
    writeln!(
        anstream::stdout(),
        "Wrote {} group(s) from {} to {}.",
        record.groups.len(),
        store.label(),
        escape::path(&out)
    )?;
    Ok(exit::OK)
}

/// Whether two paths name one file (either may not exist yet).
fn same_path(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    same_file::is_same_file(a, b).unwrap_or(false) || absolute(a) == absolute(b)
}

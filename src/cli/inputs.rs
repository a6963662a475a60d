//! The command line's side of a [`Workspace`]: the environment the options
//! select, loading with diagnostics printed, `--target` parsed, and live reads
//! with progress.

use super::progress::Progress;
use super::{ApiArgs, WorkspaceArgs, report};
use crate::desired::Environment;
use crate::live::{self, LiveRead};
use crate::model::GroupId;
use crate::workspace::{LoadError, Workspace, WriteLock};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The environment the command line selects.
pub(super) fn environment(args: &WorkspaceArgs) -> anyhow::Result<Environment> {
    Ok(args.environment_of(&args.config.load()?)?)
}

/// Loads the workspace of `environment` to read, printing every diagnostic; any
/// error among them ends the command with nothing planned.
pub(super) fn load(environment: Environment) -> anyhow::Result<Workspace> {
    let (diagnostics, workspace) = super::runtime()?.block_on(Workspace::load(environment));
    loaded(&diagnostics, workspace, "planned")
}

/// Opens the workspace of `environment` to write, for `command` (`apply`,
/// `import`), printing every diagnostic; `done` says what nothing was done ("applied").
pub(super) fn open(
    environment: Environment,
    command: &str,
    lock_timeout: Duration,
    done: &str,
) -> anyhow::Result<(Workspace, WriteLock)> {
    open_hiding(environment, command, lock_timeout, done, |_| false)
}

/// [`open`], without telling the warnings `moot` says the command makes moot.
pub(super) fn open_hiding(
    environment: Environment,
    command: &str,
    lock_timeout: Duration,
    done: &str,
    moot: impl Fn(&crate::desired::Diagnostic) -> bool,
) -> anyhow::Result<(Workspace, WriteLock)> {
    let (mut diagnostics, workspace) = super::runtime()?.block_on(Workspace::open(environment, command, lock_timeout));
    diagnostics.retain(|d| d.is_error() || !moot(d));
    loaded(&diagnostics, workspace, done)
}

fn loaded<T>(
    diagnostics: &[crate::desired::Diagnostic],
    result: Result<T, LoadError>,
    done: &str,
) -> anyhow::Result<T> {
    report::diagnostics(diagnostics);
    match result {
        Ok(workspace) => Ok(workspace),
        Err(LoadError::Invalid) => bail!("{}; nothing was {done}", report::counts(diagnostics)),
        Err(LoadError::Lock(e)) => bail!("{e}; nothing was {done}"),
        Err(LoadError::Lockfile(e)) => Err(e.into()),
        Err(LoadError::State(e)) => bail!("{e}; nothing was {done}"),
    }
}

/// `--target` ids, parsed and checked: each must be declared or recorded.
pub(super) fn targets(workspace: &Workspace, targets: &[String]) -> anyhow::Result<Option<BTreeSet<GroupId>>> {
    if targets.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for target in targets {
        set.insert(GroupId::parse(target).with_context(|| format!("--target {target:?}"))?);
    }
    workspace.check_targets(&set).map_err(|e| anyhow::anyhow!("--target {e}"))?;
    Ok(Some(set))
}

/// Reads the live state of `groups`, with progress.
pub(super) fn read_live(
    api: &ApiArgs,
    workspace: &Workspace,
    groups: Vec<GroupId>,
) -> anyhow::Result<BTreeMap<GroupId, LiveRead>> {
    let client = api.client(&workspace.environment, api.secret_key(&workspace.environment)?)?;
    let progress = Progress::new("read", groups.len() as u64);
    let live = super::runtime()?.block_on(live::read(&client, groups, live::ReadOptions::default(), |group, read| {
        let failure = read.as_ref().err().filter(|e| !e.is_missing_group()).map(|e| format!("{group}: {e}"));
        progress.tick(failure.as_deref());
    }));
    progress.finish();
    if let Some(stopped) = live.stopped {
        // Nothing half-read is shown: the groups not read would read as missing.
        bail!("{}", crate::escape::text(&format!("Stopped: {stopped}.")));
    }
    Ok(live.groups)
}

/// Reads the managed groups (limited to `targets`) live and plans against them (`--refresh`).
pub(super) fn refresh(
    api: &ApiArgs,
    workspace: &mut Workspace,
    targets: Option<&BTreeSet<GroupId>>,
) -> anyhow::Result<()> {
    let live = read_live(api, workspace, workspace.managed(targets))?;
    Ok(workspace.refresh(live)?)
}

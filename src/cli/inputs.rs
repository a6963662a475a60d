//! The command line's side of a [`Workspace`]: the environment the options
//! select, loading with diagnostics printed, `--target` parsed, and live reads
//! with progress.

use super::progress::Progress;
use super::{WorkspaceArgs, report};
use crate::desired::Environment;
use crate::live::{self, LiveRead};
use crate::model::GroupId;
use crate::workspace::{LoadError, Workspace};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};

/// The environment the command line selects.
pub(super) fn environment(args: &WorkspaceArgs) -> anyhow::Result<Environment> {
    Ok(args.environment_of(&args.config.load()?)?)
}

/// Loads the workspace of `environment`, printing every diagnostic; any error
/// among them ends the command with nothing planned.
pub(super) fn load(environment: Environment, fold: bool) -> anyhow::Result<Workspace> {
    let (diagnostics, workspace) = Workspace::load(environment, fold);
    report::diagnostics(&diagnostics);
    match workspace {
        Ok(workspace) => Ok(workspace),
        Err(LoadError::Invalid) => bail!("{}; nothing was planned", report::counts(&diagnostics)),
        Err(LoadError::Lockfile(e)) => Err(e.into()),
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
    args: &WorkspaceArgs,
    workspace: &Workspace,
    groups: Vec<GroupId>,
) -> anyhow::Result<BTreeMap<GroupId, LiveRead>> {
    let client = args.api.client(&workspace.environment, args.api.secret_key(&workspace.environment)?)?;
    let progress = Progress::new("read", groups.len() as u64);
    let live = super::runtime()?.block_on(live::read(&client, groups, 64, |group, read| {
        let failure = read.as_ref().err().filter(|e| !e.is_missing_group()).map(|e| format!("{group}: {e}"));
        progress.tick(failure.as_deref());
    }));
    progress.finish();
    Ok(live)
}

/// Reads the managed groups (limited to `targets`) live and plans against them (`--refresh`).
pub(super) fn refresh(
    args: &WorkspaceArgs,
    workspace: &mut Workspace,
    targets: Option<&BTreeSet<GroupId>>,
) -> anyhow::Result<()> {
    let live = read_live(args, workspace, workspace.managed(targets))?;
    Ok(workspace.refresh(live)?)
}

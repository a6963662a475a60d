//! What the commands that plan start from: the selected environment, the desired
//! state, the lockfile's record and, with `--refresh`, the live state.

use super::progress::Progress;
use super::{Cli, report};
use crate::desired::{self, Config, Environment};
use crate::live::{self, LiveRead};
use crate::lockfile::{self, Lockfile};
use crate::model::{AppliedGroup, GroupId};
use crate::plan::{self, Fingerprint, Plan, PlanEnvironment, PlanOptions};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};

/// Everything a plan is computed from.
pub struct Inputs {
    /// The environment.
    pub environment: Environment,
    /// The desired state.
    pub desired: desired::DesiredState,
    /// The lockfile's record.
    pub lockfile: Lockfile,
    /// Records of an interrupted run folded into the lockfile (with `fold`).
    pub recovered: usize,
    /// With `--refresh`: the live state, which replaces the lockfile as "before".
    pub live: Option<BTreeMap<GroupId, AppliedGroup>>,
    /// With `--refresh`: managed groups that do not exist (10010).
    pub missing: BTreeSet<GroupId>,
}

/// The environment the command line selects.
pub fn environment(cli: &Cli) -> anyhow::Result<Environment> {
    let config = Config::load(&cli.config)?;
    Ok(config.environment(cli.env.as_deref(), cli.endpoint.as_deref())?)
}

impl Inputs {
    /// Loads the desired state and the lockfile. With `fold` (holding the lock), a
    /// journal left by an interrupted run is folded into the lockfile first.
    /// Diagnostics are printed; any error among them ends the command with nothing planned.
    pub fn load(environment: Environment, fold: bool) -> anyhow::Result<Inputs> {
        let read_lockfile = || match fold {
            true => Lockfile::fold(&environment.lockfile, environment.sdkappid),
            false => Lockfile::read(&environment.lockfile, environment.sdkappid).map(|lockfile| (lockfile, 0)),
        };
        // Independent inputs: read the lockfile while the group files parse.
        let (loaded, lockfile) = rayon::join(|| desired::load(&environment.groups_dir), read_lockfile);
        report::diagnostics(&loaded.diagnostics);
        if loaded.has_errors() {
            bail!("{}; nothing was planned", report::counts(&loaded.diagnostics));
        }
        let (lockfile, recovered) = lockfile?;
        lockfile.check_app(&environment.lockfile, environment.sdkappid)?;
        Ok(Inputs { environment, desired: loaded.state, lockfile, recovered, live: None, missing: BTreeSet::new() })
    }

    /// `--target` ids, checked: each must be declared or recorded.
    pub fn targets(&self, targets: &[String]) -> anyhow::Result<Option<BTreeSet<GroupId>>> {
        if targets.is_empty() {
            return Ok(None);
        }
        let mut set = BTreeSet::new();
        for target in targets {
            let id = GroupId::parse(target).with_context(|| format!("--target {target:?}"))?;
            if !self.desired.groups.contains_key(&id) && !self.lockfile.groups.contains_key(&id) {
                bail!("--target {target:?}: no such group is declared or recorded in the lockfile");
            }
            set.insert(id);
        }
        Ok(Some(set))
    }

    /// The groups grattr manages (declared or recorded), limited to `targets`.
    pub fn managed(&self, targets: Option<&BTreeSet<GroupId>>) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self.desired.groups.keys().chain(self.lockfile.groups.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        ids.retain(|id| targets.is_none_or(|t| t.contains(id)));
        ids
    }

    /// Reads the live state of the managed groups, with progress.
    pub fn read_live(
        &self,
        cli: &Cli,
        targets: Option<&BTreeSet<GroupId>>,
    ) -> anyhow::Result<BTreeMap<GroupId, LiveRead>> {
        self.read_live_of(cli, &self.managed(targets).into_iter().collect())
    }

    /// Reads the live state of `groups`, with progress.
    pub fn read_live_of(&self, cli: &Cli, groups: &BTreeSet<GroupId>) -> anyhow::Result<BTreeMap<GroupId, LiveRead>> {
        let client = cli.client(&self.environment, cli.secret_key(&self.environment)?)?;
        let groups: Vec<GroupId> = groups.iter().cloned().collect();
        let progress = Progress::new("read", groups.len() as u64);
        let live = super::runtime()?.block_on(live::read(&client, groups, 64, |group, read| {
            let failure =
                read.as_ref().err().filter(|e| e.code() != Some(live::MISSING)).map(|e| format!("{group}: {e}"));
            progress.tick(failure.as_deref());
        }));
        progress.finish();
        Ok(live)
    }

    /// Makes the live state "before" (`--refresh`). A group that does not exist is
    /// left out (the plan creates it, and applying reports it); any other read error
    /// ends the command, since a plan cannot be trusted without it.
    pub fn refresh(&mut self, cli: &Cli, targets: Option<&BTreeSet<GroupId>>) -> anyhow::Result<()> {
        let mut before = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (id, read) in self.read_live(cli, targets)? {
            match read {
                Ok(attributes) => {
                    before.insert(id, AppliedGroup::new(attributes));
                }
                Err(e) if e.code() == Some(live::MISSING) => {
                    self.missing.insert(id);
                }
                Err(e) => unreadable.push(format!("  {id}: {e}")),
            }
        }
        if !unreadable.is_empty() {
            bail!(
                "cannot read the live state of {} group(s); nothing was planned:\n{}",
                unreadable.len(),
                unreadable.join("\n")
            );
        }
        self.live = Some(before);
        Ok(())
    }

    /// "Before": the live state with `--refresh`, else the lockfile's record.
    pub fn before(&self) -> &BTreeMap<GroupId, AppliedGroup> {
        self.live.as_ref().unwrap_or(&self.lockfile.groups)
    }

    /// What a saved plan records of these inputs.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            desired: self.desired.digest(),
            lockfile: lockfile::digest(self.before()),
            environment: self.environment.digest(),
        }
    }

    /// The plan, limited to `targets` when any are given.
    pub fn plan(&self, prune: bool, targets: Option<BTreeSet<GroupId>>) -> Plan {
        let options = PlanOptions {
            environment: PlanEnvironment { name: self.environment.name.clone(), sdkappid: self.environment.sdkappid },
            prune: prune || self.environment.prune,
            targets,
        };
        let mut plan = plan::diff(&self.desired.groups, self.before(), &options);
        plan.refresh = self.live.is_some();
        plan
    }
}

//! The workspace: what every command and `watch` plan from — one environment's
//! desired state, the lockfile's record and, with refresh, the live state — and
//! the rules between a plan and the calls that make it: a saved plan verified
//! against a fresh one, the live facts a refresh settles without a call.

use crate::api::client::ApiError;
use crate::apply::guard::{Approved, Refusal, Safety};
use crate::desired::{self, Diagnostic, Environment};
use crate::drift::{self, DriftReport};
use crate::live::LiveRead;
use crate::lockfile::LockError;
use crate::lockfile::{self, Lockfile, LockfileError, Record};
use crate::model::{self, AppliedGroup, AttributeSet, GroupId};
use crate::plan::{self, Fingerprint, Plan, PlanEnvironment, PlanOptions, SafetyVerdict};
use crate::state::{Key, Lease, Location, StateError, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod adopt;
mod record;
mod saved;

pub use adopt::{AlreadyDeclared, Layout, NotReproduced, against_template, import_file};
pub use record::Applied;
pub use saved::{SavedPlanError, read_saved_plan};

/// Everything a plan is computed from.
#[derive(Debug)]
pub struct Workspace {
    /// The environment.
    pub environment: Environment,
    /// The desired state.
    pub desired: desired::DesiredState,
    /// The templates the group files define.
    pub templates: desired::templates::Catalog,
    /// Where the record lives.
    pub store: Store,
    /// The record (the lockfile's, or a shared store's).
    pub lockfile: Lockfile,
    /// Records of an interrupted run folded into the lockfile on load.
    pub recovered: usize,
    /// With refresh: the live state, which replaces the lockfile as "before".
    pub live: Option<BTreeMap<GroupId, AppliedGroup>>,
    /// With refresh: managed groups that do not exist.
    pub missing: BTreeSet<GroupId>,
    /// With refresh: for groups where grattr owns only keys (or owned them until
    /// now), the keys live that it does not own.
    pub unmanaged: BTreeMap<GroupId, Vec<String>>,
}

/// Why a workspace cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The desired state has errors (among the diagnostics returned with it).
    #[error("the desired state has errors")]
    Invalid,
    /// The lockfile cannot be used.
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    /// Another grattr holds the lockfile's lock, or it cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The record's store cannot be used, or another writer holds its lease.
    #[error(transparent)]
    State(StateError),
}

impl From<StateError> for LoadError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Lockfile(e) => LoadError::Lockfile(e),
            StateError::Lock(e) => LoadError::Lock(e),
            other => LoadError::State(other),
        }
    }
}

/// The writer's lease on the record, held by a workspace opened with
/// [`Workspace::open`] until dropped: what records asks for it, so that nothing
/// records without it.
#[derive(Debug)]
pub struct WriteLock {
    lease: Lease,
}

/// Where `environment`'s record lives: its `state:` URL, else its lockfile's files.
pub fn location(environment: &Environment) -> Result<Location, StateError> {
    match &environment.state {
        Some(url) => Location::parse(url),
        None => Ok(Location::Local { lockfile: environment.lockfile.clone(), seed: environment.seed_lockfile.clone() }),
    }
}

/// Which record of a shared store is `environment`'s: its app's, under its name.
pub fn key(environment: &Environment) -> Key {
    Key { sdkappid: environment.sdkappid, environment: environment.name.clone().unwrap_or_default() }
}

/// Opens the store of `environment`'s record.
pub async fn store(environment: &Environment) -> Result<Store, StateError> {
    Store::open(&location(environment)?, key(environment)).await
}

/// A `--target` (or a saved plan's target) that names no group grattr manages.
#[derive(Debug, thiserror::Error)]
#[error("{:?}: no such group is declared or recorded in the lockfile", .0.as_str())]
pub struct UnknownTarget(pub GroupId);

/// Groups whose live state could not be read, so that no plan against it can be trusted.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the live state of {} group(s); nothing was planned:\n{}",
    .0.len(),
    .0.iter().map(|(id, e)| format!("  {id}: {e}")).collect::<Vec<_>>().join("\n")
)]
pub struct Unreadable(pub Vec<(GroupId, ApiError)>);

impl Workspace {
    /// Loads the desired state (the group files with the environment's overlays
    /// applied) and the record (checked against the environment's app), to read: a
    /// journal a writer is appending to is replayed, not folded, and a state directory
    /// never written is read from the repository's lockfile. Returns every diagnostic
    /// of the desired state, whether or not loading succeeded.
    pub async fn load(environment: Environment) -> (Vec<Diagnostic>, Result<Workspace, LoadError>) {
        let store = match store(&environment).await {
            Ok(store) => store,
            Err(e) => return (Vec::new(), Err(e.into())),
        };
        let reader = store.clone();
        Workspace::read(environment, store, async move { reader.read().await.map(|lockfile| (lockfile, 0)) }).await
    }

    /// Takes the writer's lease on the record for `command` (waiting up to `timeout`
    /// for another holder), then loads as [`Workspace::load`] does, but to write: a
    /// state directory never written is created and seeded from the repository's
    /// lockfile, and a journal an interrupted run left is folded into the record.
    /// Only a workspace opened so records anything.
    pub async fn open(
        environment: Environment,
        command: &str,
        timeout: Duration,
    ) -> (Vec<Diagnostic>, Result<(Workspace, WriteLock), LoadError>) {
        let leased = async {
            let store = store(&environment).await?;
            let lease = store.lease(command, timeout, environment.lease_ttl).await?;
            Ok::<_, StateError>((store, lease))
        };
        let (store, mut lease) = match leased.await {
            Ok(leased) => leased,
            Err(e) => return (Vec::new(), Err(e.into())),
        };
        let record = async { lease.open().await.map(|(lockfile, opened)| (lockfile, opened.recovered)) };
        let (diagnostics, workspace) = Workspace::read(environment, store, record).await;
        (diagnostics, workspace.map(|workspace| (workspace, WriteLock { lease })))
    }

    /// Reads the desired state while `record` (the record, and how many records of an
    /// interrupted run were folded into it) is read.
    async fn read(
        environment: Environment,
        store: Store,
        record: impl std::future::Future<Output = Result<(Lockfile, usize), StateError>>,
    ) -> (Vec<Diagnostic>, Result<Workspace, LoadError>) {
        // Independent inputs: read the record while the group files parse.
        let (groups_dir, overlays) = (environment.groups_dir.clone(), environment.overlays.clone());
        let load_desired = tokio::task::spawn_blocking(move || desired::load_with(&groups_dir, &overlays));
        let (loaded, record) = tokio::join!(load_desired, record);
        let mut loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if !environment.ownership.is_group() {
            for group in loaded.state.groups.values_mut().filter(|g| !g.ownership_written) {
                group.ownership = environment.ownership;
            }
        }
        if loaded.has_errors() {
            return (loaded.diagnostics, Err(LoadError::Invalid));
        }
        let workspace = record.map(|(lockfile, recovered)| Workspace {
            environment,
            desired: loaded.state,
            templates: loaded.templates,
            store,
            lockfile,
            recovered,
            live: None,
            missing: BTreeSet::new(),
            unmanaged: BTreeMap::new(),
        });
        (loaded.diagnostics, workspace.map_err(LoadError::from))
    }

    /// Checks that each target is declared or recorded.
    pub fn check_targets(&self, targets: &BTreeSet<GroupId>) -> Result<(), UnknownTarget> {
        match targets
            .iter()
            .find(|id| !self.desired.groups.contains_key(*id) && !self.lockfile.groups.contains_key(*id))
        {
            Some(id) => Err(UnknownTarget(id.clone())),
            None => Ok(()),
        }
    }

    /// The groups grattr manages (declared or recorded), limited to `targets`, in id order.
    pub fn managed(&self, targets: Option<&BTreeSet<GroupId>>) -> Vec<GroupId> {
        managed(self.desired.groups.keys(), self.lockfile.groups.keys(), targets)
    }

    /// Makes `reads` of the live state "before" (refresh). A group that does not
    /// exist is left out (the plan creates it); any other read error refuses the
    /// whole refresh, since a plan cannot be trusted without it.
    pub fn refresh(&mut self, reads: BTreeMap<GroupId, LiveRead>) -> Result<(), Unreadable> {
        let mut before = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (id, read) in reads {
            match read {
                Ok(attributes) => {
                    let live = self.owned_part(&id, attributes);
                    before.insert(id, live);
                }
                Err(e) if e.is_missing_group() => {
                    self.missing.insert(id);
                }
                Err(e) => unreadable.push((id, e)),
            }
        }
        if !unreadable.is_empty() {
            return Err(Unreadable(unreadable));
        }
        self.live = Some(before);
        Ok(())
    }

    /// What of a group's live `attributes` grattr owns, as a record: all of them for a
    /// group it owns whole; with key ownership (declared or recorded), the keys it
    /// declares or applied before, the others noted as members'.
    fn owned_part(&mut self, id: &GroupId, mut attributes: AttributeSet) -> AppliedGroup {
        let (recorded, declared) = (self.lockfile.groups.get(id), self.desired.groups.get(id));
        let Some(members) = model::set_apart_members_keys(&mut attributes, recorded, declared) else {
            return AppliedGroup::new(attributes);
        };
        let ownership = model::ownership_of(recorded, declared);
        self.unmanaged.insert(id.clone(), members);
        AppliedGroup::owned(attributes, ownership)
    }

    /// "Before": the live state after a refresh, else the lockfile's record.
    pub fn before(&self) -> &BTreeMap<GroupId, AppliedGroup> {
        self.live.as_ref().unwrap_or(&self.lockfile.groups)
    }

    /// What a saved plan records of these inputs.
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            desired: self.desired.digest(),
            before: lockfile::digest(self.before()),
            environment: self.environment.digest(),
        }
    }

    /// The environment as a plan names it.
    pub fn plan_environment(&self) -> PlanEnvironment {
        PlanEnvironment { name: self.environment.name.clone(), sdkappid: self.environment.sdkappid }
    }

    /// The plan against "before", limited to `targets` when any are given.
    pub fn plan(&self, prune: bool, targets: Option<BTreeSet<GroupId>>) -> Plan {
        plan::diff(&self.desired.groups, self.before(), &self.plan_options(prune, targets, None))
    }

    /// [`Workspace::plan`], taking the desired state into the plan instead of copying
    /// it (100,000 groups to create are then held once): afterwards the workspace
    /// declares nothing. With `save`, the plan carries the fingerprint of its inputs,
    /// for `grattr apply FILE`, which verifies it.
    pub fn take_plan(&mut self, prune: bool, targets: Option<BTreeSet<GroupId>>, save: bool) -> Plan {
        let fingerprint = save.then(|| self.fingerprint());
        let options = self.plan_options(prune, targets, fingerprint);
        let desired = std::mem::take(&mut self.desired.groups);
        plan::diff_owned(desired, self.before(), &options)
    }

    fn plan_options(
        &self,
        prune: bool,
        targets: Option<BTreeSet<GroupId>>,
        fingerprint: Option<Fingerprint>,
    ) -> PlanOptions {
        PlanOptions {
            environment: self.plan_environment(),
            prune: prune || self.environment.prune,
            targets,
            refresh: self.live.is_some(),
            fingerprint,
            unmanaged_keys: self.unmanaged.clone(),
        }
    }

    /// The safety guard of this environment: approves `plan` unless it updates or
    /// deletes more than `safety_threshold` of the recorded groups (`force` approves it anyway).
    pub fn approve<'p>(&self, plan: &'p Plan, force: bool) -> Result<Approved<'p>, Refusal> {
        Safety { threshold: self.environment.safety_threshold, force }.check(plan, self.lockfile.groups.len())
    }

    /// What the safety guard of this environment decides about `plan` without
    /// `--force` ([`Workspace::approve`]'s decision), with the figures it decided on.
    pub fn safety_verdict(&self, plan: &Plan) -> SafetyVerdict {
        Safety { threshold: self.environment.safety_threshold, force: false }.verdict(plan, self.lockfile.groups.len())
    }

    /// How every managed group read live stands against the desired and the applied state.
    pub fn drift(&self, live: &BTreeMap<GroupId, LiveRead>) -> DriftReport {
        drift::classify(self.plan_environment(), &self.desired.groups, &self.lockfile.groups, live)
    }

    /// After a refresh, what was read live settles some groups of `plan` without a
    /// call: declared groups already live as desired while the lockfile records
    /// something else are recorded as they are, and with pruning, recorded groups no
    /// longer declared that no longer exist are forgotten. Returns the records, and
    /// the groups forgotten (to say so).
    fn live_facts(&self, plan: &Plan) -> (Vec<Record>, Vec<GroupId>) {
        let Some(live) = &self.live else { return (Vec::new(), Vec::new()) };
        let wanted = |id: &GroupId| plan.targets.as_ref().is_none_or(|t| t.contains(id));
        let mut records = Vec::new();
        for (id, group) in &self.desired.groups {
            let Some(live) = live.get(id) else { continue };
            let recorded = self.lockfile.groups.get(id);
            let settled = live.attributes == group.attributes && live.ownership == group.ownership;
            if wanted(id) && settled && recorded != Some(live) {
                records.push(Record::Set {
                    group: id.clone(),
                    attributes: group.attributes.clone(),
                    ownership: group.ownership,
                });
            }
        }
        let mut forgotten = Vec::new();
        if plan.prune {
            for id in &self.missing {
                if wanted(id) && self.lockfile.groups.contains_key(id) && !self.desired.groups.contains_key(id) {
                    records.push(Record::Forget { group: id.clone() });
                    forgotten.push(id.clone());
                }
            }
        }
        (records, forgotten)
    }
}

/// The groups grattr manages: declared or recorded, each once, in id order,
/// limited to `targets` when given.
pub fn managed<'a>(
    declared: impl Iterator<Item = &'a GroupId>,
    recorded: impl Iterator<Item = &'a GroupId>,
    targets: Option<&BTreeSet<GroupId>>,
) -> Vec<GroupId> {
    let mut ids: Vec<GroupId> =
        declared.chain(recorded).filter(|id| targets.is_none_or(|t| t.contains(*id))).cloned().collect();
    ids.sort();
    ids.dedup();
    ids
}

/// How many groups grattr manages (declared or recorded): the count of [`managed`]
/// without listing them, for `watch`'s gauge after every cycle.
pub fn managed_count<D, A>(declared: &BTreeMap<GroupId, D>, recorded: &BTreeMap<GroupId, A>) -> usize {
    declared.len() + recorded.keys().filter(|id| !declared.contains_key(*id)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> BTreeMap<GroupId, ()> {
        names.iter().map(|n| (GroupId::parse(n).unwrap(), ())).collect()
    }

    #[test]
    fn managed_is_declared_or_recorded_once_each_in_order() {
        let (declared, recorded) = (ids(&["b", "c", "a"]), ids(&["d", "a", "c"]));
        let all = managed(declared.keys(), recorded.keys(), None);
        assert_eq!(all.iter().map(GroupId::as_str).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(managed_count(&declared, &recorded), all.len());
        let targets: BTreeSet<GroupId> = ids(&["d", "b", "x"]).into_keys().collect();
        let some = managed(declared.keys(), recorded.keys(), Some(&targets));
        assert_eq!(some.iter().map(GroupId::as_str).collect::<Vec<_>>(), ["b", "d"]);
        assert_eq!(managed_count(&ids(&[]), &ids(&[])), 0);
    }
}

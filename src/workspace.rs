//! The workspace: what every command and `watch` plan from — one environment's
//! desired state, the lockfile's record and, with refresh, the live state — and
//! the rules between a plan and the calls that make it: a saved plan verified
//! against a fresh one, the live facts a refresh settles without a call.

use crate::api::client::ApiError;
use crate::desired::{self, Diagnostic, Environment};
use crate::live::LiveRead;
use crate::lockfile::{self, Lockfile, LockfileError, Record};
use crate::model::{AppliedGroup, GroupId};
use crate::plan::verify::{self, Difference};
use crate::plan::{self, Fingerprint, Plan, PlanEnvironment, PlanOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Everything a plan is computed from.
#[derive(Debug)]
pub struct Workspace {
    /// The environment.
    pub environment: Environment,
    /// The desired state.
    pub desired: desired::DesiredState,
    /// The lockfile's record.
    pub lockfile: Lockfile,
    /// Records of an interrupted run folded into the lockfile on load.
    pub recovered: usize,
    /// With refresh: the live state, which replaces the lockfile as "before".
    pub live: Option<BTreeMap<GroupId, AppliedGroup>>,
    /// With refresh: managed groups that do not exist.
    pub missing: BTreeSet<GroupId>,
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

/// Why a saved plan is not applied. Nothing of it runs in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// The file cannot be read.
    #[error("cannot read the plan {}: {source}; nothing was applied", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a plan in the documented schema.
    #[error("{} is not a plan saved by `grattr plan --out`: {message}; nothing was applied", .path.display())]
    NotAPlan {
        /// The file.
        path: PathBuf,
        /// What the JSON parser found.
        message: String,
    },
    /// The plan was printed, not saved.
    #[error("{} has no fingerprint: save plans with `grattr plan --out FILE`; nothing was applied", .path.display())]
    NoFingerprint {
        /// The file.
        path: PathBuf,
    },
    /// Its inputs changed since it was made.
    #[error(
        "the saved plan {} is stale: {} since it was made; nothing was applied. Run `grattr plan` again and review it.",
        .path.display(), .changed.join(", ")
    )]
    Stale {
        /// The file.
        path: PathBuf,
        /// Which inputs changed.
        changed: Vec<&'static str>,
    },
    /// It targets a group grattr does not manage.
    #[error("the saved plan {}: --target {target}; nothing was applied", .path.display())]
    Target {
        /// The file.
        path: PathBuf,
        /// The target.
        target: UnknownTarget,
    },
    /// Its inputs are the same, but it is not the plan they give: it was edited.
    #[error(
        "the saved plan {} is not the plan its inputs give now: {difference}; nothing was applied. \
         A saved plan only runs as `grattr plan --out` wrote it: make the plan again and review it.",
        .path.display()
    )]
    Edited {
        /// The file.
        path: PathBuf,
        /// The first difference.
        difference: Difference,
    },
}

/// Reads a plan saved by `grattr plan --out`. Reading it trusts nothing:
/// [`Workspace::verify`] decides whether it may run.
pub fn read_saved_plan(path: &Path) -> Result<Plan, SavedPlanError> {
    let bytes = std::fs::read(path).map_err(|source| SavedPlanError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SavedPlanError::NotAPlan { path: path.to_path_buf(), message: e.to_string() })
}

impl Workspace {
    /// Loads the desired state and the lockfile (checked against the environment's
    /// app). With `fold` (the caller holds the lock), a journal left by an interrupted
    /// run is folded into the lockfile first. Returns every diagnostic of the desired
    /// state, whether or not loading succeeded. A state directory never written
    /// starts from the repository's lockfile: seeded by a writer, read by a reader.
    pub fn load(environment: Environment, fold: bool) -> (Vec<Diagnostic>, Result<Workspace, LoadError>) {
        let (path, seed, sdkappid) =
            (&environment.lockfile, environment.seed_lockfile.as_deref(), environment.sdkappid);
        let read_lockfile = || match fold {
            true => {
                if let Some(seed) = seed {
                    lockfile::seed(path, seed, sdkappid)?;
                }
                Lockfile::fold(path, sdkappid)
            }
            false => Lockfile::read_seeded(path, seed, sdkappid).map(|lockfile| (lockfile, 0)),
        };
        // Independent inputs: read the lockfile while the group files parse.
        let (loaded, lockfile) = rayon::join(|| desired::load(&environment.groups_dir), read_lockfile);
        if loaded.has_errors() {
            return (loaded.diagnostics, Err(LoadError::Invalid));
        }
        let workspace = lockfile.and_then(|(lockfile, recovered)| {
            lockfile.check_app(&environment.lockfile, environment.sdkappid)?;
            Ok(Workspace {
                environment,
                desired: loaded.state,
                lockfile,
                recovered,
                live: None,
                missing: BTreeSet::new(),
            })
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
                    before.insert(id, AppliedGroup::new(attributes));
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

    /// "Before": the live state after a refresh, else the lockfile's record.
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

    /// The plan against "before", limited to `targets` when any are given.
    pub fn plan(&self, prune: bool, targets: Option<BTreeSet<GroupId>>) -> Plan {
        let options = self.plan_options(prune, targets);
        let mut plan = plan::diff(&self.desired.groups, self.before(), &options);
        plan.refresh = self.live.is_some();
        plan
    }

    /// [`Workspace::plan`], taking the desired state into the plan instead of copying
    /// it: afterwards the workspace declares nothing (compute a fingerprint first).
    /// For a caller done with the desired state once it has the plan.
    pub fn take_plan(&mut self, prune: bool, targets: Option<BTreeSet<GroupId>>) -> Plan {
        let options = self.plan_options(prune, targets);
        let desired = std::mem::take(&mut self.desired.groups);
        let mut plan = plan::diff_owned(desired, self.before(), &options);
        plan.refresh = self.live.is_some();
        plan
    }

    fn plan_options(&self, prune: bool, targets: Option<BTreeSet<GroupId>>) -> PlanOptions {
        PlanOptions {
            environment: PlanEnvironment { name: self.environment.name.clone(), sdkappid: self.environment.sdkappid },
            prune: prune || self.environment.prune,
            targets,
        }
    }

    /// Verifies `saved` (read from `path`) against these inputs and returns the plan
    /// to run: computed now, with the saved plan's options, and identical to the
    /// saved plan in everything that is sent, recorded or counted. A saved plan made
    /// with refresh needs [`Workspace::refresh`] first.
    pub fn verify(&self, path: &Path, saved: &Plan) -> Result<Plan, SavedPlanError> {
        let path = path.to_path_buf();
        let Some(fingerprint) = &saved.fingerprint else {
            return Err(SavedPlanError::NoFingerprint { path });
        };
        let current = self.fingerprint();
        let mut changed = Vec::new();
        if fingerprint.desired != current.desired {
            changed.push("the desired state (groups/) changed");
        }
        if fingerprint.lockfile != current.lockfile {
            changed.push(if saved.refresh {
                "the live state changed"
            } else {
                "the lockfile changed (another apply ran)"
            });
        }
        if fingerprint.environment != current.environment {
            changed.push("the environment differs (app, admin or endpoint)");
        }
        if !changed.is_empty() {
            return Err(SavedPlanError::Stale { path, changed });
        }
        let targets: Option<BTreeSet<GroupId>> = saved.targets.as_ref().map(|t| t.iter().cloned().collect());
        if let Some(targets) = &targets {
            self.check_targets(targets).map_err(|target| SavedPlanError::Target { path: path.clone(), target })?;
        }
        let fresh = self.plan(saved.prune, targets);
        verify::compare(saved, &fresh).map_err(|difference| SavedPlanError::Edited { path, difference })?;
        Ok(fresh)
    }

    /// After a refresh, what was read live settles some groups of `plan` without a
    /// call: declared groups already live as desired while the lockfile records
    /// something else are recorded as they are, and with pruning, recorded groups no
    /// longer declared that no longer exist are forgotten. Returns the records, and
    /// the groups forgotten (to say so).
    pub fn live_facts(&self, plan: &Plan) -> (Vec<Record>, Vec<GroupId>) {
        let Some(live) = &self.live else { return (Vec::new(), Vec::new()) };
        let wanted = |id: &GroupId| plan.targets.as_ref().is_none_or(|t| t.contains(id));
        let mut records = Vec::new();
        for (id, group) in &self.desired.groups {
            let live = live.get(id).map(|g| &g.attributes);
            let recorded = self.lockfile.groups.get(id).map(|g| &g.attributes);
            if wanted(id) && live == Some(&group.attributes) && recorded != live {
                records.push(Record::Set { group: id.clone(), attributes: group.attributes.clone() });
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

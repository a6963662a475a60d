//! A plan saved by `grattr plan --out`, read and verified: it runs only when the
//! plan its inputs give now is identical to it.

use super::{UnknownTarget, Workspace};
use crate::model::GroupId;
use crate::plan::Plan;
use crate::plan::verify::{self, Difference};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
        if fingerprint.before != current.before {
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
}

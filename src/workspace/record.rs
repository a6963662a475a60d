//! Applying a plan and recording it: every success into the journal as it happens,
//! then the journal folded into the lockfile, so that a crash at any moment loses
//! nothing that was applied.

use super::{Workspace, WriteLock};
use crate::api::client::Client;
use crate::apply::guard::Approved;
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::lockfile::{JournalWriter, LockfileError};
use crate::model::GroupId;
use crate::plan::Change;
use tokio_util::sync::CancellationToken;

/// What applying a plan did, and what it recorded.
#[derive(Debug)]
pub struct Applied {
    /// The run.
    pub report: Report,
    /// How many groups were recorded: the successes, and what a refresh settled without a call.
    pub recorded: usize,
    /// Recorded groups no longer declared that no longer exist, forgotten (refresh and prune).
    pub forgotten: Vec<GroupId>,
}

impl Workspace {
    /// Applies `approved` (a plan of this workspace) through `client` and records it:
    /// what a refresh settled without a call first, then each success as it happens,
    /// and at the end the journal folded into the lockfile. `stop` stops the run;
    /// `on_done` hears of every finished change. An error means the record could not
    /// be written; every success before it is in the journal, which the next run
    /// folds, and this workspace's record is no longer to be used.
    pub async fn apply(
        &mut self,
        _lock: &WriteLock,
        approved: Approved<'_>,
        client: &Client,
        options: &ApplyOptions,
        stop: &CancellationToken,
        on_done: impl Fn(&Change, &Outcome),
    ) -> Result<Applied, LockfileError> {
        let (path, sdkappid) = (self.environment.lockfile.clone(), self.environment.sdkappid);
        let journal = JournalWriter::open(&path, sdkappid)?;
        // Facts read before the run, about groups the plan does not touch: true
        // whatever the run does, so recorded first.
        let (facts, forgotten) = self.live_facts(approved.plan());
        let settled = facts.len();
        for record in facts {
            journal.record(record);
        }
        let report = apply::execute(approved, client, &journal, options, stop, on_done).await;
        let stats = journal.finish()?;
        tracing::debug!(records = stats.records, syncs = stats.syncs, busy = ?stats.busy, "journal");
        let lockfile = std::mem::take(&mut self.lockfile);
        self.lockfile = lockfile.fold_onto(&path, sdkappid)?.0;
        Ok(Applied { recorded: report.recorded.len() + settled, report, forgotten })
    }
}

//! Applying a plan and recording it: every success into the record's journal as it
//! happens, then (local files) the journal folded into the lockfile, so that a crash
//! at any moment loses nothing that was applied.

use super::{Workspace, WriteLock};
use crate::api::client::Client;
use crate::apply::guard::Approved;
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::model::GroupId;
use crate::plan::Change;
use crate::state::StateError;
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
    /// and at the end the journal folded. `stop` stops the run; `on_done` hears of
    /// every finished change. An error means the record could not be written; every
    /// success before it is in the journal, which the next run folds, and this
    /// workspace's record is no longer to be used.
    pub async fn apply(
        &mut self,
        lock: &mut WriteLock,
        approved: Approved<'_>,
        client: &Client,
        options: &ApplyOptions,
        stop: &CancellationToken,
        on_done: impl Fn(&Change, &Outcome),
    ) -> Result<Applied, StateError> {
        let recorder = lock.lease.recorder()?;
        // Facts read before the run, about groups the plan does not touch: true
        // whatever the run does, so recorded first.
        let (facts, forgotten) = self.live_facts(approved.plan());
        let settled = facts.len();
        for record in &facts {
            recorder.record(record.clone());
        }
        let report = apply::execute(approved, client, &recorder, options, stop, on_done).await;
        let stats = recorder.finish().await?;
        tracing::debug!(records = stats.records, syncs = stats.syncs, busy = ?stats.busy, "journal");
        let records = facts.len() + report.recorded.len();
        self.lockfile.apply_records(facts.into_iter().chain(report.recorded.iter().cloned()));
        lock.lease.ran(&mut self.lockfile, records).await?;
        Ok(Applied { recorded: report.recorded.len() + settled, report, forgotten })
    }
}

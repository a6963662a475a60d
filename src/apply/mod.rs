//! Executing a plan: one call per changed group (a full reset, or a clear),
//! concurrently within the client's rate limits, each success recorded in the
//! journal as it happens, failures remembered while the rest go on. Stopping
//! starts no new call and lets the calls in flight finish, within a bound.
//! Only a plan the [`guard`] approved is executed.

pub mod guard;

use crate::api::client::{ApiError, Client};
use crate::api::codes;
use crate::api::wire::GroupType;
use crate::lockfile::{JournalWriter, Record};
use crate::model::{AttributeSet, GroupId};
use crate::plan::{Action, Change};
use futures_util::StreamExt;
use guard::Approved;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How a plan is executed.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Calls in flight at once (the rate limiters pace them further).
    pub concurrency: usize,
    /// Stop starting calls after the first permanent failure.
    pub fail_fast: bool,
    /// How long calls in flight may take to finish once stopped.
    pub grace: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { concurrency: 32, fail_fast: false, grace: Duration::from_secs(10) }
    }
}

/// What happened to one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and recorded.
    Applied,
    /// The call failed after its retries.
    Failed(ApiError),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Indices (into the plan's changes) applied.
    pub applied: Vec<usize>,
    /// Indices that failed, with why.
    pub failed: Vec<(usize, ApiError)>,
    /// Indices never started (stopped, or `fail_fast`).
    pub skipped: Vec<usize>,
    /// Indices started but abandoned when the grace period ran out; their outcome is
    /// unknown, so they are not recorded and the next run applies them again.
    pub abandoned: Vec<usize>,
    /// What was written to the journal, in the order it was written.
    pub recorded: Vec<Record>,
    /// Whether the run was stopped from outside.
    pub interrupted: bool,
    /// How long the run took.
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    InFlight,
    Done,
}

/// Applies `plan`'s changes through `client`, recording each success in `journal`
/// as it happens. `stop` stops the run; `on_done` hears of every finished change.
pub async fn execute(
    plan: Approved<'_>,
    client: &Client,
    journal: &JournalWriter,
    options: &ApplyOptions,
    stop: &CancellationToken,
    on_done: impl Fn(&Change, &Outcome),
) -> Report {
    let plan = plan.plan();
    let started = Instant::now();
    let halt = stop.child_token();
    let status = RefCell::new(vec![Status::Waiting; plan.changes.len()]);
    let mut report = Report::default();
    let calls = futures_util::stream::iter(plan.changes.iter().enumerate())
        .take_while(|_| std::future::ready(!halt.is_cancelled()))
        .map(|(index, change)| {
            status.borrow_mut()[index] = Status::InFlight;
            async move { (index, apply_change(client, change).await) }
        })
        .buffer_unordered(options.concurrency.max(1));
    let run = async {
        futures_util::pin_mut!(calls);
        while let Some((index, result)) = calls.next().await {
            let change = &plan.changes[index];
            status.borrow_mut()[index] = Status::Done;
            let outcome = match result {
                Ok(record) => {
                    journal.record(record.clone());
                    report.recorded.push(record);
                    report.applied.push(index);
                    Outcome::Applied
                }
                Err(error) => {
                    tracing::warn!(group = %change.group_id, %error, "failed");
                    if options.fail_fast {
                        halt.cancel();
                    }
                    report.failed.push((index, error.clone()));
                    Outcome::Failed(error)
                }
            };
            on_done(change, &outcome);
        }
    };
    let grace_over = async {
        stop.cancelled().await;
        tokio::time::sleep(options.grace).await;
    };
    tokio::select! {
        () = run => {}
        () = grace_over => {}
    }
    for (index, status) in status.into_inner().into_iter().enumerate() {
        match status {
            Status::Waiting => report.skipped.push(index),
            Status::InFlight => report.abandoned.push(index),
            Status::Done => {}
        }
    }
    report.applied.sort_unstable();
    report.failed.sort_unstable_by_key(|(index, _)| *index);
    report.interrupted = stop.is_cancelled();
    report.elapsed = started.elapsed();
    report
}

/// One change: a full reset to the desired attributes, or a clear when there are
/// none (the API's behaviour with an empty reset is undocumented).
async fn apply_change(client: &Client, change: &Change) -> Result<Record, ApiError> {
    let group = &change.group_id;
    match (change.action, &change.after) {
        (Action::Create | Action::Update, Some(after)) if !after.is_empty() => {
            client.set_group_attr(group, after).await?;
            let keys = &change.keys;
            tracing::info!(%group, added = ?keys.added, removed = ?keys.removed, changed = ?keys.changed, "applied");
            tracing::debug!(%group, attributes = ?after, "applied values");
            Ok(Record::Set { group: group.clone(), attributes: after.clone() })
        }
        (Action::Delete, _) => {
            clear(client, group, change.before.as_ref()).await?;
            tracing::info!(%group, "cleared and forgotten");
            Ok(Record::Forget { group: group.clone() })
        }
        _ => {
            clear(client, group, change.before.as_ref()).await?;
            tracing::info!(%group, "cleared");
            Ok(Record::Set { group: group.clone(), attributes: Default::default() })
        }
    }
}

/// Removes every attribute of a group. Community groups (`@TGS#_` ids) do not
/// support `clear_group_attr`, and no error code for it is documented, so their
/// `before` keys (recorded, or read by a refresh) are deleted without trying it.
/// Any other group that refuses a clear ([`codes::NO_PERMISSION`]) has its live
/// keys deleted instead. A key that vanished in between ([`codes::KEY_NOT_FOUND`])
/// is already gone, so the keys are read again and the delete retried.
async fn clear(client: &Client, group: &GroupId, before: Option<&AttributeSet>) -> Result<(), ApiError> {
    if GroupType::implied_by(group) == GroupType::Community {
        let keys: Vec<String> = before.map(|b| b.keys().cloned().collect()).unwrap_or_default();
        if !keys.is_empty() {
            match client.delete_group_attr(group, &keys).await {
                Err(error) if error.is(&codes::KEY_NOT_FOUND) => {}
                other => return other,
            }
        }
    } else {
        match client.clear_group_attr(group).await {
            Err(error) if error.is(&codes::NO_PERMISSION) => {}
            other => return other,
        }
    }
    const TRIES: u32 = 3;
    for attempt in 1..=TRIES {
        let live = client.get_group_attr(group).await?;
        if live.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = live.into_keys().collect();
        match client.delete_group_attr(group, &keys).await {
            Err(error) if error.is(&codes::KEY_NOT_FOUND) && attempt < TRIES => {}
            other => return other,
        }
    }
    Ok(())
}

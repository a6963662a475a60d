//! Executing a plan: one call per changed group (a full reset, or a clear),
//! concurrently within the client's rate limits, each success recorded in the
//! journal as it happens, failures remembered while the rest go on. Stopping
//! starts no new call and lets the calls in flight finish, within a bound.
//! Only a plan the [`guard`] approved is executed.
//!
//! A failure about the whole app (a wrong key, a wrong data centre, a host that
//! cannot be reached: [`ApiError::app_wide`]) stops the run like a stop from
//! outside, and the report says why ([`Stopped`]). So that a wrong setting costs one
//! call rather than a wave of them, the first call of a run goes alone: the others
//! start once an answer shows that the app and the host are fine.

pub mod guard;

pub use crate::api::scope::Stopped;

use crate::api::client::{ApiError, Client};
use crate::api::codes;
use crate::api::scope::Probe;
use crate::api::wire::GroupType;
use crate::lockfile::Record;
use crate::model::{AttributeSet, GroupId, Ownership, limits};
use crate::plan::{Action, Change, Cost, Plan};
use crate::state::Recorder;
use futures_util::StreamExt;
use guard::Approved;
use std::borrow::Cow;
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
    /// The call failed in a way that is about the whole app, not the group; the run
    /// stops ([`Report::stopped`] says why).
    StoppedRun(ApiError),
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
    /// Whether the writer's lease was lost (not renewed in time, taken by another
    /// writer, or its record could not be written): the changes not started are in
    /// `skipped`, and nothing more was called.
    pub lapsed: bool,
    /// Why the run stopped by itself, when a failure was about the whole app; the
    /// changes not attempted are in `skipped`.
    pub stopped: Option<Stopped>,
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
/// No call starts once the journal's lease is lost (see [`Report::lapsed`]).
pub async fn execute(
    plan: Approved<'_>,
    client: &Client,
    journal: &Recorder,
    options: &ApplyOptions,
    stop: &CancellationToken,
    on_done: impl Fn(&Change, &Outcome),
) -> Report {
    let plan = plan.plan();
    // Every attempt, retries included, asks the lease first.
    let client = &client.gated(journal.gate());
    let started = Instant::now();
    let halt = stop.child_token();
    let status = RefCell::new(vec![Status::Waiting; plan.changes.len()]);
    let mut report = Report::default();
    // The first call goes alone; the rest wait for its answer or for the run to stop.
    let probe = Probe::new(halt.clone());
    let calls = futures_util::stream::iter(plan.changes.iter().enumerate())
        .take_while(|_| std::future::ready(!halt.is_cancelled()))
        .map(|(index, change)| {
            status.borrow_mut()[index] = Status::InFlight;
            let admitted = probe.admit();
            let halt = &halt;
            async move {
                if !admitted.await {
                    return (index, None);
                }
                // A record that cannot be written holds new calls back; then, checked just
                // before the call: a process frozen past its lease wakes here.
                journal.writable().await;
                if !journal.may_call() {
                    halt.cancel();
                    return (index, None);
                }
                (index, Some(apply_change(client, change).await))
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    let run = async {
        futures_util::pin_mut!(calls);
        while let Some((index, result)) = calls.next().await {
            let change = &plan.changes[index];
            let Some(result) = result else {
                // Stopped at the gate: never started.
                status.borrow_mut()[index] = Status::Waiting;
                continue;
            };
            status.borrow_mut()[index] = Status::Done;
            let outcome = match result {
                Ok(record) => {
                    probe.answered(Ok(()));
                    journal.record(record.clone());
                    report.recorded.push(record);
                    report.applied.push(index);
                    Outcome::Applied
                }
                Err(ChangeFailed { error, done }) => {
                    if let Some(record) = done {
                        journal.record(record.clone());
                        report.recorded.push(record);
                    }
                    if error.is_lease_lost() {
                        // Not the group's failure; the next run applies it. Never sent: waiting;
                        // sent before and not answered in time: in flight.
                        status.borrow_mut()[index] =
                            if error.attempts > 1 { Status::InFlight } else { Status::Waiting };
                        halt.cancel();
                        continue;
                    }
                    report.failed.push((index, error.clone()));
                    match probe.answered(Err(&error)) {
                        Some(reason) => {
                            // Said once by the caller, not once per group.
                            tracing::debug!(group = %change.group_id, %error, ?reason, "failed for the whole app; stopping");
                            Outcome::StoppedRun(error)
                        }
                        None => {
                            tracing::warn!(group = %change.group_id, %error, "failed");
                            if options.fail_fast {
                                halt.cancel();
                            }
                            Outcome::Failed(error)
                        }
                    }
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
    report.lapsed = !journal.may_call();
    report.stopped = probe
        .stopped()
        .map(|(reason, error)| Stopped::at(client.host(), reason, error, report.skipped.len(), Stopped::CHANGES));
    report.elapsed = started.elapsed();
    report
}

/// What to do about `error`, a failure of `change`. With key ownership, the
/// service's limits count the keys members wrote too: a group over 16 keys or over
/// the total size is then no mistake of the YAML (which validate checked), and the
/// hint says so, with how many keys members wrote when a refresh read them.
pub fn hint(change: &Change, error: &ApiError) -> Option<Cow<'static, str>> {
    let over_limit = error.is(&codes::TOO_MANY_KEYS) || error.is(&codes::TOTAL_TOO_LARGE);
    if change.ownership == Ownership::Keys && over_limit {
        let members = match &change.unmanaged_keys {
            Some(keys) => format!(" (members wrote {} key{})", keys.len(), if keys.len() == 1 { "" } else { "s" }),
            None => String::new(),
        };
        return Some(Cow::Owned(format!(
            "the group's keys members wrote{members} and grattr's together exceed the service's limit of {} keys or \
             {} bytes; remove keys from the YAML, or have members' keys removed, then apply again",
            limits::MAX_KEYS.max,
            limits::MAX_TOTAL_VALUE_BYTES.max
        )));
    }
    error.hint().map(Cow::Borrowed)
}

/// Why a change failed, and what of it was done before it failed.
#[derive(Debug)]
struct ChangeFailed {
    error: ApiError,
    /// With key ownership, when the modify succeeded and the delete failed: the
    /// record of what the group now holds, so that the next run completes the change.
    done: Option<Record>,
}

impl From<ApiError> for ChangeFailed {
    fn from(error: ApiError) -> Self {
        ChangeFailed { error, done: None }
    }
}

/// One change. Of the whole group: a full reset to the desired attributes, or a
/// clear when there are none (the API's behaviour with an empty reset is
/// undocumented). With key ownership: a modify of the owned keys that are new or
/// different, then a delete of those no longer declared; nothing else of the group.
async fn apply_change(client: &Client, change: &Change) -> Result<Record, ChangeFailed> {
    let group = &change.group_id;
    let keys = &change.keys;
    if change.ownership == Ownership::Keys {
        let (modify, delete) = change.key_writes();
        if !modify.is_empty() {
            client.modify_group_attr(group, &modify).await?;
        }
        if !delete.is_empty()
            && let Err(error) = delete_keys(client, group, delete).await
        {
            // The modify stands: record it, so that the next run only deletes.
            let mut done = change.before.clone().unwrap_or_default();
            done.extend(modify);
            let done = Some(Record::Set { group: group.clone(), attributes: done, ownership: Ownership::Keys });
            return Err(ChangeFailed { error, done });
        }
        tracing::info!(%group, added = ?keys.added, removed = ?keys.removed, changed = ?keys.changed, ownership = "keys", "applied");
        return Ok(match change.action {
            Action::Delete => Record::Forget { group: group.clone() },
            Action::Create | Action::Update => Record::Set {
                group: group.clone(),
                attributes: change.after.clone().unwrap_or_default(),
                ownership: Ownership::Keys,
            },
        });
    }
    match (change.action, &change.after) {
        (Action::Create | Action::Update, Some(after)) if !after.is_empty() => {
            client.set_group_attr(group, after).await?;
            tracing::info!(%group, added = ?keys.added, removed = ?keys.removed, changed = ?keys.changed, "applied");
            tracing::debug!(%group, attributes = ?after, "applied values");
            Ok(Record::Set { group: group.clone(), attributes: after.clone(), ownership: Ownership::Group })
        }
        (Action::Delete, _) => {
            clear(client, group, change.before.as_ref()).await?;
            tracing::info!(%group, "cleared and forgotten");
            Ok(Record::Forget { group: group.clone() })
        }
        _ => {
            clear(client, group, change.before.as_ref()).await?;
            tracing::info!(%group, "cleared");
            Ok(Record::Set { group: group.clone(), attributes: AttributeSet::default(), ownership: Ownership::Group })
        }
    }
}

/// The calls [`apply_change`] makes for `change` when every call succeeds at once and
/// nothing changed live meanwhile: its least number of calls. Kept beside it so that
/// the two change together.
pub fn least_calls(change: &Change) -> u64 {
    if change.ownership == Ownership::Keys {
        let (modify, delete) = change.key_writes();
        return u64::from(!modify.is_empty()) + u64::from(!delete.is_empty());
    }
    // A reset, or a clear: one call when it succeeds at once ([`clear`] reads the group
    // only after a refusal, or to find the keys of a community group with none recorded).
    1
}

/// What applying `plan` costs at `rate_limit` app-wide calls per second: its
/// [`least_calls`], and the least time the limiter lets them take.
pub fn cost(plan: &Plan, rate_limit: u32) -> Cost {
    Cost { calls: plan.changes.iter().map(least_calls).sum(), rate_limit }
}

/// Deletes `keys` of a group. A key already gone ([`codes::KEY_NOT_FOUND`]: a member
/// deleted it) is what was wanted; the keys still live are read and the delete retried.
async fn delete_keys(client: &Client, group: &GroupId, mut keys: Vec<String>) -> Result<(), ApiError> {
    const TRIES: u32 = 3;
    for attempt in 1..=TRIES {
        match client.delete_group_attr(group, &keys).await {
            Err(error) if error.is(&codes::KEY_NOT_FOUND) && attempt < TRIES => {
                let live = client.get_group_attr(group).await?;
                keys.retain(|key| live.contains_key(key));
                if keys.is_empty() {
                    return Ok(());
                }
            }
            other => return other,
        }
    }
    Ok(())
}

/// Removes every attribute of a group. Community groups (`@TGS#_` ids) do not
/// support `clear_group_attr`, and no error code for it is documented, so their
/// `before` keys (recorded, or read by a refresh) are deleted without trying it.
/// Any other group that refuses a clear ([`codes::NO_PERMISSION`]) has its live
/// keys deleted instead. A key that vanished in between ([`codes::KEY_NOT_FOUND`])
/// is already gone, so the keys are read again and the delete retried.
async fn clear(client: &Client, group: &GroupId, before: Option<&AttributeSet>) -> Result<(), ApiError> {
    if GroupType::implied_by(group) == GroupType::Community {
        let keys: Vec<String> = before.map(|b| b.keys().map(str::to_owned).collect()).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::ErrorKind;
    use crate::api::scope::{AppWide, ConnectFailure};
    use crate::api::wire::Operation;

    fn stopped(reason: AppWide, kind: ErrorKind, host: &str, region: Option<&'static str>) -> String {
        let error = ApiError { operation: Operation::SetGroupAttr, kind, attempts: 1 };
        let stopped = Stopped { reason, error, host: host.into(), region, not_attempted: 299, what: Stopped::CHANGES };
        stopped.to_string()
    }

    #[test]
    fn a_plan_costs_the_calls_each_change_makes_at_the_least() {
        use crate::plan::Summary;
        let set = |pairs: &[(&str, &str)]| -> AttributeSet {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let change = |id: &str, action, before: Option<AttributeSet>, after: Option<AttributeSet>, ownership| Change {
            group_id: GroupId::parse(id).unwrap(),
            action,
            source: None,
            keys: crate::plan::KeyChanges::between(
                before.as_ref().unwrap_or(&AttributeSet::new()),
                after.as_ref().unwrap_or(&AttributeSet::new()),
            ),
            before,
            after,
            ownership,
            ownership_from: None,
            unmanaged_keys: None,
        };
        let changes = vec![
            // A reset: one call.
            change("a", Action::Create, None, Some(set(&[("k", "v")])), Ownership::Group),
            change("b", Action::Update, Some(set(&[("k", "v")])), Some(set(&[("k", "w")])), Ownership::Group),
            // A clear (for a community group: a delete of its keys).
            change("c", Action::Update, Some(set(&[("k", "v")])), Some(set(&[])), Ownership::Group),
            change("d", Action::Delete, Some(set(&[("k", "v")])), None, Ownership::Group),
            change("@TGS#_e", Action::Delete, Some(set(&[("k", "v")])), None, Ownership::Group),
            // Key ownership: a modify and a delete; a record alone makes no call.
            change(
                "f",
                Action::Update,
                Some(set(&[("k", "v"), ("x", "1")])),
                Some(set(&[("k", "w")])),
                Ownership::Keys,
            ),
            change("g", Action::Create, None, Some(set(&[])), Ownership::Keys),
        ];
        let calls: Vec<u64> = changes.iter().map(least_calls).collect();
        assert_eq!(calls, [1, 1, 1, 1, 1, 2, 0]);
        let plan = Plan {
            format_version: crate::plan::FORMAT_VERSION,
            environment: crate::plan::PlanEnvironment::default(),
            prune: true,
            targets: None,
            refresh: false,
            summary: Summary::default(),
            safety: None,
            cost: None,
            changes,
            not_declared: Vec::new(),
            fingerprint: None,
        };
        let cost = cost(&plan, 100);
        assert_eq!(cost, Cost { calls: 7, rate_limit: 100 });
        assert!((cost.seconds_at_least() - 0.06).abs() < 1e-9, "the first call goes at once");
        assert_eq!(crate::plan::Cost { calls: 2_000, rate_limit: 100 }.seconds_at_least(), 19.99);
    }

    #[test]
    fn the_stop_is_one_clause_naming_the_host_the_region_and_the_fix() {
        let wrong_key = ErrorKind::Api { code: 70009, info: "signature mismatch".into() };
        assert_eq!(
            stopped(AppWide::Credentials, wrong_key, "console.tim.qq.com", Some("china")),
            "299 change(s) not attempted because console.tim.qq.com (region china) refused the credentials \
             (UserSig verification failed [70009]); check secret_key_env / --secret-key-file"
        );
        let dns = ErrorKind::Transport { message: "dns error".into(), connect: Some(ConnectFailure::Dns) };
        assert_eq!(
            stopped(AppWide::Dns, dns, "adminapisgp.im.qcloud.com", Some("singapore")),
            "299 change(s) not attempted because the host name adminapisgp.im.qcloud.com (region singapore) does \
             not resolve; check region/endpoint, or the network or proxy"
        );
        let region = ErrorKind::Api { code: 70020, info: String::new() };
        assert_eq!(
            stopped(AppWide::Region, region, "127.0.0.1:8080", None),
            "299 change(s) not attempted because 127.0.0.1:8080 does not know the app (SDKAppID not found \
             [70020]); check region/endpoint in grattr.yaml"
        );
    }
}

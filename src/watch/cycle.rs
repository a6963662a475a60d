//! One reconcile cycle: validate, plan, pass the safety guard, apply, record, and
//! keep track of failing groups (each with its back-off) and of app-wide failures
//! (which pause applying as a whole).

use super::metrics::Cycle;
use super::{ConfigError, Failing, Paused, Remote, WatchError, Watcher, now_unix};
use crate::apply::guard::{Approved, Refusal, Safety};
use crate::apply::{self, ApplyOptions, Outcome};
use crate::desired::Diagnostic;
use crate::model::GroupId;
use crate::plan::{self, PlanOptions};
use crate::state::StateError;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The longest back-off of a pause: an app-wide failure is often fixed by someone
/// watching, who should not wait long to see it resume.
const PAUSE_MAX: Duration = Duration::from_secs(300);

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// One cycle: validate everything, plan `only` these ids (all when `None`) plus
    /// every failing group that is due, and apply.
    pub(super) async fn reconcile(&mut self, only: Option<BTreeSet<GroupId>>) -> Result<(), WatchError> {
        // Stopped while reading, the index may be empty: nothing is planned from it.
        if self.stop.is_cancelled() {
            return Ok(());
        }
        // The index holds a change not settled yet: its end plans these too.
        if let Some(settling) = &mut self.settling {
            match only {
                Some(ids) => self.dirty.extend(ids),
                None => settling.plan_all(),
            }
            return Ok(());
        }
        self.invalid = self.index.has_errors();
        if self.invalid {
            let diagnostics = self.index.diagnostics();
            report_invalid(&diagnostics);
            let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
            let reason = format!(
                "{} problem(s) in the desired state; nothing is applied until they are fixed. First: {}",
                errors.len(),
                errors[0]
            );
            self.metrics.set_ready(Some(reason));
            self.metrics.cycle(Cycle::Invalid);
            if let Some(only) = only {
                self.dirty.extend(only);
            }
            return Ok(());
        }
        let now = Instant::now();
        let only = match &self.paused {
            // Deferred, not dropped: the pause's end plans them.
            Some(paused) if now < paused.next => {
                match only {
                    Some(ids) => self.dirty.extend(ids),
                    None => self.paused_all = true,
                }
                return Ok(());
            }
            Some(_) if std::mem::take(&mut self.paused_all) => None,
            Some(_) => only.map(|mut ids| {
                ids.extend(std::mem::take(&mut self.dirty));
                ids
            }),
            None => only,
        };
        // Another writer (a CI apply) may have recorded since: plan against what it recorded.
        // A store out of reach is asked again before anything is applied (take_writer).
        match self.leadership.changed().await {
            Ok(Some(record)) => {
                tracing::info!(
                    groups = record.groups.len(),
                    "the record was changed by another writer; planning against it"
                );
                self.lockfile = record;
                self.update_managed();
            }
            Ok(None) => {}
            Err(e @ StateError::Unreachable { .. }) => tracing::warn!(error = %e, "cannot read the record now"),
            Err(e) => return Err(e.into()),
        }
        let only = if self.refused.is_some() { None } else { only };
        let due: BTreeSet<GroupId> =
            self.failing.iter().filter(|(_, f)| f.next <= now).map(|(id, _)| id.clone()).collect();
        let targets = only.map(|mut ids| {
            ids.extend(due.iter().cloned());
            ids
        });
        let options = PlanOptions {
            environment: self.environment(),
            prune: self.options.prune || self.remote.environment.prune,
            targets,
            ..PlanOptions::default()
        };
        let mut plan = plan::diff(self.index.groups(), &self.lockfile.groups, &options);
        // Failing groups wait for their turn.
        plan.changes.retain(|c| self.failing.get(&c.group_id).is_none_or(|f| f.next <= now));
        self.hold_removals(&mut plan, now);
        tracing::info!(
            changes = plan.changes.len(),
            planned_in_ms = self.planning_started.elapsed().as_secs_f64() * 1000.0,
            "planned"
        );
        let outcome = match self.safety().check(&plan, self.lockfile.groups.len()) {
            Ok(approved) => {
                if self.refused.take().is_some() {
                    tracing::info!("the plan is back under the safety threshold; applying");
                }
                self.execute(approved).await?
            }
            Err(refusal) => {
                self.refused = Some(refused(
                    &refusal,
                    format!(
                        "refusing to apply: {refusal}; nothing is applied until the desired state is back under \
                         the threshold. Review the change, then raise safety_threshold in grattr.yaml (reloaded on \
                         save), or restart grattr watch with --force"
                    ),
                ));
                Cycle::Refused
            }
        };
        self.metrics.cycle(outcome);
        self.update_ready();
        Ok(())
    }

    /// The safety guard of the running configuration.
    pub(super) fn safety(&self) -> Safety {
        Safety { threshold: self.remote.environment.safety_threshold, force: self.options.force }
    }

    /// Ready unless a plan or a self-heal is being refused, or applying is paused.
    pub(super) fn update_ready(&self) {
        let paused = || self.paused.as_ref().map(|p| p.reason.clone());
        self.metrics.set_ready(self.refused.clone().or_else(|| self.heal_refused.clone()).or_else(paused));
    }

    /// Pauses applying after an app-wide failure, for a back-off that doubles with
    /// each pause in a row. One log line per back-off, not one per group.
    pub(super) fn pause(&mut self, stopped: &apply::Stopped) {
        let attempts = self.paused.as_ref().map_or(0, |p| p.attempts) + 1;
        let delay = self.options.retry_base.saturating_mul(1 << attempts.min(16).saturating_sub(1)).min(PAUSE_MAX);
        let reason = format!("paused: {stopped}; trying again in {}", humantime::format_duration(delay));
        tracing::error!(reason = ?stopped.reason, "{reason}");
        self.paused = Some(Paused { reason, attempts, next: Instant::now() + delay });
    }

    /// Ends a pause: the last cycle ran without an app-wide failure.
    pub(super) fn resume(&mut self) {
        // A wait for another writer (no attempts) was no failure.
        if self.paused.take().is_some_and(|p| p.attempts > 0) {
            tracing::info!("resumed: the app-wide failure is gone");
        }
    }

    /// Applies a plan, records it, and keeps track of what failed.
    pub(super) async fn execute(&mut self, approved: Approved<'_>) -> Result<Cycle, WatchError> {
        let plan = approved.plan();
        if plan.changes.is_empty() {
            self.resume();
            if self.failing.is_empty() {
                self.metrics.last_success.set(now_unix());
            }
            return Ok(Cycle::Noop);
        }
        let mut cycle_writer = None;
        if self.writer.is_none() {
            match self.take_writer(plan).await? {
                Some(writer) => cycle_writer = Some(writer),
                None => return Ok(Cycle::Waiting),
            }
        }
        let Some(writer) = self.writer.as_ref().or(cycle_writer.as_ref()) else {
            return Ok(Cycle::Waiting);
        };
        let journal = writer.recorder()?;
        let options =
            ApplyOptions { concurrency: self.options.concurrency, fail_fast: false, grace: self.options.grace };
        let mut report = apply::execute(approved, &self.remote.client, &journal, &options, &self.stop, |change, outcome| {
            // An app-wide failure is said once, by the pause.
            if let Outcome::Failed(error) = outcome {
                tracing::warn!(group = %change.group_id, %error, hint = apply::hint(change, error).as_deref().unwrap_or_default(), "apply failed");
            }
        })
        .await;
        let finished = journal.finish().await;
        // What was written is in the record whatever happened after.
        let written = match &finished {
            Ok(stats) => stats.records,
            Err(StateError::Unrecorded { lost, .. }) => report.recorded.len().saturating_sub(*lost),
            Err(_) => 0,
        };
        report.recorded.truncate(written);
        self.unfolded.add(report.recorded.len());
        self.lockfile.apply_records(std::mem::take(&mut report.recorded));
        if let Err(e) = finished {
            return Err(match e {
                StateError::Unrecorded { source, .. } if matches!(*source, StateError::Lapsed { .. }) => {
                    WatchError::LeaseLost(source.to_string())
                }
                e @ StateError::Lapsed { .. } => WatchError::LeaseLost(e.to_string()),
                other => other.into(),
            });
        }
        if report.lapsed {
            return Err(WatchError::LeaseLost("the lease lapsed during the run".into()));
        }
        match cycle_writer {
            // A shared store's writer's lease is held for the cycle alone.
            Some(writer) => {
                let records = std::mem::take(&mut self.unfolded).records;
                self.leadership.wrote(writer, &mut self.lockfile, records).await?;
            }
            None if self.unfolded.records == 0 => {
                // Nothing succeeded: drop the empty journal now rather than at a checkpoint.
                if let Some(writer) = &self.writer {
                    writer.discard_empty_journal().await?;
                }
            }
            None => {}
        }
        for index in &report.applied {
            let id = &plan.changes[*index].group_id;
            self.failing.remove(id);
            if let Some(changed) = self.changed_at.remove(id) {
                self.metrics.change_to_applied.observe(changed.elapsed().as_secs_f64());
            }
        }
        for (index, error) in &report.failed {
            let id = plan.changes[*index].group_id.clone();
            if report.stopped.is_some() && error.app_wide(false).is_some() {
                // Not the group's fault: it waits for the pause, not for a back-off of its own.
                self.failing.remove(&id);
                self.dirty.insert(id);
                continue;
            }
            let failing = self.failing.entry(id.clone()).or_insert(Failing { attempts: 0, next: Instant::now() });
            failing.attempts += 1;
            let delay = self
                .options
                .retry_base
                .saturating_mul(1 << failing.attempts.min(16).saturating_sub(1))
                .min(Duration::from_secs(600));
            failing.next = Instant::now() + delay;
            tracing::warn!(group = %id, attempts = failing.attempts, retry_in = ?delay, "will retry the group");
        }
        for index in report.skipped.iter().chain(&report.abandoned) {
            self.dirty.insert(plan.changes[*index].group_id.clone());
        }
        self.metrics.failing.set(self.failing.len() as i64);
        self.update_managed();
        tracing::info!(applied = report.applied.len(), failed = report.failed.len(), elapsed = ?report.elapsed, "reconciled");
        match &report.stopped {
            Some(stopped) => {
                self.pause(stopped);
                return Ok(Cycle::Paused);
            }
            // Stopped from outside is no evidence either way.
            None if report.interrupted => {}
            None => self.resume(),
        }
        Ok(if report.failed.is_empty() && report.abandoned.is_empty() {
            self.metrics.last_success.set(now_unix());
            Cycle::Applied
        } else {
            Cycle::Partial
        })
    }

    /// Takes a shared store's writer's lease for a cycle applying `plan`. `None` when
    /// the cycle must wait: another writer holds the lease (a CI apply: planned again
    /// once it is free), or recorded since the cycle planned (planned again at once,
    /// against what it recorded).
    async fn take_writer(&mut self, plan: &plan::Plan) -> Result<Option<crate::state::Lease>, WatchError> {
        let ttl = self.remote.environment.lease_ttl;
        let unreachable = |e: StateError| (format!("{e}; trying again"), crate::state::poll(ttl));
        let (reason, delay) = match self.leadership.writer("watch", ttl).await {
            Ok(Ok(writer)) => match self.leadership.changed().await {
                Ok(None) => return Ok(Some(writer)),
                Ok(Some(record)) => {
                    writer.release().await;
                    self.lockfile = record;
                    ("another writer recorded while this cycle planned; planning again".to_string(), Duration::ZERO)
                }
                Err(e @ StateError::Unreachable { .. }) => {
                    writer.release().await;
                    unreachable(e)
                }
                Err(e) => return Err(e.into()),
            },
            // The store is out of reach: the leadership lapses if it stays so.
            Err(e @ StateError::Unreachable { .. }) => unreachable(e),
            Err(e) => return Err(e.into()),
            Ok(Err(held)) => {
                let who = match &held {
                    StateError::Held { lease, .. } => lease.holder.to_string(),
                    other => other.to_string(),
                };
                (format!("waiting for the record's writer's lease, held by {who}"), crate::state::poll(ttl))
            }
        };
        tracing::info!("{reason}");
        self.dirty.extend(plan.changes.iter().map(|c| c.group_id.clone()));
        self.paused = Some(Paused { reason, attempts: 0, next: Instant::now() + delay });
        Ok(None)
    }

    /// The number of managed groups (declared or recorded), for the gauge.
    pub(super) fn update_managed(&self) {
        let managed = crate::workspace::managed_count(self.index.groups(), &self.lockfile.groups);
        self.metrics.managed.set(managed as i64);
    }
}

/// Logs a refusal of the safety guard, with its numbers as fields, and returns the
/// reason for `/readyz`.
pub(super) fn refused(refusal: &Refusal, reason: String) -> String {
    tracing::error!(
        touched = refusal.touched,
        recorded = refusal.recorded,
        threshold_percent = refusal.threshold,
        "{reason}"
    );
    reason
}

pub(super) fn report_invalid(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        match diagnostic.is_error() {
            true => tracing::error!(diagnostic = %diagnostic, "invalid desired state"),
            false => tracing::warn!(diagnostic = %diagnostic, "desired state"),
        }
    }
}

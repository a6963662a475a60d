//! The periodic resync: every managed group read live (spread over half the
//! interval, by [`crate::live`]'s reader), classified by [`crate::drift`], drift
//! reported, and with `--self-heal` reset through the same guard as every plan.

use super::metrics::Cycle;
use super::{ConfigError, Remote, WatchError, Watcher};
use crate::drift::{self, Status};
use crate::live::{self, LiveRead, ReadOptions};
use crate::model::{AppliedGroup, GroupId};
use crate::plan::{self, PlanOptions};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Reads in flight at once during a resync: it runs beside applying, in the background.
const RESYNC_CONCURRENCY: usize = 16;

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// Reads every managed group in the background, spread over half the resync interval.
    pub(super) fn start_resync(
        &self,
        results: mpsc::UnboundedSender<BTreeMap<GroupId, LiveRead>>,
    ) -> tokio::task::JoinHandle<()> {
        let groups = crate::workspace::managed(self.index.groups().keys(), self.lockfile.groups.keys(), None);
        let client = self.remote.client.clone();
        let spacing = (self.options.resync / 2).checked_div(groups.len().max(1) as u32).unwrap_or_default();
        let options = ReadOptions { concurrency: RESYNC_CONCURRENCY, spacing: spacing.max(Duration::from_micros(1)) };
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                live = live::read(&client, groups, options, |_, _| {}) => match live.stopped {
                    // Said once; the groups not read are no evidence of drift. An
                    // apply meeting the same failure pauses the watch.
                    Some(stopped) => tracing::warn!("resync stopped: {}", crate::escape::text(&stopped.to_string())),
                    None => {
                        let _ = results.send(live.groups);
                    }
                },
                () = stop.cancelled() => {}
            }
        })
    }

    /// Reports drift found by a resync, and with `--self-heal` resets drifted groups.
    pub(super) async fn on_resync(&mut self, live: BTreeMap<GroupId, LiveRead>) -> Result<(), WatchError> {
        let report = drift::classify(self.environment(), self.index.groups(), &self.lockfile.groups, &live);
        let mut drifted: BTreeMap<GroupId, AppliedGroup> = BTreeMap::new();
        for group in &report.groups {
            let id = &group.group_id;
            match (group.status, &group.live) {
                (Status::Drifted | Status::Conflict, Some(attributes)) => {
                    let changes = &group.live_changes;
                    tracing::warn!(group = %id, added = ?changes.added, removed = ?changes.removed, changed = ?changes.changed, "drifted: changed outside grattr");
                    drifted.insert(id.clone(), AppliedGroup::owned(attributes.clone(), group.ownership));
                }
                (Status::Missing, _) => tracing::warn!(group = %id, "missing: the group does not exist"),
                (Status::Unreadable, _) => {
                    let error = group.error.as_deref().unwrap_or_default();
                    tracing::warn!(group = %id, error, "could not read the group during resync");
                }
                _ => {}
            }
        }
        // Read and not changed outside grattr: whatever the desired state says of it.
        let in_sync = report.summary.in_sync + report.summary.pending;
        self.metrics.in_sync.set(in_sync as i64);
        self.metrics.drifted.set(drifted.len() as i64);
        tracing::info!(read = live.len(), drifted = drifted.len(), "resync finished");
        // While paused, healing would meet the same app-wide failure: the resync after the pause heals.
        // While a change settles (or once stopped), the index holds nothing to heal to.
        if self.paused.is_some() || self.settling.is_some() || self.stop.is_cancelled() {
            return Ok(());
        }
        if !self.options.self_heal || drifted.is_empty() || self.index.has_errors() {
            if self.heal_refused.take().is_some() && !self.index.has_errors() {
                self.update_ready();
            }
            return Ok(());
        }
        // Heal against what is live: the plan resets exactly the drifted groups.
        let targets = Some(drifted.keys().cloned().collect());
        let mut before = self.lockfile.groups.clone();
        before.extend(drifted);
        let options = PlanOptions { environment: self.environment(), targets, refresh: true, ..PlanOptions::default() };
        let plan = plan::diff(self.index.groups(), &before, &options);
        // A drifted group that is no longer declared is left as is (it is not in the plan).
        let outcome = match self.safety().check(&plan, self.lockfile.groups.len()) {
            Ok(approved) => {
                tracing::info!(groups = plan.changes.len(), "self-healing drifted groups");
                self.heal_refused = None;
                self.execute(approved).await?
            }
            Err(refusal) => {
                self.heal_refused = Some(super::cycle::refused(
                    &refusal,
                    format!(
                        "refusing to self-heal: {refusal}; the drifted groups are left as they are. Review the \
                         drift (grattr drift), then apply it with grattr apply --refresh, or restart grattr watch \
                         with --force"
                    ),
                ));
                Cycle::Refused
            }
        };
        self.metrics.cycle(outcome);
        self.update_ready();
        if outcome == Cycle::Applied {
            self.metrics.drifted.set(0);
        }
        Ok(())
    }
}

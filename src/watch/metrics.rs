//! The watcher's Prometheus metrics and readiness, shared with the HTTP endpoint.

use crate::api::client::CallEvent;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// How a reconcile cycle ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Cycle {
    /// Every change was applied.
    Applied,
    /// Some changes failed or were abandoned.
    Partial,
    /// Nothing to change.
    Noop,
    /// The desired state has errors; nothing was applied.
    Invalid,
    /// The safety guard refused the plan; nothing was applied.
    Refused,
    /// A failure about the whole app stopped the cycle; applying is paused.
    Paused,
    /// Another writer (a CI `apply`) held the record's lease, or recorded while the
    /// cycle planned: the cycle is planned again shortly.
    Waiting,
}

impl Cycle {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cycle::Applied => "applied",
            Cycle::Partial => "partial",
            Cycle::Noop => "noop",
            Cycle::Invalid => "invalid",
            Cycle::Refused => "refused",
            Cycle::Paused => "paused",
            Cycle::Waiting => "waiting",
        }
    }
}

impl EncodeLabelValue for Cycle {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// A reconcile cycle's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CycleLabels {
    /// How the cycle ended.
    pub outcome: Cycle,
}

/// An API call's endpoint and result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The endpoint.
    pub endpoint: String,
    /// `0` for success, the error code, or `transport`.
    pub code: String,
}

/// A retried endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The endpoint.
    pub endpoint: String,
}

/// Every metric the watcher exports, and whether it is ready.
pub struct Metrics {
    registry: Registry,
    /// Reconcile cycles by outcome.
    pub cycles: Family<CycleLabels, Counter>,
    /// API calls (attempts) by endpoint and code.
    pub calls: Family<CallLabels, Counter>,
    /// Retried attempts by endpoint.
    pub retries: Family<EndpointLabels, Counter>,
    /// Groups declared or recorded.
    pub managed: Gauge,
    /// Groups found in sync by the last resync.
    pub in_sync: Gauge,
    /// Groups found drifted (or in conflict) by the last resync.
    pub drifted: Gauge,
    /// Groups whose last apply failed.
    pub failing: Gauge,
    /// Groups no longer declared whose removal waits for its confirmation.
    pub removal_pending: Gauge,
    /// Unix time of the last reconcile that applied everything it meant to.
    pub last_success: Gauge<f64, AtomicU64>,
    /// Seconds from a file change to the group applied.
    pub change_to_applied: Histogram,
    /// 1 when ready.
    pub ready: Gauge,
    /// 1 while this process holds the writer's lease and reconciles.
    pub leader: Gauge,
    /// While standing by: who leads, as `/readyz` says it.
    pub standby: Mutex<Option<String>>,
    /// Why not ready.
    pub not_ready_reason: Mutex<String>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("grattr");
        let cycles = Family::<CycleLabels, Counter>::default();
        let calls = Family::<CallLabels, Counter>::default();
        let retries = Family::<EndpointLabels, Counter>::default();
        let (managed, in_sync, drifted, failing, ready) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        let last_success = Gauge::<f64, AtomicU64>::default();
        let buckets = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
        let change_to_applied = Histogram::new(buckets);
        registry.register("reconcile_cycles", "Reconcile cycles by outcome", cycles.clone());
        registry.register("api_calls", "API call attempts by endpoint and error code (0: success)", calls.clone());
        registry.register("api_retries", "API call attempts that were retried", retries.clone());
        registry.register("groups_managed", "Groups declared or recorded", managed.clone());
        registry.register("groups_in_sync", "Groups live as applied at the last resync", in_sync.clone());
        registry.register("groups_drifted", "Groups changed outside grattr at the last resync", drifted.clone());
        registry.register("groups_failing", "Groups whose last apply failed", failing.clone());
        let removal_pending = Gauge::default();
        registry.register(
            "groups_removal_pending",
            "Groups no longer declared whose removal (clear and forget) waits for its confirmation",
            removal_pending.clone(),
        );
        registry.register(
            "last_successful_reconcile_timestamp_seconds",
            "Unix time of the last reconcile that applied everything",
            last_success.clone(),
        );
        registry.register(
            "change_to_applied_seconds",
            "Seconds from a file change to its group applied",
            change_to_applied.clone(),
        );
        registry.register("ready", "1 when the first reconcile finished and the desired state is valid", ready.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the writer's lease on the record and reconciles; 0 while it stands by",
            leader.clone(),
        );
        Metrics {
            registry,
            cycles,
            calls,
            retries,
            managed,
            in_sync,
            drifted,
            failing,
            removal_pending,
            last_success,
            change_to_applied,
            ready,
            leader,
            standby: Mutex::new(None),
            not_ready_reason: Mutex::new("the first reconcile has not finished".into()),
        }
    }

    /// Counts one API call attempt.
    pub fn observe(&self, event: &CallEvent) {
        let endpoint = event.operation.name().to_string();
        let code = event.code.map_or_else(|| "transport".to_string(), |c| c.to_string());
        self.calls.get_or_create(&CallLabels { endpoint: endpoint.clone(), code }).inc();
        if event.retry {
            self.retries.get_or_create(&EndpointLabels { endpoint }).inc();
        }
    }

    /// Counts a cycle.
    pub fn cycle(&self, outcome: Cycle) {
        self.cycles.get_or_create(&CycleLabels { outcome }).inc();
    }

    /// Marks ready, or not ready with a reason.
    pub fn set_ready(&self, reason: Option<String>) {
        self.ready.set(i64::from(reason.is_none()));
        *self.not_ready_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = reason.unwrap_or_default();
    }

    /// Stands by while another process leads (`Some`: who, said on `/readyz`), or
    /// no longer (`None`).
    pub fn set_standby(&self, leader: Option<String>) {
        self.leader.set(0);
        *self.standby.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = leader;
    }

    /// Leads: holds the writer's lease and reconciles.
    pub fn set_leader(&self) {
        *self.standby.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.leader.set(1);
    }

    /// Who leads, while this process stands by.
    pub fn standby(&self) -> Option<String> {
        self.standby.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether ready, and if not, why.
    pub fn readiness(&self) -> Result<(), String> {
        if self.ready.get() == 1 {
            Ok(())
        } else {
            Err(self.not_ready_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

//! The emulator's world (groups and their attributes), its rate limiters, its
//! statistics, and the state file.

use super::{EmulatorConfig, EmulatorError};
use crate::api::wire::{GroupType, Operation};
use crate::model::{AttributeSet, GroupId};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Group {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: GroupType,
    /// Its attributes.
    pub attributes: AttributeSet,
}

/// The groups, and what the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct World {
    /// The groups that exist.
    pub groups: BTreeMap<GroupId, Group>,
    /// The last number used for a server-made id.
    pub next_id: u64,
    /// Groups dismissed (destroyed): the service answers them differently from
    /// ids that never were a group.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dismissed: BTreeSet<GroupId>,
}

/// Call counts for one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Write calls (set, modify, clear, delete) that reached the group.
    pub writes: u64,
    /// Read calls.
    pub reads: u64,
    /// The most writes seen in any one-second window.
    pub max_writes_per_second: u64,
}

/// What the emulator has been asked, for tests and benchmarks to prove which calls were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// All requests, whatever their outcome.
    pub total: u64,
    /// Requests by endpoint name (`unknown` for other paths).
    pub calls: BTreeMap<String, u64>,
    /// Answers by error code (`0` for success).
    pub codes: BTreeMap<String, u64>,
    /// Injected faults by kind: the internal error's code, `502`, `stall`, `drop`.
    pub faults: BTreeMap<String, u64>,
    /// Calls per group.
    pub groups: BTreeMap<String, GroupStats>,
}

/// One write that changed a group, in the order the emulator applied them: the
/// emulator's own record of when each write arrived, so that tests can prove that
/// two writers never wrote at once, or that a writer whose lease lapsed wrote nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// Its place among the writes, from 1.
    pub seq: u64,
    /// Microseconds since the emulator started.
    pub at_us: u64,
    /// The endpoint.
    pub operation: String,
    /// The group.
    pub group: String,
    /// The group's attributes after the write.
    pub attributes: AttributeSet,
}

/// The writes kept: the most recent, so that a long-running emulator stays bounded.
pub(super) const WRITES_KEPT: usize = 100_000;

impl Stats {
    /// Requests to `operation`.
    pub fn calls_to(&self, operation: Operation) -> u64 {
        self.calls.get(operation.name()).copied().unwrap_or(0)
    }

    /// Answers with `code`.
    pub fn answers(&self, code: u32) -> u64 {
        self.codes.get(&code.to_string()).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct WriteWindow {
    recent: VecDeque<Instant>,
}

pub(super) struct Shared {
    pub config: EmulatorConfig,
    world: Mutex<World>,
    stats: Mutex<Stats>,
    windows: Mutex<HashMap<GroupId, WriteWindow>>,
    endpoint_limits: HashMap<Operation, DefaultDirectRateLimiter>,
    group_limit: Option<DefaultKeyedRateLimiter<GroupId>>,
    dirty: AtomicBool,
    started: Instant,
    writes: Mutex<(u64, VecDeque<Write>)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(config: EmulatorConfig) -> Result<Shared, EmulatorError> {
        let mut world = match &config.state_file {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| EmulatorError::State { path: path.clone(), message: e.to_string() })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => World::default(),
                Err(e) => return Err(EmulatorError::State { path: path.clone(), message: e.to_string() }),
            },
            None => World::default(),
        };
        for (id, kind) in &config.groups {
            world.groups.entry(id.clone()).or_insert(Group { kind: *kind, attributes: AttributeSet::new() });
        }
        for id in &config.dismissed {
            world.groups.remove(id);
            world.dismissed.insert(id.clone());
        }
        let quota = |n: u32| Quota::per_second(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        let (endpoint_limits, group_limit) = match config.limits {
            Some(limits) => (
                Operation::ALL.iter().map(|e| (*e, RateLimiter::direct(quota(limits.per_endpoint)))).collect(),
                Some(RateLimiter::keyed(quota(limits.group_writes))),
            ),
            None => (HashMap::new(), None),
        };
        Ok(Shared {
            config,
            world: Mutex::new(world),
            stats: Mutex::new(Stats::default()),
            windows: Mutex::new(HashMap::new()),
            endpoint_limits,
            group_limit,
            dirty: AtomicBool::new(false),
            started: Instant::now(),
            writes: Mutex::new((0, VecDeque::new())),
        })
    }

    pub(super) fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// Notes a write that left `group` with `attributes` (call it holding the world's
    /// lock, so that the order noted is the order applied).
    pub(super) fn note_write(&self, operation: Operation, group: &GroupId, attributes: &AttributeSet) {
        let mut writes = lock(&self.writes);
        writes.0 += 1;
        let write = Write {
            seq: writes.0,
            at_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            operation: operation.name().to_string(),
            group: group.to_string(),
            attributes: attributes.clone(),
        };
        if writes.1.len() == WRITES_KEPT {
            writes.1.pop_front();
        }
        writes.1.push_back(write);
    }

    /// The writes noted, oldest first (the most recent [`WRITES_KEPT`]).
    pub(super) fn writes(&self) -> Vec<Write> {
        lock(&self.writes).1.iter().cloned().collect()
    }

    pub(super) fn reset_stats(&self) {
        *lock(&self.stats) = Stats::default();
        lock(&self.windows).clear();
    }

    pub(super) fn record_call(&self, operation: Option<Operation>) {
        let mut stats = lock(&self.stats);
        stats.total += 1;
        *stats.calls.entry(operation.map_or("unknown", Operation::name).to_string()).or_default() += 1;
    }

    pub(super) fn record_answer(&self, code: u32) {
        *lock(&self.stats).codes.entry(code.to_string()).or_default() += 1;
    }

    pub(super) fn record_fault(&self, kind: &str) {
        *lock(&self.stats).faults.entry(kind.to_string()).or_default() += 1;
    }

    /// Counts a call that reached `group`, tracking the busiest second of writes.
    pub(super) fn record_group_call(&self, group: &GroupId, write: bool) {
        let mut max_in_window = 0;
        if write {
            let now = Instant::now();
            let mut windows = lock(&self.windows);
            let window = windows.entry(group.clone()).or_default();
            window.recent.push_back(now);
            while window.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                window.recent.pop_front();
            }
            max_in_window = window.recent.len() as u64;
        }
        let mut stats = lock(&self.stats);
        let entry = stats.groups.entry(group.to_string()).or_default();
        if write {
            entry.writes += 1;
            entry.max_writes_per_second = entry.max_writes_per_second.max(max_in_window);
        } else {
            entry.reads += 1;
        }
    }

    /// Whether a call to `endpoint` is within the per-endpoint limit.
    pub(super) fn endpoint_allows(&self, operation: Operation) -> bool {
        self.endpoint_limits.get(&operation).is_none_or(|limiter| limiter.check().is_ok())
    }

    /// Whether a write to `group` is within the per-group limit.
    pub(super) fn group_allows(&self, group: &GroupId) -> bool {
        self.group_limit.as_ref().is_none_or(|limiter| limiter.check_key(group).is_ok())
    }

    /// Runs `f` on the world; marks it changed when `f` says so.
    pub(super) fn with_world<T>(&self, f: impl FnOnce(&mut World) -> (T, bool)) -> T {
        let mut world = lock(&self.world);
        let (result, changed) = f(&mut world);
        if changed {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// Dismisses `group`: it and its attributes are gone, and calls about it are
    /// answered as about a dismissed group.
    pub(super) fn dismiss(&self, group: &GroupId) {
        self.with_world(|world| {
            world.groups.remove(group);
            world.dismissed.insert(group.clone());
            ((), true)
        });
    }

    pub(super) fn attributes(&self, group: &GroupId) -> Option<AttributeSet> {
        lock(&self.world).groups.get(group).map(|g| g.attributes.clone())
    }

    /// Writes the state file, when there is one and something changed.
    pub(super) fn save(&self) -> Result<(), EmulatorError> {
        let Some(path) = &self.config.state_file else { return Ok(()) };
        if !self.dirty.swap(false, Ordering::AcqRel) && path.exists() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&*lock(&self.world)).unwrap_or_default();
        crate::files::write_atomically(path, &bytes)
            .map_err(|e| EmulatorError::State { path: path.clone(), message: e.to_string() })?;
        Ok(())
    }

    /// Saves the state file twice a second while it changes, until `stop`.
    pub(super) async fn autosave(self: Arc<Self>, stop: CancellationToken) {
        if self.config.state_file.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if self.dirty.load(Ordering::Acquire)
                && let Err(e) = self.save()
            {
                tracing::warn!(error = %e, "cannot save the emulator state");
            }
        }
    }
}

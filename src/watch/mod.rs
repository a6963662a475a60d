//! The long-running reconciler: the same load → diff → apply path as `apply`,
//! driven by file events, a periodic resync of the live state, and retries.
//! Runtime errors (an invalid file, an API outage, a failing group, a state that
//! cannot be used at start) are reported and the loop goes on; only a failure to
//! watch or to record, or another writer holding the lock, ends it.

mod cycle;
mod files;
pub mod git;
pub mod metrics;
mod reread;
mod resync;
pub mod server;
mod settle;
mod state;

use crate::api::client::{Client, ClientError};
use crate::api::usersig::SecretKeyError;
use crate::desired::Environment;
use crate::desired::config::ConfigErrors;
use crate::desired::index::DesiredIndex;
use crate::live::LiveRead;
use crate::lockfile::{Lockfile, LockfileError};
use crate::model::GroupId;
use crate::plan::PlanEnvironment;
use crate::state::{Leadership, Lease, StateError};
use files::{canonical, config_dir, link_dirs, watch, watch_dirs};
use metrics::Metrics;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use state::{Leading, OpenError, Unfolded, open_state};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the watcher applies to: the environment, and a client of its API.
pub struct Remote {
    /// The environment.
    pub environment: Environment,
    /// A client of its API.
    pub client: Client,
}

/// How the watcher behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time that ends a burst of file events.
    pub debounce: Duration,
    /// How often the live state is read in full.
    pub resync: Duration,
    /// Clear and forget groups that are no longer declared.
    pub prune: bool,
    /// Reset drifted groups to the desired state after a resync.
    pub self_heal: bool,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// How long calls in flight may take once stopped.
    pub grace: Duration,
    /// The first delay before a failing group is tried again (doubling, up to 10 minutes).
    pub retry_base: Duration,
    /// Apply plans the safety guard would refuse (`--force`).
    pub force: bool,
    /// How long every file a change read must hold the same content before the
    /// change is planned (zero: at once).
    pub settle: Duration,
    /// How long a group must stay undeclared before it is removed (cleared and
    /// forgotten, with pruning on).
    pub confirm_removal: Duration,
}

/// Why the watcher stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The files cannot be watched.
    #[error("cannot watch {path}: {message}")]
    Watch {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The lockfile cannot be read or written.
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    /// The configuration cannot be loaded at start.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The task opening the state failed.
    #[error("opening the state: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The record cannot be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The writer's lease was lost: this process stands by again.
    #[error("lost the writer's lease: {0}")]
    LeaseLost(String),
}

/// Why the configuration cannot be used (at start, on SIGHUP, after an edit).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `grattr.yaml` is invalid, or selects no environment.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    /// The secret key cannot be read.
    #[error(transparent)]
    Key(#[from] SecretKeyError),
    /// No client can be made of it (an invalid endpoint).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// How often a state that cannot be used is tried again (SIGHUP tries at once).
const STATE_RETRY: Duration = Duration::from_secs(5);

/// How long re-reading and resolving a change may take before `/readyz` says the
/// watcher is not ready: shorter than a Kubernetes probe's default period (10 s) and
/// timeout (1 s) are long, so that a probe sees a long plan, and longer than an
/// ordinary edit of a large repository takes, so that readiness does not flap on each.
const PLANNING_NOT_READY: Duration = Duration::from_secs(1);

struct Failing {
    attempts: u32,
    next: Instant,
}

/// Applying is paused by a failure about the whole app (a wrong key, a host that
/// cannot be reached): every group would fail the same way, so no group is tried
/// until the back-off is over, and then the paused changes are tried again.
struct Paused {
    /// The sentence logged and shown on /readyz.
    reason: String,
    /// Back-offs so far.
    attempts: u32,
    /// When to try again.
    next: Instant,
}

/// The watcher's state between events.
struct Watcher<L: Fn() -> Result<Remote, ConfigError>> {
    load: L,
    remote: Remote,
    /// The configuration file, resolved (where it is watched).
    config_path: PathBuf,
    /// The configuration file as given, through any symlink: see [`Watcher::follow_move`].
    config_link: PathBuf,
    /// The groups directory, resolved (where it is watched).
    groups_dir: PathBuf,
    /// What is watched for the overlays (see [`files::overlay_watches`]).
    overlay_watches: Vec<(PathBuf, RecursiveMode)>,
    index: DesiredIndex,
    /// The leadership of the record's watchers.
    leadership: Leadership,
    /// The writer's lease: held throughout with local files (whose one lock is the
    /// leadership too); with a shared store, taken for each cycle that records.
    writer: Option<Lease>,
    lockfile: Lockfile,
    options: WatchOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    /// Ids whose desired state changed since they were last applied.
    dirty: BTreeSet<GroupId>,
    /// When each dirty id's file changed, for the change-to-applied latency.
    changed_at: HashMap<GroupId, Instant>,
    failing: HashMap<GroupId, Failing>,
    /// When the current cycle started re-reading files, to log how long planning took.
    planning_started: Instant,
    /// Records in the journal, not yet in the lockfile's file (they are in `lockfile`).
    unfolded: Unfolded,
    /// Why the last cycle's plan was refused by the safety guard, if it was. While
    /// it is, every cycle plans every group, so that what is counted is the whole
    /// change pending, not the part of it the last file event touched.
    refused: Option<String>,
    /// Why the last self-heal was refused by the safety guard, if it was; cleared
    /// by the next resync that heals, or finds less drift.
    heal_refused: Option<String>,
    /// Applying is paused by an app-wide failure, if it is.
    paused: Option<Paused>,
    /// A cycle deferred by the pause wanted every group planned.
    paused_all: bool,
    /// The last cycle found the desired state invalid: nothing can be planned until a
    /// file changes, so retries and the pause's end wait for that instead of spinning.
    invalid: bool,
    /// A change read and waiting for its files to settle, if one is.
    settling: Option<settle::Settling>,
    /// Groups no longer declared whose removal waits for its confirmation.
    pending_removals: BTreeMap<GroupId, settle::Removal>,
    /// What `/readyz` said before reading a change made it say a change is being planned.
    planning_mark: Option<Option<String>>,
    /// When files a passing failure kept unread are read again.
    reread: reread::Reread,
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Waits until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Runs the watcher until `stop`: stands by while another writer holds the record's
/// lease, then leads: reconciles once, then on every burst of file changes, every
/// `resync`, on `reload` (SIGHUP), and when failing groups are due. A lease lost
/// (not renewed in time, or taken over) makes it stand by again.
pub async fn run<L: Fn() -> Result<Remote, ConfigError>>(
    config_path: &Path,
    load: L,
    options: WatchOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> Result<(), WatchError> {
    let mut remote = load()?;
    loop {
        let Some(leading) = stand_by(&mut remote, &load, &metrics, &stop, &mut reload).await? else {
            return Ok(());
        };
        let leading = lead(config_path, &load, remote, leading, &options, &metrics, &stop, &mut reload);
        match leading.await {
            Err(WatchError::LeaseLost(why)) => {
                tracing::error!(
                    reason = %why,
                    "lost the writer's lease: nothing more is applied or recorded by this process; standing by"
                );
                metrics.set_standby(Some("none: the lease was lost; waiting to take it again".into()));
                remote = load()?;
            }
            other => return other,
        }
    }
}

/// Takes the writer's lease on the record and opens it, standing by while another
/// writer holds it. A state that cannot be used (a store that cannot be reached, a
/// state directory not writable, a corrupt record or seed) is a reason not to be
/// ready, said on /readyz, not a crash loop that says nothing. `None` when stopped.
async fn stand_by<L: Fn() -> Result<Remote, ConfigError>>(
    remote: &mut Remote,
    load: &L,
    metrics: &Metrics,
    stop: &CancellationToken,
    reload: &mut mpsc::UnboundedReceiver<()>,
) -> Result<Option<Leading>, WatchError> {
    loop {
        let wait = match open_state(&remote.environment).await {
            Ok(opened) => {
                metrics.set_leader();
                // Local files have one lock for both; a shared store, a leader's lease (the
                // writer's lease is taken per cycle that records).
                match opened.writer.is_some() {
                    true => tracing::info!("leading: holding the record's lock"),
                    false => tracing::info!("leading: holding the leader's lease on the record"),
                }
                return Ok(Some(opened));
            }
            Err(OpenError::Standby(leader)) => {
                // Said once per leader, not at every poll.
                let standby = format!("the record's lease is held by {leader}");
                if metrics.standby().as_deref() != Some(standby.as_str()) {
                    tracing::info!(leader = %crate::escape::text(&leader), "standing by: another process leads");
                }
                metrics.set_standby(Some(standby));
                metrics.set_ready(Some("standing by".into()));
                crate::state::poll(remote.environment.lease_ttl)
            }
            Err(OpenError::Unusable(reason)) => {
                let reason = format!(
                    "the state cannot be used: {reason}; nothing is applied until it can (tried again every {}s, and on SIGHUP)",
                    STATE_RETRY.as_secs()
                );
                tracing::error!("{reason}");
                metrics.set_standby(None);
                metrics.set_ready(Some(reason));
                STATE_RETRY
            }
        };
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(wait) => {}
            Some(()) = reload.recv() => match load() {
                Ok(reloaded) => *remote = reloaded,
                Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
            },
        }
    }
}

/// Leads until stopped or the lease is lost ([`WatchError::LeaseLost`]).
#[allow(clippy::too_many_arguments)]
async fn lead<L: Fn() -> Result<Remote, ConfigError>>(
    config_path: &Path,
    load: &L,
    remote: Remote,
    leading: Leading,
    options: &WatchOptions,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
    reload: &mut mpsc::UnboundedReceiver<()>,
) -> Result<(), WatchError> {
    let (options, metrics) = (options.clone(), metrics.clone());
    metrics.set_ready(Some("the first reconcile has not finished".into()));
    let groups_dir = canonical(&remote.environment.groups_dir);
    let (events_tx, mut events) = mpsc::unbounded_channel::<(Vec<PathBuf>, Instant)>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        options.debounce,
        None,
        move |result: notify_debouncer_full::DebounceEventResult| match result {
            Ok(batch) => {
                let first = batch.iter().map(|e| e.time).min().unwrap_or_else(Instant::now);
                let paths: Vec<PathBuf> = batch
                    .into_iter()
                    .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = events_tx.send((paths, first));
                }
            }
            Err(errors) => {
                for error in errors {
                    tracing::warn!(%error, "file watching reported an error; rescanning");
                }
                let _ = events_tx.send((Vec::new(), Instant::now()));
            }
        },
    )
    .map_err(|e| WatchError::Watch { path: groups_dir.clone(), message: e.to_string() })?;
    let config_link = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let config_path = canonical(config_path);
    watch_dirs(&mut debouncer, &groups_dir, &config_path)?;
    // git-sync, and deploy tools like it, publish each commit by swapping a symlink to
    // a new checkout: watch the directory of every symlink on the way, to follow it.
    for dir in link_dirs(&[&config_link, &remote.environment.groups_dir]) {
        if dir != config_dir(&config_path) {
            watch(&mut debouncer, &dir, RecursiveMode::NonRecursive)?;
        }
    }

    let overlays = canonical_overlays(&remote.environment);
    let (dir, ownership) = (groups_dir.clone(), remote.environment.ownership);
    // Off the loop: a repository that takes long to read must not hold SIGTERM.
    let loading = tokio::task::spawn_blocking(move || {
        let mut index = DesiredIndex::load_with(&dir, &overlays);
        index.set_default_ownership(ownership);
        index
    });
    let index = tokio::select! {
        biased;
        () = stop.cancelled() => return Ok(()),
        index = loading => index?,
    };
    let Leading { leadership, writer, lockfile } = leading;
    let mut watcher = Watcher {
        load,
        remote,
        leadership,
        writer,
        config_path,
        config_link,
        groups_dir,
        overlay_watches: Vec::new(),
        index,
        lockfile,
        options,
        metrics,
        stop: stop.clone(),
        dirty: BTreeSet::new(),
        changed_at: HashMap::new(),
        failing: HashMap::new(),
        planning_started: Instant::now(),
        unfolded: Unfolded::default(),
        refused: None,
        heal_refused: None,
        paused: None,
        paused_all: false,
        invalid: false,
        settling: None,
        pending_removals: BTreeMap::new(),
        planning_mark: None,
        reread: reread::Reread::default(),
    };
    watcher.sync_overlay_watches(&mut debouncer)?;
    tracing::info!(groups = watcher.index.groups().len(), files = watcher.index.files(), "watching");
    watcher.update_managed();
    let result = watcher.watch(&mut debouncer, &mut events, reload).await;
    if result.is_ok() {
        watcher.checkpoint().await?;
        if let Some(writer) = watcher.writer.take() {
            writer.release().await;
        }
        watcher.leadership.release().await;
        tracing::info!("stopped");
    }
    drop(debouncer);
    result
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// Reconciles once, then on every event until stopped.
    async fn watch(
        &mut self,
        debouncer: &mut files::Debouncer,
        events: &mut mpsc::UnboundedReceiver<(Vec<PathBuf>, Instant)>,
        reload: &mut mpsc::UnboundedReceiver<()>,
    ) -> Result<(), WatchError> {
        self.reconcile(None).await?;
        let mut resync_task = None;
        let result = self.events(&mut resync_task, debouncer, events, reload).await;
        if let Some(task) = resync_task {
            task.abort();
        }
        result
    }

    /// Handles events until stopped; `resync_task` is the resync running, if one is.
    async fn events(
        &mut self,
        resync_task: &mut Option<tokio::task::JoinHandle<()>>,
        debouncer: &mut files::Debouncer,
        events: &mut mpsc::UnboundedReceiver<(Vec<PathBuf>, Instant)>,
        reload: &mut mpsc::UnboundedReceiver<()>,
    ) -> Result<(), WatchError> {
        let watcher = self;
        let stop = watcher.stop.clone();
        let (resync_tx, mut resyncs) = mpsc::unbounded_channel::<BTreeMap<GroupId, LiveRead>>();
        let mut resync_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + watcher.options.resync, watcher.options.resync);
        resync_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // While paused, failing groups wait for the pause too.
            let retry_at = match &watcher.paused {
                Some(paused) => Some(paused.next),
                None => watcher.failing.values().map(|f| f.next).min(),
            };
            // While it settles, or is invalid, no retry can be planned: the next read plans
            // the failing groups that are due with the change.
            let retry = sleep_until(retry_at.filter(|_| watcher.settling.is_none() && !watcher.invalid));
            let checkpoint = sleep_until(watcher.unfolded.checkpoint_at());
            let settled = sleep_until(watcher.settling.as_ref().map(|s| s.due));
            let removal = sleep_until(watcher.next_removal());
            let reread = sleep_until(watcher.reread_at());
            tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                () = watcher.leadership.lost() => return Err(WatchError::LeaseLost("the leadership could not be renewed in time".into())),
                () = checkpoint => watcher.checkpoint().await?,
                Some((paths, first)) = events.recv() => {
                    let (paths, first) = watcher.coalesce(paths, first, events).await;
                    // A symlink swapped to a new checkout publishes it whole, at once: no settling.
                    if watcher.follow_move(debouncer).await? {
                        watcher.reconcile(None).await?;
                    } else {
                        watcher.read_change(paths, first, false, debouncer).await?;
                    }
                }
                Some(()) = reload.recv() => {
                    tracing::info!("reloading the configuration and every file (SIGHUP)");
                    if watcher.follow_move(debouncer).await? {
                        watcher.reconcile(None).await?;
                    } else {
                        watcher.read_change(Vec::new(), Instant::now(), true, debouncer).await?;
                    }
                }
                () = settled => watcher.check_settled(debouncer).await?,
                () = removal => {
                    let due = watcher.removals_due();
                    watcher.planning_started = Instant::now();
                    watcher.reconcile(Some(due)).await?;
                }
                _ = resync_timer.tick() => {
                    if resync_task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                        *resync_task = Some(watcher.start_resync(resync_tx.clone()));
                    }
                }
                Some(live) = resyncs.recv() => watcher.on_resync(live).await?,
                () = reread => watcher.reread(debouncer).await?,
                () = retry => {
                    watcher.planning_started = Instant::now();
                    watcher.reconcile(Some(BTreeSet::new())).await?;
                }
            }
        }
    }
}

/// The environment's overlays, resolved (where they are watched, and how file events name them).
fn canonical_overlays(environment: &Environment) -> Vec<crate::desired::OverlayPath> {
    let overlays = environment.overlays.iter();
    overlays.map(|o| crate::desired::OverlayPath { path: canonical(&o.path), at: o.at.clone() }).collect()
}

impl<L: Fn() -> Result<Remote, ConfigError>> Watcher<L> {
    /// Loads the configuration again and takes what a running watcher can follow of
    /// it: the default ownership, the overlays (watched from now on). Only a failure
    /// to watch is an error; an invalid configuration keeps the previous one.
    /// Returns false when stopped meanwhile.
    async fn reload_config(&mut self, debouncer: &mut files::Debouncer) -> Result<bool, WatchError> {
        match (self.load)() {
            Ok(remote) => match self.needs_restart(&remote.environment) {
                Some(change) => tracing::error!(
                    change = %change,
                    "the configuration changes what this process holds, which needs a restart of grattr watch; \
                     keeping the running configuration"
                ),
                None => {
                    let (ownership, overlays) = (remote.environment.ownership, canonical_overlays(&remote.environment));
                    let take = move |index: &mut DesiredIndex| {
                        let mut changed = index.set_default_ownership(ownership);
                        changed.extend(index.set_overlays(&overlays));
                        changed
                    };
                    let Some(changed) = self.off_loop(take).await? else { return Ok(false) };
                    self.dirty.extend(changed);
                    self.remote = remote;
                    self.sync_overlay_watches(debouncer)?;
                }
            },
            Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
        }
        Ok(true)
    }

    /// Runs `work` on the index off the async loop (reading and resolving a large
    /// repository can take long), while the loop keeps answering SIGTERM: stopped
    /// meanwhile, it returns `None` at once and the watcher holds an empty index,
    /// which nothing plans again (every cycle checks the stop first).
    async fn off_loop<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut DesiredIndex) -> T + Send + 'static,
    ) -> Result<Option<T>, WatchError> {
        let mut index = std::mem::take(&mut self.index);
        let done = self
            .blocking(move || {
                let out = work(&mut index);
                (index, out)
            })
            .await?;
        Ok(done.map(|(index, out)| {
            self.index = index;
            out
        }))
    }

    /// Runs `work` (reading, digesting or resolving files) off the async loop, and
    /// returns `None` at once if stopped meanwhile. Once the change being read has
    /// taken [`PLANNING_NOT_READY`], `/readyz` says a change is being planned, until
    /// [`Watcher::end_planning`].
    async fn blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, WatchError> {
        if self.stop.is_cancelled() {
            return Ok(None);
        }
        let mut task = tokio::task::spawn_blocking(work);
        let slow = sleep_until(Some(self.planning_started + PLANNING_NOT_READY));
        tokio::pin!(slow);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return Ok(None),
                joined = &mut task => return Ok(Some(joined?)),
                () = &mut slow, if self.planning_mark.is_none() => {
                    self.planning_mark = Some(self.metrics.readiness().err());
                    let seen = SystemTime::now().checked_sub(self.planning_started.elapsed()).unwrap_or_else(SystemTime::now);
                    let reason = format!(
                        "planning a change seen at {}: reading and resolving the files takes over {}s; \
                         nothing of it is applied until it is planned",
                        humantime::format_rfc3339_seconds(seen),
                        PLANNING_NOT_READY.as_secs()
                    );
                    tracing::info!("{reason}");
                    self.metrics.set_ready(Some(reason));
                }
            }
        }
    }

    /// The change is read: `/readyz` says again what it said before, if reading made
    /// it say a change is being planned (the cycle that plans it then says its own).
    fn end_planning(&mut self) {
        if let Some(before) = self.planning_mark.take() {
            self.metrics.set_ready(before);
        }
    }

    /// What `new` changes that a running watcher cannot follow: it holds the lock of
    /// its lockfile and that lockfile's record (of one app) in memory, and watches its
    /// groups directory. Taking any of these over on the fly would write a lockfile it
    /// has not locked, or plan one app's groups against another app's record.
    fn needs_restart(&self, new: &Environment) -> Option<String> {
        let old = &self.remote.environment;
        let dir = |path: &Path| match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => canonical(dir),
            _ => canonical(Path::new(".")),
        };
        let same_file = |a: &Path, b: &Path| a.file_name() == b.file_name() && dir(a) == dir(b);
        if new.sdkappid != old.sdkappid {
            Some(format!("sdkappid from {} to {}", old.sdkappid, new.sdkappid))
        } else if new.state != old.state {
            Some("where the record lives (state:)".to_string())
        } else if !same_file(&new.lockfile, &old.lockfile) {
            Some(format!("the lockfile from {} to {}", old.lockfile.display(), new.lockfile.display()))
        } else if canonical(&new.groups_dir) != self.groups_dir {
            Some(format!("the groups directory from {} to {}", self.groups_dir.display(), new.groups_dir.display()))
        } else {
            None
        }
    }

    fn environment(&self) -> PlanEnvironment {
        PlanEnvironment { name: self.remote.environment.name.clone(), sdkappid: self.remote.environment.sdkappid }
    }
}

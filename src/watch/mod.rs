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
mod state;

use crate::api::client::{Client, ClientError};
use crate::api::usersig::SecretKeyError;
use crate::desired::Environment;
use crate::desired::config::ConfigErrors;
use crate::desired::index::DesiredIndex;
use crate::live::LiveRead;
use crate::lockfile::{LockError, Lockfile, LockfileError};
use crate::model::GroupId;
use crate::plan::PlanEnvironment;
use files::{canonical, config_dir, link_dirs, watch, watch_dirs};
use metrics::Metrics;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use state::{OpenError, Unfolded, open_state};
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
    /// How long to wait for another grattr holding the lockfile's lock.
    pub lock_timeout: Duration,
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
    /// Another grattr holds the lockfile's lock: two writers of one record would each
    /// record a different truth.
    #[error(transparent)]
    Lock(LockError),
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

/// Runs the watcher until `stop`: reconciles once, then on every burst of file
/// changes, every `resync`, on `reload` (SIGHUP), and when failing groups are due.
pub async fn run<L: Fn() -> Result<Remote, ConfigError>>(
    config_path: &Path,
    load: L,
    options: WatchOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> Result<(), WatchError> {
    let mut remote = load()?;
    // A state that cannot be used (a state directory not writable, a corrupt record or
    // seed) is a reason not to be ready, said on /readyz, not a crash loop that says nothing.
    let (_lock, lockfile) = loop {
        let environment = remote.environment.clone();
        let timeout = options.lock_timeout;
        let opened = tokio::task::spawn_blocking(move || open_state(&environment, timeout)).await?;
        let reason = match opened {
            Ok(opened) => break opened,
            Err(OpenError::Held(e)) => return Err(WatchError::Lock(e)),
            Err(OpenError::Unusable(reason)) => reason,
        };
        let reason = format!(
            "the state cannot be used: {reason}; nothing is applied until it can (tried again every {}s, and on SIGHUP)",
            STATE_RETRY.as_secs()
        );
        tracing::error!("{reason}");
        metrics.set_ready(Some(reason));
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(STATE_RETRY) => {}
            Some(()) = reload.recv() => match load() {
                Ok(reloaded) => remote = reloaded,
                Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
            },
        }
    };
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
    let mut index = DesiredIndex::load_with(&groups_dir, &overlays);
    index.set_default_ownership(remote.environment.ownership);
    let mut watcher = Watcher {
        load,
        remote,
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
        reread: reread::Reread::default(),
    };
    watcher.sync_overlay_watches(&mut debouncer)?;
    tracing::info!(groups = watcher.index.groups().len(), files = watcher.index.files(), "watching");
    watcher.update_managed();
    watcher.reconcile(None).await?;

    let (resync_tx, mut resyncs) = mpsc::unbounded_channel::<BTreeMap<GroupId, LiveRead>>();
    let mut resync_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut resync_timer =
        tokio::time::interval_at(tokio::time::Instant::now() + watcher.options.resync, watcher.options.resync);
    resync_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // While paused, failing groups wait for the pause too.
        let retry_at = match &watcher.paused {
            Some(paused) => Some(paused.next),
            None => watcher.failing.values().map(|f| f.next).min(),
        };
        let retry = sleep_until(retry_at);
        let checkpoint = sleep_until(watcher.unfolded.checkpoint_at());
        let reread = sleep_until(watcher.reread_at());
        tokio::select! {
            () = stop.cancelled() => break,
            () = checkpoint => watcher.checkpoint()?,
            Some((paths, first)) = events.recv() => {
                let (paths, first) = watcher.coalesce(paths, first, &mut events).await;
                if watcher.follow_move(&mut debouncer)? {
                    watcher.reconcile(None).await?;
                } else {
                    watcher.on_files_changed(paths, first, &mut debouncer).await?;
                }
            }
            Some(()) = reload.recv() => {
                tracing::info!("reloading the configuration and every file (SIGHUP)");
                watcher.planning_started = Instant::now();
                watcher.follow_move(&mut debouncer)?;
                watcher.reload_config(&mut debouncer)?;
                let affected = watcher.index.rescan();
                watcher.dirty.extend(affected);
                watcher.reconcile(None).await?;
            }
            _ = resync_timer.tick() => {
                if resync_task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                    resync_task = Some(watcher.start_resync(resync_tx.clone()));
                }
            }
            Some(live) = resyncs.recv() => watcher.on_resync(live).await?,
            () = reread => watcher.reread().await?,
            () = retry => {
                watcher.planning_started = Instant::now();
                watcher.reconcile(Some(BTreeSet::new())).await?;
            }
        }
    }
    if let Some(task) = resync_task {
        task.abort();
    }
    drop(debouncer);
    watcher.checkpoint()?;
    tracing::info!("stopped");
    Ok(())
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
    fn reload_config(&mut self, debouncer: &mut files::Debouncer) -> Result<(), WatchError> {
        match (self.load)() {
            Ok(remote) => match self.needs_restart(&remote.environment) {
                Some(change) => tracing::error!(
                    change = %change,
                    "the configuration changes what this process holds, which needs a restart of grattr watch; \
                     keeping the running configuration"
                ),
                None => {
                    let changed = self.index.set_default_ownership(remote.environment.ownership);
                    self.dirty.extend(changed);
                    let changed = self.index.set_overlays(&canonical_overlays(&remote.environment));
                    self.dirty.extend(changed);
                    self.remote = remote;
                    self.sync_overlay_watches(debouncer)?;
                }
            },
            Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
        }
        Ok(())
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

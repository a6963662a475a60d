//! The long-running reconciler: the same load → diff → apply path as `apply`,
//! driven by file events, a periodic resync of the live state, and retries.
//! Runtime errors (an invalid file, an API outage, a failing group, a state that
//! cannot be used at start) are reported and the loop goes on; only a failure to
//! watch or to record, or another writer holding the lock, ends it.

pub mod metrics;
pub mod server;

use crate::api::client::Client;
use crate::apply::guard::{Approved, Refusal, Safety};
use crate::apply::{self, ApplyOptions, Outcome};
use crate::desired::index::DesiredIndex;
use crate::desired::{Diagnostic, Environment};
use crate::live;
use crate::lockfile::{JournalWriter, LockError, LockGuard, Lockfile, LockfileError, remove_journal};
use crate::model::{AppliedGroup, GroupId};
use crate::plan::{self, PlanEnvironment, PlanOptions};
use futures_util::StreamExt;
use metrics::{Cycle, Metrics};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the watcher applies to: the environment, and a client of its API.
pub struct Target {
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
    #[error("{0}")]
    Config(String),
    /// Another grattr holds the lockfile's lock: two writers of one record would each
    /// record a different truth.
    #[error(transparent)]
    Lock(LockError),
}

/// How often a state that cannot be used is tried again (SIGHUP tries at once).
const STATE_RETRY: Duration = Duration::from_secs(5);

/// Takes the lock of the environment's lockfile, seeds a state directory never
/// written from the repository's lockfile, and folds an interrupted run's journal.
fn open_state(environment: &Environment, lock_timeout: Duration) -> Result<(LockGuard, Lockfile), OpenError> {
    let (path, sdkappid) = (&environment.lockfile, environment.sdkappid);
    if environment.seed_lockfile.is_some() {
        crate::lockfile::create_state_dir(path)?;
    }
    let lock = LockGuard::acquire(path, "watch", lock_timeout).map_err(|e| match e {
        LockError::Held { .. } => OpenError::Held(e),
        other => OpenError::Unusable(other.to_string()),
    })?;
    if let Some(seed) = &environment.seed_lockfile
        && let Some(groups) = crate::lockfile::seed(path, seed, sdkappid)?
    {
        tracing::info!(
            groups,
            from = %crate::escape::path(seed),
            to = %crate::escape::path(path),
            "seeded the state from the repository's lockfile; from now on the state is the record, and the \
             repository's lockfile is not read again"
        );
    }
    let (lockfile, recovered) = Lockfile::fold(path, sdkappid)?;
    if recovered > 0 {
        tracing::info!(records = recovered, "recovered the records of an interrupted run");
    }
    Ok((lock, lockfile))
}

/// Why the state could not be opened.
enum OpenError {
    /// Another writer holds the lock.
    Held(LockError),
    /// The state cannot be used now: why.
    Unusable(String),
}

impl From<LockfileError> for OpenError {
    fn from(e: LockfileError) -> Self {
        OpenError::Unusable(e.to_string())
    }
}

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

/// The longest back-off of a pause: an app-wide failure is often fixed by someone
/// watching, who should not wait long to see it resume.
const PAUSE_MAX: Duration = Duration::from_secs(300);

/// The watcher's state between events.
struct Watcher<L: Fn() -> Result<Target, String>> {
    load: L,
    target: Target,
    /// The configuration file, resolved (where it is watched).
    config_path: PathBuf,
    /// The configuration file as given, through any symlink: see [`Watcher::follow_move`].
    config_link: PathBuf,
    /// The groups directory, resolved (where it is watched).
    groups_dir: PathBuf,
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
}

/// The journal grows by a few records per cycle; rewriting the whole lockfile (66 MB at
/// 100,000 groups) after every cycle would cost each edit time in proportion to the
/// repository. The lockfile is written once the watcher has been quiet for
/// [`CHECKPOINT_IDLE`], at the latest [`CHECKPOINT_MAX_AGE`] after the oldest record it
/// lacks, at once when [`CHECKPOINT_RECORDS`] accumulate, and on exit. The journal is
/// durable meanwhile, and every reader of the lockfile replays it.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
/// See [`CHECKPOINT_IDLE`].
const CHECKPOINT_MAX_AGE: Duration = Duration::from_secs(30);
/// See [`CHECKPOINT_IDLE`].
const CHECKPOINT_RECORDS: usize = 10_000;

#[derive(Debug, Default)]
struct Unfolded {
    records: usize,
    oldest: Option<Instant>,
    newest: Option<Instant>,
}

impl Unfolded {
    fn add(&mut self, records: usize) {
        if records > 0 {
            let now = Instant::now();
            self.records += records;
            self.oldest.get_or_insert(now);
            self.newest = Some(now);
        }
    }

    /// When the lockfile should be written, if it lacks anything.
    fn checkpoint_at(&self) -> Option<Instant> {
        match (self.oldest, self.newest) {
            _ if self.records >= CHECKPOINT_RECORDS => Some(Instant::now()),
            (Some(oldest), Some(newest)) => Some((newest + CHECKPOINT_IDLE).min(oldest + CHECKPOINT_MAX_AGE)),
            _ => None,
        }
    }
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

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify_debouncer_full::notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

fn watch(debouncer: &mut Debouncer, path: &Path, mode: RecursiveMode) -> Result<(), WatchError> {
    debouncer.watch(path, mode).map_err(|e| WatchError::Watch { path: path.to_path_buf(), message: e.to_string() })
}

fn config_dir(config_path: &Path) -> PathBuf {
    config_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Watches the groups directory, and the configuration's directory: editors replace
/// files by rename, so the file itself is not what to watch.
fn watch_dirs(debouncer: &mut Debouncer, groups_dir: &Path, config_path: &Path) -> Result<(), WatchError> {
    watch(debouncer, groups_dir, RecursiveMode::Recursive)?;
    watch(debouncer, &config_dir(config_path), RecursiveMode::NonRecursive)
}

/// The resolved directories that hold a symlink on the way to one of `paths`.
fn link_dirs(paths: &[&Path]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for path in paths {
        let Ok(path) = std::path::absolute(path) else { continue };
        for ancestor in path.ancestors() {
            let is_link = std::fs::symlink_metadata(ancestor).is_ok_and(|m| m.file_type().is_symlink());
            if let (true, Some(parent)) = (is_link, ancestor.parent()) {
                dirs.insert(canonical(parent));
            }
        }
    }
    dirs
}

/// Runs the watcher until `stop`: reconciles once, then on every burst of file
/// changes, every `resync`, on `reload` (SIGHUP), and when failing groups are due.
pub async fn run<L: Fn() -> Result<Target, String>>(
    config_path: &Path,
    load: L,
    options: WatchOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> Result<(), WatchError> {
    let mut target = load().map_err(WatchError::Config)?;
    // A state that cannot be used (a state directory not writable, a corrupt record or
    // seed) is a reason not to be ready, said on /readyz, not a crash loop that says nothing.
    let (_lock, lockfile) = loop {
        let environment = target.environment.clone();
        let timeout = options.lock_timeout;
        let opened = tokio::task::spawn_blocking(move || open_state(&environment, timeout))
            .await
            .map_err(|e| WatchError::Config(format!("opening the state: {e}")))?;
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
                Ok(reloaded) => target = reloaded,
                Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
            },
        }
    };
    metrics.set_ready(Some("the first reconcile has not finished".into()));
    let groups_dir = canonical(&target.environment.groups_dir);
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
    for dir in link_dirs(&[&config_link, &target.environment.groups_dir]) {
        if dir != config_dir(&config_path) {
            watch(&mut debouncer, &dir, RecursiveMode::NonRecursive)?;
        }
    }

    let index = DesiredIndex::load(&groups_dir);
    let mut watcher = Watcher {
        load,
        target,
        config_path,
        config_link,
        groups_dir,
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
    };
    tracing::info!(groups = watcher.index.groups().len(), files = watcher.index.files(), "watching");
    watcher.update_managed();
    watcher.reconcile(None).await?;

    let (resync_tx, mut resyncs) = mpsc::unbounded_channel::<BTreeMap<GroupId, live::LiveRead>>();
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
        tokio::select! {
            () = stop.cancelled() => break,
            () = checkpoint => watcher.checkpoint()?,
            Some((paths, first)) = events.recv() => {
                let (paths, first) = watcher.coalesce(paths, first, &mut events).await;
                if watcher.follow_move(&mut debouncer)? {
                    watcher.reconcile(None).await?;
                } else {
                    watcher.on_files_changed(paths, first).await?;
                }
            }
            Some(()) = reload.recv() => {
                tracing::info!("reloading the configuration and every file (SIGHUP)");
                watcher.planning_started = Instant::now();
                watcher.follow_move(&mut debouncer)?;
                watcher.reload_config();
                let affected = watcher.index.rescan();
                watcher.dirty.extend(affected);
                watcher.reconcile(None).await?;
            }
            _ = resync_timer.tick() => {
                if resync_task.as_ref().is_none_or(|t| t.is_finished()) {
                    resync_task = Some(watcher.start_resync(resync_tx.clone()));
                }
            }
            Some(live) = resyncs.recv() => watcher.on_resync(live).await?,
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

impl<L: Fn() -> Result<Target, String>> Watcher<L> {
    /// Waits until file events have been quiet for half the debounce time, so that a
    /// `git checkout` of hundreds of files is one reconcile.
    async fn coalesce(
        &self,
        mut paths: Vec<PathBuf>,
        mut first: Instant,
        events: &mut mpsc::UnboundedReceiver<(Vec<PathBuf>, Instant)>,
    ) -> (Vec<PathBuf>, Instant) {
        let quiet = (self.options.debounce / 2).max(Duration::from_millis(20));
        loop {
            tokio::select! {
                more = events.recv() => match more {
                    Some((more, at)) => {
                        paths.extend(more);
                        first = first.min(at);
                    }
                    None => break,
                },
                () = tokio::time::sleep(quiet) => break,
                () = self.stop.cancelled() => break,
            }
        }
        (paths, first)
    }

    async fn on_files_changed(&mut self, paths: Vec<PathBuf>, first: Instant) -> Result<(), WatchError> {
        self.planning_started = Instant::now();
        let config_changed = paths.iter().any(|p| canonical(p) == self.config_path || p == &self.config_path);
        let affected = if config_changed {
            tracing::info!("the configuration changed; reloading it");
            self.reload_config();
            self.index.rescan()
        } else if paths.is_empty() {
            self.index.rescan()
        } else {
            let relevant: Vec<PathBuf> = paths.into_iter().filter(|p| p.starts_with(&self.groups_dir)).collect();
            if relevant.is_empty() {
                return Ok(());
            }
            self.index.update(relevant)
        };
        tracing::debug!(groups = affected.len(), "files changed");
        for id in &affected {
            self.changed_at.entry(id.clone()).or_insert(first);
        }
        self.dirty.extend(affected);
        let dirty = std::mem::take(&mut self.dirty);
        self.reconcile(Some(dirty)).await
    }

    /// Follows a symlink on the way to the configuration or the groups that now leads
    /// elsewhere (git-sync publishing a commit as a new checkout): watches the new
    /// place, stops watching the old one (which goes away), and reads every file again.
    /// Returns whether it moved; the caller then plans every group.
    fn follow_move(&mut self, debouncer: &mut Debouncer) -> Result<bool, WatchError> {
        let groups_dir = canonical(&self.target.environment.groups_dir);
        let config_path = canonical(&self.config_link);
        if groups_dir == self.groups_dir && config_path == self.config_path {
            return Ok(false);
        }
        tracing::info!(
            from = %crate::escape::path(&self.groups_dir),
            to = %crate::escape::path(&groups_dir),
            "the repository moved (a symlink now leads to another checkout); following it"
        );
        // The old checkout may be gone already: nothing to stop watching then.
        let _ = debouncer.unwatch(&self.groups_dir);
        if config_dir(&config_path) != config_dir(&self.config_path) {
            let _ = debouncer.unwatch(config_dir(&self.config_path));
        }
        watch_dirs(debouncer, &groups_dir, &config_path)?;
        self.groups_dir = groups_dir;
        self.config_path = config_path;
        self.reload_config();
        self.index = DesiredIndex::load(&self.groups_dir);
        self.planning_started = Instant::now();
        Ok(true)
    }

    fn reload_config(&mut self) {
        match (self.load)() {
            Ok(target) => match self.needs_restart(&target.environment) {
                Some(change) => tracing::error!(
                    change = %change,
                    "the configuration changes what this process holds, which needs a restart of grattr watch; \
                     keeping the running configuration"
                ),
                None => self.target = target,
            },
            Err(e) => tracing::error!(error = %e, "the configuration is invalid; keeping the previous one"),
        }
    }

    /// Writes the lockfile if it lacks records of the journal, and removes the journal.
    fn checkpoint(&mut self) -> Result<(), WatchError> {
        if self.unfolded.records > 0 {
            let started = Instant::now();
            self.lockfile.checkpoint(&self.target.environment.lockfile, self.target.environment.sdkappid)?;
            tracing::debug!(
                records = self.unfolded.records,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "wrote the lockfile"
            );
            self.unfolded = Unfolded::default();
        }
        Ok(())
    }

    /// What `new` changes that a running watcher cannot follow: it holds the lock of
    /// its lockfile and that lockfile's record (of one app) in memory, and watches its
    /// groups directory. Taking any of these over on the fly would write a lockfile it
    /// has not locked, or plan one app's groups against another app's record.
    fn needs_restart(&self, new: &Environment) -> Option<String> {
        let old = &self.target.environment;
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
        PlanEnvironment { name: self.target.environment.name.clone(), sdkappid: self.target.environment.sdkappid }
    }

    /// One cycle: validate everything, plan `only` these ids (all when `None`) plus
    /// every failing group that is due, and apply.
    async fn reconcile(&mut self, only: Option<BTreeSet<GroupId>>) -> Result<(), WatchError> {
        if self.index.has_errors() {
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
        let only = if self.refused.is_some() { None } else { only };
        let due: BTreeSet<GroupId> =
            self.failing.iter().filter(|(_, f)| f.next <= now).map(|(id, _)| id.clone()).collect();
        let targets = only.map(|mut ids| {
            ids.extend(due.iter().cloned());
            ids
        });
        let options = PlanOptions {
            environment: self.environment(),
            prune: self.options.prune || self.target.environment.prune,
            targets,
        };
        let mut plan = plan::diff(self.index.groups(), &self.lockfile.groups, &options);
        // Failing groups wait for their turn.
        plan.changes.retain(|c| self.failing.get(&c.group_id).is_none_or(|f| f.next <= now));
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
    fn safety(&self) -> Safety {
        Safety { threshold: self.target.environment.safety_threshold, force: self.options.force }
    }

    /// Ready unless a plan or a self-heal is being refused, or applying is paused.
    fn update_ready(&self) {
        let paused = || self.paused.as_ref().map(|p| p.reason.clone());
        self.metrics.set_ready(self.refused.clone().or_else(|| self.heal_refused.clone()).or_else(paused));
    }

    /// Pauses applying after an app-wide failure, for a back-off that doubles with
    /// each pause in a row. One log line per back-off, not one per group.
    fn pause(&mut self, stopped: &apply::Stopped) {
        let attempts = self.paused.as_ref().map_or(0, |p| p.attempts) + 1;
        let delay = self.options.retry_base.saturating_mul(1 << attempts.min(16).saturating_sub(1)).min(PAUSE_MAX);
        let reason = format!("paused: {stopped}; trying again in {}", humantime::format_duration(delay));
        tracing::error!(reason = ?stopped.reason, "{reason}");
        self.paused = Some(Paused { reason, attempts, next: Instant::now() + delay });
    }

    /// Ends a pause: the last cycle ran without an app-wide failure.
    fn resume(&mut self) {
        if self.paused.take().is_some() {
            tracing::info!("resumed: the app-wide failure is gone");
        }
    }

    /// Applies a plan, records it, and keeps track of what failed.
    async fn execute(&mut self, approved: Approved<'_>) -> Result<Cycle, WatchError> {
        let plan = approved.plan();
        if plan.changes.is_empty() {
            self.resume();
            if self.failing.is_empty() {
                self.metrics.last_success.set(now_unix());
            }
            return Ok(Cycle::Noop);
        }
        let path = self.target.environment.lockfile.clone();
        let journal = JournalWriter::open(&path, self.target.environment.sdkappid)?;
        let options =
            ApplyOptions { concurrency: self.options.concurrency, fail_fast: false, grace: self.options.grace };
        let mut report = apply::execute(approved, &self.target.client, &journal, &options, &self.stop, |change, outcome| {
            // An app-wide failure is said once, by the pause.
            if let Outcome::Failed(error) = outcome {
                tracing::warn!(group = %change.group_id, %error, hint = error.hint().unwrap_or_default(), "apply failed");
            }
        })
        .await;
        journal.finish()?;
        self.unfolded.add(report.recorded.len());
        self.lockfile.apply_records(std::mem::take(&mut report.recorded));
        if self.unfolded.records == 0 {
            // Nothing succeeded: drop the empty journal now rather than at a checkpoint.
            remove_journal(&path)?;
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

    /// The number of managed groups (declared or recorded), for the gauge.
    fn update_managed(&self) {
        let recorded_only = self.lockfile.groups.keys().filter(|id| !self.index.groups().contains_key(*id)).count();
        self.metrics.managed.set((self.index.groups().len() + recorded_only) as i64);
    }

    /// Reads every managed group in the background, spread over half the resync interval.
    fn start_resync(
        &self,
        results: mpsc::UnboundedSender<BTreeMap<GroupId, live::LiveRead>>,
    ) -> tokio::task::JoinHandle<()> {
        let groups = crate::workspace::managed(self.index.groups().keys(), self.lockfile.groups.keys(), None);
        let client = self.target.client.clone();
        let spacing = (self.options.resync / 2).checked_div(groups.len().max(1) as u32).unwrap_or_default();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(spacing.max(Duration::from_micros(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let paced =
                futures_util::stream::unfold((groups.into_iter(), ticker), |(mut ids, mut ticker)| async move {
                    let id = ids.next()?;
                    ticker.tick().await;
                    Some((id, (ids, ticker)))
                });
            let reads = paced
                .map(|id| {
                    let client = client.clone();
                    async move {
                        let read = client.get_group_attr(&id).await;
                        (id, read)
                    }
                })
                .buffer_unordered(16)
                .take_until(stop.cancelled())
                .collect::<BTreeMap<_, _>>()
                .await;
            let _ = results.send(reads);
        })
    }

    /// Reports drift found by a resync, and with `--self-heal` resets drifted groups.
    async fn on_resync(&mut self, live: BTreeMap<GroupId, live::LiveRead>) -> Result<(), WatchError> {
        let mut in_sync = 0;
        let mut drifted: BTreeMap<GroupId, AppliedGroup> = BTreeMap::new();
        for (id, read) in &live {
            match (read, self.lockfile.groups.get(id)) {
                (Ok(attributes), Some(recorded)) if attributes != &recorded.attributes => {
                    let changes = plan::KeyChanges::between(&recorded.attributes, attributes);
                    tracing::warn!(group = %id, added = ?changes.added, removed = ?changes.removed, changed = ?changes.changed, "drifted: changed outside grattr");
                    drifted.insert(id.clone(), AppliedGroup::new(attributes.clone()));
                }
                (Ok(_), _) => in_sync += 1,
                (Err(e), _) if e.is_missing_group() => {
                    tracing::warn!(group = %id, "missing: the group does not exist")
                }
                (Err(e), _) => tracing::warn!(group = %id, error = %e, "could not read the group during resync"),
            }
        }
        self.metrics.in_sync.set(in_sync);
        self.metrics.drifted.set(drifted.len() as i64);
        tracing::info!(read = live.len(), drifted = drifted.len(), "resync finished");
        // While paused, healing would meet the same app-wide failure: the resync after the pause heals.
        if self.paused.is_some() {
            return Ok(());
        }
        if !self.options.self_heal || drifted.is_empty() || self.index.has_errors() {
            if self.heal_refused.take().is_some() && !self.index.has_errors() {
                self.update_ready();
            }
            return Ok(());
        }
        // Heal against what is live: the plan resets exactly the drifted groups.
        let mut before = self.lockfile.groups.clone();
        before.extend(drifted.iter().map(|(id, g)| (id.clone(), g.clone())));
        let options = PlanOptions {
            environment: self.environment(),
            prune: false,
            targets: Some(drifted.keys().cloned().collect()),
        };
        let mut plan = plan::diff(self.index.groups(), &before, &options);
        plan.refresh = true;
        // A drifted group that is no longer declared is left as is (it is not in the plan).
        let outcome = match self.safety().check(&plan, self.lockfile.groups.len()) {
            Ok(approved) => {
                tracing::info!(groups = plan.changes.len(), "self-healing drifted groups");
                self.heal_refused = None;
                self.execute(approved).await?
            }
            Err(refusal) => {
                self.heal_refused = Some(refused(
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

/// Logs a refusal of the safety guard, with its numbers as fields, and returns the
/// reason for `/readyz`.
fn refused(refusal: &Refusal, reason: String) -> String {
    tracing::error!(
        touched = refusal.touched,
        recorded = refusal.recorded,
        threshold_percent = refusal.threshold,
        "{reason}"
    );
    reason
}

fn report_invalid(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        match diagnostic.is_error() {
            true => tracing::error!(diagnostic = %diagnostic, "invalid desired state"),
            false => tracing::warn!(diagnostic = %diagnostic, "desired state"),
        }
    }
}

//! `grattr watch`: the reconciler as a long-running service, with health and
//! metrics over HTTP. Holds the lockfile's lock for the life of the process.
//! On a server the lockfile lives in a state directory (`--state-dir`), outside the
//! checkout that a `git pull` keeps up to date.

use super::inputs::environment;
use super::signals::{Received, Signals};
use super::{WorkspaceArgs, exit};
use crate::desired::config::Config;
use crate::watch::git::HeadSnapshots;
use crate::watch::metrics::Metrics;
use crate::watch::server::ListenerLimits;
use crate::watch::{self, ConfigError, Remote, WatchOptions};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where `grattr watch` reads the desired state from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Source {
    /// The files of the checkout, as they are saved.
    Files,
    /// The commit the checkout's HEAD names (needs git and --state-dir): edits not committed are never read.
    Head,
}

/// Options of `grattr watch`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    listen: SocketAddr,
    /// Quiet time that ends a burst of file changes (a git pull is one reconcile).
    #[arg(long, default_value = "300ms", value_name = "DURATION", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// How often the live state of every managed group is read, spread over the interval.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Clear and forget groups that are no longer declared.
    #[arg(long)]
    prune: bool,
    /// Reset groups found drifted by a resync to the desired state.
    #[arg(long)]
    self_heal: bool,
    /// Logs as text or JSON lines (on stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Calls in flight at once; the rate limits pace them further.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// The first delay before a failing group is tried again; it doubles up to 10 minutes.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_base: Duration,
    /// Apply changes the safety guard would refuse (over safety_threshold of the
    /// recorded groups). Dangerous on a server: a bad merge, or groups/ emptied by a
    /// wrong checkout, is then applied to every group at once, unreviewed.
    #[arg(long)]
    force: bool,
    /// Plan a change only once every file it read (group files, overlays, grattr.yaml)
    /// has held the same content for this long: a file still being written is never
    /// applied half-written. 0s plans at once.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// With pruning, remove (clear and forget) a group only once it has stayed
    /// undeclared this long; other changes go ahead meanwhile.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    confirm_removal: Duration,
    /// Accepted for scripts written for earlier versions, and ignored: watch stands by
    /// for as long as another writer holds the record's lease, and leads once it is free.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    lock_timeout: Option<Duration>,
    /// Connections served at once on --listen; more wait to be accepted.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    listen_max_connections: u32,
    /// Time a connection on --listen has to send a request's headers, idle between
    /// requests included; then it is closed.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    listen_idle_timeout: Duration,
    /// Read the desired state from the files as saved, or from the commit HEAD names
    /// (followed as it moves; a server should use head).
    #[arg(long, value_enum, default_value_t = Source::Files)]
    source: Source,
    #[command(flatten)]
    pub(super) workspace: WorkspaceArgs,
}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration and every file.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let cli = &args.workspace;
    // In HEAD mode the configuration is read from the snapshot of the commit, never
    // from the worktree, and its record from the state directory.
    let head = match args.source {
        Source::Files => None,
        Source::Head => Some(head_snapshots(cli)?),
    };
    let config_path = head.as_ref().map_or_else(|| cli.config.config.clone(), HeadSnapshots::config_path);
    let first = match &head {
        None => environment(cli)?,
        Some(_) => cli.environment_of(&Config::load(&config_path)?)?,
    };
    let metrics = Arc::new(Metrics::new());
    let observer_metrics = metrics.clone();
    let observer: crate::api::client::CallObserver = Arc::new(move |event| observer_metrics.observe(event));
    let load = || -> Result<Remote, ConfigError> {
        let environment = cli.environment_of(&Config::load(&config_path)?)?;
        let key = cli.api.secret_key(&environment)?;
        let mut client_config = cli.api.client_config(&environment, key);
        client_config.observer = Some(observer.clone());
        let client = crate::api::client::Client::new(client_config)?;
        Ok(Remote { environment, client })
    };
    let options = WatchOptions {
        debounce: args.debounce,
        resync: args.resync.max(Duration::from_secs(1)),
        prune: args.prune,
        self_heal: args.self_heal,
        concurrency: args.concurrency as usize,
        grace: first.request_timeout.min(Duration::from_secs(10)),
        retry_base: args.retry_base.max(Duration::from_millis(10)),
        force: args.force,
        settle: args.settle,
        confirm_removal: args.confirm_removal,
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
        let stop = CancellationToken::new();
        let limits = ListenerLimits {
            max_connections: args.listen_max_connections as usize,
            idle_timeout: args.listen_idle_timeout.max(Duration::from_millis(10)),
        };
        let server = tokio::spawn(watch::server::serve(listener, metrics.clone(), stop.clone(), limits));
        let follower = head.map(|head| {
            tracing::info!(
                commit = head.commit().unwrap_or_default(),
                "reading the desired state from the commit HEAD names"
            );
            let (stop, debounce, poll) = (stop.clone(), args.debounce, options.resync);
            tokio::spawn(async move {
                let followed = watch::git::follow(head, debounce, poll, stop.clone()).await;
                // Refs that cannot be watched end the process, as files that cannot be watched do.
                if followed.is_err() {
                    stop.cancel();
                }
                followed
            })
        });
        let (reload_tx, reload) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(signals(stop.clone(), reload_tx));
        let result = watch::run(&config_path, load, options, metrics, stop.clone(), reload).await;
        stop.cancel();
        let _ = server.await;
        if let Some(follower) = follower {
            // A failure to watch the refs ends the process like a failure to watch the files.
            follower.await??;
        }
        // A lockfile error is printed as it reads, `path:line: error: …`, like any other command's.
        result.map_err(anyhow::Error::from)
    })?;
    Ok(exit::OK)
}

/// HEAD mode's snapshots, for the configuration the options name: the state
/// directory is required (a record inside a snapshot of a commit would be lost with it).
fn head_snapshots(cli: &WorkspaceArgs) -> anyhow::Result<HeadSnapshots> {
    let Some(state_dir) = &cli.state.state_dir else {
        anyhow::bail!(
            "--source head keeps its record and its snapshots of commits in a state directory: \
             give --state-dir DIR (or GRATTR_STATE_DIR)"
        );
    };
    Ok(HeadSnapshots::open(&cli.config.config, state_dir, cli.config.env.as_deref())?)
}

/// SIGTERM and SIGINT stop; SIGHUP asks for a reload.
async fn signals(stop: CancellationToken, reload: tokio::sync::mpsc::UnboundedSender<()>) {
    let mut signals = Signals::with_hangup();
    while signals.next().await == Received::Hangup {
        let _ = reload.send(());
    }
    tracing::info!("stopping: no new calls; finishing the calls in flight");
    stop.cancel();
}

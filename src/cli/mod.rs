//! The command line: arguments, one function per command, exit codes, and all
//! terminal output. Everything else in the crate returns data.

mod apply;
mod completions;
mod drift;
mod emulator;
mod import;
mod inputs;
mod lockfile;
mod log_fields;
mod output;
mod plan;
mod progress;
mod report;
mod schema;
mod signals;
mod state;
mod usersig;
mod validate;
mod watch;

use crate::api::client::{Client, ClientConfig};
use crate::api::usersig::{SecretKey, SecretKeyError};
use crate::desired::config::ConfigErrors;
use crate::desired::{Config, Environment};
use crate::model::limits::MAX_CALLS_PER_SECOND;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: the CI contract.
pub mod exit {
    /// Success; nothing to do.
    pub const OK: u8 = 0;
    /// An error; nothing half-done is hidden.
    pub const ERROR: u8 = 1;
    /// Changes pending (`plan --detailed-exitcode`).
    pub const CHANGES: u8 = 2;
    /// Interrupted.
    pub const INTERRUPTED: u8 = 130;
}

/// Tencent Cloud Chat group custom attributes as reviewed code.
#[derive(Debug, Parser)]
#[command(name = "grattr", version = env!("GRATTR_VERSION"), about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options written before the command, as earlier versions took them.
    #[command(flatten)]
    leading: LeadingArgs,

    /// More log output on stderr: -v info, -vv debug, -vvv trace (or set GRATTR_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// Where the configuration is, for the commands that read `grattr.yaml`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Configuration")]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(short = 'c', long, default_value = "grattr.yaml", env = "GRATTR_CONFIG", value_name = "PATH")]
    config: PathBuf,

    /// The environment of grattr.yaml to use (required when it defines environments).
    #[arg(long = "env", env = "GRATTR_ENV", value_name = "NAME")]
    env: Option<String>,

    /// Let grattr.yaml's groups, lockfile and overlays lead outside its directory
    /// (refused by default: a pull request must not point grattr at other files).
    #[arg(long, env = "GRATTR_ALLOW_OUTSIDE_PATHS")]
    allow_outside_paths: bool,
}

impl ConfigArgs {
    /// The configuration file, parsed; every mistake in it is reported.
    fn load(&self) -> Result<Config, ConfigErrors> {
        Ok(Config::load(&self.config)?.allow_outside_paths(self.allow_outside_paths))
    }
}

/// Where the lockfile is kept, for the commands that read or write it.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Configuration")]
pub struct StateArgs {
    /// Keep the lockfile, its journal and its lock in this directory, outside the git
    /// checkout (for a server). Empty at first, it starts from the repository's lockfile.
    #[arg(long, env = "GRATTR_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Keep the record in this store, shared by every runner and watch replica:
    /// postgres://USER@HOST:PORT/DATABASE (the password in PGPASSWORD) or
    /// s3://BUCKET/PREFIX (credentials from AWS_* or ~/.aws). Overrides `state:` in
    /// grattr.yaml; a path means local files, as --state-dir.
    #[arg(long, env = "GRATTR_STATE", value_name = "URL")]
    state: Option<String>,

    /// How long a writer's lease on a shared store's record lasts unless renewed:
    /// a standby takes over within it once the holder is gone (1s to 1h).
    #[arg(long, env = "GRATTR_LEASE_TTL", value_name = "DURATION", default_value = "15s", value_parser = lease_ttl)]
    lease_ttl: std::time::Duration,
}

/// A `--lease-ttl`: long enough to renew over a slow network, short enough that a
/// standby takes over in time.
fn lease_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    match ttl >= std::time::Duration::from_secs(1) && ttl <= std::time::Duration::from_secs(3600) {
        true => Ok(ttl),
        false => Err("a lease lasts from 1s to 1h".into()),
    }
}

impl StateArgs {
    /// `environment` with its record where these options put it: a `--state` URL
    /// (`GRATTR_STATE`) keeps it in that store, over `state:` in grattr.yaml; a
    /// `--state` path keeps it in local files there. `--state-dir` says only where local
    /// files live (the record's, when it is local; `watch --source head`'s snapshots
    /// always), so that a state directory set for a server's snapshots never turns a
    /// configured shared record into a local one.
    fn apply(&self, mut environment: Environment) -> Environment {
        let dir = match &self.state {
            Some(url) if url.contains("://") => {
                environment.state = Some(url.clone());
                self.state_dir.clone()
            }
            Some(path) => {
                environment.state = None;
                Some(PathBuf::from(path))
            }
            None => self.state_dir.clone(),
        };
        if let Some(dir) = dir {
            environment = environment.with_state_dir(&dir);
        }
        environment.lease_ttl = self.lease_ttl;
        environment
    }
}

/// The secret key, for the commands that sign UserSigs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "REST API")]
pub struct KeyArgs {
    /// Read the secret key from this file instead of the variable named by secret_key_env.
    #[arg(long, value_name = "PATH")]
    secret_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The secret key: from --secret-key-file, else from the environment's variable.
    fn secret_key(&self, environment: &Environment) -> Result<SecretKey, SecretKeyError> {
        match &self.secret_key_file {
            Some(path) => SecretKey::from_file(path),
            None => SecretKey::from_env(&environment.secret_key_env),
        }
    }
}

/// How to reach the REST API, for the commands that call it.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "REST API")]
pub struct ApiArgs {
    /// Send API calls to this base URL instead of the configured region or endpoint.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,

    #[command(flatten)]
    key: KeyArgs,

    /// App-wide API calls per second (1 to 200; overrides rate_limit in grattr.yaml).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_CALLS_PER_SECOND.max as i64))]
    rate_limit: Option<u32>,
}

impl ApiArgs {
    /// The secret key: from --secret-key-file, else from the environment's variable.
    fn secret_key(&self, environment: &Environment) -> Result<SecretKey, SecretKeyError> {
        self.key.secret_key(environment)
    }

    /// The app-wide calls per second: `--rate-limit`, else the environment's `rate_limit`.
    fn rate_limit(&self, environment: &Environment) -> u32 {
        self.rate_limit.unwrap_or(environment.rate_limit)
    }

    /// The client configuration of the environment's REST API, signing with `key`.
    fn client_config(&self, environment: &Environment, key: SecretKey) -> ClientConfig {
        let mut config =
            ClientConfig::new(environment.endpoint.base_url(), environment.sdkappid, environment.admin.clone(), key);
        config.rate_limit = self.rate_limit(environment);
        config.connect_timeout = environment.connect_timeout;
        config.request_timeout = environment.request_timeout;
        config
    }

    /// A client of the environment's REST API, signing with `key`.
    fn client(&self, environment: &Environment, key: SecretKey) -> anyhow::Result<Client> {
        Ok(Client::new(self.client_config(environment, key))?)
    }
}

/// The options of a command that reads `grattr.yaml`, keeps a lockfile and calls
/// the REST API (`plan`, `apply`, `drift`, `import`, `watch`).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkspaceArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    api: ApiArgs,
}

impl WorkspaceArgs {
    /// The environment of `config` the options select, its lockfile moved into the
    /// state directory when one is given.
    fn environment_of(&self, config: &Config) -> Result<Environment, ConfigErrors> {
        let environment = config.environment(self.config.env.as_deref(), self.api.endpoint.as_deref())?;
        Ok(self.state.apply(environment))
    }
}

/// The options earlier versions took before the command (`grattr -c PATH plan`),
/// when they were global. Hidden: each command shows those it uses. A command's own
/// option, written after it, wins; a command that does not use one refuses it.
#[derive(Debug, Clone, clap::Args)]
struct LeadingArgs {
    #[arg(short = 'c', long, value_name = "PATH", hide = true)]
    config: Option<PathBuf>,
    #[arg(long = "env", value_name = "NAME", hide = true)]
    env: Option<String>,
    #[arg(long, value_name = "DIR", hide = true)]
    state_dir: Option<PathBuf>,
    #[arg(long, value_name = "URL", hide = true)]
    endpoint: Option<String>,
    #[arg(long, value_name = "PATH", hide = true)]
    secret_key_file: Option<PathBuf>,
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..=MAX_CALLS_PER_SECOND.max as i64))]
    rate_limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check grattr.yaml and every group file against every documented limit (offline).
    Validate(validate::Args),
    /// Show what apply would change: the desired state against the lockfile (offline).
    Plan(plan::Args),
    /// Apply the plan: one set_group_attr per changed group, recorded in the lockfile.
    Apply(apply::Args),
    /// Compare the desired, applied and live states: what changed behind grattr's back.
    Drift(drift::Args),
    /// Adopt existing groups: write YAML that reproduces their live attributes, and record them.
    Import(import::Args),
    /// Reconcile continuously: watch the files, apply changes, resync the live state.
    Watch(watch::Args),
    /// Print a UserSig for the configured admin, to debug with curl.
    Usersig(usersig::Args),
    /// Run a local stand-in of the Chat REST API.
    Emulator(emulator::Args),
    /// Work with lockfiles: `merge` is git's merge driver for grattr.lock; `path` says where it is.
    #[command(subcommand)]
    Lockfile(lockfile::Command),
    /// Where the record lives: `show` it and its lease, `unlock --force` a lease whose
    /// holder is gone, `push` a lockfile into it, `pull` it back into a lockfile.
    #[command(subcommand)]
    State(state::Command),
    /// Print the JSON Schema of a group file, of grattr.yaml or of an overlay file, for editors.
    Schema(schema::Args),
    /// Print the completion script for a shell.
    Completions(completions::Args),
    /// Print the man page (roff).
    Man,
}

/// The option groups one command takes, to place the leading options in.
#[derive(Default)]
struct Takes<'a> {
    config: Option<&'a mut ConfigArgs>,
    state: Option<&'a mut StateArgs>,
    key: Option<&'a mut KeyArgs>,
    endpoint: Option<&'a mut Option<String>>,
    rate_limit: Option<&'a mut Option<u32>>,
}

impl Command {
    /// The command's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Validate(_) => "validate",
            Command::Plan(_) => "plan",
            Command::Apply(_) => "apply",
            Command::Drift(_) => "drift",
            Command::Import(_) => "import",
            Command::Watch(_) => "watch",
            Command::Usersig(_) => "usersig",
            Command::Emulator(_) => "emulator",
            Command::Lockfile(_) => "lockfile",
            Command::State(_) => "state",
            Command::Schema(_) => "schema",
            Command::Completions(_) => "completions",
            Command::Man => "man",
        }
    }

    /// The option groups the command takes.
    fn takes(&mut self) -> Takes<'_> {
        fn workspace(args: &mut WorkspaceArgs) -> Takes<'_> {
            let WorkspaceArgs { config, state, api } = args;
            let ApiArgs { endpoint, key, rate_limit } = api;
            Takes {
                config: Some(config),
                state: Some(state),
                key: Some(key),
                endpoint: Some(endpoint),
                rate_limit: Some(rate_limit),
            }
        }
        match self {
            Command::Validate(args) => Takes { config: Some(&mut args.config), ..Takes::default() },
            Command::Plan(args) => workspace(&mut args.workspace),
            Command::Apply(args) => workspace(&mut args.workspace),
            Command::Drift(args) => workspace(&mut args.workspace),
            Command::Import(args) => workspace(&mut args.workspace),
            Command::Watch(args) => workspace(&mut args.workspace),
            Command::Usersig(args) => {
                Takes { config: Some(&mut args.config), key: Some(&mut args.key), ..Takes::default() }
            }
            Command::Lockfile(lockfile::Command::Path(args)) => {
                Takes { config: Some(&mut args.config), ..Takes::default() }
            }
            Command::State(command) => {
                let args = command.common();
                Takes { config: Some(&mut args.config), state: Some(&mut args.state), ..Takes::default() }
            }
            Command::Emulator(_)
            | Command::Lockfile(_)
            | Command::Schema(_)
            | Command::Completions(_)
            | Command::Man => Takes::default(),
        }
    }
}

/// Whether the option `id` of the command was written on its command line (and
/// not taken from its variable or default).
fn written(matches: &clap::ArgMatches, id: &str) -> bool {
    // The innermost command's own options (`lockfile path` is two levels down).
    let mut command = matches.subcommand().map(|(_, m)| m);
    while let Some(inner) = command.and_then(|m| m.subcommand().map(|(_, m)| m)) {
        command = Some(inner);
    }
    command.and_then(|m| m.value_source(id)) == Some(clap::parser::ValueSource::CommandLine)
}

impl Cli {
    /// Parses the process's arguments, placing options written before the command
    /// into the command's own (unless it has them too); a command that does not use
    /// one refuses it, as it refuses it after its name.
    fn parse_arguments() -> Result<Cli, clap::Error> {
        let matches = Cli::command().try_get_matches()?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let leading = cli.leading.clone();
        let name = cli.command.name();
        let refuse = |option: &str| {
            Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "`grattr {name}` does not use {option}: it takes only the options `grattr {name} --help` shows"
                ),
            )
        };
        let mut takes = cli.command.takes();
        macro_rules! place {
            ($value:expr, $option:literal, $id:literal, $slot:expr) => {
                if let Some(value) = $value {
                    match $slot {
                        Some(slot) => {
                            if !written(&matches, $id) {
                                *slot = value;
                            }
                        }
                        None => return Err(refuse($option)),
                    }
                }
            };
        }
        place!(leading.config, "--config", "config", takes.config.as_mut().map(|c| &mut c.config));
        place!(leading.env.map(Some), "--env", "env", takes.config.as_mut().map(|c| &mut c.env));
        place!(leading.state_dir.map(Some), "--state-dir", "state_dir", takes.state.as_mut().map(|s| &mut s.state_dir));
        place!(leading.endpoint.map(Some), "--endpoint", "endpoint", takes.endpoint.take());
        place!(
            leading.secret_key_file.map(Some),
            "--secret-key-file",
            "secret_key_file",
            takes.key.as_mut().map(|k| &mut k.secret_key_file)
        );
        place!(leading.rate_limit.map(Some), "--rate-limit", "rate_limit", takes.rate_limit.take());
        Ok(cli)
    }
}

/// Sends `tracing` events to stderr, as text (fields escaped: one event is one
/// line) or JSON lines. `GRATTR_LOG` takes `target=level` directives
/// (`warn,grattr=debug`); otherwise `-v` raises the level from quiet (warnings
/// for commands, grattr's own info for the watch service).
fn init_logging(verbose: u8, service: bool, json: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let level = match (verbose, service) {
        (0, false) => "warn",
        (0, true) | (1, _) => "warn,grattr=info",
        (2, _) => "debug",
        _ => "trace",
    };
    let default = || level.parse::<Targets>().unwrap_or_default();
    let filter = match std::env::var("GRATTR_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|e| {
            let _ = writeln!(
                anstream::stderr(),
                "warning: GRATTR_LOG is not a list of target=level directives ({e}); using {level:?}"
            );
            default()
        }),
        Err(_) => default(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match json {
        true => registry.with(layer.json()).try_init(),
        false => registry
            .with(
                layer
                    .fmt_fields(log_fields::EscapedFields)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
}

/// `--help` and `--version` print and succeed; any other argument error is a usage
/// error, and exits 1 like invalid input: 2 means only "changes pending" or "drift found".
fn usage(error: &clap::Error) -> ExitCode {
    let _ = error.print();
    ExitCode::from(if error.use_stderr() { exit::ERROR } else { exit::OK })
}

/// The process's one runtime, for the commands that talk to the network: built on
/// first use, so that offline commands never start its threads.
fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Runs grattr with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::parse_arguments() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    let (service, json) = match &cli.command {
        Command::Watch(args) => (true, args.log_format == watch::LogFormat::Json),
        _ => (false, false),
    };
    init_logging(cli.verbose, service, json);
    let code = match &cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Drift(args) => drift::run(args),
        Command::Import(args) => import::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Usersig(args) => usersig::run(args),
        Command::Emulator(args) => emulator::run(args),
        Command::Lockfile(command) => lockfile::run(command),
        Command::State(command) => state::run(command),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man => completions::man(),
    };
    match code {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report::error(&error);
            ExitCode::from(exit::ERROR)
        }
    }
}

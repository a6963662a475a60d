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
mod plan;
mod progress;
mod report;
mod schema;
mod signals;
mod usersig;
mod validate;
mod watch;

use crate::api::client::{Client, ClientConfig};
use crate::api::usersig::SecretKey;
use crate::desired::{Config, Diagnostic, Environment};
use clap::{Parser, Subcommand};
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
    /// The configuration file.
    #[arg(short = 'c', long, global = true, default_value = "grattr.yaml", env = "GRATTR_CONFIG", value_name = "PATH")]
    config: PathBuf,

    /// The environment of grattr.yaml to use (required when it defines environments).
    #[arg(long = "env", global = true, env = "GRATTR_ENV", value_name = "NAME")]
    env: Option<String>,

    /// Send API calls to this base URL instead of the configured region or endpoint.
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,

    /// Read the secret key from this file instead of the variable named by secret_key_env.
    #[arg(long, global = true, value_name = "PATH")]
    secret_key_file: Option<PathBuf>,

    /// Keep the lockfile, its journal and its lock in this directory, outside the git
    /// checkout (for a server). Empty at first, it starts from the repository's lockfile.
    #[arg(long, global = true, env = "GRATTR_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// App-wide API calls per second (1 to 200; overrides rate_limit in grattr.yaml).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::model::limits::MAX_RATE_LIMIT)))]
    rate_limit: Option<u32>,

    /// More log output on stderr: -v info, -vv debug, -vvv trace (or set GRATTR_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
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
    /// Work with lockfiles: `merge` is git's merge driver for grattr.lock.
    #[command(subcommand)]
    Lockfile(lockfile::Command),
    /// Print the JSON Schema of a group file or of grattr.yaml, for editors.
    Schema(schema::Args),
    /// Print the completion script for a shell.
    Completions(completions::Args),
    /// Print the man page (roff).
    Man,
}

impl Cli {
    /// The environment of `config` the options select, its lockfile moved into the
    /// state directory when one is given.
    fn environment_of(&self, config: &Config) -> Result<Environment, Diagnostic> {
        let environment = config.environment(self.env.as_deref(), self.endpoint.as_deref())?;
        Ok(match &self.state_dir {
            Some(dir) => environment.with_state_dir(dir),
            None => environment,
        })
    }

    /// The secret key: from --secret-key-file, else from the environment's variable.
    fn secret_key(&self, environment: &Environment) -> anyhow::Result<SecretKey> {
        Ok(match &self.secret_key_file {
            Some(path) => SecretKey::from_file(path)?,
            None => SecretKey::from_env(&environment.secret_key_env)?,
        })
    }

    /// The client configuration of the environment's REST API, signing with `key`.
    fn client_config(&self, environment: &Environment, key: SecretKey) -> ClientConfig {
        let mut config =
            ClientConfig::new(environment.endpoint.base_url(), environment.sdkappid, environment.admin.clone(), key);
        config.rate_limit = self.rate_limit.unwrap_or(environment.rate_limit);
        config.connect_timeout = environment.connect_timeout;
        config.request_timeout = environment.request_timeout;
        config
    }

    /// A client of the environment's REST API, signing with `key`.
    fn client(&self, environment: &Environment, key: SecretKey) -> anyhow::Result<Client> {
        Ok(Client::new(self.client_config(environment, key))?)
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

/// A runtime for the commands that talk to the network.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Runs grattr with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage(&error),
    };
    let (service, json) = match &cli.command {
        Command::Watch(args) => (true, args.log_format == watch::LogFormat::Json),
        _ => (false, false),
    };
    init_logging(cli.verbose, service, json);
    let code = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Plan(args) => plan::run(&cli, args),
        Command::Apply(args) => apply::run(&cli, args),
        Command::Drift(args) => drift::run(&cli, args),
        Command::Import(args) => import::run(&cli, args),
        Command::Watch(args) => watch::run(&cli, args),
        Command::Usersig(args) => usersig::run(&cli, args),
        Command::Emulator(args) => emulator::run(&cli, args),
        Command::Lockfile(command) => lockfile::run(command),
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

//! The command line: arguments, one function per command, exit codes, and all
//! terminal output. Everything else in the crate returns data.

mod plan;
mod report;
mod validate;

use clap::{Parser, Subcommand};
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
#[command(name = "grattr", version, about, long_about = None, propagate_version = true)]
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

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check grattr.yaml and every group file against every documented limit (offline).
    Validate(validate::Args),
    /// Show what apply would change: the desired state against the lockfile (offline).
    Plan(plan::Args),
}

/// Runs grattr with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args),
        Command::Plan(args) => plan::run(&cli, args),
    };
    match code {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            report::error(&error);
            ExitCode::from(exit::ERROR)
        }
    }
}

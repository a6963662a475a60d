//! `grattr usersig`: a UserSig for the configured admin, for debugging with curl.

use super::{Cli, exit};
use crate::api::usersig;
use crate::desired::Config;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of `grattr usersig`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sign for this identifier instead of the configured admin.
    #[arg(long, value_name = "ID")]
    identifier: Option<String>,
    /// How long the UserSig is valid (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    expire: Duration,
}

/// Prints the UserSig, and nothing else, on stdout.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&cli.config)?;
    let environment = config.environment(cli.env.as_deref(), cli.endpoint.as_deref())?;
    let key = cli.secret_key(&environment)?;
    let identifier = args.identifier.as_deref().unwrap_or(&environment.admin);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let sig = usersig::generate(&key, environment.sdkappid, identifier, args.expire.as_secs().max(1), now);
    writeln!(std::io::stdout(), "{}", sig.expose())?;
    Ok(exit::OK)
}

//! `grattr usersig`: a UserSig for the configured admin, for debugging with curl.

use super::{ConfigArgs, KeyArgs, exit};
use crate::api::usersig;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of `grattr usersig`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Sign for this identifier instead of the configured admin.
    #[arg(long, value_name = "ID")]
    identifier: Option<String>,
    /// How long the UserSig is valid (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    expire: Duration,
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    #[command(flatten)]
    pub(super) key: KeyArgs,
}

/// Prints the UserSig, and nothing else, on stdout.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let config = args.config.load()?;
    // No call is made: the endpoint does not matter, only the app, the admin and the key.
    let environment = config.environment(args.config.env.as_deref(), None)?;
    let key = args.key.secret_key(&environment)?;
    let identifier = args.identifier.as_deref().unwrap_or(&environment.admin);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let sig = usersig::generate(&key, environment.sdkappid, identifier, args.expire.as_secs().max(1), now);
    writeln!(std::io::stdout(), "{}", sig.expose())?;
    Ok(exit::OK)
}

//! `grattr emulator`: the local stand-in of the Chat REST API, until Ctrl-C.

use super::exit;
use super::signals::Signals;
use crate::api::usersig::SecretKey;
use crate::api::wire::GroupType;
use crate::emulator::{Emulator, EmulatorConfig, Latency, RateLimits};
use crate::model::{GroupId, limits};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `grattr emulator`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Where to listen; port 0 picks a free port. The bound address is printed.
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
    listen: SocketAddr,
    /// The app it serves.
    #[arg(long, default_value_t = 1400000000)]
    sdkappid: u64,
    /// An app admin account (repeatable).
    #[arg(long = "admin", value_name = "ID", default_values_t = ["administrator".to_string()])]
    admins: Vec<String>,
    /// The variable holding the app's secret key, to verify UserSigs.
    #[arg(long, default_value = "GRATTR_SECRET_KEY", value_name = "VAR")]
    secret_key_env: String,
    /// A group that exists from the start, with its type (Public, Private, ChatRoom,
    /// AVChatRoom, Community; default Public, or Community for @TGS#_ ids). Repeatable.
    #[arg(long = "group", value_name = "ID[:TYPE]", value_parser = parse_group)]
    groups: Vec<(GroupId, GroupType)>,
    /// A group that was dismissed (destroyed): calls about it are answered as about a
    /// dismissed group, not as about an id that never was one. Repeatable.
    #[arg(long = "dismissed", value_name = "ID", value_parser = parse_id)]
    dismissed: Vec<GroupId>,
    /// Create unknown groups on their first attribute write instead of answering that
    /// they do not exist.
    #[arg(long)]
    auto_create_groups: bool,
    /// Added latency per answer in milliseconds: 20, or a range 10..50.
    #[arg(long, value_name = "MS", default_value = "0")]
    latency: Latency,
    /// Probability (0 to 1) of a fault per request: an internal server error, HTTP 502,
    /// a stall, or a dropped connection.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    fault_rate: f64,
    /// How long an injected stall lasts.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    stall: Duration,
    /// Load state from this file at start and save it there while running and at exit.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Calls per second per endpoint before answering that the call frequency is exceeded.
    #[arg(long, default_value_t = limits::MAX_RATE_LIMIT, value_name = "N")]
    endpoint_rate: u32,
    /// Writes per second per group before answering that the group's write frequency is exceeded.
    #[arg(long, default_value_t = limits::MAX_GROUP_WRITE_RATE, value_name = "N")]
    group_write_rate: u32,
    /// Enforce no rate limits (for benchmarks).
    #[arg(long)]
    no_rate_limits: bool,
}

fn parse_group(text: &str) -> Result<(GroupId, GroupType), String> {
    // Ids may contain ':' themselves; a type is only what follows the last ':' when it names one.
    if let Some((id, kind)) = text.rsplit_once(':')
        && let Ok(kind) = kind.parse::<GroupType>()
    {
        return Ok((GroupId::parse(id).map_err(|e| e.to_string())?, kind));
    }
    let id = GroupId::parse(text).map_err(|e| e.to_string())?;
    let kind = GroupType::implied_by(&id);
    Ok((id, kind))
}

fn parse_id(text: &str) -> Result<GroupId, String> {
    GroupId::parse(text).map_err(|e| e.to_string())
}

fn parse_probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability between 0 and 1")),
    }
}

/// Serves until Ctrl-C or SIGTERM, then saves the state file and exits 0.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let key = SecretKey::from_env(&args.secret_key_env)?;
    let mut config = EmulatorConfig::new(args.sdkappid, args.admins[0].clone(), key);
    config.admins.clone_from(&args.admins);
    config.groups.clone_from(&args.groups);
    config.dismissed.clone_from(&args.dismissed);
    config.auto_create_groups = args.auto_create_groups;
    config.latency = args.latency;
    config.fault_rate = args.fault_rate;
    config.stall = args.stall;
    config.state_file.clone_from(&args.state);
    config.limits = (!args.no_rate_limits)
        .then_some(RateLimits { per_endpoint: args.endpoint_rate, group_writes: args.group_write_rate });
    super::runtime()?.block_on(async {
        let emulator = Emulator::start(config, args.listen).await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "grattr emulator listening on {} (sdkappid {}, admin {})",
            emulator.base_url(),
            args.sdkappid,
            args.admins.join(", ")
        )?;
        out.flush()?;
        drop(out);
        let stop = emulator.stop_token();
        let mut signals = Signals::stop_only();
        tokio::spawn(async move {
            signals.stop().await;
            stop.cancel();
        });
        emulator.wait().await.context("the emulator stopped")?;
        Ok(exit::OK)
    })
}

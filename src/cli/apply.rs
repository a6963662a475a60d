//! `grattr apply`: the reviewed plan, executed. Takes the lockfile's lock, folds
//! what an interrupted run recorded, plans (or checks a saved plan), asks, applies
//! with progress, records every success as it happens, and reports every failure.

use super::inputs::{self, environment};
use super::progress::Progress;
use super::signals::Signals;
use super::{WorkspaceArgs, exit};
use crate::api::client::ErrorKind;
use crate::api::usersig::SecretKey;
use crate::api::wire::GroupType;
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::desired::{Endpoint, Environment};
use crate::emulator::{Emulator, EmulatorConfig};
use crate::escape;
use crate::model::GroupId;
use crate::plan::{Action, Plan, render};
use crate::workspace::{Applied, Workspace, read_saved_plan};
use anyhow::bail;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the result of a run is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// The plan, progress and a summary, for people.
    Text,
    /// One JSON document with the plan and the result, for machines.
    Json,
}

/// Options of `grattr apply`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A plan saved with `grattr plan --out FILE`: apply it only if the plan computed
    /// now is identical to it; refuse it if it was edited, or if the desired state,
    /// the lockfile or the environment changed since.
    planfile: Option<PathBuf>,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Also clear and forget groups that are no longer declared.
    #[arg(long)]
    prune: bool,
    /// Apply only these groups (repeatable).
    #[arg(long = "target", value_name = "GROUP_ID")]
    targets: Vec<String>,
    /// Calls in flight at once; the rate limits pace them further.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Stop starting calls after the first permanent failure.
    #[arg(long)]
    fail_fast: bool,
    /// Apply even when the plan touches more groups than the safety threshold allows.
    #[arg(long)]
    force: bool,
    /// Apply to an emulator started in-process (with a generated key and the declared
    /// groups), with a scratch lockfile; the configured lockfile is not touched.
    #[arg(long)]
    emulator: bool,
    /// With --emulator: keep the scratch directory of its lockfile after the run.
    #[arg(long, requires = "emulator")]
    keep_scratch: bool,
    /// Plan against the live state instead of the lockfile: groups changed outside
    /// grattr are reset to the desired state, and the lockfile records what is live.
    #[arg(long)]
    refresh: bool,
    /// Wait this long for another apply holding the lockfile's lock (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    pub(super) workspace: WorkspaceArgs,
}

/// Runs `grattr apply`.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let mut environment = environment(&args.workspace)?;
    let runtime = super::runtime()?;
    // Never the configured lockfile: the emulator starts empty. The directory goes
    // when the run ends, unless kept.
    let scratch = match args.emulator {
        true => Some(tempfile::Builder::new().prefix("grattr-emulator-").disable_cleanup(args.keep_scratch).tempdir()?),
        false => None,
    };
    if let Some(scratch) = &scratch {
        environment.lockfile = scratch.path().join("grattr.lock");
        environment.seed_lockfile = None;
        environment.state = None;
    }
    let (mut workspace, mut lock) = inputs::open(environment, "apply", args.lock_timeout, "applied")?;
    let emulator = match args.emulator {
        true => Some(runtime.block_on(start_emulator(&mut workspace, args.keep_scratch))?),
        false => None,
    };
    let mut err = anstream::stderr();
    if workspace.recovered > 0 {
        writeln!(
            err,
            "Recovered {} change(s) recorded by an interrupted run into {}.",
            workspace.recovered,
            escape::path(&workspace.store.shown_as())
        )?;
    }
    // A saved plan is never executed: the plan that runs is always computed now,
    // and a saved one is only accepted when it is identical to it.
    let plan = match &args.planfile {
        Some(_) if args.prune || !args.targets.is_empty() || args.refresh => {
            bail!("a saved plan already fixes --prune, --target and --refresh; make a new plan with them instead")
        }
        Some(path) => {
            let saved = read_saved_plan(path)?;
            if saved.refresh {
                let targets: Option<BTreeSet<GroupId>> = saved.targets.as_ref().map(|t| t.iter().cloned().collect());
                inputs::refresh(&args.workspace.api, &mut workspace, targets.as_ref())?;
            }
            workspace.verify(path, &saved)?
        }
        None => {
            let targets = inputs::targets(&workspace, &args.targets)?;
            if args.refresh {
                inputs::refresh(&args.workspace.api, &mut workspace, targets.as_ref())?;
            }
            workspace.plan(args.prune, targets)
        }
    };
    let approved = workspace.approve(&plan, args.force).map_err(|refusal| {
        anyhow::anyhow!(
            "refusing to apply: {refusal}; nothing was applied. Review the plan, then rerun with --force (or raise safety_threshold in grattr.yaml)"
        )
    })?;
    if args.format == Format::Text {
        anstream::stdout().lock().write_all(render::text(&plan, &workspace.store.shown_as()).as_bytes())?;
    }
    if plan.is_empty() && workspace.live.is_none() {
        if args.format == Format::Json {
            print_json(&plan, &Report::default(), &workspace.store.shown_as())?;
        }
        return Ok(exit::OK);
    }
    if !(plan.is_empty() || args.yes || args.emulator) {
        confirm(&plan, &workspace.environment)?;
    }

    let key = match &emulator {
        Some((_, key)) => key.clone(),
        None => args.workspace.api.secret_key(&workspace.environment)?,
    };
    let client = args.workspace.api.client(&workspace.environment, key)?;
    let stop = CancellationToken::new();
    let options = ApplyOptions {
        concurrency: args.concurrency as usize,
        fail_fast: args.fail_fast,
        grace: workspace.environment.request_timeout.min(Duration::from_secs(30)),
    };
    let progress = Progress::new("apply", plan.changes.len() as u64);
    let applied = runtime.block_on(async {
        tokio::spawn(watch_signals(stop.clone()));
        workspace
            .apply(&mut lock, approved, &client, &options, &stop, |change, outcome| {
                let failure = match outcome {
                    Outcome::Failed(error) | Outcome::StoppedRun(error) => {
                        Some(escape::text(&format!("{}: {error}", change.group_id)).into_owned())
                    }
                    Outcome::Applied => None,
                };
                progress.tick(failure.as_deref());
            })
            .await
    });
    progress.finish();
    let Applied { report, recorded, forgotten } = applied?;

    if !forgotten.is_empty() && args.format == Format::Text {
        let ids: Vec<String> = forgotten.iter().map(ToString::to_string).collect();
        writeln!(
            anstream::stdout(),
            "\nForgot {} group(s) no longer declared that no longer exist: {}",
            ids.len(),
            ids.join(", ")
        )?;
    }
    match args.format {
        Format::Text => {
            let lockfile = match (args.emulator, args.keep_scratch) {
                (true, false) => "the scratch lockfile".to_string(),
                _ => escape::path(&workspace.store.shown_as()),
            };
            print_summary(&plan, &report, recorded, &lockfile)?;
        }
        Format::Json => print_json(&plan, &report, &workspace.store.shown_as())?,
    }
    Ok(if report.interrupted {
        exit::INTERRUPTED
    } else if !report.failed.is_empty() || !report.abandoned.is_empty() || report.stopped.is_some() || report.lapsed {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// Starts the embedded emulator with a generated key and the declared groups
/// created, and points the environment at it.
async fn start_emulator(workspace: &mut Workspace, keep_scratch: bool) -> anyhow::Result<(Emulator, SecretKey)> {
    let environment = &mut workspace.environment;
    let key = SecretKey::new(format!("{:032x}", rand::random::<u128>()))?;
    let mut config = EmulatorConfig::new(environment.sdkappid, environment.admin.clone(), key.clone());
    config.groups = workspace.desired.groups.keys().map(|id| (id.clone(), GroupType::implied_by(id))).collect();
    let emulator = Emulator::start(config, "127.0.0.1:0".parse()?).await?;
    environment.endpoint = Endpoint::Url(emulator.base_url());
    let scratch = match keep_scratch {
        true => format!("the scratch lockfile {}, kept after the run", escape::path(&environment.lockfile)),
        false => "a scratch lockfile, removed after the run (--keep-scratch keeps it)".to_string(),
    };
    writeln!(
        anstream::stderr(),
        "Applying to an emulator started in-process at {}, recording into {scratch}\n(the configured lockfile is not touched).\n",
        emulator.base_url(),
    )?;
    Ok((emulator, key))
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm(plan: &Plan, environment: &Environment) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal, so grattr cannot ask: pass --yes to apply; nothing was applied");
    }
    let mut err = anstream::stderr();
    write!(
        err,
        "\nApply {} change(s) to {}? Only 'yes' will be accepted: ",
        plan.summary.changes(),
        escape::text(&environment.label())
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("apply cancelled; nothing was applied");
    }
    Ok(())
}

/// First Ctrl-C or SIGTERM: stop starting calls. Second: exit at once (the
/// journal and the lockfile are consistent at every instant).
async fn watch_signals(stop: CancellationToken) {
    let mut signals = Signals::stop_only();
    signals.stop().await;
    let _ = writeln!(
        anstream::stderr(),
        "\nStopping: no new calls; waiting for the calls in flight and recording them (press Ctrl-C again to exit now)."
    );
    stop.cancel();
    signals.stop().await;
    std::process::exit(i32::from(exit::INTERRUPTED));
}

/// The failures and the closing line; `lockfile` names where successes were recorded.
fn print_summary(plan: &Plan, report: &Report, recorded: usize, lockfile: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    if !report.failed.is_empty() {
        writeln!(out, "\nFailures:")?;
        for (index, error) in &report.failed {
            let change = &plan.changes[*index];
            let place = change
                .source
                .as_ref()
                .map_or_else(|| "no longer declared".to_string(), |s| format!("{}:{}", s.file.display(), s.line));
            // The service's message may quote what it was sent; the file name comes from a pull request.
            let line = format!("{} ({place}): {error}", change.group_id);
            writeln!(out, "  {}", escape::text(&line))?;
            if let Some(hint) = apply::hint(change, error) {
                writeln!(out, "      hint: {hint}")?;
            }
        }
    }
    let state = match (report.interrupted, &report.stopped) {
        (true, _) => "Apply interrupted",
        (false, Some(_)) => "Apply stopped",
        (false, None) if report.lapsed => "Apply stopped",
        (false, None) => "Apply complete",
    };
    // Changes a stop left are not attempted because of the failure that stopped it,
    // which the sentence below names; "skipped" would suggest they were set aside.
    let skipped = match report.stopped {
        Some(_) => "not attempted",
        None => "skipped",
    };
    writeln!(
        out,
        "\n{state}: {} applied, {} failed, {} {skipped}{}, {} unchanged, in {:.1} s. {}",
        report.applied.len(),
        report.failed.len(),
        report.skipped.len(),
        if report.abandoned.is_empty() {
            String::new()
        } else {
            format!(", {} abandoned in flight (applied again next run)", report.abandoned.len())
        },
        plan.summary.unchanged,
        report.elapsed.as_secs_f64(),
        match recorded {
            0 => "Nothing was recorded.".to_string(),
            n => format!("Recorded {n} group(s) in {lockfile}."),
        }
    )?;
    if let Some(stopped) = &report.stopped {
        // The service's text does not appear in it, but the host comes from grattr.yaml.
        writeln!(out, "{}", escape::text(&format!("Stopped: {stopped}.")))?;
    }
    if report.lapsed && !report.interrupted {
        writeln!(
            out,
            "Stopped: the writer's lease on {lockfile} was lost (not renewed in time, or taken over by another \
             writer); nothing more was called or recorded. Run apply again to finish."
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonResult<'a> {
    format_version: u32,
    lockfile: &'a Path,
    interrupted: bool,
    /// The writer's lease was lost mid-run: nothing more was called.
    lease_lost: bool,
    duration_ms: u128,
    summary: JsonSummary,
    applied: Vec<JsonGroup<'a>>,
    failed: Vec<JsonFailure<'a>>,
    skipped: Vec<JsonGroup<'a>>,
    abandoned: Vec<JsonGroup<'a>>,
    /// Present when a failure about the whole app stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<JsonStopped<'a>>,
    plan: &'a Plan,
}

#[derive(Serialize)]
struct JsonStopped<'a> {
    reason: crate::api::scope::AppWide,
    host: &'a str,
    region: Option<&'static str>,
    code: Option<u32>,
    /// What answered, when it is not the REST API: as it came, scrubbed of secrets and cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<JsonAnswer<'a>>,
    not_attempted: usize,
    message: String,
}

#[derive(Serialize)]
struct JsonAnswer<'a> {
    status: u16,
    content_type: Option<&'a str>,
    body: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    applied: usize,
    failed: usize,
    skipped: usize,
    abandoned: usize,
    unchanged: usize,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    group_id: &'a str,
    action: Action,
}

#[derive(Serialize)]
struct JsonFailure<'a> {
    group_id: &'a str,
    action: Action,
    source: Option<&'a crate::plan::Source>,
    code: Option<u32>,
    error: String,
    hint: Option<std::borrow::Cow<'static, str>>,
}

fn print_json(plan: &Plan, report: &Report, record: &Path) -> anyhow::Result<()> {
    let group = |index: &usize| JsonGroup {
        group_id: plan.changes[*index].group_id.as_str(),
        action: plan.changes[*index].action,
    };
    let result = JsonResult {
        format_version: 1,
        lockfile: record,
        interrupted: report.interrupted,
        lease_lost: report.lapsed,
        duration_ms: report.elapsed.as_millis(),
        summary: JsonSummary {
            applied: report.applied.len(),
            failed: report.failed.len(),
            skipped: report.skipped.len(),
            abandoned: report.abandoned.len(),
            unchanged: plan.summary.unchanged,
        },
        applied: report.applied.iter().map(group).collect(),
        failed: report
            .failed
            .iter()
            .map(|(index, error)| {
                let change = &plan.changes[*index];
                JsonFailure {
                    group_id: change.group_id.as_str(),
                    action: change.action,
                    source: change.source.as_ref(),
                    code: error.code(),
                    error: error.to_string(),
                    hint: apply::hint(change, error),
                }
            })
            .collect(),
        skipped: report.skipped.iter().map(group).collect(),
        abandoned: report.abandoned.iter().map(group).collect(),
        stopped: report.stopped.as_ref().map(|stopped| JsonStopped {
            reason: stopped.reason,
            host: &stopped.host,
            region: stopped.region,
            code: stopped.error.code(),
            answer: match &stopped.error.kind {
                ErrorKind::NotTheApi { status, content_type, body } => {
                    Some(JsonAnswer { status: *status, content_type: content_type.as_deref(), body })
                }
                _ => None,
            },
            not_attempted: stopped.not_attempted,
            message: format!("Stopped: {stopped}."),
        }),
        plan,
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &result)?;
    writeln!(out)?;
    Ok(())
}

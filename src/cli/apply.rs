//! `grattr apply`: the reviewed plan, executed. Takes the lockfile's lock, folds
//! what an interrupted run recorded, plans (or checks a saved plan), asks, applies
//! with progress, records every success as it happens, and reports every failure.

use super::inputs::{Inputs, environment};
use super::progress::Progress;
use super::signals::Signals;
use super::{Cli, exit};
use crate::api::usersig::SecretKey;
use crate::api::wire::GroupType;
use crate::apply::{self, ApplyOptions, Outcome, Report};
use crate::desired::{Endpoint, Environment};
use crate::emulator::{Emulator, EmulatorConfig};
use crate::lockfile::{JournalWriter, LockError, LockGuard, Lockfile};
use crate::plan::{Action, Plan, render};
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the result of a run is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The plan, progress and a summary, for people.
    Text,
    /// One JSON document with the plan and the result, for machines.
    Json,
}

/// Options of `grattr apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A plan saved with `grattr plan --out FILE`: apply exactly it, or refuse it if
    /// the desired state, the lockfile or the environment changed since.
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
}

/// Runs `grattr apply`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let mut environment = environment(cli)?;
    let runtime = super::runtime()?;
    if args.emulator {
        // Never the configured lockfile: the emulator starts empty.
        let scratch = tempfile::Builder::new().prefix("grattr-emulator-").tempdir()?.keep();
        environment.lockfile = scratch.join("grattr.lock");
    }
    let _lock = LockGuard::acquire(&environment.lockfile, "apply", args.lock_timeout).map_err(|e| match e {
        LockError::Held { .. } => anyhow::anyhow!("{e}; nothing was applied (wait with --lock-timeout DURATION)"),
        other => other.into(),
    })?;
    let mut inputs = Inputs::load(environment, true)?;
    let emulator = match args.emulator {
        true => Some(runtime.block_on(start_emulator(&mut inputs))?),
        false => None,
    };
    let mut err = anstream::stderr();
    if inputs.recovered > 0 {
        writeln!(
            err,
            "Recovered {} change(s) recorded by an interrupted run into {}.",
            inputs.recovered,
            inputs.environment.lockfile.display()
        )?;
    }
    let plan = match &args.planfile {
        Some(_) if args.prune || !args.targets.is_empty() => {
            bail!("a saved plan already fixes --prune and --target; make a new plan with them instead")
        }
        Some(path) => saved_plan(cli, path, &mut inputs)?,
        None => {
            let targets = inputs.targets(&args.targets)?;
            if args.refresh {
                inputs.refresh(cli, targets.as_ref())?;
            }
            inputs.plan(args.prune, targets)
        }
    };
    check_safety(&plan, &inputs.lockfile, inputs.environment.safety_threshold, args.force)?;
    if args.format == Format::Text {
        anstream::stdout().lock().write_all(render::text(&plan).as_bytes())?;
    }
    if plan.is_empty() && inputs.live.is_none() {
        if args.format == Format::Json {
            print_json(&plan, &Report::default(), &inputs.environment)?;
        }
        return Ok(exit::OK);
    }
    if !(plan.is_empty() || args.yes || args.emulator) {
        confirm(&plan, &inputs.environment)?;
    }

    let key = match &emulator {
        Some((_, key)) => key.clone(),
        None => cli.secret_key(&inputs.environment)?,
    };
    let client = cli.client(&inputs.environment, key)?;
    let journal = JournalWriter::open(&inputs.environment.lockfile, inputs.environment.sdkappid)?;
    let stop = CancellationToken::new();
    let options = ApplyOptions {
        concurrency: args.concurrency as usize,
        fail_fast: args.fail_fast,
        grace: inputs.environment.request_timeout.min(Duration::from_secs(30)),
    };
    let progress = Progress::new("apply", plan.changes.len() as u64);
    let report = runtime.block_on(async {
        tokio::spawn(watch_signals(stop.clone()));
        apply::execute(&plan, &client, &journal, &options, &stop, |change, outcome| {
            let failure = match outcome {
                Outcome::Failed(error) => Some(format!("{}: {error}", change.group_id)),
                Outcome::Applied => None,
            };
            progress.tick(failure.as_deref());
        })
        .await
    });
    progress.finish();
    let forgotten = match inputs.live.is_some() && !report.interrupted {
        true => record_live_facts(&inputs, &plan, &journal),
        false => Vec::new(),
    };
    let stats = journal.finish()?;
    tracing::debug!(records = stats.records, syncs = stats.syncs, busy = ?stats.busy, "journal");
    let environment = inputs.environment.clone();
    inputs.lockfile.clone().fold_onto(&environment.lockfile, environment.sdkappid)?;
    drop(runtime);

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
        Format::Text => print_summary(&plan, &report, &inputs.environment)?,
        Format::Json => print_json(&plan, &report, &inputs.environment)?,
    }
    Ok(if report.interrupted {
        exit::INTERRUPTED
    } else if !report.failed.is_empty() || !report.abandoned.is_empty() {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// With `--refresh`, what was read live settles some groups without a call:
/// groups already live as desired while the lockfile records something else are
/// recorded as they are; with pruning, groups no longer declared that no longer
/// exist are forgotten (returned, to say so).
fn record_live_facts(inputs: &Inputs, plan: &Plan, journal: &JournalWriter) -> Vec<crate::model::GroupId> {
    use crate::lockfile::Record;
    let wanted = |id: &crate::model::GroupId| plan.targets.as_ref().is_none_or(|t| t.contains(id));
    for (id, group) in &inputs.desired.groups {
        let live = inputs.before().get(id).map(|g| &g.attributes);
        let recorded = inputs.lockfile.groups.get(id).map(|g| &g.attributes);
        if wanted(id) && live == Some(&group.attributes) && recorded != live {
            journal.record(Record::Set { group: id.clone(), attributes: group.attributes.clone() });
        }
    }
    let mut forgotten = Vec::new();
    if plan.prune {
        for id in &inputs.missing {
            if wanted(id) && inputs.lockfile.groups.contains_key(id) && !inputs.desired.groups.contains_key(id) {
                journal.record(Record::Forget { group: id.clone() });
                forgotten.push(id.clone());
            }
        }
    }
    forgotten
}

/// Starts the embedded emulator with a generated key and the declared groups
/// created, and points the environment at it.
async fn start_emulator(inputs: &mut Inputs) -> anyhow::Result<(Emulator, SecretKey)> {
    let environment = &mut inputs.environment;
    let key = SecretKey::new(format!("{:032x}", rand::random::<u128>()))?;
    let mut config = EmulatorConfig::new(environment.sdkappid, environment.admin.clone(), key.clone());
    config.groups = inputs.desired.groups.keys().map(|id| (id.clone(), GroupType::implied_by(id))).collect();
    let emulator = Emulator::start(config, "127.0.0.1:0".parse()?).await?;
    environment.endpoint = Endpoint::Url(emulator.base_url());
    writeln!(
        anstream::stderr(),
        "Applying to an emulator started in-process at {}, recording into the scratch lockfile {}\n(the configured lockfile is not touched).\n",
        emulator.base_url(),
        environment.lockfile.display()
    )?;
    Ok((emulator, key))
}

/// Reads a plan saved by `plan --out` and refuses it if its inputs changed since.
fn saved_plan(cli: &Cli, path: &Path, inputs: &mut Inputs) -> anyhow::Result<Plan> {
    let text = std::fs::read(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a plan saved by `grattr plan --out`", path.display()))?;
    let Some(saved) = &plan.fingerprint else {
        bail!("{} has no fingerprint: save plans with `grattr plan --out FILE`", path.display());
    };
    if plan.refresh {
        let targets = plan.targets.as_ref().map(|t| t.iter().cloned().collect());
        inputs.refresh(cli, targets.as_ref())?;
    }
    let current = inputs.fingerprint();
    let mut changed = Vec::new();
    if saved.desired != current.desired {
        changed.push("the desired state (groups/) changed");
    }
    if saved.lockfile != current.lockfile {
        changed.push(if plan.refresh { "the live state changed" } else { "the lockfile changed (another apply ran)" });
    }
    if saved.environment != current.environment {
        changed.push("the environment differs (app, admin or endpoint)");
    }
    if !changed.is_empty() {
        bail!(
            "the saved plan {} is stale: {} since it was made; nothing was applied. Run `grattr plan` again and review it.",
            path.display(),
            changed.join(", ")
        );
    }
    Ok(plan)
}

/// Refuses a plan that touches more than `threshold` percent of the recorded groups.
fn check_safety(plan: &Plan, lockfile: &Lockfile, threshold: u32, force: bool) -> anyhow::Result<()> {
    let recorded = lockfile.groups.len();
    let touched = plan.summary.update + plan.summary.delete;
    if force || recorded < 10 || touched * 100 <= threshold as usize * recorded {
        return Ok(());
    }
    bail!(
        "refusing to apply: the plan updates or deletes {touched} of the {recorded} groups the lockfile records ({}%), over the safety threshold of {threshold}%; nothing was applied. Review the plan, then rerun with --force (or raise safety_threshold in grattr.yaml)",
        touched * 100 / recorded
    );
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
        environment.label()
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

fn print_summary(plan: &Plan, report: &Report, environment: &Environment) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    if !report.failed.is_empty() {
        writeln!(out, "\nFailures:")?;
        for (index, error) in &report.failed {
            let change = &plan.changes[*index];
            let place = change
                .source
                .as_ref()
                .map_or_else(|| "no longer declared".to_string(), |s| format!("{}:{}", s.file.display(), s.line));
            writeln!(out, "  {} ({place}): {error}", change.group_id)?;
            if let Some(hint) = error.hint() {
                writeln!(out, "      hint: {hint}")?;
            }
        }
    }
    let state = if report.interrupted { "Apply interrupted" } else { "Apply complete" };
    writeln!(
        out,
        "\n{state}: {} applied, {} failed, {} skipped{}, {} unchanged, in {:.1} s. Recorded in {}.",
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
        environment.lockfile.display()
    )?;
    Ok(())
}

#[derive(Serialize)]
struct JsonResult<'a> {
    format_version: u32,
    lockfile: &'a Path,
    interrupted: bool,
    duration_ms: u128,
    summary: JsonSummary,
    applied: Vec<JsonGroup<'a>>,
    failed: Vec<JsonFailure<'a>>,
    skipped: Vec<JsonGroup<'a>>,
    abandoned: Vec<JsonGroup<'a>>,
    plan: &'a Plan,
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
    hint: Option<&'static str>,
}

fn print_json(plan: &Plan, report: &Report, environment: &Environment) -> anyhow::Result<()> {
    let group = |index: &usize| JsonGroup {
        group_id: plan.changes[*index].group_id.as_str(),
        action: plan.changes[*index].action,
    };
    let result = JsonResult {
        format_version: 1,
        lockfile: &environment.lockfile,
        interrupted: report.interrupted,
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
                    hint: error.hint(),
                }
            })
            .collect(),
        skipped: report.skipped.iter().map(group).collect(),
        abandoned: report.abandoned.iter().map(group).collect(),
        plan,
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &result)?;
    writeln!(out)?;
    Ok(())
}

//! `grattr plan`: the desired state against the lockfile, rendered for a
//! terminal, a pull request or a machine; optionally saved for `apply`.

use super::{Cli, exit, report};
use crate::desired::{self, Config, Environment};
use crate::lockfile::{self, Lockfile};
use crate::model::GroupId;
use crate::plan::{self, Fingerprint, Plan, PlanEnvironment, PlanOptions, render};
use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

/// The renderings of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For terminals and logs.
    Text,
    /// For pull-request comments.
    Markdown,
    /// For machines (a documented, stable schema).
    Json,
}

/// Options of `grattr plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How to print the plan.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also save the plan, with a fingerprint of its inputs, for `grattr apply FILE`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 2 when there are changes (0 when there are none, 1 on error).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Plan to clear and forget groups that are no longer declared.
    #[arg(long)]
    prune: bool,
    /// Plan only these groups (repeatable).
    #[arg(long = "target", value_name = "GROUP_ID")]
    targets: Vec<String>,
}

/// Everything a plan is computed from.
pub struct Inputs {
    /// The environment.
    pub environment: Environment,
    /// The desired state.
    pub desired: desired::DesiredState,
    /// The lockfile's record.
    pub lockfile: Lockfile,
    /// Records of an interrupted run folded into the lockfile (with `fold`).
    pub recovered: usize,
}

/// The environment the command line selects.
pub fn environment(cli: &Cli) -> anyhow::Result<Environment> {
    let config = Config::load(&cli.config)?;
    Ok(config.environment(cli.env.as_deref(), cli.endpoint.as_deref())?)
}

impl Inputs {
    /// Loads the desired state and the lockfile. With `fold` (holding the lock), a
    /// journal left by an interrupted run is folded into the lockfile first.
    /// Diagnostics are printed; any error among them ends the command with nothing planned.
    pub fn load(environment: Environment, fold: bool) -> anyhow::Result<Inputs> {
        let read_lockfile = || match fold {
            true => Lockfile::fold(&environment.lockfile, environment.sdkappid),
            false => Lockfile::read(&environment.lockfile).map(|lockfile| (lockfile, 0)),
        };
        // Independent inputs: read the lockfile while the group files parse.
        let (loaded, lockfile) = rayon::join(|| desired::load(&environment.groups_dir), read_lockfile);
        report::diagnostics(&loaded.diagnostics);
        if loaded.has_errors() {
            bail!("{}; nothing was planned", report::counts(&loaded.diagnostics));
        }
        let (lockfile, recovered) = lockfile?;
        lockfile.check_app(&environment.lockfile, environment.sdkappid)?;
        Ok(Inputs { environment, desired: loaded.state, lockfile, recovered })
    }

    /// What a saved plan records of these inputs.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            desired: self.desired.digest(),
            lockfile: self.lockfile.digest(),
            environment: self.environment.digest(),
        }
    }

    /// The plan, limited to `targets` when any are given.
    pub fn plan(&self, prune: bool, targets: &[String]) -> anyhow::Result<Plan> {
        let targets = if targets.is_empty() {
            None
        } else {
            let mut set = BTreeSet::new();
            for target in targets {
                let id = GroupId::parse(target).with_context(|| format!("--target {target:?}"))?;
                if !self.desired.groups.contains_key(&id) && !self.lockfile.groups.contains_key(&id) {
                    bail!("--target {target:?}: no such group is declared or recorded in the lockfile");
                }
                set.insert(id);
            }
            Some(set)
        };
        let options = PlanOptions {
            environment: PlanEnvironment { name: self.environment.name.clone(), sdkappid: self.environment.sdkappid },
            prune: prune || self.environment.prune,
            targets,
        };
        Ok(plan::diff(&self.desired.groups, &self.lockfile.groups, &options))
    }
}

/// Runs `grattr plan`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<u8> {
    let inputs = Inputs::load(environment(cli)?, false)?;
    let mut plan = inputs.plan(args.prune, &args.targets)?;
    let rendered = match args.format {
        Format::Text => render::text(&plan),
        Format::Markdown => render::markdown(&plan),
        Format::Json => render::json(&plan),
    };
    anstream::stdout().lock().write_all(rendered.as_bytes())?;
    if let Some(out) = &args.out {
        plan.fingerprint = Some(inputs.fingerprint());
        lockfile::write_atomically(out, render::json(&plan).as_bytes())
            .with_context(|| format!("cannot save the plan to {}", out.display()))?;
        let _ = writeln!(
            anstream::stderr(),
            "Saved the plan to {}; apply it with `grattr apply {}`.",
            out.display(),
            out.display()
        );
    }
    let code = if args.detailed_exitcode && !plan.is_empty() { exit::CHANGES } else { exit::OK };
    // The process ends next: freeing 100,000 groups one by one would only add time.
    std::mem::forget((inputs, plan));
    Ok(code)
}

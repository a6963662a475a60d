//! `grattr plan`: the desired state against the lockfile, rendered for a
//! terminal, a pull request or a machine; optionally saved for `apply`.

use super::inputs::{self, environment};
use super::output::Stdout;
use super::{WorkspaceArgs, exit};
use crate::plan::render;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// The renderings of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// For terminals and logs.
    Text,
    /// For pull-request comments.
    Markdown,
    /// For machines (a documented, stable schema).
    Json,
}

/// Options of `grattr plan`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
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
    /// Plan against the live state (read with get_group_attr) instead of the lockfile,
    /// so that changes made outside grattr are shown and reset. Needs the secret key.
    #[arg(long)]
    refresh: bool,
    /// Plan against this lockfile instead of the configured one, read only (a missing
    /// file records nothing). In CI: the base branch's lockfile, so that a pull request
    /// that edits grattr.lock cannot hide one of its changes from its own plan.
    #[arg(long, value_name = "FILE", conflicts_with = "state_dir")]
    lockfile: Option<PathBuf>,
    #[command(flatten)]
    pub(super) workspace: WorkspaceArgs,
}

/// Runs `grattr plan`.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let mut environment = environment(&args.workspace)?;
    if let Some(lockfile) = &args.lockfile {
        // That file alone (and its journal): never the repository's record as a seed.
        environment.lockfile.clone_from(lockfile);
        environment.seed_lockfile = None;
        environment.state = None;
    }
    let mut workspace = inputs::load(environment)?;
    let targets = inputs::targets(&workspace, &args.targets)?;
    if args.refresh {
        inputs::refresh(&args.workspace.api, &mut workspace, targets.as_ref())?;
    }
    // The plan takes the desired state: 100,000 groups to create are held once, not twice.
    let mut plan = workspace.take_plan(args.prune, targets, args.out.is_some());
    // What apply would decide and what it would cost: information for the reviewer. The
    // exit status stays about changes alone (2 with --detailed-exitcode), as in Terraform.
    plan.safety = Some(workspace.safety_verdict(&plan));
    plan.cost = Some(crate::apply::cost(&plan, args.workspace.api.rate_limit(&workspace.environment)));
    let lockfile = &workspace.store.shown_as();
    match args.format {
        Format::Text => {
            let mut out = Stdout::text();
            let styled = out.styled();
            render::write_text(&mut out, &plan, lockfile, styled)?;
            out.flush()?;
        }
        // Markdown carries no styles, and machine output is never altered.
        Format::Markdown => {
            let mut out = Stdout::raw();
            out.write_all(render::markdown(&plan, lockfile).as_bytes())?;
            out.flush()?;
        }
        Format::Json => {
            let mut out = Stdout::raw();
            render::write_json(&mut out, &plan)?;
            out.flush()?;
        }
    }
    if let Some(out) = &args.out {
        let saved = render::json(&plan).context("cannot write the plan as JSON; nothing was saved")?;
        crate::files::write_atomically(out, saved.as_bytes())
            .with_context(|| format!("cannot save the plan to {}", out.display()))?;
        let _ = writeln!(
            anstream::stderr(),
            "Saved the plan to {}; apply it with `grattr apply {}`.",
            crate::escape::path(out),
            crate::escape::path(out)
        );
    }
    let code = if args.detailed_exitcode && !plan.is_empty() { exit::CHANGES } else { exit::OK };
    // The process ends next: freeing 100,000 groups one by one would only add time.
    std::mem::forget((workspace, plan));
    Ok(code)
}

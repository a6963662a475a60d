//! `grattr drift`: the desired, applied and live states of every managed group,
//! compared; what changed behind grattr's back.

use super::inputs::{self, environment};
use super::plan::Format;
use super::{WorkspaceArgs, exit};
use crate::drift::render;
use std::io::Write;

/// Options of `grattr drift`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 2 when any group drifted, conflicts or is missing.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Check only these groups (repeatable).
    #[arg(long = "target", value_name = "GROUP_ID")]
    targets: Vec<String>,
    #[command(flatten)]
    pub(super) workspace: WorkspaceArgs,
}

/// Runs `grattr drift`.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    let workspace = inputs::load(environment(&args.workspace)?)?;
    let targets = inputs::targets(&workspace, &args.targets)?;
    let live = inputs::read_live(&args.workspace.api, &workspace, workspace.managed(targets.as_ref()))?;
    let report = workspace.drift(&live);
    match args.format {
        Format::Text => anstream::stdout().lock().write_all(render::text(&report).as_bytes())?,
        Format::Markdown => anstream::stdout().lock().write_all(render::markdown(&report).as_bytes())?,
        // Machine output is never altered: no colour stripping, which would drop DEL.
        Format::Json => std::io::stdout().lock().write_all(render::json(&report)?.as_bytes())?,
    }
    Ok(if report.summary.unreadable > 0 {
        exit::ERROR
    } else if args.detailed_exitcode && report.has_drift() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

//! `grattr validate`: configuration and desired state, every rule, offline;
//! the diagnostics for a terminal, for GitHub's annotations or as JSON.

use super::{ConfigArgs, exit, report};
use crate::desired::OverlayPath;
use crate::desired::config::ConfigErrors;
use crate::desired::{self, Diagnostic, Loaded};
use anyhow::Context;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

/// How the diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// For terminals and logs: one line each (with a source snippet on a terminal) on stderr.
    Text,
    /// For machines and editors: one JSON document on stdout (a documented, stable schema).
    Json,
    /// For GitHub Actions: one `::error`/`::warning` workflow command each on stdout,
    /// which GitHub shows as annotations on the files.
    Github,
}

/// Options of `grattr validate`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// How to print the diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    pub(super) config: ConfigArgs,
}

/// What one desired state held: a groups directory, with the overlays of the
/// environments that load it.
struct Checked {
    /// The groups directory, and the environments when they differ in overlays.
    label: String,
    loaded: Loaded,
}

/// Loads the configuration and the desired state of the selected environment, or
/// of every environment when none is selected: each groups directory with each
/// environment's overlays, once for the environments that share both. A
/// configuration that cannot be used is reported with every mistake in it.
fn check(args: &ConfigArgs) -> Result<Vec<Checked>, ConfigErrors> {
    let config = args.load()?;
    let names: Vec<Option<String>> = match (&args.env, config.environment_names()) {
        (Some(name), _) => vec![Some(name.clone())],
        (None, names) if names.is_empty() => vec![None],
        (None, names) => names.into_iter().map(Some).collect(),
    };
    let mut sets: Vec<(PathBuf, Vec<OverlayPath>, Vec<String>)> = Vec::new();
    for name in &names {
        let environment = config.environment(name.as_deref(), None)?;
        let (dir, overlays) = (environment.groups_dir, environment.overlays);
        match sets.iter_mut().find(|(d, o, _)| *d == dir && *o == overlays) {
            Some((_, _, names)) => names.extend(name.clone()),
            None => sets.push((dir, overlays, name.iter().cloned().collect())),
        }
    }
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    let overlaid = sets.iter().any(|(_, overlays, _)| !overlays.is_empty());
    Ok(sets
        .into_iter()
        .map(|(dir, overlays, names)| {
            let mut label = dir.display().to_string();
            if overlaid && !names.is_empty() {
                label = format!("{label} ({})", names.join(", "));
            }
            Checked { label, loaded: desired::load_with(&dir, &overlays) }
        })
        .collect())
}

/// The diagnostics of every check, each once: environments that share a groups
/// directory find its files' problems each.
fn distinct(checked: &[Checked]) -> Vec<&Diagnostic> {
    let all = checked.iter().flat_map(|c| &c.loaded.diagnostics);
    if checked.len() < 2 {
        return all.collect();
    }
    let mut seen = HashSet::new();
    all.filter(|d| seen.insert(format!("{d:?}"))).collect()
}

/// Validates, and prints the diagnostics in the chosen format. Exits 1 when any is an error.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    match args.format {
        Format::Text => Ok(text(&check(&args.config)?)),
        format => machine(&args.config, format, check(&args.config)),
    }
}

/// The summary line of one desired state: `groups: ok: 4 groups in 3 files` (`and 1
/// overlay file` with overlays; `groups (production): …` when environments differ in
/// overlays) or `groups: invalid: 1 error, 0 warnings in 1 file`, and whether it is valid.
fn summary(checked: &Checked) -> (String, bool) {
    let Checked { label, loaded } = checked;
    let shown = crate::escape::text(label).into_owned();
    if loaded.has_errors() {
        return (format!("{shown}: invalid: {}", report::counts(&loaded.diagnostics)), false);
    }
    let (groups, files, warnings) = (loaded.state.groups.len(), loaded.files, loaded.diagnostics.len());
    let overlays = match loaded.overlay_files {
        0 => String::new(),
        1 => " and 1 overlay file".to_string(),
        n => format!(" and {n} overlay files"),
    };
    let line = format!(
        "{shown}: ok: {groups} group{} in {files} file{}{overlays}{}",
        if groups == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if warnings > 0 { format!(" ({})", report::counts(&loaded.diagnostics)) } else { String::new() }
    );
    (line, true)
}

/// Diagnostics on stderr (each once); the summary of a valid desired state on
/// stdout, of an invalid one on stderr.
fn text(checked: &[Checked]) -> u8 {
    let mut failed = false;
    let mut shown = HashSet::new();
    let several = checked.len() > 1;
    for checked in checked {
        let diagnostics = &checked.loaded.diagnostics;
        if several {
            let fresh: Vec<Diagnostic> =
                diagnostics.iter().filter(|d| shown.insert(format!("{d:?}"))).cloned().collect();
            report::diagnostics(&fresh);
        } else {
            report::diagnostics(diagnostics);
        }
        let (line, valid) = summary(checked);
        failed |= !valid;
        let _ = match valid {
            true => writeln!(anstream::stdout(), "{line}"),
            false => writeln!(anstream::stderr(), "{line}"),
        };
    }
    if failed { exit::ERROR } else { exit::OK }
}

/// `--format json`: the JSON document (README, "validate --format json").
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    valid: bool,
    diagnostics: Vec<&'a Diagnostic>,
    summary: JsonSummary,
}

#[derive(serde::Serialize)]
struct JsonSummary {
    errors: usize,
    warnings: usize,
    files: usize,
}

/// `--format json` and `--format github`: both from the same diagnostics.
fn machine(args: &ConfigArgs, format: Format, checked: Result<Vec<Checked>, ConfigErrors>) -> anyhow::Result<u8> {
    let (checked, config_errors) = match checked {
        Ok(checked) => (checked, Vec::new()),
        Err(errors) => (Vec::new(), errors.diagnostics),
    };
    let diagnostics: Vec<&Diagnostic> = config_errors.iter().chain(distinct(&checked)).collect();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if format == Format::Json {
        let files = checked.iter().map(|c| c.loaded.files + c.loaded.overlay_files).sum();
        let warnings = diagnostics.len() - errors;
        let report = JsonReport {
            format_version: 1,
            valid: errors == 0,
            diagnostics,
            summary: JsonSummary { errors, warnings, files },
        };
        let mut json = serde_json::to_string_pretty(&report).context("cannot write the diagnostics as JSON")?;
        json.push('\n');
        // Machine output is never altered: no colour stripping, which would drop DEL.
        std::io::stdout().lock().write_all(json.as_bytes())?;
    } else {
        let mut out = String::new();
        for diagnostic in &diagnostics {
            out += &diagnostic.github_command();
            out.push('\n');
        }
        // Not through anstream: the commands are escaped for GitHub, and must reach it as they are.
        std::io::stdout().lock().write_all(out.as_bytes())?;
        let mut lines: Vec<String> = checked.iter().map(|c| summary(c).0).collect();
        if !config_errors.is_empty() {
            let shown = crate::escape::text(&args.config.display().to_string()).into_owned();
            lines.push(format!("{shown}: invalid: {}", report::counts(&config_errors)));
        }
        let mut err = anstream::stderr().lock();
        for line in lines {
            // GitHub's runner reads stderr for commands too: the summary names a configured directory.
            let _ = writeln!(err, "{}", crate::escape::workflow_log(&line));
        }
    }
    Ok(if errors > 0 { exit::ERROR } else { exit::OK })
}

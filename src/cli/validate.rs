//! `grattr validate`: configuration and desired state, every rule, offline.

use super::{Cli, exit, report};
use crate::desired::{self, Config};
use std::collections::BTreeSet;

/// `grattr validate` takes no options of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Validates the selected environment, or every environment when none is selected.
pub fn run(cli: &Cli, _args: &Args) -> anyhow::Result<u8> {
    let config = Config::load(&cli.config)?;
    let names: Vec<Option<String>> = match (&cli.env, config.environment_names()) {
        (Some(name), _) => vec![Some(name.clone())],
        (None, names) if names.is_empty() => vec![None],
        (None, names) => names.into_iter().map(Some).collect(),
    };
    let mut dirs = BTreeSet::new();
    for name in &names {
        dirs.insert(config.environment(name.as_deref(), cli.endpoint.as_deref())?.groups_dir);
    }
    let mut failed = false;
    for dir in dirs {
        let loaded = desired::load(&dir);
        report::diagnostics(&loaded.diagnostics);
        let groups = loaded.state.groups.len();
        let shown = crate::escape::text(&dir.display().to_string()).into_owned();
        let mut out = anstream::stdout().lock();
        use std::io::Write;
        if loaded.has_errors() {
            failed = true;
            let _ = writeln!(anstream::stderr(), "{}: invalid: {}", shown, report::counts(&loaded.diagnostics));
        } else {
            let warnings = loaded.diagnostics.len();
            let _ = writeln!(
                out,
                "{}: ok: {groups} group{} in {} file{}{}",
                shown,
                if groups == 1 { "" } else { "s" },
                loaded.files,
                if loaded.files == 1 { "" } else { "s" },
                if warnings > 0 { format!(" ({})", report::counts(&loaded.diagnostics)) } else { String::new() }
            );
        }
    }
    Ok(if failed { exit::ERROR } else { exit::OK })
}

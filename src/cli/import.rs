//! `grattr import`: adopt existing groups. Reads their live attributes, writes
//! desired-state YAML that reproduces them exactly, and records them in the
//! lockfile as applied, so that the next plan is empty.

use super::inputs::{self, environment};
use super::{WorkspaceArgs, exit};
use crate::model::{AttributeSet, GroupId, Ownership};
use crate::workspace::{Layout, import_file};
use anyhow::{Context, anyhow, bail};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `grattr import`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The groups to adopt.
    #[arg(value_name = "GROUP_ID")]
    groups: Vec<String>,
    /// Also adopt the groups listed in this file, one id per line; a line whose first
    /// non-blank character is `#` is a comment (ids may hold `#` and spaces).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Where to write the YAML (default: imported.yaml in the groups directory). An
    /// existing file is never overwritten.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Write each group against this template (defined in any group file): the entry
    /// names it and writes only the keys whose live value differs from the template's,
    /// or that it lacks; the template's keys the group lacks go under `unset:`.
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
    /// What of the groups grattr takes over: `group` (every key; a change is a full
    /// reset) or `keys` (only the keys named with --key, and the template's with
    /// --template; the others stay the members'). Default: the template's, else group.
    #[arg(long, value_enum)]
    ownership: Option<OwnershipArg>,
    /// With key ownership: a key to adopt (repeatable). A group that lacks it live
    /// is imported without it.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Write groups whose entries would be identical (same template, attributes, unset
    /// and ownership) as one entry whose `ids:` lists them; a group like no other keeps
    /// its `id:` entry.
    #[arg(long)]
    sets: bool,
    /// Wait this long for another grattr holding the lockfile's lock.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,
    #[command(flatten)]
    pub(super) workspace: WorkspaceArgs,
}

/// `--ownership`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OwnershipArg {
    // (Undocumented here: the option's help says what each means, in one line.)
    Group,
    Keys,
}

impl From<OwnershipArg> for Ownership {
    fn from(arg: OwnershipArg) -> Self {
        match arg {
            OwnershipArg::Group => Ownership::Group,
            OwnershipArg::Keys => Ownership::Keys,
        }
    }
}

/// The ids to import: the arguments, then the file's lines, each checked.
fn requested(args: &Args) -> anyhow::Result<Vec<GroupId>> {
    let mut ids = Vec::new();
    for text in &args.groups {
        ids.push(GroupId::parse(text).with_context(|| format!("{text:?}"))?);
    }
    if let Some(path) = &args.from {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (index, line) in text.lines().enumerate() {
            // Only a whole line is a comment: ids may hold `#` and spaces ("@TGS#…", "a #1").
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            ids.push(GroupId::parse(line).with_context(|| format!("{}:{}: {line:?}", path.display(), index + 1))?);
        }
    }
    if ids.is_empty() {
        bail!("no group to import: name group ids, or a file of them with --from");
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Checks `--key` against the ownership adopted: key ownership adopts the keys
/// named (and a template's), group ownership every key.
fn check_keys(ownership: Ownership, template: bool, keys: &[String]) -> anyhow::Result<()> {
    match (ownership, keys.is_empty()) {
        (Ownership::Keys, true) if !template => {
            bail!("--ownership keys adopts only the keys named: give them with --key KEY")
        }
        (Ownership::Group, false) => {
            bail!("--key names the keys to adopt with --ownership keys; without it every key is")
        }
        _ => Ok(()),
    }
}

/// Runs `grattr import`.
pub(super) fn run(args: &Args) -> anyhow::Result<u8> {
    if args.template.is_none() {
        check_keys(args.ownership.map_or(Ownership::Group, Ownership::from), false, &args.keys)?;
    }
    let ids = requested(args)?;
    let environment = environment(&args.workspace)?;
    let out = args.out.clone().unwrap_or_else(|| environment.groups_dir.join("imported.yaml"));
    if out.exists() {
        bail!("{} exists; grattr import never overwrites a file: choose another with --out", out.display());
    }
    // The template imported against is about to be used: that no group uses it yet is moot.
    let moot = |d: &crate::desired::Diagnostic| {
        args.template.as_ref().is_some_and(|name| crate::desired::templates::is_unused_warning(d, name))
    };
    let (mut workspace, mut lock) = inputs::open_hiding(environment, "import", args.lock_timeout, "imported", moot)?;
    workspace.check_importable(&ids)?;
    let template = match &args.template {
        Some(name) => Some(workspace.templates.resolve(name).map_err(|e| anyhow!("{e}; nothing was imported"))?),
        None => None,
    };
    let ownership = args
        .ownership
        .map(Ownership::from)
        .or_else(|| template.as_ref().and_then(|t| t.ownership))
        .unwrap_or(Ownership::Group);
    check_keys(ownership, template.is_some(), &args.keys)?;
    // With key ownership, the keys adopted: those named, and the template's.
    let adopted = |key: &str| {
        args.keys.iter().any(|k| k == key) || template.as_ref().is_some_and(|t| t.attributes.contains_key(key))
    };
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    let live = inputs::read_live(&args.workspace.api, &workspace, unique)?;
    let mut imported: Vec<(GroupId, AttributeSet)> = Vec::new();
    let mut failed = 0;
    let mut err = anstream::stderr();
    for (id, read) in live {
        match read {
            Ok(mut attributes) => {
                if ownership == Ownership::Keys {
                    attributes.retain(|key, _| adopted(key));
                }
                imported.push((id, attributes));
            }
            Err(e) => {
                failed += 1;
                let hint = e.hint().map(|h| format!("\n  hint: {h}")).unwrap_or_default();
                writeln!(err, "error: cannot import {id}: {e}{hint}")?;
            }
        }
    }
    if imported.is_empty() {
        bail!("no group could be read; nothing was imported");
    }

    let layout = Layout {
        ownership,
        default_ownership: workspace.environment.ownership,
        template: template.as_ref().map(|t| (t, &workspace.templates)),
        sets: args.sets,
    };
    let text = import_file(&out, workspace.environment.sdkappid, &imported, &layout)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::files::write_atomically(&out, text.as_bytes()).with_context(|| format!("cannot write {}", out.display()))?;
    let count = imported.len();
    super::runtime()?.block_on(workspace.adopt(&mut lock, imported, ownership))?;
    let against = template.as_ref().map(|t| format!(" against template {}", crate::escape::quoted(&t.name)));
    writeln!(
        anstream::stdout(),
        "Imported {count} group(s) into {}{} and recorded them in {}; `grattr plan` shows no change for them.",
        crate::escape::path(&out),
        against.unwrap_or_default(),
        crate::escape::path(&workspace.store.shown_as())
    )?;
    Ok(if failed > 0 { exit::ERROR } else { exit::OK })
}

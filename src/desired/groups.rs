//! The desired state: every `*.yaml`/`*.yml` file under the groups directory,
//! read in parallel, validated against every documented limit, merged in a
//! deterministic order.

use super::diagnostic::{Diagnostic, Rule};
use super::yaml::{self, Entries, Node};
pub use crate::model::DesiredGroup;
use crate::model::limits::{self, Violation};
use crate::model::{AttributeSet, Digest, DigestBuilder, GroupId, SourceLocation};
use rayon::prelude::*;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every declared group, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// The groups, ordered by id.
    pub groups: BTreeMap<GroupId, DesiredGroup>,
}

impl DesiredState {
    /// A digest of the declared attributes (not of their layout in files), for plan fingerprints.
    pub fn digest(&self) -> Digest {
        let mut digest = DigestBuilder::new();
        for (id, group) in &self.groups {
            digest.group(id, &group.attributes);
        }
        digest.finish()
    }
}

/// The groups of one file and the problems found in it.
#[derive(Debug, Clone, Default)]
pub struct FileGroups {
    /// The valid groups, in the order written.
    pub groups: Vec<(GroupId, DesiredGroup)>,
    /// Every problem found in the file.
    pub diagnostics: Vec<Diagnostic>,
}

/// The result of loading a groups directory: what was declared and what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The valid groups. When [`Loaded::has_errors`], this is incomplete and must not be applied.
    pub state: DesiredState,
    /// Every problem in every file, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// How many files were read.
    pub files: usize,
}

impl Loaded {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    groups: Option<Vec<GroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    id: Spanned<Node>,
    attributes: Spanned<Entries>,
}

/// Loads and validates every group file under `dir`. Never fails: an unreadable
/// directory or file is a diagnostic like any other.
pub fn load(dir: &Path) -> Loaded {
    let files = match list_files(dir) {
        Ok(files) => files,
        Err(diagnostic) => return Loaded { diagnostics: vec![diagnostic], ..Loaded::default() },
    };
    let parsed: Vec<FileGroups> = files.par_iter().map(|path| read_file(path)).collect();
    let count = files.len();
    let mut loaded = merge(parsed);
    loaded.files = count;
    loaded
}

/// Whether grattr reads this file name: YAML, not hidden, not an editor leftover.
pub fn is_group_file(name: &str) -> bool {
    let hidden_or_leftover = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !hidden_or_leftover && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Every group file under `dir`, recursively, sorted by path (the order of the
/// plan and of duplicate reports). Hidden directories are skipped.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let at_dir = || SourceLocation { file: Arc::from(dir), line: 0, column: 0 };
    if !dir.is_dir() {
        return Err(Diagnostic::error(Rule::Io, at_dir(), "groups directory not found")
            .with_help("create it, or set `groups:` in grattr.yaml to the directory that holds your group files"));
    }
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.'));
    for entry in walk {
        let entry = entry.map_err(|e| {
            let file = e.path().unwrap_or(dir);
            Diagnostic::error(
                Rule::Io,
                SourceLocation { file: Arc::from(file), line: 0, column: 0 },
                format!("cannot read: {e}"),
            )
        })?;
        if entry.file_type().is_file() && is_group_file(&entry.file_name().to_string_lossy()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// Reads and checks one file.
pub fn read_file(path: &Path) -> FileGroups {
    let file: Arc<Path> = Arc::from(super::diagnostic::display_path(path));
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse_file(file, &text),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
                let column =
                    String::from_utf8_lossy(valid.rsplit(|b| *b == b'\n').next().unwrap_or(&[])).chars().count() as u64
                        + 1;
                let message = format!("file is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to());
                FileGroups {
                    diagnostics: vec![Diagnostic::error(Rule::NotUtf8, SourceLocation { file, line, column }, message)],
                    ..Default::default()
                }
            }
        },
        Err(e) => FileGroups {
            diagnostics: vec![Diagnostic::error(
                Rule::Io,
                SourceLocation { file, line: 0, column: 0 },
                format!("cannot read: {e}"),
            )],
            ..Default::default()
        },
    }
}

/// Parses and checks the text of one file; `file` names it in diagnostics.
pub fn parse_file(file: Arc<Path>, text: &str) -> FileGroups {
    let mut out = FileGroups::default();
    let doc: FileDoc = match serde_saphyr::from_str_with_options(text, yaml::options()) {
        Ok(doc) => doc,
        Err(e) => {
            out.diagnostics.push(yaml::diagnostic(&file, &e));
            return out;
        }
    };
    let groups = doc.groups.unwrap_or_default();
    if groups.is_empty() {
        let location = SourceLocation { file: file.clone(), line: 1, column: 1 };
        out.diagnostics.push(
            Diagnostic::warning(Rule::NoGroups, location, "file declares no groups")
                .with_help("declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file"),
        );
    }
    for group in groups {
        check_group(&file, text, group, &mut out);
    }
    out
}

fn check_group(file: &Arc<Path>, text: &str, group: GroupDoc, out: &mut FileGroups) {
    let id_at = yaml::locate(file, &group.id.referenced);
    let errors_before = out.diagnostics.iter().filter(|d| d.is_error()).count();
    let id = match Node::text(&group.id, text) {
        None => {
            let message = format!("group id is {}; an id is text", group.id.value.kind());
            out.diagnostics.push(
                Diagnostic::error(Rule::GroupId, id_at.clone(), message).with_code(limits::MAX_GROUP_ID_BYTES.code),
            );
            None
        }
        Some(raw) => match GroupId::parse(&raw) {
            Ok(id) => Some(id),
            Err(e) => {
                out.diagnostics
                    .push(Diagnostic::error(Rule::GroupId, id_at.clone(), e.to_string()).with_code(e.code()));
                None
            }
        },
    };
    let name = id.as_ref().map_or_else(|| "(invalid id)".to_string(), |id| format!("{:?}", id.as_str()));

    let mut attributes = AttributeSet::new();
    let mut key_at: BTreeMap<String, (SourceLocation, SourceLocation)> = BTreeMap::new();
    for (key, value) in &group.attributes.value.0 {
        let here = yaml::locate(file, &key.referenced);
        let Some(key_text) = Node::text(key, text) else {
            let message = format!("group {name}: a key is {}; keys are text", key.value.kind());
            out.diagnostics.push(Diagnostic::error(Rule::KeyNotText, here, message).with_help("quote the key"));
            continue;
        };
        let value_at = yaml::locate(file, &value.referenced);
        let value_text = match &value.value {
            Node::Null => {
                let message = format!("group {name} key {key_text:?}: value is null");
                let help = format!(
                    "values are text: write `{key_text}: \"\"` for an empty value, or quote a value such as \"~\" or \"null\""
                );
                out.diagnostics.push(Diagnostic::error(Rule::NullValue, value_at, message).with_help(help));
                continue;
            }
            Node::Json(json) => json.to_string(),
            _ => Node::text(value, text).unwrap_or_default(),
        };
        match key_at.entry(key_text.clone()) {
            Entry::Occupied(first) => {
                let message =
                    format!("group {name}: key {key_text:?} is given twice, first at line {}", first.get().0.line);
                out.diagnostics.push(Diagnostic::error(Rule::DuplicateKey, here, message));
            }
            Entry::Vacant(slot) => {
                slot.insert((here, value_at));
                attributes.insert(key_text, value_text);
            }
        }
    }

    let attributes_at = yaml::locate(file, &group.attributes.referenced);
    for violation in limits::check(&attributes) {
        let at = match &violation {
            Violation::ValueTooLong { key, .. } => key_at.get(key).map(|(_, value)| value.clone()),
            other => other.key().and_then(|key| key_at.get(key)).map(|(key, _)| key.clone()),
        }
        .unwrap_or_else(|| attributes_at.clone());
        let rule = match violation {
            Violation::TooManyKeys { .. } => Rule::TooManyKeys,
            Violation::EmptyKey => Rule::KeyEmpty,
            Violation::KeyTooLong { .. } => Rule::KeyTooLong,
            Violation::ValueTooLong { .. } => Rule::ValueTooLong,
            Violation::ValuesTooLarge { .. } => Rule::ValuesTooLarge,
            Violation::KeysAndValuesLarge { .. } => Rule::KeysAndValuesLarge,
        };
        let message = format!("group {name}: {violation}");
        let diagnostic = match violation.severity() {
            limits::Severity::Error => Diagnostic::error(rule, at, message),
            limits::Severity::Warning => Diagnostic::warning(rule, at, message),
        };
        out.diagnostics.push(diagnostic.with_code(violation.limit().code));
    }

    let clean = out.diagnostics.iter().filter(|d| d.is_error()).count() == errors_before;
    if let (Some(id), true) = (id, clean) {
        out.groups.push((id, DesiredGroup { attributes, source: id_at }));
    }
}

/// Merges the files' groups in the given order, reporting every group declared twice.
pub fn merge(files: Vec<FileGroups>) -> Loaded {
    let mut loaded = Loaded::default();
    for file in files {
        loaded.diagnostics.extend(file.diagnostics);
        for (id, group) in file.groups {
            match loaded.state.groups.entry(id) {
                Entry::Occupied(first) => {
                    let message = format!(
                        "group {:?} is declared twice: here and at {}",
                        first.key().as_str(),
                        first.get().source
                    );
                    loaded.diagnostics.push(Diagnostic::error(Rule::DuplicateGroup, group.source, message));
                }
                Entry::Vacant(slot) => {
                    slot.insert(group);
                }
            }
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FileGroups {
        parse_file(Arc::from(Path::new("g.yaml")), text)
    }

    #[test]
    fn reads_groups_with_their_locations() {
        let parsed = parse(
            "groups:\n  - id: \"@TGS#aC5SZEAEF\"\n    attributes:\n      theme: dark\n      n: 42\n  - id: empty\n    attributes: {}\n",
        );
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let (id, group) = &parsed.groups[0];
        assert_eq!(id.as_str(), "@TGS#aC5SZEAEF");
        assert_eq!((group.source.line, group.source.column), (2, 9));
        assert_eq!(group.attributes, AttributeSet::from([("n".into(), "42".into()), ("theme".into(), "dark".into())]));
        assert!(parsed.groups[1].1.attributes.is_empty());
    }

    #[test]
    fn reports_every_problem_of_a_file() {
        let parsed = parse(
            "groups:\n  - id: a\n    attributes:\n      k: ~\n      k2: x\n      k2: y\n  - id: \"\"\n    attributes: {}\n",
        );
        let rules: Vec<_> = parsed.diagnostics.iter().map(|d| (d.rule, d.location.line)).collect();
        assert_eq!(rules, vec![(Rule::NullValue, 4), (Rule::DuplicateKey, 6), (Rule::GroupId, 7)]);
        assert!(parsed.groups.is_empty());
    }

    #[test]
    fn duplicate_groups_name_both_places() {
        let a = parse("groups:\n  - id: x\n    attributes: {}\n");
        let b = parse_file(Arc::from(Path::new("h.yaml")), "groups:\n\n  - id: x\n    attributes: {}\n");
        let loaded = merge(vec![a, b]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert_eq!(
            loaded.diagnostics[0].to_string(),
            "h.yaml:3:9: error: group \"x\" is declared twice: here and at g.yaml:2:9"
        );
    }

    #[test]
    fn skips_hidden_files_and_editor_leftovers() {
        for name in ["a.yaml", "b.yml", "x.y.yaml"] {
            assert!(is_group_file(name), "{name}");
        }
        for name in [".a.yaml", ".#a.yaml", "a.yaml~", ".a.yaml.swp", "#a.yaml#", "a.json", "a.yaml.bak"] {
            assert!(!is_group_file(name), "{name}");
        }
    }
}

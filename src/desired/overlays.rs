//! Overlays: what one environment changes of the desired state. `grattr.yaml` lists
//! them per environment (`overlays: [overlays/production]`, files or directories of
//! `*.yaml`, relative to it); an overlay file patches templates (`templates:`) and
//! groups (`groups:`) that the group files declare, and declares nothing new.
//!
//! This module reads them ([`Overlays::read`]) and checks each file on its own;
//! [`super::templates::resolve`] applies them, because what they patch is known only
//! once every group file is read. Resolution order: the template chain, parent first,
//! each template followed by its overlay patches (in the order listed); then the
//! group's own `attributes:`; then its `unset:`; then the overlay patches of the group,
//! in the order listed. Each patch sets its `attributes:`, then removes its `unset:`.

use super::attributes::{read_attributes, report_limits};
use super::diagnostic::{Diagnostic, Rule, display_path};
use super::groups;
use super::shape::{
    AttrEntries, Entries, Issue, Items, Lenient, NodeList, Shape, TopFields, found_or_report, read_fields_refusing,
    wrong_type,
};
use super::templates::{read_unset, template_name};
use super::yaml::{self, Node};
use crate::model::{AttributeSet, GroupId, SourceLocation};
use serde::de::{IgnoredAny, MapAccess};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A path `overlays:` lists in `grattr.yaml`, and where it is written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPath {
    /// The file or directory (relative paths are joined to `grattr.yaml`'s directory).
    pub path: PathBuf,
    /// Where the path is written in `grattr.yaml`.
    pub at: SourceLocation,
}

/// One patch of an overlay file: keys to set, then keys to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// What it patches, for messages: `template "community"`, `group "makers"`.
    pub subject: String,
    /// Where the patched template's name or the entry's (first) id is written.
    pub at: SourceLocation,
    /// The keys it sets.
    pub attributes: AttributeSet,
    /// Where each key it sets is written.
    pub places: BTreeMap<String, SourceLocation>,
    /// The keys it removes, and where each is written.
    pub unset: Vec<(String, SourceLocation)>,
    /// Whether it is free of errors (what it patches is then not resolved).
    pub valid: bool,
}

/// The patch of a template (`templates:` in an overlay file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePatch {
    /// The template patched.
    pub name: String,
    /// The patch.
    pub patch: Patch,
}

/// The patch of one group, or of each group of a set (`groups:` in an overlay file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPatch {
    /// The groups patched, each with where its id is written.
    pub ids: Vec<(GroupId, SourceLocation)>,
    /// The patch.
    pub patch: Patch,
}

/// One overlay file, read and checked on its own.
#[derive(Debug, Clone, Default)]
pub struct OverlayFile {
    /// The file, as shown.
    pub file: Option<Arc<Path>>,
    /// Its template patches, in the order written.
    pub templates: Vec<TemplatePatch>,
    /// Its group patches, in the order written.
    pub groups: Vec<GroupPatch>,
    /// The problems found in it.
    pub diagnostics: Vec<Diagnostic>,
}

/// The overlays of one environment, every file read, in the order listed.
#[derive(Debug, Clone, Default)]
pub struct Overlays {
    /// The groups directory, as shown: where what overlays patch is declared.
    pub groups_dir: Option<Arc<Path>>,
    /// Problems of the paths listed (at their line in `grattr.yaml`).
    pub problems: Vec<Diagnostic>,
    /// The files, in the order listed (a directory's in path order).
    pub files: Vec<OverlayFile>,
}

impl Overlays {
    /// Reads the overlays `paths` lists, checking each path and each file; never
    /// fails: every problem is a diagnostic. `groups_dir` is the groups directory,
    /// which an overlay may neither lie in nor hold.
    pub fn read(paths: &[OverlayPath], groups_dir: &Path) -> Overlays {
        let mut overlays = Overlays { groups_dir: Some(Arc::from(display_path(groups_dir))), ..Overlays::default() };
        if paths.is_empty() {
            return overlays;
        }
        let groups_real = groups_dir.canonicalize().ok();
        let mut listed: HashMap<PathBuf, SourceLocation> = HashMap::new();
        for overlay in paths {
            // Messages keep names as they are: a diagnostic escapes them where it is shown.
            let shown = display_path(&overlay.path).display().to_string();
            let error = |message: String| Diagnostic::error(Rule::Overlay, overlay.at.clone(), message);
            let metadata = match std::fs::metadata(&overlay.path) {
                Ok(metadata) => metadata,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    overlays.problems.push(error(format!("overlay {shown} does not exist")).with_help(
                        "create it (an overlay file, or a directory of *.yaml overlay files), or remove it from `overlays:`",
                    ));
                    continue;
                }
                Err(e) => {
                    overlays.problems.push(error(format!("cannot read overlay {shown}: {e}")));
                    continue;
                }
            };
            if let (Ok(real), Some(groups)) = (overlay.path.canonicalize(), &groups_real) {
                let groups_shown = overlays.groups_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
                let help = "keep overlays beside the groups directory, e.g. overlays/production next to groups/";
                if real.starts_with(groups) {
                    let message = format!(
                        "overlay {shown} is inside the groups directory {groups_shown}: its files would be read as group files too"
                    );
                    overlays.problems.push(error(message).with_help(help));
                    continue;
                }
                if groups.starts_with(&real) {
                    let message = format!(
                        "the groups directory {groups_shown} is inside overlay {shown}: its group files would be read as overlays"
                    );
                    overlays.problems.push(error(message).with_help(help));
                    continue;
                }
            }
            let (dir, files) = if metadata.is_dir() {
                match groups::list_files(&overlay.path) {
                    Ok(files) if files.is_empty() => {
                        let message = format!("overlay directory {shown} holds no *.yaml or *.yml file");
                        overlays.problems.push(Diagnostic::warning(Rule::Overlay, overlay.at.clone(), message));
                        continue;
                    }
                    Ok(files) => (Some(overlay.path.as_path()), files),
                    Err(diagnostic) => {
                        overlays.problems.push(diagnostic);
                        continue;
                    }
                }
            } else if metadata.is_file() {
                (None, vec![overlay.path.clone()])
            } else {
                let message = format!(
                    "overlay {shown} is not a regular file or directory (a FIFO, socket or device); grattr does not open it"
                );
                overlays.problems.push(error(message));
                continue;
            };
            for path in files {
                let real = path.canonicalize().unwrap_or_else(|_| path.clone());
                if let Some(first) = listed.get(&real) {
                    let file = display_path(&path).display().to_string();
                    let through = if file == shown { String::new() } else { format!(" (through {shown})") };
                    let message = format!("overlay file {file} is listed twice: here{through} and at {first}");
                    let diagnostic = error(message).with_related(first.clone(), "first listed here");
                    overlays.problems.push(diagnostic);
                    continue;
                }
                listed.insert(real, overlay.at.clone());
                overlays.files.push(match groups::read_text(dir, &path) {
                    Ok((file, text)) => parse_overlay(file, &text),
                    Err(diagnostic) => OverlayFile {
                        file: Some(diagnostic.location.file.clone()),
                        diagnostics: vec![diagnostic],
                        ..OverlayFile::default()
                    },
                });
            }
        }
        overlays
    }

    /// Overlays of already parsed files (tests, and callers that read files themselves).
    pub fn of_files(groups_dir: &Path, files: Vec<OverlayFile>) -> Overlays {
        Overlays { groups_dir: Some(Arc::from(groups_dir)), problems: Vec::new(), files }
    }

    /// Whether any file patches anything.
    pub fn has_patches(&self) -> bool {
        self.files.iter().any(|f| !f.templates.is_empty() || !f.groups.is_empty())
    }

    /// Every group id a patch names (declared or not).
    pub fn patched_ids(&self) -> HashSet<&GroupId> {
        self.files.iter().flat_map(|f| &f.groups).flat_map(|g| g.ids.iter().map(|(id, _)| id)).collect()
    }

    /// The problems of the overlays: those of the paths, then each file's (its own and
    /// `found` in it by resolution, `found[i]` for file `i`), in position order.
    pub fn diagnostics(&self, found: &[Vec<Diagnostic>]) -> Vec<Diagnostic> {
        let mut all = self.problems.clone();
        for (index, file) in self.files.iter().enumerate() {
            let mut diagnostics = file.diagnostics.clone();
            diagnostics.extend(found.get(index).into_iter().flatten().cloned());
            diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
            all.extend(diagnostics);
        }
        all
    }

    /// How many overlay files are read.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// The top level of an overlay file.
type OverlayFields = TopFields<PatchList, TemplatePatches>;

/// An overlay's `groups:` sequence.
type PatchList = Items<Spanned<Lenient<PatchFields>>>;

/// What an overlay cannot change of a group, and why.
const GROUP_REFUSED: &[(&str, Rule, &str)] = &[
    (
        "template",
        Rule::Overlay,
        "an overlay cannot change a group's `template:`; it patches `attributes:` and `unset:` (patch the template under `templates:` instead)",
    ),
    (
        "ownership",
        Rule::Overlay,
        "an overlay cannot change a group's `ownership:`; it patches `attributes:` and `unset:`",
    ),
];

/// One entry of an overlay's `groups:`.
#[derive(Debug, Default)]
struct PatchFields {
    id: Option<Spanned<Node>>,
    ids: Option<(Location, Spanned<Lenient<NodeList>>)>,
    attributes: Option<Spanned<Lenient<AttrEntries>>>,
    unset: Option<Spanned<Lenient<NodeList>>>,
    issues: Vec<Issue>,
}

impl Shape for PatchFields {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut entry = PatchFields::default();
        let known = &["id", "ids", "attributes", "unset"];
        entry.issues = read_fields_refusing(map, known, GROUP_REFUSED, |field, key, map| {
            match field {
                "id" => entry.id = Some(map.next_value()?),
                "ids" => entry.ids = Some((key, map.next_value()?)),
                "unset" => entry.unset = Some(map.next_value()?),
                _ => entry.attributes = Some(map.next_value()?),
            }
            Ok(())
        })?;
        Ok(entry)
    }
}

/// An overlay's `templates:` mapping: each name and its patch.
type TemplatePatches = Entries<Spanned<Node>, Spanned<Lenient<TemplatePatchBody>>>;

/// The patch of one template: attribute keys, and the reserved `unset:`.
#[derive(Debug, Default)]
struct TemplatePatchBody {
    entries: Vec<(Spanned<Node>, Spanned<Node>)>,
    unset: Option<Spanned<Lenient<NodeList>>>,
    /// `extends` and `ownership`, which an overlay cannot change, where written.
    refused: Vec<(&'static str, Location)>,
    /// A second `unset`, where written, and the line of the first.
    repeated: Vec<(Location, u64)>,
}

/// The fields of a template patch that are not attribute keys.
const PATCH_RESERVED: [&str; 3] = ["unset", "extends", "ownership"];

impl Shape for TemplatePatchBody {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut body = TemplatePatchBody::default();
        let mut unset_line = None;
        while let Some(key) = map.next_key::<Spanned<Node>>()? {
            let reserved = match &key.value {
                Node::Text(text) | Node::Plain(text) => PATCH_RESERVED.into_iter().find(|r| r == text),
                _ => None,
            };
            match reserved {
                Some("unset") => match unset_line {
                    Some(first) => {
                        body.repeated.push((key.referenced, first));
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => {
                        unset_line = Some(key.referenced.line());
                        body.unset = Some(map.next_value()?);
                    }
                },
                Some(field) => {
                    body.refused.push((field, key.referenced));
                    map.next_value::<IgnoredAny>()?;
                }
                None => body.entries.push((key, map.next_value()?)),
            }
        }
        Ok(body)
    }
}

/// Parses and checks the text of one overlay file; `file` names it in diagnostics.
pub fn parse_overlay(file: Arc<Path>, text: &str) -> OverlayFile {
    let mut out = OverlayFile { file: Some(file.clone()), ..OverlayFile::default() };
    let doc: Spanned<Lenient<OverlayFields>> = match serde_saphyr::from_str_with_options(text, yaml::options()) {
        Ok(doc) => doc,
        Err(e) => {
            out.diagnostics.push(yaml::diagnostic(&file, text, &e));
            return out;
        }
    };
    let fields = match doc.value {
        Lenient::Found(fields) => fields,
        Lenient::Wrong("null") => OverlayFields::default(),
        Lenient::Wrong(_) => {
            let at = yaml::locate(&file, &doc.referenced);
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
            return out;
        }
    };
    for issue in fields.issues {
        out.diagnostics.push(Diagnostic::error(issue.rule, yaml::locate(&file, &issue.at), issue.message));
    }
    if let Some(templates) = fields.templates {
        read_template_patches(&file, text, templates, &mut out);
    }
    if let Some(groups) = fields.groups {
        read_group_patches(&file, text, groups, &mut out);
    }
    if out.templates.is_empty() && out.groups.is_empty() && out.diagnostics.is_empty() {
        let location = SourceLocation { file: file.clone(), line: 1, column: 1 };
        out.diagnostics.push(
            Diagnostic::warning(Rule::Overlay, location, "overlay file patches nothing").with_help(
                "patch declared groups under `groups:` (`- id: ...` with `attributes:` or `unset:`) and templates under `templates:`, or delete the file",
            ),
        );
    }
    out.diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
    out
}

/// Counts the errors among `diagnostics`, to tell whether an entry added any.
fn errors(diagnostics: &[Diagnostic]) -> usize {
    diagnostics.iter().filter(|d| d.is_error()).count()
}

/// Reads an overlay's `templates:`.
fn read_template_patches(
    file: &Arc<Path>,
    text: &str,
    templates: Spanned<Lenient<TemplatePatches>>,
    out: &mut OverlayFile,
) {
    let expected = "a mapping of template patches";
    let Some(Entries(entries)) = found_or_report(file, templates, expected, &mut out.diagnostics) else {
        return;
    };
    let mut seen: HashMap<String, SourceLocation> = HashMap::new();
    for (name_node, body) in entries {
        let at = yaml::locate(file, &name_node.referenced);
        let Some(name) = template_name(&name_node, text, &at, &mut out.diagnostics) else { continue };
        if let Some(first) = seen.get(&name) {
            let message = format!("template {name:?} is patched twice in this file: here and at {first}");
            let diagnostic =
                Diagnostic::error(Rule::Overlay, at, message).with_related(first.clone(), "first patched here");
            out.diagnostics.push(diagnostic.with_help("merge the two patches into one"));
            continue;
        }
        seen.insert(name.clone(), at.clone());
        let subject = format!("template {name:?}");
        let before = errors(&out.diagnostics);
        let body_at = yaml::locate(file, &body.referenced);
        let body = match body.value {
            Lenient::Found(body) => body,
            Lenient::Wrong(_) => {
                let message = format!("overlay of {subject}: {}", wrong_type("a mapping of keys to set, and `unset:`"));
                out.diagnostics.push(Diagnostic::error(Rule::WrongType, body_at, message));
                continue;
            }
        };
        for (field, key_at) in &body.refused {
            let message = format!(
                "overlay of {subject}: an overlay cannot change `{field}`; it patches the template's keys (and `unset:`)"
            );
            let help = format!("change `{field}` where the template is defined: it then holds in every environment");
            out.diagnostics.push(Diagnostic::error(Rule::Overlay, yaml::locate(file, key_at), message).with_help(help));
        }
        for (key_at, first) in &body.repeated {
            let message = format!("overlay of {subject}: field `unset` is given twice, first at line {first}");
            out.diagnostics.push(Diagnostic::error(Rule::DuplicateKey, yaml::locate(file, key_at), message));
        }
        let label = format!("overlay of {subject}");
        let unset = body.unset.map(|list| read_unset(file, text, list, &mut out.diagnostics)).unwrap_or_default();
        let (attributes, key_at) = read_attributes(file, text, &label, body.entries.iter(), &mut out.diagnostics);
        report_limits(&label, &attributes, &key_at, &body_at, false, &mut out.diagnostics);
        let places: BTreeMap<String, SourceLocation> = key_at.into_iter().map(|(key, (at, _))| (key, at)).collect();
        check_both(&label, &places, &unset, &mut out.diagnostics);
        if attributes.is_empty() && unset.is_empty() && errors(&out.diagnostics) == before {
            let message = format!("overlay of {subject} patches nothing");
            out.diagnostics.push(Diagnostic::warning(Rule::Overlay, at.clone(), message));
        }
        let valid = errors(&out.diagnostics) == before;
        let patch = Patch { subject, at, attributes, places, unset, valid };
        out.templates.push(TemplatePatch { name, patch });
    }
}

/// A key both set and removed by one patch is an error, at the `unset:` of it.
fn check_both(
    label: &str,
    places: &BTreeMap<String, SourceLocation>,
    unset: &[(String, SourceLocation)],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (key, at) in unset {
        if let Some(set) = places.get(key) {
            let message = format!("{label}: key {key:?} is both in the keys it sets and in `unset:`");
            diagnostics
                .push(Diagnostic::error(Rule::Overlay, at.clone(), message).with_related(set.clone(), "set here"));
        }
    }
}

/// Reads an overlay's `groups:`.
fn read_group_patches(file: &Arc<Path>, text: &str, groups: Spanned<Lenient<PatchList>>, out: &mut OverlayFile) {
    let expected = "a sequence of group patches";
    let Some(Items(entries)) = found_or_report(file, groups, expected, &mut out.diagnostics) else {
        return;
    };
    let mut seen: HashMap<GroupId, SourceLocation> = HashMap::new();
    for entry in entries {
        let entry_at = yaml::locate(file, &entry.referenced);
        let fields = match entry.value {
            Lenient::Found(fields) => fields,
            Lenient::Wrong(_) => {
                out.diagnostics.push(Diagnostic::error(Rule::WrongType, entry_at, wrong_type("a mapping")));
                continue;
            }
        };
        let before = errors(&out.diagnostics);
        let misspelt = fields.issues.iter().any(|i| matches!(i.rule, Rule::UnknownField | Rule::Tag));
        for issue in fields.issues {
            out.diagnostics.push(Diagnostic::error(issue.rule, yaml::locate(file, &issue.at), issue.message));
        }
        let Some(ids) = groups::read_ids(file, text, fields.id, fields.ids, &entry_at, misspelt, &mut out.diagnostics)
        else {
            continue;
        };
        let first = ids.first().and_then(|(id, _)| id.as_ref());
        let name = first.map_or_else(|| "(invalid id)".to_string(), |id| format!("{:?}", id.as_str()));
        let subject = match ids.len() {
            1 => format!("group {name}"),
            n => format!("group {name} (and the {} others of its set)", n - 1),
        };
        let label = format!("overlay of {subject}");
        let unset = fields.unset.map(|list| read_unset(file, text, list, &mut out.diagnostics)).unwrap_or_default();
        let (attributes, places) = match fields.attributes {
            None => (AttributeSet::new(), BTreeMap::new()),
            Some(Spanned { value: Lenient::Wrong(_), referenced, .. }) => {
                let at = yaml::locate(file, &referenced);
                out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
                (AttributeSet::new(), BTreeMap::new())
            }
            Some(Spanned { value: Lenient::Found(Entries(entries)), referenced, .. }) => {
                let attributes_at = yaml::locate(file, &referenced);
                let (attributes, key_at) = read_attributes(file, text, &label, entries.iter(), &mut out.diagnostics);
                report_limits(&label, &attributes, &key_at, &attributes_at, false, &mut out.diagnostics);
                (attributes, key_at.into_iter().map(|(key, (at, _))| (key, at)).collect())
            }
        };
        check_both(&label, &places, &unset, &mut out.diagnostics);
        let patches_nothing = attributes.is_empty() && unset.is_empty();
        if patches_nothing && errors(&out.diagnostics) == before && !misspelt {
            let message = format!(
                "{label}: an overlay entry sets `attributes:` or removes keys with `unset:`; this one does neither"
            );
            out.diagnostics.push(Diagnostic::error(Rule::MissingField, entry_at.clone(), message));
        }
        let mut patched = Vec::with_capacity(ids.len());
        for (id, at) in ids {
            let Some(id) = id else { continue };
            if let Some(first) = seen.get(&id) {
                let message = format!("group {:?} is patched twice in this file: here and at {first}", id.as_str());
                let diagnostic =
                    Diagnostic::error(Rule::Overlay, at, message).with_related(first.clone(), "first patched here");
                out.diagnostics.push(diagnostic.with_help("merge the two patches into one"));
                continue;
            }
            seen.insert(id.clone(), at.clone());
            patched.push((id, at));
        }
        let valid = errors(&out.diagnostics) == before;
        let at = patched.first().map_or(entry_at, |(_, at)| at.clone());
        out.groups.push(GroupPatch { ids: patched, patch: Patch { subject, at, attributes, places, unset, valid } });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OverlayFile {
        parse_overlay(Arc::from(Path::new("o.yaml")), text)
    }

    fn rules(text: &str) -> Vec<(Rule, u64, u64)> {
        parse(text).diagnostics.iter().map(|d| (d.rule, d.location.line, d.location.column)).collect()
    }

    #[test]
    fn reads_template_and_group_patches_with_their_places() {
        let parsed = parse(
            "templates:\n  community:\n    rules: strict\n    unset: [theme]\ngroups:\n  - id: makers\n    attributes: {banner: hi}\n  - ids: [a, b]\n    unset: [k]\n",
        );
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let template = &parsed.templates[0];
        assert_eq!(template.name, "community");
        let rules: AttributeSet = [("rules".to_string(), "strict".to_string())].into_iter().collect();
        assert_eq!(template.patch.attributes, rules);
        assert_eq!(template.patch.unset[0].0, "theme");
        assert_eq!((template.patch.places["rules"].line, template.patch.places["rules"].column), (3, 5));
        assert_eq!(parsed.groups[0].ids[0].0.as_str(), "makers");
        assert_eq!(
            parsed.groups[1].ids.iter().map(|(id, at)| (id.as_str(), at.column)).collect::<Vec<_>>(),
            [("a", 11), ("b", 14)]
        );
        assert!(parsed.groups.iter().all(|g| g.patch.valid));
    }

    #[test]
    fn what_an_overlay_cannot_do_is_an_error_at_its_place() {
        // A group's template or ownership; a template's extends or ownership.
        assert_eq!(rules("groups:\n  - id: a\n    template: t\n    attributes: {k: v}\n"), [(Rule::Overlay, 3, 5)]);
        assert_eq!(rules("groups:\n  - id: a\n    ownership: keys\n    unset: [k]\n"), [(Rule::Overlay, 3, 5)]);
        assert_eq!(rules("templates:\n  t:\n    extends: u\n    k: v\n"), [(Rule::Overlay, 3, 5)]);
        // Neither attributes nor unset; both at once.
        assert_eq!(rules("groups:\n  - id: a\n"), [(Rule::MissingField, 2, 5)]);
        assert_eq!(rules("groups:\n  - id: a\n    attributes: {k: v}\n    unset: [k]\n"), [(Rule::Overlay, 4, 13)]);
        // Patched twice in one file.
        assert_eq!(
            rules("groups:\n  - id: a\n    unset: [k]\n  - ids: [b, a]\n    unset: [j]\n"),
            [(Rule::Overlay, 4, 14)]
        );
        assert_eq!(rules("templates:\n  t: {k: v}\n  t: {j: v}\n"), [(Rule::Overlay, 3, 3)]);
        // Wrong types.
        assert_eq!(rules("groups: {a: b}\n"), [(Rule::WrongType, 1, 9)]);
        assert_eq!(rules("templates: [a]\n"), [(Rule::WrongType, 1, 12)]);
        assert_eq!(rules("groups:\n  - id: a\n    attributes: [k]\n"), [(Rule::WrongType, 3, 17)]);
        assert_eq!(rules("groups:\n  - id: a\n    unset: k\n"), [(Rule::WrongType, 3, 12)]);
        assert_eq!(rules("templates:\n  t: [k]\n"), [(Rule::WrongType, 2, 6)]);
        assert_eq!(rules("nope: 1\n"), [(Rule::UnknownField, 1, 1)]);
        // A key too long, where it is written.
        let long = format!("groups:\n  - id: a\n    attributes:\n      {}: v\n", "k".repeat(33));
        assert_eq!(rules(&long), [(Rule::KeyTooLong, 4, 7)]);
        // Nothing: a warning.
        let empty = parse("# nothing\n");
        assert_eq!(empty.diagnostics.len(), 1);
        assert!(!empty.diagnostics[0].is_error());
    }

    #[test]
    fn every_path_problem_is_at_its_line_in_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("groups/inner")).unwrap();
        std::fs::create_dir_all(root.join("overlays/empty")).unwrap();
        std::fs::create_dir_all(root.join("overlays/production")).unwrap();
        std::fs::write(root.join("overlays/production/a.yaml"), "groups:\n  - id: a\n    unset: [k]\n").unwrap();
        std::fs::write(root.join("overlays/one.yaml"), "templates:\n  t: {k: v}\n").unwrap();
        let at = |line| SourceLocation { file: Arc::from(Path::new("grattr.yaml")), line, column: 5 };
        let paths: Vec<OverlayPath> = [
            "overlays/production",
            "missing",
            "groups/inner",
            ".",
            "overlays/empty",
            "overlays/one.yaml",
            "overlays/production/a.yaml",
        ]
        .iter()
        .enumerate()
        .map(|(line, path)| OverlayPath { path: root.join(path), at: at(line as u64 + 1) })
        .collect();
        let overlays = Overlays::read(&paths, &root.join("groups"));
        let problems: Vec<(u64, bool, &str)> =
            overlays.problems.iter().map(|d| (d.location.line, d.is_error(), d.message.as_str())).collect();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].2.ends_with("missing does not exist") && problems[0].0 == 2, "{problems:?}");
        assert!(problems[1].2.contains("is inside the groups directory") && problems[1].0 == 3, "{problems:?}");
        assert!(problems[2].2.contains("is inside overlay") && problems[2].0 == 4, "{problems:?}");
        assert!(problems[3].2.contains("holds no *.yaml") && !problems[3].1 && problems[3].0 == 5, "{problems:?}");
        assert!(problems[4].2.contains("is listed twice") && problems[4].0 == 7, "{problems:?}");
        assert_eq!(overlays.files.len(), 2);
        assert!(overlays.has_patches());
    }
}

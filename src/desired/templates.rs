//! Templates: named attribute sets any group file may define under `templates:`,
//! which groups name with `template:`. A template may `extends:` one parent and say
//! an `ownership:`. Files are read one by one (`read_templates`); the groups that
//! use templates are resolved once every file is read ([`resolve`]), because a
//! template may be defined in any file.
//!
//! Resolution order: the template chain, parent first (a child's key wins over its
//! parent's), then the group's own `attributes:`, then the group's `unset:`.
//! Ownership: the group's own, else the nearest in the chain, else `grattr.yaml`'s.

use super::attributes::{read_attributes, read_ownership, report_limits, violation_diagnostic};
use super::diagnostic::{Diagnostic, Rule};
use super::groups::FileGroups;
use super::shape::{AttrEntries, Lenient, NodeList, TemplateMap, wrong_type};
use super::yaml::{self, Node};
use crate::model::limits::{self, Violation};
use crate::model::{
    AttributeSet, DesiredGroup, GroupId, OriginKind, Origins, Ownership, ResolvedOrigin, SourceLocation,
};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// The fields of a template that are not attribute keys.
pub const RESERVED: [&str; 2] = ["extends", "ownership"];

/// One template as a file defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub at: SourceLocation,
    /// The parent it extends, and where that is written.
    pub extends: Option<(String, SourceLocation)>,
    /// The ownership it gives its groups, if it says one.
    pub ownership: Option<Ownership>,
    /// Its own attributes.
    pub attributes: AttributeSet,
    /// Where each of its keys is written.
    pub places: BTreeMap<String, SourceLocation>,
    /// Whether it is free of errors (a group using a template with errors is not resolved).
    pub valid: bool,
}

/// A valid group that uses a template, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templated {
    /// The group's id.
    pub id: GroupId,
    /// The group with its own attributes and ownership.
    pub group: DesiredGroup,
    /// The template it names.
    pub template: String,
    /// Where the name is written.
    pub template_at: SourceLocation,
    /// The keys it unsets, and where each is written.
    pub unset: Vec<(String, SourceLocation)>,
    /// Where each of its own keys is written.
    pub places: BTreeMap<String, SourceLocation>,
    /// Where its `attributes:` is (the group's place when it has none).
    pub attributes_at: SourceLocation,
}

/// The resolved groups of one file, and the problems resolution found there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The groups using templates, resolved, in the order written.
    pub groups: Vec<(GroupId, DesiredGroup)>,
    /// Problems found in this file: duplicate or unknown templates, cycles, unused templates, limits.
    pub diagnostics: Vec<Diagnostic>,
}

/// The templates a load found (each name's first definition), for a command that
/// writes against one: `grattr import --template`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    templates: Vec<Template>,
    names: HashSet<String>,
}

/// A template with its chain applied: what a group naming it gets before its own keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTemplate {
    /// Its name.
    pub name: String,
    /// Where it is defined.
    pub at: SourceLocation,
    /// Its attributes over the chain, parent first (a child's key wins).
    pub attributes: AttributeSet,
    /// The ownership the nearest template of the chain says, if any does.
    pub ownership: Option<Ownership>,
}

/// Why a template cannot be written against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// No group file defines it.
    #[error("no group file defines a template {name:?}; {}", known_names(.known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names defined, sorted.
        known: Vec<String>,
    },
    /// It, or a template of its chain, has errors, or the chain is broken.
    #[error("template {name:?} ({at}) cannot be used: {why}")]
    Broken {
        /// The name asked for.
        name: String,
        /// Where it is defined.
        at: SourceLocation,
        /// What is wrong, and where.
        why: String,
    },
}

fn known_names(known: &[String]) -> String {
    match known.is_empty() {
        true => "no group file defines any template".to_string(),
        false => {
            let names: Vec<String> = known.iter().map(|name| format!("{name:?}")).collect();
            format!("the templates are {}", names.join(", "))
        }
    }
}

impl Catalog {
    /// Takes the templates of one file (in load order): those of a name not seen yet.
    pub(super) fn add(&mut self, templates: Vec<Template>) {
        for template in templates {
            if self.names.insert(template.name.clone()) {
                self.templates.push(template);
            }
        }
    }

    /// The names defined, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.templates.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names
    }

    fn by_name(&self) -> ByName<'_> {
        self.templates.iter().map(|t| (t.name.as_str(), t)).collect()
    }

    /// The template `name` over its chain, or why it cannot be used.
    pub fn resolve(&self, name: &str) -> Result<ResolvedTemplate, TemplateError> {
        let by_name = self.by_name();
        let Some(template) = by_name.get(name).copied() else {
            return Err(TemplateError::Unknown { name: name.to_string(), known: self.names() });
        };
        let broken = |why: String| TemplateError::Broken { name: name.to_string(), at: template.at.clone(), why };
        let mut chain: Vec<&Template> = Vec::new();
        let mut current = template;
        loop {
            if !current.valid {
                return Err(broken(format!("template {:?} has errors (at {})", current.name, current.at)));
            }
            if chain.iter().any(|t| t.name == current.name) {
                let mut names: Vec<&str> = chain.iter().map(|t| t.name.as_str()).collect();
                names.push(&current.name);
                return Err(broken(format!("its `extends` chain is a cycle: {}", names.join(" → "))));
            }
            chain.push(current);
            let Some((parent, at)) = &current.extends else { break };
            current = match by_name.get(parent.as_str()) {
                Some(parent) => parent,
                None => {
                    let why = format!(
                        "template {:?} extends {parent:?} (at {at}), which no group file defines",
                        current.name
                    );
                    return Err(broken(why));
                }
            };
        }
        let mut attributes = AttributeSet::new();
        for template in chain.iter().rev() {
            for (key, value) in &template.attributes {
                attributes.insert(key.to_string(), value.to_string());
            }
        }
        Ok(ResolvedTemplate {
            name: template.name.clone(),
            at: template.at.clone(),
            attributes,
            ownership: chain.iter().find_map(|t| t.ownership),
        })
    }

    /// Loads `file` (a group file parsed on its own) with these templates: its groups
    /// resolved, and its problems (those of resolving it included).
    pub fn load_with(&self, file: FileGroups) -> super::Loaded {
        let templates = FileGroups { templates: self.templates.clone(), ..FileGroups::default() };
        let mut loaded = super::groups::merge(vec![templates, file]);
        // The templates are not this file's: that it leaves some unused is no problem of its own.
        loaded.diagnostics.retain(|d| d.rule != Rule::UnusedTemplate);
        loaded
    }
}

/// Reads `templates:` into `out`.
pub(super) fn read_templates(
    file: &Arc<Path>,
    text: &str,
    templates: Spanned<Lenient<TemplateMap>>,
    out: &mut FileGroups,
) {
    let entries = match templates.value {
        Lenient::Found(TemplateMap(entries)) => entries,
        Lenient::Wrong("null") => return,
        Lenient::Wrong(_) => {
            let at = yaml::locate(file, &templates.referenced);
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
            return;
        }
    };
    for (name_node, body) in entries {
        let at = yaml::locate(file, &name_node.referenced);
        let name = match (name_node.value.refused_tag(), Node::text(&name_node, text)) {
            (None, Some(name)) if !name.is_empty() => name,
            (Some(tag), _) => {
                let message = format!("the tag `{tag}` on a template name is not honoured");
                out.diagnostics.push(Diagnostic::error(Rule::Tag, at, message));
                continue;
            }
            (None, Some(_)) => {
                out.diagnostics.push(Diagnostic::error(Rule::Template, at, "a template name is empty"));
                continue;
            }
            (None, None) => {
                let message = format!("a template name is {}; names are text", name_node.value.kind());
                out.diagnostics.push(Diagnostic::error(Rule::KeyNotText, at, message));
                continue;
            }
        };
        let errors_before = out.diagnostics.iter().filter(|d| d.is_error()).count();
        let body_at = yaml::locate(file, &body.referenced);
        let entries = match body.value {
            Lenient::Found(AttrEntries(entries)) => entries,
            Lenient::Wrong(_) => {
                let message = format!("template {name:?}: {}", wrong_type("a mapping"));
                out.diagnostics.push(Diagnostic::error(Rule::WrongType, body_at, message));
                // Defined, with an error: its groups are not said to name an unknown template.
                let (attributes, places) = (AttributeSet::new(), BTreeMap::new());
                out.templates.push(Template {
                    name,
                    at,
                    extends: None,
                    ownership: None,
                    attributes,
                    places,
                    valid: false,
                });
                continue;
            }
        };
        let subject = format!("template {name:?}");
        let (mut extends, mut ownership) = (None, None);
        let mut reserved_seen: Vec<(&str, u64)> = Vec::new();
        for (key, value) in &entries {
            let Some(field) = Node::text(key, text).and_then(|k| RESERVED.into_iter().find(|r| *r == k)) else {
                continue;
            };
            let key_at = yaml::locate(file, &key.referenced);
            if let Some((_, first)) = reserved_seen.iter().find(|(f, _)| *f == field) {
                let message = format!("{subject}: field `{field}` is given twice, first at line {first}");
                out.diagnostics.push(Diagnostic::error(Rule::DuplicateKey, key_at, message));
                continue;
            }
            reserved_seen.push((field, key_at.line));
            if field == "ownership" {
                ownership = read_ownership(file, text, value, &mut out.diagnostics);
            } else {
                let value_at = yaml::locate(file, &value.referenced);
                match Node::text(value, text).filter(|_| value.value.refused_tag().is_none()) {
                    Some(parent) => extends = Some((parent, value_at)),
                    None => {
                        let message = format!("{subject}: `extends` {}", wrong_type("a template name (text)"));
                        out.diagnostics.push(Diagnostic::error(Rule::WrongType, value_at, message));
                    }
                }
            }
        }
        let own = entries.iter().filter(|(key, _)| {
            Node::text(key, text).is_none_or(|k| !RESERVED.contains(&k.as_str())) || key.value.refused_tag().is_some()
        });
        let (attributes, key_at) = read_attributes(file, text, &subject, own, &mut out.diagnostics);
        report_limits(&subject, &attributes, &key_at, &body_at, false, &mut out.diagnostics);
        let valid = out.diagnostics.iter().filter(|d| d.is_error()).count() == errors_before;
        let places = key_at.into_iter().map(|(key, (at, _))| (key, at)).collect();
        out.templates.push(Template { name, at, extends, ownership, attributes, places, valid });
    }
}

/// Reads a group's `unset:` list of keys.
pub(super) fn read_unset(
    file: &Arc<Path>,
    text: &str,
    list: Spanned<Lenient<NodeList>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(String, SourceLocation)> {
    let nodes = match list.value {
        Lenient::Found(NodeList(nodes)) => nodes,
        Lenient::Wrong(_) => {
            let at = yaml::locate(file, &list.referenced);
            diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a sequence of keys")));
            return Vec::new();
        }
    };
    let mut keys = Vec::with_capacity(nodes.len());
    for node in nodes {
        let at = yaml::locate(file, &node.referenced);
        match Node::text(&node, text).filter(|_| node.value.refused_tag().is_none()) {
            Some(key) => keys.push((key, at)),
            None => {
                let message = format!("`unset:` lists keys; this is {}", node.value.kind());
                diagnostics.push(Diagnostic::error(Rule::KeyNotText, at, message));
            }
        }
    }
    keys
}

/// Where a resolved key comes from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A template of the chain.
    Template(&'a Template),
    /// The group's own attributes.
    Group,
}

/// A template and the chain it extends, itself first; `None` when the chain is
/// broken (a template unknown, with errors, or in a cycle), which is reported
/// where it breaks.
fn chain<'a>(name: &str, by_name: &ByName<'a>) -> Option<Vec<&'a Template>> {
    let mut found: Vec<&Template> = Vec::new();
    let mut current = name;
    loop {
        let template = by_name.get(current)?;
        if found.iter().any(|t| t.name == template.name) || !template.valid {
            return None;
        }
        found.push(template);
        match &template.extends {
            None => return Some(found),
            Some((parent, _)) => current = parent,
        }
    }
}

/// Each template name's first definition: what `template:` and `extends:` name.
pub(super) type ByName<'a> = HashMap<&'a str, &'a Template>;

/// What the templates of every file say about each other, found in [`definitions`].
pub(super) struct Definitions<'a, K> {
    /// Each name's first definition.
    pub(super) by_name: ByName<'a>,
    /// The problems of the definitions (a name defined twice, an unknown parent, a
    /// cycle, a template no group uses), with the file they are in, in the order a
    /// whole load reports them.
    pub(super) diagnostics: Vec<(K, Diagnostic)>,
}

/// Reads the definitions of `defining` (the files that define templates, in load
/// order, each with a key `K` naming it), given the names `template:` uses somewhere.
pub(super) fn definitions<'a, 'u, K: Copy>(
    defining: impl IntoIterator<Item = (K, &'a [Template])>,
    used_names: impl IntoIterator<Item = &'u str>,
) -> Definitions<'a, K> {
    let mut diagnostics = Vec::new();
    // Each name's first definition; a later one is an error in its own file.
    let mut by_name: ByName<'a> = HashMap::new();
    let mut defined: Vec<(K, &Template)> = Vec::new();
    for (key, templates) in defining {
        for template in templates {
            if let Some(first) = by_name.get(template.name.as_str()) {
                let message = format!("template {:?} is defined twice: here and at {}", template.name, first.at);
                let diagnostic = Diagnostic::error(Rule::Template, template.at.clone(), message);
                diagnostics.push((key, diagnostic.with_related(first.at.clone(), "first defined here")));
            } else {
                by_name.insert(&template.name, template);
                defined.push((key, template));
            }
        }
    }
    // Unknown parents and cycles, at the `extends` that makes them.
    for (key, template) in &defined {
        let Some((parent, at)) = &template.extends else { continue };
        if !by_name.contains_key(parent.as_str()) {
            let message = format!("template {:?} extends {parent:?}, which no group file defines", template.name);
            diagnostics.push((*key, Diagnostic::error(Rule::Template, at.clone(), message)));
            continue;
        }
        let mut path = vec![template.name.as_str()];
        let mut current = parent.as_str();
        while let Some(next) = by_name.get(current) {
            if next.name == template.name {
                path.push(current);
                let message = format!("template {:?} extends itself: {}", template.name, path.join(" → "));
                diagnostics.push((*key, Diagnostic::error(Rule::Template, at.clone(), message)));
                break;
            }
            if path.contains(&current) {
                break;
            }
            path.push(current);
            match &next.extends {
                Some((parent, _)) => current = parent,
                None => break,
            }
        }
    }
    // Templates used by a group, directly or through `extends`.
    let mut used: HashSet<&str> = HashSet::new();
    for name in used_names {
        let mut current = name;
        while let Some(template) = by_name.get(current) {
            if !used.insert(&template.name) {
                break;
            }
            match &template.extends {
                Some((parent, _)) => current = parent,
                None => break,
            }
        }
    }
    for (key, template) in &defined {
        if !used.contains(template.name.as_str()) {
            let message = format!("template {:?} is not used by any group", template.name);
            let help = format!("use it with `template: {}`, or delete it", template.name);
            diagnostics
                .push((*key, Diagnostic::warning(Rule::UnusedTemplate, template.at.clone(), message).with_help(help)));
        }
    }
    Definitions { by_name, diagnostics }
}

/// The errors of `template:` names no group file defines, among `uses`.
pub(super) fn unknown_uses(by_name: &ByName<'_>, uses: &[(String, SourceLocation)]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (name, at) in uses {
        if !by_name.contains_key(name.as_str()) {
            let message = format!("template {name:?} is not defined in any group file");
            let diagnostic = Diagnostic::error(Rule::Template, at.clone(), message)
                .with_help("define it under `templates:` in any group file");
            diagnostics.push(diagnostic);
        }
    }
    diagnostics
}

/// Resolves the groups of one file that use templates, in the order written: the ids
/// of a set follow each other and resolve alike, so they share their origins.
pub(super) struct FileResolver<'t, 'g> {
    by_name: &'g ByName<'t>,
    shared: Option<(&'g Templated, KeyOrigins)>,
}

impl<'t, 'g> FileResolver<'t, 'g> {
    /// A resolver over the templates `by_name`.
    pub(super) fn new(by_name: &'g ByName<'t>) -> Self {
        FileResolver { by_name, shared: None }
    }

    /// Resolves one group: the group, unless its chain is broken (reported where it
    /// breaks) or it has errors, and the problems found in it.
    pub(super) fn resolve(&mut self, group: &'g Templated) -> (Option<DesiredGroup>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let Some(chain) = chain(&group.template, self.by_name) else { return (None, diagnostics) };
        let resolved = resolve_group(group, &chain, &mut diagnostics).map(|mut resolved| {
            let origins = match &self.shared {
                Some((previous, origins)) if same_entry(previous, group) => origins.clone(),
                _ => key_origins(group, &chain, &resolved.attributes),
            };
            resolved.origins = Origins::Resolved(origins.clone());
            self.shared = Some((group, origins));
            resolved
        });
        (resolved, diagnostics)
    }
}

/// Resolves every group that uses a template, over all files (in load order);
/// returns, for each file, its resolved groups and the problems found in it.
pub fn resolve(files: &[&FileGroups]) -> Vec<Resolution> {
    let mut out: Vec<Resolution> = files.iter().map(|_| Resolution::default()).collect();
    if !files.iter().any(|f| f.has_templates()) {
        return out;
    }
    let defining = files.iter().enumerate().map(|(index, file)| (index, file.templates.as_slice()));
    let used = files.iter().flat_map(|file| file.uses.iter().map(|(name, _)| name.as_str()));
    let Definitions { by_name, diagnostics } = definitions(defining, used);
    for (index, diagnostic) in diagnostics {
        out[index].diagnostics.push(diagnostic);
    }
    for (index, file) in files.iter().enumerate() {
        out[index].diagnostics.extend(unknown_uses(&by_name, &file.uses));
        let mut resolver = FileResolver::new(&by_name);
        for group in &file.templated {
            let (resolved, diagnostics) = resolver.resolve(group);
            out[index].diagnostics.extend(diagnostics);
            if let Some(resolved) = resolved {
                out[index].groups.push((group.id.clone(), resolved));
            }
        }
    }
    out
}

/// Each resolved key's origin, ordered by key.
type KeyOrigins = Arc<[(Box<str>, ResolvedOrigin)]>;

/// Whether two templated groups come from one entry (the ids of a set).
fn same_entry(a: &Templated, b: &Templated) -> bool {
    a.template == b.template && a.places == b.places && a.unset == b.unset && a.attributes_at == b.attributes_at
}

/// Where each key of `attributes`, resolved for `group` over `chain`, gets its value.
fn key_origins(group: &Templated, chain: &[&Template], attributes: &AttributeSet) -> KeyOrigins {
    let own_kind = match group.group.origins {
        Origins::Own { kind, .. } => kind,
        _ => OriginKind::Group,
    };
    attributes
        .keys()
        .filter_map(|key| {
            let origin = match group.places.get(key) {
                Some(at) => ResolvedOrigin { kind: own_kind, template: None, at: at.clone() },
                None => {
                    let template = chain.iter().find(|t| t.attributes.contains_key(key))?;
                    ResolvedOrigin {
                        kind: OriginKind::Template,
                        template: Some(Arc::from(template.name.as_str())),
                        at: template.places.get(key).unwrap_or(&template.at).clone(),
                    }
                }
            };
            Some((Box::from(key), origin))
        })
        .collect()
}

/// One group over its template chain (itself first); `None` when that is an error.
fn resolve_group(group: &Templated, chain: &[&Template], diagnostics: &mut Vec<Diagnostic>) -> Option<DesiredGroup> {
    let name = format!("group {:?}", group.id.as_str());
    let mut resolved: BTreeMap<&str, (&str, Origin)> = BTreeMap::new();
    for template in chain.iter().rev() {
        for (key, value) in &template.attributes {
            resolved.insert(key, (value, Origin::Template(template)));
        }
    }
    for (key, value) in &group.group.attributes {
        resolved.insert(key, (value, Origin::Group));
    }
    let mut clean = true;
    for (key, at) in &group.unset {
        if let Some(own) = group.places.get(key) {
            let message = format!("{name}: key {key:?} is both in `attributes:` and in `unset:`");
            diagnostics
                .push(Diagnostic::error(Rule::Template, at.clone(), message).with_related(own.clone(), "set here"));
            clean = false;
        } else if resolved.remove(key.as_str()).is_none() {
            let message = format!(
                "{name}: key {key:?} is in `unset:` but template {:?} does not set it; nothing to remove",
                group.template
            );
            diagnostics.push(Diagnostic::warning(Rule::Unset, at.clone(), message));
        }
    }
    let attributes: AttributeSet = resolved.iter().map(|(k, (v, _))| ((*k).to_string(), (*v).to_string())).collect();
    for violation in limits::check(&attributes) {
        if violation.key().is_some() {
            // Reported where the key is written, in the template or the group.
            clean = false;
            continue;
        }
        let message = format!("{name}: {violation}: {}", contributions(group, chain, &resolved, &violation));
        let mut diagnostic = violation_diagnostic(&violation, group.group.source.clone(), message);
        for template in chain.iter().rev() {
            if resolved.values().any(|(_, o)| matches!(o, Origin::Template(t) if t.name == template.name)) {
                diagnostic = diagnostic.with_related(template.at.clone(), format!("template {:?}", template.name));
            }
        }
        clean &= !diagnostic.is_error();
        diagnostics.push(diagnostic);
    }
    let chain_ownership = chain.iter().find_map(|t| t.ownership);
    let (ownership, ownership_written) = match (group.group.ownership_written, chain_ownership) {
        (true, _) => (group.group.ownership, true),
        (false, Some(ownership)) => (ownership, true),
        (false, None) => (group.group.ownership, false),
    };
    let source = group.group.source.clone();
    clean.then_some(DesiredGroup { attributes, source, ownership, ownership_written, origins: Origins::Unknown })
}

/// "10 from template community (groups/t.yaml:2:3), 7 in group makers (groups/m.yaml:9:7)":
/// what each place adds to the measure `violation` exceeds.
fn contributions(
    group: &Templated,
    chain: &[&Template],
    resolved: &BTreeMap<&str, (&str, Origin)>,
    violation: &Violation,
) -> String {
    let measure = |key: &str, value: &str| match violation {
        Violation::TooManyKeys { .. } => 1,
        Violation::ValuesTooLarge { .. } => value.len(),
        _ => key.len() + value.len(),
    };
    let unit = if matches!(violation, Violation::TooManyKeys { .. }) { "" } else { " bytes" };
    // The chain's templates, parent first, then the group: the order of resolution.
    let mut parts: Vec<(String, usize)> = chain
        .iter()
        .rev()
        .map(|t| (format!("from template {} ({})", t.name.escape_debug(), t.at), 0))
        .chain([(format!("in group {} ({})", group.id.as_str().escape_debug(), group.attributes_at), 0)])
        .collect();
    for (key, (value, origin)) in resolved {
        let index = match origin {
            Origin::Template(t) => chain.len() - 1 - chain.iter().position(|c| c.name == t.name).unwrap_or(0),
            Origin::Group => chain.len(),
        };
        parts[index].1 += measure(key, value);
    }
    parts.retain(|(_, n)| *n > 0);
    let mut text = String::new();
    for (index, (place, n)) in parts.iter().enumerate() {
        let _ = write!(text, "{}{n}{unit} {place}", if index > 0 { ", " } else { "" });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::groups::{merge, parse_file};
    use super::super::index::DesiredIndex;
    use super::*;
    use proptest::prelude::*;

    fn parse(name: &str, text: &str) -> FileGroups {
        parse_file(Arc::from(Path::new(name)), text)
    }

    #[test]
    fn the_fast_path_leaves_templates_to_the_full_parser() {
        for text in [
            "templates:\n  t:\n    k: v\ngroups:\n  - id: a\n    template: t\n",
            "groups:\n  - id: a\n    template: t\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\n    template: t\n",
            "groups:\n  - id: a\n    template: t\n    unset: [k]\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\ntemplates:\n  t:\n    k: v\n",
        ] {
            assert!(super::super::fast::parse(&Arc::from(Path::new("g.yaml")), text).is_none(), "{text}");
        }
        let parsed = parse("g.yaml", "groups:\n  - id: a\n    template: t\n    unset: [k]\n");
        assert_eq!(parsed.templated.len(), 1);
        assert_eq!(parsed.uses[0].0, "t");
    }

    #[test]
    fn resolves_parent_first_then_own_keys_then_unset() {
        let templates = parse(
            "t.yaml",
            "templates:\n  base:\n    a: base\n    b: base\n    c: base\n  child:\n    extends: base\n    b: child\n    ownership: keys\n",
        );
        let groups = parse(
            "g.yaml",
            "groups:\n  - id: g\n    template: child\n    attributes: {c: own}\n    unset: [a]\n  - id: h\n    template: child\n    ownership: group\n",
        );
        let loaded = merge(vec![templates, groups]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let g = &loaded.state.groups[&GroupId::parse("g").unwrap()];
        let expected: AttributeSet = [("b", "child"), ("c", "own")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(g.attributes, expected);
        assert_eq!((g.ownership, g.ownership_written), (Ownership::Keys, true));
        assert_eq!((g.source.line, g.source.column), (2, 9));
        let h = &loaded.state.groups[&GroupId::parse("h").unwrap()];
        assert_eq!((h.ownership, h.ownership_written), (Ownership::Group, true));
    }

    #[test]
    fn a_catalog_resolves_a_template_over_its_chain_or_says_why_not() {
        let catalog = |text: &str| merge(vec![parse("t.yaml", text)]).templates;
        let good = catalog(
            "templates:\n  base:\n    a: base\n    b: base\n    ownership: keys\n  child:\n    extends: base\n    b: child\n",
        );
        assert_eq!(good.names(), ["base", "child"]);
        let child = good.resolve("child").unwrap();
        let expected: AttributeSet = [("a", "base"), ("b", "child")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!((child.attributes, child.ownership, child.at.line), (expected, Some(Ownership::Keys), 6));

        let error = |catalog: &Catalog, name: &str| catalog.resolve(name).unwrap_err().to_string();
        assert_eq!(
            error(&good, "chlid"),
            "no group file defines a template \"chlid\"; the templates are \"base\", \"child\""
        );
        assert_eq!(
            error(&Catalog::default(), "x"),
            "no group file defines a template \"x\"; no group file defines any template"
        );
        let broken = catalog(
            "templates:\n  bad:\n    k: ~\n  uses-bad:\n    extends: bad\n  a:\n    extends: b\n  b:\n    extends: a\n  orphan:\n    extends: nobody\n",
        );
        assert_eq!(
            error(&broken, "uses-bad"),
            "template \"uses-bad\" (t.yaml:4:3) cannot be used: template \"bad\" has errors (at t.yaml:2:3)"
        );
        assert_eq!(
            error(&broken, "a"),
            "template \"a\" (t.yaml:6:3) cannot be used: its `extends` chain is a cycle: a → b → a"
        );
        assert_eq!(
            error(&broken, "orphan"),
            "template \"orphan\" (t.yaml:10:3) cannot be used: template \"orphan\" extends \"nobody\" (at t.yaml:11:14), which no group file defines"
        );
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn watch_follows_a_template_changed_in_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = write(dir.path(), "t.yaml", "templates:\n  t:\n    k: one\n");
        write(dir.path(), "g.yaml", "groups:\n  - id: g\n    template: t\n  - id: plain\n    attributes: {}\n");
        let mut index = DesiredIndex::load(dir.path());
        let g = GroupId::parse("g").unwrap();
        assert_eq!(&index.groups()[&g].attributes["k"], "one");

        std::fs::write(&t, "templates:\n  t:\n    k: two\n").unwrap();
        let affected = index.update([t.clone()]);
        assert!(affected.contains(&g), "{affected:?}");
        assert_eq!(&index.groups()[&g].attributes["k"], "two");

        std::fs::remove_file(&t).unwrap();
        index.update([t.clone()]);
        assert!(index.has_errors());
        assert!(!index.groups().contains_key(&g));
        let fresh = super::super::load(dir.path());
        assert_eq!(&fresh.state.groups, index.groups());
        assert_eq!(fresh.diagnostics, index.diagnostics());

        std::fs::write(&t, "templates:\n  t:\n    k: three\n  unused: {}\n").unwrap();
        index.update([t]);
        assert!(!index.has_errors());
        assert_eq!(&index.groups()[&g].attributes["k"], "three");
        let fresh = super::super::load(dir.path());
        assert_eq!(&fresh.state.groups, index.groups());
        assert_eq!(fresh.diagnostics, index.diagnostics());
    }

    fn quoted(text: &str) -> String {
        serde_json::Value::from(text).to_string()
    }

    /// A block mapping under `field:` (`field: {}` when empty).
    fn mapping(field: &str, attributes: &BTreeMap<String, String>, indent: &str) -> String {
        if attributes.is_empty() {
            return format!("{field} {{}}\n");
        }
        let mut entries = String::new();
        for (k, v) in attributes {
            let _ = writeln!(entries, "{indent}{}: {}", quoted(k), quoted(v));
        }
        format!("{field}\n{entries}")
    }

    proptest! {
        /// Resolving templates gives the desired state of the same groups written out by hand.
        #[test]
        fn resolution_equals_the_groups_written_out(
            base in prop::collection::btree_map("[a-f]{1,2}", "[ -~]{0,5}", 0..5),
            child in prop::collection::btree_map("[a-f]{1,2}", "[ -~]{0,5}", 0..5),
            groups in prop::collection::vec(
                (any::<bool>(), prop::collection::btree_map("[a-h]{1,2}", "[ -~]{0,5}", 0..4), prop::collection::btree_set("[a-f]{1,2}", 0..3), 0usize..3),
                1..6,
            ),
        ) {
            let mut templates = format!("templates:\n{}  child:\n    extends: base\n", mapping("  base:", &base, "    "));
            if !child.is_empty() {
                templates += &mapping("", &child, "    ")[1..];
            }
            let (mut with, mut by_hand) = (String::from("groups:\n"), String::from("groups:\n"));
            for (index, (use_child, own, unset, set)) in groups.iter().enumerate() {
                let mut resolved = base.clone();
                if *use_child {
                    resolved.extend(child.clone());
                }
                let unset: Vec<&String> = unset.iter().filter(|k| !own.contains_key(*k) && resolved.contains_key(*k)).collect();
                resolved.extend(own.clone());
                for key in &unset {
                    resolved.remove(*key);
                }
                let name = if *use_child { "child" } else { "base" };
                // A set of `set` ids (`ids:`), or one group (`id:`) when 0.
                let ids: Vec<String> = (0..(*set).max(1)).map(|i| format!("g{index}-{i}")).collect();
                let head = match set {
                    0 => format!("id: {}", ids[0]),
                    _ => format!("ids: [{}]", ids.join(", ")),
                };
                with += &format!("  - {head}\n    template: {name}\n{}", mapping("    attributes:", own, "      "));
                let list: Vec<String> = unset.iter().map(|k| quoted(k)).collect();
                with += &format!("    unset: [{}]\n", list.join(", "));
                for id in &ids {
                    by_hand += &format!("  - id: {id}\n{}", mapping("    attributes:", &resolved, "      "));
                }
            }
            let templated = merge(vec![parse("t.yaml", &templates), parse("g.yaml", &with)]);
            let errors: Vec<String> = templated.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
            prop_assert!(errors.is_empty(), "{errors:?}\n{templates}{with}");
            let plain = merge(vec![parse("g.yaml", &by_hand)]);
            prop_assert!(plain.diagnostics.is_empty(), "{:?}", plain.diagnostics);
            let attributes = |state: &super::super::DesiredState| -> BTreeMap<GroupId, AttributeSet> {
                state.groups.iter().map(|(id, g)| (id.clone(), g.attributes.clone())).collect()
            };
            prop_assert_eq!(attributes(&templated.state), attributes(&plain.state));
        }
    }
}

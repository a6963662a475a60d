//! Templates: named attribute sets any group file may define under `templates:`,
//! which groups name with `template:`. A template may `extends:` one parent and say
//! an `ownership:`. Files are read one by one (`read_templates`); the groups that
//! use templates are resolved once every file is read ([`resolve`]), because a
//! template may be defined in any file.
//!
//! Resolution order: the template chain, parent first (a child's key wins over its
//! parent's), each template followed by the environment's overlay patches of it (in
//! the order the overlays are listed); then the group's own `attributes:`; then the
//! group's `unset:`; then the environment's overlay patches of the group, in the
//! order listed (see [`super::overlays`]). Groups without a template that an overlay
//! patches are resolved here too. Each key's [`Origin`] is known while resolving.
//! Ownership: the group's own, else the nearest in the chain, else `grattr.yaml`'s.

use super::attributes::{read_attributes, read_ownership, report_limits, violation_diagnostic};
use super::diagnostic::{Diagnostic, Rule};
use super::groups::FileGroups;
use super::overlays::{OverlayFile, Overlays, Patch, TemplatePatch};
use super::shape::{Entries, Items, Lenient, NodeList, TemplateMap, found_or_report, wrong_type};
use super::yaml::{self, Node};
use crate::model::limits::{self, Violation};
use crate::model::{AttributeSet, DesiredGroup, GroupId, KeyOrigin, OriginKind, Origins, Ownership, SourceLocation};
use serde_saphyr::Spanned;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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

/// A valid entry of `groups:` that uses a template, before resolution: one group
/// (`id:`), or each group of a set (`ids:`), which resolve alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templated {
    /// The id of each group, and where it is written.
    pub ids: Vec<(GroupId, SourceLocation)>,
    /// The groups' own attributes and ownership (its `source` is the first id's place).
    pub group: DesiredGroup,
    /// The template it names.
    pub template: String,
    /// Where the name is written.
    pub template_at: SourceLocation,
    /// The keys it unsets, and where each is written.
    pub unset: Vec<(String, SourceLocation)>,
    /// Where each of its own keys is written.
    pub places: Places,
    /// Where its `attributes:` is (the group's place when it has none).
    pub attributes_at: SourceLocation,
}

/// Where each key of an entry's own `attributes:` is written, ordered by key. A
/// sorted slice rather than a map: an entry naming a template usually writes a key
/// or two of its own, and a repository may hold 100,000 such entries (a map's
/// smallest node takes about 600 bytes; one key here takes 48 and its text, and no
/// key nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places(Box<[(Box<str>, SourceLocation)]>);

impl Places {
    /// Where `key` is written.
    pub fn get(&self, key: &str) -> Option<&SourceLocation> {
        let index = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[index].1)
    }

    /// Whether no key is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each key and where it is written, ordered by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &SourceLocation)> {
        self.0.iter().map(|(key, at)| (&**key, at))
    }
}

/// From keys given once each, in any order.
impl<K: Into<Box<str>>> FromIterator<(K, SourceLocation)> for Places {
    fn from_iter<I: IntoIterator<Item = (K, SourceLocation)>>(iter: I) -> Self {
        let mut places: Vec<(Box<str>, SourceLocation)> = iter.into_iter().map(|(key, at)| (key.into(), at)).collect();
        places.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Places(places.into_boxed_slice())
    }
}

/// The resolved groups of one file, and the problems resolution found there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The groups using templates, and the groups without one that overlays patch,
    /// resolved, in the order written.
    pub groups: Vec<(GroupId, DesiredGroup)>,
    /// The groups without a template that overlays patch: their declaration in the
    /// file gives way to their resolved form in `groups` (absent when patching them
    /// is an error).
    pub patched: Vec<GroupId>,
    /// Problems found in this file: duplicate or unknown templates, cycles, unused templates, limits.
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolution over every file: each group file's [`Resolution`], and the problems
/// found in each overlay file (patches of what is not declared, `unset:` that
/// removes nothing), in the order of [`Overlays::files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Each group file's resolution, in the order given.
    pub files: Vec<Resolution>,
    /// The problems found in each overlay file.
    pub overlays: Vec<Vec<Diagnostic>>,
}

/// The templates a load found (each name's first definition), for a command that
/// writes against one: `grattr import --template`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    templates: Vec<Template>,
    names: HashSet<String>,
    /// The environment's overlay patches of templates, in the order listed.
    patches: Vec<TemplatePatch>,
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
    /// A catalog of no template yet, with the template patches of `overlays`.
    pub(super) fn of_overlays(overlays: &Overlays) -> Self {
        let patches = overlays.files.iter().flat_map(|file| file.templates.iter().cloned()).collect();
        Catalog { patches, ..Catalog::default() }
    }

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
        let mut seen: HashSet<&str> = HashSet::new();
        let mut current = template;
        loop {
            if !current.valid {
                return Err(broken(format!("template {:?} has errors (at {})", current.name, current.at)));
            }
            if !seen.insert(&current.name) {
                let mut names: Vec<&str> = chain.iter().take(NAMES_SHOWN).map(|t| t.name.as_str()).collect();
                if chain.len() > NAMES_SHOWN {
                    names.push("…");
                }
                names.push(&current.name);
                return Err(broken(format!("its `extends` chain is a cycle: {}", names.join(" → "))));
            }
            if chain.len() == limits::MAX_TEMPLATE_CHAIN {
                let why = format!("its `extends` chain is longer than {} templates", limits::MAX_TEMPLATE_CHAIN);
                return Err(broken(why));
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
        // As a group resolves it: each template of the chain, parent first, followed by
        // the environment's patches of it.
        let mut attributes = AttributeSet::new();
        for template in chain.iter().rev() {
            for (key, value) in &template.attributes {
                attributes.insert(key.to_string(), value.to_string());
            }
            for patch in self.patches.iter().filter(|p| p.name == template.name).map(|p| &p.patch) {
                if !patch.valid {
                    let why =
                        format!("an overlay's patch of template {:?} has errors (at {})", template.name, patch.at);
                    return Err(broken(why));
                }
                for (key, value) in &patch.attributes {
                    attributes.insert(key.to_string(), value.to_string());
                }
                for (key, _) in &patch.unset {
                    attributes.remove(key);
                }
            }
        }
        Ok(ResolvedTemplate {
            name: template.name.clone(),
            at: template.at.clone(),
            attributes,
            ownership: chain.iter().find_map(|t| t.ownership),
        })
    }

    /// Loads `file` (a group file parsed on its own) with these templates and their
    /// patches: its groups resolved, and its problems (those of resolving it included).
    pub fn load_with(&self, file: FileGroups) -> super::Loaded {
        let templates = FileGroups { templates: self.templates.clone(), ..FileGroups::default() };
        // The environment's patches of templates apply; its patches of groups are of
        // groups this file does not declare.
        let overlay = OverlayFile { templates: self.patches.clone(), ..OverlayFile::default() };
        let overlays = Overlays { files: vec![overlay], ..Overlays::default() };
        let mut loaded = super::groups::merge_with(vec![templates, file], &overlays);
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
    let Some(Entries(entries)) = found_or_report(file, templates, "a mapping", &mut out.diagnostics) else {
        return;
    };
    for (name_node, body) in entries {
        let at = yaml::locate(file, &name_node.referenced);
        let Some(name) = template_name(&name_node, text, &at, &mut out.diagnostics) else { continue };
        // Only this template's diagnostics are counted: counting the file's would cost its templates squared.
        let first_diagnostic = out.diagnostics.len();
        let body_at = yaml::locate(file, &body.referenced);
        let entries = match body.value {
            Lenient::Found(Entries(entries)) => entries,
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
        let valid = !out.diagnostics[first_diagnostic..].iter().any(Diagnostic::is_error);
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
        Lenient::Found(Items(nodes)) => nodes,
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

/// Where a resolved key comes from while resolving: a template of the chain, the
/// group, or an overlay's patch. It becomes the key's [`KeyOrigin`] (the
/// provenance a plan shows), and names the places a limit error counts.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A template of the chain.
    Template(&'a Template),
    /// The group's own attributes: where each key is written when known, and where
    /// the attributes are.
    Group(Option<&'a Places>, &'a SourceLocation),
    /// An overlay's patch of what `of` names, applied at `at` (where the patched
    /// template's name, or the group's id, is written in the overlay file).
    Overlay {
        /// The patch.
        patch: &'a Patch,
        /// Where it names what it patches.
        at: &'a SourceLocation,
        /// What it patches.
        of: Patched<'a>,
    },
}

/// What an overlay's patch applies to.
#[derive(Debug, Clone, Copy)]
pub enum Patched<'a> {
    /// The template of this name.
    Template(&'a str),
    /// The group resolved.
    Group(&'a GroupId),
}

impl Origin<'_> {
    /// Where `key`, which this origin sets, is written; where the template, the
    /// group's attributes or the patch is when the key's own place is not known.
    pub fn place(&self, key: &str) -> &SourceLocation {
        match self {
            Origin::Template(template) => template.places.get(key).unwrap_or(&template.at),
            Origin::Group(places, at) => places.and_then(|places| places.get(key)).unwrap_or(at),
            Origin::Overlay { patch, at, .. } => patch.places.get(key).unwrap_or(at),
        }
    }

    /// The place as a limit error names it: `from template community (groups/t.yaml:2:3)`.
    fn contribution(&self, own: &str) -> String {
        match self {
            Origin::Template(t) => format!("from template {} ({})", t.name.escape_debug(), t.at),
            Origin::Group(_, at) => format!("in {own} ({at})"),
            Origin::Overlay { at, of: Patched::Template(name), .. } => {
                format!("from overlay of template {} ({at})", name.escape_debug())
            }
            Origin::Overlay { at, of: Patched::Group(id), .. } => {
                format!("from overlay of group {} ({at})", id.as_str().escape_debug())
            }
        }
    }

    /// The place as a related note of a limit error, with its label; none for the group itself.
    fn related(&self) -> Option<(SourceLocation, String)> {
        match self {
            Origin::Template(t) => Some((t.at.clone(), format!("template {:?}", t.name))),
            Origin::Group(..) => None,
            Origin::Overlay { at, of: Patched::Template(name), .. } => {
                Some(((*at).clone(), format!("overlay of template {name:?}")))
            }
            Origin::Overlay { at, of: Patched::Group(id), .. } => {
                Some(((*at).clone(), format!("overlay of group {:?}", id.as_str())))
            }
        }
    }
}

/// A template and the chain it extends, itself first; `None` when the chain is
/// broken (a template unknown, with errors, in a cycle, or the chain too long), which
/// is reported where it breaks. [`chains`] found which are usable: this walks at most
/// [`limits::MAX_TEMPLATE_CHAIN`] templates.
fn chain<'a>(name: &str, by_name: &ByName<'a>, usable: &Usable<'_>) -> Option<Vec<&'a Template>> {
    if !usable.contains(name) {
        return None;
    }
    let mut found: Vec<&Template> = Vec::new();
    let mut current = by_name.get(name)?;
    loop {
        found.push(current);
        match &current.extends {
            None => return Some(found),
            Some(_) if found.len() >= limits::MAX_TEMPLATE_CHAIN => return None,
            Some((parent, _)) => current = by_name.get(parent.as_str())?,
        }
    }
}

/// The names of the templates whose chain can be used: every template of it defined
/// and free of errors, no cycle, at most [`limits::MAX_TEMPLATE_CHAIN`] templates long.
pub(super) type Usable<'a> = HashSet<&'a str>;

/// How many names of a cycle or a chain a message shows; the rest are counted.
const NAMES_SHOWN: usize = 6;

/// Finds each template's chain once for all, in time linear in the number of
/// templates however long and tangled the chains are: a walk up a chain stops at the
/// first template an earlier walk reached, and takes its answer. Reports each cycle
/// once (at the `extends:` of its first template in load order, naming the cycle),
/// and each chain that grows past [`limits::MAX_TEMPLATE_CHAIN`] where it does
/// (templates extending into a cycle or past the limit are unusable, and not reported
/// again). Unknown parents are reported by the caller.
fn chains<'a, K: Copy>(
    by_name: &ByName<'a>,
    defined: &[(K, &'a Template)],
    diagnostics: &mut Vec<(K, Diagnostic)>,
) -> Usable<'a> {
    let order: HashMap<&str, (usize, K)> =
        defined.iter().enumerate().map(|(n, (key, t))| (t.name.as_str(), (n, *key))).collect();
    // Each template's chain length, or `None` when its chain is broken.
    let mut depth: HashMap<&'a str, Option<usize>> = HashMap::with_capacity(defined.len());
    let mut path: Vec<&'a Template> = Vec::new();
    let mut on_path: HashMap<&'a str, usize> = HashMap::new();
    for (_, start) in defined {
        path.clear();
        on_path.clear();
        let mut current: &'a Template = start;
        let mut below: Option<usize> = loop {
            if let Some(known) = depth.get(current.name.as_str()) {
                break *known;
            }
            if let Some(&at) = on_path.get(current.name.as_str()) {
                if let Some((key, diagnostic)) = cycle_diagnostic(&path[at..], &order) {
                    diagnostics.push((key, diagnostic));
                }
                break None;
            }
            on_path.insert(&current.name, path.len());
            path.push(current);
            match &current.extends {
                None => break Some(0),
                Some((parent, _)) => match by_name.get(parent.as_str()) {
                    Some(parent) => current = parent,
                    None => break None,
                },
            }
        };
        for template in path.iter().rev() {
            below = match below {
                Some(n) if template.valid && n < limits::MAX_TEMPLATE_CHAIN => Some(n + 1),
                Some(_) if template.valid => {
                    if let (Some((_, at)), Some((_, key))) = (&template.extends, order.get(template.name.as_str())) {
                        diagnostics.push((*key, too_deep(template, at, by_name)));
                    }
                    None
                }
                _ => None,
            };
            depth.insert(&template.name, below);
        }
    }
    depth.into_iter().filter_map(|(name, depth)| depth.map(|_| name)).collect()
}

/// The error of the cycle `cycle` (each template extending the next, the last the
/// first), at the `extends:` of its template first in load order, with the file it is in.
fn cycle_diagnostic<K: Copy>(cycle: &[&Template], order: &HashMap<&str, (usize, K)>) -> Option<(K, Diagnostic)> {
    let rank = |t: &&Template| order.get(t.name.as_str()).map_or(usize::MAX, |(n, _)| *n);
    let first = cycle.iter().enumerate().min_by_key(|(_, t)| rank(t)).map(|(n, _)| n)?;
    let (_, key) = order.get(cycle[first].name.as_str())?;
    let (_, at) = cycle[first].extends.as_ref()?;
    let names: Vec<&str> = cycle[first..].iter().chain(&cycle[..first]).map(|t| t.name.as_str()).collect();
    let message = match names.len() > NAMES_SHOWN {
        false => format!("template {:?} extends itself: {} → {}", names[0], names.join(" → "), names[0]),
        true => format!(
            "template {:?} extends itself, through a cycle of {} templates: {} → … ({} more) → {}",
            names[0],
            names.len(),
            names[..NAMES_SHOWN].join(" → "),
            names.len() - NAMES_SHOWN,
            names[0]
        ),
    };
    Some((*key, Diagnostic::error(Rule::Template, at.clone(), message)))
}

/// The error of `template`, whose `extends:` at `at` makes its chain one template
/// longer than [`limits::MAX_TEMPLATE_CHAIN`].
fn too_deep(template: &Template, at: &SourceLocation, by_name: &ByName<'_>) -> Diagnostic {
    let max = limits::MAX_TEMPLATE_CHAIN;
    let mut names = vec![template.name.as_str()];
    let mut current = template;
    while let Some(parent) = current.extends.as_ref().and_then(|(parent, _)| by_name.get(parent.as_str())) {
        if names.len() < NAMES_SHOWN {
            names.push(&parent.name);
        }
        current = parent;
    }
    let root = current.name.as_str();
    let shown = match names.last() == Some(&root) {
        true => names.join(" → "),
        false => format!("{} → … → {root}", names.join(" → ")),
    };
    let message = format!(
        "template {:?}: its `extends` chain is {} templates long, over the limit of {max}: {shown}",
        template.name,
        max + 1
    );
    Diagnostic::error(Rule::Template, at.clone(), message)
        .with_help(format!("extend a template nearer the root, or merge templates of the chain: at most {max}"))
}

/// Each template name's first definition: what `template:` and `extends:` name.
pub(super) type ByName<'a> = HashMap<&'a str, &'a Template>;

/// The warning that no group uses the template `name`.
fn unused_message(name: &str) -> String {
    format!("template {name:?} is not used by any group")
}

/// Whether `diagnostic` is the warning that no group uses the template `name` (which
/// `grattr import --template NAME` is about to use).
pub fn is_unused_warning(diagnostic: &Diagnostic, name: &str) -> bool {
    diagnostic.rule == Rule::UnusedTemplate && diagnostic.message == unused_message(name)
}

/// What the templates of every file say about each other, found in [`definitions`].
pub(super) struct Definitions<'a, K> {
    /// Each name's first definition.
    pub(super) by_name: ByName<'a>,
    /// The names whose chain can be used.
    pub(super) usable: Usable<'a>,
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
    // Unknown parents, at the `extends` that names them.
    for (key, template) in &defined {
        let Some((parent, at)) = &template.extends else { continue };
        if !by_name.contains_key(parent.as_str()) {
            let message = format!("template {:?} extends {parent:?}, which no group file defines", template.name);
            diagnostics.push((*key, Diagnostic::error(Rule::Template, at.clone(), message)));
        }
    }
    let usable = chains(&by_name, &defined, &mut diagnostics);
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
            let message = unused_message(&template.name);
            let help = format!("use it with `template: {}`, or delete it", template.name);
            diagnostics
                .push((*key, Diagnostic::warning(Rule::UnusedTemplate, template.at.clone(), message).with_help(help)));
        }
    }
    Definitions { by_name, usable, diagnostics }
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

/// A group's patch by an overlay, as resolution applies it.
struct GroupUse<'a> {
    patch: &'a Patch,
    /// Where the group's id is written in the overlay.
    at: &'a SourceLocation,
    /// The number of the overlay entry, across the overlay files.
    entry: usize,
}

/// The overlay patches that apply, gathered once.
#[derive(Default)]
pub(super) struct Patches<'a> {
    /// By template, in the order listed.
    templates: HashMap<&'a str, Vec<&'a Patch>>,
    /// By group, in the order listed.
    groups: HashMap<&'a GroupId, Vec<GroupUse<'a>>>,
}

impl<'a> Patches<'a> {
    /// Whether an overlay patches the group `id`.
    fn patches(&self, id: &GroupId) -> bool {
        !self.groups.is_empty() && self.groups.contains_key(id)
    }

    /// Each template patched, with its patches in the order listed.
    pub(super) fn of_templates(&self) -> impl Iterator<Item = (&'a str, &[&'a Patch])> {
        self.templates.iter().map(|(name, patches)| (*name, patches.as_slice()))
    }

    /// The groups patched.
    pub(super) fn patched_ids(&self) -> impl Iterator<Item = &'a GroupId> {
        self.groups.keys().copied()
    }
}

/// Each resolved key's origin, ordered by key.
type KeyOrigins = Arc<[(Box<str>, KeyOrigin)]>;

/// What resolution knows of a group.
struct Subject<'a> {
    id: &'a GroupId,
    /// The other ids of its set that resolve alike and are reported with it: none
    /// for a group on its own.
    alike: &'a [&'a GroupId],
    /// Where its id is written.
    source: &'a SourceLocation,
    /// Its declaration: own attributes and ownership.
    group: &'a DesiredGroup,
    /// The template it names, if any.
    template: Option<&'a str>,
    /// The keys its `unset:` lists.
    unset: &'a [(String, SourceLocation)],
    /// Where each of its own keys is written, when known.
    places: Option<&'a Places>,
    /// Where its `attributes:` is.
    attributes_at: &'a SourceLocation,
}

impl Subject<'_> {
    /// How many ids of a set a message names at most; the rest are counted.
    const NAMED: usize = 3;

    /// Whom its messages are about: `group "makers"`, or for a set whose ids
    /// resolve alike, `set of 1000 groups "room-001", "room-002", "room-003", …`.
    fn name(&self) -> String {
        if self.alike.is_empty() {
            return format!("group {:?}", self.id.as_str());
        }
        let ids = std::iter::once(self.id).chain(self.alike.iter().copied());
        let mut name = format!("set of {} groups ", self.alike.len() + 1);
        for (n, id) in ids.take(Self::NAMED).enumerate() {
            let _ = write!(name, "{}{:?}", if n == 0 { "" } else { ", " }, id.as_str());
        }
        if self.alike.len() + 1 > Self::NAMED {
            name.push_str(", …");
        }
        name
    }

    /// Its own part of a limit's contributions: `group makers`, or `the set`.
    fn own(&self) -> String {
        match self.alike.is_empty() {
            true => format!("group {}", self.id.as_str().escape_debug()),
            false => "the set".to_string(),
        }
    }
}

/// What the `unset:` of overlay group entries did, by the entry's number across the
/// overlay files: `(entry, None)` when it patched a group, `(entry, Some(k))` when its
/// `k`th key removed something from one. Kept apart for each place that resolves
/// groups, so that `watch` can resolve some again and join the rest.
pub(super) type UnsetEffect = BTreeSet<(usize, Option<usize>)>;

/// Resolves the entries of `groups:` that use templates, over the templates and the
/// overlays' patches.
pub(super) struct FileResolver<'t, 'g> {
    by_name: &'g ByName<'t>,
    usable: &'g Usable<'t>,
    patches: &'g Patches<'t>,
    shared: Shared<'t>,
}

/// What the groups resolved by one [`FileResolver`] share.
struct Shared<'t> {
    /// Each template's name, once, for the origins of the keys it gives.
    names: HashMap<&'t str, Arc<str>>,
    /// The origins of the keys each template gives (its chain, with the overlays'
    /// patches), once resolved for a group naming it.
    given: RefCell<HashMap<String, KeyOrigins>>,
    /// No origins: what a group without a template is given.
    none: KeyOrigins,
}

impl<'t, 'g> FileResolver<'t, 'g> {
    /// A resolver over the templates `by_name` (those `usable` of them) and the overlays' `patches`.
    pub(super) fn new(by_name: &'g ByName<'t>, usable: &'g Usable<'t>, patches: &'g Patches<'t>) -> Self {
        let names = by_name.keys().map(|name| (*name, Arc::from(*name))).collect();
        let shared = Shared { names, given: RefCell::default(), none: Arc::from(Vec::new()) };
        FileResolver { by_name, usable, patches, shared }
    }

    /// Resolves one entry: its groups, in the order of its ids (none when its chain
    /// is broken, which is reported where it breaks; without those that have errors),
    /// and the problems found in them. What the `unset:` of overlay group entries
    /// does is noted in `unset_effect`.
    ///
    /// The ids of a set that no overlay patches on its own resolve alike but for
    /// their place: the first resolves, on behalf of them all (what it finds is
    /// reported once, naming the set), and the others take its result (sharing its
    /// attributes and origins, so that resolving a set costs its keys, not its ids
    /// times its keys). An id an overlay patches on its own resolves on its own.
    pub(super) fn resolve(
        &self,
        entry: &Templated,
        unset_effect: &mut UnsetEffect,
    ) -> (Vec<(GroupId, DesiredGroup)>, Vec<Diagnostic>) {
        let (mut groups, mut diagnostics) = (Vec::new(), Vec::new());
        let Some(chain) = chain(&entry.template, self.by_name, self.usable) else { return (groups, diagnostics) };
        groups.reserve(entry.ids.len());
        let unpatched: Vec<&GroupId> =
            entry.ids.iter().map(|(id, _)| id).filter(|id| !self.patches.patches(id)).collect();
        // The unpatched ids' result, once resolved: `None` when it is an error.
        let mut alike: Option<Option<DesiredGroup>> = None;
        for (id, id_at) in &entry.ids {
            let patched = self.patches.patches(id);
            if let Some(result) = alike.as_ref().filter(|_| !patched) {
                if let Some(group) = result {
                    groups.push((id.clone(), DesiredGroup { source: id_at.clone(), ..group.clone() }));
                }
                continue;
            }
            let subject = Subject {
                id,
                alike: if patched { &[] } else { &unpatched[1..] },
                source: id_at,
                group: &entry.group,
                template: Some(&entry.template),
                unset: &entry.unset,
                places: Some(&entry.places),
                attributes_at: &entry.attributes_at,
            };
            let resolved = resolve_group(&subject, &chain, self.patches, &self.shared, unset_effect, &mut diagnostics);
            if !patched {
                alike = Some(resolved.clone());
            }
            groups.extend(resolved.map(|group| (id.clone(), group)));
        }
        (groups, diagnostics)
    }

    /// Resolves the groups of `file` declared without a template that overlays
    /// patch: they are returned resolved (but those with errors, which are added to
    /// `diagnostics`), with the ids of every such group.
    pub(super) fn resolve_patched(
        &self,
        file: &FileGroups,
        unset_effect: &mut UnsetEffect,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> (Vec<(GroupId, DesiredGroup)>, Vec<GroupId>) {
        let (mut groups, mut patched) = (Vec::new(), Vec::new());
        if self.patches.groups.is_empty() {
            return (groups, patched);
        }
        for (id, group) in file.groups.iter().filter(|(id, _)| self.patches.patches(id)) {
            patched.push(id.clone());
            let subject = Subject {
                id,
                alike: &[],
                source: &group.source,
                group,
                template: None,
                unset: &[],
                places: None,
                attributes_at: &group.source,
            };
            if let Some(resolved) = resolve_group(&subject, &[], self.patches, &self.shared, unset_effect, diagnostics)
            {
                groups.push((id.clone(), resolved));
            }
        }
        (groups, patched)
    }
}

/// Resolves every group that uses a template, and every group an overlay patches,
/// over all files (in load order); returns, for each file, its resolved groups and
/// the problems found in it, and the problems found in each overlay file.
pub fn resolve(files: &[&FileGroups], overlays: &Overlays) -> Resolved {
    let mut out: Vec<Resolution> = files.iter().map(|_| Resolution::default()).collect();
    if !overlays.has_patches() && !files.iter().any(|f| f.has_templates()) {
        let found = overlays.files.iter().map(|_| Vec::new()).collect();
        return Resolved { files: out, overlays: found };
    }
    let defining = files.iter().enumerate().map(|(index, file)| (index, file.templates.as_slice()));
    let used = files.iter().flat_map(|file| file.uses.iter().map(|(name, _)| name.as_str()));
    let Definitions { by_name, usable, diagnostics } = definitions(defining, used);
    for (index, diagnostic) in diagnostics {
        out[index].diagnostics.push(diagnostic);
    }
    let declared: HashSet<&GroupId> = files.iter().flat_map(|f| f.declared.iter().map(|(id, _)| id)).collect();
    let defined = files.iter().flat_map(|file| &file.templates);
    let mut patching = Patching::new(overlays, &by_name, &usable, defined, |id| declared.contains(id));
    let mut unset_effect = UnsetEffect::new();
    let resolver = FileResolver::new(&by_name, &usable, &patching.patches);
    for (index, file) in files.iter().enumerate() {
        out[index].diagnostics.extend(unknown_uses(&by_name, &file.uses));
        for entry in &file.templated {
            let (groups, diagnostics) = resolver.resolve(entry, &mut unset_effect);
            out[index].diagnostics.extend(diagnostics);
            out[index].groups.extend(groups);
        }
        let (groups, patched) = resolver.resolve_patched(file, &mut unset_effect, &mut out[index].diagnostics);
        out[index].groups.extend(groups);
        out[index].patched = patched;
    }
    patching.tell_unset_effect([&unset_effect]);
    Resolved { files: out, overlays: patching.found }
}

/// The overlays' patches over the templates and the groups declared, and what
/// gathering them finds in each overlay file.
pub(super) struct Patching<'a> {
    /// The patches that apply.
    pub(super) patches: Patches<'a>,
    /// Each overlay group entry, numbered across the files: its file, patch and number of ids.
    entries: Vec<(usize, &'a Patch, usize)>,
    /// The problems found in each overlay file.
    pub(super) found: Vec<Vec<Diagnostic>>,
}

impl<'a> Patching<'a> {
    /// Gathers the patches of `overlays` over the templates `by_name` (of which those
    /// `usable` have a chain to follow; `defined`:
    /// every definition, in load order) and the groups `declared`, finding patches of
    /// what is not declared, and template patches' `unset:` of keys their chain does
    /// not set.
    pub(super) fn new(
        overlays: &'a Overlays,
        by_name: &ByName<'a>,
        usable: &Usable<'_>,
        defined: impl IntoIterator<Item = &'a Template>,
        declared: impl Fn(&GroupId) -> bool,
    ) -> Patching<'a> {
        let mut found: Vec<Vec<Diagnostic>> = overlays.files.iter().map(|_| Vec::new()).collect();
        let mut patches = Patches::default();
        let mut entries: Vec<(usize, &Patch, usize)> = Vec::new();
        if !overlays.has_patches() {
            return Patching { patches, entries, found };
        }
        for (index, overlay) in overlays.files.iter().enumerate() {
            for patch in &overlay.templates {
                match by_name.get(patch.name.as_str()) {
                    Some(template) => patches.templates.entry(&template.name).or_default().push(&patch.patch),
                    None => found[index].push(not_declared(overlays, "template", &patch.name, &patch.patch.at)),
                }
            }
            for patch in &overlay.groups {
                let entry = entries.len();
                entries.push((index, &patch.patch, patch.ids.len()));
                for (id, at) in &patch.ids {
                    match declared(id) {
                        true => patches.groups.entry(id).or_default().push(GroupUse { patch: &patch.patch, at, entry }),
                        false => found[index].push(not_declared(overlays, "group", id.as_str(), at)),
                    }
                }
            }
        }
        // A template patch's `unset:` of a key its template's chain does not set (so far).
        let files_of: HashMap<*const Patch, usize> = overlays
            .files
            .iter()
            .enumerate()
            .flat_map(|(index, f)| f.templates.iter().map(move |t| (std::ptr::from_ref(&t.patch), index)))
            .collect();
        let defined =
            defined.into_iter().filter(|t| by_name.get(t.name.as_str()).is_some_and(|first| std::ptr::eq(*first, *t)));
        for template in defined {
            let Some(own) = patches.templates.get(template.name.as_str()) else { continue };
            let Some(chain) = chain(&template.name, by_name, usable) else { continue };
            let mut keys: HashSet<&str> = HashSet::new();
            for link in chain.iter().rev() {
                for (key, _) in &link.attributes {
                    keys.insert(key);
                }
                for patch in patches.templates.get(link.name.as_str()).into_iter().flatten() {
                    for (key, _) in &patch.attributes {
                        keys.insert(key);
                    }
                    for (key, at) in &patch.unset {
                        let removed = keys.remove(key.as_str());
                        if !removed && own.iter().any(|p| std::ptr::eq(*p, *patch)) {
                            let message = format!(
                                "overlay of template {:?}: key {key:?} is in `unset:` but the template does not set it (with its parents and the overlays before this one); nothing to remove",
                                template.name
                            );
                            let index = files_of.get(&std::ptr::from_ref(*patch)).copied().unwrap_or_default();
                            found[index].push(Diagnostic::warning(Rule::Unset, at.clone(), message));
                        }
                    }
                }
            }
        }
        Patching { patches, entries, found }
    }

    /// Finds each overlay group entry's `unset:` of a key no group it patches has,
    /// over what resolving every group did (`effects`, joined).
    pub(super) fn tell_unset_effect<'e>(&mut self, effects: impl IntoIterator<Item = &'e UnsetEffect>) {
        let mut joined = UnsetEffect::new();
        for effect in effects {
            joined.extend(effect.iter().copied());
        }
        for (entry, (index, patch, ids)) in self.entries.iter().enumerate() {
            if !joined.contains(&(entry, None)) {
                continue;
            }
            let whom = if *ids > 1 { "no group it patches has it" } else { "the group does not have it" };
            for (k, (key, at)) in patch.unset.iter().enumerate() {
                if joined.contains(&(entry, Some(k))) {
                    continue;
                }
                let message = format!(
                    "overlay of {}: key {key:?} is in `unset:` but {whom} (with its template, its own keys and the overlays before this one); nothing to remove",
                    patch.subject
                );
                self.found[*index].push(Diagnostic::warning(Rule::Unset, at.clone(), message));
            }
        }
    }
}

/// The error of an overlay patching a `kind` (template or group) `name` that no
/// group file declares, at `at`, naming where they are declared.
fn not_declared(overlays: &Overlays, kind: &str, name: &str, at: &SourceLocation) -> Diagnostic {
    let (verb, what, fix) = match kind {
        "template" => ("defines", "templates", "define"),
        _ => ("declares", "groups", "declare"),
    };
    let dir = overlays.groups_dir.clone().unwrap_or_else(|| Arc::from(Path::new("groups")));
    let mut shown = dir.display().to_string();
    if !shown.ends_with('/') {
        shown.push('/');
    }
    let message = format!(
        "overlay patches {kind} {name:?}, but no group file in {shown} {verb} it: an overlay changes declared {what}, it cannot declare new ones"
    );
    let label = format!("no {kind} {name:?} in the group files here");
    let help =
        format!("{fix} it in a group file (it then exists in every environment) and patch it here, or fix the name");
    let group_files = SourceLocation { file: dir, line: 0, column: 0 };
    Diagnostic::error(Rule::Overlay, at.clone(), message).with_related(group_files, label).with_help(help)
}

/// A template's name as written at `at`: non-empty text; else `None`, with the problem reported.
pub(super) fn template_name(
    name_node: &Spanned<Node>,
    text: &str,
    at: &SourceLocation,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let problem = match (name_node.value.refused_tag(), Node::text(name_node, text)) {
        (None, Some(name)) if !name.is_empty() => return Some(name),
        (Some(tag), _) => {
            Diagnostic::error(Rule::Tag, at.clone(), format!("the tag `{tag}` on a template name is not honoured"))
        }
        (None, Some(_)) => Diagnostic::error(Rule::Template, at.clone(), "a template name is empty"),
        (None, None) => {
            let message = format!("a template name is {}; names are text", name_node.value.kind());
            Diagnostic::error(Rule::KeyNotText, at.clone(), message)
        }
    };
    diagnostics.push(problem);
    None
}

/// One group over its template chain (itself first; none for a group without a
/// template) and the overlay patches, with where each key gets its value; `None`
/// when that is an error.
fn resolve_group<'a>(
    subject: &Subject<'a>,
    chain: &[&'a Template],
    patches: &Patches<'a>,
    shared: &Shared<'_>,
    unset_effect: &mut UnsetEffect,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<DesiredGroup> {
    let name = subject.name();
    let group = subject.group;
    let own_kind = match group.origins {
        Origins::Own { kind, .. } => kind,
        _ => OriginKind::Group,
    };
    // A template's name, shared rather than allocated for each key it gives each group.
    let name_of = |name: &str| shared.names.get(name).cloned().unwrap_or_else(|| Arc::from(name));
    let origin = |key: &str, layer: &Origin| match layer {
        Origin::Template(t) => KeyOrigin::at(OriginKind::Template, Some(name_of(&t.name)), layer.place(key)),
        Origin::Group(places, _) => match places.and_then(|places| places.get(key)) {
            Some(at) => KeyOrigin::at(own_kind, None, at),
            // A group without a template knows its keys' places from its own origins.
            None => match group.origins.of(key, &group.attributes, subject.source) {
                Some(own) => KeyOrigin { kind: own_kind, template: None, ..own },
                None => KeyOrigin::at(own_kind, None, subject.source),
            },
        },
        Origin::Overlay { of, .. } => {
            let template = match of {
                Patched::Template(name) => Some(name_of(name)),
                Patched::Group(_) => None,
            };
            KeyOrigin::at(OriginKind::Overlay, template, layer.place(key))
        }
    };
    let mut layers: Vec<Origin<'a>> = Vec::with_capacity(chain.len() + 1);
    let mut resolved: BTreeMap<&'a str, (&'a str, usize)> = BTreeMap::new();
    for template in chain.iter().rev() {
        layers.push(Origin::Template(template));
        for (key, value) in &template.attributes {
            resolved.insert(key, (value, layers.len() - 1));
        }
        // Without overlays (the common case), no lookup per template per group.
        let template_patches =
            if patches.templates.is_empty() { None } else { patches.templates.get(template.name.as_str()) };
        for patch in template_patches.into_iter().flatten() {
            if !patch.valid {
                return None;
            }
            let of = Patched::Template(&template.name);
            layers.push(Origin::Overlay { patch, at: &patch.at, of });
            for (key, value) in &patch.attributes {
                resolved.insert(key, (value, layers.len() - 1));
            }
            for (key, _) in &patch.unset {
                resolved.remove(key.as_str());
            }
        }
    }
    // What the template gives (the same for every group naming it): resolved once.
    let given = match subject.template {
        Some(template) => {
            let mut given = shared.given.borrow_mut();
            let origins = given.entry(template.to_string()).or_insert_with(|| {
                resolved.iter().map(|(key, (_, layer))| (Box::from(*key), origin(key, &layers[*layer]))).collect()
            });
            origins.clone()
        }
        None => shared.none.clone(),
    };
    let own_layer = layers.len();
    layers.push(Origin::Group(subject.places, subject.attributes_at));
    for (key, value) in &subject.group.attributes {
        resolved.insert(key, (value, layers.len() - 1));
    }
    let mut clean = true;
    for (key, at) in subject.unset {
        if let Some(own) = subject.places.and_then(|places| places.get(key)) {
            let message = format!("{name}: key {key:?} is both in `attributes:` and in `unset:`");
            diagnostics
                .push(Diagnostic::error(Rule::Template, at.clone(), message).with_related(own.clone(), "set here"));
            clean = false;
        } else if resolved.remove(key.as_str()).is_none() {
            let message = format!(
                "{name}: key {key:?} is in `unset:` but template {:?} does not set it; nothing to remove",
                subject.template.unwrap_or_default()
            );
            diagnostics.push(Diagnostic::warning(Rule::Unset, at.clone(), message));
        }
    }
    let group_patches = if patches.groups.is_empty() { None } else { patches.groups.get(subject.id) };
    for use_ in group_patches.into_iter().flatten() {
        if !use_.patch.valid {
            return None;
        }
        layers.push(Origin::Overlay { patch: use_.patch, at: use_.at, of: Patched::Group(subject.id) });
        for (key, value) in &use_.patch.attributes {
            resolved.insert(key, (value, layers.len() - 1));
        }
        unset_effect.insert((use_.entry, None));
        for (k, (key, _)) in use_.patch.unset.iter().enumerate() {
            if resolved.remove(key.as_str()).is_some() {
                unset_effect.insert((use_.entry, Some(k)));
            }
        }
    }
    let attributes: AttributeSet = resolved.iter().map(|(k, (v, _))| ((*k).to_string(), (*v).to_string())).collect();
    // A group without a template had its own attributes checked where it is declared:
    // what they break alone is reported there already.
    let declared = match subject.template {
        None => limits::check(&subject.group.attributes),
        Some(_) => Vec::new(),
    };
    for violation in limits::check(&attributes) {
        if violation.key().is_some() {
            // Reported where the key is written, in the template, the group or the overlay.
            clean = false;
            continue;
        }
        if declared.iter().any(|d| std::mem::discriminant(d) == std::mem::discriminant(&violation)) {
            continue;
        }
        let message = format!("{name}: {violation}: {}", contributions(subject, &layers, &resolved, &violation));
        let mut diagnostic = violation_diagnostic(&violation, subject.source.clone(), message);
        for (layer, origin) in layers.iter().enumerate() {
            let Some((at, label)) = origin.related() else { continue };
            if resolved.values().any(|(_, l)| *l == layer) {
                diagnostic = diagnostic.with_related(at, label);
            }
        }
        clean &= !diagnostic.is_error();
        diagnostics.push(diagnostic);
    }
    let chain_ownership = chain.iter().find_map(|t| t.ownership);
    let (ownership, ownership_written) = match (group.ownership_written, chain_ownership) {
        (true, _) => (group.ownership, true),
        (false, Some(ownership)) => (ownership, true),
        (false, None) => (group.ownership, false),
    };
    let source = subject.source.clone();
    let own: KeyOrigins = resolved
        .iter()
        .filter(|(_, (_, layer))| *layer >= own_layer)
        .map(|(key, (_, layer))| (Box::from(*key), origin(key, &layers[*layer])))
        .collect();
    let origins = Origins::Resolved { own, shared: given };
    let desired = DesiredGroup { attributes, source, ownership, ownership_written, origins };
    clean.then_some(desired)
}

/// "10 from template community (groups/t.yaml:2:3), 7 in group makers (groups/m.yaml:9:7)":
/// what each place adds to the measure `violation` exceeds, in the order of resolution.
fn contributions(
    subject: &Subject,
    layers: &[Origin],
    resolved: &BTreeMap<&str, (&str, usize)>,
    violation: &Violation,
) -> String {
    let measure = |key: &str, value: &str| match violation {
        Violation::TooManyKeys { .. } => 1,
        Violation::ValuesTooLarge { .. } => value.len(),
        _ => key.len() + value.len(),
    };
    let unit = if matches!(violation, Violation::TooManyKeys { .. }) { "" } else { " bytes" };
    let mut counts = vec![0; layers.len()];
    for (key, (value, layer)) in resolved {
        counts[*layer] += measure(key, value);
    }
    let mut text = String::new();
    for (origin, n) in layers.iter().zip(counts).filter(|(_, n)| *n > 0) {
        let separator = if text.is_empty() { "" } else { ", " };
        let _ = write!(text, "{separator}{n}{unit} {}", origin.contribution(&subject.own()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::groups::{merge, merge_with, parse_file};
    use super::super::index::DesiredIndex;
    use super::super::overlays::{OverlayFile, OverlayPath, parse_overlay};
    use super::*;
    use proptest::prelude::*;

    fn overlay(name: &str, text: &str) -> OverlayFile {
        parse_overlay(Arc::from(Path::new(name)), text)
    }

    fn overlays(files: Vec<OverlayFile>) -> Overlays {
        Overlays::of_files(Path::new("groups"), files)
    }

    fn set(pairs: &[(&str, &str)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    /// Asserts that `index`, kept up to date edit by edit, holds what a fresh load of
    /// the same files gives: the groups and every diagnostic.
    fn assert_same_as_a_fresh_load(index: &DesiredIndex, dir: &Path, overlays: &[OverlayPath]) {
        let fresh = super::super::load_with(dir, overlays);
        assert_eq!(&fresh.state.groups, index.groups());
        assert_eq!(fresh.diagnostics, index.diagnostics());
    }

    #[test]
    fn overlays_apply_after_each_template_and_after_the_group_in_the_order_listed() {
        let templates = parse(
            "t.yaml",
            "templates:\n  base:\n    a: base\n    b: base\n    c: base\n  child:\n    extends: base\n    b: child\n",
        );
        let groups = parse(
            "g.yaml",
            "groups:\n  - id: g\n    template: child\n    attributes: {c: own}\n    unset: [d]\n  - id: plain\n    attributes: {p: base, q: base}\n  - id: untouched\n    attributes: {p: base}\n",
        );
        // The parent's patch sets `b` (the child still wins) and `d` (the group's unset
        // removes it); the child's removes `a`; the group's patches come last, in order.
        let first = overlay(
            "o/1.yaml",
            "templates:\n  base:\n    b: patched\n    d: patched\n  child:\n    unset: [a]\ngroups:\n  - id: g\n    attributes: {c: first, e: first}\n  - id: plain\n    attributes: {p: first}\n    unset: [q]\n",
        );
        let second = overlay("o/2.yaml", "groups:\n  - ids: [g, plain]\n    attributes: {e: second}\n");
        let loaded = merge_with(vec![templates, groups], &overlays(vec![first, second]));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let of = |id: &str| loaded.state.groups[&GroupId::parse(id).unwrap()].attributes.clone();
        assert_eq!(of("g"), set(&[("b", "child"), ("c", "first"), ("e", "second")]));
        assert_eq!(of("plain"), set(&[("e", "second"), ("p", "first")]));
        assert_eq!(of("untouched"), set(&[("p", "base")]));
        let plain = &loaded.state.groups[&GroupId::parse("plain").unwrap()];
        assert_eq!((plain.source.line, plain.source.column), (6, 9), "the group keeps its place");
        // Without the overlays: the base.
        let base = merge(vec![
            parse(
                "t.yaml",
                "templates:\n  base:\n    a: base\n    b: base\n    c: base\n  child:\n    extends: base\n    b: child\n",
            ),
            parse("g.yaml", "groups:\n  - id: g\n    template: child\n    attributes: {c: own}\n    unset: [a]\n"),
        ]);
        assert_eq!(base.state.groups[&GroupId::parse("g").unwrap()].attributes, set(&[("b", "child"), ("c", "own")]));
    }

    #[test]
    fn an_overlay_of_what_is_not_declared_names_both_places() {
        let groups = parse("g.yaml", "templates:\n  t: {k: v}\ngroups:\n  - id: g\n    template: t\n");
        let patch = overlay(
            "o.yaml",
            "templates:\n  nope: {k: v}\ngroups:\n  - ids: [g, ghost]\n    attributes: {k: w}\n    unset: [zzz]\n",
        );
        let loaded = merge_with(vec![groups], &overlays(vec![patch]));
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "o.yaml:2:3: error: overlay patches template \"nope\", but no group file in groups/ defines it: an overlay changes declared templates, it cannot declare new ones\n  \
             help: define it in a group file (it then exists in every environment) and patch it here, or fix the name",
                "o.yaml:4:14: error: overlay patches group \"ghost\", but no group file in groups/ declares it: an overlay changes declared groups, it cannot declare new ones\n  \
             help: declare it in a group file (it then exists in every environment) and patch it here, or fix the name",
                "o.yaml:6:13: warning: overlay of group \"g\" (and the 1 others of its set): key \"zzz\" is in `unset:` but no group it patches has it (with its template, its own keys and the overlays before this one); nothing to remove",
            ]
        );
        let related = &loaded.diagnostics[1].related[0];
        assert_eq!(
            (related.location.to_string(), related.label.as_str()),
            ("groups".to_string(), "no group \"ghost\" in the group files here")
        );
        assert!(loaded.has_errors());
    }

    #[test]
    fn a_limit_an_overlay_breaks_names_every_place() {
        let keys = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}: v")).collect::<Vec<_>>().join(", ");
        let groups = parse(
            "g.yaml",
            &format!(
                "templates:\n  t: {{{}}}\ngroups:\n  - id: g\n    template: t\n    attributes: {{{}}}\n  - id: plain\n    attributes: {{{}}}\n",
                keys("t", 10),
                keys("g", 5),
                keys("p", 16)
            ),
        );
        let patch = overlay(
            "o.yaml",
            &format!("templates:\n  t: {{x: v}}\ngroups:\n  - ids: [g, plain]\n    attributes: {{{}}}\n", keys("o", 1)),
        );
        let loaded = merge_with(vec![groups], &overlays(vec![patch]));
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "g.yaml:4:9: error: group \"g\": 17 keys, limit 16 keys per group: 10 from template t (g.yaml:2:3), 1 from overlay of template t (o.yaml:2:3), 5 in group g (g.yaml:6:17), 1 from overlay of group g (o.yaml:4:11) [10047]",
                "g.yaml:7:9: error: group \"plain\": 17 keys, limit 16 keys per group: 16 in group plain (g.yaml:7:9), 1 from overlay of group plain (o.yaml:4:14) [10047]",
            ]
        );
        let labels: Vec<&str> = loaded.diagnostics[0].related.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["template \"t\"", "overlay of template \"t\"", "overlay of group \"g\""]);
        assert!(loaded.state.groups.is_empty(), "neither is applied");
    }

    #[test]
    fn each_key_knows_its_origin_an_overlay_included() {
        let groups = parse(
            "groups/g.yaml",
            "templates:\n  t:\n    a: t\n    b: t\ngroups:\n  - id: g\n    template: t\n    attributes:\n      c: own\n  - ids: [p, q]\n    attributes:\n      a: own\n      b: own\n",
        );
        let patch = overlay(
            "overlays/production/x.yaml",
            "templates:\n  t:\n    b: patched\ngroups:\n  - ids: [g, p]\n    attributes:\n      d: patched\n",
        );
        let loaded = merge_with(vec![groups], &overlays(vec![patch]));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let origin = |id: &str, key: &str| {
            let group = &loaded.state.groups[&GroupId::parse(id).unwrap()];
            let origin = group.origins.of(key, &group.attributes, &group.source).unwrap();
            let template = origin.template.as_deref().map(|t| format!(" (template {t})")).unwrap_or_default();
            format!("{}{template} {}:{}:{}", origin.kind.as_str(), origin.file.display(), origin.line, origin.column)
        };
        assert_eq!(origin("g", "a"), "template (template t) groups/g.yaml:3:5");
        assert_eq!(origin("g", "b"), "overlay (template t) overlays/production/x.yaml:3:5");
        assert_eq!(origin("g", "c"), "group groups/g.yaml:9:7");
        assert_eq!(origin("g", "d"), "overlay overlays/production/x.yaml:7:7");
        // A group without a template: its own keys where written, the overlay's in the overlay.
        assert_eq!(origin("p", "a"), "set groups/g.yaml:12:7");
        assert_eq!(origin("p", "d"), "overlay overlays/production/x.yaml:7:7");
        assert_eq!(origin("q", "b"), "set groups/g.yaml:13:7");
    }

    #[test]
    fn watch_follows_an_overlay_changed_like_a_fresh_load() {
        let dir = tempfile::tempdir().unwrap();
        let groups = dir.path().join("groups");
        std::fs::create_dir_all(&groups).unwrap();
        write(&groups, "t.yaml", "templates:\n  t:\n    k: base\n");
        write(&groups, "g.yaml", "groups:\n  - id: g\n    template: t\n  - id: plain\n    attributes: {k: base}\n");
        let overlay_dir = dir.path().join("overlays");
        std::fs::create_dir_all(&overlay_dir).unwrap();
        let o = write(&overlay_dir, "o.yaml", "groups:\n  - id: plain\n    attributes: {k: one}\n");
        let at = SourceLocation { file: Arc::from(Path::new("grattr.yaml")), line: 2, column: 13 };
        let paths = [OverlayPath { path: overlay_dir.clone(), at }];
        let mut index = DesiredIndex::load_with(&groups, &paths);
        let (g, plain) = (GroupId::parse("g").unwrap(), GroupId::parse("plain").unwrap());
        assert_eq!(&index.groups()[&plain].attributes["k"], "one");
        assert_eq!(&index.groups()[&g].attributes["k"], "base");
        let same_as_a_fresh_load = |index: &DesiredIndex| assert_same_as_a_fresh_load(index, &groups, &paths);

        // The overlay now patches the template instead of the group.
        std::fs::write(&o, "templates:\n  t:\n    k: two\n").unwrap();
        let affected = index.update([o.clone()]);
        assert!(affected.contains(&g) && affected.contains(&plain), "{affected:?}");
        assert_eq!(&index.groups()[&plain].attributes["k"], "base");
        assert_eq!(&index.groups()[&g].attributes["k"], "two");
        same_as_a_fresh_load(&index);

        // A patch of a group no file declares, then declared by a new group file.
        std::fs::write(&o, "groups:\n  - id: later\n    attributes: {k: three}\n").unwrap();
        index.update([o.clone()]);
        assert!(index.has_errors());
        same_as_a_fresh_load(&index);
        let later = write(&groups, "later.yaml", "groups:\n  - id: later\n    attributes: {k: base}\n");
        index.update([later.clone()]);
        assert!(!index.has_errors(), "{:?}", index.diagnostics());
        assert_eq!(&index.groups()[&GroupId::parse("later").unwrap()].attributes["k"], "three");
        same_as_a_fresh_load(&index);

        // The overlay directory removed: an error at its line in the configuration.
        std::fs::remove_dir_all(&overlay_dir).unwrap();
        index.update([overlay_dir.clone()]);
        assert!(index.has_errors());
        assert!(index.diagnostics()[0].message.ends_with("overlays does not exist"), "{:?}", index.diagnostics());
        same_as_a_fresh_load(&index);
        // And no overlay at all.
        index.set_overlays(&[]);
        assert!(!index.has_errors());
        assert_eq!(&index.groups()[&GroupId::parse("later").unwrap()].attributes["k"], "base");
        assert_eq!(index.groups(), &super::super::load(&groups).state.groups);
    }

    fn parse(name: &str, text: &str) -> FileGroups {
        parse_file(Arc::from(Path::new(name)), text)
    }

    /// `count` templates, each but the first extending the one before it, the first
    /// setting `k: value`; and groups using the 10th and the last.
    fn long_chain(count: usize, value: &str) -> String {
        let mut text = format!("templates:\n  t0:\n    k: {value}\n");
        for n in 1..count {
            let _ = write!(text, "  t{n}:\n    extends: t{}\n", n - 1);
        }
        text + &format!("groups:\n  - id: near\n    template: t9\n  - id: far\n    template: t{}\n", count - 1)
    }

    #[test]
    fn a_chain_past_the_limit_is_reported_once_and_watch_follows_it_like_a_fresh_load() {
        let dir = tempfile::tempdir().unwrap();
        let t = write(dir.path(), "t.yaml", &long_chain(5000, "one"));
        let mut index = DesiredIndex::load(dir.path());
        let same_as_a_fresh_load = |index: &DesiredIndex| assert_same_as_a_fresh_load(index, dir.path(), &[]);
        same_as_a_fresh_load(&index);
        let shown: Vec<String> = index.diagnostics().iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown[0].contains("t.yaml:67:14: error: template \"t32\": its `extends` chain is 33 templates long, over the limit of 32: t32 → t31 → t30 → t29 → t28 → t27 → … → t0"), "{}", shown[0]);
        let near = GroupId::parse("near").unwrap();
        assert_eq!(&index.groups()[&near].attributes["k"], "one");
        assert!(!index.groups().contains_key(&GroupId::parse("far").unwrap()));

        // The root changes: every template reaches it, the group within the limit follows.
        std::fs::write(&t, long_chain(5000, "two")).unwrap();
        let affected = index.update([t]);
        assert!(affected.contains(&near), "{affected:?}");
        assert_eq!(&index.groups()[&near].attributes["k"], "two");
        same_as_a_fresh_load(&index);
    }

    #[test]
    fn a_catalog_refuses_a_chain_past_the_limit() {
        let catalog = merge(vec![parse("t.yaml", &long_chain(100, "v"))]).templates;
        assert_eq!(&catalog.resolve("t31").unwrap().attributes["k"], "v");
        assert_eq!(
            catalog.resolve("t32").unwrap_err().to_string(),
            "template \"t32\" (t.yaml:66:3) cannot be used: its `extends` chain is longer than 32 templates"
        );
    }

    #[test]
    fn the_fast_path_leaves_templates_to_the_full_parser() {
        let fast = |text: &str| super::super::fast::parse(&Arc::from(Path::new("g.yaml")), text);
        for text in [
            "templates:\n  t:\n    k: v\ngroups:\n  - id: a\n    template: t\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\ntemplates:\n  t:\n    k: v\n",
        ] {
            assert!(fast(text).is_none(), "{text}");
        }
        let parsed = parse("g.yaml", "groups:\n  - id: a\n    template: t\n    unset: [k]\n");
        assert_eq!(parsed.templated.len(), 1);
        assert_eq!(parsed.uses[0].0, "t");
        // An entry naming a template with `id:` or `ids:`, `attributes:` or none, and
        // `unset:` or none, it reads as the parser does.
        for text in [
            "groups:\n  - id: a\n    template: t\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\n    template: t\n",
            "groups:\n  - id: a\n    template: t\n    unset: [k]\n",
            "groups:\n  - ids: [a, b]\n    template: t\n    unset:\n      - k\n",
        ] {
            let (fast, full) =
                (fast(text).expect(text), super::super::groups::parse_yaml(Arc::from(Path::new("g.yaml")), text));
            assert_eq!((&fast.templated, &fast.uses, &fast.declared), (&full.templated, &full.uses, &full.declared));
            assert_eq!(fast.templated.len(), 1);
        }
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
    fn a_set_resolves_once_and_its_ids_share_the_result() {
        let templates = parse("t.yaml", "templates:\n  t:\n    a: t\n    b: t\n");
        let groups =
            parse("g.yaml", "groups:\n  - ids: [x, y, z]\n    template: t\n    attributes: {c: own}\n    unset: [b]\n");
        let loaded = merge(vec![templates, groups]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let group = |id: &str| &loaded.state.groups[&GroupId::parse(id).unwrap()];
        for (id, column) in [("x", 11), ("y", 14), ("z", 17)] {
            assert_eq!(group(id).attributes, set(&[("a", "t"), ("c", "own")]), "{id}");
            assert_eq!((group(id).source.line, group(id).source.column), (2, column), "{id}");
        }
        // Resolved once: the ids hold one copy of the origins.
        let (Origins::Resolved { own: x, shared: sx }, Origins::Resolved { own: z, shared: sz }) =
            (&group("x").origins, &group("z").origins)
        else {
            panic!("not resolved: {:?}", group("x").origins)
        };
        assert!(Arc::ptr_eq(x, z) && Arc::ptr_eq(sx, sz));
    }

    #[test]
    fn groups_of_a_template_share_its_name_and_an_entry_keeps_its_places_by_key() {
        let templates = parse("t.yaml", "templates:\n  base:\n    a: t\n  t:\n    extends: base\n    b: t\n");
        let groups = parse(
            "g.yaml",
            "groups:\n  - id: x\n    template: t\n    attributes:\n      z: 1\n      c: 2\n  - id: y\n    template: t\n",
        );
        let places: Vec<_> = groups.templated[0].places.iter().map(|(key, at)| (key, at.line)).collect();
        assert_eq!(places, [("c", 6), ("z", 5)]);
        assert_eq!(groups.templated[0].places.get("z").map(|at| at.column), Some(7));
        assert!(groups.templated[0].places.get("b").is_none() && groups.templated[1].places.is_empty());
        let loaded = merge(vec![templates, groups]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let names: Vec<Arc<str>> = loaded
            .state
            .groups
            .values()
            .flat_map(|group| {
                let origin = |key: &str| group.origins.of(key, &group.attributes, &group.source).unwrap();
                ["a", "b"].map(|key| origin(key).template.unwrap())
            })
            .collect();
        // `a` from base and `b` from t, in each of the two groups: one copy of each name.
        assert_eq!(names.len(), 4);
        let base: Vec<&Arc<str>> = names.iter().filter(|name| &***name == "base").collect();
        assert!(base.len() == 2 && Arc::ptr_eq(base[0], base[1]));
        let t: Vec<&Arc<str>> = names.iter().filter(|name| &***name == "t").collect();
        assert!(t.len() == 2 && Arc::ptr_eq(t[0], t[1]));
        // And one copy of the origins the template gives.
        let shared: Vec<_> = loaded
            .state
            .groups
            .values()
            .map(|group| match &group.origins {
                Origins::Resolved { shared, .. } => shared.clone(),
                other => panic!("not resolved: {other:?}"),
            })
            .collect();
        assert!(shared.len() == 2 && Arc::ptr_eq(&shared[0], &shared[1]));
    }

    /// Once for the set, at its first id, naming it; an id an overlay patches on its
    /// own resolves, and is reported, on its own.
    #[test]
    fn a_set_with_something_to_report_reports_it_once() {
        let keys = (0..16).fold(String::new(), |mut keys, k| {
            let _ = writeln!(keys, "    k{k}: v");
            keys
        });
        let templates = parse("t.yaml", &format!("templates:\n  t:\n{keys}  small:\n    k: v\n"));
        let groups = parse(
            "g.yaml",
            "groups:\n  - ids: [x, y]\n    template: small\n    unset: [nope]\n  - ids: [p, q, r, s]\n    template: t\n    attributes: {own: v}\n",
        );
        let loaded = merge(vec![templates.clone(), groups.clone()]);
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "g.yaml:4:13: warning: set of 2 groups \"x\", \"y\": key \"nope\" is in `unset:` but template \"small\" does not set it; nothing to remove",
                "g.yaml:5:11: error: set of 4 groups \"p\", \"q\", \"r\", …: 17 keys, limit 16 keys per group: 16 from template t (t.yaml:2:3), 1 in the set (g.yaml:7:17) [10047]",
            ]
        );
        let ids: Vec<&str> = loaded.state.groups.keys().map(GroupId::as_str).collect();
        assert_eq!(ids, ["x", "y"]);

        // An overlay that removes a key from q alone: q is fine, the others still are not.
        let patch = overlay("overlays/o.yaml", "groups:\n  - id: q\n    unset: [k0]\n");
        let loaded = merge_with(vec![templates, groups], &overlays(vec![patch]));
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "g.yaml:4:13: warning: set of 2 groups \"x\", \"y\": key \"nope\" is in `unset:` but template \"small\" does not set it; nothing to remove",
                "g.yaml:5:11: error: set of 3 groups \"p\", \"r\", \"s\": 17 keys, limit 16 keys per group: 16 from template t (t.yaml:2:3), 1 in the set (g.yaml:7:17) [10047]",
            ]
        );
        let ids: Vec<&str> = loaded.state.groups.keys().map(GroupId::as_str).collect();
        assert_eq!(ids, ["q", "x", "y"]);
    }

    #[test]
    fn an_overlay_of_one_id_of_a_set_leaves_the_others_alike() {
        let groups = parse(
            "groups/g.yaml",
            "templates:\n  t:\n    a: t\ngroups:\n  - ids: [x, y, z]\n    template: t\n    attributes: {c: own}\n",
        );
        let patch = overlay("overlays/o.yaml", "groups:\n  - id: y\n    attributes: {b: patched}\n");
        let loaded = merge_with(vec![groups], &overlays(vec![patch]));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let group = |id: &str| &loaded.state.groups[&GroupId::parse(id).unwrap()];
        for id in ["x", "z"] {
            assert_eq!(group(id).attributes, set(&[("a", "t"), ("c", "own")]), "{id}");
        }
        assert_eq!(group("y").attributes, set(&[("a", "t"), ("b", "patched"), ("c", "own")]));
        assert_eq!(group("y").source.column, 14);
        let origin = group("y").origins.of("b", &group("y").attributes, &group("y").source).unwrap();
        assert_eq!((origin.kind, origin.line), (OriginKind::Overlay, 3));
        assert_eq!(group("z").origins.of("b", &group("z").attributes, &group("z").source), None);
    }

    #[test]
    fn watch_follows_a_template_change_into_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let t = write(dir.path(), "t.yaml", "templates:\n  t:\n    k: one\n  u:\n    k: other\n");
        write(dir.path(), "g.yaml", "groups:\n  - ids: [a, b]\n    template: t\n  - ids: [c]\n    template: u\n");
        let mut index = DesiredIndex::load(dir.path());
        let same_as_a_fresh_load = |index: &DesiredIndex| assert_same_as_a_fresh_load(index, dir.path(), &[]);
        same_as_a_fresh_load(&index);

        std::fs::write(&t, "templates:\n  t:\n    k: two\n  u:\n    k: other\n").unwrap();
        let affected: Vec<String> = index.update([t.clone()]).iter().map(|id| id.as_str().to_string()).collect();
        assert_eq!(affected, ["a", "b"]);
        assert_eq!(&index.groups()[&GroupId::parse("b").unwrap()].attributes["k"], "two");
        same_as_a_fresh_load(&index);

        // Now with something to report, once for the set.
        std::fs::write(&t, "templates:\n  t:\n    k: three\n  u:\n    k: other\n").unwrap();
        let g = dir.path().join("g.yaml");
        std::fs::write(
            &g,
            "groups:\n  - ids: [a, b]\n    template: t\n    unset: [nope]\n  - ids: [c]\n    template: u\n",
        )
        .unwrap();
        index.update([t, g]);
        assert_eq!(index.diagnostics().len(), 1, "{:?}", index.diagnostics());
        assert_eq!(&index.groups()[&GroupId::parse("a").unwrap()].attributes["k"], "three");
        same_as_a_fresh_load(&index);
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
        /// Resolving templates and overlays gives the desired state of the same groups
        /// written out by hand: templates (a group may use none), group sets, `unset:`,
        /// an overlay's patch of a template and of groups.
        #[test]
        fn resolution_equals_the_groups_written_out(
            base in prop::collection::btree_map("[a-f]{1,2}", "[ -~]{0,5}", 0..5),
            child in prop::collection::btree_map("[a-f]{1,2}", "[ -~]{0,5}", 0..5),
            base_patch in (prop::collection::btree_map("[a-f]{1,2}", "[ -~]{0,5}", 0..2), prop::collection::btree_set("[a-f]{1,2}", 0..3)),
            groups in prop::collection::vec(
                (
                    0u8..3,
                    prop::collection::btree_map("[a-h]{1,2}", "[ -~]{0,5}", 0..4),
                    prop::collection::btree_set("[a-f]{1,2}", 0..3),
                    0usize..3,
                    prop::option::of((prop::collection::btree_map("[a-h]{1,2}", "[ -~]{0,5}", 0..2), prop::collection::btree_set("[a-h]{1,2}", 0..3))),
                ),
                1..6,
            ),
        ) {
            let mut templates = format!("templates:\n{}  child:\n    extends: base\n", mapping("  base:", &base, "    "));
            if !child.is_empty() {
                templates += &mapping("", &child, "    ")[1..];
            }
            // The overlay's patch of `base`: keys set, then keys removed (not both at once).
            let (patch_keys, patch_unset) = &base_patch;
            let patch_unset: Vec<&String> = patch_unset.iter().filter(|k| !patch_keys.contains_key(*k)).collect();
            let mut overlay_text = String::new();
            if !patch_keys.is_empty() || !patch_unset.is_empty() {
                overlay_text += "templates:\n  base:\n";
                for (k, v) in patch_keys {
                    overlay_text += &format!("    {}: {}\n", quoted(k), quoted(v));
                }
                let list: Vec<String> = patch_unset.iter().map(|k| quoted(k)).collect();
                overlay_text += &format!("    unset: [{}]\n", list.join(", "));
            }
            let mut patched_base = base.clone();
            patched_base.extend(patch_keys.clone());
            for key in &patch_unset {
                patched_base.remove(*key);
            }
            let (mut with, mut by_hand) = (String::from("groups:\n"), String::from("groups:\n"));
            let mut group_patches = String::from("groups:\n");
            for (index, (kind, own, unset, set, patch)) in groups.iter().enumerate() {
                // 0: template base, 1: template child, 2: no template.
                let mut resolved = match kind {
                    2 => BTreeMap::new(),
                    _ => patched_base.clone(),
                };
                if *kind == 1 {
                    resolved.extend(child.clone());
                }
                let unset: Vec<&String> = unset.iter().filter(|k| !own.contains_key(*k) && resolved.contains_key(*k)).collect();
                resolved.extend(own.clone());
                for key in &unset {
                    resolved.remove(*key);
                }
                // A set of `set` ids (`ids:`), or one group (`id:`) when 0.
                let ids: Vec<String> = (0..(*set).max(1)).map(|i| format!("g{index}-{i}")).collect();
                let head = match set {
                    0 => format!("id: {}", ids[0]),
                    _ => format!("ids: [{}]", ids.join(", ")),
                };
                with += &format!("  - {head}\n");
                if *kind < 2 {
                    with += &format!("    template: {}\n", if *kind == 1 { "child" } else { "base" });
                    let list: Vec<String> = unset.iter().map(|k| quoted(k)).collect();
                    with += &format!("    unset: [{}]\n", list.join(", "));
                }
                with += &mapping("    attributes:", own, "      ");
                if let Some((keys, removed)) = patch {
                    let removed: Vec<&String> = removed.iter().filter(|k| !keys.contains_key(*k)).collect();
                    if !keys.is_empty() || !removed.is_empty() {
                        group_patches += &format!("  - {head}\n");
                        if !keys.is_empty() {
                            group_patches += &mapping("    attributes:", keys, "      ");
                        }
                        let list: Vec<String> = removed.iter().map(|k| quoted(k)).collect();
                        group_patches += &format!("    unset: [{}]\n", list.join(", "));
                    }
                    resolved.extend(keys.clone());
                    for key in removed {
                        resolved.remove(key);
                    }
                }
                for id in &ids {
                    by_hand += &format!("  - id: {id}\n{}", mapping("    attributes:", &resolved, "      "));
                }
            }
            if group_patches.len() > "groups:\n".len() {
                overlay_text += &group_patches;
            }
            let files = vec![parse("t.yaml", &templates), parse("g.yaml", &with)];
            let templated = merge_with(files, &overlays(vec![overlay("o.yaml", &overlay_text)]));
            let errors: Vec<String> = templated.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
            prop_assert!(errors.is_empty(), "{errors:?}\n{templates}{with}{overlay_text}");
            let plain = merge(vec![parse("g.yaml", &by_hand)]);
            prop_assert!(plain.diagnostics.is_empty(), "{:?}", plain.diagnostics);
            let attributes = |state: &super::super::DesiredState| -> BTreeMap<GroupId, AttributeSet> {
                state.groups.iter().map(|(id, g)| (id.clone(), g.attributes.clone())).collect()
            };
            prop_assert_eq!(attributes(&templated.state), attributes(&plain.state));
        }
    }
}

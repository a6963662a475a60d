//! The desired state: every `*.yaml`/`*.yml` file under the groups directory,
//! read in parallel, validated against every documented limit, merged in a
//! deterministic order.

pub(crate) use super::attributes::ownership_word;
use super::attributes::{read_attributes, read_ownership, report_limits};
use super::diagnostic::{Diagnostic, Rule};
use super::overlays::{OverlayPath, Overlays};
use super::shape::{
    Entries, FileFields, GroupFields, Issue, Items, Lenient, NodeList, TemplateMap, read_fields, wrong_type,
};
use super::templates::{Template, Templated};
use super::yaml::{self, Node};
pub use crate::model::DesiredGroup;
use crate::model::limits;
use crate::model::{Digest, DigestBuilder, GroupId, OriginKind, Origins, SourceLocation};
use foldhash::fast::RandomState;
use rayon::prelude::*;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::collections::hash_map::Entry as HashEntry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
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
            if !group.ownership.is_group() {
                digest.field(b"ownership").field(group.ownership.as_str().as_bytes());
            }
        }
        digest.finish()
    }
}

/// The groups of one file and the problems found in it.
#[derive(Debug, Clone, Default)]
pub struct FileGroups {
    /// The valid groups, in the order written.
    pub groups: Vec<(GroupId, DesiredGroup)>,
    /// Every group id declared (valid or not otherwise), where its `id` is written.
    pub declared: Vec<(GroupId, SourceLocation)>,
    /// Every problem found in the file.
    pub diagnostics: Vec<Diagnostic>,
    /// The templates the file defines (see [`super::templates`]).
    pub templates: Vec<Template>,
    /// The valid groups that use a template, resolved once every file is read.
    pub templated: Vec<Templated>,
    /// Every `template:` written (in valid groups or not), and where.
    pub uses: Vec<(String, SourceLocation)>,
}

impl FileGroups {
    /// Whether the file defines or uses templates (its groups depend on other files).
    pub fn has_templates(&self) -> bool {
        !self.templates.is_empty() || !self.uses.is_empty()
    }
}

/// The result of loading a groups directory: what was declared and what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The valid groups. When [`Loaded::has_errors`], this is incomplete and must not be applied.
    pub state: DesiredState,
    /// Every problem in every file, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// How many group files were read.
    pub files: usize,
    /// How many overlay files were read.
    pub overlay_files: usize,
    /// The templates, each name's first definition, and the overlays' patches of them.
    pub templates: super::templates::Catalog,
}

impl Loaded {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads and validates every group file under `dir`. Never fails: an unreadable
/// directory or file is a diagnostic like any other.
pub fn load(dir: &Path) -> Loaded {
    load_with(dir, &[])
}

/// Loads and validates every group file under `dir` and the overlays listed (an
/// environment's [`super::Environment::overlays`]), and applies them: the desired
/// state of that environment. Never fails: every problem is a diagnostic.
pub fn load_with(dir: &Path, overlays: &[OverlayPath]) -> Loaded {
    let (files, overlays) = rayon::join(|| list_files(dir), || Overlays::read(overlays, dir));
    let files = match files {
        Ok(files) => files,
        Err(diagnostic) => {
            let mut diagnostics = vec![diagnostic];
            diagnostics.extend(overlays.diagnostics(&[]));
            return Loaded { diagnostics, overlay_files: overlays.file_count(), ..Loaded::default() };
        }
    };
    let parsed: Vec<FileGroups> = files.par_iter().map(|path| read_file(dir, path)).collect();
    let count = files.len();
    let mut loaded = merge_with(parsed, &overlays);
    loaded.files = count;
    loaded
}

/// Whether grattr reads this file name: YAML, not hidden, not an editor leftover.
pub fn is_group_file(name: &str) -> bool {
    let hidden_or_leftover = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    let lower = name.to_ascii_lowercase();
    !hidden_or_leftover && (lower.ends_with(".yaml") || lower.ends_with(".yml"))
}

/// What a path under the groups directory is to grattr. The one rule that both a
/// whole load and `watch`'s file-by-file index follow.
#[derive(Debug)]
pub enum Entry {
    /// A group file to read.
    GroupFile,
    /// A directory to look into.
    Dir,
    /// Not grattr's: another kind of file, or gone.
    Skip,
    /// Neither read nor skipped silently: a symlink that leads outside the repository or
    /// cannot be resolved, or a group file name that is not a regular file (a FIFO, a
    /// socket, a device), which grattr never opens.
    Refused(Diagnostic),
}

/// The directory symlinks under `groups_dir` must stay within: the one holding the
/// groups directory (the repository, with the default `groups: groups`).
fn repository(groups_dir: &Path) -> Option<PathBuf> {
    let groups_dir = groups_dir.canonicalize().ok()?;
    Some(groups_dir.parent().map_or_else(|| groups_dir.clone(), Path::to_path_buf))
}

/// Says what `path`, found under `groups_dir`, is (see [`Entry`]). It looks at
/// metadata only, so that a FIFO cannot block it.
pub fn entry(groups_dir: &Path, path: &Path) -> Entry {
    let at = || SourceLocation { file: Arc::from(super::diagnostic::display_path(path)), line: 0, column: 0 };
    let group_file = path.file_name().is_some_and(|name| is_group_file(&name.to_string_lossy()));
    let Ok(link) = std::fs::symlink_metadata(path) else { return Entry::Skip };
    let is_link = link.file_type().is_symlink();
    let target = match std::fs::metadata(path) {
        Ok(target) => target,
        Err(e) if is_link && group_file => {
            return Entry::Refused(Diagnostic::error(Rule::Link, at(), format!("cannot follow the symlink: {e}")));
        }
        Err(_) => return Entry::Skip,
    };
    if !target.is_dir() && !group_file {
        return Entry::Skip;
    }
    if is_link {
        let inside = match (repository(groups_dir), path.canonicalize()) {
            (Some(root), Ok(resolved)) => resolved.starts_with(&root).then_some(()).ok_or(Some((root, resolved))),
            _ => Err(None),
        };
        if let Err(outside) = inside {
            let message = match outside {
                Some((root, resolved)) => {
                    format!("the symlink leads outside the repository ({}): to {}", root.display(), resolved.display())
                }
                None => "cannot resolve the symlink".to_string(),
            };
            return Entry::Refused(Diagnostic::error(Rule::Link, at(), message).with_help(
                "grattr reads only files inside the repository: copy the file in, or point the link at one inside",
            ));
        }
    }
    if target.is_dir() {
        return Entry::Dir;
    }
    if !target.is_file() {
        let what = if is_link { "the symlink leads to something" } else { "this is something" };
        let message = format!(
            "{what} that is not a regular file or directory (a FIFO, socket or device); grattr does not open it"
        );
        return Entry::Refused(Diagnostic::error(Rule::NotAFile, at(), message));
    }
    Entry::GroupFile
}

/// Every group file under `dir`, recursively, sorted by path (the order of the
/// plan and of duplicate reports). Hidden directories are skipped. Entries
/// [`Entry::Refused`] are listed too, so that reading them reports why.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    list_files_under(dir, dir)
}

/// [`list_files`] of `start`, a directory under the groups directory `groups_dir`.
pub fn list_files_under(groups_dir: &Path, start: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    list_files_noting_transient(groups_dir, start).0
}

/// [`list_files_under`], and whether it failed for a reason that may pass ([`transient`]).
pub fn list_files_noting_transient(groups_dir: &Path, start: &Path) -> (Result<Vec<PathBuf>, Diagnostic>, bool) {
    let at_dir = || SourceLocation { file: Arc::from(start), line: 0, column: 0 };
    if !start.is_dir() {
        let diagnostic = Diagnostic::error(Rule::Io, at_dir(), "groups directory not found")
            .with_help("create it, or set `groups:` in grattr.yaml to the directory that holds your group files");
        return (Err(diagnostic), false);
    }
    let mut files = Vec::new();
    let mut walk = walkdir::WalkDir::new(start)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.'));
    while let Some(found) = walk.next() {
        let found = match found {
            Ok(found) => found,
            // A link that cannot be followed (dangling): refused by the rule, below.
            Err(e) if e.loop_ancestor().is_none() && e.path().is_some_and(std::path::Path::is_symlink) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                if matches!(self::entry(groups_dir, &path), Entry::Refused(_)) {
                    files.push(path);
                }
                continue;
            }
            Err(e) => {
                let file = e.path().unwrap_or(start);
                let passes = e.io_error().is_some_and(transient);
                let location = SourceLocation { file: Arc::from(file), line: 0, column: 0 };
                return (Err(Diagnostic::error(Rule::Io, location, format!("cannot read: {e}"))), passes);
            }
        };
        if found.depth() == 0 {
            continue;
        }
        let kind = found.file_type();
        if !found.path_is_symlink() && (kind.is_file() || kind.is_dir()) {
            if kind.is_file() && is_group_file(&found.file_name().to_string_lossy()) {
                files.push(found.into_path());
            }
            continue;
        }
        match entry(groups_dir, found.path()) {
            Entry::GroupFile => files.push(found.into_path()),
            Entry::Dir | Entry::Skip => {}
            Entry::Refused(_) => {
                if kind.is_dir() {
                    walk.skip_current_dir();
                }
                files.push(found.into_path());
            }
        }
    }
    (Ok(files), false)
}

/// Reads and checks one file found under `groups_dir`; a path the rule of [`entry`]
/// refuses is reported, never opened.
pub fn read_file(groups_dir: &Path, path: &Path) -> FileGroups {
    read_file_noting_transient(groups_dir, path).0
}

/// [`read_file`], and whether reading failed for a reason that passes ([`transient`]):
/// reading it again later may succeed, with no change to the file to say so.
pub fn read_file_noting_transient(groups_dir: &Path, path: &Path) -> (FileGroups, bool) {
    match read_text_noting_transient(Some(groups_dir), path) {
        (Ok((file, text)), _) => (parse_file(file, &text), false),
        (Err(diagnostic), transient) => (FileGroups { diagnostics: vec![diagnostic], ..Default::default() }, transient),
    }
}

/// Whether a read that failed with `error` may succeed if tried again with nothing
/// changed: too many files open (by this process or the system), no memory or buffers
/// for now, interrupted, would block.
pub fn transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::OutOfMemory) {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        return [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS, libc::EAGAIN, libc::EINTR].contains(&code);
    }
    // Windows' "too many open files" has no ErrorKind either (its out-of-memory
    // codes map to ErrorKind::OutOfMemory, above); libc has no Windows error codes.
    #[cfg(windows)]
    if let Some(code) = error.raw_os_error() {
        const ERROR_TOO_MANY_OPEN_FILES: i32 = 4;
        const ERROR_NO_SYSTEM_RESOURCES: i32 = 1450;
        return [ERROR_TOO_MANY_OPEN_FILES, ERROR_NO_SYSTEM_RESOURCES].contains(&code);
    }
    false
}

/// The text of a file found under `dir` (a groups or an overlay directory; `None`
/// for a file `grattr.yaml` names itself), and its name as shown; a path the rule
/// of [`entry`] refuses, a name or a text that is not UTF-8, and a file that cannot
/// be read are one diagnostic.
pub(super) fn read_text(dir: Option<&Path>, path: &Path) -> Result<(Arc<Path>, String), Diagnostic> {
    read_text_noting_transient(dir, path).0
}

/// [`read_text`], and whether it failed for a reason that may pass ([`transient`]).
fn read_text_noting_transient(dir: Option<&Path>, path: &Path) -> (Result<(Arc<Path>, String), Diagnostic>, bool) {
    if let Some(Entry::Refused(diagnostic)) = dir.map(|dir| entry(dir, path)) {
        return (Err(diagnostic), false);
    }
    let file: Arc<Path> = Arc::from(super::diagnostic::display_path(path));
    if path.to_str().is_none() {
        let message =
            "file name is not UTF-8: file names must be UTF-8 (the lockfile and JSON plans name files as text)";
        let location = SourceLocation { file, line: 0, column: 0 };
        return (Err(Diagnostic::error(Rule::FileNameNotUtf8, location, message).with_help("rename the file")), false);
    }
    // Refused before it is read: reading it would hold it, and the parser's view of it, in memory.
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.len() > limits::MAX_GROUP_FILE_BYTES as u64
    {
        return (Err(too_large(file, metadata.len())), false);
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Ok((file, text)), false),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
                let column =
                    String::from_utf8_lossy(valid.rsplit(|b| *b == b'\n').next().unwrap_or(&[])).chars().count() as u64
                        + 1;
                let message = format!("file is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to());
                (Err(Diagnostic::error(Rule::NotUtf8, SourceLocation { file, line, column }, message)), false)
            }
        },
        Err(e) => {
            let location = SourceLocation { file, line: 0, column: 0 };
            (Err(Diagnostic::error(Rule::Io, location, format!("cannot read: {e}"))), transient(&e))
        }
    }
}

/// The error of a file of `bytes` bytes, over [`limits::MAX_GROUP_FILE_BYTES`].
pub(super) fn too_large(file: Arc<Path>, bytes: u64) -> Diagnostic {
    let max = limits::MAX_GROUP_FILE_BYTES;
    let message = format!("file is {bytes} bytes, over the limit of {max} bytes ({} MiB) for one file", max >> 20);
    Diagnostic::error(Rule::FileTooLarge, SourceLocation { file, line: 0, column: 0 }, message)
        .with_help("split it: any number of files may declare groups and templates")
}

/// Parses and checks the text of one file; `file` names it in diagnostics. A file of
/// the common shape with nothing to report is read by the fast path (see
/// `desired::fast`); any other by the YAML parser, which reports every problem. A
/// text over [`limits::MAX_GROUP_FILE_BYTES`] is refused.
pub fn parse_file(file: Arc<Path>, text: &str) -> FileGroups {
    if text.len() > limits::MAX_GROUP_FILE_BYTES {
        return FileGroups { diagnostics: vec![too_large(file, text.len() as u64)], ..FileGroups::default() };
    }
    match super::fast::parse(&file, text) {
        Some(groups) => groups,
        None => parse_yaml(file, text),
    }
}

/// [`parse_file`] by the YAML parser. The entries of `groups:` are checked one by one
/// as the parser reads them, so that memory holds what they declare, never the
/// parser's view of them all (which takes many times the text). A file whose top
/// level, or whose `groups:`, is of the wrong kind is read again whole to say where
/// (what it holds is skipped, not kept, so that costs little).
pub(super) fn parse_yaml(file: Arc<Path>, text: &str) -> FileGroups {
    let mut out = FileGroups::default();
    let read = serde_saphyr::with_deserializer_from_str_with_options(text, yaml::options(), |de| {
        de::Deserializer::deserialize_any(de, TopVisitor { file: &file, text, out: &mut out })
    });
    let top = match read {
        Ok(Some(top)) => top,
        Ok(None) => return parse_yaml_whole(file, text),
        Err(e) => {
            // A tag the parser cannot read as text fails the file: refused at its place instead.
            if let Some(unreadable) = yaml::Unreadable::replace(text) {
                let mut out = parse_yaml(file, &unreadable.text);
                unreadable.restore(&mut out.diagnostics);
                return out;
            }
            return FileGroups { diagnostics: vec![yaml::diagnostic(&file, text, &e)], ..FileGroups::default() };
        }
    };
    let misspelt = top.issues.iter().any(|i| matches!(i.rule, Rule::UnknownField | Rule::Tag));
    report_issues(&file, top.issues, &mut out);
    let defines_templates = top.templates.is_some();
    if let Some(templates) = top.templates {
        super::templates::read_templates(&file, text, templates, &mut out);
    }
    match top.groups {
        Streamed::Absent if misspelt || defines_templates => {}
        Streamed::Absent | Streamed::Null | Streamed::Items(0) => no_groups(&file, &mut out),
        Streamed::Items(_) => {}
        Streamed::Wrong => return parse_yaml_whole(file, text),
    }
    sort_by_position(&mut out.diagnostics);
    out
}

/// The warning that a file declares no groups.
fn no_groups(file: &Arc<Path>, out: &mut FileGroups) {
    let location = SourceLocation { file: file.clone(), line: 1, column: 1 };
    out.diagnostics.push(
        Diagnostic::warning(Rule::NoGroups, location, "file declares no groups")
            .with_help("declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file"),
    );
}

/// The top level of a group file, as [`parse_yaml`] reads it: its `groups:` already checked.
struct StreamedTop {
    groups: Streamed,
    templates: Option<Spanned<Lenient<TemplateMap>>>,
    issues: Vec<Issue>,
}

/// What `groups:` held, its entries checked as they were read.
enum Streamed {
    /// No `groups:`.
    Absent,
    /// `groups:` left empty.
    Null,
    /// A sequence of this many entries.
    Items(usize),
    /// Any other kind.
    Wrong,
}

/// The visits of a scalar, for a visitor to which any scalar is `$value`.
macro_rules! other_kinds {
    ($value:expr) => {
        other_kinds!($value; visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
            visit_f64: f64, visit_char: char, visit_str: &str, visit_bytes: &[u8]);
    };
    ($value:expr; $($method:ident: $ty:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok($value)
        })*
    };
}

/// Reads the top level of a group file: `None` when it is not a mapping.
struct TopVisitor<'a> {
    file: &'a Arc<Path>,
    text: &'a str,
    out: &'a mut FileGroups,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Option<StreamedTop>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let TopVisitor { file, text, out } = self;
        let (mut groups, mut templates) = (Streamed::Absent, None);
        let issues = read_fields(map, &["groups", "templates"], |field, _, map| {
            match field {
                "groups" => groups = map.next_value_seed(GroupsSeed { file, text, out: &mut *out })?,
                _ => templates = Some(map.next_value()?),
            }
            Ok(())
        })?;
        Ok(Some(StreamedTop { groups, templates, issues }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    other_kinds!(None);
}

/// Reads `groups:`, checking each entry as it is read.
struct GroupsSeed<'a> {
    file: &'a Arc<Path>,
    text: &'a str,
    out: &'a mut FileGroups,
}

impl<'de> DeserializeSeed<'de> for GroupsSeed<'_> {
    type Value = Streamed;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Streamed, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GroupsSeed<'_> {
    type Value = Streamed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Streamed, A::Error> {
        let mut count = 0;
        while let Some(group) = seq.next_element::<Spanned<Lenient<GroupFields>>>()? {
            count += 1;
            match group.value {
                Lenient::Found(fields) => check_group(self.file, self.text, group.referenced, fields, self.out),
                Lenient::Wrong(_) => {
                    let at = yaml::locate(self.file, &group.referenced);
                    self.out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
                }
            }
        }
        Ok(Streamed::Items(count))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Streamed, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Streamed::Wrong)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Streamed, E> {
        Ok(Streamed::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Streamed, E> {
        Ok(Streamed::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Streamed, D::Error> {
        deserializer.deserialize_any(self)
    }
    other_kinds!(Streamed::Wrong);
}

/// [`parse_yaml`], reading the whole document before checking it.
fn parse_yaml_whole(file: Arc<Path>, text: &str) -> FileGroups {
    let mut out = FileGroups::default();
    let doc: Spanned<Lenient<FileFields>> = match serde_saphyr::from_str_with_options(text, yaml::options()) {
        Ok(doc) => doc,
        Err(e) => {
            out.diagnostics.push(yaml::diagnostic(&file, text, &e));
            return out;
        }
    };
    let no_groups = |out: &mut FileGroups| no_groups(&file, out);
    let fields = match doc.value {
        Lenient::Found(fields) => fields,
        // An empty file, or a document of nothing but `---` and comments.
        Lenient::Wrong("null") => {
            no_groups(&mut out);
            return out;
        }
        Lenient::Wrong(_) => {
            let at = yaml::locate(&file, &doc.referenced);
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
            return out;
        }
    };
    // An unknown (or tagged) field is most likely the misspelt `groups`: saying it is missing too is noise.
    let misspelt = fields.issues.iter().any(|i| matches!(i.rule, Rule::UnknownField | Rule::Tag));
    report_issues(&file, fields.issues, &mut out);
    let defines_templates = fields.templates.is_some();
    if let Some(templates) = fields.templates {
        super::templates::read_templates(&file, text, templates, &mut out);
    }
    match fields.groups {
        None if misspelt || defines_templates => {}
        None => no_groups(&mut out),
        Some(Spanned { value: Lenient::Wrong("null"), .. }) => no_groups(&mut out),
        Some(Spanned { value: Lenient::Wrong(_), referenced, .. }) => {
            let at = yaml::locate(&file, &referenced);
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a sequence")));
        }
        Some(Spanned { value: Lenient::Found(Items(groups)), .. }) => {
            if groups.is_empty() {
                no_groups(&mut out);
            }
            for group in groups {
                match group.value {
                    Lenient::Found(fields) => check_group(&file, text, group.referenced, fields, &mut out),
                    Lenient::Wrong(_) => {
                        let at = yaml::locate(&file, &group.referenced);
                        out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
                    }
                }
            }
        }
    }
    sort_by_position(&mut out.diagnostics);
    out
}

fn report_issues(file: &Arc<Path>, issues: Vec<Issue>, out: &mut FileGroups) {
    for issue in issues {
        out.diagnostics.push(Diagnostic::error(issue.rule, yaml::locate(file, &issue.at), issue.message));
    }
}

/// Orders one file's diagnostics by line and column, keeping the order of those at one place.
fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
}

fn check_group(file: &Arc<Path>, text: &str, at: Location, group: GroupFields, out: &mut FileGroups) {
    let group_at = yaml::locate(file, &at);
    // Only this entry's diagnostics are counted: counting the file's would cost its entries squared.
    let first_diagnostic = out.diagnostics.len();
    // An unknown (or tagged) field is most likely a misspelt known one: saying it is missing too is noise.
    let misspelt = group.issues.iter().any(|i| matches!(i.rule, Rule::UnknownField | Rule::Tag));
    report_issues(file, group.issues, out);
    let ownership = group.ownership.as_ref().and_then(|node| read_ownership(file, text, node, &mut out.diagnostics));
    let template = group.template.as_ref().and_then(|node| {
        let at = yaml::locate(file, &node.referenced);
        let name = Node::text(node, text).filter(|_| node.value.refused_tag().is_none());
        if name.is_none() {
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at.clone(), wrong_type("a template name (text)")));
        }
        name.map(|name| {
            out.uses.push((name.clone(), at.clone()));
            (name, at)
        })
    });
    if let (Some(list), None) = (&group.unset, &group.template) {
        let message = "`unset:` removes keys a template sets: it needs `template:`";
        out.diagnostics.push(Diagnostic::error(Rule::Template, yaml::locate(file, &list.referenced), message));
    }
    let unset = group.unset.map(|list| super::templates::read_unset(file, text, list, &mut out.diagnostics));
    let kind = if group.ids.is_some() { OriginKind::Set } else { OriginKind::Group };
    // The ids: one (`id:`), or a set (`ids:`), each with where it is written.
    let Some(ids) = read_ids(file, text, group.id, group.ids, &group_at, misspelt, &mut out.diagnostics) else {
        return;
    };
    for (id, id_at) in &ids {
        if let Some(id) = id {
            out.declared.push((id.clone(), id_at.clone()));
        }
    }
    // A set's attributes are checked once, named by its first id.
    let id = ids.first().and_then(|(id, _)| id.clone());
    let name = id.as_ref().map_or_else(|| "(invalid id)".to_string(), |id| format!("{:?}", id.as_str()));
    let entries = match group.attributes {
        None if group.template.is_some() => (Vec::new(), at),
        None => {
            if !misspelt {
                out.diagnostics.push(Diagnostic::error(Rule::MissingField, group_at, "missing field `attributes`"));
            }
            return;
        }
        Some(Spanned { value: Lenient::Wrong(_), referenced, .. }) => {
            let at = yaml::locate(file, &referenced);
            out.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
            return;
        }
        Some(Spanned { value: Lenient::Found(Entries(entries)), referenced, .. }) => (entries, referenced),
    };
    let (entries, attributes_at) = (entries.0, yaml::locate(file, &entries.1));

    let subject = match ids.len() {
        1 => format!("group {name}"),
        n => format!("group {name} (and the {} others of its set)", n - 1),
    };
    let (attributes, key_at) = read_attributes(file, text, &subject, entries.iter(), &mut out.diagnostics);
    let aggregate = template.is_none();
    report_limits(&subject, &attributes, &key_at, &attributes_at, aggregate, &mut out.diagnostics);

    let clean = !out.diagnostics[first_diagnostic..].iter().any(Diagnostic::is_error);
    if !clean {
        return;
    }
    let places: super::templates::Places = key_at.into_iter().map(|(key, (at, _))| (key, at)).collect();
    let origins = Origins::own(kind, places.iter());
    // A clean entry's ids are all valid (an invalid one is an error).
    let ids: Vec<(GroupId, SourceLocation)> = ids.into_iter().filter_map(|(id, at)| Some((id?, at))).collect();
    let Some((_, first_at)) = ids.first() else { return };
    let group = DesiredGroup {
        attributes,
        source: first_at.clone(),
        ownership: ownership.unwrap_or_default(),
        ownership_written: ownership.is_some(),
        origins,
    };
    match template {
        // Resolved once every file is read: the entry once, not once per id.
        Some((template, template_at)) => out.templated.push(super::templates::Templated {
            ids,
            group,
            template,
            template_at,
            unset: unset.unwrap_or_default(),
            places,
            attributes_at,
        }),
        None => {
            out.groups.reserve(ids.len());
            for (id, id_at) in ids {
                out.groups.push((id, DesiredGroup { source: id_at, ..group.clone() }));
            }
        }
    }
}

/// Reads the ids of a `groups:` entry: its `id`, or each of its `ids` (a set), with
/// where each is written; `None` when the entry names none (reported, unless the
/// entry has a `misspelt` field, which is the likelier mistake).
pub(super) fn read_ids(
    file: &Arc<Path>,
    text: &str,
    id: Option<Spanned<Node>>,
    ids: Option<(Location, Spanned<Lenient<NodeList>>)>,
    entry_at: &SourceLocation,
    misspelt: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<(Option<GroupId>, SourceLocation)>> {
    match (id, ids) {
        (Some(_), Some((key, _))) => {
            let message = "a group has `id` or `ids`, not both";
            diagnostics.push(
                Diagnostic::error(Rule::GroupId, yaml::locate(file, &key), message)
                    .with_help("`id:` names one group; `ids: [...]` a set of groups that share the rest"),
            );
            None
        }
        (None, None) => {
            if !misspelt {
                diagnostics.push(Diagnostic::error(
                    Rule::MissingField,
                    entry_at.clone(),
                    "missing field `id` or `ids`",
                ));
            }
            None
        }
        (Some(id_node), None) => Some(vec![read_id(file, text, &id_node, diagnostics)]),
        (None, Some((_, list))) => {
            let list_at = yaml::locate(file, &list.referenced);
            match list.value {
                Lenient::Found(Items(nodes)) if !nodes.is_empty() => {
                    Some(nodes.iter().map(|node| read_id(file, text, node, diagnostics)).collect())
                }
                Lenient::Found(_) => {
                    let message = "`ids` is empty: a set names at least one group";
                    diagnostics.push(Diagnostic::error(Rule::GroupId, list_at, message));
                    None
                }
                Lenient::Wrong(_) => {
                    diagnostics.push(Diagnostic::error(Rule::WrongType, list_at, wrong_type("a sequence of ids")));
                    None
                }
            }
        }
    }
}

/// Reads one group id (of `id:`, or one of `ids:`), reporting what is wrong with it where it is written.
pub(super) fn read_id(
    file: &Arc<Path>,
    text: &str,
    id_node: &Spanned<Node>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Option<GroupId>, SourceLocation) {
    let id_at = yaml::locate(file, &id_node.referenced);
    let id = match Node::text(id_node, text) {
        None if id_node.value.refused_tag().is_some() => {
            let tag = id_node.value.refused_tag().unwrap_or_default();
            let message = format!("group id: the tag `{tag}` is not honoured here");
            diagnostics.push(
                Diagnostic::error(Rule::Tag, id_at.clone(), message)
                    .with_help("an id is the text written: remove the tag, or quote the id"),
            );
            None
        }
        None => {
            let message = format!("group id is {}; an id is text", id_node.value.kind());
            diagnostics.push(
                Diagnostic::error(Rule::GroupId, id_at.clone(), message).with_code(limits::MAX_GROUP_ID_BYTES.code),
            );
            None
        }
        Some(raw) => match GroupId::parse(&raw) {
            Ok(id) => Some(id),
            Err(e) => {
                diagnostics.push(Diagnostic::error(Rule::GroupId, id_at.clone(), e.to_string()).with_code(e.code()));
                None
            }
        },
    };
    (id, id_at)
}

/// The error for a group declared again at `at`, first declared at `first`. Both
/// [`merge`] (a whole load) and [`super::index::DesiredIndex`] (file by file) report it.
pub fn declared_twice(id: &GroupId, at: SourceLocation, first: &SourceLocation) -> Diagnostic {
    let message = format!("group {:?} is declared twice: here and at {first}", id.as_str());
    Diagnostic::error(Rule::DuplicateGroup, at, message).with_related(first.clone(), "first declared here")
}

/// Merges the files' groups in the given order, reporting every group declared
/// twice, including declarations that have other errors.
pub fn merge(files: Vec<FileGroups>) -> Loaded {
    merge_with(files, &Overlays::default())
}

/// [`merge`], with `overlays` applied; their problems follow the group files'.
pub fn merge_with(mut files: Vec<FileGroups>, overlays: &Overlays) -> Loaded {
    // Groups using templates or patched by overlays, resolved over every file; then like any other.
    let resolved = super::templates::resolve(&files.iter().collect::<Vec<_>>(), overlays);
    let mut templates = super::templates::Catalog::of_overlays(overlays);
    for (file, resolution) in files.iter_mut().zip(resolved.files) {
        if !resolution.patched.is_empty() {
            let patched: std::collections::HashSet<&GroupId> = resolution.patched.iter().collect();
            file.groups.retain(|(id, _)| !patched.contains(id));
        }
        file.groups.extend(resolution.groups);
        file.diagnostics.extend(resolution.diagnostics);
        templates.add(std::mem::take(&mut file.templates));
    }
    let overlay_diagnostics = overlays.diagnostics(&resolved.overlays);
    // Each id's first declaration; a later one is an error in its own file.
    let declared = files.iter().map(|file| file.declared.len()).sum();
    let mut first_seen: HashMap<&GroupId, &SourceLocation, RandomState> =
        HashMap::with_capacity_and_hasher(declared, RandomState::default());
    let mut twice: Vec<Vec<Diagnostic>> = files.iter().map(|_| Vec::new()).collect();
    for (file, found) in files.iter().zip(&mut twice) {
        for (id, at) in &file.declared {
            match first_seen.entry(id) {
                HashEntry::Occupied(first) => found.push(declared_twice(id, at.clone(), first.get())),
                HashEntry::Vacant(slot) => {
                    slot.insert(at);
                }
            }
        }
    }
    // Only a group's first declaration is taken (the rest are errors): which ones are
    // not, by file and position, when any id is declared twice.
    let mut not_first: Vec<Vec<bool>> = Vec::new();
    if twice.iter().any(|found| !found.is_empty()) {
        not_first = files
            .iter()
            .map(|file| file.groups.iter().map(|(id, group)| first_seen.get(id) != Some(&&group.source)).collect())
            .collect();
    }
    drop(first_seen);

    let mut loaded = Loaded { templates, ..Loaded::default() };
    let mut groups = Vec::with_capacity(declared);
    for (index, (file, found)) in files.into_iter().zip(twice).enumerate() {
        let mut diagnostics = file.diagnostics;
        diagnostics.extend(found);
        sort_by_position(&mut diagnostics);
        loaded.diagnostics.extend(diagnostics);
        let skip = not_first.get(index);
        groups.extend(
            file.groups
                .into_iter()
                .enumerate()
                .filter(|(position, _)| skip.is_none_or(|skip| !skip[*position]))
                .map(|(_, group)| group),
        );
    }
    // Sorted once and built in one pass, rather than inserted one by one.
    loaded.state.groups = BTreeMap::from_iter(groups);
    loaded.diagnostics.extend(overlay_diagnostics);
    loaded.overlay_files = overlays.file_count();
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeSet;

    #[test]
    fn read_errors_that_pass_are_told_from_those_that_stay() {
        use std::io::{Error, ErrorKind};
        #[cfg(unix)]
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::EAGAIN, libc::EINTR] {
            assert!(transient(&Error::from_raw_os_error(code)), "{code}");
        }
        #[cfg(unix)]
        for code in [libc::ENOENT, libc::EACCES, libc::EISDIR, libc::EIO] {
            assert!(!transient(&Error::from_raw_os_error(code)), "{code}");
        }
        assert!(transient(&Error::from(ErrorKind::Interrupted)));
        assert!(!transient(&Error::from(ErrorKind::PermissionDenied)));
        // A file that cannot be read for good is not read again on its own.
        let dir = tempfile::tempdir().unwrap();
        let (file, again) = read_file_noting_transient(dir.path(), &dir.path().join("gone.yaml"));
        assert!(!again && file.diagnostics.len() == 1, "{:?}", file.diagnostics);
    }

    fn parse(text: &str) -> FileGroups {
        parse_file(Arc::from(Path::new("g.yaml")), text)
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        // Sparse: as large as the limit allows and one byte more, without writing it.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(limits::MAX_GROUP_FILE_BYTES as u64 + 1).unwrap();
        let read = read_file(dir.path(), &path);
        let shown: Vec<String> = read.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(read.diagnostics[0].rule, Rule::FileTooLarge);
        assert!(shown[0].contains("big.yaml"), "{}", shown[0]);
        assert!(shown[0].contains("67108865 bytes, over the limit of 67108864 bytes (64 MiB)"), "{}", shown[0]);
        // At the limit it is read (here: a file of spaces and one group).
        let mut text = "groups:\n  - id: a\n    attributes: {}\n".to_string();
        text += &" ".repeat(limits::MAX_GROUP_FILE_BYTES - text.len());
        std::fs::write(&path, &text).unwrap();
        let read = read_file(dir.path(), &path);
        assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
        assert_eq!(read.groups.len(), 1);
        // A text given directly (not read from a file) is held to the same limit.
        text.push(' ');
        let parsed = parse(&text);
        assert_eq!(parsed.diagnostics.iter().map(|d| d.rule).collect::<Vec<_>>(), [Rule::FileTooLarge]);
    }

    #[test]
    fn the_full_reader_checks_each_entry_as_it_reads_it_like_a_whole_read() {
        // Flow style, an anchor, a wrong entry, `templates:` after `groups:`, a problem
        // at the top level: what the streaming reader finds is what reading it whole finds.
        for text in [
            "groups:\n  - {id: a, attributes: {k: &v x}}\n  - 7\n  - {id: b, attributes: {k: *v, j: ~}}\n  - {id: c, template: t}\ntemplates:\n  t: {k: v}\nextra: 1\n",
            "groups: 7\n",
            "groups: ~\n",
            "groups: []\n",
            "- a\n",
            "",
            "templates:\n  t: {k: v}\n",
            "grops: []\n",
            "groups:\n  - {id: a, attributes: {}}\ngroups: []\n",
            "groups:\n  - {id: a, attributes: {k: [1, 2}\n",
        ] {
            let streamed = parse_yaml(Arc::from(Path::new("g.yaml")), text);
            let whole = parse_yaml_whole(Arc::from(Path::new("g.yaml")), text);
            let FileGroups { groups, declared, diagnostics, templates, templated, uses } = streamed;
            assert_eq!(diagnostics, whole.diagnostics, "{text}");
            assert_eq!(groups, whole.groups, "{text}");
            assert_eq!(declared, whole.declared, "{text}");
            assert_eq!(templates, whole.templates, "{text}");
            assert_eq!(templated, whole.templated, "{text}");
            assert_eq!(uses, whole.uses, "{text}");
        }
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
    fn a_set_declares_each_id_where_it_is_written() {
        let parsed = parse(
            "groups:\n  - ids:\n      - a\n      - \"b\"\n    ownership: keys\n    attributes: {k: v}\n  - ids: [c]\n    attributes: {}\n",
        );
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let places: Vec<_> =
            parsed.groups.iter().map(|(id, g)| (id.as_str().to_string(), g.source.line, g.source.column)).collect();
        assert_eq!(places, vec![("a".into(), 3, 9), ("b".into(), 4, 9), ("c".into(), 7, 11)]);
        assert!(parsed.groups[..2].iter().all(|(_, g)| g.ownership.as_str() == "keys" && &g.attributes["k"] == "v"));
        assert_eq!(parsed.declared.len(), 3);
    }

    #[test]
    fn set_errors() {
        let rules = |text: &str| -> Vec<(Rule, u64, u64)> {
            parse(text).diagnostics.iter().map(|d| (d.rule, d.location.line, d.location.column)).collect()
        };
        assert_eq!(rules("groups:\n  - id: a\n    ids: [b]\n    attributes: {}\n"), vec![(Rule::GroupId, 3, 5)]);
        assert_eq!(rules("groups:\n  - ids: []\n    attributes: {}\n"), vec![(Rule::GroupId, 2, 10)]);
        assert_eq!(rules("groups:\n  - ids: {a: b}\n    attributes: {}\n"), vec![(Rule::WrongType, 2, 10)]);
        assert_eq!(
            rules("groups:\n  - ids: [a, \"\", [c]]\n    attributes: {}\n"),
            vec![(Rule::GroupId, 2, 14), (Rule::GroupId, 2, 18)]
        );
        assert_eq!(rules("groups:\n  - attributes: {}\n"), vec![(Rule::MissingField, 2, 5)]);
        // A set's attribute errors once, not once per id.
        assert_eq!(rules("groups:\n  - ids: [a, b, c]\n    attributes: {k: ~}\n"), vec![(Rule::NullValue, 3, 21)]);
        let loaded = merge(vec![parse("groups:\n  - ids: [a, a]\n    attributes: {}\n")]);
        assert_eq!(loaded.diagnostics.len(), 1);
        assert_eq!(
            loaded.diagnostics[0].to_string(),
            "g.yaml:2:14: error: group \"a\" is declared twice: here and at g.yaml:2:11"
        );
        assert_eq!(loaded.state.groups.len(), 1);
    }

    #[test]
    fn skips_hidden_files_and_editor_leftovers() {
        for name in ["a.yaml", "b.yml", "x.y.yaml", "UPPER.YAML"] {
            assert!(is_group_file(name), "{name}");
        }
        for name in [".a.yaml", ".#a.yaml", "a.yaml~", ".a.yaml.swp", "#a.yaml#", "a.json", "a.yaml.bak"] {
            assert!(!is_group_file(name), "{name}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::model::AttributeSet;
    use proptest::prelude::*;

    fn yaml_of(groups: &[(String, AttributeSet)]) -> String {
        let mut text = String::from("groups:\n");
        for (id, attributes) in groups {
            text += &format!("  - id: {}\n    attributes:\n", serde_json::Value::from(id.as_str()));
            if attributes.is_empty() {
                text.truncate(text.len() - 1);
                text += " {}\n";
            }
            for (key, value) in attributes {
                text += &format!("      {}: {}\n", serde_json::Value::from(key), serde_json::Value::from(value));
            }
        }
        text
    }

    proptest! {
        /// However the groups are spread over files, and in whatever order the files
        /// come, the desired state is the same.
        #[test]
        fn file_order_does_not_change_the_desired_state(
            groups in prop::collection::btree_map("[a-z0-9-]{1,8}", prop::collection::btree_map("[a-z]{1,4}", "[ -~]{0,6}", 0..4), 1..12),
            files in 1usize..5,
            seed in any::<u64>(),
        ) {
            let groups: Vec<(String, AttributeSet)> = groups.into_iter().map(|(id, attributes)| (id, attributes.into())).collect();
            let mut chunks: Vec<Vec<(String, AttributeSet)>> = vec![Vec::new(); files];
            for (index, group) in groups.iter().enumerate() {
                chunks[(index as u64 ^ seed) as usize % files].push(group.clone());
            }
            let parse = |order: &[usize]| {
                let parsed = order
                    .iter()
                    .map(|&i| parse_file(Arc::from(Path::new(&format!("f{i}.yaml"))), &yaml_of(&chunks[i])))
                    .collect();
                let loaded = merge(parsed);
                let errors: Vec<String> = loaded.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
                assert!(errors.is_empty(), "{errors:?}");
                loaded.state.groups.into_iter().map(|(id, g)| (id, g.attributes)).collect::<BTreeMap<_, _>>()
            };
            let forward: Vec<usize> = (0..files).collect();
            let mut backward = forward.clone();
            backward.reverse();
            let expected: BTreeMap<GroupId, AttributeSet> =
                groups.iter().map(|(id, a)| (GroupId::parse(id).unwrap(), a.clone())).collect();
            prop_assert_eq!(parse(&forward), expected.clone());
            prop_assert_eq!(parse(&backward), expected);
        }
    }
}

//! Generates a synthetic grattr repository for benchmarks: `grattr.yaml`, a
//! `groups/` tree of YAML files and a `grattr.lock` that records a known
//! fraction of the groups with different attributes, so that the plan's summary
//! is known in advance.
//!
//! Shared by the benchmarks: include it with
//! `#[path = "support/generate.rs"] mod generate;`.
//!
//! Everything is deterministic: the same [`Spec`] always yields the same bytes.
#![allow(unreachable_pub)] // Included by several benchmarks as a private module.
#![allow(dead_code)] // Each benchmark uses its own part of this module.

use grattr::lockfile::Lockfile;
use grattr::model::{AppliedGroup, AttributeSet, GroupId};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The app every generated repository is for.
pub const SDKAPPID: u64 = 1_400_000_000;

/// The file written at the root of a generated tree, so that regenerating into
/// the same directory may remove it and nothing else.
pub const MARKER: &str = ".grattr-bench";

/// The subdirectories of `groups/` the files are spread over, round robin.
const SUBDIRS: [&str; 4] = ["community", "support", "live", "events"];

const TOPICS: [&str; 12] = [
    "rust", "music", "gaming", "travel", "cooking", "support", "news", "sports", "design", "finance", "movies", "books",
];

const WORDS: [&str; 32] = [
    "welcome",
    "to",
    "the",
    "group",
    "please",
    "read",
    "pinned",
    "rules",
    "before",
    "posting",
    "be",
    "kind",
    "and",
    "keep",
    "threads",
    "on",
    "topic",
    "weekly",
    "events",
    "are",
    "announced",
    "here",
    "ask",
    "moderators",
    "for",
    "help",
    "share",
    "your",
    "projects",
    "feedback",
    "is",
    "appreciated",
];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// How many groups are declared.
    pub groups: usize,
    /// How many groups each YAML file declares.
    pub groups_per_file: usize,
    /// One group in `drift_every` is recorded in the lockfile with attributes
    /// that differ from the declared ones (0: none).
    pub drift_every: usize,
}

impl Spec {
    /// `groups` groups, 1,000 per file, 1% of them drifted.
    pub fn new(groups: usize) -> Spec {
        Spec { groups, groups_per_file: 1_000, drift_every: 100 }
    }

    /// Whether group `index` is recorded differently from its declaration.
    pub fn drifted(&self, index: usize) -> bool {
        self.drift_every != 0 && index % self.drift_every == self.drift_every / 2
    }
}

/// How the lockfile's record of a drifted group differs from its declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// Two values differ (the plan shows them as changed).
    Changed,
    /// The record lacks a declared key (the plan adds it).
    KeyAdded,
    /// The record has a key no longer declared (the plan removes it).
    KeyRemoved,
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// The repository root (holds `grattr.yaml`).
    pub root: PathBuf,
    /// Groups declared (and recorded in the lockfile).
    pub groups: usize,
    /// YAML files written.
    pub files: usize,
    /// Bytes of YAML written.
    pub yaml_bytes: u64,
    /// Bytes of `grattr.lock`.
    pub lock_bytes: u64,
    /// Groups whose record differs: the expected `update` count of the plan.
    pub drifted: usize,
    /// Of those, how many have changed values, an added key, a removed key.
    pub changed: usize,
    /// See [`Generated::changed`].
    pub key_added: usize,
    /// See [`Generated::changed`].
    pub key_removed: usize,
}

impl Generated {
    /// Writes `lock` as the repository's `grattr.lock`, noting its size: the last step.
    fn write_lock(mut self, lock: &Lockfile) -> io::Result<Generated> {
        let path = self.root.join("grattr.lock");
        lock.write(&path).map_err(io::Error::other)?;
        self.lock_bytes = std::fs::metadata(&path)?.len();
        Ok(self)
    }

    /// Counts group `index` among the drifted, by kind, when its record differs.
    fn count_drift(&mut self, spec: &Spec, index: usize) {
        if !spec.drifted(index) {
            return;
        }
        self.drifted += 1;
        match drift_kind(spec, index) {
            Drift::Changed => self.changed += 1,
            Drift::KeyAdded => self.key_added += 1,
            Drift::KeyRemoved => self.key_removed += 1,
        }
    }
}

/// The id of group `index`: `bench-000123`.
pub fn group_id(index: usize) -> String {
    format!("bench-{index:06}")
}

/// A cheap, deterministic pseudo-random number for `index` and `salt` (splitmix64).
fn mix(index: usize, salt: u64) -> u64 {
    let mut z = (index as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A line of about `bytes` bytes of words, chosen by `seed`.
fn sentence(seed: u64, bytes: usize) -> String {
    let mut line = String::with_capacity(bytes + 16);
    let mut state = seed;
    while line.len() < bytes {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        state = mix(state as usize, 7);
    }
    line
}

/// One group's declared attributes, as YAML lines (indented for a group's
/// `attributes:` mapping) and as the values grattr reads back from them.
struct Declared {
    yaml: String,
    attributes: AttributeSet,
}

/// The 8 declared attributes of group `index`: short strings, an integer, a
/// decimal, a boolean, a ~200-byte two-line text and a small JSON document.
fn declared(index: usize) -> Declared {
    let r = mix(index, 1);
    let title = format!("Bench group {index}");
    let topic = TOPICS[(r % TOPICS.len() as u64) as usize];
    let owner = format!("user-{:05}", r % 50_000);
    let member_limit = 200 + (r >> 8) % 9_800;
    let ratio = format!("0.{:02}", (r >> 24) % 100);
    let muted = (r >> 32).is_multiple_of(5);
    let description = format!("{}\n{}\n", sentence(mix(index, 2), 100), sentence(mix(index, 3), 95));
    let settings = format!(
        r#"{{"theme":"{}","notify":["mentions","replies"],"slow_mode":{},"v":{}}}"#,
        if r.is_multiple_of(2) { "dark" } else { "light" },
        (r >> 40) % 60,
        1 + (r >> 48) % 4
    );

    let mut yaml = String::with_capacity(512);
    let _ = writeln!(yaml, "      title: \"{title}\"");
    let _ = writeln!(yaml, "      topic: {topic}");
    let _ = writeln!(yaml, "      owner: {owner}");
    let _ = writeln!(yaml, "      member_limit: {member_limit}");
    let _ = writeln!(yaml, "      ratio: {ratio}");
    let _ = writeln!(yaml, "      muted: {muted}");
    yaml.push_str("      description: |\n");
    for line in description.lines() {
        let _ = writeln!(yaml, "        {line}");
    }
    let _ = writeln!(yaml, "      settings: '{settings}'");

    let attributes: AttributeSet = [
        ("title", title),
        ("topic", topic.to_string()),
        ("owner", owner),
        ("member_limit", member_limit.to_string()),
        ("ratio", ratio),
        ("muted", muted.to_string()),
        ("description", description),
        ("settings", settings),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Declared { yaml, attributes }
}

/// How the record of drifted group `index` differs, cycling through the three kinds.
pub fn drift_kind(spec: &Spec, index: usize) -> Drift {
    match (index / spec.drift_every.max(1)) % 3 {
        0 => Drift::Changed,
        1 => Drift::KeyAdded,
        _ => Drift::KeyRemoved,
    }
}

/// What the lockfile records for a group declared with `attributes`.
fn recorded(spec: &Spec, index: usize, attributes: &AttributeSet) -> AttributeSet {
    let mut recorded = attributes.clone();
    if !spec.drifted(index) {
        return recorded;
    }
    match drift_kind(spec, index) {
        Drift::Changed => {
            recorded.insert("member_limit".into(), "100".into());
            recorded.insert("description".into(), format!("{}\n", sentence(mix(index, 4), 180)));
        }
        Drift::KeyAdded => {
            recorded.remove("muted");
        }
        Drift::KeyRemoved => {
            recorded.insert("legacy_banner".into(), "Moved to #announcements".into());
        }
    }
    recorded
}

/// The `grattr.yaml` of a generated repository. The endpoint is a closed port:
/// `plan` never calls it.
pub fn config() -> String {
    format!(
        "# Generated by benches/support/generate.rs.\nsdkappid: {SDKAPPID}\nadmin: administrator\nendpoint: http://127.0.0.1:9\ngroups: groups\nlockfile: grattr.lock\n"
    )
}

/// The attributes group `index` declares (in either corpus).
pub fn declared_attributes(index: usize) -> AttributeSet {
    declared(index).attributes
}

/// The attributes the lockfile records for group `index` of `spec`.
pub fn recorded_attributes(spec: &Spec, index: usize) -> AttributeSet {
    recorded(spec, index, &declared(index).attributes)
}

/// How many groups each file of an adopted repository declares.
pub const ADOPTED_GROUPS_PER_FILE: usize = 100;

/// Creates `root` with its marker, `grattr.yaml` and the group subdirectories;
/// returns the groups directory.
fn prepare_root(root: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(root)?;
    std::fs::write(root.join(MARKER), "generated by grattr's benchmarks; safe to delete\n")?;
    std::fs::write(root.join("grattr.yaml"), config())?;
    let groups_dir = root.join("groups");
    for subdir in SUBDIRS {
        std::fs::create_dir_all(groups_dir.join(subdir))?;
    }
    Ok(groups_dir)
}

/// Writes an adopted app's repository into `root`: `groups` groups, 100 a file, every
/// value double-quoted (as a generator or a conversion from JSON writes them), and no
/// lockfile yet, so that its first plan creates every group. The groups and their
/// attributes are those of [`generate`] (see [`declared_attributes`]).
pub fn generate_adopted(root: &Path, groups: usize) -> io::Result<Generated> {
    let groups_dir = prepare_root(root)?;
    let mut out = Generated { root: root.to_path_buf(), groups, ..Generated::default() };
    for (file_index, start) in (0..groups).step_by(ADOPTED_GROUPS_PER_FILE).enumerate() {
        let end = (start + ADOPTED_GROUPS_PER_FILE).min(groups);
        let subdir = SUBDIRS[file_index % SUBDIRS.len()];
        let path = groups_dir.join(subdir).join(format!("adopted-{file_index:04}.yaml"));
        let mut text = String::with_capacity((end - start) * 512);
        text.push_str("groups:\n");
        for index in start..end {
            let _ = writeln!(text, "  - id: \"{}\"", group_id(index));
            text.push_str("    attributes:\n");
            let attributes = declared(index).attributes;
            // The order a JSON export would have them in, not sorted.
            for key in ["title", "topic", "owner", "member_limit", "ratio", "muted", "description", "settings"] {
                let value = &attributes[key];
                let _ = writeln!(text, "      {key}: {}", serde_json::Value::from(value));
            }
        }
        std::fs::write(&path, &text)?;
        out.files += 1;
        out.yaml_bytes += text.len() as u64;
    }
    Ok(out)
}

/// Writes a repository for `spec` into `root` (created if missing; it should be
/// empty or hold an earlier generated tree, see [`prepare_dir`]).
pub fn generate(root: &Path, spec: &Spec) -> io::Result<Generated> {
    let groups_dir = prepare_root(root)?;

    let mut out = Generated { root: root.to_path_buf(), groups: spec.groups, ..Generated::default() };
    let mut lock = Lockfile::new(SDKAPPID);
    let per_file = spec.groups_per_file.max(1);
    for (file_index, start) in (0..spec.groups).step_by(per_file).enumerate() {
        let end = (start + per_file).min(spec.groups);
        let subdir = SUBDIRS[file_index % SUBDIRS.len()];
        let path = groups_dir.join(subdir).join(format!("part-{file_index:04}.yaml"));
        let mut text = String::with_capacity((end - start) * 640);
        let _ = writeln!(text, "# Groups {} to {} (generated).", group_id(start), group_id(end - 1));
        text.push_str("groups:\n");
        for index in start..end {
            let id = group_id(index);
            let group = declared(index);
            let _ = writeln!(text, "  - id: {id}");
            text.push_str("    attributes:\n");
            text.push_str(&group.yaml);

            out.count_drift(spec, index);
            let group_id = GroupId::parse(&id).map_err(io::Error::other)?;
            lock.groups.insert(group_id, AppliedGroup::new(recorded(spec, index, &group.attributes)));
        }
        let mut file = io::BufWriter::new(std::fs::File::create(&path)?);
        file.write_all(text.as_bytes())?;
        file.flush()?;
        out.files += 1;
        out.yaml_bytes += text.len() as u64;
    }

    out.write_lock(&lock)
}

/// Makes `dir` ready for [`generate`]: removes it when it holds an earlier
/// generated tree (it has the [`MARKER`] file), refuses when it holds anything else.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    if dir.join(MARKER).is_file() {
        std::fs::remove_dir_all(dir)?;
    } else if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a generated benchmark tree; choose an empty or new directory", dir.display()),
        ));
    }
    Ok(())
}

/// The `sets` corpus: groups declared as group sets (`ids:`) over templates.
///
/// - `groups/_templates.yaml` defines [`SET_TEMPLATES`] templates: five bases of
///   seven keys, ten children that `extends` a base (six keys of their own, four
///   of them overriding the base's), and five grandchildren that extend a child
///   (six of their own): chains of one to three templates, 9 to 10 keys resolved.
/// - Each of [`SET_ENTRIES`] files declares one set of `groups / SET_ENTRIES` ids
///   (a block sequence, or a flow sequence over several lines for one in three),
///   naming template `entry % SET_TEMPLATES` and adding one or two keys of its own;
///   one entry in four also `unset:`s a key of its chain.
/// - The lockfile records every group's resolved attributes as they were before
///   the `rules` of template [`SETS_CHANGED_TEMPLATE`] changed, so that the plan
///   updates that key in the groups using it (the groups of [`SET_ENTRIES`] /
///   [`SET_TEMPLATES`] sets) and leaves every other group unchanged.
///
/// Everything a group resolves to is computed here ([`sets_resolved`]), without
/// grattr, so that the plan checks grattr's resolution.
pub const SET_TEMPLATES: usize = 20;

/// How many sets (and files of sets) the `sets` corpus declares, at most.
pub const SET_ENTRIES: usize = 100;

/// The template whose `rules` the lockfile records differently: a child no other
/// template extends, so only its own groups change.
pub const SETS_CHANGED_TEMPLATE: usize = 12;

/// The key that changed.
pub const SETS_CHANGED_KEY: &str = "rules";

/// The template names: five bases, then their children (two each), then five
/// grandchildren (of the first child of each base).
const TEMPLATE_NAMES: [&str; SET_TEMPLATES] = [
    "community",
    "support",
    "live",
    "events",
    "marketplace",
    "community-vip",
    "support-priority",
    "live-stage",
    "events-meetup",
    "marketplace-verified",
    "community-kids",
    "support-self-serve",
    "live-radio",
    "events-conference",
    "marketplace-auction",
    "community-vip-gold",
    "support-priority-24x7",
    "live-stage-premiere",
    "events-meetup-local",
    "marketplace-verified-pro",
];

/// The name of template `t`.
pub fn template_name(t: usize) -> &'static str {
    TEMPLATE_NAMES[t]
}

/// The template `t` extends: bases none, children `(t - 5) % 5`, grandchildren `t - 10`.
pub fn template_parent(t: usize) -> Option<usize> {
    match t {
        0..5 => None,
        5..15 => Some((t - 5) % 5),
        _ => Some(t - 10),
    }
}

/// A template's own key and value, and how the value is written in YAML.
struct TemplateKey {
    key: &'static str,
    value: String,
    yaml: Style,
}

/// How a value is written.
#[derive(Clone, Copy)]
enum Style {
    Plain,
    Double,
    Single,
    Literal,
}

/// Writes `key: value` at `indent` spaces in `style`.
fn write_value(out: &mut String, indent: usize, key: &str, value: &str, style: Style) {
    let pad = " ".repeat(indent);
    match style {
        Style::Plain => {
            let _ = writeln!(out, "{pad}{key}: {value}");
        }
        Style::Double => {
            let _ = writeln!(out, "{pad}{key}: {}", serde_json::Value::from(value));
        }
        Style::Single => {
            let _ = writeln!(out, "{pad}{key}: '{}'", value.replace('\'', "''"));
        }
        Style::Literal => {
            let _ = writeln!(out, "{pad}{key}: |");
            for line in value.lines() {
                let _ = writeln!(out, "{pad}  {line}");
            }
        }
    }
}

/// Two lines of rules, ~200 bytes, ending in a line feed (as a `|` block reads).
fn rules(seed: u64) -> String {
    format!("1. {}.\n2. {}.\n", sentence(mix(seed as usize, 11), 95), sentence(mix(seed as usize, 12), 90))
}

/// The keys template `t` writes itself (its parent's are not repeated).
fn template_keys(t: usize) -> Vec<TemplateKey> {
    let r = mix(t, 21);
    let key = |key, value: String, yaml| TemplateKey { key, value, yaml };
    let theme = ["dark", "light", "gold", "ocean", "forest"][(r % 5) as usize].to_string();
    let welcome = format!("Welcome to {}! {}", TEMPLATE_NAMES[t], sentence(mix(t, 22), 50));
    let settings = format!(
        r#"{{"notify":["mentions","replies"],"slow_mode":{},"history":{},"v":{}}}"#,
        (r >> 8) % 60,
        if r.is_multiple_of(2) { "true" } else { "false" },
        1 + (r >> 16) % 4
    );
    match template_parent(t) {
        None => vec![
            key("rules", rules(t as u64), Style::Literal),
            key("theme", theme, Style::Plain),
            key("welcome", welcome, Style::Double),
            key("member_limit", (500 + (r >> 24) % 9_500).to_string(), Style::Plain),
            key("slow_mode", ((r >> 32) % 30).to_string(), Style::Plain),
            key("muted", "false".to_string(), Style::Plain),
            key("settings", settings, Style::Single),
        ],
        Some(_) if t < 15 => vec![
            key("rules", rules(t as u64), Style::Literal),
            key("theme", theme, Style::Plain),
            key("welcome", welcome, Style::Double),
            key("member_limit", (1_000 + (r >> 24) % 9_000).to_string(), Style::Plain),
            key("badge", format!("{}-badge", TEMPLATE_NAMES[t]), Style::Plain),
            key("tier", ((r >> 40) % 3 + 1).to_string(), Style::Plain),
        ],
        Some(_) => vec![
            key("welcome", welcome, Style::Double),
            key("badge", format!("{}-badge", TEMPLATE_NAMES[t]), Style::Plain),
            key("tier", "4".to_string(), Style::Plain),
            key("banner", format!("https://cdn.example.com/banners/{}.png", TEMPLATE_NAMES[t]), Style::Plain),
            key("settings", settings, Style::Single),
            key("muted", "true".to_string(), Style::Plain),
        ],
    }
}

/// The `rules` template [`SETS_CHANGED_TEMPLATE`] had before it changed (what the lockfile records).
fn old_rules() -> String {
    rules(1_000 + SETS_CHANGED_TEMPLATE as u64)
}

/// How many sets a `sets` corpus of `groups` groups declares.
pub fn set_entries(groups: usize) -> usize {
    SET_ENTRIES.min(groups)
}

/// The first group index of set `entry` (of `entries`) of `groups` groups.
fn set_start(groups: usize, entries: usize, entry: usize) -> usize {
    entry * groups / entries
}

/// The set group `index` belongs to.
pub fn set_of(groups: usize, index: usize) -> usize {
    let entries = set_entries(groups);
    // The last entry whose start is at or before `index`.
    (0..entries).rev().find(|&e| set_start(groups, entries, e) <= index).unwrap_or(0)
}

/// The template set `entry` uses.
pub fn set_template(entry: usize) -> usize {
    entry % SET_TEMPLATES
}

/// The keys set `entry` writes itself, in its `attributes:`.
fn set_keys(entry: usize) -> Vec<(&'static str, String)> {
    let mut keys = vec![("title", format!("Room set {entry}"))];
    if entry.is_multiple_of(2) {
        keys.push(("owner", format!("user-{:05}", mix(entry, 31) % 50_000)));
    }
    keys
}

/// The key set `entry` unsets, if any (a key every chain sets, through its base).
fn set_unset(entry: usize) -> Option<&'static str> {
    (entry % 4 == 3).then_some("slow_mode")
}

/// The attributes template `t` resolves to: its chain, parent first.
fn template_resolved(t: usize) -> AttributeSet {
    let mut attributes = match template_parent(t) {
        Some(parent) => template_resolved(parent),
        None => AttributeSet::new(),
    };
    for key in template_keys(t) {
        attributes.insert(key.key.to_string(), key.value);
    }
    attributes
}

/// The attributes every group of set `entry` resolves to: its template's, its own
/// keys, less its `unset:`.
fn set_resolved(entry: usize) -> AttributeSet {
    let mut attributes = template_resolved(set_template(entry));
    for (key, value) in set_keys(entry) {
        attributes.insert(key.to_string(), value);
    }
    if let Some(key) = set_unset(entry) {
        attributes.remove(key);
    }
    attributes
}

/// The resolved attributes of group `index` of a `sets` corpus of `groups` groups.
pub fn sets_resolved(groups: usize, index: usize) -> AttributeSet {
    set_resolved(set_of(groups, index))
}

/// What the lockfile of a `sets` corpus records for group `index`: its resolved
/// attributes, with the old `rules` for the groups of the changed template.
pub fn sets_recorded(groups: usize, index: usize) -> AttributeSet {
    let entry = set_of(groups, index);
    let mut attributes = set_resolved(entry);
    if set_template(entry) == SETS_CHANGED_TEMPLATE {
        attributes.insert(SETS_CHANGED_KEY.to_string(), old_rules());
    }
    attributes
}

/// Whether group `index` is to update (its set uses the changed template).
pub fn sets_updated(groups: usize, index: usize) -> bool {
    set_template(set_of(groups, index)) == SETS_CHANGED_TEMPLATE
}

/// The text of `groups/_templates.yaml`.
fn templates_yaml() -> String {
    let mut text = String::from("# The templates every set uses (generated).\ntemplates:\n");
    for (t, name) in TEMPLATE_NAMES.iter().enumerate() {
        let _ = writeln!(text, "  {name}:");
        if let Some(parent) = template_parent(t) {
            let _ = writeln!(text, "    extends: {}", TEMPLATE_NAMES[parent]);
        }
        for key in template_keys(t) {
            write_value(&mut text, 4, key.key, &key.value, key.yaml);
        }
    }
    text
}

/// The text of the file of set `entry`, ids `start..end`.
fn set_yaml(entry: usize, start: usize, end: usize) -> String {
    let mut text = String::with_capacity(256 + (end - start) * 20);
    let t = set_template(entry);
    let _ = writeln!(
        text,
        "# Room set {entry} (generated): {} to {}, template {}.",
        group_id(start),
        group_id(end - 1),
        TEMPLATE_NAMES[t]
    );
    text.push_str("groups:\n");
    let _ = writeln!(text, "  - template: {}", TEMPLATE_NAMES[t]);
    text.push_str("    attributes:\n");
    for (key, value) in set_keys(entry) {
        let style = if key == "title" { Style::Double } else { Style::Plain };
        write_value(&mut text, 6, key, &value, style);
    }
    if let Some(key) = set_unset(entry) {
        let _ = writeln!(text, "    unset: [{key}]");
    }
    if entry.is_multiple_of(3) {
        // A flow sequence, ten ids a line.
        text.push_str("    ids: [");
        for index in start..end {
            let separator = match index - start {
                0 => "",
                n if n.is_multiple_of(10) => ",\n      ",
                _ => ", ",
            };
            let _ = write!(text, "{separator}{}", group_id(index));
        }
        text.push_str("]\n");
    } else {
        text.push_str("    ids:\n");
        for index in start..end {
            let _ = writeln!(text, "      - {}", group_id(index));
        }
    }
    text
}

/// Writes a `sets` repository of `groups` groups into `root` (see [`SET_TEMPLATES`]).
pub fn generate_sets(root: &Path, groups: usize) -> io::Result<Generated> {
    let groups_dir = prepare_root(root)?;
    let mut out = Generated { root: root.to_path_buf(), groups, ..Generated::default() };
    let templates = templates_yaml();
    std::fs::write(groups_dir.join("_templates.yaml"), &templates)?;
    out.files += 1;
    out.yaml_bytes += templates.len() as u64;

    let mut lock = Lockfile::new(SDKAPPID);
    let entries = set_entries(groups);
    for entry in 0..entries {
        let (start, end) = (set_start(groups, entries, entry), set_start(groups, entries, entry + 1));
        let subdir = SUBDIRS[entry % SUBDIRS.len()];
        let text = set_yaml(entry, start, end);
        std::fs::write(groups_dir.join(subdir).join(format!("set-{entry:03}.yaml")), &text)?;
        out.files += 1;
        out.yaml_bytes += text.len() as u64;
        let recorded = sets_recorded(groups, start);
        for index in start..end {
            let group_id = GroupId::parse(&group_id(index)).map_err(io::Error::other)?;
            lock.groups.insert(group_id, AppliedGroup::new(recorded.clone()));
        }
        if set_template(entry) == SETS_CHANGED_TEMPLATE {
            out.drifted += end - start;
            out.changed += end - start;
        }
    }
    out.write_lock(&lock)
}

/// The `templated` corpus: every group its own `id:` entry naming a template, as
/// `grattr import --template` writes them without `--sets`:
///
/// ```yaml
///   - id: bench-000123
///     template: support-priority
///     attributes:
///       own: "123"
/// ```
///
/// 1,000 groups a file (as [`generate`]), over the [`SET_TEMPLATES`] templates of the
/// `sets` corpus in `groups/_templates.yaml` (group `index` uses template `index % 20`),
/// and a lockfile that records every group's resolved attributes, but for the groups
/// [`Spec::drifted`] (1%), recorded differently as [`drift_kind`] says: `own` changed,
/// missing, or a key more.
pub const TEMPLATED_OWN_KEY: &str = "own";

/// The template group `index` of a `templated` corpus uses.
pub fn templated_template(index: usize) -> usize {
    index % SET_TEMPLATES
}

/// The attributes group `index` of a `templated` corpus resolves to.
pub fn templated_resolved(index: usize) -> AttributeSet {
    let mut attributes = template_resolved(templated_template(index));
    attributes.insert(TEMPLATED_OWN_KEY.to_string(), index.to_string());
    attributes
}

/// What the lockfile of a `templated` corpus records for group `index`.
pub fn templated_recorded(spec: &Spec, index: usize) -> AttributeSet {
    let mut attributes = templated_resolved(index);
    if spec.drifted(index) {
        match drift_kind(spec, index) {
            Drift::Changed => {
                attributes.insert(TEMPLATED_OWN_KEY.to_string(), format!("old-{index}"));
            }
            Drift::KeyAdded => {
                attributes.remove(TEMPLATED_OWN_KEY);
            }
            Drift::KeyRemoved => {
                attributes.insert("legacy_banner".into(), "Moved to #announcements".into());
            }
        }
    }
    attributes
}

/// The line of the `own` key of the `n`th group (from 0) of a `templated` file: after a
/// comment and `groups:`, four lines a group.
pub fn templated_own_line(n: usize) -> usize {
    3 + 4 * n + 3
}

/// The file group `index` of a `templated` corpus is declared in, under the repository.
pub fn templated_file(spec: &Spec, index: usize) -> String {
    let file_index = index / spec.groups_per_file.max(1);
    format!("groups/{}/templated-{file_index:04}.yaml", SUBDIRS[file_index % SUBDIRS.len()])
}

/// Writes a `templated` repository for `spec` into `root` (see [`TEMPLATED_OWN_KEY`]).
pub fn generate_templated(root: &Path, spec: &Spec) -> io::Result<Generated> {
    let groups_dir = prepare_root(root)?;
    let mut out = Generated { root: root.to_path_buf(), groups: spec.groups, ..Generated::default() };
    let templates = templates_yaml();
    std::fs::write(groups_dir.join("_templates.yaml"), &templates)?;
    out.files += 1;
    out.yaml_bytes += templates.len() as u64;

    let mut lock = Lockfile::new(SDKAPPID);
    let per_file = spec.groups_per_file.max(1);
    for start in (0..spec.groups).step_by(per_file) {
        let end = (start + per_file).min(spec.groups);
        let mut text = String::with_capacity((end - start) * 80);
        let _ = writeln!(text, "# Groups {} to {} (generated).", group_id(start), group_id(end - 1));
        text.push_str("groups:\n");
        for index in start..end {
            let _ = writeln!(text, "  - id: {}", group_id(index));
            let _ = writeln!(text, "    template: {}", TEMPLATE_NAMES[templated_template(index)]);
            text.push_str("    attributes:\n");
            let _ = writeln!(text, "      {TEMPLATED_OWN_KEY}: \"{index}\"");
            out.count_drift(spec, index);
            let id = GroupId::parse(&group_id(index)).map_err(io::Error::other)?;
            lock.groups.insert(id, AppliedGroup::new(templated_recorded(spec, index)));
        }
        std::fs::write(root.join(templated_file(spec, start)), &text)?;
        out.files += 1;
        out.yaml_bytes += text.len() as u64;
    }
    out.write_lock(&lock)
}

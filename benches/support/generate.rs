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

            if spec.drifted(index) {
                out.drifted += 1;
                match drift_kind(spec, index) {
                    Drift::Changed => out.changed += 1,
                    Drift::KeyAdded => out.key_added += 1,
                    Drift::KeyRemoved => out.key_removed += 1,
                }
            }
            let group_id = GroupId::parse(&id).map_err(io::Error::other)?;
            lock.groups.insert(group_id, AppliedGroup::new(recorded(spec, index, &group.attributes)));
        }
        let mut file = io::BufWriter::new(std::fs::File::create(&path)?);
        file.write_all(text.as_bytes())?;
        file.flush()?;
        out.files += 1;
        out.yaml_bytes += text.len() as u64;
    }

    let lock_path = root.join("grattr.lock");
    lock.write(&lock_path).map_err(io::Error::other)?;
    out.lock_bytes = std::fs::metadata(&lock_path)?.len();
    Ok(out)
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

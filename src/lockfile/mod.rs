//! `grattr.lock`: the record of what grattr last applied, per group. JSON, one
//! block per group, sorted, no timestamps; every entry carries a digest that is
//! checked on read. Written atomically; guarded by an exclusive lock on a sidecar file.

mod guard;
mod journal;
pub mod merge;
mod seed;
mod stream;

pub use guard::{Holder, LockError, LockGuard};
pub use journal::{JournalStats, JournalWriter, Record, encode, journal_path, remove_journal, replay, replay_text};
pub use seed::{Opened, lock, open, seed};

pub use crate::model::AppliedGroup;
#[cfg(test)]
use crate::model::{AttributeSet, Ownership};
use crate::model::{Digest, DigestBuilder, GroupId};
use rayon::prelude::*;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lockfiles from this size on are read a block at a time (see [`stream`]).
const STREAM_FROM: u64 = 1 << 20;

/// The lockfile format this grattr reads and writes.
pub const FORMAT_VERSION: u32 = 2;

/// The format a lockfile is written in: 1 while no group has key ownership (which
/// a grattr from before it reads), 2 once one has (which such a grattr refuses
/// instead of misreading).
fn written_version(groups: &BTreeMap<GroupId, AppliedGroup>) -> u32 {
    match groups.values().any(|g| !g.ownership.is_group()) {
        true => 2,
        false => 1,
    }
}

/// The last-applied state of every group grattr manages in one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockfile {
    /// The app the state belongs to; `None` in a lockfile not yet written.
    pub sdkappid: Option<u64>,
    /// The groups, by id.
    pub groups: BTreeMap<GroupId, AppliedGroup>,
}

/// Why a lockfile cannot be used. Nothing is trusted from a lockfile with any of these.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    /// The file exists but cannot be read or written.
    #[error("{path}: error: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid lockfile JSON.
    #[error("{path}:{line}:{column}: error: not a valid lockfile: {message}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The column, from 1.
        column: usize,
        /// What went wrong.
        message: String,
    },
    /// The file was written by a newer grattr.
    #[error(
        "{path}: error: lockfile format {found} is not one this grattr reads (1 to {FORMAT_VERSION}){}",
        if *.found > FORMAT_VERSION { "; it is newer: upgrade grattr" } else { "" },
        path = .path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// What was found.
        found: u32,
    },
    /// One or more entries fail their integrity check.
    #[error("{path}: error: {} corrupt or hand-edited {}:\n{}\n  help: restore the file from git; grattr never trusts an entry whose digest does not match",
        .problems.len(), if .problems.len() == 1 { "entry" } else { "entries" },
        .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"), path = .path.display())]
    Integrity {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The journal holds lines that are not verified records of this app; none of it is folded.
    #[error("{}\n  help: {}", .problems.iter().map(|p| format!("{}:{}: error: {}", .path.display(), p.line, p.message)).collect::<Vec<_>>().join("\n"),
        if *.older {
            "this journal was left by an older grattr stopped in the middle of a run; re-run the grattr that wrote it to fold it, or delete it and run `grattr plan --refresh` (then `grattr apply --refresh`) to compare with what is live"
        } else {
            "nothing of the journal was folded; it is not this app's record of a run (another --env?): delete it and run `grattr apply --refresh` to record what is live"
        })]
    Journal {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<JournalProblem>,
        /// Whether an older grattr wrote it.
        older: bool,
    },
    /// A merge left git's conflict markers in the lockfile.
    #[error("{path}:{line}: error: the lockfile holds a git conflict marker `{marker}`: a merge of it was not resolved\n  help: nothing is trusted from it; see \"Lockfile merges and conflicts\" in grattr's README (`grattr lockfile merge` is a merge driver that avoids this): take one side (`git checkout --ours {path}` or `--theirs`) and run `grattr plan --refresh`, or merge both sides' groups by hand", path = .path.display())]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The marker.
        marker: String,
    },
    /// The lockfile records another app.
    #[error("{path}: error: the lockfile records sdkappid {recorded}, but the environment is sdkappid {configured}", path = .path.display())]
    WrongApp {
        /// The file.
        path: PathBuf,
        /// The sdkappid recorded.
        recorded: u64,
        /// The sdkappid configured.
        configured: u64,
    },
}

/// A line of the journal that is not a verified record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalProblem {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The top level of a lockfile. A field this grattr does not know is refused:
/// what it meant cannot be kept when the file is written again.
#[derive(Deserialize)]
#[serde(bound = "E: Deserialize<'de>", deny_unknown_fields)]
struct FileDoc<E> {
    format_version: u32,
    #[serde(default)]
    sdkappid: Option<u64>,
    #[serde(default = "Entries::empty")]
    groups: Entries<E>,
}

/// The `groups` object with duplicates kept, so that a bad merge cannot hide one.
struct Entries<E>(Vec<(String, E)>);

impl<E> Entries<E> {
    fn empty() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, E: Deserialize<'de>> Deserialize<'de> for Entries<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<E>(std::marker::PhantomData<E>);
        impl<'de, E: Deserialize<'de>> Visitor<'de> for EntriesVisitor<E> {
            type Value = Entries<E>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of group id → entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<E>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    format_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    sdkappid: Option<u64>,
    groups: &'a BTreeMap<GroupId, AppliedGroup>,
}

impl Lockfile {
    /// An empty lockfile for `sdkappid`.
    pub fn new(sdkappid: u64) -> Self {
        Lockfile { sdkappid: Some(sdkappid), groups: BTreeMap::new() }
    }

    /// Reads and checks `path`, with the journal of a run that was cut short
    /// replayed on top (in memory; [`Lockfile::fold`] writes it). A missing file is
    /// an empty lockfile: nothing applied yet.
    ///
    /// Readers take no lock (`plan` may run beside `watch`), so the writer holding it
    /// may fold the journal into the lockfile between the reading of the one and of
    /// the other: the old lockfile with a later journal would be a state that never
    /// was. A fold replaces the lockfile by rename, so such a read shows as the path
    /// no longer naming the file that was read (held open, so that its identity
    /// cannot be reused), and is done again.
    ///
    /// The journal's records must be records of `sdkappid`, the environment's app,
    /// and verify; else nothing of it is taken (see [`replay`]).
    pub fn read(path: &Path, sdkappid: u64) -> Result<Lockfile, LockfileError> {
        Lockfile::read_around(path, sdkappid, || {})
    }

    /// [`Lockfile::read`], calling `between` after reading the lockfile and before
    /// the journal: where a fold by another process would tear the read.
    fn read_around(path: &Path, sdkappid: u64, mut between: impl FnMut()) -> Result<Lockfile, LockfileError> {
        let io = |source| LockfileError::Io { path: path.to_path_buf(), source };
        let identity = |path: &Path| match same_file::Handle::from_path(path) {
            Ok(handle) => Ok(Some(handle)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io(source)),
        };
        for attempt in 0..10 {
            if attempt > 0 {
                // A fold takes milliseconds, and folds come a second apart at the most.
                std::thread::sleep(Duration::from_millis(10) * attempt);
            }
            let (mut lockfile, read) = match std::fs::File::open(path) {
                Ok(mut file) => {
                    let lockfile = Lockfile::read_open(path, &mut file)?;
                    (lockfile, Some(same_file::Handle::from_file(file).map_err(io)?))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Lockfile::default(), None),
                Err(source) => return Err(io(source)),
            };
            between();
            let records = replay(path, sdkappid)?;
            if identity(path)? == read {
                lockfile.apply_records(records);
                return Ok(lockfile);
            }
        }
        Err(io(std::io::Error::other("the lockfile was rewritten every time it was read; try again")))
    }

    /// Reads and checks the lockfile open as `file`, found at `path`. A large one
    /// written by grattr is read a block at a time, its entries parsed in parallel
    /// (see [`stream`]); any other is read whole by [`Lockfile::parse`].
    fn read_open(path: &Path, file: &mut std::fs::File) -> Result<Lockfile, LockfileError> {
        let io = |source| LockfileError::Io { path: path.to_path_buf(), source };
        if file.metadata().map_err(io)?.len() >= STREAM_FROM {
            if let Some((format_version, sdkappid, entries)) = stream::read(file).map_err(io)? {
                return Lockfile::check(path, format_version, sdkappid, entries.into_iter());
            }
            file.rewind().map_err(io)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        Lockfile::parse(path, &bytes)
    }

    /// Parses and checks the bytes of a lockfile found at `path`. Entries are read
    /// straight into their types; only when one is malformed is the file read again
    /// entry by entry, to name every bad entry.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Lockfile, LockfileError> {
        if let Some((line, marker)) = conflict_marker(bytes) {
            return Err(LockfileError::Conflict { path: path.to_path_buf(), line, marker });
        }
        match serde_json::from_slice::<FileDoc<AppliedGroup>>(bytes) {
            Ok(doc) => Lockfile::check(
                path,
                doc.format_version,
                doc.sdkappid,
                doc.groups.0.into_iter().map(|(id, g)| (id, Ok(g))),
            ),
            Err(_) => {
                // Each entry kept as its text, not as a `Value`: a `Value` keeps the
                // last of two repeats of a field or key, and so would hide them.
                let doc: FileDoc<&serde_json::value::RawValue> =
                    serde_json::from_slice(bytes).map_err(|e| LockfileError::Parse {
                        path: path.to_path_buf(),
                        line: e.line(),
                        column: e.column(),
                        message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
                    })?;
                let entries = doc.groups.0.into_iter().map(|(id, entry)| {
                    let applied = serde_json::from_str::<AppliedGroup>(entry.get()).map_err(|e| {
                        // The entry's text lies within `bytes`: its line there is the
                        // lines before it plus the error's line within it.
                        let offset = (entry.get().as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
                        let before = bytes.get(..offset).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
                        let message = e.to_string();
                        let message = message.split(" at line ").next().unwrap_or_default();
                        format!("{message} (line {})", before + e.line())
                    });
                    (id, applied)
                });
                Lockfile::check(path, doc.format_version, doc.sdkappid, entries)
            }
        }
    }

    /// Checks the version and every entry (ids and digests, in parallel), naming every bad entry.
    fn check(
        path: &Path,
        format_version: u32,
        sdkappid: Option<u64>,
        entries: impl Iterator<Item = (String, Result<AppliedGroup, String>)>,
    ) -> Result<Lockfile, LockfileError> {
        if !(1..=FORMAT_VERSION).contains(&format_version) {
            return Err(LockfileError::UnsupportedVersion { path: path.to_path_buf(), found: format_version });
        }
        let entries: Vec<_> = entries.collect();
        let checked: Vec<Result<(GroupId, AppliedGroup), String>> = entries
            .into_par_iter()
            .map(|(id, applied)| {
                let group_id = GroupId::parse(&id).map_err(|e| format!("group {id:?}: {e}"))?;
                let applied = applied.map_err(|e| format!("group {id:?}: {e}"))?;
                if !applied.verifies() {
                    return Err(format!("group {id:?}: digest does not match the recorded attributes"));
                }
                Ok((group_id, applied))
            })
            .collect();
        let mut problems = Vec::new();
        let mut groups = BTreeMap::new();
        for entry in checked {
            match entry {
                Ok((id, applied)) => {
                    let name = id.to_string();
                    if groups.insert(id, applied).is_some() {
                        problems.push(format!("group {name:?}: recorded twice"));
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(LockfileError::Integrity { path: path.to_path_buf(), problems });
        }
        Ok(Lockfile { sdkappid, groups })
    }

    /// Refuses a lockfile that records another app than `sdkappid`.
    pub fn check_app(&self, path: &Path, sdkappid: u64) -> Result<(), LockfileError> {
        match self.sdkappid {
            Some(recorded) if recorded != sdkappid => {
                Err(LockfileError::WrongApp { path: path.to_path_buf(), recorded, configured: sdkappid })
            }
            _ => Ok(()),
        }
    }

    /// The canonical text of the lockfile: sorted, two-space indented, one block per group.
    pub fn to_json(&self) -> Vec<u8> {
        let out =
            FileOut { format_version: written_version(&self.groups), sdkappid: self.sdkappid, groups: &self.groups };
        let mut bytes = serde_json::to_vec_pretty(&out).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// A digest of the recorded state, for plan fingerprints.
    pub fn digest(&self) -> Digest {
        digest(&self.groups)
    }

    /// Writes the lockfile to `path` atomically: a temporary file in the same
    /// directory, fsync, rename over `path`, fsync the directory. A crash at any
    /// moment leaves either the old or the new file, never a torn one.
    pub fn write(&self, path: &Path) -> Result<(), LockfileError> {
        crate::files::write_atomically(path, &self.to_json())
            .map_err(|source| LockfileError::Io { path: path.to_path_buf(), source })
    }
}

/// The first line (from 1) that starts with one of git's conflict markers, and the marker.
/// JSON never has one at the start of a line: grattr indents every line but the braces.
fn conflict_marker(bytes: &[u8]) -> Option<(usize, String)> {
    const MARKERS: [&[u8]; 4] = [b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>"];
    bytes.split(|b| *b == b'\n').enumerate().find_map(|(index, line)| {
        MARKERS.iter().find(|m| line.starts_with(m)).map(|m| (index + 1, String::from_utf8_lossy(m).into_owned()))
    })
}

/// A digest of a set of applied groups (a lockfile's record, or the live state).
pub fn digest(groups: &BTreeMap<GroupId, AppliedGroup>) -> Digest {
    let mut digest = DigestBuilder::new();
    for (id, group) in groups {
        digest.group(id, &group.attributes);
        if !group.ownership.is_group() {
            digest.field(b"ownership").field(group.ownership.as_str().as_bytes());
        }
    }
    digest.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lockfile {
        let mut lock = Lockfile::new(1400000000);
        let attrs: AttributeSet =
            [("theme".to_string(), "dark".to_string()), ("banner".into(), "Hi \"all\"\n".into())].into();
        lock.groups.insert(GroupId::parse("@TGS#aC5SZEAEF").unwrap(), AppliedGroup::new(attrs));
        lock.groups.insert(GroupId::parse("empty").unwrap(), AppliedGroup::new(AttributeSet::new()));
        lock
    }

    #[test]
    fn the_format_is_stable_and_readable() {
        insta::assert_snapshot!(String::from_utf8(sample().to_json()).unwrap(), @r#"
        {
          "format_version": 1,
          "sdkappid": 1400000000,
          "groups": {
            "@TGS#aC5SZEAEF": {
              "digest": "sha256:e6a190ebde2c80794b13095ca639d5b6491dfd41ad76dcf915a237f2a780ecb2",
              "attributes": {
                "banner": "Hi \"all\"\n",
                "theme": "dark"
              }
            },
            "empty": {
              "digest": "sha256:85b724e3f6e2dd2648a696595eb637b234dcecc5cb770a5afbf0926341ebdfb4",
              "attributes": {}
            }
          }
        }
        "#);
    }

    #[test]
    fn round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grattr.lock");
        assert_eq!(Lockfile::read(&path, 1400000000).unwrap(), Lockfile::default());
        sample().write(&path).unwrap();
        assert_eq!(Lockfile::read(&path, 1400000000).unwrap(), sample());
        // Nothing is left behind but the lockfile itself.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("grattr.lock")]);
    }

    #[test]
    fn a_hand_edited_entry_is_named() {
        let text = String::from_utf8(sample().to_json()).unwrap().replace("\"dark\"", "\"light\"");
        let e = Lockfile::parse(Path::new("grattr.lock"), text.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("group \"@TGS#aC5SZEAEF\": digest does not match the recorded attributes"),
            "{e}"
        );
    }

    #[test]
    fn every_kind_of_damage_is_refused() {
        let cases: [(&str, &str); 9] = [
            (
                "{\"format_version\": 1, \"sdkappid\": 1, \"prune\": true, \"groups\": {}}",
                "grattr.lock:1:44: error: not a valid lockfile: unknown field `prune`, expected one of",
            ),
            (
                "{\n  \"format_version\": 1,\n<<<<<<< HEAD\n  \"groups\": {}\n=======\n>>>>>>> main\n}\n",
                "grattr.lock:3: error: the lockfile holds a git conflict marker `<<<<<<<`",
            ),
            ("{", "grattr.lock:1:1: error: not a valid lockfile: EOF while parsing an object"),
            ("{\"format_version\": 3}", "lockfile format 3 is not one this grattr reads (1 to 2); it is newer"),
            ("{\"format_version\": 0}", "lockfile format 0 is not one this grattr reads (1 to 2)"),
            (
                "{\"format_version\": 1, \"groups\": {\"\": {\"digest\": \"x\", \"attributes\": {}}}}",
                "group \"\": group id is empty",
            ),
            (
                "{\"format_version\": 1, \"groups\": {\"a\": {\"attributes\": {}}}}",
                "group \"a\": missing field `digest`",
            ),
            (
                "{\"format_version\": 1, \"groups\": {\"a\": {\"digest\": \"x\", \"attributes\": {\"k\": 1}}}}",
                "group \"a\": invalid type",
            ),
            (
                "{\"format_version\": 1, \"groups\": {\"a\": {\"digest\": \"x\", \"attributes\": {}, \"extra\": 1}}}",
                "unknown field `extra`",
            ),
        ];
        for (text, expected) in cases {
            let e = Lockfile::parse(Path::new("grattr.lock"), text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        let empty = AppliedGroup::new(AttributeSet::new());
        let entry = serde_json::to_string(&empty).unwrap();
        let twice = format!("{{\"format_version\": 1, \"groups\": {{\"a\": {entry}, \"a\": {entry}}}}}");
        let e = Lockfile::parse(Path::new("grattr.lock"), twice.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("group \"a\": recorded twice"), "{e}");
    }

    #[test]
    fn a_key_or_a_digest_given_twice_in_an_entry_is_refused_where_it_stands() {
        let entry = serde_json::to_string(&AppliedGroup::new([("k", "v")].into_iter().collect())).unwrap();
        let digest = entry.split('"').nth(3).unwrap().to_string();
        // Each edit keeps a digest that matches what the last repeat says.
        let key_twice = entry.replace("{\"k\":\"v\"}", "{\"k\":\"EVIL\",\"k\":\"v\"}");
        let digest_twice =
            entry.replacen("\"digest\"", &format!("\"digest\":\"sha256:{}\",\"digest\"", "0".repeat(64)), 1);
        for (entry, expected) in [
            (key_twice, "group \"a\": attribute key \"k\" given twice (line 4)"),
            (digest_twice, "group \"a\": duplicate field `digest` (line 4)"),
        ] {
            assert!(entry.contains(&digest));
            let text = format!("{{\n  \"format_version\": 1,\n  \"groups\": {{\n    \"a\": {entry}\n  }}\n}}\n");
            let e = Lockfile::parse(Path::new("grattr.lock"), text.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("grattr.lock: error:") && e.contains(expected), "{text}\n{e}");
        }
    }

    #[test]
    fn another_apps_lockfile_is_refused() {
        let e = sample().check_app(Path::new("grattr.lock"), 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "grattr.lock: error: the lockfile records sdkappid 1400000000, but the environment is sdkappid 1"
        );
        assert!(Lockfile::default().check_app(Path::new("x"), 1).is_ok());
    }

    #[test]
    fn key_ownership_is_recorded_in_format_2_and_verified() {
        let mut lock = sample();
        let attrs: AttributeSet = [("theme".to_string(), "dark".to_string())].into();
        lock.groups.insert(GroupId::parse("voice-1").unwrap(), AppliedGroup::owned(attrs, Ownership::Keys));
        let json = String::from_utf8(lock.to_json()).unwrap();
        assert!(json.starts_with("{\n  \"format_version\": 2,"), "{json}");
        assert!(json.contains("\"ownership\": \"keys\""), "{json}");
        let read = Lockfile::parse(Path::new("grattr.lock"), json.as_bytes()).unwrap();
        assert_eq!(read, lock);
        // Without a group of key ownership, the format stays 1, which older grattrs read.
        assert!(String::from_utf8(sample().to_json()).unwrap().contains("\"format_version\": 1,"));
        // Claiming the whole group (or keys) by hand does not verify.
        let forged = json.replacen("\"ownership\": \"keys\"", "\"ownership\": \"group\"", 1);
        let error = Lockfile::parse(Path::new("grattr.lock"), forged.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("group \"voice-1\": digest does not match"), "{error}");
    }
}

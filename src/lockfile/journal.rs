//! The journal: an append-only record of the successes of a run, so that
//! recording one costs the same whatever the size of the lockfile, and a kill at
//! any instant loses nothing that was recorded. It sits beside the lockfile as
//! `.NAME.journal`, is folded into the lockfile at the end of a run, and is
//! folded on the next start when a run was cut short.
//!
//! Each record is one line of JSON written with a single `write`; records are
//! fsynced in batches by one writer thread (group commit). A crash can only tear
//! the last line, which replay ignores. Like a lockfile entry, each line carries the
//! app's sdkappid and a digest of its content; a line that does not verify is an
//! error, and nothing of the journal is folded.

use super::{JournalProblem, Lockfile, LockfileError};
use crate::model::{AppliedGroup, AttributeSet, Digest, DigestBuilder, GroupId, Ownership};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The group now has exactly these attributes (with key ownership: these are
    /// the keys grattr owns, and their values).
    Set {
        /// The group.
        group: GroupId,
        /// Its attributes.
        attributes: AttributeSet,
        /// What of the group grattr owns.
        ownership: Ownership,
    },
    /// The group was cleared and is no longer managed.
    Forget {
        /// The group.
        group: GroupId,
    },
}

/// What a record does, as written in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Set,
    Forget,
}

/// A record as one line of the journal. Every field but `op` and `group` is
/// optional here only so that a line lacking one is named precisely.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdkappid: Option<u64>,
    group: GroupId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attributes: Option<AttributeSet>,
    #[serde(default, skip_serializing_if = "Ownership::is_group")]
    ownership: Ownership,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
}

/// The digest of a record of `sdkappid`: what it does, to which group, with which
/// attributes and (when not the whole group) which ownership.
fn record_digest(
    op: Op,
    sdkappid: u64,
    group: &GroupId,
    attributes: Option<&AttributeSet>,
    ownership: Ownership,
) -> Digest {
    let mut digest = DigestBuilder::new();
    digest.field(b"grattr journal record").field(match op {
        Op::Set => b"set",
        Op::Forget => b"forget",
    });
    digest.field(&sdkappid.to_le_bytes()).field(group.as_str().as_bytes());
    if let Some(attributes) = attributes {
        digest.attributes(attributes);
    }
    if !ownership.is_group() {
        digest.field(b"ownership").field(ownership.as_str().as_bytes());
    }
    digest.finish()
}

impl Record {
    /// The line this record is written as, for the app `sdkappid`.
    fn line(&self, sdkappid: u64) -> Line {
        let (op, group, attributes, ownership) = self.parts();
        let digest = record_digest(op, sdkappid, group, attributes, ownership);
        Line {
            op,
            sdkappid: Some(sdkappid),
            group: group.clone(),
            attributes: attributes.cloned(),
            ownership,
            digest: Some(digest),
        }
    }

    /// What the record does, to which group, with which attributes and ownership.
    fn parts(&self) -> (Op, &GroupId, Option<&AttributeSet>, Ownership) {
        match self {
            Record::Set { group, attributes, ownership } => (Op::Set, group, Some(attributes), *ownership),
            Record::Forget { group } => (Op::Forget, group, None, Ownership::Group),
        }
    }

    /// The record a line holds, if it verifies as one of `sdkappid`'s.
    fn verified(line: Line, sdkappid: u64) -> Result<Record, (String, bool)> {
        let Some(digest) = &line.digest else {
            // Journals before records were signed with a digest had neither field.
            let older = line.sdkappid.is_none();
            return Err(("journal record has no digest".into(), older));
        };
        let Some(recorded) = line.sdkappid else {
            return Err(("journal record names no sdkappid".into(), false));
        };
        if recorded != sdkappid {
            let message =
                format!("journal record of group {:?} is for sdkappid {recorded}, not {sdkappid}", line.group.as_str());
            return Err((message, false));
        }
        let record = match (line.op, line.attributes) {
            (Op::Set, Some(attributes)) => Record::Set { group: line.group, attributes, ownership: line.ownership },
            (Op::Forget, None) if line.ownership.is_group() => Record::Forget { group: line.group },
            (Op::Forget, None) => return Err(("journal record `forget` has an ownership".into(), false)),
            (Op::Set, None) => return Err(("journal record `set` has no attributes".into(), false)),
            (Op::Forget, Some(_)) => return Err(("journal record `forget` has attributes".into(), false)),
        };
        let (op, group, attributes, ownership) = record.parts();
        if record_digest(op, sdkappid, group, attributes, ownership) != *digest {
            return Err((
                format!("journal record of group {:?}: digest does not match the record", group.as_str()),
                false,
            ));
        }
        Ok(record)
    }
}

/// The journal of `lockfile`.
pub fn journal_path(lockfile: &Path) -> PathBuf {
    let name = lockfile.file_name().map_or_else(|| "grattr.lock".into(), |n| n.to_string_lossy().into_owned());
    lockfile.with_file_name(format!(".{name}.journal"))
}

/// The records of the journal of `lockfile`, in order; none when there is no journal.
/// A torn last line (a crash in the middle of a write) is ignored. Any other line
/// that is not a record of `sdkappid` whose digest verifies is an error naming it,
/// every such line in one error, and no record is returned.
pub fn replay(lockfile: &Path, sdkappid: u64) -> Result<Vec<Record>, LockfileError> {
    let path = journal_path(lockfile);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LockfileError::Io { path, source }),
    };
    replay_text(path, &text, sdkappid)
}

/// One record as a line of the journal (without its newline), for the app `sdkappid`:
/// what a shared store keeps of it, to verify as the local journal's lines are.
pub fn encode(record: &Record, sdkappid: u64) -> Vec<u8> {
    serde_json::to_vec(&record.line(sdkappid)).unwrap_or_default()
}

/// The records of a journal's `text`, found at `path` (a file, or the name of a
/// shared store's record, for messages), verified as [`replay`] verifies them.
pub fn replay_text(path: PathBuf, text: &[u8], sdkappid: u64) -> Result<Vec<Record>, LockfileError> {
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut older = false;
    for (index, line) in text[..complete].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let verified = serde_json::from_slice::<Line>(line)
            .map_err(|e| (format!("corrupt journal record: {}", without_position(&e)), false))
            .and_then(|line| Record::verified(line, sdkappid));
        match verified {
            Ok(record) => records.push(record),
            Err((message, old)) => {
                older |= old;
                problems.push(JournalProblem { line: index + 1, message });
            }
        }
    }
    if !problems.is_empty() {
        return Err(LockfileError::Journal { path, problems, older });
    }
    Ok(records)
}

/// A serde_json error's message without the ` at line L column C` it appends (the
/// line is the journal's, given separately).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    text.split(" at line ").next().unwrap_or_default().to_string()
}

impl Lockfile {
    /// Applies journal records, in order.
    pub fn apply_records(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            match record {
                Record::Set { group, attributes, ownership } => {
                    self.groups.insert(group, AppliedGroup::owned(attributes, ownership));
                }
                Record::Forget { group } => {
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// Folds the journal of `path` into the lockfile and removes the journal. Call it
    /// holding the lock. A crash in between leaves a journal whose replay changes
    /// nothing: records are idempotent. Returns the lockfile and how many records it took.
    pub fn fold(path: &Path, sdkappid: u64) -> Result<(Lockfile, usize), LockfileError> {
        let lockfile = match std::fs::File::open(path) {
            Ok(mut file) => Lockfile::read_open(path, &mut file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lockfile::default(),
            Err(source) => return Err(LockfileError::Io { path: path.to_path_buf(), source }),
        };
        lockfile.fold_onto(path, sdkappid)
    }

    /// [`Lockfile::fold`] onto a lockfile already in memory (as read from `path`
    /// before the journal was written), so that folding costs one write, not a read too.
    pub fn fold_onto(mut self, path: &Path, sdkappid: u64) -> Result<(Lockfile, usize), LockfileError> {
        let records = replay(path, sdkappid)?;
        let count = records.len();
        if count > 0 {
            self.apply_records(records);
            self.checkpoint(path, sdkappid)?;
        } else {
            remove_journal(path)?;
        }
        Ok((self, count))
    }

    /// Writes this lockfile, which already holds every record of the journal of
    /// `path`, to `path` and then removes the journal: the journal's records are in
    /// the lockfile from the rename on, and replaying them again changes nothing.
    pub fn checkpoint(&mut self, path: &Path, sdkappid: u64) -> Result<(), LockfileError> {
        self.sdkappid.get_or_insert(sdkappid);
        self.write(path)?;
        remove_journal(path)
    }
}

/// Removes the journal of `lockfile`, if any, once its records are in the lockfile.
pub fn remove_journal(lockfile: &Path) -> Result<(), LockfileError> {
    let journal = journal_path(lockfile);
    match std::fs::remove_file(&journal) {
        Ok(()) => crate::files::sync_parent(lockfile).map_err(|source| LockfileError::Io { path: journal, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LockfileError::Io { path: journal, source }),
    }
}

/// How much recording cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records written.
    pub records: usize,
    /// fsyncs made (one per batch).
    pub syncs: usize,
    /// Time the writer spent writing and syncing.
    pub busy: Duration,
}

/// Appends records from any thread; one writer thread batches them and fsyncs each batch.
pub struct JournalWriter {
    sender: Option<mpsc::Sender<Record>>,
    thread: Option<JoinHandle<std::io::Result<JournalStats>>>,
    path: PathBuf,
}

impl JournalWriter {
    /// Opens (creating) the journal of `lockfile` for appending the records of the app `sdkappid`.
    pub fn open(lockfile: &Path, sdkappid: u64) -> Result<JournalWriter, LockfileError> {
        let path = journal_path(lockfile);
        let io = |source| LockfileError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        crate::files::sync_parent(lockfile).map_err(io)?;
        let (sender, receiver) = mpsc::channel::<Record>();
        let thread = std::thread::Builder::new()
            .name("grattr-journal".into())
            .spawn(move || {
                let mut stats = JournalStats::default();
                let mut batch = Vec::new();
                // Block for the first record of a batch, then take whatever else is waiting.
                while let Ok(first) = receiver.recv() {
                    let started = Instant::now();
                    batch.clear();
                    for record in std::iter::once(first).chain(receiver.try_iter()) {
                        serde_json::to_writer(&mut batch, &record.line(sdkappid))?;
                        batch.push(b'\n');
                        stats.records += 1;
                    }
                    file.write_all(&batch)?;
                    file.sync_data()?;
                    stats.syncs += 1;
                    stats.busy += started.elapsed();
                }
                Ok(stats)
            })
            .map_err(io)?;
        Ok(JournalWriter { sender: Some(sender), thread: Some(thread), path })
    }

    /// Queues a record; it is durable once the writer's next fsync returns.
    pub fn record(&self, record: Record) {
        if let Some(sender) = &self.sender {
            // The writer only stops on an I/O error, which finish() reports.
            let _ = sender.send(record);
        }
    }

    /// Writes and syncs every queued record and stops the writer.
    pub fn finish(mut self) -> Result<JournalStats, LockfileError> {
        self.sender.take();
        let path = self.path.clone();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map_err(|source| LockfileError::Io { path, source }),
            Some(Err(_)) => {
                Err(LockfileError::Io { path, source: std::io::Error::other("the journal writer panicked") })
            }
            None => Ok(JournalStats::default()),
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(group: &str, value: &str) -> Record {
        Record::Set {
            group: GroupId::parse(group).unwrap(),
            attributes: [("k".to_string(), value.to_string())].into(),
            ownership: Ownership::Group,
        }
    }

    #[test]
    #[cfg_attr(
        windows,
        ignore = "wine refuses renaming over a file a reader holds open (os error 5); unverified on Windows itself"
    )]
    fn a_read_torn_by_a_fold_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let append = |record: Record| {
            let mut file = OpenOptions::new().create(true).append(true).open(journal_path(&lockfile)).unwrap();
            file.write_all(format!("{}\n", serde_json::to_string(&record.line(7)).unwrap()).as_bytes()).unwrap();
        };
        // The writer has folded a; b is in its journal.
        let mut writer = Lockfile::new(7);
        writer.apply_records([set("a", "1")]);
        writer.checkpoint(&lockfile, 7).unwrap();
        append(set("b", "1"));
        let mut reads = 0;
        let seen = Lockfile::read_around(&lockfile, 7, || {
            if reads == 0 {
                // After the reader has read the lockfile ({a}), the writer folds b and
                // starts a journal with c: the old lockfile and this journal lack b.
                writer.apply_records([set("b", "1")]);
                writer.checkpoint(&lockfile, 7).unwrap();
                append(set("c", "1"));
            }
            reads += 1;
        })
        .unwrap();
        let ids: Vec<&str> = seen.groups.keys().map(GroupId::as_str).collect();
        assert_eq!(ids, ["a", "b", "c"], "a state that was");
        assert_eq!(reads, 2, "read again");
    }

    #[test]
    fn records_survive_and_fold_into_the_lockfile() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let mut start = Lockfile::new(7);
        start.apply_records([set("a", "old"), set("gone", "x")]);
        start.write(&lockfile).unwrap();

        let writer = JournalWriter::open(&lockfile, 7).unwrap();
        for record in [set("a", "new"), set("b", "1"), Record::Forget { group: GroupId::parse("gone").unwrap() }] {
            writer.record(record);
        }
        let stats = writer.finish().unwrap();
        assert_eq!(stats.records, 3);
        assert!(stats.syncs >= 1);

        // Before folding, a reader sees the lockfile and the journal together.
        let seen = Lockfile::read(&lockfile, 7).unwrap();
        assert_eq!(seen.groups.len(), 2);
        let (folded, records) = Lockfile::fold(&lockfile, 7).unwrap();
        assert_eq!(records, 3);
        assert_eq!(folded, seen);
        assert!(!journal_path(&lockfile).exists());
        assert_eq!(Lockfile::read(&lockfile, 7).unwrap(), folded);
        assert_eq!(&folded.groups[&GroupId::parse("a").unwrap()].attributes["k"], "new");
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_other_damage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let good = serde_json::to_string(&set("a", "1").line(7)).unwrap();
        std::fs::write(journal_path(&lockfile), format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
        assert_eq!(replay(&lockfile, 7).unwrap(), vec![set("a", "1")]);
        std::fs::write(journal_path(&lockfile), format!("{}\n{good}\n", &good[..good.len() / 2])).unwrap();
        let e = replay(&lockfile, 7).unwrap_err().to_string();
        assert!(e.contains(".grattr.lock.journal:1: error: corrupt journal record"), "{e}");
    }

    /// A journal holding `lines`, replayed for app 7; the error with paths relative to its directory.
    fn replay_lines(lines: &[String]) -> Result<Vec<Record>, String> {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        std::fs::write(journal_path(&lockfile), lines.iter().fold(String::new(), |text, l| text + l + "\n")).unwrap();
        let prefix = format!("{}{}", dir.path().display(), std::path::MAIN_SEPARATOR);
        replay(&lockfile, 7).map_err(|e| e.to_string().replace(&prefix, ""))
    }

    #[test]
    fn records_that_do_not_verify_are_refused_each_once() {
        let good = serde_json::to_string(&set("a", "1").line(7)).unwrap();
        let forged = good.replace("\"k\":\"1\"", "\"k\":\"2\"");
        let other_app = serde_json::to_string(&set("b", "1").line(8)).unwrap();
        let no_app = good.replace("\"sdkappid\":7,", "");
        let forget_with_attributes =
            serde_json::to_string(&Record::Forget { group: GroupId::parse("c").unwrap() }.line(7))
                .unwrap()
                .replace("\"group\"", "\"attributes\":{},\"group\"");
        let lines = [good.clone(), forged, other_app, no_app, forget_with_attributes, good];
        let e = replay_lines(&lines).unwrap_err();
        let errors: Vec<&str> = e.lines().filter(|l| l.contains(": error: ")).collect();
        assert_eq!(
            errors,
            [
                ".grattr.lock.journal:2: error: journal record of group \"a\": digest does not match the record",
                ".grattr.lock.journal:3: error: journal record of group \"b\" is for sdkappid 8, not 7",
                ".grattr.lock.journal:4: error: journal record names no sdkappid",
                ".grattr.lock.journal:5: error: journal record `forget` has attributes",
            ],
            "{e}"
        );
        assert!(e.contains("nothing of the journal was folded"), "{e}");
    }

    #[test]
    fn a_journal_of_an_older_grattr_is_refused_with_what_to_do() {
        let e = replay_lines(&[r#"{"op":"set","group":"a","attributes":{"k":"1"}}"#.into()]).unwrap_err();
        assert!(e.starts_with(".grattr.lock.journal:1: error: journal record has no digest"), "{e}");
        assert!(e.contains("re-run the grattr that wrote it") && e.contains("grattr plan --refresh"), "{e}");
    }

    #[test]
    fn a_refused_journal_is_never_folded() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let mut start = Lockfile::new(7);
        start.apply_records([set("a", "old")]);
        start.write(&lockfile).unwrap();
        let before = std::fs::read(&lockfile).unwrap();
        let forged = serde_json::to_string(&set("a", "new").line(7)).unwrap().replace("\"new\"", "\"evil\"");
        std::fs::write(journal_path(&lockfile), format!("{forged}\n")).unwrap();
        assert!(Lockfile::fold(&lockfile, 7).is_err());
        assert!(Lockfile::read(&lockfile, 7).is_err());
        assert_eq!(std::fs::read(&lockfile).unwrap(), before);
        assert!(journal_path(&lockfile).exists(), "kept for the user to look at");
    }
}

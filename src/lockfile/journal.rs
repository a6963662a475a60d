//! The journal: an append-only record of the successes of a run, so that
//! recording one costs the same whatever the size of the lockfile, and a kill at
//! any instant loses nothing that was recorded. It sits beside the lockfile as
//! `.NAME.journal`, is folded into the lockfile at the end of a run, and is
//! folded on the next start when a run was cut short.
//!
//! Each record is one line of JSON written with a single `write`; records are
//! fsynced in batches by one writer thread (group commit). A crash can only tear
//! the last line, which replay ignores.

use super::{Lockfile, LockfileError};
use crate::model::{AppliedGroup, AttributeSet, GroupId};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Record {
    /// The group now has exactly these attributes.
    Set {
        /// The group.
        group: GroupId,
        /// Its attributes.
        attributes: AttributeSet,
    },
    /// The group was cleared and is no longer managed.
    Forget {
        /// The group.
        group: GroupId,
    },
}

/// The journal of `lockfile`.
pub fn journal_path(lockfile: &Path) -> PathBuf {
    let name = lockfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "grattr.lock".into());
    lockfile.with_file_name(format!(".{name}.journal"))
}

/// The records of the journal of `lockfile`, in order; none when there is no journal.
/// A torn last line (a crash in the middle of a write) is ignored; any other bad line is an error.
pub fn replay(lockfile: &Path) -> Result<Vec<Record>, LockfileError> {
    let path = journal_path(lockfile);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LockfileError::Io { path, source }),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
    let mut records = Vec::new();
    for (index, line) in text[..complete].split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_slice(line).map_err(|e| LockfileError::Parse {
            path: path.clone(),
            line: index + 1,
            column: e.column(),
            message: format!("corrupt journal record: {e}"),
        })?;
        records.push(record);
    }
    Ok(records)
}

impl Lockfile {
    /// Applies journal records, in order.
    pub fn apply_records(&mut self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            match record {
                Record::Set { group, attributes } => {
                    self.groups.insert(group, AppliedGroup::new(attributes));
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
        let lockfile = match std::fs::read(path) {
            Ok(bytes) => Lockfile::parse(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lockfile::default(),
            Err(source) => return Err(LockfileError::Io { path: path.to_path_buf(), source }),
        };
        lockfile.fold_onto(path, sdkappid)
    }

    /// [`Lockfile::fold`] onto a lockfile already in memory (as read from `path`
    /// before the journal was written), so that folding costs one write, not a read too.
    pub fn fold_onto(mut self, path: &Path, sdkappid: u64) -> Result<(Lockfile, usize), LockfileError> {
        let records = replay(path)?;
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
        Ok(()) => sync_dir(lockfile).map_err(|source| LockfileError::Io { path: journal, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LockfileError::Io { path: journal, source }),
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
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
    /// Opens (creating) the journal of `lockfile` for appending.
    pub fn open(lockfile: &Path) -> Result<JournalWriter, LockfileError> {
        let path = journal_path(lockfile);
        let io = |source| LockfileError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        sync_dir(lockfile).map_err(io)?;
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
                        serde_json::to_writer(&mut batch, &record)?;
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
        Record::Set { group: GroupId::parse(group).unwrap(), attributes: [("k".to_string(), value.to_string())].into() }
    }

    #[test]
    fn a_read_torn_by_a_fold_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let append = |record: Record| {
            let mut file = OpenOptions::new().create(true).append(true).open(journal_path(&lockfile)).unwrap();
            file.write_all(format!("{}\n", serde_json::to_string(&record).unwrap()).as_bytes()).unwrap();
        };
        // The writer has folded a; b is in its journal.
        let mut writer = Lockfile::new(7);
        writer.apply_records([set("a", "1")]);
        writer.checkpoint(&lockfile, 7).unwrap();
        append(set("b", "1"));
        let mut reads = 0;
        let seen = Lockfile::read_around(&lockfile, || {
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

        let writer = JournalWriter::open(&lockfile).unwrap();
        for record in [set("a", "new"), set("b", "1"), Record::Forget { group: GroupId::parse("gone").unwrap() }] {
            writer.record(record);
        }
        let stats = writer.finish().unwrap();
        assert_eq!(stats.records, 3);
        assert!(stats.syncs >= 1);

        // Before folding, a reader sees the lockfile and the journal together.
        let seen = Lockfile::read(&lockfile).unwrap();
        assert_eq!(seen.groups.len(), 2);
        let (folded, records) = Lockfile::fold(&lockfile, 7).unwrap();
        assert_eq!(records, 3);
        assert_eq!(folded, seen);
        assert!(!journal_path(&lockfile).exists());
        assert_eq!(Lockfile::read(&lockfile).unwrap(), folded);
        assert_eq!(folded.groups[&GroupId::parse("a").unwrap()].attributes["k"], "new");
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_other_damage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let good = serde_json::to_string(&set("a", "1")).unwrap();
        std::fs::write(journal_path(&lockfile), format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
        assert_eq!(replay(&lockfile).unwrap(), vec![set("a", "1")]);
        std::fs::write(journal_path(&lockfile), format!("{}\n{good}\n", &good[..good.len() / 2])).unwrap();
        let e = replay(&lockfile).unwrap_err().to_string();
        assert!(e.contains(".grattr.lock.journal:1:") && e.contains("corrupt journal record"), "{e}");
    }
}

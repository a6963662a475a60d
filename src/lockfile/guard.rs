//! The exclusive lock that keeps two grattr processes from writing one lockfile.
//! It is an OS file lock on a sidecar file (never on the lockfile itself, which is
//! replaced by rename), so the kernel releases it when the holder dies.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Who holds a lock, as written into the sidecar file by the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// The holder's host name.
    pub host: String,
    /// When the holder took the lock, RFC 3339 UTC.
    pub since: String,
    /// What the holder is doing (`apply`, `watch`).
    pub command: String,
}

impl Holder {
    /// This process, taking a lock (or a lease) now for `command`.
    pub fn me(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            command: command.to_string(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A shared store's holder record is data another machine wrote: one line, escaped.
        let text = crate::escape::text;
        write!(
            f,
            "grattr {} (pid {} on {}, since {})",
            text(&self.command),
            self.pid,
            text(&self.host),
            text(&self.since)
        )
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{path} is locked by {}: one grattr writes a lockfile at a time (wait for it with --lock-timeout DURATION)",
        .holder.as_ref().map_or("another process".to_string(), std::string::ToString::to_string), path = .lockfile.display()
    )]
    Held {
        /// The lockfile.
        lockfile: PathBuf,
        /// Who holds it, when known.
        holder: Option<Holder>,
    },
    /// The sidecar file cannot be opened or locked.
    #[error("cannot lock {path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An exclusive lock on a lockfile, held until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// The sidecar file that carries the lock of `lockfile`: `.NAME.lck` beside it.
    pub fn sidecar(lockfile: &Path) -> PathBuf {
        let name = lockfile.file_name().map_or_else(|| "grattr.lock".into(), |n| n.to_string_lossy().into_owned());
        lockfile.with_file_name(format!(".{name}.lck"))
    }

    /// Takes the lock of `lockfile` for `command`, waiting up to `wait` for the
    /// current holder to finish. A holder that died released its lock with its death.
    pub fn acquire(lockfile: &Path, command: &str, wait: Duration) -> Result<LockGuard, LockError> {
        let path = Self::sidecar(lockfile);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held { lockfile: lockfile.to_path_buf(), holder: read_holder(&mut file) });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let record = serde_json::to_vec(&Holder::me(command)).unwrap_or_default();
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(&record)).map_err(io)?;
        Ok(LockGuard { file, path })
    }

    /// Who holds the lock of `lockfile` now, if anyone (as far as it can be told).
    pub fn holder(lockfile: &Path) -> Option<Holder> {
        let mut file = OpenOptions::new().read(true).write(true).open(Self::sidecar(lockfile)).ok()?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(TryLockError::WouldBlock) => read_holder(&mut file),
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// The sidecar file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The holder's record. A holder writes it just after taking the lock, so an empty
/// record is given a moment to appear.
fn read_holder(file: &mut File) -> Option<Holder> {
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(holder) = serde_json::from_str(&text)
        {
            return Some(holder);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Leave the sidecar in place: removing it would race with a waiter that has
        // it open. Clearing the record says nobody holds it.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let first = LockGuard::acquire(&lockfile, "apply", Duration::ZERO).unwrap();
        assert_eq!(first.path(), dir.path().join(".grattr.lock.lck"));
        match LockGuard::acquire(&lockfile, "apply", Duration::from_millis(120)) {
            Err(LockError::Held { holder: Some(holder), .. }) => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.command, "apply");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        LockGuard::acquire(&lockfile, "apply", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let lockfile = dir.path().join("grattr.lock");
        let first = LockGuard::acquire(&lockfile, "apply", Duration::ZERO).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        LockGuard::acquire(&lockfile, "apply", Duration::from_secs(5)).unwrap();
        release.join().unwrap();
    }
}

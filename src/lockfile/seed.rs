//! Seeding a state directory: a server that keeps its record outside the git
//! checkout starts, once, from the lockfile the repository carries (what CI or an
//! operator applied before), so that it applies nothing twice. The checkout is only
//! ever read.

use super::{LockError, LockGuard, Lockfile, LockfileError, journal_path};
use std::path::Path;
use std::time::Duration;

/// Takes the lock of the lockfile `state` for `command` (`apply`, `import`,
/// `watch`), waiting up to `timeout` for another holder. With a `seed` (`state` is
/// in a state directory), the directory is created first if it is missing,
/// readable by its owner only on Unix (mode 0700; on Windows it keeps the ACL it
/// inherits): the record says which groups exist and what they hold.
pub fn lock(state: &Path, seed: Option<&Path>, command: &str, timeout: Duration) -> Result<LockGuard, LockError> {
    if seed.is_some()
        && let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        // On Windows a new directory inherits its parent's ACL (under a user's
        // profile: that user, SYSTEM and administrators); grattr sets no ACL of its own.
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| LockError::Io { path: dir.to_path_buf(), source })?;
    }
    LockGuard::acquire(state, command, timeout)
}

/// What [`open`] did besides reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opened {
    /// Groups seeded from the repository's lockfile into a state never written.
    pub seeded: Option<usize>,
    /// Records of an interrupted run folded into the lockfile.
    pub recovered: usize,
}

/// The record at `state`, to write: seeded from `seed` while never written, and
/// with the journal an interrupted run left folded in. Call it holding [`lock`].
pub fn open(state: &Path, seed: Option<&Path>, sdkappid: u64) -> Result<(Lockfile, Opened), LockfileError> {
    let seeded = match seed {
        Some(from) => self::seed(state, from, sdkappid)?,
        None => None,
    };
    let (lockfile, recovered) = Lockfile::fold(state, sdkappid)?;
    Ok((lockfile, Opened { seeded, recovered }))
}

/// Whether the record at `state` was never written: neither it nor its journal exists.
fn unwritten(state: &Path) -> Result<bool, LockfileError> {
    for path in [state.to_path_buf(), journal_path(state)] {
        match std::fs::symlink_metadata(&path) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(LockfileError::Io { path, source }),
        }
    }
    Ok(true)
}

/// Writes `seed` (the repository's lockfile), read and verified like any lockfile
/// (digests, sdkappid, conflict markers), to `state` when `state` was never
/// written. Call it holding the lock of `state`. Returns how many groups were
/// seeded, or `None` when `state` exists already or there is no `seed`: a state
/// written once is the truth from then on, whatever the repository's copy says.
pub fn seed(state: &Path, seed: &Path, sdkappid: u64) -> Result<Option<usize>, LockfileError> {
    if !unwritten(state)? || unwritten(seed)? {
        return Ok(None);
    }
    let mut lockfile = Lockfile::read(seed, sdkappid)?;
    lockfile.check_app(seed, sdkappid)?;
    lockfile.sdkappid.get_or_insert(sdkappid);
    lockfile.write(state)?;
    Ok(Some(lockfile.groups.len()))
}

impl Lockfile {
    /// [`Lockfile::read`] of the record at `state`, or, while it was never written,
    /// of `seed`: what a writer holding the lock would start from. Readers take no
    /// lock, so `plan` beside a `watch` that has not started yet sees the same record
    /// the watcher will.
    pub fn read_seeded(state: &Path, seed: Option<&Path>, sdkappid: u64) -> Result<Lockfile, LockfileError> {
        match seed {
            Some(seed) if unwritten(state)? => {
                let lockfile = Lockfile::read(seed, sdkappid)?;
                lockfile.check_app(seed, sdkappid)?;
                Ok(lockfile)
            }
            _ => Lockfile::read(state, sdkappid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppliedGroup, AttributeSet, GroupId};

    fn recorded(value: &str) -> Lockfile {
        let mut lockfile = Lockfile::new(1400000000);
        let attributes: AttributeSet = [("v".to_string(), value.to_string())].into();
        lockfile.groups.insert(GroupId::parse("room").unwrap(), AppliedGroup::new(attributes));
        lockfile
    }

    #[test]
    fn an_empty_state_is_seeded_once_and_then_kept() {
        let repo = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let (seed_path, state) = (repo.path().join("grattr.lock"), state_dir.path().join("grattr.lock"));
        assert_eq!(seed(&state, &seed_path, 1400000000).unwrap(), None, "nothing to seed from");
        recorded("ci").write(&seed_path).unwrap();
        assert_eq!(Lockfile::read_seeded(&state, Some(&seed_path), 1400000000).unwrap(), recorded("ci"));
        assert!(!state.exists(), "a reader writes nothing");
        assert_eq!(seed(&state, &seed_path, 1400000000).unwrap(), Some(1));
        assert_eq!(Lockfile::read(&state, 1400000000).unwrap(), recorded("ci"));
        // The repository's copy moves on (a pull); the state does not follow it.
        recorded("later").write(&seed_path).unwrap();
        assert_eq!(seed(&state, &seed_path, 1400000000).unwrap(), None);
        assert_eq!(Lockfile::read_seeded(&state, Some(&seed_path), 1400000000).unwrap(), recorded("ci"));
    }

    #[test]
    fn a_seed_that_does_not_verify_is_refused() {
        let repo = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let (seed_path, state) = (repo.path().join("grattr.lock"), state_dir.path().join("grattr.lock"));
        let text = String::from_utf8(recorded("ci").to_json()).unwrap().replace("\"v\": \"ci\"", "\"v\": \"edited\"");
        std::fs::write(&seed_path, text).unwrap();
        let error = seed(&state, &seed_path, 1400000000).unwrap_err().to_string();
        assert!(error.contains("digest does not match"), "{error}");
        assert!(!state.exists());
        recorded("ci").write(&seed_path).unwrap();
        let error = seed(&state, &seed_path, 1400000001).unwrap_err().to_string();
        assert!(error.contains("records sdkappid 1400000000"), "{error}");
        assert!(!state.exists());
    }
}

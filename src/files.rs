//! Writing files so that a crash at any moment leaves the old content or the new,
//! never a mix: for the lockfile, saved plans, imported YAML and the emulator's state.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` so that readers see the old or the new content, never
/// a mix: written to a temporary file beside it, synced, renamed over it, and the
/// directory synced (see [`sync_parent`]) so that the rename survives a power loss.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let mut temp = tempfile::Builder::new().prefix(".grattr-").suffix(".tmp").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes a rename or a removal of `path` durable: syncs the directory that holds it.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    sync_dir(parent(path))
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// On Unix a rename or a removal is durable only once its directory is fsynced.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Windows opens no directory as a file (`File::open` answers "Access denied"), and
/// has no directory fsync: NTFS logs a rename or a removal in its own metadata
/// journal, in order, and replays it after a crash. What grattr promises there: the
/// content is flushed before the rename, so a file holds the old content or the new,
/// never a mix; a crash within a moment of the rename may bring back the old one.
#[cfg(not(unix))]
#[allow(clippy::unnecessary_wraps, reason = "the same signature as on Unix, where it can fail")]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out.json"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomically(&dir.path().join("no/such/out.json"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

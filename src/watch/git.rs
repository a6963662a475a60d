//! HEAD mode (`watch --source head`): the desired state is the commit the checkout's
//! `HEAD` names, never the files of its worktree. Each commit is written, by `git`
//! itself, into a private snapshot directory under the state directory, and a symlink
//! (`current`) is swapped to it once it is complete; the watcher reads the desired state
//! through that symlink, and follows the swap as it follows any checkout published by
//! a symlink swap (git-sync). So the one load → diff → guard → apply path serves both
//! modes, and an edit in the worktree, committed or not, half-written or not, is never
//! read: only a commit someone finished is.
//!
//! The `git` binary does the work (no git library: the static binary has no room for
//! one). The user's index and worktree are never touched: the commit's tree is read into
//! a private index file (`GIT_INDEX_FILE`) and checked out from there with a prefix.
//!
//! Layout of the snapshot root (`<state dir>/head`, `head-<env>` with `--env`):
//! `lock` (held for the life of the process), `current` (the symlink),
//! `commits/<commit>-<n>/` (the snapshots: the current one and the one before it, which
//! a cycle may still be reading; older ones are removed), `index` (the private index,
//! removed after use). Anything else there (a crash's leftovers) is removed at start.

use notify_debouncer_full::notify::RecursiveMode;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Why HEAD mode cannot start, or cannot take a commit.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The `git` binary cannot be run.
    #[error(
        "HEAD mode runs git, which cannot be run: {0} (install git, or put it on the PATH; or watch the files with --source files)"
    )]
    NoGit(std::io::Error),
    /// The configuration is not in a git worktree.
    #[error("{dir}: not in a git worktree, so there is no HEAD commit to read (git: {message})")]
    NotARepository {
        /// The configuration's directory.
        dir: String,
        /// What git said.
        message: String,
    },
    /// `HEAD` names no commit (a repository with no commit yet).
    #[error("{dir}: HEAD names no commit yet: commit the configuration and the groups first")]
    NoCommit {
        /// The worktree.
        dir: String,
    },
    /// The configuration file is not in the commit.
    #[error("{path} is not in commit {commit} (HEAD): HEAD mode reads only what is committed; commit it")]
    ConfigNotCommitted {
        /// The configuration file, as in the repository.
        path: String,
        /// The commit.
        commit: String,
    },
    /// A git command failed.
    #[error("git {command} failed: {message}")]
    Git {
        /// The command.
        command: String,
        /// What git said.
        message: String,
    },
    /// Another `grattr watch --source head` uses the snapshot directory.
    #[error("{0} is in use by another grattr watch --source head (of the same environment)")]
    Held(String),
    /// The snapshot directory cannot be written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HeadError + '_ {
    move |error| HeadError::Io { path: crate::escape::path(path), error }
}

/// The repository of the configuration, and the snapshots of its HEAD commit.
pub struct HeadSnapshots {
    /// The worktree's top directory (where git runs).
    toplevel: PathBuf,
    /// What to watch for a change of HEAD: the git directory (HEAD) and the common
    /// directory (packed-refs) without what is below them, and `refs/` with all below it.
    ref_watches: Vec<(PathBuf, RecursiveMode)>,
    /// The configuration file, relative to the worktree's top.
    config_in_repo: PathBuf,
    /// The snapshot root.
    root: PathBuf,
    /// The commit `current` leads to, and its snapshot's directory name.
    current: Option<(String, String)>,
    /// The snapshot before it, kept while a cycle may still read it.
    previous: Option<String>,
    /// The root's lock, held while this lives.
    _lock: std::fs::File,
}

/// Runs git in `dir` with `args` (and `env`), and returns its stdout, trimmed.
fn git(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Result<String, HeadError> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    // Never prompt, never page: this runs unattended. The repository is the one found
    // from the configuration, not one an inherited variable (a hook's) names.
    command.env("GIT_TERMINAL_PROMPT", "0").env("GIT_PAGER", "cat");
    for inherited in ["GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_PREFIX"] {
        command.env_remove(inherited);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().map_err(HeadError::NoGit)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim_end_matches(['\n', '\r']).to_string())
    } else {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(HeadError::Git { command: args.first().copied().unwrap_or_default().to_string(), message })
    }
}

impl HeadSnapshots {
    /// Resolves the repository of `config`, takes the snapshot root of `state_dir`
    /// (for `env`), removes what a previous process left there, and writes the snapshot
    /// of the commit HEAD names.
    pub fn open(config: &Path, state_dir: &Path, env: Option<&str>) -> Result<HeadSnapshots, HeadError> {
        let absolute = std::path::absolute(config).map_err(io_error(config))?;
        let dir = match absolute.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let shown = crate::escape::path(&dir);
        let toplevel = match git(&dir, &["rev-parse", "--show-toplevel"], &[]) {
            Ok(top) => PathBuf::from(top),
            Err(HeadError::Git { message, .. }) => return Err(HeadError::NotARepository { dir: shown, message }),
            Err(e) => return Err(e),
        };
        let real_top = std::fs::canonicalize(&toplevel).map_err(io_error(&toplevel))?;
        let real_dir = std::fs::canonicalize(&dir).map_err(io_error(&dir))?;
        let name = absolute.file_name().map_or_else(|| PathBuf::from("grattr.yaml"), PathBuf::from);
        let config_in_repo = real_dir.strip_prefix(&real_top).map_or_else(|_| name.clone(), |rel| rel.join(&name));
        let git_dir = PathBuf::from(git(&real_top, &["rev-parse", "--absolute-git-dir"], &[])?);
        let common = PathBuf::from(git(&real_top, &["rev-parse", "--git-common-dir"], &[])?);
        let common = if common.is_absolute() { common } else { real_top.join(common) };
        let mut ref_watches = vec![(git_dir.clone(), RecursiveMode::NonRecursive)];
        if std::fs::canonicalize(&common).ok() != std::fs::canonicalize(&git_dir).ok() {
            ref_watches.push((common.clone(), RecursiveMode::NonRecursive));
        }
        // Loose refs, and the reftable backend's tables.
        for refs in [common.join("refs"), common.join("reftable")] {
            if refs.is_dir() {
                ref_watches.push((refs, RecursiveMode::Recursive));
            }
        }

        // One snapshot root per environment: two environments' watchers may share a state directory.
        let root = match env {
            Some(env) => {
                let safe: String =
                    env.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
                state_dir.join(format!("head-{safe}"))
            }
            None => state_dir.join("head"),
        };
        create_private_dir(&root)?;
        let lock_path = root.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(HeadError::Held(crate::escape::path(&root)));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error(&lock_path)(error)),
        }
        let mut snapshots = HeadSnapshots {
            toplevel: real_top,
            ref_watches,
            config_in_repo,
            root,
            current: None,
            previous: None,
            _lock: lock,
        };
        snapshots.refresh()?;
        snapshots.remove_others()?;
        Ok(snapshots)
    }

    /// The configuration file as the watcher reads it: through `current`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("current").join(&self.config_in_repo)
    }

    /// The commit the snapshot is of.
    pub fn commit(&self) -> Option<&str> {
        self.current.as_ref().map(|(commit, _)| commit.as_str())
    }

    /// Takes the commit HEAD names now, if it is not the one taken: writes its
    /// snapshot, swaps `current` to it, and removes the snapshots older than the one
    /// before. Returns the new commit, if there is one.
    pub fn refresh(&mut self) -> Result<Option<String>, HeadError> {
        let commit = match git(&self.toplevel, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], &[]) {
            Ok(commit) if !commit.is_empty() => commit,
            Ok(_) | Err(HeadError::Git { .. }) => {
                return Err(HeadError::NoCommit { dir: crate::escape::path(&self.toplevel) });
            }
            Err(e) => return Err(e),
        };
        if self.commit() == Some(commit.as_str()) {
            return Ok(None);
        }
        let commits = self.root.join("commits");
        create_private_dir(&commits)?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("{commit}-{nanos}");
        let dir = commits.join(&name);
        let written = self.write_snapshot(&commit, &dir);
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        if !dir.join(&self.config_in_repo).is_file() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(HeadError::ConfigNotCommitted { path: crate::escape::path(&self.config_in_repo), commit });
        }
        self.publish(&name)?;
        if let Some(old) = self.previous.take() {
            remove_dir(&commits.join(old));
        }
        self.previous = self.current.replace((commit.clone(), name)).map(|(_, name)| name);
        Ok(Some(commit))
    }

    /// Swaps `current` to the snapshot `name`: a new symlink renamed over the old one,
    /// so a reader finds the old snapshot or the new one, whole.
    fn publish(&self, name: &str) -> Result<(), HeadError> {
        let link = self.root.join("current");
        let temporary = self.root.join("current.tmp");
        let _ = std::fs::remove_file(&temporary);
        symlink(&Path::new("commits").join(name), &temporary).map_err(io_error(&temporary))?;
        std::fs::rename(&temporary, &link).map_err(io_error(&link))
    }

    /// Swaps `current` again to the snapshot it leads to: a watcher that was not yet
    /// watching when it last moved (a commit during its start) sees the event and
    /// follows; one that follows already finds nothing moved.
    pub fn republish(&self) -> Result<(), HeadError> {
        match &self.current {
            Some((_, name)) => self.publish(name),
            None => Ok(()),
        }
    }

    /// Writes the tree of `commit` into `dir`: read into a private index, checked out
    /// from it with `dir` as the prefix. The user's index and worktree stay as they are,
    /// and the worktree is not read: attributes (line endings, filters) come from the
    /// commit (`GIT_ATTR_SOURCE`, git 2.40 and later), not from an uncommitted `.gitattributes`.
    fn write_snapshot(&self, commit: &str, dir: &Path) -> Result<(), HeadError> {
        let index = self.root.join("index");
        let _ = std::fs::remove_file(&index);
        let env = [("GIT_INDEX_FILE", index.as_os_str()), ("GIT_ATTR_SOURCE", OsStr::new(commit))];
        git(&self.toplevel, &["read-tree", commit], &env)?;
        let mut prefix = dir.as_os_str().to_owned();
        prefix.push("/");
        let prefix = prefix.into_string().map_err(|_| HeadError::Io {
            path: crate::escape::path(dir),
            error: std::io::Error::other("the state directory's path is not UTF-8"),
        })?;
        let checked_out =
            git(&self.toplevel, &["checkout-index", "--all", "--force", &format!("--prefix={prefix}")], &env);
        let _ = std::fs::remove_file(&index);
        checked_out.map(|_| ())
    }

    /// Removes everything in the root but the lock and the current snapshot: what a
    /// process that crashed left (a half-written snapshot, a temporary link, an index).
    fn remove_others(&mut self) -> Result<(), HeadError> {
        let keep = self.current.as_ref().map(|(_, name)| name.clone());
        let commits = self.root.join("commits");
        for entry in std::fs::read_dir(&commits).map_err(io_error(&commits))?.flatten() {
            if Some(entry.file_name().to_string_lossy().as_ref()) != keep.as_deref() {
                remove_dir(&entry.path());
            }
        }
        for name in ["current.tmp", "index"] {
            let _ = std::fs::remove_file(self.root.join(name));
        }
        self.previous = None;
        Ok(())
    }

    /// What to watch for a change of HEAD.
    pub fn ref_watches(&self) -> &[(PathBuf, RecursiveMode)] {
        &self.ref_watches
    }
}

fn remove_dir(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir).or_else(|_| std::fs::remove_file(dir)) {
        tracing::warn!(dir = %crate::escape::path(dir), %error, "cannot remove an old snapshot");
    }
}

fn create_private_dir(dir: &Path) -> Result<(), HeadError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(dir))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

/// Follows HEAD until `stop`: on every change under the git directory's refs (a
/// commit, a pull, a checkout, a reset), and every `poll` besides (in case an event
/// was missed; the snapshot is then published again, see [`HeadSnapshots::republish`]),
/// takes the commit HEAD names. A commit that cannot be taken is logged
/// and the last one stands; it is tried again on the next change or poll.
pub async fn follow(
    mut snapshots: HeadSnapshots,
    debounce: Duration,
    poll: Duration,
    stop: CancellationToken,
) -> Result<(), super::WatchError> {
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut debouncer =
        notify_debouncer_full::new_debouncer(debounce, None, move |_: notify_debouncer_full::DebounceEventResult| {
            let _ = events_tx.send(());
        })
        .map_err(|e| super::WatchError::Watch { path: snapshots.toplevel.clone(), message: e.to_string() })?;
    for (path, mode) in snapshots.ref_watches().to_vec() {
        super::files::watch(&mut debouncer, &path, mode)?;
    }
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let polled = tokio::select! {
            () = stop.cancelled() => break,
            Some(()) = events.recv() => false,
            _ = timer.tick() => true,
        };
        // A burst of events (a pull writes many refs) is one look at HEAD.
        while events.try_recv().is_ok() {}
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = match snapshots.refresh() {
                Ok(None) if polled => snapshots.republish().map(|()| None),
                other => other,
            };
            (snapshots, result)
        })
        .await?;
        snapshots = back;
        match result {
            Ok(Some(commit)) => tracing::info!(commit = %commit, "HEAD moved; reading its commit"),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot take the commit HEAD names; the last one taken stands"),
        }
    }
    Ok(())
}

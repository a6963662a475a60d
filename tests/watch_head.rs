//! `grattr watch --source head` against the emulator, with real git: only the
//! commit HEAD names is applied, never a file of the worktree (half-written, saved
//! or staged), and each new commit is.

// Helpers of the Unix-only tests below are unused elsewhere.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]
mod support;

use std::time::Duration;
use support::emulator::{Server, attrs};
use support::watch::{PATIENCE, Watch, eventually};
use support::{Repo, git};

/// Four groups, `room-a` first with `motto: {motto}`: the file a writer rewrites.
fn rooms(motto: &str) -> String {
    let mut yaml = format!("groups:\n  - id: room-a\n    attributes:\n      motto: {motto}\n");
    for room in ["room-b", "room-c", "room-d"] {
        yaml.push_str(&format!("  - id: {room}\n    attributes:\n      motto: hello\n"));
    }
    yaml
}

/// The same file, as a writer that cut its first write inside `room-a`'s value left
/// it: valid YAML, `room-a` with the cut value, the three groups after it gone.
fn cut(motto: &str) -> String {
    rooms(motto).split_once("\n  - id: room-b").map(|(first, _)| first).unwrap().replacen(motto, &motto[..5], 1)
}

/// Twelve more groups, so that the cut (one update and three clears) stays under the
/// safety guard's 30%, as in the report.
fn others() -> String {
    let mut yaml = "groups:\n".to_string();
    for i in 0..12 {
        yaml.push_str(&format!("  - id: other-{i:02}\n    attributes:\n      motto: hello\n"));
    }
    yaml
}

fn motto(value: &str) -> grattr::model::AttributeSet {
    attrs(&[("motto", value)])
}

/// A repository of the sixteen groups, committed.
fn committed(server: &Server) -> Repo {
    let repo = server.repo().file("groups/rooms.yaml", &rooms("hello")).file("groups/others.yaml", &others());
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "sixteen groups"]);
    repo
}

/// How long a change that is not to be applied is given to be applied anyway: many
/// times the debounce, and the time a commit takes to be applied here.
const NOT_APPLIED_WITHIN: Duration = Duration::from_millis(1500);

// Unix only: it stops the watcher with SIGTERM and checks that it exits cleanly.
#[cfg(unix)]
#[test]
fn only_commits_are_applied_never_the_worktree() {
    let server = Server::start(|_| {});
    let repo = committed(&server);
    let state = tempfile::tempdir().unwrap();
    // What a crash left in the snapshot root: removed at start, harmless.
    let root = state.path().join("head");
    std::fs::create_dir_all(root.join("commits/0123abcd-1/groups")).unwrap();
    std::fs::write(root.join("commits/0123abcd-1/groups/x.yaml"), "groups: [").unwrap();
    std::fs::write(root.join("index"), "torn").unwrap();
    std::os::unix::fs::symlink("commits/0123abcd-1", root.join("current.tmp")).unwrap();
    let state_arg = state.path().to_str().unwrap();
    // An uncommitted attribute that would rewrite `$Id$` in every YAML file: not read either.
    let repo = repo.file(".gitattributes", "*.yaml ident\n");
    // A resync every second: each also publishes the snapshot again, which must change nothing.
    let watch = Watch::start(&repo, &["--source", "head", "--state-dir", state_arg, "--prune", "--resync", "1s"]);
    eventually(PATIENCE, "the commit applied", || {
        server.live("room-d") == Some(motto("hello")) && server.live("other-11") == Some(motto("hello"))
    });
    eventually(PATIENCE, "ready", || watch.readyz(&server).0 == 200);
    assert!(!root.join("commits/0123abcd-1").exists() && !root.join("index").exists());
    assert!(!root.join("current.tmp").exists());
    let sets = server.sets();

    // A file rewritten in place in two writes, the first cut inside a value, staged
    // in between: neither write is applied, nor the finished file, until committed.
    std::fs::write(repo.join("groups/rooms.yaml"), cut("be kind to everyone")).unwrap();
    git(&repo, &["add", "groups/rooms.yaml"]);
    std::thread::sleep(NOT_APPLIED_WITHIN);
    std::fs::write(repo.join("groups/rooms.yaml"), rooms("be kind to everyone")).unwrap();
    std::thread::sleep(NOT_APPLIED_WITHIN);
    assert_eq!(server.sets(), sets, "nothing of the worktree applied");
    assert_eq!(server.live("room-a"), Some(motto("hello")));
    assert_eq!(server.live("room-b"), Some(motto("hello")), "never cleared");
    // The user's index and worktree are as the user left them.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "MM groups/rooms.yaml\n?? .gitattributes\n");

    git(&repo, &["commit", "-q", "-am", "a motto for room-a"]);
    eventually(PATIENCE, "the commit applied", || server.live("room-a") == Some(motto("be kind to everyone")));
    // A new commit replaces it, and removes a group (--prune clears it).
    std::fs::write(repo.join("groups/rooms.yaml"), rooms("v3").replace("  - id: room-d\n", "  - id: room-e\n"))
        .unwrap();
    git(&repo, &["commit", "-q", "-am", "v3, room-d becomes room-e"]);
    eventually(PATIENCE, "the next commit applied", || {
        server.live("room-a") == Some(motto("v3")) && server.live("room-e") == Some(motto("hello"))
    });
    eventually(PATIENCE, "room-d cleared", || server.live("room-d") == Some(attrs(&[])));
    assert_eq!(server.live("room-b"), Some(motto("hello")));

    // Hostile file names in the tree: git writes them, grattr reads them, nothing runs.
    let hostile = [
        "groups/-rf --prefix=x.yaml",
        "groups/$(touch pwned); `touch pwned`.yaml",
        "groups/sub dir/ünï'cödé\" \\ *.yaml",
    ];
    for (i, name) in hostile.iter().enumerate() {
        let group = format!("hostile-{i}");
        std::fs::create_dir_all(repo.join(name).parent().unwrap()).unwrap();
        let yaml = format!("groups:\n  - id: {group}\n    attributes:\n      motto: odd name $Id$\n");
        std::fs::write(repo.join(name), yaml).unwrap();
    }
    git(&repo, &["add", "groups"]);
    git(&repo, &["commit", "-q", "-m", "odd names"]);
    eventually(PATIENCE, "the odd names applied", || {
        (0..3).all(|i| server.live(&format!("hostile-{i}")) == Some(motto("odd name $Id$")))
    });
    assert!(!repo.join("pwned").exists() && !root.join("pwned").exists());

    // The snapshots: the current one and the one before it; the record in the state directory.
    let snapshots = std::fs::read_dir(root.join("commits")).unwrap().count();
    assert!(snapshots <= 2, "{snapshots} snapshots kept");
    assert!(state.path().join("grattr.lock").exists());
    eventually(PATIENCE, "ready", || watch.readyz(&server).0 == 200);
    // One watcher of an environment's snapshots at a time.
    repo.run(&["watch", "--source", "head", "--state-dir", state_arg])
        .code(1)
        .stderr_contains("is in use by another grattr watch --source head");
    // Followed once a commit at most (three commits): publishing again moved nothing.
    let moved = watch.log_count("the repository moved");
    assert!((1..=3).contains(&moved), "{moved} moves:\n{}", watch.log());
    let (status, took) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let status = git(&repo, &["status", "--porcelain"]);
    assert_eq!(status, "?? .gitattributes\n", "the checkout is as it was left: nothing written into it");
}

#[test]
fn head_mode_says_what_it_needs() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/rooms.yaml", &rooms("hello"));
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();

    repo.run(&["watch", "--source", "head"]).code(1).stderr_contains("give --state-dir DIR (or GRATTR_STATE_DIR)");
    repo.run(&["watch", "--source", "head", "--state-dir", state_arg])
        .code(1)
        .stderr_contains("not in a git worktree, so there is no HEAD commit to read");
    repo.run_with_env(&["watch", "--source", "head", "--state-dir", state_arg], &[("PATH", "/nonexistent")])
        .code(1)
        .stderr_contains("HEAD mode runs git, which cannot be run");
    git(&repo, &["init", "-q", "-b", "main"]);
    repo.run(&["watch", "--source", "head", "--state-dir", state_arg])
        .code(1)
        .stderr_contains("HEAD names no commit yet");
    // Committed groups but no configuration: what is not committed is not read.
    git(&repo, &["add", "groups"]);
    git(&repo, &["commit", "-q", "-m", "groups only"]);
    repo.run(&["watch", "--source", "head", "--state-dir", state_arg])
        .code(1)
        .stderr_contains("grattr.yaml is not in commit");
    assert_eq!(server.sets(), 0);
}

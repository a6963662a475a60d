//! `grattr lockfile merge` as git's merge driver, with real git: two branches that
//! applied different groups merge into a clean lockfile and an empty plan.

mod support;

use std::process::Command;
use support::emulator::{KEY, Server, groups_yaml};
use support::{Repo, git};

fn apply(repo: &Repo) {
    repo.run_with_env(&["apply", "--yes"], &[("GRATTR_SECRET_KEY", KEY)]).code(0).stdout_contains("Apply complete:");
}

/// A repository in git with the merge driver set up as the README says, where
/// `lobby` and `support` were applied and committed on `main`.
fn repository(server: &Server) -> Repo {
    let repo = server
        .repo()
        .file(".gitattributes", "grattr.lock merge=grattr-lock\n")
        .file(".gitignore", ".*.lck\n.*.journal\n")
        .file("groups/lobby.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")])]))
        .file("groups/support.yaml", &groups_yaml(&[("support", &[("hours", "9-17")])]));
    git(&repo, &["init", "-q", "-b", "main"]);
    let driver = format!("{} lockfile merge %O %A %B %P", env!("CARGO_BIN_EXE_grattr"));
    git(&repo, &["config", "merge.grattr-lock.driver", &driver]);
    apply(&repo);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    repo
}

#[test]
fn branches_that_applied_different_groups_merge_into_a_clean_lockfile() {
    let server = Server::start(|_| {});
    let repo = repository(&server);
    // One branch changes and applies lobby and adopts a new group...
    git(&repo, &["checkout", "-q", "-b", "one"]);
    let repo = repo
        .file("groups/lobby.yaml", &groups_yaml(&[("lobby", &[("theme", "light")])]))
        .file("groups/new.yaml", &groups_yaml(&[("new", &[("a", "1")])]));
    apply(&repo);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    // ...the other, from the same base, changes and applies support.
    git(&repo, &["checkout", "-q", "main"]);
    let repo = repo.file("groups/support.yaml", &groups_yaml(&[("support", &[("hours", "8-18")])]));
    apply(&repo);
    git(&repo, &["commit", "-q", "-am", "two"]);

    git(&repo, &["merge", "-q", "--no-edit", "one"]);
    let lockfile = repo.read("grattr.lock");
    assert!(!lockfile.contains("<<<<<<<"), "{lockfile}");
    assert!(lockfile.contains("light") && lockfile.contains("8-18") && lockfile.contains("\"new\""), "{lockfile}");
    repo.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_contains("No changes: the desired state matches what grattr.lock records as applied.");
    let status = git(&repo, &["status", "--porcelain"]);
    assert!(status.is_empty(), "{status}");
}

#[test]
fn a_group_applied_differently_on_both_branches_is_applied_again() {
    let server = Server::start(|_| {});
    let repo = repository(&server);
    git(&repo, &["checkout", "-q", "-b", "one"]);
    let repo = repo.file("groups/lobby.yaml", &groups_yaml(&[("lobby", &[("theme", "light")])]));
    apply(&repo);
    git(&repo, &["commit", "-q", "-am", "one"]);
    git(&repo, &["checkout", "-q", "main"]);
    let repo = repo.file("groups/lobby.yaml", &groups_yaml(&[("lobby", &[("theme", "blue")])]));
    apply(&repo);
    git(&repo, &["commit", "-q", "-am", "two"]);

    // The YAML conflicts as any text does; the lockfile merges, leaving lobby out.
    let merge = Command::new("git")
        .current_dir(repo.path())
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "merge", "--no-edit", "one"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&merge.stdout).to_string() + &String::from_utf8_lossy(&merge.stderr);
    assert!(said.contains("CONFLICT (content): Merge conflict in groups/lobby.yaml"), "{said}");
    assert!(!said.contains("Merge conflict in grattr.lock"), "{said}");
    assert!(said.contains("grattr.lock: lobby: recorded with other attributes on each side"), "{said}");
    let repo = repo.file("groups/lobby.yaml", &groups_yaml(&[("lobby", &[("theme", "blue")])]));
    repo.run(&["plan"]).code(0).stdout_contains("+ lobby will be created").stdout_contains("1 to create, 0 to update");
}

#[test]
fn a_damaged_side_is_refused_and_ours_is_left_as_it_was() {
    let repo = Repo::new().file("base.lock", "").file("ours.lock", "{\"format_version\": 1, \"groups\": {}}\n").file(
        "theirs.lock",
        "{\"format_version\": 1, \"groups\": {\"a\": {\"digest\": \"sha256:00\", \"attributes\": {}}}}\n",
    );
    repo.run(&["lockfile", "merge", "base.lock", "ours.lock", "theirs.lock"])
        .code(1)
        .stderr_contains("theirs.lock: error: 1 corrupt or hand-edited entry");
    assert_eq!(repo.read("ours.lock"), "{\"format_version\": 1, \"groups\": {}}\n");
}

#[test]
fn a_group_whose_ownership_alone_differs_is_left_to_be_applied_again() {
    use grattr::lockfile::Lockfile;
    use grattr::model::{AppliedGroup, AttributeSet, GroupId, Ownership};
    let lockfile = |ownership: Option<Ownership>| {
        let mut lockfile = Lockfile::new(1400000000);
        let attributes: AttributeSet = [("k", "v")].into_iter().collect();
        lockfile.groups.insert(GroupId::parse("keep").unwrap(), AppliedGroup::new(attributes.clone()));
        if let Some(ownership) = ownership {
            lockfile.groups.insert(GroupId::parse("room").unwrap(), AppliedGroup::owned(attributes, ownership));
        }
        lockfile
    };
    let repo = Repo::new();
    lockfile(None).write(&repo.join("base.lock")).unwrap();
    lockfile(Some(Ownership::Keys)).write(&repo.join("ours.lock")).unwrap();
    lockfile(Some(Ownership::Group)).write(&repo.join("theirs.lock")).unwrap();
    // Both sides created room alike but for what grattr owns of it.
    repo.run(&["lockfile", "merge", "base.lock", "ours.lock", "theirs.lock", "grattr.lock"]).code(0).stderr(
        "grattr.lock: room: recorded with the same attributes but another ownership on each side; left out of \
         the merged lockfile, so that the next apply sets it to its desired state\n",
    );
    let merged = Lockfile::read(&repo.join("ours.lock"), 1400000000).unwrap();
    assert_eq!(merged, lockfile(None), "room is left to be applied again");
}

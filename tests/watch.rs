//! `grattr watch` against the emulator, with real files and real git: edits,
//! invalid edits, deletes, branch switches, editors' saves, drift, SIGTERM and an outage.
//! Unix only: the scenarios send SIGTERM and SIGHUP and swap symlinks, which Windows
//! has no equivalent of that a test can send to a child (Ctrl-Break needs a shared console).
#![cfg(unix)]

mod support;

use grattr::emulator::Latency;
use grattr::model::GroupId;
use std::time::Duration;
use support::emulator::{Server, attrs, groups_yaml};
use support::watch::{PATIENCE, Watch, eventually};
use support::{Repo, git};

fn id(text: &str) -> GroupId {
    GroupId::parse(text).unwrap()
}

/// An emulator, a repository declaring the group `room` with `v: value`, and a watcher
/// (started with `args`) that has applied it.
fn watching_room(value: &str, args: &[&str]) -> (Server, Repo, Watch) {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("v", value)])]));
    let watch = Watch::start(&repo, args);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", value)])));
    (server, repo, watch)
}

#[test]
fn edits_reach_the_service_and_invalid_ones_never_do() {
    let server = Server::start(|_| {});
    let repo = server
        .repo()
        .file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "dark")]), ("support-eu", &[("hours", "9-17")])]));
    let watch = Watch::start(&repo, &["--prune"]);
    eventually(PATIENCE, "the first reconcile", || server.live("lobby") == Some(attrs(&[("theme", "dark")])));
    eventually(PATIENCE, "readiness", || watch.get(&server, "/readyz").0 == 200);
    assert_eq!(watch.get(&server, "/healthz"), (200, "ok\n".to_string()));

    // A save reaches the emulator.
    let repo = repo
        .file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "light")]), ("support-eu", &[("hours", "9-17")])]));
    eventually(PATIENCE, "the edit applied", || server.live("lobby") == Some(attrs(&[("theme", "light")])));

    // An invalid edit applies nothing, and /readyz says why.
    let sets = server.sets();
    let repo = repo.file("groups/a.yaml", "groups:\n  - id: lobby\n    attributes:\n      theme: ~\n  - id: support-eu\n    attributes: {hours: \"8-18\"}\n");
    eventually(PATIENCE, "not ready", || watch.get(&server, "/readyz").0 == 503);
    let (_, why) = watch.get(&server, "/readyz");
    assert!(why.contains("groups/a.yaml:4:14: error: group \"lobby\" key \"theme\": value is null"), "{why}");
    // Cycles run one at a time: the invalid one has ended, and any before it too.
    assert_eq!(server.sets(), sets, "nothing applied while invalid");
    assert_eq!(server.live("support-eu"), Some(attrs(&[("hours", "9-17")])));

    // Fixing it applies.
    let repo = repo
        .file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "blue")]), ("support-eu", &[("hours", "8-18")])]));
    eventually(PATIENCE, "the fix applied", || server.live("support-eu") == Some(attrs(&[("hours", "8-18")])));
    eventually(PATIENCE, "ready again", || watch.get(&server, "/readyz").0 == 200);

    // Deleting a group with --prune clears it.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "blue")])]));
    eventually(PATIENCE, "the group cleared", || server.live("support-eu") == Some(attrs(&[])));
    assert!(watch.metric(&server, "grattr_reconcile_cycles_total{outcome=\"invalid\"}") >= 1.0);
    assert!(watch.metric(&server, "grattr_api_calls_total{endpoint=\"set_group_attr\",code=\"0\"}") >= 3.0);
    let (status, took) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5));
    let lockfile = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
    assert_eq!(lockfile.groups.keys().map(GroupId::as_str).collect::<Vec<_>>(), vec!["lobby"]);
    assert!(
        !repo.join(".grattr.lock.lck").exists()
            || std::fs::read_to_string(repo.join(".grattr.lock.lck")).unwrap().is_empty()
    );
}

#[test]
fn a_git_checkout_of_fifty_files_is_one_reconcile() {
    let server = Server::start(|_| {});
    // A branch switch rewrites every group: over the safety guard's default threshold.
    let mut repo = Repo::new()
        .file("grattr.yaml", &(server.config() + "safety_threshold: 100\n"))
        .file(".gitignore", ".*.lck\n.*.journal\ngrattr.lock\n");
    for i in 0..50 {
        repo =
            repo.file(&format!("groups/g{i:02}.yaml"), &groups_yaml(&[(&format!("g{i:02}"), &[("branch", "main")])]));
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "main"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    for i in 0..50 {
        repo = repo
            .file(&format!("groups/g{i:02}.yaml"), &groups_yaml(&[(&format!("g{i:02}"), &[("branch", "feature")])]));
    }
    git(&repo, &["commit", "-q", "-am", "feature"]);
    git(&repo, &["checkout", "-q", "main"]);

    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the first reconcile", || server.live("g49") == Some(attrs(&[("branch", "main")])));
    eventually(PATIENCE, "readiness", || watch.get(&server, "/readyz").0 == 200);
    let cycles = watch.metric(&server, "grattr_reconcile_cycles_total{outcome=\"applied\"}");
    git(&repo, &["checkout", "-q", "feature"]);
    eventually(PATIENCE, "the branch applied", || {
        (0..50).all(|i| server.live(&format!("g{i:02}")) == Some(attrs(&[("branch", "feature")])))
    });
    watch.settle(&server, &repo);
    assert_eq!(watch.metric(&server, "grattr_reconcile_cycles_total{outcome=\"applied\"}"), cycles + 1.0, "one cycle");
    assert_eq!(server.sets(), 100, "each group written once per branch");
}

#[test]
fn editor_saves_are_picked_up_exactly_once() {
    let (server, repo, watch) = watching_room("0", &[]);
    let path = repo.join("groups/a.yaml");
    let writes = || server.emulator().stats().groups.get("room").map_or(0, |g| g.writes);

    // An atomic save: write a temporary file, rename it over the file.
    let temp = repo.join("groups/.a.yaml.tmp123");
    std::fs::write(&temp, groups_yaml(&[("room", &[("v", "1")])])).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    eventually(PATIENCE, "the atomic save", || server.live("room") == Some(attrs(&[("v", "1")])));
    watch.settle(&server, &repo);
    assert_eq!(writes(), 2, "once");

    // A vim-style save: swap file, backup by rename, new file written, backup deleted.
    let swap = repo.join("groups/.a.yaml.swp");
    std::fs::write(&swap, "vim swap").unwrap();
    let backup = repo.join("groups/a.yaml~");
    std::fs::rename(&path, &backup).unwrap();
    std::fs::write(&path, groups_yaml(&[("room", &[("v", "2")])])).unwrap();
    std::fs::remove_file(&backup).unwrap();
    std::fs::remove_file(&swap).unwrap();
    eventually(PATIENCE, "the vim save", || server.live("room") == Some(attrs(&[("v", "2")])));
    watch.settle(&server, &repo);
    assert_eq!(writes(), 3, "once");
    assert_eq!(
        watch.metric(&server, "grattr_reconcile_cycles_total{outcome=\"invalid\"}"),
        0.0,
        "never saw a half-written state"
    );
}

#[test]
fn drift_is_reported_after_a_resync_and_healed() {
    let (server, _repo, watch) = watching_room("1", &["--resync", "1s", "--self-heal"]);
    let client = server.client();
    server.block_on(client.modify_group_attr(&id("room"), &attrs(&[("v", "client"), ("extra", "x")]))).unwrap();
    watch.wait_for_log("drifted: changed outside grattr");
    eventually(PATIENCE, "healed", || server.live("room") == Some(attrs(&[("v", "1")])));
    assert!(watch.log_count("self-healing drifted groups") >= 1);
}

#[test]
fn self_heal_of_a_keys_group_resets_only_grattrs_keys() {
    let server = Server::start(|_| {});
    let group = "groups:\n  - id: room\n    ownership: keys\n    attributes:\n      v: \"1\"\n";
    let repo = server.repo().file("groups/a.yaml", group);
    let watch = Watch::start(&repo, &["--resync", "1s", "--self-heal"]);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", "1")])));
    // A member writes a key of their own, and overwrites grattr's.
    let client = server.client();
    server.block_on(client.modify_group_attr(&id("room"), &attrs(&[("v", "member"), ("seat", "alice")]))).unwrap();
    watch.wait_for_log("drifted: changed outside grattr");
    eventually(PATIENCE, "healed", || server.live("room") == Some(attrs(&[("seat", "alice"), ("v", "1")])));
    assert_eq!(server.sets(), 0, "never a full reset");
    // Members' keys alone are not drift: later resyncs find none, and heal nothing.
    let heals = watch.log_count("self-healing drifted groups");
    eventually(PATIENCE, "a resync in sync", || watch.metric(&server, "grattr_groups_drifted") == 0.0);
    let resyncs = watch.log_count("resync finished");
    eventually(PATIENCE, "another resync", || watch.log_count("resync finished") > resyncs + 1);
    assert_eq!(watch.log_count("self-healing drifted groups"), heals);
    assert_eq!(server.live("room"), Some(attrs(&[("seat", "alice"), ("v", "1")])));
}

#[test]
fn sigterm_during_a_large_apply_stops_within_the_bound() {
    let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(20)));
    let text = support::emulator::many_groups("big", 2000);
    let repo = Repo::new()
        .file("grattr.yaml", &server.config().replace("rate_limit: 200", "rate_limit: 100"))
        .file("groups/big.yaml", &text);
    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the apply started", || server.sets() >= 50);
    let (status, took) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let lockfile = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
    assert!(!lockfile.groups.is_empty() && lockfile.groups.len() < 2000, "{} recorded", lockfile.groups.len());
    for (group, applied) in &lockfile.groups {
        assert_eq!(server.live(group.as_str()).as_ref(), Some(&applied.attributes));
    }
    assert!(!repo.join(".grattr.lock.journal").exists());
}

#[test]
fn an_api_outage_is_survived() {
    let mut server = Server::start(|_| {});
    let repo = Repo::new()
        .file("grattr.yaml", &server.config().replace("request_timeout: 2s", "request_timeout: 300ms"))
        .file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]));
    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", "1")])));
    let addr = server.stop();
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    // Back once the outage has made the watcher fail or retry.
    eventually(PATIENCE, "the outage seen", || watch.log_count("apply failed") + watch.log_count("retrying") >= 1);
    server.restart(addr);
    eventually(PATIENCE, "convergence after the outage", || server.live("room") == Some(attrs(&[("v", "2")])));
    eventually(PATIENCE, "the lockfile", || {
        grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap().groups[&id("room")].attributes
            == attrs(&[("v", "2")])
    });
    assert!(watch.log_count("apply failed") + watch.log_count("retrying") >= 1, "the outage was seen");
}

#[test]
fn sighup_reloads_and_keeps_serving() {
    let (server, repo, watch) = watching_room("1", &[]);
    // SAFETY: kill(2) on the child this test spawned.
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGHUP) };
    watch.wait_for_log("reloading the configuration and every file (SIGHUP)");
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    eventually(PATIENCE, "an edit after the reload", || server.live("room") == Some(attrs(&[("v", "2")])));
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    drop(repo);
}

#[test]
fn a_reload_that_moves_the_lockfile_or_the_app_is_refused_until_a_restart() {
    let (server, repo, watch) = watching_room("1", &[]);
    // The lock is held on grattr.lock: writing another lockfile, unlocked, from a record of
    // this one would let two processes apply at once and corrupt both records.
    let repo = repo.file("grattr.yaml", &(server.config() + "lockfile: other.lock\n"));
    watch.wait_for_log("needs a restart");
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    eventually(PATIENCE, "the edit, with the running configuration", || {
        server.live("room") == Some(attrs(&[("v", "2")]))
    });
    // Another app, planned against this app's record, would skip its groups.
    let repo = repo.file("grattr.yaml", &server.config().replace("1400000000", "1400000001"));
    watch.wait_for_log("sdkappid from 1400000000 to 1400000001");
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!repo.join("other.lock").exists() && !repo.join(".other.lock.journal").exists());
    let recorded = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
    assert_eq!(recorded.groups[&id("room")].attributes, attrs(&[("v", "2")]));
}

#[test]
fn an_overlay_change_is_applied_and_its_directory_followed() {
    let server = Server::start(|_| {});
    let overlay = |v: &str| format!("groups:\n  - id: room\n    attributes: {{v: {v}}}\n    unset: [debug]\n");
    let repo = Repo::new()
        .file("grattr.yaml", &(server.config() + "overlays: [overlays/live]\n"))
        .file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "base"), ("debug", "on")])]))
        .file("overlays/live/room.yaml", &overlay("one"));
    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", "one")])));

    // An edit of the overlay is planned and applied like an edit of the group.
    let repo = repo.file("overlays/live/room.yaml", &overlay("two"));
    eventually(PATIENCE, "the overlay's edit applied", || server.live("room") == Some(attrs(&[("v", "two")])));

    // The overlay directory gone: invalid, at its line in grattr.yaml, nothing applied.
    std::fs::remove_dir_all(repo.join("overlays/live")).unwrap();
    eventually(PATIENCE, "not ready", || watch.readyz(&server).0 == 503);
    let (_, why) = watch.readyz(&server);
    assert!(why.contains("grattr.yaml:6:12: error: overlay "), "{why}");
    assert_eq!(server.live("room"), Some(attrs(&[("v", "two")])));

    // Back as a new directory (moved into place, as a checkout does): read, and
    // watched from then on.
    let repo = repo.file("overlays/.next/room.yaml", &overlay("three"));
    std::fs::rename(repo.join("overlays/.next"), repo.join("overlays/live")).unwrap();
    eventually(PATIENCE, "the new directory applied", || server.live("room") == Some(attrs(&[("v", "three")])));
    let repo = repo.file("overlays/live/room.yaml", &overlay("four"));
    eventually(PATIENCE, "an edit in it applied", || server.live("room") == Some(attrs(&[("v", "four")])));
    eventually(PATIENCE, "ready again", || watch.readyz(&server).0 == 200);

    // Every directory on the way gone, then made again with the file at once
    // (`mkdir -p`, then a write): seen, and watched from then on.
    std::fs::remove_dir_all(repo.join("overlays")).unwrap();
    eventually(PATIENCE, "not ready", || watch.readyz(&server).0 == 503);
    let repo = repo.file("overlays/live/room.yaml", &overlay("five"));
    eventually(PATIENCE, "the new file applied", || server.live("room") == Some(attrs(&[("v", "five")])));
    let repo = repo.file("overlays/live/room.yaml", &overlay("six"));
    eventually(PATIENCE, "an edit of it applied", || server.live("room") == Some(attrs(&[("v", "six")])));

    // The configuration drops the overlay: the base is applied.
    let repo = repo.file("grattr.yaml", &server.config());
    eventually(PATIENCE, "the base applied", || server.live("room") == Some(attrs(&[("v", "base"), ("debug", "on")])));
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    drop(repo);
}

#[test]
fn each_success_is_durable_at_once_and_the_lockfile_is_written_when_quiet() {
    let (server, repo, watch) = watching_room("1", &[]);
    let lockfile = repo.join("grattr.lock");
    let journal = repo.join(".grattr.lock.journal");
    let on_disk = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        grattr::lockfile::Lockfile::parse(path, &bytes).unwrap().groups.get(&id("room")).map(|g| g.attributes.clone())
    };
    eventually(PATIENCE, "the lockfile written", || {
        lockfile.exists() && on_disk(&lockfile) == Some(attrs(&[("v", "1")])) && !journal.exists()
    });
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    eventually(PATIENCE, "the edit applied", || server.live("room") == Some(attrs(&[("v", "2")])));
    // Recorded as soon as it is applied: the journal, which every reader replays.
    eventually(PATIENCE, "the edit recorded", || {
        grattr::lockfile::Lockfile::read(&lockfile, 1400000000).unwrap().groups[&id("room")].attributes
            == attrs(&[("v", "2")])
    });
    // Then folded into the lockfile's own file after a quiet second.
    eventually(PATIENCE, "the lockfile rewritten", || {
        on_disk(&lockfile) == Some(attrs(&[("v", "2")])) && !journal.exists()
    });
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "3")])]));
    eventually(PATIENCE, "the edit applied", || server.live("room") == Some(attrs(&[("v", "3")])));
    // On exit at the latest.
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(on_disk(&lockfile), Some(attrs(&[("v", "3")])));
    assert!(!journal.exists());
    drop(repo);
}

/// Groups `g-00`..`g-19`, each `v` = `value(i)`.
fn twenty(value: impl Fn(usize) -> &'static str) -> String {
    let ids: Vec<String> = (0..20).map(|i| format!("g-{i:02}")).collect();
    let values: Vec<[(&str, &str); 1]> = (0..20).map(|i| [("v", value(i))]).collect();
    let groups: Vec<(&str, &[(&str, &str)])> = ids.iter().zip(&values).map(|(id, v)| (id.as_str(), &v[..])).collect();
    groups_yaml(&groups)
}

fn live_values(server: &Server) -> Vec<String> {
    (0..20)
        .map(|i| server.live(&format!("g-{i:02}")).and_then(|a| a.get("v").map(str::to_owned)).unwrap_or_default())
        .collect()
}

#[test]
fn a_sweeping_change_is_refused_until_it_is_back_under_the_threshold() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &twenty(|_| "1"));
    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the first reconcile", || live_values(&server).iter().all(|v| v == "1"));
    eventually(PATIENCE, "readiness", || watch.get(&server, "/readyz").0 == 200);
    let sets = server.sets();

    // Every recorded group changes: over the default threshold of 30%, nothing is applied.
    let repo = repo.file("groups/a.yaml", &twenty(|_| "2"));
    eventually(PATIENCE, "not ready", || watch.get(&server, "/readyz").0 == 503);
    let (_, why) = watch.get(&server, "/readyz");
    assert!(
        why.contains("refusing to apply: the plan updates or deletes 20 of the 20 groups the lockfile records (100%), over the safety threshold of 30%"),
        "{why}"
    );
    assert!(why.contains("--force"), "says how to proceed: {why}");
    watch.wait_for_log("refusing to apply");
    assert!(watch.metric(&server, "grattr_reconcile_cycles_total{outcome=\"refused\"}") >= 1.0);
    // Cycles run one at a time: the refused one has ended, and any before it too.
    assert_eq!(server.sets(), sets, "nothing applied while refused");

    // Back under the threshold (5 of 20): the whole pending change is counted and applied.
    let repo = repo.file("groups/a.yaml", &twenty(|i| if i < 5 { "2" } else { "1" }));
    eventually(PATIENCE, "applied once under the threshold", || {
        live_values(&server).iter().enumerate().all(|(i, v)| v == if i < 5 { "2" } else { "1" })
    });
    eventually(PATIENCE, "ready again", || watch.get(&server, "/readyz").0 == 200);
    assert_eq!(server.sets(), sets + 5);
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");

    // --force applies what the guard refuses.
    let repo = repo.file("groups/a.yaml", &twenty(|_| "3"));
    let watch = Watch::start(&repo, &["--force"]);
    eventually(PATIENCE, "forced", || live_values(&server).iter().all(|v| v == "3"));
    eventually(PATIENCE, "ready", || watch.get(&server, "/readyz").0 == 200);
    drop(repo);
}

/// A lockfile recording `groups` as applied.
fn recorded(groups: &[(&str, &str)]) -> String {
    let mut lockfile = grattr::lockfile::Lockfile::new(1400000000);
    for (group, value) in groups {
        lockfile.groups.insert(id(group), grattr::lockfile::AppliedGroup::new(attrs(&[("v", value)])));
    }
    String::from_utf8(lockfile.to_json()).unwrap()
}

#[test]
fn a_state_dir_keeps_the_checkout_clean_through_pulls_and_is_seeded_once() {
    let server = Server::start(|_| {});
    // What CI applied and committed: the checkout a server takes over from.
    let checkout = server
        .repo()
        .file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]))
        .file("grattr.lock", &recorded(&[("room", "1")]));
    server.block_on(server.client().set_group_attr(&id("room"), &attrs(&[("v", "1")]))).unwrap();
    // No .gitignore: anything grattr wrote into the checkout would show in `git status`.
    git(&checkout, &["init", "-q", "-b", "main"]);
    git(&checkout, &["add", "-A"]);
    git(&checkout, &["commit", "-q", "-m", "applied by CI"]);
    let upstream = tempfile::tempdir().unwrap();
    git(upstream.path(), &["clone", "-q", "--bare", checkout.path().to_str().unwrap(), "."]);
    git(&checkout, &["remote", "add", "origin", upstream.path().to_str().unwrap()]);
    git(&checkout, &["fetch", "-q", "origin"]);
    git(&checkout, &["branch", "-q", "-u", "origin/main"]);
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("grattr");
    let sets = server.sets();

    let watch = Watch::start(&checkout, &["--state-dir", state.to_str().unwrap()]);
    eventually(PATIENCE, "readiness", || watch.get(&server, "/readyz").0 == 200);
    watch.wait_for_log("seeded the state from the repository's lockfile");
    assert_eq!(server.sets(), sets, "what CI applied is not applied twice");
    assert_eq!(std::fs::read_to_string(state.join("grattr.lock")).unwrap(), recorded(&[("room", "1")]));

    // Upstream moves on: a change of the groups, and a lockfile that CI rewrote.
    let ci = tempfile::tempdir().unwrap();
    git(ci.path(), &["clone", "-q", upstream.path().to_str().unwrap(), "."]);
    std::fs::write(ci.path().join("groups/a.yaml"), groups_yaml(&[("room", &[("v", "2")])])).unwrap();
    std::fs::write(ci.path().join("grattr.lock"), recorded(&[("room", "1"), ("elsewhere", "ci")])).unwrap();
    git(ci.path(), &["commit", "-q", "-am", "change room; CI's record"]);
    git(ci.path(), &["push", "-q", "origin", "main"]);
    // The pull a timer runs: it only works on a clean checkout.
    git(&checkout, &["pull", "-q", "--ff-only"]);
    eventually(PATIENCE, "the pulled change applied", || server.live("room") == Some(attrs(&[("v", "2")])));
    eventually(PATIENCE, "recorded in the state", || {
        let state = grattr::lockfile::Lockfile::read(&state.join("grattr.lock"), 1400000000).unwrap();
        state.groups.get(&id("room")).map(|g| &g.attributes) == Some(&attrs(&[("v", "2")]))
            && !state.groups.contains_key(&id("elsewhere"))
    });
    assert_eq!(git(checkout.path(), &["status", "--porcelain", "--ignored"]), "", "the checkout is clean");
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(git(checkout.path(), &["status", "--porcelain", "--ignored"]), "", "the checkout is clean");
    assert_eq!(checkout.read("grattr.lock"), recorded(&[("room", "1"), ("elsewhere", "ci")]), "never written");

    // plan on the server reads the same state, by option or by variable.
    let state_arg = state.to_str().unwrap();
    let no_changes = format!(
        "grattr plan for sdkappid 1400000000\n\n\
         No changes: the desired state matches what {} records as applied.\n\n\
         Plan: 0 to create, 0 to update, 0 to delete, 1 unchanged.\n\
         Safety guard: approved — 0 of the 1 recorded group (0%) would be updated or deleted, within the threshold of 30%.\n\
         Cost: no API call.\n",
        state.join("grattr.lock").display()
    );
    checkout.run(&["plan", "--state-dir", state_arg, "--detailed-exitcode"]).code(0).stdout(&no_changes);
    checkout
        .run_with_env(&["plan", "--detailed-exitcode"], &[("GRATTR_STATE_DIR", state_arg)])
        .code(0)
        .stdout(&no_changes);
    checkout.run(&["plan", "--detailed-exitcode"]).code(2).stdout_contains("room will be updated");
}

#[test]
fn a_state_that_cannot_be_used_is_not_ready_and_says_why() {
    let server = Server::start(|_| {});
    let checkout = server
        .repo()
        .file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]))
        .file("grattr.lock", "{\n<<<<<<< HEAD\n}\n");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("grattr");
    let watch = Watch::start(&checkout, &["--state-dir", state.to_str().unwrap()]);
    eventually(PATIENCE, "the reason", || watch.get(&server, "/readyz").1.contains("cannot be used"));
    let (code, why) = watch.get(&server, "/readyz");
    assert_eq!(code, 503);
    assert!(why.contains("the state cannot be used: ") && why.contains("grattr.lock:2: error"), "{why}");
    assert!(why.contains("git conflict marker"), "{why}");
    assert_eq!(watch.get(&server, "/healthz").0, 200, "alive, and not restarted over and over");
    assert!(!state.join("grattr.lock").exists(), "nothing seeded from a record that does not verify");
    assert_eq!(server.sets(), 0);

    // A state directory that is a file cannot hold anything either.
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, "not a directory").unwrap();
    let checkout = checkout.file("grattr.lock", &recorded(&[]));
    // SAFETY: kill(2) on the child this test spawned.
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGHUP) };
    eventually(PATIENCE, "the new reason", || watch.get(&server, "/readyz").1.contains("File exists"));
    assert_eq!(watch.get(&server, "/readyz").0, 503);

    // Fixed: tried again on SIGHUP, and it goes on as usual.
    std::fs::remove_file(&state).unwrap();
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGHUP) };
    eventually(PATIENCE, "applied", || server.live("room") == Some(attrs(&[("v", "1")])));
    eventually(PATIENCE, "ready", || watch.get(&server, "/readyz").0 == 200);
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(state.join("grattr.lock").exists());
    assert_eq!(checkout.read("grattr.lock"), recorded(&[]));
}

#[test]
fn a_symlink_swapped_to_a_new_checkout_is_followed() {
    // git-sync publishes each commit as a new worktree and swaps a symlink to it.
    let server = Server::start(|_| {});
    let root = Repo::new()
        .file("worktrees/a/grattr.yaml", &server.config())
        .file("worktrees/a/groups/a.yaml", &groups_yaml(&[("room", &[("v", "1")])]))
        .file("worktrees/b/grattr.yaml", &server.config())
        .file("worktrees/b/groups/a.yaml", &groups_yaml(&[("room", &[("v", "2")])]));
    std::os::unix::fs::symlink("worktrees/a", root.join("repo")).unwrap();
    let config = root.join("repo/grattr.yaml");
    let state = root.join("state");
    let watch = Watch::start(&root, &["-c", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()]);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", "1")])));

    std::os::unix::fs::symlink("worktrees/b", root.join("repo.tmp")).unwrap();
    std::fs::rename(root.join("repo.tmp"), root.join("repo")).unwrap();
    eventually(PATIENCE, "the new checkout applied", || server.live("room") == Some(attrs(&[("v", "2")])));
    watch.wait_for_log("the repository moved");
    // The old checkout goes; edits in the new one are followed.
    std::fs::remove_dir_all(root.join("worktrees/a")).unwrap();
    let root = root.file("worktrees/b/groups/a.yaml", &groups_yaml(&[("room", &[("v", "3")])]));
    eventually(PATIENCE, "an edit in the new checkout", || server.live("room") == Some(attrs(&[("v", "3")])));
    eventually(PATIENCE, "ready", || watch.get(&server, "/readyz").0 == 200);
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!root.join("worktrees/b/grattr.lock").exists());
}

#[test]
fn a_template_edit_re_plans_only_the_groups_using_it() {
    let server = Server::start(|_| {});
    let templates = |rooms: &str| format!("templates:\n  rooms:\n    theme: {rooms}\n  lobby:\n    theme: light\n");
    let repo = server.repo().file("groups/_templates.yaml", &templates("dark")).file(
        "groups/rooms.yaml",
        "groups:\n  - ids: [room-1, room-2]\n    template: rooms\n  - id: lobby\n    template: lobby\n  - id: plain\n    attributes: {k: v}\n",
    );
    let watch = Watch::start(&repo, &[]);
    eventually(PATIENCE, "the first reconcile", || server.live("room-2") == Some(attrs(&[("theme", "dark")])));
    let _repo = repo.file("groups/_templates.yaml", &templates("night"));
    let night = Some(attrs(&[("theme", "night")]));
    eventually(PATIENCE, "the template's groups updated", || {
        server.live("room-1") == night && server.live("room-2") == night
    });
    // The groups of the other template, and the plain one, were not planned again.
    let log = watch.log();
    let changed: Vec<&str> = log.lines().filter(|l| l.contains("files changed")).collect();
    assert!(!changed.is_empty() && changed.iter().all(|l| l.contains("groups=2")), "{log}");
    assert_eq!(server.live("lobby"), Some(attrs(&[("theme", "light")])));
}

/// Rewrites `path` in place in two writes `gap` apart, the first ending at `cut`, as a
/// slow writer (or a copy over a network share) does: the file is half-written between.
fn rewrite_in_two_writes(path: &std::path::Path, text: &str, cut: usize, gap: Duration) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(&text.as_bytes()[..cut]).unwrap();
    file.sync_all().unwrap();
    std::thread::sleep(gap);
    file.write_all(&text.as_bytes()[cut..]).unwrap();
    file.sync_all().unwrap();
}

/// How many writes the emulator took for `group`.
fn writes(server: &Server, group: &str) -> u64 {
    server.emulator().stats().groups.get(group).map_or(0, |g| g.writes)
}

#[test]
fn a_file_rewritten_in_two_writes_is_applied_only_once_finished() {
    let server = Server::start(|_| {});
    let others = [("room-b", "b"), ("room-c", "c"), ("room-d", "d")];
    // Plain scalars, as people write them: a cut inside a value is still valid YAML.
    let file = |motto: &str| {
        let mut text = format!("groups:\n  - id: room-a\n    attributes:\n      motto: {motto}\n");
        for (id, v) in others {
            text += &format!("  - id: {id}\n    attributes:\n      v: {v}\n");
        }
        text
    };
    // No guard to save it: the cut clears every group after it.
    let repo = Repo::new()
        .file("grattr.yaml", &(server.config() + "safety_threshold: 100\n"))
        .file("groups/a.yaml", &file("be kind"));
    let watch = Watch::start(&repo, &["--prune", "--settle", "1s"]);
    eventually(PATIENCE, "the first reconcile", || {
        others.iter().all(|(group, v)| server.live(group) == Some(attrs(&[("v", v)])))
    });
    let before: Vec<u64> = ["room-a", "room-b", "room-c", "room-d"].iter().map(|g| writes(&server, g)).collect();

    // Cut inside the new value: the first write declares `motto: be ki` and no other group.
    let text = file("be kind, always");
    let cut = text.find("kind, always").unwrap() + 2;
    rewrite_in_two_writes(&repo.join("groups/a.yaml"), &text, cut, Duration::from_millis(400));
    watch.eventually("the finished file applied", || {
        server.live("room-a") == Some(attrs(&[("motto", "be kind, always")]))
    });
    watch.settle(&server, &repo);
    let after: Vec<u64> = ["room-a", "room-b", "room-c", "room-d"].iter().map(|g| writes(&server, g)).collect();
    assert_eq!(after[0], before[0] + 1, "room-a written once, with the finished value:\n{}", watch.log());
    assert_eq!(after[1..], before[1..], "the groups after the cut never cleared:\n{}", watch.log());
    for (group, v) in others {
        assert_eq!(server.live(group), Some(attrs(&[("v", v)])));
    }
}

#[test]
fn a_config_rewritten_in_two_writes_never_applies_the_base_values() {
    let server = Server::start(|_| {});
    let config = server.config() + "overlays: [overlays/live.yaml]\n";
    let repo = Repo::new()
        .file("grattr.yaml", &config)
        .file("groups/a.yaml", &groups_yaml(&[("room", &[("v", "base")])]))
        .file("overlays/live.yaml", "groups:\n  - id: room\n    attributes: {v: live}\n");
    let watch = Watch::start(&repo, &["--settle", "1s"]);
    eventually(PATIENCE, "the first reconcile", || server.live("room") == Some(attrs(&[("v", "live")])));
    let before = writes(&server, "room");

    // Rewritten in place (a comment added), cut before its `overlays:` line.
    let text = format!("# production\n{config}");
    let cut = text.find("overlays:").unwrap();
    rewrite_in_two_writes(&repo.join("grattr.yaml"), &text, cut, Duration::from_millis(400));
    watch.wait_for_log("the configuration changed");
    watch.settle(&server, &repo);
    assert_eq!(writes(&server, "room"), before, "the base values never applied:\n{}", watch.log());
    assert_eq!(server.live("room"), Some(attrs(&[("v", "live")])));
}

#[test]
fn a_removal_waits_for_its_confirmation_and_a_reappearing_group_cancels_it() {
    let server = Server::start(|_| {});
    let both = |a: &str| groups_yaml(&[("room-a", &[("v", a)]), ("room-b", &[("v", "b")])]);
    let repo = Repo::new()
        .file("grattr.yaml", &(server.config() + "safety_threshold: 100\n"))
        .file("groups/a.yaml", &both("1"));
    let watch = Watch::start(&repo, &["--prune", "--confirm-removal", "3s"]);
    eventually(PATIENCE, "the first reconcile", || server.live("room-b") == Some(attrs(&[("v", "b")])));
    let pending = "grattr_groups_removal_pending";

    // room-b gone: its removal waits, while the edit of room-a goes ahead.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room-a", &[("v", "2")])]));
    eventually(PATIENCE, "the edit applied", || server.live("room-a") == Some(attrs(&[("v", "2")])));
    watch.wait_for_log("removal pending");
    assert_eq!(watch.metric(&server, pending), 1.0);
    assert_eq!(server.live("room-b"), Some(attrs(&[("v", "b")])), "not cleared yet");

    // Back before the confirmation: the removal is cancelled, nothing is cleared.
    let repo = repo.file("groups/a.yaml", &both("3"));
    eventually(PATIENCE, "the next edit applied", || server.live("room-a") == Some(attrs(&[("v", "3")])));
    watch.wait_for_log("removal cancelled");
    assert_eq!(watch.metric(&server, pending), 0.0);
    let room_b = writes(&server, "room-b");

    // Gone again and left gone: cleared once the confirmation is over.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room-a", &[("v", "3")])]));
    eventually(PATIENCE, "room-b cleared", || server.live("room-b") == Some(attrs(&[])));
    assert_eq!(writes(&server, "room-b"), room_b + 1);
    assert_eq!(watch.metric(&server, pending), 0.0);
    let (status, _) = watch.terminate();
    assert!(status.success(), "{status:?}");
    let lockfile = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
    assert_eq!(lockfile.groups.keys().map(GroupId::as_str).collect::<Vec<_>>(), vec!["room-a"]);
}

#[test]
fn a_long_plan_is_not_ready_and_sigterm_stops_it_at_once() {
    let (server, repo, watch) = watching_room("1", &[]);
    eventually(PATIENCE, "readiness", || watch.readyz(&server).0 == 200);
    // A big file (200,000 groups, 11 MB) takes seconds to read in a debug build; it
    // declares one group twice at its end, so that nothing of it is ever applied.
    let mut text = support::emulator::many_groups("big", 200_000);
    text += "  - id: big-0000\n    attributes:\n      v: twice\n";
    std::fs::write(repo.join("groups/big.yaml"), text).unwrap();
    eventually(PATIENCE, "not ready while planning", || {
        let (status, why) = watch.readyz(&server);
        status == 503 && why.contains("planning a change")
    });
    let (status, took) = watch.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert_eq!(server.live("room"), Some(attrs(&[("v", "1")])));
    // What was applied stays recorded.
    let lockfile = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
    assert_eq!(lockfile.groups.keys().map(GroupId::as_str).collect::<Vec<_>>(), vec!["room"]);
}

#[test]
fn an_invalid_state_with_a_retry_due_waits_for_the_files_instead_of_spinning() {
    // No group exists and none is created: "ghost" fails, and is retried every 200 ms.
    let server = Server::start(|config| config.auto_create_groups = false);
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("ghost", &[("v", "1")])]));
    let watch = Watch::start(&repo, &[]);
    watch.wait_for_log("will retry the group");
    // Invalid while the retry falls due: nothing can be planned until the files change.
    let repo = repo.file("groups/a.yaml", "groups:\n  - id: ghost\n    attributes: {v: ~}\n");
    eventually(PATIENCE, "not ready", || watch.get(&server, "/readyz").0 == 503);
    std::thread::sleep(Duration::from_millis(1500));
    let invalid = watch.log_count("invalid desired state");
    assert!(invalid <= 3, "the invalid state was reported {invalid} times in 1.5 s: the retry spins");
    // Valid again: the failing group is tried again with the rest.
    let _repo = repo.file("groups/a.yaml", &groups_yaml(&[("ghost", &[("v", "2")])]));
    eventually(PATIENCE, "the group tried again", || watch.log_count("will retry the group") >= 2);
}

//! Key ownership against the emulator: a group with `ownership: keys` keeps the
//! keys its members write (made here through the REST API, as a member's app
//! would) through everything grattr does, and the switches between ownerships do
//! what the plan says.

mod support;

use grattr::api::wire::Operation;
use grattr::model::{AppliedGroup, AttributeSet, Ownership};
use support::Repo;
use support::emulator::{Server, attrs, grattr, id};

/// A group file of one group with key ownership.
fn keys_group(group: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = format!("groups:\n  - id: {group}\n    ownership: keys\n    attributes:");
    if pairs.is_empty() {
        return text + " {}\n";
    }
    text.push('\n');
    for (key, value) in pairs {
        text += &format!("      {key}: {}\n", serde_json::Value::from(*value));
    }
    text
}

/// A member writes `pairs` into `group` (`modify_group_attr`, as the client SDKs do).
fn member_writes(server: &Server, group: &str, pairs: &[(&str, &str)]) {
    server.block_on(server.client().modify_group_attr(&id(group), &attrs(pairs))).unwrap();
}

fn lockfile(repo: &Repo) -> serde_json::Value {
    serde_json::from_str(&repo.read("grattr.lock")).unwrap()
}

#[test]
fn a_keys_group_keeps_members_keys_through_create_update_removal_and_prune() {
    let server = Server::start(|_| {});
    // The group exists, and members use it already.
    let repo =
        server.repo().file("groups/room.yaml", &keys_group("voice-1", &[("theme", "night"), ("rules", "be kind")]));
    member_writes(&server, "voice-1", &[("seat.1", "alice"), ("mic", "on")]);

    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    assert_eq!(
        server.get("voice-1"),
        attrs(&[("mic", "on"), ("rules", "be kind"), ("seat.1", "alice"), ("theme", "night")])
    );
    assert_eq!(server.sets(), 0, "never a full reset");
    let lock = lockfile(&repo);
    assert_eq!(lock["format_version"], 2);
    assert_eq!(lock["groups"]["voice-1"]["ownership"], "keys");
    assert_eq!(lock["groups"]["voice-1"]["attributes"], serde_json::json!({"rules": "be kind", "theme": "night"}));

    // An update and a removal: one modify of what changed, one delete of what is gone.
    member_writes(&server, "voice-1", &[("seat.2", "bob")]);
    let repo = repo.file("groups/room.yaml", &keys_group("voice-1", &[("theme", "day")]));
    let plan = grattr(&repo, &["plan"]).code(0).into_stdout();
    assert!(plan.contains("# key ownership: only grattr's keys are written"), "{plan}");
    let (modifies, deletes) = (
        server.emulator().stats().calls_to(Operation::ModifyGroupAttr),
        server.emulator().stats().calls_to(Operation::DeleteGroupAttr),
    );
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    let stats = server.emulator().stats();
    assert_eq!(
        (stats.calls_to(Operation::ModifyGroupAttr) - modifies, stats.calls_to(Operation::DeleteGroupAttr) - deletes),
        (1, 1)
    );
    assert_eq!(
        server.get("voice-1"),
        attrs(&[("mic", "on"), ("seat.1", "alice"), ("seat.2", "bob"), ("theme", "day")])
    );

    // Nothing to do: members' keys are not a change.
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();

    // Pruned: only grattr's keys are deleted; the group is never cleared.
    // (Another group stays declared: a keys group with no key, created by a record alone.)
    let repo = repo.remove("groups/room.yaml").file("groups/other.yaml", &keys_group("lobby", &[]));
    let plan = grattr(&repo, &["plan", "--prune"]).code(0).into_stdout();
    assert!(plan.contains("# grattr deletes only its keys; the group is not cleared"), "{plan}");
    assert!(plan.contains("+ lobby will be created"), "{plan}");
    assert!(plan.contains("# key ownership: no call, only the record changes"), "{plan}");
    grattr(&repo, &["apply", "--yes", "--prune"]).code(0).stdout_contains("Apply complete: 2 applied, 0 failed");
    assert_eq!(server.get("voice-1"), attrs(&[("mic", "on"), ("seat.1", "alice"), ("seat.2", "bob")]));
    assert_eq!(
        lockfile(&repo)["groups"]["lobby"]["attributes"],
        serde_json::json!({}),
        "owns no key of it, and says so"
    );
    assert_eq!(server.emulator().stats().calls_to(Operation::ClearGroupAttr), 0);
    assert!(lockfile(&repo)["groups"].get("voice-1").is_none(), "forgotten");
}

#[test]
fn refresh_and_drift_compare_only_the_owned_keys_and_count_the_members() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/room.yaml", &keys_group("voice-1", &[("theme", "night")]));
    grattr(&repo, &["apply", "--yes"]).code(0).ignore_stdout();
    member_writes(&server, "voice-1", &[("seat.1", "alice"), ("seat.2", "bob"), ("mic", "on")]);

    // Members' keys are not drift, and a refresh plans nothing.
    let drift = grattr(&repo, &["drift", "--detailed-exitcode"]).code(0).into_stdout();
    assert!(drift.contains("No drift."), "{drift}");
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();

    // A member overwriting grattr's key is drift of that key only, and the heal writes only it.
    member_writes(&server, "voice-1", &[("theme", "pink")]);
    let drift = grattr(&repo, &["drift", "--detailed-exitcode"]).code(2).into_stdout();
    assert!(drift.contains("3 keys not managed by grattr"), "{drift}");
    assert!(drift.contains("~ theme = \"night\" → \"pink\" (applied → live)"), "{drift}");
    let json = grattr(&repo, &["drift", "--format", "json"]).code(0).json();
    assert_eq!(json["groups"][0]["ownership"], "keys");
    assert_eq!(json["groups"][0]["unmanaged_keys"], serde_json::json!(["mic", "seat.1", "seat.2"]));
    assert_eq!(json["groups"][0]["live"], serde_json::json!({"theme": "pink"}));

    grattr(&repo, &["apply", "--yes", "--refresh"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    assert_eq!(
        server.get("voice-1"),
        attrs(&[("mic", "on"), ("seat.1", "alice"), ("seat.2", "bob"), ("theme", "night")])
    );
    assert_eq!(server.sets(), 0);
}

#[test]
fn switching_ownership_both_ways() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/room.yaml", &keys_group("voice-1", &[("theme", "night")]));
    grattr(&repo, &["apply", "--yes"]).code(0).ignore_stdout();
    member_writes(&server, "voice-1", &[("seat.1", "alice")]);

    // keys → group: a full reset, which the plan says removes the members' keys (and lists them with --refresh).
    let repo = repo.file("groups/room.yaml", "groups:\n  - id: voice-1\n    attributes:\n      theme: night\n");
    let plan = grattr(&repo, &["plan"]).code(0).into_stdout();
    assert!(plan.contains("~ voice-1 will be updated"), "{plan}");
    assert!(
        plan.contains(
            "# ownership keys → group: a full reset, which removes the keys members wrote (plan --refresh lists them)"
        ),
        "{plan}"
    );
    let plan = grattr(&repo, &["plan", "--refresh"]).code(0).into_stdout();
    assert!(plan.contains("a full reset, which removes 1 key members wrote: seat.1"), "{plan}");
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    assert_eq!(server.get("voice-1"), attrs(&[("theme", "night")]));
    assert_eq!(server.sets(), 1);
    assert!(lockfile(&repo)["groups"]["voice-1"].get("ownership").is_none());
    assert_eq!(lockfile(&repo)["format_version"], 1, "no group has key ownership any more");

    // group → keys: no call, only the record changes.
    let calls = server.emulator().stats().calls_to(Operation::ModifyGroupAttr) + server.sets();
    let repo = repo.file("groups/room.yaml", &keys_group("voice-1", &[("theme", "night")]));
    let plan = grattr(&repo, &["plan"]).code(0).into_stdout();
    assert!(plan.contains("# ownership group → keys: no call, only the record changes"), "{plan}");
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    assert_eq!(server.emulator().stats().calls_to(Operation::ModifyGroupAttr) + server.sets(), calls, "no call");
    assert_eq!(lockfile(&repo)["groups"]["voice-1"]["ownership"], "keys");
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
}

#[test]
fn a_limit_met_because_of_members_keys_says_so() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/room.yaml", &keys_group("voice-1", &[("a", "1"), ("b", "2"), ("c", "3")]));
    let members: Vec<(String, String)> = (0..14).map(|i| (format!("seat.{i}"), "x".to_string())).collect();
    let members: Vec<(&str, &str)> = members.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    member_writes(&server, "voice-1", &members);

    let run = grattr(&repo, &["apply", "--yes", "--refresh"]).code(1).ignore_stderr().into_stdout();
    assert!(run.contains("1 failed"), "{run}");
    assert!(
        run.contains(
            "hint: the group's keys members wrote (members wrote 14 keys) and grattr's together exceed the service's \
             limit of 16 keys or 16000 bytes"
        ),
        "{run}"
    );
    assert_eq!(server.get("voice-1").len(), 14, "nothing of grattr's was written");
}

#[test]
fn a_delete_that_fails_after_the_modify_records_the_modify_and_the_next_run_completes() {
    let server = Server::start(|_| {});
    // The record says grattr owns a key the service refuses to delete (over 32 bytes):
    // the delete fails after the modify succeeded.
    let long_key = "k".repeat(33);
    let mut recorded = AttributeSet::new();
    recorded.insert("theme".into(), "night".into());
    recorded.insert(long_key.clone(), "x".into());
    let record = AppliedGroup::owned(recorded, Ownership::Keys);
    let lock = serde_json::json!({
        "format_version": 2,
        "sdkappid": 1400000000,
        "groups": { "voice-1": record },
    });
    member_writes(&server, "voice-1", &[("seat.1", "alice"), ("theme", "night")]);
    let repo = server
        .repo()
        .file("groups/room.yaml", &keys_group("voice-1", &[("theme", "day")]))
        .file("grattr.lock", &serde_json::to_string_pretty(&lock).unwrap());

    let run = grattr(&repo, &["apply", "--yes"]).code(1).ignore_stderr().into_stdout();
    assert!(run.contains("0 applied, 1 failed"), "{run}");
    assert_eq!(server.get("voice-1"), attrs(&[("seat.1", "alice"), ("theme", "day")]), "the modify stands");
    // What the modify did is recorded: the next plan only deletes.
    let recorded = &lockfile(&repo)["groups"]["voice-1"];
    assert_eq!(recorded["attributes"], serde_json::json!({ long_key.clone(): "x", "theme": "day" }));
    let plan = grattr(&repo, &["plan", "--format", "json"]).code(0).json();
    assert_eq!(plan["changes"][0]["keys"], serde_json::json!({"added": [], "removed": [long_key], "changed": []}));
}

#[test]
fn import_adopts_only_the_named_keys() {
    let server = Server::start(|_| {});
    member_writes(&server, "voice-1", &[("theme", "night"), ("seat.1", "alice"), ("rules", "be kind")]);
    let repo = server.repo().dir("groups");
    grattr(&repo, &["import", "voice-1", "--ownership", "keys", "--key", "theme", "--key", "rules"])
        .code(0)
        .stdout_contains("Imported 1 group(s)");
    let yaml = repo.read("groups/imported.yaml");
    assert!(yaml.contains("  - id: voice-1\n    ownership: keys\n    attributes:\n"), "{yaml}");
    assert!(!yaml.contains("seat.1"), "{yaml}");
    assert_eq!(
        lockfile(&repo)["groups"]["voice-1"]["attributes"],
        serde_json::json!({"rules": "be kind", "theme": "night"})
    );
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
    grattr(&repo, &["import", "voice-2", "--ownership", "keys"])
        .code(1)
        .stderr("error: --ownership keys adopts only the keys named: give them with --key KEY\n");
}

#[test]
fn an_unknown_ownership_is_an_error_at_its_line() {
    let repo = Repo::new()
        .file("grattr.yaml", "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\n")
        .file("groups/room.yaml", "groups:\n  - id: voice-1\n    ownership: members\n    attributes: {}\n");
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    assert!(
        stderr.starts_with("groups/room.yaml:3:16: error: ownership must be `group` or `keys`, not \"members\"\n"),
        "{stderr}"
    );
}

// Unix only: it kills grattr with SIGKILL at a chosen moment.
#[cfg(unix)]
#[test]
fn a_kill_between_the_modify_and_the_delete_converges_on_the_next_run() {
    use grattr::emulator::Latency;
    use grattr::lockfile::Lockfile;
    use std::time::{Duration, Instant};
    let ids: Vec<String> = (0..24).map(|i| format!("room-{i:02}")).collect();
    let mut yaml = String::from("groups:\n");
    for group in &ids {
        yaml += &format!("  - id: {group}\n    ownership: keys\n    attributes:\n      v: new\n");
    }
    let mut between = 0;
    for round in 0..3 {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(3)));
        // Each group: grattr owns `v` (to change) and `gone` (to delete); a member owns `m`.
        let mut lock = Lockfile::new(1400000000);
        for group in &ids {
            member_writes(&server, group, &[("v", "old"), ("gone", "x"), ("m", "member")]);
            lock.groups.insert(id(group), AppliedGroup::owned(attrs(&[("v", "old"), ("gone", "x")]), Ownership::Keys));
        }
        // Every recorded group changes: past the default safety threshold.
        let config = server.config() + "safety_threshold: 100\n";
        let repo = server.repo().file("grattr.yaml", &config).file("groups/rooms.yaml", &yaml);
        lock.write(&repo.join("grattr.lock")).unwrap();
        let stats = || {
            let s = server.emulator().stats();
            (s.calls_to(Operation::ModifyGroupAttr), s.calls_to(Operation::DeleteGroupAttr))
        };
        let base = stats();
        let mut child = support::emulator::spawn_apply(repo.path());
        // Kill once some group's modify has reached the service and its delete has not.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (modifies, deletes) = stats();
            let (modifies, deletes) = (modifies - base.0, deletes - base.1);
            if modifies > deletes && modifies > round * 6 {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "round {round}: the apply ended before a kill");
            assert!(Instant::now() < deadline, "round {round}: no progress");
            std::thread::sleep(Duration::from_micros(200));
        }
        // SAFETY: kill(2) on the child this test spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let (modifies, deletes) = stats();
        if modifies - base.0 > deletes - base.1 {
            between += 1;
        }
        // What the killed run recorded is live; a group it did not record is recorded as
        // before (its modify may have landed: the next run sends it again, which is harmless).
        // Members' keys are untouched.
        let after_kill = Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
        for (group, record) in &after_kill.groups {
            let live = server.live(group.as_str()).unwrap();
            assert_eq!(live.get("m"), Some("member"), "round {round}: {group}");
            if record != &lock.groups[group] {
                for (key, value) in &record.attributes {
                    assert_eq!(live.get(key), Some(value), "round {round}: {group} records {key} but it is not live");
                }
            }
        }
        // The next run completes every change.
        grattr(&repo, &["apply", "--yes"]).code(0).ignore_stderr().stdout_contains("0 failed");
        for group in &ids {
            assert_eq!(server.live(group), Some(attrs(&[("m", "member"), ("v", "new")])), "round {round}: {group}");
        }
        let done = Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
        assert!(done.groups.values().all(|g| g.attributes == attrs(&[("v", "new")]) && g.ownership == Ownership::Keys));
        grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
    }
    assert!(between >= 1, "no kill landed between a modify and its delete");
}

#[test]
fn grattr_yaml_sets_the_default_and_a_group_file_overrides_it() {
    let server = Server::start(|_| {});
    let config = server.config() + "ownership: keys\n";
    let repo = server.repo().file("grattr.yaml", &config).file(
        "groups/rooms.yaml",
        "groups:\n  - id: voice-1\n    attributes:\n      theme: night\n  - id: lobby\n    ownership: group\n    attributes:\n      theme: day\n",
    );
    member_writes(&server, "voice-1", &[("seat.1", "alice")]);
    member_writes(&server, "lobby", &[("stray", "x")]);
    let plan = grattr(&repo, &["plan", "--format", "json"]).code(0).json();
    let ownership: Vec<_> = plan["changes"].as_array().unwrap().iter().map(|c| c["ownership"].clone()).collect();
    assert_eq!(ownership, [serde_json::json!("group"), serde_json::json!("keys")], "lobby, voice-1");
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 2 applied, 0 failed");
    assert_eq!(server.get("voice-1"), attrs(&[("seat.1", "alice"), ("theme", "night")]));
    assert_eq!(server.get("lobby"), attrs(&[("theme", "day")]), "a full reset");

    let repo = repo.file("grattr.yaml", &(server.config() + "ownership: members\n"));
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    assert!(
        stderr.starts_with(
            "grattr.yaml:6:12: error: ownership: \"members\" is neither `group` nor `keys` (the ownership of groups whose file does not say)\n"
        ),
        "{stderr}"
    );
}

#[test]
fn import_says_the_ownership_a_group_would_not_inherit_from_grattr_yaml() {
    let server = Server::start(|_| {});
    member_writes(&server, "lobby", &[("theme", "day")]);
    member_writes(&server, "voice-1", &[("theme", "night"), ("seat.1", "alice")]);
    let repo = server.repo().file("grattr.yaml", &(server.config() + "ownership: keys\n")).dir("groups");
    // With key ownership the default, a group imported whole says so.
    grattr(&repo, &["import", "lobby"]).code(0).ignore_stdout();
    assert!(repo.read("groups/imported.yaml").contains("  - id: lobby\n    ownership: group\n"));
    // One imported with key ownership inherits it.
    grattr(&repo, &["import", "voice-1", "--ownership", "keys", "--key", "theme", "--out", "groups/v.yaml"])
        .code(0)
        .ignore_stdout();
    assert!(repo.read("groups/v.yaml").contains("  - id: voice-1\n    attributes:\n      theme: night\n"));
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
}

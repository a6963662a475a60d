//! `grattr apply` end to end: the real binary against an emulator on 127.0.0.1,
//! whose statistics prove exactly which calls were made.

mod support;

use grattr::api::wire::{GroupType, Operation};
use grattr::emulator::Latency;
use grattr::lockfile::{LockGuard, Lockfile};
use grattr::model::GroupId;
use std::time::Duration;
use support::emulator::{KEY, Server, attrs, groups_yaml, many_groups, spawn_apply};
use support::{Repo, Run};

#[must_use = "a run checks its output only through its assertions"]
#[track_caller]
fn apply(repo: &Repo, args: &[&str]) -> Run {
    let mut all = vec!["apply"];
    all.extend_from_slice(args);
    let run = repo.run_with_env(&all, &[("GRATTR_SECRET_KEY", KEY)]);
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the secret leaked");
    assert!(!run.stdout.contains("usersig=") && !run.stderr.contains("usersig="), "a URL with the UserSig leaked");
    run
}

/// Saves the plan to `file` (`grattr plan --out file`, and `args`); what it shows is
/// checked elsewhere.
#[track_caller]
fn save_plan(repo: &Repo, file: &str, args: &[&str]) {
    let mut all = vec!["plan", "--out", file];
    all.extend_from_slice(args);
    repo.run(&all)
        .code(0)
        .ignore_stdout()
        .stderr(&format!("Saved the plan to {file}; apply it with `grattr apply {file}`.\n"));
}

fn recorded(repo: &Repo) -> Lockfile {
    Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap()
}

#[test]
fn apply_makes_one_call_per_changed_group_and_nothing_else() {
    let server = Server::start(|_| {});
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[("lobby", &[("theme", "dark"), ("banner", "hi")]), ("support-eu", &[("hours", "9-17")])]),
    );
    // First apply creates everything.
    apply(&repo, &["--yes"]).code(0).stdout_contains("Apply complete: 2 applied, 0 failed, 0 skipped, 0 unchanged");
    assert_eq!(server.sets(), 2);
    assert_eq!(server.get("lobby"), attrs(&[("theme", "dark"), ("banner", "hi")]));
    assert_eq!(recorded(&repo).groups.len(), 2);
    assert!(!repo.join(".grattr.lock.journal").exists(), "the journal was folded");
    // An immediate second apply makes no call at all.
    let before = server.emulator().stats().total;
    apply(&repo, &["--yes"])
        .code(0)
        .stdout_contains("No changes: the desired state matches what grattr.lock records as applied.");
    assert_eq!(server.emulator().stats().total, before, "zero calls");
    // Editing one group makes exactly one call, with exactly the new attributes.
    let repo = repo
        .file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "light")]), ("support-eu", &[("hours", "9-17")])]));
    apply(&repo, &["--yes"]).code(0).stdout_contains("1 applied");
    assert_eq!(server.sets(), 3);
    assert_eq!(server.emulator().stats().groups["lobby"].writes, 2);
    assert_eq!(server.emulator().stats().groups["support-eu"].writes, 1);
    assert_eq!(server.get("lobby"), attrs(&[("theme", "light")]));
    // Removing a group leaves it alone without --prune, and clears and forgets it with it.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("lobby", &[("theme", "light")])]));
    apply(&repo, &["--yes"]).code(0).stdout_contains("support-eu is no longer declared; left as is");
    assert_eq!(server.get("support-eu"), attrs(&[("hours", "9-17")]));
    apply(&repo, &["--yes", "--prune"])
        .code(0)
        .stdout_contains("support-eu will be cleared and forgotten")
        .stdout_contains("1 applied");
    assert!(server.get("support-eu").is_empty());
    assert!(!recorded(&repo).groups.contains_key(&GroupId::parse("support-eu").unwrap()));
    assert_eq!(server.emulator().stats().calls_to(Operation::ClearGroupAttr), 1);
}

#[test]
fn empty_attributes_clear_and_community_groups_fall_back_to_delete() {
    let server = Server::start(|config| {
        config.groups = vec![(GroupId::parse("@TGS#_@TGS#cMAKERS").unwrap(), GroupType::Community)];
    });
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[("@TGS#_@TGS#cMAKERS", &[("a", "1"), ("b", "2")]), ("room", &[("x", "y")])]),
    );
    apply(&repo, &["--yes"]).code(0).stdout_contains("Apply complete: 2 applied, 0 failed");
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("@TGS#_@TGS#cMAKERS", &[]), ("room", &[])]));
    apply(&repo, &["--yes"])
        .code(0)
        .stdout_contains("(no attributes: the group will be cleared)")
        .stdout_contains("2 applied");
    assert!(server.get("@TGS#_@TGS#cMAKERS").is_empty());
    assert!(server.get("room").is_empty());
    let stats = server.emulator().stats();
    assert_eq!(stats.answers(10007), 0, "a Community group is never sent a clear: its keys are deleted");
    assert_eq!(stats.calls_to(Operation::DeleteGroupAttr), 1);
    assert_eq!(stats.calls_to(Operation::SetGroupAttr), 2, "never a set with an empty list");
    assert!(recorded(&repo).groups.values().all(|g| g.attributes.is_empty()));
}

#[test]
fn without_a_terminal_yes_is_required() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "b")])]));
    apply(&repo, &[])
        .code(1)
        .stdout_contains("Plan: 1 to create, 0 to update, 0 to delete, 0 unchanged.")
        .stderr_contains("pass --yes to apply; nothing was applied");
    assert_eq!(server.emulator().stats().total, 0);
    assert!(!repo.join("grattr.lock").exists());
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_when_stale() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "1")])]));
    save_plan(&repo, "reviewed.json", &[]);
    // The desired state changes after review: the saved plan is stale.
    let repo = repo.file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "2")])]));
    apply(&repo, &["reviewed.json", "--yes"])
        .code(1)
        .stderr_contains("is stale: the desired state (groups/) changed since it was made; nothing was applied");
    assert_eq!(server.emulator().stats().total, 0);
    // A fresh plan applies exactly as reviewed.
    save_plan(&repo, "reviewed.json", &[]);
    apply(&repo, &["reviewed.json", "--yes"]).code(0).stdout_contains("1 applied");
    assert_eq!(server.get("room"), attrs(&[("a", "2")]));
    // Applying it again: the lockfile changed since, so it is stale too.
    apply(&repo, &["reviewed.json", "--yes"]).code(1).stderr_contains("the lockfile changed (another apply ran)");
    apply(&repo, &["no-such-plan.json", "--yes"]).code(1).stderr_contains("cannot read the plan");
}

/// Groups `g-00`..`g-11`, each `k` = `value(i)`, those with a value.
fn twelve(value: impl Fn(usize) -> Option<String>) -> String {
    let values: Vec<(String, String)> = (0..12).filter_map(|i| Some((format!("g-{i:02}"), value(i)?))).collect();
    let groups: Vec<(&str, [(&str, &str); 1])> =
        values.iter().map(|(id, v)| (id.as_str(), [("k", v.as_str())])).collect();
    let groups: Vec<(&str, &[(&str, &str)])> = groups.iter().map(|(id, kv)| (*id, &kv[..])).collect();
    groups_yaml(&groups)
}

/// An edit of a saved plan's JSON.
type Edit<'a> = dyn FnOnce(&mut serde_json::Value) + 'a;

/// Saves a plan, edits it with `edit`, and asserts that applying it is refused
/// naming `expected`, with no call made and the lockfile untouched.
#[track_caller]
fn edited_plan_is_refused(
    server: &Server,
    repo: &Repo,
    plan_args: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
    expected: &str,
) {
    save_plan(repo, "edited.json", plan_args);
    let mut plan: serde_json::Value = serde_json::from_str(&repo.read("edited.json")).unwrap();
    edit(&mut plan);
    std::fs::write(repo.join("edited.json"), serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let lockfile = repo.read("grattr.lock");
    let calls = server.emulator().stats().total;
    apply(repo, &["edited.json", "--yes"]).code(1).stderr_contains(expected).stderr_contains("nothing was applied");
    assert_eq!(server.emulator().stats().total, calls, "nothing was sent");
    assert_eq!(repo.read("grattr.lock"), lockfile, "nothing was recorded");
}

#[test]
fn an_edited_saved_plan_is_refused_and_only_the_plan_computed_now_runs() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &twelve(|_| Some("1".into())));
    apply(&repo, &["--yes"]).code(0).stdout_contains("12 applied");
    // g-00 and g-01 change; g-11 is no longer declared.
    let repo = repo.file(
        "groups/a.yaml",
        &twelve(|i| match i {
            0 | 1 => Some("2".into()),
            11 => None,
            _ => Some("1".into()),
        }),
    );
    let change = |plan: &mut serde_json::Value, group: &str| -> usize {
        plan["changes"].as_array().unwrap().iter().position(|c| c["group_id"] == group).unwrap()
    };
    let cases: Vec<(&[&str], Box<Edit<'_>>, &str)> = vec![
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["after"]["k"] = "EVIL".into();
            }),
            "group g-00: value of k differs from the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["after"]["admin"] = "me".into();
            }),
            "group g-00: key admin is in the saved plan but not in the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let mut extra = p["changes"][0].clone();
                extra["group_id"] = "nobody-declares-me".into();
                p["changes"].as_array_mut().unwrap().push(extra);
            }),
            "group nobody-declares-me: in the saved plan but not in the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                p["changes"].as_array_mut().unwrap().remove(0);
            }),
            "group g-00: in the plan computed now but not in the saved plan",
        ),
        (&[], Box::new(|p| p["summary"]["update"] = 0.into()), "the summary differs from the plan computed now"),
        (&[], Box::new(|p| p["prune"] = true.into()), "group g-11: in the plan computed now but not in the saved plan"),
        (
            &["--target", "g-00"],
            Box::new(|p| p["targets"] = serde_json::Value::Null),
            "group g-01: in the plan computed now but not in the saved plan",
        ),
        (
            &["--target", "g-00"],
            Box::new(|p| p["targets"] = serde_json::json!(["g-01"])),
            "group g-00: in the saved plan but not in the plan computed now",
        ),
        (
            &["--target", "g-00"],
            Box::new(|p| p["targets"] = serde_json::json!(["ghost"])),
            "--target \"ghost\": no such group is declared or recorded",
        ),
        (
            &[],
            Box::new(|p| p["environment"]["sdkappid"] = 1.into()),
            "the environment (name or sdkappid) differs from the plan computed now",
        ),
        (&[], Box::new(|p| p["smuggled"] = true.into()), "unknown field `smuggled`"),
        (&[], Box::new(|p| p["fingerprint"] = serde_json::Value::Null), "has no fingerprint"),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["ownership"] = "keys".into();
            }),
            "group g-00: its ownership is keys in the saved plan but group in the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["ownership_from"] = "keys".into();
            }),
            "group g-00: the ownership it switches from differs from the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["unmanaged_keys"] = serde_json::json!(["seat.1"]);
            }),
            "group g-00: the keys members wrote differ from the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["keys"]["sources"]["k"]["line"] = 1.into();
            }),
            "group g-00: where its keys get their values differs from the plan computed now",
        ),
        (
            &[],
            Box::new(|p| {
                let i = change(p, "g-00");
                p["changes"][i]["keys"].as_object_mut().unwrap().remove("sources").unwrap();
            }),
            "group g-00: where its keys get their values differs from the plan computed now",
        ),
    ];
    for (plan_args, edit, expected) in cases {
        edited_plan_is_refused(&server, &repo, plan_args, edit, expected);
    }
    // A key given twice in `after`: JSON readers disagree on which one counts.
    save_plan(&repo, "twice.json", &[]);
    let text = repo.read("twice.json");
    let twice = text.replacen("\"after\": {", "\"after\": {\"k\": \"EVIL\",", 1);
    assert_ne!(twice, text);
    std::fs::write(repo.join("twice.json"), twice).unwrap();
    let calls = server.emulator().stats().total;
    apply(&repo, &["twice.json", "--yes"])
        .code(1)
        .stderr_contains("attribute key \"k\" given twice")
        .stderr_contains("nothing was applied");
    assert_eq!(server.emulator().stats().total, calls, "nothing was sent");
    // Unedited, the same plan applies, exactly as reviewed.
    save_plan(&repo, "reviewed.json", &[]);
    apply(&repo, &["reviewed.json", "--yes"]).code(0).stdout_contains("2 applied");
    assert_eq!(server.get("g-00"), attrs(&[("k", "2")]));
    assert_eq!(server.get("g-11"), attrs(&[("k", "1")]), "left alone: pruning was off");
}

#[test]
fn a_saved_plan_over_the_safety_threshold_is_refused_whatever_its_summary_says() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &twelve(|_| Some("1".into())));
    apply(&repo, &["--yes"]).code(0).stdout_contains("Apply complete: 12 applied, 0 failed");
    let repo = repo.file("groups/a.yaml", &twelve(|_| Some("2".into())));
    // The file's own counts are never read: its summary, edited under the threshold,
    // makes it an edited plan; unedited, the plan computed now is over the threshold.
    edited_plan_is_refused(&server, &repo, &[], |p| p["summary"]["update"] = 0.into(), "the summary differs");
    save_plan(&repo, "reviewed.json", &[]);
    apply(&repo, &["reviewed.json", "--yes"]).code(1).stderr_contains(
        "refusing to apply: the plan updates or deletes 12 of the 12 groups the lockfile records (100%)",
    );
    apply(&repo, &["reviewed.json", "--yes", "--force"]).code(0).stdout_contains("12 applied");
}

#[test]
fn a_permanent_failure_is_reported_and_the_others_go_on() {
    let server = Server::start(|config| {
        config.auto_create_groups = false;
        config.groups = vec![
            (GroupId::parse("exists-1").unwrap(), GroupType::Public),
            (GroupId::parse("exists-2").unwrap(), GroupType::Public),
        ];
    });
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[("exists-1", &[("a", "1")]), ("ghost", &[("a", "1")]), ("exists-2", &[("a", "1")])]),
    );
    // Stderr holds the failure's log line, time-stamped, too.
    let failed = "failed: ghost: set_group_attr: invalid group id (the group does not exist) [10015] \
                  (invalid group id: the group does not exist)\n";
    apply(&repo, &["--yes"])
        .code(1)
        .stdout_contains(
            "Failures:\n  ghost (groups/a.yaml:5): set_group_attr: invalid group id (the group does not exist) [10015]",
        )
        .stdout_contains("hint: the group does not exist (it was never created")
        .stdout_contains("2 applied, 1 failed, 0 skipped")
        .stdout_contains("Recorded 2 group(s) in grattr.lock.")
        .stderr_contains(failed);
    assert_eq!(recorded(&repo).groups.len(), 2, "the successes were recorded");
    assert_eq!(server.live("exists-2"), Some(attrs(&[("a", "1")])));
    // --format json says the same for machines.
    let mut json = apply(&repo, &["--yes", "--format", "json"]).code(1).stderr_contains(failed).json();
    assert_eq!(json["summary"]["failed"], 1);
    assert_eq!(json["failed"][0]["group_id"], "ghost");
    assert_eq!(json["failed"][0]["code"], 10015);
    assert_eq!(json["failed"][0]["source"]["line"], 5);
    json["duration_ms"] = "[how long it took]".into();
    insta::assert_json_snapshot!("apply_json_with_a_failure", json);
    // --fail-fast stops starting calls after it.
    let repo = repo.file(
        "groups/a.yaml",
        &groups_yaml(&[("aaa-ghost", &[("a", "1")]), ("exists-1", &[("a", "2")]), ("exists-2", &[("a", "2")])]),
    );
    apply(&repo, &["--yes", "--fail-fast", "--concurrency", "1"])
        .code(1)
        .stdout_contains("0 applied, 1 failed, 2 skipped")
        .stdout_contains("Nothing was recorded.")
        .stderr_contains("failed: aaa-ghost: set_group_attr: invalid group id (the group does not exist) [10015]");
}

#[test]
fn a_second_apply_is_refused_naming_the_holder_or_waits() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "1")])]));
    let held = LockGuard::acquire(&repo.join("grattr.lock"), "watch", Duration::ZERO).unwrap();
    let stderr = apply(&repo, &["--yes"]).code(1).into_stderr();
    assert!(stderr.contains(&format!("is locked by grattr watch (pid {} on ", std::process::id())), "{stderr}");
    assert!(stderr.contains("nothing was applied"), "{stderr}");
    assert_eq!(server.emulator().stats().total, 0);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(held);
    });
    apply(&repo, &["--yes", "--lock-timeout", "10s"]).code(0).stdout_contains("1 applied");
    release.join().unwrap();
}

#[test]
fn the_safety_guard_refuses_a_sweeping_change_without_force() {
    let server = Server::start(|_| {});
    let ids: Vec<String> = (0..10).map(|i| format!("g{i}")).collect();
    let write = |value: &str, count: usize| {
        let groups: Vec<(&str, &[(&str, &str)])> = ids.iter().map(|id| (id.as_str(), &[][..])).collect();
        let mut text = groups_yaml(&groups[..0]);
        for (i, id) in ids.iter().enumerate() {
            let v = if i < count { value } else { "base" };
            text += &format!("  - id: {id}\n    attributes:\n      k: {v}\n");
        }
        text
    };
    let repo = server.repo().file("groups/a.yaml", &write("base", 0));
    apply(&repo, &["--yes"]).code(0).stdout_contains("Apply complete: 10 applied, 0 failed");
    // 3 of 10 (30%) is allowed; 4 of 10 is not.
    let repo = repo.file("groups/a.yaml", &write("v2", 3));
    apply(&repo, &["--yes"]).code(0).stdout_contains("3 applied");
    let repo = repo.file("groups/a.yaml", &write("v3", 4));
    apply(&repo, &["--yes"]).code(1).stderr_contains(
        "updates or deletes 4 of the 10 groups the lockfile records (40%), over the safety threshold of 30%",
    );
    apply(&repo, &["--yes", "--force"]).code(0).stdout_contains("4 applied");
}

#[test]
fn thirty_percent_faults_converge_to_every_group_correct() {
    let server = Server::start(|config| {
        config.fault_rate = 0.3;
        config.stall = Duration::from_secs(3);
        config.latency = Latency::Between(Duration::ZERO, Duration::from_millis(3));
    });
    let ids: Vec<String> = (0..500).map(|i| format!("fault-{i:03}")).collect();
    let mut text = String::from("groups:\n");
    for id in &ids {
        text += &format!("  - id: {id}\n    attributes:\n      owner: {id}\n      tier: gold\n");
    }
    let config = server.config().replace("request_timeout: 2s", "request_timeout: 500ms");
    let repo = Repo::new().file("grattr.yaml", &config).file("groups/many.yaml", &text);
    // Out of retries, a few may fail; a rerun applies only what is missing.
    let mut runs = 0;
    loop {
        runs += 1;
        // Stderr logs the faults.
        let run = apply(&repo, &["--yes", "--concurrency", "64"]).ignore_stderr();
        if run.code == 0 {
            run.code(0).stdout_contains("Apply complete:");
            break;
        }
        let stdout = run.code(1).into_stdout();
        assert!(runs < 4, "did not converge:\n{stdout}");
    }
    let faults = server.emulator().stats().faults;
    assert!(faults.len() == 4, "all four kinds of fault were injected: {faults:?}");
    let lockfile = recorded(&repo);
    for id in &ids {
        let wanted = attrs(&[("owner", id), ("tier", "gold")]);
        assert_eq!(server.live(id), Some(wanted.clone()), "{id}");
        assert_eq!(lockfile.groups[&GroupId::parse(id).unwrap()].attributes, wanted);
    }
}

// Unix only: it sends SIGKILL (a Windows kill is TerminateProcess, which Child::kill already is, but the moments are chosen by signal).
#[cfg(unix)]
#[test]
fn sigkill_at_any_moment_loses_nothing_and_claims_nothing() {
    let ids: Vec<String> = (0..80).map(|i| format!("crash-{i:04}")).collect();
    let text = many_groups("crash", ids.len());
    let mut mid_run = 0;
    for round in 0..20usize {
        let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(2)));
        let repo = server.repo().file("groups/many.yaml", &text);
        let mut child = spawn_apply(repo.path());
        // Kill at moments spread across the run and around it, by progress rather than by
        // time: round 0 at once, the last round once it has exited on its own, the others
        // once the journal holds `round × 4` records (one line per group recorded).
        let journal = repo.join(".grattr.lock.journal");
        let records = || std::fs::read(&journal).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while round > 0 && (round == 19 || records() < round * 4) && child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "round {round}: the apply made no progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: kill(2) on the child this test spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();

        // The lockfile (with the journal) parses, and records nothing that is not live.
        let after_kill = Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
        if (1..ids.len()).contains(&after_kill.groups.len()) {
            mid_run += 1;
        }
        for (id, group) in &after_kill.groups {
            assert_eq!(
                server.live(id.as_str()).as_ref(),
                Some(&group.attributes),
                "round {round}: {id} is recorded but not live"
            );
        }
        // A rerun converges, calling only for what was not recorded. A request the killed
        // process had already sent may still reach the server during the rerun, so the rerun's
        // calls are told apart per group: a recorded group had its answer before the kill, so
        // any later write to it could only come from the rerun.
        let writes = |id: &GroupId| server.emulator().stats().groups.get(id.as_str()).map_or(0, |g| g.writes);
        let writes_before: Vec<u64> = after_kill.groups.keys().map(writes).collect();
        let unrecorded = ids.len() - after_kill.groups.len();
        // What the killed run recorded and did not fold is recovered first, and said so.
        let recovered = match records() {
            0 => String::new(),
            n => format!("Recovered {n} change(s) recorded by an interrupted run into grattr.lock.\n"),
        };
        let rerun = apply(&repo, &["--yes"]).code(0).stderr(&recovered);
        match unrecorded {
            0 => rerun.stdout_contains("No changes: the desired state matches what grattr.lock records as applied."),
            n => rerun.stdout_contains(&format!("Apply complete: {n} applied, 0 failed")),
        };
        let writes_after: Vec<u64> = after_kill.groups.keys().map(writes).collect();
        assert_eq!(writes_after, writes_before, "round {round}: a recorded group was written again");
        for id in &ids {
            assert_eq!(server.live(id), Some(attrs(&[("v", id.as_str())])), "round {round}: {id}");
        }
        assert_eq!(recorded(&repo).groups.len(), ids.len());
    }
    assert!(mid_run >= 1, "no kill landed mid-run (some but not all groups recorded)");
}

// Unix only: it sends SIGTERM, which Windows has no equivalent of that a test can send to a child.
#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly_and_records_what_was_done() {
    let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(5)));
    let repo = server.repo().file("groups/many.yaml", &many_groups("term", 400));
    let child = spawn_apply(repo.path());
    // Stop it in the middle: once some groups are applied.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.sets() < 20 {
        assert!(std::time::Instant::now() < deadline, "the apply never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("Apply interrupted:"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Stopping: no new calls"));
    assert!(!repo.join(".grattr.lock.journal").exists(), "folded before exiting");
    let lockfile = recorded(&repo);
    assert!(!lockfile.groups.is_empty() && lockfile.groups.len() < 400, "{} recorded", lockfile.groups.len());
    for (id, group) in &lockfile.groups {
        assert_eq!(server.live(id.as_str()).as_ref(), Some(&group.attributes));
    }
}

#[test]
fn the_embedded_emulator_applies_without_an_account() {
    let repo =
        Repo::new().file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "1")]), ("@TGS#_@TGS#cX", &[("b", "2")])]));
    let tmp = repo.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let tmp_env = [("TMPDIR", tmp.to_str().unwrap())];
    repo.run_with_env(&["apply", "--emulator"], &tmp_env)
        .code(0)
        .stdout_contains("Apply complete: 2 applied")
        .stderr_contains("Applying to an emulator started in-process at http://127.0.0.1:")
        .stderr_contains("a scratch lockfile, removed after the run");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the scratch directory is removed");
    assert!(!repo.join("grattr.lock").exists(), "the configured lockfile is not touched");

    let kept = repo
        .run_with_env(&["apply", "--emulator", "--keep-scratch"], &tmp_env)
        .code(0)
        .stdout_contains("Apply complete: 2 applied")
        .into_stderr();
    let scratch = kept.split("scratch lockfile ").nth(1).unwrap().split(", kept").next().unwrap();
    assert!(std::path::Path::new(scratch).exists(), "{kept}");
    assert!(std::path::Path::new(scratch).starts_with(&tmp));
    assert!(!repo.join("grattr.lock").exists(), "the configured lockfile is not touched");
}

#[test]
fn two_applies_at_once_never_interleave() {
    let server = Server::start(|config| config.latency = Latency::Fixed(Duration::from_millis(5)));
    let repo = server.repo().file("groups/many.yaml", &many_groups("both", 100));
    let (first, second) = (spawn_apply(repo.path()), spawn_apply(repo.path()));
    let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let codes: Vec<_> = outputs.iter().map(|o| o.status.code()).collect();
    assert!(codes.contains(&Some(0)) && codes.contains(&Some(1)), "one ran, one was refused: {codes:?}");
    let refused = outputs.iter().find(|o| o.status.code() == Some(1)).unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is locked by grattr apply (pid "));
    assert_eq!(server.sets(), 100, "each group was written once");
    assert_eq!(recorded(&repo).groups.len(), 100);
}

#[test]
fn on_a_terminal_apply_asks_and_only_yes_applies() {
    // `script` (util-linux) gives the binary a terminal and feeds it our answer.
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("room", &[("a", "b")])]));
    let answer = |reply: &str| {
        let command = format!("{} apply", env!("CARGO_BIN_EXE_grattr"));
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(repo.path())
            .env("GRATTR_SECRET_KEY", KEY)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("{reply}\n").as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, shown) = answer("no");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("Only 'yes' will be accepted") && shown.contains("apply cancelled; nothing was applied"),
        "{shown}"
    );
    assert_eq!(server.emulator().stats().total, 0);
    let (code, shown) = answer("yes");
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(server.live("room"), Some(attrs(&[("a", "b")])));
}

#[test]
fn plan_states_the_guards_verdict_and_what_apply_then_calls() {
    let server = Server::start(|_| {});
    let value = |k: &'static str| -> Vec<(&'static str, &'static str)> { vec![("k", k)] };
    let ids: Vec<String> = (0..14).map(|i| format!("g-{i:02}")).collect();
    let recorded: Vec<(&str, Vec<(&str, &str)>)> = ids.iter().map(|id| (id.as_str(), value("1"))).collect();
    let yaml = |groups: &[(&str, Vec<(&str, &str)>)]| {
        groups_yaml(&groups.iter().map(|(id, pairs)| (*id, pairs.as_slice())).collect::<Vec<_>>())
    };
    let repo = server.repo().file("groups/a.yaml", &yaml(&recorded));
    apply(&repo, &["--yes"]).code(0).stdout_contains("14 applied");
    // A template edit, say: 8 groups change a value, one is emptied (a clear), two are new. 9 of the 14 recorded groups change: over 30%.
    let mut desired = recorded.clone();
    for (i, group) in desired.iter_mut().enumerate().take(9) {
        group.1 = if i == 8 { vec![] } else { value("2") };
    }
    desired.push(("new-a", value("1")));
    desired.push(("new-b", value("1")));
    let repo = repo.file("groups/a.yaml", &yaml(&desired));

    let json = support::emulator::grattr(&repo, &["plan", "--format", "json", "--detailed-exitcode"]).code(2).json();
    assert_eq!(
        json["safety"],
        serde_json::json!({"changed": 9, "recorded": 14, "percent": 900.0 / 14.0, "threshold": 30, "verdict": "refused"})
    );
    assert_eq!(json["cost"], serde_json::json!({"calls": 11, "seconds_at_least": 10.0 / 200.0, "rate_limit": 200}));
    // --rate-limit is the rate the cost is counted at, as apply would call.
    let json = support::emulator::grattr(&repo, &["plan", "--format", "json", "--rate-limit", "4"]).code(0).json();
    assert_eq!(json["cost"], serde_json::json!({"calls": 11, "seconds_at_least": 2.5, "rate_limit": 4}));
    // The verdict is information: plan exits 0 (2 with --detailed-exitcode, for changes).
    support::emulator::grattr(&repo, &["plan"]).code(0).stdout_contains(
        "Plan: 2 to create, 9 to update, 0 to delete, 5 unchanged.\nSafety guard: refused — 9 of the 14 recorded groups (64%) \
         would be updated or deleted, over the threshold of 30%; apply will refuse this plan without --force.\n\
         Cost: 11 API calls, at least 0.0 s at 200 calls/s.\n",
    );
    support::emulator::grattr(&repo, &["plan", "--format", "markdown"])
        .code(0)
        .stdout_contains("> **Safety guard: refused — 9 of the 14 recorded groups (64%)");

    // What plan said is what apply does: refused without --force, then exactly the calls counted.
    let before = server.emulator().stats().total;
    apply(&repo, &["--yes"]).code(1).stderr_contains("9 of the 14 groups the lockfile records (64%)");
    assert_eq!(server.emulator().stats().total, before, "refused: no call");
    apply(&repo, &["--yes", "--force"]).code(0).stdout_contains("11 applied");
    assert_eq!(
        server.emulator().stats().total - before,
        11,
        "the calls plan counted: {:?}",
        server.emulator().stats().calls
    );
    support::emulator::grattr(&repo, &["plan"])
        .code(0)
        .stdout_contains("Safety guard: approved — 0 of the 16 recorded groups (0%) would be updated or deleted")
        .stdout_contains("Cost: no API call.\n");
}

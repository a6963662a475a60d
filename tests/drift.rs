//! `grattr drift`, `plan --refresh` / `apply --refresh` and `grattr import`, end to end
//! against the emulator, with drift made the way a member's app makes it.

mod support;

use grattr::model::AttributeSet;
use support::Repo;
use support::emulator::{Server, attrs, grattr, groups_yaml, id};

/// Five groups applied; then one of each kind of drift.
fn drifted_world() -> (Server, Repo) {
    let server = Server::start(|config| {
        config.auto_create_groups = false;
        config.groups = ["conflict", "drifted", "gone", "pending", "sync"]
            .map(|g| (id(g), grattr::api::wire::GroupType::Public))
            .to_vec();
    });
    let declared = |pending: &str, conflict: &str| {
        groups_yaml(&[
            ("conflict", &[("k", conflict)]),
            ("drifted", &[("k", "1")]),
            ("gone", &[("k", "1")]),
            ("pending", &[("k", pending)]),
            ("sync", &[("k", "1")]),
        ])
    };
    let repo = server.repo().file("groups/a.yaml", &declared("1", "1"));
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 5 applied, 0 failed");
    let repo = repo.file("groups/a.yaml", &declared("2", "2"));
    let client = server.client();
    server.block_on(async {
        // A member's app edits attributes, as the client SDKs can.
        client.modify_group_attr(&id("drifted"), &attrs(&[("k", "client"), ("extra", "x")])).await.unwrap();
        client.delete_group_attr(&id("conflict"), &["k".to_string()]).await.unwrap();
        client.destroy_group(&id("gone")).await.unwrap();
    });
    (server, repo)
}

#[test]
fn drift_classifies_every_group() {
    let (_server, repo) = drifted_world();
    let json = grattr(&repo, &["drift", "--format", "json", "--detailed-exitcode"]).code(2).json();
    let statuses: Vec<(String, String)> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["group_id"].as_str().unwrap().to_string(), g["status"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("conflict", "conflict"), ("drifted", "drifted"), ("gone", "missing"), ("pending", "pending")];
    assert_eq!(statuses, expected.map(|(a, b)| (a.to_string(), b.to_string())).to_vec());
    assert_eq!(json["summary"]["in_sync"], 1);
    assert_eq!(json["groups"][1]["live_changes"]["added"][0], "extra");
    assert_eq!(json["groups"][1]["live_changes"]["changed"][0], "k");
    assert_eq!(json["groups"][0]["live_changes"]["removed"][0], "k");
    assert_eq!(json["groups"][2]["code"], 10010);
    insta::assert_json_snapshot!("drift_json", json);
    let text = grattr(&repo, &["drift"]).code(0).into_stdout();
    assert!(text.contains("! drifted drifted: changed outside grattr"), "{text}");
    assert!(text.contains("+ extra = \"x\" (added live)"), "{text}");
    assert!(text.contains("~ k = \"1\" → \"client\" (applied → live)"), "{text}");
    assert!(text.contains("? gone is missing"), "{text}");
    assert!(text.contains("Drift: 1 in sync, 1 pending, 1 drifted, 1 conflict, 1 missing."), "{text}");
    insta::assert_snapshot!("drift_text", text);
    let markdown = grattr(&repo, &["drift", "--format", "markdown"]).code(0).into_stdout();
    assert!(markdown.starts_with("### grattr drift for sdkappid 1400000000\n\n**Drift: 1 in sync"), "{markdown}");
    insta::assert_snapshot!("drift_markdown", markdown);
    grattr(&repo, &["drift", "--target", "sync", "--detailed-exitcode"]).code(0).stdout_contains("No drift.");
}

#[test]
fn refresh_plans_against_live_and_apply_heals() {
    let (server, repo) = drifted_world();
    // Without --refresh the plan trusts the lockfile and misses the client's edits.
    let plain = grattr(&repo, &["plan"]).code(0).into_stdout();
    assert!(!plain.contains("drifted will be updated"), "{plain}");
    // With it, the plan shows what a full reset will really change, keys a client added included.
    let refreshed = grattr(&repo, &["plan", "--refresh"]).code(0).into_stdout();
    assert!(refreshed.contains("against the live state"), "{refreshed}");
    assert!(refreshed.contains("~ drifted will be updated"), "{refreshed}");
    assert!(refreshed.contains("- extra = \"x\""), "{refreshed}");
    assert!(
        refreshed.contains("+ conflict will be created") || refreshed.contains("~ conflict will be updated"),
        "{refreshed}"
    );
    // The missing group is no longer wanted: removed from the YAML, it is forgotten
    // (there is nothing left to clear), and the rest is healed.
    let repo = repo.file(
        "groups/a.yaml",
        &groups_yaml(&[
            ("conflict", &[("k", "2")]),
            ("drifted", &[("k", "1")]),
            ("pending", &[("k", "2")]),
            ("sync", &[("k", "1")]),
        ]),
    );
    grattr(&repo, &["apply", "--refresh", "--yes", "--prune"])
        .code(0)
        .stdout_contains("Forgot 1 group(s) no longer declared that no longer exist: gone");
    assert!(
        !grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000)
            .unwrap()
            .groups
            .contains_key(&id("gone"))
    );
    assert_eq!(server.get("drifted"), attrs(&[("k", "1")]));
    assert_eq!(server.get("conflict"), attrs(&[("k", "2")]));
    // A following drift is clean.
    grattr(&repo, &["drift", "--detailed-exitcode"])
        .code(0)
        .stdout_contains("Drift: 4 in sync, 0 pending, 0 drifted, 0 conflicts, 0 missing.");
    // And the plan against the lockfile agrees: the lockfile records what is live.
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).stdout(
        "grattr plan for sdkappid 1400000000\n\n\
         No changes: the desired state matches what grattr.lock records as applied.\n\n\
         Plan: 0 to create, 0 to update, 0 to delete, 4 unchanged.\n\
         Safety guard: approved — 0 of the 4 recorded groups (0%) would be updated or deleted, within the threshold of 30%.\n\
         Cost: no API call.\n",
    );
}

#[test]
fn import_round_trips_every_kind_of_value() {
    let server = Server::start(|_| {});
    let tricky: AttributeSet = attrs(&[
        ("multiline", "line 1\nline 2\n"),
        ("no_newline", "a\nb"),
        ("quotes", "she said \"hi\" and 'bye'"),
        ("hash", "# not a comment"),
        ("leading", "   three spaces"),
        ("unicode", "é 中 😀"),
        ("norway", "no"),
        ("number", "123"),
        ("tilde", "~"),
        ("empty", ""),
        ("json", "{\"a\": [1, 2]}"),
        ("colon", "key: value"),
    ]);
    let big = attrs(&[("big", &"x".repeat(4000)), ("big2", &"中".repeat(1333))]);
    let client = server.client();
    server.block_on(async {
        client.set_group_attr(&id("tricky"), &tricky).await.unwrap();
        client.set_group_attr(&id("@TGS#_@TGS#cBIG"), &big).await.unwrap();
        client.create_group(grattr::api::wire::GroupType::Public, "Bare", Some(&id("bare"))).await.unwrap();
    });
    let repo = server
        .repo()
        .file("groups/existing.yaml", &groups_yaml(&[("declared", &[("a", "b")])]))
        .file("ids.txt", "# groups to adopt\n@TGS#_@TGS#cBIG\n\n# no attributes\nbare\n");
    grattr(&repo, &["import", "tricky", "--from", "ids.txt"])
        .code(0)
        .stdout_contains("Imported 3 group(s) into groups/imported.yaml");
    // The YAML reproduces the live state exactly, and the next plan is empty.
    grattr(&repo, &["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_contains("+ declared will be created")
        .stdout_contains("1 to create, 0 to update, 0 to delete, 3 unchanged");
    grattr(
        &repo,
        &["drift", "--target", "tricky", "--target", "bare", "--target", "@TGS#_@TGS#cBIG", "--detailed-exitcode"],
    )
    .code(0)
    .stdout(
        "grattr drift for sdkappid 1400000000\n\n\
         No drift. Every managed group is live as applied.\n\n\
         Drift: 3 in sync, 0 pending, 0 drifted, 0 conflicts, 0 missing.\n",
    );
    let written = repo.read("groups/imported.yaml");
    assert!(written.contains("multiline: |\n        line 1\n        line 2\n"), "{written}");
    assert!(written.contains("norway: \"no\""), "{written}");
    // An existing file is never overwritten, and a declared group is never imported twice.
    grattr(&repo, &["import", "other"]).code(1).stderr_contains("groups/imported.yaml exists");
    grattr(&repo, &["import", "tricky", "declared", "--out", "groups/more.yaml"])
        .code(1)
        .stderr_contains("tricky is declared at groups/imported.yaml:")
        .stderr_contains("declared is declared at groups/existing.yaml:2:9");
    assert!(!repo.join("groups/more.yaml").exists());
    // A group that does not exist is reported, and the others are imported.
    grattr(&repo, &["import", "ghost", "--out", "groups/ghost.yaml"]).code(1).stderr(
        "error: cannot import ghost: get_group_attr: invalid group id (the group does not exist) [10015] \
         (invalid group id: the group does not exist)\n  \
         hint: the group does not exist (it was never created, or the id is mistyped): check the id, or remove the \
         group from groups/ (and from the lockfile with --prune)\n\
         error: no group could be read; nothing was imported\n",
    );
}

/// The templates of the `import --template` scenarios, and a group applied with them.
const TEMPLATES: &str = "templates:\n  community:\n    rules: \"1. Be kind.\"\n    theme: dark\n    \"no\": \"yes\"\n  community-vip:\n    extends: community\n    theme: gold\ngroups:\n  - id: vip-0\n    template: community-vip\n";

/// The first import against a template no group uses yet: no warning that it is
/// unused (the import is about to use it); another unused template is still told.
#[test]
fn import_against_an_unused_template_does_not_warn_about_it() {
    let server = Server::start(|_| {});
    let templates = "templates:\n  community:\n    theme: dark\n  spare:\n    theme: light\n";
    let repo = server.repo().file("groups/_templates.yaml", templates);
    server
        .block_on(async { server.client().set_group_attr(&id("room-1"), &attrs(&[("theme", "dark")])).await.unwrap() });
    grattr(&repo, &["import", "room-1", "--template", "community"])
        .code(0)
        .stderr(
            "groups/_templates.yaml:4:3: warning: template \"spare\" is not used by any group\n  \
             help: use it with `template: spare`, or delete it\n",
        )
        .ignore_stdout();
    grattr(&repo, &["validate"])
        .code(0)
        .stderr(
            "groups/_templates.yaml:4:3: warning: template \"spare\" is not used by any group\n  \
         help: use it with `template: spare`, or delete it\n",
        )
        .ignore_stdout();
}

#[test]
fn import_against_a_template_writes_what_differs_and_plans_nothing() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/_templates.yaml", TEMPLATES);
    grattr(&repo, &["apply", "--yes"]).code(0).ignore_stdout();
    let client = server.client();
    server.block_on(async {
        let vip = [("rules", "1. Be kind."), ("theme", "gold"), ("no", "yes")];
        client.set_group_attr(&id("room-1"), &attrs(&vip)).await.unwrap();
        // Another theme, a key of its own (a hostile one), and no `rules` or `no`.
        let room2 = [("theme", "blue"), ("banner", "Welcome\n\"all\""), ("#odd key", "x")];
        client.set_group_attr(&id("room-2"), &attrs(&room2)).await.unwrap();
        client.create_group(grattr::api::wire::GroupType::Public, "Bare", Some(&id("room-3"))).await.unwrap();
    });
    let lockfile = repo.read("grattr.lock");

    grattr(&repo, &["import", "room-1", "room-2", "room-3", "--template", "community-vip"]).code(0).stdout(
        "Imported 3 group(s) into groups/imported.yaml against template \"community-vip\" and recorded them in \
         grattr.lock; `grattr plan` shows no change for them.\n",
    );
    assert_eq!(
        repo.read("groups/imported.yaml"),
        "# Imported by `grattr import` from sdkappid 1400000000 against template \"community-vip\": each group\n\
         # writes the keys whose live value differs from the template's, and unsets the template's\n\
         # keys it lacks; resolved, they are the live attributes, exactly.\n\
         # Edit freely: this file is now the desired state of these groups.\n\
         groups:\n  \
           - id: room-1\n    template: community-vip\n  \
           - id: room-2\n    template: community-vip\n    attributes:\n      \
               \"#odd key\": x\n      banner: |-\n        Welcome\n        \"all\"\n      theme: blue\n    \
             unset: [\"no\", rules]\n  \
           - id: room-3\n    template: community-vip\n    unset: [\"no\", rules, theme]\n"
    );
    // Resolved, the files declare exactly what is live and recorded: nothing to do.
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
    let recorded: serde_json::Value = serde_json::from_str(&repo.read("grattr.lock")).unwrap();
    assert_eq!(recorded["groups"]["room-2"]["attributes"]["theme"], "blue");
    assert_ne!(repo.read("grattr.lock"), lockfile);
}

#[test]
fn import_with_sets_writes_identical_entries_once_and_plans_nothing() {
    let server = Server::start(|_| {});
    let client = server.client();
    let vip = [("rules", "1. Be kind."), ("theme", "gold"), ("no", "yes")];
    let rooms: Vec<String> = (1..=10).map(|i| format!("room-{i:02}")).collect();
    // An id as hostile as the API allows, live exactly as the template like the rooms.
    let hostile = "a \"b\", #c";
    let banner = [&vip[..], &[("banner", "Welcome")]].concat();
    server.block_on(async {
        for room in rooms.iter().map(String::as_str).chain([hostile]) {
            client.set_group_attr(&id(room), &attrs(&vip)).await.unwrap();
        }
        for room in ["banner-1", "banner-2"] {
            client.set_group_attr(&id(room), &attrs(&banner)).await.unwrap();
        }
        client.set_group_attr(&id("odd"), &attrs(&[("theme", "blue")])).await.unwrap();
    });
    let import = |repo: &Repo, sets: bool| {
        grattr(repo, &["apply", "--yes"]).code(0).ignore_stdout();
        let mut args = vec!["import", "odd", "banner-2", hostile, "banner-1", "--template", "community-vip"];
        args.extend(rooms.iter().map(String::as_str));
        if sets {
            args.push("--sets");
        }
        grattr(repo, &args).code(0).stdout(
            "Imported 14 group(s) into groups/imported.yaml against template \"community-vip\" and recorded them in \
             grattr.lock; `grattr plan` shows no change for them.\n",
        );
    };
    let repo = server.repo().file("groups/_templates.yaml", TEMPLATES);
    import(&repo, true);
    // In the order import writes groups (by id), each set where its first id would be;
    // more than 8 ids are a block sequence.
    let block = rooms.iter().fold(String::new(), |block, room| block + "      - " + room + "\n");
    assert_eq!(
        repo.read("groups/imported.yaml"),
        format!(
            "# Imported by `grattr import` from sdkappid 1400000000 against template \"community-vip\": each group\n\
             # writes the keys whose live value differs from the template's, and unsets the template's\n\
             # keys it lacks; resolved, they are the live attributes, exactly.\n\
             # Groups whose entries would be identical share one entry, whose `ids:` lists them.\n\
             # Edit freely: this file is now the desired state of these groups.\n\
             groups:\n  \
               - ids:\n      - \"a \\\"b\\\", #c\"\n{block}    template: community-vip\n  \
               - ids: [banner-1, banner-2]\n    template: community-vip\n    attributes:\n      banner: Welcome\n  \
               - id: odd\n    template: community-vip\n    attributes:\n      theme: blue\n    unset: [\"no\", rules]\n"
        )
    );
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
    // A set is only a way of writing: the lockfile records what an import without it records.
    let without = server.repo().file("groups/_templates.yaml", TEMPLATES);
    import(&without, false);
    assert_eq!(without.read("groups/imported.yaml").matches("\n  - id: ").count(), 14);
    let groups =
        |repo: &Repo| serde_json::from_str::<serde_json::Value>(&repo.read("grattr.lock")).unwrap()["groups"].clone();
    assert_eq!(groups(&repo), groups(&without));
    assert_eq!(groups(&repo).as_object().unwrap().len(), 15, "the 14 imported and vip-0");

    // With key ownership, entries are identical when the keys adopted are: the
    // members' other keys make no difference.
    server.block_on(async {
        client.set_group_attr(&id("voice-1"), &attrs(&[("topic", "jazz"), ("seat.1", "alice")])).await.unwrap();
        client.set_group_attr(&id("voice-2"), &attrs(&[("topic", "jazz"), ("seat.1", "bob")])).await.unwrap();
        client.set_group_attr(&id("voice-3"), &attrs(&[("topic", "rock")])).await.unwrap();
    });
    let args = ["import", "voice-1", "voice-2", "voice-3", "--sets", "--ownership", "keys", "--key", "topic"];
    grattr(&repo, &[&args[..], &["--out", "groups/voice.yaml"]].concat()).code(0).ignore_stdout();
    let written = repo.read("groups/voice.yaml");
    assert!(
        written.ends_with(
            "# Groups whose entries would be identical share one entry, whose `ids:` lists them.\n\
             # Edit freely: this file is now the desired state of these groups.\n\
             groups:\n  \
               - ids: [voice-1, voice-2]\n    ownership: keys\n    attributes:\n      topic: jazz\n  \
               - id: voice-3\n    ownership: keys\n    attributes:\n      topic: rock\n"
        ),
        "{written}"
    );
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
}

#[test]
fn import_against_a_template_with_key_ownership_adopts_the_templates_keys_and_those_named() {
    let server = Server::start(|_| {});
    let templates = TEMPLATES.replace(
        "    theme: gold\n",
        "    theme: gold\n  voice:\n    ownership: keys\n    mic: \"on\"\n    rules: quiet\n",
    ) + "  - id: voice-0\n    template: voice\n";
    let repo = server.repo().file("groups/_templates.yaml", &templates);
    // `voice` is used by no group yet: a warning.
    grattr(&repo, &["apply", "--yes"]).code(0).ignore_stdout();
    let client = server.client();
    let live = [("theme", "night"), ("rules", "1. Be kind."), ("seat.1", "alice"), ("topic", "jazz")];
    server.block_on(async {
        client.set_group_attr(&id("voice-1"), &attrs(&live)).await.unwrap();
        client.set_group_attr(&id("voice-2"), &attrs(&live)).await.unwrap();
        client.set_group_attr(&id("voice-3"), &attrs(&live)).await.unwrap();
    });
    let read = |repo: &Repo, path: &str| {
        repo.read(path).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
    };

    // The template says nothing of ownership: --ownership keys is written; the
    // template's keys the group has are adopted, and --key's; the members' are not.
    grattr(&repo, &["import", "voice-1", "--template", "community", "--ownership", "keys", "--key", "topic"])
        .code(0)
        .ignore_stdout();
    assert_eq!(
        read(&repo, "groups/imported.yaml"),
        "groups:\n  - id: voice-1\n    ownership: keys\n    template: community\n    attributes:\n      theme: night\n      \
         topic: jazz\n    unset: [\"no\"]"
    );
    // The template says `ownership: keys`: it is the default, and needs no --key.
    grattr(&repo, &["import", "voice-2", "--template", "voice", "--out", "groups/voice.yaml"]).code(0).ignore_stdout();
    assert_eq!(
        read(&repo, "groups/voice.yaml"),
        "groups:\n  - id: voice-2\n    template: voice\n    attributes:\n      rules: \"1. Be kind.\"\n    unset: [mic]"
    );
    // Against it, group ownership is said.
    grattr(&repo, &["import", "voice-3", "--template", "voice", "--ownership", "group", "--out", "groups/v3.yaml"])
        .code(0)
        .ignore_stdout();
    assert!(read(&repo, "groups/v3.yaml").contains("  - id: voice-3\n    ownership: group\n    template: voice\n"));
    let recorded: serde_json::Value = serde_json::from_str(&repo.read("grattr.lock")).unwrap();
    assert_eq!(
        recorded["groups"]["voice-1"]["attributes"],
        serde_json::json!({"rules": "1. Be kind.", "theme": "night", "topic": "jazz"})
    );
    assert_eq!(recorded["groups"]["voice-1"]["ownership"], "keys");
    assert_eq!(recorded["groups"]["voice-2"]["attributes"], serde_json::json!({"rules": "1. Be kind."}));
    assert_eq!(recorded["groups"]["voice-3"]["attributes"].as_object().unwrap().len(), 4);
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
    grattr(&repo, &["plan", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
    // Applying changes nothing live: the members' keys stay.
    grattr(&repo, &["apply", "--yes", "--refresh"]).code(0).ignore_stdout();
    assert_eq!(server.live("voice-1").unwrap(), attrs(&live));
}

#[test]
fn import_against_an_unknown_or_broken_template_changes_nothing() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/_templates.yaml", TEMPLATES);
    grattr(&repo, &["apply", "--yes"]).code(0).ignore_stdout();
    server.block_on(server.client().set_group_attr(&id("room-1"), &attrs(&[("theme", "dark")]))).unwrap();
    let lockfile = repo.read("grattr.lock");
    let calls = server.emulator().stats().total;

    grattr(&repo, &["import", "room-1", "--template", "comunity"]).code(1).stderr(
        "error: no group file defines a template \"comunity\"; the templates are \"community\", \"community-vip\"; \
         nothing was imported\n",
    );
    // A template with errors stops the import at the error, like any other.
    let repo = repo.file("groups/_templates.yaml", &TEMPLATES.replace("theme: dark", "theme: ~"));
    let stderr = grattr(&repo, &["import", "room-1", "--template", "community-vip"]).code(1).into_stderr();
    assert!(
        stderr.starts_with("groups/_templates.yaml:4:12: error: template \"community\" key \"theme\": value is null"),
        "{stderr}"
    );
    assert!(stderr.ends_with("error: 1 error, 0 warnings in 1 file; nothing was imported\n"), "{stderr}");
    assert!(!repo.join("groups/imported.yaml").exists());
    assert_eq!(repo.read("grattr.lock"), lockfile);
    assert_eq!(server.emulator().stats().total, calls, "no call was made");
}

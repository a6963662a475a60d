//! Per-environment overlays end to end: a staging and a production app, each an
//! emulator on 127.0.0.1, sharing `groups/`; production's overlay changes a few
//! values. Every command that loads an environment's desired state applies its
//! overlays, and only its own.

mod support;

use support::Repo;
use support::emulator::{Server, attrs, grattr};

/// The group files both environments share: a template, a set using it, a plain group.
const TEMPLATES: &str = "templates:\n  community:\n    rules: \"1. Be kind.\"\n    theme: dark\n";
const ROOMS: &str = "groups:\n  - ids: [room-1, room-2]\n    template: community\n  - id: lobby\n    attributes:\n      theme: light\n      debug: \"on\"\n";
/// Production's overlay: stricter rules for every community room, no debug flag in the lobby.
const PRODUCTION: &str =
    "templates:\n  community:\n    rules: \"1. Be kind. 2. No spam.\"\ngroups:\n  - id: lobby\n    unset: [debug]\n";

/// Staging and production emulators, and a repository whose `grattr.yaml` names both,
/// production with `overlays: [overlays/production]`.
fn two_environments() -> (Server, Server, Repo) {
    let (staging, production) = (Server::start(|_| {}), Server::start(|_| {}));
    let config = format!(
        "admin: administrator\nrate_limit: 200\nrequest_timeout: 2s\nenvironments:\n  staging:\n    sdkappid: 1400000000\n    endpoint: {}\n    lockfile: grattr.staging.lock\n  production:\n    sdkappid: 1400000000\n    endpoint: {}\n    overlays: [overlays/production]\n",
        staging.emulator().base_url(),
        production.emulator().base_url()
    );
    let repo = Repo::new()
        .file("grattr.yaml", &config)
        .file("groups/_templates.yaml", TEMPLATES)
        .file("groups/rooms.yaml", ROOMS)
        .file("overlays/production/rules.yaml", PRODUCTION);
    (staging, production, repo)
}

#[test]
fn each_environment_applies_its_own_overlays() {
    let (staging, production, repo) = two_environments();
    let base_room = attrs(&[("rules", "1. Be kind."), ("theme", "dark")]);
    let live_room = attrs(&[("rules", "1. Be kind. 2. No spam."), ("theme", "dark")]);

    grattr(&repo, &["validate"]).code(0).stdout(
        "groups (production): ok: 3 groups in 2 files and 1 overlay file\ngroups (staging): ok: 3 groups in 2 files\n",
    );
    grattr(&repo, &["apply", "--env", "production", "--yes"]).code(0).stdout_contains("3 applied, 0 failed");
    assert_eq!(production.get("room-1"), live_room);
    assert_eq!(production.get("room-2"), live_room);
    assert_eq!(production.get("lobby"), attrs(&[("theme", "light")]));
    assert_eq!(staging.emulator().stats().total, 0, "staging untouched");

    grattr(&repo, &["apply", "--env", "staging", "--yes"]).code(0).stdout_contains("3 applied, 0 failed");
    assert_eq!(staging.get("room-1"), base_room);
    assert_eq!(staging.get("lobby"), attrs(&[("theme", "light"), ("debug", "on")]));
    assert_eq!(production.get("lobby"), attrs(&[("theme", "light")]), "production keeps its values");

    // Nothing left to do in either; no drift either (the overlay is part of the desired state).
    for env in ["staging", "production"] {
        grattr(&repo, &["plan", "--env", env, "--detailed-exitcode"]).code(0).stdout_contains("No changes");
        grattr(&repo, &["drift", "--env", env, "--detailed-exitcode"]).code(0).stdout_contains("No drift.");
    }

    // A change to the overlay is a change of production only.
    let repo = repo.file("overlays/production/rules.yaml", &PRODUCTION.replace("No spam", "No ads"));
    grattr(&repo, &["plan", "--env", "staging", "--detailed-exitcode"]).code(0).stdout_contains("No changes");
    let plan =
        grattr(&repo, &["plan", "--env", "production", "--format", "json", "--detailed-exitcode"]).code(2).json();
    let changed: Vec<&str> =
        plan["changes"].as_array().unwrap().iter().map(|c| c["group_id"].as_str().unwrap()).collect();
    assert_eq!(changed, ["room-1", "room-2"]);
    assert_eq!(plan["changes"][0]["after"]["rules"], "1. Be kind. 2. No ads.");
    // Each changed key says where its value comes from: the overlay, of the template.
    assert_eq!(
        plan["changes"][0]["keys"]["sources"]["rules"],
        serde_json::json!({
            "kind": "overlay", "template": "community", "file": "overlays/production/rules.yaml", "line": 3, "column": 5
        })
    );
    let text = grattr(&repo, &["plan", "--env", "production"]).code(0).into_stdout();
    assert!(
        text.contains("overlay overlays/production/rules.yaml (template community) changed rules: 2 groups to update"),
        "{text}"
    );
    grattr(&repo, &["apply", "--env", "production", "--yes"]).code(0).stdout_contains("2 applied, 0 failed");
    assert_eq!(production.get("room-2"), attrs(&[("rules", "1. Be kind. 2. No ads."), ("theme", "dark")]));

    // An overlay of a group nobody declares stops production, at the overlay's line,
    // with nothing applied; staging, which does not use it, goes on.
    let repo = repo.file("overlays/production/typo.yaml", "groups:\n  - id: lobbby\n    unset: [debug]\n");
    let before = production.emulator().stats().total;
    let stderr = grattr(&repo, &["apply", "--env", "production", "--yes"]).code(1).ignore_stdout().into_stderr();
    assert!(
        stderr.starts_with("overlays/production/typo.yaml:2:9: error: overlay patches group \"lobbby\", but no group file in groups/ declares it"),
        "{stderr}"
    );
    assert!(stderr.ends_with("error: 1 error, 0 warnings in 1 file; nothing was applied\n"), "{stderr}");
    assert_eq!(production.emulator().stats().total, before, "no call");
    grattr(&repo, &["apply", "--env", "staging", "--yes"]).code(0).stdout_contains("No changes");
    grattr(&repo, &["validate", "--env", "staging"]).code(0).stdout("groups: ok: 3 groups in 2 files\n");
    // Without --env, every environment: the valid one's summary on stdout, the other's on stderr.
    let stderr =
        grattr(&repo, &["validate"]).code(1).stdout("groups (staging): ok: 3 groups in 2 files\n").into_stderr();
    assert!(stderr.ends_with("groups (production): invalid: 1 error, 0 warnings in 1 file\n"), "{stderr}");
}

#[test]
fn import_checks_the_environment_with_its_overlays() {
    let (_staging, production, repo) = two_environments();
    grattr(&repo, &["apply", "--env", "production", "--yes"]).code(0).ignore_stdout();
    // An invalid overlay stops import too: what it would adopt is checked against
    // the environment's whole desired state.
    let repo = repo.file("overlays/production/typo.yaml", "templates:\n  comunity:\n    theme: gold\n");
    production.block_on(async {
        let client = production.client();
        let group = support::emulator::id("other");
        client.modify_group_attr(&group, &attrs(&[("k", "v")])).await.unwrap();
    });
    let stderr = grattr(&repo, &["import", "other", "--env", "production"]).code(1).ignore_stdout().into_stderr();
    assert!(
        stderr.contains("overlays/production/typo.yaml:2:3: error: overlay patches template \"comunity\""),
        "{stderr}"
    );
    assert!(!repo.join("groups/imported.yaml").exists(), "nothing imported");
}

/// An overlay path is text from a pull request like any file name: escaped where a
/// terminal shows it, unaltered in JSON.
#[test]
fn a_hostile_overlay_path_is_escaped_in_text_and_kept_in_json() {
    let config = format!("{}overlays: [\"over\\e[31mlay\\n::error::x\"]\n", support::CONFIG);
    let repo = Repo::new().file("grattr.yaml", &config).file("groups/a.yaml", "groups: [{id: a, attributes: {}}]\n");
    let stderr = repo.run(&["validate"]).code(1).stdout("").into_stderr();
    assert_eq!(
        stderr.lines().next().unwrap(),
        "grattr.yaml:4:12: error: overlay over\\u001b[31mlay\\n::error::x does not exist"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let json = repo.run(&["validate", "--format", "json"]).code(1).json();
    assert_eq!(json["diagnostics"][0]["message"], "overlay over\u{1b}[31mlay\n::error::x does not exist");
}

/// `import --template` in an environment whose overlay patches the template: the
/// template's value there is the patched one, so the group writes only what differs
/// from it, and the environment plans nothing.
#[test]
fn import_against_a_template_an_overlay_patches_plans_nothing_in_that_environment() {
    let (_staging, production, repo) = two_environments();
    grattr(&repo, &["apply", "--yes", "--env", "production"]).code(0).ignore_stdout();
    // Live as production's community rooms are, with another theme.
    let live = attrs(&[("rules", "1. Be kind. 2. No spam."), ("theme", "blue")]);
    production
        .block_on(production.client().set_group_attr(&grattr::model::GroupId::parse("room-9").unwrap(), &live))
        .unwrap();
    grattr(&repo, &["import", "room-9", "--template", "community", "--env", "production"]).code(0).ignore_stdout();
    let written = repo.read("groups/imported.yaml");
    assert!(
        written.ends_with("  - id: room-9\n    template: community\n    attributes:\n      theme: blue\n"),
        "{written}"
    );
    grattr(&repo, &["plan", "--env", "production", "--detailed-exitcode"]).code(0).ignore_stdout();
    grattr(&repo, &["plan", "--env", "production", "--refresh", "--detailed-exitcode"]).code(0).ignore_stdout();
}

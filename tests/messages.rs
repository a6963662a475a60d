//! The messages a user reads: what `plan` says it compared, what `drift` says a
//! pending change does, which options each command takes (its `--help`), and every
//! mistake of a `grattr.yaml` reported at once with its place.

mod support;

use support::emulator::{KEY, Server, groups_yaml};
use support::{Repo, Run};

#[must_use = "a run checks its output only through its assertions"]
#[track_caller]
fn grattr(repo: &Repo, args: &[&str]) -> Run {
    repo.run_with_env(args, &[("GRATTR_SECRET_KEY", KEY)])
}

// --- plan: what it compared ---------------------------------------------------

#[test]
fn plan_without_changes_names_the_lockfile_it_compared_with() {
    let repo = Repo::new()
        .file("grattr.yaml", &format!("{}lockfile: state/custom.lock\n", support::CONFIG))
        .file("groups/a.yaml", "groups: []\n");
    let stdout = repo.run(&["plan"]).code(0).stderr(support::NO_GROUPS).into_stdout();
    insta::assert_snapshot!(stdout, @r"
    grattr plan for sdkappid 1400000000

    No changes: the desired state matches what state/custom.lock records as applied.

    Plan: 0 to create, 0 to update, 0 to delete, 0 unchanged.
    Safety guard: approved — the lockfile records no group yet, so nothing is updated or deleted.
    Cost: no API call.
    ");
    assert!(!stdout.contains("live"), "an offline plan never claims to have looked at live groups");
    let markdown = repo.run(&["plan", "--format", "markdown"]).code(0).stderr(support::NO_GROUPS).into_stdout();
    assert!(
        markdown.ends_with("No changes: the desired state matches what `state/custom.lock` records as applied.\n"),
        "{markdown}"
    );
}

#[test]
fn plan_without_changes_escapes_the_lockfile_path() {
    let repo = Repo::new().file("grattr.yaml", &format!("{}lockfile: \"odd\\u202e.lock\"\n", support::CONFIG));
    repo.run(&["plan"]).code(0).stdout_contains("what odd\\u202e.lock records as applied.");
}

#[test]
fn plan_refresh_without_changes_says_it_read_the_live_state() {
    let server = Server::start(|config| config.auto_create_groups = true);
    let repo = server.repo().file("groups/a.yaml", &groups_yaml(&[("lobby", &[("k", "1")])]));
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    let stdout = grattr(&repo, &["plan", "--refresh"]).code(0).into_stdout();
    assert!(
        stdout.contains("No changes: the desired state matches the live state of the managed groups, read just now.\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("records as applied"), "{stdout}");
    let markdown = grattr(&repo, &["plan", "--refresh", "--format", "markdown"]).code(0).into_stdout();
    assert!(
        markdown
            .ends_with("No changes: the desired state matches the live state of the managed groups, read just now.\n"),
        "{markdown}"
    );
}

// --- drift: what a pending change does -----------------------------------------

#[test]
fn drift_pending_lines_say_what_changed_in_the_desired_state() {
    let server = Server::start(|config| config.auto_create_groups = true);
    let before = groups_yaml(&[("lobby", &[("changed", "1"), ("kept", "k"), ("removed", "r")])]);
    let repo = server.repo().file("groups/a.yaml", &before);
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 1 applied, 0 failed");
    let after = groups_yaml(&[("lobby", &[("added", "a"), ("changed", "2"), ("kept", "k")])]);
    let repo = repo.file("groups/a.yaml", &after);
    let stdout = grattr(&repo, &["drift"]).code(0).into_stdout();
    assert!(!stdout.contains("(in the YAML)"), "{stdout}");
    insta::assert_snapshot!(stdout, @r#"
    grattr drift for sdkappid 1400000000

      ~ lobby has an unapplied change (apply will make it)  (groups/a.yaml:2)
          + added = "a" (added to the desired state)
          ~ changed = "1" → "2" (changed in the desired state: applied → desired)
          - removed = "r" (removed from the desired state)

    Drift: 0 in sync, 1 pending, 0 drifted, 0 conflicts, 0 missing.
    "#);
}

// --- options: each command takes those it uses ---------------------------------

/// Every command, as typed after `grattr`.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["validate"],
    &["plan"],
    &["apply"],
    &["drift"],
    &["import"],
    &["watch"],
    &["usersig"],
    &["emulator"],
    &["lockfile"],
    &["lockfile", "merge"],
    &["lockfile", "path"],
    &["schema"],
    &["completions"],
    &["man"],
];

#[test]
fn every_command_help_shows_only_the_options_it_uses() {
    let repo = Repo::new();
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        // Not through `Repo::run`: a variable set where the tests run would show in the help.
        let output = assert_cmd::Command::cargo_bin("grattr")
            .unwrap()
            .current_dir(repo.path())
            .args(&args)
            .env_remove("GRATTR_CONFIG")
            .env_remove("GRATTR_ENV")
            .env_remove("GRATTR_STATE_DIR")
            .env("COLUMNS", "200")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        let name = if command.is_empty() { "grattr".to_string() } else { format!("grattr {}", command.join(" ")) };
        insta::with_settings!({ snapshot_suffix => name.replace(' ', "_"), description => name.clone() }, {
            insta::assert_snapshot!("help", help);
        });
    }
}

#[test]
fn commands_refuse_options_they_do_not_use() {
    let repo = Repo::new();
    for args in [
        &["validate", "--endpoint", "http://127.0.0.1:1"][..],
        &["validate", "--secret-key-file", "key"],
        &["validate", "--rate-limit", "5"],
        &["validate", "--state-dir", "state"],
        &["schema", "groups", "--config", "grattr.yaml"],
        &["completions", "bash", "--env", "production"],
        &["man", "--endpoint", "http://127.0.0.1:1"],
        &["usersig", "--endpoint", "http://127.0.0.1:1"],
        &["usersig", "--rate-limit", "5"],
        &["emulator", "--config", "grattr.yaml"],
        &["lockfile", "merge", "a", "b", "c", "--rate-limit", "5"],
    ] {
        repo.run(args).code(1).stderr_contains("unexpected argument");
    }
}

#[test]
fn options_given_before_the_command_still_reach_it() {
    let repo = Repo::new().dir("infra/groups").file("infra/grattr.yaml", support::CONFIG);
    repo.file("infra/groups/a.yaml", &groups_yaml(&[("lobby", &[("k", "1")])]))
        .run(&["-c", "infra/grattr.yaml", "plan"])
        .code(0)
        .stdout_contains("(infra/groups/a.yaml:2)");
}

#[test]
fn an_option_after_the_command_wins_over_one_before_it() {
    let repo = Repo::new().dir("infra/groups").file("infra/grattr.yaml", support::CONFIG);
    repo.run(&["--config", "missing.yaml", "validate", "--config", "infra/grattr.yaml"])
        .code(0)
        .stdout_contains("infra/groups: ok");
}

#[test]
fn an_option_before_a_command_that_does_not_use_it_is_refused() {
    Repo::new().run(&["--endpoint", "http://127.0.0.1:1", "validate"]).code(1).stdout("").stderr(
        "error: `grattr validate` does not use --endpoint: it takes only the options `grattr validate --help` shows\n\n\
         Usage: grattr [OPTIONS] <COMMAND>\n\n\
         For more information, try '--help'.\n",
    );
}

// --- configuration: every mistake at once ---------------------------------------

const MISTAKES: &str = "\
sdkappid: many
admin: administrator
region: mars
rate_limit: 500
safety_threshold: all
prune: maybe
connect_timeout: soon
request_timeout: 0s
secret_key_env: \"A=B\"
regoin: china
state: postgres://grattr:hunter2@db/grattr
";

#[test]
fn every_configuration_mistake_is_reported_at_once_with_its_place() {
    let repo = Repo::new().file("grattr.yaml", MISTAKES);
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    insta::assert_snapshot!(stderr, @r#"
    grattr.yaml:1:11: error: sdkappid: "many" is not a number; expected an integer from 1 to 4294967295
    grattr.yaml:3:9: error: region: unknown region "mars"; expected one of china, singapore, seoul, tokyo, frankfurt, silicon-valley, jakarta, mumbai, riyadh
    grattr.yaml:4:13: error: rate_limit: 500 is out of range; expected an integer from 1 to 200 (calls per second)
    grattr.yaml:5:19: error: safety_threshold: "all" is not a number; expected an integer from 0 to 100 (a percentage)
    grattr.yaml:6:8: error: prune: "maybe" is not a boolean; expected true or false
    grattr.yaml:7:18: error: connect_timeout: "soon" is not a duration; expected a duration such as 5s or 1m
    grattr.yaml:8:18: error: request_timeout: "0s" is zero; expected a duration such as 5s or 1m
    grattr.yaml:9:17: error: secret_key_env: "A=B" is not a variable name; expected a name without `=`
    grattr.yaml:10:1: error: unknown field `regoin`, expected one of sdkappid, admin, region, endpoint, groups, lockfile, state, secret_key_env, prune, ownership, rate_limit, safety_threshold, connect_timeout, request_timeout, overlays, environments
    grattr.yaml:11:8: error: state: holds a password, which must not be committed: remove it and set PGPASSWORD where grattr runs
    error: grattr.yaml is invalid: 10 errors, 0 warnings in 1 file
    "#);
}

#[test]
fn configuration_mistakes_in_every_environment_are_reported_by_any_command() {
    let text = "\
admin: administrator
region: china
environments:
  staging:
    sdkappid: 1400000001
    rate_limit: 0
  production:
    sdkappid: x
    endpoint: ftp://example.com
";
    let repo = Repo::new().file("grattr.yaml", text);
    repo.run(&["plan", "--env", "staging"]).code(1).stderr(
        "grattr.yaml:6:17: error: rate_limit: 0 is out of range; expected an integer from 1 to 200 (calls per second)\n\
         grattr.yaml:8:15: error: sdkappid: \"x\" is not a number; expected an integer from 1 to 4294967295\n\
         grattr.yaml:9:15: error: endpoint: \"ftp://example.com\" is not an http:// or https:// URL; expected a base \
         URL such as https://example.com\n\
         error: grattr.yaml is invalid: 3 errors, 0 warnings in 1 file\n",
    );
    let json = repo.run(&["validate", "--format", "json"]).code(1).json();
    assert_eq!(json["summary"]["errors"], 3, "{json:#}");
    let lines: Vec<u64> = json["diagnostics"].as_array().unwrap().iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [6, 8, 9], "{json:#}");
}

#[test]
fn missing_fields_are_all_named() {
    let repo = Repo::new().file("grattr.yaml", "groups: groups\n");
    repo.run(&["validate"]).code(1).stderr(
        "grattr.yaml:1:1: error: missing field `sdkappid` (at the top level)\n\
         grattr.yaml:1:1: error: missing field `admin` (at the top level)\n\
         grattr.yaml:1:1: error: missing field `region` or `endpoint` (at the top level)\n\
         error: grattr.yaml is invalid: 3 errors, 0 warnings in 1 file\n",
    );
}

#[test]
fn an_s3_state_with_credentials_in_grattr_yaml_is_an_error_at_its_line_that_never_shows_them() {
    let repo = Repo::new().file(
        "grattr.yaml",
        "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\nstate: s3://AKIAEXAMPLE:wJalr-secret@team-config/grattr\n",
    );
    let stderr = repo.run(&["validate"]).code(1).into_stderr();
    assert!(!stderr.contains("wJalr-secret"), "{stderr}");
    insta::assert_snapshot!(stderr.lines().next().unwrap(), @"grattr.yaml:4:8: error: state: credentials never go in the state URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with AWS_PROFILE");
    let unknown = Repo::new().file(
        "grattr.yaml",
        "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\nstate: s3://team-config/grattr?secret_access_key=wJalr-secret\n",
    );
    let stderr = unknown.run(&["validate"]).code(1).into_stderr();
    assert!(!stderr.contains("wJalr-secret") && stderr.contains("unknown setting `secret_access_key`"), "{stderr}");
}

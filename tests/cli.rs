//! The `validate` and `plan` commands, end to end through the real binary.

mod support;

use grattr::lockfile::Lockfile;
use grattr::model::{AppliedGroup, AttributeSet, GroupId};
use support::Repo;

const LOBBY: &str =
    "groups:\n  - id: \"@TGS#aC5SZEAEF\"\n    attributes:\n      theme: dark\n      banner: \"Welcome to the lobby\"\n";
const SUPPORT: &str = "groups:\n  - id: support-eu\n    attributes:\n      hours: \"9-17\"\n      sla: 4h\n  - id: support-us\n    attributes: {}\n";

fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Records `groups` as applied in the repository's lockfile.
fn lock(repo: &Repo, groups: &[(&str, AttributeSet)]) {
    let mut lockfile = Lockfile::new(1400000000);
    for (id, attributes) in groups {
        lockfile.groups.insert(GroupId::parse(id).unwrap(), AppliedGroup::new(attributes.clone()));
    }
    lockfile.write(&repo.join("grattr.lock")).unwrap();
}

fn example() -> Repo {
    let repo = Repo::new().file("groups/live/lobby.yaml", LOBBY).file("groups/support.yaml", SUPPORT);
    lock(
        &repo,
        &[
            ("@TGS#aC5SZEAEF", attrs(&[("theme", "light"), ("banner", "Welcome to the lobby")])),
            ("support-us", attrs(&[])),
            ("old-room", attrs(&[("k", "v")])),
        ],
    );
    repo
}

#[test]
fn the_repository_example_is_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = assert_cmd::Command::cargo_bin("grattr").unwrap().current_dir(root).arg("validate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok: "));
}

#[test]
fn validate_counts_groups_and_files() {
    example().run(&["validate"]).code(0).stdout_contains("groups: ok: 3 groups in 2 files");
}

#[test]
fn plan_text_shows_each_change_with_its_source() {
    let stdout = example().run(&["plan"]).code(0).into_stdout();
    assert!(!stdout.contains('\u{1b}'), "no colour when stdout is not a terminal");
    insta::assert_snapshot!(stdout, @r#"
    grattr plan for sdkappid 1400000000

      ~ @TGS#aC5SZEAEF will be updated  (groups/live/lobby.yaml:2)
          ~ theme = "light" → "dark"
          # 1 unchanged key not shown

      + support-eu will be created  (groups/support.yaml:2)
          + hours = "9-17"
          + sla   = "4h"

      = old-room is no longer declared; left as is  (1 key recorded)

    Plan: 1 to create, 1 to update, 0 to delete, 1 unchanged. 1 group is no longer declared and left as is (--prune clears them).
    Safety guard: approved — 1 of the 3 recorded groups (33%) would be updated or deleted, over the threshold of 30%, but with fewer than 10 recorded groups every plan is approved.
    Cost: 2 API calls, at least 0.0 s at 100 calls/s.
    "#);
}

#[test]
fn plan_json_follows_the_documented_schema() {
    let run = example().run(&["plan", "--format", "json", "--prune"]).code(0);
    insta::assert_json_snapshot!(run.json(), @r#"
    {
      "changes": [
        {
          "action": "update",
          "after": {
            "banner": "Welcome to the lobby",
            "theme": "dark"
          },
          "before": {
            "banner": "Welcome to the lobby",
            "theme": "light"
          },
          "group_id": "@TGS#aC5SZEAEF",
          "keys": {
            "added": [],
            "changed": [
              "theme"
            ],
            "removed": [],
            "sources": {
              "theme": {
                "column": 7,
                "file": "groups/live/lobby.yaml",
                "kind": "group",
                "line": 4
              }
            }
          },
          "ownership": "group",
          "source": {
            "column": 9,
            "file": "groups/live/lobby.yaml",
            "line": 2
          }
        },
        {
          "action": "delete",
          "after": null,
          "before": {
            "k": "v"
          },
          "group_id": "old-room",
          "keys": {
            "added": [],
            "changed": [],
            "removed": [
              "k"
            ]
          },
          "ownership": "group",
          "source": null
        },
        {
          "action": "create",
          "after": {
            "hours": "9-17",
            "sla": "4h"
          },
          "before": null,
          "group_id": "support-eu",
          "keys": {
            "added": [
              "hours",
              "sla"
            ],
            "changed": [],
            "removed": [],
            "sources": {
              "hours": {
                "column": 7,
                "file": "groups/support.yaml",
                "kind": "group",
                "line": 4
              },
              "sla": {
                "column": 7,
                "file": "groups/support.yaml",
                "kind": "group",
                "line": 5
              }
            }
          },
          "ownership": "group",
          "source": {
            "column": 9,
            "file": "groups/support.yaml",
            "line": 2
          }
        }
      ],
      "cost": {
        "calls": 3,
        "rate_limit": 100,
        "seconds_at_least": 0.02
      },
      "environment": {
        "name": null,
        "sdkappid": 1400000000
      },
      "format_version": 1,
      "not_declared": [],
      "prune": true,
      "refresh": false,
      "safety": {
        "changed": 2,
        "percent": 66.66666666666667,
        "recorded": 3,
        "threshold": 30,
        "verdict": "approved"
      },
      "summary": {
        "create": 1,
        "delete": 1,
        "not_declared": 0,
        "unchanged": 1,
        "update": 1
      },
      "targets": null
    }
    "#);
}

#[test]
fn plan_markdown_is_a_pr_comment() {
    let stdout = example().run(&["plan", "--format", "markdown"]).code(0).into_stdout();
    assert!(stdout.starts_with(
        "### grattr plan for sdkappid 1400000000\n\n**Plan: 1 to create, 1 to update, 0 to delete, 1 unchanged."
    ));
    assert_eq!(stdout.matches("<details>").count(), 3, "{stdout}");
}

#[test]
fn detailed_exitcode_says_whether_anything_changes() {
    let repo = example();
    let pending = repo.run(&["plan", "--detailed-exitcode"]).code(2).into_stdout();
    repo.run(&["plan"]).code(0).stdout(&pending);
    lock(
        &repo,
        &[
            ("@TGS#aC5SZEAEF", attrs(&[("theme", "dark"), ("banner", "Welcome to the lobby")])),
            ("support-eu", attrs(&[("hours", "9-17"), ("sla", "4h")])),
            ("support-us", attrs(&[])),
        ],
    );
    repo.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_contains("No changes: the desired state matches what grattr.lock records as applied.")
        .stdout_contains("3 unchanged.");
}

#[test]
fn a_first_plan_without_lockfile_creates_everything() {
    let repo = example().remove("grattr.lock");
    repo.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_contains("Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged.");
}

#[test]
fn plan_lockfile_plans_against_that_file_alone() {
    // The configured lockfile records everything (a pull request's own edit, say); the
    // file given records nothing, or does not exist: the plan compares with it alone.
    let repo = example();
    lock(
        &repo,
        &[
            ("@TGS#aC5SZEAEF", attrs(&[("theme", "dark"), ("banner", "Welcome to the lobby")])),
            ("support-eu", attrs(&[("hours", "9-17"), ("sla", "4h")])),
            ("support-us", attrs(&[])),
        ],
    );
    repo.run(&["plan", "--detailed-exitcode"]).code(0).ignore_stdout();
    repo.run(&["plan", "--detailed-exitcode", "--lockfile", "base/grattr.lock"])
        .code(2)
        .stdout_contains("Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged.");
    std::fs::create_dir(repo.join("base")).unwrap();
    let mut base = Lockfile::new(1400000000);
    base.groups.insert(GroupId::parse("support-us").unwrap(), AppliedGroup::new(attrs(&[])));
    base.write(&repo.join("base/grattr.lock")).unwrap();
    repo.run(&["plan", "--lockfile", "base/grattr.lock"])
        .code(0)
        .stdout_contains("Plan: 2 to create, 0 to update, 0 to delete, 1 unchanged.");
    assert!(!repo.join("base/.grattr.lock.lck").exists(), "read only: no lock taken");
    repo.run(&["plan", "--lockfile", "base/grattr.lock", "--state-dir", "state"])
        .code(1)
        .stderr_contains("cannot be used with");
}

#[test]
fn lockfile_path_prints_the_configured_lockfile_of_the_environment() {
    let repo = Repo::new();
    repo.run(&["lockfile", "path"]).stdout("grattr.lock\n");
    let config = "admin: administrator\nenvironments:\n  staging:\n    sdkappid: 1\n    endpoint: http://127.0.0.1:9\n    lockfile: state/staging.lock\n";
    let repo = repo.file("grattr.yaml", config);
    repo.run(&["lockfile", "path", "--env", "staging"]).stdout("state/staging.lock\n");
    repo.run(&["--env", "staging", "lockfile", "path"]).stdout("state/staging.lock\n");
    repo.run(&["lockfile", "path"]).code(1).stderr_contains("choose one with --env NAME");
    // One line a script reads: a newline in the path is refused, not printed.
    let repo = repo.file("grattr.yaml", &format!("{}lockfile: \"two\\nlines.lock\"\n", support::CONFIG));
    repo.run(&["lockfile", "path"]).code(1).stderr_contains("is not printable as one line of text");
}

#[test]
fn plan_out_saves_the_plan_with_its_fingerprint() {
    let repo = example();
    repo.run(&["plan", "--out", "plan.json"])
        .code(0)
        .stderr("Saved the plan to plan.json; apply it with `grattr apply plan.json`.\n")
        .stdout_contains("Plan: 1 to create");
    let saved: serde_json::Value = serde_json::from_str(&repo.read("plan.json")).unwrap();
    for part in ["desired", "before", "environment"] {
        assert!(saved["fingerprint"][part].as_str().unwrap().starts_with("sha256:"), "{part}");
    }
    assert_eq!(saved["summary"]["create"], 1);
    // The same inputs give the same fingerprint; another desired state another one.
    repo.run(&["plan", "--out", "again.json"]).code(0).ignore_stdout().ignore_stderr();
    let again: serde_json::Value = serde_json::from_str(&repo.read("again.json")).unwrap();
    assert_eq!(saved["fingerprint"], again["fingerprint"]);
    let repo = repo.file("groups/support.yaml", &SUPPORT.replace("9-17", "8-18"));
    repo.run(&["plan", "--out", "changed.json"]).code(0).ignore_stdout().ignore_stderr();
    let changed: serde_json::Value = serde_json::from_str(&repo.read("changed.json")).unwrap();
    assert_ne!(saved["fingerprint"]["desired"], changed["fingerprint"]["desired"]);
    assert_eq!(saved["fingerprint"]["before"], changed["fingerprint"]["before"]);
}

#[test]
fn targets_limit_the_plan() {
    let repo = example();
    repo.run(&["plan", "--target", "support-eu"])
        .code(0)
        .stdout_contains("limited to 1 targeted group")
        .stdout_contains("Plan: 1 to create, 0 to update");
    repo.run(&["plan", "--target", "nope"])
        .code(1)
        .stdout("")
        .stderr_contains("error: --target \"nope\": no such group");
}

#[test]
fn invalid_desired_state_plans_nothing() {
    let repo = example().file("groups/bad.yaml", "groups:\n  - id: bad\n    attributes:\n      k: ~\n");
    repo.run(&["plan"])
        .code(1)
        .stdout("")
        .stderr_contains("groups/bad.yaml:4:10: error: group \"bad\" key \"k\": value is null")
        .stderr_contains("error: 1 error, 0 warnings in 1 file; nothing was planned");
    repo.run(&["validate"]).code(1).stderr_contains("groups: invalid: 1 error, 0 warnings in 1 file");
}

#[test]
fn a_corrupt_lockfile_is_refused() {
    let repo = example();
    let text = repo.read("grattr.lock").replace("\"light\"", "\"sepia\"");
    let repo = repo.file("grattr.lock", &text);
    repo.run(&["plan"]).code(1).stdout("").stderr_contains(
        "grattr.lock: error: 1 corrupt or hand-edited entry:\n  - group \"@TGS#aC5SZEAEF\": digest does not match",
    );
    let repo = repo.file("grattr.lock", "{\"format_version\": 1,\n  \"groups\": [\n");
    repo.run(&["plan"])
        .code(1)
        .stderr_contains("grattr.lock:2:12: error: not a valid lockfile: invalid type: sequence");
    // validate does not need the lockfile at all.
    repo.run(&["validate"]).code(0).stdout("groups: ok: 3 groups in 2 files\n");
}

#[test]
fn a_lockfile_of_another_app_is_refused() {
    let repo = example();
    let text = repo.read("grattr.lock").replace("1400000000", "1400000001");
    repo.file("grattr.lock", &text)
        .run(&["plan"])
        .code(1)
        .stderr_contains("records sdkappid 1400000001, but the environment is sdkappid 1400000000");
}

#[test]
fn environments_select_app_and_lockfile() {
    let config = "admin: administrator\nenvironments:\n  staging:\n    sdkappid: 1400000001\n    endpoint: http://127.0.0.1:9\n    lockfile: staging.lock\n  production:\n    sdkappid: 1400000000\n    region: singapore\n";
    let repo = example().file("grattr.yaml", config);
    repo.run(&["plan"]).code(1).stderr_contains(
        "grattr.yaml:3:3: error: grattr.yaml defines environments (production, staging); choose one with --env NAME",
    );
    repo.run(&["plan", "--env", "production"])
        .code(0)
        .stdout_contains("for production (sdkappid 1400000000)")
        .stdout_contains("1 to create, 1 to update");
    repo.run(&["plan", "--env", "staging"])
        .code(0)
        .stdout_contains("for staging (sdkappid 1400000001)")
        .stdout_contains("3 to create, 0 to update");
    repo.run_with_env(&["plan"], &[("GRATTR_ENV", "staging")]).code(0).stdout_contains("for staging");
    repo.run(&["plan", "--env", "qa"])
        .code(1)
        .stderr_contains("no environment named \"qa\"; defined: production, staging");
    // validate checks every environment when none is chosen.
    repo.run(&["validate"]).code(0).stdout_contains("groups: ok: 3 groups");
}

#[test]
fn config_mistakes_point_at_their_line() {
    let repo = example()
        .file("grattr.yaml", "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\nlockfle: x.lock\n");
    repo.run(&["plan"]).code(1).stdout("").stderr_contains("grattr.yaml:4:1: error: unknown field `lockfle`");
    let repo = repo.remove("grattr.yaml");
    repo.run(&["validate"])
        .code(1)
        .stderr_contains("grattr.yaml: error: cannot read the configuration")
        .stderr_contains("help: run grattr in the directory");
    repo.run(&["-c", "elsewhere/grattr.yaml", "plan"])
        .code(1)
        .stderr_contains("elsewhere/grattr.yaml: error: cannot read the configuration");
}

#[test]
fn config_paths_are_relative_to_the_config_file() {
    let repo = Repo::new().file("infra/grattr.yaml", support::CONFIG).file("infra/groups/a.yaml", LOBBY);
    repo.run(&["-c", "infra/grattr.yaml", "plan"]).code(0).stdout_contains("(infra/groups/a.yaml:2)");
}

#[test]
fn usersig_needs_the_secret_key_and_names_its_variable() {
    let repo = example();
    repo.run_with_env(&["usersig"], &[("GRATTR_SECRET_KEY", "")])
        .code(1)
        .stdout("")
        .stderr_contains("error: the secret key in $GRATTR_SECRET_KEY is empty");
    let repo = repo.file("grattr.yaml", &format!("{}secret_key_env: MY_CHAT_KEY\n", support::CONFIG));
    repo.run(&["usersig"]).code(1).stderr_contains("error: the secret key variable $MY_CHAT_KEY is not set");
    let repo = repo.file("key.txt", "file-key\n");
    let from_file = repo.run(&["usersig", "--secret-key-file", "key.txt", "--expire", "1h"]).code(0);
    let from_file = from_file.into_stdout();
    let claims = grattr::api::usersig::decode(from_file.trim()).unwrap();
    assert_eq!((claims.sdkappid, claims.identifier.as_str(), claims.expire), (1400000000, "administrator", 3600));
    let key = grattr::api::usersig::SecretKey::new("file-key").unwrap();
    grattr::api::usersig::verify(&key, from_file.trim(), 1400000000, "administrator", claims.time).unwrap();
    let other =
        repo.run_with_env(&["usersig", "--identifier", "bob"], &[("MY_CHAT_KEY", "env-key")]).code(0).into_stdout();
    assert_eq!(grattr::api::usersig::decode(other.trim()).unwrap().identifier, "bob");
}

#[test]
fn emulator_arguments_are_checked() {
    // A bad value is a usage error: exit 1, as invalid input (2 means only "changes pending").
    let repo = Repo::new();
    repo.run_with_env(&["emulator", "--fault-rate", "1.5"], &[("GRATTR_SECRET_KEY", "k")])
        .code(1)
        .stderr_contains("is not a probability between 0 and 1");
    repo.run_with_env(&["emulator", "--group", "café"], &[("GRATTR_SECRET_KEY", "k")])
        .code(1)
        .stderr_contains("printable ASCII");
    repo.run_with_env(&["emulator", "--latency", "50..10"], &[("GRATTR_SECRET_KEY", "k")])
        .code(1)
        .stderr_contains("the low end");
    repo.run_with_env(&["emulator"], &[("GRATTR_SECRET_KEY", "")])
        .code(1)
        .stderr_contains("$GRATTR_SECRET_KEY is empty");
}

#[test]
fn version_names_the_build() {
    let stdout = Repo::new().run(&["--version"]).code(0).into_stdout();
    let line = stdout.strip_suffix('\n').expect("one line");
    let prefix = concat!("grattr ", env!("CARGO_PKG_VERSION"), " (");
    assert!(line.starts_with(prefix) && line.ends_with(')'), "{line}");
    // Release builds name the commit and its date; this test runs a debug build.
    let build = &line[prefix.len()..line.len() - 1];
    let commit = build.split_whitespace().next().unwrap_or_default();
    let is_commit = commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit());
    assert!(is_commit || build == "dev build" || build == "commit unknown", "{line}");
}

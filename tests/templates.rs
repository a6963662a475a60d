//! Templates and group sets against the emulator: a template change is planned as
//! one cause with the groups it changes folded under it, every written key says
//! where its value comes from, and applying the plan gives the groups the
//! template's new values.

mod support;

use support::emulator::{Server, attrs, grattr};

const TEMPLATES: &str = "\
templates:
  community:
    rules: \"1. Be kind.\"
    theme: dark
groups:
  - ids: [room-1, room-2, room-3]
    template: community
  - id: makers
    template: community
    attributes:
      banner: \"Welcome, makers\"
  - id: plain
    attributes:
      topic: chat
";

#[test]
fn a_template_change_is_one_cause_with_its_groups_folded_under_it() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/community.yaml", TEMPLATES);
    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 5 applied, 0 failed");

    let changed = TEMPLATES.replace("theme: dark", "theme: light").replace("topic: chat", "topic: talk");
    let repo = repo.file("groups/community.yaml", &changed);
    let text = grattr(&repo, &["plan"]).code(0).into_stdout();
    insta::assert_snapshot!(text, @r#"
    grattr plan for sdkappid 1400000000

      Shared changes:
        template community changed theme: 4 groups to update

      ~ makers will be updated  (groups/community.yaml:8)
          ~ theme = "dark" → "light"  # template community
          # 2 unchanged keys not shown

      ~ plain will be updated  (groups/community.yaml:12)
          ~ topic = "chat" → "talk"

      ~ room-1 will be updated  (groups/community.yaml:6)
          ~ theme = "dark" → "light"  # template community
          # 1 unchanged key not shown

      ~ room-2 will be updated  (groups/community.yaml:6)
          ~ theme = "dark" → "light"  # template community
          # 1 unchanged key not shown

      ~ room-3 will be updated  (groups/community.yaml:6)
          ~ theme = "dark" → "light"  # template community
          # 1 unchanged key not shown

    Plan: 0 to create, 5 to update, 0 to delete, 0 unchanged.
    Safety guard: approved — 5 of the 5 recorded groups (100%) would be updated or deleted, over the threshold of 30%, but with fewer than 10 recorded groups every plan is approved.
    Cost: 5 API calls, at least 0.0 s at 200 calls/s.
    "#);

    let markdown = grattr(&repo, &["plan", "--format", "markdown"]).code(0).into_stdout();
    insta::assert_snapshot!(markdown, @r#"
    ### grattr plan for sdkappid 1400000000

    **Plan: 0 to create, 5 to update, 0 to delete, 0 unchanged.**

    Safety guard: approved — 5 of the 5 recorded groups (100%) would be updated or deleted, over the threshold of 30%, but with fewer than 10 recorded groups every plan is approved.

    Cost: 5 API calls, at least 0.0 s at 200 calls/s.

    **template `community` changed `theme`: 4 groups to update**

    ```diff
    - theme = "dark"
    + theme = "light"
    ```

    <details><summary>4 groups with this change alone</summary>

    - `makers` · <code>groups/community.yaml:8</code>
    - `room-1` · <code>groups/community.yaml:6</code>
    - `room-2` · <code>groups/community.yaml:6</code>
    - `room-3` · <code>groups/community.yaml:6</code>

    </details>

    <details><summary><code>~</code> <code>plain</code> will be updated · <code>groups/community.yaml:12</code></summary>

    ```diff
    - topic = "chat"
    + topic = "talk"
    ```

    </details>
    "#);

    let json = grattr(&repo, &["plan", "--format", "json"]).code(0).json();
    let change = |group: &str| json["changes"].as_array().unwrap().iter().find(|c| c["group_id"] == group).unwrap();
    assert_eq!(
        change("room-2")["keys"]["sources"]["theme"],
        serde_json::json!({"kind": "template", "template": "community", "file": "groups/community.yaml", "line": 4, "column": 5})
    );
    assert_eq!(
        change("plain")["keys"]["sources"]["topic"],
        serde_json::json!({"kind": "group", "file": "groups/community.yaml", "line": 14, "column": 7})
    );

    grattr(&repo, &["apply", "--yes"]).code(0).stdout_contains("Apply complete: 5 applied, 0 failed");
    for room in ["room-1", "room-2", "room-3"] {
        assert_eq!(server.get(room), attrs(&[("rules", "1. Be kind."), ("theme", "light")]), "{room}");
    }
    grattr(&repo, &["plan", "--detailed-exitcode"]).code(0).stdout_contains("No changes");
}

#[test]
fn keys_a_set_writes_itself_are_sourced_to_the_set() {
    let server = Server::start(|_| {});
    let repo =
        server.repo().file("groups/rooms.yaml", "groups:\n  - ids: [a, b]\n    attributes:\n      topic: chat\n");
    let json = grattr(&repo, &["plan", "--format", "json"]).code(0).json();
    for change in json["changes"].as_array().unwrap() {
        assert_eq!(
            change["keys"]["sources"]["topic"],
            serde_json::json!({"kind": "set", "file": "groups/rooms.yaml", "line": 4, "column": 7})
        );
    }
}

/// A file of `count` templates, each but the first extending the one before it
/// (`t1` extends `t0`, …), or with `cycle` the first extending the last too, and a
/// group using the last.
fn chained_templates(count: usize, cycle: bool) -> String {
    let mut text = String::from("templates:\n  t0:\n");
    text += &match cycle {
        true => format!("    extends: t{}\n", count - 1),
        false => "    k: v\n".to_string(),
    };
    for n in 1..count {
        text += &format!("  t{n}:\n    extends: t{}\n", n - 1);
    }
    text + &format!("groups:\n  - id: g\n    template: t{}\n", count - 1)
}

#[test]
fn a_chain_of_5000_templates_is_refused_once_where_it_passes_the_depth_limit() {
    let repo = support::Repo::new().file("groups/t.yaml", &chained_templates(5000, false));
    let (stdout, stderr) = repo.run(&["validate", "--format", "github"]).code(1).into_streams();
    let errors: Vec<&str> = stdout.lines().filter(|line| line.starts_with("::error")).collect();
    // t32 is the 33rd template of its chain: its `extends:` (line 2 + 2×32 + 1, column 14) passes the limit.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("line=67,col=14"), "{}", errors[0]);
    assert!(errors[0].contains("32"), "{}", errors[0]);
    assert!(stdout.len() + stderr.len() < 2_000, "{} bytes", stdout.len() + stderr.len());
}

#[test]
fn a_cycle_of_3000_templates_is_reported_once_in_a_few_bytes() {
    let repo = support::Repo::new().file("groups/t.yaml", &chained_templates(3000, true));
    let (stdout, stderr) = repo.run(&["validate", "--format", "github"]).code(1).into_streams();
    let errors: Vec<&str> = stdout.lines().filter(|line| line.starts_with("::error")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    // At the first template's `extends:`, naming a part of the cycle and how long it is.
    assert!(errors[0].contains("line=3,col=14"), "{}", errors[0]);
    assert!(errors[0].contains("3000"), "{}", errors[0]);
    assert!(stdout.len() + stderr.len() < 2_000, "{} bytes", stdout.len() + stderr.len());
}

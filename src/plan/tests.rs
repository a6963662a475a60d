use super::*;
use crate::model::{AppliedGroup, DesiredGroup, Ownership, SourceLocation};
use proptest::prelude::*;
use std::path::Path;

fn id(text: &str) -> GroupId {
    GroupId::parse(text).unwrap()
}

fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn declared(groups: &[(&str, AttributeSet)]) -> BTreeMap<GroupId, DesiredGroup> {
    groups
        .iter()
        .enumerate()
        .map(|(line, (g, a))| {
            let source =
                SourceLocation { file: Arc::from(Path::new("groups/g.yaml")), line: line as u64 + 2, column: 9 };
            (
                id(g),
                DesiredGroup {
                    attributes: a.clone(),
                    source,
                    ownership: crate::model::Ownership::Group,
                    ownership_written: false,
                    origins: crate::model::Origins::Unknown,
                },
            )
        })
        .collect()
}

fn recorded(groups: &[(&str, AttributeSet)]) -> BTreeMap<GroupId, AppliedGroup> {
    groups.iter().map(|(g, a)| (id(g), AppliedGroup::new(a.clone()))).collect()
}

fn sample() -> (BTreeMap<GroupId, DesiredGroup>, BTreeMap<GroupId, AppliedGroup>) {
    let desired = declared(&[
        ("lobby", attrs(&[("theme", "dark"), ("banner", "Welcome")])),
        ("new-room", attrs(&[("topic", "launch")])),
        ("same", attrs(&[("a", "1")])),
        ("emptied", attrs(&[])),
    ]);
    let applied = recorded(&[
        ("lobby", attrs(&[("theme", "light"), ("banner", "Welcome"), ("legacy", "x")])),
        ("same", attrs(&[("a", "1")])),
        ("emptied", attrs(&[("k", "v")])),
        ("gone", attrs(&[("k", "v")])),
    ]);
    (desired, applied)
}

fn options(prune: bool) -> PlanOptions {
    PlanOptions {
        environment: PlanEnvironment { name: Some("production".into()), sdkappid: 1400000000 },
        prune,
        ..PlanOptions::default()
    }
}

#[test]
fn classifies_every_group() {
    let (desired, applied) = sample();
    let plan = diff(&desired, &applied, &options(false));
    let actions: Vec<_> = plan.changes.iter().map(|c| (c.group_id.as_str(), c.action)).collect();
    assert_eq!(actions, vec![("emptied", Action::Update), ("lobby", Action::Update), ("new-room", Action::Create)]);
    assert_eq!(plan.summary, Summary { create: 1, update: 2, delete: 0, unchanged: 1, not_declared: 1 });
    assert_eq!(plan.not_declared[0].group_id.as_str(), "gone");
    let lobby = &plan.changes[1];
    assert_eq!(
        lobby.keys,
        KeyChanges {
            added: vec![],
            removed: vec!["legacy".into()],
            changed: vec!["theme".into()],
            sources: vec![None]
        }
    );
    assert_eq!(lobby.source.as_ref().map(|s| s.line), Some(2));
}

#[test]
fn prune_turns_undeclared_groups_into_deletes() {
    let (desired, applied) = sample();
    let plan = diff(&desired, &applied, &options(true));
    let gone = plan.changes.iter().find(|c| c.group_id.as_str() == "gone").unwrap();
    assert_eq!(gone.action, Action::Delete);
    assert_eq!(gone.after, None);
    assert!(plan.not_declared.is_empty());
    assert_eq!(plan.summary.delete, 1);
}

#[test]
fn targets_limit_the_plan() {
    let (desired, applied) = sample();
    let mut opts = options(true);
    opts.targets = Some([id("lobby"), id("gone")].into());
    let plan = diff(&desired, &applied, &opts);
    let ids: Vec<_> = plan.changes.iter().map(|c| c.group_id.as_str()).collect();
    assert_eq!(ids, vec!["gone", "lobby"]);
    assert_eq!(plan.summary.unchanged, 0);
}

#[test]
fn json_round_trips() {
    let (desired, applied) = sample();
    let plan = diff(&desired, &applied, &options(false));
    let back: Plan = serde_json::from_str(&render::json(&plan).unwrap()).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn text_rendering() {
    let (desired, mut applied) = sample();
    let long_before = "The quick brown fox jumps over the lazy dog, and then it rests under the old oak tree.";
    let long_after = "The quick brown fox leaps over the lazy dog, and then it rests under the old oak tree.";
    applied.insert(
        id("story"),
        AppliedGroup::new(attrs(&[
            ("text", long_before),
            ("odd key", "a\u{1b}[31mb"),
            ("rules", "1. Be kind.\n2. No spam.\n"),
        ])),
    );
    let mut desired = desired;
    desired.insert(
        id("story"),
        DesiredGroup {
            attributes: attrs(&[
                ("text", long_after),
                ("odd key", "a\u{1b}[31mb"),
                ("rules", "1. Be kind.\n2. No spam, no ads.\n3. Have fun."),
            ]),
            source: SourceLocation { file: Arc::from(Path::new("groups/story.yaml")), line: 3, column: 9 },
            ownership: Ownership::Group,
            ownership_written: false,
            origins: crate::model::Origins::Unknown,
        },
    );
    let text = render::text(&diff(&desired, &applied, &options(false)), Path::new("grattr.lock"));
    insta::assert_snapshot!(anstream::adapter::strip_str(&text).to_string(), @r#"
    grattr plan for production (sdkappid 1400000000)

      ~ emptied will be updated  (groups/g.yaml:5)
          - k = "v"
          (no attributes: the group will be cleared)

      ~ lobby will be updated  (groups/g.yaml:2)
          - legacy = "x"
          ~ theme  = "light" → "dark"
          # 1 unchanged key not shown

      + new-room will be created  (groups/g.yaml:3)
          + topic = "launch"

      ~ story will be updated  (groups/story.yaml:3)
          ~ rules = (2 lines → 3 lines)
                "1. Be kind.\n"
              - "2. No spam.\n"
              + "2. No spam, no ads.\n"
              + "3. Have fun."
          ~ text  = "The quick brown fox [-jumps-]{+leaps+} over the lazy dog, and then it rests under the old oak tree."
          # 1 unchanged key not shown

      = gone is no longer declared; left as is  (1 key recorded)

    Plan: 1 to create, 3 to update, 0 to delete, 1 unchanged. 1 group is no longer declared and left as is (--prune clears them).
    "#);
}

#[test]
fn no_changes_says_so() {
    let desired = declared(&[("a", attrs(&[("k", "v")]))]);
    let applied = recorded(&[("a", attrs(&[("k", "v")]))]);
    let plan = diff(&desired, &applied, &options(false));
    assert!(plan.is_empty());
    let text = anstream::adapter::strip_str(&render::text(&plan, Path::new("grattr.lock"))).to_string();
    assert!(text.contains("No changes: the desired state matches what grattr.lock records as applied.\n"), "{text}");
    assert!(text.ends_with("Plan: 0 to create, 0 to update, 0 to delete, 1 unchanged.\n"), "{text}");
}

#[test]
fn markdown_rendering() {
    let (desired, applied) = sample();
    let mut desired = desired;
    desired.insert(
        id("<b>&`x`"),
        DesiredGroup {
            attributes: attrs(&[("code", "```rust\nfn main() {}\n```")]),
            source: SourceLocation { file: Arc::from(Path::new("groups/odd.yaml")), line: 1, column: 9 },
            ownership: Ownership::Group,
            ownership_written: false,
            origins: crate::model::Origins::Unknown,
        },
    );
    insta::assert_snapshot!(render::markdown(&diff(&desired, &applied, &options(true)), Path::new("grattr.lock")));
}

#[test]
fn markdown_cuts_long_values_between_whole_escapes() {
    // Quoted, the value is `"`, 397 `a`, then ten 6-byte `\u0085`: byte 400 falls inside the first.
    let value = format!("{}{}", "a".repeat(397), "\u{85}".repeat(10));
    let desired = declared(&[("room", attrs(&[("k", &value)]))]);
    let markdown = render::markdown(&diff(&desired, &BTreeMap::new(), &options(false)), Path::new("grattr.lock"));
    let expected = format!("\n+ k = \"{}… (61 more bytes)\n", "a".repeat(397));
    assert!(markdown.contains(&expected), "{markdown}");
    assert!(markdown.contains("(61 bytes cut)"), "{markdown}");
}

#[test]
fn markdown_stays_under_the_comment_limit() {
    let big = "x".repeat(4000);
    let groups: Vec<(String, AttributeSet)> =
        (0..300).map(|i| (format!("g{i:05}"), (0..16).map(|k| (format!("k{k}"), big.clone())).collect())).collect();
    let desired = declared(&groups.iter().map(|(g, a)| (g.as_str(), a.clone())).collect::<Vec<_>>());
    let applied = recorded(&[("old", attrs(&[("a", "b")]))]);
    let markdown = render::markdown(&diff(&desired, &applied, &options(false)), Path::new("grattr.lock"));
    assert!(markdown.chars().count() <= render::MARKDOWN_BUDGET, "{}", markdown.chars().count());
    assert!(markdown.contains("more groups not shown"), "says what it cut");
    assert!(markdown.contains("bytes cut"), "says values were shortened");
    assert!(markdown.starts_with("### grattr plan"));
    assert!(markdown.contains("**Plan: 300 to create"), "the summary comes first");
}

fn arb_attrs() -> impl Strategy<Value = AttributeSet> {
    prop::collection::btree_map("[a-z]{1,3}", "[a-z0-9 ]{0,4}", 0..5).prop_map(AttributeSet::from)
}

fn arb_state() -> impl Strategy<Value = BTreeMap<String, AttributeSet>> {
    prop::collection::btree_map("[a-z]{1,4}", arb_attrs(), 0..20)
}

proptest! {
    #[test]
    fn a_plan_against_its_own_applied_state_is_empty(state in arb_state()) {
        let groups: Vec<(&str, AttributeSet)> = state.iter().map(|(g, a)| (g.as_str(), a.clone())).collect();
        let plan = diff(&declared(&groups), &recorded(&groups), &options(true));
        prop_assert!(plan.is_empty());
        prop_assert_eq!(plan.summary.unchanged, state.len());
    }

    #[test]
    fn every_group_is_counted_once(desired in arb_state(), applied in arb_state(), prune in any::<bool>()) {
        let d: Vec<(&str, AttributeSet)> = desired.iter().map(|(g, a)| (g.as_str(), a.clone())).collect();
        let a: Vec<(&str, AttributeSet)> = applied.iter().map(|(g, a)| (g.as_str(), a.clone())).collect();
        let plan = diff(&declared(&d), &recorded(&a), &options(prune));
        let s = plan.summary;
        let all: BTreeSet<&String> = desired.keys().chain(applied.keys()).collect();
        prop_assert_eq!(s.create + s.update + s.delete + s.unchanged + s.not_declared, all.len());
        // Applying the plan yields the desired state.
        let mut after: BTreeMap<String, AttributeSet> = applied.clone();
        for change in &plan.changes {
            match &change.after {
                Some(attrs) => { after.insert(change.group_id.to_string(), attrs.clone()); }
                None => { after.remove(change.group_id.as_str()); }
            }
        }
        if prune {
            prop_assert_eq!(after, desired);
        }
        // Changes come in id order.
        prop_assert!(plan.changes.windows(2).all(|w| w[0].group_id < w[1].group_id));
    }
}

fn with_ownership<V>(mut map: BTreeMap<GroupId, V>, keys: &[&str], set: impl Fn(&mut V)) -> BTreeMap<GroupId, V> {
    for key in keys {
        set(map.get_mut(&id(key)).unwrap());
    }
    map
}

#[test]
fn key_ownership_writes_only_the_owned_keys_and_switches_are_changes_of_their_own() {
    let desired = with_ownership(
        declared(&[
            ("created", attrs(&[("theme", "dark")])),
            ("updated", attrs(&[("theme", "dark"), ("rules", "be kind")])),
            ("same", attrs(&[("theme", "dark")])),
            ("to-keys", attrs(&[("theme", "dark")])),
            ("to-keys-and-more", attrs(&[("theme", "dark")])),
            ("to-group", attrs(&[("theme", "dark")])),
        ]),
        &["created", "updated", "same", "to-keys", "to-keys-and-more"],
        |g| g.ownership = Ownership::Keys,
    );
    let keys = |a: AttributeSet| AppliedGroup::owned(a, Ownership::Keys);
    let applied: BTreeMap<GroupId, AppliedGroup> = [
        (id("updated"), keys(attrs(&[("theme", "light"), ("legacy", "x")]))),
        (id("same"), keys(attrs(&[("theme", "dark")]))),
        (id("to-keys"), AppliedGroup::new(attrs(&[("theme", "dark")]))),
        (id("to-keys-and-more"), AppliedGroup::new(attrs(&[("theme", "dark"), ("old", "1")]))),
        (id("to-group"), keys(attrs(&[("theme", "dark")]))),
        (id("gone"), keys(attrs(&[("k", "v")]))),
    ]
    .into();
    let plan = diff(&desired, &applied, &options(true));
    let summary: Vec<_> = plan
        .changes
        .iter()
        .map(|c| {
            let (modify, delete) = c.key_writes();
            (
                c.group_id.as_str(),
                c.action,
                c.ownership,
                c.ownership_from,
                modify.into_keys().collect::<Vec<_>>(),
                delete,
            )
        })
        .collect();
    let v = |keys: &[&str]| keys.iter().map(ToString::to_string).collect::<Vec<_>>();
    use Ownership::{Group, Keys};
    assert_eq!(
        summary,
        vec![
            ("created", Action::Create, Keys, None, v(&["theme"]), v(&[])),
            // Pruned: only the owned keys are deleted; the group is not cleared.
            ("gone", Action::Delete, Keys, None, v(&[]), v(&["k"])),
            ("to-group", Action::Update, Group, Some(Keys), v(&[]), v(&[])),
            ("to-keys", Action::Update, Keys, Some(Group), v(&[]), v(&[])),
            // The keys grattr applied before and no longer declares are its own: deleted.
            ("to-keys-and-more", Action::Update, Keys, Some(Group), v(&[]), v(&["old"])),
            ("updated", Action::Update, Keys, None, v(&["rules", "theme"]), v(&["legacy"])),
        ]
    );
    assert_eq!(plan.summary.unchanged, 1, "same");
    let records_only: Vec<_> = plan.changes.iter().filter(|c| c.records_only()).map(|c| c.group_id.as_str()).collect();
    assert_eq!(records_only, ["to-keys"], "a switch to keys with nothing to write makes no call");
    let text = anstream::adapter::strip_str(&render::text(&plan, Path::new("grattr.lock"))).to_string();
    assert!(
        text.contains(
            "# ownership keys → group: a full reset, which removes the keys members wrote (plan --refresh lists them)"
        ),
        "{text}"
    );
    assert!(text.contains("# ownership group → keys: no call, only the record changes"), "{text}");
    assert!(text.contains("# grattr deletes only its keys; the group is not cleared"), "{text}");
}

#[test]
fn members_keys_read_by_a_refresh_are_listed_where_a_switch_removes_them() {
    let desired = declared(&[("room", attrs(&[("theme", "dark")]))]);
    let applied: BTreeMap<GroupId, AppliedGroup> =
        [(id("room"), AppliedGroup::owned(attrs(&[("theme", "dark")]), Ownership::Keys))].into();
    let mut options = options(false);
    options.refresh = true;
    options.unmanaged_keys = [(id("room"), vec!["seat.1".to_string(), "odd\u{1b}key".to_string()])].into();
    let plan = diff(&desired, &applied, &options);
    assert_eq!(plan.changes[0].unmanaged_keys.as_deref().map(<[String]>::len), Some(2));
    let text = anstream::adapter::strip_str(&render::text(&plan, Path::new("grattr.lock"))).to_string();
    assert!(text.contains(r#"a full reset, which removes 2 keys members wrote: seat.1, "odd\u001bkey""#), "{text}");
    let markdown = render::markdown(&plan, Path::new("grattr.lock"));
    assert!(markdown.contains("# ownership keys → group"), "{markdown}");
    assert!(!markdown.contains('\u{1b}'), "{markdown}");
}

#[test]
fn key_sources_are_written_in_key_order_and_read_back() {
    use crate::model::{KeyOrigin, OriginKind};
    let origin = |line| {
        Some(KeyOrigin {
            kind: OriginKind::Template,
            template: Some(Arc::from("community")),
            file: Arc::from(Path::new("groups/t.yaml")),
            line,
            column: 5,
        })
    };
    let keys = KeyChanges {
        added: vec!["a".into(), "m".into()],
        removed: vec!["x".into()],
        changed: vec!["b".into(), "z".into()],
        // a, m (added), then b, z (changed); m has no known origin.
        sources: vec![origin(1), None, origin(2), origin(3)],
    };
    let json = serde_json::to_string(&keys).unwrap();
    let order: Vec<&str> = ["\"a\":{", "\"b\":{", "\"z\":{"].into_iter().filter(|k| json.contains(k)).collect();
    assert_eq!(order.len(), 3, "{json}");
    assert!(json.find("\"a\":{") < json.find("\"b\":{") && json.find("\"b\":{") < json.find("\"z\":{"), "{json}");
    assert!(!json.contains("\"m\":{"), "{json}");
    assert_eq!(serde_json::from_str::<KeyChanges>(&json).unwrap(), keys);
    let none = KeyChanges { sources: vec![None, None, None, None], ..keys };
    assert!(!serde_json::to_string(&none).unwrap().contains("sources"));
}

/// The sample plan with the guard's verdict and the cost set, as `plan` sets them.
fn assessed(changed: usize, recorded: usize, verdict: Verdict, calls: u64) -> Plan {
    let (desired, applied) = sample();
    let mut plan = diff(&desired, &applied, &options(false));
    plan.safety = Some(SafetyVerdict { changed, recorded, threshold: 30, min_recorded: 10, verdict });
    plan.cost = Some(Cost { calls, rate_limit: 100 });
    plan
}

#[test]
fn the_guards_verdict_and_the_cost_follow_the_summary() {
    let refused = assessed(9, 14, Verdict::Refused, 2_000);
    let text = anstream::adapter::strip_str(&render::text(&refused, Path::new("grattr.lock"))).to_string();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    insta::assert_snapshot!(tail.into_iter().rev().collect::<Vec<_>>().join("\n"), @"
    Plan: 1 to create, 2 to update, 0 to delete, 1 unchanged. 1 group is no longer declared and left as is (--prune clears them).
    Safety guard: refused — 9 of the 14 recorded groups (64%) would be updated or deleted, over the threshold of 30%; apply will refuse this plan without --force.
    Cost: 2,000 API calls, at least 19.9 s at 100 calls/s.
    ");
    let lines = |plan: &Plan| {
        let text = anstream::adapter::strip_str(&render::text(plan, Path::new("grattr.lock"))).to_string();
        text.lines()
            .rev()
            .take(2)
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!(
        [
            lines(&assessed(1, 14, Verdict::Approved, 1)),
            lines(&assessed(4, 4, Verdict::Approved, 0)),
            lines(&assessed(0, 1, Verdict::Approved, 61_234)),
            lines(&assessed(0, 0, Verdict::Approved, 3)),
            // 31 of 100 reads as 31%; 61 of 200 (30.5%) is not said as the threshold itself.
            lines(&assessed(61, 200, Verdict::Refused, 1_000_000)),
        ]
        .join("\n"),
        @"
    Safety guard: approved — 1 of the 14 recorded groups (7%) would be updated or deleted, within the threshold of 30%.
    Cost: 1 API call, at least 0.0 s at 100 calls/s.
    Safety guard: approved — 4 of the 4 recorded groups (100%) would be updated or deleted, over the threshold of 30%, but with fewer than 10 recorded groups every plan is approved.
    Cost: no API call.
    Safety guard: approved — 0 of the 1 recorded group (0%) would be updated or deleted, within the threshold of 30%.
    Cost: 61,234 API calls, at least 10 min 12 s at 100 calls/s.
    Safety guard: approved — the lockfile records no group yet, so nothing is updated or deleted.
    Cost: 3 API calls, at least 0.0 s at 100 calls/s.
    Safety guard: refused — 61 of the 200 recorded groups (30.5%) would be updated or deleted, over the threshold of 30%; apply will refuse this plan without --force.
    Cost: 1,000,000 API calls, at least 2 h 46 min at 100 calls/s.
    "
    );
}

#[test]
fn markdown_shows_a_refusal_beside_the_summary() {
    let markdown = render::markdown(&assessed(9, 14, Verdict::Refused, 2_000), Path::new("grattr.lock"));
    let head: Vec<&str> = markdown.lines().take(7).collect();
    insta::assert_snapshot!(head.join("\n"), @"
    ### grattr plan for `production` (sdkappid 1400000000)

    **Plan: 1 to create, 2 to update, 0 to delete, 1 unchanged. 1 group is no longer declared and left as is (--prune clears them).**

    > **Safety guard: refused — 9 of the 14 recorded groups (64%) would be updated or deleted, over the threshold of 30%; apply will refuse this plan without `--force`.**

    Cost: 2,000 API calls, at least 19.9 s at 100 calls/s.
    ");
    let approved = render::markdown(&assessed(1, 14, Verdict::Approved, 3), Path::new("grattr.lock"));
    assert!(
        approved.contains("\n\nSafety guard: approved — 1 of the 14 recorded groups (7%) would be updated or deleted, within the threshold of 30%.\n\nCost: 3 API calls, at least 0.0 s at 100 calls/s.\n\n"),
        "{approved}"
    );
}

#[test]
fn json_carries_the_verdict_and_the_cost_additively() {
    let plan = assessed(9, 14, Verdict::Refused, 2_000);
    let json: serde_json::Value = serde_json::from_str(&render::json(&plan).unwrap()).unwrap();
    assert_eq!(json["format_version"], 1, "additive: the version stays");
    assert_eq!(
        json["safety"],
        serde_json::json!({"changed": 9, "recorded": 14, "percent": 900.0 / 14.0, "threshold": 30, "verdict": "refused"})
    );
    assert_eq!(json["cost"], serde_json::json!({"calls": 2000, "seconds_at_least": 19.99, "rate_limit": 100}));
    // Read back (a saved plan), the figures stay; what is not in the schema is not known.
    let back: Plan = serde_json::from_str(&render::json(&plan).unwrap()).unwrap();
    let mut expected = plan.clone();
    expected.safety = expected.safety.map(|s| SafetyVerdict { min_recorded: 0, ..s });
    assert_eq!(back, expected);
    // Without them (as before, and in diff's own plans) nothing is written.
    let (desired, applied) = sample();
    let bare = render::json(&diff(&desired, &applied, &options(false))).unwrap();
    assert!(!bare.contains("\"safety\"") && !bare.contains("\"cost\""), "{bare}");
}

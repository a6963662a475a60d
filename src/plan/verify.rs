//! A saved plan checked against the plan computed now from the same inputs. A
//! saved plan is a file anyone with write access to a CI artifact can edit, so it
//! is never executed: it is compared, field by field, with a fresh plan, and only
//! the fresh plan runs.

use super::{Action, Change, Plan};
use crate::model::{AttributeSet, GroupId};
use std::collections::BTreeMap;
use std::fmt;

/// The first way a saved plan differs from the plan computed now, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference(String);

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn differ(text: impl Into<String>) -> Result<(), Difference> {
    Err(Difference(text.into()))
}

/// Compares every field of `saved` that affects what is sent, recorded or counted
/// (the options, every group, action, key and value, ownership, the counts) or
/// that tells a reviewer where a key's value comes from, with `fresh`, and names
/// the first difference. Where a group is declared (`source`) and the fingerprint
/// are not compared: the first only labels the change, the second is checked
/// before a fresh plan is made.
pub fn compare(saved: &Plan, fresh: &Plan) -> Result<(), Difference> {
    if saved.format_version != fresh.format_version {
        return differ(format!(
            "format_version {} differs from this grattr's {}",
            saved.format_version, fresh.format_version
        ));
    }
    if saved.environment != fresh.environment {
        return differ("the environment (name or sdkappid) differs from the plan computed now");
    }
    if saved.targets != fresh.targets {
        return differ("the targeted groups differ from the plan computed now");
    }
    for (option, saved, fresh) in [("prune", saved.prune, fresh.prune), ("refresh", saved.refresh, fresh.refresh)] {
        if saved != fresh {
            return differ(format!("{option} is {saved} in the saved plan but {fresh} in the plan computed now"));
        }
    }
    compare_changes(&saved.changes, &fresh.changes)?;
    if saved.not_declared != fresh.not_declared {
        return differ("the groups left as no longer declared differ from the plan computed now");
    }
    if saved.summary != fresh.summary {
        return differ(format!(
            "the summary differs from the plan computed now (saved: {:?}; now: {:?})",
            saved.summary, fresh.summary
        ));
    }
    Ok(())
}

fn by_group(changes: &[Change], which: &str) -> Result<BTreeMap<GroupId, Change>, Difference> {
    let mut map = BTreeMap::new();
    for change in changes {
        if map.insert(change.group_id.clone(), change.clone()).is_some() {
            return Err(Difference(format!("group {}: appears twice in {which}", change.group_id)));
        }
    }
    Ok(map)
}

fn compare_changes(saved: &[Change], fresh: &[Change]) -> Result<(), Difference> {
    let saved_by_group = by_group(saved, "the saved plan")?;
    let fresh_by_group = by_group(fresh, "the plan computed now")?;
    let mut ids: Vec<&GroupId> = saved_by_group.keys().chain(fresh_by_group.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        match (saved_by_group.get(id), fresh_by_group.get(id)) {
            (Some(_), None) => {
                return differ(format!("group {id}: in the saved plan but not in the plan computed now"));
            }
            (None, Some(_)) => {
                return differ(format!("group {id}: in the plan computed now but not in the saved plan"));
            }
            (Some(saved), Some(fresh)) => compare_change(id, saved, fresh)?,
            (None, None) => {}
        }
    }
    // Same changes, in another order: what runs is the fresh order anyway, but a
    // plan that was reordered was edited.
    let order = |changes: &[Change]| changes.iter().map(|c| c.group_id.clone()).collect::<Vec<_>>();
    if order(saved) != order(fresh) {
        return differ("the order of the changes differs from the plan computed now");
    }
    Ok(())
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
    }
}

fn compare_change(id: &GroupId, saved: &Change, fresh: &Change) -> Result<(), Difference> {
    if saved.action != fresh.action {
        return differ(format!(
            "group {id}: the saved plan would {} it, the plan computed now would {} it",
            action_name(saved.action),
            action_name(fresh.action)
        ));
    }
    compare_attributes(id, "", saved.after.as_ref(), fresh.after.as_ref())?;
    compare_attributes(id, "last-applied ", saved.before.as_ref(), fresh.before.as_ref())?;
    if (&saved.keys.added, &saved.keys.removed, &saved.keys.changed)
        != (&fresh.keys.added, &fresh.keys.removed, &fresh.keys.changed)
    {
        return differ(format!("group {id}: the keys it touches differ from the plan computed now"));
    }
    // Ownership decides which calls are made and what is recorded.
    if saved.ownership != fresh.ownership {
        return differ(format!(
            "group {id}: its ownership is {} in the saved plan but {} in the plan computed now",
            saved.ownership.as_str(),
            fresh.ownership.as_str()
        ));
    }
    if saved.ownership_from != fresh.ownership_from {
        return differ(format!("group {id}: the ownership it switches from differs from the plan computed now"));
    }
    if saved.unmanaged_keys != fresh.unmanaged_keys {
        return differ(format!("group {id}: the keys members wrote differ from the plan computed now"));
    }
    // Where keys get their values is what a reviewer reads to judge a change
    // ("# template community"); a saved plan that says otherwise was edited.
    if saved.keys.sources != fresh.keys.sources {
        return differ(format!("group {id}: where its keys get their values differs from the plan computed now"));
    }
    Ok(())
}

/// Compares one side (`after`, or with `what` set, `before`) of a change, key by key.
fn compare_attributes(
    id: &GroupId,
    what: &str,
    saved: Option<&AttributeSet>,
    fresh: Option<&AttributeSet>,
) -> Result<(), Difference> {
    let (saved, fresh) = match (saved, fresh) {
        (Some(saved), Some(fresh)) => (saved, fresh),
        (None, None) => return Ok(()),
        _ => return differ(format!("group {id}: its {what}attributes differ from the plan computed now")),
    };
    let mut keys: Vec<&str> = saved.keys().chain(fresh.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let label = super::render::key_label(key);
        match (saved.get(key), fresh.get(key)) {
            (Some(a), Some(b)) if a != b => {
                return differ(format!("group {id}: {what}value of {label} differs from the plan computed now"));
            }
            (Some(_), None) => {
                return differ(format!(
                    "group {id}: {what}key {label} is in the saved plan but not in the plan computed now"
                ));
            }
            (None, Some(_)) => {
                return differ(format!(
                    "group {id}: {what}key {label} is in the plan computed now but not in the saved plan"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppliedGroup, DesiredGroup, SourceLocation};
    use crate::plan::{PlanEnvironment, PlanOptions, diff};
    use std::path::Path;
    use std::sync::Arc;

    fn id(text: &str) -> GroupId {
        GroupId::parse(text).unwrap()
    }

    fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A plan with a create, an update, a delete and a group left unchanged.
    fn plan() -> Plan {
        let source = SourceLocation { file: Arc::from(Path::new("groups/a.yaml")), line: 2, column: 7 };
        let desired: BTreeMap<GroupId, DesiredGroup> = [
            ("g-1", attrs(&[("banner", "new")])),
            ("g-2", attrs(&[("banner", "hi"), ("theme", "dark")])),
            ("g-3", attrs(&[("theme", "light")])),
        ]
        .into_iter()
        .map(|(g, a)| {
            (
                id(g),
                DesiredGroup {
                    attributes: a,
                    source: source.clone(),
                    ownership: crate::model::Ownership::Group,
                    ownership_written: false,
                    origins: crate::model::Origins::Unknown,
                },
            )
        })
        .collect();
        let applied: BTreeMap<GroupId, AppliedGroup> = [
            ("g-2", attrs(&[("banner", "hi"), ("theme", "light")])),
            ("g-3", attrs(&[("theme", "light")])),
            ("g-9", attrs(&[("old", "x")])),
        ]
        .into_iter()
        .map(|(g, a)| (id(g), AppliedGroup::new(a)))
        .collect();
        let options = PlanOptions {
            environment: PlanEnvironment { name: None, sdkappid: 7 },
            prune: true,
            ..PlanOptions::default()
        };
        diff(&desired, &applied, &options)
    }

    fn refused(edit: impl FnOnce(&mut Plan)) -> String {
        let mut saved = plan();
        edit(&mut saved);
        compare(&saved, &plan()).unwrap_err().to_string()
    }

    #[test]
    fn the_same_plan_is_accepted() {
        assert_eq!(compare(&plan(), &plan()), Ok(()));
        // Where a group is declared only labels it.
        let mut moved = plan();
        moved.changes[0].source = None;
        assert_eq!(compare(&moved, &plan()), Ok(()));
    }

    #[test]
    fn every_edit_that_changes_what_runs_is_named() {
        let value = |p: &mut Plan| {
            p.changes[1].after.as_mut().unwrap().insert("theme".into(), "EVIL".into());
        };
        assert_eq!(refused(value), "group g-2: value of theme differs from the plan computed now");
        let added_key = |p: &mut Plan| {
            p.changes[0].after.as_mut().unwrap().insert("admin".into(), "me".into());
        };
        assert_eq!(refused(added_key), "group g-1: key admin is in the saved plan but not in the plan computed now");
        let added_group = |p: &mut Plan| {
            let mut extra = p.changes[0].clone();
            extra.group_id = id("g-0");
            p.changes.insert(0, extra);
        };
        assert_eq!(refused(added_group), "group g-0: in the saved plan but not in the plan computed now");
        let dropped = |p: &mut Plan| {
            p.changes.remove(2);
        };
        assert_eq!(refused(dropped), "group g-9: in the plan computed now but not in the saved plan");
        let action = |p: &mut Plan| p.changes[2].action = Action::Update;
        assert_eq!(refused(action), "group g-9: the saved plan would update it, the plan computed now would delete it");
        let summary = |p: &mut Plan| p.summary.update = 0;
        assert!(refused(summary).starts_with("the summary differs"));
        let prune = |p: &mut Plan| p.prune = false;
        assert_eq!(refused(prune), "prune is false in the saved plan but true in the plan computed now");
        let targets = |p: &mut Plan| p.targets = Some(vec![id("g-1")]);
        assert_eq!(refused(targets), "the targeted groups differ from the plan computed now");
        let refresh = |p: &mut Plan| p.refresh = true;
        assert_eq!(refused(refresh), "refresh is true in the saved plan but false in the plan computed now");
        let environment = |p: &mut Plan| p.environment.sdkappid = 8;
        assert_eq!(refused(environment), "the environment (name or sdkappid) differs from the plan computed now");
        let before = |p: &mut Plan| {
            p.changes[1].before.as_mut().unwrap().insert("theme".into(), "x".into());
        };
        assert_eq!(refused(before), "group g-2: last-applied value of theme differs from the plan computed now");
        let twice = |p: &mut Plan| {
            let again = p.changes[0].clone();
            p.changes.push(again);
        };
        assert_eq!(refused(twice), "group g-1: appears twice in the saved plan");
        let order = |p: &mut Plan| p.changes.swap(0, 1);
        assert_eq!(refused(order), "the order of the changes differs from the plan computed now");
        let keys = |p: &mut Plan| p.changes[0].keys.added.clear();
        assert_eq!(refused(keys), "group g-1: the keys it touches differ from the plan computed now");
        let orphans = |p: &mut Plan| {
            p.not_declared.push(crate::plan::NotDeclared { group_id: id("g-8"), before: AttributeSet::new() });
        };
        assert!(refused(orphans).starts_with("the groups left as no longer declared differ"));
    }

    #[test]
    fn edits_to_ownership_and_to_where_keys_come_from_are_named() {
        use crate::model::Ownership;
        let ownership = |p: &mut Plan| p.changes[1].ownership = Ownership::Keys;
        assert_eq!(
            refused(ownership),
            "group g-2: its ownership is keys in the saved plan but group in the plan computed now"
        );
        let from = |p: &mut Plan| p.changes[1].ownership_from = Some(Ownership::Keys);
        assert_eq!(refused(from), "group g-2: the ownership it switches from differs from the plan computed now");
        let unmanaged = |p: &mut Plan| p.changes[1].unmanaged_keys = Some(vec!["seat.1".into()]);
        assert_eq!(refused(unmanaged), "group g-2: the keys members wrote differ from the plan computed now");
        // Sources: added, edited or deleted.
        let origin = |line| {
            Some(crate::model::KeyOrigin {
                kind: crate::model::OriginKind::Group,
                template: None,
                file: Arc::from(Path::new("groups/a.yaml")),
                line,
                column: 9,
            })
        };
        let mut fresh = plan();
        fresh.changes[0].keys.sources = vec![origin(3)];
        let mut edited = fresh.clone();
        edited.changes[0].keys.sources = vec![origin(4)];
        let deleted = |p: &mut Plan| p.changes[0].keys.sources.clear();
        let mut removed = fresh.clone();
        deleted(&mut removed);
        let expected = "group g-1: where its keys get their values differs from the plan computed now";
        for saved in [edited, removed] {
            assert_eq!(compare(&saved, &fresh).unwrap_err().to_string(), expected);
        }
        assert_eq!(compare(&fresh, &fresh), Ok(()));
    }
}

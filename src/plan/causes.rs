//! Causes: a change to a template (or an overlay) that many groups share, told once.
//!
//! When a template's `rules` change, 500 groups change with it. The reader needs
//! the cause ("template community changed `rules`: 500 groups to update"), not 500
//! copies of one diff. A cause is a shared place ([`KeyOrigin::is_shared`]) that
//! gives at least one written key of at least [`MIN_GROUPS`] changes. A change is
//! *explained* by a cause when every key it writes comes from it and it removes no
//! key: the Markdown plan folds such changes under the cause.

use super::{Action, Change, Plan};
use crate::model::{KeyOrigin, OriginKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Fewer groups than this are shown one by one, without a cause.
pub const MIN_GROUPS: usize = 2;

/// The shared place a cause is: a template, or an overlay file (of a template, when it patches one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// Template or overlay.
    pub kind: OriginKind,
    /// The template's name (for an overlay: of the template it patches, if any).
    pub template: Option<Arc<str>>,
    /// For an overlay: its file.
    pub file: Option<Arc<std::path::Path>>,
}

impl Place {
    fn of(origin: &KeyOrigin) -> Place {
        let file = (origin.kind == OriginKind::Overlay).then(|| origin.file.clone());
        Place { kind: origin.kind, template: origin.template.clone(), file }
    }

    /// "template community", "overlay overlays/production.yaml (template community)",
    /// with names written by `name` for the output at hand.
    pub fn describe(&self, name: fn(&str) -> String) -> String {
        let template = self.template.as_deref().map(name);
        match (&self.file, template) {
            (Some(file), Some(template)) => {
                format!("overlay {} (template {template})", name(&file.to_string_lossy()))
            }
            (Some(file), None) => format!("overlay {}", name(&file.to_string_lossy())),
            (None, Some(template)) => format!("template {template}"),
            (None, None) => self.kind.as_str().to_string(),
        }
    }
}

/// One cause and the changes it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The shared place.
    pub place: Place,
    /// The keys it writes, in order.
    pub keys: Vec<String>,
    /// The indices (in `plan.changes`) of the updates it touches.
    pub updates: Vec<usize>,
    /// The indices of the creates it touches.
    pub creates: Vec<usize>,
    /// The indices of the changes it explains whole (a subset of the two above).
    pub explained: Vec<usize>,
}

impl Cause {
    /// "template community changed `rules`, `theme`: 500 groups to update, 3 to create"
    /// (`key` writes a key label; `name` a name).
    pub fn line(&self, key: fn(&str) -> String, name: fn(&str) -> String) -> String {
        let keys: Vec<String> = self.keys.iter().map(|k| key(k)).collect();
        let mut counts = Vec::new();
        let groups = |n: usize| if n == 1 { "group" } else { "groups" };
        if !self.updates.is_empty() {
            counts.push(format!("{} {} to update", self.updates.len(), groups(self.updates.len())));
        }
        if !self.creates.is_empty() {
            let n = self.creates.len();
            counts.push(if counts.is_empty() {
                format!("{n} {} to create", groups(n))
            } else {
                format!("{n} to create")
            });
        }
        let verb = if self.updates.is_empty() { "sets" } else { "changed" };
        format!("{} {verb} {}: {}", self.place.describe(name), keys.join(", "), counts.join(", "))
    }
}

/// The causes in `plan`, in the order of their place (templates, then overlays, by name).
pub fn causes(plan: &Plan) -> Vec<Cause> {
    let mut by_place: BTreeMap<Place, Cause> = BTreeMap::new();
    for (index, change) in plan.changes.iter().enumerate() {
        if !matches!(change.action, Action::Create | Action::Update) {
            continue;
        }
        let written = change.keys.added.iter().chain(&change.keys.changed);
        let mut places: Vec<Place> = Vec::new();
        let mut whole = change.keys.removed.is_empty();
        for (key, origin) in written.zip(&change.keys.sources) {
            let Some(origin) = origin.as_ref().filter(|o| o.is_shared()) else {
                whole = false;
                continue;
            };
            let place = Place::of(origin);
            let cause = by_place.entry(place.clone()).or_insert_with(|| Cause {
                place: place.clone(),
                keys: Vec::new(),
                updates: Vec::new(),
                creates: Vec::new(),
                explained: Vec::new(),
            });
            if !cause.keys.contains(key) {
                cause.keys.push(key.clone());
            }
            if !places.contains(&place) {
                places.push(place);
            }
        }
        whole &= places.len() == 1 && change.ownership_from.is_none();
        for place in &places {
            let Some(cause) = by_place.get_mut(place) else { continue };
            match change.action {
                Action::Update => cause.updates.push(index),
                _ => cause.creates.push(index),
            }
            if whole {
                cause.explained.push(index);
            }
        }
    }
    by_place
        .into_values()
        .filter(|cause| cause.updates.len() + cause.creates.len() >= MIN_GROUPS)
        .map(|mut cause| {
            cause.keys.sort();
            cause
        })
        .collect()
}

/// The key changes every change in `indices` shares, when they share them all: the
/// same keys, before and after (then one diff tells them all).
pub fn common_diff<'a>(plan: &'a Plan, indices: &[usize]) -> Option<&'a Change> {
    let first = plan.changes.get(*indices.first()?)?;
    let same = |change: &Change| {
        change.action == first.action
            && change.keys.added == first.keys.added
            && change.keys.changed == first.keys.changed
            && change.keys.added.iter().chain(&change.keys.changed).all(|key| {
                fn value<'c>(c: &'c Change, key: &str, before: bool) -> Option<&'c str> {
                    let set = if before { c.before.as_ref() } else { c.after.as_ref() };
                    set.and_then(|s| s.get(key))
                }
                value(change, key, true) == value(first, key, true)
                    && value(change, key, false) == value(first, key, false)
            })
    };
    indices.iter().filter_map(|&i| plan.changes.get(i)).all(same).then_some(first)
}

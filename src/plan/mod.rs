//! The plan: what must change for the live groups to match the desired state,
//! computed by a pure diff of the desired state against the last-applied state,
//! and its three renderings.

pub mod causes;
pub mod render;
pub mod verify;

use crate::model::{AppliedGroup, AttributeSet, DesiredGroup, Digest, GroupId, KeyOrigin, Ownership, SourceLocation};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The version of the JSON plan schema.
pub const FORMAT_VERSION: u32 = 1;

/// What a change does to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The group is not in the lockfile yet: reset it to the desired attributes.
    Create,
    /// Keys are added, removed or changed: reset the group to the desired attributes.
    Update,
    /// The group is no longer declared (and pruning is on): clear it and forget it.
    Delete,
}

/// Where a change's group is declared, in the JSON schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// The line of the group's `id`.
    pub line: u64,
    /// The column of the group's `id`.
    pub column: u64,
}

impl From<&SourceLocation> for Source {
    fn from(location: &SourceLocation) -> Self {
        Source { file: location.file.to_path_buf(), line: location.line, column: location.column }
    }
}

impl From<&Source> for SourceLocation {
    fn from(source: &Source) -> Self {
        SourceLocation { file: Arc::from(source.file.as_path()), line: source.line, column: source.column }
    }
}

/// The keys a change touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "KeyChangesJson")]
pub struct KeyChanges {
    /// Keys only in `after`.
    pub added: Vec<String>,
    /// Keys only in `before`.
    pub removed: Vec<String>,
    /// Keys in both, with different values.
    pub changed: Vec<String>,
    /// Where each key of `added`, then of `changed`, gets its value (`None` when
    /// not known), in that order.
    pub sources: Vec<Option<KeyOrigin>>,
}

/// [`KeyChanges`] as a saved plan is read: `sources` maps each added or changed key to its origin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChangesJson {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    #[serde(default)]
    sources: BTreeMap<String, KeyOrigin>,
}

/// Written field by field, `sources` as one map in key order, with no copy of the
/// keys: a plan of 100,000 creates writes 800,000 of them.
impl Serialize for KeyChanges {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let has_sources = self.sources.iter().any(Option::is_some);
        let mut keys = serializer.serialize_struct("KeyChanges", 3 + usize::from(has_sources))?;
        keys.serialize_field("added", &self.added)?;
        keys.serialize_field("removed", &self.removed)?;
        keys.serialize_field("changed", &self.changed)?;
        if has_sources {
            keys.serialize_field("sources", &SourcesJson(self))?;
        }
        keys.end()
    }
}

/// The `sources` map of a [`KeyChanges`]: its added and changed keys (each list
/// sorted) merged into key order, each with its origin.
struct SourcesJson<'a>(&'a KeyChanges);

impl Serialize for SourcesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let keys = self.0;
        let (added, changed) = (keys.added.len(), keys.changed.len());
        let (mut a, mut c) = (0, 0);
        let mut map = serializer.serialize_map(None)?;
        while a < added || c < changed {
            // Indices into `sources`: added keys first, then changed ones.
            let take_added = c == changed || (a < added && keys.added[a] <= keys.changed[c]);
            let (key, index) = if take_added {
                a += 1;
                (&keys.added[a - 1], a - 1)
            } else {
                c += 1;
                (&keys.changed[c - 1], added + c - 1)
            };
            if let Some(Some(origin)) = keys.sources.get(index) {
                map.serialize_entry(key, origin)?;
            }
        }
        map.end()
    }
}

impl From<KeyChangesJson> for KeyChanges {
    fn from(mut json: KeyChangesJson) -> Self {
        let sources = json.added.iter().chain(&json.changed).map(|key| json.sources.remove(key)).collect();
        KeyChanges { added: json.added, removed: json.removed, changed: json.changed, sources }
    }
}

impl KeyChanges {
    /// The origin of each written key of the group `declared`.
    fn with_sources(mut self, declared: &DesiredGroup) -> Self {
        let origin = |key: &String| declared.origins.of(key, &declared.attributes, &declared.source);
        self.sources = self.added.iter().chain(&self.changed).map(origin).collect();
        self
    }

    /// Where `key` (added or changed) gets its value.
    pub fn source(&self, key: &str) -> Option<&KeyOrigin> {
        let index = self.added.iter().chain(&self.changed).position(|k| k == key)?;
        self.sources.get(index)?.as_ref()
    }
}

impl KeyChanges {
    /// The keys that differ from `before` to `after`.
    pub fn between(before: &AttributeSet, after: &AttributeSet) -> KeyChanges {
        let mut keys = KeyChanges::default();
        for (key, value) in after {
            match before.get(key) {
                None => keys.added.push(key.to_owned()),
                Some(old) if old != value => keys.changed.push(key.to_owned()),
                Some(_) => {}
            }
        }
        keys.removed = before.keys().filter(|k| !after.contains_key(k)).map(str::to_owned).collect();
        keys
    }
}

/// One group to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The group.
    pub group_id: GroupId,
    /// What happens to it.
    pub action: Action,
    /// Where it is declared (`None` for a group no longer declared).
    pub source: Option<Source>,
    /// The attributes last applied (`None` for a create).
    pub before: Option<AttributeSet>,
    /// The attributes it will have (`None` for a delete).
    pub after: Option<AttributeSet>,
    /// The keys touched.
    pub keys: KeyChanges,
    /// What of the group grattr owns after the change (for a delete: owned until
    /// now). With `keys`, `before` and `after` hold only the keys grattr owns.
    #[serde(default)]
    pub ownership: Ownership,
    /// The ownership the change switches from, when it switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership_from: Option<Ownership>,
    /// With `--refresh`, the keys live that grattr does not own (members wrote
    /// them): kept by a change with key ownership, removed by a switch to `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_keys: Option<Vec<String>>,
}

impl Change {
    /// What the change writes with key ownership: the owned keys whose value is new
    /// or different (one `modify_group_attr`), and the owned keys no longer declared
    /// (one `delete_group_attr`). Empty for a change of the whole group.
    pub fn key_writes(&self) -> (AttributeSet, Vec<String>) {
        if self.ownership != Ownership::Keys {
            return (AttributeSet::new(), Vec::new());
        }
        let empty = AttributeSet::new();
        let before = self.before.as_ref().unwrap_or(&empty);
        let after = self.after.as_ref().unwrap_or(&empty);
        let modify = after.iter().filter(|(k, v)| before.get(k) != Some(*v)).collect();
        let delete = before.keys().filter(|k| !after.contains_key(k)).map(str::to_owned).collect();
        (modify, delete)
    }

    /// Whether the change makes no call, only a new record (a switch to key
    /// ownership, or a group with key ownership declared with no key, created).
    pub fn records_only(&self) -> bool {
        let (modify, delete) = self.key_writes();
        self.ownership == Ownership::Keys && modify.is_empty() && delete.is_empty()
    }
}

/// A group that is recorded as applied but no longer declared, left as it is
/// because pruning is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotDeclared {
    /// The group.
    pub group_id: GroupId,
    /// The attributes last applied.
    pub before: AttributeSet,
}

/// How many groups each part of the plan holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Groups to create.
    pub create: usize,
    /// Groups to update.
    pub update: usize,
    /// Groups to clear and forget (pruning on).
    pub delete: usize,
    /// Groups already as declared.
    pub unchanged: usize,
    /// Groups no longer declared and left as they are (pruning off).
    pub not_declared: usize,
}

impl Summary {
    /// The number of groups the plan changes.
    pub fn changes(&self) -> usize {
        self.create + self.update + self.delete
    }
}

/// The environment a plan is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEnvironment {
    /// The environment's name, when the configuration defines environments.
    pub name: Option<String>,
    /// The app.
    pub sdkappid: u64,
}

/// What a saved plan was computed from, so that applying it later can refuse a
/// plan whose inputs have changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// The digest of the desired state.
    pub desired: Digest,
    /// The digest of the state the plan was made against ("before"): the lockfile's
    /// record, or with `--refresh` the live state. Plans saved before 0.2 call it
    /// `lockfile`.
    #[serde(alias = "lockfile")]
    pub before: Digest,
    /// The digest of the environment (app, admin, endpoint).
    pub environment: Digest,
}

/// Which groups a plan considers.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The environment, for headers and the JSON output.
    pub environment: PlanEnvironment,
    /// Whether groups no longer declared are cleared and forgotten.
    pub prune: bool,
    /// When set, only these groups are planned.
    pub targets: Option<BTreeSet<GroupId>>,
    /// Whether "before" is the live state (`--refresh`), which the plan says.
    pub refresh: bool,
    /// The inputs' fingerprint, for a plan that is saved (`plan --out`).
    pub fingerprint: Option<Fingerprint>,
    /// With `--refresh`, for the groups where grattr owns only keys (or owned them
    /// until now), the keys live that it does not own.
    pub unmanaged_keys: BTreeMap<GroupId, Vec<String>>,
}

/// Everything that must change, in group id order. Serialized, this is the
/// documented JSON schema of `grattr plan --format json` and of saved plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The schema version.
    pub format_version: u32,
    /// The environment planned for.
    pub environment: PlanEnvironment,
    /// Whether groups no longer declared are deleted.
    pub prune: bool,
    /// The groups the plan was limited to, if any.
    pub targets: Option<Vec<GroupId>>,
    /// Whether "before" is the live state read from the API (`--refresh`) rather than the lockfile.
    #[serde(default)]
    pub refresh: bool,
    /// Counts.
    pub summary: Summary,
    /// The safety guard's verdict on this plan against the record it compared with:
    /// information for a reviewer, set by `plan` (a saved plan's is never trusted:
    /// `apply` asks the guard again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyVerdict>,
    /// What applying the plan costs in API calls and time, set by `plan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// The changes, by group id.
    pub changes: Vec<Change>,
    /// Groups no longer declared and left alone (only without pruning).
    pub not_declared: Vec<NotDeclared>,
    /// The inputs of a saved plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

impl Plan {
    /// Whether applying the plan would make no call.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// What the safety guard decides about a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// `apply` and `watch` would apply the plan.
    Approved,
    /// `apply` and `watch` would refuse the plan without `--force`.
    Refused,
}

/// The safety guard's verdict on a plan, with the figures it decided on. Made by
/// the guard (`apply::guard::Safety::verdict`), which this module cannot call: it is
/// only carried and rendered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "SafetyVerdictJson")]
pub struct SafetyVerdict {
    /// The groups the plan updates or deletes (creates do not count).
    pub changed: usize,
    /// The groups the record holds.
    pub recorded: usize,
    /// The largest share, in percent, of the recorded groups a plan may change.
    pub threshold: u32,
    /// Below this many recorded groups every plan is approved (0 when not known, as
    /// in a saved plan, which does not carry it).
    pub min_recorded: usize,
    /// The decision.
    pub verdict: Verdict,
}

impl SafetyVerdict {
    /// The share of the recorded groups the plan changes, in percent (0 with none recorded).
    pub fn percent(&self) -> f64 {
        if self.recorded == 0 { 0.0 } else { self.changed as f64 * 100.0 / self.recorded as f64 }
    }
}

/// [`SafetyVerdict`] in the JSON schema: `percent` is derived, so that it cannot disagree.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyVerdictJson {
    changed: usize,
    recorded: usize,
    #[serde(default)]
    percent: f64,
    threshold: u32,
    verdict: Verdict,
}

impl Serialize for SafetyVerdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SafetyVerdictJson {
            changed: self.changed,
            recorded: self.recorded,
            percent: self.percent(),
            threshold: self.threshold,
            verdict: self.verdict,
        }
        .serialize(serializer)
    }
}

impl From<SafetyVerdictJson> for SafetyVerdict {
    fn from(json: SafetyVerdictJson) -> Self {
        SafetyVerdict {
            changed: json.changed,
            recorded: json.recorded,
            threshold: json.threshold,
            min_recorded: 0,
            verdict: json.verdict,
        }
    }
}

/// What applying a plan costs: its API calls, at the least (calls a retry or a
/// re-read adds are not counted), and the least time the app-wide rate limit lets
/// them take. Counted by `apply` (`apply::cost`), which knows which calls a change makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "CostJson")]
pub struct Cost {
    /// The API calls.
    pub calls: u64,
    /// The app-wide calls per second.
    pub rate_limit: u32,
}

impl Cost {
    /// The least time the calls take at the rate limit, in seconds: the limiter lets
    /// the first call go at once and spaces the others by one interval each.
    pub fn seconds_at_least(&self) -> f64 {
        self.calls.saturating_sub(1) as f64 / f64::from(self.rate_limit.max(1))
    }
}

/// [`Cost`] in the JSON schema: `seconds_at_least` is derived.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostJson {
    calls: u64,
    #[serde(default)]
    seconds_at_least: f64,
    rate_limit: u32,
}

impl Serialize for Cost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CostJson { calls: self.calls, seconds_at_least: self.seconds_at_least(), rate_limit: self.rate_limit }
            .serialize(serializer)
    }
}

impl From<CostJson> for Cost {
    fn from(json: CostJson) -> Self {
        Cost { calls: json.calls, rate_limit: json.rate_limit }
    }
}

/// A declared group as the diff takes it: borrowed (its attributes are cloned into the
/// plan) or owned (moved into it).
trait Declared {
    fn id(&self) -> &GroupId;
    fn group(&self) -> &DesiredGroup;
    /// The id and attributes, for a change that keeps them.
    fn into_parts(self) -> (GroupId, AttributeSet);
}

impl Declared for (&GroupId, &DesiredGroup) {
    fn id(&self) -> &GroupId {
        self.0
    }
    fn group(&self) -> &DesiredGroup {
        self.1
    }
    fn into_parts(self) -> (GroupId, AttributeSet) {
        (self.0.clone(), self.1.attributes.clone())
    }
}

impl Declared for (GroupId, DesiredGroup) {
    fn id(&self) -> &GroupId {
        &self.0
    }
    fn group(&self) -> &DesiredGroup {
        &self.1
    }
    fn into_parts(self) -> (GroupId, AttributeSet) {
        (self.0, self.1.attributes)
    }
}

/// Compares the desired state with the applied one. Pure and linear: both maps
/// are walked once, side by side, in id order.
pub fn diff(
    desired: &BTreeMap<GroupId, DesiredGroup>,
    applied: &BTreeMap<GroupId, AppliedGroup>,
    options: &PlanOptions,
) -> Plan {
    // With targets, look them up rather than walk everything: `watch` plans the few
    // groups a file change touched in a repository of 100,000.
    match &options.targets {
        Some(targets) => diff_sorted(targets.iter().filter_map(|id| desired.get_key_value(id)), applied, options),
        None => diff_sorted(desired.iter(), applied, options),
    }
}

/// [`diff`], taking the desired state: the attributes of the groups to create and
/// update move into the plan instead of being copied, so that a plan of 100,000
/// creates holds them once.
pub fn diff_owned(
    mut desired: BTreeMap<GroupId, DesiredGroup>,
    applied: &BTreeMap<GroupId, AppliedGroup>,
    options: &PlanOptions,
) -> Plan {
    match &options.targets {
        Some(targets) => {
            let wanted: Vec<_> = targets.iter().filter_map(|id| desired.remove_entry(id)).collect();
            diff_sorted(wanted.into_iter(), applied, options)
        }
        None => diff_sorted(desired.into_iter(), applied, options),
    }
}

/// The diff of declared groups, in id order, against the applied ones (those of
/// `options.targets` only, when given).
fn diff_sorted<D: Declared>(
    desired: impl Iterator<Item = D>,
    applied: &BTreeMap<GroupId, AppliedGroup>,
    options: &PlanOptions,
) -> Plan {
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        environment: options.environment.clone(),
        prune: options.prune,
        targets: options.targets.as_ref().map(|t| t.iter().cloned().collect()),
        refresh: options.refresh,
        summary: Summary::default(),
        safety: None,
        cost: None,
        changes: Vec::new(),
        not_declared: Vec::new(),
        fingerprint: options.fingerprint.clone(),
    };
    let applied_entries: Vec<_> = match &options.targets {
        Some(targets) => targets.iter().filter_map(|id| applied.get_key_value(id)).collect(),
        None => applied.iter().collect(),
    };
    let mut desired_iter = desired.peekable();
    let mut applied_iter = applied_entries.into_iter().peekable();
    loop {
        let order = match (desired_iter.peek(), applied_iter.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(d), Some((a, _))) => d.id().cmp(a),
        };
        match order {
            Ordering::Less => {
                let Some(declared) = desired_iter.next() else { break };
                let source = Some(Source::from(&declared.group().source));
                let ownership = declared.group().ownership;
                let unmanaged_keys = options.unmanaged_keys.get(declared.id()).cloned();
                let keys = KeyChanges::between(&AttributeSet::new(), &declared.group().attributes)
                    .with_sources(declared.group());
                let (group_id, after) = declared.into_parts();
                plan.summary.create += 1;
                plan.changes.push(Change {
                    group_id,
                    action: Action::Create,
                    source,
                    before: None,
                    keys,
                    after: Some(after),
                    ownership,
                    ownership_from: None,
                    unmanaged_keys,
                });
            }
            Ordering::Equal => {
                let (Some(declared), Some((_, recorded))) = (desired_iter.next(), applied_iter.next()) else {
                    break;
                };
                // A switch to the whole group is a full reset even when grattr's keys are
                // as declared: it removes the keys members wrote.
                let ownership = declared.group().ownership;
                if declared.group().attributes == recorded.attributes && ownership == recorded.ownership {
                    plan.summary.unchanged += 1;
                    continue;
                }
                let source = Some(Source::from(&declared.group().source));
                let unmanaged_keys = options.unmanaged_keys.get(declared.id()).cloned();
                let keys = KeyChanges::between(&recorded.attributes, &declared.group().attributes)
                    .with_sources(declared.group());
                let (group_id, after) = declared.into_parts();
                plan.summary.update += 1;
                plan.changes.push(Change {
                    group_id,
                    action: Action::Update,
                    source,
                    before: Some(recorded.attributes.clone()),
                    keys,
                    after: Some(after),
                    ownership,
                    ownership_from: (ownership != recorded.ownership).then_some(recorded.ownership),
                    unmanaged_keys,
                });
            }
            Ordering::Greater => {
                let Some((id, recorded)) = applied_iter.next() else { break };
                if options.prune {
                    plan.summary.delete += 1;
                    plan.changes.push(Change {
                        group_id: id.clone(),
                        action: Action::Delete,
                        source: None,
                        before: Some(recorded.attributes.clone()),
                        after: None,
                        keys: KeyChanges::between(&recorded.attributes, &AttributeSet::new()),
                        ownership: recorded.ownership,
                        ownership_from: None,
                        unmanaged_keys: options.unmanaged_keys.get(id).cloned(),
                    });
                } else {
                    plan.summary.not_declared += 1;
                    plan.not_declared.push(NotDeclared { group_id: id.clone(), before: recorded.attributes.clone() });
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests;

//! Drift: the desired state (YAML), the applied state (lockfile) and the live
//! state (`get_group_attr`) compared per group. Pure: the live state is read by
//! [`crate::live`] and handed in.

pub mod render;

use crate::api::client::ApiError;
use crate::model::{
    AppliedGroup, AttributeSet, DesiredGroup, GroupId, Ownership, ownership_of, set_apart_members_keys,
};
use crate::plan::{KeyChanges, PlanEnvironment, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the JSON drift schema.
pub const FORMAT_VERSION: u32 = 1;

/// How one group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Desired, applied and live agree.
    InSync,
    /// Desired differs from applied, and live equals applied: a normal unapplied change.
    Pending,
    /// Live differs from applied (changed outside grattr); desired equals applied.
    Drifted,
    /// Drifted, and also pending.
    Conflict,
    /// The group does not exist: dismissed, or never created.
    Missing,
    /// The group could not be read.
    Unreadable,
}

impl Status {
    /// Whether `--detailed-exitcode` reports it.
    pub fn is_drift(self) -> bool {
        matches!(self, Status::Drifted | Status::Conflict | Status::Missing)
    }
}

/// One group's three states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDrift {
    /// The group.
    pub group_id: GroupId,
    /// How it stands.
    pub status: Status,
    /// Where it is declared, if it is.
    pub source: Option<Source>,
    /// What the YAML says (`None`: not declared).
    pub desired: Option<AttributeSet>,
    /// What the lockfile records (`None`: never applied).
    pub applied: Option<AttributeSet>,
    /// What is live (`None`: missing or unreadable).
    pub live: Option<AttributeSet>,
    /// The keys that changed live, from applied to live.
    pub live_changes: KeyChanges,
    /// Why the group could not be read.
    pub error: Option<String>,
    /// The API error code of that.
    pub code: Option<u32>,
    /// What of the group grattr owns (recorded, else declared). With `keys`,
    /// `desired`, `applied`, `live` and `live_changes` hold only the keys it owns.
    #[serde(default)]
    pub ownership: Ownership,
    /// With key ownership, the keys live that grattr does not own: members wrote
    /// them, and they are never drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_keys: Option<Vec<String>>,
}

/// How many groups stand how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// In sync.
    pub in_sync: usize,
    /// Pending.
    pub pending: usize,
    /// Drifted.
    pub drifted: usize,
    /// Conflicts.
    pub conflict: usize,
    /// Missing.
    pub missing: usize,
    /// Unreadable.
    pub unreadable: usize,
}

/// Every managed group's standing; serialized, the JSON schema of `grattr drift --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The schema version.
    pub format_version: u32,
    /// The environment.
    pub environment: PlanEnvironment,
    /// Counts.
    pub summary: Summary,
    /// The groups not in sync, by id.
    pub groups: Vec<GroupDrift>,
}

impl DriftReport {
    /// Whether anything drifted, conflicts or is missing.
    pub fn has_drift(&self) -> bool {
        self.groups.iter().any(|g| g.status.is_drift())
    }
}

/// Classifies every group read live. `live` holds what reading each managed group gave.
pub fn classify(
    environment: PlanEnvironment,
    desired: &BTreeMap<GroupId, DesiredGroup>,
    applied: &BTreeMap<GroupId, AppliedGroup>,
    live: &BTreeMap<GroupId, Result<AttributeSet, ApiError>>,
) -> DriftReport {
    let mut report =
        DriftReport { format_version: FORMAT_VERSION, environment, summary: Summary::default(), groups: Vec::new() };
    for (id, read) in live {
        let declared = desired.get(id);
        let record = applied.get(id);
        let recorded = record.map(|a| &a.attributes);
        let ownership = ownership_of(record, declared);
        let mut group = GroupDrift {
            group_id: id.clone(),
            status: Status::InSync,
            source: declared.map(|d| Source::from(&d.source)),
            desired: declared.map(|d| d.attributes.clone()),
            applied: recorded.cloned(),
            live: None,
            live_changes: KeyChanges::default(),
            error: None,
            code: None,
            ownership,
            unmanaged_keys: None,
        };
        match read {
            Err(error) => {
                group.code = error.code();
                group.error = Some(error.to_string());
                group.status = if error.is_missing_group() { Status::Missing } else { Status::Unreadable };
            }
            Ok(live) => {
                // With key ownership only grattr's keys are compared: members' are set apart.
                let mut live = live.clone();
                group.unmanaged_keys = set_apart_members_keys(&mut live, record, declared);
                let drifted = recorded.is_some_and(|applied| *applied != live);
                // A group never applied is pending; one no longer declared is left as is.
                let pending = match (declared, record) {
                    (Some(d), Some(a)) => d.attributes != a.attributes || d.ownership != a.ownership,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                group.status = match (drifted, pending) {
                    (false, false) => Status::InSync,
                    (false, true) => Status::Pending,
                    (true, false) => Status::Drifted,
                    (true, true) => Status::Conflict,
                };
                if let Some(applied) = recorded {
                    group.live_changes = KeyChanges::between(applied, &live);
                }
                group.live = Some(live);
            }
        }
        let s = &mut report.summary;
        match group.status {
            Status::InSync => s.in_sync += 1,
            Status::Pending => s.pending += 1,
            Status::Drifted => s.drifted += 1,
            Status::Conflict => s.conflict += 1,
            Status::Missing => s.missing += 1,
            Status::Unreadable => s.unreadable += 1,
        }
        if group.status != Status::InSync {
            report.groups.push(group);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::ErrorKind;
    use crate::api::wire::Operation;
    use crate::model::SourceLocation;
    use std::path::Path;
    use std::sync::Arc;

    fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn id(text: &str) -> GroupId {
        GroupId::parse(text).unwrap()
    }

    #[test]
    fn every_category() {
        let source = SourceLocation { file: Arc::from(Path::new("g.yaml")), line: 1, column: 1 };
        let declare = |a: AttributeSet| DesiredGroup {
            attributes: a,
            source: source.clone(),
            ownership: crate::model::Ownership::Group,
            ownership_written: false,
            origins: crate::model::Origins::Unknown,
        };
        let v1 = attrs(&[("k", "1")]);
        let v2 = attrs(&[("k", "2")]);
        let client_edit = attrs(&[("k", "1"), ("added", "x")]);
        let desired: BTreeMap<_, _> = [
            (id("sync"), declare(v1.clone())),
            (id("pending"), declare(v2.clone())),
            (id("drifted"), declare(v1.clone())),
            (id("conflict"), declare(v2.clone())),
            (id("missing"), declare(v1.clone())),
            (id("new"), declare(v1.clone())),
        ]
        .into();
        let applied: BTreeMap<_, _> = ["sync", "pending", "drifted", "conflict", "missing"]
            .iter()
            .map(|g| (id(g), AppliedGroup::new(v1.clone())))
            .collect();
        let gone = ApiError {
            operation: Operation::GetGroupAttr,
            kind: ErrorKind::Api { code: crate::api::codes::GROUP_NOT_FOUND.code, info: String::new() },
            attempts: 1,
        };
        let live: BTreeMap<_, _> = [
            (id("sync"), Ok(v1.clone())),
            (id("pending"), Ok(v1.clone())),
            (id("drifted"), Ok(client_edit.clone())),
            (id("conflict"), Ok(client_edit.clone())),
            (id("missing"), Err(gone)),
            (id("new"), Ok(AttributeSet::new())),
        ]
        .into();
        let report = classify(PlanEnvironment::default(), &desired, &applied, &live);
        let statuses: Vec<_> = report.groups.iter().map(|g| (g.group_id.as_str(), g.status)).collect();
        assert_eq!(
            statuses,
            vec![
                ("conflict", Status::Conflict),
                ("drifted", Status::Drifted),
                ("missing", Status::Missing),
                ("new", Status::Pending),
                ("pending", Status::Pending),
            ]
        );
        assert_eq!(
            report.summary,
            Summary { in_sync: 1, pending: 2, drifted: 1, conflict: 1, missing: 1, unreadable: 0 }
        );
        assert_eq!(report.groups[1].live_changes.added, vec!["added".to_string()]);
        assert!(report.has_drift());
    }

    #[test]
    fn a_pending_switch_to_key_ownership_sets_members_keys_apart_already() {
        // Recorded as the whole group, declared with key ownership (the switch not applied
        // yet): a member's key is theirs under the new ownership, so it is neither drift nor
        // something a heal against this report could delete.
        let source = SourceLocation { file: Arc::from(Path::new("g.yaml")), line: 1, column: 1 };
        let desired: BTreeMap<_, _> = [(
            id("room"),
            DesiredGroup {
                attributes: attrs(&[("k", "1")]),
                source,
                ownership: Ownership::Keys,
                ownership_written: true,
                origins: crate::model::Origins::Unknown,
            },
        )]
        .into();
        let applied: BTreeMap<_, _> = [(id("room"), AppliedGroup::new(attrs(&[("k", "1"), ("old", "x")])))].into();
        let live: BTreeMap<_, _> = [(id("room"), Ok(attrs(&[("k", "1"), ("old", "x"), ("seat", "alice")])))].into();
        let report = classify(PlanEnvironment::default(), &desired, &applied, &live);
        let room = &report.groups[0];
        assert_eq!(room.status, Status::Pending, "{room:?}");
        assert_eq!(room.live.as_ref(), Some(&attrs(&[("k", "1"), ("old", "x")])));
        assert_eq!(room.unmanaged_keys.as_deref(), Some(&["seat".to_string()][..]));
    }
}

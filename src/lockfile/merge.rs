//! A three-way merge of lockfiles, for git's merge driver: two branches that each
//! applied (or imported) groups merge into one record without a conflict, and a
//! group whose record the branches cannot agree on is left to be applied again
//! rather than recorded as something that may not be live.

use super::Lockfile;
use crate::model::{AppliedGroup, GroupId};
use std::collections::{BTreeMap, BTreeSet};

/// What became of a group both sides changed differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Both sides recorded other attributes (or the same ones with another
    /// ownership): which was applied last, the lockfile cannot know, so the group is left out; the next plan creates it, a full reset
    /// to its desired state, which makes the live state certain again.
    Unrecorded(GroupId),
    /// One side forgot the group (pruned it), the other recorded new attributes: the
    /// record is kept, so the group stays managed (a later prune clears it again if
    /// it is no longer declared) rather than left live and unmanaged.
    Kept(GroupId),
}

/// Why two lockfiles cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The sides record different apps.
    #[error("the lockfiles record different apps (sdkappid {0} and {1}); they cannot be merged")]
    Apps(u64, u64),
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged record.
    pub lockfile: Lockfile,
    /// The groups both sides changed differently, and how each was settled.
    pub resolutions: Vec<Resolution>,
}

/// Merges `ours` and `theirs`, both descended from `base`, group by group: a group
/// that only one side changed takes that side's record (a removal included); a
/// group both sides changed alike takes it; a group changed differently is settled
/// as [`Resolution`] says.
pub fn merge(base: &Lockfile, ours: &Lockfile, theirs: &Lockfile) -> Result<Merged, MergeError> {
    let sdkappid = match (ours.sdkappid.or(base.sdkappid), theirs.sdkappid.or(base.sdkappid)) {
        (Some(a), Some(b)) if a != b => return Err(MergeError::Apps(a, b)),
        (a, b) => a.or(b),
    };
    let ids: BTreeSet<&GroupId> = base.groups.keys().chain(ours.groups.keys()).chain(theirs.groups.keys()).collect();
    let mut lockfile = Lockfile { sdkappid, groups: BTreeMap::default() };
    let mut resolutions = Vec::new();
    for id in ids {
        let (b, o, t) = (base.groups.get(id), ours.groups.get(id), theirs.groups.get(id));
        let merged: Option<&AppliedGroup> = if same(o, t) || same(t, b) {
            o
        } else if same(o, b) {
            t
        } else if o.is_none() || t.is_none() {
            resolutions.push(Resolution::Kept(id.clone()));
            o.or(t)
        } else {
            resolutions.push(Resolution::Unrecorded(id.clone()));
            None
        };
        if let Some(group) = merged {
            lockfile.groups.insert(id.clone(), group.clone());
        }
    }
    Ok(Merged { lockfile, resolutions })
}

/// Whether two records (or absences) say the same: the attributes and what of the
/// group grattr owns (the digest covers both). Ownership decides what a plan
/// touches, so records that differ in it alone are different records.
fn same(a: Option<&AppliedGroup>, b: Option<&AppliedGroup>) -> bool {
    a.map(|g| (&g.attributes, g.ownership)) == b.map(|g| (&g.attributes, g.ownership))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeSet;

    fn lockfile(groups: &[(&str, &str)]) -> Lockfile {
        let mut lockfile = Lockfile::new(7);
        for (id, value) in groups {
            let attributes: AttributeSet = [("k".to_string(), value.to_string())].into();
            lockfile.groups.insert(GroupId::parse(id).unwrap(), AppliedGroup::new(attributes));
        }
        lockfile
    }

    fn merged(base: &[(&str, &str)], ours: &[(&str, &str)], theirs: &[(&str, &str)]) -> Merged {
        merge(&lockfile(base), &lockfile(ours), &lockfile(theirs)).unwrap()
    }

    #[test]
    fn changes_of_different_groups_merge() {
        let base = [("a", "1"), ("b", "1"), ("gone", "1")];
        // Ours applied a and created c; theirs applied b and pruned gone.
        let result = merged(&base, &[("a", "2"), ("b", "1"), ("c", "1"), ("gone", "1")], &[("a", "1"), ("b", "2")]);
        assert_eq!(result.lockfile, lockfile(&[("a", "2"), ("b", "2"), ("c", "1")]));
        assert!(result.resolutions.is_empty());
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let result = merged(&[("a", "1")], &[("a", "2"), ("n", "1")], &[("a", "2"), ("n", "1")]);
        assert_eq!(result.lockfile, lockfile(&[("a", "2"), ("n", "1")]));
        assert!(result.resolutions.is_empty());
        // Without a common base (both added the file).
        let result = merge(&Lockfile::default(), &lockfile(&[("a", "1")]), &lockfile(&[("b", "1")])).unwrap();
        assert_eq!(result.lockfile, lockfile(&[("a", "1"), ("b", "1")]));
    }

    #[test]
    fn a_group_recorded_differently_is_left_to_be_applied_again() {
        let result = merged(&[("a", "1"), ("b", "1")], &[("a", "2"), ("b", "1")], &[("a", "3"), ("b", "1")]);
        assert_eq!(result.lockfile, lockfile(&[("b", "1")]));
        assert_eq!(result.resolutions, vec![Resolution::Unrecorded(GroupId::parse("a").unwrap())]);
        // Created on both sides with different attributes: the same.
        let result = merged(&[], &[("n", "1")], &[("n", "2")]);
        assert_eq!(result.lockfile, lockfile(&[]));
    }

    #[test]
    fn a_group_pruned_on_one_side_and_changed_on_the_other_stays_recorded() {
        let result = merged(&[("a", "1")], &[], &[("a", "2")]);
        assert_eq!(result.lockfile, lockfile(&[("a", "2")]));
        assert_eq!(result.resolutions, vec![Resolution::Kept(GroupId::parse("a").unwrap())]);
        let result = merged(&[("a", "1")], &[("a", "2")], &[]);
        assert_eq!(result.lockfile, lockfile(&[("a", "2")]));
    }

    #[test]
    fn a_group_whose_ownership_alone_differs_is_a_conflict_of_that_group() {
        use crate::model::Ownership;
        let keys = |lockfile: &mut Lockfile, id: &str| {
            let group = lockfile.groups.get_mut(&GroupId::parse(id).unwrap()).unwrap();
            *group = AppliedGroup::owned(group.attributes.clone(), Ownership::Keys);
        };
        let base = lockfile(&[("a", "1"), ("b", "1")]);
        // Ours switched a to key ownership, theirs kept it: ours is the one change.
        let mut ours = lockfile(&[("a", "1"), ("b", "1")]);
        keys(&mut ours, "a");
        let result = merge(&base, &ours, &base).unwrap();
        assert_eq!(result.lockfile, ours);
        let result = merge(&base, &base, &ours).unwrap();
        assert_eq!(result.lockfile, ours, "theirs is the one change");
        // Both sides created it, alike but for the ownership: which holds is unknown.
        let theirs = lockfile(&[("a", "1"), ("b", "1")]);
        let result = merge(&lockfile(&[("b", "1")]), &ours, &theirs).unwrap();
        assert_eq!(result.lockfile, lockfile(&[("b", "1")]));
        assert_eq!(result.resolutions, vec![Resolution::Unrecorded(GroupId::parse("a").unwrap())]);
    }

    #[test]
    fn another_apps_lockfile_is_refused() {
        let mut other = lockfile(&[]);
        other.sdkappid = Some(8);
        assert_eq!(merge(&lockfile(&[]), &lockfile(&[]), &other), Err(MergeError::Apps(7, 8)));
        // A side not yet written (no sdkappid) takes the other's app.
        let result = merge(&Lockfile::default(), &Lockfile::default(), &lockfile(&[("a", "1")])).unwrap();
        assert_eq!(result.lockfile.sdkappid, Some(7));
    }
}

//! Domain types shared by every other module: group ids, attribute sets, the
//! API's documented limits (one table), regions and content digests. No I/O.

mod attributes;
mod digest;
mod group_id;
pub mod limits;
mod origin;
mod region;

pub use attributes::AttributeSet;
pub use digest::{Digest, DigestBuilder};
pub use group_id::{GroupId, GroupIdError};
pub use origin::{KeyOrigin, OriginKind, Origins};

pub use region::Region;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A place in a source file; line and column count from 1 (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file, as the user would type it (relative to the working directory when possible).
    pub file: Arc<Path>,
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1.
    pub column: u64,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

/// What of a group's attributes grattr owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    /// The whole group: its attributes are exactly the declared ones, and a change
    /// is one `set_group_attr`, a full reset (the default).
    #[default]
    Group,
    /// Only the keys grattr declares for the group, and the keys it applied before
    /// and no longer declares: keys the group's members write are never sent,
    /// deleted or reported as drift. A change is a `modify_group_attr` of the owned
    /// keys that are new or different and a `delete_group_attr` of the owned keys no
    /// longer declared.
    Keys,
}

impl Ownership {
    /// Whether grattr owns the whole group (the default, which files leave unsaid).
    pub fn is_group(&self) -> bool {
        *self == Ownership::Group
    }

    /// The word written in files and plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::Group => "group",
            Ownership::Keys => "keys",
        }
    }
}

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One group as the YAML declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// The attributes the group should have (with key ownership: the keys grattr owns).
    pub attributes: AttributeSet,
    /// Where the group's `id` is written.
    pub source: SourceLocation,
    /// What of the group grattr owns.
    pub ownership: Ownership,
    /// Whether the group file says the ownership (else it is `grattr.yaml`'s default).
    pub ownership_written: bool,
    /// Where each key gets its value.
    pub origins: Origins,
}

/// What of a group grattr owns, by what it records of it, else what it declares:
/// a switch declared but not applied yet is not in effect.
pub fn ownership_of(recorded: Option<&AppliedGroup>, declared: Option<&DesiredGroup>) -> Ownership {
    recorded.map_or_else(|| declared.map_or(Ownership::Group, |d| d.ownership), |r| r.ownership)
}

/// Sets apart the keys of a group's live `attributes` that its members own: when
/// grattr owns only keys of the group (by its record, or by its declaration, a
/// switch not applied yet included), the keys it neither declares nor applied.
/// Removes them from `attributes` and returns them; `None` when grattr owns the
/// whole group, and `attributes` are left whole. `drift`, `--refresh` and `watch`'s
/// self-heal all compare only what this leaves.
pub fn set_apart_members_keys(
    attributes: &mut AttributeSet,
    recorded: Option<&AppliedGroup>,
    declared: Option<&DesiredGroup>,
) -> Option<Vec<String>> {
    let keys = |o: Ownership| o == Ownership::Keys;
    if !recorded.is_some_and(|r| keys(r.ownership)) && !declared.is_some_and(|d| keys(d.ownership)) {
        return None;
    }
    let ours = |key: &str| {
        recorded.is_some_and(|r| r.attributes.contains_key(key))
            || declared.is_some_and(|d| d.attributes.contains_key(key))
    };
    let members: Vec<String> = attributes.keys().filter(|key| !ours(key)).map(str::to_owned).collect();
    for key in &members {
        attributes.remove(key);
    }
    Some(members)
}

/// What grattr last applied to one group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedGroup {
    /// The digest of `attributes` (and of the ownership, when grattr owns only
    /// keys), checked whenever it is read back.
    pub digest: Digest,
    /// The attributes applied: with key ownership, the keys grattr owns.
    pub attributes: AttributeSet,
    /// What of the group grattr owns; left out for the whole group.
    #[serde(default, skip_serializing_if = "Ownership::is_group")]
    pub ownership: Ownership,
}

impl AppliedGroup {
    /// The record of applying `attributes` to the whole group.
    pub fn new(attributes: AttributeSet) -> Self {
        AppliedGroup::owned(attributes, Ownership::Group)
    }

    /// The record of applying `attributes` with `ownership`.
    pub fn owned(attributes: AttributeSet, ownership: Ownership) -> Self {
        AppliedGroup { digest: Digest::of_record(&attributes, ownership), attributes, ownership }
    }

    /// Whether the digest matches the record.
    pub fn verifies(&self) -> bool {
        Digest::of_record(&self.attributes, self.ownership) == self.digest
    }
}

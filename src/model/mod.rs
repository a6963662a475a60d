//! Domain types shared by every other module: group ids, attribute sets, the
//! API's documented limits (one table), regions and content digests. No I/O.

mod digest;
mod group_id;
pub mod limits;
mod region;

pub use digest::{Digest, DigestBuilder};
pub use group_id::{GroupId, GroupIdError};
pub use region::Region;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A group's custom attributes: key → value, ordered by key so that every
/// rendering, digest and API body built from it is deterministic.
pub type AttributeSet = BTreeMap<String, String>;

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

/// One group as the YAML declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// The attributes the group should have.
    pub attributes: AttributeSet,
    /// Where the group's `id` is written.
    pub source: SourceLocation,
}

/// What grattr last applied to one group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedGroup {
    /// The digest of `attributes`, checked whenever it is read back.
    pub digest: Digest,
    /// The attributes applied.
    pub attributes: AttributeSet,
}

impl AppliedGroup {
    /// The record of applying `attributes`.
    pub fn new(attributes: AttributeSet) -> Self {
        AppliedGroup { digest: Digest::of_attributes(&attributes), attributes }
    }
}

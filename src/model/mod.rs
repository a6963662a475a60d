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

/// A group's custom attributes: key → value, ordered by key so that every
/// rendering, digest and API body built from it is deterministic.
pub type AttributeSet = BTreeMap<String, String>;

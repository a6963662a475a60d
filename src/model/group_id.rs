use super::limits::MAX_GROUP_ID_BYTES;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The id of a Chat group that may carry custom attributes: 1 to 48 bytes of
/// printable ASCII, and not a topic id. Server-generated ids (`@TGS#…`) and
/// Community ids (`@TGS#_…`) are accepted as they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GroupId(String);

/// Why a text is not a usable group id. The server answers all of these with the
/// invalid group id code ([`MAX_GROUP_ID_BYTES`]'s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupIdError {
    /// The id is empty.
    #[error("group id is empty; an id is 1 to {max} bytes", max = MAX_GROUP_ID_BYTES.max)]
    Empty,
    /// The id is longer than 48 bytes.
    #[error("group id is {bytes} bytes, limit {max} bytes", max = MAX_GROUP_ID_BYTES.max)]
    TooLong {
        /// The size in bytes.
        bytes: usize,
    },
    /// The id holds a character outside printable ASCII.
    #[error("group id holds {found:?} at byte {at}; only printable ASCII (0x20-0x7E) is allowed")]
    NotPrintableAscii {
        /// What was found.
        found: char,
        /// The byte offset.
        at: usize,
    },
    /// The id names a topic of a Community group, and topics have no attributes.
    #[error("{0:?} is a topic id; topics do not support custom attributes")]
    Topic(String),
}

impl GroupIdError {
    /// The API error code the rule prevents.
    pub fn code(&self) -> u32 {
        MAX_GROUP_ID_BYTES.code
    }
}

impl GroupId {
    /// Checks `text` against the group id rules.
    pub fn parse(text: &str) -> Result<GroupId, GroupIdError> {
        if text.is_empty() {
            return Err(GroupIdError::Empty);
        }
        if let Some((at, found)) = text.char_indices().find(|(_, c)| !matches!(c, ' '..='~')) {
            return Err(GroupIdError::NotPrintableAscii { found, at });
        }
        if text.len() > MAX_GROUP_ID_BYTES.max {
            return Err(GroupIdError::TooLong { bytes: text.len() });
        }
        if text.starts_with("@TGS#") && text.contains("@TOPIC#") {
            return Err(GroupIdError::Topic(text.to_string()));
        }
        Ok(GroupId(text.to_string()))
    }

    /// The id as the API spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for GroupId {
    type Err = GroupIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupId::parse(s)
    }
}

impl AsRef<str> for GroupId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GroupId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_server_custom_and_community_ids() {
        for id in ["@TGS#aC5SZEAEF", "@TGS#_@TGS#cQVLVHIM62CJ", "support-eu", "a", &"x".repeat(48), "room 1 ~!"] {
            assert_eq!(GroupId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_each_rule_with_its_own_error() {
        assert_eq!(GroupId::parse(""), Err(GroupIdError::Empty));
        assert_eq!(GroupId::parse(&"x".repeat(49)), Err(GroupIdError::TooLong { bytes: 49 }));
        assert_eq!(GroupId::parse("caf\u{e9}"), Err(GroupIdError::NotPrintableAscii { found: '\u{e9}', at: 3 }));
        assert_eq!(GroupId::parse("a\tb"), Err(GroupIdError::NotPrintableAscii { found: '\t', at: 1 }));
        assert!(matches!(GroupId::parse("@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_@TGS#cXVLVHIM6"), Err(GroupIdError::Topic(_))));
        assert_eq!(GroupIdError::Empty.code(), 10015);
    }
}

use super::AttributeSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 content digest, written `sha256:<hex>`. Used to check lockfile
/// entries and to fingerprint plans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// The digest of an attribute set. Keys and values are length-prefixed, so
    /// no two different sets share an encoding.
    pub fn of_attributes(attributes: &AttributeSet) -> Digest {
        let mut hasher = DigestBuilder::new();
        hasher.attributes(attributes);
        hasher.finish()
    }

    /// The digest of a lockfile record: of the attributes, and when grattr owns
    /// only keys, of that too (so that a record of the whole group keeps the digest
    /// it always had).
    pub fn of_record(attributes: &AttributeSet, ownership: super::Ownership) -> Digest {
        let mut hasher = DigestBuilder::new();
        hasher.attributes(attributes);
        if ownership == super::Ownership::Keys {
            hasher.field(b"ownership: keys");
        }
        hasher.finish()
    }

    /// The digest of `bytes` as they are (a piece of a record kept in a bucket).
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        written(&Sha256::digest(bytes))
    }

    /// The digest as written in files.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds a [`Digest`] from a sequence of length-prefixed fields.
pub struct DigestBuilder(Sha256);

impl DigestBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        DigestBuilder(Sha256::new())
    }

    /// Adds one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds an attribute set, key by key in order.
    pub fn attributes(&mut self, attributes: &AttributeSet) -> &mut Self {
        self.field(&(attributes.len() as u64).to_le_bytes());
        for (key, value) in attributes {
            self.field(key.as_bytes()).field(value.as_bytes());
        }
        self
    }

    /// Adds one group: its id, then its attributes.
    pub fn group(&mut self, id: &super::GroupId, attributes: &AttributeSet) -> &mut Self {
        self.field(id.as_str().as_bytes()).attributes(attributes)
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        written(&self.0.finalize())
    }
}

/// A SHA-256 as files write it: `sha256:<hex>`.
fn written(bytes: &[u8]) -> Digest {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Digest(text)
}

impl Default for DigestBuilder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_stable_and_unambiguous() {
        let a: AttributeSet = [("ab".to_string(), "c".to_string())].into();
        let b: AttributeSet = [("a".to_string(), "bc".to_string())].into();
        assert_ne!(Digest::of_attributes(&a), Digest::of_attributes(&b));
        assert_eq!(Digest::of_attributes(&a), Digest::of_attributes(&a.clone()));
        assert!(Digest::of_attributes(&a).as_str().starts_with("sha256:"));
        assert_eq!(Digest::of_attributes(&a).as_str().len(), 7 + 64);
    }
}

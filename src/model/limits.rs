//! The documented limits of group custom attributes, in one table that
//! validation, the client and the emulator all read. Sizes are UTF-8 bytes.

use super::AttributeSet;
use std::fmt;

/// One documented limit and the API error code that enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest allowed measurement.
    pub max: usize,
    /// The error code the server answers when the limit is exceeded.
    pub code: u32,
}

/// At most 16 keys per group.
pub const MAX_KEYS: Limit = Limit { max: 16, code: 10047 };
/// A key is at most 32 bytes (and at least one).
pub const MAX_KEY_BYTES: Limit = Limit { max: 32, code: 10045 };
/// A value is at most 4000 bytes.
pub const MAX_VALUE_BYTES: Limit = Limit { max: 4000, code: 10046 };
/// The values of one group total at most 16000 bytes.
pub const MAX_TOTAL_VALUE_BYTES: Limit = Limit { max: 16000, code: 10048 };
/// The client SDKs document "keys + values ≤ 16 KB": a warning, not an error,
/// because the REST API enforces only the values' total.
pub const MAX_TOTAL_KEY_VALUE_BYTES: Limit = Limit { max: 16000, code: 10048 };
/// A group id is 1 to 48 bytes of printable ASCII.
pub const MAX_GROUP_ID_BYTES: Limit = Limit { max: 48, code: 10015 };
/// Writes (set, modify, clear, delete) to one group per second.
pub const MAX_GROUP_WRITES_PER_SECOND: Limit = Limit { max: 5, code: 10049 };
/// Calls per second to each endpoint, per app.
pub const MAX_CALLS_PER_SECOND: Limit = Limit { max: 200, code: 60007 };

/// The largest answer body the client reads before refusing it. The largest real
/// answer is a get of [`MAX_KEYS`] keys of [`MAX_KEY_BYTES`] and
/// [`MAX_TOTAL_VALUE_BYTES`] of values, every byte JSON-escaped at worst as six
/// (`\u00XX`): about 100 KB with the envelope. The limit leaves ten times that.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
const _: () = assert!(
    MAX_ANSWER_BYTES >= 10 * (6 * (MAX_TOTAL_VALUE_BYTES.max + MAX_KEYS.max * MAX_KEY_BYTES.max) + 1024),
    "the answer limit leaves a tenfold margin over the largest real answer"
);

/// The highest app-wide rate grattr accepts (`rate_limit`, `--rate-limit`):
/// [`MAX_CALLS_PER_SECOND`], as a rate.
pub const MAX_RATE_LIMIT: u32 = MAX_CALLS_PER_SECOND.max as u32;
/// The service's per-group write rate, as a rate.
pub const MAX_GROUP_WRITE_RATE: u32 = MAX_GROUP_WRITES_PER_SECOND.max as u32;

/// grattr's default app-wide rate: half of [`MAX_CALLS_PER_SECOND`], because the
/// app's own backend shares that budget.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// grattr's default writes per second to one group, under [`MAX_GROUP_WRITES_PER_SECOND`].
pub const DEFAULT_GROUP_WRITE_RATE: u32 = 4;

/// grattr's own limit (not the API's): the most templates one `extends:` chain may
/// hold, the template a group names included. Real chains are two or three deep; the
/// limit keeps a generated or hostile chain from costing every group that uses it.
pub const MAX_TEMPLATE_CHAIN: usize = 32;

/// grattr's own limit (not the API's): the largest group or overlay file it reads,
/// in bytes. 100,000 groups written by `grattr import` take about 10 to 30 MB; a file over
/// 64 MiB is refused with a diagnostic before it is read, rather than read into
/// memory many times its size.
pub const MAX_GROUP_FILE_BYTES: usize = 64 << 20;

/// Whether a broken rule makes the API refuse the write or only deserves attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; the write would still succeed.
    Warning,
    /// The API would refuse the write.
    Error,
}

/// A rule of the attribute limits that an [`AttributeSet`] breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// More than [`MAX_KEYS`] keys.
    TooManyKeys {
        /// How many.
        count: usize,
    },
    /// An empty key.
    EmptyKey,
    /// A key longer than [`MAX_KEY_BYTES`].
    KeyTooLong {
        /// The key.
        key: String,
        /// The size in bytes.
        bytes: usize,
    },
    /// A value longer than [`MAX_VALUE_BYTES`].
    ValueTooLong {
        /// The key.
        key: String,
        /// The size in bytes.
        bytes: usize,
    },
    /// Values totalling more than [`MAX_TOTAL_VALUE_BYTES`].
    ValuesTooLarge {
        /// The size in bytes.
        bytes: usize,
    },
    /// Keys and values totalling more than [`MAX_TOTAL_KEY_VALUE_BYTES`].
    KeysAndValuesLarge {
        /// The size in bytes.
        bytes: usize,
    },
}

impl Violation {
    /// The limit this violation breaks.
    pub fn limit(&self) -> Limit {
        match self {
            Violation::TooManyKeys { .. } => MAX_KEYS,
            Violation::EmptyKey | Violation::KeyTooLong { .. } => MAX_KEY_BYTES,
            Violation::ValueTooLong { .. } => MAX_VALUE_BYTES,
            Violation::ValuesTooLarge { .. } => MAX_TOTAL_VALUE_BYTES,
            Violation::KeysAndValuesLarge { .. } => MAX_TOTAL_KEY_VALUE_BYTES,
        }
    }

    /// The key the violation is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Violation::EmptyKey => Some(""),
            Violation::KeyTooLong { key, .. } | Violation::ValueTooLong { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Errors make the API refuse the write; warnings do not.
    pub fn severity(&self) -> Severity {
        match self {
            Violation::KeysAndValuesLarge { .. } => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.limit().max;
        match self {
            Violation::TooManyKeys { count } => {
                write!(f, "{count} keys, limit {max} keys per group")
            }
            Violation::EmptyKey => write!(f, "key is empty; a key is 1 to {max} bytes"),
            Violation::KeyTooLong { key, bytes } => {
                write!(f, "key {key:?} is {bytes} bytes, limit {max} bytes")
            }
            Violation::ValueTooLong { key, bytes } => {
                write!(f, "value of key {key:?} is {bytes} bytes, limit {max} bytes")
            }
            Violation::ValuesTooLarge { bytes } => {
                write!(f, "values total {bytes} bytes, limit {max} bytes per group")
            }
            Violation::KeysAndValuesLarge { bytes } => {
                write!(f, "keys and values total {bytes} bytes, over the {max} bytes the client SDKs document")
            }
        }
    }
}

/// Every limit `attributes` breaks, in a stable order: per key (in key order)
/// first, then the per-group totals.
pub fn check(attributes: &AttributeSet) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut value_bytes = 0;
    let mut key_bytes = 0;
    for (key, value) in attributes {
        if key.is_empty() {
            found.push(Violation::EmptyKey);
        } else if key.len() > MAX_KEY_BYTES.max {
            found.push(Violation::KeyTooLong { key: key.to_owned(), bytes: key.len() });
        }
        if value.len() > MAX_VALUE_BYTES.max {
            found.push(Violation::ValueTooLong { key: key.to_owned(), bytes: value.len() });
        }
        key_bytes += key.len();
        value_bytes += value.len();
    }
    if attributes.len() > MAX_KEYS.max {
        found.push(Violation::TooManyKeys { count: attributes.len() });
    }
    if value_bytes > MAX_TOTAL_VALUE_BYTES.max {
        found.push(Violation::ValuesTooLarge { bytes: value_bytes });
    } else if key_bytes + value_bytes > MAX_TOTAL_KEY_VALUE_BYTES.max {
        found.push(Violation::KeysAndValuesLarge { bytes: key_bytes + value_bytes });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, String)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn at_the_limits_is_fine() {
        let mut attrs = AttributeSet::new();
        for i in 0..16 {
            attrs.insert(format!("{i:0>32}"), "v".repeat(1000));
        }
        // 16 × 1000 = 16000 bytes of values: exactly at the limit, but the keys push
        // keys + values over 16000, which is a warning only.
        let found = check(&attrs);
        assert_eq!(found, vec![Violation::KeysAndValuesLarge { bytes: 16000 + 16 * 32 }]);
        assert_eq!(found[0].severity(), Severity::Warning);
    }

    #[test]
    fn just_over_each_limit() {
        let long_key = "k".repeat(33);
        let attrs = set(&[("", "x".into()), (&long_key, "y".repeat(4001))]);
        assert_eq!(
            check(&attrs),
            vec![
                Violation::EmptyKey,
                Violation::KeyTooLong { key: long_key.clone(), bytes: 33 },
                Violation::ValueTooLong { key: long_key, bytes: 4001 },
            ]
        );
        let many: AttributeSet = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check(&many), vec![Violation::TooManyKeys { count: 17 }]);
        let big: AttributeSet = (0..5).map(|i| (format!("k{i}"), "v".repeat(3201))).collect();
        assert_eq!(check(&big), vec![Violation::ValuesTooLarge { bytes: 16005 }]);
    }

    #[test]
    fn sizes_are_utf8_bytes_not_characters() {
        // "é" is 2 bytes: 16 of them are 32 bytes (fine), 17 are 34 bytes (too long).
        assert!(check(&set(&[(&"é".repeat(16), String::new())])).is_empty());
        assert_eq!(
            check(&set(&[(&"é".repeat(17), String::new())])),
            vec![Violation::KeyTooLong { key: "é".repeat(17), bytes: 34 }]
        );
        // "中" is 3 bytes: 1333 × 3 = 3999, plus one byte = 4000 (fine); 1334 × 3 = 4002.
        assert!(check(&set(&[("k", format!("{}a", "中".repeat(1333)))])).is_empty());
        assert_eq!(
            check(&set(&[("k", "中".repeat(1334))])),
            vec![Violation::ValueTooLong { key: "k".into(), bytes: 4002 }]
        );
    }
}

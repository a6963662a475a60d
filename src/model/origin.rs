//! Provenance: where each of a group's keys gets its value (the group's own entry,
//! a group set, a template, an overlay), so a plan can say why a key changes.
//!
//! Most groups write every key themselves, so their origins are only the line and
//! column of each key in the group's file ([`Origins::Own`]), eight bytes a key.
//! Groups resolved over templates or overlays carry the origins of their own keys
//! (shared by every id of a set), and those of their template's keys, shared by
//! every group naming the template ([`Origins::Resolved`]).

use super::{AttributeSet, SourceLocation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// What kind of place gives a key its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginKind {
    /// The group's own entry (`id:`).
    Group,
    /// A group set's entry (`ids:`), shared by each of its ids.
    Set,
    /// A template the group uses, or one its template extends.
    Template,
    /// An environment's overlay.
    Overlay,
}

impl OriginKind {
    /// The word written in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Group => "group",
            OriginKind::Set => "set",
            OriginKind::Template => "template",
            OriginKind::Overlay => "overlay",
        }
    }
}

/// Where one key gets its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOrigin {
    /// What kind of place it is.
    pub kind: OriginKind,
    /// The template's name, for a template (or an overlay of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Arc<str>>,
    /// The file.
    pub file: Arc<Path>,
    /// The line of the key, from 1.
    pub line: u64,
    /// The column of the key, from 1.
    pub column: u64,
}

impl KeyOrigin {
    /// An origin of `kind` at `at`.
    pub fn at(kind: OriginKind, template: Option<Arc<str>>, at: &SourceLocation) -> Self {
        KeyOrigin { kind, template, file: at.file.clone(), line: at.line, column: at.column }
    }

    /// Whether the key comes from somewhere other than the group's own entry.
    pub fn is_shared(&self) -> bool {
        matches!(self.kind, OriginKind::Template | OriginKind::Overlay)
    }
}

/// Where each key of a group comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// Not recorded (a group built in code).
    #[default]
    Unknown,
    /// Every key is written in the group's own entry (`kind` is [`OriginKind::Group`]
    /// or [`OriginKind::Set`]), in the group's file: the line and column of each, in
    /// key order.
    Own {
        /// Group or set.
        kind: OriginKind,
        /// Line and column of each key, in the order of the group's attributes.
        at: Box<[(u32, u32)]>,
    },
    /// Resolved over templates or overlays: each key's origin, ordered by key, in two
    /// parts: what the group's template gives (its chain and the overlays' patches of
    /// them, shared by every group naming the template), and what the group itself
    /// and the overlays' patches of it give, which wins over the first.
    Resolved {
        /// The group's own keys, and those overlays of it set.
        own: Arc<[(Box<str>, KeyOrigin)]>,
        /// The keys its template gives, shared.
        shared: Arc<[(Box<str>, KeyOrigin)]>,
    },
}

impl Origins {
    /// The origins of keys written at `places` (key → where), in the group's own entry.
    pub fn own<'a>(kind: OriginKind, places: impl IntoIterator<Item = (&'a str, &'a SourceLocation)>) -> Self {
        let mut places: Vec<(&str, &SourceLocation)> = places.into_iter().collect();
        places.sort_unstable_by_key(|(key, _)| *key);
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Origins::Own { kind, at: places.iter().map(|(_, at)| (clamp(at.line), clamp(at.column))).collect() }
    }

    /// Where `key` of a group with `attributes`, declared at `source`, gets its value.
    pub fn of(&self, key: &str, attributes: &AttributeSet, source: &SourceLocation) -> Option<KeyOrigin> {
        match self {
            Origins::Unknown => None,
            Origins::Own { kind, at } => {
                let &(line, column) = at.get(attributes.position(key)?)?;
                let at = SourceLocation { file: source.file.clone(), line: line.into(), column: column.into() };
                Some(KeyOrigin::at(*kind, None, &at))
            }
            Origins::Resolved { own, shared } => {
                if !attributes.contains_key(key) {
                    return None;
                }
                let find = |part: &[(Box<str>, KeyOrigin)]| {
                    let index = part.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
                    Some(part[index].1.clone())
                };
                find(own).or_else(|| find(shared))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(kind: OriginKind, line: u64) -> KeyOrigin {
        KeyOrigin { kind, template: None, file: Arc::from(Path::new("g.yaml")), line, column: 1 }
    }

    #[test]
    fn a_resolved_key_comes_from_the_group_before_its_template() {
        let part = |keys: &[(&str, KeyOrigin)]| -> Arc<[(Box<str>, KeyOrigin)]> {
            keys.iter().map(|(key, origin)| (Box::from(*key), origin.clone())).collect()
        };
        let own = part(&[("b", origin(OriginKind::Group, 1))]);
        let shared = part(&[
            ("a", origin(OriginKind::Template, 2)),
            ("b", origin(OriginKind::Template, 3)),
            ("c", origin(OriginKind::Template, 4)),
        ]);
        let origins = Origins::Resolved { own, shared };
        // `c` was the template's too, but the group unset it: it has no origin.
        let attributes: AttributeSet = [("a", "1"), ("b", "2")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let source = SourceLocation { file: Arc::from(Path::new("g.yaml")), line: 9, column: 9 };
        let of = |key: &str| origins.of(key, &attributes, &source).map(|o| (o.kind, o.line));
        assert_eq!(of("a"), Some((OriginKind::Template, 2)));
        assert_eq!(of("b"), Some((OriginKind::Group, 1)));
        assert_eq!(of("c"), None);
    }
}

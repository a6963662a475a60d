//! The shape of a group file, read leniently: a field of the wrong kind, an
//! unknown or repeated field, or a missing one is recorded as an [`Issue`] and
//! reading goes on, so that one run reports every problem of a file, not the first.

use super::diagnostic::Rule;
use super::yaml::Node;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::marker::PhantomData;

/// A problem found while reading the shape of a file.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Where.
    pub at: Location,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong.
    pub message: String,
}

/// A node of the expected kind, or the kind it was instead.
#[derive(Debug)]
pub enum Lenient<T> {
    /// As expected.
    Found(T),
    /// `a scalar`, `a mapping`, `a sequence` or `null`.
    Wrong(&'static str),
}

/// A type read from a mapping or from a sequence.
pub trait Shape: Sized {
    /// What the node should be: `a mapping` or `a sequence`.
    const EXPECTED: &'static str;
    /// Reads it from a mapping (only for `a mapping` shapes).
    fn from_map<'de, A: MapAccess<'de>>(_map: A) -> Result<Self, A::Error> {
        Err(de::Error::custom("not a mapping shape"))
    }
    /// Reads it from a sequence (only for `a sequence` shapes).
    fn from_seq<'de, A: SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(de::Error::custom("not a sequence shape"))
    }
}

impl<'de, T: Shape> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

macro_rules! scalar {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok(Lenient::Wrong("a scalar"))
        })*
    };
}

impl<'de, T: Shape> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if T::EXPECTED == "a mapping" {
            return T::from_map(map).map(Lenient::Found);
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient::Wrong("a mapping"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if T::EXPECTED == "a sequence" {
            return T::from_seq(seq).map(Lenient::Found);
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Wrong("a sequence"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Wrong("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Wrong("null"))
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
        visit_f64: f64, visit_char: char, visit_str: &str, visit_bytes: &[u8]);
}

/// The message for a node of the wrong kind.
pub fn wrong_type(expected: &str) -> String {
    format!("wrong type: expected {expected}")
}

/// What a field holds, when it is of the kind expected; `None` for `null` (the
/// field left empty), and for any other kind, with a wrong-type error at its place.
pub fn found_or_report<T>(
    file: &std::sync::Arc<std::path::Path>,
    field: Spanned<Lenient<T>>,
    expected: &str,
    diagnostics: &mut Vec<super::diagnostic::Diagnostic>,
) -> Option<T> {
    match field.value {
        Lenient::Found(value) => Some(value),
        Lenient::Wrong("null") => None,
        Lenient::Wrong(_) => {
            let at = super::yaml::locate(file, &field.referenced);
            diagnostics.push(super::diagnostic::Diagnostic::error(Rule::WrongType, at, wrong_type(expected)));
            None
        }
    }
}

/// A key as shown in messages: its text, control characters escaped.
fn key_text(key: &Spanned<Node>) -> String {
    match &key.value {
        Node::Text(text) | Node::Plain(text) => text.escape_debug().to_string(),
        other => other.kind().to_string(),
    }
}

/// Reads the fields of a mapping: each known field once (a repeat is an issue
/// naming the first line), unknown fields as issues.
pub fn read_fields<'de, A: MapAccess<'de>>(
    map: A,
    known: &'static [&'static str],
    read: impl FnMut(&str, Location, &mut A) -> Result<(), A::Error>,
) -> Result<Vec<Issue>, A::Error> {
    read_fields_refusing(map, known, &[], read)
}

/// [`read_fields`], where each field of `refused` is an issue of its own (the rule
/// and the message given with it) rather than an unknown field: a field that has a
/// meaning elsewhere but not here.
pub fn read_fields_refusing<'de, A: MapAccess<'de>>(
    mut map: A,
    known: &'static [&'static str],
    refused: &[(&str, Rule, &str)],
    mut read: impl FnMut(&str, Location, &mut A) -> Result<(), A::Error>,
) -> Result<Vec<Issue>, A::Error> {
    let mut issues = Vec::new();
    let mut seen: Vec<(&'static str, u64)> = Vec::new();
    while let Some(key) = map.next_key::<Spanned<Node>>()? {
        if let Some(tag) = key.value.refused_tag() {
            issues.push(Issue {
                at: key.referenced,
                rule: Rule::Tag,
                message: format!("the tag `{tag}` on a field name is not honoured"),
            });
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        let text = key_text(&key);
        if let Some((_, rule, message)) = refused.iter().find(|(field, ..)| *field == text) {
            issues.push(Issue { at: key.referenced, rule: *rule, message: (*message).to_string() });
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        match known.iter().find(|k| **k == text) {
            Some(field) => {
                if let Some((_, first)) = seen.iter().find(|(f, _)| f == field) {
                    issues.push(Issue {
                        at: key.referenced,
                        rule: Rule::DuplicateKey,
                        message: format!("field `{field}` is given twice, first at line {first}"),
                    });
                    map.next_value::<IgnoredAny>()?;
                } else {
                    seen.push((field, key.referenced.line()));
                    read(field, key.referenced, &mut map)?;
                }
            }
            None => {
                issues.push(Issue {
                    at: key.referenced,
                    rule: Rule::UnknownField,
                    message: format!("unknown field `{text}`, expected one of {}", known.join(", ")),
                });
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(issues)
}

/// The top level of a file of `groups:` and `templates:`: a group file
/// ([`FileFields`]) or an overlay (whose entries patch, rather than declare).
#[derive(Debug)]
pub struct TopFields<G, T> {
    /// `groups:`, if given.
    pub groups: Option<Spanned<Lenient<G>>>,
    /// `templates:`, if given.
    pub templates: Option<Spanned<Lenient<T>>>,
    /// Unknown and repeated fields.
    pub issues: Vec<Issue>,
}

impl<G, T> Default for TopFields<G, T> {
    fn default() -> Self {
        TopFields { groups: None, templates: None, issues: Vec::new() }
    }
}

impl<G: Shape, T: Shape> Shape for TopFields<G, T> {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let (mut groups, mut templates) = (None, None);
        let issues = read_fields(map, &["groups", "templates"], |field, _, map| {
            match field {
                "groups" => groups = Some(map.next_value()?),
                _ => templates = Some(map.next_value()?),
            }
            Ok(())
        })?;
        Ok(TopFields { groups, templates, issues })
    }
}

/// The top level of a group file.
pub type FileFields = TopFields<GroupList, TemplateMap>;

/// A sequence: its items, in the order written.
#[derive(Debug)]
pub struct Items<T>(pub Vec<T>);

impl<T: DeserializeOwned> Shape for Items<T> {
    const EXPECTED: &'static str = "a sequence";
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Items(items))
    }
}

/// A mapping: its entries, in the order written, duplicates kept.
#[derive(Debug)]
pub struct Entries<K, V>(pub Vec<(K, V)>);

impl<K: DeserializeOwned, V: DeserializeOwned> Shape for Entries<K, V> {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        // A group's attributes are a few keys: room for 8 without a hint.
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Entries(entries))
    }
}

/// The `templates:` mapping: each name and its body.
pub type TemplateMap = Entries<Spanned<Node>, Spanned<Lenient<AttrEntries>>>;

/// A sequence of scalars (`unset:`, `ids:`), each with its place.
pub type NodeList = Items<Spanned<Node>>;

/// The `groups:` sequence.
pub type GroupList = Items<Spanned<Lenient<GroupFields>>>;

/// One entry of `groups:`.
#[derive(Debug, Default)]
pub struct GroupFields {
    /// `id:`, if given.
    pub id: Option<Spanned<Node>>,
    /// `ids:` (a group set), if given, and where its key is written.
    pub ids: Option<(Location, Spanned<Lenient<NodeList>>)>,
    /// `attributes:`, if given.
    pub attributes: Option<Spanned<Lenient<AttrEntries>>>,
    /// `ownership:`, if given.
    pub ownership: Option<Spanned<Node>>,
    /// `template:`, if given.
    pub template: Option<Spanned<Node>>,
    /// `unset:`, if given.
    pub unset: Option<Spanned<Lenient<NodeList>>>,
    /// Unknown and repeated fields.
    pub issues: Vec<Issue>,
}

impl Shape for GroupFields {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut group = GroupFields::default();
        let known = &["id", "ids", "attributes", "ownership", "template", "unset"];
        group.issues = read_fields(map, known, |field, key, map| {
            match field {
                "id" => group.id = Some(map.next_value()?),
                "ids" => group.ids = Some((key, map.next_value()?)),
                "ownership" => group.ownership = Some(map.next_value()?),
                "template" => group.template = Some(map.next_value()?),
                "unset" => group.unset = Some(map.next_value()?),
                _ => group.attributes = Some(map.next_value()?),
            }
            Ok(())
        })?;
        Ok(group)
    }
}

/// A group's `attributes:` mapping: each key and value.
pub type AttrEntries = Entries<Spanned<Node>, Spanned<Node>>;

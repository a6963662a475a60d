//! How grattr reads YAML: the parser options, the one node type that takes any
//! scalar as the text written, and the translation of parser errors into
//! [`Diagnostic`]s.

use super::diagnostic::{Diagnostic, Rule};
use crate::model::SourceLocation;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError, Location, MessageFormatter, Spanned};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Parser options for every file grattr reads. Duplicate keys are passed through
/// so that grattr reports them with both places and goes on; non-finite floats
/// (`.nan`, `1e400`) pass through so their text can be recovered as written; the budget is raised
/// for repositories of 100,000 groups but keeps the alias-bomb protections.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        budget: serde_saphyr::budget! {
            max_events: 200_000_000,
            max_nodes: 100_000_000,
            max_total_scalar_bytes: 1 << 32,
        },
    }
}

/// A YAML node as grattr first sees it, before it knows what the node is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A string (quoted, block or plain).
    Text(String),
    /// A plain scalar YAML would read as a number or boolean; [`Node::text`]
    /// recovers the text written from the source.
    Plain(String),
    /// A mapping or sequence, as JSON.
    Json(serde_json::Value),
    /// `null`, `~` or nothing.
    Null,
}

impl Node {
    /// The text of a scalar exactly as written in `source` (`0x1F` stays `0x1F`, `no`
    /// stays `no`), or `None` for a null, mapping or sequence.
    pub fn text(spanned: &Spanned<Node>, source: &str) -> Option<String> {
        match &spanned.value {
            Node::Text(text) => Some(text.clone()),
            Node::Plain(fallback) => Some(written(&spanned.defined, source).unwrap_or(fallback).to_string()),
            Node::Json(_) | Node::Null => None,
        }
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Text(_) | Node::Plain(_) => "a scalar",
            Node::Json(serde_json::Value::Array(_)) => "a sequence",
            Node::Json(_) => "a mapping",
            Node::Null => "null",
        }
    }
}

fn written<'s>(location: &Location, source: &'s str) -> Option<&'s str> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    source.get(start..start.checked_add(len)?).filter(|text| !text.is_empty())
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean, mapping or sequence")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Text(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Plain(v.to_string()))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
        serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Node::Json)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Node::Json)
    }
}

/// The location of a parsed node in `file`.
pub fn locate(file: &Arc<Path>, location: &Location) -> SourceLocation {
    SourceLocation { file: file.clone(), line: location.line(), column: location.column() }
}

/// Turns a parser or schema error into a diagnostic at its location. `source`
/// is the text parsed, to point at the right place where the parser's is off.
pub fn diagnostic(file: &Arc<Path>, source: &str, error: &YamlError) -> Diagnostic {
    let inner = error.without_snippet();
    let rule = match inner {
        YamlError::SerdeUnknownField { .. } => Rule::UnknownField,
        YamlError::SerdeMissingField { .. } => Rule::MissingField,
        YamlError::SerdeInvalidType { .. }
        | YamlError::SerdeInvalidValue { .. }
        | YamlError::SerdeInvalidLength { .. }
        | YamlError::NullIntoString { .. }
        | YamlError::InvalidScalar { .. }
        | YamlError::InvalidBooleanStrict { .. }
        | YamlError::Unexpected { .. } => Rule::WrongType,
        YamlError::DuplicateMappingKey { .. } => Rule::DuplicateKey,
        _ => Rule::YamlSyntax,
    };
    let (mut line, mut column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
    let message = match inner {
        YamlError::Unexpected { expected, .. } => format!("expected {}", friendly(expected)),
        YamlError::MultipleDocuments { .. } => {
            if let Some(start) = second_document_start(source) {
                (line, column) = (start, 1);
            }
            "a group file holds one document; this `---` starts a second one".to_string()
        }
        _ => serde_saphyr::DefaultMessageFormatter.format_message(inner).into_owned(),
    };
    // The parser points after a tab used for indentation; point at the tab.
    if message.contains("tab") && column > 1 {
        let before = source.lines().nth(line as usize - 1).and_then(|l| l.chars().nth(column as usize - 2));
        if before == Some('\t') {
            column -= 1;
        }
    }
    let location = SourceLocation { file: file.clone(), line, column };
    let message = match rule {
        Rule::YamlSyntax => format!("invalid YAML: {message}"),
        Rule::WrongType if !message.starts_with("invalid type") => format!("wrong type: {message}"),
        _ => message,
    };
    Diagnostic::error(rule, location, message)
}

/// The line of the `---` that starts a second document, if any.
fn second_document_start(source: &str) -> Option<u64> {
    let mut content = false;
    for (index, line) in source.lines().enumerate() {
        let trimmed = line.trim();
        if line.starts_with("---") && content {
            return Some(index as u64 + 1);
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !line.starts_with("---") && !line.starts_with('%') {
            content = true;
        }
    }
    None
}

/// Says what the parser expected in the words of a YAML user.
fn friendly(expected: &str) -> &str {
    match expected {
        "mapping start" => "a mapping",
        "sequence start" => "a sequence",
        "string scalar" => "text",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(yaml: &str) -> Vec<(String, Option<String>)> {
        use crate::desired::shape::{AttrEntries, Lenient};
        let Lenient::Found(AttrEntries(entries)) = serde_saphyr::from_str_with_options(yaml, options()).unwrap() else {
            panic!("not a mapping")
        };
        entries
            .iter()
            .map(|(k, v)| {
                (
                    Node::text(k, yaml).unwrap(),
                    Node::text(v, yaml).or_else(|| match &v.value {
                        Node::Json(json) => Some(format!("json:{json}")),
                        _ => None,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn scalars_are_the_text_written() {
        let yaml =
            "a: 42\nb: no\nc: 1.50\nd: 0x1F # c\ne: .inf\nf: 1_000\ng: Yes\nh: 2024-01-01\n007: x\ni: 'q'\nj: ~\nk:\n";
        assert_eq!(
            values(yaml),
            vec![
                ("a".into(), Some("42".into())),
                ("b".into(), Some("no".into())),
                ("c".into(), Some("1.50".into())),
                ("d".into(), Some("0x1F".into())),
                ("e".into(), Some(".inf".into())),
                ("f".into(), Some("1_000".into())),
                ("g".into(), Some("Yes".into())),
                ("h".into(), Some("2024-01-01".into())),
                ("007".into(), Some("x".into())),
                ("i".into(), Some("q".into())),
                ("j".into(), None),
                ("k".into(), None),
            ]
        );
    }

    #[test]
    fn block_scalars_keep_their_text() {
        let yaml = "a: |\n  line 1\n    indented\n  line 3\nb: >-\n  folded\n  text\n";
        assert_eq!(
            values(yaml),
            vec![("a".into(), Some("line 1\n  indented\nline 3\n".into())), ("b".into(), Some("folded text".into()))]
        );
    }

    #[test]
    fn aliases_resolve_to_the_anchored_text() {
        let yaml = "a: &x 0x10\nb: *x\n";
        assert_eq!(values(yaml), vec![("a".into(), Some("0x10".into())), ("b".into(), Some("0x10".into()))]);
    }

    #[test]
    fn collections_become_json() {
        let yaml = "a: {z: 1, a: [true, x]}\n";
        assert_eq!(values(yaml), vec![("a".into(), Some(r#"json:{"a":[true,"x"],"z":1}"#.into()))]);
    }

    #[test]
    fn duplicates_are_passed_through() {
        let yaml = "a: 1\na: 2\n";
        assert_eq!(values(yaml).len(), 2);
    }
}

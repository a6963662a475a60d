//! How grattr reads YAML: the parser options, the one node type that takes any
//! scalar as the text written, mapping and sequence values as JSON (refusing what
//! JSON cannot keep and tags grattr does not honour), and the translation of parser
//! errors into [`Diagnostic`]s.

use super::diagnostic::{Diagnostic, Rule};
use crate::model::SourceLocation;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError, Location, MessageFormatter, Spanned, Tagged};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Parser options for every file grattr reads. Duplicate keys are passed through
/// so that grattr reports them with both places and goes on; non-finite floats
/// (`.nan`, `1e400`) pass through so their text can be recovered as written; a
/// `!!binary` scalar is passed on undecoded, so that grattr refuses its tag instead of
/// the parser stopping the file at bytes that are not UTF-8; the budget is raised
/// for repositories of 100,000 groups but keeps the alias-bomb protections.
pub fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        ignore_binary_tag_for_string: true,
        budget: serde_saphyr::budget! {
            max_events: 200_000_000,
            max_nodes: 100_000_000,
            max_total_scalar_bytes: 1 << 32,
        },
    }
}

/// A copy of a text in which each tag whose content the parser refuses to give as
/// text (`!!timestamp`, `!timestamp`: it parses the scalar as a date, or fails the
/// whole file) is replaced by a local tag of the same length, which grattr refuses
/// at its place like any tag it does not honour. Every place in the copy is the
/// place in the text; [`Unreadable::restore`] puts the tags as written back into
/// the diagnostics of the copy.
#[derive(Debug)]
pub struct Unreadable {
    /// The copy.
    pub text: String,
    /// Each replaced tag as written, by the number in its replacement.
    written: Vec<String>,
}

impl Unreadable {
    /// The copy of `text` without the tags the parser cannot read as text, or `None`
    /// when it has none (or one cannot be replaced in place).
    pub fn replace(text: &str) -> Option<Unreadable> {
        // Cheap before the parser runs again: only a file that names the tag.
        if !text.contains("timestamp") {
            return None;
        }
        let mut copy = text.to_string();
        let mut written = Vec::new();
        for event in serde_saphyr::granit_parser::Parser::new_from_str(text) {
            let Ok((serde_saphyr::granit_parser::Event::Scalar(_, _, _, Some(tag)), span)) = event else {
                if event.is_err() {
                    break;
                }
                continue;
            };
            let name = tag.suffix_in_namespace(CORE).or_else(|| tag.suffix_in_namespace("!"));
            if name.as_deref().map(|n| n.trim_start_matches('!')) != Some("timestamp") {
                continue;
            }
            let tag_span = span.tag_span()?;
            let (start, end) = (tag_span.start.byte_offset()?, tag_span.end.byte_offset()?);
            let mut replacement = format!("!~{}~", written.len());
            if replacement.len() > end - start || !copy.is_char_boundary(start) || !copy.is_char_boundary(end) {
                return None;
            }
            replacement.extend(std::iter::repeat_n('~', end - start - replacement.len()));
            written.push(text.get(start..end)?.to_string());
            copy.replace_range(start..end, &replacement);
        }
        (!written.is_empty()).then_some(Unreadable { text: copy, written })
    }

    /// Puts the tags as written back where `diagnostics` (of the copy) name their replacements.
    pub fn restore(&self, diagnostics: &mut [Diagnostic]) {
        for diagnostic in diagnostics {
            diagnostic.message = self.restored(&diagnostic.message);
        }
    }

    fn restored(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(at) = rest.find("!~") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let tildes = after[digits..].len() - after[digits..].trim_start_matches('~').len();
            match after[..digits].parse::<usize>().ok().and_then(|n| self.written.get(n)).filter(|_| tildes > 0) {
                Some(written) => {
                    out.push_str(written);
                    rest = &after[digits + tildes..];
                }
                None => {
                    out.push_str("!~");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
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
    /// A mapping or sequence, as JSON, with what JSON could not keep of it.
    Json(Json),
    /// `null`, `~` or nothing.
    Null,
    /// A node with an explicit tag grattr does not honour on a scalar (anything but
    /// `!!str`, `!!map` and `!!seq`), written as in YAML (`!!int`, `!custom`). Its
    /// content is not used: a tag is honoured exactly or the node is refused.
    Tagged(String),
}

/// A mapping or sequence value as JSON, and the nodes in it that JSON cannot hold
/// as written. The value may only be used when [`Json::problems`] finds none.
#[derive(Debug, Clone, PartialEq)]
pub struct Json {
    /// The value, compact JSON once serialized.
    pub value: serde_json::Value,
    refused: Vec<Refused>,
    numbers: Vec<Number>,
}

/// A node of a JSON value refused while reading it.
#[derive(Debug, Clone, PartialEq)]
struct Refused {
    at: Location,
    rule: Rule,
    message: String,
    help: String,
}

/// A number of a JSON value, to be checked against its text once the source is at hand.
#[derive(Debug, Clone, PartialEq)]
struct Number {
    at: Location,
    defined: Location,
    value: f64,
}

/// A problem inside a mapping or sequence value, for the caller to word as a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where the node stands.
    pub at: Location,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong, without the group and key.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

/// The core-schema tag namespace: `!!x` is `tag:yaml.org,2002:x`.
const CORE: &str = "tag:yaml.org,2002:";

/// A resolved tag as a YAML user writes it.
fn tag_as_written(tag: &str) -> String {
    match tag.strip_prefix(CORE) {
        Some(name) => format!("!!{name}"),
        None if tag.starts_with('!') => tag.to_string(),
        None => format!("!<{tag}>"),
    }
}

/// Whether `tag` is honoured on a node that is text (an id, a key, an attribute
/// value): only those that leave it what is written.
fn honoured_on_text(tag: &str) -> bool {
    matches!(tag.strip_prefix(CORE), Some("str" | "map" | "seq"))
}

/// Whether `tag` is honoured inside a JSON value, where YAML types apply: the core
/// schema's JSON types, which the parser resolves exactly.
fn honoured_in_json(tag: &str) -> bool {
    matches!(tag.strip_prefix(CORE), Some("str" | "int" | "float" | "bool" | "null" | "map" | "seq"))
}

const JSON_TAG_HELP: &str = "inside a mapping or sequence value only `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!map` and `!!seq` apply: remove the tag, or quote the value";
/// The hint for a key whose tag is refused.
pub const KEY_TAG_HELP: &str = "a key is the text written: remove the tag, or quote the key";

impl Json {
    /// Every node of the value JSON cannot hold as written, in source order: tags
    /// not honoured, keys given twice, and numbers it would change (beyond 64 bits,
    /// not finite, more digits than a double keeps). `source` is the text parsed.
    pub fn problems(&self, source: &str) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .refused
            .iter()
            .map(|r| Problem { at: r.at, rule: r.rule, message: r.message.clone(), help: r.help.clone() })
            .collect();
        for number in &self.numbers {
            let text = written(&number.defined, source).map(unquoted);
            let message = match text {
                Some(text) if !number.value.is_finite() => {
                    format!("the number {text} has no JSON form (JSON numbers are finite)")
                }
                Some(text) if !same_number(text, number.value) => format!(
                    "the number {text} cannot be kept exactly in JSON (it would become {})",
                    serde_json::Value::from(number.value)
                ),
                // Without its text only a finite number can be vouched for.
                None if !number.value.is_finite() => "a number has no JSON form (JSON numbers are finite)".into(),
                _ => continue,
            };
            let help = match text {
                Some(text) => format!("quote it to keep it as text: {}", serde_json::Value::from(text)),
                None => "quote it to keep it as text".into(),
            };
            problems.push(Problem { at: number.at, rule: Rule::Number, message, help });
        }
        problems.sort_by_key(|p| (p.at.line(), p.at.column()));
        problems
    }
}

/// A scalar's text without the quotes around it (`!!float '1.5'`).
fn unquoted(text: &str) -> &str {
    let text = text.trim();
    for quote in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner;
        }
    }
    text
}

/// A decimal number as sign, significant digits and the exponent of the last one,
/// so that `1.50`, `15e-1` and `1.5` compare equal; `None` if `text` is not one.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let text: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, &text[..]),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() || !(whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mut exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    exponent = exponent.checked_add(i64::try_from(trimmed.len() - significant.len()).ok()?)?;
    if significant.is_empty() {
        return Some((negative, String::new(), 0));
    }
    Some((negative, significant.to_string(), exponent))
}

/// Whether the decimal `text` is exactly the number JSON would write for `value`
/// (the shortest form that reads back as the same double).
fn same_number(text: &str, value: f64) -> bool {
    match (decimal(text), decimal(&format!("{value:e}"))) {
        (Some(written), Some(kept)) => written == kept,
        _ => false,
    }
}

impl Node {
    /// The text of a scalar exactly as written in `source` (`0x1F` stays `0x1F`, `no`
    /// stays `no`), or `None` for a null, mapping, sequence or refused tag.
    pub fn text(spanned: &Spanned<Node>, source: &str) -> Option<String> {
        match &spanned.value {
            Node::Text(text) => Some(text.clone()),
            Node::Plain(fallback) => Some(written(&spanned.defined, source).unwrap_or(fallback).to_string()),
            Node::Json(_) | Node::Null | Node::Tagged(_) => None,
        }
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Text(_) | Node::Plain(_) => "a scalar",
            Node::Json(Json { value: serde_json::Value::Array(_), .. }) => "a sequence",
            Node::Json(_) => "a mapping",
            Node::Null => "null",
            Node::Tagged(_) => "a tagged node",
        }
    }

    /// The tag, as written, when this node is refused for it.
    pub fn refused_tag(&self) -> Option<&str> {
        match self {
            Node::Tagged(tag) => Some(tag),
            _ => None,
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
        let Tagged(Untagged(node), tag) = Tagged::<Untagged>::deserialize(deserializer)?;
        Ok(match tag {
            Some(tag) if !honoured_on_text(&tag) => Node::Tagged(tag_as_written(&tag)),
            _ => node,
        })
    }
}

/// The content of a [`Node`], its tag not yet looked at.
struct Untagged(Node);

impl<'de> Deserialize<'de> for Untagged {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(Untagged)
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
    // Only a `!!binary` node is bytes, and its tag is refused: the content is never used.
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Text(String::from_utf8_lossy(v).into_owned()))
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
        deserializer.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
        Nested::from_map(map).map(|nested| Node::Json(nested.json))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        Nested::from_seq(seq).map(|nested| Node::Json(nested.json))
    }
}

/// A node inside a JSON value: its value and the problems of the nodes within it,
/// and what is wrong with the node itself, which its place (known to the parent) locates.
struct Nested {
    json: Json,
    own: Own,
}

/// What the parent must check of a nested node.
enum Own {
    /// Nothing.
    Fine,
    /// A number, to check against its text.
    Number(f64),
}

impl Nested {
    fn of(value: serde_json::Value) -> Nested {
        Nested { json: Json { value, refused: Vec::new(), numbers: Vec::new() }, own: Own::Fine }
    }

    /// Takes a nested node read at `place` into this one, returning its value.
    fn adopt(&mut self, place: Spanned<Tagged<Nested>>) -> serde_json::Value {
        let Spanned { value: Tagged(nested, tag), referenced, defined } = place;
        if let Some(tag) = tag.filter(|tag| !honoured_in_json(tag)) {
            self.json.refused.push(Refused {
                at: referenced,
                rule: Rule::Tag,
                message: format!("the tag `{}` is not honoured here", tag_as_written(&tag)),
                help: JSON_TAG_HELP.into(),
            });
            return serde_json::Value::Null;
        }
        self.json.refused.extend(nested.json.refused);
        self.json.numbers.extend(nested.json.numbers);
        if let Own::Number(value) = nested.own {
            self.json.numbers.push(Number { at: referenced, defined, value });
            return serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number);
        }
        nested.json.value
    }

    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Nested, A::Error> {
        let mut out = Nested::of(serde_json::Value::Null);
        let mut object = serde_json::Map::new();
        let mut lines: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        while let Some(key) = map.next_key::<Spanned<Tagged<String>>>()? {
            let value = map.next_value::<Spanned<Tagged<Nested>>>()?;
            let value = out.adopt(value);
            let Spanned { value: Tagged(key, tag), referenced, .. } = key;
            if let Some(tag) = tag.filter(|tag| !honoured_on_text(tag)) {
                out.json.refused.push(Refused {
                    at: referenced,
                    rule: Rule::Tag,
                    message: format!("the tag `{}` is not honoured here", tag_as_written(&tag)),
                    help: KEY_TAG_HELP.into(),
                });
                continue;
            }
            // JSON keeps one value per key: a second would silently replace the first.
            if let Some(first) = lines.get(&key) {
                out.json.refused.push(Refused {
                    at: referenced,
                    rule: Rule::DuplicateKey,
                    message: format!("key {key:?} is given twice in this mapping, first at line {first}"),
                    help: "remove one of them".into(),
                });
                continue;
            }
            lines.insert(key.clone(), referenced.line());
            object.insert(key, value);
        }
        out.json.value = serde_json::Value::Object(object);
        Ok(out)
    }

    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Nested, A::Error> {
        let mut out = Nested::of(serde_json::Value::Null);
        let mut array = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(element) = seq.next_element::<Spanned<Tagged<Nested>>>()? {
            array.push(out.adopt(element));
        }
        out.json.value = serde_json::Value::Array(array);
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NestedVisitor)
    }
}

struct NestedVisitor;

impl<'de> Visitor<'de> for NestedVisitor {
    type Value = Nested;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Nested, E> {
        Ok(Nested::of(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Nested, E> {
        Ok(Nested::of(v.into()))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Nested, E> {
        Ok(Nested::of(v.to_string().into()))
    }
    // Only a `!!binary` node is bytes, and its tag is refused: the content is never used.
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Nested, E> {
        Ok(Nested::of(serde_json::Value::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Nested, E> {
        Ok(Nested::of(v.into()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nested, E> {
        Ok(Nested::of(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nested, E> {
        Ok(Nested::of(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Nested, E> {
        Ok(match (i64::try_from(v), u64::try_from(v)) {
            (Ok(v), _) => Nested::of(v.into()),
            (_, Ok(v)) => Nested::of(v.into()),
            // Beyond 64 bits: the check against the text refuses it.
            _ => Nested { own: Own::Number(v as f64), ..Nested::of(serde_json::Value::Null) },
        })
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Nested, E> {
        Ok(match u64::try_from(v) {
            Ok(v) => Nested::of(v.into()),
            Err(_) => Nested { own: Own::Number(v as f64), ..Nested::of(serde_json::Value::Null) },
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Nested, E> {
        Ok(Nested { own: Own::Number(v), ..Nested::of(serde_json::Value::Null) })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Nested, E> {
        Ok(Nested::of(serde_json::Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Nested, E> {
        Ok(Nested::of(serde_json::Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Nested, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Nested, A::Error> {
        Nested::from_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Nested, A::Error> {
        Nested::from_seq(seq)
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

    #[test]
    fn tags_the_parser_cannot_read_as_text_are_replaced_in_place_and_restored() {
        let text = "a: !!timestamp 2001-12-14\nb: [!timestamp x, 'timestamp']\nc: !!str timestamp\n";
        let unreadable = Unreadable::replace(text).unwrap();
        assert_eq!(unreadable.text, "a: !~0~~~~~~~~ 2001-12-14\nb: [!~1~~~~~~~ x, 'timestamp']\nc: !!str timestamp\n");
        assert_eq!(
            unreadable.restored("`!~0~~~~~~~~` and `!~1~~~~~~~`, not `!~x` nor `!~9~`"),
            "`!!timestamp` and `!timestamp`, not `!~x` nor `!~9~`"
        );
        assert!(Unreadable::replace("a: !!str timestamp\n").is_none());
    }

    fn values(yaml: &str) -> Vec<(String, Option<String>)> {
        use crate::desired::shape::{AttrEntries, Entries, Lenient};
        let parsed: Lenient<AttrEntries> = serde_saphyr::from_str_with_options(yaml, options()).unwrap();
        let Lenient::Found(Entries(entries)) = parsed else { panic!("not a mapping") };
        entries
            .iter()
            .map(|(k, v)| {
                (
                    Node::text(k, yaml).unwrap(),
                    Node::text(v, yaml).or_else(|| match &v.value {
                        Node::Json(json) => Some(format!("json:{}", json.value)),
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
    fn numbers_are_kept_only_when_json_writes_the_same_number() {
        for (text, value) in
            [("1.50", 1.5), ("1e3", 1000.0), ("0.1", 0.1), ("+2.5E-3", 0.0025), ("-0.0", -0.0), ("1_000.5", 1000.5)]
        {
            assert!(same_number(text, value), "{text}");
        }
        for (text, value) in [
            ("18446744073709551616", 18446744073709551616.0),
            ("0.30000000000000000001", 0.3),
            ("99999999999999999999999", 1e23),
            ("0x1p3", 8.0),
            ("", 0.0),
        ] {
            assert!(!same_number(text, value), "{text}");
        }
    }

    #[test]
    fn tags_are_honoured_or_the_node_refused() {
        let yaml = "a: !!str 7\nb: !!int 7\nc: !!binary /w==\nd: [!!int '7', !custom x]\n";
        let values = values(yaml);
        assert_eq!(values[0], ("a".into(), Some("7".into())));
        assert_eq!(values[1], ("b".into(), None));
        assert_eq!(values[2], ("c".into(), None));
        assert_eq!(values[3], ("d".into(), Some(r"json:[7,null]".into())));
    }

    #[test]
    fn duplicates_are_passed_through() {
        let yaml = "a: 1\na: 2\n";
        assert_eq!(values(yaml).len(), 2);
    }
}

//! Reading an attribute mapping (a group's `attributes:`, a template's body) as
//! text, checking it against the limits, and reading `ownership:`: what groups
//! and templates share.

use super::diagnostic::{Diagnostic, Rule};
use super::yaml::{self, KEY_TAG_HELP, Node};
use crate::model::limits::{self, Violation};
use crate::model::{AttributeSet, Ownership, SourceLocation};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A key as it must be written in YAML: bare when that is safe, else double-quoted.
fn yaml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.starts_with(['-', '.']);
    if bare { key.to_string() } else { serde_json::Value::from(key).to_string() }
}

/// Where each key of an attribute mapping is written, and where its value is.
pub(super) type KeyPlaces = BTreeMap<String, (SourceLocation, SourceLocation)>;

/// Reads the entries of an attribute mapping (a group's `attributes:`, a template's
/// body) as text, reporting every problem under `subject` (`group "x"`).
pub(super) fn read_attributes<'a>(
    file: &Arc<Path>,
    text: &str,
    subject: &str,
    entries: impl Iterator<Item = &'a (Spanned<Node>, Spanned<Node>)>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (AttributeSet, KeyPlaces) {
    let mut attributes = Vec::new();
    let mut key_at = KeyPlaces::new();
    for (key, value) in entries {
        let here = yaml::locate(file, &key.referenced);
        if let Some(tag) = key.value.refused_tag() {
            let message = format!("{subject}: the tag `{tag}` on a key is not honoured");
            diagnostics.push(Diagnostic::error(Rule::Tag, here, message).with_help(KEY_TAG_HELP));
            continue;
        }
        let Some(key_text) = Node::text(key, text) else {
            let message = format!("{subject}: a key is {}; keys are text", key.value.kind());
            diagnostics.push(Diagnostic::error(Rule::KeyNotText, here, message).with_help("quote the key"));
            continue;
        };
        let value_at = yaml::locate(file, &value.referenced);
        if let Some((first, _)) = key_at.get(&key_text) {
            let message = format!("{subject}: key {key_text:?} is given twice, first at line {}", first.line);
            let diagnostic = Diagnostic::error(Rule::DuplicateKey, here, message);
            diagnostics.push(diagnostic.with_related(first.clone(), "first given here"));
            continue;
        }
        key_at.insert(key_text.clone(), (here, value_at.clone()));
        let value_text = match &value.value {
            Node::Null => {
                let message = format!("{subject} key {key_text:?}: value is null");
                let help = format!(
                    "values are text: write `{}: \"\"` for an empty value, or quote a value such as \"~\" or \"null\"",
                    yaml_key(&key_text)
                );
                diagnostics.push(Diagnostic::error(Rule::NullValue, value_at, message).with_help(help));
                continue;
            }
            Node::Tagged(tag) => {
                let message = format!("{subject} key {key_text:?}: the tag `{tag}` is not honoured here");
                diagnostics.push(Diagnostic::error(Rule::Tag, value_at, message).with_help(
                    "a value is the text written: remove the tag, or quote the value; inside a mapping or sequence `!!int`, `!!float`, `!!bool` and `!!null` apply",
                ));
                continue;
            }
            Node::Json(json) => {
                let problems = json.problems(text);
                if !problems.is_empty() {
                    for problem in problems {
                        let message = format!("{subject} key {key_text:?}: {}", problem.message);
                        let at = yaml::locate(file, &problem.at);
                        diagnostics.push(Diagnostic::error(problem.rule, at, message).with_help(problem.help));
                    }
                    continue;
                }
                json.value.to_string()
            }
            _ => Node::text(value, text).unwrap_or_default(),
        };
        attributes.push((key_text, value_text));
    }
    // Each key is pushed once: a repeat is reported above.
    (attributes.into_iter().collect(), key_at)
}

/// Reports the limits `attributes` break; with `aggregate` false only those of one
/// key (the totals are checked on a template's groups, once resolved).
pub(super) fn report_limits(
    subject: &str,
    attributes: &AttributeSet,
    key_at: &KeyPlaces,
    attributes_at: &SourceLocation,
    aggregate: bool,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for violation in limits::check(attributes).into_iter().filter(|v| aggregate || v.key().is_some()) {
        let at = match &violation {
            Violation::ValueTooLong { key, .. } => key_at.get(key).map(|(_, value)| value.clone()),
            other => other.key().and_then(|key| key_at.get(key)).map(|(key, _)| key.clone()),
        }
        .unwrap_or_else(|| attributes_at.clone());
        diagnostics.push(violation_diagnostic(&violation, at, format!("{subject}: {violation}")));
    }
}

/// The diagnostic of a broken limit, at `at`, saying `message`.
pub(super) fn violation_diagnostic(violation: &Violation, at: SourceLocation, message: String) -> Diagnostic {
    let rule = match violation {
        Violation::TooManyKeys { .. } => Rule::TooManyKeys,
        Violation::EmptyKey => Rule::KeyEmpty,
        Violation::KeyTooLong { .. } => Rule::KeyTooLong,
        Violation::ValueTooLong { .. } => Rule::ValueTooLong,
        Violation::ValuesTooLarge { .. } => Rule::ValuesTooLarge,
        Violation::KeysAndValuesLarge { .. } => Rule::KeysAndValuesLarge,
    };
    let diagnostic = match violation.severity() {
        limits::Severity::Error => Diagnostic::error(rule, at, message),
        limits::Severity::Warning => Diagnostic::warning(rule, at, message),
    };
    diagnostic.with_code(violation.limit().code)
}

/// Reads an `ownership:` word, reporting anything else.
pub(super) fn read_ownership(
    file: &Arc<Path>,
    text: &str,
    node: &Spanned<Node>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Ownership> {
    let at = yaml::locate(file, &node.referenced);
    let written = Node::text(node, text);
    let parsed = written.as_deref().and_then(ownership_word);
    if parsed.is_none() {
        let shown = written.map_or_else(|| node.value.kind().to_string(), |w| format!("{w:?}"));
        let message = format!("ownership must be `group` or `keys`, not {shown}");
        diagnostics.push(Diagnostic::error(Rule::Ownership, at, message).with_help(OWNERSHIP_HELP));
    }
    parsed
}

/// What `ownership:` says.
const OWNERSHIP_HELP: &str = "`group` (the default): grattr owns the whole group, and a change is a full reset; \
`keys`: grattr owns only the keys it declares, and keys members write are kept";

/// The ownership a word names.
pub(crate) fn ownership_word(word: &str) -> Option<Ownership> {
    match word {
        "group" => Some(Ownership::Group),
        "keys" => Some(Ownership::Keys),
        _ => None,
    }
}

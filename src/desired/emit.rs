//! Writing desired-state YAML that reproduces attribute values exactly (for
//! `grattr import`): plain scalars only where nothing could reinterpret them,
//! literal block scalars for multi-line text, double quotes for everything else.

use crate::model::{AttributeSet, GroupId, Ownership};
use std::fmt::Write;

/// Words YAML (1.1 or 1.2) would read as something other than text.
const SPECIAL_WORDS: &[&str] = &["true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf", "infinity"];

/// Characters that must never appear raw: they break lines in some YAML versions,
/// are invisible, or are not allowed.
fn must_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Whether `text` can be written bare and be read back as exactly itself, by grattr
/// and by any other YAML reader.
fn plain_safe(text: &str) -> bool {
    let mut chars = text.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    starts_with_letter
        && !text.ends_with(' ')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' '))
        && !SPECIAL_WORDS.contains(&text.to_ascii_lowercase().as_str())
}

/// `text` as a YAML double-quoted scalar, every special character escaped.
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key or id: bare when safe, else double-quoted.
fn scalar_line(text: &str) -> String {
    if plain_safe(text) { text.to_string() } else { double_quoted(text) }
}

/// Whether multi-line `text` can be a literal block scalar indented by `indent`:
/// printable, its first content line not starting with a space (which would set the
/// indentation), and no line of only spaces (which a block scalar cannot keep).
fn block_safe(text: &str) -> bool {
    text.contains('\n')
        && !text.trim_matches('\n').is_empty()
        && !text.chars().any(|c| c != '\n' && c != '\t' && must_escape(c))
        && !text.split('\n').find(|l| !l.is_empty()).is_some_and(|l| l.starts_with([' ', '\t']))
        && !text.split('\n').any(|l| !l.is_empty() && l.chars().all(|c| c == ' ' || c == '\t'))
}

/// A value after `key: `, with block-scalar lines indented by `indent` spaces.
fn value(text: &str, indent: usize) -> String {
    if plain_safe(text) {
        return text.to_string();
    }
    if !block_safe(text) {
        return double_quoted(text);
    }
    let trailing = text.len() - text.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let body = match trailing {
        0 => text,
        _ => &text[..text.len() - 1],
    };
    let pad = " ".repeat(indent);
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

/// A group file declaring `groups`, in order, with `header` as a leading comment;
/// with key ownership, each group says so.
pub fn group_file(header: &str, groups: &[(GroupId, AttributeSet)], ownership: Ownership) -> String {
    let said = (!ownership.is_group()).then_some(ownership);
    let entries: Vec<Entry<'_>> = groups
        .iter()
        .map(|(id, attributes)| Entry { id, ownership: said, template: None, attributes, unset: &[] })
        .collect();
    entries_file(header, &entries)
}

/// One group entry of a file that [`entries_file`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The group.
    pub id: &'a GroupId,
    /// The `ownership:` to write, if any.
    pub ownership: Option<Ownership>,
    /// The `template:` to write, if any.
    pub template: Option<&'a str>,
    /// Its own attributes (with a template, `attributes:` is left out when there are none).
    pub attributes: &'a AttributeSet,
    /// The keys of its `unset:` (left out when there are none).
    pub unset: &'a [String],
}

/// A group file declaring `entries`, in order, with `header` as a leading comment.
pub fn entries_file(header: &str, entries: &[Entry<'_>]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str("groups:\n");
    for entry in entries {
        let _ = writeln!(out, "  - id: {}", scalar_line(entry.id.as_str()));
        if let Some(ownership) = entry.ownership {
            let _ = writeln!(out, "    ownership: {ownership}");
        }
        if let Some(template) = entry.template {
            let _ = writeln!(out, "    template: {}", scalar_line(template));
        }
        match (entry.attributes.is_empty(), entry.template.is_some()) {
            (true, true) => {}
            (true, false) => out.push_str("    attributes: {}\n"),
            (false, _) => {
                out.push_str("    attributes:\n");
                for (key, text) in entry.attributes {
                    let _ = writeln!(out, "      {}: {}", scalar_line(key), value(text, 8));
                }
            }
        }
        if !entry.unset.is_empty() {
            let keys: Vec<String> = entry.unset.iter().map(|key| scalar_line(key)).collect();
            let _ = writeln!(out, "    unset: [{}]", keys.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::groups::parse_file;
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::Arc;

    /// Writes `values` as groups of up to 16 keys and reads them back.
    fn round_trip(values: &[&str]) {
        let groups: Vec<(GroupId, AttributeSet)> = values
            .chunks(16)
            .enumerate()
            .map(|(g, chunk)| {
                let attributes = chunk.iter().enumerate().map(|(i, v)| (format!("k{i:02}"), v.to_string())).collect();
                (GroupId::parse(&format!("@TGS#group{g}")).unwrap(), attributes)
            })
            .collect();
        let text = group_file("test", &groups, Ownership::Group);
        let parsed = parse_file(Arc::from(Path::new("x.yaml")), &text);
        assert!(parsed.diagnostics.iter().all(|d| !d.is_error()), "{:?}\n{text}", parsed.diagnostics);
        let read: Vec<(GroupId, AttributeSet)> =
            parsed.groups.into_iter().map(|(id, group)| (id, group.attributes)).collect();
        assert_eq!(read, groups, "\n{text}");
    }

    #[test]
    fn tricky_values_round_trip_exactly() {
        round_trip(&[
            "plain words",
            "line 1\nline 2\n",
            "no trailing newline\nhere",
            "two trailing\n\n",
            "\nleading newline",
            "\n",
            "\n\n",
            "end\n\n\n",
            "  leading spaces",
            "  indented\nsecond",
            "a\n  \nb",
            "quotes \" and ' and \\",
            "# not a comment",
            "key: value",
            "a #b",
            "no",
            "Yes",
            "123",
            "1.50",
            "0x1F",
            "~",
            "null",
            "",
            " ",
            "trailing space ",
            "tab\there",
            "unicode: é 中 😀",
            "{\"json\": [1, 2]}",
            "- dash",
            "@at",
            "carriage\r\nreturn",
            "bell\u{7}",
            "nel\u{85}line",
            "ls\u{2028}ps\u{2029}",
            "bom\u{feff}",
            &"x".repeat(4000),
        ]);
    }

    #[test]
    fn values_read_well() {
        let groups = vec![(
            GroupId::parse("support-eu").unwrap(),
            [
                ("hours".to_string(), "9-17".to_string()),
                ("rules".into(), "1. Be kind.\n2. No spam.\n".into()),
                ("n".into(), "5".into()),
            ]
            .into(),
        )];
        insta::assert_snapshot!(group_file("Imported.", &groups, Ownership::Group), @r#"
        # Imported.
        groups:
          - id: support-eu
            attributes:
              hours: "9-17"
              "n": "5"
              rules: |
                1. Be kind.
                2. No spam.
        "#);
    }

    proptest! {
        #[test]
        fn any_value_round_trips(values in prop::collection::vec(any::<String>(), 1..6)) {
            let values: Vec<String> = values.into_iter().map(|v| v.chars().take(200).collect()).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            round_trip(&refs);
        }

        #[test]
        fn yaml_like_values_round_trip(values in prop::collection::vec("[ \\n\\t#:'\"|>&*!%@`{}\\[\\],?a-z0-9.-]{0,30}", 1..6)) {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            round_trip(&refs);
        }
    }
}

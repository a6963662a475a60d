//! Writing desired-state YAML that reproduces attribute values exactly (for
//! `grattr import`): plain scalars only where nothing could reinterpret them,
//! literal block scalars for multi-line text, double quotes for everything else;
//! asked, entries written identically but for their id are written once, as a set.

use crate::model::{AttributeSet, GroupId, Ownership};
use std::collections::{HashMap, hash_map};
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

/// The most ids a set writes in flow form, `ids: [a, b, c]`: a longer list is a
/// block sequence, one `- id` a line, so that adding or removing an id is a one-line diff.
pub const FLOW_IDS_MAX: usize = 8;

/// The widest `  - ids: [...]` line a set writes, in columns (an id is ASCII, escaped
/// or not): a wider one is a block sequence.
pub const FLOW_LINE_MAX: usize = 100;

/// A group file declaring `entries`, in order, with `header` as a leading comment.
pub fn entries_file(header: &str, entries: &[Entry<'_>]) -> String {
    let mut out = file_start(header);
    for entry in entries {
        write_ids(&mut out, &[entry.id]);
        write_body(&mut out, entry);
    }
    out
}

/// A group file declaring `entries`, with `header` as a leading comment, where
/// entries that would be written identically but for their id are written once, as
/// a set whose `ids:` lists them in the order given, at the place of the first; an
/// entry like no other stays an `id:` entry.
pub fn sets_file(header: &str, entries: &[Entry<'_>]) -> String {
    let bodies: Vec<String> = entries
        .iter()
        .map(|entry| {
            let mut body = String::new();
            write_body(&mut body, entry);
            body
        })
        .collect();
    let mut out = file_start(header);
    for set in sets_of(&bodies) {
        let ids: Vec<&GroupId> = set.iter().map(|&index| entries[index].id).collect();
        write_ids(&mut out, &ids);
        out.push_str(&bodies[set[0]]);
    }
    out
}

/// The indices of `bodies` grouped by equal text, each group in the order given, the
/// groups in the order of their first index.
fn sets_of(bodies: &[String]) -> Vec<Vec<usize>> {
    let mut set_of: HashMap<&str, usize> = HashMap::with_capacity(bodies.len());
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for (index, body) in bodies.iter().enumerate() {
        match set_of.entry(body.as_str()) {
            hash_map::Entry::Occupied(found) => sets[*found.get()].push(index),
            hash_map::Entry::Vacant(slot) => {
                slot.insert(sets.len());
                sets.push(vec![index]);
            }
        }
    }
    sets
}

/// The header comment and `groups:`.
fn file_start(header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str("groups:\n");
    out
}

/// The first line(s) of an entry: `id:` for one id; for more, `ids:` in flow form
/// when it is short (see [`FLOW_IDS_MAX`], [`FLOW_LINE_MAX`]), else a block sequence.
fn write_ids(out: &mut String, ids: &[&GroupId]) {
    if let [id] = ids {
        let _ = writeln!(out, "  - id: {}", scalar_line(id.as_str()));
        return;
    }
    let written: Vec<String> = ids.iter().map(|id| scalar_line(id.as_str())).collect();
    let flow = format!("  - ids: [{}]", written.join(", "));
    if ids.len() <= FLOW_IDS_MAX && flow.len() <= FLOW_LINE_MAX {
        out.push_str(&flow);
        out.push('\n');
        return;
    }
    out.push_str("  - ids:\n");
    for id in written {
        let _ = writeln!(out, "      - {id}");
    }
}

/// The lines of an entry after its id(s).
fn write_body(out: &mut String, entry: &Entry<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::groups::parse_file;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
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

    fn attributes(pairs: &[(&str, &str)]) -> AttributeSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ids(texts: &[&str]) -> Vec<GroupId> {
        texts.iter().map(|t| GroupId::parse(t).unwrap()).collect()
    }

    #[test]
    fn sets_group_equal_bodies_in_the_order_given() {
        let bodies: Vec<String> = ["a", "b", "a", "c", "b", "a"].map(String::from).to_vec();
        assert_eq!(sets_of(&bodies), vec![vec![0, 2, 5], vec![1, 4], vec![3]]);
        assert_eq!(sets_of(&[]), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn only_entries_written_identically_share_a_set() {
        let ids = ids(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        let none = AttributeSet::new();
        let gold = attributes(&[("theme", "gold")]);
        let unset = ["rules".to_string()];
        let entry = |i: usize, attributes, unset, ownership| Entry {
            id: &ids[i],
            ownership,
            template: Some("room"),
            attributes,
            unset,
        };
        let keys = Some(Ownership::Keys);
        let entries = [
            entry(0, &none, &[], None),
            entry(1, &gold, &[], None),
            entry(2, &none, &[], None),
            // Differs only by its `unset:`, by its ownership, by its template.
            entry(3, &none, &unset, None),
            entry(4, &none, &[], keys),
            Entry { template: Some("other"), ..entry(5, &none, &[], None) },
            entry(6, &gold, &[], None),
            entry(7, &none, &[], None),
        ];
        insta::assert_snapshot!(sets_file("Imported.", &entries), @r"
        # Imported.
        groups:
          - ids: [a, c, h]
            template: room
          - ids: [b, g]
            template: room
            attributes:
              theme: gold
          - id: d
            template: room
            unset: [rules]
          - id: e
            ownership: keys
            template: room
          - id: f
            template: other
        ");
        // Without sets, the same entries are one per group.
        assert_eq!(entries_file("Imported.", &entries).matches("  - id: ").count(), 8);
    }

    #[test]
    fn a_long_set_is_a_block_sequence() {
        let write = |texts: &[&str]| {
            let ids = ids(texts);
            let none = AttributeSet::new();
            let entries: Vec<Entry<'_>> = ids
                .iter()
                .map(|id| Entry { id, ownership: None, template: None, attributes: &none, unset: &[] })
                .collect();
            sets_file("h", &entries).split_once("groups:\n").unwrap().1.to_string()
        };
        // At most FLOW_IDS_MAX ids, and a line of at most FLOW_LINE_MAX columns: flow form.
        let eight = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"];
        assert_eq!(write(&eight), "  - ids: [r1, r2, r3, r4, r5, r6, r7, r8]\n    attributes: {}\n");
        let nine = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"];
        let block: Vec<String> = nine.iter().map(|id| format!("      - {id}")).collect();
        assert_eq!(write(&nine), format!("  - ids:\n{}\n    attributes: {{}}\n", block.join("\n")));
        // `  - ids: [`, two ids, `, ` and `]`: 13 columns and the ids'.
        let (a, b) = ("x".repeat(42), "y".repeat(46));
        let fits = write(&[&a, &b[..45]]);
        assert_eq!(fits.lines().next().unwrap().len(), FLOW_LINE_MAX, "{fits}");
        let wide = write(&[&a, &b]);
        assert_eq!(wide, format!("  - ids:\n      - {a}\n      - {b}\n    attributes: {{}}\n"));
        // Hostile ids are quoted as any scalar, in either form.
        let hostile = write(&["a, b", "[c]", "\"d\" #e", "- f"]);
        assert_eq!(hostile, "  - ids: [\"a, b\", \"[c]\", \"\\\"d\\\" #e\", \"- f\"]\n    attributes: {}\n");
        let many: Vec<String> = (0..9).map(|i| format!("- {i}: #x")).collect();
        let block = write(&many.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(block.starts_with("  - ids:\n      - \"- 0: #x\"\n      - \"- 1: #x\"\n"), "{block}");
    }

    /// Ids of any printable ASCII, each valid, none twice.
    fn hostile_ids() -> impl Strategy<Value = Vec<GroupId>> {
        prop::collection::btree_set("[ -~]{1,48}", 1..24)
            .prop_map(|texts| texts.iter().filter_map(|t| GroupId::parse(t).ok()).collect())
    }

    proptest! {
        /// Whatever the ids, and however many groups share an entry, the sets written
        /// declare exactly the groups given, each with its attributes.
        #[test]
        fn sets_with_hostile_ids_round_trip(
            ids in hostile_ids(),
            pool in prop::collection::vec(prop::collection::btree_map("[a-c#: ]{1,3}", "[ -~\n]{0,5}", 0..3), 1..4),
            picks in prop::collection::vec(0..4usize, 24),
        ) {
            let pool: Vec<AttributeSet> = pool.into_iter().map(|m| m.into_iter().collect()).collect();
            let groups: Vec<(GroupId, AttributeSet)> =
                ids.into_iter().zip(picks).map(|(id, pick)| (id, pool[pick % pool.len()].clone())).collect();
            let entries: Vec<Entry<'_>> = groups
                .iter()
                .map(|(id, attributes)| Entry { id, ownership: None, template: None, attributes, unset: &[] })
                .collect();
            let text = sets_file("test", &entries);
            let parsed = parse_file(Arc::from(Path::new("x.yaml")), &text);
            prop_assert!(parsed.diagnostics.iter().all(|d| !d.is_error()), "{:?}\n{}", parsed.diagnostics, text);
            let read: BTreeMap<GroupId, AttributeSet> =
                parsed.groups.into_iter().map(|(id, group)| (id, group.attributes)).collect();
            prop_assert_eq!(read.len(), groups.len(), "{}", text);
            prop_assert_eq!(read, groups.iter().cloned().collect::<BTreeMap<_, _>>(), "{}", text);
            // One entry per distinct attribute set.
            let mut distinct: Vec<&AttributeSet> = Vec::new();
            for (_, attributes) in &groups {
                if !distinct.contains(&attributes) {
                    distinct.push(attributes);
                }
            }
            prop_assert_eq!(text.matches("\n  - id").count(), distinct.len(), "{}", text);
        }

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

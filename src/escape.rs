//! How untrusted text is written per output kind. Live values and keys come from
//! any group member's app, file names, group ids and environment names from pull
//! requests: wherever grattr writes them, they are passed through one rule of this
//! module for the kind of output, once, at the place it is written.
//!
//! - Plain text (terminals, text logs, HTTP answers): [`text`], and [`quoted`] for
//!   values. Every character that could move the cursor, end a line, drive a
//!   terminal or reorder what is shown — C0 and C1 controls, DEL, U+2028/U+2029 and
//!   the bidirectional controls — and every character that shows as nothing (a
//!   zero-width space, a soft hyphen, a tag character: see [`invisible`]) is
//!   written as a JSON-style escape: `\n`, `\r`, `\t`, `\b`, `\f`, otherwise `\u`
//!   and four lowercase hex digits (`\u0085`, `\u007f`, `\u202e`, `\u200b`; beyond
//!   the BMP a surrogate pair, `\udb40\udc67`). Everything else is written as it is.
//! - Markdown: [`markdown_code`] inside HTML, [`markdown_code_span`] in Markdown
//!   text. Data is always placed in code, where no heading, link, HTML, mention or
//!   reference can form, and first escaped as plain text so no newline can end it.
//! - GitHub workflow commands (`::error file=…::message`): [`workflow_data`] for
//!   the message and [`workflow_property`] for property values, escaped exactly as
//!   GitHub's toolkit escapes them, so no line break can start a second command.
//!   Plain text GitHub's runner reads (a summary on stderr) passes through
//!   [`workflow_log`], which the runner never reads as a command.
//! - Machine output (JSON) is never altered and never passes through here.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must be escaped in plain text: a control character (C0, DEL, C1),
/// a line or paragraph separator, a bidirectional control (Unicode's Bidi_Control
/// set: ALM, LRM, RLM, the embeddings and overrides, the isolates), or a character
/// that shows as nothing ([`invisible`]).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || invisible(c)
}

/// Whether `c` is one of Unicode's default-ignorable code points
/// (Default_Ignorable_Code_Point, Unicode 15): characters a terminal or a browser
/// shows as nothing, so that `ad\u{200b}min` reads as `admin` and `co\u{ad}op` as
/// `coop`. Among them the zero-width space, non-joiner and joiner, the word joiner
/// and invisible operators, the byte order mark, the soft hyphen, the variation
/// selectors, the Hangul fillers and the tag characters. The joiners and the
/// variation selectors also shape emoji and some scripts; they are shown escaped
/// there too, since the same character hides a difference in a key.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Appends the escape of `c` (one that [`needs_escape`]) to `out`: JSON's, a
/// character beyond the BMP (a tag character) as its UTF-16 surrogate pair.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

/// `text` for a terminal, a log line or an HTTP answer: one line, with every
/// character that [`needs_escape`] shown as its escape. Borrowed when nothing needs
/// escaping; applying it twice changes nothing more.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for a terminal, a log line or an HTTP answer, as [`text`]: paths come
/// from `grattr.yaml` and pull requests, and a file name may hold any byte but `/`.
pub fn path(path: &std::path::Path) -> String {
    text(&path.display().to_string()).into_owned()
}

/// A message of several lines that grattr composed around data (an error and its
/// causes), for a terminal: as [`text`], but its newlines stay line breaks.
/// Data that must stay on one line is passed through [`text`] where the message is
/// made (a [`crate::desired::Diagnostic`] does so).
pub fn lines(message: &str) -> Cow<'_, str> {
    if !message.chars().any(|c| c != '\n' && needs_escape(c)) {
        return Cow::Borrowed(message);
    }
    let shown: Vec<Cow<'_, str>> = message.split('\n').map(text).collect();
    Cow::Owned(shown.join("\n"))
}

/// A value as one line of plain text: a JSON string literal (it parses back to
/// `value`) in which quotes, backslashes and every character that [`needs_escape`]
/// are escaped, so whitespace and controls are visible and cannot drive a terminal.
pub fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes [`quoted`] of `value` to `out` without making it first: runs of characters
/// that need no escape are written as they are, in one piece.
pub fn write_quoted<W: std::io::Write + ?Sized>(out: &mut W, value: &str) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = value.as_bytes();
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        let byte = bytes[at];
        if (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\' {
            at += 1;
            continue;
        }
        let c = value[at..].chars().next().unwrap_or_default();
        if !matches!(c, '"' | '\\') && !needs_escape(c) {
            at += c.len_utf8();
            continue;
        }
        out.write_all(&bytes[start..at])?;
        let mut escaped = String::new();
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c => push_escape(&mut escaped, c),
        }
        out.write_all(escaped.as_bytes())?;
        at += c.len_utf8();
        start = at;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// `text` escaped for HTML: the characters that open tags, entities and
/// attributes, and those that Markdown gives meaning to within a line of HTML.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '`' => out.push_str("&#96;"),
            '|' => out.push_str("&#124;"),
            _ => out.push(c),
        }
    }
    out
}

/// The longest run of backticks in `text`: a code span or fence must be longer.
pub fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// `data` as an HTML `<code>` element, for Markdown's HTML lines (such as a
/// `<summary>`): escaped as plain text, so no newline can end the HTML block, then
/// as HTML. GitHub forms no mention or reference inside code.
pub fn markdown_code(data: &str) -> String {
    format!("<code>{}</code>", html(&text(data)))
}

/// `data` as a Markdown code span, for Markdown text (a heading, a list item):
/// escaped as plain text, so no newline can end the line, and fenced by more
/// backticks than any run in it. Nothing inside a code span is Markdown or HTML,
/// and GitHub forms no mention or reference there.
pub fn markdown_code_span(data: &str) -> String {
    let content = text(data);
    if content.is_empty() {
        // Two backticks alone are no code span; a space is the nearest thing to nothing.
        return "` `".to_string();
    }
    let fence = "`".repeat(longest_backtick_run(&content) + 1);
    // A code span loses one space at each end when it has both; a backtick at an
    // end would join the fence. Padding with a space keeps the content exact.
    let pad = content.starts_with(['`', ' ']) || content.ends_with(['`', ' ']);
    let space = if pad { " " } else { "" };
    format!("{fence}{space}{content}{space}{fence}")
}

/// The longest prefix of escaped `text` of at most `max` bytes that ends between
/// whole escapes: never inside a `\u0085`, a `\n` or an `&amp;`, nor inside a
/// character.
pub fn cut(text: &str, max: usize) -> &str {
    let bytes = text.as_bytes();
    let mut end = 0;
    while end < text.len() {
        let next = end + token_len(&text[end..], bytes[end]);
        if next > max {
            break;
        }
        end = next;
    }
    &text[..end]
}

/// The length in bytes of the escape or character that starts `rest`: a
/// surrogate pair's two escapes are one.
fn token_len(rest: &str, first: u8) -> usize {
    let hex4 = |s: &str| s.len() >= 4 && s.as_bytes()[..4].iter().all(u8::is_ascii_hexdigit);
    let unit = |s: &str| {
        let hex = s.strip_prefix("\\u").filter(|h| hex4(h))?;
        u16::from_str_radix(hex.get(..4)?, 16).ok()
    };
    let pair = unit(rest).is_some_and(|u| (0xd800..0xdc00).contains(&u))
        && rest.get(6..).and_then(unit).is_some_and(|u| (0xdc00..0xe000).contains(&u));
    match first {
        b'\\' if pair => 12,
        b'\\' if rest[1..].starts_with('u') && hex4(&rest[2..]) => 6,
        b'\\' if rest.len() > 1 => 1 + rest[1..].chars().next().map_or(0, char::len_utf8),
        b'&' => {
            let name = rest[1..].bytes().take(10).position(|b| !(b.is_ascii_alphanumeric() || b == b'#'));
            match name {
                Some(n) if n > 0 && rest.as_bytes()[1 + n] == b';' => n + 2,
                _ => 1,
            }
        }
        _ => rest.chars().next().map_or(1, char::len_utf8),
    }
}

/// A workflow command's message, escaped as GitHub's toolkit (`@actions/core`
/// `escapeData`) does and its runner undoes: `%`, CR and LF. Both CR and LF end
/// a runner line, so without them the command cannot be followed by another.
pub fn workflow_data(data: &str) -> String {
    let mut out = String::with_capacity(data.len());
    for c in data.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// A workflow command's property value (`file=`, `title=`), escaped as GitHub's
/// toolkit (`escapeProperty`) does: as [`workflow_data`], and `:` and `,`, which
/// would end the value or the properties.
pub fn workflow_property(value: &str) -> String {
    workflow_data(value).replace(':', "%3A").replace(',', "%2C")
}

/// A line of plain text that GitHub's runner reads (it reads stdout and stderr
/// for commands) and must never take for one: as [`text`], and with the two forms
/// the runner recognises defused: `::` opening the line (after spaces) and the
/// legacy `##[`, which it finds anywhere in a line. The `:` or `#` that would
/// complete them is written `\u003a` or `\u0023`, the notation of [`text`].
pub fn workflow_log(line: &str) -> String {
    let shown = text(line).replace("##[", "#\\u0023[");
    let spaces = shown.len() - shown.trim_start().len();
    match shown[spaces..].strip_prefix("::") {
        Some(rest) => format!("{}\\u003a:{rest}", &shown[..spaces]),
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_escapes_controls_separators_and_bidi() {
        assert_eq!(text("plain é 中 😀 \\ \""), "plain é 中 😀 \\ \"");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(text("a\nb\tc\r\u{8}\u{c}"), r"a\nb\tc\r\b\f");
        assert_eq!(text("\u{1b}[2J\u{7f}\u{85}\u{9b}\u{9d}"), r"\u001b[2J\u007f\u0085\u009b\u009d");
        assert_eq!(text("\u{2028}\u{2029}"), r"\u2028\u2029");
        assert_eq!(
            text("\u{202a}\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}"),
            r"\u202a\u202e\u2066\u2069\u200e\u200f\u061c"
        );
    }

    #[test]
    fn text_shows_characters_that_show_as_nothing() {
        assert_eq!(text("ad\u{200b}min"), r"ad\u200bmin");
        assert_eq!(text("\u{feff}a\u{2060}b\u{ad}c\u{200c}\u{200d}"), r"\ufeffa\u2060b\u00adc\u200c\u200d");
        assert_eq!(text("\u{3164}\u{115f}\u{ffa0}\u{fe0f}\u{34f}\u{180e}"), r"\u3164\u115f\uffa0\ufe0f\u034f\u180e");
        // Beyond the BMP, as a surrogate pair: what JSON writes, and reads back.
        assert_eq!(text("x\u{e0001}\u{e007f}\u{e0100}"), r"x\udb40\udc01\udb40\udc7f\udb40\udd00");
        assert_eq!(quoted("a\u{e0067}"), r#""a\udb40\udc67""#);
        assert_eq!(serde_json::from_str::<String>(&quoted("a\u{e0067}")).unwrap(), "a\u{e0067}");
        // A cut never splits the pair.
        assert_eq!(cut(r#""a\udb40\udc67""#, 13), r#""a"#);
        assert_eq!(cut(r#""a\udb40\udc67""#, 14), r#""a\udb40\udc67"#);
        // Visible text is left alone.
        assert_eq!(text("é 中 😀 ❤ a-b"), "é 中 😀 ❤ a-b");
        assert_eq!(markdown_code_span("ad\u{200b}min"), r"`ad\u200bmin`");
    }

    #[test]
    fn lines_keep_their_breaks_and_nothing_else() {
        assert_eq!(lines("a\nb\u{85}\u{1b}[2J\r"), "a\nb\\u0085\\u001b[2J\\r");
        assert!(matches!(lines("a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn quoted_is_json_that_parses_back() {
        assert_eq!(quoted("say \"hi\"\n"), r#""say \"hi\"\n""#);
        assert_eq!(quoted("x\u{7f}y\u{202e}"), r#""x\u007fy\u202e""#);
        assert_eq!(quoted(""), r#""""#);
    }

    #[test]
    fn markdown_code_cannot_end_the_line_or_open_a_tag() {
        assert_eq!(
            markdown_code("a\n# h <img src=x> @everyone `x` |"),
            r"<code>a\n# h &lt;img src=x&gt; @everyone &#96;x&#96; &#124;</code>"
        );
    }

    #[test]
    fn markdown_code_spans_outrun_every_backtick_run() {
        assert_eq!(markdown_code_span("production"), "`production`");
        assert_eq!(markdown_code_span("a``b"), "```a``b```");
        assert_eq!(markdown_code_span("`a"), "`` `a ``");
        assert_eq!(markdown_code_span(" a "), "`  a  `");
        assert_eq!(markdown_code_span("a\n# b"), r"`a\n# b`");
        assert_eq!(markdown_code_span(""), "` `");
    }

    #[test]
    fn cuts_land_between_whole_escapes() {
        assert_eq!(cut(r#""ab\u00e9""#, 4), r#""ab"#);
        assert_eq!(cut(r#""ab\u00e9""#, 8), r#""ab"#);
        assert_eq!(cut(r#""ab\u00e9""#, 9), r#""ab\u00e9"#);
        assert_eq!(cut(r#""a\n""#, 3), r#""a"#);
        assert_eq!(cut(r#""a\n""#, 4), r#""a\n"#);
        assert_eq!(cut("x&amp;y", 5), "x");
        assert_eq!(cut("x&amp;y", 6), "x&amp;");
        assert_eq!(cut("a & b;", 3), "a &");
        assert_eq!(cut("é中", 4), "é");
        assert_eq!(cut("abc\\", 10), "abc\\");
    }

    #[test]
    fn workflow_escapes_are_the_toolkits() {
        assert_eq!(workflow_data("100% a\r\nb: c, d"), "100%25 a%0D%0Ab: c, d");
        assert_eq!(workflow_property("groups/a:b,c%\n.yaml"), "groups/a%3Ab%2Cc%25%0A.yaml");
        assert_eq!(workflow_data("%0A"), "%250A");
    }

    #[test]
    fn workflow_log_lines_are_never_commands() {
        assert_eq!(workflow_log("groups: ok"), "groups: ok");
        assert_eq!(workflow_log("::add-mask::x: ok"), "\\u003a:add-mask::x: ok");
        assert_eq!(workflow_log("  ::error::x"), "  \\u003a:error::x");
        assert_eq!(workflow_log("dir ##[error]x"), "dir #\\u0023[error]x");
        assert_eq!(workflow_log("a\n::error::x"), "a\\n::error::x");
    }

    fn hostile() -> impl Strategy<Value = String> {
        let chars = prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '\n',
                '\r',
                '\u{7f}',
                '\u{85}',
                '\u{9b}',
                '\u{9d}',
                '\u{1b}',
                '\u{2028}',
                '\u{2029}',
                '\u{202e}',
                '\u{2066}',
                '\u{2069}',
                '\u{200f}',
                '\u{200b}',
                '\u{feff}',
                '\u{ad}',
                '\u{e0067}',
                '\u{e007f}',
                '`',
                '<',
                '@',
                '#',
                '&',
                '\\',
                '"',
            ]),
        ];
        prop::collection::vec(chars, 0..40).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn text_output_holds_no_escapable_character(data in hostile()) {
            let shown = text(&data);
            prop_assert!(!shown.chars().any(needs_escape));
            prop_assert_eq!(text(&shown), shown.clone());
        }

        #[test]
        fn quoted_output_parses_back_and_holds_no_escapable_character(data in hostile()) {
            let shown = quoted(&data);
            prop_assert!(!shown.chars().any(needs_escape));
            prop_assert_eq!(serde_json::from_str::<String>(&shown).ok(), Some(data));
        }

        #[test]
        fn write_quoted_writes_what_quoted_makes(data in hostile()) {
            let mut written = Vec::new();
            write_quoted(&mut written, &data).unwrap();
            prop_assert_eq!(String::from_utf8(written).unwrap(), quoted(&data));
        }

        #[test]
        fn markdown_code_never_ends_its_line_or_element(data in hostile()) {
            let shown = markdown_code(&data);
            let inner = &shown["<code>".len()..shown.len() - "</code>".len()];
            prop_assert!(!inner.chars().any(|c| needs_escape(c) || matches!(c, '<' | '>' | '`')));
        }

        #[test]
        fn markdown_code_spans_are_one_closed_span(data in hostile()) {
            let shown = markdown_code_span(&data);
            prop_assert!(!shown.chars().any(needs_escape));
            let fence = shown.len() - shown.trim_start_matches('`').len();
            let inner = &shown[fence..shown.len() - fence];
            let longest = inner.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            prop_assert!(longest < fence);
        }

        #[test]
        fn workflow_data_holds_no_line_break(data in hostile()) {
            let shown = workflow_data(&data);
            prop_assert!(!shown.contains(['\r', '\n']));
            let property = workflow_property(&data);
            prop_assert!(!property.contains(['\r', '\n', ':', ',']));
            let log = workflow_log(&data);
            prop_assert!(!log.contains("##[") && !log.trim_start().starts_with("::"));
        }

        #[test]
        fn cuts_of_quoted_values_end_between_escapes(data in hostile(), max in 0usize..80) {
            let shown = quoted(&data);
            let prefix = cut(&shown, max);
            prop_assert!(prefix.len() <= max);
            prop_assert!(shown.starts_with(prefix));
            // Whole escapes only: the prefix, closed by a quote unless it is whole, parses as JSON.
            if !prefix.is_empty() {
                let closed = if prefix == shown { shown.clone() } else { format!("{prefix}\"") };
                prop_assert!(serde_json::from_str::<String>(&closed).is_ok(), "{closed}");
            }
        }
    }
}

//! Problems found in the files grattr reads: where they are, which rule they
//! break, and how they look on a terminal (with a source snippet), in a log, as a
//! GitHub workflow command or as JSON. The terminal and log forms write the file
//! name and the message, which quote the files' text, as plain text
//! ([`crate::escape::text`]): one diagnostic never forms more lines than it means
//! to, nor drives a terminal. The workflow command escapes them as GitHub's toolkit
//! does; JSON keeps them unaltered.

use crate::model::SourceLocation;
use crate::model::limits::Severity;
use std::fmt;
use std::path::{Path, PathBuf};

/// Which rule a [`Diagnostic`] reports. The names are stable: tests and JSON output use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The file could not be read.
    Io,
    /// The file is not UTF-8.
    NotUtf8,
    /// The file is not valid YAML.
    YamlSyntax,
    /// A field grattr does not know (most often a typo).
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field holds the wrong kind of value.
    WrongType,
    /// A mapping gives the same key twice.
    DuplicateKey,
    /// The same group is declared twice.
    DuplicateGroup,
    /// A group id breaks the id rules.
    GroupId,
    /// A value is null or empty where text is needed.
    NullValue,
    /// A key is not text (a mapping or sequence).
    KeyNotText,
    /// A key is empty.
    KeyEmpty,
    /// A key is longer than allowed.
    KeyTooLong,
    /// A value is longer than allowed.
    ValueTooLong,
    /// A group has too many keys.
    TooManyKeys,
    /// A group's values total more than allowed.
    ValuesTooLarge,
    /// A group's keys and values total more than the client SDKs document.
    KeysAndValuesLarge,
    /// A file declares no groups.
    NoGroups,
    /// A setting in `grattr.yaml` is wrong.
    Config,
    /// A file name is not UTF-8: the lockfile and JSON plans could not name it.
    FileNameNotUtf8,
    /// An explicit tag grattr does not honour where it stands (`!!binary`, `!custom`).
    Tag,
    /// A number in a mapping or sequence value that JSON cannot keep exactly.
    Number,
    /// A symlink under the groups directory leads outside the repository or cannot be followed.
    Link,
    /// A group file name is not a regular file (a FIFO, socket or device).
    NotAFile,
}

impl Rule {
    /// The stable name of the rule.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Io => "io",
            Rule::NotUtf8 => "not-utf8",
            Rule::YamlSyntax => "yaml-syntax",
            Rule::UnknownField => "unknown-field",
            Rule::MissingField => "missing-field",
            Rule::WrongType => "wrong-type",
            Rule::DuplicateKey => "duplicate-key",
            Rule::DuplicateGroup => "duplicate-group",
            Rule::GroupId => "group-id",
            Rule::NullValue => "null-value",
            Rule::KeyNotText => "key-not-text",
            Rule::KeyEmpty => "key-empty",
            Rule::KeyTooLong => "key-too-long",
            Rule::ValueTooLong => "value-too-long",
            Rule::TooManyKeys => "too-many-keys",
            Rule::ValuesTooLarge => "values-too-large",
            Rule::KeysAndValuesLarge => "keys-and-values-large",
            Rule::NoGroups => "no-groups",
            Rule::Config => "config",
            Rule::FileNameNotUtf8 => "file-name-not-utf8",
            Rule::Tag => "tag",
            Rule::Number => "number",
            Rule::Link => "link",
            Rule::NotAFile => "not-a-file",
        }
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error (nothing is applied) or warning.
    pub severity: Severity,
    /// The rule broken.
    pub rule: Rule,
    /// Where.
    pub location: SourceLocation,
    /// What is wrong, naming the group, the key, the measured size and the limit.
    pub message: String,
    /// The API error code the rule prevents, if any.
    pub code: Option<u32>,
    /// How to fix it, when that is not obvious from the message.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error.
    pub fn error(rule: Rule, location: SourceLocation, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, rule, location, message: message.into(), code: None, help: None }
    }

    /// A warning.
    pub fn warning(rule: Rule, location: SourceLocation, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(rule, location, message) }
    }

    /// Adds the API error code the rule prevents.
    pub fn with_code(mut self, code: u32) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this diagnostic stops the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn severity_word(&self) -> &'static str {
        match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    fn headline(&self) -> String {
        let message = crate::escape::text(&self.message);
        match self.code {
            Some(code) => format!("{message} [{code}]"),
            None => message.into_owned(),
        }
    }

    fn place(&self) -> String {
        crate::escape::text(&self.location.to_string()).into_owned()
    }

    fn help(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.help.as_deref().map(crate::escape::text)
    }

    /// Renders the diagnostic for a terminal: a headline, the source line with a
    /// caret under the column, and the hint. `source` is the file's text when it is
    /// at hand; without it, this is the one-line form.
    pub fn render_with_snippet(&self, source: Option<&str>) -> String {
        use anstyle::{AnsiColor, Style};
        let accent = match self.severity {
            Severity::Error => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            Severity::Warning => Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold(),
        };
        let blue = Style::new().fg_color(Some(AnsiColor::Blue.into())).bold();
        let bold = Style::new().bold();
        let mut out = format!(
            "{accent}{}{accent:#}{bold}: {}{bold:#}\n  {blue}-->{blue:#} {}\n",
            self.severity_word(),
            self.headline(),
            self.place()
        );
        let line_text = source
            .filter(|_| self.location.line > 0)
            .and_then(|text| text.lines().nth(self.location.line as usize - 1));
        if let Some(line_text) = line_text {
            let number = self.location.line.to_string();
            let pad = " ".repeat(number.len());
            let (shown, caret_at) = snippet_window(line_text, self.location.column);
            out += &format!("{pad} {blue}|{blue:#}\n{blue}{number}{blue:#} {blue}|{blue:#} {shown}\n");
            out += &format!("{pad} {blue}|{blue:#} {}{accent}^{accent:#}\n", " ".repeat(caret_at));
        }
        if let Some(help) = self.help() {
            out += &format!("  {bold}help{bold:#}: {help}\n");
        }
        out
    }
}

/// The part of a long line to show, and where under it the caret goes (in
/// characters). Control and bidi characters are replaced by a space, one for one so
/// the caret stays under its column, so a snippet cannot drive the terminal.
fn snippet_window(line: &str, column: u64) -> (String, usize) {
    const WIDTH: usize = 100;
    let chars: Vec<char> = line.chars().map(|c| if crate::escape::needs_escape(c) { ' ' } else { c }).collect();
    let column = (column.max(1) as usize - 1).min(chars.len());
    let start = column.saturating_sub(WIDTH / 2).min(chars.len().saturating_sub(WIDTH));
    let end = (start + WIDTH).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret_at = column - start;
    if start > 0 {
        shown.insert(0, '…');
        caret_at += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret_at)
}

impl Diagnostic {
    /// The diagnostic as one GitHub workflow command (`::error file=…,line=…,col=…,title=RULE::message`,
    /// `::warning` for a warning), which GitHub shows as an annotation on the file.
    /// The message carries the API error code and the hint as the other forms do.
    /// Everything quoted is escaped as GitHub's toolkit escapes it, so that no file name
    /// or key can end the command and start another.
    pub fn github_command(&self) -> String {
        use crate::escape::{workflow_data, workflow_property};
        let mut properties = format!("file={}", workflow_property(&self.location.file.display().to_string()));
        if self.location.line > 0 {
            properties += &format!(",line={}", self.location.line);
            if self.location.column > 0 {
                properties += &format!(",col={}", self.location.column);
            }
        }
        properties += &format!(",title={}", workflow_property(self.rule.name()));
        let mut message = self.message.clone();
        if let Some(code) = self.code {
            message += &format!(" [{code}]");
        }
        if let Some(help) = &self.help {
            message += &format!("\nhelp: {help}");
        }
        format!("::{} {properties}::{}", self.severity_word(), workflow_data(&message))
    }
}

/// The JSON form (`grattr validate --format json`): `file`, `line` and `column`
/// (`null` when unknown), `severity`, `rule`, `message`, `code` (the API error code
/// the rule prevents, or `null`) and `help` (or `null`), all unaltered.
impl serde::Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let known = |n: u64| (n > 0).then_some(n);
        let mut out = serializer.serialize_struct("Diagnostic", 8)?;
        out.serialize_field("file", &self.location.file.to_string_lossy())?;
        out.serialize_field("line", &known(self.location.line))?;
        out.serialize_field("column", &known(self.location.column).filter(|_| self.location.line > 0))?;
        out.serialize_field("severity", self.severity_word())?;
        out.serialize_field("rule", self.rule.name())?;
        out.serialize_field("message", &self.message)?;
        out.serialize_field("code", &self.code)?;
        out.serialize_field("help", &self.help)?;
        out.end()
    }
}

impl std::error::Error for Diagnostic {}

/// The one-line form: `path:line:col: error: message [code]`, then the hint.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.place(), self.severity_word(), self.headline())?;
        if let Some(help) = self.help() {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Makes `path` as short as the user would type it: relative to the working
/// directory when it lies below it.
pub fn display_path(path: &Path) -> PathBuf {
    let path = path.strip_prefix("./").unwrap_or(path);
    match std::env::current_dir() {
        Ok(cwd) if path.is_absolute() => path.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn at(line: u64, column: u64) -> SourceLocation {
        SourceLocation { file: Arc::from(Path::new("groups/lobby.yaml")), line, column }
    }

    #[test]
    fn one_line_form() {
        let d = Diagnostic::error(
            Rule::ValueTooLong,
            at(4, 15),
            "group \"lobby\" key \"banner\": value is 4001 bytes, limit 4000 bytes",
        )
        .with_code(10046);
        assert_eq!(
            d.to_string(),
            "groups/lobby.yaml:4:15: error: group \"lobby\" key \"banner\": value is 4001 bytes, limit 4000 bytes [10046]"
        );
    }

    #[test]
    fn snippet_points_at_the_column() {
        let source = "groups:\n  - id: lobby\n    attributes:\n      banner: ~\n";
        let d = Diagnostic::error(Rule::NullValue, at(4, 15), "value of key \"banner\" is null")
            .with_help("quote it: banner: \"~\"");
        let plain = anstream::adapter::strip_str(&d.render_with_snippet(Some(source))).to_string();
        insta::assert_snapshot!(plain, @r#"
        error: value of key "banner" is null
          --> groups/lobby.yaml:4:15
          |
        4 |       banner: ~
          |               ^
          help: quote it: banner: "~"
        "#);
    }

    #[test]
    fn snippet_of_a_long_line_is_windowed() {
        let line = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let (shown, caret) = snippet_window(&line, 301);
        assert_eq!(shown.chars().nth(caret), Some('X'));
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert!(snippet_window("", 5).0.is_empty());
        assert_eq!(snippet_window("a\u{1b}[31m", 1).0, "a [31m");
        assert_eq!(snippet_window("a\u{202e}b\u{85}c", 1).0, "a b c");
    }

    #[test]
    fn github_command_carries_code_and_hint() {
        let d =
            Diagnostic::error(Rule::ValueTooLong, at(4, 15), "value of key \"banner\" is 4001 bytes, limit 4000 bytes")
                .with_code(10046)
                .with_help("shorten it");
        assert_eq!(
            d.github_command(),
            "::error file=groups/lobby.yaml,line=4,col=15,title=value-too-long::value of key \"banner\" is 4001 bytes, limit 4000 bytes [10046]%0Ahelp: shorten it"
        );
        let w = Diagnostic::warning(Rule::NoGroups, at(0, 0), "file declares no groups");
        assert_eq!(w.github_command(), "::warning file=groups/lobby.yaml,title=no-groups::file declares no groups");
    }

    #[test]
    fn hostile_names_cannot_start_a_second_workflow_command() {
        let file = Path::new("groups/a\n::add-mask::x,line=1:\r::error::y%0A.yaml");
        let d = Diagnostic::error(
            Rule::UnknownField,
            SourceLocation { file: Arc::from(file), line: 2, column: 3 },
            "unknown field `k\n::error file=x::owned`",
        )
        .with_help("\r\n::add-mask::secret");
        let command = d.github_command();
        assert_eq!(command.lines().count(), 1);
        assert!(!command.contains('\r'));
        assert_eq!(
            command,
            "::error file=groups/a%0A%3A%3Aadd-mask%3A%3Ax%2Cline=1%3A%0D%3A%3Aerror%3A%3Ay%250A.yaml,line=2,col=3,title=unknown-field::unknown field `k%0A::error file=x::owned`%0Ahelp: %0D%0A::add-mask::secret"
        );
    }

    #[test]
    fn json_form_is_unaltered() {
        let d = Diagnostic::error(Rule::KeyTooLong, at(2, 0), "key \"a\u{1b}\n\" is long").with_code(10045);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"file": "groups/lobby.yaml", "line": 2, "column": null, "severity": "error",
                "rule": "key-too-long", "message": "key \"a\u{1b}\n\" is long", "code": 10045, "help": null})
        );
    }

    #[test]
    fn file_names_and_messages_are_written_as_plain_text() {
        let location = SourceLocation { file: Arc::from(Path::new("groups/a\n# x\u{202e}.yaml")), line: 2, column: 3 };
        let d = Diagnostic::error(Rule::UnknownField, location, "unknown field `a\u{9b}b`").with_help("x\ny");
        assert_eq!(d.to_string(), "groups/a\\n# x\\u202e.yaml:2:3: error: unknown field `a\\u009bb`\n  help: x\\ny");
        let plain = anstream::adapter::strip_str(&d.render_with_snippet(None)).to_string();
        assert_eq!(plain, "error: unknown field `a\\u009bb`\n  --> groups/a\\n# x\\u202e.yaml:2:3\n  help: x\\ny\n");
    }
}

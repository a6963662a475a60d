//! Problems found in the files grattr reads: where they are, which rule they
//! break, the other places they involve, and how they look on a terminal (source
//! snippets rendered by annotate-snippets, as rustc and cargo show them), in a log,
//! as a GitHub workflow command or as JSON. The terminal and log forms write the
//! file names, the message and the labels, which quote the files' text, as plain
//! text ([`crate::escape::text`]), and a snippet's source lines with each character
//! that could drive a terminal replaced by a visible one in its column:
//! one diagnostic never forms more lines than it means to, nor drives a terminal.
//! The workflow command escapes them as GitHub's toolkit does; JSON keeps them
//! unaltered.

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
    /// The file is larger than grattr reads (`limits::MAX_GROUP_FILE_BYTES`).
    FileTooLarge,
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
    /// An `ownership:` that is neither `group` nor `keys`.
    Ownership,
    /// A template defined twice, unknown, extending an unknown one or itself, or an `unset:` that cannot apply.
    Template,
    /// A template no group uses (a warning).
    UnusedTemplate,
    /// A key in `unset:` that the template does not set (a warning).
    Unset,
    /// An overlay that cannot apply: a path that is not there, a patch of a group or
    /// template that is not declared, a field an overlay cannot change.
    Overlay,
    /// A path `grattr.yaml` configures (`groups`, `lockfile`, `overlays`) leads outside
    /// the repository, or through a symlink that cannot be followed.
    OutsideRepository,
}

impl Rule {
    /// The stable name of the rule.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Io => "io",
            Rule::NotUtf8 => "not-utf8",
            Rule::FileTooLarge => "file-too-large",
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
            Rule::Ownership => "ownership",
            Rule::Template => "template",
            Rule::UnusedTemplate => "unused-template",
            Rule::Unset => "unset",
            Rule::Overlay => "overlay",
            Rule::OutsideRepository => "outside-repository",
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
    /// Other places the problem involves (where a group was first declared).
    pub related: Vec<Related>,
}

/// Another place a [`Diagnostic`] points at, and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub location: SourceLocation,
    /// What is there, as a short label ("first declared here").
    pub label: String,
}

impl Diagnostic {
    /// An error.
    pub fn error(rule: Rule, location: SourceLocation, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            rule,
            location,
            message: message.into(),
            code: None,
            help: None,
            related: Vec::new(),
        }
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

    /// Adds another place the problem involves, with a label that says what is
    /// there ("first declared here"). The terminal form marks it in a snippet; JSON
    /// lists it; the one-line form and the workflow command leave it out (their
    /// message names it when it matters).
    pub fn with_related(mut self, location: SourceLocation, label: impl Into<String>) -> Self {
        self.related.push(Related { location, label: label.into() });
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

    /// Renders the diagnostic for a terminal as rustc and cargo do (with
    /// annotate-snippets): a headline, the source lines with a caret under the
    /// column and the related places marked and labelled, and the hint.
    /// `source` gives a file's text when it is at hand; without it, the place is
    /// named as `path:line:col`. The output is styled; write it through
    /// [`anstream`], which drops the styles where they are not wanted.
    pub fn render_with_sources<'s>(&self, source: impl Fn(&Path) -> Option<&'s str>) -> String {
        let mut text = self.render(annotate_snippets::Renderer::styled(), source);
        text.push('\n');
        text
    }

    fn render<'s>(&self, renderer: annotate_snippets::Renderer, source: impl Fn(&Path) -> Option<&'s str>) -> String {
        use annotate_snippets::{Element, Level, Origin};
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let shown = |at: &SourceLocation| source(&at.file).filter(|text| line_of(text, at.line).is_some());
        let mut elements: Vec<Element<'_>> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        if let Some(text) = shown(&self.location) {
            // One snippet per file, the primary file's first; the related places in
            // it are marked there. A related place whose line is not at hand is a note.
            let mut files: Vec<(&Path, &str, Vec<Mark<'_>>)> =
                vec![(&self.location.file, text, vec![(&self.location, None)])];
            for related in &self.related {
                let mark = (&related.location, Some(related.label.as_str()));
                match files.iter_mut().find(|(file, ..)| *file == &*related.location.file) {
                    Some((_, text, marks)) if line_of(text, related.location.line).is_some() => marks.push(mark),
                    Some(_) => notes.push(related.note()),
                    None => match shown(&related.location) {
                        Some(text) => files.push((&related.location.file, text, vec![mark])),
                        None => notes.push(related.note()),
                    },
                }
            }
            elements.extend(files.into_iter().map(|(file, text, marks)| snippet(file, text, &marks).into()));
        } else {
            let mut origin = Origin::path(crate::escape::path(&self.location.file));
            if self.location.line > 0 {
                origin = origin.line(self.location.line as usize);
                if self.location.column > 0 {
                    origin = origin.char_column(self.location.column as usize);
                }
            }
            elements.push(origin.into());
            notes.extend(self.related.iter().map(Related::note));
        }
        elements.extend(notes.into_iter().map(|note| Level::NOTE.message(note).into()));
        if let Some(help) = self.help() {
            elements.push(Level::HELP.message(help).into());
        }
        let title = level.primary_title(self.headline()).elements(elements);
        renderer.term_width(TERM_WIDTH).render(&[title])
    }
}

/// The width snippets are fitted to: a longer line is shown as a window around
/// the places marked on it.
const TERM_WIDTH: usize = 100;

impl Related {
    /// The related place as a note, where it cannot be shown in a snippet.
    fn note(&self) -> String {
        format!("{}: {}", crate::escape::text(&self.label), crate::escape::text(&self.location.to_string()))
    }
}

/// A place to mark in a snippet, and its label (none for the primary place).
type Mark<'a> = (&'a SourceLocation, Option<&'a str>);

/// Line `line` (from 1) of `text`, if it has one.
fn line_of(text: &str, line: u64) -> Option<&str> {
    text.lines().nth((line as usize).checked_sub(1)?)
}

/// The snippet of `file`: the lines of `text` from the first place marked to the
/// last, made [`inert`], with a caret under the primary place and the related ones
/// underlined and labelled. The renderer folds the lines between distant marks.
/// Every mark's line is in `text`.
fn snippet<'a>(
    file: &Path,
    text: &str,
    marks: &[Mark<'a>],
) -> annotate_snippets::Snippet<'a, annotate_snippets::Annotation<'a>> {
    use annotate_snippets::{AnnotationKind, Snippet};
    let first = marks.iter().map(|(at, _)| at.line).min().unwrap_or(1);
    let last = marks.iter().map(|(at, _)| at.line).max().unwrap_or(1);
    let mut lines: Vec<String> =
        text.lines().skip(first as usize - 1).take((last - first + 1) as usize).map(inert).collect();
    // A place past the end of its line (the parser's, at the line break or after)
    // is reached with spaces, so that the header names its column.
    for (at, _) in marks {
        let line = &mut lines[(at.line - first) as usize];
        let missing = (at.column as usize).saturating_sub(line.chars().count() + 1);
        line.extend(std::iter::repeat_n(' ', missing));
    }
    let mut starts = Vec::with_capacity(lines.len());
    let mut offset = 0;
    for line in &lines {
        starts.push(offset);
        offset += line.len() + 1;
    }
    let annotations = marks.iter().map(|(at, label)| {
        let index = (at.line - first) as usize;
        let span = column_span(&lines[index], at.column);
        let span = starts[index] + span.start..starts[index] + span.end;
        match label {
            None => AnnotationKind::Primary.span(span),
            Some(label) => AnnotationKind::Context.span(span).label(crate::escape::text(label)),
        }
    });
    let annotations: Vec<_> = annotations.collect();
    Snippet::source(lines.join("\n"))
        .line_start(first as usize)
        .path(crate::escape::path(file))
        .fold(true)
        .annotations(annotations)
}

/// The bytes of `line` that a mark at `column` (from 1) covers: the character
/// there, or the end of the line just past it; column 0 (unknown) covers the
/// whole line but its indentation.
fn column_span(line: &str, column: u64) -> std::ops::Range<usize> {
    if column == 0 {
        let start = line.len() - line.trim_start().len();
        return start..line.len();
    }
    match line.char_indices().nth(column as usize - 1) {
        Some((at, c)) => at..at + c.len_utf8(),
        None => line.len()..line.len(),
    }
}

/// `line` with every character that could drive a terminal or reorder what is
/// shown ([`crate::escape::needs_escape`]) replaced by one visible character, so
/// that columns keep their place: a C0 control by its control picture (`␛` for
/// ESC), DEL by `␡`, a C1 control, a line or paragraph separator or a bidi
/// control by `�`. A tab stays (the renderer shows it as spaces).
fn inert(line: &str) -> String {
    line.chars()
        .map(|c| match c {
            '\t' => c,
            '\0'..='\u{1f}' => char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}'),
            '\u{7f}' => '\u{2421}',
            c if crate::escape::needs_escape(c) => '\u{fffd}',
            c => c,
        })
        .collect()
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
/// the rule prevents, or `null`), `help` (or `null`) and `related` (the other places
/// the problem involves: `file`, `line`, `column` and `label` each), all unaltered.
impl serde::Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Diagnostic", 9)?;
        serialize_place(&mut out, &self.location)?;
        out.serialize_field("severity", self.severity_word())?;
        out.serialize_field("rule", self.rule.name())?;
        out.serialize_field("message", &self.message)?;
        out.serialize_field("code", &self.code)?;
        out.serialize_field("help", &self.help)?;
        out.serialize_field("related", &self.related)?;
        out.end()
    }
}

/// A related place in JSON: `file`, `line` and `column` as a diagnostic's (`null`
/// when unknown), and `label`.
impl serde::Serialize for Related {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Related", 4)?;
        serialize_place(&mut out, &self.location)?;
        out.serialize_field("label", &self.label)?;
        out.end()
    }
}

/// The `file`, `line` and `column` fields of a place (`null` when unknown).
fn serialize_place<S: serde::ser::SerializeStruct>(out: &mut S, location: &SourceLocation) -> Result<(), S::Error> {
    let known = |n: u64| (n > 0).then_some(n);
    out.serialize_field("file", &location.file.to_string_lossy())?;
    out.serialize_field("line", &known(location.line))?;
    out.serialize_field("column", &known(location.column).filter(|_| location.line > 0))
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

    /// The terminal form with its styles stripped, `sources` giving the files' text.
    fn terminal(d: &Diagnostic, sources: &[(&str, &str)]) -> String {
        let styled =
            d.render_with_sources(|file| sources.iter().find(|(path, _)| Path::new(path) == file).map(|s| s.1));
        anstream::adapter::strip_str(&styled).to_string()
    }

    /// The terminal form rendered without styles, as the renderer writes it.
    fn unstyled(d: &Diagnostic, source: &str) -> String {
        d.render(annotate_snippets::Renderer::plain(), |_| Some(source))
    }

    /// The column (in characters, from 0) of the caret under the source line.
    fn caret_under(out: &str, source_line: &str) -> (usize, usize) {
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| l.ends_with(source_line) || l.contains(source_line)).unwrap();
        let caret = lines[at + 1].chars().position(|c| c == '^').unwrap();
        (at, caret)
    }

    fn place(file: &str, line: u64, column: u64) -> SourceLocation {
        SourceLocation { file: Arc::from(Path::new(file)), line, column }
    }

    #[test]
    fn snippet_points_at_the_column() {
        let source = "groups:\n  - id: lobby\n    attributes:\n      banner: ~\n";
        let d = Diagnostic::error(Rule::NullValue, at(4, 15), "value of key \"banner\" is null")
            .with_help("quote it: banner: \"~\"");
        insta::assert_snapshot!(terminal(&d, &[("groups/lobby.yaml", source)]), @r#"
        error: value of key "banner" is null
         --> groups/lobby.yaml:4:15
          |
        4 |       banner: ~
          |               ^
          |
          = help: quote it: banner: "~"
        "#);
    }

    #[test]
    fn snippet_of_a_long_line_is_windowed() {
        let line = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let d = Diagnostic::error(Rule::ValueTooLong, at(1, 301), "long");
        let out = terminal(&d, &[("groups/lobby.yaml", &line)]);
        let lines: Vec<&str> = out.lines().collect();
        let shown = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        assert!(shown.chars().count() <= TERM_WIDTH, "{shown}");
        assert!(shown.starts_with("1 | ...a") && shown.ends_with("b..."), "{shown}");
        let x = shown.chars().position(|c| c == 'X').unwrap();
        let (_, caret) = caret_under(&out, shown);
        assert_eq!(caret, x);
        assert!(out.contains("--> groups/lobby.yaml:1:301"));
    }

    #[test]
    fn a_hostile_line_is_shown_inert_with_the_caret_in_place() {
        let line = "k: \"a\u{1b}[31mb\u{9b}2J\u{202e}c\u{85}d\u{2028}e\u{7f}\rf\u{0}g\tZ\"";
        let column = line.chars().position(|c| c == 'Z').unwrap() as u64 + 1;
        let d = Diagnostic::error(Rule::ValueTooLong, at(1, column), "long");
        let out = unstyled(&d, line);
        assert!(out.chars().all(|c| c == '\n' || !crate::escape::needs_escape(c)), "{out:?}");
        assert!(out.contains("a␛[31mb�2J�c�d�e␡␍f␀g"), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        let shown = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        let (_, caret) = caret_under(&out, shown);
        assert_eq!(shown.chars().nth(caret), Some('Z'), "{out}");
        assert!(out.contains(&format!("--> groups/lobby.yaml:1:{column}")), "{out}");
        // Styled, every escape sequence is one of the renderer's own styles.
        let styled = d.render_with_sources(|_| Some(line));
        let stripped = anstream::adapter::strip_str(&styled).to_string();
        assert_eq!(stripped.trim_end(), out.trim_end());
        assert!(!styled.contains('\u{9b}') && !styled.contains('\u{202e}') && !styled.contains('\r'));
    }

    #[test]
    fn places_at_and_past_the_end_of_a_line_and_whole_lines() {
        let past = Diagnostic::error(Rule::YamlSyntax, at(1, 9), "past the end");
        // The line is shown with the two spaces that reach the column (trimmed here).
        let shown = unstyled(&past, "k: abc\n");
        insta::assert_snapshot!(shown.lines().map(str::trim_end).collect::<Vec<_>>().join("\n"), @r"
        error: past the end
         --> groups/lobby.yaml:1:9
          |
        1 | k: abc
          |         ^
        ");
        let line = Diagnostic::error(Rule::Config, at(2, 0), "the whole line").with_related(at(1, 7), "at the end");
        insta::assert_snapshot!(unstyled(&line, "k: abc\n  wide: 中文 x\n"), @r"
        error: the whole line
         --> groups/lobby.yaml:2:3
          |
        1 | k: abc
          |       - at the end
        2 |   wide: 中文 x
          |   ^^^^^^^^^^^^
        ");
    }

    #[test]
    fn inert_replaces_one_for_one() {
        assert_eq!(inert("a\u{1b}[31m"), "a␛[31m");
        assert_eq!(inert("a\u{202e}b\u{85}c\u{61c}d\u{2069}"), "a�b�c�d�");
        assert_eq!(inert("\u{0}\u{1f}\u{7f}\t"), "␀␟␡\t");
        assert_eq!(inert(""), "");
    }

    #[test]
    fn a_related_place_in_the_same_file_is_marked_in_the_snippet() {
        let source = "groups:\n  - id: lobby\n    attributes: {}\n  - id: lobby\n";
        let d = Diagnostic::error(
            Rule::DuplicateGroup,
            at(4, 9),
            "group \"lobby\" is declared twice: here and at groups/lobby.yaml:2:9",
        )
        .with_related(at(2, 9), "first declared here");
        insta::assert_snapshot!(terminal(&d, &[("groups/lobby.yaml", source)]), @r#"
        error: group "lobby" is declared twice: here and at groups/lobby.yaml:2:9
         --> groups/lobby.yaml:4:9
          |
        2 |   - id: lobby
          |         - first declared here
        3 |     attributes: {}
        4 |   - id: lobby
          |         ^
        "#);
    }

    #[test]
    fn lines_between_distant_places_are_folded() {
        let source = format!("groups:\n  - id: lobby\n{}  - id: lobby\n", "    # filler\n".repeat(40));
        let d = Diagnostic::error(Rule::DuplicateGroup, at(43, 9), "declared twice")
            .with_related(at(2, 9), "first declared here");
        insta::assert_snapshot!(terminal(&d, &[("groups/lobby.yaml", &source)]), @r#"
        error: declared twice
          --> groups/lobby.yaml:43:9
           |
         2 |   - id: lobby
           |         - first declared here
        ...
        43 |   - id: lobby
           |         ^
        "#);
    }

    #[test]
    fn a_related_place_in_another_file_has_a_snippet_of_its_own() {
        let d = Diagnostic::error(Rule::DuplicateGroup, place("groups/b.yaml", 2, 9), "declared twice")
            .with_related(place("groups/a.yaml", 5, 9), "first declared here")
            .with_help("remove one");
        let sources = [
            ("groups/a.yaml", "groups:\n  - id: other\n\n\n  - id: lobby\n"),
            ("groups/b.yaml", "groups:\n  - id: lobby\n"),
        ];
        insta::assert_snapshot!(terminal(&d, &sources), @r#"
        error: declared twice
         --> groups/b.yaml:2:9
          |
        2 |   - id: lobby
          |         ^
          |
         ::: groups/a.yaml:5:9
          |
        5 |   - id: lobby
          |         - first declared here
          |
          = help: remove one
        "#);
    }

    #[test]
    fn a_related_place_not_at_hand_is_a_note() {
        let d = Diagnostic::error(Rule::DuplicateGroup, place("groups/b.yaml", 2, 9), "declared twice")
            .with_related(place("groups/a\u{1b}.yaml", 5, 9), "first declared here")
            .with_related(place("groups/b.yaml", 99, 1), "beyond the end");
        insta::assert_snapshot!(terminal(&d, &[("groups/b.yaml", "groups:\n  - id: lobby\n")]), @r#"
        error: declared twice
         --> groups/b.yaml:2:9
          |
        2 |   - id: lobby
          |         ^
          |
          = note: first declared here: groups/a\u001b.yaml:5:9
          = note: beyond the end: groups/b.yaml:99:1
        "#);
        insta::assert_snapshot!(terminal(&d, &[]), @r#"
        error: declared twice
        --> groups/b.yaml:2:9
         = note: first declared here: groups/a\u001b.yaml:5:9
         = note: beyond the end: groups/b.yaml:99:1
        "#);
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
                "rule": "key-too-long", "message": "key \"a\u{1b}\n\" is long", "code": 10045, "help": null, "related": []})
        );
    }

    #[test]
    fn json_form_lists_the_related_places_and_the_one_line_form_leaves_them_out() {
        let d = Diagnostic::error(Rule::DuplicateGroup, at(4, 9), "declared twice")
            .with_related(place("groups/a\u{1b}.yaml", 2, 9), "first declared here")
            .with_related(place("groups/b.yaml", 0, 0), "and here");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json["related"],
            serde_json::json!([
                {"file": "groups/a\u{1b}.yaml", "line": 2, "column": 9, "label": "first declared here"},
                {"file": "groups/b.yaml", "line": null, "column": null, "label": "and here"},
            ])
        );
        assert_eq!(d.to_string(), "groups/lobby.yaml:4:9: error: declared twice");
        assert_eq!(
            d.github_command(),
            "::error file=groups/lobby.yaml,line=4,col=9,title=duplicate-group::declared twice"
        );
    }

    #[test]
    fn file_names_and_messages_are_written_as_plain_text() {
        let location = SourceLocation { file: Arc::from(Path::new("groups/a\n# x\u{202e}.yaml")), line: 2, column: 3 };
        let d = Diagnostic::error(Rule::UnknownField, location, "unknown field `a\u{9b}b`").with_help("x\ny");
        assert_eq!(d.to_string(), "groups/a\\n# x\\u202e.yaml:2:3: error: unknown field `a\\u009bb`\n  help: x\\ny");
        let plain = terminal(&d, &[]);
        assert_eq!(plain, "error: unknown field `a\\u009bb`\n--> groups/a\\n# x\\u202e.yaml:2:3\n = help: x\\ny\n");
    }
}

//! The fast path of reading a group file: the shape nearly every group file has
//! (`groups:`, a block sequence of entries: `id` (one group) or `ids` (a set), with
//! `attributes`, or with `template` and `attributes` or none, and perhaps `unset`;
//! perhaps with `ownership`; attribute values as plain, quoted or literal block
//! scalars; `ids` and `unset` as a one-line flow sequence or a block sequence of
//! scalars) read in one pass over the text, straight into the model, without a YAML
//! event stream in between. That is every shape `grattr import` writes, with
//! `--template` and `--sets` too.
//!
//! It reads only what it can read exactly as the YAML parser does, and only files
//! with nothing to report: at the first thing it does not know for certain (a tag,
//! an anchor, a flow mapping, a flow sequence spanning lines or holding anything but
//! simple scalars, an empty sequence, a multi-line quoted scalar, a tab anywhere but
//! in a comment, a carriage return, `templates:`, a problem of any kind) it gives
//! up, and the file is read
//! again by the full parser, which finds and words every diagnostic (see
//! [`super::groups::parse_file`]). So a file read here is one the full reader would
//! read to the same groups, declarations, templated entries and template uses, with
//! the same locations, and no diagnostic.

use super::groups::FileGroups;
use super::templates::{Places, Templated};
use crate::model::limits;
use crate::model::{AttributeSet, DesiredGroup, GroupId, OriginKind, Origins, Ownership, SourceLocation};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

/// Gives up on the fast path: the full parser reads the file.
#[derive(Debug)]
struct Unsure;

/// A group's attributes, the line and column of each key (in key order), and the
/// line and column where the parser places the mapping (its first key, or the `{`
/// of `{}`).
type Attributes = (AttributeSet, Box<[(u32, u32)]>, (u64, u64));

type Read<T> = Result<T, Unsure>;

/// A scalar's value, and the line and column where it is written.
type Scalar = (String, u64, u64);

/// The longest implicit key YAML allows, in characters (counted here in bytes, which
/// is stricter).
const MAX_IMPLICIT_KEY: usize = 1024;

/// Reads `text` (the file `file`) if it has the common shape and nothing to report.
pub(super) fn parse(file: &Arc<Path>, text: &str) -> Option<FileGroups> {
    if text.len() > limits::MAX_GROUP_FILE_BYTES || !plain_characters(text) {
        return None;
    }
    let tabs = memchr::memchr(b'\t', text.as_bytes()).is_some();
    let mut reader = Reader {
        file,
        text: text.as_bytes(),
        source: text,
        pos: 0,
        line: 0,
        out: FileGroups::default(),
        comments: tabs.then(RefCell::default),
    };
    reader.file().ok()?;
    if tabs && !reader.tabs_only_in_comments() {
        return None;
    }
    Some(reader.out)
}

/// Whether `text` holds only characters the fast path reads as they are: printable
/// ASCII and line feeds, and printable non-ASCII characters other than the ones YAML
/// parsers disagree on (NEL, the line and paragraph separators, the byte order mark).
/// Carriage returns are left to the full parser; tabs too, but in comments (which
/// [`Reader::tabs_only_in_comments`] checks once the file is read).
fn plain_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    let odd = bytes
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |odd, &b| odd | ((b < 0x20 && b != b'\n' && b != b'\t') | (b >= 0x7f))));
    !odd || text.chars().all(|c| match c {
        '\n' | '\t' | ' '..='~' => true,
        '\u{0}'..='\u{a0}' => c == '\u{a0}',
        '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    })
}

/// A line with content: where it starts and how far it is indented.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// Byte offset of the line's first character.
    start: usize,
    /// Spaces before its first other character.
    indent: usize,
    /// The offset of its line feed, or the end of the text.
    end: usize,
    /// The line's number, from 1.
    number: u64,
}

struct Reader<'a> {
    file: &'a Arc<Path>,
    text: &'a [u8],
    source: &'a str,
    /// The start of the next line to read.
    pos: usize,
    /// The number of the line before `pos`.
    line: u64,
    out: FileGroups,
    /// Where each comment it skipped starts (its `#`), when the text has a tab: a tab
    /// is read only in a comment, where it changes nothing.
    comments: Option<RefCell<Vec<usize>>>,
}

impl Reader<'_> {
    /// Notes that a comment starts at `at` (its `#`), when tabs are to be checked.
    fn comment_at(&self, at: usize) {
        if let Some(comments) = &self.comments {
            comments.borrow_mut().push(at);
        }
    }

    /// Whether every tab of the text is in a comment the reader skipped: after a
    /// comment's `#`, on its line. A tab anywhere else (in a scalar, in indentation,
    /// as a separator, before a `#`) is the full parser's.
    fn tabs_only_in_comments(&self) -> bool {
        let Some(comments) = &self.comments else { return true };
        let mut comments = comments.borrow_mut();
        comments.sort_unstable();
        comments.dedup();
        memchr::memchr_iter(b'\t', self.text).all(|tab| {
            let before = comments.partition_point(|&at| at < tab);
            before > 0 && memchr::memchr(b'\n', &self.text[comments[before - 1]..tab]).is_none()
        })
    }

    /// Whether the rest of a line (`rest`, a part of the text) is only spaces, then
    /// perhaps a comment; notes the comment.
    fn rest_is_empty(&self, rest: &[u8]) -> bool {
        let after = spaces(rest);
        let empty = after == rest.len() || (after > 0 && rest[after] == b'#');
        if empty && after < rest.len() {
            self.comment_at(self.offset(rest) + after);
        }
        empty
    }

    /// Whether the rest of a line after `attributes:` is ` {}`, then perhaps a comment.
    fn rest_is_empty_flow_mapping(&self, rest: &[u8]) -> bool {
        let after = spaces(rest);
        after > 0 && rest[after..].starts_with(b"{}") && self.rest_is_empty(&rest[after + 2..])
    }

    /// The offset of `part`, a part of the text.
    fn offset(&self, part: &[u8]) -> usize {
        (part.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize)
    }

    /// The end of the line starting at `start` (the offset of its line feed, or of
    /// the end of the text).
    fn line_end(&self, start: usize) -> usize {
        memchr::memchr(b'\n', &self.text[start..]).map_or(self.text.len(), |n| start + n)
    }

    /// The next line that is neither blank nor a comment, consumed; `None` at the end.
    fn next_line(&mut self) -> Option<Line> {
        while self.pos < self.text.len() {
            let start = self.pos;
            let end = self.line_end(start);
            let indent = spaces(&self.text[start..end]);
            self.pos = (end + 1).min(self.text.len());
            self.line += 1;
            match self.text.get(start + indent) {
                None | Some(b'\n') => continue,
                Some(b'#') => self.comment_at(start + indent),
                Some(_) => return Some(Line { start, indent, end, number: self.line }),
            }
        }
        None
    }

    /// The text of `line` after its indentation, to its end.
    fn content(&self, line: Line) -> &[u8] {
        &self.text[line.start + line.indent..line.end]
    }

    /// The whole file: `groups:` and its sequence of groups, and nothing else (but a
    /// `---` before and a `...` after).
    fn file(&mut self) -> Read<()> {
        let mut top = self.next_line().ok_or(Unsure)?;
        if self.marker(top, b"---") {
            top = self.next_line().ok_or(Unsure)?;
        }
        let rest = self.content(top).strip_prefix(b"groups:").ok_or(Unsure)?;
        if top.indent != 0 || !self.rest_is_empty(rest) {
            return Err(Unsure);
        }
        let mut line = self.next_line().ok_or(Unsure)?;
        let sequence = line.indent;
        loop {
            match self.group(line)? {
                None => return Ok(()),
                Some(end) if self.marker(end, b"...") => {
                    return if self.next_line().is_none() { Ok(()) } else { Err(Unsure) };
                }
                Some(next) if next.indent == sequence => line = next,
                Some(_) => return Err(Unsure),
            }
        }
    }

    /// Whether `line` is the document marker `marker` (`---`, `...`) alone.
    fn marker(&self, line: Line, marker: &[u8]) -> bool {
        line.indent == 0 && self.content(line).strip_prefix(marker).is_some_and(|rest| self.rest_is_empty(rest))
    }

    /// One entry of `groups:`, starting at its `- ` line; returns the next line. An
    /// entry is `id:` (one group) or `ids:` (a set), with `attributes:`, or with
    /// `template:` (and perhaps `attributes:` and `unset:`), perhaps with `ownership:`,
    /// in any order.
    fn group(&mut self, line: Line) -> Read<Option<Line>> {
        let dash = self.content(line).strip_prefix(b"- ").ok_or(Unsure)?;
        let fields = line.indent + 2 + spaces(dash);
        // Where the parser places the entry's mapping: its first key.
        let entry_at = (line.number, fields as u64 + 1);
        let mut line = line;
        let (mut id, mut ids, mut attributes, mut ownership, mut template, mut unset) =
            (None, None, None, None, None, None);
        let next = loop {
            let content = &self.text[line.start + fields..line.end];
            // A field given twice is the parser's to report.
            let next = if let Some(rest) = content.strip_prefix(b"id:") {
                once(&mut id, self.field_value(line, fields + 3, rest)?)?;
                self.next_line()
            } else if let Some(rest) = content.strip_prefix(b"ids:") {
                let (list, next) = self.sequence(line, fields, fields + 4, rest)?;
                once(&mut ids, list)?;
                next
            } else if let Some(rest) = content.strip_prefix(b"template:") {
                once(&mut template, self.field_value(line, fields + 9, rest)?)?;
                self.next_line()
            } else if let Some(rest) = content.strip_prefix(b"unset:") {
                let (list, next) = self.sequence(line, fields, fields + 6, rest)?;
                once(&mut unset, list)?;
                next
            } else if let Some(rest) = content.strip_prefix(b"ownership:") {
                // Only the two words, plain and alone on the line; anything else is the full parser's.
                let word = match rest {
                    b" keys" => Ownership::Keys,
                    b" group" => Ownership::Group,
                    _ => return Err(Unsure),
                };
                once(&mut ownership, word)?;
                self.next_line()
            } else if let Some(rest) = content.strip_prefix(b"attributes:") {
                let (set, next) = match self.rest_is_empty(rest) {
                    true => self.attributes(fields)?,
                    false if self.rest_is_empty_flow_mapping(rest) => {
                        // The parser places an empty flow mapping at its `{`.
                        let brace = fields + "attributes:".len() + spaces(rest);
                        let at = (line.number, brace as u64 + 1);
                        ((AttributeSet::new(), Box::default(), at), self.next_line())
                    }
                    false => return Err(Unsure),
                };
                once(&mut attributes, set)?;
                next
            } else {
                return Err(Unsure);
            };
            match next {
                Some(next) if next.indent == fields => line = next,
                Some(next) if next.indent > fields => return Err(Unsure),
                next => break next,
            }
        };
        let at = |(line, column): (u64, u64)| SourceLocation { file: self.file.clone(), line, column };
        // One id, or a set of them (`ids:`), each where it is written; both, or neither, is an error.
        let (ids, kind) = match (id, ids) {
            (Some((id, line, column)), None) => (vec![(id, line, column)], OriginKind::Group),
            (None, Some(ids)) => (ids, OriginKind::Set),
            _ => return Err(Unsure),
        };
        // Exactly as long as the list: an entry's ids are kept with it (collecting a `Result`
        // would not know the length, and take room for four).
        let mut parsed = Vec::with_capacity(ids.len());
        for (id, line, column) in ids {
            parsed.push((GroupId::parse(&id).map_err(|_| Unsure)?, at((line, column))));
        }
        let ids = parsed;
        // The entry's own attributes and ownership, placed at its first id.
        let declaration = |attributes, at| DesiredGroup {
            attributes,
            source: ids[0].1.clone(),
            ownership: ownership.unwrap_or_default(),
            ownership_written: ownership.is_some(),
            origins: Origins::Own { kind, at },
        };
        let Some((name, name_line, name_column)) = template else {
            // `unset:` without a template is an error.
            let (None, Some((attributes, key_at, _))) = (unset, attributes) else { return Err(Unsure) };
            if !limits::check(&attributes).is_empty() {
                return Err(Unsure);
            }
            let group = declaration(attributes, key_at);
            self.out.declared.extend(ids.iter().cloned());
            self.out.groups.reserve(ids.len());
            for (id, id_at) in ids {
                self.out.groups.push((id, DesiredGroup { source: id_at, ..group.clone() }));
            }
            return Ok(next);
        };
        // An empty name is an error once resolved (no template has it): the parser's to word.
        if name.is_empty() {
            return Err(Unsure);
        }
        let unset = unset.unwrap_or_default();
        // A key unset twice (the second finds nothing to remove, a warning once resolved)
        // is left to the parser. A key both set and unset is read as the parser reads it:
        // the error is resolution's, which follows either reading.
        let mut keys: Vec<&str> = unset.iter().map(|(key, ..)| key.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(Unsure);
        }
        // Without `attributes:` the parser places them at the entry.
        let (attributes, key_at, attributes_at) =
            attributes.unwrap_or_else(|| (AttributeSet::new(), Box::default(), entry_at));
        // At its declaration only a key's own limits are checked; the totals once resolved.
        if limits::check(&attributes).iter().any(|violation| violation.key().is_some()) {
            return Err(Unsure);
        }
        let places: Places = attributes
            .keys()
            .zip(&key_at)
            .map(|(key, &(line, column))| (key, at((line.into(), column.into()))))
            .collect();
        let template_at = at((name_line, name_column));
        self.out.uses.push((name.clone(), template_at.clone()));
        let group = declaration(attributes, key_at);
        self.out.declared.extend(ids.iter().cloned());
        self.out.templated.push(Templated {
            ids,
            group,
            template: name,
            template_at,
            unset: unset.into_iter().map(|(key, line, column)| (key, at((line, column)))).collect(),
            places,
            attributes_at: at(attributes_at),
        });
        Ok(next)
    }

    /// The sequence of scalars a field (`ids:`, `unset:`) on `line`, indented by
    /// `fields`, holds: its `:` ends at column `after_colon` (from 0, past the
    /// indentation) and is followed by `rest`, which is a one-line flow sequence or
    /// nothing (then a block sequence follows). Returns each item with its line and
    /// column, and the line after the sequence. An empty sequence is the parser's.
    fn sequence(
        &mut self,
        line: Line,
        fields: usize,
        after_colon: usize,
        rest: &[u8],
    ) -> Read<(Vec<Scalar>, Option<Line>)> {
        if self.rest_is_empty(rest) {
            return self.block_sequence(fields);
        }
        let open = after_colon + spaces(rest);
        if open == after_colon || self.text.get(line.start + open) != Some(&b'[') {
            return Err(Unsure);
        }
        let items = self.flow_sequence(line, line.start + open)?;
        Ok((items, self.next_line()))
    }

    /// A flow sequence of scalars that opens at `open` (its `[`) and closes on `line`:
    /// `[a, "b", 'c']`, then only spaces and a comment. Plain scalars here hold none of
    /// the characters that mean something in a flow collection (`,[]{}#:`) nor quotes.
    fn flow_sequence(&self, line: Line, open: usize) -> Read<Vec<Scalar>> {
        let end = line.end;
        let mut items = Vec::new();
        let mut at = open + 1 + spaces(&self.text[open + 1..end]);
        loop {
            let (value, after) = match self.text.get(at).filter(|_| at < end) {
                Some(b'"' | b'\'') => self.quoted(at, end)?,
                _ => {
                    let stop = memchr::memchr2(b',', b']', &self.text[at..end]).ok_or(Unsure)?;
                    let text = self.source[at..at + stop].trim_end_matches(' ');
                    if text.bytes().any(|b| b"[]{}#:\"'".contains(&b)) {
                        return Err(Unsure);
                    }
                    (plain(text)?.to_string(), at + text.len())
                }
            };
            // Columns count characters: an item may follow text that is not ASCII.
            let column = self.source[line.start..at].chars().count() as u64 + 1;
            items.push((value, line.number, column));
            let after = after + spaces(&self.text[after..end]);
            match self.text.get(after).filter(|_| after < end) {
                Some(b',') if self.text.get(after + 1) == Some(&b' ') && after + 1 < end => {
                    at = after + 1 + spaces(&self.text[after + 1..end]);
                }
                Some(b']') if self.rest_is_empty(&self.text[after + 1..end]) => return Ok(items),
                _ => return Err(Unsure),
            }
        }
    }

    /// The block sequence of scalars below a key indented by `parent` (deeper than it:
    /// the parser also takes one at the key's own indentation, which is left to it),
    /// one `- ` item a line; returns each item with its line and column, and the line
    /// after the sequence.
    fn block_sequence(&mut self, parent: usize) -> Read<(Vec<Scalar>, Option<Line>)> {
        let mut line = self.next_line().ok_or(Unsure)?;
        let indent = line.indent;
        if indent <= parent {
            return Err(Unsure);
        }
        let mut items = Vec::new();
        loop {
            let rest = self.content(line).strip_prefix(b"- ").ok_or(Unsure)?;
            let column = indent + 2 + spaces(rest);
            items.push((self.scalar(line.start + column, line.end)?, line.number, column as u64 + 1));
            match self.next_line() {
                Some(next) if next.indent == indent => line = next,
                Some(next) if next.indent > indent => return Err(Unsure),
                next => return Ok((items, next)),
            }
        }
    }

    /// The scalar value of a field of a group (`id:`, `template:`) on `line`, whose
    /// `:` ends at column `after_colon` (from 0, past the indentation) and is followed by
    /// `rest`; returns it with its line and column.
    fn field_value(&self, line: Line, after_colon: usize, rest: &[u8]) -> Read<Scalar> {
        if !rest.is_empty() && rest[0] != b' ' {
            return Err(Unsure);
        }
        let column = after_colon + spaces(rest);
        let value = self.scalar(line.start + column, line.end)?;
        Ok((value, line.number, column as u64 + 1))
    }

    /// The block mapping of a group's attributes, below a key indented by `parent`;
    /// returns it with the line and column of each key (in key order), and the line after it.
    fn attributes(&mut self, parent: usize) -> Read<(Attributes, Option<Line>)> {
        let mut line = self.next_line().ok_or(Unsure)?;
        let indent = line.indent;
        if indent <= parent {
            return Err(Unsure);
        }
        let first = (line.number, indent as u64 + 1);
        let mut entries = Vec::new();
        loop {
            let (key, after) = self.key(line.start + indent, line.end)?;
            let value_at = after + spaces(&self.text[after..line.end]);
            let (value, next) = match self.text.get(value_at) {
                Some(b'|') => self.literal(value_at, line.end, indent)?,
                _ => (self.scalar(value_at, line.end)?, self.next_line()),
            };
            let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            entries.push((key, value, (clamp(line.number), clamp(indent as u64 + 1))));
            match next {
                Some(next) if next.indent == indent => line = next,
                Some(next) if next.indent > indent => return Err(Unsure),
                next => {
                    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    // A repeated key is an error the full parser reports.
                    if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
                        return Err(Unsure);
                    }
                    let at = entries.iter().map(|entry| entry.2).collect();
                    let set = entries.iter().map(|(key, value, _)| (key.as_str(), value.as_str())).collect();
                    return Ok(((set, at, first), next));
                }
            }
        }
    }

    /// An implicit key at `at` (on a line ending at `end`) and the `:` after it
    /// (followed by a space or the end of the line); returns the key and the offset
    /// after the `:`.
    fn key(&self, at: usize, end: usize) -> Read<(String, usize)> {
        let (key, colon) = match self.text[at] {
            b'"' | b'\'' => self.quoted(at, end)?,
            _ => {
                let line = &self.text[at..end];
                let colon = memchr::memchr_iter(b':', line)
                    .find(|&i| line.get(i + 1).is_none_or(|&b| b == b' '))
                    .ok_or(Unsure)?;
                let key = plain(&self.source[at..at + colon])?;
                if key.ends_with(' ') {
                    return Err(Unsure);
                }
                (key.to_string(), at + colon)
            }
        };
        let after_colon = colon + 1;
        // `<<` merges a mapping into this one.
        let valid = key != "<<"
            && self.text.get(colon) == Some(&b':')
            && self.text.get(after_colon).is_none_or(|&b| b == b' ' || b == b'\n')
            && colon - at <= MAX_IMPLICIT_KEY;
        if !valid {
            return Err(Unsure);
        }
        Ok((key, after_colon))
    }

    /// A scalar value at `at` that ends on its line (ending at `end`): plain, single-
    /// or double-quoted, followed only by spaces and a comment.
    fn scalar(&self, at: usize, end: usize) -> Read<String> {
        match self.text.get(at) {
            Some(b'"' | b'\'') => {
                let (value, close) = self.quoted(at, end)?;
                if !self.rest_is_empty(&self.text[close..end]) {
                    return Err(Unsure);
                }
                Ok(value)
            }
            _ => {
                let line = &self.source[at..end];
                // A comment starts at ` #`; trailing spaces are not part of the scalar.
                let text = match comment(line.as_bytes()) {
                    Some(comment) => {
                        self.comment_at(at + comment + 1);
                        &line[..comment]
                    }
                    None => line,
                };
                let text = text.trim_end_matches(' ');
                let colon =
                    memchr::memchr_iter(b':', text.as_bytes()).any(|i| text.as_bytes().get(i + 1) == Some(&b' '));
                if colon || text.ends_with(':') {
                    return Err(Unsure);
                }
                plain(text).map(str::to_string)
            }
        }
    }

    /// A single- or double-quoted scalar at `at` that closes on its line (ending at
    /// `end`); returns its value and the offset after the closing quote.
    fn quoted(&self, at: usize, end: usize) -> Read<(String, usize)> {
        let quote = self.text[at];
        let mut value = String::new();
        let mut run = at + 1;
        let mut i = at + 1;
        while i < end {
            match self.text[i] {
                b'\'' if quote == b'\'' => {
                    value.push_str(&self.source[run..i]);
                    if self.text.get(i + 1) == Some(&b'\'') {
                        value.push('\'');
                        i += 2;
                        run = i;
                        continue;
                    }
                    return Ok((value, i + 1));
                }
                b'"' if quote == b'"' => {
                    value.push_str(&self.source[run..i]);
                    return Ok((value, i + 1));
                }
                b'\\' if quote == b'"' => {
                    value.push_str(&self.source[run..i]);
                    i = self.escape(i, end, &mut value)?;
                    run = i;
                }
                _ => i += 1,
            }
        }
        // The scalar goes on past the line (or the file): the full parser folds it.
        Err(Unsure)
    }

    /// The escape sequence at `at` (its `\`) in a double-quoted scalar, pushed onto
    /// `value`; returns the offset after it. An escaped line break is left to the full
    /// parser, and so is anything it would refuse.
    fn escape(&self, at: usize, end: usize, value: &mut String) -> Read<usize> {
        let code = *self.text.get(at + 1).filter(|_| at + 1 < end).ok_or(Unsure)?;
        let simple = match code {
            b'0' => '\0',
            b'a' => '\x07',
            b'b' => '\x08',
            b't' => '\t',
            b'n' => '\n',
            b'v' => '\x0b',
            b'f' => '\x0c',
            b'r' => '\r',
            b'e' => '\x1b',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' | b'u' | b'U' => {
                let digits = match code {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = |from: usize| -> Read<u32> {
                    let text = self.source.get(from..from + digits).filter(|_| from + digits <= end).ok_or(Unsure)?;
                    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(Unsure);
                    }
                    u32::from_str_radix(text, 16).map_err(|_| Unsure)
                };
                let mut code = hex(at + 2)?;
                let mut next = at + 2 + digits;
                // A JSON-style surrogate pair: `\ud83d\ude00`.
                if digits == 4 && (0xD800..=0xDBFF).contains(&code) {
                    if self.text.get(next..next + 2) != Some(b"\\u") {
                        return Err(Unsure);
                    }
                    let low = hex(next + 2)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return Err(Unsure);
                    }
                    code = 0x10000 + (((code - 0xD800) << 10) | (low - 0xDC00));
                    next += 6;
                }
                value.push(char::from_u32(code).ok_or(Unsure)?);
                return Ok(next);
            }
            _ => return Err(Unsure),
        };
        value.push(simple);
        Ok(at + 2)
    }

    /// A literal block scalar (`|`, `|-`, `|+`) whose header is at `at` (on a line
    /// ending at `end`), the value of a key indented by `parent`; returns its value and
    /// the line after it.
    fn literal(&mut self, at: usize, end: usize, parent: usize) -> Read<(String, Option<Line>)> {
        let header = &self.text[at + 1..end];
        let (chomp, rest) = match header.first() {
            Some(&c @ (b'-' | b'+')) => (c, &header[1..]),
            _ => (b' ', header),
        };
        if !self.rest_is_empty(rest) {
            return Err(Unsure);
        }
        // Content lines: the first that is not blank sets the indentation.
        let mut lines: Vec<(usize, usize)> = Vec::new();
        let mut indent = None;
        let mut pos = self.pos;
        while pos < self.text.len() {
            let end = self.line_end(pos);
            let spaces = spaces(&self.text[pos..end]);
            let blank = pos + spaces == end;
            match indent {
                None if blank => {}
                None if spaces <= parent => break,
                None => indent = Some(spaces),
                Some(indent) if !blank && spaces < indent => break,
                Some(_) => {}
            }
            if end == self.text.len() {
                // The last line has no line feed: left to the full parser.
                return Err(Unsure);
            }
            lines.push((pos, end));
            pos = end + 1;
        }
        let indent = indent.ok_or(Unsure)?;
        let mut value = String::new();
        let mut breaks = 0;
        for (start, end) in lines {
            if end - start > indent {
                if self.text[start..end].iter().all(|&b| b == b' ') {
                    // A line of spaces beyond the indentation: left to the full parser.
                    return Err(Unsure);
                }
                value.extend(std::iter::repeat_n('\n', breaks));
                value.push_str(&self.source[start + indent..end]);
                breaks = 1;
            } else {
                breaks += 1;
            }
            self.pos = end + 1;
            self.line += 1;
        }
        // The line of the header itself was consumed already.
        match chomp {
            b'-' => {}
            b'+' => value.extend(std::iter::repeat_n('\n', breaks)),
            _ => value.push('\n'),
        }
        Ok((value, self.next_line()))
    }
}

/// Where a comment (` #`) starts in `text`, if it has one after its first character.
fn comment(text: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'#', text).find(|&i| i > 0 && text[i - 1] == b' ').map(|i| i - 1)
}

/// The number of spaces `text` starts with.
fn spaces(text: &[u8]) -> usize {
    text.iter().take_while(|&&b| b == b' ').count()
}

/// Fills a field's `slot` with `value`; gives up when the field was given before.
fn once<T>(slot: &mut Option<T>, value: T) -> Read<()> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(Unsure),
    }
}

/// A plain scalar on one line, checked: it must start with a character that starts
/// a plain scalar (no indicator) and must not read as null.
fn plain(text: &str) -> Read<&str> {
    let bytes = text.as_bytes();
    let first_ok = match bytes.first() {
        None => false,
        Some(b'-') => bytes.get(1).is_some_and(|&b| b != b' '),
        Some(b) => !b"?:,[]{}#&*!|>'\"%@`-".contains(b),
    };
    let null = matches!(text, "~" | "null" | "Null" | "NULL");
    if !first_ok || null || comment(bytes).is_some() {
        return Err(Unsure);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::super::groups::parse_yaml;
    use super::*;
    use proptest::prelude::*;

    /// Reads `text` both ways: when the fast path reads it, the YAML parser must read
    /// the same of it, field by field of [`FileGroups`] (groups, declarations, templated
    /// entries with their ids, `unset:` and places, template uses), and find nothing to
    /// report. Returns what the fast path read.
    fn read_both(text: &str) -> Option<FileGroups> {
        let file: Arc<Path> = Arc::from(Path::new("g.yaml"));
        let full = parse_yaml(file.clone(), text);
        let fast = parse(&file, text)?;
        // Every field, so that a field added to `FileGroups` is compared too.
        let FileGroups { groups, declared, diagnostics, templates, templated, uses } = &fast;
        let errors: Vec<String> = full.diagnostics.iter().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "the fast path read a file with problems:\n{text}\n{errors:#?}");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(groups, &full.groups, "groups of\n{text}");
        assert_eq!(declared, &full.declared, "declarations of\n{text}");
        assert_eq!(templated, &full.templated, "templated entries of\n{text}");
        assert_eq!(uses, &full.uses, "template uses of\n{text}");
        assert_eq!(templates, &full.templates, "templates of\n{text}");
        Some(fast)
    }

    /// [`read_both`]: whether the fast path read `text`.
    fn agree(text: &str) -> bool {
        read_both(text).is_some()
    }

    /// A place in `g.yaml`.
    fn at(line: u64, column: u64) -> SourceLocation {
        SourceLocation { file: Arc::from(Path::new("g.yaml")), line, column }
    }

    /// Each id of `groups` (or of `declared`), with its line and column.
    fn placed<'a>(ids: impl IntoIterator<Item = (&'a GroupId, &'a SourceLocation)>) -> Vec<(&'a str, u64, u64)> {
        ids.into_iter().map(|(id, at)| (id.as_str(), at.line, at.column)).collect()
    }

    #[test]
    fn reads_group_sets_with_each_id_where_it_is_written() {
        let text = "groups:\n  - ids: [a-1, \"a 2\", 'b''c', 0x1F]  # flow\n    attributes:\n      k: v\n      j: w\n  - ownership: keys\n    ids: # block\n      - x\n      # a comment\n      - \"y\"\n      -   z # c\n\n    attributes: {}\n  - attributes: {}\n    ids: [solo]\n";
        let fast = read_both(text).expect("read by the fast path");
        let groups = placed(fast.groups.iter().map(|(id, group)| (id, &group.source)));
        let expected = [
            ("a-1", 2, 11),
            ("a 2", 2, 16),
            ("b'c", 2, 23),
            ("0x1F", 2, 31),
            ("x", 8, 9),
            ("y", 10, 9),
            ("z", 11, 11),
            ("solo", 15, 11),
        ];
        assert_eq!(groups, expected);
        assert_eq!(placed(fast.declared.iter().map(|(id, at)| (id, at))), expected);
        let (a, x) = (&fast.groups[0].1, &fast.groups[4].1);
        assert_eq!(&a.attributes["k"], "v");
        // Every id of a set shares the entry, and its keys' places, as a set's.
        assert!(fast.groups[..4].iter().all(|(_, group)| group.attributes == a.attributes));
        assert_eq!(a.origins, Origins::Own { kind: OriginKind::Set, at: Box::new([(5, 7), (4, 7)]) });
        assert_eq!((x.ownership, x.ownership_written), (Ownership::Keys, true));
        assert!(fast.templated.is_empty() && fast.uses.is_empty());
        // An id twice in a set is declared twice, as the parser has it: merging reports it.
        let fast = read_both("groups:\n  - ids: [a, b, a]\n    attributes: {}\n").expect("read by the fast path");
        assert_eq!(placed(fast.declared.iter().map(|(id, at)| (id, at))), [("a", 2, 11), ("b", 2, 14), ("a", 2, 17)]);
        // A key both set and unset too: resolving reports it.
        assert!(agree("groups:\n  - id: a\n    template: t\n    attributes:\n      k: v\n    unset: [k]\n"));
    }

    #[test]
    fn reads_unset_and_templated_sets() {
        // As `grattr import --template --sets` writes them, and in other orders and forms.
        let text = "groups:\n  - id: g1\n    template: t\n    unset: [rules, \"no\", 'x y'] # c\n  - ids: [p, q]\n    unset:\n      - k\n    template: t\n    attributes:\n      own: v\n  - template: u\n    ids:\n      - r\n";
        let fast = read_both(text).expect("read by the fast path");
        assert!(fast.groups.is_empty());
        let [g1, pq, r] = &fast.templated[..] else { panic!("{:?}", fast.templated) };
        assert_eq!(g1.ids, [(GroupId::parse("g1").unwrap(), at(2, 9))]);
        let unset: Vec<_> = g1.unset.iter().map(|(key, at)| (key.as_str(), at.line, at.column)).collect();
        assert_eq!(unset, [("rules", 4, 13), ("no", 4, 20), ("x y", 4, 26)]);
        assert_eq!(g1.attributes_at, at(2, 5));
        assert_eq!(placed(pq.ids.iter().map(|(id, at)| (id, at))), [("p", 5, 11), ("q", 5, 14)]);
        assert_eq!(pq.unset, [("k".to_string(), at(7, 9))]);
        assert_eq!((pq.template.as_str(), &pq.template_at), ("t", &at(8, 15)));
        assert_eq!(pq.group.source, at(5, 11));
        assert_eq!(pq.group.origins, Origins::Own { kind: OriginKind::Set, at: Box::new([(10, 7)]) });
        assert_eq!(pq.attributes_at, at(10, 7));
        assert_eq!(r.ids, [(GroupId::parse("r").unwrap(), at(13, 9))]);
        assert_eq!(r.attributes_at, at(11, 5));
        let uses: Vec<_> = fast.uses.iter().map(|(name, at)| (name.as_str(), at.line, at.column)).collect();
        assert_eq!(uses, [("t", 3, 15), ("t", 8, 15), ("u", 11, 15)]);
        let declared = placed(fast.declared.iter().map(|(id, at)| (id, at)));
        assert_eq!(declared, [("g1", 2, 9), ("p", 5, 11), ("q", 5, 14), ("r", 13, 9)]);
    }

    #[test]
    fn places_items_after_text_that_is_not_ascii_by_character() {
        // Ids are ASCII; keys need not be.
        let text = "groups:\n  - ids: [a, b]\n    template: t\n    unset: [\"é\", 你好, 'ü', b]\n";
        let fast = read_both(text).expect("read by the fast path");
        let unset: Vec<_> = fast.templated[0].unset.iter().map(|(key, at)| (key.as_str(), at.column)).collect();
        assert_eq!(unset, [("é", 13), ("你好", 18), ("ü", 22), ("b", 27)]);
    }

    #[test]
    fn leaves_sequences_it_does_not_know_to_the_parser() {
        let entry = |field: &str| format!("groups:\n  - id: a\n    template: t\n    {field}\n");
        let set = |field: &str| format!("groups:\n  - {field}\n    attributes: {{}}\n");
        let mut texts = Vec::new();
        for list in [
            // Empty, or spanning lines.
            "[]",
            "[ ]",
            "[a,\n      b]",
            "[a, b\n      ]",
            "[\n      a]",
            "\"\"",
            "",
            // Items the fast path does not read in a flow sequence.
            "[a,b]",
            "[a, ]",
            "[a, b,]",
            "[, a]",
            "[a b: c]",
            "[\"a\": c]",
            "[a:b]",
            "[a#b]",
            "[a #b]",
            "[a'b]",
            "[a\"b]",
            "[[a]]",
            "[{a: b}]",
            "[a, [b]]",
            "[a, {b}]",
            "[a}]",
            "[&x a]",
            "[*x]",
            "[!!str a]",
            "[? a]",
            "[- a]",
            "[-]",
            "[~]",
            "[null]",
            "[a, \"b\n      c\"]",
            "[\"a\\\n      b\"]",
            "[a]x",
            "[a] x",
            "[a]#c",
            "[a]]",
            // Not a sequence.
            "a",
            "{a: b}",
            "&x [a]",
            "!!seq [a]",
            "[a] &x",
            "|\n      a",
            // Block sequences the fast path does not read.
            "\n    - a",
            "\n  - a",
            "\n      -\n      - a",
            "\n      - a\n       - b",
            "\n      - a\n        b",
            "\n      - a\n     - b",
            "\n      - - a",
            "\n      - [a]",
            "\n      - a: b",
            "\n      - ~",
            "\n      - |\n        a",
            "\n      - &x a",
            "\n      - \"a\n        b\"",
            "\n      -a",
            "\n      - a\n      x: b",
        ] {
            for key in ["ids:", "unset:"] {
                let field = match list.strip_prefix('\n') {
                    Some(_) => format!("{key}{list}"),
                    None => format!("{key} {list}").trim_end().to_string(),
                };
                texts.push(if key == "ids:" { set(&field) } else { entry(&field) });
            }
        }
        texts.extend([
            // `ids:` written otherwise.
            set("ids:[a]"),
            set("ids : [a]"),
            set("\"ids\": [a]"),
            // Both `id` and `ids`, or `ids` twice: errors.
            "groups:\n  - id: a\n    ids: [b]\n    attributes: {}\n".to_string(),
            "groups:\n  - ids: [b]\n    id: a\n    attributes: {}\n".to_string(),
            "groups:\n  - ids: [a]\n    ids: [b]\n    attributes: {}\n".to_string(),
            // Ids that are not valid.
            set("ids: [a, \"\"]"),
            set(&format!("ids: [a, {}]", "x".repeat(49))),
            // A set without attributes or a template.
            "groups:\n  - ids: [a, b]\n".to_string(),
            // `unset:` without `template:`, twice, or naming a key twice.
            "groups:\n  - id: a\n    attributes: {}\n    unset: [k]\n".to_string(),
            "groups:\n  - ids: [a, b]\n    attributes:\n      k: v\n    unset: [k]\n".to_string(),
            entry("unset: [k]\n    unset: [j]"),
            entry("unset: [k, k]"),
            entry("unset: [k, 'j', \"k\"]"),
            entry("unset:\n      - k\n      - \"k\""),
        ]);
        for text in texts {
            assert!(!agree(&text), "read by the fast path:\n{text}");
        }
    }

    #[test]
    fn reads_what_import_writes() {
        use super::super::emit::{Entry, entries_file, sets_file};
        let ids: Vec<GroupId> = ["@TGS#aC5SZEAEF", "room-1", "a, b", "[c]", "\"d\" #e", "- f", "no", "1.50"]
            .into_iter()
            .map(str::to_string)
            .chain((0..12).map(|n| format!("member-{n:02}")))
            .map(|id| GroupId::parse(&id).unwrap())
            .collect();
        let gold: AttributeSet = [("theme", "gold"), ("rules", "1. Be kind.\n2. No spam.\n")].into_iter().collect();
        let none = AttributeSet::new();
        let unset = ["rules".to_string(), "no".to_string(), "a b".to_string(), "#x".to_string()];
        // Four kinds of entry, five ids each: sets of five when written as sets.
        let entries: Vec<Entry<'_>> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| Entry {
                id,
                ownership: (n % 4 == 3).then_some(Ownership::Keys),
                template: [Some("room"), Some("it's"), None, Some("room")][n % 4],
                attributes: if n % 4 == 1 || n % 4 == 3 { &none } else { &gold },
                unset: if n % 4 == 0 || n % 4 == 3 { &unset[..] } else { &[] },
            })
            .collect();
        // Plain entries as `import` writes them without a template, too.
        let plain: Vec<Entry<'_>> =
            ids.iter().map(|id| Entry { id, ownership: None, template: None, attributes: &gold, unset: &[] }).collect();
        for text in [entries_file("Imported.", &entries), sets_file("Imported.", &entries), sets_file("h", &plain)] {
            let fast = read_both(&text).unwrap_or_else(|| panic!("not read by the fast path:\n{text}"));
            assert_eq!(fast.declared.len(), ids.len(), "{text}");
        }
        // The shapes are there: sets in flow and in block form, and `unset:`.
        let (sets, block) = (sets_file("Imported.", &entries), sets_file("h", &plain));
        assert!(sets.contains("  - ids: [") && sets.contains("    unset: ["), "{sets}");
        assert!(block.contains("  - ids:\n      - \"@TGS#aC5SZEAEF\"\n"), "{block}");
    }

    #[test]
    fn reads_the_common_shape() {
        let text = "# Groups\ngroups:\n  - id: a-1\n    attributes:\n      title: \"Hello \\\"world\\\"\\n\\u00e9\"\n      n: 42\n      owner: 'it''s'\n      text: |\n        line 1\n\n          indented\n      # a comment\n      tail: x # comment\n  - attributes: {}\n    id: \"@TGS#abc\"\n";
        assert!(agree(text));
        let file: Arc<Path> = Arc::from(Path::new("g.yaml"));
        let groups = parse(&file, text).unwrap().groups;
        assert_eq!(groups.len(), 2);
        let a = &groups[0].1;
        assert_eq!((a.source.line, a.source.column), (3, 9));
        assert_eq!(&a.attributes["title"], "Hello \"world\"\né");
        assert_eq!(&a.attributes["owner"], "it's");
        assert_eq!(&a.attributes["text"], "line 1\n\n  indented\n");
        assert_eq!(&a.attributes["tail"], "x");
        assert_eq!((groups[1].1.source.line, groups[1].1.source.column), (15, 9));
    }

    #[test]
    fn reads_entries_that_name_a_template() {
        // As `grattr import --template` writes them, and in other orders and forms.
        let text = "groups:\n  - id: g1\n    template: t\n    attributes:\n      own: \"1\"\n      b: x\n  - id: g2\n    template: t\n  - template: 'community-vip' # c\n    ownership: keys\n    id: \"g3\"\n    attributes: {}\n  - id: g4\n    attributes:\n      k: v\n";
        let fast = read_both(text).expect("read by the fast path");
        let at = |line, column| SourceLocation { file: Arc::from(Path::new("g.yaml")), line, column };
        assert_eq!(fast.groups.len(), 1);
        assert_eq!(fast.groups[0].0.as_str(), "g4");
        let declared: Vec<_> = fast.declared.iter().map(|(id, at)| (id.as_str(), at.line, at.column)).collect();
        assert_eq!(declared, [("g1", 2, 9), ("g2", 7, 9), ("g3", 11, 9), ("g4", 13, 9)]);
        let uses: Vec<_> = fast.uses.iter().map(|(name, at)| (name.as_str(), at.line, at.column)).collect();
        assert_eq!(uses, [("t", 3, 15), ("t", 8, 15), ("community-vip", 9, 15)]);
        let [g1, g2, g3] = &fast.templated[..] else { panic!("{:?}", fast.templated) };
        assert_eq!(g1.ids, [(GroupId::parse("g1").unwrap(), at(2, 9))]);
        assert_eq!((g1.template.as_str(), &g1.template_at), ("t", &at(3, 15)));
        assert_eq!(&g1.group.attributes["own"], "1");
        assert_eq!(
            g1.places.iter().map(|(k, at)| (k, at.line, at.column)).collect::<Vec<_>>(),
            [("b", 6, 7), ("own", 5, 7)]
        );
        // Where the parser places the attributes: the first key; without them, the entry.
        assert_eq!(g1.attributes_at, at(5, 7));
        assert_eq!(g2.attributes_at, at(7, 5));
        assert!(g2.group.attributes.is_empty() && g2.places.is_empty() && g2.unset.is_empty());
        assert!(!g2.group.ownership_written);
        assert_eq!((g3.group.ownership, g3.group.ownership_written), (Ownership::Keys, true));
        assert_eq!(g3.attributes_at, at(12, 17));
        assert_eq!(g3.group.source, at(11, 9));
    }

    #[test]
    fn checks_a_templated_entry_as_the_parser_does_at_its_declaration() {
        // Only a key's own limits are checked where the entry is written; the totals
        // (17 keys here) once resolved, over the template.
        let keys = (0..17).fold(String::new(), |keys, n| keys + &format!("      k{n}: v\n"));
        assert!(agree(&format!("groups:\n  - id: a\n    template: t\n    attributes:\n{keys}")));
        assert!(!agree(&format!("groups:\n  - id: a\n    attributes:\n{keys}")));
        let long_key = format!("groups:\n  - id: a\n    template: t\n    attributes:\n      {}: v\n", "k".repeat(33));
        let long_value =
            format!("groups:\n  - id: a\n    template: t\n    attributes:\n      k: {}\n", "v".repeat(4001));
        for text in [long_key, long_value] {
            assert!(!agree(&text));
            assert!(!parse_yaml(Arc::from(Path::new("g.yaml")), &text).diagnostics.is_empty());
        }
    }

    #[test]
    fn leaves_templates_it_does_not_know_to_the_parser() {
        for text in [
            // What the fast path does not read: templates defined.
            "templates:\n  t:\n    k: v\ngroups:\n  - id: a\n    template: t\n",
            "groups:\n  - id: a\n    template: t\ntemplates:\n  t:\n    k: v\n",
            // Names that are empty, not text, or not written plainly.
            "groups:\n  - id: a\n    template:\n",
            "groups:\n  - id: a\n    template: ~\n",
            "groups:\n  - id: a\n    template: null\n",
            "groups:\n  - id: a\n    template: \"\"\n",
            "groups:\n  - id: a\n    template: ''\n",
            "groups:\n  - id: a\n    template: !!str t\n",
            "groups:\n  - id: a\n    template: !!int 7\n",
            "groups:\n  - id: a\n    template: [t]\n",
            "groups:\n  - id: a\n    template: {name: t}\n",
            "groups:\n  - id: a\n    template: |\n      t\n",
            "groups:\n  - id: a\n    template: &x t\n",
            "groups:\n  - id: a\n    template: \"t\n      u\"\n",
            "groups:\n  - id: a\n    template: t\n      u\n",
            "groups:\n  - id: a\n    template:t\n",
            "groups:\n  - id: a\n    template: t: u\n",
            // The field twice, or written otherwise.
            "groups:\n  - id: a\n    template: t\n    template: u\n",
            "groups:\n  - id: a\n    \"template\": t\n",
            "groups:\n  - id: a\n    template : t\n",
            // Attributes that are not a mapping, or null.
            "groups:\n  - id: a\n    template: t\n    attributes:\n",
            "groups:\n  - id: a\n    template: t\n    attributes: []\n",
            // No id.
            "groups:\n  - template: t\n",
        ] {
            assert!(parse(&Arc::from(Path::new("g.yaml")), text).is_none(), "read by the fast path:\n{text}");
        }
    }

    #[test]
    fn leaves_what_it_does_not_know_to_the_parser() {
        for text in [
            "",
            "groups: []\n",
            "groups:\n  - id: a\n    attributes:\n      k: ~\n",
            "groups:\n  - id: a\n    attributes:\n      k: !!str x\n",
            "groups:\n  - id: a\n    attributes:\n      k: [1]\n",
            "groups:\n  - id: a\n    attributes:\n      k: \"two\n        lines\"\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\n      k: w\n",
            "groups:\n  - id: a\n    attributes:\n\tk: v\n",
            "groups:\r\n  - id: a\r\n    attributes: {}\r\n",
            "groups:\n  - id: a\n    attributes:\n      k: |\n        no line feed",
            "groups:\n  - id: a\n    attributes: {}\n---\ngroups: []\n",
            "groups:\n  - id: a\n    attributes: {}\n    extra: 1\n",
            "groups:\n  - id: \"\"\n    attributes: {}\n",
        ] {
            assert!(!agree(text), "read by the fast path:\n{text}");
        }
    }

    #[test]
    fn reads_tabs_in_comments() {
        for text in [
            "# a\tcomment\ngroups:\n  - id: a\n    attributes:\n      k: v\n",
            "groups: #\tc\n  - id: a # \tc\n    attributes: # c\t\n      k: v #\tc\n      # \t\n      j: \"w\" #\t\n",
            "groups:\n  - ids: [a, b] #\tc\n    attributes: {} # \t\n  - id: c\n    attributes:\n      k: | #\tc\n        text\n      # after\tthe block\n      j: w\n",
            "--- #\tc\ngroups:\n  - id: a\n    attributes: {}\n... #\tc\n",
        ] {
            assert!(agree(text), "not read by the fast path:\n{text}");
        }
        // The same file without the tabs reads the same.
        let with = read_both("# a\tb\ngroups:\n  - id: a #\t\n    attributes:\n      k: v #\tc\n").unwrap();
        let without = read_both("# a b\ngroups:\n  - id: a # \n    attributes:\n      k: v # c\n").unwrap();
        assert_eq!(with.groups, without.groups);
    }

    #[test]
    fn leaves_tabs_outside_comments_to_the_parser() {
        for text in [
            // In a quoted scalar, after what would be a comment outside it.
            "groups:\n  - id: a\n    attributes:\n      k: \"v #\tw\"\n",
            "groups:\n  - id: a\n    attributes:\n      k: 'v #\tw'\n",
            // In a literal block, on a line that would be a comment outside it.
            "groups:\n  - id: a\n    attributes:\n      k: |\n        text\n        # \tmore\n",
            // Before a comment: YAML ends the scalar there, as a tab separates too.
            "groups:\n  - id: a\n    attributes:\n      k: v\t# c\n",
            "groups:\n  - id: a\n    attributes:\n      k:\tv\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\tw\n",
            "groups:\n  - id: a\n    attributes:\n\t# c\n      k: v\n",
            "groups:\n  - id: a\n    attributes:\n      k: v\n\t\n",
        ] {
            assert!(!agree(text), "read by the fast path:\n{text}");
        }
    }

    #[test]
    fn agrees_with_the_parser_on_the_repository_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut read = 0;
        for dir in ["groups", "tests/corpus", "examples"] {
            for entry in walkdir::WalkDir::new(root.join(dir)).into_iter().filter_map(Result::ok) {
                let path = entry.path();
                let yaml = path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if let Some(text) = yaml.then(|| std::fs::read_to_string(path).ok()).flatten() {
                    read += usize::from(agree(&text));
                }
            }
        }
        assert!(read > 5, "the fast path read only {read} files");
    }

    /// Text for a scalar: mostly ordinary words, sometimes with the characters YAML
    /// gives meaning to.
    fn word() -> impl Strategy<Value = String> {
        let tame =
            prop::sample::select(vec!["a", "Z", "7", "0x1F", "1.5", "-", "é", "你", "x y", "/", "_", ".", "a:b"]);
        let wild = prop::sample::select(vec![
            ":", "#", " ", "  ", "'", "\"", "\\", "[", "]", "{", "}", ",", "&", "*", "!", "|", ">", "%", "@", "`", "~",
            "?", "\u{a0}", "null", "true", "no", ": ", " #", "\t", "\u{85}", "\u{2028}", "\u{feff}", "\r", "<<",
            "Null", "",
        ]);
        prop::collection::vec(prop_oneof![12 => tame, 1 => wild], 0..5).prop_map(|parts| parts.concat())
    }

    /// A scalar as written: plain, quoted (with escapes, good and bad) or a literal block.
    fn scalar(indent: usize) -> impl Strategy<Value = String> {
        let escape = prop::sample::select(vec![
            "\\n",
            "\\t",
            "\\\"",
            "\\\\",
            "\\x41",
            "\\u00e9",
            "\\U0001F600",
            "\\ud83d\\ude00",
            "\\ud83d",
            "\\q",
            "\\/",
            "\\N",
            "\\_",
            "\\L",
            "\\ ",
            "\\0",
            "\\e",
            "\\x4",
            "\\UFFFFFFFF",
        ]);
        let block_line = (0usize..4, word(), prop::bool::ANY).prop_map(|(extra, text, blank)| {
            if blank { " ".repeat(extra) } else { format!("{}{text}", " ".repeat(extra)) }
        });
        prop_oneof![
            word(),
            word().prop_map(|w| format!("{w} # comment")),
            (word(), word()).prop_map(|(w, c)| format!("{w} #{c}\t# comment")),
            (word(), escape, word()).prop_map(|(a, e, b)| format!(
                "\"{}{e}{}\"",
                a.replace('"', ""),
                b.replace('"', "")
            )),
            word().prop_map(|w| format!("'{}'", w.replace('\'', "''"))),
            word().prop_map(|w| format!("'{w}'")),
            (
                prop::sample::select(vec!["|", "|-", "|+", "|", "|-", "|+", "|2", ">", "| # c"]),
                prop::collection::vec(block_line, 0..4)
            )
                .prop_map(move |(header, lines)| {
                    let pad = " ".repeat(indent + 2);
                    let body: String = lines.iter().fold(String::new(), |body, l| body + "\n" + pad.as_str() + l);
                    format!("{header}{body}")
                }),
        ]
    }

    /// A `template:` line: mostly a name the fast path reads (plain or quoted), sometimes
    /// one it must leave to the parser (empty, null, tagged, a block, any scalar).
    fn template_line() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::sample::select(vec!["t", "community-vip", "t1", "7", "true", "0x1F", "a b", "é"])
                .prop_map(|name| format!("template: {name}")),
            3 => prop::sample::select(vec!["\"t\"", "'t'", "\"it's\"", "'it''s'", "\"t\" # c", "t # c", "\"\\u00e9\""])
                .prop_map(|name| format!("template: {name}")),
            3 => prop::sample::select(vec![
                "template:", "template: ~", "template: null", "template: \"\"", "template: ''", "template: !!str t",
                "template: [t]", "template: {}", "template: |\n  t", "template: &a t", "template:t", "template : t",
                "\"template\": t", "template: t: u", "template: -",
            ])
            .prop_map(str::to_string),
            2 => scalar(0).prop_map(|name| format!("template: {name}")),
        ]
    }

    /// An item of a sequence (`ids:`, `unset:`) as written: mostly a name the fast path
    /// reads (plain or quoted), sometimes a hostile one, sometimes one it must leave to the
    /// parser (null, a collection, an anchor, a tag, text spanning lines).
    fn item() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => prop::sample::select(vec![
                "a", "g-1", "rules", "x y", "7", "0x1F", "1.50", "true", "no", "-a", "a-b.c/d", "é", "你好", "a.b", "Z",
            ])
            .prop_map(str::to_string),
            3 => prop::sample::select(vec![
                "\"@TGS#x\"", "\"a, b\"", "\"[c]\"", "\"\\\"d\\\" #e\"", "\"- f\"", "'it''s'", "'a: b'", "\"x\\u00e9\"",
                "\"{}\"", "'#'", "\"\"", "''",
            ])
            .prop_map(str::to_string),
            2 => word().prop_map(|w| format!("\"{}\"", w.replace(['"', '\\'], ""))),
            2 => word().prop_map(|w| format!("'{}'", w.replace('\'', "''"))),
            1 => word(),
            1 => prop::sample::select(vec![
                "~", "null", "", "[a]", "{a: b}", "&x a", "*x", "!!str a", "!!int 7", "a: b", "- a", "\"a\n b\"", "? a",
                "|\n  a", "a #b", "a#b",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// `key:` and a sequence of `items` as written, on lines after the first indented by
    /// `fields` (the entry's): one-line flow forms, with regular and irregular spacing,
    /// flow sequences spanning lines, block sequences deeper than the key, at its own
    /// indentation (which YAML allows) and with comments between items.
    fn sequence(key: &str, items: &[String], form: u8, fields: usize) -> String {
        let pad = |n: usize| " ".repeat(n);
        // Items are written on one line each in block form: a line feed in one stays at the item's indentation.
        let block = |indent: usize, between: &str| {
            items.iter().fold(format!("{key}:"), |text, item| {
                text + between + "\n" + &pad(indent) + "- " + &item.replace('\n', &format!("\n{}", pad(indent)))
            })
        };
        let flow = |open: &str, separator: &str, close: &str| {
            let inline: Vec<String> =
                items.iter().map(|item| item.replace('\n', &format!("\n{}", pad(fields + 2)))).collect();
            format!("{key}: {open}{}{close}", inline.join(separator))
        };
        match form % 16 {
            0..=5 => flow("[", ", ", "]"),
            6 => flow("[", ", ", "] # c"),
            7 => flow("[ ", " ,  ", " ]"),
            8 => flow("[", ",", "]"),
            9 => flow("[", &format!(",\n{}", pad(fields + 2)), "]"),
            10..=13 => block(fields + 2, ""),
            14 => block(fields + 4, " # c"),
            _ => block(fields, ""),
        }
    }

    /// A group file of the common shape, with random values, keys, indentation and
    /// noise; some entries name a template (with or without `attributes:`, with or
    /// without `unset:`), some are sets (`ids:`, in flow or block form), some say an
    /// `ownership:`, and the fields come in any order.
    fn document() -> impl Strategy<Value = String> {
        let attribute = |indent: usize| (word(), prop::bool::ANY, scalar(indent));
        let ownership = prop_oneof![
            6 => Just(None),
            2 => prop::sample::select(vec!["keys", "group"]).prop_map(Some),
            1 => prop::sample::select(vec!["other", "keys # c", "\"keys\"", "", "group "]).prop_map(Some),
        ];
        // A templated entry's `attributes:`: none, `{}` or a block (`None` for an entry without a template).
        let template = prop::option::weighted(0.5, (template_line(), prop::sample::select(vec![0usize, 1, 2, 2, 2])));
        // A set's `ids:` (its items and form), and whether the entry says `id:` too (an error).
        let ids = prop::option::weighted(
            0.4,
            (
                prop_oneof![1 => Just(Vec::new()), 12 => prop::collection::vec(item(), 1..6)],
                any::<u8>(),
                prop::bool::weighted(0.05),
            ),
        );
        // An `unset:` (its items and form): mostly with a template, sometimes without (an error).
        let unset = prop::option::weighted(
            0.5,
            (prop_oneof![1 => Just(Vec::new()), 12 => prop::collection::vec(item(), 1..4)], any::<u8>()),
        );
        let group = (
            (0usize..3, 1usize..3),
            prop::collection::vec(any::<u8>(), 6),
            scalar(0),
            prop::collection::vec(attribute(0), 0..4),
            template,
            ownership,
            ids,
            unset,
        );
        (
            prop::sample::select(vec![
                "",
                "",
                "",
                "",
                "# header\n",
                "#\theader\n",
                "\n\n",
                "---\n",
                "--- #\tc\n",
                "%YAML 1.2\n---\n",
            ]),
            prop::sample::select(vec![
                "groups:",
                "groups:",
                "groups:",
                "groups:",
                "groups: # c",
                "groups: #\tc",
                "groups :",
                "\"groups\":",
            ]),
            prop::sample::select(vec![0usize, 2, 4]),
            prop::collection::vec(group, 1..4),
            prop::sample::select(vec!["", "", "\n", "# end\n", "  # \tend\n", "  \n", "..."]),
        )
            .prop_map(|(head, top, seq, groups, tail)| {
                let mut text = format!("{head}{top}\n");
                for (index, ((extra, deeper), order, id, attributes, template, ownership, ids, unset)) in
                    groups.into_iter().enumerate()
                {
                    let pad = " ".repeat(seq);
                    let fields = seq + 2 + extra;
                    let field_pad = " ".repeat(fields);
                    let attr_pad = " ".repeat(fields + deeper * 2);
                    let id_line = match index % 3 {
                        0 => format!("id: g{index}"),
                        1 => format!("id: \"g{index}\""),
                        _ => format!("id: {id}"),
                    };
                    let mut attrs = String::from("attributes:");
                    if attributes.is_empty() {
                        attrs += " {}";
                    }
                    for (key, quote, value) in attributes {
                        let key = if quote { format!("\"{}\"", key.replace(['"', '\\'], "")) } else { key };
                        let value = value.replace('\n', &format!("\n{attr_pad}"));
                        attrs += &format!("\n{attr_pad}{key}: {value}");
                    }
                    let mut lines = Vec::new();
                    match ids {
                        None => lines.push(id_line),
                        Some((items, form, both)) => {
                            // Mostly ids of this entry only (so that sets rarely declare an id twice), some hostile.
                            let items: Vec<String> = items
                                .into_iter()
                                .enumerate()
                                .map(|(n, item)| if n % 3 == 1 { item } else { format!("s{index}-{n}") })
                                .collect();
                            lines.push(sequence("ids", &items, form, fields));
                            if both {
                                lines.push(id_line);
                            }
                        }
                    }
                    let templated = template.is_some();
                    match template {
                        None => lines.push(attrs),
                        Some((line, written)) => {
                            lines.push(line.replace('\n', &format!("\n{field_pad}")));
                            match written {
                                0 => {}
                                1 => lines.push("attributes: {}".to_string()),
                                _ => lines.push(attrs),
                            }
                        }
                    }
                    if let Some(word) = ownership {
                        lines.push(format!("ownership: {word}"));
                    }
                    // Mostly with a template; without, it is an error.
                    if let Some((items, form)) = unset.filter(|(_, form)| templated || form % 8 == 0) {
                        // Mostly plain keys, some hostile.
                        let items: Vec<String> = items
                            .into_iter()
                            .enumerate()
                            .map(|(n, item)| if n % 3 == 1 { item } else { format!("k{n}") })
                            .collect();
                        lines.push(sequence("unset", &items, form, fields));
                    }
                    // The fields in an order of the generated keys.
                    let mut ordered: Vec<(u8, String)> = order.into_iter().zip(lines).collect();
                    ordered.sort_by_key(|(key, _)| *key);
                    let body =
                        ordered.into_iter().map(|(_, line)| line).collect::<Vec<_>>().join(&format!("\n{field_pad}"));
                    text += &format!("{pad}-{}{body}\n", " ".repeat(1 + extra));
                }
                text + tail
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// Whatever the fast path reads, the YAML parser reads the same way.
        #[test]
        fn agrees_with_the_parser(text in document()) {
            agree(&text);
        }
    }

    /// The generated documents exercise the fast path, not only the way around it:
    /// plain entries and templated ones.
    #[test]
    fn the_generated_documents_are_often_read_fast() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = document();
        let (mut read, mut templated, mut bare, mut keys, mut owned, mut after) = (0, 0, 0, 0, 0, 0);
        let (mut set_ids, mut flow_ids, mut block_ids, mut templated_sets) = (0, 0, 0, 0);
        let (mut unset, mut flow_unset, mut block_unset) = (0, 0, 0);
        let (mut clean, mut tabs) = (0, 0);
        for _ in 0..2000 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            clean += usize::from(parse_yaml(Arc::from(Path::new("g.yaml")), &text).diagnostics.is_empty());
            let Some(fast) = read_both(&text) else { continue };
            // What a place is written after: `[` or `,` in a flow sequence, `-` in a block one.
            let lines: Vec<&str> = text.split('\n').collect();
            let before = |at: &SourceLocation| {
                let line = lines[usize::try_from(at.line).unwrap() - 1];
                let prefix: String = line.chars().take(usize::try_from(at.column).unwrap() - 1).collect();
                prefix.trim_end().chars().last()
            };
            read += 1;
            tabs += usize::from(text.contains('\t'));
            templated += fast.templated.len();
            bare += fast.templated.iter().filter(|entry| entry.places.is_empty()).count();
            keys += fast.templated.iter().filter(|entry| !entry.places.is_empty()).count();
            owned += fast.templated.iter().filter(|entry| entry.group.ownership_written).count();
            after += fast.templated.iter().filter(|entry| entry.template_at.line > entry.group.source.line).count();
            let set = |group: &DesiredGroup| matches!(group.origins, Origins::Own { kind: OriginKind::Set, .. });
            set_ids += fast.groups.iter().filter(|(_, group)| set(group)).count();
            templated_sets += fast.templated.iter().filter(|entry| set(&entry.group)).count();
            flow_ids += fast.declared.iter().filter(|(_, at)| matches!(before(at), Some('[' | ','))).count();
            block_ids += fast.declared.iter().filter(|(_, at)| before(at) == Some('-')).count();
            unset += fast.templated.iter().filter(|entry| !entry.unset.is_empty()).count();
            let unset_at = fast.templated.iter().flat_map(|entry| entry.unset.iter().map(|(_, at)| at));
            for at in unset_at {
                match before(at) {
                    Some('[' | ',') => flow_unset += 1,
                    Some('-') => block_unset += 1,
                    other => panic!("{other:?} before {at}:\n{text}"),
                }
            }
        }
        // Deterministic: 2,000 documents (many with a problem, by design), of which 586 the
        // parser reads without one and 192 the fast path reads (when written): a third.
        assert!(read > 150, "only {read} of 2,000 generated documents were read by the fast path");
        assert!(read * 4 > clean, "only {read} of the {clean} documents without a problem were read by the fast path");
        assert!(tabs > 30, "only {tabs} documents with a tab in a comment were read by the fast path");
        assert!(templated > 80, "only {templated} templated entries were read by the fast path");
        assert!(bare > 20, "only {bare} templated entries without keys of their own were read by the fast path");
        assert!(keys > 12, "only {keys} templated entries with keys of their own were read by the fast path");
        assert!(owned > 12, "only {owned} templated entries with an ownership were read by the fast path");
        assert!(after > 20, "only {after} templated entries with `template:` after `id:` were read by the fast path");
        assert!(set_ids > 60, "only {set_ids} ids of sets without a template were read by the fast path");
        assert!(templated_sets > 20, "only {templated_sets} templated sets were read by the fast path");
        assert!(
            flow_ids > 60 && block_ids > 40,
            "ids read by the fast path: {flow_ids} in flow, {block_ids} in block form"
        );
        assert!(unset > 25, "only {unset} entries with `unset:` were read by the fast path");
        assert!(
            flow_unset > 25 && block_unset > 20,
            "unset keys read: {flow_unset} in flow, {block_unset} in block form"
        );
    }
}

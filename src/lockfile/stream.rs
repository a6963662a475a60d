//! Reading a large lockfile written by grattr (its canonical layout: two-space
//! indentation, one block per group) a block of the file at a time, its entries
//! parsed in parallel, without ever holding the whole text: a lockfile of 100,000
//! groups is 64 MB of text beside the groups parsed from it.
//!
//! Only the exact layout grattr writes is read here. At anything else (a file edited
//! by hand, a conflict marker, an entry that does not parse) it gives up, and the
//! whole file is read and checked by [`super::Lockfile::parse`], which reports every
//! problem. Entries that parse are checked by the same code either way.

use super::AppliedGroup;
use rayon::prelude::*;
use std::io::Read;

/// How much of the file is read at a time.
const BLOCK: usize = 4 << 20;

/// The top of a lockfile, before its first entry.
const GROUPS: &[u8] = b"  \"groups\": {\n";

/// What a canonical lockfile holds: its format version, app and entries in order.
pub(super) type Parts = (u32, Option<u64>, Vec<(String, Result<AppliedGroup, String>)>);

/// Reads a lockfile of the canonical layout from `file`; `Ok(None)` when it is not
/// one (or any entry does not parse), leaving `file` to be read again from its start.
pub(super) fn read(file: &mut impl Read) -> std::io::Result<Option<Parts>> {
    let mut buffer = Vec::with_capacity(BLOCK + BLOCK / 2);
    let mut done = fill(file, &mut buffer)?;
    let Some((format_version, sdkappid, start)) = header(&buffer) else { return Ok(None) };
    buffer.drain(..start);
    let mut entries = Vec::new();
    loop {
        // Every entry but the last ends `\n    },\n`; the last, `\n    }\n  }\n}\n`.
        let mut ends = Vec::new();
        let mut from = 0;
        for at in memchr::memmem::find_iter(&buffer, b"\n    },\n") {
            ends.push(at + 6);
            from = at + 8;
        }
        if done {
            match buffer[from..].strip_suffix(b"\n    }\n  }\n}\n") {
                Some(last) => ends.push(from + last.len() + 6),
                None => return Ok(None),
            }
        }
        let mut slices = Vec::with_capacity(ends.len());
        let mut start = 0;
        for end in ends {
            slices.push(&buffer[start..end]);
            start = end + 2;
        }
        let parsed: Vec<Option<(String, AppliedGroup)>> = slices.par_iter().map(|entry| parse_entry(entry)).collect();
        for entry in parsed {
            let Some((id, group)) = entry else { return Ok(None) };
            entries.push((id, Ok(group)));
        }
        if done {
            return Ok(Some((format_version, sdkappid, entries)));
        }
        buffer.drain(..start.min(buffer.len()));
        done = fill(file, &mut buffer)?;
    }
}

/// Appends up to a block of `file` to `buffer`; returns whether the file is at its end.
fn fill(file: &mut impl Read, buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    let before = buffer.len();
    file.by_ref().take(BLOCK as u64).read_to_end(buffer)?;
    Ok(buffer.len() - before < BLOCK)
}

/// The format version and app of the canonical header, and where the first entry starts.
fn header(text: &[u8]) -> Option<(u32, Option<u64>, usize)> {
    let rest = text.strip_prefix(b"{\n  \"format_version\": ")?;
    let (format_version, rest) = number(rest, b",\n")?;
    let (sdkappid, rest) = match rest.strip_prefix(b"  \"sdkappid\": ") {
        Some(rest) => number(rest, b",\n").map(|(n, rest)| (Some(n), rest))?,
        None => (None, rest),
    };
    let rest = rest.strip_prefix(GROUPS)?;
    // An entry starts with its key, indented by four spaces.
    if !rest.starts_with(b"    \"") {
        return None;
    }
    Some((u32::try_from(format_version).ok()?, sdkappid, text.len() - rest.len()))
}

/// A JSON number as JSON writes an unsigned integer, followed by `end`.
fn number<'a>(text: &'a [u8], end: &[u8]) -> Option<(u64, &'a [u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = text[digits..].strip_prefix(end)?;
    if digits == 0 || (digits > 1 && text[0] == b'0') {
        return None;
    }
    let value = std::str::from_utf8(&text[..digits]).ok()?.parse().ok()?;
    Some((value, rest))
}

/// One entry, `    "id": {…\n    }`: its id and the group, as serde reads them.
fn parse_entry(entry: &[u8]) -> Option<(String, AppliedGroup)> {
    let first = entry.iter().position(|&b| b == b'\n')?;
    let key = entry[..first].strip_prefix(b"    ")?.strip_suffix(b": {")?;
    if key.first() != Some(&b'"') {
        return None;
    }
    let id: String = serde_json::from_slice(key).ok()?;
    let group: AppliedGroup = serde_json::from_slice(&entry[first - 1..]).ok()?;
    Some((id, group))
}

#[cfg(test)]
mod tests {
    use super::super::Lockfile;
    use super::*;
    use crate::model::{AttributeSet, GroupId};
    use std::path::Path;

    fn lockfile(groups: usize) -> Lockfile {
        let mut lockfile = Lockfile::new(1400000000);
        for index in 0..groups {
            let attributes: AttributeSet = [
                ("a".to_string(), format!("value {index}")),
                ("quoted \"key\"".to_string(), "line\nbreak \u{1F600} \\ }".to_string()),
            ]
            .into_iter()
            .collect();
            let id = GroupId::parse(&format!("g\"{index}\": {{")).unwrap();
            lockfile.groups.insert(id, AppliedGroup::new(attributes));
        }
        lockfile
    }

    /// Reads `bytes` both ways; they must agree.
    fn both(bytes: &[u8]) -> Option<Lockfile> {
        let parts = read(&mut &bytes[..]).unwrap()?;
        let (format_version, sdkappid, entries) = parts;
        let path = Path::new("grattr.lock");
        let streamed = Lockfile::check(path, format_version, sdkappid, entries.into_iter()).unwrap();
        assert_eq!(streamed, Lockfile::parse(path, bytes).unwrap());
        Some(streamed)
    }

    #[test]
    fn reads_what_grattr_writes_in_blocks() {
        for groups in [1, 2, 3, 40_000] {
            let lockfile = lockfile(groups);
            assert_eq!(both(&lockfile.to_json()), Some(lockfile), "{groups} groups");
        }
        let mut no_app = lockfile(2);
        no_app.sdkappid = None;
        assert_eq!(both(&no_app.to_json()), Some(no_app));
    }

    #[test]
    fn leaves_any_other_layout_to_the_whole_file_reader() {
        let canonical = String::from_utf8(lockfile(3).to_json()).unwrap();
        let compact = serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&canonical).unwrap()).unwrap();
        for text in [
            compact,
            canonical.replace("\"format_version\": 1", "\"format_version\": 01"),
            canonical.replacen("    },\n", "    },\n<<<<<<< ours\n", 1),
            canonical.replacen("\"digest\"", "\"extra\": 1,\n      \"digest\"", 1),
            canonical.trim_end().to_string(),
            Lockfile::new(7).to_json().into_iter().map(char::from).collect(),
        ] {
            assert!(read(&mut text.as_bytes()).unwrap().is_none(), "read:\n{text}");
        }
    }
}

//! Secrets out of whatever comes back: an endpoint that echoes the request (its
//! path and query, hence the UserSig) into `ErrorInfo`, a body, or an error
//! would otherwise put a credential valid for days into failure lines, JSON
//! reports and logs. [`Scrubber`] removes the UserSig, the signature inside it
//! and the secret key from such text, in the encodings an echo may use (raw,
//! percent-encoded, JSON-escaped, standard or URL-safe base64) and when only
//! part of them was echoed.

use super::usersig::{self, SecretKey, UserSig};
use std::collections::HashSet;

/// What a secret (or part of one) is replaced with.
pub(super) const REDACTED: &str = "<redacted>";

/// The shortest part of a secret that is still redacted when echoed alone: long
/// enough that no ordinary word or id matches by chance (16 base64 characters are
/// 96 bits), short enough that a cut echo gives nothing usable away.
const PART: usize = 16;

/// Removes one call's secrets from text the other side sent.
pub(super) struct Scrubber {
    /// Each secret, whole, in every form it may be echoed in.
    whole: Vec<String>,
    /// Every [`PART`]-character piece of the base64 secrets.
    parts: HashSet<String>,
}

impl Scrubber {
    /// A scrubber for a call signed with `usersig` made from `key`.
    pub(super) fn new(usersig: &UserSig, key: &SecretKey) -> Scrubber {
        let sig = usersig.expose();
        let mut whole = vec![sig.to_string(), usersig::from_url_safe(sig), key.expose().to_string()];
        // The HMAC inside the UserSig signs the identifier: with the claims, which
        // are no secret, it makes a UserSig again.
        if let Ok(claims) = usersig::decode(sig) {
            whole.push(usersig::to_url_safe(&claims.sig));
            whole.push(claims.sig);
        }
        whole.retain(|secret| !secret.is_empty());
        whole.sort();
        whole.dedup();
        let mut parts = HashSet::new();
        for secret in &whole {
            for run in secret.split(|c: char| !is_base64(c)).filter(|run| run.len() >= PART) {
                for start in 0..=run.len() - PART {
                    parts.insert(run[start..start + PART].to_string());
                }
            }
        }
        Scrubber { whole, parts }
    }

    /// `text` with every secret, whole or in part, and every `usersig=` with its
    /// value, replaced by [`REDACTED`].
    pub(super) fn scrub(&self, text: &str) -> String {
        let units = decode_escapes(text);
        // The text as it reads once escapes are undone; every unit is one char of it.
        let plain: String = units.iter().map(|u| u.char).collect();
        let starts: Vec<usize> = plain.char_indices().map(|(at, _)| at).collect();
        let unit_at = |byte: usize| starts.partition_point(|&s| s < byte);
        let mut hidden = vec![false; units.len()];
        let mut hide = |from: usize, to: usize| hidden[from..to].iter_mut().for_each(|h| *h = true);

        for secret in &self.whole {
            for (at, found) in plain.match_indices(secret.as_str()) {
                hide(unit_at(at), unit_at(at + found.len()));
            }
        }
        // A `usersig=` and its value, whatever the value: even too little of one to
        // recognise says a URL with its query is being shown.
        let lower = plain.to_ascii_lowercase();
        for (at, name) in lower.match_indices("usersig=") {
            let value = unit_at(at + name.len());
            let end = (value..units.len()).find(|&u| !is_base64(units[u].char)).unwrap_or(units.len());
            hide(unit_at(at), end);
        }
        // Runs of base64 characters: hidden whole when any piece of one is a
        // piece of a secret.
        let mut unit = 0;
        while unit < units.len() {
            if !is_base64(units[unit].char) {
                unit += 1;
                continue;
            }
            let end = (unit..units.len()).find(|&u| !is_base64(units[u].char)).unwrap_or(units.len());
            let (from, to) = (starts[unit], starts.get(end).copied().unwrap_or(plain.len()));
            let run = &plain[from..to];
            if run.len() >= PART && (0..=run.len() - PART).any(|s| self.parts.contains(&run[s..s + PART])) {
                hide(unit, end);
            }
            unit = end;
        }

        let mut out = String::with_capacity(text.len());
        let mut previous_hidden = false;
        for (unit, hidden) in units.iter().zip(&hidden) {
            if !hidden {
                out.push_str(&text[unit.start..unit.end]);
            } else if !previous_hidden {
                out.push_str(REDACTED);
            }
            previous_hidden = *hidden;
        }
        out
    }
}

/// The characters of standard and URL-safe base64 (padding aside): what a UserSig,
/// its signature, and most keys are made of.
fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '_' | '+' | '/')
}

/// One character of the text as it reads, and the bytes of the original it came from.
struct Unit {
    char: char,
    start: usize,
    end: usize,
}

/// The text's characters with percent-escapes (`%2A`) and JSON escapes (`\u002a`,
/// `\/`) of ASCII characters undone, so an encoded echo is recognised.
fn decode_escapes(text: &str) -> Vec<Unit> {
    let mut units = Vec::with_capacity(text.len());
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let (char, len) = escaped(&text[at..]).unwrap_or((c, c.len_utf8()));
        units.push(Unit { char, start: at, end: at + len });
        at += len;
    }
    units
}

/// The ASCII character an escape at the start of `rest` stands for, and its length.
fn escaped(rest: &str) -> Option<(char, usize)> {
    let hex = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(digits, 16).ok())
            .flatten()
            .and_then(char::from_u32)
            .filter(char::is_ascii)
    };
    if let Some(escape) = rest.strip_prefix('%') {
        return Some((hex(escape.get(..2)?)?, 3));
    }
    let escape = rest.strip_prefix('\\')?;
    if escape.starts_with('/') {
        return Some(('/', 2));
    }
    Some((hex(escape.strip_prefix('u')?.get(..4)?)?, 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> (Scrubber, String, String) {
        let key = SecretKey::new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        let usersig = usersig::generate(&key, 1400000000, "administrator", 172800, 1_700_000_000);
        let sig = usersig::decode(usersig.expose()).unwrap().sig;
        (Scrubber::new(&usersig, &key), usersig.expose().to_string(), sig)
    }

    #[test]
    fn an_echoed_query_loses_its_usersig_in_every_encoding() {
        let (scrubber, usersig, _) = scrubber();
        let raw = format!("bad request /v4/x?sdkappid=1&usersig={usersig}&random=7");
        assert_eq!(scrubber.scrub(&raw), "bad request /v4/x?sdkappid=1&<redacted>&random=7");
        let percent: String = usersig.bytes().map(|b| format!("%{b:02X}")).collect::<Vec<_>>().concat();
        assert_eq!(scrubber.scrub(&format!("echo {percent}.")), "echo <redacted>.");
        let stars = usersig.replace('*', "%2a");
        assert_eq!(scrubber.scrub(&format!("echo {stars}.")), "echo <redacted>.");
        let json: String = usersig.chars().map(|c| format!("\\u{:04x}", c as u32)).collect::<Vec<_>>().concat();
        assert_eq!(scrubber.scrub(&format!("echo \"{json}\"")), "echo \"<redacted>\"");
        let standard = usersig::from_url_safe(&usersig);
        assert_eq!(scrubber.scrub(&format!("[{standard}]")), "[<redacted>]");
    }

    #[test]
    fn a_partial_echo_is_redacted_too() {
        let (scrubber, usersig, sig) = scrubber();
        let middle = &usersig[usersig.len() / 3..usersig.len() / 3 + 40];
        assert_eq!(scrubber.scrub(&format!("cut: {middle}...")), "cut: <redacted>...");
        let tail = &usersig[usersig.len() - 20..];
        assert_eq!(scrubber.scrub(&format!("...{tail}")), "...<redacted>");
        // Whatever a `usersig=` holds, even too little to recognise.
        assert_eq!(scrubber.scrub("usersig=eJy&x"), "<redacted>&x");
        assert_eq!(scrubber.scrub("?USERSIG%3Dforged"), "?<redacted>");
        assert_eq!(scrubber.scrub("usersig="), "<redacted>");
        // The HMAC inside it, and the key.
        assert_eq!(scrubber.scrub(&format!("sig {sig} end")), "sig <redacted> end");
        assert_eq!(
            scrubber.scrub("key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            "key <redacted>"
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let (scrubber, _, _) = scrubber();
        for text in [
            "",
            "group not found: @TGS#2ABCDEFGHIJKLMNOP",
            "bad request /v4/group_open_http_svc/set_group_attr?sdkappid=1400000000&identifier=administrator",
            "100% done, %zz %4 \\u12 \\x",
            "ünïcödé ✓ \u{202e}",
        ] {
            assert_eq!(scrubber.scrub(text), text);
        }
    }
}

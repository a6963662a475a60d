//! UserSig version 2: the admin's signature that every REST call carries, made
//! from the app's secret key. The same code signs (the client) and verifies (the
//! emulator), so both follow the vendor's algorithm exactly.

use super::codes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// The app's secret key. It never appears in `Debug` output and is wiped from
/// memory when dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why no secret key could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The variable is not set.
    #[error(
        "the secret key variable ${0} is not set; export it (the key is shown in the Chat console) or pass --secret-key-file"
    )]
    Unset(String),
    /// The variable or file is empty.
    #[error("the secret key in {0} is empty")]
    Empty(String),
    /// The variable is not valid UTF-8.
    #[error("the secret key variable ${0} is not valid UTF-8")]
    NotUnicode(String),
    /// The file cannot be read.
    #[error("cannot read the secret key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl SecretKey {
    /// A key from its text.
    pub fn new(key: impl Into<String>) -> Result<SecretKey, SecretKeyError> {
        let key = Zeroizing::new(key.into());
        if key.is_empty() {
            return Err(SecretKeyError::Empty("the given text".into()));
        }
        Ok(SecretKey(key))
    }

    /// The key held by the environment variable `name`.
    pub fn from_env(name: &str) -> Result<SecretKey, SecretKeyError> {
        match std::env::var(name) {
            Ok(key) if key.trim().is_empty() => Err(SecretKeyError::Empty(format!("${name}"))),
            Ok(key) => Ok(SecretKey(Zeroizing::new(key))),
            Err(std::env::VarError::NotPresent) => Err(SecretKeyError::Unset(name.to_string())),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretKeyError::NotUnicode(name.to_string())),
        }
    }

    /// The key stored in a file: its first line exactly, without its line ending
    /// (`\n` or `\r\n`); what follows is not read as part of it. An empty (or
    /// blank) first line is an error naming the file, never showing its content.
    pub fn from_file(path: &Path) -> Result<SecretKey, SecretKeyError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| SecretKeyError::File { path: path.display().to_string(), source })?,
        );
        let line = text.split('\n').next().unwrap_or_default();
        let key = line.strip_suffix('\r').unwrap_or(line);
        if key.trim().is_empty() {
            return Err(SecretKeyError::Empty(path.display().to_string()));
        }
        Ok(SecretKey(Zeroizing::new(key.to_string())))
    }

    /// The key's text, for signing and for leak checks in tests.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A UserSig. It never appears in `Debug` output; [`UserSig::expose`] is for the
/// one place that puts it into a request.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSig(String);

impl fmt::Debug for UserSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserSig(<redacted>)")
    }
}

impl UserSig {
    /// The UserSig's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What a UserSig says, once decoded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The identifier signed for.
    #[serde(rename = "TLS.identifier")]
    pub identifier: String,
    /// The app.
    #[serde(rename = "TLS.sdkappid")]
    pub sdkappid: u64,
    /// When it was made (Unix seconds).
    #[serde(rename = "TLS.time")]
    pub time: u64,
    /// How long it is valid (seconds from `time`).
    #[serde(rename = "TLS.expire")]
    pub expire: u64,
    /// The HMAC, standard base64.
    #[serde(rename = "TLS.sig")]
    pub sig: String,
    /// Optional user data, standard base64.
    #[serde(rename = "TLS.userbuf", default)]
    pub userbuf: Option<String>,
    #[serde(rename = "TLS.ver")]
    version: String,
}

/// Why a UserSig is refused, each with the code the service answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a UserSig at all.
    #[error("UserSig is malformed: {0}")]
    Malformed(String),
    /// Made for another app.
    #[error("UserSig was made for sdkappid {signed}, the request is for {requested}")]
    SdkAppIdMismatch {
        /// What the UserSig was made for.
        signed: u64,
        /// What the request is for.
        requested: u64,
    },
    /// Made for another identifier.
    #[error("UserSig was made for identifier {signed:?}, the request is for {requested:?}")]
    IdentifierMismatch {
        /// What the UserSig was made for.
        signed: String,
        /// What the request is for.
        requested: String,
    },
    /// The signature does not match (a wrong secret key).
    #[error("UserSig signature does not verify (wrong secret key?)")]
    BadSignature,
    /// Past its validity.
    #[error("UserSig expired at {expired_at} (now {now})")]
    Expired {
        /// When it expired (Unix seconds).
        expired_at: u64,
        /// When it was checked (Unix seconds).
        now: u64,
    },
}

impl VerifyError {
    /// The error code the REST API answers for this failure.
    pub fn code(&self) -> u32 {
        match self {
            VerifyError::Malformed(_) => codes::USERSIG_MALFORMED.code,
            VerifyError::SdkAppIdMismatch { .. } => codes::USERSIG_SDKAPPID_MISMATCH.code,
            VerifyError::IdentifierMismatch { .. } => codes::USERSIG_IDENTIFIER_MISMATCH.code,
            VerifyError::BadSignature => codes::USERSIG_BAD_SIGNATURE.code,
            VerifyError::Expired { .. } => codes::USERSIG_EXPIRED.code,
        }
    }
}

/// The HMAC-SHA256 of the content lines, standard base64. The key is used as
/// text (its UTF-8 bytes), not hex-decoded.
pub fn tls_sig(
    key: &SecretKey,
    identifier: &str,
    sdkappid: u64,
    time: u64,
    expire: u64,
    userbuf: Option<&str>,
) -> String {
    STANDARD.encode(mac(key, &content(identifier, sdkappid, time, expire, userbuf)).finalize().into_bytes())
}

fn mac(key: &SecretKey, content: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(content.as_bytes());
    mac
}

/// The signed text: one `TLS.name:value` line per field, in the vendor's order.
fn content(identifier: &str, sdkappid: u64, time: u64, expire: u64, userbuf: Option<&str>) -> String {
    let mut content =
        format!("TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n");
    if let Some(userbuf) = userbuf {
        content.push_str(&format!("TLS.userbuf:{userbuf}\n"));
    }
    content
}

/// Makes a UserSig for `identifier`, valid `expire` seconds from `time` (Unix seconds).
pub fn generate(key: &SecretKey, sdkappid: u64, identifier: &str, expire: u64, time: u64) -> UserSig {
    let sig = tls_sig(key, identifier, sdkappid, time, expire, None);
    let document = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": time,
        "TLS.sig": sig,
    });
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(document.to_string().as_bytes());
    let compressed = encoder.finish().unwrap_or_default();
    UserSig(to_url_safe(&STANDARD.encode(compressed)))
}

/// UserSigs use base64 with `+ / =` replaced by `* - _`, to travel in a query string.
const STANDARD_CHARS: [char; 3] = ['+', '/', '='];
const USERSIG_CHARS: [char; 3] = ['*', '-', '_'];

fn translate(text: &str, from: [char; 3], to: [char; 3]) -> String {
    text.chars().map(|c| from.iter().position(|f| *f == c).map_or(c, |i| to[i])).collect()
}

pub(super) fn to_url_safe(base64: &str) -> String {
    translate(base64, STANDARD_CHARS, USERSIG_CHARS)
}

pub(super) fn from_url_safe(text: &str) -> String {
    translate(text, USERSIG_CHARS, STANDARD_CHARS)
}

/// Decodes a UserSig without checking it.
pub fn decode(usersig: &str) -> Result<Claims, VerifyError> {
    // A real UserSig inflates to a few hundred bytes; refuse anything that would
    // inflate far beyond that.
    const MAX_JSON: u64 = 16 * 1024;
    let compressed =
        STANDARD.decode(from_url_safe(usersig)).map_err(|e| VerifyError::Malformed(format!("base64: {e}")))?;
    let mut json = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_JSON)
        .read_to_end(&mut json)
        .map_err(|e| VerifyError::Malformed(format!("zlib: {e}")))?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|e| VerifyError::Malformed(format!("json: {e}")))?;
    if claims.version != "2.0" {
        return Err(VerifyError::Malformed(format!("version {:?}, expected \"2.0\"", claims.version)));
    }
    Ok(claims)
}

/// Checks a UserSig as the service does: for `sdkappid` and `identifier`, signed
/// with `key`, and valid at `now` (Unix seconds).
pub fn verify(
    key: &SecretKey,
    usersig: &str,
    sdkappid: u64,
    identifier: &str,
    now: u64,
) -> Result<Claims, VerifyError> {
    let claims = decode(usersig)?;
    if claims.sdkappid != sdkappid {
        return Err(VerifyError::SdkAppIdMismatch { signed: claims.sdkappid, requested: sdkappid });
    }
    if claims.identifier != identifier {
        return Err(VerifyError::IdentifierMismatch { signed: claims.identifier, requested: identifier.to_string() });
    }
    let given = STANDARD.decode(&claims.sig).map_err(|_| VerifyError::BadSignature)?;
    // verify_slice compares in constant time.
    let signed = content(&claims.identifier, claims.sdkappid, claims.time, claims.expire, claims.userbuf.as_deref());
    mac(key, &signed).verify_slice(&given).map_err(|_| VerifyError::BadSignature)?;
    let expired_at = claims.time.saturating_add(claims.expire);
    if now > expired_at {
        return Err(VerifyError::Expired { expired_at, now });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::new("5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e").unwrap()
    }

    #[test]
    fn ours_verify_and_each_failure_has_its_own_code() {
        let sig = generate(&key(), 1400000000, "administrator", 86400, 1_764_000_000);
        let ok = verify(&key(), sig.expose(), 1400000000, "administrator", 1_764_000_000 + 86400).unwrap();
        assert_eq!((ok.time, ok.expire), (1_764_000_000, 86400));
        let other_key = SecretKey::new("another").unwrap();
        let cases = [
            (verify(&other_key, sig.expose(), 1400000000, "administrator", 1_764_000_000), 70009),
            (verify(&key(), sig.expose(), 1400000000, "bob", 1_764_000_000), 70013),
            (verify(&key(), sig.expose(), 1400000001, "administrator", 1_764_000_000), 70014),
            (verify(&key(), sig.expose(), 1400000000, "administrator", 1_764_000_000 + 86401), 70001),
            (verify(&key(), "not a usersig", 1400000000, "administrator", 0), 70003),
            (verify(&key(), "", 1400000000, "administrator", 0), 70003),
        ];
        for (result, code) in cases {
            assert_eq!(result.unwrap_err().code(), code);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let sig = generate(&key(), 1, "a", 1, 1);
        assert_eq!(format!("{:?}", key()), "SecretKey(<redacted>)");
        assert_eq!(format!("{sig:?}"), "UserSig(<redacted>)");
    }

    #[test]
    fn a_zlib_bomb_is_malformed_not_a_hang() {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![b' '; 10_000_000]).unwrap();
        let bomb = to_url_safe(&STANDARD.encode(encoder.finish().unwrap()));
        assert_eq!(decode(&bomb).unwrap_err().code(), 70003);
    }
}

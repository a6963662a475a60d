//! An `s3://BUCKET/PREFIX` state URL and where its connection comes from: the URL's
//! own settings (`endpoint`, `region`, `addressing`, `timeout`), then the variables
//! every AWS tool reads (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, …), then the profile in the AWS shared files
//! (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`). Credentials never come from
//! the URL (nor, so, from grattr.yaml) and never show in a label, a `Debug` or an error.

use super::super::StateError;
use ini::Ini;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one request to the bucket may take unless the URL's `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a bucket is named in a request: in the path (`https://HOST/BUCKET/KEY`) or in the
/// host name (`https://BUCKET.HOST/KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://HOST/BUCKET/KEY`: MinIO, most self-hosted services, test servers.
    Path,
    /// `https://BUCKET.HOST/KEY`: AWS's default, and what Tencent Cloud COS requires.
    Virtual,
}

/// A parsed `s3://` state URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The bucket.
    pub bucket: String,
    /// The prefix every object of the record is under ("" for the bucket's root).
    pub prefix: String,
    /// The service's address (`endpoint=`), when it is not AWS.
    pub endpoint: Option<String>,
    /// The region (`region=`).
    pub region: Option<String>,
    /// How the bucket is addressed (`addressing=`).
    pub addressing: Option<Addressing>,
    /// How long one request may take (`timeout=`).
    pub timeout: Duration,
}

/// The settings a URL may carry.
const SETTINGS: &str = "endpoint, region, addressing, timeout";

impl Config {
    /// Reads `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&addressing=path|virtual&timeout=10s]`.
    pub fn parse(url: &str) -> Result<Config, StateError> {
        let fail = |message: String| StateError::Url { url: shown(url), message };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("s3") => rest,
            _ => return Err(fail("an S3 state URL starts with s3://".into())),
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.contains('@') {
            return Err(fail(
                "credentials never go in the state URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or name a profile of ~/.aws/credentials with AWS_PROFILE"
                    .into(),
            ));
        }
        check_bucket(bucket).map_err(|message| fail(message.into()))?;
        let prefix = prefix.trim_matches('/');
        // Keys exactly as written, whatever tool lists them: S3's safe characters only.
        let safe = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
        for segment in prefix.split('/').filter(|_| !prefix.is_empty()) {
            if segment.is_empty() || segment == "." || segment == ".." || !segment.chars().all(safe) {
                return Err(fail(format!(
                    "the prefix {:?} has an empty, `.` or `..` part, or a character other than letters, digits \
                     and ! - _ . * ' ( ) (S3's safe characters, which every tool lists as written)",
                    crate::escape::text(prefix)
                )));
            }
        }
        let mut config = Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            region: None,
            addressing: None,
            timeout: DEFAULT_TIMEOUT,
        };
        let mut seen = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if seen.contains(&key) {
                return Err(fail(format!("`{}` is given twice", crate::escape::text(&key))));
            }
            match &*key {
                "endpoint" => config.endpoint = Some(endpoint(&value).map_err(fail)?),
                "region" => {
                    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                        return Err(fail(format!("region {:?} is not a region name", crate::escape::text(&value))));
                    }
                    config.region = Some(value.to_string());
                }
                "addressing" => {
                    config.addressing = Some(match &*value {
                        "path" => Addressing::Path,
                        "virtual" => Addressing::Virtual,
                        other => {
                            return Err(fail(format!(
                                "addressing {:?}: `path` (https://HOST/BUCKET) or `virtual` (https://BUCKET.HOST)",
                                crate::escape::text(other)
                            )));
                        }
                    });
                }
                "timeout" => {
                    let timeout = humantime::parse_duration(&value)
                        .ok()
                        .filter(|t| (Duration::from_secs(1)..=Duration::from_secs(600)).contains(t))
                        .ok_or_else(|| fail("timeout is a duration from 1s to 10m, such as 10s".into()))?;
                    config.timeout = timeout;
                }
                other => {
                    return Err(fail(format!(
                        "unknown setting `{}` (the settings are {SETTINGS}; credentials come from the \
                         environment or ~/.aws, never from the URL)",
                        crate::escape::text(other)
                    )));
                }
            }
            seen.push(key);
        }
        Ok(config)
    }

    /// `s3://BUCKET/PREFIX`, and the endpoint when it is not AWS: for messages.
    pub fn label(&self) -> String {
        let mut label = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            label.push('/');
            label.push_str(&crate::escape::text(&self.prefix));
        }
        if let Some(endpoint) = &self.endpoint {
            label.push_str(" at ");
            label.push_str(endpoint);
        }
        label
    }
}

/// A URL shown in an error: up to its settings, which may be mistyped secrets.
fn shown(url: &str) -> String {
    let location = url.split('?').next().unwrap_or_default();
    let location = match location.split_once('@') {
        Some((_, after)) => format!("s3://…@{after}"),
        None => location.to_string(),
    };
    crate::escape::text(&location).into_owned()
}

/// S3's rules for a bucket's name: 3 to 63 lower-case letters, digits, dots and
/// hyphens, beginning and ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    match bucket {
        "" => Err("the URL names no bucket: s3://BUCKET/PREFIX"),
        _ if !(3..=63).contains(&bucket.len())
            || !bucket.chars().all(allowed)
            || !edge(bucket.chars().next())
            || !edge(bucket.chars().last()) =>
        {
            Err("a bucket's name is 3 to 63 lower-case letters, digits, dots and hyphens")
        }
        _ => Ok(()),
    }
}

/// An endpoint: `http(s)://HOST[:PORT][/PATH]`, without credentials; kept without its
/// trailing slash.
pub(super) fn endpoint(text: &str) -> Result<String, String> {
    let parsed =
        reqwest::Url::parse(text).map_err(|e| format!("endpoint {:?} is not a URL: {e}", crate::escape::text(text)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("endpoint {:?} is not an http:// or https:// address", crate::escape::text(text)));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials never go in the endpoint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("an endpoint has no query or fragment".into());
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// What the AWS shared files say for one profile: credentials, region, endpoint.
#[derive(Default, PartialEq, Eq)]
pub(super) struct Profile {
    pub(super) access_key_id: Option<String>,
    pub(super) secret_access_key: Option<zeroize::Zeroizing<String>>,
    pub(super) session_token: Option<zeroize::Zeroizing<String>>,
    pub(super) region: Option<String>,
    pub(super) endpoint: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Keys of a profile that name a way of getting credentials grattr does not follow.
const UNSUPPORTED: [&str; 5] =
    ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"];

impl Profile {
    /// The profile `AWS_PROFILE` names (or `default`) in the shared credentials and
    /// config files, as `env` gives their places (`AWS_SHARED_CREDENTIALS_FILE`,
    /// `AWS_CONFIG_FILE`, `HOME`). No files and no `AWS_PROFILE`: an empty profile.
    pub(super) fn load(env: impl Fn(&str) -> Option<String>) -> Result<Profile, String> {
        let named = env("AWS_PROFILE").filter(|p| !p.is_empty());
        let name = named.clone().unwrap_or_else(|| "default".into());
        let home = env("HOME").or_else(|| env("USERPROFILE")).map(PathBuf::from);
        let place = |var: &str, file: &str| {
            env(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
        };
        let credentials = place("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config = place("AWS_CONFIG_FILE", "config");
        let mut profile = Profile::default();
        let mut found = false;
        let mut unsupported = None;
        // The credentials file's sections are profile names; the config file's are
        // `default` or `profile NAME`. The credentials file wins where both say.
        for (file, section) in [(&config, config_section(&name)), (&credentials, name.clone())] {
            let Some(file) = file else { continue };
            let Some(ini) = read(file)? else { continue };
            let Some(values) = ini.section(Some(section.as_str())) else { continue };
            found = true;
            let get = |key: &str| values.get(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
            if let Some(v) = get("aws_access_key_id") {
                profile.access_key_id = Some(v);
            }
            if let Some(v) = get("aws_secret_access_key") {
                profile.secret_access_key = Some(v.into());
            }
            if let Some(v) = get("aws_session_token") {
                profile.session_token = Some(v.into());
            }
            if let Some(v) = get("region") {
                profile.region = Some(v);
            }
            if let Some(v) = get("endpoint_url") {
                profile.endpoint = Some(v);
            }
            unsupported = unsupported.or_else(|| UNSUPPORTED.into_iter().find(|key| values.contains_key(key)));
        }
        if !found && named.is_some() {
            let files: Vec<String> =
                [credentials, config].into_iter().flatten().map(|f| crate::escape::path(&f)).collect();
            return Err(format!(
                "AWS_PROFILE names the profile {:?}, which is in none of {}",
                crate::escape::text(&name),
                files.join(", ")
            ));
        }
        if let (Some(key), None) = (unsupported, &profile.access_key_id) {
            return Err(format!(
                "the AWS profile {:?} gets its credentials by `{key}`, which grattr does not follow: \
                 export them first (`eval \"$(aws configure export-credentials --profile {} --format env)\"`)",
                crate::escape::text(&name),
                crate::escape::text(&name),
            ));
        }
        Ok(profile)
    }
}

/// A profile's section in the config file.
fn config_section(name: &str) -> String {
    match name {
        "default" => "default".into(),
        other => format!("profile {other}"),
    }
}

/// An INI file, or `None` when there is none.
fn read(file: &Path) -> Result<Option<Ini>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ini::load_from_str(&text)
            .map(Some)
            .map_err(|e| format!("{} is not an AWS shared file: {e}", crate::escape::path(file))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", crate::escape::path(file))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_bucket_prefix_and_settings() {
        let config = Config::parse(
            "s3://team-state/grattr/prod?endpoint=http://127.0.0.1:9000/&region=eu-west-1&addressing=path&timeout=3s",
        )
        .unwrap();
        assert_eq!(config.bucket, "team-state");
        assert_eq!(config.prefix, "grattr/prod");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.addressing, Some(Addressing::Path));
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.label(), "s3://team-state/grattr/prod at http://127.0.0.1:9000");
        let bare = Config::parse("S3://bucket").unwrap();
        assert_eq!((bare.prefix.as_str(), bare.timeout, bare.endpoint), ("", DEFAULT_TIMEOUT, None));
    }

    #[test]
    fn bad_urls_are_refused_and_never_show_a_secret() {
        for (url, says) in [
            ("s3://AKIA:s3cr3t@bucket/x", "credentials never go in the state URL"),
            ("s3://bucket/x?endpoint=https://AKIA:s3cr3t@minio.example", "credentials never go in the endpoint"),
            ("s3://bucket/x?secret_access_key=s3cr3t", "unknown setting `secret_access_key`"),
            ("s3://Bucket_Name/x", "a bucket's name"),
            ("s3:///x", "names no bucket"),
            ("s3://bucket/a/../b", "`..`"),
            ("s3://bucket/pr%C3%A9fixe", "safe characters"),
            ("s3://bucket/my prefix", "safe characters"),
            ("s3://bucket/x#frag", "safe characters"),
            ("s3://bucket/x?addressing=dns", "addressing"),
            ("s3://bucket/x?timeout=0s", "timeout"),
            ("s3://bucket/x?region=a&region=b", "given twice"),
            ("s3://bucket/x?endpoint=ftp://host", "not an http"),
        ] {
            let error = Config::parse(url).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("s3cr3t"), "{url}: {error}");
        }
    }

    fn files(credentials: &str, config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        std::fs::write(dir.path().join("config"), config).unwrap();
        dir
    }

    fn load(dir: &tempfile::TempDir, profile: Option<&str>) -> Result<Profile, String> {
        let (credentials, config) = (dir.path().join("credentials"), dir.path().join("config"));
        Profile::load(|var| match var {
            "AWS_SHARED_CREDENTIALS_FILE" => Some(credentials.display().to_string()),
            "AWS_CONFIG_FILE" => Some(config.display().to_string()),
            "AWS_PROFILE" => profile.map(str::to_string),
            _ => None,
        })
    }

    #[test]
    fn a_profile_is_read_from_both_shared_files() {
        let dir = files(
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n[ci]\naws_access_key_id=AKIACI\naws_secret_access_key=c\naws_session_token=t\n",
            "[default]\nregion = us-east-2\n\n[profile ci]\nregion = ap-guangzhou\nendpoint_url = https://cos.ap-guangzhou.myqcloud.com\n",
        );
        let default = load(&dir, None).unwrap();
        assert_eq!(default.access_key_id.as_deref(), Some("AKIADEFAULT"));
        assert_eq!(default.region.as_deref(), Some("us-east-2"));
        let ci = load(&dir, Some("ci")).unwrap();
        assert_eq!(ci.access_key_id.as_deref(), Some("AKIACI"));
        assert_eq!(ci.session_token.as_deref().map(String::as_str), Some("t"));
        assert_eq!(ci.endpoint.as_deref(), Some("https://cos.ap-guangzhou.myqcloud.com"));
        assert!(!format!("{ci:?}").contains("\"c\""), "the secret shows in Debug");
        let missing = load(&dir, Some("nope")).unwrap_err();
        assert!(missing.contains("\"nope\""), "{missing}");
        let none = Profile::load(|_| None).unwrap();
        assert_eq!(none, Profile::default());
    }

    #[test]
    fn a_profile_that_assumes_a_role_is_named_not_followed() {
        let dir = files("", "[profile deploy]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n");
        let error = load(&dir, Some("deploy")).unwrap_err();
        assert!(error.contains("role_arn") && error.contains("export-credentials"), "{error}");
    }
}

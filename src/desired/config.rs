//! `grattr.yaml`: which app, which admin, where the groups and the lockfile
//! live, and named environments (staging, production) that override the top level.

use super::diagnostic::{Diagnostic, Rule, display_path};
use super::yaml;
use crate::model::Region;
use crate::model::SourceLocation;
use crate::model::limits::MAX_RATE_LIMIT;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The default name of the variable that holds the secret key.
pub const DEFAULT_SECRET_KEY_ENV: &str = "GRATTR_SECRET_KEY";

/// The settings of `grattr.yaml`. The top level and each environment take the
/// same fields; an environment's fields override the top level's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsDoc {
    sdkappid: Option<Spanned<u64>>,
    admin: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    groups: Option<Spanned<String>>,
    lockfile: Option<Spanned<String>>,
    secret_key_env: Option<Spanned<String>>,
    prune: Option<Spanned<bool>>,
    rate_limit: Option<Spanned<u32>>,
    safety_threshold: Option<Spanned<u32>>,
    connect_timeout: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    environments: Option<Spanned<BTreeMap<String, Spanned<SettingsDoc>>>>,
}

/// A parsed `grattr.yaml`.
#[derive(Debug, Clone)]
pub struct Config {
    file: Arc<Path>,
    dir: PathBuf,
    top: SettingsDoc,
}

/// How grattr reaches the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A documented region.
    Region(Region),
    /// A base URL from `endpoint:` or `--endpoint` (a proxy or the emulator).
    Url(String),
}

impl Endpoint {
    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> String {
        match self {
            Endpoint::Region(region) => region.base_url(),
            Endpoint::Url(url) => url.clone(),
        }
    }
}

/// One fully resolved environment: everything a command needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The environment's name, when `grattr.yaml` defines environments.
    pub name: Option<String>,
    /// The app.
    pub sdkappid: u64,
    /// The app admin account the REST API is called as.
    pub admin: String,
    /// Where the REST API is.
    pub endpoint: Endpoint,
    /// The directory of group files.
    pub groups_dir: PathBuf,
    /// The lockfile (its journal and lock beside it).
    pub lockfile: PathBuf,
    /// The configured lockfile, in the repository, when a state directory holds
    /// [`Environment::lockfile`] instead: an empty state directory starts from it, once.
    pub seed_lockfile: Option<PathBuf>,
    /// The variable holding the secret key.
    pub secret_key_env: String,
    /// Whether groups no longer declared are cleared.
    pub prune: bool,
    /// App-wide calls per second (1 to [`MAX_RATE_LIMIT`]).
    pub rate_limit: u32,
    /// `apply` refuses, without `--force`, a plan that updates or deletes more than
    /// this percentage of the groups the lockfile records.
    pub safety_threshold: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request.
    pub request_timeout: Duration,
}

impl Environment {
    /// A digest of what identifies the environment's target: app, admin and endpoint.
    pub fn digest(&self) -> crate::model::Digest {
        let mut digest = crate::model::DigestBuilder::new();
        digest
            .field(self.name.as_deref().unwrap_or_default().as_bytes())
            .field(&self.sdkappid.to_le_bytes())
            .field(self.admin.as_bytes())
            .field(self.endpoint.base_url().as_bytes());
        digest.finish()
    }

    /// Keeps the lockfile, its journal and its lock in `dir` rather than where the
    /// configuration puts them (in a git checkout, which a `git pull` must find
    /// clean). The file keeps its configured name, so that the environments of one
    /// repository keep their own records in one directory; the configured lockfile
    /// becomes the seed of an empty state directory.
    pub fn with_state_dir(mut self, dir: &Path) -> Environment {
        let name = self.lockfile.file_name().map_or_else(|| "grattr.lock".into(), |n| n.to_os_string());
        let lockfile = dir.join(name);
        self.seed_lockfile = Some(std::mem::replace(&mut self.lockfile, lockfile));
        self
    }

    /// A short description for plan headers: `production (sdkappid 1400000000)`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} (sdkappid {})", self.sdkappid),
            None => format!("sdkappid {}", self.sdkappid),
        }
    }
}

impl Config {
    /// Reads `path`. A missing file, invalid YAML, unknown fields and wrong types are diagnostics.
    pub fn load(path: &Path) -> Result<Config, Diagnostic> {
        let file: Arc<Path> = Arc::from(display_path(path));
        let text = std::fs::read_to_string(path).map_err(|e| {
            let location = SourceLocation { file: file.clone(), line: 0, column: 0 };
            let diagnostic = Diagnostic::error(Rule::Config, location, format!("cannot read the configuration: {e}"));
            if e.kind() == std::io::ErrorKind::NotFound {
                diagnostic.with_help("run grattr in the directory that holds grattr.yaml, or pass --config PATH")
            } else {
                diagnostic
            }
        })?;
        Config::parse(path, &text)
    }

    /// Parses the text of a configuration file found at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostic> {
        let file: Arc<Path> = Arc::from(display_path(path));
        let top: SettingsDoc = serde_saphyr::from_str_with_options(text, yaml::options())
            .map_err(|e| yaml::diagnostic(&file, text, &e))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Config { file, dir, top })
    }

    /// The names of the environments defined.
    pub fn environment_names(&self) -> Vec<String> {
        self.top.environments.as_ref().map(|envs| envs.value.keys().cloned().collect()).unwrap_or_default()
    }

    /// Resolves the environment to use: `name` must be given exactly when the file
    /// defines environments. `endpoint` (from `--endpoint`) overrides the configured one.
    pub fn environment(&self, name: Option<&str>, endpoint: Option<&str>) -> Result<Environment, Diagnostic> {
        let at = |location: Option<&serde_saphyr::Location>| match location {
            Some(l) => yaml::locate(&self.file, l),
            None => SourceLocation { file: self.file.clone(), line: 1, column: 1 },
        };
        let error = |location, message: String| Diagnostic::error(Rule::Config, location, message);

        let (env, env_at) = match (&self.top.environments, name) {
            (Some(envs), Some(name)) => match envs.value.get(name) {
                Some(env) => (Some(&env.value), Some(&env.referenced)),
                None => {
                    let known = self.environment_names().join(", ");
                    return Err(error(
                        at(Some(&envs.referenced)),
                        format!("no environment named {name:?}; defined: {known}"),
                    ));
                }
            },
            (Some(envs), None) => {
                let known = self.environment_names().join(", ");
                return Err(error(
                    at(Some(&envs.referenced)),
                    format!("grattr.yaml defines environments ({known}); choose one with --env NAME"),
                )
                .with_help("or set GRATTR_ENV"));
            }
            (None, Some(name)) => {
                return Err(error(at(None), format!("--env {name}: grattr.yaml defines no environments"))
                    .with_help("add an `environments:` mapping, or drop --env"));
            }
            (None, None) => (None, None),
        };
        if let Some(nested) = env.and_then(|e| e.environments.as_ref()) {
            return Err(error(at(Some(&nested.referenced)), "environments cannot be nested".into()));
        }

        // An environment's field wins over the top level's.
        macro_rules! pick {
            ($field:ident) => {
                env.and_then(|e| e.$field.as_ref()).or(self.top.$field.as_ref())
            };
        }
        let missing = |field: &str| {
            let place = match name {
                Some(name) => format!("in environment {name:?} or at the top level"),
                None => "at the top level".into(),
            };
            error(at(env_at), format!("missing field `{field}` ({place})"))
        };

        let sdkappid = pick!(sdkappid).ok_or_else(|| missing("sdkappid"))?;
        if sdkappid.value == 0 || sdkappid.value > u64::from(u32::MAX) {
            return Err(error(
                at(Some(&sdkappid.referenced)),
                format!("sdkappid {} is out of range (1 to {})", sdkappid.value, u32::MAX),
            ));
        }
        let admin = pick!(admin).ok_or_else(|| missing("admin"))?;
        if admin.value.trim().is_empty() {
            return Err(error(at(Some(&admin.referenced)), "admin is empty; name the app admin account".into()));
        }

        // region and endpoint are one choice: the most specific level that sets either wins.
        let (region, configured_endpoint) = match env {
            Some(e) if e.region.is_some() || e.endpoint.is_some() => (e.region.as_ref(), e.endpoint.as_ref()),
            _ => (self.top.region.as_ref(), self.top.endpoint.as_ref()),
        };
        if let (Some(_), Some(url)) = (region, configured_endpoint) {
            return Err(error(at(Some(&url.referenced)), "set either `region` or `endpoint`, not both".into()));
        }
        let endpoint = match (endpoint, configured_endpoint, region) {
            (Some(url), _, _) => {
                Endpoint::Url(check_url(url).map_err(|m| error(at(None), format!("--endpoint: {m}")))?)
            }
            (None, Some(url), _) => Endpoint::Url(
                check_url(&url.value).map_err(|m| error(at(Some(&url.referenced)), format!("endpoint: {m}")))?,
            ),
            (None, None, Some(region)) => Endpoint::Region(Region::named(&region.value).ok_or_else(|| {
                error(
                    at(Some(&region.referenced)),
                    format!("unknown region {:?}; regions: {}", region.value, Region::names()),
                )
            })?),
            (None, None, None) => return Err(missing("region` or `endpoint")),
        };

        let secret_key_env = pick!(secret_key_env).map_or(DEFAULT_SECRET_KEY_ENV.to_string(), |v| v.value.clone());
        if secret_key_env.is_empty() || secret_key_env.contains(['=', '\0']) {
            let location = at(pick!(secret_key_env).map(|v| &v.referenced));
            return Err(error(location, format!("secret_key_env {secret_key_env:?} is not a valid variable name")));
        }
        let rate_limit = match pick!(rate_limit) {
            None => crate::model::limits::DEFAULT_RATE_LIMIT,
            Some(rate) if (1..=MAX_RATE_LIMIT).contains(&rate.value) => rate.value,
            Some(rate) => {
                return Err(error(
                    at(Some(&rate.referenced)),
                    format!(
                        "rate_limit {} is out of range: 1 to {MAX_RATE_LIMIT} calls per second (the documented limit)",
                        rate.value
                    ),
                ));
            }
        };
        let safety_threshold = match pick!(safety_threshold) {
            None => 30,
            Some(percent) if percent.value <= 100 => percent.value,
            Some(percent) => {
                return Err(error(
                    at(Some(&percent.referenced)),
                    format!("safety_threshold {} is not a percentage (0 to 100)", percent.value),
                ));
            }
        };
        let duration = |value: Option<&Spanned<String>>, default: Duration| match value {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(&text.value) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(error(
                    at(Some(&text.referenced)),
                    format!("{:?} is not a duration such as 5s or 1m", text.value),
                )),
            },
        };
        let connect_timeout = duration(pick!(connect_timeout), Duration::from_secs(5))?;
        let request_timeout = duration(pick!(request_timeout), Duration::from_secs(30))?;
        let path_of = |value: Option<&Spanned<String>>, default: &str| {
            let relative = value.map_or(default, |v| v.value.as_str());
            self.dir.join(relative)
        };
        Ok(Environment {
            name: name.map(str::to_string),
            sdkappid: sdkappid.value,
            admin: admin.value.clone(),
            endpoint,
            groups_dir: path_of(pick!(groups), "groups"),
            lockfile: path_of(pick!(lockfile), "grattr.lock"),
            seed_lockfile: None,
            secret_key_env,
            prune: pick!(prune).is_some_and(|p| p.value),
            rate_limit,
            safety_threshold,
            connect_timeout,
            request_timeout,
        })
    }
}

/// Checks a base URL and removes a trailing slash.
fn check_url(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        None => Err(format!("{url:?} is not an http:// or https:// URL")),
        Some(host) if host.is_empty() || host.starts_with('/') => Err(format!("{url:?} has no host")),
        Some(_) if url.contains(['?', '#', ' ']) => {
            Err(format!("{url:?} must be a base URL without query, fragment or spaces"))
        }
        Some(_) => Ok(url.trim_end_matches('/').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("repo/grattr.yaml"), text).unwrap()
    }

    #[test]
    fn single_environment_with_defaults() {
        let env =
            config("sdkappid: 1400000000\nadmin: administrator\nregion: singapore\n").environment(None, None).unwrap();
        assert_eq!(env.endpoint.base_url(), "https://adminapisgp.im.qcloud.com");
        assert_eq!(env.groups_dir, Path::new("repo/groups"));
        assert_eq!(env.lockfile, Path::new("repo/grattr.lock"));
        assert_eq!(env.secret_key_env, "GRATTR_SECRET_KEY");
        assert!(!env.prune);
    }

    #[test]
    fn environments_override_the_top_level() {
        let c = config(
            "admin: administrator\nregion: singapore\nenvironments:\n  staging:\n    sdkappid: 1400000001\n    endpoint: http://127.0.0.1:9000/\n    lockfile: staging.lock\n  production:\n    sdkappid: 1400000000\n    prune: true\n",
        );
        let staging = c.environment(Some("staging"), None).unwrap();
        assert_eq!(staging.endpoint, Endpoint::Url("http://127.0.0.1:9000".into()));
        assert_eq!(staging.lockfile, Path::new("repo/staging.lock"));
        let production = c.environment(Some("production"), Some("http://localhost:1")).unwrap();
        assert_eq!(production.endpoint, Endpoint::Url("http://localhost:1".into()));
        assert!(production.prune);
        assert_eq!(production.label(), "production (sdkappid 1400000000)");
        let served = staging.with_state_dir(Path::new("/var/lib/grattr"));
        assert_eq!(served.lockfile, Path::new("/var/lib/grattr/staging.lock"));
        assert_eq!(served.seed_lockfile.as_deref(), Some(Path::new("repo/staging.lock")));
        let no_env = c.environment(None, None).unwrap_err();
        assert!(no_env.message.contains("choose one with --env"), "{no_env}");
        let unknown = c.environment(Some("qa"), None).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "repo/grattr.yaml:4:3: error: no environment named \"qa\"; defined: production, staging"
        );
    }

    #[test]
    fn every_mistake_points_at_its_line() {
        let cases = [
            ("sdkappid: 1\nadmin: a\nregoin: china\n", "repo/grattr.yaml:3:1: error: unknown field `regoin`"),
            ("sdkappid: x\n", "repo/grattr.yaml:1:11: error: wrong type: invalid u64"),
            ("sdkappid: 1\nprune: maybe\n", "repo/grattr.yaml:2:8: error: wrong type"),
            ("environments: [a]\n", "repo/grattr.yaml:1:15: error: wrong type: expected a mapping"),
        ];
        for (text, expected) in cases {
            let e = Config::parse(Path::new("repo/grattr.yaml"), text).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e}");
        }
        let resolved = [
            ("admin: a\nregion: china\n", "repo/grattr.yaml:1:1: error: missing field `sdkappid` (at the top level)"),
            ("sdkappid: 1\nadmin: a\nregion: mars\n", "repo/grattr.yaml:3:9: error: unknown region \"mars\""),
            ("sdkappid: 1\nadmin: a\nregion: china\nendpoint: http://x\n", "repo/grattr.yaml:4:11: error: set either"),
            (
                "sdkappid: 1\nadmin: a\nendpoint: ftp://x\n",
                "repo/grattr.yaml:3:11: error: endpoint: \"ftp://x\" is not",
            ),
            ("sdkappid: 0\nadmin: a\nregion: china\n", "repo/grattr.yaml:1:11: error: sdkappid 0 is out of range"),
            (
                "sdkappid: 1\nadmin: a\nregion: china\nrate_limit: 500\n",
                "repo/grattr.yaml:4:13: error: rate_limit 500 is out of range",
            ),
            (
                "sdkappid: 1\nadmin: a\nregion: china\nrequest_timeout: soon\n",
                "repo/grattr.yaml:4:18: error: \"soon\" is not a duration",
            ),
        ];
        for (text, expected) in resolved {
            let e = config(text).environment(None, None).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e}");
        }
    }
}

//! `grattr.yaml`: which app, which admin, where the groups and the lockfile
//! live, and named environments (staging, production) that override the top level.

use super::diagnostic::{Diagnostic, Rule, display_path};
use super::overlays::OverlayPath;
use super::shape::{Entries, Issue, Lenient, NodeList, Shape, read_fields, wrong_type};
use super::yaml::{self, Node};
use crate::model::SourceLocation;
use crate::model::{Ownership, Region};
use serde::de::MapAccess;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod check;
mod paths;

use check::{Checker, check_url};

/// The default name of the variable that holds the secret key.
pub const DEFAULT_SECRET_KEY_ENV: &str = "GRATTR_SECRET_KEY";

/// How long a writer's lease on a shared store's record lasts unless renewed, by
/// default: Kubernetes' own leader election uses the same.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// The fields of `grattr.yaml`, at the top level and in each environment.
const FIELDS: &[&str] = &[
    "sdkappid",
    "admin",
    "region",
    "endpoint",
    "groups",
    "lockfile",
    "state",
    "secret_key_env",
    "prune",
    "ownership",
    "rate_limit",
    "safety_threshold",
    "connect_timeout",
    "request_timeout",
    "overlays",
    "environments",
];

/// A value and where it was written.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    at: SourceLocation,
}

/// The settings of `grattr.yaml`, each checked on its own. The top level and each
/// environment take the same fields; an environment's fields override the top level's.
#[derive(Debug, Clone, Default)]
struct Settings {
    sdkappid: Option<At<u64>>,
    admin: Option<At<String>>,
    region: Option<At<Region>>,
    endpoint: Option<At<String>>,
    groups: Option<At<String>>,
    lockfile: Option<At<String>>,
    state: Option<At<String>>,
    secret_key_env: Option<At<String>>,
    prune: Option<At<bool>>,
    ownership: Option<At<Ownership>>,
    rate_limit: Option<At<u32>>,
    safety_threshold: Option<At<u32>>,
    connect_timeout: Option<At<Duration>>,
    request_timeout: Option<At<Duration>>,
    /// The overlay paths as written (relative to the file), with the place of the list.
    overlays: Option<At<Vec<At<String>>>>,
    /// The environments by name, with the place of the mapping and of each.
    environments: Option<At<BTreeMap<String, At<Settings>>>>,
}

/// The fields of one level as read, before their values are checked.
#[derive(Debug, Default)]
struct SettingsFields {
    values: Vec<(&'static str, Spanned<Node>)>,
    overlays: Option<Spanned<Lenient<NodeList>>>,
    environments: Option<Spanned<Lenient<EnvironmentEntries>>>,
    issues: Vec<Issue>,
}

impl Shape for SettingsFields {
    const EXPECTED: &'static str = "a mapping";
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let (mut values, mut overlays, mut environments) = (Vec::new(), None, None);
        let issues = read_fields(map, FIELDS, |field, _, map| {
            let field = FIELDS.iter().find(|f| **f == field).copied().unwrap_or_default();
            match field {
                "environments" => environments = Some(map.next_value()?),
                "overlays" => overlays = Some(map.next_value()?),
                _ => values.push((field, map.next_value()?)),
            }
            Ok(())
        })?;
        Ok(SettingsFields { values, overlays, environments, issues })
    }
}

/// The `environments:` mapping: each name and its settings.
type EnvironmentEntries = Entries<Spanned<Node>, Spanned<Lenient<SettingsFields>>>;

/// Every problem of a configuration, in file order: one run reports them all.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The configuration file, as shown.
    pub file: Arc<Path>,
    /// The problems, never empty.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    fn new(file: &Arc<Path>, mut diagnostics: Vec<Diagnostic>) -> ConfigErrors {
        diagnostics.sort_by_key(|d| (d.location.line, d.location.column));
        ConfigErrors { file: file.clone(), diagnostics }
    }
}

impl From<Diagnostic> for ConfigErrors {
    fn from(diagnostic: Diagnostic) -> ConfigErrors {
        ConfigErrors { file: diagnostic.location.file.clone(), diagnostics: vec![diagnostic] }
    }
}

impl std::error::Error for ConfigErrors {}

/// One diagnostic a line, as [`Diagnostic`] shows them.
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// A parsed `grattr.yaml`.
#[derive(Debug, Clone)]
pub struct Config {
    file: Arc<Path>,
    dir: PathBuf,
    top: Settings,
    /// Whether configured paths may lead outside the repository (`--allow-outside-paths`).
    outside_allowed: bool,
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
    /// Where the record lives when not in the lockfile's files: a shared store's URL
    /// (`postgres://USER@HOST:PORT/DATABASE`), from `state:`, `GRATTR_STATE` or `--state`.
    pub state: Option<String>,
    /// How long a writer's lease on a shared store's record lasts unless renewed
    /// (`--lease-ttl`): a standby takes over within it once the holder is gone.
    pub lease_ttl: Duration,
    /// The variable holding the secret key.
    pub secret_key_env: String,
    /// Whether groups no longer declared are cleared.
    pub prune: bool,
    /// The ownership of the groups whose file does not say (`ownership:`).
    pub ownership: Ownership,
    /// App-wide calls per second (1 to [`crate::model::limits::MAX_RATE_LIMIT`]).
    pub rate_limit: u32,
    /// `apply` refuses, without `--force`, a plan that updates or deletes more than
    /// this percentage of the groups the lockfile records.
    pub safety_threshold: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request.
    pub request_timeout: Duration,
    /// The overlays of the environment, in the order listed (its own `overlays:`,
    /// else the top level's): each patches the desired state for this environment.
    pub overlays: Vec<OverlayPath>,
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
        let name = self.lockfile.file_name().map_or_else(|| "grattr.lock".into(), std::ffi::OsStr::to_os_string);
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
    /// Reads `path`. A missing file and invalid YAML are one diagnostic; otherwise
    /// every unknown field and every value of the wrong type or out of range, at
    /// the top level and in every environment, is reported at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let file: Arc<Path> = Arc::from(display_path(path));
        let doc: Spanned<Lenient<SettingsFields>> = serde_saphyr::from_str_with_options(text, yaml::options())
            .map_err(|e| yaml::diagnostic(&file, text, &e))?;
        let mut checker = Checker { file: &file, text, diagnostics: Vec::new() };
        let top = match doc.value {
            Lenient::Found(fields) => checker.settings(fields, true),
            // An empty file: every required field is then reported missing.
            Lenient::Wrong("null") => Settings::default(),
            Lenient::Wrong(_) => {
                let at = yaml::locate(&file, &doc.referenced);
                checker.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
                Settings::default()
            }
        };
        if !checker.diagnostics.is_empty() {
            return Err(ConfigErrors::new(&file, checker.diagnostics));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Config { file, dir, top, outside_allowed: false })
    }

    /// Lets `groups:`, `lockfile:` and `overlays:` lead outside the repository (the
    /// directory of `grattr.yaml`), which [`Config::environment`] refuses by default:
    /// for a checkout whose configuration is trusted, given on the command line
    /// (`--allow-outside-paths`), never by the file itself.
    pub fn allow_outside_paths(mut self, allowed: bool) -> Config {
        self.outside_allowed = allowed;
        self
    }

    /// The names of the environments defined.
    pub fn environment_names(&self) -> Vec<String> {
        self.top.environments.as_ref().map(|envs| envs.value.keys().cloned().collect()).unwrap_or_default()
    }

    /// Resolves the environment to use: `name` must be given exactly when the file
    /// defines environments. `endpoint` (from `--endpoint`) overrides the configured
    /// one. Every problem is reported, not only the first.
    pub fn environment(&self, name: Option<&str>, endpoint: Option<&str>) -> Result<Environment, ConfigErrors> {
        let top_at = SourceLocation { file: self.file.clone(), line: 1, column: 1 };
        let error = |location: SourceLocation, message: String| Diagnostic::error(Rule::Config, location, message);

        let (env, env_at) = match (&self.top.environments, name) {
            (Some(envs), Some(name)) => match envs.value.get(name) {
                Some(env) => (Some(&env.value), Some(env.at.clone())),
                None => {
                    let known = self.environment_names().join(", ");
                    return Err(
                        error(envs.at.clone(), format!("no environment named {name:?}; defined: {known}")).into()
                    );
                }
            },
            (Some(envs), None) => {
                let known = self.environment_names().join(", ");
                return Err(error(
                    envs.at.clone(),
                    format!("grattr.yaml defines environments ({known}); choose one with --env NAME"),
                )
                .with_help("or set GRATTR_ENV")
                .into());
            }
            (None, Some(name)) => {
                return Err(error(top_at, format!("--env {name}: grattr.yaml defines no environments"))
                    .with_help("add an `environments:` mapping, or drop --env")
                    .into());
            }
            (None, None) => (None, None),
        };

        // An environment's field wins over the top level's.
        macro_rules! pick {
            ($field:ident) => {
                env.and_then(|e| e.$field.as_ref()).or(self.top.$field.as_ref())
            };
        }
        let mut problems = Vec::new();
        let mut missing = |field: &str| {
            let place = match name {
                Some(name) => format!("in environment {name:?} or at the top level"),
                None => "at the top level".into(),
            };
            problems
                .push(error(env_at.clone().unwrap_or(top_at.clone()), format!("missing field `{field}` ({place})")));
        };
        let sdkappid = pick!(sdkappid).map(|v| v.value);
        if sdkappid.is_none() {
            missing("sdkappid");
        }
        let admin = pick!(admin).map(|v| v.value.clone());
        if admin.is_none() {
            missing("admin");
        }
        // region and endpoint are one choice: the most specific level that sets either wins.
        let (region, configured_endpoint) = match env {
            Some(e) if e.region.is_some() || e.endpoint.is_some() => (e.region.as_ref(), e.endpoint.as_ref()),
            _ => (self.top.region.as_ref(), self.top.endpoint.as_ref()),
        };
        let endpoint = match (endpoint, configured_endpoint, region) {
            (_, Some(url), Some(_)) => {
                problems.push(error(url.at.clone(), "set either `region` or `endpoint`, not both".into()));
                None
            }
            (Some(url), _, _) => match check_url(url) {
                Ok(url) => Some(Endpoint::Url(url)),
                Err(m) => {
                    problems.push(error(top_at.clone(), format!("--endpoint: {m}")));
                    None
                }
            },
            (None, Some(url), _) => Some(Endpoint::Url(url.value.clone())),
            (None, None, Some(region)) => Some(Endpoint::Region(region.value)),
            (None, None, None) => {
                missing("region` or `endpoint");
                None
            }
        };
        let (Some(sdkappid), Some(admin), Some(endpoint)) = (sdkappid, admin, endpoint) else {
            return Err(ConfigErrors::new(&self.file, problems));
        };
        if !problems.is_empty() {
            return Err(ConfigErrors::new(&self.file, problems));
        }
        let path_of = |value: Option<&At<String>>, default: &str| {
            let relative = value.map_or(default, |v| v.value.as_str());
            self.dir.join(relative)
        };
        if !self.outside_allowed {
            let problems = self.paths_outside(env, &top_at);
            if !problems.is_empty() {
                return Err(ConfigErrors::new(&self.file, problems));
            }
        }
        Ok(Environment {
            name: name.map(str::to_string),
            sdkappid,
            admin,
            endpoint,
            groups_dir: path_of(pick!(groups), "groups"),
            lockfile: path_of(pick!(lockfile), "grattr.lock"),
            seed_lockfile: None,
            state: pick!(state).map(|v| v.value.clone()),
            lease_ttl: DEFAULT_LEASE_TTL,
            secret_key_env: pick!(secret_key_env).map_or(DEFAULT_SECRET_KEY_ENV.to_string(), |v| v.value.clone()),
            prune: pick!(prune).is_some_and(|p| p.value),
            ownership: pick!(ownership).map_or(Ownership::Group, |o| o.value),
            rate_limit: pick!(rate_limit).map_or(crate::model::limits::DEFAULT_RATE_LIMIT, |v| v.value),
            safety_threshold: pick!(safety_threshold).map_or(30, |v| v.value),
            connect_timeout: pick!(connect_timeout).map_or(Duration::from_secs(5), |v| v.value),
            request_timeout: pick!(request_timeout).map_or(Duration::from_secs(30), |v| v.value),
            overlays: pick!(overlays).map_or_else(Vec::new, |list| {
                let paths = list.value.iter();
                paths.map(|p| OverlayPath { path: self.dir.join(&p.value), at: p.at.clone() }).collect()
            }),
        })
    }
}

impl Config {
    /// A diagnostic for each configured path of the environment (`env`'s settings
    /// over the top level's) that leads outside the repository. A default path that
    /// is not written (`groups`, `grattr.lock`) is checked too, at `top_at`: it may
    /// be a symlink.
    fn paths_outside(&self, env: Option<&Settings>, top_at: &SourceLocation) -> Vec<Diagnostic> {
        let root = match paths::resolve(&self.dir) {
            Ok(root) => root,
            Err(why) => return vec![Diagnostic::error(Rule::OutsideRepository, top_at.clone(), why)],
        };
        let pick = |field: fn(&Settings) -> Option<&At<String>>| env.and_then(field).or(field(&self.top));
        // (how the setting reads in a message, the path as written, where)
        let mut settings: Vec<(String, &str, SourceLocation)> = Vec::new();
        for (field, default, value) in [
            ("groups", "groups", pick(|s| s.groups.as_ref())),
            ("lockfile", "grattr.lock", pick(|s| s.lockfile.as_ref())),
        ] {
            match value {
                Some(value) => settings.push((format!("`{field}: {}`", value.value), &value.value, value.at.clone())),
                None => settings.push((format!("`{field}` (by default `{default}`)"), default, top_at.clone())),
            }
        }
        let overlays = env.and_then(|e| e.overlays.as_ref()).or(self.top.overlays.as_ref());
        for overlay in overlays.map(|list| list.value.as_slice()).unwrap_or_default() {
            settings.push((format!("`overlays: {}`", overlay.value), &overlay.value, overlay.at.clone()));
        }
        settings
            .into_iter()
            .filter_map(|(setting, path, at)| paths::outside(&root, &setting, &self.dir.join(path), at))
            .collect()
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
        assert!(no_env.to_string().contains("choose one with --env"), "{no_env}");
        let unknown = c.environment(Some("qa"), None).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "repo/grattr.yaml:4:3: error: no environment named \"qa\"; defined: production, staging"
        );
    }

    #[test]
    fn overlays_of_an_environment_replace_the_top_levels() {
        let c = config(
            "admin: a\nregion: china\noverlays: [overlays/common]\nenvironments:\n  staging:\n    sdkappid: 1\n  production:\n    sdkappid: 2\n    overlays:\n      - overlays/common\n      - overlays/production\n  qa:\n    sdkappid: 3\n    overlays: []\n",
        );
        let paths = |name: &str| -> Vec<(String, u64, u64)> {
            let env = c.environment(Some(name), None).unwrap();
            // As written (`/`), after the root (`\` on Windows).
            let shown = |o: &OverlayPath| o.path.display().to_string().replace('\\', "/");
            env.overlays.iter().map(|o| (shown(o), o.at.line, o.at.column)).collect()
        };
        assert_eq!(paths("staging"), [("repo/overlays/common".to_string(), 3, 12)]);
        assert_eq!(
            paths("production"),
            [("repo/overlays/common".to_string(), 10, 9), ("repo/overlays/production".to_string(), 11, 9)]
        );
        assert_eq!(paths("qa"), []);
        let none = config("sdkappid: 1\nadmin: a\nregion: china\noverlays: ~\n").environment(None, None).unwrap();
        assert!(none.overlays.is_empty());
    }

    /// The first problem of `text`, found when parsing or when resolving the environment.
    fn first_problem(text: &str) -> String {
        let errors = match Config::parse(Path::new("repo/grattr.yaml"), text) {
            Ok(config) => config.environment(None, None).unwrap_err(),
            Err(errors) => errors,
        };
        errors.diagnostics[0].to_string()
    }

    #[test]
    fn every_mistake_points_at_its_line() {
        let cases = [
            ("sdkappid: 1\nadmin: a\nregoin: china\n", "repo/grattr.yaml:3:1: error: unknown field `regoin`"),
            (
                "sdkappid: x\n",
                "repo/grattr.yaml:1:11: error: sdkappid: \"x\" is not a number; expected an integer from 1 to 4294967295",
            ),
            ("sdkappid: 1\nprune: maybe\n", "repo/grattr.yaml:2:8: error: prune: \"maybe\" is not a boolean"),
            ("environments: [a]\n", "repo/grattr.yaml:1:15: error: wrong type: expected a mapping"),
            ("admin: a\nregion: china\n", "repo/grattr.yaml:1:1: error: missing field `sdkappid` (at the top level)"),
            ("sdkappid: 1\nadmin: a\nregion: mars\n", "repo/grattr.yaml:3:9: error: region: unknown region \"mars\""),
            ("sdkappid: 1\nadmin: a\nregion: china\nendpoint: http://x\n", "repo/grattr.yaml:4:11: error: set either"),
            (
                "sdkappid: 1\nadmin: a\nendpoint: ftp://x\n",
                "repo/grattr.yaml:3:11: error: endpoint: \"ftp://x\" is not",
            ),
            (
                "sdkappid: 0\nadmin: a\nregion: china\n",
                "repo/grattr.yaml:1:11: error: sdkappid: 0 is out of range; expected an integer from 1 to 4294967295",
            ),
            (
                "sdkappid: 1\nadmin: a\nregion: china\nrate_limit: 500\n",
                "repo/grattr.yaml:4:13: error: rate_limit: 500 is out of range; expected an integer from 1 to 200",
            ),
            (
                "sdkappid: 1\nadmin: a\nregion: china\nrequest_timeout: soon\n",
                "repo/grattr.yaml:4:18: error: request_timeout: \"soon\" is not a duration; expected a duration such as 5s or 1m",
            ),
            (
                "admin: a\nenvironments:\n  a:\n    sdkappid: 1\n    environments: {}\n",
                "repo/grattr.yaml:5:19: error: environments cannot be nested",
            ),
        ];
        for (text, expected) in cases {
            let e = first_problem(text);
            assert!(e.starts_with(expected), "{e}");
        }
    }

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let errors = config("prune: true\n").environment(None, None).unwrap_err();
        let messages: Vec<&str> = errors.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "missing field `sdkappid` (at the top level)",
                "missing field `admin` (at the top level)",
                "missing field `region` or `endpoint` (at the top level)"
            ]
        );
    }
}

//! Checking the values of `grattr.yaml`: each field's type and range, at the top
//! level and in every environment, one diagnostic per mistake.

use super::{At, Settings, SettingsFields};
use crate::desired::diagnostic::{Diagnostic, Rule};
use crate::desired::shape::{Entries, Items, Lenient, NodeList, wrong_type};
use crate::desired::yaml::{self, Node};
use crate::model::Region;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a field of the wrong kind is, for messages: the text as written (quoted)
/// for a scalar, else its kind.
fn shown(node: &Spanned<Node>, text: &str) -> String {
    match Node::text(node, text) {
        Some(written) => format!("{written:?}"),
        None => node.value.kind().to_string(),
    }
}

/// Checks the values of `grattr.yaml`, collecting a diagnostic for each mistake.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Arc<Path>,
    pub(super) text: &'a str,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// Checks one level's fields; `top` is whether environments may be defined here.
    pub(super) fn settings(&mut self, fields: SettingsFields, top: bool) -> Settings {
        for issue in fields.issues {
            self.diagnostics.push(Diagnostic::error(issue.rule, yaml::locate(self.file, &issue.at), issue.message));
        }
        let mut settings = Settings::default();
        for (field, node) in fields.values {
            // `field: ~` or nothing: the field is not set, as if absent.
            if node.value == Node::Null {
                continue;
            }
            match field {
                "sdkappid" => {
                    let max = u64::from(u32::MAX);
                    settings.sdkappid = self.integer(field, &node, 1, max, "");
                }
                "admin" => {
                    settings.admin = self.string(field, &node, "the app admin account's identifier").filter(|v| {
                        let empty = v.value.trim().is_empty();
                        if empty {
                            self.diagnostics.push(Diagnostic::error(
                                Rule::Config,
                                v.at.clone(),
                                "admin is empty; expected the app admin account's identifier".to_string(),
                            ));
                        }
                        !empty
                    });
                }
                "region" => {
                    let Some(named) = self.string(field, &node, "the name of a region") else { continue };
                    match Region::named(&named.value) {
                        Some(region) => settings.region = Some(At { value: region, at: named.at }),
                        None => self.diagnostics.push(Diagnostic::error(
                            Rule::Config,
                            named.at,
                            format!("region: unknown region {:?}; expected one of {}", named.value, Region::names()),
                        )),
                    }
                }
                "endpoint" => {
                    let Some(url) = self.string(field, &node, "a base URL such as https://example.com") else {
                        continue;
                    };
                    match check_url(&url.value) {
                        Ok(value) => settings.endpoint = Some(At { value, at: url.at }),
                        Err(m) => self.diagnostics.push(Diagnostic::error(
                            Rule::Config,
                            url.at,
                            format!("endpoint: {m}; expected a base URL such as https://example.com"),
                        )),
                    }
                }
                "groups" => settings.groups = self.string(field, &node, "a directory path"),
                "lockfile" => settings.lockfile = self.string(field, &node, "a file path"),
                "state" => {
                    let Some(url) = self.string(field, &node, "a URL such as postgres://grattr@db:5432/grattr") else {
                        continue;
                    };
                    match check_state_url(&url.value) {
                        Ok(()) => settings.state = Some(url),
                        Err(m) => self.diagnostics.push(Diagnostic::error(Rule::Config, url.at, format!("state: {m}"))),
                    }
                }
                "secret_key_env" => {
                    let Some(name) = self.string(field, &node, "the name of an environment variable") else {
                        continue;
                    };
                    if name.value.is_empty() || name.value.contains(['=', '\0']) {
                        self.diagnostics.push(Diagnostic::error(
                            Rule::Config,
                            name.at,
                            format!(
                                "secret_key_env: {:?} is not a variable name; expected a name without `=`",
                                name.value
                            ),
                        ));
                    } else {
                        settings.secret_key_env = Some(name);
                    }
                }
                "prune" => {
                    let at = yaml::locate(self.file, &node.referenced);
                    match (&node.value, Node::text(&node, self.text).as_deref()) {
                        (Node::Plain(_), Some("true")) => settings.prune = Some(At { value: true, at }),
                        (Node::Plain(_), Some("false")) => settings.prune = Some(At { value: false, at }),
                        _ => self.diagnostics.push(Diagnostic::error(
                            Rule::Config,
                            at,
                            format!("prune: {} is not a boolean; expected true or false", shown(&node, self.text)),
                        )),
                    }
                }
                "ownership" => {
                    let at = yaml::locate(self.file, &node.referenced);
                    match Node::text(&node, self.text).as_deref().and_then(crate::desired::groups::ownership_word) {
                        Some(value) => settings.ownership = Some(At { value, at }),
                        None => self.diagnostics.push(Diagnostic::error(
                            Rule::Ownership,
                            at,
                            format!(
                                "ownership: {} is neither `group` nor `keys` (the ownership of groups whose file does not say)",
                                shown(&node, self.text)
                            ),
                        )),
                    }
                }
                "rate_limit" => {
                    let max = crate::model::limits::MAX_CALLS_PER_SECOND.max as u64;
                    settings.rate_limit = self
                        .integer(field, &node, 1, max, " (calls per second)")
                        .map(|v| At { value: u32::try_from(v.value).unwrap_or(u32::MAX), at: v.at });
                }
                "safety_threshold" => {
                    settings.safety_threshold = self
                        .integer(field, &node, 0, 100, " (a percentage)")
                        .map(|v| At { value: u32::try_from(v.value).unwrap_or(100), at: v.at });
                }
                "connect_timeout" => settings.connect_timeout = self.duration(field, &node),
                "request_timeout" => settings.request_timeout = self.duration(field, &node),
                _ => {}
            }
        }
        if let Some(list) = fields.overlays {
            settings.overlays = self.overlays(list);
        }
        if let Some(envs) = fields.environments {
            let at = yaml::locate(self.file, &envs.referenced);
            match envs.value {
                _ if !top => self.diagnostics.push(Diagnostic::error(
                    Rule::Config,
                    at,
                    "environments cannot be nested; expected the settings of this environment".to_string(),
                )),
                Lenient::Found(Entries(entries)) => {
                    let mut named = BTreeMap::new();
                    for (key, value) in entries {
                        let key_at = yaml::locate(self.file, &key.referenced);
                        let Some(name) = Node::text(&key, self.text) else {
                            self.diagnostics.push(Diagnostic::error(
                                Rule::WrongType,
                                key_at,
                                format!("an environment's name is {}; expected a name (text)", key.value.kind()),
                            ));
                            continue;
                        };
                        let settings = match value.value {
                            Lenient::Found(fields) => self.settings(fields, false),
                            Lenient::Wrong(kind) => {
                                let at = yaml::locate(self.file, &value.referenced);
                                self.diagnostics.push(Diagnostic::error(
                                    Rule::WrongType,
                                    at,
                                    format!("environment {name:?} is {kind}; expected a mapping of settings"),
                                ));
                                Settings::default()
                            }
                        };
                        if let Some(At { at: first, .. }) = named.get(&name) {
                            let message = format!("environment {name:?} is defined twice");
                            let diagnostic = Diagnostic::error(Rule::DuplicateKey, key_at, message);
                            self.diagnostics.push(diagnostic.with_related(first.clone(), "first defined here"));
                            continue;
                        }
                        named.insert(name, At { value: settings, at: key_at });
                    }
                    settings.environments = Some(At { value: named, at });
                }
                Lenient::Wrong(_) => {
                    self.diagnostics.push(Diagnostic::error(Rule::WrongType, at, wrong_type("a mapping")));
                }
            }
        }
        settings
    }

    /// `overlays:`, a sequence of paths (text, not empty); `~` is as if absent.
    fn overlays(&mut self, list: Spanned<Lenient<NodeList>>) -> Option<At<Vec<At<String>>>> {
        const EXPECTED: &str =
            "expected a sequence of paths (overlay files, or directories of them), relative to grattr.yaml";
        let at = yaml::locate(self.file, &list.referenced);
        let nodes = match list.value {
            Lenient::Found(Items(nodes)) => nodes,
            Lenient::Wrong("null") => return None,
            Lenient::Wrong(kind) => {
                let message = format!("overlays: {kind} is not a list; {EXPECTED}");
                let help = "write `overlays: [overlays/production]`, one path an item";
                self.diagnostics.push(Diagnostic::error(Rule::WrongType, at, message).with_help(help));
                return None;
            }
        };
        let mut paths = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let item_at = yaml::locate(self.file, &node.referenced);
            match Node::text(node, self.text).filter(|_| node.value.refused_tag().is_none()) {
                Some(path) if !path.trim().is_empty() => paths.push(At { value: path, at: item_at }),
                Some(_) => self.diagnostics.push(Diagnostic::error(
                    Rule::Config,
                    item_at,
                    format!("overlays: an empty path; {EXPECTED}"),
                )),
                None => self.diagnostics.push(Diagnostic::error(
                    Rule::WrongType,
                    item_at,
                    format!("overlays: an item is {}, not a path; {EXPECTED}", node.value.kind()),
                )),
            }
        }
        Some(At { value: paths, at })
    }

    /// A field that is text; `expected` says what it names.
    fn string(&mut self, field: &str, node: &Spanned<Node>, expected: &str) -> Option<At<String>> {
        let at = yaml::locate(self.file, &node.referenced);
        match Node::text(node, self.text) {
            Some(value) => Some(At { value, at }),
            None => {
                let message = format!("{field}: {} is not text; expected {expected}", node.value.kind());
                self.diagnostics.push(Diagnostic::error(Rule::WrongType, at, message));
                None
            }
        }
    }

    /// A field that is an integer from `min` to `max`; `unit` follows the range in messages.
    fn integer(&mut self, field: &str, node: &Spanned<Node>, min: u64, max: u64, unit: &str) -> Option<At<u64>> {
        let at = yaml::locate(self.file, &node.referenced);
        let expected = format!("expected an integer from {min} to {max}{unit}");
        let message = match (&node.value, Node::text(node, self.text)) {
            (Node::Plain(_), Some(text)) => match text.parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => return Some(At { value, at }),
                Ok(value) => format!("{field}: {value} is out of range; {expected}"),
                Err(_) if text.parse::<i128>().is_ok() => format!("{field}: {text} is out of range; {expected}"),
                Err(_) => format!("{field}: {text:?} is not a number; {expected}"),
            },
            _ => format!("{field}: {} is not a number; {expected}", shown(node, self.text)),
        };
        self.diagnostics.push(Diagnostic::error(Rule::Config, at, message));
        None
    }

    /// A field that is a duration longer than zero.
    fn duration(&mut self, field: &str, node: &Spanned<Node>) -> Option<At<Duration>> {
        let at = yaml::locate(self.file, &node.referenced);
        const EXPECTED: &str = "expected a duration such as 5s or 1m";
        let message = match Node::text(node, self.text) {
            Some(text) => match humantime::parse_duration(&text) {
                Ok(value) if !value.is_zero() => return Some(At { value, at }),
                Ok(_) => format!("{field}: {text:?} is zero; {EXPECTED}"),
                Err(_) => format!("{field}: {text:?} is not a duration; {EXPECTED}"),
            },
            None => format!("{field}: {} is not a duration; {EXPECTED}", node.value.kind()),
        };
        self.diagnostics.push(Diagnostic::error(Rule::Config, at, message));
        None
    }
}

/// Checks a base URL and removes a trailing slash.
pub(super) fn check_url(url: &str) -> Result<String, String> {
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

/// Checks a `state:` URL as far as can be told offline: a store grattr knows, and no
/// password or key (grattr.yaml is committed; they go in `PGPASSWORD`, `AWS_*` or ~/.aws).
fn check_state_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL; expected postgres://USER@HOST:PORT/DATABASE or s3://BUCKET/PREFIX (local files \
                    are the default)"
            .into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => {}
        // Credentials are refused there too, with everything else the URL may not say.
        "s3" => {
            return crate::state::s3::Config::parse(url).map(|_| ()).map_err(|e| match e {
                crate::state::StateError::Url { message, .. } => message,
                other => other.to_string(),
            });
        }
        _ => {
            return Err(format!(
                "{:?} is not a store grattr knows; expected postgres://USER@HOST:PORT/DATABASE or s3://BUCKET/PREFIX",
                crate::escape::text(scheme)
            ));
        }
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let password = url.split_once('?').is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("password=")));
    if authority.rsplit_once('@').is_some_and(|(user, _)| user.contains(':')) || password {
        return Err("holds a password, which must not be committed: remove it and set PGPASSWORD where \
                    grattr runs"
            .into());
    }
    Ok(())
}

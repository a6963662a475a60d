//! Editor and CI integration through the real binary: `validate --format json|github`,
//! the JSON Schemas of `grattr schema` (checked against the corpus and the
//! repository's own files), shell completions, the man page and the pre-commit hook.

mod support;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::Repo;

/// A file with one error, one warning-free group and a key too many.
const BROKEN: &str = "groups:\n  - id: lobby\n    attributs: {}\n  - id: \"\"\n    attributes:\n      k: ~\n";

fn broken() -> Repo {
    Repo::new()
        .file("groups/broken.yaml", BROKEN)
        .file("groups/empty.yaml", "# nothing yet\n")
        .file("groups/ok.yaml", "groups:\n  - id: ok\n    attributes: {banner: \"50% off\"}\n")
}

#[test]
fn text_is_the_default_and_unchanged() {
    let repo = broken();
    let default = repo.run(&["validate"]).code(1).stdout("").into_stderr();
    repo.run(&["validate", "--format", "text"]).code(1).stdout("").stderr(&default);
    assert!(default.ends_with("groups: invalid: 3 errors, 1 warning in 2 files\n"), "{default}");
    Repo::new()
        .file("groups/ok.yaml", "groups: []\n")
        .run(&["validate", "--format", "text"])
        .code(0)
        .stdout("groups: ok: 0 groups in 1 file (0 errors, 1 warning in 1 file)\n")
        .stderr(
            "groups/ok.yaml:1:1: warning: file declares no groups\n  \
             help: declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file\n",
        );
}

#[test]
fn github_format_is_one_command_per_diagnostic_then_the_summary_on_stderr() {
    let stdout = broken()
        .run(&["validate", "--format", "github"])
        .code(1)
        .stderr("groups: invalid: 3 errors, 1 warning in 2 files\n")
        .into_stdout();
    insta::assert_snapshot!(stdout, @r#"
    ::error file=groups/broken.yaml,line=3,col=5,title=unknown-field::unknown field `attributs`, expected one of id, ids, attributes, ownership, template, unset
    ::error file=groups/broken.yaml,line=4,col=9,title=group-id::group id is empty; an id is 1 to 48 bytes [10015]
    ::error file=groups/broken.yaml,line=6,col=10,title=null-value::group (invalid id) key "k": value is null%0Ahelp: values are text: write `k: ""` for an empty value, or quote a value such as "~" or "null"
    ::warning file=groups/empty.yaml,line=1,col=1,title=no-groups::file declares no groups%0Ahelp: declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file
    "#);
    let ok = Repo::new().file("groups/a.yaml", "groups: [{id: a, attributes: {}}]\n");
    ok.run(&["validate", "--format", "github"]).code(0).stdout("").stderr("groups: ok: 1 group in 1 file\n");
}

/// The lines GitHub's runner would read as workflow commands: `::` opening one
/// (after spaces), else the legacy `##[` anywhere in it (the runner tries that form
/// only when the first does not parse). CR ends a runner line as LF does.
fn commands(stream: &str) -> Vec<&str> {
    stream.split(['\n', '\r']).filter(|l| l.trim_start().starts_with("::") || l.contains("##[")).collect()
}

#[test]
fn hostile_file_names_keys_and_directories_cannot_inject_a_workflow_command() {
    let name = "groups/x\n::add-mask::secret\r::error file=a.yaml::owned ##[warning]v1.yaml";
    let key = "\"k\\n::add-mask::s\\r##[error]x\"";
    let repo = Repo::new()
        .file(name, "groups:\n  - id: a\n    oops: 1\n    attributes: {}\n")
        .file("groups/key.yaml", &format!("groups:\n  - id: b\n    attributes:\n      {key}: ~\n"));
    let (stdout, stderr) = repo.run(&["validate", "--format", "github"]).code(1).into_streams();
    let found = commands(&stdout);
    assert_eq!(found.len(), 2, "{stdout}");
    assert!(found.iter().all(|l| l.starts_with("::error file=groups/")), "{found:?}");
    assert!(found[1].starts_with("::error file=groups/x%0A%3A%3Aadd-mask%3A%3Asecret%0D%3A%3Aerror file=a.yaml%3A%3Aowned ##[warning]v1.yaml,line=3,col=5,title=unknown-field::"), "{}", found[1]);
    assert!(commands(&stderr).is_empty(), "{stderr}");

    // The summary on stderr names the configured directory.
    for dir in ["::add-mask::x", "##[error]x", "  ::warning::y"] {
        let config = format!("{}groups: {}\n", support::CONFIG, serde_json::Value::from(dir));
        let repo = Repo::new().file("grattr.yaml", &config).file(&format!("{dir}/a.yaml"), "groups: []\n");
        let (stdout, stderr) = repo.run(&["validate", "--format", "github"]).code(0).into_streams();
        assert!(commands(&stdout).iter().all(|l| l.starts_with("::warning file=")), "{stdout}");
        assert!(commands(&stderr).is_empty(), "{dir}: {stderr}");
    }
}

#[test]
fn json_format_is_one_document_of_the_same_diagnostics() {
    let run = broken().run(&["validate", "--format", "json"]).code(1);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    insta::assert_json_snapshot!(run.json(), @r#"
    {
      "diagnostics": [
        {
          "code": null,
          "column": 5,
          "file": "groups/broken.yaml",
          "help": null,
          "line": 3,
          "message": "unknown field `attributs`, expected one of id, ids, attributes, ownership, template, unset",
          "related": [],
          "rule": "unknown-field",
          "severity": "error"
        },
        {
          "code": 10015,
          "column": 9,
          "file": "groups/broken.yaml",
          "help": null,
          "line": 4,
          "message": "group id is empty; an id is 1 to 48 bytes",
          "related": [],
          "rule": "group-id",
          "severity": "error"
        },
        {
          "code": null,
          "column": 10,
          "file": "groups/broken.yaml",
          "help": "values are text: write `k: \"\"` for an empty value, or quote a value such as \"~\" or \"null\"",
          "line": 6,
          "message": "group (invalid id) key \"k\": value is null",
          "related": [],
          "rule": "null-value",
          "severity": "error"
        },
        {
          "code": null,
          "column": 1,
          "file": "groups/empty.yaml",
          "help": "declare groups as `groups: [{id: ..., attributes: {...}}]`, or delete the file",
          "line": 1,
          "message": "file declares no groups",
          "related": [],
          "rule": "no-groups",
          "severity": "warning"
        }
      ],
      "format_version": 1,
      "summary": {
        "errors": 3,
        "files": 3,
        "warnings": 1
      },
      "valid": false
    }
    "#);
    let ok = Repo::new().file("groups/a.yaml", "groups: [{id: a, attributes: {}}]\n");
    let json = ok.run(&["validate", "--format", "json"]).code(0).json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["diagnostics"], serde_json::json!([]));
    assert_eq!(json["summary"], serde_json::json!({"errors": 0, "warnings": 0, "files": 1}));
}

#[test]
fn json_keeps_data_unaltered_and_reports_a_bad_configuration() {
    // DEL and ESC in a file name: JSON carries them as they are (escaped by JSON itself only).
    let name = "groups/a\u{7f}\u{1b}[31m.yaml";
    let run = Repo::new()
        .file(name, "groups:\n  - id: a\n    bad: 1\n    attributes: {}\n")
        .run(&["validate", "--format", "json"]);
    let json = run.code(1).json();
    assert_eq!(json["diagnostics"][0]["file"], name);

    let repo = Repo::new().file("grattr.yaml", "sdkappid: 1\nadmin: a\nregoin: china\n");
    let json = repo.run(&["validate", "--format", "json"]).code(1).json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["diagnostics"][0]["file"], "grattr.yaml");
    assert_eq!(json["diagnostics"][0]["rule"], "unknown-field");
    assert_eq!(json["diagnostics"][0]["line"], 3);
    assert_eq!(json["summary"], serde_json::json!({"errors": 1, "warnings": 0, "files": 0}));
    let stdout = repo
        .run(&["validate", "--format", "github"])
        .code(1)
        .stderr("grattr.yaml: invalid: 1 error, 0 warnings in 1 file\n")
        .into_stdout();
    assert!(stdout.starts_with("::error file=grattr.yaml,line=3,col=1,title=unknown-field::"), "{stdout}");
}

// ---------------------------------------------------------------------------
// Schemas

/// A YAML document as the JSON an editor's YAML server sees: numbers, booleans and
/// strings as they are, keys as text, and the non-finite floats JSON has no form
/// for (`.nan`, `.inf`) as the float they are, written as text.
struct Yaml(Value);

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor).map(Yaml)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("YAML")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::from(v as f64))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::from(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no non-finite number; the schema treats them as the numbers YAML says they are.
        Ok(serde_json::Number::from_f64(v).map_or(Value::from(f64::MAX), Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Yaml(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((Yaml(key), Yaml(value))) = map.next_entry()? {
            let key = match key {
                Value::String(text) => text,
                other => other.to_string(),
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The YAML file at `path` as JSON, or `None` when it is not YAML a schema can see.
fn yaml_file(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_saphyr::from_str_with_options::<Yaml>(&text, grattr::desired::yaml::options()).ok().map(|Yaml(value)| value)
}

fn schema(kind: &str) -> jsonschema::Validator {
    let run = Repo::new().run(&["schema", kind]).code(0);
    let schema: Value = run.json();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{kind}: not a valid schema: {e}"));
    jsonschema::draft7::new(&schema).unwrap()
}

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `*.yaml`/`*.yml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The corpus cases `grattr validate` accepts without error (warnings allowed).
fn corpus_cases(valid: bool) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(manifest("tests/corpus"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|case| {
            // The recorded expectation (see tests/corpus.rs): exit code 1 when it reports an error.
            let expect = std::fs::read_to_string(case.join("expect.snap")).unwrap();
            let has_error = expect.contains("\n--- exit code: 1\n");
            has_error != valid
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn the_groups_schema_accepts_every_valid_file() {
    let validator = schema("groups");
    let mut files = yaml_files(&manifest("groups"));
    assert!(files.len() >= 3);
    let valid = corpus_cases(true);
    assert!(valid.len() >= 12, "{valid:?}");
    for case in &valid {
        files.extend(yaml_files(&case.join("groups")));
    }
    for file in files {
        let value = yaml_file(&file).unwrap_or_else(|| panic!("{}: not YAML", file.display()));
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn the_groups_schema_rejects_what_grattr_rejects() {
    let validator = schema("groups");
    // Corpus cases whose errors a schema can express (and that are YAML at all).
    let rejected = [
        "02-key-33-bytes",
        "04-key-empty",
        "06-keys-17",
        "08-group-id-empty",
        "09-group-id-49-bytes",
        "10-group-id-non-ascii",
        "11-group-id-control-chars",
        "12-group-id-topic",
        "20-unknown-field-top-level",
        "21-unknown-field-in-group",
        "22-wrong-type-groups-scalar",
        "23-wrong-type-attributes-sequence",
        "24-wrong-type-attributes-scalar",
        "25-wrong-type-group-entry",
        "26-wrong-type-top-level-sequence",
        "27-missing-id",
        "28-missing-attributes",
        "29-null-values",
        "30-attributes-null",
    ];
    for case in rejected {
        let files = yaml_files(&manifest(&format!("tests/corpus/{case}/groups")));
        let any_rejected = files.iter().filter_map(|f| yaml_file(f)).any(|value| !validator.is_valid(&value));
        assert!(any_rejected, "{case}: the schema accepts it");
    }
    let cases = [
        serde_json::json!({"groups": [{"id": "a", "attributes": {}, "extra": 1}]}),
        serde_json::json!({"groups": [{"id": "a", "attributes": {"k": null}}]}),
        serde_json::json!({"groups": [{"id": "a", "attributes": {"k": "x".repeat(4001)}}]}),
        serde_json::json!({"groups": [{"id": "a".repeat(49), "attributes": {}}]}),
        serde_json::json!({"group": []}),
    ];
    for value in cases {
        assert!(!validator.is_valid(&value), "accepted: {value}");
    }
    let mut many = serde_json::Map::new();
    for i in 0..16 {
        many.insert(format!("k{i}"), Value::from(i));
    }
    let sixteen = serde_json::json!({"groups": [{"id": "a", "attributes": many.clone()}]});
    assert!(validator.is_valid(&sixteen));
    many.insert("k16".into(), Value::from("x"));
    assert!(!validator.is_valid(&serde_json::json!({"groups": [{"id": "a", "attributes": many}]})));
}

#[test]
fn the_config_schema_accepts_valid_configurations_and_rejects_mistakes() {
    let validator = schema("config");
    let mut valid = vec![yaml_file(&manifest("grattr.yaml")).unwrap()];
    for text in [
        support::CONFIG,
        "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\n",
        "admin: administrator\ngroups: groups\nenvironments:\n  staging:\n    sdkappid: 1400000001\n    endpoint: https://chat-proxy.staging.example.com\n    lockfile: grattr.staging.lock\n  production:\n    sdkappid: 1400000000\n    region: singapore\n    lockfile: grattr.lock\n",
        "sdkappid: 1\nadmin: a\nregion: china\nprune: true\nrate_limit: 200\nsafety_threshold: 0\nconnect_timeout: 500ms\nrequest_timeout: 1m\nsecret_key_env: KEY\nlockfile: x.lock\n",
    ] {
        valid.push(serde_saphyr::from_str::<Yaml>(text).unwrap().0);
    }
    for value in valid {
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{value}: {errors:?}");
    }
    for text in [
        "sdkappid: 1\nadmin: a\nregoin: china\n",
        "sdkappid: 1\nadmin: a\nregion: mars\n",
        "sdkappid: 1\nadmin: a\nregion: china\nendpoint: http://x\n",
        "sdkappid: 1\nadmin: a\nendpoint: ftp://x\n",
        "sdkappid: 0\nadmin: a\nregion: china\n",
        "sdkappid: 1\nadmin: a\nregion: china\nrate_limit: 201\n",
        "sdkappid: 1\nadmin: a\nregion: china\nsafety_threshold: 101\n",
        "sdkappid: 1\nadmin: a\nregion: china\nprune: maybe\n",
        "admin: a\nregion: china\n",
        "admin: a\nenvironments:\n  s:\n    sdkappid: 1\n    region: china\n    environments: {}\n",
        "admin: a\nenvironments:\n  s:\n    sdkappid: 1\n    regoin: china\n",
    ] {
        let value = serde_saphyr::from_str::<Yaml>(text).unwrap().0;
        assert!(!validator.is_valid(&value), "accepted: {text}");
        let repo = Repo::new().file("grattr.yaml", text);
        repo.run(&["validate", "--env", "s"]).code(1).stderr_contains("grattr.yaml:");
    }
}

#[test]
fn the_overlay_schema_accepts_valid_overlays_and_rejects_mistakes() {
    let validator = schema("overlay");
    let mut valid = Vec::new();
    for case in corpus_cases(true) {
        valid.extend(yaml_files(&case.join("overlays")));
    }
    assert!(valid.len() >= 2, "{valid:?}");
    for file in valid {
        let value = yaml_file(&file).unwrap_or_else(|| panic!("{}: not YAML", file.display()));
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
    // Every overlay file of these cases has an error a schema can express.
    for case in ["72-overlay-declares-new", "75-overlay-file-wrong-types"] {
        for file in yaml_files(&manifest(&format!("tests/corpus/{case}/overlays"))) {
            if let Some(value) = yaml_file(&file) {
                assert!(!validator.is_valid(&value), "{}: the schema accepts it", file.display());
            }
        }
    }
    let cases = [
        serde_json::json!({"groups": [{"id": "a"}]}),
        serde_json::json!({"groups": [{"id": "a", "template": "t", "attributes": {}}]}),
        serde_json::json!({"groups": [{"id": "a", "attributes": {"k": null}}]}),
        serde_json::json!({"templates": {"t": {"extends": "u"}}}),
        serde_json::json!({"templates": {"t": {"unset": "k"}}}),
    ];
    for value in cases {
        assert!(!validator.is_valid(&value), "accepted: {value}");
    }

    let config = schema("config");
    let environments = yaml_file(&manifest("tests/corpus/69-overlay-environments/grattr.yaml")).unwrap();
    let errors: Vec<String> = config.iter_errors(&environments).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let top = serde_json::json!({"sdkappid": 1, "admin": "a", "region": "china", "overlays": ["overlays"]});
    assert!(config.is_valid(&top));
    let wrong = yaml_file(&manifest("tests/corpus/74-overlay-config-wrong-types/grattr.yaml")).unwrap();
    assert!(!config.is_valid(&wrong));
    for overlays in [serde_json::json!("overlays"), serde_json::json!([""]), serde_json::json!([["a"]])] {
        let value = serde_json::json!({"sdkappid": 1, "admin": "a", "region": "china", "overlays": overlays});
        assert!(!config.is_valid(&value), "accepted: {value}");
    }
}

// ---------------------------------------------------------------------------
// Completions, man page, pre-commit hook

#[test]
fn completions_for_every_shell() {
    let repo = Repo::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let stdout = repo.run(&["completions", shell]).code(0).into_stdout();
        assert!(stdout.contains("validate") && stdout.contains("schema"), "{shell}:\n{stdout}");
    }
    repo.run(&["completions", "tcsh"]).code(1).stderr_contains("invalid value 'tcsh'");
    let bash = repo.run(&["completions", "bash"]).into_stdout();
    let script = repo.join("grattr.bash");
    std::fs::write(&script, bash).unwrap();
    if let Ok(status) = std::process::Command::new("bash").arg("-n").arg(&script).status() {
        assert!(status.success(), "bash -n rejects the completion script");
    }
}

const SUBCOMMANDS: [&str; 11] =
    ["validate", "plan", "apply", "drift", "import", "watch", "usersig", "emulator", "schema", "completions", "man"];

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let repo = Repo::new();
    let page = repo.run(&["man"]).code(0).into_stdout();
    assert!(page.starts_with('.') && page.contains(".TH grattr 1"), "{page}");
    for name in SUBCOMMANDS {
        assert!(page.contains(&format!("grattr\\-{name}")), "the man page does not name {name}");
    }
    // Rendered only where a formatter is installed.
    let path = repo.join("grattr.1");
    std::fs::write(&path, &page).unwrap();
    let rendered = std::process::Command::new("groff").args(["-man", "-Tutf8"]).arg(&path).output();
    if let Ok(output) = rendered {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("validate"), "{text}");
    }
}

#[test]
fn the_help_lists_the_new_subcommands() {
    let help = Repo::new().run(&["--help"]).code(0).into_stdout();
    for name in SUBCOMMANDS {
        assert!(help.contains(name), "{name}");
    }
}

#[test]
fn the_pre_commit_hook_is_complete() {
    let text = std::fs::read_to_string(manifest(".pre-commit-hooks.yaml")).unwrap();
    let hooks: Value = serde_saphyr::from_str::<Yaml>(&text).unwrap().0;
    let hook = &hooks[0];
    assert_eq!(hooks.as_array().map(Vec::len), Some(1));
    for field in ["id", "name", "entry", "language"] {
        assert!(hook[field].as_str().is_some_and(|v| !v.is_empty()), "{field}");
    }
    assert_eq!(hook["id"], "grattr-validate");
    assert_eq!(hook["entry"], "grattr validate");
    assert!(matches!(hook["language"].as_str(), Some("rust" | "system")));
    assert_eq!(hook["pass_filenames"], false);
    // Every commit (issue 23): no pattern can know the overlays and paths grattr.yaml names.
    assert_eq!(hook["always_run"], true);
    for filter in ["files", "exclude", "types", "types_or"] {
        assert!(hook.get(filter).is_none(), "the hook filters by {filter}");
    }
}

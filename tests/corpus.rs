//! The bad-input corpus: `grattr validate` run as a real binary on every case, its
//! exact stdout, stderr and exit code (every diagnostic's rule, line, column, message
//! and hint, and the summary) compared with an expectation recorded by [insta]; for a
//! case that validates, the `after` of every change of `grattr plan --format json` too.
//!
//! # Adding a case
//!
//! A case is a directory `tests/corpus/<NN-name>/` with
//!
//! - `groups/`: the group files (any tree), run next to a `grattr.yaml` ([`CONFIG`]);
//! - optionally a `grattr.yaml` of its own, instead of [`CONFIG`], and other files it
//!   names (overlays), each copied to the same place;
//! - `about.txt`: what the case shows, in a line or two;
//! - `expect.snap`: the expectation, recorded: stdout, stderr (each ending as printed:
//!   a stream without its last newline says so), the exit code, and for a case that
//!   validates, the plan's `after` of every group (there is no lockfile, so every group
//!   is a change), for each environment when the case's `grattr.yaml` defines them.
//!
//! Add `groups/` and `about.txt`, record `expect.snap`, and read it before committing.
//! Recording, and re-recording every expectation after a deliberate change of the
//! messages, is one command (review the change with `git diff tests/corpus`):
//!
//! ```text
//! INSTA_UPDATE=always cargo test --test corpus
//! ```
//!
//! or `cargo insta test --review` (cargo-insta) to accept the changes one by one. Without
//! either, a differing case fails with a diff and leaves `expect.snap.new` next to its
//! `expect.snap` for `cargo insta review`. `INSTA_GLOB_FILTER='07-*' cargo test --test
//! corpus corpus` runs the cases whose name matches.
//!
//! Cases too large to commit (4001-byte values, a 20,000-group file, a 5 MB file) and
//! cases whose file names git or editors treat specially are built in
//! [`generated_cases`], with the same kind of expectation, recorded in
//! `tests/snapshots/corpus__generated@<name>.snap` (re-recorded by the same command).
//!
//! A property test ([`no_input_panics`]) feeds random inputs (mutations of the corpus
//! files, and random bytes; 200 unless `PROPTEST_CASES` says otherwise) to the binary,
//! and checks that it neither panics nor exits with anything but 0 or 1, and prints
//! only one-line diagnostics that point within their file, hints and the summary.

use assert_cmd::Command;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// The `grattr.yaml` written next to every case's `groups/`.
const CONFIG: &str = "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\n";

/// The real binary, with nothing from the environment that changes its output.
fn grattr(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("grattr").unwrap();
    command
        .current_dir(dir)
        .env_remove("GRATTR_CONFIG")
        .env_remove("GRATTR_ENV")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120));
    command
}

/// A repository: `grattr.yaml` and the given files.
fn repo(files: &[(PathBuf, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("grattr.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.path().join("groups")).unwrap();
    for (path, bytes) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

/// Every file under `case/groups/`, relative to `case`, in path order.
fn case_files(case: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let groups = case.join("groups");
    assert!(groups.is_dir(), "case {}: no groups/ directory", case.display());
    walkdir::WalkDir::new(&groups)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| (entry.path().strip_prefix(case).unwrap().to_path_buf(), std::fs::read(entry.path()).unwrap()))
        .collect()
}

/// Every file of a case that `grattr` reads (the group files, and any `grattr.yaml`
/// and overlays of its own), relative to `case`, in path order.
fn all_case_files(case: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = case_files(case);
    for entry in walkdir::WalkDir::new(case).sort_by_file_name().into_iter().map(Result::unwrap) {
        let relative = entry.path().strip_prefix(case).unwrap().to_path_buf();
        let expectation = relative.to_string_lossy().starts_with("expect.snap");
        if entry.file_type().is_file()
            && !relative.starts_with("groups")
            && relative != Path::new("about.txt")
            && !expectation
        {
            files.push((relative, std::fs::read(entry.path()).unwrap()));
        }
    }
    files
}

/// One stream as recorded: its exact text under a header, and a note when it does
/// not end with a newline (the snapshot's own line ends would hide that).
fn stream(name: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = format!("--- {name}\n{text}");
    if !text.is_empty() && !text.ends_with('\n') {
        out += "\n(no newline at the end)\n";
    }
    out
}

/// Runs `grattr validate` (and `grattr plan` when it passes, if `plan`) in a repository of
/// `files`, and renders what it printed and returned as recorded in an expectation.
fn run_case(files: &[(PathBuf, Vec<u8>)], plan: bool) -> String {
    let dir = repo(files);
    let output = grattr(dir.path()).arg("validate").output().unwrap();
    check_exit_code(&output);
    let mut rendered = stream("stdout", &output.stdout) + &stream("stderr", &output.stderr);
    writeln!(rendered, "--- exit code: {}", output.status.code().map_or("none (killed)".into(), |c| c.to_string()))
        .unwrap();
    if plan && output.status.code() == Some(0) {
        let config = std::fs::read_to_string(dir.path().join("grattr.yaml")).unwrap();
        let config = grattr::desired::Config::parse(Path::new("grattr.yaml"), &config).unwrap();
        let environments: Vec<Option<String>> = match config.environment_names() {
            names if names.is_empty() => vec![None],
            names => names.into_iter().map(Some).collect(),
        };
        for environment in environments {
            let mut args = vec!["plan", "--format", "json"];
            args.extend(environment.iter().flat_map(|name| ["--env", name.as_str()]));
            let Output { status, stdout, stderr } = grattr(dir.path()).args(&args).output().unwrap();
            assert_eq!(status.code(), Some(0), "grattr {}:\n{}", args.join(" "), String::from_utf8_lossy(&stderr));
            let json: serde_json::Value = serde_json::from_slice(&stdout).expect("the plan is JSON");
            let after: serde_json::Map<String, serde_json::Value> = json["changes"]
                .as_array()
                .expect("the plan has changes")
                .iter()
                .map(|change| (change["group_id"].as_str().unwrap().to_string(), change["after"].clone()))
                .collect();
            let env = environment.map(|name| format!(" --env {name}")).unwrap_or_default();
            writeln!(rendered, "--- grattr plan{env} --format json: the `after` of each change").unwrap();
            writeln!(rendered, "{}", serde_json::to_string_pretty(&after).unwrap()).unwrap();
        }
    }
    rendered
}

/// What validation returns follows from what it prints: 1 (and nothing on stdout) when
/// it reports an error, else 0.
#[track_caller]
fn check_exit_code(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let has_error = stderr.lines().any(|l| !l.starts_with(' ') && l.contains(": error: "));
    assert_eq!(output.status.code(), Some(i32::from(has_error)), "the exit code and the errors disagree:\n{stderr}");
    assert!(
        !has_error || output.stdout.is_empty(),
        "stdout besides errors:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// The committed cases, `tests/corpus/*/`, each against its `expect.snap`.
#[test]
fn corpus() {
    let cases = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")).unwrap().count();
    assert!(cases >= 40, "tests/corpus/ holds {cases} cases");
    insta::glob!("corpus", "*/groups", |groups| {
        let case = groups.parent().unwrap();
        let about = std::fs::read_to_string(case.join("about.txt"))
            .unwrap_or_else(|e| panic!("case {}: cannot read about.txt: {e}", case.display()));
        let rendered = run_case(&all_case_files(case), true);
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(case);
        settings.remove_snapshot_suffix();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(about.trim_end());
        settings.bind(|| insta::assert_snapshot!("expect", rendered));
    });
}

/// A case built in code.
struct Generated {
    name: &'static str,
    about: &'static str,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Generated {
    fn new(name: &'static str, about: &'static str, files: Vec<(&str, Vec<u8>)>) -> Generated {
        Generated { name, about, files: files.into_iter().map(|(path, bytes)| (PathBuf::from(path), bytes)).collect() }
    }
}

/// `groups:` with one group per `(id, attribute lines)`, each attribute line
/// already indented; the group header is on line `2 + 2 × groups before + lines before`.
fn yaml_groups(groups: &[(&str, Vec<String>)]) -> Vec<u8> {
    let mut text = String::from("groups:\n");
    for (id, lines) in groups {
        writeln!(text, "  - id: {id}\n    attributes:").unwrap();
        for line in lines {
            writeln!(text, "      {line}").unwrap();
        }
    }
    text.into_bytes()
}

/// In the 20,000-group file, group [`BIG_BAD`] has a 33-byte key.
const BIG_GROUPS: usize = 20_000;
const BIG_BAD: usize = 19_990;
/// In the 5 MB file, group [`LARGE_LONG`] has a 4,001-byte value.
const LARGE_GROUPS: usize = 2_500;
const LARGE_LONG: usize = 2_490;

/// The cases built in code: too large to commit, or with names that git and
/// editors treat specially.
fn generated_cases() -> Vec<Generated> {
    let mut cases = Vec::new();
    let a = |n: usize| "a".repeat(n);

    cases.push(Generated::new(
        "g01-value-at-4000-bytes",
        "value-too-long, at the bound: 4000 bytes in 1-, 3- and 4-byte characters, and as a block scalar.",
        vec![(
            "groups/values.yaml",
            yaml_groups(&[
                ("ascii", vec![format!("v: {}", a(4000))]),
                ("three-byte", vec![format!("v: {}a", "中".repeat(1333))]),
                ("four-byte", vec![format!("v: {}", "😀".repeat(1000))]),
                ("block", vec!["v: |-".into(), format!("  {}", a(4000))]),
            ]),
        )],
    ));

    cases.push(Generated::new(
        "g02-value-over-4000-bytes",
        "value-too-long just over, reported at the value (a block scalar: at its text).",
        vec![(
            "groups/values.yaml",
            yaml_groups(&[
                ("ascii", vec![format!("v: {}", a(4001))]),
                ("three-byte", vec![format!("v: {}", "中".repeat(1334))]),
                ("four-byte", vec![format!("v: \"{}a\"", "😀".repeat(1000))]),
                ("block", vec!["v: |-".into(), format!("  {}", a(4001))]),
            ]),
        )],
    ));

    let four_full: Vec<String> = (0..4).map(|i| format!("k{i}: {}", a(4000))).collect();
    cases.push(Generated::new(
        "g03-values-total-16000",
        "values-too-large: exactly 16000 bytes of values passes (the keys push keys + values over, a warning only).",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", four_full)]))],
    ));
    let mut multibyte: Vec<String> = (0..3).map(|i| format!("k{i}: {}a", "中".repeat(1333))).collect();
    multibyte.push(format!("k3: {}", a(4000)));
    multibyte.push("k4: b".into());
    cases.push(Generated::new(
        "g04-values-total-16001",
        "values-too-large: 16001 bytes of values is an error.",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", multibyte)]))],
    ));

    let keys_and_values = |last: usize| {
        let mut lines: Vec<String> = (0..3).map(|i| format!("k{i}: {}", a(4000))).collect();
        lines.push(format!("k3: {}", a(last)));
        yaml_groups(&[("lobby", lines)])
    };
    cases.push(Generated::new(
        "g05-keys-and-values-16000",
        "keys-and-values-large: 8 bytes of keys + 15992 of values = 16000 is silent.",
        vec![("groups/g.yaml", keys_and_values(3992))],
    ));
    cases.push(Generated::new(
        "g06-keys-and-values-16001",
        "keys-and-values-large: 16001 bytes of keys and values warns.",
        vec![("groups/g.yaml", keys_and_values(3993))],
    ));

    cases.push(Generated::new(
        "g07-not-utf8",
        "not-utf8: Latin-1 inside a value, UTF-16 from the start, a truncated character after \
         multi-byte ones (the column counts characters).",
        vec![
            ("groups/a-latin1.yaml", b"groups:\n  - id: a\n    attributes:\n      k: \"caf\xe9\"\n".to_vec()),
            ("groups/b-utf16.yaml", b"\xff\xfeg\0r\0o\0u\0p\0s\0:\0".to_vec()),
            ("groups/c-truncated.yaml", b"# \xe4\xb8\xad\xe6\x96\x87\xe4\xb8\ngroups: []\n".to_vec()),
        ],
    ));

    cases.push(Generated::new(
        "g08-bom-and-crlf",
        "A byte-order mark does not shift columns; CRLF line ends count as one line each.",
        vec![
            ("groups/bom.yaml", "\u{feff}grups: []\n".as_bytes().to_vec()),
            ("groups/crlf.yaml", b"groups:\r\n  - id: lobby\r\n    attributes:\r\n      k: ~\r\n".to_vec()),
        ],
    ));

    let garbage = b"\xff{[ garbage: \"unclosed\n\t- -".to_vec();
    let mut skipped = vec![("groups/valid.yaml", b"groups:\n  - id: lobby\n    attributes: {theme: dark}\n".to_vec())];
    for name in [
        "groups/.hidden.yaml",
        "groups/x.yaml~",
        "groups/.x.yaml.swp",
        "groups/.#x.yaml",
        "groups/#x.yaml#",
        "groups/x.yaml.bak",
        "groups/x.json",
        "groups/notes.txt",
        "groups/README.md",
        "groups/.hidden/inner.yaml",
        "groups/.git/config.yaml",
        "groups/sub/.hidden.yml",
        "groups/sub/.cache/deep/x.yaml",
        "groups/sub/x.yml~",
    ] {
        skipped.push((name, garbage.clone()));
    }
    cases.push(Generated::new(
        "g09-skipped-files",
        "Skipped files: hidden files and directories, editor leftovers, other extensions. \
         Each holds garbage that would be an error if it were read.",
        skipped,
    ));

    let mut big = String::from("groups:\n");
    for i in 0..BIG_GROUPS {
        let key = if i == BIG_BAD { "k".repeat(33) } else { "name".into() };
        writeln!(big, "  - id: g{i:05}\n    attributes:\n      {key}: group {i}\n      n: {i}").unwrap();
    }
    cases.push(Generated::new(
        "g10-20000-groups",
        "A file of 20,000 groups with one bad key near the end: the line is exact.",
        vec![("groups/big.yaml", big.into_bytes())],
    ));

    let mut large = String::from("groups:\n");
    for i in 0..LARGE_GROUPS {
        let size = if i == LARGE_LONG { 4001 } else { 2000 };
        writeln!(large, "  - id: g{i:04}\n    attributes:\n      v: {}", a(size)).unwrap();
    }
    assert!(large.len() > 5_000_000, "the large file is {} bytes", large.len());
    cases.push(Generated::new(
        "g11-five-megabytes",
        "A 5 MB file: 2,500 groups with a 2,000-byte value each, one value of 4,001 bytes near the end.",
        vec![("groups/large.yaml", large.into_bytes())],
    ));

    cases.push(Generated::new(
        "g12-alias-to-long-value",
        "An alias of a value that is too long: reported at the anchored text and at the alias.",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", vec![format!("a: &long {}", a(4001)), "b: *long".into()])]))],
    ));

    cases
}

/// The generated cases, each against `tests/snapshots/corpus__generated@<name>.snap`.
#[test]
fn generated() {
    let cases = generated_cases();
    // Run at once on every core (the large ones take a while), then compare in order.
    let rendered: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases.iter().map(|case| scope.spawn(|| run_case(&case.files, false))).collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (case, rendered) in cases.iter().zip(rendered) {
        // Where the bad group of the large files is, counted from how they are written:
        // group i starts on line 2 + 4i (2 + 3i), its first key on the line after next.
        let at = match case.name {
            "g10-20000-groups" => Some(format!("groups/big.yaml:{}:7: error: ", 2 + 4 * BIG_BAD + 2)),
            "g11-five-megabytes" => Some(format!("groups/large.yaml:{}:10: error: ", 2 + 3 * LARGE_LONG + 2)),
            _ => None,
        };
        if let Some(at) = at {
            assert!(rendered.contains(&format!("--- stderr\n{at}")), "{}: not at {at}:\n{rendered}", case.name);
        }
        insta::with_settings!({ snapshot_suffix => case.name, description => case.about, omit_expression => true }, {
            insta::assert_snapshot!("generated", rendered);
        });
    }
}

/// The files of every committed case, and two more: the seeds that random inputs mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    cases.sort();
    let mut seeds: Vec<Vec<u8>> =
        cases.iter().flat_map(|case| case_files(case).into_iter().map(|(_, bytes)| bytes)).collect();
    seeds.push(
        b"groups:\n  - id: \"@TGS#aC5SZEAEF\"\n    attributes:\n      theme: dark\n      gifts: {tiers: [1, 10], on: yes}\n      rules: |\n        be kind\n"
            .to_vec(),
    );
    seeds.push(b"groups:\n  - {id: a, attributes: {k: &a v, j: *a, <<: {m: 1}}}\n".to_vec());
    seeds
}

/// Fragments that mean something to YAML or to grattr.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    ":", ": ", "- ", "[", "]", "{", "}", ",", "\"", "'", "&a ", "*a", "*b", "!!binary ", "!!int ", "!!str ",
    "!foo ", "? ", "---\n", "...\n", "\t", "\n", "\r\n", "  ", "    ", "#", "~", "null", "|", ">-", "\\",
    "\0", "\r", "é", "中", "😀", "\u{feff}", "\u{1b}[31m", "%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "<<: *a",
    "groups:", "id:", "attributes:", "@TGS#", "@TOPIC#", ".inf", ".NaN", "0x1F", "1e400",
    "99999999999999999999999", "-", "\"\\u0000\"", "\"\\x", "&a [*a]",
];

/// One edit of a seed, at places taken relative to its length when it is made.
#[derive(Debug, Clone)]
enum Edit {
    Overwrite(Index, u8),
    Insert(Index, &'static str),
    Delete(Index, usize),
    Copy { from: Index, len: usize, to: Index },
    Truncate(Index),
}

impl Edit {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |index: &Index, len: usize| index.index(len + 1);
        match self {
            Edit::Overwrite(index, byte) if !bytes.is_empty() => {
                let i = index.index(bytes.len());
                bytes[i] = *byte;
            }
            Edit::Overwrite(..) => {}
            Edit::Insert(index, token) => {
                let i = at(index, bytes.len());
                bytes.splice(i..i, token.bytes());
            }
            Edit::Delete(index, len) => {
                let i = at(index, bytes.len());
                bytes.drain(i..(i + len).min(bytes.len()));
            }
            Edit::Copy { from, len, to } => {
                let i = at(from, bytes.len());
                let copy = bytes[i..(i + len).min(bytes.len())].to_vec();
                let to = at(to, bytes.len());
                bytes.splice(to..to, copy);
            }
            Edit::Truncate(index) => bytes.truncate(at(index, bytes.len())),
        }
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Overwrite(at, byte)),
        2 => (any::<Index>(), proptest::sample::select(TOKENS)).prop_map(|(at, token)| Edit::Insert(at, token)),
        1 => (any::<Index>(), 0..40usize).prop_map(|(at, len)| Edit::Delete(at, len)),
        1 => (any::<Index>(), 0..80usize, any::<Index>()).prop_map(|(from, len, to)| Edit::Copy { from, len, to }),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// A random input: mostly a seed with a few edits, sometimes random bytes.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edited =
        (proptest::sample::select(seeds), proptest::collection::vec(edit(), 1..=6)).prop_map(|(seed, edits)| {
            let mut bytes = seed;
            for edit in &edits {
                edit.apply(&mut bytes);
            }
            bytes
        });
    prop_oneof![1 => proptest::collection::vec(any::<u8>(), 0..400), 7 => edited]
}

/// Whether a stderr line has one of the shapes grattr prints: a diagnostic of
/// `groups/fuzz.yaml` (with its line within `input`), a hint, or the summary.
fn well_formed(line: &str, input: &[u8]) -> bool {
    if line.starts_with("  help: ") || line.starts_with("groups: invalid: ") {
        return true;
    }
    let Some(rest) = line.strip_prefix("groups/fuzz.yaml:") else { return false };
    let Some((position, rest)) = rest.split_once(": ") else { return false };
    if !(rest.starts_with("error: ") || rest.starts_with("warning: ")) {
        return false;
    }
    // YAML breaks lines at LF, CRLF and a lone CR.
    let breaks =
        input.windows(2).filter(|w| w[0] == b'\r' && w[1] != b'\n').count() + usize::from(input.last() == Some(&b'\r'));
    let lines = input.iter().filter(|b| **b == b'\n').count() + breaks + 1;
    let numbers: Vec<Option<usize>> = position.split(':').map(|n| n.parse().ok()).collect();
    matches!(numbers.as_slice(), [Some(l), Some(c)] if (1..=lines).contains(l) && *c >= 1)
}

/// 200 inputs from a fixed seed, so that every run tries the same; `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED` choose others, for longer or other runs:
/// `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=7 cargo test --test corpus no_input_panics`.
fn fuzz_config() -> ProptestConfig {
    // The default reads the PROPTEST_ variables.
    let config = ProptestConfig::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") { config.cases } else { 200 },
        rng_seed: if set("PROPTEST_RNG_SEED") { config.rng_seed } else { RngSeed::Fixed(0x9e37_79b9_7f4a_7c15) },
        ..config
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn no_input_panics(input in input(seeds())) {
        let dir = repo(&[(PathBuf::from("groups/fuzz.yaml"), input.clone())]);
        let output = grattr(dir.path()).arg("validate").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        prop_assert!(
            matches!(output.status.code(), Some(0 | 1)) && !stderr.contains("panicked"),
            "exit code {:?}, stderr:\n{}", output.status.code(), stderr
        );
        let odd: Vec<&str> = stderr.lines().filter(|line| !well_formed(line, &input)).collect();
        prop_assert!(
            odd.is_empty(),
            "stderr lines that are not a one-line diagnostic within its file, a hint or the summary:\n{}\n--- stderr\n{}",
            odd.join("\n"),
            stderr
        );
    }
}

/// A group file over the size limit (64 MiB) is one diagnostic naming the file and
/// the limit, before it is read; the other files are still checked. The file is
/// sparse: nothing is written.
#[test]
fn a_group_file_over_the_size_limit_is_one_diagnostic() {
    let group = (PathBuf::from("groups/ok.yaml"), b"groups:\n  - id: a\n    attributes: {k: ~}\n".to_vec());
    let dir = repo(&[group]);
    std::fs::File::create(dir.path().join("groups/big.yaml")).unwrap().set_len((64 << 20) + 1).unwrap();
    let output = grattr(dir.path()).arg("validate").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&output.stderr), @r#"
    groups/big.yaml: error: file is 67108865 bytes, over the limit of 67108864 bytes (64 MiB) for one file
      help: split it: any number of files may declare groups and templates
    groups/ok.yaml:3:21: error: group "a" key "k": value is null
      help: values are text: write `k: ""` for an empty value, or quote a value such as "~" or "null"
    groups: invalid: 2 errors, 0 warnings in 2 files
    "#);
}

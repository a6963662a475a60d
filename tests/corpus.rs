//! The bad-input corpus: `grattr validate` run as a real binary on every case,
//! asserting the exact diagnostics (rule, line, column, message, hint), the
//! summary and the exit code.
//!
//! A case is a directory `tests/corpus/<NN-name>/` with
//!
//! - `groups/`: the group files (any tree);
//! - `expect.txt`: the exact stderr of `grattr validate` run in the case
//!   directory, stderr not being a terminal. Lines starting with `#` are
//!   comments, except `# stdout: TEXT`, the exact stdout (required when the
//!   expectation holds no error). The exit code follows from the expectation:
//!   1 when it lists an error, else 0;
//! - `after.json` (optional): `{group id: {key: value}}`, the exact `after` of
//!   every change in `grattr plan --format json` (there is no lockfile, so
//!   every group is a change).
//!
//! Adding a case is adding a directory. Cases too large to commit (4001-byte
//! values, a 20,000-group file, a 5 MB file) and cases whose file names git or
//! editors treat specially are built in [`generated_cases`] with the same kind of
//! expectation.
//!
//! A last test feeds 200 inputs (seeded mutations of the corpus files, and random
//! bytes) to the binary in one run, and checks that it neither panics nor exits
//! with anything but 0 or 1, and prints only one-line diagnostics that point
//! within their file, hints and the summary.

use assert_cmd::Command;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The `grattr.yaml` written next to every case's `groups/`.
const CONFIG: &str = "sdkappid: 1400000000\nadmin: administrator\nregion: singapore\n";

/// A null-value diagnostic with its hint, at `at` (`path:line:col`).
fn null_value(at: &str, group: &str, key: &str) -> String {
    format!(
        "{at}: error: group \"{group}\" key \"{key}\": value is null\n  help: values are text: write `{key}: \"\"` for an empty value, or quote a value such as \"~\" or \"null\"\n"
    )
}

/// The summary line of a failed validation.
fn invalid(errors: usize, warnings: usize, files: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "groups: invalid: {}, {} in {}\n",
        plural(errors, "error"),
        plural(warnings, "warning"),
        plural(files, "file")
    )
}

/// What a run must print and return.
#[derive(Debug, Clone)]
struct Expect {
    stderr: String,
    stdout: String,
    exit: i32,
}

impl Expect {
    /// Reads the `expect.txt` format described at the top of this file.
    fn parse(case: &str, text: &str) -> Expect {
        let mut stderr = String::new();
        let mut stdout = None;
        for line in text.split_inclusive('\n') {
            if let Some(out) = line.strip_prefix("# stdout: ") {
                stdout = Some(out.to_string());
            } else if !line.starts_with('#') {
                stderr.push_str(line);
            }
        }
        let has_error = stderr.lines().any(|l| !l.starts_with(' ') && l.contains(": error: "));
        let exit = i32::from(has_error);
        let stdout = match (stdout, has_error) {
            (Some(out), false) => out,
            (None, true) => String::new(),
            (Some(_), true) => {
                panic!("case {case}: expect.txt gives `# stdout:` but lists errors (stdout is empty then)")
            }
            (None, false) => {
                panic!("case {case}: expect.txt lists no error, so it must give `# stdout: groups: ok: …`")
            }
        };
        Expect { stderr, stdout, exit }
    }
}

/// One case: the files of its repository (besides `grattr.yaml`) and what grattr must do.
struct Case {
    name: String,
    files: Vec<(PathBuf, Vec<u8>)>,
    expect: Expect,
    after: Option<serde_json::Value>,
}

impl Case {
    fn generated(name: &str, files: Vec<(&str, Vec<u8>)>, expect: &str) -> Case {
        Case {
            name: name.to_string(),
            files: files.into_iter().map(|(path, bytes)| (PathBuf::from(path), bytes)).collect(),
            expect: Expect::parse(name, expect),
            after: None,
        }
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every file under `dir`, relative to `base`, in path order.
fn files_under(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(base, &path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path.strip_prefix(base).unwrap().to_path_buf(), bytes));
        }
    }
}

/// The committed cases under `tests/corpus/`.
fn corpus_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let expect = std::fs::read_to_string(dir.join("expect.txt"))
                .unwrap_or_else(|e| panic!("case {name}: cannot read expect.txt: {e}"));
            let groups = dir.join("groups");
            assert!(groups.is_dir(), "case {name}: no groups/ directory");
            let mut files = Vec::new();
            files_under(&dir, &groups, &mut files);
            let after = std::fs::read_to_string(dir.join("after.json"))
                .ok()
                .map(|text| serde_json::from_str(&text).unwrap_or_else(|e| panic!("case {name}: after.json: {e}")));
            Case { expect: Expect::parse(&name, &expect), name, files, after }
        })
        .collect()
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

/// The cases built in code: too large to commit, or with names that git and
/// editors treat specially.
fn generated_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let a = |n: usize| "a".repeat(n);

    // value-too-long at the bound: 4000 bytes in 1-, 3- and 4-byte characters, and as a block scalar.
    cases.push(Case::generated(
        "g01-value-at-4000-bytes",
        vec![(
            "groups/values.yaml",
            yaml_groups(&[
                ("ascii", vec![format!("v: {}", a(4000))]),
                ("three-byte", vec![format!("v: {}a", "中".repeat(1333))]),
                ("four-byte", vec![format!("v: {}", "😀".repeat(1000))]),
                ("block", vec!["v: |-".into(), format!("  {}", a(4000))]),
            ]),
        )],
        "# stdout: groups: ok: 4 groups in 1 file\n",
    ));

    // value-too-long just over, reported at the value (a block scalar: at its text).
    let over = yaml_groups(&[
        ("ascii", vec![format!("v: {}", a(4001))]),
        ("three-byte", vec![format!("v: {}", "中".repeat(1334))]),
        ("four-byte", vec![format!("v: \"{}a\"", "😀".repeat(1000))]),
        ("block", vec!["v: |-".into(), format!("  {}", a(4001))]),
    ]);
    let too_long = |line: u32, column: u32, group: &str, bytes: u32| {
        format!(
            "groups/values.yaml:{line}:{column}: error: group \"{group}\": value of key \"v\" is {bytes} bytes, limit 4000 bytes [10046]\n"
        )
    };
    cases.push(Case::generated(
        "g02-value-over-4000-bytes",
        vec![("groups/values.yaml", over)],
        &[
            too_long(4, 10, "ascii", 4001),
            too_long(7, 10, "three-byte", 4002),
            too_long(10, 10, "four-byte", 4001),
            too_long(14, 9, "block", 4001),
            invalid(4, 0, 1),
        ]
        .concat(),
    ));

    // values-too-large: exactly 16000 bytes of values passes (the keys push keys +
    // values over, a warning only); one byte more is an error.
    let four_full: Vec<String> = (0..4).map(|i| format!("k{i}: {}", a(4000))).collect();
    cases.push(Case::generated(
        "g03-values-total-16000",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", four_full.clone())]))],
        "# stdout: groups: ok: 1 group in 1 file (0 errors, 1 warning in 1 file)\n\
         groups/g.yaml:4:7: warning: group \"lobby\": keys and values total 16008 bytes, over the 16000 bytes the client SDKs document [10048]\n",
    ));
    let mut multibyte: Vec<String> = (0..3).map(|i| format!("k{i}: {}a", "中".repeat(1333))).collect();
    multibyte.push(format!("k3: {}", a(4000)));
    multibyte.push("k4: b".into());
    cases.push(Case::generated(
        "g04-values-total-16001",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", multibyte)]))],
        &format!(
            "groups/g.yaml:4:7: error: group \"lobby\": values total 16001 bytes, limit 16000 bytes per group [10048]\n{}",
            invalid(1, 0, 1)
        ),
    ));

    // keys-and-values-large: 8 bytes of keys + 15992 of values = 16000 is silent; 16001 warns.
    let keys_and_values = |last: usize| {
        let mut lines: Vec<String> = (0..3).map(|i| format!("k{i}: {}", a(4000))).collect();
        lines.push(format!("k3: {}", a(last)));
        yaml_groups(&[("lobby", lines)])
    };
    cases.push(Case::generated(
        "g05-keys-and-values-16000",
        vec![("groups/g.yaml", keys_and_values(3992))],
        "# stdout: groups: ok: 1 group in 1 file\n",
    ));
    cases.push(Case::generated(
        "g06-keys-and-values-16001",
        vec![("groups/g.yaml", keys_and_values(3993))],
        "# stdout: groups: ok: 1 group in 1 file (0 errors, 1 warning in 1 file)\n\
         groups/g.yaml:4:7: warning: group \"lobby\": keys and values total 16001 bytes, over the 16000 bytes the client SDKs document [10048]\n",
    ));

    // not-utf8: Latin-1 inside a value, UTF-16 from the start, a truncated
    // character after multi-byte ones (the column counts characters).
    cases.push(Case::generated(
        "g07-not-utf8",
        vec![
            ("groups/a-latin1.yaml", b"groups:\n  - id: a\n    attributes:\n      k: \"caf\xe9\"\n".to_vec()),
            ("groups/b-utf16.yaml", b"\xff\xfeg\0r\0o\0u\0p\0s\0:\0".to_vec()),
            ("groups/c-truncated.yaml", b"# \xe4\xb8\xad\xe6\x96\x87\xe4\xb8\ngroups: []\n".to_vec()),
        ],
        &format!(
            "groups/a-latin1.yaml:4:14: error: file is not UTF-8 (invalid byte at offset 47)\n\
             groups/b-utf16.yaml:1:1: error: file is not UTF-8 (invalid byte at offset 0)\n\
             groups/c-truncated.yaml:1:5: error: file is not UTF-8 (invalid byte at offset 8)\n{}",
            invalid(3, 0, 3)
        ),
    ));

    // A byte-order mark does not shift columns; CRLF line ends count as one line each.
    cases.push(Case::generated(
        "g08-bom-and-crlf",
        vec![
            ("groups/bom.yaml", "\u{feff}grups: []\n".as_bytes().to_vec()),
            ("groups/crlf.yaml", b"groups:\r\n  - id: lobby\r\n    attributes:\r\n      k: ~\r\n".to_vec()),
        ],
        &format!(
            "groups/bom.yaml:1:1: error: unknown field `grups`, expected one of groups\n{}{}",
            null_value("groups/crlf.yaml:4:10", "lobby", "k"),
            invalid(2, 0, 2)
        ),
    ));

    // Skipped files: hidden files and directories, editor leftovers, other
    // extensions. Each holds garbage that would be an error if it were read.
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
    cases.push(Case::generated("g09-skipped-files", skipped, "# stdout: groups: ok: 1 group in 1 file\n"));

    // A file of 20,000 groups with one bad key near the end: the line is exact.
    const GROUPS: usize = 20_000;
    const BAD: usize = 19_990;
    let mut big = String::from("groups:\n");
    for i in 0..GROUPS {
        let key = if i == BAD { "k".repeat(33) } else { "name".into() };
        writeln!(big, "  - id: g{i:05}\n    attributes:\n      {key}: group {i}\n      n: {i}").unwrap();
    }
    // Group i starts on line 2 + 4i; its first key is two lines below.
    let line = 2 + 4 * BAD + 2;
    cases.push(Case::generated(
        "g10-20000-groups",
        vec![("groups/big.yaml", big.into_bytes())],
        &format!(
            "groups/big.yaml:{line}:7: error: group \"g{BAD:05}\": key \"{}\" is 33 bytes, limit 32 bytes [10045]\n{}",
            "k".repeat(33),
            invalid(1, 0, 1)
        ),
    ));

    // A 5 MB file: 2,500 groups with a 2,000-byte value each, one value of 4,001 bytes near the end.
    const LARGE: usize = 2_500;
    const LONG: usize = 2_490;
    let mut large = String::from("groups:\n");
    for i in 0..LARGE {
        let size = if i == LONG { 4001 } else { 2000 };
        writeln!(large, "  - id: g{i:04}\n    attributes:\n      v: {}", a(size)).unwrap();
    }
    assert!(large.len() > 5_000_000, "the large file is {} bytes", large.len());
    let line = 2 + 3 * LONG + 2;
    cases.push(Case::generated(
        "g11-five-megabytes",
        vec![("groups/large.yaml", large.into_bytes())],
        &format!(
            "groups/large.yaml:{line}:10: error: group \"g{LONG:04}\": value of key \"v\" is 4001 bytes, limit 4000 bytes [10046]\n{}",
            invalid(1, 0, 1)
        ),
    ));

    // An alias of a value that is too long: reported at the anchored text and at the alias.
    cases.push(Case::generated(
        "g12-alias-to-long-value",
        vec![("groups/g.yaml", yaml_groups(&[("lobby", vec![format!("a: &long {}", a(4001)), "b: *long".into()])]))],
        &format!(
            "groups/g.yaml:4:16: error: group \"lobby\": value of key \"a\" is 4001 bytes, limit 4000 bytes [10046]\n\
             groups/g.yaml:5:10: error: group \"lobby\": value of key \"b\" is 4001 bytes, limit 4000 bytes [10046]\n{}",
            invalid(2, 0, 1)
        ),
    ));

    cases
}

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

/// Writes a repository: `grattr.yaml` and the given files.
fn write_repo(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    std::fs::write(dir.join("grattr.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.join("groups")).unwrap();
    for (path, bytes) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// A unified diff of two texts, for failure messages.
fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(2)
        .header("expected", "actual")
        .to_string()
}

/// Shortens very long lines (a 4001-byte key in a diff helps nobody).
fn shorten(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            if line.chars().count() > 400 {
                let head: String = line.chars().take(200).collect();
                let tail: String = line.chars().rev().take(100).collect::<Vec<_>>().into_iter().rev().collect();
                format!("{head}…[{} chars]…{tail}", line.chars().count())
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Runs one case; returns what went wrong, if anything.
fn run_case(case: &Case) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    write_repo(dir.path(), &case.files);
    let output = grattr(dir.path()).arg("validate").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut problems = String::new();
    if output.status.code() != Some(case.expect.exit) {
        writeln!(problems, "exit code: expected {}, got {:?}", case.expect.exit, output.status.code()).unwrap();
    }
    if stderr != case.expect.stderr {
        writeln!(problems, "stderr differs:\n{}", shorten(&diff(&case.expect.stderr, &stderr))).unwrap();
    }
    if stdout != case.expect.stdout {
        writeln!(problems, "stdout differs:\n{}", shorten(&diff(&case.expect.stdout, &stdout))).unwrap();
    }
    if let Some(after) = &case.after {
        let plan = grattr(dir.path()).args(["plan", "--format", "json"]).output().unwrap();
        let json: Option<serde_json::Value> = serde_json::from_slice(&plan.stdout).ok();
        match json {
            Some(json) if plan.status.code() == Some(0) => {
                let actual: serde_json::Map<String, serde_json::Value> = json["changes"]
                    .as_array()
                    .expect("the plan has changes")
                    .iter()
                    .map(|change| (change["group_id"].as_str().unwrap().to_string(), change["after"].clone()))
                    .collect();
                let actual = serde_json::Value::Object(actual);
                if &actual != after {
                    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap() + "\n";
                    writeln!(problems, "plan `after` values differ:\n{}", diff(&pretty(after), &pretty(&actual)))
                        .unwrap();
                }
            }
            _ => writeln!(
                problems,
                "grattr plan --format json failed ({:?}):\n{}",
                plan.status.code(),
                String::from_utf8_lossy(&plan.stderr)
            )
            .unwrap(),
        }
    }
    (!problems.is_empty()).then_some(problems)
}

/// Runs `cases` on all cores and fails with every case that failed, by name.
fn run_all(cases: &[Case]) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(4, std::num::NonZero::get).min(cases.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    if let Some(problem) = run_case(case) {
                        failures.lock().unwrap().push((case.name.clone(), problem));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    if !failures.is_empty() {
        let mut report = format!("{} of {} corpus cases failed:\n", failures.len(), cases.len());
        for (name, problem) in &failures {
            write!(report, "\n──── case {name} ────\n{problem}").unwrap();
        }
        let names: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
        write!(report, "\nfailed: {}", names.join(", ")).unwrap();
        panic!("{report}");
    }
}

#[test]
fn corpus() {
    let mut cases = corpus_cases();
    assert!(cases.len() >= 40, "tests/corpus/ holds {} cases", cases.len());
    let generated = generated_cases();
    for case in &generated {
        assert!(!cases.iter().any(|c| c.name == case.name), "case {} is both committed and generated", case.name);
    }
    cases.extend(generated);
    // The slowest cases first, so that they overlap with the rest.
    cases.sort_by_key(|case| std::cmp::Reverse(case.files.iter().map(|(_, b)| b.len()).sum::<usize>()));
    run_all(&cases);
}

/// A number from the environment, for longer fuzzing runs:
/// `CORPUS_FUZZ_INPUTS=5000 CORPUS_FUZZ_SEED=7 cargo test --test corpus no_input_panics`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// xorshift64*: deterministic, good enough to mutate inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
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

/// One mutated input: a seed file with a few random edits, or random bytes.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(8) == 0 {
        let len = rng.below(400);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut bytes = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(6) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(80)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, copy);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Whether a stderr line has one of the shapes grattr prints: a diagnostic of a
/// fuzz file (with its line within the file), a hint, or the summary.
fn well_formed(line: &str, inputs: &[Vec<u8>]) -> bool {
    if line.starts_with("  help: ") || line.starts_with("groups: invalid: ") {
        return true;
    }
    let Some(rest) = line.strip_prefix("groups/fuzz-") else { return false };
    let Some((number, rest)) = rest.split_once(".yaml:") else { return false };
    let Ok(index) = number.parse::<usize>() else { return false };
    let Some(input) = inputs.get(index) else { return false };
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

#[test]
fn no_input_panics() {
    let mut seeds: Vec<Vec<u8>> =
        corpus_cases().into_iter().flat_map(|case| case.files.into_iter().map(|(_, bytes)| bytes)).collect();
    seeds.push(
        b"groups:\n  - id: \"@TGS#aC5SZEAEF\"\n    attributes:\n      theme: dark\n      gifts: {tiers: [1, 10], on: yes}\n      rules: |\n        be kind\n"
            .to_vec(),
    );
    seeds.push(b"groups:\n  - {id: a, attributes: {k: &a v, j: *a, <<: {m: 1}}}\n".to_vec());
    let mut rng = Rng(env_number("CORPUS_FUZZ_SEED", 0x9e37_79b9_7f4a_7c15) | 1);
    let count = env_number("CORPUS_FUZZ_INPUTS", 200) as usize;
    let inputs: Vec<Vec<u8>> = (0..count).map(|_| mutate(&mut rng, &seeds)).collect();

    let check = |files: &[(PathBuf, Vec<u8>)]| -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        write_repo(dir.path(), files);
        let output = grattr(dir.path()).arg("validate").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !matches!(output.status.code(), Some(0 | 1)) || stderr.contains("panicked") {
            return Err(format!("exit code {:?}, stderr:\n{}", output.status.code(), shorten(&stderr)));
        }
        Ok(stderr)
    };
    let files: Vec<(PathBuf, Vec<u8>)> = inputs
        .iter()
        .enumerate()
        .map(|(i, bytes)| (PathBuf::from(format!("groups/fuzz-{i:03}.yaml")), bytes.clone()))
        .collect();

    // One run over all inputs; only when it fails, one run per input to name the culprits.
    match check(&files) {
        Ok(stderr) => {
            let lines: Vec<&str> = stderr.lines().collect();
            let odd: Vec<String> = (0..lines.len())
                .filter(|&i| !well_formed(lines[i], &inputs))
                .map(|i| format!("{}\n  > {}", if i > 0 { lines[i - 1] } else { "(first line)" }, lines[i]))
                .collect();
            assert!(
                odd.is_empty(),
                "stderr lines (marked >) that are not a one-line diagnostic within its file, a hint or the summary:\n{}",
                shorten(&odd.join("\n"))
            );
        }
        Err(combined) => {
            let mut report = format!("grattr failed on the {count} fuzz inputs together: {combined}\nalone:\n");
            for (i, file) in files.iter().enumerate() {
                let alone = std::slice::from_ref(file);
                if let Err(problem) = check(alone) {
                    writeln!(report, "fuzz-{i:03}.yaml = {:?}\n{problem}", String::from_utf8_lossy(&file.1)).unwrap();
                }
            }
            panic!("{report}");
        }
    }
}

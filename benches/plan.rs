//! Benchmark of `grattr plan` and `grattr validate` on four kinds of large generated
//! repository, beside PyYAML's C loader reading the same group files.
//!
//! - `lockfile`: 1,000 groups a file in plain, single-quoted and block scalars, and a
//!   lockfile that records 1% of the groups differently (`support/generate.rs`): the
//!   plan of a managed app, 1% to update.
//! - `adopted`: 100 groups a file, every value double-quoted, and no lockfile: the
//!   first plan of an adopted app, every group to create.
//! - `sets`: 100 group sets (`ids:`) over 20 templates (with `extends` chains), one
//!   set a file, and a lockfile that records every group as it was before one
//!   template's `rules` changed: the review of a template change, the groups of one
//!   template in twenty to update.
//! - `templated`: 1,000 groups a file, each its own `id:` entry naming one of the same
//!   20 templates and adding one key (`own: "123"`), as `grattr import --template`
//!   writes them, and a lockfile that records 1% of the groups differently (as
//!   `lockfile`): the plan of a managed app written against templates, 1% to update.
//!
//! For each size, corpus and binary it checks the plan first (`plan --format json`:
//! the summary, every change's kind and keys, and the attributes of a sample of
//! groups against the generator's; the text and Markdown plans' summaries; validate's
//! count; for `sets`, that every change comes from the changed template and the text
//! and Markdown plans tell it as one cause; for `templated`, every change, its keys'
//! source and its attributes before and after), then times each command, stdout to a file, and prints a Markdown table:
//! wall time (min and median), CPU, the child's peak resident memory, and the ratio of
//! the best wall time to the best of PyYAML's C loader (`yaml.load(f, yaml.CLoader)`
//! of every group file, one Python process, timed the same way) in the same run.
//!
//! ```text
//! cargo bench --bench plan
//! GRATTR_BENCH_SIZES=10000,100000   sizes to run (default: both)
//! GRATTR_BENCH_CORPORA=lockfile,adopted,sets,templated   corpora to run (default: all four)
//! GRATTR_BENCH_COMMANDS=plan,json,markdown,validate   commands to time (default: all)
//! GRATTR_BENCH_RUNS=5               timed runs per command (default: 5 up to 20,000 groups, else 3;
//!                                   0 generates and checks only)
//! GRATTR_BENCH_KEEP=DIR             generate into DIR/<corpus>-<N> and keep it, for manual experiments
//! GRATTR_BENCH_BINARIES=PATH,...    also time these grattr binaries (default: the shipped static
//!                                   build, target/x86_64-unknown-linux-musl/dist/grattr, when
//!                                   scripts/build-static.sh has made it)
//! GRATTR_BENCH_PYTHON=python3       the Python with PyYAML for the reference ("none": skip it)
//! ```
//!
//! Peak memory is read with GNU time (`/usr/bin/time -f %M`) when present; without it
//! the column says "n/a". With more than one size, it also prints how each command's
//! best wall time and median CPU grow from the smallest size to the largest (linear:
//! the ratio of the sizes, or less). Without libyaml (PyYAML's C loader) the ratio says why it is
//! missing; it is never estimated. Run without `--bench` (as `cargo test --benches`
//! does), it only checks plans of 1,000 groups.

#[path = "support/generate.rs"]
mod generate;

use generate::{Generated, Spec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GNU_TIME: &str = "/usr/bin/time";

/// The static Linux binary releases ship, as `scripts/build-static.sh` builds it.
const SHIPPED: &str = "target/x86_64-unknown-linux-musl/dist/grattr";

/// A kind of generated repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Corpus {
    /// Managed: a lockfile, 1% of the groups to update.
    Lockfile,
    /// Adopted: no lockfile, double-quoted values, every group to create.
    Adopted,
    /// Group sets over templates, a lockfile from before one template changed.
    Sets,
    /// One entry a group naming a template, 1% of the groups to update.
    Templated,
}

impl Corpus {
    fn name(self) -> &'static str {
        match self {
            Corpus::Lockfile => "lockfile",
            Corpus::Adopted => "adopted",
            Corpus::Sets => "sets",
            Corpus::Templated => "templated",
        }
    }

    fn parse(text: &str) -> Corpus {
        match text.trim() {
            "lockfile" => Corpus::Lockfile,
            "adopted" => Corpus::Adopted,
            "sets" => Corpus::Sets,
            "templated" => Corpus::Templated,
            other => panic!("GRATTR_BENCH_CORPORA: unknown corpus {other:?} (lockfile, adopted, sets, templated)"),
        }
    }
}

/// A command timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timed {
    /// `grattr plan` (text).
    Plan,
    /// `grattr plan --format json`.
    Json,
    /// `grattr plan --format markdown`.
    Markdown,
    /// `grattr validate`.
    Validate,
}

impl Timed {
    const ALL: [Timed; 4] = [Timed::Plan, Timed::Json, Timed::Markdown, Timed::Validate];

    fn args(self) -> &'static [&'static str] {
        match self {
            Timed::Plan => &["plan"],
            Timed::Json => &["plan", "--format", "json"],
            Timed::Markdown => &["plan", "--format", "markdown"],
            Timed::Validate => &["validate"],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Timed::Plan => "`plan`",
            Timed::Json => "`plan --format json`",
            Timed::Markdown => "`plan --format markdown`",
            Timed::Validate => "`validate`",
        }
    }

    fn parse(text: &str) -> Timed {
        match text.trim() {
            "plan" => Timed::Plan,
            "json" => Timed::Json,
            "markdown" => Timed::Markdown,
            "validate" => Timed::Validate,
            other => panic!("GRATTR_BENCH_COMMANDS: unknown command {other:?} (plan, json, markdown, validate)"),
        }
    }
}

/// One command's results with one binary on one repository.
struct Row {
    binary: String,
    corpus: Corpus,
    command: Timed,
    generated: Generated,
    runs: Vec<Duration>,
    /// CPU time (user + system) of each run, when GNU time is there.
    cpu: Vec<Duration>,
    peak_rss_kib: Option<u64>,
    /// The best wall time of PyYAML's C loader on the same files, or why there is none.
    pyyaml: Result<Duration, String>,
}

/// What one run measured.
struct Measured {
    wall: Duration,
    /// Peak RSS in KiB and CPU time (user + system), when GNU time is there.
    usage: Option<(u64, Duration)>,
}

/// What the benchmark runs, from the environment.
struct Setup {
    bench_mode: bool,
    runs_override: Option<usize>,
    keep: Option<PathBuf>,
    time: Option<String>,
    binaries: Vec<(String, PathBuf)>,
    commands: Vec<Timed>,
    /// The Python to time PyYAML with, or why it is not timed.
    python: Result<String, &'static str>,
}

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let sizes = match std::env::var("GRATTR_BENCH_SIZES") {
        Ok(text) => parse_sizes(&text),
        Err(_) if bench_mode => vec![10_000, 100_000],
        Err(_) => vec![1_000],
    };
    let corpora: Vec<Corpus> = match std::env::var("GRATTR_BENCH_CORPORA") {
        Ok(text) => text.split(',').filter(|p| !p.trim().is_empty()).map(Corpus::parse).collect(),
        Err(_) => vec![Corpus::Lockfile, Corpus::Adopted, Corpus::Sets, Corpus::Templated],
    };
    let commands: Vec<Timed> = match std::env::var("GRATTR_BENCH_COMMANDS") {
        Ok(text) => text.split(',').filter(|p| !p.trim().is_empty()).map(Timed::parse).collect(),
        Err(_) => Timed::ALL.to_vec(),
    };
    let runs_override = std::env::var("GRATTR_BENCH_RUNS").ok().map(|text| {
        text.trim().parse::<usize>().unwrap_or_else(|_| panic!("GRATTR_BENCH_RUNS={text:?} is not a number"))
    });
    let keep = std::env::var_os("GRATTR_BENCH_KEEP").map(PathBuf::from);
    let time = gnu_time();
    if time.is_none() {
        eprintln!("note: {GNU_TIME} (GNU time) not found; peak memory is not measured");
    }
    let python = match std::env::var("GRATTR_BENCH_PYTHON") {
        Ok(text) if text.trim() == "none" => Err("not measured (GRATTR_BENCH_PYTHON=none)"),
        Ok(text) => Ok(text.trim().to_string()),
        Err(_) if bench_mode => Ok("python3".to_string()),
        Err(_) => Err("not measured outside `cargo bench`"),
    };

    // The binary cargo built for this bench, and the shipped ones: a release must not
    // be slower than a local build.
    let mut binaries = vec![("local build".to_string(), PathBuf::from(env!("CARGO_BIN_EXE_grattr")))];
    let extra: Vec<PathBuf> = match std::env::var("GRATTR_BENCH_BINARIES") {
        Ok(list) => list.split(',').filter(|p| !p.trim().is_empty()).map(|p| PathBuf::from(p.trim())).collect(),
        Err(_) => {
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED);
            if bench_mode && shipped.exists() { vec![shipped] } else { Vec::new() }
        }
    };
    for path in extra {
        assert!(path.exists(), "GRATTR_BENCH_BINARIES: {} does not exist", path.display());
        let label = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string();
        binaries.push((label, path));
    }
    let setup = Setup { bench_mode, runs_override, keep, time, binaries, commands, python };

    let mut rows = Vec::new();
    for &size in &sizes {
        for &corpus in &corpora {
            rows.extend(bench_size(&setup, corpus, size));
        }
    }

    println!();
    println!(
        "| Binary | Corpus | Command | Groups | Files | YAML | Lockfile | Runs | Wall min | Wall median | CPU median | Peak RSS | Wall min / PyYAML CLoader |"
    );
    println!(
        "|:-------|:-------|:--------|-------:|------:|-----:|---------:|-----:|---------:|------------:|-----------:|---------:|:--------------------------|"
    );
    for row in &rows {
        let g = &row.generated;
        let (wall_min, wall_median, cpu_median) = (min(&row.runs), median(&row.runs), median(&row.cpu));
        let rss = row.peak_rss_kib.map_or("n/a".to_string(), |kib| format!("{:.0} MiB", kib as f64 / 1024.0));
        let ratio = match (&row.pyyaml, row.runs.iter().min()) {
            (Ok(reference), Some(best)) => {
                format!("{:.3} ({})", best.as_secs_f64() / reference.as_secs_f64(), seconds(*reference))
            }
            (Ok(_), None) => "–".to_string(),
            (Err(why), _) => format!("n/a: {why}"),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {wall_min} | {wall_median} | {cpu_median} | {rss} | {ratio} |",
            row.binary,
            row.corpus.name(),
            row.command.label(),
            thousands(g.groups),
            thousands(g.files),
            mebibytes(g.yaml_bytes),
            if g.lock_bytes == 0 { "none".to_string() } else { mebibytes(g.lock_bytes) },
            row.runs.len(),
        );
    }
    println!();
    println!(
        "stdout to a file; 8 attributes per group (`sets`: 7 to 12, `templated`: 10 or 11, resolved over templates); \
         `lockfile` and `templated`: 1% of groups to update, `adopted`: every group to create, `sets`: the groups \
         of one template in 20 to update; \
         {} cores; CPU is user + system time; peak RSS of the grattr process; PyYAML: the best wall time of one Python \
         process loading every group file with yaml.CLoader, in the same run.",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    print_growth(&rows);
}

/// How each command's time grows from the smallest size run to the largest, when
/// more than one was: linear when the ratio is that of the sizes, or less.
fn print_growth(rows: &[Row]) {
    let (Some(small), Some(large)) =
        (rows.iter().map(|r| r.generated.groups).min(), rows.iter().map(|r| r.generated.groups).max())
    else {
        return;
    };
    if small == large || rows.iter().all(|r| r.runs.is_empty()) {
        return;
    }
    println!();
    println!(
        "Growth from {} to {} groups ({:.1}× the groups):",
        thousands(small),
        thousands(large),
        large as f64 / small as f64
    );
    println!();
    println!("| Binary | Corpus | Command | Wall min | Wall min ratio | CPU median ratio |");
    println!("|:-------|:-------|:--------|---------:|---------------:|-----------------:|");
    let best = |r: &Row| r.runs.iter().min().copied();
    let cpu = |r: &Row| {
        let mut sorted = r.cpu.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    };
    for row in rows.iter().filter(|r| r.generated.groups == large) {
        let Some(smaller) = rows.iter().find(|r| {
            r.generated.groups == small && r.binary == row.binary && r.corpus == row.corpus && r.command == row.command
        }) else {
            continue;
        };
        let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) if !b.is_zero() => format!("{:.1}×", a.as_secs_f64() / b.as_secs_f64()),
            _ => "–".to_string(),
        };
        let walls = match (best(smaller), best(row)) {
            (Some(a), Some(b)) => format!("{} → {}", seconds(a), seconds(b)),
            _ => "–".to_string(),
        };
        println!(
            "| {} | {} | {} | {walls} | {} | {} |",
            row.binary,
            row.corpus.name(),
            row.command.label(),
            ratio(best(row), best(smaller)),
            ratio(cpu(row), cpu(smaller)),
        );
    }
}

/// Generates one corpus of one size, then checks and times each binary on it.
fn bench_size(setup: &Setup, corpus: Corpus, size: usize) -> Vec<Row> {
    let spec = Spec::new(size);
    let temp;
    let root = match &setup.keep {
        Some(dir) => {
            let root = dir.join(format!("{}-{size}", corpus.name()));
            generate::prepare_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
            root
        }
        None => {
            temp = tempfile::Builder::new().prefix("grattr-bench-plan-").tempdir().expect("temporary directory");
            temp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let generated = match corpus {
        Corpus::Lockfile => generate::generate(&root, &spec),
        Corpus::Adopted => generate::generate_adopted(&root, size),
        Corpus::Sets => generate::generate_sets(&root, size),
        Corpus::Templated => generate::generate_templated(&root, &spec),
    }
    .unwrap_or_else(|e| panic!("generating {}: {e}", root.display()));
    eprintln!(
        "{} groups, {} corpus: generated {} files, {} of YAML and {} in {} ({})",
        thousands(size),
        corpus.name(),
        generated.files,
        mebibytes(generated.yaml_bytes),
        match generated.lock_bytes {
            0 => "no lockfile".to_string(),
            bytes => format!("a {} lockfile", mebibytes(bytes)),
        },
        seconds(started.elapsed()),
        root.display(),
    );
    let runs = match setup.runs_override {
        Some(runs) => runs,
        None if !setup.bench_mode => 1,
        None if size <= 20_000 => 5,
        None => 3,
    };
    let pyyaml = match &setup.python {
        Ok(python) if runs > 0 => pyyaml_best(python, &root, &generated, runs),
        Ok(_) => Err("not timed (GRATTR_BENCH_RUNS=0)".to_string()),
        Err(why) => Err(why.to_string()),
    };
    match &pyyaml {
        Ok(best) => eprintln!("  PyYAML CLoader: best {}", seconds(*best)),
        Err(why) => eprintln!("  PyYAML CLoader: {why}"),
    }

    let mut rows = Vec::new();
    for (label, binary) in &setup.binaries {
        eprintln!("  {label}:");
        check_binary(&root, binary, corpus, &spec, &generated);
        for &command in &setup.commands {
            let mut row = Row {
                binary: label.clone(),
                corpus,
                command,
                generated: generated.clone(),
                runs: Vec::new(),
                cpu: Vec::new(),
                peak_rss_kib: None,
                pyyaml: pyyaml.clone(),
            };
            for run in 1..=runs {
                let measured = timed_run(&root, binary, command, setup.time.as_deref());
                let usage = measured.usage.map_or(String::new(), |(kib, cpu)| {
                    format!(", CPU {}, peak RSS {:.0} MiB", seconds(cpu), kib as f64 / 1024.0)
                });
                eprintln!("    {} run {run}/{runs}: {}{usage}", command.label(), seconds(measured.wall));
                row.runs.push(measured.wall);
                if let Some((kib, cpu)) = measured.usage {
                    row.cpu.push(cpu);
                    row.peak_rss_kib = row.peak_rss_kib.max(Some(kib));
                }
            }
            rows.push(row);
        }
    }
    if setup.keep.is_some() {
        eprintln!("  kept {}: cd there and run `grattr plan`", root.display());
    }
    rows
}

/// Proves that `binary` plans and validates the repository as generated: every
/// command's output is checked once, untimed, before any is timed.
fn check_binary(root: &Path, binary: &Path, corpus: Corpus, spec: &Spec, generated: &Generated) {
    let started = Instant::now();
    let json = run_checked(root, binary, Timed::Json);
    check_json_plan(&json, corpus, spec, generated);
    let (creates, updates) = match corpus {
        Corpus::Lockfile | Corpus::Sets | Corpus::Templated => (0, generated.drifted),
        Corpus::Adopted => (generated.groups, 0),
    };
    let summary = format!(
        "Plan: {creates} to create, {updates} to update, 0 to delete, {} unchanged.",
        generated.groups - creates - updates
    );
    let text = String::from_utf8(run_checked(root, binary, Timed::Plan)).expect("the text plan is UTF-8");
    assert_eq!(text.lines().last(), Some(summary.as_str()), "the text plan's last line");
    let created = text.lines().filter(|line| line.ends_with(")") && line.contains(" will be created  (")).count();
    let updated = text.lines().filter(|line| line.ends_with(")") && line.contains(" will be updated  (")).count();
    assert_eq!((created, updated), (creates, updates), "groups listed in the text plan");
    let markdown = String::from_utf8(run_checked(root, binary, Timed::Markdown)).expect("the Markdown plan is UTF-8");
    assert!(markdown.contains(&format!("\n**{summary}**\n")), "the Markdown plan's summary");
    if corpus == Corpus::Sets {
        check_set_cause(&text, &markdown, updates);
    }
    let validate = String::from_utf8(run_checked(root, binary, Timed::Validate)).expect("validate's output is UTF-8");
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let ok = format!(": ok: {} in {}\n", plural(generated.groups, "group"), plural(generated.files, "file"));
    assert!(validate.ends_with(&ok), "validate says {validate:?}, not {ok:?}");
    let sets = match corpus {
        Corpus::Sets => "; every update from the changed template, told once as a cause",
        _ => "",
    };
    eprintln!(
        "    checked in {}: {} creates, {} updates ({} changed values, {} added keys, {} removed keys), {} unchanged; \
         sampled groups' attributes as generated; text, Markdown and validate agree{sets}",
        seconds(started.elapsed()),
        creates,
        updates,
        generated.changed,
        generated.key_added,
        generated.key_removed,
        generated.groups - creates - updates,
    );
}

/// Runs `command` once and returns its stdout; it must succeed.
fn run_checked(root: &Path, binary: &Path, command: Timed) -> Vec<u8> {
    let output = grattr_command(root, binary, command, None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run grattr");
    assert_succeeded(command, &output);
    output.stdout
}

/// Fails the benchmark, with grattr's stderr, unless the run succeeded.
fn assert_succeeded(command: Timed, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "grattr {:?} failed ({}):\n{}",
        command.args(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `grattr <command>` in `root`, isolated from the caller's grattr variables.
fn grattr_command(root: &Path, grattr: &Path, command: Timed, wrapper: Option<(&str, &[&str])>) -> Command {
    let mut process = match wrapper {
        Some((program, args)) => {
            let mut process = Command::new(program);
            process.args(args).arg(grattr);
            process
        }
        None => Command::new(grattr),
    };
    process
        .args(command.args())
        .current_dir(root)
        .env_remove("GRATTR_CONFIG")
        .env_remove("GRATTR_ENV")
        .stdin(Stdio::null());
    process
}

/// One timed run of the child, its stdout to a file.
fn timed_run(root: &Path, grattr: &Path, command: Timed, time: Option<&str>) -> Measured {
    let report = tempfile::NamedTempFile::new().expect("temporary file");
    let report_path = report.path().to_string_lossy().into_owned();
    let time_args = ["-f", "%M %U %S", "-o", report_path.as_str()];
    let mut process = match time {
        Some(time) => grattr_command(root, grattr, command, Some((time, &time_args))),
        None => grattr_command(root, grattr, command, None),
    };
    let stdout = tempfile::NamedTempFile::new().expect("temporary file");
    process.stdout(stdout.reopen().expect("the output file")).stderr(Stdio::piped());
    let started = Instant::now();
    let output = process.output().expect("run grattr");
    let elapsed = started.elapsed();
    assert_succeeded(command, &output);
    let usage = time.map(|_| {
        let text = std::fs::read_to_string(report.path()).expect("GNU time report");
        parse_time_report(&text).unwrap_or_else(|| panic!("unexpected GNU time report {text:?}"))
    });
    Measured { wall: elapsed, usage }
}

/// Loads every group file with PyYAML's C loader, in one Python process, and counts
/// the groups (each id of a set).
const PYYAML: &str = r#"
import os, sys, yaml
if not getattr(yaml, "__with_libyaml__", False) or not hasattr(yaml, "CLoader"):
    print("no-libyaml"); sys.exit(0)
groups = 0
for folder, _, names in sorted(os.walk(sys.argv[1])):
    for name in sorted(names):
        with open(os.path.join(folder, name), "rb") as f:
            doc = yaml.load(f, Loader=yaml.CLoader)
            groups += sum(len(g["ids"]) if "ids" in g else 1 for g in doc.get("groups") or [])
print(groups)
"#;

/// The best of `runs` wall times of PyYAML's C loader on the repository's group
/// files, or why it cannot be measured.
fn pyyaml_best(python: &str, root: &Path, generated: &Generated, runs: usize) -> Result<Duration, String> {
    let mut best: Option<Duration> = None;
    for _ in 0..runs {
        let started = Instant::now();
        let output = Command::new(python)
            .args(["-c", PYYAML])
            .arg(root.join("groups"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = stderr.lines().last().unwrap_or("failed").to_string();
            return Err(format!("{python} with PyYAML: {why}"));
        }
        match stdout.trim() {
            "no-libyaml" => return Err("PyYAML here is built without libyaml (no yaml.CLoader)".to_string()),
            count => assert_eq!(count, generated.groups.to_string(), "groups PyYAML read"),
        }
        best = Some(best.map_or(elapsed, |best| best.min(elapsed)));
    }
    best.ok_or_else(|| "no run".to_string())
}

/// Reads the last line of a `-f "%M %U %S"` report: KiB, user seconds, system seconds.
fn parse_time_report(text: &str) -> Option<(u64, Duration)> {
    let mut fields = text.lines().last()?.split_whitespace();
    let kib = fields.next()?.parse().ok()?;
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((kib, Duration::from_secs_f64(user + system)))
}

fn min(durations: &[Duration]) -> String {
    durations.iter().min().map_or("–".to_string(), |d| seconds(*d))
}

fn median(durations: &[Duration]) -> String {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).map_or("–".to_string(), |d| seconds(*d))
}

/// Checks that the JSON plan has exactly the expected summary and changes, and that
/// the attributes of a sample of groups are those generated.
fn check_json_plan(stdout: &[u8], corpus: Corpus, spec: &Spec, generated: &Generated) {
    let plan: serde_json::Value = serde_json::from_slice(stdout).expect("the plan is JSON");
    let summary = &plan["summary"];
    let count =
        |field: &str| summary[field].as_u64().unwrap_or_else(|| panic!("summary.{field} missing: {summary}")) as usize;
    let (creates, updates) = match corpus {
        Corpus::Lockfile | Corpus::Sets | Corpus::Templated => (0, generated.drifted),
        Corpus::Adopted => (generated.groups, 0),
    };
    let expected = [
        ("create", creates),
        ("update", updates),
        ("delete", 0),
        ("unchanged", generated.groups - creates - updates),
        ("not_declared", 0),
    ];
    for (field, want) in expected {
        assert_eq!(count(field), want, "summary.{field} of a plan of {} groups: {summary}", generated.groups);
    }
    if matches!(corpus, Corpus::Lockfile | Corpus::Templated) && generated.groups >= 100 {
        assert_eq!(generated.drifted, generated.groups / 100, "the generator drifts 1% of the groups");
    }
    if corpus == Corpus::Sets {
        let expected = (0..generated.groups).filter(|&index| generate::sets_updated(generated.groups, index)).count();
        assert_eq!(generated.drifted, expected, "the groups of the changed template");
    }

    let changes = plan["changes"].as_array().expect("changes is an array");
    assert_eq!(changes.len(), creates + updates, "one change per group to create or update");
    let keys = |change: &serde_json::Value, kind: &str| change["keys"][kind].as_array().map_or(0, Vec::len);
    let attributes = |value: &serde_json::Value| -> grattr::model::AttributeSet {
        serde_json::from_value(value.clone()).expect("attributes are an object of strings")
    };
    let index_of = |change: &serde_json::Value| -> usize {
        let id = change["group_id"].as_str().expect("group_id is text");
        id.strip_prefix("bench-").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("unexpected group id {id}"))
    };
    let mut kinds = (0, 0, 0);
    let mut sampled = 0;
    for (position, change) in changes.iter().enumerate() {
        let index = index_of(change);
        match corpus {
            Corpus::Adopted => {
                assert_eq!(change["action"], "create", "{change}");
                assert_eq!(index, position, "changes in id order");
                assert_eq!(keys(change, "added"), 8, "{change}");
            }
            Corpus::Sets => {
                check_set_change(change, index, generated.groups);
                sampled += 1;
                continue;
            }
            Corpus::Templated => {
                match check_templated_change(change, index, spec) {
                    generate::Drift::Changed => kinds.0 += 1,
                    generate::Drift::KeyAdded => kinds.1 += 1,
                    generate::Drift::KeyRemoved => kinds.2 += 1,
                }
                sampled += 1;
                continue;
            }
            Corpus::Lockfile => {
                assert_eq!(change["action"], "update", "{change}");
                assert!(spec.drifted(index), "{index} was not drifted");
                match (keys(change, "changed"), keys(change, "added"), keys(change, "removed")) {
                    (2, 0, 0) => kinds.0 += 1,
                    (0, 1, 0) => kinds.1 += 1,
                    (0, 0, 1) => kinds.2 += 1,
                    _ => panic!("unexpected keys in {change}"),
                }
            }
        }
        // A sample of groups, spread over the files: their values, exactly.
        if position % 97 == 0 || position + 1 == changes.len() {
            assert_eq!(attributes(&change["after"]), generate::declared_attributes(index), "group {index}, after");
            if corpus == Corpus::Lockfile {
                let before = generate::recorded_attributes(spec, index);
                assert_eq!(attributes(&change["before"]), before, "group {index}, before");
            }
            sampled += 1;
        }
    }
    if matches!(corpus, Corpus::Lockfile | Corpus::Templated) {
        assert_eq!(kinds, (generated.changed, generated.key_added, generated.key_removed), "kinds of change");
    }
    assert!(sampled > 0 || changes.is_empty(), "no group sampled");
}

/// Checks one change of a `sets` plan, every one of them: an update of the changed
/// template's `rules` alone, told as coming from that template, from and to the
/// attributes the generator resolved without grattr. (The groups the plan leaves
/// unchanged are checked too: the lockfile records what the generator resolved, so
/// each of them resolved to exactly that.)
fn check_set_change(change: &serde_json::Value, index: usize, groups: usize) {
    let attributes = |value: &serde_json::Value| -> grattr::model::AttributeSet {
        serde_json::from_value(value.clone()).expect("attributes are an object of strings")
    };
    assert_eq!(change["action"], "update", "{change}");
    assert!(generate::sets_updated(groups, index), "group {index} does not use the changed template: {change}");
    let keys = &change["keys"];
    assert_eq!(keys["changed"], serde_json::json!([generate::SETS_CHANGED_KEY]), "group {index}: {keys}");
    assert_eq!((keys["added"].as_array().map(Vec::len), keys["removed"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let source = &keys["sources"][generate::SETS_CHANGED_KEY];
    let template = generate::template_name(generate::SETS_CHANGED_TEMPLATE);
    assert_eq!(source["kind"], "template", "group {index}: {source}");
    assert_eq!(source["template"], template, "group {index}: {source}");
    assert_eq!(source["file"], "groups/_templates.yaml", "group {index}: {source}");
    assert_eq!(attributes(&change["after"]), generate::sets_resolved(groups, index), "group {index}, after");
    assert_eq!(attributes(&change["before"]), generate::sets_recorded(groups, index), "group {index}, before");
}

/// Checks one change of a `templated` plan, every one of them: an update of a drifted
/// group, of exactly the key its record differs in, the group's own key told as
/// written in its own entry (file, line and column), from and to the attributes the
/// generator resolved without grattr; returns how the record differed.
fn check_templated_change(change: &serde_json::Value, index: usize, spec: &Spec) -> generate::Drift {
    let attributes = |value: &serde_json::Value| -> grattr::model::AttributeSet {
        serde_json::from_value(value.clone()).expect("attributes are an object of strings")
    };
    assert_eq!(change["action"], "update", "{change}");
    assert!(spec.drifted(index), "{index} was not drifted");
    let keys = &change["keys"];
    let list = |kind: &str| keys[kind].as_array().map_or(0, Vec::len);
    let kind = generate::drift_kind(spec, index);
    let expected = match kind {
        generate::Drift::Changed => (1, 0, 0),
        generate::Drift::KeyAdded => (0, 1, 0),
        generate::Drift::KeyRemoved => (0, 0, 1),
    };
    assert_eq!((list("changed"), list("added"), list("removed")), expected, "group {index}: {keys}");
    if kind != generate::Drift::KeyRemoved {
        let source = &keys["sources"][generate::TEMPLATED_OWN_KEY];
        assert_eq!(source["kind"], "group", "group {index}: {source}");
        assert_eq!(source["file"], generate::templated_file(spec, index), "group {index}: {source}");
        let line = generate::templated_own_line(index % spec.groups_per_file);
        assert_eq!((source["line"].as_u64(), source["column"].as_u64()), (Some(line as u64), Some(7)), "{source}");
    }
    assert_eq!(attributes(&change["after"]), generate::templated_resolved(index), "group {index}, after");
    assert_eq!(attributes(&change["before"]), generate::templated_recorded(spec, index), "group {index}, before");
    kind
}

/// Checks that the text and Markdown plans of a `sets` repository tell the template
/// change once, as a cause, before (text) or instead of (Markdown) the groups' detail.
fn check_set_cause(text: &str, markdown: &str, updates: usize) {
    let template = generate::template_name(generate::SETS_CHANGED_TEMPLATE);
    let key = generate::SETS_CHANGED_KEY;
    let cause = format!("template {template} changed {key}: {updates} groups to update");
    let shared: Vec<&str> = text.lines().skip_while(|line| *line != "  Shared changes:").take(3).collect();
    assert_eq!(shared, ["  Shared changes:", &format!("    {cause}"), ""], "the text plan's causes");

    let cause = format!("**template `{template}` changed `{key}`: {updates} groups to update**\n\n```diff\n");
    assert!(markdown.contains(&cause), "the Markdown plan's cause: {cause:?} in\n{markdown}");
    let fold = format!("<details><summary>{updates} groups with this change alone</summary>\n\n");
    assert!(markdown.contains(&fold), "the Markdown plan folds the groups under the cause: {fold:?}");
    // Each group folded once, listed or counted, and no section of its own.
    let listed = markdown.lines().filter(|line| line.starts_with("- `bench-")).count();
    let more = markdown
        .lines()
        .find_map(|line| line.strip_prefix("- … and ")?.strip_suffix(" more")?.parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(listed + more, updates, "groups folded under the cause ({listed} listed, {more} more)");
    assert_eq!(markdown.matches("<details>").count(), 1, "a section besides the cause's fold");
}

/// The path of GNU time, when it is installed and is GNU time (`-f`, `-o`).
fn gnu_time() -> Option<String> {
    let output = Command::new(GNU_TIME).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    text.contains("GNU").then(|| GNU_TIME.to_string())
}

fn parse_sizes(text: &str) -> Vec<usize> {
    text.split(',')
        .map(|part| part.trim().replace('_', ""))
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or_else(|_| panic!("GRATTR_BENCH_SIZES: {part:?} is not a number")))
        .collect()
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 { format!("{:.0} ms", secs * 1000.0) } else { format!("{secs:.2} s") }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

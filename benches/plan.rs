//! Benchmark of `grattr plan --format json` on large generated repositories.
//!
//! For each size it generates a repository (see `support/generate.rs`) whose
//! lockfile records 1% of the groups differently, runs the release binary once
//! as a warm-up that also checks the plan's summary, then times several runs
//! with stdout to /dev/null and prints a Markdown table: wall time (min and
//! median) and the child's peak resident memory.
//!
//! ```text
//! cargo bench --bench plan
//! GRATTR_BENCH_SIZES=10000,100000   sizes to run (default: both)
//! GRATTR_BENCH_RUNS=5               timed runs per size (default: 5 up to 20,000 groups, else 3;
//!                                   0 generates and checks only)
//! GRATTR_BENCH_KEEP=DIR             generate into DIR/plan-<N> and keep it, for manual experiments
//! GRATTR_BENCH_BINARIES=PATH,...    also time these grattr binaries (default: the shipped static
//!                                   build, target/x86_64-unknown-linux-musl/dist/grattr, when
//!                                   scripts/build-static.sh has made it)
//! ```
//!
//! Peak memory is read with GNU time (`/usr/bin/time -f %M`) when present;
//! without it the column says "n/a". Run without `--bench` (as `cargo test
//! --benches` does), it only checks a plan of 1,000 groups.

#[path = "support/generate.rs"]
mod generate;

use generate::{Generated, Spec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GNU_TIME: &str = "/usr/bin/time";

/// The static Linux binary releases ship, as `scripts/build-static.sh` builds it.
const SHIPPED: &str = "target/x86_64-unknown-linux-musl/dist/grattr";

/// One size's results with one binary.
struct Row {
    binary: String,
    generated: Generated,
    runs: Vec<Duration>,
    /// CPU time (user + system) of each run, when GNU time is there.
    cpu: Vec<Duration>,
    peak_rss_kib: Option<u64>,
}

/// What one run measured.
struct Measured {
    wall: Duration,
    /// Peak RSS in KiB and CPU time (user + system), when GNU time is there.
    usage: Option<(u64, Duration)>,
}

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let sizes = match std::env::var("GRATTR_BENCH_SIZES") {
        Ok(text) => parse_sizes(&text),
        Err(_) if bench_mode => vec![10_000, 100_000],
        Err(_) => vec![1_000],
    };
    let runs_override = std::env::var("GRATTR_BENCH_RUNS").ok().map(|text| {
        text.trim().parse::<usize>().unwrap_or_else(|_| panic!("GRATTR_BENCH_RUNS={text:?} is not a number"))
    });
    let keep = std::env::var_os("GRATTR_BENCH_KEEP").map(PathBuf::from);
    let time = gnu_time();
    if time.is_none() {
        eprintln!("note: {GNU_TIME} (GNU time) not found; peak memory is not measured");
    }

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

    let mut rows = Vec::new();
    for &size in &sizes {
        let runs = match runs_override {
            Some(runs) => runs,
            None if !bench_mode => 1,
            None if size <= 20_000 => 5,
            None => 3,
        };
        rows.extend(bench_size(size, runs, keep.as_deref(), time.as_deref(), &binaries));
    }

    println!();
    println!("| Binary | Groups | Files | YAML | Lockfile | Runs | Wall min | Wall median | CPU median | Peak RSS |");
    println!("|:-------|-------:|------:|-----:|---------:|-----:|---------:|------------:|-----------:|---------:|");
    for row in &rows {
        let g = &row.generated;
        let (wall_min, wall_median, cpu_median) = (min(&row.runs), median(&row.runs), median(&row.cpu));
        let rss = row.peak_rss_kib.map_or("n/a".to_string(), |kib| format!("{:.0} MiB", kib as f64 / 1024.0));
        println!(
            "| {} | {} | {} | {} | {} | {} | {wall_min} | {wall_median} | {cpu_median} | {rss} |",
            row.binary,
            thousands(g.groups),
            thousands(g.files),
            mebibytes(g.yaml_bytes),
            mebibytes(g.lock_bytes),
            row.runs.len(),
        );
    }
    println!();
    println!(
        "`grattr plan --format json`, stdout to /dev/null, 8 attributes per group, 1% of groups to update; \
         {} cores; CPU is user + system time; peak RSS of the grattr process.",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
}

/// Generates one size, then checks and times each binary on it.
fn bench_size(
    size: usize,
    runs: usize,
    keep: Option<&Path>,
    time: Option<&str>,
    binaries: &[(String, PathBuf)],
) -> Vec<Row> {
    let spec = Spec::new(size);
    let temp;
    let root = match keep {
        Some(dir) => {
            let root = dir.join(format!("plan-{size}"));
            generate::prepare_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
            root
        }
        None => {
            temp = tempfile::Builder::new().prefix("grattr-bench-plan-").tempdir().expect("temporary directory");
            temp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let generated = generate::generate(&root, &spec).unwrap_or_else(|e| panic!("generating {}: {e}", root.display()));
    eprintln!(
        "{} groups: generated {} files, {} of YAML and a {} lockfile in {} ({})",
        thousands(size),
        generated.files,
        mebibytes(generated.yaml_bytes),
        mebibytes(generated.lock_bytes),
        seconds(started.elapsed()),
        root.display(),
    );

    let rows =
        binaries.iter().map(|(label, binary)| bench_binary(&root, label, binary, &generated, runs, time)).collect();
    if keep.is_some() {
        eprintln!("  kept {}: cd there and run `grattr plan`", root.display());
    }
    rows
}

/// Checks and times one binary on a generated repository.
fn bench_binary(
    root: &Path,
    label: &str,
    binary: &Path,
    generated: &Generated,
    runs: usize,
    time: Option<&str>,
) -> Row {
    eprintln!("  {label}:");
    // The warm-up run also proves the plan is the one expected.
    let started = Instant::now();
    let output = plan_command(root, binary).stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("run grattr");
    assert!(
        output.status.success(),
        "grattr plan failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    check_plan(&output.stdout, generated);
    eprintln!(
        "  warm-up: {}, plan checked: {} updates ({} changed values, {} added keys, {} removed keys), {} unchanged",
        seconds(started.elapsed()),
        generated.drifted,
        generated.changed,
        generated.key_added,
        generated.key_removed,
        generated.groups - generated.drifted,
    );

    let mut row = Row {
        binary: label.to_string(),
        generated: generated.clone(),
        runs: Vec::new(),
        cpu: Vec::new(),
        peak_rss_kib: None,
    };
    for run in 1..=runs {
        let measured = timed_run(root, binary, time);
        let usage = measured.usage.map_or(String::new(), |(kib, cpu)| {
            format!(", CPU {}, peak RSS {:.0} MiB", seconds(cpu), kib as f64 / 1024.0)
        });
        eprintln!("  run {run}/{runs}: {}{usage}", seconds(measured.wall));
        row.runs.push(measured.wall);
        if let Some((kib, cpu)) = measured.usage {
            row.cpu.push(cpu);
            row.peak_rss_kib = row.peak_rss_kib.max(Some(kib));
        }
    }
    row
}

/// `grattr plan --format json` in `root`, isolated from the caller's grattr variables.
fn plan_command(root: &Path, grattr: &Path) -> Command {
    plan_command_via(root, grattr, None)
}

fn plan_command_via(root: &Path, grattr: &Path, wrapper: Option<(&str, &[&str])>) -> Command {
    let mut command = match wrapper {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(grattr);
            command
        }
        None => Command::new(grattr),
    };
    command
        .args(["plan", "--format", "json"])
        .current_dir(root)
        .env_remove("GRATTR_CONFIG")
        .env_remove("GRATTR_ENV")
        .stdin(Stdio::null());
    command
}

/// One timed run of the child.
fn timed_run(root: &Path, grattr: &Path, time: Option<&str>) -> Measured {
    let report = tempfile::NamedTempFile::new().expect("temporary file");
    let report_path = report.path().to_string_lossy().into_owned();
    let time_args = ["-f", "%M %U %S", "-o", report_path.as_str()];
    let mut command = match time {
        Some(time) => plan_command_via(root, grattr, Some((time, &time_args))),
        None => plan_command(root, grattr),
    };
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let output = command.output().expect("run grattr");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "grattr plan failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let usage = time.map(|_| {
        let text = std::fs::read_to_string(report.path()).expect("GNU time report");
        parse_time_report(&text).unwrap_or_else(|| panic!("unexpected GNU time report {text:?}"))
    });
    Measured { wall: elapsed, usage }
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

/// Checks that the plan has exactly the expected summary and changes.
fn check_plan(stdout: &[u8], generated: &Generated) {
    let plan: serde_json::Value = serde_json::from_slice(stdout).expect("the plan is JSON");
    let summary = &plan["summary"];
    let count =
        |field: &str| summary[field].as_u64().unwrap_or_else(|| panic!("summary.{field} missing: {summary}")) as usize;
    let expected = [
        ("create", 0),
        ("update", generated.drifted),
        ("delete", 0),
        ("unchanged", generated.groups - generated.drifted),
        ("not_declared", 0),
    ];
    for (field, want) in expected {
        assert_eq!(count(field), want, "summary.{field} of a plan of {} groups: {summary}", generated.groups);
    }
    if generated.groups >= 100 {
        assert_eq!(generated.drifted, generated.groups / 100, "the generator drifts 1% of the groups");
    }

    let changes = plan["changes"].as_array().expect("changes is an array");
    assert_eq!(changes.len(), generated.drifted, "one change per drifted group");
    let keys = |change: &serde_json::Value, kind: &str| change["keys"][kind].as_array().map_or(0, Vec::len);
    let mut kinds = (0, 0, 0);
    for change in changes {
        assert_eq!(change["action"], "update", "{change}");
        match (keys(change, "changed"), keys(change, "added"), keys(change, "removed")) {
            (2, 0, 0) => kinds.0 += 1,
            (0, 1, 0) => kinds.1 += 1,
            (0, 0, 1) => kinds.2 += 1,
            _ => panic!("unexpected keys in {change}"),
        }
    }
    assert_eq!(kinds, (generated.changed, generated.key_added, generated.key_removed), "kinds of change");
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

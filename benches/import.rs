//! Benchmark of `grattr import` (`cargo bench --bench import`): 200 live groups
//! adopted into a repository that already declares (and records) 100,000, the
//! release binary against an emulator process, at the highest rate grattr allows
//! (200 calls a second: about 1 s of the run). An import loads the whole workspace,
//! reads the groups, writes their YAML and reads it back, and rewrites the lockfile:
//! beyond the calls, it is dominated by the repository's size.
//!
//! ```text
//! GRATTR_BENCH_RUNS=3      timed imports (default 3)
//! ```

#[path = "support/generate.rs"]
mod generate;

#[path = "support/emulator.rs"]
mod emulator;

use emulator::EmulatorProcess;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Groups adopted per import.
const ADOPTED: usize = 200;

fn grattr(root: &Path, args: &[&str]) -> (Duration, String) {
    emulator::grattr(root, args, &[])
}

fn main() {
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    let runs: usize = std::env::var("GRATTR_BENCH_RUNS").map_or(3, |n| n.trim().parse().expect("GRATTR_BENCH_RUNS"));
    let (declared, runs) = if bench_mode { (100_000, runs) } else { (1_000, 1) };
    let scratch = tempfile::tempdir().unwrap();
    let emulator = EmulatorProcess::start(&["--no-rate-limits"]);
    let config = generate::config().replace("http://127.0.0.1:9", &emulator.base) + "rate_limit: 200\n";

    // The live groups: applied to the emulator from a repository of their own.
    let live = scratch.path().join("live");
    std::fs::create_dir_all(live.join("groups")).unwrap();
    std::fs::write(live.join("grattr.yaml"), &config).unwrap();
    let mut yaml = String::from("groups:\n");
    let mut ids = String::new();
    for index in 0..ADOPTED {
        let id = format!("live-{index:05}");
        let _ = writeln!(yaml, "  - id: {id}\n    attributes:");
        for (key, value) in generate::declared_attributes(index) {
            let _ = writeln!(yaml, "      {key}: {}", serde_json::Value::from(value));
        }
        let _ = writeln!(ids, "{id}");
    }
    std::fs::write(live.join("groups/live.yaml"), yaml).unwrap();
    grattr(&live, &["apply", "--yes"]);

    // The repository that adopts them.
    let root = scratch.path().join("repo");
    let spec = generate::Spec { groups: declared, groups_per_file: 1_000, drift_every: 0 };
    generate::generate(&root, &spec).unwrap();
    std::fs::write(root.join("grattr.yaml"), &config).unwrap();
    std::fs::write(root.join("ids.txt"), ids).unwrap();
    let lockfile = std::fs::read(root.join("grattr.lock")).unwrap();

    let mut samples = Vec::new();
    for run in 0..=runs {
        let (elapsed, stdout) = grattr(&root, &["import", "--from", "ids.txt"]);
        assert!(stdout.contains(&format!("Imported {ADOPTED} group(s)")), "{stdout}");
        // The next plan is empty: the import declares and records exactly what is live.
        let (_, plan) = grattr(&root, &["plan", "--detailed-exitcode"]);
        assert!(plan.contains(&format!("{} unchanged", declared + ADOPTED)), "{plan}");
        if run > 0 {
            eprintln!("run {run}/{runs}: {:.2} s", elapsed.as_secs_f64());
            samples.push(elapsed);
        } else {
            eprintln!("warm-up: {:.2} s, plan afterwards checked: no change", elapsed.as_secs_f64());
        }
        std::fs::remove_file(root.join("groups/imported.yaml")).unwrap();
        std::fs::write(root.join("grattr.lock"), &lockfile).unwrap();
    }
    samples.sort();
    if let (Some(best), Some(median)) = (samples.first(), samples.get(samples.len() / 2)) {
        println!("| benchmark | result |");
        println!("|---|---|");
        println!(
            "| `import` of {ADOPTED} live groups into a repository of {} (median of {}) | min {:.2} s, median {:.2} s |",
            declared,
            samples.len(),
            best.as_secs_f64(),
            median.as_secs_f64()
        );
    }
}

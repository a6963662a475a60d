//! Benchmarks of `grattr watch` (`cargo bench --bench watch`), the release binary
//! against an in-process emulator:
//! 1. idle: CPU time used over 10 s with nothing to do (target: none measurable);
//! 2. file save → applied: median and p99 over 100 edits, 20 ms emulator latency,
//!    300 ms debounce (target: p99 under 1 s);
//! 3. a repository of 100,000 groups: one file changed → re-planned, as the watcher
//!    logs it (target: under 100 ms; no full re-read); and save → cycle done, with
//!    the lockfile (66 MB) written after the cycle, once quiet.

#[path = "support/generate.rs"]
mod generate;

use grattr::api::usersig::SecretKey;
use grattr::emulator::{Emulator, EmulatorConfig, Latency};
use grattr::model::GroupId;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "bench-secret-key";

struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(root: &Path) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grattr"))
            .current_dir(root)
            // No settle interval: what is measured is the watcher's own work, not a wait it is told to make.
            .args(["watch", "--listen", "127.0.0.1:0", "--debounce", "300ms", "--settle", "0s", "--log-format", "json"])
            .env("GRATTR_SECRET_KEY", KEY)
            .env("GRATTR_LOG", "info,grattr::watch=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Watch { child, lines }
    }

    fn wait_for(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.lines.lock().unwrap().iter().filter(|l| l.contains(text)).count() < count {
            assert!(Instant::now() < deadline, "no {text:?} in the log");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU seconds the process has used (user + system), from /proc.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    fn planned_in_ms(&self) -> Vec<f64> {
        self.field_ms("planned", "planned_in_ms")
    }

    /// The numeric `field` of every log line with `message`.
    fn field_ms(&self, message: &str, field: &str) -> Vec<f64> {
        let message = format!("\"message\":\"{message}\"");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&message))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["fields"][field].as_f64())
            .collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn group_file(id: &str, value: usize) -> String {
    format!("groups:\n  - id: {id}\n    attributes:\n      theme: dark\n      revision: \"{value}\"\n")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let scratch = tempfile::tempdir().unwrap();

    // 1 and 2: a small repository, an emulator with 20 ms latency.
    let mut config = EmulatorConfig::new(1400000000, "administrator", SecretKey::new(KEY).unwrap());
    config.auto_create_groups = true;
    config.latency = Latency::Fixed(Duration::from_millis(20));
    let emulator = runtime.block_on(Emulator::start(config, "127.0.0.1:0".parse().unwrap())).unwrap();
    let root = scratch.path().join("small");
    std::fs::create_dir_all(root.join("groups")).unwrap();
    std::fs::write(
        root.join("grattr.yaml"),
        format!("sdkappid: 1400000000\nadmin: administrator\nendpoint: {}\n", emulator.base_url()),
    )
    .unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("groups/g{i:02}.yaml")), group_file(&format!("g{i:02}"), 0)).unwrap();
    }
    let watch = Watch::start(&root);
    watch.wait_for("\"message\":\"reconciled\"", 1);
    // The first reconcile is over once its records are in the lockfile.
    watch.wait_for("\"message\":\"wrote the lockfile\"", 1);
    std::thread::sleep(Duration::from_secs(1));
    let before = watch.cpu();
    std::thread::sleep(Duration::from_secs(10));
    let idle = watch.cpu() - before;

    let group = GroupId::parse("g07").unwrap();
    let mut latencies = Vec::new();
    for edit in 1..=100 {
        let saved = Instant::now();
        std::fs::write(root.join("groups/g07.yaml"), group_file("g07", edit)).unwrap();
        let wanted = edit.to_string();
        while emulator.attributes(&group).and_then(|a| a.get("revision").map(str::to_owned)) != Some(wanted.clone()) {
            assert!(saved.elapsed() < Duration::from_secs(10), "edit {edit} not applied");
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.push(saved.elapsed().as_secs_f64() * 1000.0);
        // Let the watcher settle, so that every edit is its own burst.
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(watch);
    let median = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);

    // 3: 100,000 groups, the lockfile matching, one file changed at a time.
    let big = scratch.path().join("big");
    generate::generate(&big, &generate::Spec { groups: 100_000, groups_per_file: 1_000, drift_every: 0 }).unwrap();
    let mut config = EmulatorConfig::new(1400000000, "administrator", SecretKey::new(KEY).unwrap());
    config.auto_create_groups = true;
    let emulator = runtime.block_on(Emulator::start(config, "127.0.0.1:0".parse().unwrap())).unwrap();
    std::fs::write(big.join("grattr.yaml"), generate::config().replace("http://127.0.0.1:9", &emulator.base_url()))
        .unwrap();
    let watch = Watch::start(&big);
    watch.wait_for("\"message\":\"planned\"", 1);
    let file = std::fs::read_dir(big.join("groups")).unwrap().flatten().find(|e| e.path().is_dir()).unwrap().path();
    let file = std::fs::read_dir(file).unwrap().flatten().next().unwrap().path();
    let original = std::fs::read_to_string(&file).unwrap();
    let mut cycles = Vec::new();
    for edit in 1..=10 {
        let saved = Instant::now();
        std::fs::write(&file, original.replacen("attributes:\n", &format!("attributes:\n      edit: \"{edit}\"\n"), 1))
            .unwrap();
        watch.wait_for("\"message\":\"reconciled\"", edit);
        cycles.push(saved.elapsed().as_secs_f64() * 1000.0);
        // Quiet long enough for the lockfile to be written, before the next edit.
        watch.wait_for("\"message\":\"wrote the lockfile\"", edit);
    }
    let mut planned: Vec<f64> = watch.planned_in_ms().into_iter().skip(1).collect();
    let mut written: Vec<f64> = watch.field_ms("wrote the lockfile", "took_ms");
    drop(watch);
    let planned_median = percentile(&mut planned, 0.5);
    let planned_max = planned.iter().copied().fold(0.0, f64::max);
    let cycle_median = percentile(&mut cycles, 0.5);
    let cycle_max = cycles.iter().copied().fold(0.0, f64::max);
    let written_median = percentile(&mut written, 0.5);

    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!("| idle, 20 groups, 10 s with nothing to do | {idle:.2} s of CPU | none measurable |");
    println!(
        "| file save → applied, 100 edits, 20 ms latency, 300 ms debounce | median {median:.0} ms, p99 {p99:.0} ms | p99 < 1 s |"
    );
    println!(
        "| 100,000 groups, one file of 1,000 changed → re-planned (10 edits) | median {planned_median:.1} ms, max {planned_max:.1} ms | < 100 ms |"
    );
    println!(
        "| 100,000 groups, the same edits: save → cycle done (debounce included) | median {cycle_median:.0} ms, max {cycle_max:.0} ms; the lockfile written once quiet, median {written_median:.0} ms, off the cycle | — |"
    );
}

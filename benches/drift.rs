//! Benchmark of `grattr drift` (`cargo bench --bench drift`): 10,000 groups read
//! at the documented 200 calls/s, so the floor is 50 s; target within 10% of it.
//! The emulator starts from a state file that holds the applied state, with 1% of
//! groups changed behind grattr's back, and enforces the service's rate limits.

#[path = "support/generate.rs"]
mod generate;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

const KEY: &str = "bench-secret-key";

fn main() {
    let groups: usize = std::env::var("GRATTR_BENCH_DRIFT_GROUPS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("drift");
    generate::generate(&root, &generate::Spec { groups, groups_per_file: 1_000, drift_every: 0 }).unwrap();
    // The live state: what the lockfile records, but every 100th group edited by a client.
    let lockfile = grattr::lockfile::Lockfile::read(&root.join("grattr.lock"), 1400000000).unwrap();
    let mut state = serde_json::json!({"groups": {}, "next_id": 0});
    for (index, (id, applied)) in lockfile.groups.iter().enumerate() {
        let mut attributes = applied.attributes.clone();
        if index % 100 == 0 {
            attributes.insert("client_note".into(), "edited in the app".into());
        }
        state["groups"][id.as_str()] = serde_json::json!({"type": "Public", "attributes": attributes});
    }
    let state_file = scratch.path().join("emulator.json");
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();

    let mut emulator = Command::new(env!("CARGO_BIN_EXE_grattr"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state_file)
        .env("GRATTR_SECRET_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(emulator.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.split_whitespace().nth(4).unwrap().to_string();
    let config = generate::config().replace("http://127.0.0.1:9", &base) + "rate_limit: 200\n";
    std::fs::write(root.join("grattr.yaml"), config).unwrap();

    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_grattr"))
        .current_dir(&root)
        .args(["drift", "--format", "json"])
        .env("GRATTR_SECRET_KEY", KEY)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let _ = emulator.kill();
    let _ = emulator.wait();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["drifted"], groups / 100, "the drift was found");
    assert_eq!(report["summary"]["in_sync"], groups - groups / 100);
    let floor = groups as f64 / 200.0;
    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!(
        "| `grattr drift`, {groups} groups at 200/s ({} drifted found) | {:.2} s (floor {floor:.2} s, +{:.1}%) | within 10% |",
        groups / 100,
        elapsed.as_secs_f64(),
        100.0 * (elapsed.as_secs_f64() / floor - 1.0)
    );
}

//! Benchmarks of `grattr apply` (`cargo bench --bench apply`):
//! 1. 2,000 changed groups at a 200/s app limit against 20 ms of emulator latency
//!    (floor 10 s; target under 11 s), the real binary against an emulator process;
//! 2. 100,000 declared groups, none changed: no API call, and wall time within
//!    0.5 s of `grattr plan` on the same repository;
//! 3. recording: 10,000 changed groups into a lockfile of 100,000, rate limits off,
//!    measuring the journal's share of the run and the final fold.

#[path = "support/generate.rs"]
mod generate;

#[path = "support/emulator.rs"]
mod emulator;

use emulator::{EmulatorProcess, KEY};
use grattr::api::client::{Client, ClientConfig};
use grattr::api::usersig::SecretKey;
use grattr::apply::guard::Safety;
use grattr::apply::{self, ApplyOptions};
use grattr::lockfile::Lockfile;
use grattr::plan::{self, PlanEnvironment, PlanOptions};
use grattr::state::{Key, Location, Store};
use std::path::Path;

use std::time::{Duration, Instant};

fn grattr(root: &Path, args: &[&str]) -> Duration {
    emulator::grattr(root, args, &[]).0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn paced(scratch: &Path) -> Duration {
    let root = scratch.join("paced");
    generate::generate(&root, &generate::Spec { groups: 2_000, groups_per_file: 1_000, drift_every: 0 }).unwrap();
    std::fs::remove_file(root.join("grattr.lock")).unwrap();
    let emulator = EmulatorProcess::start(&["--latency", "20"]);
    let config = generate::config().replace("http://127.0.0.1:9", &emulator.base) + "rate_limit: 200\n";
    std::fs::write(root.join("grattr.yaml"), config).unwrap();
    let elapsed = grattr(&root, &["apply", "--yes"]);
    assert_eq!(emulator.stats()["calls"]["set_group_attr"], 2_000, "one call per changed group");
    elapsed
}

fn unchanged(scratch: &Path) -> (Duration, Duration) {
    let root = scratch.join("unchanged");
    generate::generate(&root, &generate::Spec { groups: 100_000, groups_per_file: 1_000, drift_every: 0 }).unwrap();
    // The endpoint is a closed port: a single call would fail the run.
    grattr(&root, &["plan"]);
    let plan = median((0..3).map(|_| grattr(&root, &["plan"])).collect());
    let apply = median((0..3).map(|_| grattr(&root, &["apply", "--yes"])).collect());
    (plan, apply)
}

struct Recording {
    changes: usize,
    recorded: usize,
    run: Duration,
    journal_busy: Duration,
    syncs: usize,
    waited: Duration,
    fold: Duration,
}

fn recording(scratch: &Path) -> Recording {
    let root = scratch.join("recording");
    let spec = generate::Spec { groups: 100_000, groups_per_file: 1_000, drift_every: 10 };
    generate::generate(&root, &spec).unwrap();
    let emulator = EmulatorProcess::start(&["--no-rate-limits"]);
    let lock_path = root.join("grattr.lock");
    let lockfile = Lockfile::read(&lock_path, 1400000000).unwrap();
    let desired = grattr::desired::load(&root.join("groups"));
    let plan = plan::diff(
        &desired.state.groups,
        &lockfile.groups,
        &PlanOptions { environment: PlanEnvironment { name: None, sdkappid: 1400000000 }, ..PlanOptions::default() },
    );
    let mut config =
        ClientConfig::new(emulator.base.clone(), 1400000000, "administrator", SecretKey::new(KEY).unwrap());
    config.rate_limit = 1_000_000;
    let client = Client::new(config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let location = Location::Local { lockfile: lock_path.clone(), seed: None };
    let store = runtime.block_on(Store::open(&location, Key { sdkappid: 1400000000, environment: String::new() }));
    let lease = runtime.block_on(store.unwrap().lease("bench", Duration::ZERO, Duration::from_secs(15))).unwrap();
    let journal = lease.recorder().unwrap();
    let options = ApplyOptions { concurrency: 64, ..ApplyOptions::default() };
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    // The benchmark measures the calls, not the guard: it is forced.
    let approved = Safety { threshold: 30, force: true }.check(&plan, lockfile.groups.len()).unwrap();
    let report = runtime.block_on(apply::execute(approved, &client, &journal, &options, &stop, |_, _| {}));
    let calls_done = started.elapsed();
    let stats = runtime.block_on(journal.finish()).unwrap();
    let folding = Instant::now();
    lockfile.fold_onto(&lock_path, 1400000000).unwrap();
    let fold = folding.elapsed();
    let run = started.elapsed();
    let waited = run.saturating_sub(calls_done).saturating_sub(fold);
    assert!(report.failed.is_empty(), "{:?}", report.failed.first());
    Recording {
        changes: plan.changes.len(),
        recorded: stats.records,
        run,
        journal_busy: stats.busy,
        syncs: stats.syncs,
        waited,
        fold,
    }
}

fn main() {
    let scratch = tempfile::tempdir().unwrap();
    let paced = paced(scratch.path());
    let (plan, apply) = unchanged(scratch.path());
    let r = recording(scratch.path());
    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!("| 2,000 changed groups, 200/s, 20 ms latency | {:.2} s (floor 10.00 s) | < 11 s |", paced.as_secs_f64());
    println!(
        "| 100,000 groups, none changed: `apply` vs `plan` (median of 3) | {:.2} s vs {:.2} s: {:+.2} s, no API call | within 0.5 s |",
        apply.as_secs_f64(),
        plan.as_secs_f64(),
        apply.as_secs_f64() - plan.as_secs_f64()
    );
    let share = |d: Duration| 100.0 * d.as_secs_f64() / r.run.as_secs_f64();
    println!(
        "| {} changes into a 100,000-group lockfile, rate limits off | run {:.2} s; per-success recording: {} records in {} fsyncs on a writer thread ({:.2} s busy, off the calls' path), {:.3} s ({:.1}%) waiting for the last batch; final fold {:.2} s ({:.1}%) | recording < 5% |",
        r.changes,
        r.run.as_secs_f64(),
        r.recorded,
        r.syncs,
        r.journal_busy.as_secs_f64(),
        r.waited.as_secs_f64(),
        share(r.waited),
        r.fold.as_secs_f64(),
        share(r.fold)
    );
}

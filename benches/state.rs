//! Benchmarks of the record's stores (`cargo bench --bench state`): what recording
//! costs on PostgreSQL and on S3 against local files.
//! 1. At the API's pace: `grattr apply` of 10,000 new groups at the app-wide limit of
//!    200 calls/s against 20 ms of emulator latency (floor 50 s), the real binary,
//!    recording into local files, into a throwaway PostgreSQL on 127.0.0.1 (fsync on) and
//!    into a throwaway S3-compatible server (moto) on 127.0.0.1 (target: each within 10%
//!    of local files);
//! 2. the recording alone: 10,000 records through the recorder with no API call, as
//!    fast as the store takes them (one fsynced batch, one fenced transaction, or one
//!    piece and one conditional head write, per batch of what waits).

// The throwaway PostgreSQL runs as the `postgres` user: a unix bench.
#[cfg(not(unix))]
fn main() {
    println!("cargo bench --bench state runs on unix only");
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(unix)]
#[path = "support/emulator.rs"]
mod emulator;

#[cfg(unix)]
#[path = "../tests/support/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

#[cfg(unix)]
#[path = "../tests/support/s3.rs"]
#[allow(dead_code, unreachable_pub)]
mod s3;

#[cfg(unix)]
mod bench {
    use super::emulator::{self, EmulatorProcess};
    use super::postgres;
    use super::s3;
    use grattr::lockfile::Record;
    use grattr::model::{GroupId, Ownership};
    use grattr::state::{Key, Location, Store};
    use std::path::Path;

    use std::time::{Duration, Instant};

    const GROUPS: usize = 10_000;

    /// A repository of `GROUPS` new groups against `emulator`, at the API's pace.
    fn repository(root: &Path, emulator: &EmulatorProcess) {
        std::fs::create_dir_all(root.join("groups")).unwrap();
        let config =
            format!("sdkappid: 1400000000\nadmin: administrator\nendpoint: {}\nrate_limit: 200\n", emulator.base);
        std::fs::write(root.join("grattr.yaml"), config).unwrap();
        let mut text = String::from("groups:\n");
        for i in 0..GROUPS {
            text += &format!("  - id: room-{i:05}\n    attributes:\n      theme: dark-{i}\n");
        }
        std::fs::write(root.join("groups/rooms.yaml"), text).unwrap();
    }

    /// `grattr apply --yes` in `root` with `env`; its wall time.
    fn apply(root: &Path, env: &[(&str, &str)]) -> Duration {
        emulator::grattr(root, &["apply", "--yes"], env).0
    }

    /// 10,000 records through the recorder of `location`; the time until all are durable.
    /// (An S3 location reads its credentials from this process's environment.)
    fn record(runtime: &tokio::runtime::Runtime, location: &Location) -> (Duration, usize) {
        runtime.block_on(async {
            let key = Key { sdkappid: 1400000000, environment: String::new() };
            let store = Store::open(location, key).await.unwrap();
            let lease = store.lease("bench", Duration::ZERO, Duration::from_secs(15)).await.unwrap();
            let recorder = lease.recorder().unwrap();
            let started = Instant::now();
            for i in 0..GROUPS {
                recorder.record(Record::Set {
                    group: GroupId::parse(&format!("room-{i:05}")).unwrap(),
                    attributes: [("theme".to_string(), format!("dark-{i}"))].into(),
                    ownership: Ownership::Group,
                });
            }
            let stats = recorder.finish().await.unwrap();
            let elapsed = started.elapsed();
            lease.release().await;
            (elapsed, stats.syncs)
        })
    }

    pub(super) fn main() {
        let scratch = tempfile::tempdir().unwrap();
        // Durable, as a production server is: every commit reaches the disk.
        let pg = postgres::Pg::start_durable();
        let emulator = EmulatorProcess::start(&["--latency", "20"]);

        let local_root = scratch.path().join("local");
        repository(&local_root, &emulator);
        let local = apply(&local_root, &[]);
        let shared_root = scratch.path().join("postgres");
        repository(&shared_root, &emulator);
        // Every group of the first run is live now: the second creates its own.
        let text = std::fs::read_to_string(shared_root.join("groups/rooms.yaml")).unwrap().replace("room-", "hall-");
        std::fs::write(shared_root.join("groups/rooms.yaml"), text).unwrap();
        let url = pg.url();
        let shared = apply(&shared_root, &[("GRATTR_STATE", url.as_str())]);
        let moto = s3::S3::start();
        let bucket_root = scratch.path().join("s3");
        repository(&bucket_root, &emulator);
        let text = std::fs::read_to_string(bucket_root.join("groups/rooms.yaml")).unwrap().replace("room-", "lobby-");
        std::fs::write(bucket_root.join("groups/rooms.yaml"), text).unwrap();
        let bucket_url = moto.url("apply");
        let mut env = moto.env();
        env.push(("GRATTR_STATE", bucket_url.as_str()));
        let bucket = apply(&bucket_root, &env);

        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let files = scratch.path().join("recording");
        std::fs::create_dir_all(&files).unwrap();
        let (local_alone, local_syncs) =
            record(&runtime, &Location::Local { lockfile: files.join("grattr.lock"), seed: None });
        let location = grattr::state::Location::parse(&pg.url_of("postgres")).unwrap();
        let (shared_alone, shared_batches) = record(&runtime, &location);
        for (name, value) in moto.env() {
            // SAFETY: set before the S3 store is opened, while no other thread reads the environment.
            unsafe { std::env::set_var(name, value) };
        }
        let location = grattr::state::Location::parse(&moto.url("recording")).unwrap();
        let (bucket_alone, bucket_batches) = record(&runtime, &location);

        let change = |store: Duration| 100.0 * (store.as_secs_f64() / local.as_secs_f64() - 1.0);
        println!("| benchmark | local files | PostgreSQL (127.0.0.1, fsync on) | S3 (moto on 127.0.0.1) | target |");
        println!("|---|---|---|---|---|");
        println!(
            "| `apply` of {GROUPS} new groups at 200 calls/s, 20 ms latency (floor 50 s) | {:.2} s | {:.2} s ({:+.1}%) | {:.2} s ({:+.1}%) | within 10% |",
            local.as_secs_f64(),
            shared.as_secs_f64(),
            change(shared),
            bucket.as_secs_f64(),
            change(bucket),
        );
        println!(
            "| recording {GROUPS} records alone, as fast as the store takes them | {:.3} s ({local_syncs} fsynced batches) | {:.3} s ({shared_batches} transactions) | {:.3} s ({bucket_batches} pieces) | — |",
            local_alone.as_secs_f64(),
            shared_alone.as_secs_f64(),
            bucket_alone.as_secs_f64(),
        );
    }
}

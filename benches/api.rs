//! Benchmarks of the API layer (`cargo bench --bench api`):
//! 1. the emulator's throughput with rate limits off, driven over loopback by 64
//!    concurrent connections (target: at least 5,000 requests/s on 2 cores);
//! 2. the client keeping the app-wide limit busy: 2,000 writes to distinct groups
//!    at 200/s against 20 ms of emulator latency (floor 10 s; target under 10.5 s).
//!
//! The emulator runs as a separate `grattr emulator` process, as users run it.

#[path = "support/emulator.rs"]
mod emulator;

use emulator::{EmulatorProcess, KEY};
use futures_util::StreamExt;
use grattr::api::client::{Client, ClientConfig};
use grattr::api::usersig::{self, SecretKey};
use grattr::model::{AttributeSet, GroupId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const APP: u64 = 1400000000;

async fn throughput() -> (usize, Duration) {
    let emulator = EmulatorProcess::start(&["--no-rate-limits", "--group", "room"]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let sig = usersig::generate(&SecretKey::new(KEY).unwrap(), APP, "administrator", 86400, now);
    let url = format!(
        "{}/v4/group_open_attr_http_svc/get_group_attr?sdkappid={APP}&identifier=administrator&usersig={}&random=1&contenttype=json",
        emulator.base,
        sig.expose()
    );
    grattr::api::client::install_tls_provider();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let requests = 50_000;
    // Warm the connections up.
    futures_util::stream::iter(0..256)
        .for_each_concurrent(64, |_| async {
            http.post(&url).body(r#"{"GroupId":"room"}"#).send().await.unwrap();
        })
        .await;
    let started = Instant::now();
    futures_util::stream::iter(0..requests)
        .for_each_concurrent(64, |_| async {
            let answer = http.post(&url).body(r#"{"GroupId":"room"}"#).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            let _ = answer.bytes().await.unwrap();
        })
        .await;
    (requests, started.elapsed())
}

async fn paced_writes() -> (usize, Duration, u64) {
    let emulator = EmulatorProcess::start(&["--latency", "20"]);
    let mut config = ClientConfig::new(emulator.base.clone(), APP, "administrator", SecretKey::new(KEY).unwrap());
    config.rate_limit = 200;
    let client = Client::new(config).unwrap();
    let writes = 2_000;
    let attributes: AttributeSet = [("theme".to_string(), "dark".to_string())].into();
    let started = Instant::now();
    let failures: u64 = futures_util::stream::iter(0..writes)
        .map(|i| {
            let (client, attributes) = (client.clone(), attributes.clone());
            async move {
                let group = GroupId::parse(&format!("bench-{i:05}")).unwrap();
                u64::from(client.set_group_attr(&group, &attributes).await.is_err())
            }
        })
        // Enough in flight that 20 ms of latency never caps 200 calls/s (4 would do).
        .buffer_unordered(32)
        .fold(0, |sum, failed| async move { sum + failed })
        .await;
    (writes, started.elapsed(), failures)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (requests, elapsed) = runtime.block_on(throughput());
    let rate = requests as f64 / elapsed.as_secs_f64();
    let (writes, paced, failures) = runtime.block_on(paced_writes());
    println!("| benchmark | result | target |");
    println!("|---|---|---|");
    println!(
        "| emulator throughput, limits off, 64 connections | {rate:.0} requests/s ({requests} in {:.2} s) | ≥ 5,000/s |",
        elapsed.as_secs_f64()
    );
    println!(
        "| {writes} writes at 200/s, 20 ms latency | {:.2} s (floor 10.00 s), {failures} failed | < 10.5 s |",
        paced.as_secs_f64()
    );
    assert_eq!(failures, 0, "every write succeeded");
}

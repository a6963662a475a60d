//! The S3 store against a real S3-compatible server (moto, one per test): the lease
//! taken once by racing writers, a lapsed writer that can write nothing once another
//! took the record, folding, a record cut short or changed by another tool refused, a
//! service that ignores or refuses conditional writes refused before anything is
//! written, wrong credentials a clear error, and credentials from the AWS shared files.
#![cfg(unix)]

mod support;

use grattr::lockfile::Holder;
use grattr::state::s3::{Config, S3};
use grattr::state::{Acquired, Key, LeaseName, StateError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Repo;
use support::emulator::{KEY, Server, groups_yaml};
use support::s3::{Forwarder, Mode, S3 as Moto, SECRET};

fn key() -> Key {
    Key { sdkappid: 1400000000, environment: "production".into() }
}

fn holder(name: &str) -> Holder {
    Holder { pid: 4242, host: name.into(), since: "2026-12-07T20:00:00Z".into(), command: "apply".into() }
}

/// The store at `url`, with the server's environment (credentials, region) and nothing of ours.
async fn store(moto: &Moto, url: &str) -> S3 {
    let env: Vec<(String, String)> = moto.env().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    S3::open_with(&Config::parse(url).unwrap(), key(), env).await.unwrap()
}

fn taken(acquired: Acquired) -> u64 {
    match acquired {
        Acquired::Taken(token) => token,
        Acquired::Held(lease) => panic!("held by {}", lease.holder),
    }
}

/// Asks for the lease until it is taken: a lapsed lease goes by the service's clock, in whole seconds.
async fn take_when_lapsed(store: &S3, name: &str, ttl: Duration) -> u64 {
    let start = Instant::now();
    loop {
        match store.acquire(LeaseName::Writer, &holder(name), ttl).await.unwrap() {
            Acquired::Taken(token) => return token,
            Acquired::Held(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Acquired::Held(lease) => panic!("still held by {} after 20 s", lease.holder),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_writers_take_the_lease_exactly_once() {
    let moto = Moto::start();
    let url = moto.url("race");
    let mut stores = Vec::new();
    for _ in 0..16 {
        stores.push(Arc::new(store(&moto, &url).await));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let racers: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.acquire(LeaseName::Writer, &holder(&format!("racer-{n}")), Duration::from_secs(60)).await.unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (n, racer) in racers.into_iter().enumerate() {
        match racer.await.unwrap() {
            Acquired::Taken(token) => winners.push((n, token)),
            Acquired::Held(lease) => assert_eq!(lease.token, 1),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].1, 1);
    let lease = stores[0].lease(LeaseName::Writer).await.unwrap().unwrap();
    assert_eq!(lease.holder.host, format!("racer-{}", winners[0].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_writer_can_write_nothing_once_another_took_the_record() {
    let moto = Moto::start();
    let url = moto.url("lapse");
    let (first, second) = (store(&moto, &url).await, store(&moto, &url).await);
    let ttl = Duration::from_secs(1);
    let old = taken(first.acquire(LeaseName::Writer, &holder("first"), ttl).await.unwrap());
    first.append(old, &[b"applied 1".to_vec()]).await.unwrap();
    match second.acquire(LeaseName::Writer, &holder("second"), Duration::from_secs(60)).await.unwrap() {
        Acquired::Held(lease) => assert_eq!((lease.holder.host.as_str(), lease.token), ("first", old)),
        Acquired::Taken(token) => panic!("taken ({token}) while the first writer held it"),
    }
    // Not renewed: by the service's clock it lapses, and the next writer takes it and
    // claims the record.
    let new = take_when_lapsed(&second, "second", Duration::from_secs(60)).await;
    assert_eq!(new, old + 1);
    assert!(matches!(first.renew(LeaseName::Writer, old, ttl).await, Err(StateError::Lapsed { .. })));
    assert!(matches!(first.append(old, &[b"late".to_vec()]).await, Err(StateError::Lapsed { .. })));
    assert!(matches!(first.checkpoint(old, b"{}").await, Err(StateError::Lapsed { .. })));
    second.append(new, &[b"applied 2".to_vec()]).await.unwrap();
    let lines: Vec<Vec<u8>> = second.read().await.unwrap().journal.into_iter().map(|(_, line)| line).collect();
    assert_eq!(lines, [b"applied 1".to_vec(), b"applied 2".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_has_not_noticed_its_lease_was_taken_cannot_write() {
    // The old writer still believes it holds the lease (it did not renew, nor read): its
    // next write is refused by the head's condition alone.
    let moto = Moto::start();
    let url = moto.url("fence");
    let (old_store, new_store) = (store(&moto, &url).await, store(&moto, &url).await);
    let old = taken(old_store.acquire(LeaseName::Writer, &holder("old"), Duration::from_secs(1)).await.unwrap());
    let new = take_when_lapsed(&new_store, "new", Duration::from_secs(60)).await;
    let version = new_store.version().await.unwrap();
    assert!(matches!(old_store.append(old, &[b"stale".to_vec()]).await, Err(StateError::Lapsed { .. })));
    assert_eq!(new_store.version().await.unwrap(), version, "the stale write changed the record");
    new_store.append(new, &[b"fresh".to_vec()]).await.unwrap();
    assert_eq!(new_store.read().await.unwrap().journal, [(1, b"fresh".to_vec())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_is_recorded_once_when_tried_again() {
    // The head's replace happens, but its answer is lost: the writer cannot know. Tried
    // again (as the recorder does), the batch is found written and not written twice.
    let moto = Moto::start();
    let lossy = Forwarder::start(&moto, Mode::LoseHeadAnswers(1));
    let store = store(&moto, &lossy.url("lost")).await;
    let token = taken(store.acquire(LeaseName::Writer, &holder("a"), Duration::from_secs(60)).await.unwrap());
    let batch = [b"applied 1".to_vec()];
    store.append(token, &batch).await.expect_err("the answer was lost");
    let version = store.append(token, &batch).await.unwrap();
    store.append(token, &[b"applied 2".to_vec()]).await.unwrap();
    let stored = store.read().await.unwrap();
    let lines: Vec<&[u8]> = stored.journal.iter().map(|(_, line)| line.as_slice()).collect();
    assert_eq!(lines, [&b"applied 1"[..], b"applied 2"], "written once each");
    assert_eq!(stored.version, version + 1);
    assert_eq!(
        lossy.seen().iter().filter(|s| s.target.contains("head.json") && s.method == "PUT").count(),
        3,
        "the claim, the lost one, none for the retry, the next"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_are_taken_at_once_with_a_bigger_token_and_leader_and_writer_are_apart() {
    let moto = Moto::start();
    let store = store(&moto, &moto.url("tokens")).await;
    let ttl = Duration::from_secs(60);
    let first = taken(store.acquire(LeaseName::Writer, &holder("a"), ttl).await.unwrap());
    let leader = taken(store.acquire(LeaseName::Leader, &holder("a"), ttl).await.unwrap());
    assert_eq!((first, leader), (1, 1));
    store.release(LeaseName::Writer, first).await.unwrap();
    assert_eq!(store.lease(LeaseName::Writer).await.unwrap(), None);
    assert_eq!(taken(store.acquire(LeaseName::Writer, &holder("b"), ttl).await.unwrap()), 2);
    assert_eq!(store.lease(LeaseName::Leader).await.unwrap().unwrap().token, 1);
    let broken = store.break_lease(LeaseName::Leader).await.unwrap().unwrap();
    assert_eq!(broken.holder.host, "a");
    assert_eq!(store.lease(LeaseName::Leader).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_folds_the_journal_and_removes_the_pieces_no_head_names() {
    let moto = Moto::start();
    let store = store(&moto, &moto.url("fold")).await;
    let token = taken(store.acquire(LeaseName::Writer, &holder("a"), Duration::from_secs(60)).await.unwrap());
    for n in 0..3 {
        store.append(token, &[format!("line {n}").into_bytes()]).await.unwrap();
    }
    let before = moto.keys("fold/1400000000/env/production/journal/");
    assert_eq!(before.len(), 3, "{before:?}");
    store.checkpoint(token, b"{\"lockfile\": true}").await.unwrap();
    let stored = store.read().await.unwrap();
    assert_eq!(stored.lockfile.as_deref(), Some(&b"{\"lockfile\": true}"[..]));
    assert!(stored.journal.is_empty());
    assert!(moto.keys("fold/1400000000/env/production/journal/").is_empty());
    assert_eq!(moto.keys("fold/1400000000/env/production/lockfile/").len(), 1);
    // No probe or clock object is left behind.
    assert!(moto.keys("fold/1400000000/env/production/probe/").is_empty());
}

/// A repository of the emulator's app declaring `g-000` … with `v: value`, its record in `url`.
fn repo(server: &Server, groups: usize, value: &str) -> Repo {
    let ids: Vec<String> = (0..groups).map(|i| format!("g-{i:03}")).collect();
    let pairs = [("v", value)];
    let declared: Vec<(&str, &[(&str, &str)])> = ids.iter().map(|id| (id.as_str(), &pairs[..])).collect();
    server.repo().file("groups/all.yaml", &groups_yaml(&declared))
}

/// Runs grattr with the record at `url` and `env` (the server's), and checks that no secret shows.
#[track_caller]
fn run(repo: &Repo, url: &str, env: &[(&str, &str)], args: &[&str]) -> support::Run {
    let mut all = vec![("GRATTR_SECRET_KEY", KEY), ("GRATTR_STATE", url)];
    all.extend_from_slice(env);
    let run = repo.run_with_env(args, &all);
    for secret in [KEY, SECRET] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "a secret leaked");
    }
    run
}

#[test]
fn a_record_cut_short_or_changed_by_another_tool_is_refused_and_nothing_changes() {
    let moto = Moto::start();
    let server = Server::start(|_| {});
    let repo = repo(&server, 3, "a");
    let url = moto.url("torn");
    run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(0).ignore_stdout();
    let base = "torn/1400000000/";
    let pieces = moto.keys(&format!("{base}journal/"));
    assert!(!pieces.is_empty());
    // A piece cut short, as an upload torn by a broken tool or service would leave it.
    let whole = moto.get(&pieces[0]).unwrap();
    moto.put(&pieces[0], &whole[..whole.len() / 2]);
    let writes = server.emulator().writes().len();
    std::fs::write(repo.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "b")])])).unwrap();
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let stderr = run(&repo, &url, &moto.env(), args).code(1).into_stderr();
        let name = pieces[0].trim_start_matches(base);
        assert!(stderr.contains("the record is damaged") && stderr.contains(name), "{stderr}");
    }
    moto.put(&pieces[0], &whole);
    // A head that is not one.
    let head = moto.get(&format!("{base}head.json")).unwrap();
    moto.put(&format!("{base}head.json"), &head[..head.len() - 3]);
    let stderr = run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(1).into_stderr();
    assert!(stderr.contains("head.json is not a record's head"), "{stderr}");
    assert_eq!(server.emulator().writes().len(), writes, "a damaged record let a write through");
    moto.put(&format!("{base}head.json"), &head);
    run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(0).stdout_contains("1 applied");
}

#[test]
fn a_writer_killed_mid_run_loses_nothing_it_recorded() {
    let moto = Moto::start();
    let server = Server::start(|config| config.latency = grattr::emulator::Latency::Fixed(Duration::from_millis(5)));
    let repo = repo(&server, 150, "a");
    let url = moto.url("killed");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_grattr"));
    command.current_dir(repo.path()).args(["apply", "--yes", "--concurrency", "1"]);
    // A short lease, so that the next run need not wait long for the killed one's to lapse.
    command.envs(moto.env()).env("GRATTR_SECRET_KEY", KEY).env("GRATTR_STATE", &url).env("NO_PROXY", "*");
    command.env("GRATTR_LEASE_TTL", "2s");
    let mut child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    support::watch::eventually(support::watch::PATIENCE, "the apply writes", || server.emulator().writes().len() >= 40);
    child.kill().unwrap();
    child.wait().unwrap();
    // The emulator may still answer a call the killed process sent: counted once it is quiet.
    let mut before = server.emulator().writes().len();
    support::watch::eventually(support::watch::PATIENCE, "the emulator is quiet", || {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.emulator().writes().len();
        std::mem::replace(&mut before, now) == now
    });
    // The record reads whole (verified), and the next run applies only what it lacks.
    let shown = run(&repo, &url, &moto.env(), &["state", "show", "--format", "json"]).code(0).json();
    let recorded = shown["groups"].as_u64().unwrap() as usize;
    // What a kill loses is what was not durable yet: the records of one batch interval
    // (0.1 s) and of the write in flight, at most 200 calls a second.
    assert!(recorded <= before && before - recorded <= 60, "{recorded} recorded of {before} written");
    // The killed writer's lease lapses by the service's clock; the next run waits for it.
    let rerun = run(&repo, &url, &moto.env(), &["apply", "--yes", "--lock-timeout", "60s", "--format", "json"]);
    let applied = rerun.code(0).json()["applied"].as_array().unwrap().len();
    assert_eq!(applied, 150 - recorded, "the rerun applies what was not recorded, and nothing else");
    assert_eq!(server.emulator().writes().len(), before + applied);
}

#[test]
fn a_service_that_ignores_or_refuses_conditional_writes_is_refused_before_anything_is_written() {
    let moto = Moto::start();
    for (mode, says) in [
        (
            Mode::StripConditions,
            "a second create of one object with `If-None-Match: *` succeeded: it ignores the condition",
        ),
        (Mode::NotImplemented, "a create of a new object with `If-None-Match: *` was answered"),
    ] {
        let forwarder = Forwarder::start(&moto, mode);
        let server = Server::start(|_| {});
        let repo = repo(&server, 2, "a");
        let stderr = run(&repo, &forwarder.url("unsafe"), &moto.env(), &["apply", "--yes"]).code(1).into_stderr();
        assert!(stderr.contains("does not honour conditional writes") && stderr.contains(says), "{stderr}");
        assert!(stderr.contains(&forwarder.endpoint()), "the service is named: {stderr}");
        assert!(server.emulator().writes().is_empty(), "applied on a service that cannot keep a lease");
        assert!(moto.keys("unsafe/").is_empty(), "{:?}", moto.keys("unsafe/"));
    }
}

#[test]
fn wrong_credentials_are_a_clear_error_and_write_nothing() {
    let moto = Moto::start_authenticated();
    let server = Server::start(|_| {});
    let repo = repo(&server, 2, "a");
    let url = moto.url("creds");
    let secret = moto.credentials().secret.clone();
    let wrong = [moto.env(), vec![("AWS_SECRET_ACCESS_KEY", "not-the-secret-Qw3")]].concat();
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let stderr = run(&repo, &url, &wrong, args).code(1).into_stderr();
        assert!(stderr.contains("the credentials were refused"), "{stderr}");
        assert!(!stderr.contains("not-the-secret-Qw3") && !stderr.contains(&secret), "{stderr}");
    }
    assert!(server.emulator().writes().is_empty());
    // (Listed whole: moto checks the signature of a prefix with a `/` wrongly.)
    assert!(moto.keys("").iter().all(|key| !key.starts_with("creds/")), "{:?}", moto.keys(""));
    run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(0).stdout_contains("2 applied");
}

#[test]
fn credentials_and_region_come_from_the_aws_shared_files() {
    let moto = Moto::start_authenticated();
    let server = Server::start(|_| {});
    let repo = repo(&server, 1, "a");
    let files = tempfile::tempdir().unwrap();
    let credentials = files.path().join("credentials");
    let config = files.path().join("config");
    let (id, secret) = (&moto.credentials().key_id, &moto.credentials().secret);
    std::fs::write(&credentials, format!("[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n\n[ci]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n")).unwrap();
    std::fs::write(&config, "[profile ci]\nregion = us-east-1\n").unwrap();
    let mut env = moto.env_without_credentials();
    env.retain(|(k, _)| {
        !matches!(*k, "AWS_SHARED_CREDENTIALS_FILE" | "AWS_CONFIG_FILE" | "AWS_REGION" | "AWS_DEFAULT_REGION")
    });
    let (credentials, config) = (credentials.display().to_string(), config.display().to_string());
    env.extend([
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
        ("AWS_CONFIG_FILE", config.as_str()),
        ("AWS_PROFILE", "ci"),
    ]);
    let url = moto.url("profile");
    run(&repo, &url, &env, &["apply", "--yes"]).code(0).stdout_contains("1 applied");
    let missing = [env.clone(), vec![("AWS_PROFILE", "nobody")]].concat();
    let stderr = run(&repo, &url, &missing, &["plan"]).code(1).into_stderr();
    assert!(stderr.contains("AWS_PROFILE names the profile \"nobody\""), "{stderr}");
}

#[test]
fn a_missing_bucket_a_damaged_lease_and_missing_credentials_are_named() {
    let moto = Moto::start();
    let server = Server::start(|_| {});
    let repo = repo(&server, 1, "a");
    // A bucket that does not exist is not an empty record.
    let missing = moto.url("x").replace("grattr-state", "no-such-bucket");
    let stderr = run(&repo, &missing, &moto.env(), &["plan"]).code(1).into_stderr();
    assert!(stderr.contains("the bucket no-such-bucket does not exist"), "{stderr}");
    // A lease another tool overwrote blocks every writer until `unlock --force` replaces it.
    let url = moto.url("lease");
    run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(0).ignore_stdout();
    moto.put("lease/1400000000/lease/writer.json", b"junk");
    let stderr = run(&repo, &url, &moto.env(), &["state", "show"]).code(1).into_stderr();
    assert!(stderr.contains("writer lease is not a lease") && stderr.contains("state unlock --force"), "{stderr}");
    run(&repo, &url, &moto.env(), &["state", "unlock", "--force"]).code(0).stdout_contains("are free").ignore_stderr();
    std::fs::write(repo.join("groups/all.yaml"), groups_yaml(&[("g-000", &[("v", "b")])])).unwrap();
    run(&repo, &url, &moto.env(), &["apply", "--yes"]).code(0).stdout_contains("1 applied");
    // A service of one's own and no credentials: said at once, AWS's metadata never asked.
    let stderr = run(&repo, &url, &moto.env_without_credentials(), &["plan"]).code(1).into_stderr();
    assert!(stderr.contains("no credentials: set AWS_ACCESS_KEY_ID"), "{stderr}");
}

//! The PostgreSQL store's primitives against a real server (a throwaway one per test):
//! the lease taken once by racing writers, expiry and fencing tokens, fenced writes that
//! write nothing once the lease is gone, consistent reads, an outage and the reconnect
//! after it, the schema made once and a newer one refused, and no password anywhere.
#![cfg(unix)]

mod support;

use grattr::lockfile::Holder;
use grattr::state::postgres::{Config, Postgres};
use grattr::state::{Acquired, Key, LeaseName, StateError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::postgres::{PASSWORD, Pg};

fn key() -> Key {
    Key { sdkappid: 1400000000, environment: "production".into() }
}

fn holder(name: &str) -> Holder {
    Holder { pid: 4242, host: name.into(), since: "2026-12-07T20:00:00Z".into(), command: "apply".into() }
}

async fn store(url: &str) -> Postgres {
    Postgres::connect(&Config::parse(url).unwrap(), key()).await.unwrap()
}

fn taken(acquired: Acquired) -> u64 {
    match acquired {
        Acquired::Taken(token) => token,
        Acquired::Held(lease) => panic!("held by {}", lease.holder),
    }
}

/// Counts what the record's tables hold, straight from the server.
fn counts(pg: &Pg, dbname: &str) -> String {
    pg.sql(
        dbname,
        "SELECT (SELECT count(*) FROM grattr_journal), (SELECT version FROM grattr_record), (SELECT coalesce(encode(lockfile, 'escape'), '-') FROM grattr_record)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_writers_take_the_lease_exactly_once() {
    let pg = Pg::start();
    let url = pg.database("race");
    let mut stores = Vec::new();
    for _ in 0..16 {
        stores.push(Arc::new(store(&url).await));
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
    let mut held = Vec::new();
    for (n, racer) in racers.into_iter().enumerate() {
        match racer.await.unwrap() {
            Acquired::Taken(token) => winners.push((n, token)),
            Acquired::Held(lease) => held.push(lease),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, token) = winners[0];
    assert_eq!(token, 1);
    assert_eq!(held.len(), 15);
    for lease in held {
        assert_eq!(lease.holder.host, format!("racer-{winner}"));
        assert_eq!(lease.token, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_goes_to_the_next_writer_with_a_bigger_token_and_the_old_one_lapses() {
    let pg = Pg::start();
    let url = pg.url();
    let (first, second) = (store(&url).await, store(&url).await);
    let old = taken(first.acquire(LeaseName::Writer, &holder("first"), Duration::from_millis(300)).await.unwrap());
    first.append(old, &[b"applied 1".to_vec()]).await.unwrap();
    first.renew(LeaseName::Writer, old, Duration::from_millis(300)).await.unwrap();
    match second.acquire(LeaseName::Writer, &holder("second"), Duration::from_secs(60)).await.unwrap() {
        Acquired::Held(lease) => assert_eq!((lease.holder.host.as_str(), lease.token), ("first", old)),
        Acquired::Taken(token) => panic!("taken ({token}) while the first writer held it"),
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: still shown, with an expiry in the past by the database's clock.
    let lease = second.lease(LeaseName::Writer).await.unwrap().unwrap();
    assert_eq!(lease.token, old);
    let new = taken(second.acquire(LeaseName::Writer, &holder("second"), Duration::from_secs(60)).await.unwrap());
    assert_eq!(new, old + 1);

    assert!(matches!(
        first.renew(LeaseName::Writer, old, Duration::from_secs(60)).await,
        Err(StateError::Lapsed { .. })
    ));
    assert!(matches!(first.append(old, &[b"late".to_vec()]).await, Err(StateError::Lapsed { .. })));
    second.append(new, &[b"applied 2".to_vec()]).await.unwrap();
    let lines: Vec<Vec<u8>> = second.read().await.unwrap().journal.into_iter().map(|(_, line)| line).collect();
    assert_eq!(lines, [b"applied 1".to_vec(), b"applied 2".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_after_expiry_is_lapsed_even_when_nobody_took_the_lease() {
    let pg = Pg::start();
    let store = store(&pg.url()).await;
    let token = taken(store.acquire(LeaseName::Writer, &holder("sleepy"), Duration::from_millis(200)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let error = store.renew(LeaseName::Writer, token, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(error, StateError::Lapsed { .. }), "{error}");
    assert!(matches!(store.append(token, &[b"x".to_vec()]).await, Err(StateError::Lapsed { .. })));
    assert!(matches!(store.checkpoint(token, b"{}", i64::MAX).await, Err(StateError::Lapsed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_a_stale_token_write_nothing() {
    let pg = Pg::start();
    let url = pg.database("fence");
    let (old_writer, new_writer) = (store(&url).await, store(&url).await);
    let old = taken(old_writer.acquire(LeaseName::Writer, &holder("old"), Duration::from_secs(60)).await.unwrap());
    old_writer.append(old, &[b"one".to_vec(), b"two".to_vec()]).await.unwrap();
    old_writer.checkpoint(old, b"lockfile v1", 0).await.unwrap();
    // `state unlock --force`, and a new writer takes over while the old one still runs.
    let broken = new_writer.break_lease(LeaseName::Writer).await.unwrap().unwrap();
    assert_eq!((broken.holder.host.as_str(), broken.token), ("old", old));
    let new = taken(new_writer.acquire(LeaseName::Writer, &holder("new"), Duration::from_secs(60)).await.unwrap());
    assert!(new > old);

    let before = counts(&pg, "fence");
    assert_eq!(before, "2|2|lockfile v1");
    let error = old_writer.append(old, &[b"three".to_vec()]).await.unwrap_err();
    assert!(matches!(error, StateError::Lapsed { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "the lease on the record at postgres://postgres@127.0.0.1:{}/fence (sdkappid 1400000000, environment production) lapsed: another writer may hold it now, so this one records nothing more",
            pg.port()
        )
    );
    let error = old_writer.checkpoint(old, b"lockfile from the past", i64::MAX).await.unwrap_err();
    assert!(matches!(error, StateError::Lapsed { .. }), "{error}");
    assert_eq!(counts(&pg, "fence"), before, "a stale token wrote something");

    // Releasing with the stale token leaves the new writer's lease alone.
    old_writer.release(LeaseName::Writer, old).await.unwrap();
    assert_eq!(new_writer.lease(LeaseName::Writer).await.unwrap().unwrap().token, new);
    assert_eq!(new_writer.append(new, &[b"three".to_vec()]).await.unwrap(), 3);
    assert_eq!(counts(&pg, "fence"), "3|3|lockfile v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_and_the_writer_leases_are_apart() {
    let pg = Pg::start();
    let url = pg.database("two");
    let (watch, ci) = (store(&url).await, store(&url).await);
    let leading = taken(watch.acquire(LeaseName::Leader, &holder("watch"), Duration::from_secs(60)).await.unwrap());
    // A CI apply takes the writer's lease while the watch leads.
    let writing = taken(ci.acquire(LeaseName::Writer, &holder("ci"), Duration::from_secs(60)).await.unwrap());
    match watch.acquire(LeaseName::Leader, &holder("standby"), Duration::from_secs(60)).await.unwrap() {
        Acquired::Held(lease) => assert_eq!(lease.holder.host, "watch"),
        Acquired::Taken(token) => panic!("a second leader, token {token}"),
    }
    assert_eq!(ci.version().await.unwrap(), 0);
    assert_eq!(ci.append(writing, &[b"one".to_vec()]).await.unwrap(), 1);
    assert_eq!(watch.version().await.unwrap(), 1, "the leader sees another writer wrote");
    ci.release(LeaseName::Writer, writing).await.unwrap();
    assert_eq!(watch.lease(LeaseName::Leader).await.unwrap().unwrap().token, leading, "the leader leads on");
    let next = taken(watch.acquire(LeaseName::Writer, &holder("watch"), Duration::from_secs(60)).await.unwrap());
    assert!(next > writing);
    assert_eq!(watch.append(next, &[b"two".to_vec()]).await.unwrap(), 2);
    // Once released, the CI's token writes nothing.
    let error = ci.append(writing, &[b"late".to_vec()]).await.unwrap_err();
    assert!(matches!(error, StateError::Lapsed { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grow_across_releases_and_a_released_lease_is_gone() {
    let pg = Pg::start();
    let store = store(&pg.url()).await;
    assert_eq!(store.lease(LeaseName::Writer).await.unwrap(), None);
    assert_eq!(store.break_lease(LeaseName::Writer).await.unwrap(), None);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let token = taken(store.acquire(LeaseName::Writer, &holder("again"), Duration::from_secs(60)).await.unwrap());
        let lease = store.lease(LeaseName::Writer).await.unwrap().unwrap();
        assert_eq!((lease.token, lease.holder.clone()), (token, holder("again")));
        assert!(lease.expires > std::time::SystemTime::now() + Duration::from_secs(30));
        store.release(LeaseName::Writer, token).await.unwrap();
        assert_eq!(store.lease(LeaseName::Writer).await.unwrap(), None);
        // A lease released is released: our old token can do nothing with it.
        assert!(matches!(
            store.renew(LeaseName::Writer, token, Duration::from_secs(60)).await,
            Err(StateError::Lapsed { .. })
        ));
        tokens.push(token);
    }
    assert_eq!(tokens, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_replaces_the_lockfile_and_folds_the_lines_it_covers() {
    let pg = Pg::start();
    let store = store(&pg.socket_url_of("postgres")).await;
    let empty = store.read().await.unwrap();
    assert_eq!((empty.version, empty.lockfile, empty.journal.len()), (0, None, 0));
    let token = taken(store.acquire(LeaseName::Writer, &holder("writer"), Duration::from_secs(60)).await.unwrap());
    let lines: Vec<Vec<u8>> = (0..5).map(|n| format!("{{\"line\":{n}}}").into_bytes()).collect();
    assert_eq!(store.append(token, &lines[..3]).await.unwrap(), 1);
    assert_eq!(store.append(token, &lines[3..]).await.unwrap(), 2);
    let stored = store.read().await.unwrap();
    assert_eq!(stored.journal.iter().map(|(_, line)| line.clone()).collect::<Vec<_>>(), lines);
    assert!(stored.journal.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let through = stored.journal[2].0;
    let lockfile = b"\x00not even utf-8\xff".to_vec();
    assert_eq!(store.checkpoint(token, &lockfile, through).await.unwrap(), 3);
    let stored = store.read().await.unwrap();
    assert_eq!(stored.version, 3);
    assert_eq!(stored.lockfile, Some(lockfile));
    assert_eq!(stored.journal.iter().map(|(_, line)| line.clone()).collect::<Vec<_>>(), lines[3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_is_one_snapshot_while_a_writer_appends() {
    let pg = Pg::start();
    let url = pg.url();
    let (writer, reader) = (store(&url).await, store(&url).await);
    let token = taken(writer.acquire(LeaseName::Writer, &holder("writer"), Duration::from_secs(60)).await.unwrap());
    // Each append adds one line and one version: a read that saw the version and the
    // journal at two moments would find them apart.
    let writing = tokio::spawn(async move {
        for n in 0..300 {
            writer.append(token, &[format!("line {n}").into_bytes()]).await.unwrap();
        }
    });
    let mut reads = 0;
    while !writing.is_finished() {
        let stored = reader.read().await.unwrap();
        assert_eq!(stored.version, stored.journal.len() as u64, "read {reads} mixes two moments");
        reads += 1;
    }
    writing.await.unwrap();
    let stored = reader.read().await.unwrap();
    assert_eq!((stored.version, stored.journal.len()), (300, 300));
    assert!(reads > 1, "the reader never overlapped the writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_the_next_call_quickly_and_the_call_after_the_restart_reconnects() {
    let mut pg = Pg::start();
    let config = Config::parse(&pg.url()).unwrap().with_timeout(Duration::from_secs(2));
    let store = Postgres::connect(&config, key()).await.unwrap();
    let token = taken(store.acquire(LeaseName::Writer, &holder("survivor"), Duration::from_secs(60)).await.unwrap());
    store.append(token, &[b"before".to_vec()]).await.unwrap();

    pg.stop();
    let started = Instant::now();
    let error = store.append(token, &[b"during".to_vec()]).await.unwrap_err();
    eprintln!("the first call after the stop failed in {:?}: {error}", started.elapsed());
    let StateError::Unreachable { store: label, message } = &error else { panic!("{error:?}") };
    assert_eq!(label, &store.label());
    assert!(!message.is_empty());
    let started = Instant::now();
    let error = store.lease(LeaseName::Writer).await.unwrap_err();
    eprintln!("a call while it is down failed in {:?}: {error}", started.elapsed());
    assert!(matches!(error, StateError::Unreachable { .. }), "{error:?}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");

    pg.restart();
    assert_eq!(store.lease(LeaseName::Writer).await.unwrap().unwrap().token, token);
    assert_eq!(store.append(token, &[b"after".to_vec()]).await.unwrap(), 2);
    let lines: Vec<Vec<u8>> = store.read().await.unwrap().journal.into_iter().map(|(_, line)| line).collect();
    assert_eq!(lines, [b"before".to_vec(), b"after".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_the_call_within_its_timeout_and_a_lapsed_write_is_never_unreachable() {
    let pg = Pg::start();
    let config = Config::parse(&pg.url()).unwrap().with_timeout(Duration::from_millis(700));
    let store = Postgres::connect(&config, key()).await.unwrap();
    let other = Postgres::connect(&config, key()).await.unwrap();
    let token = taken(store.acquire(LeaseName::Writer, &holder("frozen"), Duration::from_secs(60)).await.unwrap());
    // Another session holds the lease row locked: our fenced write waits for it, and
    // the call gives up at its bound instead of hanging.
    let mut blocking =
        pg.psql("postgres", "BEGIN; SELECT * FROM grattr_lease FOR UPDATE; SELECT pg_sleep(1.5); COMMIT;");
    let blocker = tokio::task::spawn_blocking(move || blocking.output().unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let error = store.append(token, &[b"stuck".to_vec()]).await.unwrap_err();
    eprintln!("a write behind a locked lease row failed in {:?}: {error}", started.elapsed());
    assert!(matches!(error, StateError::Unreachable { .. }), "{error:?}");
    blocker.await.unwrap();
    // The store made a new connection, and a lapsed lease still says Lapsed.
    other.break_lease(LeaseName::Writer).await.unwrap();
    let error = store.append(token, &[b"late".to_vec()]).await.unwrap_err();
    assert!(matches!(error, StateError::Lapsed { .. }), "{error:?}");
    assert_eq!(counts(&pg, "postgres"), "0|0|-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_never_shown_in_labels_debug_or_errors() {
    let mut pg = Pg::start();
    let config = Config::parse(&pg.url()).unwrap();
    let store = Postgres::connect(&config, key()).await.unwrap();
    let mut shown = vec![config.label(), config.to_string(), format!("{config:?}"), store.label()];

    let wrong = pg.url().replace(PASSWORD, "wrong-Hx7-password");
    let error = Postgres::connect(&Config::parse(&wrong).unwrap(), key()).await.err().unwrap();
    assert!(error.to_string().contains("password authentication failed"), "{error}");
    shown.extend([error.to_string(), format!("{error:?}")]);
    let error = Config::parse(&format!("{}&colour=blue", pg.url())).unwrap_err();
    shown.extend([error.to_string(), format!("{error:?}")]);
    pg.stop();
    let error = store.read().await.unwrap_err();
    shown.extend([error.to_string(), format!("{error:?}")]);

    for text in shown {
        assert!(!text.contains(PASSWORD) && !text.contains("wrong-Hx7-password"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_first_connects_at_once_make_the_schema_once() {
    let pg = Pg::start();
    let url = pg.database("first");
    let connects: Vec<_> = (0..8)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                let key = Key { sdkappid: 1400000000 + n % 2, environment: String::new() };
                Postgres::connect(&Config::parse(&url).unwrap(), key).await.map(|_| ())
            })
        })
        .collect();
    for connect in connects {
        connect.await.unwrap().unwrap();
    }
    assert_eq!(pg.sql("first", "SELECT version FROM grattr_schema"), "1");
    assert_eq!(pg.sql("first", "SELECT count(*) FROM grattr_record"), "2");
    assert_eq!(
        pg.sql(
            "first",
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE tablename LIKE 'grattr%'"
        ),
        "grattr_journal,grattr_lease,grattr_record,grattr_schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let pg = Pg::start();
    let url = pg.database("newer");
    drop(store(&url).await);
    pg.sql("newer", "UPDATE grattr_schema SET version = 2");
    let error = Postgres::connect(&Config::parse(&url).unwrap(), key()).await.err().unwrap();
    assert!(matches!(error, StateError::Schema { found: 2, supported: 1, .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "the record at postgres://postgres@127.0.0.1:{}/newer (sdkappid 1400000000, environment production) is in schema version 2, newer than this grattr's 1: upgrade grattr",
            pg.port()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_two_apps_and_environments_are_apart() {
    let pg = Pg::start();
    let url = pg.url();
    let config = Config::parse(&url).unwrap();
    let staging =
        Postgres::connect(&config, Key { sdkappid: 1400000000, environment: "staging".into() }).await.unwrap();
    let production = store(&url).await;
    let a = taken(staging.acquire(LeaseName::Writer, &holder("staging"), Duration::from_secs(60)).await.unwrap());
    let b = taken(production.acquire(LeaseName::Writer, &holder("production"), Duration::from_secs(60)).await.unwrap());
    assert_eq!((a, b), (1, 1));
    staging.append(a, &[b"staging".to_vec()]).await.unwrap();
    assert!(matches!(production.append(a + 1, &[b"x".to_vec()]).await, Err(StateError::Lapsed { .. })));
    assert_eq!(production.read().await.unwrap().journal, []);
    assert_eq!(staging.read().await.unwrap().journal.len(), 1);
}

/// Whether the connection named `name` is encrypted, as the server sees it.
fn encrypted(pg: &Pg, name: &str) -> String {
    pg.sql(
        "postgres",
        &format!(
            "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{name}'"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_used_and_verified_as_sslmode_asks() {
    let pg = Pg::start_tls();
    let ca = pg.ca_file();
    let url = |host: &str, name: &str, query: &str| {
        format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?application_name={name}{query}", pg.port())
    };
    let connect = |url: String| async move { Postgres::connect(&Config::parse(&url).unwrap(), key()).await };

    // prefer (the default) and require encrypt without verifying; disable does not.
    for (name, query, expected) in
        [("prefer", "", "true"), ("require", "&sslmode=require", "true"), ("disable", "&sslmode=disable", "false")]
    {
        let _store = connect(url("127.0.0.1", name, query)).await.unwrap();
        assert_eq!(encrypted(&pg, name), expected, "{name}");
    }

    // verify-full: the CA, and the name the certificate was issued for.
    let trusted = format!("&sslmode=verify-full&sslrootcert={}", ca.display());
    let _store = connect(url("localhost", "full", &trusted)).await.unwrap();
    assert_eq!(encrypted(&pg, "full"), "true");
    let error = connect(url("127.0.0.1", "full-by-ip", &trusted)).await.err().unwrap();
    assert!(matches!(error, StateError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("certificate not valid for name"), "{error}");
    // verify-ca: the CA, whatever the name.
    let _store =
        connect(url("127.0.0.1", "ca", &format!("&sslmode=verify-ca&sslrootcert={}", ca.display()))).await.unwrap();
    assert_eq!(encrypted(&pg, "ca"), "true");
    // A CA that did not sign the server's certificate.
    let stranger = pg.socket_dir().join("server.crt");
    let error =
        connect(url("localhost", "stranger", &format!("&sslmode=verify-full&sslrootcert={}", stranger.display())))
            .await
            .err()
            .unwrap();
    assert!(error.to_string().contains("invalid peer certificate"), "{error}");
    let error = connect(url("localhost", "missing", "&sslmode=verify-full&sslrootcert=/nonexistent/root.crt"))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, StateError::Url { .. }), "{error:?}");
    assert!(error.to_string().contains("sslrootcert /nonexistent/root.crt"), "{error}");
}

/// Not a test: the cost of recording at the API's pace, for the record's bench notes
/// (`cargo test --release --test state_postgres -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_appends() {
    let pg = Pg::start();
    let store = store(&pg.url()).await;
    let token = taken(store.acquire(LeaseName::Writer, &holder("bench"), Duration::from_secs(600)).await.unwrap());
    let line = br#"{"group":"@TGS#2ABCDEFGH","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#.to_vec();
    let started = Instant::now();
    for _ in 0..10_000 {
        store.append(token, std::slice::from_ref(&line)).await.unwrap();
    }
    let single = started.elapsed();
    let batch = vec![line; 100];
    let started = Instant::now();
    for _ in 0..100 {
        store.append(token, &batch).await.unwrap();
    }
    let batched = started.elapsed();
    eprintln!(
        "10,000 single-line appends: {single:?} ({:?} each); 100 appends of 100 lines: {batched:?}",
        single / 10_000
    );
}

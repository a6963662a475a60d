//! The client against the emulator over real HTTP on 127.0.0.1: every endpoint,
//! every documented error path, pacing under a burst, and convergence under faults.

use grattr::api::client::{ApiError, Client, ClientConfig, ErrorKind, RetryPolicy};
use grattr::api::codes::RetryClass;
use grattr::api::usersig::{self, SecretKey};
use grattr::api::wire::{GroupType, Operation, Response};
use grattr::emulator::{Emulator, EmulatorConfig, Latency, RateLimits};
use grattr::model::{AttributeSet, GroupId};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const APP: u64 = 1400000000;
const ADMIN: &str = "administrator";

fn key() -> SecretKey {
    SecretKey::new("test-secret-key-0123456789").unwrap()
}

fn id(text: &str) -> GroupId {
    GroupId::parse(text).unwrap()
}

fn attrs(pairs: &[(&str, &str)]) -> AttributeSet {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn emulator(configure: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::new(APP, ADMIN, key());
    config.groups = vec![(id("room"), GroupType::Public), (id("@TGS#_@TGS#cCOMMUNITY"), GroupType::Community)];
    configure(&mut config);
    Emulator::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client(emulator: &Emulator, configure: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut config = ClientConfig::new(emulator.base_url(), APP, ADMIN, key());
    config.retry = RetryPolicy {
        max_attempts: 6,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_total: Duration::from_secs(10),
    };
    configure(&mut config);
    Client::new(config).unwrap()
}

fn code(result: Result<impl std::fmt::Debug, ApiError>) -> u32 {
    let error = result.expect_err("the call should fail");
    error.code().unwrap_or_else(|| panic!("no API code: {error}"))
}

#[tokio::test]
async fn every_endpoint_does_what_the_reference_says() {
    let emulator = emulator(|_| {}).await;
    let client = client(&emulator, |_| {});
    let room = id("room");
    client.set_group_attr(&room, &attrs(&[("theme", "dark"), ("banner", "hi")])).await.unwrap();
    assert_eq!(client.get_group_attr(&room).await.unwrap(), attrs(&[("theme", "dark"), ("banner", "hi")]));
    // set is a full reset
    client.set_group_attr(&room, &attrs(&[("theme", "light")])).await.unwrap();
    assert_eq!(client.get_group_attr(&room).await.unwrap(), attrs(&[("theme", "light")]));
    client.modify_group_attr(&room, &attrs(&[("extra", "1")])).await.unwrap();
    assert_eq!(client.get_group_attr(&room).await.unwrap(), attrs(&[("theme", "light"), ("extra", "1")]));
    client.delete_group_attr(&room, &["extra".into()]).await.unwrap();
    assert_eq!(code(client.delete_group_attr(&room, &["extra".into()]).await), 10050);
    client.clear_group_attr(&room).await.unwrap();
    assert!(client.get_group_attr(&room).await.unwrap().is_empty());

    let made = client.create_group(GroupType::AVChatRoom, "Live", None).await.unwrap();
    assert!(made.as_str().starts_with("@TGS#"));
    let community = client.create_group(GroupType::Community, "Makers", None).await.unwrap();
    assert!(community.as_str().starts_with("@TGS#_"));
    let custom = client.create_group(GroupType::Public, "Support", Some(&id("support-eu"))).await.unwrap();
    assert_eq!(custom, id("support-eu"));
    assert_eq!(code(client.create_group(GroupType::Public, "Again", Some(&id("support-eu"))).await), 10021);
    client.destroy_group(&custom).await.unwrap();
    assert_eq!(code(client.get_group_attr(&custom).await), 10010);

    let stats = emulator.stats();
    assert_eq!(stats.calls_to(Operation::SetGroupAttr), 2);
    assert_eq!(stats.calls_to(Operation::GetGroupAttr), 5);
    assert_eq!(stats.answers(10050), 1);
}

#[tokio::test]
async fn attribute_errors_are_answered_with_their_codes() {
    let emulator = emulator(|_| {}).await;
    let client = client(&emulator, |_| {});
    let call = |body: serde_json::Value| {
        let client = client.clone();
        async move { client.call(Operation::SetGroupAttr, None, body).await }
    };
    let item = |k: &str, v: &str| json!({"key": k, "value": v});
    assert_eq!(code(client.get_group_attr(&id("nope")).await), 10015, "never created");
    assert_eq!(code(call(json!({"GroupId": "café", "GroupAttr": [item("a", "b")]})).await), 10015);
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": []})).await), 10004, "an empty list is refused");
    assert_eq!(code(call(json!({"GroupId": "room"})).await), 10004);
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": [{"key": "a"}]})).await), 10004);
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": [item(&"k".repeat(33), "v")]})).await), 10045);
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": [item(&"é".repeat(17), "v")]})).await), 10045);
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": [item("k", &"中".repeat(1334))]})).await), 10046);
    let seventeen: Vec<_> = (0..17).map(|i| item(&format!("k{i}"), "v")).collect();
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": seventeen})).await), 10047);
    let big: Vec<_> = (0..5).map(|i| item(&format!("k{i}"), &"v".repeat(3201))).collect();
    assert_eq!(code(call(json!({"GroupId": "room", "GroupAttr": big})).await), 10048);
    // At the limits: accepted.
    let full: Vec<_> = (0..16).map(|i| item(&format!("{i:0>32}"), &"v".repeat(1000))).collect();
    call(json!({"GroupId": "room", "GroupAttr": full})).await.unwrap();
    assert_eq!(code(client.clear_group_attr(&id("@TGS#_@TGS#cCOMMUNITY")).await), 10007);
    // The client itself never sends an empty set.
    let refused = client.set_group_attr(&id("room"), &AttributeSet::new()).await.unwrap_err();
    assert_eq!((refused.code(), refused.attempts), (None, 0), "refused locally, not by the service");
    assert_eq!(emulator.stats().answers(0), 1, "nothing else was accepted");
}

/// Sends one raw request with the given query string and body.
async fn raw(emulator: &Emulator, path: &str, query: &str, body: &str) -> Response {
    let url = format!("{}/{path}?{query}", emulator.base_url());
    grattr::api::client::install_tls_provider();
    let answer = reqwest::Client::new().post(url).body(body.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 200, "errors come in the envelope");
    answer.json().await.unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn query(sdkappid: u64, identifier: &str, sig: &str) -> String {
    format!("sdkappid={sdkappid}&identifier={identifier}&usersig={sig}&random=12345&contenttype=json")
}

#[tokio::test]
async fn authentication_is_checked_like_the_service() {
    let emulator = emulator(|config| config.admins.push("second-admin".into())).await;
    let path = Operation::GetGroupAttr.path();
    let body = r#"{"GroupId": "room"}"#;
    let good = usersig::generate(&key(), APP, ADMIN, 3600, now());
    let good_query = query(APP, ADMIN, good.expose());
    assert!(raw(&emulator, path, &good_query, body).await.is_ok());
    let cases: Vec<(String, u32)> = vec![
        (query(APP, ADMIN, usersig::generate(&key(), APP, ADMIN, 10, now() - 100).expose()), 70001),
        (query(APP, ADMIN, "garbage"), 70003),
        (
            query(APP, ADMIN, usersig::generate(&SecretKey::new("wrong").unwrap(), APP, ADMIN, 3600, now()).expose()),
            70009,
        ),
        (query(APP, ADMIN, usersig::generate(&key(), APP, "someone", 3600, now()).expose()), 70013),
        (query(APP, ADMIN, usersig::generate(&key(), APP + 1, ADMIN, 3600, now()).expose()), 70014),
        (query(APP + 1, ADMIN, good.expose()), 70020),
        (query(APP, "member", usersig::generate(&key(), APP, "member", 3600, now()).expose()), 60010),
        (format!("identifier={ADMIN}&usersig={}&random=1&contenttype=json", good.expose()), 60012),
        (format!("sdkappid=app&identifier={ADMIN}&usersig={}&random=1&contenttype=json", good.expose()), 60006),
        (format!("sdkappid={APP}&usersig={}&random=1&contenttype=json", good.expose()), 60004),
        (good_query.replace("random=12345", "random=99999999999"), 60002),
        (good_query.replace("contenttype=json", "contenttype=xml"), 60002),
    ];
    for (query, expected) in cases {
        let answer = raw(&emulator, path, &query, body).await;
        assert_eq!((answer.action_status.as_str(), answer.error_code), ("FAIL", expected), "{}", answer.error_info);
    }
    let second = usersig::generate(&key(), APP, "second-admin", 3600, now());
    assert!(raw(&emulator, path, &query(APP, "second-admin", second.expose()), body).await.is_ok());
    assert_eq!(raw(&emulator, path, &good_query, "{not json").await.error_code, 60003);
    assert_eq!(raw(&emulator, path, &good_query, "[1]").await.error_code, 60003);
    assert_eq!(raw(&emulator, "v4/group_open_http_svc/nope", &good_query, body).await.error_code, 60009);
}

#[tokio::test]
async fn a_burst_is_paced_so_no_frequency_limit_reaches_the_caller() {
    let groups: Vec<GroupId> = (0..100).map(|i| id(&format!("burst-{i:03}"))).collect();
    let emulator = emulator(|config| config.auto_create_groups = true).await;
    let client = client(&emulator, |config| config.rate_limit = 200);
    let mut calls = tokio::task::JoinSet::new();
    for round in 0..10 {
        for group in &groups {
            let (client, group) = (client.clone(), group.clone());
            calls.spawn(async move { client.set_group_attr(&group, &attrs(&[("round", &round.to_string())])).await });
        }
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    let stats = emulator.stats();
    assert_eq!(stats.calls_to(Operation::SetGroupAttr), 1000, "no call was retried: none was refused");
    assert_eq!(stats.answers(10049) + stats.answers(60007), 0);
    for group in &groups {
        let seen = &stats.groups[group.as_str()];
        assert_eq!(seen.writes, 10);
        assert!(seen.max_writes_per_second <= 5, "{group}: {} writes in one second", seen.max_writes_per_second);
    }
}

#[tokio::test]
async fn a_throttling_server_is_retried_and_slowed_down() {
    // The server allows 2 writes/s per group; the client sends 4/s and must cope.
    let emulator = emulator(|config| config.limits = Some(RateLimits { per_endpoint: 200, group_writes: 2 })).await;
    let client = client(&emulator, |_| {});
    let room = id("room");
    for round in 0..8 {
        client.set_group_attr(&room, &attrs(&[("round", &round.to_string())])).await.unwrap();
    }
    assert!(emulator.stats().answers(10049) > 0, "the server did throttle");
    assert_eq!(client.get_group_attr(&room).await.unwrap(), attrs(&[("round", "7")]));
}

#[tokio::test]
async fn the_per_group_write_limit_counts_modify_and_delete_together() {
    // Key ownership writes a group with a modify and then a delete: the service counts both
    // against the group's 5 writes a second, and so do the emulator and the client's pacing.
    let emulator = emulator(|config| config.auto_create_groups = true).await;
    let unpaced = client(&emulator, |config| config.group_write_rate = 1000);
    let room = id("room");
    for round in 0..4 {
        // Throttled calls are retried; whether they end well is not this test's subject.
        let _ = unpaced.modify_group_attr(&room, &attrs(&[("k", &round.to_string())])).await;
        let _ = unpaced.delete_group_attr(&room, &["k".to_string()]).await;
    }
    assert!(emulator.stats().answers(10049) > 0, "8 writes within a second, across both operations, are throttled");
    let before = emulator.stats().answers(10049);
    let paced = client(&emulator, |_| {});
    let calm = id("calm");
    for round in 0..4 {
        paced.modify_group_attr(&calm, &attrs(&[("k", &round.to_string())])).await.unwrap();
        paced.delete_group_attr(&calm, &["k".to_string()]).await.unwrap();
    }
    assert_eq!(emulator.stats().answers(10049), before, "the client paces both operations within the limit");
    assert!(emulator.stats().groups["calm"].max_writes_per_second <= 5);
}

#[tokio::test]
async fn under_thirty_percent_faults_every_call_succeeds_or_fails_classified() {
    let emulator = emulator(|config| {
        config.auto_create_groups = true;
        config.fault_rate = 0.3;
        config.stall = Duration::from_secs(2);
        config.latency = Latency::Between(Duration::ZERO, Duration::from_millis(5));
    })
    .await;
    let client = client(&emulator, |config| {
        config.rate_limit = 200;
        config.request_timeout = Duration::from_millis(300);
        config.retry.max_attempts = 12;
    });
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        calls.spawn(async move {
            let group = id(&format!("faulty-{i:03}"));
            let wanted = attrs(&[("n", &i.to_string())]);
            (group.clone(), wanted.clone(), client.set_group_attr(&group, &wanted).await)
        });
    }
    let mut succeeded = Vec::new();
    while let Some(result) = calls.join_next().await {
        let (group, wanted, outcome) = result.unwrap();
        match outcome {
            Ok(()) => succeeded.push((group, wanted)),
            Err(e) => {
                // Out of retries: a transient class, and it says what happened.
                assert_eq!(e.retry_class(), RetryClass::Backoff, "{e}");
                assert!(e.attempts > 1 && !e.to_string().is_empty(), "{e}");
            }
        }
    }
    assert!(succeeded.len() >= 190, "only {} of 200 succeeded", succeeded.len());
    for (group, wanted) in succeeded {
        assert_eq!(emulator.attributes(&group), Some(wanted));
    }
    let faults = emulator.stats().faults;
    for kind in ["10002", "502", "stall", "drop"] {
        assert!(faults.get(kind).copied().unwrap_or(0) > 0, "no {kind} fault was injected: {faults:?}");
    }
}

#[tokio::test]
async fn transport_errors_are_classified_and_retried() {
    // Nothing listens on this port once the emulator is gone.
    let emulator = emulator(|_| {}).await;
    let base = emulator.base_url();
    emulator.shutdown().await.unwrap();
    let mut config = ClientConfig::new(base, APP, ADMIN, key());
    config.retry = RetryPolicy {
        max_attempts: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
        max_total: Duration::from_secs(1),
    };
    let error = Client::new(config).unwrap().get_group_attr(&id("room")).await.unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Transport { .. }), "{error:?}");
    assert_eq!(error.attempts, 3);
    assert!(!error.to_string().contains("usersig"), "{error}");
}

#[tokio::test]
async fn state_survives_a_restart_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let first = emulator(|config| config.state_file = Some(file.clone())).await;
    client(&first, |_| {}).set_group_attr(&id("room"), &attrs(&[("kept", "yes")])).await.unwrap();
    first.shutdown().await.unwrap();
    let second = emulator(|config| {
        config.state_file = Some(file.clone());
        config.groups.clear();
    })
    .await;
    assert_eq!(client(&second, |_| {}).get_group_attr(&id("room")).await.unwrap(), attrs(&[("kept", "yes")]));
}

#[tokio::test]
async fn an_expired_usersig_is_renewed_and_the_call_retried_once() {
    // A stand-in that answers 70001 to the first request, then succeeds.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => axum::Json(Response::fail(70001, "UserSig expired")),
                _ => axum::Json(Response::ok()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(ClientConfig::new(base, APP, ADMIN, key())).unwrap();
    client.clear_group_attr(&id("room")).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2, "renewed and retried once");
}

#[tokio::test]
async fn auto_created_groups_come_from_writes_not_reads() {
    let emulator = emulator(|config| config.auto_create_groups = true).await;
    let client = client(&emulator, |_| {});
    assert_eq!(code(client.get_group_attr(&id("fresh")).await), 10015, "a read does not create a group");
    client.set_group_attr(&id("fresh"), &attrs(&[("a", "b")])).await.unwrap();
    assert_eq!(client.get_group_attr(&id("fresh")).await.unwrap(), attrs(&[("a", "b")]));
}

#[tokio::test]
async fn the_usersig_command_prints_what_the_emulator_accepts() {
    let emulator = emulator(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grattr.yaml"),
        format!("sdkappid: {APP}\nadmin: {ADMIN}\nendpoint: http://127.0.0.1:9\n"),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_grattr"))
        .current_dir(dir.path())
        .args(["usersig", "--expire", "5m"])
        .env("GRATTR_SECRET_KEY", key().expose())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let sig = String::from_utf8(output.stdout).unwrap();
    let answer =
        raw(&emulator, Operation::GetGroupAttr.path(), &query(APP, ADMIN, sig.trim()), r#"{"GroupId": "room"}"#).await;
    assert!(answer.is_ok(), "{}: {}", answer.error_code, answer.error_info);
}

/// A stand-in that answers every request with HTTP 200 and a chunked body of
/// `total` bytes (an envelope whose `ErrorInfo` never ends), and counts the bytes
/// it managed to send: the client hanging up stops it.
async fn huge_answer_server(total: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                // The request's head and its small body: one read is enough on loopback.
                let mut request = vec![0; 64 * 1024];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                let start = r#"{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""#;
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
                let mut written = 0;
                let mut out = socket.write_all(head.as_bytes()).await;
                out = out.and(socket.write_all(format!("{:x}\r\n{start}\r\n", start.len()).as_bytes()).await);
                while out.is_ok() && written < total {
                    out = socket.write_all(chunk.as_bytes()).await;
                    written += 64 * 1024;
                    counter.fetch_add(64 * 1024, Ordering::Relaxed);
                }
                let _ = socket.write_all(b"2\r\n\"}\r\n0\r\n\r\n").await;
            });
        }
    });
    (base, sent)
}

#[tokio::test]
async fn an_endless_answer_is_refused_before_it_fills_memory() {
    use std::sync::atomic::Ordering;
    // 256 MiB stands for "endless": far past any limit, and bounded in case one is missing.
    let total = 256 << 20;
    let (base, sent) = huge_answer_server(total).await;
    let mut config = ClientConfig::new(base, APP, ADMIN, key());
    config.retry = RetryPolicy {
        max_attempts: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        max_total: Duration::from_millis(10),
    };
    let error = Client::new(config).unwrap().get_group_attr(&id("room")).await.unwrap_err();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!("the server sent {sent} bytes before the client gave up: {error}");
    assert!(
        matches!(error.kind, ErrorKind::TooLarge { limit } if limit == grattr::model::limits::MAX_ANSWER_BYTES),
        "{error:?}"
    );
    assert_eq!(error.attempts, 1, "something that is not the REST API answered: asking again reads as much again");
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert!(error.to_string().contains("larger than 1048576 bytes"), "{error}");
    assert!(sent < total / 4, "the client stopped reading: the server sent {sent} bytes");
}

#[tokio::test]
async fn an_answer_announcing_too_large_a_length_is_refused_unread() {
    let app = axum::Router::new().fallback(|| async {
        let body = format!(r#"{{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"{}"}}"#, "a".repeat(2 << 20));
        ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let error = Client::new(ClientConfig::new(base, APP, ADMIN, key())).unwrap().clear_group_attr(&id("room")).await;
    assert!(matches!(error.unwrap_err().kind, ErrorKind::TooLarge { .. }));
}

/// A server answering every request with `status`, `content_type` and `body`, and
/// a client of it with a short retry schedule of three attempts.
async fn answering(status: u16, content_type: &'static str, body: &'static str) -> Client {
    let app = axum::Router::new().fallback(move || async move {
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        (status, [(axum::http::header::CONTENT_TYPE, content_type)], body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = ClientConfig::new(base, APP, ADMIN, key());
    config.retry = RetryPolicy {
        max_attempts: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_total: Duration::from_secs(1),
    };
    Client::new(config).unwrap()
}

#[tokio::test]
async fn a_gateway_of_the_moment_is_retried_and_what_is_not_the_api_is_not() {
    use grattr::api::scope::AppWide;
    const PAGE: &str = "<html><body>Bad Gateway</body></html>";
    // What a gateway in front of the API answers for the moment: every attempt, not app-wide.
    for status in [500, 502, 503, 504, 408, 429, 522] {
        let error = answering(status, "text/html", PAGE).await.get_group_attr(&id("room")).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Http { status }, "{error:?}");
        assert_eq!((error.attempts, error.app_wide(false)), (3, None), "{status}: {error}");
    }
    // What the API never answers: one attempt, about the whole app, saying what answered.
    let impostors = [
        (404, "text/html", "<h1>Not Found</h1>"),
        (405, "text/plain", "Method Not Allowed"),
        (501, "text/html;charset=utf-8", "<!DOCTYPE HTML>\n<title>Error response</title>"),
        (301, "text/html", "Moved"),
        (200, "text/html", "<html>hello</html>"),
        (200, "application/json", r#"{"status":"ok"}"#),
        (200, "application/json", "[1, 2]"),
        (200, "text/plain", ""),
    ];
    for (status, content_type, body) in impostors {
        let error =
            answering(status, content_type, body).await.set_group_attr(&id("room"), &attrs(&[("a", "1")])).await;
        let error = error.unwrap_err();
        let expected = ErrorKind::NotTheApi { status, content_type: Some(content_type.into()), body: body.into() };
        assert_eq!(error.kind, expected, "{error:?}");
        assert_eq!(error.attempts, 1, "{status} {body:?}: {error}");
        assert_eq!(error.retry_class(), RetryClass::Permanent);
        assert_eq!(error.app_wide(true), Some(AppWide::NotTheApi), "{error}");
        assert!(
            error.to_string().contains(&format!("not the Chat REST API: HTTP {status}, {content_type}")),
            "{error}"
        );
    }
    // The API's envelope, however malformed, is the API's: retried as before.
    let envelope = answering(200, "application/json", r#"{"ActionStatus":"OK"}"#).await;
    let error = envelope.get_group_attr(&id("room")).await.unwrap_err();
    assert!(matches!(error.kind, ErrorKind::BadResponse { .. }), "{error:?}");
    assert_eq!((error.attempts, error.app_wide(false)), (3, None), "{error}");
}

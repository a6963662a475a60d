//! Secrets never leak: failing and succeeding calls at the most verbose log level
//! (every crate, hyper and reqwest included, at TRACE), and neither the secret key
//! nor any UserSig appears in the logs, the errors, or what the binary prints.

use grattr::api::client::{Client, ClientConfig, RetryPolicy};
use grattr::api::usersig::{self, SecretKey};
use grattr::emulator::{Emulator, EmulatorConfig};
use grattr::model::{AttributeSet, GroupId};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "very-secret-key-4f1c9a77e2";
const APP: u64 = 1400000000;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every UserSig the client can have made during the test, whatever the second.
fn possible_usersigs(key: &SecretKey, from: u64, to: u64, validity: u64) -> Vec<String> {
    (from..=to).map(|t| usersig::generate(key, APP, "administrator", validity, t).expose().to_string()).collect()
}

fn assert_clean(what: &str, text: &str, usersigs: &[String]) {
    assert!(!text.contains(SECRET), "{what} contains the secret key");
    assert!(!text.contains("usersig="), "{what} contains a URL with its query");
    for sig in usersigs {
        assert!(!text.contains(sig.as_str()), "{what} contains a UserSig");
    }
}

#[tokio::test]
async fn no_secret_in_logs_or_errors_of_an_in_process_run() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let key = SecretKey::new(SECRET).unwrap();

    let mut emulator_config = EmulatorConfig::new(APP, "administrator", key.clone());
    emulator_config.groups = vec![(GroupId::parse("room").unwrap(), grattr::api::wire::GroupType::Public)];
    let emulator = Emulator::start(emulator_config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut flaky_config = EmulatorConfig::new(APP, "administrator", key.clone());
    flaky_config.auto_create_groups = true;
    flaky_config.fault_rate = 1.0;
    flaky_config.stall = Duration::from_millis(400);
    let flaky = Emulator::start(flaky_config, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    let make = |base: String, key: SecretKey| {
        let mut config = ClientConfig::new(base, APP, "administrator", key);
        config.request_timeout = Duration::from_millis(200);
        config.retry = RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_total: Duration::from_secs(2),
        };
        Client::new(config).unwrap()
    };
    let good = make(emulator.base_url(), key.clone());
    let wrong_key = make(emulator.base_url(), SecretKey::new(format!("{SECRET}-wrong")).unwrap());
    let faulty = make(flaky.base_url(), key.clone());
    let nowhere = make("http://127.0.0.1:9".into(), key.clone());

    let room = GroupId::parse("room").unwrap();
    let attrs: AttributeSet = [("k".to_string(), "v".to_string())].into();
    let mut reports = vec![format!("{good:?}"), format!("{key:?}")];
    reports.push(format!("{:?}", good.set_group_attr(&room, &attrs).await));
    reports.push(format!("{:?}", good.get_group_attr(&GroupId::parse("missing").unwrap()).await));
    for result in
        [wrong_key.get_group_attr(&room).await, faulty.get_group_attr(&room).await, nowhere.get_group_attr(&room).await]
    {
        let error = result.unwrap_err();
        reports.push(format!("{error} / {error:?}"));
    }
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let validity = ClientConfig::new("http://x", APP, "a", key.clone()).usersig_validity.as_secs();
    let usersigs = possible_usersigs(&key, start.saturating_sub(2), end + 2, validity);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("calling"), "the logs were captured at the most verbose level");
    assert!(logs.contains("TRACE"), "dependencies logged at TRACE too");
    assert_clean("the logs", &logs, &usersigs);
    assert_clean("the errors", &reports.join("\n"), &usersigs);
}

// Unix only: it stops the emulator with SIGTERM and reads what it logged on its way out.
#[cfg(unix)]
#[test]
fn no_secret_in_what_the_binary_prints() {
    use std::process::{Command, Stdio};
    let binary = env!("CARGO_BIN_EXE_grattr");
    let mut emulator = Command::new(binary)
        .args(["-vvv", "emulator", "--listen", "127.0.0.1:0", "--group", "room"])
        .env("GRATTR_SECRET_KEY", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(emulator.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("grattr emulator listening on http://127.0.0.1:"), "{first}");
    let base = first.split_whitespace().nth(4).unwrap().to_string();

    // A request with a bad signature and one with a good one, straight from the UserSig command.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grattr.yaml"),
        format!("sdkappid: {APP}\nadmin: administrator\nendpoint: {base}\n"),
    )
    .unwrap();
    let sig = Command::new(binary)
        .current_dir(dir.path())
        .args(["-vvv", "usersig"])
        .env("GRATTR_SECRET_KEY", SECRET)
        .output()
        .unwrap();
    assert!(sig.status.success());
    let sig_stderr = String::from_utf8(sig.stderr).unwrap();
    let sig = String::from_utf8(sig.stdout).unwrap().trim().to_string();
    assert_clean("usersig's stderr", &sig_stderr, std::slice::from_ref(&sig));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (usersig, expected) in [(sig.as_str(), 0), ("forged", 70003)] {
            let url = format!(
                "{base}/v4/group_open_attr_http_svc/get_group_attr?sdkappid={APP}&identifier=administrator&usersig={usersig}&random=7&contenttype=json"
            );
            grattr::api::client::install_tls_provider();
            let answer = reqwest::Client::new().post(url).body(r#"{"GroupId":"room"}"#).send().await.unwrap();
            let answer: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(answer["ErrorCode"], expected, "grattr usersig's output is accepted by the emulator: {answer}");
        }
    });
    // SIGTERM: the emulator shuts down cleanly.
    // SAFETY: kill(2) with a pid this test spawned and still owns.
    unsafe { libc::kill(emulator.id() as i32, libc::SIGTERM) };
    let output = emulator.wait_with_output().unwrap();
    assert!(output.status.success(), "SIGTERM stops the emulator cleanly: {:?}", output.status);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let printed = format!("{first}{rest}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("TRACE") || printed.contains("DEBUG"), "the emulator logged verbosely:\n{printed}");
    assert_clean("the emulator's output", &printed, std::slice::from_ref(&sig));
}

mod support;

/// A stand-in for the REST API that answers every request with HTTP 200 and
/// error 99999 whose `ErrorInfo` echoes the request's path and query: as it came,
/// percent-encoded, JSON-escaped, and cut short (a third of the UserSig from its
/// middle, its last 20 characters). It runs on its own runtime until dropped.
struct EchoServer {
    _runtime: tokio::runtime::Runtime,
    base: String,
}

impl EchoServer {
    fn start() -> EchoServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let base = runtime.block_on(async {
            let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
                let echo = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                let sig = echo.split("usersig=").nth(1).and_then(|s| s.split('&').next()).unwrap_or_default();
                let percent: String = echo.bytes().map(|b| format!("%{b:02X}")).collect::<Vec<_>>().concat();
                let json: String = sig.chars().map(|c| format!("\\u{:04x}", c as u32)).collect::<Vec<_>>().concat();
                let third = sig.len() / 3;
                let middle = sig.get(third..2 * third).unwrap_or_default();
                let tail = sig.get(sig.len().saturating_sub(20)..).unwrap_or_default();
                let info = format!("bad request {echo} | {percent} | {json} | {middle}... | ...{tail}");
                let body = format!(r#"{{"ActionStatus":"FAIL","ErrorCode":99999,"ErrorInfo":"{info}"}}"#);
                ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            base
        });
        EchoServer { _runtime: runtime, base }
    }
}

/// Asserts `text` holds none of `usersigs`, not even 20 characters of one in a row, nor the key.
#[track_caller]
fn assert_no_usersig(what: &str, text: &str, usersigs: &[String]) {
    assert!(!text.contains(support::emulator::KEY), "{what} contains the secret key:\n{text}");
    for sig in usersigs {
        for start in (0..sig.len().saturating_sub(20)).step_by(5) {
            let part = &sig[start..start + 20];
            assert!(!text.contains(part), "{what} contains part of a UserSig ({part}):\n{text}");
        }
    }
}

#[test]
fn an_endpoint_echoing_the_request_never_gets_the_usersig_shown() {
    use support::emulator::{KEY, grattr};
    let server = EchoServer::start();
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let repo = support::Repo::new()
        .file(
            "grattr.yaml",
            &format!("sdkappid: {APP}\nadmin: administrator\nendpoint: {}\nrequest_timeout: 2s\n", server.base),
        )
        .file("groups/a.yaml", "groups:\n  - id: room\n    attributes:\n      price: \"100\"\n");

    let mut outputs = Vec::new();
    let (stdout, stderr) = grattr(&repo, &["apply", "--yes"]).code(1).into_streams();
    assert!(stdout.contains("99999"), "the failure is shown:\n{stdout}");
    outputs.push(("apply's text", format!("{stdout}{stderr}")));
    let run = grattr(&repo, &["apply", "--yes", "--format", "json"]).code(1);
    let (stdout, stderr) = run.into_streams();
    assert!(stdout.contains("bad request"), "the service's text is kept:\n{stdout}");
    outputs.push(("apply's JSON", format!("{stdout}{stderr}")));
    let (stdout, stderr) = grattr(&repo, &["drift"]).code(1).into_streams();
    outputs.push(("drift", format!("{stdout}{stderr}")));
    let (stdout, stderr) = grattr(&repo, &["plan", "--refresh"]).code(1).into_streams();
    outputs.push(("plan --refresh", format!("{stdout}{stderr}")));
    let watch = support::watch::Watch::start_logging(&repo, &["--log-format", "json"], "200ms", "info");
    watch.wait_for_log("99999");
    outputs.push(("watch's JSON logs", watch.log()));
    drop(watch);

    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let key = SecretKey::new(KEY).unwrap();
    let validity = ClientConfig::new("http://x", APP, "a", key.clone()).usersig_validity.as_secs();
    let usersigs = possible_usersigs(&key, start.saturating_sub(2), end + 2, validity);
    for (what, text) in &outputs {
        assert_no_usersig(what, text, &usersigs);
    }
}

#[tokio::test]
async fn a_body_that_is_not_the_envelope_is_scrubbed_too() {
    // The text of a body that does not parse reaches the error through serde's message.
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let echo = uri.query().unwrap_or_default().to_string();
        format!(r#"{{"ActionStatus":"FAIL","ErrorCode":"{echo}"}}"#)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let key = SecretKey::new(support::emulator::KEY).unwrap();
    let mut config = ClientConfig::new(base, APP, "administrator", key.clone());
    config.retry = RetryPolicy {
        max_attempts: 1,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        max_total: Duration::from_millis(1),
    };
    let validity = config.usersig_validity.as_secs();
    let error = Client::new(config).unwrap().get_group_attr(&GroupId::parse("room").unwrap()).await.unwrap_err();
    let text = format!("{error} / {error:?}");
    assert!(text.contains("not the REST API's JSON envelope"), "{text}");
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_no_usersig("the error", &text, &possible_usersigs(&key, start.saturating_sub(2), end + 2, validity));
}

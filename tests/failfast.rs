//! App-wide failures stop the run: a wrong key, a refused connection or a host
//! that does not resolve is about the app, not about each group, so `apply`
//! stops starting calls, says once why and what to fix, and `watch` pauses.
//! The budgets (calls, seconds) are what a new user would otherwise pay 300 times.

mod support;

use grattr::api::wire::{GroupType, Operation};
use grattr::model::GroupId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::emulator::{KEY, Server, attrs, groups_yaml, many_groups};
use support::watch::{Watch, eventually};
use support::{Repo, Run};

const GROUPS: usize = 300;

/// `grattr apply --yes` with `key`, proxies out of the way (loopback only), and how long it took.
#[must_use = "a run checks its output only through its assertions"]
#[track_caller]
fn apply(repo: &Repo, key: &str, args: &[&str]) -> (Run, Duration) {
    let mut all = vec!["apply", "--yes"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let run = repo.run_with_env(
        &all,
        &[
            ("GRATTR_SECRET_KEY", key),
            ("HTTP_PROXY", ""),
            ("HTTPS_PROXY", ""),
            ("ALL_PROXY", ""),
            ("http_proxy", ""),
            ("https_proxy", ""),
            ("all_proxy", ""),
            ("NO_PROXY", "*"),
        ],
    );
    let elapsed = started.elapsed();
    for secret in [KEY, "wrong-secret-key", "usersig="] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{secret} leaked:\n{run:?}");
    }
    (run, elapsed)
}

/// A port on 127.0.0.1 where nothing listens: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A repository of [`GROUPS`] changed groups whose endpoint is `endpoint`.
fn repo_at(endpoint: &str) -> Repo {
    Repo::new()
        .file(
            "grattr.yaml",
            &format!("sdkappid: 1400000000\nadmin: administrator\nendpoint: {endpoint}\nrequest_timeout: 2s\n"),
        )
        .file("groups/many.yaml", &many_groups("g", GROUPS))
}

/// Asserts nothing was recorded: no lockfile with groups, no journal.
#[track_caller]
fn nothing_recorded(repo: &Repo) {
    if repo.join("grattr.lock").exists() {
        let lockfile = grattr::lockfile::Lockfile::read(&repo.join("grattr.lock"), 1400000000).unwrap();
        assert!(lockfile.groups.is_empty(), "recorded {} group(s)", lockfile.groups.len());
    }
    assert!(!repo.join(".grattr.lock.journal").exists());
}

#[test]
fn a_wrong_key_stops_the_run_after_a_few_calls() {
    let server = Server::start(|_| {});
    let repo = server.repo().file("groups/many.yaml", &many_groups("g", GROUPS));
    let host = server.emulator().addr().to_string();
    let (run, elapsed) = apply(&repo, "wrong-secret-key", &[]);
    // Stderr logs the failures, time-stamped.
    let stdout = run.code(1).ignore_stderr().into_stdout();
    let calls = server.emulator().stats().total;
    eprintln!("wrong key: {calls} call(s) in {elapsed:?}");
    assert!(calls <= 20, "{calls} calls were sent");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let failed = server.emulator().stats().answers(70009) as usize;
    let not_attempted = GROUPS - failed;
    let sentence = format!(
        "Stopped: {not_attempted} change(s) not attempted because {host} refused the credentials \
         (UserSig verification failed [70009]); check secret_key_env / --secret-key-file."
    );
    assert!(stdout.contains(&sentence), "lacks {sentence:?}:\n{stdout}");
    assert!(stdout.contains(&format!("{failed} failed, {not_attempted} not attempted")), "{stdout}");
    assert_eq!(stdout.matches("Stopped:").count(), 1, "one sentence:\n{stdout}");
    assert!(stdout.contains("Nothing was recorded."), "{stdout}");
    nothing_recorded(&repo);

    // --format json says the same for machines.
    let before = server.emulator().stats().total;
    let (run, _) = apply(&repo, "wrong-secret-key", &["--format", "json"]);
    // Stderr logs the failures, time-stamped.
    let json = run.code(1).ignore_stderr().json();
    let calls = server.emulator().stats().total - before;
    assert!(calls <= 20, "{calls} calls were sent");
    let stopped = &json["stopped"];
    assert_eq!(stopped["reason"], "credentials", "{json:#}");
    assert_eq!(stopped["host"], host.as_str());
    assert_eq!(stopped["code"], 70009);
    assert_eq!(stopped["region"], serde_json::Value::Null);
    let not_attempted = stopped["not_attempted"].as_u64().unwrap();
    assert_eq!(not_attempted + json["summary"]["failed"].as_u64().unwrap(), GROUPS as u64);
    assert_eq!(json["summary"]["skipped"], not_attempted);
    assert!(stopped["message"].as_str().unwrap().contains("check secret_key_env"), "{stopped}");
    nothing_recorded(&repo);
}

#[test]
fn a_refused_connection_stops_the_run_naming_the_host() {
    let port = closed_port();
    let repo = repo_at(&format!("http://127.0.0.1:{port}"));
    let (run, elapsed) = apply(&repo, KEY, &[]);
    // Stderr logs the failures, time-stamped.
    let stdout = run.code(1).ignore_stderr().into_stdout();
    eprintln!("refused: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
    let sentence = format!("because the connection to 127.0.0.1:{port} was refused");
    assert!(stdout.contains(&sentence), "lacks {sentence:?}:\n{stdout}");
    assert!(stdout.contains("check region/endpoint, or the network or proxy."), "{stdout}");
    assert!(stdout.contains("1 failed, 299 not attempted"), "one group established it:\n{stdout}");
    assert!(stdout.contains("Nothing was recorded."), "{stdout}");
    nothing_recorded(&repo);
}

#[test]
fn an_unresolvable_host_stops_the_run_naming_the_host() {
    // RFC 6761: names under .invalid never resolve; the resolver answers at once, offline too.
    let repo = repo_at("http://grattr-test.invalid:9");
    let (run, elapsed) = apply(&repo, KEY, &["--format", "json"]);
    // Stderr logs the failures, time-stamped.
    let json = run.code(1).ignore_stderr().json();
    eprintln!("unresolvable: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
    let stopped = &json["stopped"];
    assert_eq!(stopped["reason"], "dns", "{json:#}");
    assert_eq!(stopped["host"], "grattr-test.invalid:9");
    assert_eq!(stopped["not_attempted"], GROUPS - 1);
    assert!(
        stopped["message"].as_str().unwrap().contains("because the host name grattr-test.invalid does not resolve"),
        "{stopped}"
    );
    nothing_recorded(&repo);
}

#[test]
fn a_failure_of_the_first_group_alone_does_not_stop_the_run() {
    let server = Server::start(|config| {
        config.auto_create_groups = false;
        config.groups = vec![
            (GroupId::parse("exists-1").unwrap(), GroupType::Public),
            (GroupId::parse("exists-2").unwrap(), GroupType::Public),
        ];
    });
    let repo = server.repo().file(
        "groups/a.yaml",
        &groups_yaml(&[("aaa-ghost", &[("a", "1")]), ("exists-1", &[("a", "1")]), ("exists-2", &[("a", "1")])]),
    );
    let (run, _) = apply(&repo, KEY, &[]);
    // Stderr logs the failures, time-stamped.
    let stdout = run.code(1).ignore_stderr().into_stdout();
    assert!(stdout.contains("2 applied, 1 failed, 0 skipped"), "{stdout}");
    assert!(!stdout.contains("Stopped"), "{stdout}");
    assert_eq!(server.emulator().stats().calls_to(Operation::SetGroupAttr), 3);
}

#[test]
fn watch_pauses_on_an_unreachable_host_says_why_and_resumes_when_it_is_back() {
    const WATCHED: usize = 50;
    let mut server = Server::start(|_| {});
    // The emulator's port, closed: the host refuses connections until it is started again.
    let config = server.config();
    let addr = server.stop();
    let repo = Repo::new().file("grattr.yaml", &config).file("groups/many.yaml", &many_groups("w", WATCHED));
    let watch = Watch::start_logging(&repo, &[], "300ms", "warn,grattr=info");

    // Not ready, and /readyz says why in one sentence naming the host.
    eventually(Duration::from_secs(10), "not ready for the refused connection", || {
        let (status, why) = watch.readyz(&server);
        status == 503 && why.contains("refused")
    });
    let (_, why) = watch.readyz(&server);
    assert!(why.contains(&format!("the connection to {addr} was refused")), "{why}");
    assert!(why.contains("change(s) not attempted"), "{why}");

    // One log line per back-off, not one per group: wait for a few back-offs.
    eventually(Duration::from_secs(20), "three back-offs", || watch.log_count("paused:") >= 3);
    let pauses = watch.log_count("paused:");
    let per_group = watch.log_count("will retry the group") + watch.log_count("apply failed");
    assert!(per_group == 0, "per-group lines for an app-wide failure:\n{}", watch.log());
    assert!(watch.log_count("refused") <= pauses + 1, "one line per back-off:\n{}", watch.log());

    // The host comes back: the paused changes are applied after the back-off, and it is ready.
    server.restart(addr);
    eventually(Duration::from_secs(30), "every paused change applied", || {
        (0..WATCHED).all(|i| {
            let id = format!("w-{i:04}");
            server.live(&id) == Some(attrs(&[("v", &id)]))
        })
    });
    eventually(Duration::from_secs(5), "ready again", || watch.readyz(&server).0 == 200);
    watch.wait_for_log("resumed");
}

/// Groups planned against an endpoint that is not the Chat API: as in the issue, 64
/// (before, 115 s of retries for them against `python3 -m http.server`).
const IMPOSTED: usize = 64;

/// What an impostor answers every request with.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    content_type: &'static str,
    /// The body; `{uri}` stands for the request's path and query, `{usersig}` for
    /// the UserSig in it, echoed as some servers do.
    body: &'static str,
}

/// `python3 -m http.server`'s answer to a POST.
const HTTP_SERVER_501: Answer = Answer {
    status: 501,
    content_type: "text/html;charset=utf-8",
    body: "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        \
           <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        \
           <p>Error code: 501</p>\n        <p>Message: Unsupported method ('POST').</p>\n    </body>\n</html>\n",
};

/// A web page at 200, echoing the request and driving the terminal.
const HTML_200: Answer = Answer {
    status: 200,
    content_type: "text/html",
    body: "<html>\u{1b}[2J\u{202e} you sent {usersig} to {uri}</html>",
};

/// JSON, but not the REST API's envelope.
const JSON_WITHOUT_ACTION_STATUS: Answer =
    Answer { status: 200, content_type: "application/json", body: "{\"status\":\"ok\",\"path\":\"{uri}\"}" };

/// A server on 127.0.0.1 that is not the Chat REST API: every request gets its
/// [`Answer`]; it counts them.
struct Impostor {
    _runtime: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Impostor {
    fn start(answer: Answer) -> Impostor {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            counter.fetch_add(1, Ordering::Relaxed);
            let status = axum::http::StatusCode::from_u16(answer.status).unwrap();
            let usersig = uri.query().and_then(|q| q.split('&').find_map(|p| p.strip_prefix("usersig=")));
            let body = answer.body.replace("{usersig}", usersig.unwrap_or_default()).replace("{uri}", &uri.to_string());
            async move { (status, [(axum::http::header::CONTENT_TYPE, answer.content_type)], body) }
        });
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Impostor { _runtime: runtime, addr, calls }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// A repository of [`IMPOSTED`] changed groups whose endpoint is this server.
    fn repo(&self) -> Repo {
        Repo::new()
            .file(
                "grattr.yaml",
                &format!(
                    "sdkappid: 1400000000\nadmin: administrator\nendpoint: http://{}\nrequest_timeout: 2s\n",
                    self.addr
                ),
            )
            .file("groups/many.yaml", &many_groups("g", IMPOSTED))
    }
}

/// Applies against an impostor answering `answer`: one call, then the run stops
/// naming the endpoint and what it answered; returns the sentence.
#[track_caller]
fn apply_stops_at(answer: Answer, shows: &[&str]) -> String {
    let impostor = Impostor::start(answer);
    let repo = impostor.repo();
    let (run, elapsed) = apply(&repo, KEY, &[]);
    // Stderr logs the failures, time-stamped.
    let stdout = run.code(1).ignore_stderr().into_stdout();
    let calls = impostor.calls();
    eprintln!("HTTP {} {}: {calls} call(s) in {elapsed:?}", answer.status, answer.content_type);
    assert_eq!(calls, 1, "one call tells it is not the Chat API:\n{stdout}");
    let sentence =
        format!("Stopped: {} change(s) not attempted because {} is not the Chat REST API", IMPOSTED - 1, impostor.addr);
    let line = stdout
        .lines()
        .find(|line| line.starts_with(&sentence))
        .unwrap_or_else(|| panic!("lacks {sentence:?}:\n{stdout}"));
    for shown in shows {
        assert!(line.contains(shown), "lacks {shown:?}: {line}");
    }
    assert!(line.ends_with("; check region/endpoint in grattr.yaml."), "{line}");
    assert!(line.len() < 400, "cut short: {line}");
    assert!(stdout.contains(&format!("1 failed, {} not attempted", IMPOSTED - 1)), "{stdout}");
    assert!(stdout.contains("Nothing was recorded."), "{stdout}");
    nothing_recorded(&repo);
    line.to_string()
}

#[test]
fn an_endpoint_answering_501_stops_the_run_after_one_call() {
    apply_stops_at(
        HTTP_SERVER_501,
        &["HTTP 501", "text/html;charset=utf-8", r#""<!DOCTYPE HTML>\n<html lang=\"en\">"#],
    );
    // The same for machines.
    let impostor = Impostor::start(HTTP_SERVER_501);
    let repo = impostor.repo();
    let (run, _) = apply(&repo, KEY, &["--format", "json"]);
    let json = run.code(1).ignore_stderr().json();
    assert_eq!(impostor.calls(), 1);
    let stopped = &json["stopped"];
    assert_eq!(stopped["reason"], "not_the_api", "{json:#}");
    assert_eq!(stopped["host"], impostor.addr.to_string());
    assert_eq!(stopped["not_attempted"], IMPOSTED - 1);
    assert!(stopped["message"].as_str().unwrap().contains("HTTP 501"), "{stopped}");
    // As it came: not escaped.
    let answer = &stopped["answer"];
    assert_eq!(answer["status"], 501, "{stopped}");
    assert_eq!(answer["content_type"], "text/html;charset=utf-8");
    assert!(answer["body"].as_str().unwrap().starts_with("<!DOCTYPE HTML>\n<html lang=\"en\">"), "{answer}");
}

#[test]
fn an_endpoint_answering_a_web_page_stops_the_run_escaped_and_without_the_usersig() {
    let line =
        apply_stops_at(HTML_200, &["HTTP 200", "text/html", r#""<html>\u001b[2J\u202e you sent <redacted> to /v4/"#]);
    assert!(!line.contains('\u{1b}') && !line.contains('\u{202e}'), "{line}");
    assert!(line.contains("<redacted>"), "the echoed UserSig is scrubbed: {line}");
}

#[test]
fn an_endpoint_answering_json_without_action_status_stops_the_run() {
    apply_stops_at(JSON_WITHOUT_ACTION_STATUS, &["HTTP 200", "application/json", r#""{\"status\":\"ok\""#]);
}

#[test]
fn reading_live_state_from_an_endpoint_that_is_not_the_api_stops_after_one_read() {
    let impostor = Impostor::start(HTTP_SERVER_501);
    let ids = (0..IMPOSTED).map(|i| format!("new-{i:04}")).collect::<Vec<_>>().join("\n");
    let repo = impostor.repo().file("ids.txt", &ids);
    let mut before = 0;
    for command in [&["drift"][..], &["plan", "--refresh"], &["import", "--from", "ids.txt"]] {
        let started = Instant::now();
        let run = repo.run_with_env(command, &[("GRATTR_SECRET_KEY", KEY), ("NO_PROXY", "*")]);
        let elapsed = started.elapsed();
        let calls = impostor.calls() - before;
        before = impostor.calls();
        let (stdout, stderr) = run.code(1).into_streams();
        eprintln!("{command:?}: {calls} call(s) in {elapsed:?}");
        assert_eq!(calls, 1, "{command:?}:\n{stdout}\n{stderr}");
        let said = format!("{stdout}{stderr}");
        let sentence = format!(
            "because {} is not the Chat REST API (it answered HTTP 501, text/html;charset=utf-8",
            impostor.addr
        );
        assert!(said.contains(&sentence), "{command:?} lacks {sentence:?}:\n{said}");
        assert!(!said.contains("usersig="), "{said}");
    }
}

#[test]
fn watch_pauses_on_an_endpoint_that_is_not_the_api_and_says_what_answered() {
    let impostor = Impostor::start(HTML_200);
    // Only for its runtime, to ask the watch's endpoint.
    let helper = Server::start(|_| {});
    let repo = impostor.repo();
    let watch = Watch::start_logging(&repo, &[], "300ms", "warn,grattr=info");
    eventually(Duration::from_secs(10), "not ready for the impostor", || {
        let (status, why) = watch.readyz(&helper);
        status == 503 && why.contains("is not the Chat REST API")
    });
    let (_, why) = watch.readyz(&helper);
    assert!(
        why.contains(&format!("{} is not the Chat REST API (it answered HTTP 200, text/html", impostor.addr)),
        "{why}"
    );
    assert!(why.contains(r#""<html>\u001b[2J\u202e you sent <redacted> to"#), "escaped and scrubbed: {why}");
    eventually(Duration::from_secs(20), "two back-offs", || watch.log_count("paused:") >= 2);
    let per_group = watch.log_count("will retry the group") + watch.log_count("apply failed");
    assert!(per_group == 0, "per-group lines for an app-wide failure:\n{}", watch.log());
    // One call per back-off, not one per group (a resync may add one).
    let (calls, pauses) = (impostor.calls(), watch.log_count("paused:"));
    eprintln!("{calls} call(s), {pauses} pause(s):\n{}", watch.log());
    assert!(calls <= pauses + 2, "{calls} calls for {pauses} pause(s):\n{}", watch.log());
}

/// An endpoint that redirects elsewhere: following it would send the UserSig, in
/// the query, to whatever host the `Location` names.
#[test]
fn a_redirect_is_not_followed_so_the_usersig_never_reaches_another_host() {
    // Where the redirect leads: any call it gets carries the UserSig away.
    let elsewhere = Impostor::start(JSON_WITHOUT_ACTION_STATUS);
    let target = format!("http://{}", elsewhere.addr);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        counter.fetch_add(1, Ordering::Relaxed);
        let location = format!("{target}{uri}");
        async move { (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, location)], "") }
    });
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let repo = Repo::new()
        .file(
            "grattr.yaml",
            &format!("sdkappid: 1400000000\nadmin: administrator\nendpoint: http://{addr}\nrequest_timeout: 2s\n"),
        )
        .file("groups/many.yaml", &many_groups("g", IMPOSTED));
    let (run, _) = apply(&repo, KEY, &[]);
    let stdout = run.code(1).ignore_stderr().into_stdout();
    assert_eq!(elsewhere.calls(), 0, "the redirect was followed: the UserSig reached another host\n{stdout}");
    assert_eq!(calls.load(Ordering::Relaxed), 1, "a redirect is no answer of the Chat API:\n{stdout}");
    assert!(stdout.contains("is not the Chat REST API (it answered HTTP 302"), "{stdout}");
    nothing_recorded(&repo);
}

//! The S3 test server (`support::s3`, moto) and the proxies in front of it, proved
//! before the S3 state store relies on them: the create-only and replace-only-what-was-
//! read semantics of conditional PUTs, listing and plain reads and writes, credentials
//! checked when asked, an outage that keeps the data, and the two services that do not
//! honour conditional writes (one ignores them, one refuses them).
#![cfg(unix)]

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use support::s3::{BUCKET, Credentials, Forwarder, Mode, REGION, Response, S3, SECRET, Seen};

/// An Authorization header moto accepts when it checks nothing (it only looks for one).
const ANY_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIAGRATTRTEST000001/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

#[test]
fn racing_creates_with_if_none_match_take_the_key_exactly_once() {
    let s3 = S3::start();
    for round in 0..3 {
        let key = format!("race/{round}/lease");
        let barrier = Barrier::new(16);
        let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..16)
                .map(|n| {
                    let (s3, barrier, key) = (&s3, &barrier, &key);
                    scope.spawn(move || {
                        barrier.wait();
                        let put = s3.request("PUT", key, &[("If-None-Match", "*")], format!("racer {n}").as_bytes());
                        (put.status, put.error_code())
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect()
        });
        let won = statuses.iter().filter(|(status, _)| *status == 200).count();
        let lost = statuses
            .iter()
            .filter(|(status, code)| *status == 412 && code.as_deref() == Some("PreconditionFailed"))
            .count();
        assert_eq!((won, lost), (1, 15), "round {round}: {statuses:?}");
        let body = String::from_utf8(s3.get(&key).unwrap()).unwrap();
        assert!(body.starts_with("racer "), "{body}");
    }
}

#[test]
fn conditional_puts_replace_only_what_was_read() {
    let s3 = S3::start();
    s3.put("state/record", b"one");
    let head = s3.request("HEAD", "state/record", &[], b"");
    assert_eq!(head.status, 200);
    let etag = head.header("ETag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    // Whole seconds, as HTTP dates have: `Mon, 07 Dec 2026 22:50:42 GMT`.
    let modified = head.header("Last-Modified").unwrap();
    assert!(modified.ends_with(" GMT") && modified.len() == 29, "{modified}");

    let expect = |response: Response, status: u16, code: Option<&str>| {
        assert_eq!((response.status, response.error_code().as_deref()), (status, code), "{}", response.text());
    };
    expect(s3.request("PUT", "state/record", &[("If-None-Match", "*")], b"two"), 412, Some("PreconditionFailed"));
    expect(
        s3.request("PUT", "state/record", &[("If-Match", "\"0123456789abcdef\"")], b"two"),
        412,
        Some("PreconditionFailed"),
    );
    expect(s3.request("PUT", "state/missing", &[("If-Match", &etag)], b"two"), 404, Some("NoSuchKey"));
    assert_eq!(s3.get("state/record").unwrap(), b"one");
    assert_eq!(s3.get("state/missing"), None);

    expect(s3.request("PUT", "state/record", &[("If-Match", &etag)], b"two"), 200, None);
    assert_eq!(s3.get("state/record").unwrap(), b"two");
    let newer = s3.request("HEAD", "state/record", &[], b"").header("ETag").unwrap().to_string();
    assert_ne!(newer, etag);
    // The ETag read before the replacement no longer matches.
    expect(s3.request("PUT", "state/record", &[("If-Match", &etag)], b"three"), 412, Some("PreconditionFailed"));
    expect(s3.request("GET", "state/record", &[("If-None-Match", &newer)], b""), 304, None);
    assert_eq!(s3.request("GET", "state/record", &[("If-None-Match", &etag)], b"").body, b"two");
}

#[test]
fn keys_get_put_and_delete() {
    let s3 = S3::start();
    let torn = [0x7b, 0x22, 0x00, 0xff, 0xfe];
    s3.put("a/record", b"{}");
    s3.put("a/lease", b"");
    s3.put("a/journal/0001", &torn);
    s3.put("b/record", b"other");
    assert_eq!(s3.keys("a/"), ["a/journal/0001", "a/lease", "a/record"]);
    assert_eq!(s3.keys(""), ["a/journal/0001", "a/lease", "a/record", "b/record"]);
    assert_eq!(s3.keys("c/"), Vec::<String>::new());
    assert_eq!(s3.get("a/journal/0001").unwrap(), torn);
    assert_eq!(s3.get("a/lease").unwrap(), b"");
    s3.put("a/record", b"replaced");
    assert_eq!(s3.get("a/record").unwrap(), b"replaced");
    s3.delete("a/record");
    s3.delete("a/record");
    assert_eq!(s3.get("a/record"), None);
    assert_eq!(s3.keys("a/"), ["a/journal/0001", "a/lease"]);
}

#[test]
fn moto_does_not_refuse_a_checksum_that_does_not_match() {
    // A torn or corrupted upload cannot be made by a lying checksum here: tests write the
    // corrupted bytes themselves (S3::put) instead.
    let s3 = S3::start();
    let checksum_of_other_bytes = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let put = s3.request("PUT", "c", &[("x-amz-checksum-sha256", checksum_of_other_bytes)], b"body");
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(s3.get("c").unwrap(), b"body");
}

#[test]
fn url_and_env_name_the_endpoint_and_nothing_beyond_loopback() {
    let s3 = S3::start();
    let port = s3.port();
    assert_eq!(
        s3.url("team/prod"),
        format!("s3://{BUCKET}/team/prod?endpoint=http://127.0.0.1:{port}&region={REGION}&addressing=path")
    );
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{port}"));
    assert!(!s3.url("p").contains(SECRET));
    let env = s3.env();
    let value = |name: &str| env.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
    assert_eq!(value("AWS_ACCESS_KEY_ID"), Some(s3.credentials().key_id.as_str()));
    assert_eq!(value("AWS_SECRET_ACCESS_KEY"), Some(SECRET));
    assert_eq!(value("AWS_REGION"), Some(REGION));
    assert_eq!(value("AWS_EC2_METADATA_DISABLED"), Some("true"));
    assert_eq!(value("AWS_METADATA_ENDPOINT"), Some("http://127.0.0.1:9"));
    for (key, value) in &env {
        assert!(key.starts_with("AWS_"), "{key}");
        assert!(!value.contains("amazonaws.com") && !value.contains("169.254."), "{key}={value}");
    }
    let without = s3.env_without_credentials();
    assert_eq!(without.len(), env.len() - 2);
    assert!(without.iter().all(|(key, _)| !key.contains("ACCESS_KEY")));
}

#[test]
fn stop_refuses_the_endpoint_and_restart_brings_back_the_same_data() {
    let mut s3 = S3::start();
    let port = s3.port();
    s3.put("state/record", b"kept");
    let before = s3.request("HEAD", "state/record", &[], b"");
    assert_eq!(s3.request_at(port, "GET", "state/record", &[], b"").unwrap().body, b"kept");

    let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s3.stop();
    // A connection open at the outage is cut: it reads the end of the stream, or an error.
    let mut byte = [0; 1];
    assert!(!matches!(open.read(&mut byte), Ok(1..)), "the open connection was not cut");
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    assert!(s3.request_at(port, "GET", "state/record", &[], b"").is_err());
    // The store itself can still be inspected (and changed) while the endpoint is down.
    assert_eq!(s3.keys("state/"), ["state/record"]);

    s3.restart();
    assert_eq!(s3.port(), port);
    let after = s3.request_at(port, "HEAD", "state/record", &[], b"").unwrap();
    assert_eq!(after.status, 200);
    assert_eq!(after.header("ETag"), before.header("ETag"));
    assert_eq!(after.header("Last-Modified"), before.header("Last-Modified"));
    assert_eq!(s3.request_at(port, "GET", "state/record", &[], b"").unwrap().body, b"kept");
}

#[test]
fn an_authenticated_server_refuses_wrong_credentials_and_writes_nothing() {
    let s3 = S3::start_authenticated();
    assert!(s3.is_authenticated());
    let good = s3.credentials().clone();
    assert!(good.key_id.starts_with("AKIA") && good.secret.len() >= 30, "{}", good.key_id);
    assert_eq!(s3.request("PUT", "state/record", &[], b"signed").status, 200);
    assert_eq!(s3.get("state/record").unwrap(), b"signed");
    // The endpoint relays signed requests untouched.
    assert_eq!(s3.request_at(s3.port(), "GET", "state/record", &[], b"").unwrap().body, b"signed");

    let wrong_secret = Credentials { key_id: good.key_id.clone(), secret: "wrong-secret".into() };
    let refused = s3.request_with(&wrong_secret, "PUT", "state/forged", &[], b"forged");
    assert_eq!((refused.status, refused.error_code().as_deref()), (403, Some("SignatureDoesNotMatch")));
    let unknown = Credentials { key_id: "AKIAUNKNOWN000000000".into(), secret: good.secret.clone() };
    let refused = s3.request_with(&unknown, "PUT", "state/forged", &[("If-None-Match", "*")], b"forged");
    assert_eq!((refused.status, refused.error_code().as_deref()), (403, Some("InvalidAccessKeyId")));
    assert_eq!(s3.get("state/forged"), None);
    assert_eq!(s3.keys(""), ["state/record"]);
}

#[test]
fn a_service_that_ignores_conditions_lets_a_second_create_overwrite() {
    let s3 = S3::start();
    let forwarder = Forwarder::start(&s3, Mode::StripConditions);
    assert_eq!(
        forwarder.url("p"),
        format!("s3://{BUCKET}/p?endpoint=http://127.0.0.1:{}&region={REGION}&addressing=path", forwarder.port())
    );
    let create = |body: &[u8]| forwarder_request(&s3, &forwarder, "PUT", "probe", &[("If-None-Match", "*")], body);
    assert_eq!(create(b"first").status, 200);
    assert_eq!(create(b"second").status, 200, "moto itself would answer 412");
    assert_eq!(s3.get("probe").unwrap(), b"second");
    let stale = forwarder_request(&s3, &forwarder, "PUT", "probe", &[("If-Match", "\"stale\"")], b"third");
    assert_eq!(stale.status, 200);
    assert_eq!(s3.get("probe").unwrap(), b"third");
    let seen: Vec<(String, bool, u16)> = forwarder
        .seen()
        .into_iter()
        .map(|Seen { method, conditional, status, .. }| (method, conditional, status))
        .collect();
    assert_eq!(seen, [("PUT".into(), true, 200), ("PUT".into(), true, 200), ("PUT".into(), true, 200)]);
}

#[test]
fn a_service_that_does_not_implement_conditions_refuses_them_and_relays_the_rest() {
    let s3 = S3::start();
    let forwarder = Forwarder::start(&s3, Mode::NotImplemented);
    for condition in [("If-None-Match", "*"), ("If-Match", "\"0123\"")] {
        let refused = forwarder_request(&s3, &forwarder, "PUT", "probe", &[condition], b"conditional");
        assert_eq!((refused.status, refused.error_code().as_deref()), (501, Some("NotImplemented")), "{condition:?}");
        assert!(refused.text().contains(&format!("<Header>{}</Header>", condition.0)), "{}", refused.text());
        assert_eq!(refused.header("Content-Type"), Some("application/xml"));
    }
    assert_eq!(s3.get("probe"), None);
    assert_eq!(forwarder_request(&s3, &forwarder, "PUT", "probe", &[], b"plain").status, 200);
    let got = forwarder_request(&s3, &forwarder, "GET", "probe", &[], b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"plain"[..]));
    let head = forwarder_request(&s3, &forwarder, "HEAD", "probe", &[], b"");
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("5")));
    assert_eq!(forwarder_request(&s3, &forwarder, "GET", "nothing", &[], b"").status, 404);
    let statuses: Vec<u16> = forwarder.seen().iter().map(|seen| seen.status).collect();
    assert_eq!(statuses, [501, 501, 200, 200, 200, 404]);
}

#[test]
fn a_forwarder_keeps_connections_alive_and_takes_chunked_bodies() {
    let s3 = S3::start();
    let forwarder = Forwarder::start(&s3, Mode::Pass);
    let mut stream = TcpStream::connect(("127.0.0.1", forwarder.port())).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let host = format!("127.0.0.1:{}", forwarder.port());
    let mut send = |request: String, head: bool| {
        stream.write_all(request.as_bytes()).unwrap();
        Response::read_from(&mut reader, head).unwrap()
    };
    let put = send(
        format!(
            "PUT /{BUCKET}/kept HTTP/1.1\r\nHost: {host}\r\nAuthorization: {ANY_AUTHORIZATION}\r\nContent-Length: 5\r\n\r\nfirst"
        ),
        false,
    );
    assert_eq!(put.status, 200);
    assert_eq!(put.header("Connection"), None);
    let chunked = send(
        format!(
            "PUT /{BUCKET}/chunked HTTP/1.1\r\nHost: {host}\r\nAuthorization: {ANY_AUTHORIZATION}\r\n\
             Transfer-Encoding: chunked\r\n\r\n4\r\nsecA\r\n5;ext=1\r\nond!!\r\n0\r\n\r\n"
        ),
        false,
    );
    assert_eq!(chunked.status, 200);
    let head = send(
        format!("HEAD /{BUCKET}/kept HTTP/1.1\r\nHost: {host}\r\nAuthorization: {ANY_AUTHORIZATION}\r\n\r\n"),
        true,
    );
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("5")));
    let got = send(
        format!(
            "GET /{BUCKET}/chunked HTTP/1.1\r\nHost: {host}\r\nAuthorization: {ANY_AUTHORIZATION}\r\nConnection: close\r\n\r\n"
        ),
        false,
    );
    assert_eq!((got.status, got.body.as_slice(), got.header("Content-Length")), (200, &b"secAond!!"[..], Some("9")));
    assert_eq!(got.header("Connection"), Some("close"));
    assert_eq!(forwarder.seen().len(), 4);
    assert_eq!(s3.get("kept").unwrap(), b"first");
}

/// A signed request through `forwarder`.
fn forwarder_request(
    s3: &S3,
    forwarder: &Forwarder,
    method: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    s3.request_at(forwarder.port(), method, key, headers, body).unwrap()
}

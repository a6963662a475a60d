//! A throwaway S3-compatible server for a test: moto (`moto_server`, from PyPI's
//! `moto[server]`) on a loopback port it picks itself, with one bucket, killed when
//! dropped; and [`Forwarder`], a small proxy in front of it that plays a service which
//! does not honour conditional writes.
//!
//! What moto does, as the tests rely on it (moto 5.2.1; `tests/s3_support.rs` pins each):
//! - `PUT` with `If-None-Match: *` on an existing key, or `If-Match` with another ETag:
//!   `412 PreconditionFailed`; `If-Match` on a missing key: `404 NoSuchKey` (AWS says 404
//!   too). Of racing creates exactly one wins, the others get 412 (never 409) — although
//!   moto checks and writes without a lock of its own, so this rests on Python's GIL.
//! - `Last-Modified` has whole seconds; `x-amz-checksum-*` and `Content-MD5` that do not
//!   match the body are NOT refused (moto stores the body and the claimed checksum).
//! - A request without an `Authorization` header reading an existing object gets `403`
//!   (private ACL) with an empty body, so the helpers always sign (SigV4).
//! - Credentials are not checked at all unless [`S3::start_authenticated`] asked for it:
//!   it makes an IAM user and access key through moto's IAM API while nothing is checked,
//!   then `POST /moto-api/reset-auth 0` makes moto check every request from then on
//!   (`403 InvalidAccessKeyId` for an unknown key, `403 SignatureDoesNotMatch` for a wrong
//!   secret; an unsigned request gets `500` there, from a bug in moto).
//! - Moto keeps everything in memory: its data dies with its process. [`S3::stop`] and
//!   [`S3::restart`] therefore cut and restore the endpoint grattr talks to (a pass-through
//!   [`Forwarder`] on a port of its own) while moto, and what it holds, live on.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The bucket every test server has.
pub const BUCKET: &str = "grattr-state";

/// The region every test server's URL names.
pub const REGION: &str = "us-east-1";

/// The secret of the fixed credentials of a server that checks none ([`S3::start`]):
/// distinctive, so that a test can look for it in what grattr printed.
pub const SECRET: &str = "s3-test-Zq9-secret-access-key";

/// How long a helper waits for the server: far longer than it takes, so that only a
/// failure (and not a busy machine) makes it give up.
const PATIENCE: Duration = Duration::from_secs(30);

/// An access key: its id and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
}

/// A running moto server with one bucket, [`BUCKET`].
pub struct S3 {
    dir: tempfile::TempDir,
    child: Child,
    /// Moto's own port, which the helpers talk to (even while the endpoint is stopped).
    moto_port: u16,
    /// The endpoint grattr is given: a pass-through [`Forwarder`] in front of moto.
    endpoint: Forwarder,
    credentials: Credentials,
    authenticated: bool,
    env: Vec<(String, String)>,
}

impl S3 {
    /// Starts a server that accepts any credentials (and checks no signature); panics
    /// with what to install when `moto_server` is missing (a test that needs it never
    /// skips).
    pub fn start() -> S3 {
        let credentials = Credentials { key_id: "AKIAGRATTRTEST000001".into(), secret: SECRET.into() };
        S3::launch(credentials, false)
    }

    /// Starts a server that checks every request's SigV4 signature against the one
    /// access key it knows, [`S3::credentials`] (made by moto: a new one per server).
    pub fn start_authenticated() -> S3 {
        let placeholder = Credentials { key_id: String::new(), secret: String::new() };
        S3::launch(placeholder, true)
    }

    fn launch(credentials: Credentials, authenticated: bool) -> S3 {
        let dir = tempfile::Builder::new().prefix("grattr-s3-").tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let file = std::fs::File::create(&log).unwrap();
        // Port 0: moto binds a free port itself and says which in its log, so there is
        // no race for a port picked beforehand.
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("starting moto_server: {error}: {}", install_hint()));
        let mut s3 =
            S3 { dir, child, moto_port: 0, endpoint: Forwarder::closed(), credentials, authenticated, env: Vec::new() };
        s3.moto_port = s3.wait_for_port(&log);
        if authenticated {
            s3.credentials = s3.make_access_key();
        }
        let made = s3.request("PUT", "", &[], b"");
        assert_eq!(made.status, 200, "creating the bucket: {}\n{}", made.text(), s3.log());
        if authenticated {
            // From here on moto checks the signature (and the IAM policy) of every request.
            let reset = s3.raw(s3.moto_port, "POST", "/moto-api/reset-auth", &[], b"0");
            assert_eq!(reset.status, 200, "turning authentication on: {}\n{}", reset.text(), s3.log());
        }
        s3.endpoint = Forwarder::start_at(0, s3.moto_port, Mode::Pass);
        s3.env = s3.env_for(&s3.credentials.clone());
        s3
    }

    /// Reads moto's port from its log (`Running on http://127.0.0.1:PORT`).
    fn wait_for_port(&mut self, log: &Path) -> u16 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(port) = text
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse().ok())
            {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited ({status}) before it listened:\n{text}\n{}", install_hint());
            }
            assert!(Instant::now() < deadline, "moto_server did not listen within {PATIENCE:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes IAM user `grattr` with an access key allowed every S3 action, while moto
    /// still checks nothing.
    fn make_access_key(&self) -> Credentials {
        let iam = |params: &[(&str, &str)]| {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .append_pair("Version", "2010-05-08")
                .finish();
            // Moto routes a request on an IP address by the service its credential scope names.
            let headers = [
                ("Content-Type", "application/x-www-form-urlencoded"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAGRATTRSETUP00000/20260101/us-east-1/iam/aws4_request, \
                     SignedHeaders=host, Signature=0",
                ),
            ];
            let response = self.raw(self.moto_port, "POST", "/", &headers, body.as_bytes());
            assert_eq!(response.status, 200, "IAM {params:?}: {}\n{}", response.text(), self.log());
            response.text()
        };
        iam(&[("Action", "CreateUser"), ("UserName", "grattr")]);
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        iam(&[("Action", "PutUserPolicy"), ("UserName", "grattr"), ("PolicyName", "s3"), ("PolicyDocument", policy)]);
        let created = iam(&[("Action", "CreateAccessKey"), ("UserName", "grattr")]);
        let field =
            |name: &str| xml_values(&created, name).into_iter().next().unwrap_or_else(|| panic!("{name} in {created}"));
        Credentials { key_id: field("AccessKeyId"), secret: field("SecretAccessKey") }
    }

    /// The state URL of `prefix` in the bucket, through the endpoint:
    /// `s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&region=us-east-1&addressing=path`.
    pub fn url(&self, prefix: &str) -> String {
        state_url(self.endpoint.port, prefix)
    }

    /// `http://127.0.0.1:PORT`: the endpoint grattr is given.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.endpoint.port)
    }

    /// The endpoint's port (the same across [`S3::restart`]).
    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// The credentials the server accepts (any, unless it was started authenticated).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Whether it checks signatures ([`S3::start_authenticated`]).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The environment a grattr process needs to reach the server, and nothing beyond
    /// loopback: the credentials, the region, no instance metadata (object_store's
    /// `AWS_METADATA_ENDPOINT` on a closed loopback port; `AWS_EC2_METADATA_DISABLED` for
    /// AWS's SDKs) and no credential files. A later pair of the same name overrides an
    /// earlier one when given to a command, e.g. `[s3.env(), vec![("AWS_SECRET_ACCESS_KEY", "wrong")]].concat()`.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
    }

    /// [`S3::env`] without `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn env_without_credentials(&self) -> Vec<(&str, &str)> {
        self.env()
            .into_iter()
            .filter(|(key, _)| *key != "AWS_ACCESS_KEY_ID" && *key != "AWS_SECRET_ACCESS_KEY")
            .collect()
    }

    fn env_for(&self, credentials: &Credentials) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", credentials.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", credentials.secret.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            // Port 9 (discard): nothing listens, so a missing credential fails at once, here.
            ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_CONFIG_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }

    /// Every key under `prefix` in the bucket, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(token) = &token {
                query.push(("continuation-token", token));
            }
            let listed = self.send(self.moto_port, &self.credentials, "GET", "", &query, &[], b"");
            assert_eq!(listed.status, 200, "listing {prefix:?}: {}", listed.text());
            let text = listed.text();
            keys.extend(xml_values(&text, "Key"));
            token = match xml_values(&text, "IsTruncated").first().map(String::as_str) {
                Some("true") => xml_values(&text, "NextContinuationToken").into_iter().next(),
                _ => None,
            };
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The object at `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let got = self.request("GET", key, &[], b"");
        match got.status {
            200 => Some(got.body),
            404 => None,
            status => panic!("GET {key}: {status} {}", got.text()),
        }
    }

    /// Writes `bytes` at `key` whatever is there: another tool, or a torn upload.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let put = self.request("PUT", key, &[], bytes);
        assert_eq!(put.status, 200, "PUT {key}: {}", put.text());
    }

    /// Deletes `key` (nothing happens when there is none).
    pub fn delete(&self, key: &str) {
        let deleted = self.request("DELETE", key, &[], b"");
        assert_eq!(deleted.status, 204, "DELETE {key}: {}", deleted.text());
    }

    /// A signed request for `key` in the bucket (`""`: the bucket itself) with extra
    /// headers, straight to moto: what the store holds, even while the endpoint is stopped.
    pub fn request(&self, method: &str, key: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.send(self.moto_port, &self.credentials, method, key, &[], headers, body)
    }

    /// [`S3::request`] signed with other credentials.
    pub fn request_with(
        &self,
        credentials: &Credentials,
        method: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(self.moto_port, credentials, method, key, &[], headers, body)
    }

    /// [`S3::request`] sent to another port on 127.0.0.1: the endpoint ([`S3::port`])
    /// or a [`Forwarder`]'s. `Err` when nothing answers there.
    pub fn request_at(
        &self,
        port: u16,
        method: &str,
        key: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        let request = self.signed(port, &self.credentials, method, key, &[], headers, body);
        exchange(&mut stream, &request, method == "HEAD")
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        port: u16,
        credentials: &Credentials,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let request = self.signed(port, credentials, method, key, query, headers, body);
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|error| panic!("connecting to moto on {port}: {error}\n{}", self.log()));
        exchange(&mut stream, &request, method == "HEAD")
            .unwrap_or_else(|error| panic!("{method} {key} on moto: {error}\n{}", self.log()))
    }

    /// The bytes of a request signed with AWS Signature Version 4 for `127.0.0.1:port`.
    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        port: u16,
        credentials: &Credentials,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let path = match key {
            "" => format!("/{BUCKET}"),
            key => format!("/{BUCKET}/{}", key.split('/').map(uri_encode).collect::<Vec<_>>().join("/")),
        };
        let mut pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
        pairs.sort();
        let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(['-', ':'], "");
        let date = &now[..8];
        let payload = hex(&Sha256::digest(body));
        let host = format!("127.0.0.1:{port}");
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{now}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{payload}"
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!("AWS4-HMAC-SHA256\n{now}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let mut key = hmac(format!("AWS4{}", credentials.secret).as_bytes(), date.as_bytes());
        for part in [REGION, "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        let target = if query.is_empty() { path } else { format!("{path}?{query}") };
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nX-Amz-Date: {now}\r\nX-Amz-Content-Sha256: {payload}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}\r\nContent-Length: {}\r\nConnection: close\r\n",
            credentials.key_id,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// An unsigned request to moto itself (its own API, IAM before authentication is on).
    fn raw(&self, port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        exchange(&mut stream, &bytes, false)
            .unwrap_or_else(|error| panic!("{method} {target}: {error}\n{}", self.log()))
    }

    /// Cuts the endpoint, as an outage would: new connections are refused and open ones
    /// are closed. Moto, and what it holds, live on.
    pub fn stop(&mut self) {
        self.endpoint.close();
    }

    /// Restores the endpoint on the same port, with the same data.
    pub fn restart(&mut self) {
        self.endpoint.close();
        self.endpoint = Forwarder::start_at(self.endpoint.port, self.moto_port, Mode::Pass);
    }

    /// Moto's log (one line per request), for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.endpoint.close();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_hint() -> &'static str {
    "the S3 tests need moto's server on PATH: `python3 -m pip install --user 'moto[server]==5.2.1'` \
     (with --break-system-packages on Debian's python3) and ~/.local/bin on PATH (.ci/run does both)"
}

/// `s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&region=us-east-1&addressing=path`.
fn state_url(port: u16, prefix: &str) -> String {
    format!("s3://{BUCKET}/{prefix}?endpoint=http://127.0.0.1:{port}&region={REGION}&addressing=path")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

/// SigV4's URI encoding: everything but the unreserved characters.
fn uri_encode(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}

/// The text of every `<name>…</name>` element in `xml`, unescaped.
fn xml_values(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close))
        .map(|(value, _)| {
            value
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The S3 error code of an XML error body (`PreconditionFailed`, `NoSuchKey`…).
    pub fn error_code(&self) -> Option<String> {
        xml_values(&self.text(), "Code").into_iter().next()
    }

    /// Reads one response from `reader`; `head_request`: it answers a HEAD (no body).
    pub fn read_from(reader: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
        let head = read_head(reader)?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
        let status = head
            .start
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("status line {:?}", head.start)))?;
        let body = read_body(reader, &head.headers, BodyOf::Response { head_request, status })?;
        Ok(Response { status, headers: head.headers, body })
    }
}

/// Sends `request` on `stream` and reads the whole answer.
fn exchange(stream: &mut TcpStream, request: &[u8], head_request: bool) -> io::Result<Response> {
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(request)?;
    Response::read_from(&mut BufReader::new(stream), head_request)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A message's start line and headers, as received.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

/// Reads a message head; `None` at the end of the stream before its first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut size = 0;
    loop {
        let mut line = Vec::new();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return match lines.is_empty() {
                true => Ok(None),
                false => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the head was cut")),
            };
        }
        size += read;
        if size > 64 * 1024 {
            return Err(invalid("a head over 64 KiB".into()));
        }
        let line = String::from_utf8(line).map_err(|_| invalid("a head that is not UTF-8".into()))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines.is_empty() {
                continue; // a stray CRLF between messages
            }
            break;
        }
        lines.push(line.to_string());
    }
    let start = lines.remove(0);
    let headers = lines
        .iter()
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("header line {line:?}")))?;
            Ok((name.trim().to_string(), value.trim().to_string()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Some(Head { start, headers }))
}

/// Which message a body belongs to: a response's may be absent or run to the end of
/// the stream.
#[derive(Clone, Copy)]
enum BodyOf {
    Request,
    Response { head_request: bool, status: u16 },
}

fn read_body(reader: &mut impl BufRead, headers: &[(String, String)], of: BodyOf) -> io::Result<Vec<u8>> {
    if let BodyOf::Response { head_request, status } = of
        && (head_request || status < 200 || status == 204 || status == 304)
    {
        return Ok(Vec::new());
    }
    if header(headers, "transfer-encoding").is_some_and(|value| value.to_ascii_lowercase().contains("chunked")) {
        return read_chunked(reader);
    }
    let mut body = Vec::new();
    match header(headers, "content-length") {
        Some(length) => {
            let length: u64 = length.parse().map_err(|_| invalid(format!("Content-Length {length:?}")))?;
            reader.take(length).read_to_end(&mut body)?;
            if body.len() as u64 != length {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the body was cut"));
            }
        }
        None if matches!(of, BodyOf::Response { .. }) => {
            reader.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid(format!("chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// What a [`Forwarder`] does with the requests it relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Relays every request as it is.
    Pass,
    /// Removes `If-Match` and `If-None-Match` before relaying: a service that silently
    /// ignores conditional writes (and overwrites). In front of [`S3::start`] only: S3
    /// clients sign those headers (object_store signs every header), so a server that
    /// checks signatures would refuse what is left.
    StripConditions,
    /// Answers `501 NotImplemented` (an S3 XML error) to any PUT that carries
    /// `If-Match` or `If-None-Match`, and relays the rest: a service that refuses them.
    NotImplemented,
    /// Relays everything, but the answers to the first N replaces (`If-Match` PUTs) of a
    /// key ending in `head.json` are lost: the write happens, the client hears nothing
    /// (its connection is cut), as when a network fails at the wrong moment.
    LoseHeadAnswers(usize),
}

/// A request a [`Forwarder`] saw, and how it was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Whether it carried `If-Match` or `If-None-Match`.
    pub conditional: bool,
    pub status: u16,
}

/// A small HTTP/1.1 proxy on 127.0.0.1 (threads, std::net) in front of a server: keeps
/// its clients' connections alive, takes request bodies by Content-Length or chunked,
/// and answers with Content-Length; one upstream connection per request. Closed when
/// dropped, its connections cut and its threads joined.
pub struct Forwarder {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: u16,
    mode: Mode,
    closing: AtomicBool,
    /// Each open client connection (a clone, to cut it) and the thread serving it.
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    seen: Mutex<Vec<Seen>>,
    /// Answers lost so far ([`Mode::LoseHeadAnswers`]).
    lost: std::sync::atomic::AtomicUsize,
}

impl Forwarder {
    /// Starts a proxy in `mode` in front of `s3`'s endpoint (so that [`S3::stop`] cuts
    /// it too), on a free loopback port.
    pub fn start(s3: &S3, mode: Mode) -> Forwarder {
        Forwarder::start_at(0, s3.port(), mode)
    }

    fn start_at(port: u16, upstream: u16, mode: Mode) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|error| panic!("binding a forwarder on 127.0.0.1:{port}: {error}"));
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            mode,
            closing: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            lost: std::sync::atomic::AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        let acceptor = std::thread::spawn(move || accept(&listener, &accepting));
        Forwarder { port, shared, acceptor: Some(acceptor) }
    }

    /// One that listens nowhere, until it is replaced.
    fn closed() -> Forwarder {
        let shared = Arc::new(Shared {
            upstream: 0,
            mode: Mode::Pass,
            closing: AtomicBool::new(true),
            connections: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            lost: std::sync::atomic::AtomicUsize::new(0),
        });
        Forwarder { port: 0, shared, acceptor: None }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The state URL of `prefix` in the bucket, through this proxy.
    pub fn url(&self, prefix: &str) -> String {
        state_url(self.port, prefix)
    }

    /// Every request it saw so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Stops listening, cuts every open connection and waits for its threads.
    fn close(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        self.shared.closing.store(true, Ordering::SeqCst);
        // accept() blocks until someone connects: be that someone.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = acceptor.join();
        let connections = std::mem::take(&mut *self.shared.connections.lock().unwrap());
        for (stream, _) in &connections {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, thread) in connections {
            let _ = thread.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.close();
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(cut) = stream.try_clone() else { continue };
        let serving = shared.clone();
        let thread = std::thread::spawn(move || {
            let _ = serve(stream, &serving);
        });
        let mut connections = shared.connections.lock().unwrap();
        connections.retain(|(_, thread)| !thread.is_finished());
        connections.push((cut, thread));
    }
}

/// Serves one client connection, request after request, until it closes.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let mut parts = head.start.split(' ');
        let (method, target, version) =
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        if header(&head.headers, "expect").is_some_and(|value| value.eq_ignore_ascii_case("100-continue")) {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = read_body(&mut reader, &head.headers, BodyOf::Request)?;
        let conditional = ["if-match", "if-none-match"].iter().any(|name| header(&head.headers, name).is_some());
        let closing = version != "HTTP/1.1"
            || header(&head.headers, "connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        let response = match shared.mode {
            Mode::NotImplemented if method == "PUT" && conditional => not_implemented(&head.headers),
            mode => forward(shared.upstream, &head, &body, mode == Mode::StripConditions)?,
        };
        shared.seen.lock().unwrap().push(Seen {
            method: method.to_string(),
            target: target.to_string(),
            conditional,
            status: response.status,
        });
        if let Mode::LoseHeadAnswers(times) = shared.mode {
            let replace = method == "PUT" && header(&head.headers, "if-match").is_some();
            let path = target.split('?').next().unwrap_or_default();
            if replace && path.ends_with("head.json") && shared.lost.fetch_add(1, Ordering::SeqCst) < times {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        writer.write_all(&answer(&response, method == "HEAD", closing))?;
        if closing {
            return Ok(());
        }
    }
}

/// Headers that belong to one connection, or that the proxy sets itself.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "content-length", "expect", "te"];

/// Relays one request to the upstream server and reads its whole answer.
fn forward(upstream: u16, head: &Head, body: &[u8], strip_conditions: bool) -> io::Result<Response> {
    let mut request = format!("{}\r\n", head.start);
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || (strip_conditions && (lower == "if-match" || lower == "if-none-match"))
        {
            continue;
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    // The Host header is relayed as it is: a SigV4 signature covers it.
    request.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let mut stream = TcpStream::connect(("127.0.0.1", upstream))?;
    exchange(&mut stream, &bytes, head.start.starts_with("HEAD "))
}

/// The answer of a service that does not implement conditional writes.
fn not_implemented(headers: &[(String, String)]) -> Response {
    let name = if header(headers, "if-none-match").is_some() { "If-None-Match" } else { "If-Match" };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided \
         implies functionality that is not implemented</Message><Header>{name}</Header>\
         <RequestId>grattr-test-forwarder</RequestId></Error>"
    );
    Response { status: 501, headers: vec![("Content-Type".into(), "application/xml".into())], body: body.into_bytes() }
}

/// A response's bytes for the client, with Content-Length (none on 204 and 304; a
/// HEAD's as upstream gave it).
fn answer(response: &Response, head_request: bool, closing: bool) -> Vec<u8> {
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Status",
    };
    let mut text = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) && !(head_request && lower == "content-length") {
            continue;
        }
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !head_request && response.status != 204 && response.status != 304 {
        text.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    if closing {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&response.body);
    bytes
}

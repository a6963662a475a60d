//! The HTTP client of the Chat REST API: one `call` path that signs, paces,
//! retries and classifies every request, and typed methods for the endpoints.
//!
//! Secrets: the UserSig travels in the query string and reqwest puts the full
//! URL into its errors, so every transport error passes through `Client::transport_error`,
//! which strips the URL and scrubs the UserSig and the key from the text; and an
//! endpoint may echo the request, so every answer is scrubbed the same way where it
//! is parsed (`Client::attempt_at`).

use super::codes::{self, RetryClass};
use super::rate::{AdaptiveRate, paced};
use super::redact::Scrubber;
use super::scope::ConnectFailure;
use super::usersig::{self, SecretKey, UserSig};
use super::wire::{self, AttrItem, GroupType, Operation, Response};
use crate::model::limits::MAX_ANSWER_BYTES;
use crate::model::{AttributeSet, GroupId, Region};
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::error::{ApiError, ErrorKind};
pub use crate::model::limits::{DEFAULT_GROUP_WRITE_RATE, DEFAULT_RATE_LIMIT};

/// How the client retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first delay.
    pub min_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// The longest total time spent waiting between attempts of one call.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_total: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_total_delay(Some(self.max_total))
    }
}

/// Attempts of a call that cannot connect to a host that has never answered.
pub const UNREACHED_ATTEMPTS: u32 = 3;

/// What one attempt of a call ended with, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEvent {
    /// The operation.
    pub operation: Operation,
    /// `0` for success, the API error code, or none for a transport or HTTP failure.
    pub code: Option<u32>,
    /// Whether another attempt follows.
    pub retry: bool,
}

/// Hears of every attempt of every call.
pub type CallObserver = Arc<dyn Fn(&CallEvent) + Send + Sync>;

/// Everything a client needs.
#[derive(Clone)]
pub struct ClientConfig {
    /// The base URL (a region's, or an endpoint).
    pub base_url: String,
    /// Where to turn when `base_url` cannot be reached (no answer at all): a
    /// region's documented backup domain. [`ClientConfig::new`] fills it in for a
    /// region's base URL.
    pub backup_url: Option<String>,
    /// The app.
    pub sdkappid: u64,
    /// The app admin account.
    pub admin: String,
    /// The app's secret key.
    pub key: SecretKey,
    /// Calls per second, app-wide. The service allows
    /// [`MAX_CALLS_PER_SECOND`](crate::model::limits::MAX_CALLS_PER_SECOND) per endpoint;
    /// the command line refuses more.
    pub rate_limit: u32,
    /// Writes per second to one group. The service allows
    /// [`MAX_GROUP_WRITES_PER_SECOND`](crate::model::limits::MAX_GROUP_WRITES_PER_SECOND).
    pub group_write_rate: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// The validity of the UserSigs the client makes.
    pub usersig_validity: Duration,
    /// Hears of every attempt (for metrics).
    pub observer: Option<CallObserver>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("sdkappid", &self.sdkappid)
            .field("admin", &self.admin)
            .field("key", &self.key)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration with the default limits, timeouts and retries.
    pub fn new(base_url: impl Into<String>, sdkappid: u64, admin: impl Into<String>, key: SecretKey) -> ClientConfig {
        let base_url = base_url.into();
        let region = Region::with_base_url(&base_url);
        if let Some((region, caveat)) = region.and_then(|r| r.caveat().map(|c| (r, c))) {
            tracing::warn!(%region, "{caveat}");
        }
        ClientConfig {
            backup_url: region.and_then(|r| r.backup_url()),
            base_url,
            sdkappid,
            admin: admin.into(),
            key,
            rate_limit: DEFAULT_RATE_LIMIT,
            group_write_rate: DEFAULT_GROUP_WRITE_RATE,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            // The vendor advises at least 24 hours; renewed at half-life.
            usersig_validity: Duration::from_secs(2 * 24 * 3600),
            observer: None,
        }
    }
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    usersig: Mutex<Option<(UserSig, u64)>>,
    rate: AdaptiveRate,
    group_writes: DefaultKeyedRateLimiter<GroupId>,
    calls: AtomicU32,
    /// Whether any attempt has had an answer from the host (any status, any code).
    answered: AtomicBool,
    /// Whether calls go to the backup domain: set when the main one could not be
    /// reached and the backup answered, cleared the other way round.
    on_backup: AtomicBool,
}

/// A client of the Chat REST API. Cheap to clone; clones share the UserSig and the rate limits.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Asked before every attempt is sent, retries included: a writer whose lease
    /// lapsed while a call waited (or while the process was frozen) sends nothing more.
    gate: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url)
            .field("sdkappid", &self.inner.config.sdkappid)
            .finish_non_exhaustive()
    }
}

/// Why a client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse.
    #[error("invalid endpoint {0:?}")]
    BadUrl(String),
    /// The HTTP stack cannot start.
    #[error("cannot start the HTTP client: {0}")]
    Http(String),
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Makes ring rustls's cryptography for this process, once; any HTTP client built
/// afterwards (grattr's, or a test's own reqwest client) uses it. A provider
/// installed before is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        install_tls_provider();
        reqwest::Url::parse(&config.base_url).map_err(|_| ClientError::BadUrl(config.base_url.clone()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("grattr/", env!("CARGO_PKG_VERSION")))
            // The UserSig is in the query: following a redirect would hand it to whatever
            // host the `Location` names. The REST API never redirects; a 3xx is an answer
            // of something else (see `codes::HTTP_STATUSES`).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Http(e.without_url().to_string()))?;
        // The command line keeps these within the documented limits; the library
        // takes any rate, so benchmarks can drive an emulator without limits.
        let rate_limit = config.rate_limit.max(1);
        let group_rate = config.group_write_rate.max(1);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                rate: AdaptiveRate::new(rate_limit),
                group_writes: RateLimiter::keyed(paced(group_rate)),
                usersig: Mutex::new(None),
                calls: AtomicU32::new(0),
                answered: AtomicBool::new(false),
                on_backup: AtomicBool::new(false),
                config,
            }),
            gate: None,
        })
    }

    /// A UserSig for the admin, made once and renewed at half its validity.
    fn usersig(&self, renew: bool) -> UserSig {
        let mut cached = self.inner.usersig.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_unix();
        match &*cached {
            Some((sig, renew_at)) if !renew && now < *renew_at => sig.clone(),
            _ => {
                let validity = self.inner.config.usersig_validity.as_secs().max(2);
                let c = &self.inner.config;
                let sig = usersig::generate(&c.key, c.sdkappid, &c.admin, validity, now);
                *cached = Some((sig.clone(), now + validity / 2));
                sig
            }
        }
    }

    /// The one choke point for transport errors: no URL, no UserSig, no key.
    fn transport_error(&self, error: reqwest::Error, usersig: &UserSig) -> ErrorKind {
        let timeout = error.is_timeout();
        let connect = error.is_connect().then(|| ConnectFailure::of(&error));
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if timeout && !message.contains("timed out") {
            message.push_str(" (timed out)");
        }
        let message = Scrubber::new(usersig, &self.inner.config.key).scrub(&message);
        ErrorKind::Transport { message, connect }
    }

    /// One attempt, at the domain in use; when it cannot be reached at all and a
    /// backup domain is documented, at the other one straight away. Only a
    /// transport failure switches: an answer, even an error, means the domain works.
    async fn attempt(
        &self,
        operation: Operation,
        body: &serde_json::Value,
        renew: bool,
    ) -> Result<Response, ErrorKind> {
        let c = &self.inner.config;
        let Some(backup) = c.backup_url.as_deref() else {
            return self.attempt_at(&c.base_url, operation, body, renew).await;
        };
        let on_backup = self.inner.on_backup.load(Ordering::Relaxed);
        let (first, second) = if on_backup { (backup, c.base_url.as_str()) } else { (c.base_url.as_str(), backup) };
        match self.attempt_at(first, operation, body, renew).await {
            Err(ErrorKind::Transport { message, .. }) => {
                tracing::warn!(%operation, error = %message, "the REST API domain cannot be reached; trying the other one");
                let result = self.attempt_at(second, operation, body, renew).await;
                if !matches!(result, Err(ErrorKind::Transport { .. })) {
                    self.inner.on_backup.store(!on_backup, Ordering::Relaxed);
                }
                result
            }
            other => other,
        }
    }

    async fn attempt_at(
        &self,
        base: &str,
        operation: Operation,
        body: &serde_json::Value,
        renew: bool,
    ) -> Result<Response, ErrorKind> {
        let c = &self.inner.config;
        let usersig = self.usersig(renew);
        let base = base.trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}/{}", operation.path()))
            .map_err(|e| ErrorKind::BadResponse { message: format!("invalid URL: {e}") })?;
        url.query_pairs_mut()
            .append_pair("sdkappid", &c.sdkappid.to_string())
            .append_pair("identifier", &c.admin)
            .append_pair("usersig", usersig.expose())
            .append_pair("random", &rand::random::<u32>().to_string())
            .append_pair("contenttype", "json");
        let response = self
            .inner
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport_error(e, &usersig))?;
        self.inner.answered.store(true, Ordering::Relaxed);
        let status = response.status();
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let bytes = self.read_body(response, &usersig).await?;
        // The one place answers are parsed: whatever the other side says is
        // scrubbed of this call's secrets before anything keeps or shows it, as an
        // endpoint may echo the request, query and UserSig included.
        let scrubber = || Scrubber::new(&usersig, &c.key);
        let not_the_api = || not_the_api(status.as_u16(), content_type.as_ref(), &bytes, &scrubber());
        if status != reqwest::StatusCode::OK {
            return Err(match codes::http_status(status.as_u16()) {
                codes::StatusClass::Transient => ErrorKind::Http { status: status.as_u16() },
                codes::StatusClass::NotTheApi => not_the_api(),
            });
        }
        let mut answer: Response = serde_json::from_slice(&bytes).map_err(|e| {
            // JSON with `ActionStatus` is the API's, however malformed; anything else is not.
            let envelope = serde_json::from_slice::<serde_json::Value>(&bytes)
                .is_ok_and(|json| json.get("ActionStatus").is_some());
            match envelope {
                true => ErrorKind::BadResponse {
                    message: scrubber().scrub(&format!("not the REST API's JSON envelope ({e})")),
                },
                false => not_the_api(),
            }
        })?;
        if answer.is_ok() {
            if let Some(id) = &mut answer.group_id {
                *id = scrubber().scrub(id);
            }
            Ok(answer)
        } else {
            Err(ErrorKind::Api { code: answer.error_code, info: scrubber().scrub(&answer.error_info) })
        }
    }

    /// The body of an answer, read a chunk at a time and refused as soon as it
    /// grows past [`MAX_ANSWER_BYTES`], so an endless or huge answer costs at most
    /// that much memory.
    async fn read_body(&self, mut response: reqwest::Response, usersig: &UserSig) -> Result<Vec<u8>, ErrorKind> {
        let too_large = ErrorKind::TooLarge { limit: MAX_ANSWER_BYTES };
        if response.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e, usersig))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// This client, sending each attempt only while `gate` says so (a writer's lease
    /// is valid); shares everything else with `self`.
    pub fn gated(&self, gate: Arc<dyn Fn() -> bool + Send + Sync>) -> Client {
        Client { inner: self.inner.clone(), gate: Some(gate) }
    }

    /// Whether the gate lets a request go now.
    fn open(&self) -> bool {
        self.gate.as_ref().is_none_or(|gate| gate())
    }

    /// Calls `operation` with `body`: paced by the app-wide limiter (and, for writes,
    /// the group's), signed, retried with backoff as the code table says.
    pub async fn call(
        &self,
        operation: Operation,
        group: Option<&GroupId>,
        body: serde_json::Value,
    ) -> Result<Response, ApiError> {
        let attempts = AtomicU32::new(0);
        let call = || async {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            self.inner.rate.until_ready().await;
            if let (true, Some(group)) = (operation.writes_attributes(), group) {
                self.inner.group_writes.until_key_ready(group).await;
            }
            self.housekeeping();
            // Checked after the waits, just before sending: they may have outlasted the lease.
            if !self.open() {
                return Err(ApiError { operation, kind: ErrorKind::LeaseLost, attempts: attempt });
            }
            tracing::debug!(%operation, group = group.map(GroupId::as_str), attempt, "calling");
            let mut result = self.attempt(operation, &body, false).await;
            if let Err(ErrorKind::Api { code, .. }) = &result
                && codes::class(*code) == RetryClass::RenewUserSig
                && self.open()
            {
                tracing::info!(%operation, "the UserSig expired; making a new one");
                result = self.attempt(operation, &body, true).await;
            }
            // A call sent just before this process was frozen (or stalled) past its lease
            // goes out when it wakes: nothing on this side can stop a send already decided.
            // Said, so that what it may have overwritten is looked at.
            if result.is_ok() && self.gate.is_some() && !self.open() {
                tracing::warn!(
                    %operation,
                    group = group.map(GroupId::as_str),
                    "answered after this process's lease lapsed (it was frozen or the call was slow): if another writer \
                     applied the group meanwhile, this call may have overwritten it; `grattr drift` shows what is live"
                );
            }
            result.map_err(|kind| ApiError { operation, kind, attempts: attempt })
        };
        let result = call
            .retry(self.inner.config.retry.backoff())
            .when(|e: &ApiError| e.retry_class() == RetryClass::Backoff && !self.unreachable_so_far(e))
            .adjust(|e: &ApiError, delay| delay.map(|d| d.max(e.min_wait())))
            .notify(|e: &ApiError, delay| {
                self.observe(operation, e.code(), true);
                if e.is_throttle() {
                    self.inner.rate.throttled();
                }
                tracing::debug!(%operation, group = group.map(GroupId::as_str), error = %e, ?delay, "retrying");
            })
            .await;
        match &result {
            Ok(_) => {
                self.observe(operation, Some(0), false);
                self.inner.rate.succeeded();
            }
            Err(e) => {
                self.observe(operation, e.code(), false);
                if e.is_throttle() {
                    self.inner.rate.throttled();
                }
                tracing::debug!(%operation, group = group.map(GroupId::as_str), error = %e, "failed");
            }
        }
        result
    }

    /// Whether `e` failed to connect to a host that has never answered, and has
    /// been tried [`UNREACHED_ATTEMPTS`] times: more of the full schedule (35 s of
    /// retries) would only delay learning that the host is wrong or unreachable.
    /// Once the host has answered, a failure to connect is a fault of the moment
    /// and gets every retry.
    fn unreachable_so_far(&self, e: &ApiError) -> bool {
        e.connect_failure().is_some()
            && e.attempts >= UNREACHED_ATTEMPTS
            && !self.inner.answered.load(Ordering::Relaxed)
    }

    /// The host (and port, when given) calls go to, as the user configured it.
    pub fn host(&self) -> String {
        let base = &self.inner.config.base_url;
        reqwest::Url::parse(base)
            .ok()
            .and_then(|url| {
                let host = url.host_str()?.to_string();
                Some(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| base.clone())
    }

    fn observe(&self, operation: Operation, code: Option<u32>, retry: bool) {
        if let Some(observer) = &self.inner.config.observer {
            observer(&CallEvent { operation, code, retry });
        }
    }

    /// Forgets the per-group limiter state of groups not written for a while, so a
    /// watch process writing 100,000 groups over months does not grow without bound.
    fn housekeeping(&self) {
        if self.inner.calls.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            self.inner.group_writes.retain_recent();
        }
    }

    /// Replaces all of a group's attributes. `attributes` must not be empty: the
    /// API's behaviour with an empty list is undocumented (use [`Client::clear_group_attr`]).
    pub async fn set_group_attr(&self, group: &GroupId, attributes: &AttributeSet) -> Result<(), ApiError> {
        if attributes.is_empty() {
            return Err(ApiError {
                operation: Operation::SetGroupAttr,
                kind: ErrorKind::Refused { reason: "grattr never sends an empty GroupAttr (it clears instead)".into() },
                attempts: 0,
            });
        }
        let body = serde_json::json!({ "GroupId": group, "GroupAttr": wire::items(attributes) });
        self.call(Operation::SetGroupAttr, Some(group), body).await.map(drop)
    }

    /// Reads a group's attributes.
    pub async fn get_group_attr(&self, group: &GroupId) -> Result<AttributeSet, ApiError> {
        let answer = self.call(Operation::GetGroupAttr, Some(group), serde_json::json!({ "GroupId": group })).await?;
        Ok(answer
            .group_attr_ary
            .unwrap_or_default()
            .into_iter()
            .map(|i| (i.key, i.value.unwrap_or_default()))
            .collect())
    }

    /// Adds or changes some keys, leaving the others.
    pub async fn modify_group_attr(&self, group: &GroupId, attributes: &AttributeSet) -> Result<(), ApiError> {
        let body = serde_json::json!({ "GroupId": group, "GroupAttr": wire::items(attributes) });
        self.call(Operation::ModifyGroupAttr, Some(group), body).await.map(drop)
    }

    /// Removes all of a group's attributes (not supported for Community groups:
    /// [`codes::NO_PERMISSION`] at best, so `apply` deletes their keys instead).
    pub async fn clear_group_attr(&self, group: &GroupId) -> Result<(), ApiError> {
        self.call(Operation::ClearGroupAttr, Some(group), serde_json::json!({ "GroupId": group })).await.map(drop)
    }

    /// Removes some keys (a key that does not exist fails with [`codes::KEY_NOT_FOUND`]).
    pub async fn delete_group_attr(&self, group: &GroupId, keys: &[String]) -> Result<(), ApiError> {
        let items: Vec<AttrItem> = keys.iter().map(|key| AttrItem { key: key.clone(), value: None }).collect();
        let body = serde_json::json!({ "GroupId": group, "GroupAttr": items });
        self.call(Operation::DeleteGroupAttr, Some(group), body).await.map(drop)
    }

    /// Creates a group and returns its id (the given one, or one the server made).
    pub async fn create_group(&self, kind: GroupType, name: &str, id: Option<&GroupId>) -> Result<GroupId, ApiError> {
        let mut body = serde_json::json!({ "Type": kind, "Name": name });
        if let Some(id) = id {
            body["GroupId"] = serde_json::json!(id);
        }
        let answer = self.call(Operation::CreateGroup, id, body).await?;
        let bad = |message: String| ApiError {
            operation: Operation::CreateGroup,
            kind: ErrorKind::BadResponse { message },
            attempts: 1,
        };
        let text = answer.group_id.ok_or_else(|| bad("no GroupId in the answer".into()))?;
        GroupId::parse(&text).map_err(|e| bad(e.to_string()))
    }

    /// Destroys a group.
    pub async fn destroy_group(&self, group: &GroupId) -> Result<(), ApiError> {
        self.call(Operation::DestroyGroup, Some(group), serde_json::json!({ "GroupId": group })).await.map(drop)
    }
}

/// An answer the REST API never gives, as [`ErrorKind::NotTheApi`]: the content type
/// and the start of the body, scrubbed of the call's secrets before they are cut, so
/// that a secret the cut would split is still recognised whole.
fn not_the_api(
    status: u16,
    content_type: Option<&reqwest::header::HeaderValue>,
    body: &[u8],
    scrubber: &Scrubber,
) -> ErrorKind {
    /// Enough of the body to recognise what answered, and of any UserSig echoed
    /// near its start to be scrubbed whole.
    const SCRUBBED: usize = 4096;
    /// What is kept of the body and the content type, in characters.
    const KEPT: usize = 200;
    let cut = |text: String| text.chars().take(KEPT).collect::<String>();
    let start = String::from_utf8_lossy(&body[..body.len().min(SCRUBBED)]);
    let content_type = content_type.map(|value| cut(scrubber.scrub(&String::from_utf8_lossy(value.as_bytes()))));
    ErrorKind::NotTheApi { status, content_type, body: cut(scrubber.scrub(&start)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_schedule_grows_and_is_bounded() {
        let policy = RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total: Duration::from_secs(60),
        };
        use backon::BackoffBuilder;
        let delays: Vec<Duration> = policy.backoff().build().collect();
        assert_eq!(delays.len(), 5, "five retries after the first attempt");
        for (i, delay) in delays.iter().enumerate() {
            // Jitter adds up to the delay itself on top of the exponential base.
            let base = Duration::from_millis(100 * 2u64.pow(i as u32)).min(Duration::from_secs(1));
            assert!(*delay >= base && *delay <= base * 2, "retry {i}: {delay:?} vs base {base:?}");
        }
        let tight = RetryPolicy { max_total: Duration::from_millis(250), ..policy };
        let total: Duration = tight.backoff().build().sum();
        assert!(total <= Duration::from_millis(250), "bounded in total time: {total:?}");
    }
}

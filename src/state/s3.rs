//! The S3 store: a record and its leases as objects in an S3-compatible bucket, made
//! safe by conditional writes alone (`If-None-Match: *` creates only what is absent,
//! `If-Match: ETAG` replaces only what was read), so no database and no lock service.
//!
//! Under `PREFIX/SDKAPPID[/env/ENVIRONMENT]/`:
//! - `head.json`, the record's one mutable object: its version, the token of the writer
//!   that last wrote it, and the pieces it is made of, each with its SHA-256;
//! - `lockfile/…` and `journal/…`, those pieces: written once under a fresh name, never
//!   changed, read back only when their digest matches;
//! - `lease/writer.json` and `lease/leader.json`, the leases;
//! - `clock`, written to learn the service's time (`Last-Modified`), and `probe/…`.
//!
//! A writer takes the writer's lease, then *claims* the head (rewrites it with its token,
//! conditionally), and from then on replaces the head only if it is still what it wrote
//! last. So once a new writer has claimed the record, an old one can write nothing:
//! its next `If-Match` fails. A lease lapses when the service's own clock says its
//! object was not renewed for its whole term (and a second); each renewal writes new
//! content, so that a renewal and a takeover racing on one ETag cannot both succeed.
//! A service that ignores the conditions would break all of this: it is probed before
//! the first lease is taken, and refused.

// `StateError::Held` carries its holder inline, as the shared type defines it.
#![allow(clippy::result_large_err)]

pub mod config;

pub use config::{Addressing, Config, DEFAULT_TIMEOUT};

use super::{Acquired, Key, LeaseInfo, LeaseName, StateError, Stored};
use crate::lockfile::Holder;
use crate::model::Digest;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::{Path, PathPart};
use object_store::{
    ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// The format of the head and the lease objects this grattr writes and reads.
const FORMAT: u32 = 1;

/// The services (endpoint and bucket) this process proved to honour conditional writes.
static PROVEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A writer folds its journal once it is this many pieces (each a GET for a reader).
const MAX_PIECES: usize = 64;

/// How far this machine's clock may be behind the service's before a lapsed lease is
/// taken over later than it could be (never sooner: the service's clock decides).
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Pieces of journal below which a recorder writes its batches without pausing.
const SHORT_JOURNAL: usize = 32;

/// How many pieces a reader fetches at once.
const FETCHES: usize = 8;

/// The record's one mutable object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// Grows with every write of the record.
    version: u64,
    /// The writer's lease that wrote it last.
    token: u64,
    /// The lockfile (none until the first checkpoint).
    lockfile: Option<Piece>,
    /// The journal written since, in order.
    journal: Vec<Piece>,
}

impl Manifest {
    fn empty() -> Manifest {
        Manifest { format: FORMAT, version: 0, token: 0, lockfile: None, journal: Vec::new() }
    }
}

/// An object the record is made of, as its head names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Piece {
    /// Its name under the record's prefix.
    key: String,
    /// The SHA-256 of its bytes, `sha256:<hex>`.
    sha256: String,
    /// Its size in bytes.
    size: u64,
    /// Journal records in it (0 for a lockfile).
    records: usize,
}

/// A lease as its object holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseObject {
    format: u32,
    /// Grows by one with every lease taken.
    token: u64,
    /// Who holds it; `None` once released.
    holder: Option<Holder>,
    /// The term of each renewal, in milliseconds.
    ttl_ms: u64,
    /// Made up by its taker: tells its own writes from another's after an unclear answer.
    id: u64,
    /// Grows with every renewal, so that no two writes of a lease have one ETag.
    renewal: u64,
}

/// A lease this process holds: what it wrote last and the ETag that write got.
#[derive(Debug, Clone)]
struct Held {
    object: LeaseObject,
    etag: String,
}

/// The head as this writer last wrote it, and a write whose answer never came.
#[derive(Debug)]
struct Head {
    etag: String,
    manifest: Manifest,
    /// A head write that failed without an answer: it may have happened.
    pending: Option<Manifest>,
}

/// One record (app + environment) in one bucket.
pub struct S3 {
    /// For reads and leases.
    store: AmazonS3,
    /// For the record's writes: the same service, without retries.
    record: AmazonS3,
    /// The record's prefix.
    base: Path,
    label: String,
    endpoint: String,
    bucket: String,
    /// Set once the service proved that it honours conditional writes.
    probed: tokio::sync::OnceCell<()>,
    /// The head as this process last wrote it, while it holds the writer's lease.
    head: tokio::sync::Mutex<Option<Head>>,
    /// The leases this process holds.
    leases: std::sync::Mutex<HashMap<LeaseName, Held>>,
    /// Pieces read before, by name: they never change, so a reader fetches only new ones.
    pieces: std::sync::Mutex<HashMap<String, bytes::Bytes>>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3").field("label", &self.label).finish_non_exhaustive()
    }
}

/// Why a conditional write did not happen.
enum Put {
    /// The condition failed: the object is not what the writer read.
    Conflict,
    /// The write failed otherwise; it may or may not have happened.
    Failed(StateError),
}

impl S3 {
    /// Opens the record of `key` in the bucket `config` names, with credentials from the
    /// environment or the AWS shared files. Reads nothing yet.
    pub async fn open(config: &Config, key: Key) -> Result<S3, StateError> {
        Self::open_with(config, key, std::env::vars().collect()).await
    }

    /// [`S3::open`] with the environment `vars` instead of the process's.
    pub async fn open_with(config: &Config, key: Key, vars: Vec<(String, String)>) -> Result<S3, StateError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url_error = |message: String| StateError::Url { url: config.label(), message };
        let env = |var: &str| vars.iter().find(|(name, _)| name == var).map(|(_, value)| value.clone());
        let mut builder = AmazonS3Builder::new();
        // The variables every AWS tool reads (credentials, web identity, containers' and
        // instances' credentials, encryption), as object_store reads them.
        for (var, value) in vars.iter().filter(|(var, _)| var.starts_with("AWS_")) {
            if let Ok(key) = var.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        let has_keys = env("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
        let profile = config::Profile::load(env).map_err(url_error)?;
        if !has_keys && let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret.as_str());
            if let Some(token) = &profile.session_token {
                builder = builder.with_token(token.as_str());
            }
        }
        let region = config
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| profile.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = match config.endpoint.clone() {
            Some(endpoint) => Some(endpoint),
            None => env("AWS_ENDPOINT_URL_S3")
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .or_else(|| profile.endpoint.clone())
                .map(|e| config::endpoint(&e))
                .transpose()
                .map_err(url_error)?,
        };
        // Instances' and containers' roles are AWS's: a service of one's own without keys
        // is told at once, not after asking AWS's metadata address for credentials.
        let elsewhere = [
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ];
        if endpoint.is_some()
            && !has_keys
            && profile.access_key_id.is_none()
            && !elsewhere.iter().any(|v| env(v).is_some())
        {
            return Err(url_error(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of \
                 ~/.aws/credentials with AWS_PROFILE"
                    .into(),
            ));
        }
        // AWS names buckets in the host; a service of one's own mostly in the path.
        let addressing = config.addressing.unwrap_or(match endpoint {
            Some(_) => Addressing::Path,
            None => Addressing::Virtual,
        });
        builder = builder
            .with_bucket_name(&config.bucket)
            .with_region(&region)
            .with_virtual_hosted_style_request(addressing == Addressing::Virtual)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(config.timeout)
                    .with_connect_timeout(config.timeout.min(Duration::from_secs(5)))
                    .with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        let shown_endpoint = match &endpoint {
            Some(endpoint) => {
                let endpoint = match addressing {
                    Addressing::Virtual => virtual_host(endpoint, &config.bucket).map_err(url_error)?,
                    Addressing::Path => endpoint.clone(),
                };
                builder = builder.with_endpoint(&endpoint);
                endpoint
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        // Reads and leases: the store's own retries for a passing failure. The record's
        // writes: none, so that a store gone away is known at the first failure and no new
        // API call starts meanwhile (the recorder retries, saying so).
        let retry = |max_retries| RetryConfig { max_retries, retry_timeout: config.timeout, ..RetryConfig::default() };
        let store = builder.clone().with_retry(retry(2)).build().map_err(|e| url_error(message(&e)))?;
        let record = builder.with_retry(retry(0)).build().map_err(|e| url_error(message(&e)))?;
        let mut base: Vec<PathPart<'static>> =
            config.prefix.split('/').filter(|p| !p.is_empty()).map(|p| PathPart::from(p.to_string())).collect();
        base.push(PathPart::from(key.sdkappid.to_string()));
        if !key.environment.is_empty() {
            base.push(PathPart::from("env"));
            base.push(PathPart::from(key.environment.clone()));
        }
        Ok(S3 {
            store,
            record,
            base: Path::from_iter(base),
            label: format!("{} ({key})", Config { endpoint, ..config.clone() }.label()),
            endpoint: shown_endpoint,
            bucket: config.bucket.clone(),
            probed: tokio::sync::OnceCell::new(),
            head: tokio::sync::Mutex::new(None),
            leases: std::sync::Mutex::default(),
            pieces: std::sync::Mutex::default(),
        })
    }

    /// "s3://BUCKET/PREFIX at ENDPOINT (sdkappid N, environment E)" for messages.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// The record as its head names it, every piece verified by its digest. A piece
    /// removed under the reader (a writer folded the journal meanwhile) sends it back to
    /// the head, which names the fold.
    pub async fn read(&self) -> Result<Stored, StateError> {
        let mut attempts = 0;
        loop {
            let Some((_, manifest)) = self.get_head().await? else { return Ok(Stored::default()) };
            match self.assemble(&manifest).await {
                Err(Gone) if attempts < 3 => attempts += 1,
                Err(Gone) => return Err(self.unreachable("the record kept changing while it was read".into())),
                Ok(stored) => return stored,
            }
        }
    }

    /// The record's version (0 when it was never written).
    pub async fn version(&self) -> Result<u64, StateError> {
        Ok(self.get_head().await?.map_or(0, |(_, manifest)| manifest.version))
    }

    /// The lease `name`, live or lapsed (by the service's clock, `expires` tells); `None`
    /// if never taken or released.
    pub async fn lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        Ok(self.get_lease(name).await?.and_then(|(_, object, modified)| info(&object, modified)))
    }

    /// Takes the lease `name` if it is free, released or lapsed; the writer's lease then
    /// claims the record, so that no earlier writer can change it any more.
    pub async fn acquire(&self, name: LeaseName, holder: &Holder, ttl: Duration) -> Result<Acquired, StateError> {
        self.probed
            .get_or_try_init(|| async {
                // Once per service and bucket in a process: a standby opens the store anew at each poll.
                let service = format!("{} {}", self.endpoint, self.bucket);
                if !PROVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&service) {
                    self.probe().await?;
                    PROVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(service);
                }
                Ok::<(), StateError>(())
            })
            .await?;
        let id = rand::random::<u64>();
        let mut conflicts = 0;
        let token = loop {
            let (etag, next) = match self.get_lease(name).await? {
                None => (None, 1),
                Some((etag, object, modified)) => {
                    let free = object.holder.is_none() || self.lapsed(modified, object.ttl_ms).await?;
                    match (free, info(&object, modified)) {
                        (false, Some(held)) => return Ok(Acquired::Held(held)),
                        _ => (Some(etag), object.token + 1),
                    }
                }
            };
            let object = LeaseObject {
                format: FORMAT,
                token: next,
                holder: Some(holder.clone()),
                ttl_ms: millis(ttl),
                id,
                renewal: 0,
            };
            match self.put_lease(name, &object, etag.as_deref()).await {
                Ok(etag) => {
                    self.leases_held().insert(name, Held { object, etag });
                    break next;
                }
                Err(Put::Conflict) if conflicts < 16 => conflicts += 1,
                Err(Put::Conflict) => return Err(self.unreachable("the lease kept changing while it was taken".into())),
                Err(Put::Failed(e)) => return Err(e),
            }
        };
        if name == LeaseName::Writer
            && let Err(e) = self.claim(token).await
        {
            let _ = self.release(name, token).await;
            return Err(e);
        }
        Ok(Acquired::Taken(token))
    }

    /// Renews our lease `name`: only if its object is still what we wrote last.
    pub async fn renew(&self, name: LeaseName, token: u64, ttl: Duration) -> Result<(), StateError> {
        let Some(held) = self.leases_held().get(&name).filter(|h| h.object.token == token).cloned() else {
            return Err(self.lapsed_error());
        };
        let mut object = held.object.clone();
        object.renewal += 1;
        object.ttl_ms = millis(ttl);
        match self.put_lease(name, &object, Some(&held.etag)).await {
            Ok(etag) => {
                self.leases_held().insert(name, Held { object, etag });
                Ok(())
            }
            Err(Put::Conflict) => {
                self.leases_held().remove(&name);
                Err(self.lapsed_error())
            }
            Err(Put::Failed(e)) => Err(e),
        }
    }

    /// Releases our lease `name` (a no-op when `token` no longer holds it).
    pub async fn release(&self, name: LeaseName, token: u64) -> Result<(), StateError> {
        let Some(held) = self.leases_held().remove(&name).filter(|h| h.object.token == token) else { return Ok(()) };
        if name == LeaseName::Writer {
            *self.head.lock().await = None;
        }
        let mut object = held.object;
        object.holder = None;
        object.renewal += 1;
        match self.put_lease(name, &object, Some(&held.etag)).await {
            Ok(_) | Err(Put::Conflict) => Ok(()),
            Err(Put::Failed(e)) => Err(e),
        }
    }

    /// Clears whatever lease `name` is held (`state unlock --force`); says who held it. A
    /// lease object that is not one (another tool wrote it) blocks every writer: it is
    /// replaced by a released lease whose token no writer of the record has passed.
    pub async fn break_lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        for _ in 0..16 {
            let Some((etag, bytes, modified)) = self.get(&self.lease_path(name)).await? else { return Ok(None) };
            let (cleared, was) = match serde_json::from_slice::<LeaseObject>(&bytes) {
                Ok(object) => {
                    let Some(was) = info(&object, modified) else { return Ok(None) };
                    (LeaseObject { holder: None, renewal: object.renewal + 1, ..object }, Some(was))
                }
                Err(_) => {
                    let token = self.get_head().await.ok().flatten().map_or(0, |(_, head)| head.token);
                    tracing::warn!(lease = name.as_str(), "the lease was not a lease; replacing it by a released one");
                    (LeaseObject { format: FORMAT, token, holder: None, ttl_ms: 0, id: 0, renewal: 0 }, None)
                }
            };
            match self.put_lease(name, &cleared, Some(&etag)).await {
                Ok(_) => return Ok(was),
                Err(Put::Conflict) => continue,
                Err(Put::Failed(e)) => return Err(e),
            }
        }
        Err(self.unreachable("the lease kept changing while it was cleared".into()))
    }

    /// Appends journal lines as a new piece, and names it in the head: only if the head
    /// is still what this writer wrote last (otherwise another writer claimed the record:
    /// `Lapsed`). Returns the new version.
    pub async fn append(&self, token: u64, lines: &[Vec<u8>]) -> Result<u64, StateError> {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        self.write(token, PieceKind::Journal(lines.len()), body).await
    }

    /// Replaces the lockfile with `lockfile` (which holds the whole journal) and empties
    /// the journal, fenced as [`S3::append`]; then removes the pieces no head names.
    pub async fn checkpoint(&self, token: u64, lockfile: &[u8]) -> Result<u64, StateError> {
        let version = self.write(token, PieceKind::Lockfile, lockfile.to_vec()).await?;
        self.collect().await;
        Ok(version)
    }

    /// The least time between two batches of a recorder: none while the head names few
    /// pieces (a write then costs what PostgreSQL's does, and a store gone away is known
    /// at once), a tenth of a second once it names many (each write rewrites the head:
    /// without a pause, batches of a few records each let the recorder fall behind).
    pub fn batch_interval(&self) -> Duration {
        let pieces = self.head.try_lock().map_or(0, |head| head.as_ref().map_or(0, |h| h.manifest.journal.len()));
        match pieces < SHORT_JOURNAL {
            true => Duration::ZERO,
            false => Duration::from_millis(100),
        }
    }

    /// Whether this writer's journal has grown to many pieces.
    pub fn fold_due(&self) -> bool {
        self.head.try_lock().is_ok_and(|head| head.as_ref().is_some_and(|h| h.manifest.journal.len() >= MAX_PIECES))
    }

    /// Writes `bytes` as a new piece of `kind` and then the head that names it, on
    /// condition. After a head write that got no answer, the head is read first: if that
    /// write happened and was of these very bytes (the recorder trying its batch again),
    /// it is not written twice.
    async fn write(&self, token: u64, kind: PieceKind, bytes: Vec<u8>) -> Result<u64, StateError> {
        let digest = Digest::of_bytes(&bytes).to_string();
        let mut slot = self.head.lock().await;
        let Some(head) = slot.as_mut().filter(|h| h.manifest.token == token) else { return Err(self.lapsed_error()) };
        if let Some(pending) = head.pending.take() {
            match self.get_head().await {
                Ok(Some((etag, manifest))) if manifest == pending => {
                    head.etag = etag;
                    head.manifest = manifest;
                    if newest(&head.manifest, kind).is_some_and(|piece| piece.sha256 == digest) {
                        return Ok(head.manifest.version);
                    }
                }
                Ok(Some((etag, _))) if etag == head.etag => {}
                Ok(_) => {
                    *slot = None;
                    return Err(self.lapsed_error());
                }
                Err(e) => {
                    head.pending = Some(pending);
                    return Err(e);
                }
            }
        }
        let mut next = head.manifest.clone();
        next.version += 1;
        let name = format!("{:020}-{:016x}", next.version, rand::random::<u64>());
        let piece = |key: String, records| Piece { key, sha256: digest.clone(), size: bytes.len() as u64, records };
        let key = match kind {
            PieceKind::Journal(records) => {
                next.journal.push(piece(format!("journal/{name}.jsonl"), records));
                format!("journal/{name}.jsonl")
            }
            PieceKind::Lockfile => {
                next.lockfile = Some(piece(format!("lockfile/{name}.json"), 0));
                next.journal.clear();
                format!("lockfile/{name}.json")
            }
        };
        self.record
            .put_opts(&self.path(&key), PutPayload::from(bytes), PutOptions::default())
            .await
            .map_err(|e| self.failed(&e))?;
        match self.put_head(&self.record, &next, Some(&head.etag)).await {
            Ok(etag) => {
                head.etag = etag;
                head.manifest = next;
                Ok(head.manifest.version)
            }
            Err(Put::Conflict) => {
                *slot = None;
                Err(self.lapsed_error())
            }
            Err(Put::Failed(e)) => {
                head.pending = Some(next);
                Err(e)
            }
        }
    }

    /// Makes the record ours under `token`: rewrites its head with our token, on condition
    /// (a lapsed writer's last write may slip in between: read again and retry). From
    /// then on, no earlier writer's conditional write of the head can succeed.
    async fn claim(&self, token: u64) -> Result<(), StateError> {
        for _ in 0..16 {
            let (etag, mut manifest) = match self.get_head().await? {
                Some((etag, manifest)) => (Some(etag), manifest),
                None => (None, Manifest::empty()),
            };
            if manifest.token > token {
                return Err(self.lapsed_error());
            }
            // The version stays: it counts changes of what the record holds, which readers
            // (a `watch` leader between its cycles) compare; a claim changes only its owner.
            manifest.token = token;
            match self.put_head(&self.store, &manifest, etag.as_deref()).await {
                Ok(etag) => {
                    *self.head.lock().await = Some(Head { etag, manifest, pending: None });
                    return Ok(());
                }
                Err(Put::Conflict) => continue,
                Err(Put::Failed(e)) => return Err(e),
            }
        }
        Err(self.unreachable("the record kept changing while the lease was taken".into()))
    }

    /// Removes the pieces the head no longer names (folded journals, old lockfiles, and
    /// what writers cut short left): only the writer holding the lease names pieces, so
    /// what it does not name is nobody's. Best effort: a failure leaves garbage, no harm.
    async fn collect(&self) {
        let named: Vec<String> = match &*self.head.lock().await {
            Some(head) => head.manifest.journal.iter().chain(&head.manifest.lockfile).map(|p| p.key.clone()).collect(),
            None => return,
        };
        for dir in ["journal", "lockfile"] {
            let prefix = self.path(dir);
            let listed: Vec<Path> =
                match self.store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await {
                    Ok(listed) => listed,
                    Err(e) => {
                        tracing::debug!(error = %message(&e), "cannot list old pieces of the record");
                        return;
                    }
                };
            let unnamed = listed.into_iter().filter(|path| {
                let relative = path
                    .prefix_match(&self.base)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"));
                relative.is_some_and(|r| !named.contains(&r))
            });
            let removed: Vec<Path> = unnamed.collect();
            for path in removed {
                if let Err(e) = self.store.delete(&path).await {
                    tracing::debug!(error = %message(&e), "cannot remove an old piece of the record");
                }
            }
        }
        self.pieces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|key, _| named.contains(key));
    }

    /// The record's pieces, fetched (or remembered) and verified, as lockfile and journal lines.
    async fn assemble(&self, manifest: &Manifest) -> Result<Result<Stored, StateError>, Gone> {
        let pieces: Vec<&Piece> = manifest.lockfile.iter().chain(&manifest.journal).collect();
        let fetched: Vec<Result<bytes::Bytes, Fetch>> =
            futures_util::stream::iter(pieces.iter().map(|piece| self.piece(piece))).buffered(FETCHES).collect().await;
        let mut bytes = Vec::with_capacity(fetched.len());
        for result in fetched {
            match result {
                Ok(piece) => bytes.push(piece),
                Err(Fetch::Gone) => return Err(Gone),
                Err(Fetch::Failed(e)) => return Ok(Err(e)),
            }
        }
        let mut stored = Stored { version: manifest.version, ..Stored::default() };
        let mut bytes = bytes.into_iter();
        if manifest.lockfile.is_some() {
            stored.lockfile = bytes.next().map(|b| b.to_vec());
        }
        let mut seq = 0;
        for piece in bytes {
            for line in piece.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                seq += 1;
                stored.journal.push((seq, line.to_vec()));
            }
        }
        Ok(Ok(stored))
    }

    /// One piece, verified by its size and digest.
    async fn piece(&self, piece: &Piece) -> Result<bytes::Bytes, Fetch> {
        if let Some(bytes) = self.pieces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&piece.key) {
            return Ok(bytes.clone());
        }
        let path = self.path(&piece.key);
        let bytes = match self.store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|e| Fetch::Failed(self.failed(&e)))?,
            Err(object_store::Error::NotFound { .. }) => return Err(Fetch::Gone),
            Err(e) => return Err(Fetch::Failed(self.failed(&e))),
        };
        let digest = Digest::of_bytes(&bytes);
        if bytes.len() as u64 != piece.size || digest.as_str() != piece.sha256 {
            return Err(Fetch::Failed(self.damaged(&format!(
                "its piece {} is not what its head says ({} bytes, {digest}; the head names {} bytes, {})",
                crate::escape::text(&piece.key),
                bytes.len(),
                piece.size,
                crate::escape::text(&piece.sha256),
            ))));
        }
        self.pieces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(piece.key.clone(), bytes.clone());
        Ok(bytes)
    }

    /// The head and its ETag; `None` when the record was never written.
    async fn get_head(&self) -> Result<Option<(String, Manifest)>, StateError> {
        let Some((etag, bytes, _)) = self.get(&self.path("head.json")).await? else { return Ok(None) };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            self.damaged(&format!(
                "its head.json is not a record's head ({e}): restore it from the bucket's object versions, or \
                 remove {} and `grattr state push` a lockfile to start the record anew",
                crate::escape::text(self.path("head.json").as_ref())
            ))
        })?;
        if manifest.format > FORMAT {
            return Err(StateError::Schema { store: self.label(), found: manifest.format, supported: FORMAT });
        }
        for piece in manifest.journal.iter().chain(&manifest.lockfile) {
            let shape = piece.key.starts_with("journal/") || piece.key.starts_with("lockfile/");
            if !shape || piece.key.contains("..") || piece.key.contains("//") {
                return Err(
                    self.damaged(&format!("its head names a piece outside it: {}", crate::escape::text(&piece.key)))
                );
            }
        }
        Ok(Some((etag, manifest)))
    }

    /// Writes the head on condition: replacing `etag`, or creating it when `None`. A
    /// condition that fails after an unclear first try is checked: the write may have been ours.
    async fn put_head(&self, store: &AmazonS3, manifest: &Manifest, etag: Option<&str>) -> Result<String, Put> {
        let body = serde_json::to_vec(manifest).map_err(|e| Put::Failed(self.unreachable(e.to_string())))?;
        match self.put_on_condition(store, &self.path("head.json"), body, etag).await {
            Err(Put::Conflict) => match self.get_head().await {
                Ok(Some((etag, stored))) if stored == *manifest => Ok(etag),
                Ok(_) => Err(Put::Conflict),
                Err(e) => Err(Put::Failed(e)),
            },
            other => other,
        }
    }

    /// A lease's object, its ETag and when the service last wrote it.
    async fn get_lease(&self, name: LeaseName) -> Result<Option<(String, LeaseObject, SystemTime)>, StateError> {
        let Some((etag, bytes, modified)) = self.get(&self.lease_path(name)).await? else { return Ok(None) };
        let object: LeaseObject = serde_json::from_slice(&bytes).map_err(|e| {
            self.damaged(&format!(
                "its {} lease is not a lease ({e}): `grattr state unlock --force` replaces it",
                name.as_str(),
            ))
        })?;
        if object.format > FORMAT {
            return Err(StateError::Schema { store: self.label(), found: object.format, supported: FORMAT });
        }
        Ok(Some((etag, object, modified)))
    }

    /// Writes a lease on condition; after an unclear answer, a failed condition is checked
    /// by the taker's id and the renewal count: the write may have been ours.
    async fn put_lease(&self, name: LeaseName, object: &LeaseObject, etag: Option<&str>) -> Result<String, Put> {
        let body = serde_json::to_vec(object).map_err(|e| Put::Failed(self.unreachable(e.to_string())))?;
        match self.put_on_condition(&self.store, &self.lease_path(name), body, etag).await {
            Err(Put::Conflict) => match self.get_lease(name).await {
                Ok(Some((etag, stored, _))) if stored == *object => Ok(etag),
                Ok(_) => Err(Put::Conflict),
                Err(e) => Err(Put::Failed(e)),
            },
            other => other,
        }
    }

    /// A PUT with `If-Match: etag`, or `If-None-Match: *` when `etag` is `None`.
    async fn put_on_condition(
        &self,
        store: &AmazonS3,
        path: &Path,
        body: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<String, Put> {
        let mode = match etag {
            Some(etag) => PutMode::Update(UpdateVersion { e_tag: Some(etag.to_string()), version: None }),
            None => PutMode::Create,
        };
        let options = PutOptions { mode, ..PutOptions::default() };
        match store.put_opts(path, PutPayload::from(body), options).await {
            Ok(result) => result
                .e_tag
                .ok_or_else(|| Put::Failed(self.refused("it answered a conditional write without an ETag".into()))),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Err(Put::Conflict)
            }
            Err(e) => Err(Put::Failed(self.failed(&e))),
        }
    }

    /// An object's ETag, bytes and last-modified time; `None` when it does not exist.
    async fn get(&self, path: &Path) -> Result<Option<(String, bytes::Bytes, SystemTime)>, StateError> {
        let result = match self.store.get_opts(path, GetOptions::default()).await {
            Ok(result) => result,
            // A bucket that does not exist is not an empty record.
            Err(e @ object_store::Error::NotFound { .. }) if message(&e).contains("NoSuchBucket") => {
                return Err(self.unreachable(format!("the bucket {} does not exist there", self.bucket)));
            }
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(&e)),
        };
        let etag =
            result.meta.e_tag.clone().ok_or_else(|| self.refused("it answered a read without an ETag".into()))?;
        let modified = SystemTime::from(result.meta.last_modified);
        let bytes = result.bytes().await.map_err(|e| self.failed(&e))?;
        Ok(Some((etag, bytes, modified)))
    }

    /// Whether a lease last written at `modified` (by the service's clock) has lapsed:
    /// the service's clock, learnt by writing an object and reading its time back, says
    /// its term and a second have passed (the times are whole seconds).
    async fn lapsed(&self, modified: SystemTime, ttl_ms: u64) -> Result<bool, StateError> {
        let term = Duration::from_millis(ttl_ms) + Duration::from_secs(1);
        // Far from its end by this machine's clock: not asked of the service. This clock
        // only ever delays a takeover (when it is behind); the service's decides it.
        if SystemTime::now() + CLOCK_SKEW < modified + term {
            return Ok(false);
        }
        let clock = self.path("clock");
        self.store
            .put_opts(&clock, PutPayload::from_static(b"grattr\n"), PutOptions::default())
            .await
            .map_err(|e| self.failed(&e))?;
        let now = self.store.head(&clock).await.map_err(|e| self.failed(&e))?.last_modified;
        Ok(SystemTime::from(now).duration_since(modified).is_ok_and(|passed| passed >= term))
    }

    /// Proves that the service honours both conditions before any lease relies on them:
    /// a second create of one object must fail, and so must a replace with a wrong ETag,
    /// of an object that exists and of one that does not. A plain write first tells a
    /// service that cannot be used at all (credentials, network) from one that refuses
    /// the conditions.
    async fn probe(&self) -> Result<(), StateError> {
        let name = format!("probe/{:016x}", rand::random::<u64>());
        let (plain, path, absent) =
            (self.path(&format!("{name}-plain")), self.path(&name), self.path(&format!("{name}-absent")));
        let wrong = Some("\"00000000000000000000000000000000\"");
        let outcome = async {
            self.store
                .put_opts(&plain, PutPayload::from_static(b"0"), PutOptions::default())
                .await
                .map_err(|e| self.failed(&e))?;
            let checks = [
                (&path, None, true, "a create of a new object with `If-None-Match: *`"),
                (&path, None, false, "a second create of one object with `If-None-Match: *`"),
                (&path, wrong, false, "a replace with `If-Match` of a wrong ETag"),
                (&absent, wrong, false, "a replace with `If-Match` of an object that does not exist"),
            ];
            for (path, etag, succeeds, what) in checks {
                match (self.put_on_condition(&self.store, path, b"1".to_vec(), etag).await, succeeds) {
                    (Ok(_), true) | (Err(Put::Conflict), false) => {}
                    (Ok(_), false) => return Err(self.refused(format!("{what} succeeded: it ignores the condition"))),
                    (Err(Put::Conflict), true) => return Err(self.refused(format!("{what} failed"))),
                    (Err(Put::Failed(e)), _) => {
                        return Err(self.refused(format!("{what} was answered: {}", cause(&e))));
                    }
                }
            }
            Ok(())
        }
        .await;
        for path in [&plain, &path, &absent] {
            let _ = self.store.delete(path).await;
        }
        outcome
    }

    fn path(&self, relative: &str) -> Path {
        Path::from_iter(self.base.parts().chain(relative.split('/').map(|p| PathPart::from(p.to_string()))))
    }

    fn lease_path(&self, name: LeaseName) -> Path {
        self.path(&format!("lease/{}.json", name.as_str()))
    }

    fn leases_held(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseName, Held>> {
        self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lapsed_error(&self) -> StateError {
        StateError::Lapsed { store: self.label() }
    }

    fn unreachable(&self, message: String) -> StateError {
        StateError::Unreachable { store: self.label(), message }
    }

    /// The service is unfit to keep a shared record.
    fn refused(&self, what: String) -> StateError {
        self.unreachable(format!(
            "the service at {} does not honour conditional writes as grattr needs ({what}); grattr keeps no \
             shared record there (see the README's \"Shared state\" for the services that do)",
            crate::escape::text(&self.endpoint)
        ))
    }

    /// The record read is not one grattr wrote, or was changed by another tool.
    fn damaged(&self, what: &str) -> StateError {
        self.unreachable(format!("the record is damaged: {what}; nothing was changed"))
    }

    fn failed(&self, error: &object_store::Error) -> StateError {
        let text = message(error);
        let refused = ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"];
        let hint = match error {
            _ if refused.iter().any(|code| text.contains(code))
                || matches!(error, object_store::Error::Unauthenticated { .. }) =>
            {
                " (the credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            }
            object_store::Error::PermissionDenied { .. } => {
                " (access denied: the credentials may not use this bucket or prefix)"
            }
            _ if text.contains("169.254.169.254") => {
                " (no credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of \
                 ~/.aws/credentials with AWS_PROFILE; only on AWS do instances' and containers' roles give them)"
            }
            _ => "",
        };
        self.unreachable(format!("{text}{hint}"))
    }
}

/// What a piece holds.
#[derive(Debug, Clone, Copy)]
enum PieceKind {
    /// Journal records, this many.
    Journal(usize),
    /// The lockfile, which folds the journal.
    Lockfile,
}

/// The newest piece of `kind` a head names.
fn newest(manifest: &Manifest, kind: PieceKind) -> Option<&Piece> {
    match kind {
        PieceKind::Journal(_) => manifest.journal.last(),
        PieceKind::Lockfile => manifest.lockfile.as_ref(),
    }
}

/// A piece a reader wanted is gone: a writer folded the journal since the head was read.
struct Gone;

/// Why a piece could not be had.
enum Fetch {
    Gone,
    Failed(StateError),
}

/// What a store's error says, without the store's name around it.
fn cause(error: &StateError) -> String {
    match error {
        StateError::Unreachable { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Who holds a lease and until when, if anyone does.
fn info(object: &LeaseObject, modified: SystemTime) -> Option<LeaseInfo> {
    let holder = object.holder.clone()?;
    Some(LeaseInfo { holder, token: object.token, expires: modified + Duration::from_millis(object.ttl_ms) })
}

/// An error of the store, as one line without control characters; an S3 error
/// document is cut to its code and message (its request ids say nothing to a reader).
fn message(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(std::error::Error::source);
    }
    if let (Some(start), Some(code), Some(said)) =
        (text.find("<?xml"), between(&text, "<Code>", "</Code>"), between(&text, "<Message>", "</Message>"))
    {
        text = format!("{}{code}: {said}", &text[..start]);
    }
    crate::escape::text(&text.replace(['\n', '\r'], " ")).into_owned()
}

/// The text between `open` and `close` in `text`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// `endpoint` with the bucket in its host name.
fn virtual_host(endpoint: &str, bucket: &str) -> Result<String, String> {
    let mut url = reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint: {e}"))?;
    let host = url.host_str().ok_or("the endpoint has no host")?.to_string();
    if host.starts_with(&format!("{bucket}.")) {
        return Ok(endpoint.to_string());
    }
    url.set_host(Some(&format!("{bucket}.{host}"))).map_err(|e| format!("endpoint: {e}"))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_named_in_the_host_goes_before_the_endpoints_host() {
        assert_eq!(
            virtual_host("https://cos.ap-guangzhou.myqcloud.com", "state-1250000000").unwrap(),
            "https://state-1250000000.cos.ap-guangzhou.myqcloud.com"
        );
        assert_eq!(virtual_host("https://b.example.com", "b").unwrap(), "https://b.example.com");
    }

    #[test]
    fn a_lease_object_names_its_holder_until_its_term_ends() {
        let holder = Holder { pid: 1, host: "h".into(), since: "2026-01-01T00:00:00Z".into(), command: "apply".into() };
        let object = LeaseObject { format: 1, token: 3, holder: Some(holder), ttl_ms: 15_000, id: 9, renewal: 2 };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let held = info(&object, at).unwrap();
        assert_eq!((held.token, held.expires), (3, at + Duration::from_secs(15)));
        assert_eq!(info(&LeaseObject { holder: None, ..object }, at), None);
    }
}

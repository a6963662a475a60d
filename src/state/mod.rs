//! Where the record lives: the interface every writer and reader of the record goes
//! through, and its stores. `local` keeps it in files beside the repository (the
//! lockfile, its journal and its lock: the default); [`postgres`] keeps it in a
//! PostgreSQL database and [`s3`] in an S3-compatible bucket, so that CI runners and
//! several `watch` replicas share one record and one lease. Every store gives the same promises: one writer at a time,
//! by a lease whose fencing token every record write presents; each applied group
//! durable before it is reported; what is read verified as a lockfile is.

mod leadership;
mod lease;
pub mod postgres;
mod recorder;
pub mod s3;
mod shared;
mod writer;

pub use leadership::Leadership;
pub use lease::Validity;
use lease::{RUNTIME, Shared};
pub use recorder::Recorder;
use writer::Hold;
pub use writer::Lease;

use crate::lockfile::{self as files, Holder, Lockfile};
use postgres::Postgres;
use s3::S3;
use serde::{Deserialize, Serialize};
use shared::Backend;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A shared store's journal is folded into its lockfile once it holds this many
/// records (a local journal is folded at the end of every run): folding rewrites
/// the whole record, which at 100,000 groups is tens of megabytes.
const FOLD_RECORDS: usize = 10_000;

/// Where a record lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// Files: the lockfile, its journal and its lock beside it.
    Local {
        /// The lockfile.
        lockfile: PathBuf,
        /// The repository's lockfile, which a state directory never written starts from.
        seed: Option<PathBuf>,
    },
    /// A PostgreSQL database.
    Postgres(postgres::Config),
    /// An S3-compatible bucket.
    S3(s3::Config),
}

impl Location {
    /// The store a state URL names: `postgres://` or `postgresql://` (libpq's form), or `s3://BUCKET/PREFIX`.
    pub fn parse(url: &str) -> Result<Location, StateError> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Location::Postgres(postgres::Config::parse(url)?)),
            Some("s3") => Ok(Location::S3(s3::Config::parse(url)?)),
            Some(other) => Err(StateError::Url {
                url: format!("{}://…", crate::escape::text(other)),
                message: "grattr keeps its record in local files (a path, or --state-dir DIR), in PostgreSQL \
                          (postgres://USER@HOST:PORT/DATABASE) or in an S3-compatible bucket (s3://BUCKET/PREFIX)"
                    .into(),
            }),
            None => Err(StateError::Url {
                url: crate::escape::text(url).into_owned(),
                message: "not a URL: a path names local files (--state-dir DIR)".into(),
            }),
        }
    }
}

/// The record of one app and environment, where it lives.
#[derive(Debug, Clone)]
pub struct Store {
    key: Key,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Local { lockfile: PathBuf, seed: Option<PathBuf> },
    Shared(Arc<Backend>),
}

/// What `grattr state show` says of a record.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// Where it lives, for people.
    pub store: String,
    /// Its version (a shared store's; local files have none).
    pub version: Option<u64>,
    /// Groups it records.
    pub groups: usize,
    /// Journal records not folded yet.
    pub journal: usize,
    /// Who holds local files' lock now (it has neither token nor expiry: its holder's
    /// life is its term).
    pub locked_by: Option<Holder>,
    /// A shared store's writer's lease, if one is held or was held and not released.
    pub lease: Option<LeaseInfo>,
    /// Whether that lease is live now.
    pub held: bool,
    /// The leadership of `watch` replicas (a shared store's), if one is held or was held and not released.
    pub leader: Option<LeaseInfo>,
    /// Whether that leadership is live now.
    pub leading: bool,
}

impl Store {
    /// Opens the record of `key` at `location` (a shared store: connects, and creates
    /// its tables on first use).
    pub async fn open(location: &Location, key: Key) -> Result<Store, StateError> {
        let kind = match location {
            Location::Local { lockfile, seed } => Kind::Local { lockfile: lockfile.clone(), seed: seed.clone() },
            Location::Postgres(config) => {
                let _ = RUNTIME.set(tokio::runtime::Handle::current());
                Kind::Shared(Arc::new(Backend::Postgres(Postgres::connect(config, key.clone()).await?)))
            }
            Location::S3(config) => {
                let _ = RUNTIME.set(tokio::runtime::Handle::current());
                Kind::Shared(Arc::new(Backend::S3(S3::open(config, key.clone()).await?)))
            }
        };
        Ok(Store { key, kind })
    }

    /// Where the record lives, for people: a path, or a URL without its password.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Local { lockfile, .. } => crate::escape::path(lockfile),
            Kind::Shared(store) => store.label(),
        }
    }

    /// Where the record lives as a path to show (escaped where it is written): the
    /// lockfile, or the shared store's label.
    pub fn shown_as(&self) -> PathBuf {
        match &self.kind {
            Kind::Local { lockfile, .. } => lockfile.clone(),
            Kind::Shared(store) => PathBuf::from(store.label()),
        }
    }

    /// Whether the record is in local files.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }

    /// The record, to read, verified: a journal a writer is appending to is replayed
    /// on top, not folded. Takes no lease.
    pub async fn read(&self) -> Result<Lockfile, StateError> {
        match &self.kind {
            Kind::Local { lockfile, seed } => {
                let (path, seed, sdkappid) = (lockfile.clone(), seed.clone(), self.key.sdkappid);
                blocking(move || {
                    let lockfile = Lockfile::read_seeded(&path, seed.as_deref(), sdkappid)?;
                    lockfile.check_app(&path, sdkappid)?;
                    Ok(lockfile)
                })
                .await
            }
            Kind::Shared(store) => Ok(self.verify(store, &store.read().await?)?.0),
        }
    }

    /// The record a shared store read, verified as a lockfile and its journal are:
    /// digests, app. Returns it with its journal's records applied, and how many there were.
    fn verify(&self, store: &Backend, stored: &Stored) -> Result<(Lockfile, usize), StateError> {
        let label = PathBuf::from(store.label());
        let sdkappid = self.key.sdkappid;
        let mut lockfile = match &stored.lockfile {
            Some(bytes) => Lockfile::parse(&label, bytes)?,
            None => Lockfile::default(),
        };
        lockfile.check_app(&label, sdkappid)?;
        let mut text = Vec::new();
        for (_, line) in &stored.journal {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        let records = files::replay_text(label, &text, sdkappid)?;
        let count = records.len();
        lockfile.apply_records(records);
        Ok((lockfile, count))
    }

    /// What `grattr state show` says: the record's size and version, and its lease.
    pub async fn show(&self) -> Result<Shown, StateError> {
        match &self.kind {
            Kind::Local { lockfile, .. } => {
                let journal = {
                    let (path, sdkappid) = (lockfile.clone(), self.key.sdkappid);
                    blocking(move || Ok(files::replay(&path, sdkappid)?.len())).await?
                };
                let record = self.read().await?;
                Ok(Shown {
                    store: self.label(),
                    version: None,
                    groups: record.groups.len(),
                    journal,
                    locked_by: files::LockGuard::holder(lockfile),
                    lease: None,
                    held: false,
                    leader: None,
                    leading: false,
                })
            }
            Kind::Shared(store) => {
                let stored = store.read().await?;
                let (record, _) = self.verify(store, &stored)?;
                let lease = store.lease(LeaseName::Writer).await?;
                let leader = store.lease(LeaseName::Leader).await?;
                let live = |lease: &Option<LeaseInfo>| lease.as_ref().is_some_and(|l| l.expires > SystemTime::now());
                Ok(Shown {
                    store: self.label(),
                    version: Some(stored.version),
                    groups: record.groups.len(),
                    journal: stored.journal.len(),
                    locked_by: None,
                    held: live(&lease),
                    lease,
                    leading: live(&leader),
                    leader,
                })
            }
        }
    }

    /// Takes the writer's lease for `command`, waiting up to `wait` for the holder.
    pub async fn lease(&self, command: &str, wait: Duration, ttl: Duration) -> Result<Lease, StateError> {
        let deadline = Instant::now() + wait;
        loop {
            match self.take_lease(command, wait, ttl).await? {
                Ok(lease) => return Ok(lease),
                Err(StateError::Held { store, lease, .. }) if Instant::now() >= deadline => {
                    return Err(StateError::Held { store, lease, waited: wait });
                }
                Err(other) if Instant::now() >= deadline => return Err(other),
                Err(_) => tokio::time::sleep(poll(ttl).min(deadline.saturating_duration_since(Instant::now()))).await,
            }
        }
    }

    /// Takes the writer's lease for `command` if it is free: `Ok(Err(..))` names who holds it.
    pub async fn try_lease(&self, command: &str, ttl: Duration) -> Result<Result<Lease, StateError>, StateError> {
        self.take_lease(command, Duration::ZERO, ttl).await
    }

    /// Takes the writer's lease: local files' lock waits up to `wait` itself (the
    /// operating system says at once when it is free); a shared store's is asked once.
    async fn take_lease(
        &self,
        command: &str,
        wait: Duration,
        ttl: Duration,
    ) -> Result<Result<Lease, StateError>, StateError> {
        let hold = match &self.kind {
            Kind::Local { lockfile, seed } => {
                let (path, seed, command) = (lockfile.clone(), seed.clone(), command.to_string());
                let taken = blocking(move || Ok(files::lock(&path, seed.as_deref(), &command, wait))).await?;
                match taken {
                    Ok(guard) => Hold::Local(guard),
                    Err(e @ files::LockError::Held { .. }) => return Ok(Err(StateError::Lock(e))),
                    Err(e) => return Err(StateError::Lock(e)),
                }
            }
            Kind::Shared(store) => match Shared::take(store, LeaseName::Writer, &Holder::me(command), ttl).await? {
                Ok(shared) => Hold::Shared(shared),
                Err(lease) => {
                    return Ok(Err(StateError::Held {
                        store: self.label(),
                        lease: Box::new(lease),
                        waited: Duration::ZERO,
                    }));
                }
            },
        };
        Ok(Ok(Lease { store: self.clone(), hold, unfolded: 0 }))
    }

    /// Clears the lease `name` of a holder that is gone (`state unlock --force`) and
    /// says who held it. Local files need none: the operating system releases their
    /// lock when its holder dies.
    pub async fn unlock(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        match &self.kind {
            Kind::Local { .. } => Ok(None),
            Kind::Shared(store) => store.break_lease(name).await,
        }
    }
}

/// How often a writer waiting for a lease of `ttl` (or a standby `watch`) asks for it again.
pub fn poll(ttl: Duration) -> Duration {
    (ttl / 5).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StateError::Unreachable {
        store: "local files".into(),
        message: format!("the reading task failed: {e}"),
    })?
}

/// Waits until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Which record of a shared store: one per app and environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The app.
    pub sdkappid: u64,
    /// The environment's name; empty when `grattr.yaml` defines no environments.
    pub environment: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.environment.is_empty() {
            true => write!(f, "sdkappid {}", self.sdkappid),
            false => write!(f, "sdkappid {}, environment {}", self.sdkappid, crate::escape::text(&self.environment)),
        }
    }
}

/// Which of a record's two leases: the writer's (whoever records: apply, import,
/// a watch cycle that applies) or the leader's (which `watch` replica reconciles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseName {
    /// Held by whoever records, while it records.
    Writer,
    /// Held by the `watch` replica that leads, while it runs.
    Leader,
}

impl LeaseName {
    /// Its name in a store.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseName::Writer => "writer",
            LeaseName::Leader => "leader",
        }
    }
}

/// A lease as a shared store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Who holds (or last held) it.
    pub holder: Holder,
    /// The fencing token: grows by one with every lease taken on the record.
    pub token: u64,
    /// When it expires unless renewed (by the store's clock).
    #[serde(with = "humantime_serde_compat")]
    pub expires: SystemTime,
}

/// What taking a lease did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Taken, with this fencing token.
    Taken(u64),
    /// Another writer holds it.
    Held(LeaseInfo),
}

/// A shared store's record as read in one snapshot: the lockfile's bytes, exactly as
/// `grattr.lock` would hold them, and the journal lines written since, in order,
/// each exactly as a line of the local journal (without its newline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Grows with every write of the record.
    pub version: u64,
    /// The lockfile; `None` while the record was never checkpointed.
    pub lockfile: Option<Vec<u8>>,
    /// The journal lines: (sequence number, line).
    pub journal: Vec<(i64, Vec<u8>)>,
}

/// Why the record cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another writer holds the lease.
    #[error(
        "the record at {store} is held by {holder} until {until}: one grattr writes a record at a time ({hint}; if that process is gone, `grattr state unlock --force` clears its lease)",
        holder = .lease.holder, until = humantime::format_rfc3339_seconds(.lease.expires), hint = wait_hint(*.waited)
    )]
    Held {
        /// The store and record, for people (no password).
        store: String,
        /// The lease held.
        lease: Box<LeaseInfo>,
        /// How long this writer waited for it (`--lock-timeout`).
        waited: Duration,
    },
    /// Our lease lapsed (not renewed in time) or was taken by another writer:
    /// nothing more is recorded.
    #[error(
        "the lease on the record at {store} lapsed: another writer may hold it now, so this one records nothing more"
    )]
    Lapsed {
        /// The store and record.
        store: String,
    },
    /// The store cannot be reached or answered with an error.
    #[error("the record at {store} cannot be used: {message}")]
    Unreachable {
        /// The store and record.
        store: String,
        /// Why (never a password).
        message: String,
    },
    /// The store's tables were made by a newer grattr.
    #[error("the record at {store} is in schema version {found}, newer than this grattr's {supported}: upgrade grattr")]
    Schema {
        /// The store.
        store: String,
        /// The version found.
        found: u32,
        /// The newest this grattr knows.
        supported: u32,
    },
    /// The record read does not verify, or the local files cannot be read or written.
    #[error(transparent)]
    Lockfile(#[from] crate::lockfile::LockfileError),
    /// The local files' lock is held, or cannot be taken.
    #[error(transparent)]
    Lock(#[from] crate::lockfile::LockError),
    /// Records of applied groups could not be written.
    #[error("{lost} applied group(s) could not be recorded (the next run applies them again): {source}")]
    Unrecorded {
        /// How many.
        lost: usize,
        /// Why.
        source: Box<StateError>,
    },
    /// `state push` onto a record that holds groups.
    #[error("the record at {store} already holds {groups} group(s): nothing was pushed (--force replaces it)")]
    NotEmpty {
        /// The store and record.
        store: String,
        /// How many groups it holds.
        groups: usize,
    },
    /// A state URL that cannot be used.
    #[error("state URL {url}: {message}")]
    Url {
        /// The URL, without any password.
        url: String,
        /// What is wrong with it.
        message: String,
    },
}

/// What a writer refused a held lease is told to do about the wait.
fn wait_hint(waited: Duration) -> String {
    match waited.is_zero() {
        true => "wait for it with --lock-timeout DURATION".into(),
        false => format!("waited {} for it (--lock-timeout)", humantime::format_duration(waited)),
    }
}

/// `SystemTime` as RFC 3339 text in JSON.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub(super) fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_refused_after_waiting_is_told_how_long_it_waited() {
        let holder =
            Holder { pid: 7, host: "ci".into(), since: "2026-12-07T20:00:00Z".into(), command: "apply".into() };
        let lease = LeaseInfo { holder, token: 3, expires: SystemTime::UNIX_EPOCH + Duration::from_secs(60) };
        let held = |waited| StateError::Held { store: "s3://b/p".into(), lease: Box::new(lease.clone()), waited };
        let at_once = held(Duration::ZERO).to_string();
        assert!(at_once.contains("(wait for it with --lock-timeout DURATION;"), "{at_once}");
        let after = held(Duration::from_secs(30)).to_string();
        assert!(after.contains("(waited 30s for it (--lock-timeout);") && !after.contains("wait for it"), "{after}");
    }
}

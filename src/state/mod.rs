//! Where the record lives: the interface every writer and reader of the record goes
//! through, and its stores. `local` keeps it in files beside the repository (the
//! lockfile, its journal and its lock: the default); [`postgres`] keeps it in a
//! PostgreSQL database, so that CI runners and several `watch` replicas share one
//! record and one lease. Every store gives the same promises: one writer at a time,
//! by a lease whose fencing token every record write presents; each applied group
//! durable before it is reported; what is read verified as a lockfile is.

pub mod postgres;

use crate::lockfile::Holder;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

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
        "the record at {store} is held by {holder} until {until}: one grattr writes a record at a time (wait for it with --lock-timeout DURATION; if that process is gone, `grattr state unlock --force` clears its lease)",
        holder = .lease.holder, until = humantime::format_rfc3339_seconds(.lease.expires)
    )]
    Held {
        /// The store and record, for people (no password).
        store: String,
        /// The lease held.
        lease: LeaseInfo,
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
    /// A state URL that cannot be used.
    #[error("state URL {url}: {message}")]
    Url {
        /// The URL, without any password.
        url: String,
        /// What is wrong with it.
        message: String,
    },
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

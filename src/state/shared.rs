//! The stores a record can share between machines, behind one set of operations:
//! what the layer above needs of a shared record (read it, take and keep a lease,
//! append to its journal and fold it, all fenced by the lease's token), whichever
//! service keeps it. Each store keeps its own way of making these safe: PostgreSQL
//! by transactions and the database's clock, S3 by conditional writes.

// `StateError::Held` carries its holder inline; the errors are rare, and a large `Err`
// costs nothing next to a round trip to the service.
#![allow(clippy::result_large_err)]

use super::postgres::Postgres;
use super::s3::S3;
use super::{Acquired, LeaseInfo, LeaseName, StateError, Stored};
use crate::lockfile::Holder;
use std::time::Duration;

/// A shared store of records.
#[derive(Debug)]
pub(super) enum Backend {
    /// A PostgreSQL database.
    Postgres(Postgres),
    /// An S3-compatible bucket.
    S3(S3),
}

/// The same call on whichever store it is.
macro_rules! on {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Postgres($store) => $call,
            Backend::S3($store) => $call,
        }
    };
}

impl Backend {
    /// Where the record lives, for people (never a password or key).
    pub(super) fn label(&self) -> String {
        on!(self, store => store.label())
    }

    /// The record as it stands, in one consistent snapshot.
    pub(super) async fn read(&self) -> Result<Stored, StateError> {
        on!(self, store => store.read().await)
    }

    /// The record's version, which grows with every write.
    pub(super) async fn version(&self) -> Result<u64, StateError> {
        on!(self, store => store.version().await)
    }

    /// The lease `name`, live or lapsed; `None` if never taken or released.
    pub(super) async fn lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        on!(self, store => store.lease(name).await)
    }

    /// Takes the lease `name` for `holder` if it is free, released or lapsed.
    pub(super) async fn acquire(
        &self,
        name: LeaseName,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<Acquired, StateError> {
        on!(self, store => store.acquire(name, holder, ttl).await)
    }

    /// Extends our lease, only if `token` still holds it: otherwise `StateError::Lapsed`.
    pub(super) async fn renew(&self, name: LeaseName, token: u64, ttl: Duration) -> Result<(), StateError> {
        on!(self, store => store.renew(name, token, ttl).await)
    }

    /// Gives our lease up (a no-op when `token` no longer holds it).
    pub(super) async fn release(&self, name: LeaseName, token: u64) -> Result<(), StateError> {
        on!(self, store => store.release(name, token).await)
    }

    /// Clears whatever lease `name` is held and says who held it (`state unlock --force`).
    pub(super) async fn break_lease(&self, name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        on!(self, store => store.break_lease(name).await)
    }

    /// Appends journal lines, fenced by the writer's `token`; returns the new version.
    pub(super) async fn append(&self, token: u64, lines: &[Vec<u8>]) -> Result<u64, StateError> {
        on!(self, store => store.append(token, lines).await)
    }

    /// Replaces the lockfile and drops the journal it holds, fenced by `token`.
    pub(super) async fn checkpoint(&self, token: u64, lockfile: &[u8]) -> Result<u64, StateError> {
        match self {
            Backend::Postgres(store) => store.checkpoint(token, lockfile, i64::MAX).await,
            Backend::S3(store) => store.checkpoint(token, lockfile).await,
        }
    }

    /// The least time between two writes of a recorder's batches: none for PostgreSQL (a
    /// batch costs the same whatever the journal holds); for S3, none while the journal is
    /// short, then a tenth of a second (a batch rewrites the head, which names every piece
    /// written since the last fold).
    pub(super) fn batch_interval(&self) -> Duration {
        match self {
            Backend::Postgres(_) => Duration::ZERO,
            Backend::S3(store) => store.batch_interval(),
        }
    }

    /// Whether a writer that left `records` records unfolded should fold them now:
    /// PostgreSQL's readers replay a long journal in one query; an S3 reader fetches
    /// each piece of it, so a bucket's journal is also folded once it has many pieces.
    pub(super) fn fold_due(&self, records: usize) -> bool {
        records >= super::FOLD_RECORDS
            || match self {
                Backend::Postgres(_) => false,
                Backend::S3(store) => store.fold_due(),
            }
    }
}

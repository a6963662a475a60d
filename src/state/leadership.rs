//! Leading the `watch` replicas of a record: one leads and reconciles, the others
//! stand by. Local files have one lock for both purposes; a shared store has a
//! second lease, so that its leader takes the writer's lease only while it records.

use super::lease::Shared;
use super::{Kind, Lease, LeaseName, StateError, Store, Validity};
use crate::lockfile::{Holder, Lockfile};
use std::sync::Arc;
use std::time::Duration;

impl Store {
    /// Takes the leadership among `watch` replicas for `command` if it is free:
    /// `Ok(Err(..))` names who leads. Local files have one lock for both, so their
    /// leader holds the writer's lease for as long as it leads (returned with it); a
    /// shared store's leader takes the writer's lease only while it records, so that a
    /// CI `apply` can record between its cycles.
    pub async fn try_lead(
        &self,
        command: &str,
        ttl: Duration,
    ) -> Result<Result<(Leadership, Option<Lease>), StateError>, StateError> {
        let leadership = |held, validity| Leadership { store: self.clone(), held, validity, seen: None, journal: 0 };
        match &self.kind {
            Kind::Local { .. } => Ok(self
                .try_lease(command, ttl)
                .await?
                .map(|lease| (leadership(None, Validity::forever()), Some(lease)))),
            Kind::Shared(store) => match Shared::take(store, LeaseName::Leader, &Holder::me(command), ttl).await? {
                Ok(held) => {
                    let validity = held.validity.clone();
                    Ok(Ok((leadership(Some(held), validity), None)))
                }
                Err(lease) => {
                    Ok(Err(StateError::Held { store: self.label(), lease: Box::new(lease), waited: Duration::ZERO }))
                }
            },
        }
    }
}

/// Leading the `watch` replicas of a record: while it is held, this process alone
/// reconciles.
pub struct Leadership {
    store: Store,
    /// The leader's lease (a shared store's).
    held: Option<Shared>,
    validity: Arc<Validity>,
    /// The version of a shared store's record this leader last read or wrote.
    seen: Option<u64>,
    /// Records in that record's journal, not folded into its lockfile.
    journal: usize,
}

impl Leadership {
    /// Resolves when the leadership is lost.
    pub async fn lost(&self) {
        self.validity.lost().await;
    }

    /// The record, read: a shared store's as it stands now (remembering its version).
    pub async fn read(&mut self) -> Result<Lockfile, StateError> {
        let Kind::Shared(store) = &self.store.kind else { return self.store.read().await };
        let stored = store.read().await?;
        self.seen = Some(stored.version);
        self.journal = stored.journal.len();
        Ok(self.store.verify(store, &stored)?.0)
    }

    /// A shared store's record as it stands now if another writer changed it since
    /// this leader last read or wrote it; `None` when it did not (always, for local
    /// files, which no other writer can change while their leader holds their lock).
    pub async fn changed(&mut self) -> Result<Option<Lockfile>, StateError> {
        let Kind::Shared(store) = &self.store.kind else { return Ok(None) };
        if self.seen.is_some() && self.seen == Some(store.version().await?) {
            return Ok(None);
        }
        self.read().await.map(Some)
    }

    /// Takes the writer's lease on a shared store's record for a cycle: `Ok(Err(..))`
    /// names who holds it now.
    pub async fn writer(&self, command: &str, ttl: Duration) -> Result<Result<Lease, StateError>, StateError> {
        if !self.validity.valid() {
            return Err(StateError::Lapsed { store: self.store.label() });
        }
        self.store.try_lease(command, ttl).await
    }

    /// A cycle recorded with `writer` (taken by [`Leadership::writer`]): folds its
    /// journal when long, remembers the record's version, and gives the lease up.
    pub async fn wrote(
        &mut self,
        mut writer: Lease,
        lockfile: &mut Lockfile,
        records: usize,
    ) -> Result<(), StateError> {
        writer.unfolded = self.journal;
        writer.ran(lockfile, records).await?;
        self.journal = writer.unfolded;
        if let Kind::Shared(store) = &self.store.kind {
            // Nobody else records while the writer's lease is held: this is our version.
            self.seen = Some(store.version().await?);
        }
        writer.release().await;
        Ok(())
    }

    /// Gives the leadership up now.
    pub async fn release(self) {
        if let Some(held) = self.held {
            held.release().await;
        }
    }
}

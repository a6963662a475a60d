//! The writer's lease on a record, and what its holder does with it: open the record
//! to write, record a run's successes, fold, checkpoint, give the lease up.

use super::lease::Shared;
use super::shared::Backend;
use super::{Kind, Recorder, StateError, Store, Validity, blocking};
use crate::lockfile::{self as files, LockGuard, Lockfile, Opened};
use std::sync::Arc;

/// How a writer's lease is held: local files' lock, or a shared store's lease.
pub(super) enum Hold {
    Local(#[allow(dead_code, reason = "held for its Drop, which unlocks")] LockGuard),
    Shared(Shared),
}

/// The writer's lease on a record: while it is valid, its holder alone records.
/// Given up when dropped, or by [`Lease::release`].
pub struct Lease {
    pub(super) store: Store,
    pub(super) hold: Hold,
    /// Records in a shared store's journal not folded into its lockfile.
    pub(super) unfolded: usize,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = match &self.hold {
            Hold::Local(_) => None,
            Hold::Shared(shared) => Some(shared.token),
        };
        f.debug_struct("Lease").field("store", &self.store.label()).field("token", &token).finish()
    }
}

impl Lease {
    /// The lease's clock: a local lock never lapses while its process lives.
    fn validity(&self) -> Arc<Validity> {
        match &self.hold {
            Hold::Local(_) => Validity::forever(),
            Hold::Shared(shared) => shared.validity.clone(),
        }
    }

    /// The shared store and the lease held on it, if the record is shared.
    fn shared(&self) -> Option<(&Arc<Backend>, &Shared)> {
        match (&self.store.kind, &self.hold) {
            (Kind::Shared(store), Hold::Shared(shared)) => Some((store, shared)),
            _ => None,
        }
    }

    /// The record, to write from: a state directory never written is seeded from the
    /// repository's lockfile, and a journal an interrupted run left is folded in.
    pub async fn open(&mut self) -> Result<(Lockfile, Opened), StateError> {
        let sdkappid = self.store.key.sdkappid;
        match &self.store.kind {
            Kind::Local { lockfile, seed } => {
                let (path, seed) = (lockfile.clone(), seed.clone());
                blocking(move || {
                    let (lockfile, opened) = files::open(&path, seed.as_deref(), sdkappid)?;
                    lockfile.check_app(&path, sdkappid)?;
                    Ok((lockfile, opened))
                })
                .await
            }
            Kind::Shared(store) => {
                let stored = store.read().await?;
                let (mut lockfile, recovered) = self.store.verify(store, &stored)?;
                self.unfolded = recovered;
                if store.fold_due(self.unfolded) {
                    self.checkpoint(&mut lockfile).await?;
                }
                // A shared store's journal is folded only once long: its records are no
                // interrupted run's, whatever their number.
                Ok((lockfile, Opened::default()))
            }
        }
    }

    /// A recorder of the successes of a run, under this lease.
    pub fn recorder(&self) -> Result<Recorder, StateError> {
        let sdkappid = self.store.key.sdkappid;
        match (&self.store.kind, self.shared()) {
            (_, Some((store, shared))) => {
                Ok(Recorder::shared(store.clone(), shared.token, sdkappid, shared.validity.clone()))
            }
            (Kind::Local { lockfile, .. }, None) => {
                Ok(Recorder::journal(files::JournalWriter::open(lockfile, sdkappid)?, self.validity()))
            }
            (Kind::Shared(store), None) => Err(StateError::Lapsed { store: store.label() }),
        }
    }

    /// After a run recorded `records` into this lease's journal and `lockfile` already
    /// holds them: local files fold the journal into the lockfile; a shared store folds
    /// once its journal is long (its readers replay it meanwhile).
    pub async fn ran(&mut self, lockfile: &mut Lockfile, records: usize) -> Result<(), StateError> {
        match &self.store.kind {
            Kind::Local { .. } => self.checkpoint(lockfile).await,
            Kind::Shared(store) => {
                self.unfolded += records;
                match store.fold_due(self.unfolded) {
                    true => self.checkpoint(lockfile).await,
                    false => Ok(()),
                }
            }
        }
    }

    /// Writes `lockfile` (which holds every record of the journal) as the record and
    /// empties the journal.
    pub async fn checkpoint(&mut self, lockfile: &mut Lockfile) -> Result<(), StateError> {
        let sdkappid = self.store.key.sdkappid;
        lockfile.sdkappid.get_or_insert(sdkappid);
        match (&self.store.kind, self.shared()) {
            (Kind::Local { lockfile: path, .. }, _) => {
                let path = path.clone();
                let mut taken = std::mem::take(lockfile);
                let written = blocking(move || {
                    let written = taken.checkpoint(&path, sdkappid);
                    Ok((taken, written))
                })
                .await?;
                *lockfile = written.0;
                written.1?;
            }
            (_, Some((store, shared))) => {
                if !shared.validity.valid() {
                    return Err(StateError::Lapsed { store: store.label() });
                }
                store.checkpoint(shared.token, &lockfile.to_json()).await?;
            }
            (Kind::Shared(store), None) => return Err(StateError::Lapsed { store: store.label() }),
        }
        self.unfolded = 0;
        Ok(())
    }

    /// Removes the local journal a run that recorded nothing left, when no earlier
    /// run's records wait in it (a shared store's journal has no empty form).
    pub async fn discard_empty_journal(&self) -> Result<(), StateError> {
        match &self.store.kind {
            Kind::Local { lockfile, .. } => {
                let path = lockfile.clone();
                blocking(move || Ok(files::remove_journal(&path)?)).await
            }
            Kind::Shared(_) => Ok(()),
        }
    }

    /// Replaces the record with `lockfile` (`state push`): refused while the record
    /// holds groups, unless `force`.
    pub async fn replace(&mut self, mut lockfile: Lockfile, force: bool) -> Result<usize, StateError> {
        let (record, _) = self.open().await?;
        if !record.groups.is_empty() && !force {
            return Err(StateError::NotEmpty { store: self.store.label(), groups: record.groups.len() });
        }
        self.checkpoint(&mut lockfile).await?;
        Ok(lockfile.groups.len())
    }

    /// Gives the lease up now (a shared store's other writers need not wait for it to expire).
    pub async fn release(self) {
        if let Hold::Shared(shared) = self.hold {
            shared.release().await;
        }
    }
}

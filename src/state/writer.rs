//! The writer's lease on a record, and what its holder does with it: open the record
//! to write, record a run's successes, fold, checkpoint, give the lease up.

use super::postgres::Postgres;
use super::{FOLD_RECORDS, Kind, LeaseName, Recorder, StateError, Store, Validity, blocking};
use crate::lockfile::{self as files, LockGuard, Lockfile, Opened};
use std::sync::Arc;

pub(super) enum Held {
    Local { _guard: LockGuard },
    Postgres { token: u64, renewer: tokio::task::JoinHandle<()> },
}

/// The writer's lease on a record: while it is valid, its holder alone records.
/// Released when dropped (a shared store's lease then expires unrenewed) or by
/// [`Lease::release`], at once.
pub struct Lease {
    pub(super) store: Store,
    pub(super) held: Option<Held>,
    pub(super) validity: Arc<Validity>,
    /// Records in a shared store's journal not folded into its lockfile.
    pub(super) unfolded: usize,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("store", &self.store.label()).field("token", &self.token()).finish()
    }
}

impl Lease {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fencing token (0 for local files, whose lock needs none).
    pub fn token(&self) -> u64 {
        match &self.held {
            Some(Held::Postgres { token, .. }) => *token,
            _ => 0,
        }
    }

    /// Whether the holder may still act on the record.
    pub fn valid(&self) -> bool {
        self.validity.valid()
    }

    /// The lease's clock, to stop work when it is lost.
    pub fn validity(&self) -> Arc<Validity> {
        self.validity.clone()
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
            Kind::Postgres(store) => {
                let stored = store.read().await?;
                let (mut lockfile, recovered) = self.store.verify(store, &stored)?;
                self.unfolded = recovered;
                if self.unfolded >= FOLD_RECORDS {
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
        match (&self.store.kind, &self.held) {
            (Kind::Postgres(store), Some(Held::Postgres { token, .. })) => {
                Ok(Recorder::shared(store.clone(), *token, sdkappid, self.validity.clone()))
            }
            (Kind::Local { lockfile, .. }, _) => {
                Ok(Recorder::journal(files::JournalWriter::open(lockfile, sdkappid)?, self.validity.clone()))
            }
            (Kind::Postgres(store), _) => Err(StateError::Lapsed { store: store.label() }),
        }
    }

    /// After a run recorded `records` into this lease's journal and `lockfile` already
    /// holds them: local files fold the journal into the lockfile; a shared store folds
    /// once its journal is long (its readers replay it meanwhile).
    pub async fn ran(&mut self, lockfile: &mut Lockfile, records: usize) -> Result<(), StateError> {
        match &self.store.kind {
            Kind::Local { .. } => self.checkpoint(lockfile).await,
            Kind::Postgres(_) => {
                self.unfolded += records;
                match self.unfolded >= FOLD_RECORDS {
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
        match (&self.store.kind, &self.held) {
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
            (Kind::Postgres(store), Some(Held::Postgres { token, .. })) => {
                if !self.validity.valid() {
                    return Err(StateError::Lapsed { store: store.label() });
                }
                let (store, token) = (store.clone(), *token);
                let bytes = lockfile.to_json();
                store.checkpoint(token, &bytes, i64::MAX).await?;
            }
            (Kind::Postgres(store), _) => return Err(StateError::Lapsed { store: store.label() }),
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
            Kind::Postgres(_) => Ok(()),
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

    /// Resolves when the lease is lost.
    pub async fn lost(&self) {
        self.validity.lost().await;
    }

    /// Gives the lease up now (a shared store's other writers need not wait for it to expire).
    pub async fn release(mut self) {
        if let Some(Held::Postgres { token, renewer }) = self.held.take() {
            renewer.abort();
            if let Kind::Postgres(store) = &self.store.kind
                && let Err(e) = store.release(LeaseName::Writer, token).await
            {
                tracing::warn!(error = %e, "cannot release the lease; it expires unrenewed");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(Held::Postgres { token, renewer }), Kind::Postgres(store)) = (self.held.take(), &self.store.kind) {
            renewer.abort();
            release_on_drop(store.clone(), LeaseName::Writer, token);
        }
    }
}

/// Gives a shared store's lease up when its holder drops it without [`Lease::release`]
/// (a command that ends early): else the next writer would wait for it to expire.
/// Outside the runtime (a command's end), waits for it; inside, leaves it to a task.
pub(super) fn release_on_drop(store: Arc<Postgres>, name: LeaseName, token: u64) {
    let release = async move {
        if let Err(e) = store.release(name, token).await {
            tracing::warn!(error = %e, "cannot release the lease; it expires unrenewed");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(release);
        }
        Err(_) => {
            if let Some(handle) = RUNTIME.get() {
                handle.block_on(release);
            }
        }
    }
}

/// The runtime a shared store's connection runs on, for releasing its leases outside it.
pub(super) static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

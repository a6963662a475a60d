//! A lease as its holder keeps it: how long it may still act on it, by its own
//! monotonic clock, and the renewal that extends that. The holder's deadline is
//! always earlier than the store's expiry: it counts from the moment a renewal was
//! *sent* (the store counts from when it ran it), less a margin, so that a holder
//! stops calling the API before the store could let another writer in. A process
//! frozen past its deadline finds it passed when it wakes (the monotonic clock runs
//! on while a process is stopped) and acts on nothing more.

use super::shared::Backend;
use super::{Acquired, LeaseInfo, LeaseName, StateError};
use crate::lockfile::Holder;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long before the store's expiry a holder stops acting: a quarter of the lease.
fn margin(ttl: Duration) -> Duration {
    ttl / 4
}

/// Until when the holder of a lease may act on it.
#[derive(Debug)]
pub struct Validity {
    base: Instant,
    /// Nanoseconds after `base`; `u64::MAX` for a lease that never lapses (a local lock,
    /// which the operating system holds for as long as the process lives).
    until: AtomicU64,
    lapsed: CancellationToken,
}

impl Validity {
    /// A lease that lapses only when told to.
    pub fn forever() -> Arc<Validity> {
        Arc::new(Validity { base: Instant::now(), until: AtomicU64::new(u64::MAX), lapsed: CancellationToken::new() })
    }

    /// A lease of `ttl` whose taking was sent at `sent`.
    pub fn taken(sent: Instant, ttl: Duration) -> Arc<Validity> {
        let validity = Validity { base: sent, until: AtomicU64::new(0), lapsed: CancellationToken::new() };
        validity.renewed(sent, ttl);
        Arc::new(validity)
    }

    /// A renewal of `ttl` sent at `sent` succeeded.
    pub fn renewed(&self, sent: Instant, ttl: Duration) {
        let until = sent.saturating_duration_since(self.base) + ttl.saturating_sub(margin(ttl));
        self.until.fetch_max(u64::try_from(until.as_nanos()).unwrap_or(u64::MAX - 1), Ordering::AcqRel);
    }

    /// The deadline, or `None` for a lease that never lapses.
    fn deadline(&self) -> Option<Instant> {
        match self.until.load(Ordering::Acquire) {
            u64::MAX => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }

    /// Whether the holder may still act: call the API, record.
    pub fn valid(&self) -> bool {
        !self.lapsed.is_cancelled() && self.deadline().is_none_or(|at| Instant::now() < at)
    }

    /// The lease is lost: nothing more is done on it.
    pub fn lapse(&self) {
        self.lapsed.cancel();
    }

    /// Resolves when the lease is lost: told so, or its deadline passed unrenewed.
    pub async fn lost(&self) {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                () = self.lapsed.cancelled() => return,
                () = super::sleep_until(deadline) => {
                    if !self.valid() {
                        self.lapse();
                        return;
                    }
                }
            }
        }
    }
}

/// A lease held on a shared store: renewed in the background until it is released,
/// or dropped (a command that ends early), which gives it up too, so that the next
/// holder need not wait for it to expire.
pub(super) struct Shared {
    store: Arc<Backend>,
    name: LeaseName,
    /// The fencing token.
    pub(super) token: u64,
    pub(super) validity: Arc<Validity>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Shared {
    /// Takes lease `name` on `store` for `holder` if it is free; else who holds it.
    pub(super) async fn take(
        store: &Arc<Backend>,
        name: LeaseName,
        holder: &Holder,
        ttl: Duration,
    ) -> Result<Result<Shared, LeaseInfo>, StateError> {
        let sent = Instant::now();
        Ok(match store.acquire(name, holder, ttl).await? {
            Acquired::Taken(token) => {
                let validity = Validity::taken(sent, ttl);
                let renewer = tokio::spawn(renew(store.clone(), name, token, ttl, validity.clone()));
                Ok(Shared { store: store.clone(), name, token, validity, renewer, released: false })
            }
            Acquired::Held(lease) => Err(lease),
        })
    }

    /// Gives the lease up now.
    pub(super) async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        if let Err(e) = self.store.release(self.name, self.token).await {
            tracing::warn!(error = %e, lease = self.name.as_str(), "cannot release the lease; it expires unrenewed");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let (store, name, token) = (self.store.clone(), self.name, self.token);
        let release = async move {
            if let Err(e) = store.release(name, token).await {
                tracing::warn!(error = %e, lease = name.as_str(), "cannot release the lease; it expires unrenewed");
            }
        };
        // Inside the runtime, wait for it where the runtime allows (a command that fails
        // right after would otherwise end before a task ran), else a task gives it up;
        // outside (a command's end), wait for it.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(release));
            }
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
}

/// The runtime a shared store's connection runs on, for giving its leases up outside it.
pub(super) static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// Renews `token`'s lease on `store` every third of `ttl` until it is released
/// (the task aborted) or lost. A renewal that fails for a passing reason is tried
/// again each second; once the deadline passes, the lease is lost.
pub(super) async fn renew(store: Arc<Backend>, name: LeaseName, token: u64, ttl: Duration, validity: Arc<Validity>) {
    let every = ttl / 3;
    let mut wait = every;
    loop {
        tokio::select! {
            () = validity.lapsed.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let sent = Instant::now();
        match tokio::time::timeout(every, store.renew(name, token, ttl)).await {
            Ok(Ok(())) => {
                validity.renewed(sent, ttl);
                wait = every;
            }
            Ok(Err(e @ StateError::Lapsed { .. })) => {
                tracing::error!(error = %e, "lost the lease");
                validity.lapse();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot renew the lease; trying again");
                wait = Duration::from_secs(1).min(every);
            }
            Err(_) => {
                tracing::warn!(store = %store.label(), "renewing the lease timed out; trying again");
                wait = Duration::from_secs(1).min(every);
            }
        }
        if !validity.valid() {
            tracing::error!(store = %store.label(), "the lease could not be renewed in time: acting on nothing more");
            validity.lapse();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_valid_until_a_margin_before_its_expiry() {
        let sent = Instant::now();
        let validity = Validity::taken(sent, Duration::from_secs(8));
        assert!(validity.valid());
        assert_eq!(validity.deadline(), Some(sent + Duration::from_secs(6)));
        // A renewal sent later extends it; an older one never shortens it.
        validity.renewed(sent + Duration::from_secs(2), Duration::from_secs(8));
        validity.renewed(sent + Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(validity.deadline(), Some(sent + Duration::from_secs(8)));
        validity.lapse();
        assert!(!validity.valid());
    }

    #[test]
    fn a_deadline_passed_is_not_valid() {
        let validity = Validity::taken(Instant::now(), Duration::from_millis(4));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!validity.valid());
        assert!(Validity::forever().valid());
    }

    #[tokio::test]
    async fn lost_resolves_at_the_deadline() {
        let validity = Validity::taken(Instant::now(), Duration::from_millis(40));
        tokio::time::timeout(Duration::from_secs(5), validity.lost()).await.unwrap();
        assert!(validity.lapsed.is_cancelled());
    }
}

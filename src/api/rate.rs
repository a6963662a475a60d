//! The client's app-wide pacing: a rate limiter that slows down when the server
//! throttles and recovers gradually.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

/// The app-wide rate, lowered when the server throttles and recovered gradually.
pub(super) struct AdaptiveRate {
    max: u32,
    current: AtomicU32,
    successes: AtomicU32,
    limiter: RwLock<Arc<DefaultDirectRateLimiter>>,
}

pub(super) fn paced(per_second: u32) -> Quota {
    // Burst 1: calls are evenly spaced, so no one-second window sees more than the rate.
    Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN)).allow_burst(NonZeroU32::MIN)
}

impl AdaptiveRate {
    pub(super) fn new(per_second: u32) -> Self {
        AdaptiveRate {
            max: per_second.max(1),
            current: AtomicU32::new(per_second.max(1)),
            successes: AtomicU32::new(0),
            limiter: RwLock::new(Arc::new(RateLimiter::direct(paced(per_second)))),
        }
    }

    pub(super) async fn until_ready(&self) {
        let limiter = self.limiter.read().map_or_else(|e| e.into_inner().clone(), |l| l.clone());
        limiter.until_ready().await;
    }

    fn set(&self, rate: u32) {
        self.current.store(rate, Ordering::Relaxed);
        self.successes.store(0, Ordering::Relaxed);
        let mut limiter = self.limiter.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *limiter = Arc::new(RateLimiter::direct(paced(rate)));
    }

    /// Halves the rate.
    pub(super) fn throttled(&self) {
        let current = self.current.load(Ordering::Relaxed);
        let lowered = (current / 2).max(1);
        if lowered < current {
            tracing::warn!(from = current, to = lowered, "the server is throttling; lowering the call rate");
            self.set(lowered);
        }
    }

    /// After a second's worth of successes at the current rate, raises it by a tenth of the maximum.
    pub(super) fn succeeded(&self) {
        let current = self.current.load(Ordering::Relaxed);
        if current >= self.max {
            return;
        }
        if self.successes.fetch_add(1, Ordering::Relaxed) + 1 >= current {
            let raised = (current + (self.max / 10).max(1)).min(self.max);
            tracing::debug!(from = current, to = raised, "raising the call rate");
            self.set(raised);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_halves_when_throttled_and_recovers_gradually() {
        let rate = AdaptiveRate::new(100);
        rate.throttled();
        assert_eq!(rate.current.load(Ordering::Relaxed), 50);
        rate.throttled();
        assert_eq!(rate.current.load(Ordering::Relaxed), 25);
        for _ in 0..25 {
            rate.succeeded();
        }
        assert_eq!(rate.current.load(Ordering::Relaxed), 35);
        for _ in 0..1000 {
            rate.succeeded();
        }
        assert_eq!(rate.current.load(Ordering::Relaxed), 100, "never above the configured rate");
    }
}

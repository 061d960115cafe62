//! "Skip this backend for a moment after it failed": a deadline on a monotonic clock that any
//! number of tasks read and set without a lock. The Redis handle and the replica's read routing
//! both use it, so a failing backend costs one timeout, not one per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Until when a backend is skipped, in milliseconds after `origin` (0: not skipped).
#[derive(Debug)]
pub(crate) struct SkipWindow {
    origin: Instant,
    until_ms: AtomicU64,
}

impl SkipWindow {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            until_ms: AtomicU64::new(0),
        }
    }

    /// True while the backend is skipped.
    pub(crate) fn is_open(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Relaxed)
    }

    /// Skips the backend for `period` from now; returns true when it was not skipped before (a
    /// new outage, worth one log line).
    pub(crate) fn skip_for(&self, period: Duration) -> bool {
        let now = self.now_ms();
        let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        let before = self
            .until_ms
            .swap(now.saturating_add(period), Ordering::Relaxed);
        before <= now
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_for_its_period_and_then_closes() {
        let window = SkipWindow::new();
        assert!(!window.is_open());
        assert!(window.skip_for(Duration::from_millis(50)), "a new outage");
        assert!(window.is_open());
        assert!(
            !window.skip_for(Duration::from_millis(50)),
            "still the same one"
        );
        std::thread::sleep(Duration::from_millis(80));
        assert!(!window.is_open());
        assert!(window.skip_for(Duration::ZERO), "the last one is over");
    }
}

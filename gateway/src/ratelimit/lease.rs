//! Units of a shared allowance this instance has taken from Redis ahead of use, per key.
//!
//! A key that calls often gets growing leases (1, 2, 4, ... up to `max`): each lease taken
//! within [`GROW_WITHIN`] of the last one doubles the next. A key that calls now and then takes
//! none, so a quiet client costs nothing extra. Leased units are usable for [`LIFETIME`] only:
//! units are counted in Redis when leased, and spending them much later would let a client use
//! more than its allowance in the minute it spends them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long leased units stay usable.
pub const LIFETIME: Duration = Duration::from_secs(1);
/// A lease taken this soon after the last one means the key is busy: the next may be larger.
pub const GROW_WITHIN: Duration = Duration::from_millis(250);

#[derive(Clone, Copy)]
struct Lease {
    /// Units leased and not yet spent.
    left: u32,
    /// The size of the last lease (0 for a plain take).
    size: u32,
    taken_at: Instant,
}

pub struct Leases {
    max: u32,
    by_key: Mutex<HashMap<String, Lease>>,
}

impl Leases {
    /// `max` zero takes no leases.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            by_key: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Lease>) -> T) -> T {
        // A poisoned lock only means a panic mid-update of plain counters.
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut by_key)
    }

    /// Spends `units` of `key`'s lease; false when it holds fewer (then nothing is spent).
    pub fn spend(&self, key: &str, units: u32) -> bool {
        if self.max == 0 {
            return false;
        }
        self.with(|by_key| match by_key.get_mut(key) {
            Some(lease) if lease.left >= units && lease.taken_at.elapsed() < LIFETIME => {
                lease.left -= units;
                true
            }
            _ => false,
        })
    }

    /// How many units to lease with `key`'s next take from Redis.
    pub fn next_size(&self, key: &str) -> u32 {
        if self.max == 0 {
            return 0;
        }
        self.with(|by_key| match by_key.get(key) {
            Some(lease) if lease.taken_at.elapsed() < GROW_WITHIN => {
                lease.size.saturating_mul(2).clamp(1, self.max)
            }
            _ => 0,
        })
    }

    /// Records a take from Redis that leased `units` more (0 for a plain take).
    pub fn add(&self, key: &str, units: u32) {
        if self.max == 0 {
            return;
        }
        self.with(|by_key| {
            let now = Instant::now();
            let lease = by_key.entry(key.to_owned()).or_insert(Lease {
                left: 0,
                size: 0,
                taken_at: now,
            });
            // What is left of an expired lease is not spendable any more.
            if lease.taken_at.elapsed() >= LIFETIME {
                lease.left = 0;
            }
            lease.left = lease.left.saturating_add(units);
            lease.size = units;
            lease.taken_at = now;
        });
    }

    /// Drops keys whose lease has expired, so memory stays bounded.
    pub fn forget_expired(&self) {
        self.with(|by_key| by_key.retain(|_, lease| lease.taken_at.elapsed() < LIFETIME));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_key_gets_doubling_leases_up_to_the_max() {
        let leases = Leases::new(8);
        assert_eq!(leases.next_size("k"), 0, "a first take leases nothing");
        let mut sizes = Vec::new();
        leases.add("k", 0);
        for _ in 0..6 {
            let size = leases.next_size("k");
            sizes.push(size);
            leases.add("k", size);
            while leases.spend("k", 1) {}
        }
        assert_eq!(sizes, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn units_are_spent_once_and_only_while_the_lease_lives() {
        let leases = Leases::new(8);
        leases.add("k", 3);
        assert!(leases.spend("k", 2));
        assert!(!leases.spend("k", 2), "one unit left");
        assert!(leases.spend("k", 1));
        assert!(!leases.spend("k", 1));
        assert!(!leases.spend("other", 1));

        leases.add("k", 3);
        std::thread::sleep(LIFETIME);
        assert!(!leases.spend("k", 1), "expired");
        assert_eq!(leases.next_size("k"), 0, "a quiet key starts over");
        leases.forget_expired();
        assert!(leases.with(|by_key| by_key.is_empty()));
    }

    #[test]
    fn no_leases_under_a_zero_max() {
        let leases = Leases::new(0);
        leases.add("k", 5);
        assert!(!leases.spend("k", 1));
        assert_eq!(leases.next_size("k"), 0);
    }
}

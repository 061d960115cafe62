//! Retention: the official account's events, bindings that bind nothing and settled credit
//! holds are deleted once older than their configured days. They only served a moment (a push's
//! dedupe, a QR code, a hold's settlement) and name users; the financial records (orders,
//! refunds, ledger, audit) are never deleted here.

use chrono::{DateTime, Duration, Utc};

use platform::db::{Pools, delete_in_batches};

use crate::error::MembershipError;
use crate::store::retention;

/// Rows deleted per statement.
const BATCH: u32 = 1000;
/// Statements per kind per round at most, so one round stays short; the next round goes on.
const MAX_BATCHES: u32 = 100;

/// Days each kind is kept; 0 keeps it for good.
#[derive(Clone, Copy, Debug)]
pub struct RetentionRules {
    pub event_days: u32,
    pub binding_days: u32,
    pub hold_days: u32,
}

/// What one round deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionRound {
    pub events: u64,
    pub bindings: u64,
    pub holds: u64,
}

#[derive(Clone)]
pub struct Retention {
    pools: Pools,
    rules: RetentionRules,
}

/// The moment before which a kind kept `days` is deleted; None when it is kept for good.
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - Duration::days(i64::from(days)))
}

impl Retention {
    pub fn new(pools: Pools, rules: RetentionRules) -> Self {
        Self { pools, rules }
    }

    /// Deletes what is past its retention at `now`.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<RetentionRound, MembershipError> {
        let pool = &self.pools.primary;
        let mut round = RetentionRound::default();
        if let Some(before) = cutoff(now, self.rules.event_days) {
            round.events = delete_in_batches(BATCH, MAX_BATCHES, |batch| {
                retention::delete_events(pool, before, batch)
            })
            .await?;
        }
        if let Some(before) = cutoff(now, self.rules.binding_days) {
            round.bindings = delete_in_batches(BATCH, MAX_BATCHES, |batch| {
                retention::delete_bindings(pool, before, batch)
            })
            .await?;
        }
        if let Some(before) = cutoff(now, self.rules.hold_days) {
            round.holds = delete_in_batches(BATCH, MAX_BATCHES, |batch| {
                retention::delete_holds(pool, before, batch)
            })
            .await?;
        }
        Ok(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_a_kind_for_good() {
        let now = Utc::now();
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 30), Some(now - Duration::days(30)));
    }
}

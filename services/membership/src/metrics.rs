//! Credit and payment metrics (OpenTelemetry; names listed in the README's metrics table): every
//! credit operation counted by kind and outcome, the credits each successful one moved, and every
//! reported payment (notify or reconciler) by what became of it.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

use crate::error::MembershipError;

/// What was done to a balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditOperation {
    Reserve,
    Commit,
    Release,
    /// A hold past its expiry released by the janitor.
    Expire,
    Charge,
    /// Credits added: the CreditService's grant, a payment, the follow bonus.
    Grant,
    /// An operator's audited adjustment.
    Adjust,
}

impl CreditOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Commit => "commit",
            Self::Release => "release",
            Self::Expire => "expire",
            Self::Charge => "charge",
            Self::Grant => "grant",
            Self::Adjust => "adjust",
        }
    }
}

#[derive(Clone, Debug)]
pub struct CreditMetrics {
    /// `xintu.membership.credit.operations` {operation, outcome}
    operations: Counter<u64>,
    /// `xintu.membership.credit.amount` {operation}
    amount: Counter<u64>,
    /// `xintu.membership.payments` {outcome}
    payments: Counter<u64>,
}

impl Default for CreditMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CreditMetrics {
    /// Builds the instruments from the global meter provider (call after telemetry init).
    pub fn new() -> Self {
        let meter = platform::telemetry::meter("xintu.membership");
        Self {
            operations: meter
                .u64_counter("xintu.membership.credit.operations")
                .with_unit("{operation}")
                .with_description(
                    "Credit operations by kind (reserve, commit, release, expire, charge, grant, \
                     adjust) and outcome (ok, duplicate, insufficient_credits, not_found, ...)",
                )
                .build(),
            amount: meter
                .u64_counter("xintu.membership.credit.amount")
                .with_unit("{credit}")
                .with_description("Credits moved by successful operations, by kind")
                .build(),
            payments: meter
                .u64_counter("xintu.membership.payments")
                .with_unit("{payment}")
                .with_description(
                    "Reported payments (notify or reconciler) by outcome: applied, duplicate, \
                     unknown_order, amount_mismatch, conflict",
                )
                .build(),
        }
    }

    /// Counts one operation that ended with `outcome`; `credits` moved when it succeeded.
    pub fn record(&self, operation: CreditOperation, outcome: &'static str, credits: i64) {
        self.operations.add(
            1,
            &[
                KeyValue::new("operation", operation.as_str()),
                KeyValue::new("outcome", outcome),
            ],
        );
        if outcome == "ok" && credits != 0 {
            self.amount.add(
                credits.unsigned_abs(),
                &[KeyValue::new("operation", operation.as_str())],
            );
        }
    }

    /// Counts one reported payment by what became of it.
    pub fn payment(&self, outcome: &'static str) {
        self.payments.add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// Counts one operation by its result.
    pub fn result<T>(
        &self,
        operation: CreditOperation,
        result: &Result<T, MembershipError>,
        credits: i64,
    ) {
        match result {
            Ok(_) => self.record(operation, "ok", credits),
            Err(err) => self.record(operation, err.outcome(), 0),
        }
    }
}

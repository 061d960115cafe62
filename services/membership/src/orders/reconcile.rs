//! The reconciler: asks WeChat Pay about unpaid orders whose notify may be lost, applies the
//! payments it reports, and closes orders past their lifetime once WeChat Pay confirms. Each
//! `trade_state` of `pay/orderquery` has one outcome:
//!
//! | state | outcome |
//! |---|---|
//! | SUCCESS | the payment is applied (once, like a notify) |
//! | NOTPAY, PAYERROR | asked again later; closed at WeChat Pay, then here, once past its lifetime |
//! | USERPAYING | asked again later, never closed; past its lifetime by [`STUCK_AFTER`]: a person looks |
//! | CLOSED, REVOKED | closed here |
//! | REFUND | money was taken and given back before we applied it: a person looks |
//! | anything else | a person looks |
//!
//! "A person looks" takes the order off the schedule with the reason in `attention` and raises
//! an alert (an `alert = true` error log and the `needs_attention` payment metric). Every other
//! order is asked about on a backoff (the first pause, doubled per check, capped), pulled forward
//! to the moment it may be closed, so an abandoned order costs a handful of queries, not one per
//! round.

use chrono::{Duration, Utc};

use super::{Orders, PaymentOutcome, order_subject};
use crate::error::MembershipError;
use crate::store::{self, orders::CheckSchedule, orders::OrderRow};
use crate::wechatpay::{PayError, QueriedOrder};

/// How long past its closing time an order may stay in USERPAYING before a person looks: a bank
/// that has not answered in this long will not answer by itself.
const STUCK_AFTER: Duration = Duration::minutes(30);

/// What the reconciler did in one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub checked: usize,
    pub paid: usize,
    pub closed: usize,
    pub attention: usize,
    /// Open refunds asked about, and those settled by the answer (or asked for again).
    pub refunds_checked: usize,
    pub refunds_settled: usize,
}

enum Settled {
    Paid,
    Closed,
    Open,
    Attention,
}

impl Orders {
    /// One reconciler round over the orders whose next check is due.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, MembershipError> {
        let due =
            store::orders::due_for_check(&self.pools.primary, self.rules.query_after_secs, 100)
                .await?;
        let schedule = CheckSchedule {
            first_secs: self.rules.backoff_first_secs,
            max_secs: self
                .rules
                .backoff_max_secs
                .max(self.rules.backoff_first_secs),
            close_min_age_secs: self.rules.close_min_age_secs,
        };
        let mut report = ReconcileReport::default();
        for out_trade_no in due {
            // Several instances may run this loop; the claim also schedules the next check.
            if !store::orders::claim_check(&self.pools.primary, &out_trade_no, schedule).await? {
                continue;
            }
            report.checked += 1;
            match self.settle(&out_trade_no).await {
                Ok(Settled::Paid) => report.paid += 1,
                Ok(Settled::Closed) => report.closed += 1,
                Ok(Settled::Attention) => report.attention += 1,
                Ok(Settled::Open) => {}
                Err(err) => tracing::warn!(out_trade_no, error = %err, "order check failed"),
            }
        }
        (report.refunds_checked, report.refunds_settled) = self.reconcile_refunds().await?;
        Ok(report)
    }

    async fn settle(&self, out_trade_no: &str) -> Result<Settled, MembershipError> {
        let Some(order) = store::orders::find(&self.pools.primary, out_trade_no).await? else {
            return Ok(Settled::Open);
        };
        let queried = match self.pay.order_query(out_trade_no).await {
            Ok(queried) => queried,
            // WeChat never created it (the unified order failed in flight).
            Err(err) if err.code() == Some("ORDERNOTEXIST") && self.closable(&order) => {
                return self.mark_closed(out_trade_no).await;
            }
            Err(err) => return Err(err.into()),
        };
        match queried.trade_state.as_str() {
            "SUCCESS" => self.apply_queried(out_trade_no, &queried).await,
            "NOTPAY" | "PAYERROR" if self.closable(&order) => self.close(out_trade_no).await,
            "NOTPAY" | "PAYERROR" => Ok(Settled::Open),
            "USERPAYING" if Utc::now() >= self.close_time(&order) + STUCK_AFTER => {
                self.needs_attention(out_trade_no, "userpaying_stuck").await
            }
            "USERPAYING" => Ok(Settled::Open),
            "CLOSED" | "REVOKED" => self.mark_closed(out_trade_no).await,
            "REFUND" => self.needs_attention(out_trade_no, "refund_unapplied").await,
            _ => {
                self.needs_attention(out_trade_no, "unknown_trade_state")
                    .await
            }
        }
    }

    /// The earliest moment WeChat lets us close the order and its lifetime is over.
    fn close_time(&self, order: &OrderRow) -> chrono::DateTime<Utc> {
        let min_age = Duration::seconds(i64::from(self.rules.close_min_age_secs));
        order.expire_at.max(order.created_at + min_age)
    }

    pub(super) fn closable(&self, order: &OrderRow) -> bool {
        Utc::now() >= self.close_time(order)
    }

    async fn close(&self, out_trade_no: &str) -> Result<Settled, MembershipError> {
        match self.pay.close_order(out_trade_no).await {
            Ok(()) => self.mark_closed(out_trade_no).await,
            Err(err) if err.code() == Some("ORDERCLOSED") => self.mark_closed(out_trade_no).await,
            Err(err) if err.code() == Some("ORDERPAID") => {
                let queried = self.pay.order_query(out_trade_no).await?;
                self.apply_queried(out_trade_no, &queried).await
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn apply_queried(
        &self,
        out_trade_no: &str,
        queried: &QueriedOrder,
    ) -> Result<Settled, MembershipError> {
        if queried.trade_state != "SUCCESS" {
            return Ok(Settled::Open);
        }
        let fee = queried.total_fee.ok_or_else(|| {
            MembershipError::WechatPay(PayError::Malformed("orderquery without total_fee".into()))
        })?;
        match self
            .apply_payment(out_trade_no, &queried.transaction_id, fee)
            .await?
        {
            PaymentOutcome::Applied => Ok(Settled::Paid),
            _ => Ok(Settled::Open),
        }
    }

    async fn mark_closed(&self, out_trade_no: &str) -> Result<Settled, MembershipError> {
        if store::orders::mark_closed(&self.pools.primary, out_trade_no).await? {
            tracing::info!(out_trade_no, "order closed");
            self.freshness
                .wrote(&order_subject(out_trade_no), None)
                .await;
            Ok(Settled::Closed)
        } else {
            Ok(Settled::Open)
        }
    }

    async fn needs_attention(
        &self,
        out_trade_no: &str,
        reason: &'static str,
    ) -> Result<Settled, MembershipError> {
        if !store::orders::set_attention(&self.pools.primary, out_trade_no, reason).await? {
            return Ok(Settled::Open);
        }
        tracing::error!(
            out_trade_no,
            reason,
            alert = true,
            "order needs a person: the reconciler stopped asking about it"
        );
        self.metrics.payment("needs_attention");
        Ok(Settled::Attention)
    }
}

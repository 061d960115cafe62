//! The daily reconciliation report: WeChat Pay's bill of a China-time day (`pay/downloadbill`)
//! against our orders and refunds. Payments are matched by order number, refunds by refund
//! number; whatever differs is stored for a person with its kind (see
//! [`crate::domain::bill::DifferenceKind`]) and raised as an alert. Nothing is changed by it:
//! a payment the notify and the reconciler both missed is for a person to apply, knowingly.
//!
//! WeChat Pay lists a refund on the day it accepted it, with the status it had when the bill was
//! made; ours are matched the same way (by the day we asked). One edge a person may see: a
//! payment WeChat Pay took just before midnight and we applied just after lands on two different
//! days, and shows as missing from one day's bill while the other's has it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sqlx::Acquire;

use super::{Orders, china_time};
use crate::admin::OPERATOR_VIEWS;
use crate::domain::bill::{BillEntry, compare};
use crate::error::MembershipError;
use crate::retry;
use crate::store::bills::{self, BillCheckRow, DifferenceRow};

/// The UTC instants a China-time day starts and ends.
fn china_day(bill_date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = china_time()
        .from_local_datetime(&bill_date.and_time(chrono::NaiveTime::MIN))
        .single()
        .map_or_else(Utc::now, |start| start.with_timezone(&Utc));
    (start, start + Duration::days(1))
}

/// The day before today in China time: the last one whose bill may exist.
pub fn yesterday_in_china(now: DateTime<Utc>) -> NaiveDate {
    (now.with_timezone(&china_time()) - Duration::days(1)).date_naive()
}

/// The bill's lines as entries to compare; lines that are neither a payment nor a refund (a
/// closed or revoked trade never took money) are left out.
fn entries(bill: &[u8]) -> Result<Vec<BillEntry>, MembershipError> {
    let parsed = wechat_protocol::bill::parse_bill(bill).map_err(|err| {
        MembershipError::WechatPay(crate::wechatpay::PayError::Malformed(format!(
            "the bill does not read: {err}"
        )))
    })?;
    Ok(parsed
        .lines
        .into_iter()
        .filter_map(|line| match line.trade_state.as_str() {
            "SUCCESS" => Some(BillEntry::Payment {
                out_trade_no: line.out_trade_no,
                transaction_id: line.transaction_id,
                total_fee: line.total_fee_fen,
            }),
            "REFUND" => Some(BillEntry::Refund {
                out_trade_no: line.out_trade_no,
                out_refund_no: line.out_refund_no.unwrap_or_default(),
                refund_fee: line.refund_fee_fen,
                status: line.refund_status.unwrap_or_default(),
            }),
            _ => None,
        })
        .collect())
}

impl Orders {
    /// Checks one day's bill, unless another instance has (or, with `again`, whatever was done
    /// before). Returns the day's report, or None when the day was left to another check.
    pub async fn check_bill(
        &self,
        bill_date: NaiveDate,
        again: bool,
    ) -> Result<Option<BillCheckRow>, MembershipError> {
        if bill_date > yesterday_in_china(Utc::now()) {
            return Err(MembershipError::invalid(
                "date",
                "a day's bill exists from the next day on: pick yesterday or earlier",
            ));
        }
        if !bills::claim(&self.pools.primary, bill_date, again).await? {
            return Ok(None);
        }
        let compared = self.compare_bill(bill_date).await;
        if let Err(err) = &compared {
            let failure: String = err.to_string().chars().take(250).collect();
            bills::fail(&self.pools.primary, bill_date, &failure).await?;
            tracing::error!(%bill_date, error = %err, alert = true, "bill check failed");
        }
        self.freshness
            .wrote_all_so_far(&self.pools, OPERATOR_VIEWS)
            .await;
        compared?;
        Ok(bills::find(&self.pools.primary, bill_date).await?)
    }

    async fn compare_bill(&self, bill_date: NaiveDate) -> Result<(), MembershipError> {
        let bill = self.pay.download_bill(bill_date).await?;
        let entries = match &bill {
            Some(text) => entries(text)?,
            None => Vec::new(),
        };
        let (from, to) = china_day(bill_date);
        let mut order_numbers = Vec::new();
        let mut refund_numbers = Vec::new();
        for entry in &entries {
            match entry {
                BillEntry::Payment { out_trade_no, .. } => order_numbers.push(out_trade_no.clone()),
                BillEntry::Refund { out_refund_no, .. } => {
                    refund_numbers.push(out_refund_no.clone())
                }
            }
        }
        let comparison = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let paid = bills::orders_paid_between(&mut tx, from, to).await?;
            let paid_that_day: BTreeSet<String> = paid
                .iter()
                .map(|order| order.out_trade_no.clone())
                .collect();
            let mut orders: BTreeMap<_, _> = paid
                .into_iter()
                .map(|order| (order.out_trade_no.clone(), order))
                .collect();
            for order in bills::orders_named(&mut tx, &order_numbers).await? {
                orders.insert(order.out_trade_no.clone(), order);
            }
            let settled = bills::refunds_accepted_between(&mut tx, from, to).await?;
            let refunded_that_day: BTreeSet<String> = settled
                .iter()
                .map(|refund| refund.out_refund_no.clone())
                .collect();
            let mut refunds: BTreeMap<_, _> = settled
                .into_iter()
                .map(|refund| (refund.out_refund_no.clone(), refund))
                .collect();
            for refund in bills::refunds_named(&mut tx, &refund_numbers).await? {
                refunds.insert(refund.out_refund_no.clone(), refund);
            }
            let comparison = compare(
                &entries,
                &orders,
                &paid_that_day,
                &refunds,
                &refunded_that_day,
            );
            let status = match (&bill, comparison.differences.is_empty()) {
                (_, false) => "differences",
                (None, true) => "no_bill",
                (Some(_), true) => "matched",
            };
            bills::save(&mut tx, bill_date, status, &comparison).await?;
            tx.commit().await?;
            Ok(comparison)
        })
        .await?;
        if comparison.differences.is_empty() {
            tracing::info!(%bill_date, payments = comparison.wechat_payments, "bill matched");
        } else {
            tracing::error!(
                %bill_date,
                differences = comparison.differences.len(),
                alert = true,
                "the bill differs from our orders: a person must look"
            );
            self.metrics.payment("bill_differences");
        }
        Ok(())
    }

    /// The daily job: yesterday's bill, once the hour of day (China time) WeChat Pay has it by.
    pub async fn check_yesterdays_bill(&self, from_hour: u32) -> Result<(), MembershipError> {
        use chrono::Timelike;
        let now = Utc::now();
        if now.with_timezone(&china_time()).hour() < from_hour {
            return Ok(());
        }
        self.check_bill(yesterday_in_china(now), false)
            .await
            .map(|_| ())
    }

    /// A checked day and its differences.
    pub async fn bill_report(
        &self,
        bill_date: NaiveDate,
    ) -> Result<(BillCheckRow, Vec<DifferenceRow>), MembershipError> {
        let check = bills::find(&self.pools.primary, bill_date)
            .await?
            .ok_or(MembershipError::NotFound("bill check"))?;
        let differences = bills::differences(&self.pools.primary, bill_date).await?;
        Ok((check, differences))
    }

    /// Checked days, newest first.
    pub async fn bill_checks(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<BillCheckRow>, i64), MembershipError> {
        let (offset, limit) = crate::admin::page_bounds(offset, limit);
        Ok(self
            .freshness
            .read(&self.pools, OPERATOR_VIEWS, |pool| {
                bills::list(pool, offset, limit)
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_china_day_starts_at_16_utc_the_day_before() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let (from, to) = china_day(day);
        assert_eq!(from.to_rfc3339(), "2026-12-02T16:00:00+00:00");
        assert_eq!(to - from, Duration::days(1));
        // 01:00 China time on the 4th is 17:00 UTC on the 3rd: yesterday is the 3rd.
        let early = Utc.with_ymd_and_hms(2026, 12, 3, 17, 0, 0).unwrap();
        assert_eq!(yesterday_in_china(early), day);
    }
}

//! Orders paid with WeChat Pay: creation (server-side price, unified order, JSAPI parameters),
//! status reads, the notify, and the reconciler that settles lost notifies and closes stale
//! orders. A payment is applied by exactly one guarded transition, whoever reports it first.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sqlx::Acquire;

use platform::db::freshness::Freshness;
use platform::db::{Pools, ReadFrom, last_gtid};

use crate::domain::order::{OrderStatus, OrderType};
use crate::domain::pricing::{PriceList, Product, extend_membership};
use crate::error::MembershipError;
use crate::metrics::{CreditMetrics, CreditOperation};
use crate::retry;
use crate::store::{self, ledger, orders::OrderRow};
pub(crate) use crate::wechatpay::china_time;
use crate::wechatpay::{JsapiParams, PayClient, UnifiedOrder};

mod bill;
mod notify_v3;
mod reconcile;
mod refund;

use wechat_protocol::pay::VerifyError;

pub use reconcile::ReconcileReport;
pub use refund::{RefundOrder, RefundOutcome};

/// Timing rules of orders, from config.
#[derive(Clone, Debug)]
pub struct OrderRules {
    pub expire_minutes: u32,
    pub close_min_age_secs: u32,
    pub query_after_secs: u32,
    /// The reconciler's pause after its first question about an order; it doubles per check.
    pub backoff_first_secs: u32,
    /// The longest pause between two questions about one order.
    pub backoff_max_secs: u32,
}

/// What became of a reported payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentOutcome {
    Applied,
    Duplicate,
    UnknownOrder,
    AmountMismatch,
    Conflict,
}

impl PaymentOutcome {
    /// What a notify that reported it is answered: acknowledged (WeChat Pay stops) or not,
    /// and why.
    pub fn acknowledgement(self) -> (bool, &'static str) {
        match self {
            Self::Applied | Self::Duplicate => (true, "OK"),
            Self::UnknownOrder => (false, "unknown order"),
            Self::AmountMismatch => (false, "amount mismatch"),
            Self::Conflict => (false, "conflicting transaction"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::UnknownOrder => "unknown_order",
            Self::AmountMismatch => "amount_mismatch",
            Self::Conflict => "conflict",
        }
    }
}

#[derive(Clone)]
pub struct Orders {
    pools: Pools,
    pay: PayClient,
    prices: PriceList,
    freshness: Freshness,
    rules: OrderRules,
    metrics: CreditMetrics,
}

fn order_subject(out_trade_no: &str) -> String {
    format!("order:{out_trade_no}")
}

pub fn user_subject(openid: &str) -> String {
    format!("user:{openid}")
}

/// `XT` + China-time timestamp + 12 random digits: 28 characters, unique and unguessable enough
/// to not leak order counts.
fn new_order_no(now: DateTime<Utc>) -> String {
    let china = now.with_timezone(&china_time());
    let random: u64 = rand::rng().random_range(0..1_000_000_000_000);
    format!("XT{}{random:012}", china.format("%Y%m%d%H%M%S"))
}

impl Orders {
    pub fn new(
        pools: Pools,
        pay: PayClient,
        prices: PriceList,
        freshness: Freshness,
        rules: OrderRules,
    ) -> Self {
        Self {
            pools,
            pay,
            prices,
            freshness,
            rules,
            metrics: CreditMetrics::new(),
        }
    }

    pub fn prices(&self) -> &PriceList {
        &self.prices
    }

    /// Creates an order priced here, places it with WeChat Pay and signs the page's parameters.
    pub async fn create(
        &self,
        openid: &str,
        product: Product,
        client_ip: &str,
    ) -> Result<(OrderRow, JsapiParams), MembershipError> {
        if openid.is_empty() || openid.len() > 64 {
            return Err(MembershipError::invalid("openid", "missing"));
        }
        let client_ip: std::net::IpAddr = client_ip
            .parse()
            .map_err(|_| MembershipError::invalid("client_ip", "not an IP address"))?;
        let now = Utc::now();
        let out_trade_no = new_order_no(now);
        let expire_at = now + Duration::minutes(i64::from(self.rules.expire_minutes));
        let quote = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = conn.begin().await?;
            let user_id = store::users::ensure(&mut tx, openid).await?;
            let user = store::users::lock(&mut tx, user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let quote = self.prices.quote(product, user.member_until(), now)?;
            let order_type = match quote.product {
                Product::Membership => OrderType::Member,
                Product::Credits(_) => OrderType::Credits,
            };
            store::orders::insert(
                &mut tx,
                &store::orders::NewOrder {
                    out_trade_no: &out_trade_no,
                    user_id,
                    openid,
                    order_type,
                    credits_amount: quote.credits,
                    membership_days: quote.membership_days,
                    total_fee: quote.total_fee,
                    client_ip: &client_ip.to_string(),
                    expire_at,
                },
            )
            .await?;
            tx.commit().await?;
            Ok(quote)
        })
        .await?;
        let placed = self
            .pay
            .unified_order(&UnifiedOrder {
                out_trade_no: &out_trade_no,
                description: &quote.description,
                total_fee: quote.total_fee,
                openid,
                client_ip: &client_ip.to_string(),
                expire_at,
            })
            .await;
        let prepay_id = match placed {
            Ok(prepay_id) => prepay_id,
            Err(err) => {
                // A refusal means WeChat has no order to pay; an unknown outcome stays unpaid
                // for the reconciler to settle with orderquery.
                if !err.outcome_unknown() {
                    let failure = err
                        .code()
                        .unwrap_or("refused")
                        .chars()
                        .take(120)
                        .collect::<String>();
                    store::orders::mark_failed(&self.pools.primary, &out_trade_no, &failure)
                        .await?;
                }
                return Err(err.into());
            }
        };
        store::orders::set_prepay(&self.pools.primary, &out_trade_no, &prepay_id).await?;
        let order = store::orders::find(&self.pools.primary, &out_trade_no)
            .await?
            .ok_or(MembershipError::NotFound("order"))?;
        Ok((order, self.pay.jsapi_params(&prepay_id)))
    }

    /// The user's own order, as of its last change (a poll right after the notify sees it paid).
    pub async fn get(&self, openid: &str, out_trade_no: &str) -> Result<OrderRow, MembershipError> {
        let wanted = self
            .freshness
            .read_from(&self.pools, &order_subject(out_trade_no))
            .await;
        let (mut found, read) = self
            .pools
            .read_from(wanted, |pool| store::orders::find(pool, out_trade_no))
            .await;
        if !matches!(found, Ok(Some(_))) && read == ReadFrom::Replica {
            found = store::orders::find(&self.pools.primary, out_trade_no).await;
        }
        // Another user's order does not exist for this caller.
        found?
            .filter(|order| order.openid == openid)
            .ok_or(MembershipError::NotFound("order"))
    }

    /// Verifies a pay notify and applies it. Returns (acknowledge, message): acknowledging tells
    /// WeChat Pay to stop; anything that fails verification changes nothing.
    pub async fn handle_notify(
        &self,
        body: &[u8],
    ) -> Result<(bool, &'static str), MembershipError> {
        let fields = match Self::parse_notify(body, "pay") {
            Ok(fields) => fields,
            Err(reason) => return Ok((false, reason)),
        };
        if let Some(reason) = self.refusal(&fields) {
            tracing::warn!(reason, "pay notify refused");
            return Ok((false, reason));
        }
        let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if get("result_code") != "SUCCESS" {
            // A verified report of a failed payment: nothing to apply, nothing to retry.
            tracing::info!(
                out_trade_no = get("out_trade_no"),
                "payment failed at wechat"
            );
            return Ok((true, "OK"));
        }
        let Ok(total_fee) = get("total_fee").parse::<i64>() else {
            return Ok((false, "bad total_fee"));
        };
        let transaction_id = get("transaction_id");
        if transaction_id.is_empty() || transaction_id.len() > 32 {
            return Ok((false, "bad transaction_id"));
        }
        let outcome = self
            .apply_payment(get("out_trade_no"), transaction_id, total_fee)
            .await?;
        Ok(outcome.acknowledgement())
    }

    /// Why a notify is not to be believed, if it is not.
    fn refusal(&self, fields: &BTreeMap<String, String>) -> Option<&'static str> {
        match self.pay.verify(fields) {
            Ok(()) => {}
            Err(VerifyError::MissingSign) => return Some("missing signature"),
            Err(VerifyError::SignTypeMismatch) => return Some("sign_type is not ours"),
            Err(VerifyError::BadSign) => return Some("bad signature"),
        }
        if let Some(reason) = self.not_addressed_to_us(fields) {
            return Some(reason);
        }
        if !matches!(
            fields.get("fee_type").map(String::as_str),
            None | Some("CNY")
        ) {
            return Some("fee_type is not CNY");
        }
        None
    }

    /// Why a notify (pay or refund) is not a successful one for our merchant, if it is not.
    fn not_addressed_to_us(&self, fields: &BTreeMap<String, String>) -> Option<&'static str> {
        let get = |name: &str| fields.get(name).map(String::as_str);
        if get("return_code") != Some("SUCCESS") {
            Some("return_code is not SUCCESS")
        } else if get("appid") != Some(self.pay.appid()) {
            Some("appid mismatch")
        } else if get("mch_id") != Some(self.pay.mch_id()) {
            Some("mch_id mismatch")
        } else {
            None
        }
    }

    /// Parses a notify body; a malformed one is logged with `kind` and refused.
    fn parse_notify(body: &[u8], kind: &str) -> Result<BTreeMap<String, String>, &'static str> {
        wechat_protocol::xml::parse(body).map_err(|err| {
            tracing::warn!(error = %err, kind, "notify refused: bad XML");
            "malformed XML"
        })
    }

    /// Marks the order paid and applies what it bought, in one transaction, exactly once.
    pub async fn apply_payment(
        &self,
        out_trade_no: &str,
        transaction_id: &str,
        total_fee: i64,
    ) -> Result<PaymentOutcome, MembershipError> {
        let (outcome, user_id) = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = (&mut *conn).begin().await?;
            let Some(order) = store::orders::lock(&mut tx, out_trade_no).await? else {
                tracing::warn!(out_trade_no, alert = true, "payment for an unknown order");
                return Ok((PaymentOutcome::UnknownOrder, None));
            };
            if order.status == OrderStatus::Paid {
                return Ok(if order.transaction_id.as_deref() == Some(transaction_id) {
                    (PaymentOutcome::Duplicate, None)
                } else {
                    tracing::error!(
                        out_trade_no,
                        alert = true,
                        "second transaction for a paid order"
                    );
                    (PaymentOutcome::Conflict, None)
                });
            }
            if order.total_fee != total_fee {
                tracing::warn!(
                    out_trade_no,
                    expected = order.total_fee,
                    reported = total_fee,
                    alert = true,
                    "payment amount differs from the order; nothing applied"
                );
                return Ok((PaymentOutcome::AmountMismatch, None));
            }
            if order.status == OrderStatus::Failed {
                tracing::error!(
                    out_trade_no,
                    alert = true,
                    "payment for an order wechat refused"
                );
                return Ok((PaymentOutcome::Conflict, None));
            }
            if order.status == OrderStatus::Closed {
                tracing::warn!(
                    out_trade_no,
                    alert = true,
                    "payment after close: applying it"
                );
            }
            if !store::orders::mark_paid(&mut tx, out_trade_no, transaction_id, total_fee).await? {
                return Ok((PaymentOutcome::Conflict, None));
            }
            let user = store::users::lock(&mut tx, order.user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let credits = i64::from(order.credits_amount);
            let reason = if order.order_type == OrderType::Member {
                let until = extend_membership(
                    user.member_until(),
                    Utc::now(),
                    u32::try_from(order.membership_days).unwrap_or(0),
                );
                store::users::set_membership(&mut tx, user.id, until).await?;
                ledger::Reason::MembershipBonus
            } else {
                ledger::Reason::Purchase
            };
            let granted = credits > 0
                && ledger::grant_once(&mut tx, user.id, credits, reason, out_trade_no).await?;
            tx.commit().await?;
            if granted {
                self.metrics.record(CreditOperation::Grant, "ok", credits);
            }
            let gtid = last_gtid(&mut conn).await;
            self.freshness
                .wrote(&order_subject(out_trade_no), gtid.as_deref())
                .await;
            self.freshness
                .wrote(&user_subject(&order.openid), gtid.as_deref())
                .await;
            Ok((PaymentOutcome::Applied, Some(user.id)))
        })
        .await?;
        self.metrics.payment(outcome.as_str());
        // The user by our own id: an openid is personal data and stays out of the log.
        if let Some(user_id) = user_id {
            tracing::info!(out_trade_no, user_id, "payment applied");
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_fit_wechat_rules() {
        let no = new_order_no(Utc::now());
        assert_eq!(no.len(), 28);
        assert!(no.len() <= 32 && no.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(no, new_order_no(Utc::now()));
    }
}

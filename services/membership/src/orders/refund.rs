//! Refunds of paid orders, asked for by an operator. What the order bought is taken back in the
//! transaction that writes the refund, before WeChat Pay is asked, so a user cannot spend credits
//! that are being refunded; it is given back only when WeChat Pay refuses or closes the refund.
//!
//! | WeChat Pay says | the refund becomes | what was taken |
//! |---|---|---|
//! | accepted (`secapi/pay/refund` SUCCESS) | processing | stays taken |
//! | refused (a business error other than "try again") | failed | given back |
//! | no answer, SYSTEMERROR | pending: the reconciler asks `refundquery`, and asks again with the same `out_refund_no` if WeChat Pay never got it | stays taken |
//! | SUCCESS (notify or query) | success | stays taken |
//! | REFUNDCLOSE | failed | given back |
//! | CHANGE (could not pay out) | abnormal: a person looks | stays taken |
//!
//! A credits order refunds only what the user has not spent (the refund is refused with the
//! largest amount that is possible now); a membership order shortens the membership by its share
//! of the days and takes back as much of its bonus credits' share as is unspent. Balances never
//! go below zero.

use chrono::{DateTime, Duration, Utc};
use sqlx::Acquire;

use platform::db::last_gtid;

use super::{Orders, china_time, order_subject, user_subject};
use crate::admin::OPERATOR_VIEWS;
use crate::domain::order::{OrderStatus, OrderType};
use crate::domain::refund::{RefundBasis, RefundRefusal, RefundStatus};
use crate::error::MembershipError;
use crate::retry;
use crate::store::{self, ledger, refunds::RefundListRow};
use crate::wechatpay::{PayError, RefundRequest};

/// What an operator asks for.
pub struct RefundOrder<'a> {
    pub out_trade_no: &'a str,
    pub refund_fee: i64,
    pub reason: &'a str,
    pub admin: &'a str,
}

/// What became of a reported refund outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Applied,
    /// Already in that (or a final) state: nothing changed.
    Repeated,
    UnknownRefund,
    /// The report names another order or amount than ours: nothing changed.
    Mismatch,
    UnknownStatus,
}

impl RefundOutcome {
    /// What a refund notify that reported it is answered: acknowledged or not, and why.
    pub fn acknowledgement(self) -> (bool, &'static str) {
        match self {
            Self::Applied | Self::Repeated => (true, "OK"),
            Self::UnknownRefund => (false, "unknown refund"),
            Self::Mismatch => (false, "refund mismatch"),
            Self::UnknownStatus => (false, "unknown refund_status"),
        }
    }
}

/// `RF` + China-time timestamp + 12 random digits, like order numbers.
fn new_refund_no(now: DateTime<Utc>) -> String {
    use rand::Rng;
    let china = now.with_timezone(&china_time());
    let random: u64 = rand::rng().random_range(0..1_000_000_000_000);
    format!("RF{}{random:012}", china.format("%Y%m%d%H%M%S"))
}

/// A refusal that WeChat Pay will repeat: anything but its documented "try again" codes.
fn refused_for_good(err: &PayError) -> bool {
    !err.outcome_unknown()
        && !matches!(err.code(), Some("BIZERR_NEED_RETRY" | "FREQUENCY_LIMITED"))
        && matches!(err, PayError::Refused { .. })
}

impl Orders {
    /// Refunds `refund_fee` fen of a paid order: takes back its share, writes the refund, asks
    /// WeChat Pay. Returns the refund as it stands after WeChat Pay's answer (pending when there
    /// was none); a refusal marks it failed, gives back what it took, and is returned as the
    /// error it was.
    pub async fn refund(&self, ask: &RefundOrder<'_>) -> Result<RefundListRow, MembershipError> {
        let reason = ask.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(MembershipError::invalid(
                "reason",
                "a reason of 1 to 200 characters is required",
            ));
        }
        if ask.admin.is_empty() {
            return Err(MembershipError::invalid("admin", "missing"));
        }
        if !self.pay.can_refund() {
            return Err(PayError::NoCertificate.into());
        }
        let out_refund_no = new_refund_no(Utc::now());
        let (user_id, openid) = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = (&mut *conn).begin().await?;
            let order = store::orders::lock(&mut tx, ask.out_trade_no)
                .await?
                .ok_or(MembershipError::NotFound("order"))?;
            if order.status != OrderStatus::Paid {
                return Err(MembershipError::NotRefundable(order.status.as_str()));
            }
            let so_far = store::refunds::so_far(&mut tx, ask.out_trade_no).await?;
            let basis = RefundBasis {
                total_fee: order.total_fee,
                credits: i64::from(order.credits_amount),
                membership_days: i64::from(order.membership_days),
                refunded_fee: so_far.fee,
                credits_taken: so_far.credits,
                days_taken: so_far.days,
            };
            let share = basis
                .share(ask.refund_fee)
                .map_err(|refusal| match refusal {
                    RefundRefusal::Amount { left } => MembershipError::invalid(
                        "refund_fee",
                        format!("must be within 1..={left} fen, what is left of the order"),
                    ),
                })?;
            let user = store::users::lock(&mut tx, order.user_id)
                .await?
                .ok_or(MembershipError::NotFound("user"))?;
            let spendable = (user.remaining_credits - user.held_credits).max(0);
            let credits = match order.order_type {
                OrderType::Credits if share.credits > spendable => {
                    return Err(MembershipError::CreditsSpent {
                        refundable_fen: basis.refundable_with(spendable),
                    });
                }
                OrderType::Credits => share.credits,
                OrderType::Member => share.credits.min(spendable),
            };
            if credits > 0 {
                ledger::adjust(
                    &mut tx,
                    user.id,
                    -credits,
                    ledger::Reason::Refund,
                    &out_refund_no,
                )
                .await?
                .ok_or(MembershipError::InsufficientCredits)?;
            }
            let ms_taken = match user.member_until() {
                Some(until) if share.membership_days > 0 => {
                    let shortened = (until - Duration::days(share.membership_days)).max(Utc::now());
                    if shortened < until {
                        store::users::set_membership(&mut tx, user.id, shortened).await?;
                    }
                    (until - shortened).num_milliseconds().max(0)
                }
                _ => 0,
            };
            store::admin::audit_referenced(
                &mut tx,
                &store::admin::ReferencedAuditRow {
                    action: "refund",
                    actor: ask.admin,
                    user_id: user.id,
                    delta: -credits,
                    note: reason,
                    reference: &out_refund_no,
                },
            )
            .await?;
            store::refunds::insert(
                &mut tx,
                &store::refunds::NewRefund {
                    out_refund_no: &out_refund_no,
                    out_trade_no: ask.out_trade_no,
                    user_id: user.id,
                    refund_fee: ask.refund_fee,
                    credits_taken: credits,
                    membership_days: share.membership_days,
                    membership_ms_taken: ms_taken,
                    reason,
                    admin: ask.admin,
                    first_check_secs: self.rules.backoff_first_secs,
                },
            )
            .await?;
            tx.commit().await?;
            let gtid = last_gtid(&mut conn).await;
            self.freshness
                .wrote(&user_subject(&order.openid), gtid.as_deref())
                .await;
            self.freshness
                .wrote(&order_subject(ask.out_trade_no), gtid.as_deref())
                .await;
            Ok((user.id, order.openid))
        })
        .await?;
        tracing::info!(
            out_trade_no = ask.out_trade_no,
            out_refund_no,
            user_id,
            refund_fee = ask.refund_fee,
            admin = ask.admin,
            "refund written; asking wechat pay"
        );
        self.metrics.payment("refund_asked");
        let submitted = self.submit_refund(&out_refund_no).await;
        // The refund row and what WeChat Pay answered, for the operator's next look at the lists.
        self.freshness
            .wrote_all_so_far(&self.pools, OPERATOR_VIEWS)
            .await;
        submitted?;
        let refund = store::refunds::find(&self.pools.primary, &out_refund_no)
            .await?
            .ok_or(MembershipError::NotFound("refund"))?;
        Ok(RefundListRow {
            refund,
            openid: Some(openid),
        })
    }

    /// Asks WeChat Pay for a written refund (again, with the same number, when the first
    /// answer was lost: WeChat Pay treats that as the same refund).
    async fn submit_refund(&self, out_refund_no: &str) -> Result<(), MembershipError> {
        let refund = store::refunds::find(&self.pools.primary, out_refund_no)
            .await?
            .ok_or(MembershipError::NotFound("refund"))?;
        let order = store::orders::find(&self.pools.primary, &refund.out_trade_no)
            .await?
            .ok_or(MembershipError::NotFound("order"))?;
        let asked = self
            .pay
            .refund(&RefundRequest {
                out_trade_no: &refund.out_trade_no,
                out_refund_no,
                total_fee: order.total_fee,
                refund_fee: refund.refund_fee,
                description: &refund.reason,
            })
            .await;
        match asked {
            Ok(refund_id) => {
                self.settle_refund(
                    out_refund_no,
                    RefundStatus::Processing,
                    Some(&refund_id),
                    "",
                )
                .await?;
                Ok(())
            }
            Err(err) if refused_for_good(&err) => {
                let failure: String = err.code().unwrap_or("refused").chars().take(120).collect();
                self.settle_refund(out_refund_no, RefundStatus::Failed, None, &failure)
                    .await?;
                Err(err.into())
            }
            Err(err) => {
                tracing::warn!(out_refund_no, error = %err, "refund outcome unknown; the reconciler will ask");
                Ok(())
            }
        }
    }

    /// Moves an open refund to `status`, giving back what it took when it failed. Returns
    /// whether this call moved it (a repeated report changes nothing).
    pub(super) async fn settle_refund(
        &self,
        out_refund_no: &str,
        status: RefundStatus,
        refund_id: Option<&str>,
        failure: &str,
    ) -> Result<bool, MembershipError> {
        let moved = retry::transaction(|| async {
            let mut conn = self.pools.primary.acquire().await?;
            let mut tx = (&mut *conn).begin().await?;
            let Some(refund) = store::refunds::lock(&mut tx, out_refund_no).await? else {
                return Ok(None);
            };
            if !store::refunds::transition(&mut tx, out_refund_no, status, refund_id, failure)
                .await?
            {
                return Ok(None);
            }
            if status == RefundStatus::Failed {
                let user = store::users::lock(&mut tx, refund.user_id)
                    .await?
                    .ok_or(MembershipError::NotFound("user"))?;
                if refund.credits_taken > 0 {
                    ledger::give_back(
                        &mut tx,
                        user.id,
                        refund.credits_taken,
                        ledger::Reason::RefundReturned,
                        out_refund_no,
                    )
                    .await?;
                }
                if let (Some(until), ms) = (user.member_until(), refund.membership_ms_taken)
                    && ms > 0
                {
                    let restored = until + Duration::milliseconds(ms);
                    store::users::set_membership(&mut tx, user.id, restored).await?;
                }
            }
            tx.commit().await?;
            let gtid = last_gtid(&mut conn).await;
            Ok(Some((refund, gtid)))
        })
        .await?;
        let Some((refund, gtid)) = moved else {
            return Ok(false);
        };
        if let Some(order) = store::orders::find(&self.pools.primary, &refund.out_trade_no).await? {
            self.freshness
                .wrote(&user_subject(&order.openid), gtid.as_deref())
                .await;
        }
        match status {
            RefundStatus::Abnormal => tracing::error!(
                out_refund_no,
                out_trade_no = refund.out_trade_no,
                alert = true,
                "refund could not be paid out (CHANGE): a person must arrange it"
            ),
            RefundStatus::Failed => tracing::warn!(
                out_refund_no,
                failure,
                "refund failed; what it took was given back"
            ),
            _ => tracing::info!(out_refund_no, status = status.as_str(), "refund settled"),
        }
        self.metrics.payment(match status {
            RefundStatus::Pending | RefundStatus::Processing => "refund_accepted",
            RefundStatus::Success => "refund_succeeded",
            RefundStatus::Failed => "refund_failed",
            RefundStatus::Abnormal => "needs_attention",
        });
        Ok(true)
    }

    /// Applies a refund outcome WeChat Pay reported (notify or query), after checking it is
    /// about our refund, of our order, for our amount.
    pub(super) async fn apply_refund_report(
        &self,
        out_refund_no: &str,
        out_trade_no: Option<&str>,
        refund_fee: Option<i64>,
        refund_status: &str,
        refund_id: &str,
    ) -> Result<RefundOutcome, MembershipError> {
        let Some(refund) = store::refunds::find(&self.pools.primary, out_refund_no).await? else {
            tracing::warn!(out_refund_no, alert = true, "report of an unknown refund");
            return Ok(RefundOutcome::UnknownRefund);
        };
        if out_trade_no.is_some_and(|no| no != refund.out_trade_no)
            || refund_fee.is_some_and(|fee| fee != refund.refund_fee)
        {
            tracing::warn!(
                out_refund_no,
                alert = true,
                "refund report names another order or amount; nothing applied"
            );
            return Ok(RefundOutcome::Mismatch);
        }
        let (status, failure) = match refund_status {
            "SUCCESS" => (RefundStatus::Success, ""),
            "PROCESSING" => (RefundStatus::Processing, ""),
            "REFUNDCLOSE" => (RefundStatus::Failed, "REFUNDCLOSE"),
            "CHANGE" => (RefundStatus::Abnormal, "CHANGE"),
            _ => return Ok(RefundOutcome::UnknownStatus),
        };
        if status == RefundStatus::Processing && refund.status == RefundStatus::Processing {
            return Ok(RefundOutcome::Repeated);
        }
        let refund_id = Some(refund_id).filter(|id| !id.is_empty());
        Ok(
            if self
                .settle_refund(out_refund_no, status, refund_id, failure)
                .await?
            {
                RefundOutcome::Applied
            } else {
                RefundOutcome::Repeated
            },
        )
    }

    /// Verifies a refund notify (our appid and mch_id, a `req_info` that decrypts under our API
    /// key) and applies it. Returns (acknowledge, message) like the pay notify.
    pub async fn handle_refund_notify(
        &self,
        body: &[u8],
    ) -> Result<(bool, &'static str), MembershipError> {
        use secrecy::ExposeSecret;
        let fields = match Self::parse_notify(body, "refund") {
            Ok(fields) => fields,
            Err(reason) => return Ok((false, reason)),
        };
        let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if let Some(reason) = self.not_addressed_to_us(&fields) {
            tracing::warn!(reason, "refund notify refused");
            return Ok((false, reason));
        }
        let Some(api_key) = self.pay.v2_api_key() else {
            tracing::warn!("refund notify refused: no v2 API key is configured");
            return Ok((false, "no v2 API key"));
        };
        let details = match wechat_protocol::refund::decrypt_req_info(
            get("req_info"),
            api_key.expose_secret(),
        ) {
            Ok(details) => details,
            Err(err) => {
                tracing::warn!(error = %err, "refund notify refused: req_info");
                return Ok((false, "req_info does not decrypt"));
            }
        };
        let detail = |name: &str| details.get(name).map(String::as_str).unwrap_or("");
        let Ok(refund_fee) = detail("refund_fee").parse::<i64>() else {
            return Ok((false, "bad refund_fee"));
        };
        let outcome = self
            .apply_refund_report(
                detail("out_refund_no"),
                Some(detail("out_trade_no")),
                Some(refund_fee),
                detail("refund_status"),
                detail("refund_id"),
            )
            .await?;
        Ok(outcome.acknowledgement())
    }

    /// One reconciler pass over open refunds whose next check is due. Returns (checked,
    /// settled).
    pub(super) async fn reconcile_refunds(&self) -> Result<(usize, usize), MembershipError> {
        let due = store::refunds::due_for_check(&self.pools.primary, 100).await?;
        let (mut checked, mut settled) = (0, 0);
        for out_refund_no in due {
            if !store::refunds::claim_check(
                &self.pools.primary,
                &out_refund_no,
                self.rules.backoff_first_secs,
                self.rules
                    .backoff_max_secs
                    .max(self.rules.backoff_first_secs),
            )
            .await?
            {
                continue;
            }
            checked += 1;
            match self.check_refund(&out_refund_no).await {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(err) => tracing::warn!(out_refund_no, error = %err, "refund check failed"),
            }
        }
        Ok((checked, settled))
    }

    async fn check_refund(&self, out_refund_no: &str) -> Result<bool, MembershipError> {
        let Some(refund) = store::refunds::find(&self.pools.primary, out_refund_no).await? else {
            return Ok(false);
        };
        match self.pay.refund_query(out_refund_no).await {
            Ok(queried) => Ok(self
                .apply_refund_report(
                    out_refund_no,
                    None,
                    queried.refund_fee,
                    &queried.status,
                    &queried.refund_id,
                )
                .await?
                == RefundOutcome::Applied),
            // WeChat Pay never got the request: ask again with the same number.
            Err(err)
                if err.code() == Some("REFUNDNOTEXIST")
                    && refund.status == RefundStatus::Pending =>
            {
                self.submit_refund(out_refund_no).await?;
                Ok(true)
            }
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_numbers_fit_wechat_rules() {
        let no = new_refund_no(Utc::now());
        assert_eq!(no.len(), 28);
        assert!(no.starts_with("RF") && no.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn only_documented_final_refusals_fail_a_refund() {
        let refused = |code: &str| PayError::Refused {
            code: code.into(),
            message: String::new(),
        };
        assert!(refused_for_good(&refused("NOTENOUGH")));
        assert!(refused_for_good(&refused("FAIL")));
        assert!(!refused_for_good(&refused("SYSTEMERROR")));
        assert!(!refused_for_good(&refused("BIZERR_NEED_RETRY")));
        assert!(!refused_for_good(&PayError::Http(502)));
        assert!(!refused_for_good(&PayError::BadSignature));
    }
}

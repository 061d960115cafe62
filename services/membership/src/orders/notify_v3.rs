//! WeChat Pay API v3's notifications, of payments and refunds: signed by WeChat Pay (checked
//! with its public key or platform certificate, within the replay window), the transaction or
//! refund encrypted with the merchant's APIv3 key. Once verified they are applied like v2's
//! notifies: the same guarded transitions, the same amount checks, exactly once.

use wechat_protocol::pay_v3::{RefundState, SignedHeaders, Transaction, V3Error};

use super::Orders;
use crate::error::MembershipError;
use crate::wechatpay::v2_refund_status;

/// The event of a paid transaction.
const TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";
/// The events of an ended refund: REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED.
const REFUND_EVENTS: &str = "REFUND.";

impl Orders {
    /// Verifies, decrypts and applies a v3 payment notification. Returns (acknowledge,
    /// message): acknowledging tells WeChat Pay to stop; anything that fails verification
    /// changes nothing.
    pub async fn handle_notify_v3(
        &self,
        signature: SignedHeaders<'_>,
        body: &[u8],
    ) -> Result<(bool, &'static str), MembershipError> {
        let notify = match self.pay.v3_notify(signature, body) {
            None => return Ok((false, "API v3 is not configured")),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "v3 pay notify refused");
                return Ok((false, refusal(&err)));
            }
            Some(Ok(notify)) => notify,
        };
        if notify.event_type.starts_with(REFUND_EVENTS) {
            return self.apply_v3_refund(&notify.resource).await;
        }
        if notify.event_type != TRANSACTION_SUCCESS {
            // Verified, but not a payment: nothing to apply, nothing to retry.
            tracing::info!(event_type = notify.event_type, "v3 notify ignored");
            return Ok((true, "OK"));
        }
        let Ok(transaction) = serde_json::from_slice::<Transaction>(&notify.resource) else {
            return Ok((false, "malformed transaction"));
        };
        if let Some(reason) = self.not_ours(&transaction) {
            tracing::warn!(reason, "v3 pay notify refused");
            return Ok((false, reason));
        }
        if transaction.trade_state != "SUCCESS" {
            tracing::info!(
                out_trade_no = transaction.out_trade_no,
                "payment failed at wechat"
            );
            return Ok((true, "OK"));
        }
        let Some(total) = transaction.amount.as_ref().map(|amount| amount.total) else {
            return Ok((false, "no amount"));
        };
        let transaction_id = transaction.transaction_id.as_str();
        if transaction_id.is_empty() || transaction_id.len() > 32 {
            return Ok((false, "bad transaction_id"));
        }
        let outcome = self
            .apply_payment(&transaction.out_trade_no, transaction_id, total)
            .await?;
        Ok(outcome.acknowledgement())
    }

    /// Applies a verified refund notification's refund.
    async fn apply_v3_refund(
        &self,
        resource: &[u8],
    ) -> Result<(bool, &'static str), MembershipError> {
        let Ok(refund) = serde_json::from_slice::<RefundState>(resource) else {
            return Ok((false, "malformed refund"));
        };
        if refund.mchid != self.pay.mch_id() {
            tracing::warn!("v3 refund notify refused: mchid mismatch");
            return Ok((false, "mchid mismatch"));
        }
        let outcome = self
            .apply_refund_report(
                &refund.out_refund_no,
                Some(&refund.out_trade_no),
                Some(refund.amount.refund),
                &v2_refund_status(&refund.status),
                &refund.refund_id,
            )
            .await?;
        Ok(outcome.acknowledgement())
    }

    /// Why a verified transaction is not a payment to our merchant and app, if it is not.
    fn not_ours(&self, transaction: &Transaction) -> Option<&'static str> {
        if transaction.appid != self.pay.appid() {
            Some("appid mismatch")
        } else if transaction.mchid != self.pay.mch_id() {
            Some("mchid mismatch")
        } else if transaction
            .amount
            .as_ref()
            .is_some_and(|amount| amount.currency != "CNY")
        {
            Some("currency is not CNY")
        } else {
            None
        }
    }
}

/// What WeChat Pay is told about a notification we could not believe.
fn refusal(err: &V3Error) -> &'static str {
    match err {
        V3Error::UnknownSerial(_) => "unknown Wechatpay-Serial",
        V3Error::StaleTimestamp(_) => "timestamp outside the window",
        V3Error::BadSignature => "bad signature",
        V3Error::Decrypt => "resource does not decrypt",
        V3Error::Malformed(_) | V3Error::InvalidKey(_) => "malformed notification",
    }
}

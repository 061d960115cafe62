//! WeChat Pay API v3's payment notification: signed by WeChat Pay (checked with its public key
//! or platform certificate, within the replay window), the transaction encrypted with the
//! merchant's APIv3 key. Once verified it is applied like v2's: the same guarded transition,
//! the same amount check, exactly once.

use wechat_protocol::pay_v3::{SignedHeaders, Transaction, V3Error};

use super::{Orders, PaymentOutcome};
use crate::error::MembershipError;

/// The event of a paid transaction; WeChat Pay sends no other to a JSAPI payment's notify URL.
const TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";

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
        Ok(match outcome {
            PaymentOutcome::Applied | PaymentOutcome::Duplicate => (true, "OK"),
            PaymentOutcome::UnknownOrder => (false, "unknown order"),
            PaymentOutcome::AmountMismatch => (false, "amount mismatch"),
            PaymentOutcome::Conflict => (false, "conflicting transaction"),
        })
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

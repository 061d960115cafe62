//! The refund notify (pay.weixin.qq.com v2, jsapi.php?chapter=9_16): when a refund ends, WeChat
//! Pay posts `<xml>` with `return_code`, `appid`, `mch_id`, `nonce_str` and `req_info`, the
//! refund's details encrypted (AES-256-ECB under the API key's MD5, a `<root>` document). It
//! carries no `sign`: only a holder of the API key can write a `req_info` that decrypts. It is
//! delivered and retried as the payment notify is (same notify mode, same schedule).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use wechat_protocol::refund::encrypt_req_info;
use wechat_protocol::xml::Value;

use super::{RefundStatus, document, nonce_str};
use crate::Sandbox;

/// Where the money went back to (`refund_recv_accout`, WeChat's spelling). The sandbox's
/// payments are by CMB credit card (`bank_type` CMB_CREDIT), and a refund to one reads like this
/// in bittercoffeetech/wechat-trade-js's captured refund notify.
pub(super) const RECEIVED_BY: &str = "招商银行信用卡0038";

impl Sandbox {
    /// The refund notify WeChat Pay sends for an ended refund (for tests that tamper with it or
    /// post it themselves); None for an unknown refund.
    pub fn refund_notify_fields(&self, out_refund_no: &str) -> Option<BTreeMap<String, String>> {
        let refund = self.refund(out_refund_no)?;
        let total_fee = refund.total_fee.to_string();
        let refund_fee = refund.refund_fee.to_string();
        let settlement_total_fee = refund.cash_fee.to_string();
        let settlement_refund_fee = refund.cash_refund_fee.to_string();
        let success_time = refund.success_time.clone().unwrap_or_default();
        // The captured notify's details (bittercoffeetech/wechat-trade-js, decrypted) write the
        // amounts as text, not bare numbers, and carry both settlement amounts even without a
        // coupon.
        let mut details: Vec<(&str, Value<'_>)> = vec![
            ("transaction_id", Value::Text(&refund.transaction_id)),
            ("out_trade_no", Value::Text(&refund.out_trade_no)),
            ("refund_id", Value::Text(&refund.refund_id)),
            ("out_refund_no", Value::Text(&refund.out_refund_no)),
            ("total_fee", Value::Text(&total_fee)),
            ("settlement_total_fee", Value::Text(&settlement_total_fee)),
            ("refund_fee", Value::Text(&refund_fee)),
            ("settlement_refund_fee", Value::Text(&settlement_refund_fee)),
            ("refund_status", Value::Text(refund.status.as_str())),
            ("refund_recv_accout", Value::Text(RECEIVED_BY)),
            ("refund_account", Value::Text(&refund.refund_account)),
            // The refund came in through the API, not the merchant platform.
            ("refund_request_source", Value::Text("API")),
        ];
        if refund.status == RefundStatus::Success {
            details.push(("success_time", Value::Text(&success_time)));
        }
        let cfg = &self.state.cfg;
        let req_info = encrypt_req_info(&details, &cfg.pay_key);
        Some(
            [
                ("return_code", "SUCCESS".to_owned()),
                ("appid", cfg.appid.clone()),
                ("mch_id", cfg.mch_id.clone()),
                ("nonce_str", nonce_str()),
                ("req_info", req_info),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
    }

    /// One refund notify delivery to the refund's notify_url; true when the merchant answered
    /// SUCCESS.
    pub async fn send_refund_notify(&self, out_refund_no: &str) -> bool {
        let Some(refund) = self.refund(out_refund_no) else {
            return false;
        };
        if refund.v3 {
            return self.send_v3_refund_notify(&refund).await;
        }
        let Some(fields) = self.refund_notify_fields(out_refund_no) else {
            return false;
        };
        if refund.notify_url.is_empty() {
            return false;
        }
        self.state
            .refund_notifies_sent
            .fetch_add(1, Ordering::SeqCst);
        self.post_xml(&refund.notify_url, document(&fields)).await.0
    }
}

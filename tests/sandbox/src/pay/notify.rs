//! The sandbox as a paying user and as WeChat Pay's notifier: a payment marks the order paid
//! and sends the signed notify to its notify_url, retried until the merchant answers SUCCESS.
//!
//! A notify carries what WeChat Pay's documented notify carries: `device_info` and `attach`
//! given back, `is_subscribe`, `bank_type`, `fee_type`, `cash_fee`, `cash_fee_type`, the
//! coupon fields `coupon_*_$n` and `settlement_total_fee` when a coupon paid part of it, and
//! `sign_type` only when the [`NotifyStyle`] says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wechat_protocol::xml;

use super::{NotifyStyle, PayOrder, TradeState, document, nonce_str};
use crate::{NotifyMode, Sandbox, lock};

pub(super) fn new_transaction_id() -> String {
    format!("4200{:024}", rand::random::<u64>())
}

/// `yyyyMMddHHmmss` in China time, as WeChat Pay writes `time_end`.
pub(super) fn china_now() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// The fields of a paid order that the notify and `orderquery` both report.
pub(super) fn payment_fields(order: &PayOrder) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("openid", order.openid.clone()),
        ("is_subscribe", "Y".to_owned()),
        ("trade_type", "JSAPI".to_owned()),
        ("bank_type", "CMB_CREDIT".to_owned()),
        ("total_fee", order.total_fee.to_string()),
        ("fee_type", "CNY".to_owned()),
        ("cash_fee", (order.total_fee - order.coupon_fee).to_string()),
        ("cash_fee_type", "CNY".to_owned()),
        (
            "transaction_id",
            order.transaction_id.clone().unwrap_or_default(),
        ),
        ("out_trade_no", order.out_trade_no.clone()),
        ("time_end", order.time_end.clone().unwrap_or_default()),
    ];
    if !order.device_info.is_empty() {
        fields.push(("device_info", order.device_info.clone()));
    }
    if !order.attach.is_empty() {
        fields.push(("attach", order.attach.clone()));
    }
    if order.coupon_fee > 0 {
        // A non-cash coupon: the merchant settles the amount less the coupon.
        fields.extend([
            (
                "settlement_total_fee",
                (order.total_fee - order.coupon_fee).to_string(),
            ),
            ("coupon_fee", order.coupon_fee.to_string()),
            ("coupon_count", "1".to_owned()),
            ("coupon_type_0", "NO_CASH".to_owned()),
            ("coupon_id_0", "10000".to_owned()),
            ("coupon_fee_0", order.coupon_fee.to_string()),
        ]);
    }
    fields
}

impl Sandbox {
    /// Chooses how the notifies of the next payments look.
    pub fn set_notify_style(&self, style: NotifyStyle) {
        lock(&self.state.accounts).notify_style = style;
    }

    /// The signed notify WeChat Pay sends for a paid order (for tests that tamper with it).
    pub fn notify_fields(&self, out_trade_no: &str) -> Option<BTreeMap<String, String>> {
        let order = self.pay_order(out_trade_no)?;
        let style = lock(&self.state.accounts).notify_style;
        let cfg = &self.state.cfg;
        let mut fields: BTreeMap<String, String> = [
            ("return_code", "SUCCESS".to_owned()),
            ("appid", cfg.appid.clone()),
            ("mch_id", cfg.mch_id.clone()),
            ("nonce_str", nonce_str()),
            ("result_code", "SUCCESS".to_owned()),
        ]
        .into_iter()
        .chain(payment_fields(&order))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if style.name_sign_type {
            fields.insert("sign_type".to_owned(), order.sign_type.as_str().to_owned());
        }
        self.pay_sign(&mut fields, order.sign_type);
        Some(fields)
    }

    /// The user pays the order (by out_trade_no or prepay_id): WeChat Pay records the payment and
    /// notifies the merchant as the notify mode says. Returns the transaction id.
    pub async fn pay(&self, order_ref: &str) -> Option<String> {
        let (out_trade_no, transaction_id) = {
            let mut accounts = lock(&self.state.accounts);
            let coupon_fee = accounts.notify_style.coupon_fee;
            let key = accounts
                .pay_orders
                .values()
                .find(|o| o.out_trade_no == order_ref || o.prepay_id == order_ref)?
                .out_trade_no
                .clone();
            let order = accounts.pay_orders.get_mut(&key)?;
            if !matches!(order.state, TradeState::NotPay | TradeState::UserPaying) {
                return order.transaction_id.clone();
            }
            let transaction_id = new_transaction_id();
            order.state = TradeState::Success;
            order.transaction_id = Some(transaction_id.clone());
            order.time_end = Some(china_now());
            order.coupon_fee = coupon_fee.clamp(0, order.total_fee - 1);
            (key, transaction_id)
        };
        let copies = self.notify_copies();
        if copies > 0 {
            let sandbox = self.clone();
            let no = out_trade_no;
            tokio::spawn(async move {
                sandbox
                    .deliver_until_acknowledged(&no, copies, || sandbox.send_notify(&no))
                    .await;
            });
        }
        Some(transaction_id)
    }

    /// How many copies the first round of a notify sends, as the notify mode says; 0: none.
    pub(super) fn notify_copies(&self) -> u32 {
        match lock(&self.state.accounts).notify_mode {
            NotifyMode::Drop => 0,
            NotifyMode::Normal => 1,
            NotifyMode::Duplicates(n) => n.max(1),
        }
    }

    /// Delivers a notify as WeChat Pay does, whatever its kind (payment, refund): `copies` at
    /// once on the first round, then one a round on the retry schedule, until an attempt gets a
    /// SUCCESS answer or the schedule runs out. `send` makes one attempt (a fresh document each
    /// time, as WeChat's nonce_str changes).
    pub(super) async fn deliver_until_acknowledged<F, Fut>(&self, what: &str, copies: u32, send: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let delays = self.state.cfg.notify_retry_delays_ms.clone();
        for round in 0..=delays.len() {
            let sends = if round == 0 { copies } else { 1 };
            let attempts = (0..sends).map(|_| send());
            let acknowledged = futures::future::join_all(attempts)
                .await
                .into_iter()
                .any(|ok| ok);
            if acknowledged {
                return;
            }
            if let Some(delay) = delays.get(round) {
                tokio::time::sleep(Duration::from_millis(*delay)).await;
            }
        }
        tracing::warn!(what, "notify never acknowledged");
    }

    /// One notify delivery; true when the merchant answered SUCCESS.
    pub async fn send_notify(&self, out_trade_no: &str) -> bool {
        let Some(order) = self.pay_order(out_trade_no) else {
            return false;
        };
        if order.v3 {
            return self.send_v3_notify(&order).await;
        }
        let Some(fields) = self.notify_fields(out_trade_no) else {
            return false;
        };
        self.post_notify(&order.notify_url, &fields).await.0
    }

    /// Posts a notify document to `url`; returns (answered SUCCESS, HTTP status, body).
    pub async fn post_notify(
        &self,
        url: &str,
        fields: &BTreeMap<String, String>,
    ) -> (bool, u16, String) {
        self.post_raw_notify(url, document(fields)).await
    }

    /// Posts any body as a notify (tests use it for malformed and hostile documents).
    pub async fn post_raw_notify(&self, url: &str, body: String) -> (bool, u16, String) {
        self.state.notifies_sent.fetch_add(1, Ordering::SeqCst);
        self.post_xml(url, body).await
    }

    /// Posts a notify body, uncounted; returns (answered SUCCESS, HTTP status, body).
    pub(super) async fn post_xml(&self, url: &str, body: String) -> (bool, u16, String) {
        let sent = self
            .state
            .http
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await;
        let Ok(response) = sent else {
            return (false, 0, String::new());
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let success = status == 200
            && xml::parse(text.as_bytes())
                .ok()
                .and_then(|answer| answer.get("return_code").cloned())
                .is_some_and(|code| code == "SUCCESS");
        (success, status, text)
    }
}

//! `secapi/pay/refund` (pay.weixin.qq.com v2, jsapi.php?chapter=9_4): the merchant asks for money
//! back, WeChat Pay accepts the refund as PROCESSING and ends it later (SUCCESS, CHANGE or
//! REFUNDCLOSE, as the test's [`RefundMode`] says), then sends the refund notify (see
//! `refund_notify`).
//!
//! The business errors are the documented codes: ORDERNOTEXIST for an unknown or unpaid order
//! ("未支付的订单不能发起退款"), INVALID_TRANSACTIONID for an unknown transaction_id,
//! REFUND_FEE_MISMATCH ("订单金额或退款金额与之前请求不一致，请核实后再试") when total_fee is not the
//! order's or an out_refund_no comes back with other amounts, ERROR with its reason when the
//! refunds would exceed the order (NOTENOUGH is the merchant's balance, not the order's). The
//! same out_refund_no with the same amounts is the same refund answered again: "同一退款单号多次请求
//! 只退一笔".

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{PayOrder, Request, TradeState};
use crate::{Sandbox, lock};

/// `refund_status` of a refund: documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundStatus {
    #[serde(rename = "SUCCESS")]
    Success,
    /// Closed: the refund did not happen, the money stays with the merchant.
    #[serde(rename = "REFUNDCLOSE")]
    RefundClose,
    #[serde(rename = "PROCESSING")]
    Processing,
    /// The money could not go back (the user's card or account was closed): the merchant must
    /// refund another way.
    #[serde(rename = "CHANGE")]
    Change,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::RefundClose => "REFUNDCLOSE",
            Self::Processing => "PROCESSING",
            Self::Change => "CHANGE",
        }
    }
}

/// How the sandbox ends the refunds it accepts from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundMode {
    /// SUCCESS this long after the refund was accepted, then the notify.
    Succeed { after_ms: u64 },
    /// PROCESSING until [`Sandbox::settle_refund`] ends it.
    Hold,
    /// Ends CHANGE at once (the money could not go back).
    Change,
    /// Ends REFUNDCLOSE at once.
    Close,
}

impl Default for RefundMode {
    fn default() -> Self {
        Self::Succeed { after_ms: 100 }
    }
}

/// A refund as WeChat Pay holds it.
#[derive(Clone, Debug)]
pub struct Refund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    /// The order's amount and the part of it paid in cash (less a non-cash coupon).
    pub total_fee: i64,
    pub cash_fee: i64,
    pub refund_fee: i64,
    /// The cash part of the refund: `refund_fee / total_fee == cash_refund_fee / cash_fee`.
    pub cash_refund_fee: i64,
    /// REFUND_SOURCE_UNSETTLED_FUNDS (the default) or REFUND_SOURCE_RECHARGE_FUNDS.
    pub refund_account: String,
    /// Where the notify goes; empty: the request named none and no notify is sent (a real
    /// merchant may have one configured on the merchant platform; the sandbox has no platform).
    pub notify_url: String,
    pub status: RefundStatus,
    /// `yyyy-MM-dd HH:mm:ss`, China time: when WeChat Pay accepted the refund. The trade bill
    /// lists a refund on this day, not on its success day (see `bill`).
    pub requested_at: String,
    /// `yyyy-MM-dd HH:mm:ss`, China time, once SUCCESS.
    pub success_time: Option<String>,
    /// Asked for through API v3: its notification is v3's.
    pub v3: bool,
}

impl Refund {
    /// The non-cash coupon's share of the refund.
    pub fn coupon_refund_fee(&self) -> i64 {
        self.refund_fee - self.cash_refund_fee
    }
}

/// WeChat's refund ids: 29 digits starting `50`, with the date inside (as in
/// `50300004422020051700563716683`, bittercoffeetech/wechat-trade-js test data).
pub(super) fn new_refund_id() -> String {
    let date = (chrono::Utc::now() + chrono::Duration::hours(8)).format("%Y%m%d");
    format!(
        "503{:07}{date}{:011}",
        rand::random::<u32>() % 10_000_000,
        rand::random::<u64>() % 100_000_000_000
    )
}

/// `yyyy-MM-dd HH:mm:ss` in China time, as refunds write `success_time`.
pub(super) fn china_now_dashed() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The page WeChat Pay's front end answers a `secapi` request without a client certificate
/// with, before the API sees it: nginx's HTTP 400, as users report it verbatim
/// (zwczou/weixin-python#88 "400 No required SSL certificate was sent"; a certificate it does
/// not accept gets "400 The SSL certificate error", binarywang/weixin-java-pay-demo#60). There is
/// no XML `return_code` in it.
const NO_CERTIFICATE_PAGE: &str = "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// `secapi/pay/refund` on the plain listener: no client certificate can have been sent.
pub(super) async fn refund_without_certificate() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html")],
        NO_CERTIFICATE_PAGE,
    )
        .into_response()
}

/// What a refund request comes to.
pub(super) enum Outcome {
    /// Accepted: new (`true`) or the same refund asked for again.
    Accepted(Box<Refund>, bool),
    Refused(&'static str, &'static str),
}

fn fee(request: &Request, name: &str) -> Option<i64> {
    request.get(name).parse::<i64>().ok().filter(|fee| *fee > 0)
}

/// Merchant numbers: up to 64 of `[0-9A-Za-z_-|*@]` (documented for out_refund_no).
fn valid_refund_no(no: &str) -> bool {
    !no.is_empty()
        && no.len() <= 64
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
}

impl Sandbox {
    /// Chooses how the refunds accepted from now on end.
    pub fn set_refund_mode(&self, mode: RefundMode) {
        lock(&self.state.accounts).refund_mode = mode;
    }

    /// The refund as WeChat Pay has it.
    pub fn refund(&self, out_refund_no: &str) -> Option<Refund> {
        lock(&self.state.accounts)
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)
            .cloned()
    }

    /// Every refund of an order, in the order they were asked for.
    pub fn refunds_of(&self, out_trade_no: &str) -> Vec<Refund> {
        lock(&self.state.accounts)
            .refunds
            .iter()
            .filter(|r| r.out_trade_no == out_trade_no)
            .cloned()
            .collect()
    }

    /// Ends a PROCESSING refund with `status` (SUCCESS, CHANGE or REFUNDCLOSE) and sends its
    /// notify; false when there is no such refund, it has already ended, or `status` is
    /// PROCESSING. Needs a Tokio runtime (the notify is sent in the background).
    pub fn settle_refund(&self, out_refund_no: &str, status: RefundStatus) -> bool {
        if status == RefundStatus::Processing {
            return false;
        }
        let notify_url = {
            let mut accounts = lock(&self.state.accounts);
            let Some(refund) = accounts
                .refunds
                .iter_mut()
                .find(|r| r.out_refund_no == out_refund_no)
            else {
                return false;
            };
            if refund.status != RefundStatus::Processing {
                return false;
            }
            refund.status = status;
            if status == RefundStatus::Success {
                refund.success_time = Some(china_now_dashed());
            }
            refund.notify_url.clone()
        };
        let copies = self.notify_copies();
        if !notify_url.is_empty() && copies > 0 {
            let sandbox = self.clone();
            let no = out_refund_no.to_owned();
            tokio::spawn(async move {
                sandbox
                    .deliver_until_acknowledged(&no, copies, || sandbox.send_refund_notify(&no))
                    .await;
            });
        }
        true
    }

    /// Ends a new refund as the refund mode says.
    pub(super) fn schedule_refund_end(&self, out_refund_no: String) {
        let mode = lock(&self.state.accounts).refund_mode;
        let (delay_ms, status) = match mode {
            RefundMode::Hold => return,
            RefundMode::Succeed { after_ms } => (after_ms, RefundStatus::Success),
            RefundMode::Change => (0, RefundStatus::Change),
            RefundMode::Close => (0, RefundStatus::RefundClose),
        };
        let sandbox = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            sandbox.settle_refund(&out_refund_no, status);
        });
    }

    /// Decides a checked refund request against the orders and refunds, recording a new one.
    pub(super) fn decide_refund(
        &self,
        request: &Request,
        total_fee: i64,
        refund_fee: i64,
    ) -> Outcome {
        let mut accounts = lock(&self.state.accounts);
        // transaction_id wins over out_trade_no when both are given (documented).
        let transaction_id = request.get("transaction_id");
        let order: Option<&PayOrder> = if transaction_id.is_empty() {
            accounts.pay_orders.get(&request.get("out_trade_no"))
        } else {
            accounts
                .pay_orders
                .values()
                .find(|o| o.transaction_id.as_deref() == Some(transaction_id.as_str()))
        };
        let Some(order) = order.cloned() else {
            return if transaction_id.is_empty() {
                Outcome::Refused("ORDERNOTEXIST", "订单号不存在")
            } else {
                Outcome::Refused("INVALID_TRANSACTIONID", "无效transaction_id")
            };
        };
        if !order.state.was_paid() {
            return Outcome::Refused("ORDERNOTEXIST", "订单号不存在");
        }
        let out_trade_no = order.out_trade_no.clone();
        let out_refund_no = request.get("out_refund_no");
        if let Some(existing) = accounts
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)
        {
            return if existing.out_trade_no == out_trade_no
                && existing.refund_fee == refund_fee
                && existing.total_fee == total_fee
            {
                Outcome::Accepted(Box::new(existing.clone()), false)
            } else {
                Outcome::Refused(
                    "REFUND_FEE_MISMATCH",
                    "订单金额或退款金额与之前请求不一致，请核实后再试",
                )
            };
        }
        if order.total_fee != total_fee {
            return Outcome::Refused(
                "REFUND_FEE_MISMATCH",
                "订单金额或退款金额与之前请求不一致，请核实后再试",
            );
        }
        // A closed refund gave nothing back: its amount is refundable again.
        let refunded: i64 = accounts
            .refunds
            .iter()
            .filter(|r| r.out_trade_no == out_trade_no && r.status != RefundStatus::RefundClose)
            .map(|r| r.refund_fee)
            .sum();
        if refunded >= order.total_fee {
            // Captured: WxJava#693 ("errCode=ERROR, errCodeDes=订单已全额退款").
            return Outcome::Refused("ERROR", "订单已全额退款");
        }
        if refunded + refund_fee > order.total_fee {
            // ERROR "returns the specific reason" (9_4); this wording is ours, not captured.
            return Outcome::Refused("ERROR", "申请退款金额超过订单可退金额");
        }
        let cash_fee = order.total_fee - order.coupon_fee;
        let refund_account = match request.get("refund_account").as_str() {
            "" => "REFUND_SOURCE_UNSETTLED_FUNDS".to_owned(),
            named => named.to_owned(),
        };
        let refund = Refund {
            out_refund_no,
            refund_id: new_refund_id(),
            out_trade_no: out_trade_no.clone(),
            transaction_id: order.transaction_id.clone().unwrap_or_default(),
            total_fee: order.total_fee,
            cash_fee,
            refund_fee,
            cash_refund_fee: refund_fee * cash_fee / order.total_fee,
            refund_account,
            notify_url: request.get("notify_url"),
            status: RefundStatus::Processing,
            requested_at: china_now_dashed(),
            success_time: None,
            v3: request.v3,
        };
        accounts.refunds.push(refund.clone());
        if let Some(order) = accounts.pay_orders.get_mut(&out_trade_no) {
            order.state = TradeState::Refund;
        }
        Outcome::Accepted(Box::new(refund), true)
    }
}

/// The documented answer's fields for an accepted refund (9_4's example and
/// rwocj/wxpay-okhttp's captured HMAC answer: `refund_channel` empty, the coupon amounts 0).
fn answer_fields(refund: &Refund) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("result_code", "SUCCESS".to_owned()),
        ("transaction_id", refund.transaction_id.clone()),
        ("out_trade_no", refund.out_trade_no.clone()),
        ("out_refund_no", refund.out_refund_no.clone()),
        ("refund_id", refund.refund_id.clone()),
        ("refund_channel", String::new()),
        ("refund_fee", refund.refund_fee.to_string()),
        ("coupon_refund_fee", refund.coupon_refund_fee().to_string()),
        ("total_fee", refund.total_fee.to_string()),
        ("cash_fee", refund.cash_fee.to_string()),
        ("cash_refund_fee", refund.cash_refund_fee.to_string()),
    ];
    if refund.coupon_refund_fee() > 0 {
        // A non-cash coupon paid part: the merchant settles the cash parts.
        fields.extend([
            ("settlement_total_fee", refund.cash_fee.to_string()),
            ("settlement_refund_fee", refund.cash_refund_fee.to_string()),
            ("coupon_refund_count", "1".to_owned()),
            ("coupon_type_0", "NO_CASH".to_owned()),
            ("coupon_refund_id_0", "10000".to_owned()),
            (
                "coupon_refund_fee_0",
                refund.coupon_refund_fee().to_string(),
            ),
        ]);
    } else {
        fields.push(("coupon_refund_count", "0".to_owned()));
    }
    fields
}

pub(super) async fn refund(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.refunds.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(&request, "SYSTEMERROR", "系统超时");
    }
    let has_order =
        !request.get("transaction_id").is_empty() || !request.get("out_trade_no").is_empty();
    let fees = (fee(&request, "total_fee"), fee(&request, "refund_fee"));
    let (Some(total_fee), Some(refund_fee), true, true) = (
        fees.0,
        fees.1,
        has_order,
        valid_refund_no(&request.get("out_refund_no")),
    ) else {
        return sandbox.business_error(&request, "PARAM_ERROR", "参数错误");
    };
    let refund_fee_type = request.get("refund_fee_type");
    if !refund_fee_type.is_empty() && refund_fee_type != "CNY" {
        return sandbox.business_error(&request, "PARAM_ERROR", "参数错误");
    }
    match sandbox.decide_refund(&request, total_fee, refund_fee) {
        Outcome::Refused(code, description) => sandbox.business_error(&request, code, description),
        Outcome::Accepted(refund, new) => {
            if new {
                sandbox.schedule_refund_end(refund.out_refund_no.clone());
            }
            sandbox.pay_answer(&request, &answer_fields(&refund))
        }
    }
}

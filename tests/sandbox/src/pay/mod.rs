//! WeChat Pay as the merchant sees it, API v3 in `v3` and API v2 here: `pay/unifiedorder`, `pay/orderquery`,
//! `pay/closeorder`, `pay/downloadbill` (the day's trade bill), refunds (`secapi/pay/refund` on the mutual-TLS listener, `pay/refundquery`,
//! the refund notify), and the sandbox acting as a paying user (see `notify`).
//!
//! Its wire behaviour follows WeChat Pay's documentation, not our client: answers are signed with
//! the algorithm the request named (MD5 when it named none) and carry no `sign_type` field;
//! numbers are written bare and text as CDATA; failures of the request itself are
//! `return_code` FAIL with the documented `return_msg` texts, business failures `result_code`
//! FAIL with the documented `err_code` and `err_code_des`. The conformance tables of the
//! `wechat-protocol` crate hold the documented and captured messages this is checked against.

mod bill;
mod notify;
mod order;
mod refund;
mod refund_notify;
mod refund_query;
pub(crate) mod v3;

pub use bill::{BillRow, BillType};
use order::Placement;
pub use order::{NotifyStyle, PayOrder, TradeState};
pub use refund::{Refund, RefundMode, RefundStatus};
pub use v3::V3Signature;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::xml::{self, Value};

use crate::{Sandbox, lock};

/// The calls both listeners serve.
fn common_routes() -> Router<Sandbox> {
    Router::new()
        .route("/pay/unifiedorder", post(unified_order))
        .route("/pay/orderquery", post(order_query))
        .route("/pay/closeorder", post(close_order))
        .route("/pay/refundquery", post(refund_query::refund_query))
        .route("/pay/downloadbill", post(bill::download_bill))
        .merge(v3::routes())
}

/// The plain listener's pay calls: `secapi` answers as to a request without a certificate.
pub(crate) fn routes() -> Router<Sandbox> {
    common_routes().route(
        "/secapi/pay/refund",
        post(refund::refund_without_certificate),
    )
}

/// The mutual-TLS listener's pay calls: the same, and the refund itself.
pub(crate) fn secapi_routes() -> Router<Sandbox> {
    common_routes().route("/secapi/pay/refund", post(refund::refund))
}

/// Fields WeChat Pay writes as bare numbers; everything else is CDATA.
fn is_numeric_field(name: &str) -> bool {
    matches!(
        name,
        "total_fee"
            | "cash_fee"
            | "coupon_fee"
            | "coupon_count"
            | "settlement_total_fee"
            | "refund_fee"
            | "cash_refund_fee"
            | "coupon_refund_fee"
            | "coupon_refund_count"
            | "settlement_refund_fee"
            | "refund_count"
            | "total_refund_count"
    ) || [
        "coupon_fee_",
        "refund_fee_",
        "settlement_refund_fee_",
        "coupon_refund_fee_",
        "coupon_refund_count_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Writes a WeChat Pay document as WeChat Pay does.
pub fn document(fields: &BTreeMap<String, String>) -> String {
    let values: Vec<(&str, Value<'_>)> = fields
        .iter()
        .map(|(k, v)| {
            let value = match v.parse::<i64>() {
                Ok(number) if is_numeric_field(k) => Value::Number(number),
                _ => Value::Text(v.as_str()),
            };
            (k.as_str(), value)
        })
        .collect();
    xml::write(&values)
}

fn xml_response(fields: &BTreeMap<String, String>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/xml")],
        document(fields),
    )
        .into_response()
}

/// A failure of the request itself: unsigned, as WeChat Pay answers it.
fn return_fail(message: &str) -> Response {
    let mut fields = BTreeMap::new();
    fields.insert("return_code".to_owned(), "FAIL".to_owned());
    fields.insert("return_msg".to_owned(), message.to_owned());
    xml_response(&fields)
}

fn owned(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn nonce_str() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A merchant request that passed the checks: its fields and the algorithm it was signed with.
struct Request {
    fields: BTreeMap<String, String>,
    sign_type: SignType,
    /// Came through API v3 (its fields read from the JSON body).
    v3: bool,
}

impl Request {
    fn get(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }
}

impl Sandbox {
    /// Signs a WeChat Pay document with the merchant key, adding `sign`.
    pub fn pay_sign(&self, fields: &mut BTreeMap<String, String>, sign_type: SignType) {
        fields.remove("sign");
        let sign = pay::sign(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.state.cfg.pay_key,
            sign_type,
        );
        fields.insert("sign".to_owned(), sign);
    }

    /// A signed SUCCESS answer with the common fields, plus `extra`; no `sign_type` field, and
    /// signed with the request's algorithm.
    fn pay_answer(&self, request: &Request, extra: &[(&str, String)]) -> Response {
        let cfg = &self.state.cfg;
        let mut fields = owned(&[
            ("return_code", "SUCCESS".to_owned()),
            ("return_msg", "OK".to_owned()),
            ("appid", cfg.appid.clone()),
            ("mch_id", cfg.mch_id.clone()),
            ("nonce_str", nonce_str()),
        ]);
        let device_info = request.get("device_info");
        if !device_info.is_empty() {
            fields.insert("device_info".to_owned(), device_info);
        }
        fields.extend(owned(extra));
        self.pay_sign(&mut fields, request.sign_type);
        xml_response(&fields)
    }

    fn business_error(&self, request: &Request, code: &str, description: &str) -> Response {
        self.pay_answer(
            request,
            &[
                ("result_code", "FAIL".to_owned()),
                ("err_code", code.to_owned()),
                ("err_code_des", description.to_owned()),
            ],
        )
    }

    /// Checks a merchant request as WeChat Pay does: UTF-8 XML, a known sign type, the
    /// signature by the algorithm the request names, then appid and mch_id.
    fn check_request(&self, body: &[u8]) -> Result<Request, Box<Response>> {
        if body.is_empty() {
            return Err(Box::new(return_fail("post数据为空")));
        }
        if std::str::from_utf8(body).is_err() {
            return Err(Box::new(return_fail("编码格式错误")));
        }
        let Ok(fields) = xml::parse(body) else {
            return Err(Box::new(return_fail("XML格式错误")));
        };
        // A request names its algorithm; none means MD5.
        let Some(sign_type) = SignType::parse(fields.get("sign_type").map(String::as_str)) else {
            return Err(Box::new(return_fail("sign_type参数错误")));
        };
        if pay::verify(&fields, &self.state.cfg.pay_key, sign_type).is_err() {
            return Err(Box::new(return_fail("签名错误")));
        }
        if fields.get("appid") != Some(&self.state.cfg.appid) {
            return Err(Box::new(return_fail("appid和mch_id不匹配")));
        }
        if fields.get("mch_id") != Some(&self.state.cfg.mch_id) {
            return Err(Box::new(return_fail("mch_id参数格式错误")));
        }
        Ok(Request {
            fields,
            sign_type,
            v3: false,
        })
    }

    fn system_error_injected(&self) -> bool {
        let mut faults = lock(&self.state.faults);
        if faults.pay_system_errors > 0 {
            faults.pay_system_errors -= 1;
            return true;
        }
        false
    }

    /// The order as WeChat Pay has it.
    pub fn pay_order(&self, out_trade_no: &str) -> Option<PayOrder> {
        lock(&self.state.accounts)
            .pay_orders
            .get(out_trade_no)
            .cloned()
    }

    /// Puts an order in a trade state, as the user, the bank or a refund would (tests of the
    /// merchant's reconciler). A state in which money was taken gets a transaction id.
    pub fn set_trade_state(&self, out_trade_no: &str, state: TradeState) -> bool {
        let mut accounts = lock(&self.state.accounts);
        let Some(order) = accounts.pay_orders.get_mut(out_trade_no) else {
            return false;
        };
        order.state = state;
        if state.was_paid() && order.transaction_id.is_none() {
            order.transaction_id = Some(notify::new_transaction_id());
            order.time_end = Some(notify::china_now());
        }
        true
    }

    /// Sets an order's creation time back (tests of closing rules).
    pub fn age_pay_order(&self, out_trade_no: &str, seconds: i64) {
        if let Some(order) = lock(&self.state.accounts).pay_orders.get_mut(out_trade_no) {
            order.created_at -= seconds;
        }
    }
}

async fn unified_order(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.unified_orders.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(&request, "SYSTEMERROR", "系统错误");
    }
    let required = [
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
        "nonce_str",
    ];
    if required.iter().any(|name| request.get(name).is_empty()) {
        return sandbox.business_error(&request, "LACK_PARAMS", "缺少参数");
    }
    let total_fee = request
        .get("total_fee")
        .parse::<i64>()
        .ok()
        .filter(|fee| *fee > 0);
    let out_trade_no = request.get("out_trade_no");
    let valid_no = out_trade_no.len() <= 32
        && out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    let (Some(total_fee), true) = (total_fee, valid_no) else {
        return sandbox.business_error(&request, "INVALID_REQUEST", "参数错误");
    };
    if request.get("trade_type") != "JSAPI" || request.get("openid").is_empty() {
        return sandbox.business_error(&request, "INVALID_REQUEST", "JSAPI支付必须传openid");
    }
    if request.get("body").chars().count() > 127 || request.get("attach").chars().count() > 127 {
        return sandbox.business_error(&request, "INVALID_REQUEST", "参数错误");
    }
    let order = PayOrder {
        attach: request.get("attach"),
        device_info: request.get("device_info"),
        sign_type: request.sign_type,
        ..PayOrder::unpaid(
            out_trade_no,
            total_fee,
            request.get("openid"),
            request.get("body"),
            request.get("notify_url"),
        )
    };
    let (code, description) = match sandbox.place_order(order) {
        Placement::Placed(prepay_id) => {
            return sandbox.pay_answer(
                &request,
                &[
                    ("result_code", "SUCCESS".into()),
                    ("trade_type", "JSAPI".into()),
                    ("prepay_id", prepay_id),
                ],
            );
        }
        Placement::AlreadyPaid => ("ORDERPAID", "商户订单已支付"),
        Placement::AlreadyClosed => ("ORDERCLOSED", "订单已关闭"),
        Placement::NumberUsed => ("INVALID_REQUEST", "201 商户订单号重复"),
    };
    sandbox.business_error(&request, code, description)
}

async fn order_query(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.order_queries.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(&request, "SYSTEMERROR", "系统错误");
    }
    let Some(order) = sandbox.pay_order(&request.get("out_trade_no")) else {
        return sandbox.business_error(&request, "ORDERNOTEXIST", "此交易订单号不存在");
    };
    let mut extra = vec![
        ("result_code", "SUCCESS".to_owned()),
        ("out_trade_no", order.out_trade_no.clone()),
        ("trade_state", order.state.as_str().to_owned()),
        ("trade_state_desc", order.state.description().to_owned()),
        ("total_fee", order.total_fee.to_string()),
    ];
    if !order.attach.is_empty() {
        extra.push(("attach", order.attach.clone()));
    }
    if order.state.was_paid() {
        extra.extend(notify::payment_fields(&order));
    }
    sandbox.pay_answer(&request, &extra)
}

async fn close_order(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.close_orders.fetch_add(1, Ordering::SeqCst);
    let out_trade_no = request.get("out_trade_no");
    let mut accounts = lock(&sandbox.state.accounts);
    let Some(order) = accounts.pay_orders.get_mut(&out_trade_no) else {
        drop(accounts);
        return sandbox.business_error(&request, "ORDERNOTEXIST", "订单不存在");
    };
    // v2 refuses to close an order younger than 5 minutes.
    if chrono::Utc::now().timestamp() - order.created_at < 300 {
        drop(accounts);
        return sandbox.business_error(
            &request,
            "SYSTEMERROR",
            "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟",
        );
    }
    let answer = match order.state {
        TradeState::Success | TradeState::Refund => Err(("ORDERPAID", "订单已支付")),
        TradeState::Closed | TradeState::Revoked => Err(("ORDERCLOSED", "订单已关闭")),
        TradeState::NotPay | TradeState::UserPaying | TradeState::PayError => {
            order.state = TradeState::Closed;
            Ok(())
        }
    };
    drop(accounts);
    match answer {
        // The documented close answer also says the result in words.
        Ok(()) => sandbox.pay_answer(
            &request,
            &[
                ("result_code", "SUCCESS".to_owned()),
                ("result_msg", "OK".to_owned()),
            ],
        ),
        Err((code, description)) => sandbox.business_error(&request, code, description),
    }
}

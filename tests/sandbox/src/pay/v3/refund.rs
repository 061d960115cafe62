//! API v3 refunds: `POST /v3/refund/domestic/refunds` and the query by merchant refund number,
//! decided by the same rules as v2's refunds (one merchant, one set of refunds), and the
//! `REFUND.*` notification when a refund ends (the refund, AES-256-GCM encrypted).

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use wechat_protocol::pay::SignType;
use wechat_protocol::pay_v3::{Notification, encrypt_resource};

use super::super::notify::china_now;
use super::super::refund::Outcome;
use super::super::refund_notify::RECEIVED_BY;
use super::super::{Refund, RefundStatus, Request, nonce_str};
use super::{Signed, china_rfc3339, text};
use crate::Sandbox;

/// v3's name of a refund state.
fn v3_refund_status(status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Success => "SUCCESS",
        RefundStatus::RefundClose => "CLOSED",
        RefundStatus::Processing => "PROCESSING",
        RefundStatus::Change => "ABNORMAL",
    }
}

/// `yyyy-MM-dd HH:mm:ss` (China time) as v3 writes it.
fn dashed_to_rfc3339(time: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
        .map(|time| format!("{}+08:00", time.format("%Y-%m-%dT%H:%M:%S")))
        .unwrap_or_default()
}

/// The refund as v3's refund answer and query report it.
fn refund_answer(refund: &Refund) -> Value {
    let mut answer = json!({
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": refund.transaction_id,
        "out_trade_no": refund.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": RECEIVED_BY,
        "create_time": dashed_to_rfc3339(&refund.requested_at),
        "status": v3_refund_status(refund.status),
        "funds_account": "UNSETTLED",
        "amount": {
            "total": refund.total_fee,
            "refund": refund.refund_fee,
            "payer_total": refund.cash_fee,
            "payer_refund": refund.cash_refund_fee,
            "settlement_total": refund.cash_fee,
            "settlement_refund": refund.cash_refund_fee,
            "discount_refund": refund.coupon_refund_fee(),
            "currency": "CNY",
            "refund_fee": 0,
        },
    });
    if let Some(success_time) = &refund.success_time {
        answer["success_time"] = json!(dashed_to_rfc3339(success_time));
    }
    answer
}

impl Sandbox {
    /// One v3 refund notification delivery; true when the merchant answered 200 or 204.
    pub(crate) async fn send_v3_refund_notify(&self, refund: &Refund) -> bool {
        if refund.notify_url.is_empty() {
            return false;
        }
        let cfg = &self.state.cfg;
        let status = v3_refund_status(refund.status);
        let mut resource = json!({
            "mchid": cfg.mch_id,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": status,
            "user_received_account": RECEIVED_BY,
            "amount": {
                "total": refund.total_fee,
                "refund": refund.refund_fee,
                "payer_total": refund.cash_fee,
                "payer_refund": refund.cash_refund_fee,
            },
        });
        if let Some(success_time) = &refund.success_time {
            resource["success_time"] = json!(dashed_to_rfc3339(success_time));
        }
        let plaintext = resource.to_string();
        let nonce: String = nonce_str().chars().take(12).collect();
        let Ok(encrypted) = encrypt_resource(
            cfg.api_v3_key.as_bytes(),
            &nonce,
            "refund",
            "refund",
            plaintext.as_bytes(),
        ) else {
            return false;
        };
        let notification = Notification {
            id: format!("EV-2018022511223320873{:016}", rand::random::<u32>()),
            create_time: china_rfc3339(&china_now()),
            event_type: format!("REFUND.{status}"),
            resource_type: "encrypt-resource".to_owned(),
            summary: "退款成功".to_owned(),
            resource: encrypted,
        };
        let Ok(body) = serde_json::to_string(&notification) else {
            return false;
        };
        let Ok(signature) = self.v3_sign(chrono::Utc::now().timestamp(), body.as_bytes()) else {
            return false;
        };
        self.state
            .refund_notifies_sent
            .fetch_add(1, Ordering::SeqCst);
        let (status, _) = self
            .post_v3_notify(&refund.notify_url, &body, &signature)
            .await;
        matches!(status, 200 | 204)
    }
}

pub(super) async fn refund(
    State(sandbox): State<Sandbox>,
    Signed { body, .. }: Signed,
) -> Response {
    sandbox.state.refunds.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = sandbox.v3_fault("系统超时") {
        return fault;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "请求体格式错误");
    };
    let amount = |name: &str| {
        request
            .pointer(&format!("/amount/{name}"))
            .and_then(Value::as_i64)
            .filter(|fee| *fee > 0)
    };
    let currency = text(&request, "/amount/currency");
    let fields: std::collections::BTreeMap<String, String> = [
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "notify_url",
    ]
    .iter()
    .map(|name| {
        (
            (*name).to_owned(),
            text(&request, &format!("/{name}")).to_owned(),
        )
    })
    .collect();
    let has_order = !fields["transaction_id"].is_empty() || !fields["out_trade_no"].is_empty();
    let (Some(total), Some(refund_fee), true, true, "CNY") = (
        amount("total"),
        amount("refund"),
        has_order,
        !fields["out_refund_no"].is_empty() && fields["out_refund_no"].len() <= 64,
        currency,
    ) else {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "参数错误");
    };
    let request = Request {
        fields,
        sign_type: SignType::HmacSha256,
        v3: true,
    };
    match sandbox.decide_refund(&request, total, refund_fee) {
        Outcome::Refused("ORDERNOTEXIST" | "INVALID_TRANSACTIONID", _) => {
            sandbox.v3_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "订单不存在")
        }
        Outcome::Refused(_, message) => {
            sandbox.v3_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
        }
        Outcome::Accepted(refund, new) => {
            if new {
                sandbox.schedule_refund_end(refund.out_refund_no.clone());
            }
            sandbox.v3_answer(StatusCode::OK, Some(refund_answer(&refund)))
        }
    }
}

pub(super) async fn query_refund(
    State(sandbox): State<Sandbox>,
    Path(out_refund_no): Path<String>,
    _: Signed,
) -> Response {
    sandbox.state.refund_queries.fetch_add(1, Ordering::SeqCst);
    match sandbox.refund(&out_refund_no) {
        Some(refund) => sandbox.v3_answer(StatusCode::OK, Some(refund_answer(&refund))),
        None => sandbox.v3_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", "退款单不存在"),
    }
}

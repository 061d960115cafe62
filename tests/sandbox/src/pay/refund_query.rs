//! `pay/refundquery` (pay.weixin.qq.com v2, jsapi.php?chapter=9_5): the refunds of an order, or
//! one refund, with the `_$n` fields numbered from 0 in the order they were asked for. One of
//! refund_id, out_refund_no, transaction_id, out_trade_no names what to list, in that order of
//! precedence (documented); by refund it lists that refund, by order all of the order's.
//!
//! Nothing found is result_code FAIL, err_code REFUNDNOTEXIST with err_code_des "not exist", as
//! real answers captured on developers.weixin.qq.com show it (the documentation's description
//! is "退款订单查询失败").

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::refund_notify::RECEIVED_BY;
use super::{Refund, RefundStatus, Request};
use crate::{Sandbox, lock};

impl Sandbox {
    /// The refunds a refundquery names, oldest first.
    fn queried_refunds(&self, request: &Request) -> Vec<Refund> {
        let accounts = lock(&self.state.accounts);
        let refunds = accounts.refunds.iter();
        let matching: Vec<Refund> = [
            ("refund_id", request.get("refund_id")),
            ("out_refund_no", request.get("out_refund_no")),
            ("transaction_id", request.get("transaction_id")),
            ("out_trade_no", request.get("out_trade_no")),
        ]
        .into_iter()
        .find(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            refunds
                .filter(|r| match name {
                    "refund_id" => r.refund_id == value,
                    "out_refund_no" => r.out_refund_no == value,
                    "transaction_id" => r.transaction_id == value,
                    _ => r.out_trade_no == value,
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
        matching
    }
}

/// The `_$n` fields of one refund.
fn numbered(n: usize, refund: &Refund) -> Vec<(String, String)> {
    let mut fields = vec![
        (format!("out_refund_no_{n}"), refund.out_refund_no.clone()),
        (format!("refund_id_{n}"), refund.refund_id.clone()),
        (format!("refund_channel_{n}"), "ORIGINAL".to_owned()),
        (format!("refund_fee_{n}"), refund.refund_fee.to_string()),
        (
            format!("refund_status_{n}"),
            refund.status.as_str().to_owned(),
        ),
        (format!("refund_account_{n}"), refund.refund_account.clone()),
        (format!("refund_recv_accout_{n}"), RECEIVED_BY.to_owned()),
    ];
    if refund.status == RefundStatus::Success {
        fields.push((
            format!("refund_success_time_{n}"),
            refund.success_time.clone().unwrap_or_default(),
        ));
    }
    if refund.coupon_refund_fee() > 0 {
        fields.extend([
            (
                format!("settlement_refund_fee_{n}"),
                refund.cash_refund_fee.to_string(),
            ),
            (
                format!("coupon_refund_fee_{n}"),
                refund.coupon_refund_fee().to_string(),
            ),
            (format!("coupon_refund_count_{n}"), "1".to_owned()),
            (format!("coupon_type_{n}_0"), "NO_CASH".to_owned()),
            (format!("coupon_refund_id_{n}_0"), "10000".to_owned()),
            (
                format!("coupon_refund_fee_{n}_0"),
                refund.coupon_refund_fee().to_string(),
            ),
        ]);
    }
    fields
}

pub(super) async fn refund_query(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.refund_queries.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(&request, "SYSTEMERROR", "系统错误");
    }
    let refunds = sandbox.queried_refunds(&request);
    let Some(first) = refunds.first() else {
        return sandbox.business_error(&request, "REFUNDNOTEXIST", "not exist");
    };
    let mut extra: Vec<(String, String)> = vec![
        ("result_code".into(), "SUCCESS".into()),
        ("transaction_id".into(), first.transaction_id.clone()),
        ("out_trade_no".into(), first.out_trade_no.clone()),
        ("total_fee".into(), first.total_fee.to_string()),
        ("cash_fee".into(), first.cash_fee.to_string()),
        ("refund_count".into(), refunds.len().to_string()),
        (
            "refund_fee".into(),
            refunds
                .iter()
                .map(|r| r.refund_fee)
                .sum::<i64>()
                .to_string(),
        ),
    ];
    if first.cash_fee != first.total_fee {
        extra.push(("settlement_total_fee".into(), first.cash_fee.to_string()));
    }
    for (n, refund) in refunds.iter().enumerate() {
        extra.extend(numbered(n, refund));
    }
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    sandbox.pay_answer(&request, &extra)
}

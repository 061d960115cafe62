//! The sandbox's own control API, for the demo and for tests in other processes:
//! faults, counters, and acting as a user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{EditFaults, EditSettings, Faults, Sandbox};

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/faults", post(set_faults))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/template-messages", get(template_messages))
        .route("/_sandbox/revoke-token", post(revoke_token))
        .route("/_sandbox/scan", post(scan))
        .route("/_sandbox/pay", post(pay))
        .route("/_sandbox/notify-mode", post(notify_mode))
        .route("/_sandbox/notify-style", post(notify_style))
        .route("/_sandbox/trade-state", post(trade_state))
        .route("/_sandbox/refund-mode", post(refund_mode))
        .route("/_sandbox/settle-refund", post(settle_refund))
        .route("/_sandbox/bill-row", post(bill_row))
        .route("/_sandbox/time-end", post(time_end))
        .route("/_sandbox/refund-time", post(refund_time))
        .route("/_sandbox/dashscope/edit/settings", post(edit_settings))
        .route("/_sandbox/dashscope/edit/faults", post(edit_faults))
        .route("/_sandbox/dashscope/edit/stats", get(edit_stats))
        .route(
            "/_sandbox/dashscope/edit/expire-results",
            post(expire_edit_results),
        )
}

#[derive(Deserialize)]
struct PayIn {
    /// out_trade_no or prepay_id.
    order: String,
}

async fn pay(State(sandbox): State<Sandbox>, Json(input): Json<PayIn>) -> Response {
    match sandbox.pay(&input.order).await {
        Some(transaction_id) => Json(json!({ "transaction_id": transaction_id })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "unknown order" })),
        )
            .into_response(),
    }
}

async fn notify_mode(
    State(sandbox): State<Sandbox>,
    Json(mode): Json<crate::NotifyMode>,
) -> StatusCode {
    sandbox.set_notify_mode(mode);
    StatusCode::NO_CONTENT
}

async fn notify_style(
    State(sandbox): State<Sandbox>,
    Json(style): Json<crate::pay::NotifyStyle>,
) -> StatusCode {
    sandbox.set_notify_style(style);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct TradeStateIn {
    out_trade_no: String,
    state: crate::pay::TradeState,
}

async fn trade_state(
    State(sandbox): State<Sandbox>,
    Json(input): Json<TradeStateIn>,
) -> StatusCode {
    if sandbox.set_trade_state(&input.out_trade_no, input.state) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn refund_mode(
    State(sandbox): State<Sandbox>,
    Json(mode): Json<crate::RefundMode>,
) -> StatusCode {
    sandbox.set_refund_mode(mode);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SettleRefundIn {
    out_refund_no: String,
    /// SUCCESS, CHANGE or REFUNDCLOSE.
    status: crate::RefundStatus,
}

/// Ends a held refund; 409 when it is unknown, already ended, or the status is PROCESSING.
async fn settle_refund(
    State(sandbox): State<Sandbox>,
    Json(input): Json<SettleRefundIn>,
) -> StatusCode {
    if sandbox.settle_refund(&input.out_refund_no, input.status) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CONFLICT
    }
}

/// Puts a transaction in the bill of its day (one the merchant never saw).
async fn bill_row(State(sandbox): State<Sandbox>, Json(row): Json<crate::BillRow>) -> StatusCode {
    sandbox.add_bill_row(row);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct TimeEndIn {
    out_trade_no: String,
    /// `yyyyMMddHHmmss`, China time.
    time_end: String,
}

/// Moves an order's payment to another day; 404 for an unknown order.
async fn time_end(State(sandbox): State<Sandbox>, Json(input): Json<TimeEndIn>) -> StatusCode {
    if sandbox.set_time_end(&input.out_trade_no, &input.time_end) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct RefundTimeIn {
    out_refund_no: String,
    /// `yyyy-MM-dd HH:mm:ss`, China time.
    time: String,
}

/// Moves a refund to another day; 404 for an unknown refund.
async fn refund_time(
    State(sandbox): State<Sandbox>,
    Json(input): Json<RefundTimeIn>,
) -> StatusCode {
    if sandbox.set_refund_time(&input.out_refund_no, &input.time) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn set_faults(State(sandbox): State<Sandbox>, Json(faults): Json<Faults>) -> StatusCode {
    sandbox.set_faults(faults);
    StatusCode::NO_CONTENT
}

async fn stats(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.stats()).into_response()
}

/// The template messages accepted so far, oldest first.
async fn template_messages(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.template_messages()).into_response()
}

async fn revoke_token(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.revoke_current_token();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ScanIn {
    ticket: String,
    openid: String,
    push_url: String,
}

async fn scan(State(sandbox): State<Sandbox>, Json(input): Json<ScanIn>) -> Response {
    match sandbox
        .scan(&input.push_url, &input.ticket, &input.openid)
        .await
    {
        Ok(reply) => Json(json!({
            "status": reply.status,
            "reply": reply.content(),
        }))
        .into_response(),
        Err(err) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": err.to_string() })),
        )
            .into_response(),
    }
}

async fn edit_settings(
    State(sandbox): State<Sandbox>,
    Json(settings): Json<EditSettings>,
) -> StatusCode {
    sandbox.set_edit_settings(settings);
    StatusCode::NO_CONTENT
}

async fn edit_faults(State(sandbox): State<Sandbox>, Json(faults): Json<EditFaults>) -> StatusCode {
    sandbox.set_edit_faults(faults);
    StatusCode::NO_CONTENT
}

async fn edit_stats(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.edit_stats()).into_response()
}

async fn expire_edit_results(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.expire_edit_results();
    StatusCode::NO_CONTENT
}

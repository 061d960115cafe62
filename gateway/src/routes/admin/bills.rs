//! A day of the bill reconciliation: its report with every difference, and checking it now.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use proto::membership::v1 as membership;

use crate::AppState;
use crate::admin::AdminSession;
use crate::error::ApiError;
use crate::routes::admin::lists::bill_check_json;

fn report_json(report: membership::BillReport) -> Value {
    let fen = |fee: i64| (fee >= 0).then_some(fee);
    json!({
        "check": report.check.map(bill_check_json),
        "differences": report.differences.into_iter().map(|d| json!({
            "kind": d.kind,
            "order_no": Some(d.order_no).filter(|no| !no.is_empty()),
            "refund_no": Some(d.refund_no).filter(|no| !no.is_empty()),
            "wechat_fee": fen(d.wechat_fee),
            "our_fee": fen(d.our_fee),
        })).collect::<Vec<_>>(),
    })
}

/// A checked day: the bill's totals, and each difference between it and our orders and refunds
/// (kind, order, refund, both amounts in fen).
#[utoipa::path(get, path = "/api/v1/admin/bills/{bill_date}", operation_id = "admin_bill_report",
    params(("bill_date" = String, Path, description = "the bill's day, China time, YYYY-MM-DD")),
    security(("admin_session" = [])),
    responses((status = 200, description = "`check` and its `differences`", body = serde_json::Value),
        (status = 400, description = "not a day"), (status = 401),
        (status = 404, description = "the day was not checked"), (status = 503)))]
pub async fn report(
    State(state): State<AppState>,
    _session: AdminSession,
    Path(bill_date): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = state
        .clients
        .admin
        .clone()
        .get_bill_report(membership::BillDateRequest { bill_date })
        .await?
        .into_inner();
    Ok(Json(report_json(report)))
}

/// Fetches WeChat Pay's bill of the day and compares it now (again, if checked before). The daily
/// job does the same for yesterday every morning.
#[utoipa::path(post, path = "/api/v1/admin/bills/{bill_date}/check", operation_id = "admin_check_bill",
    params(("bill_date" = String, Path, description = "the bill's day, China time, YYYY-MM-DD")),
    security(("admin_session" = [])),
    responses((status = 200, description = "the day's report: `check` and its `differences`", body = serde_json::Value),
        (status = 400, description = "not a day, or today or later (a bill exists from the next day)"),
        (status = 401), (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 502, description = "wechatpay_unavailable: the bill could not be fetched or read; the day is marked failed"),
        (status = 503)))]
pub async fn check(
    State(state): State<AppState>,
    session: AdminSession,
    Path(bill_date): Path<String>,
) -> Result<Json<Value>, ApiError> {
    tracing::info!(admin = session.username, bill_date, "bill check asked for");
    let report = state
        .clients
        .admin
        .clone()
        .check_bill(membership::BillDateRequest { bill_date })
        .await?
        .into_inner();
    Ok(Json(report_json(report)))
}

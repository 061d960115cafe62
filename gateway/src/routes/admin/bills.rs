//! A day of the bill reconciliation: its report with every difference, and checking it now.

use axum::Json;
use axum::extract::{Path, State};

use proto::membership::v1 as membership;

use super::rows::BillReportOut;
use crate::AppState;
use crate::admin::AdminSession;
use crate::error::ApiError;

/// A checked day: the bill's totals, and each difference between it and our orders and refunds
/// (kind, order, refund, both amounts in fen).
#[utoipa::path(get, path = "/api/v1/admin/bills/{bill_date}", operation_id = "admin_bill_report",
    params(("bill_date" = String, Path, description = "the bill's day, China time, YYYY-MM-DD")),
    security(("admin_session" = [])),
    responses((status = 200, description = "`check` and its `differences`", body = BillReportOut),
        (status = 400, description = "not a day"), (status = 401),
        (status = 404, description = "the day was not checked"), (status = 503)))]
pub async fn report(
    State(state): State<AppState>,
    _session: AdminSession,
    Path(bill_date): Path<String>,
) -> Result<Json<BillReportOut>, ApiError> {
    let report = state
        .clients
        .admin
        .clone()
        .get_bill_report(membership::BillDateRequest { bill_date })
        .await?
        .into_inner();
    Ok(Json(report.into()))
}

/// Fetches WeChat Pay's bill of the day and compares it now (again, if checked before). The daily
/// job does the same for yesterday every morning.
#[utoipa::path(post, path = "/api/v1/admin/bills/{bill_date}/check", operation_id = "admin_check_bill",
    params(("bill_date" = String, Path, description = "the bill's day, China time, YYYY-MM-DD")),
    security(("admin_session" = [])),
    responses((status = 200, description = "the day's report: `check` and its `differences`", body = BillReportOut),
        (status = 400, description = "not a day, or today or later (a bill exists from the next day)"),
        (status = 401), (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 502, description = "wechatpay_unavailable: the bill could not be fetched or read; the day is marked failed"),
        (status = 503)))]
pub async fn check(
    State(state): State<AppState>,
    session: AdminSession,
    Path(bill_date): Path<String>,
) -> Result<Json<BillReportOut>, ApiError> {
    tracing::info!(admin = session.username, bill_date, "bill check asked for");
    let report = state
        .clients
        .admin
        .clone()
        .check_bill(membership::BillDateRequest { bill_date })
        .await?
        .into_inner();
    Ok(Json(report.into()))
}

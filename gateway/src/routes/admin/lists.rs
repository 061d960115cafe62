//! The admin API's lists: users, orders and bindings, a page at a time as JSON, or the whole
//! filtered list as a CSV file (`format=csv`). Each needs the admin session.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use proto::membership::v1 as membership;

use crate::AppState;
use crate::admin::AdminSession;
use crate::error::ApiError;
use crate::routes::rfc3339_if_set;

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Users only: an openid prefix.
    pub openid: Option<String>,
    /// Orders only: `notpay`, `paid`, `closed`, `failed`.
    pub status: Option<String>,
    /// Refunds only: one order's refunds.
    pub order_no: Option<String>,
    #[serde(default)]
    pub offset: u32,
    /// 50 by default, at most 200.
    pub limit: Option<u32>,
    /// `csv`: every row the filter matches (offset and limit ignored), as a file.
    pub format: Option<String>,
}

/// Rows one page call asks membership for while exporting (its largest page).
const EXPORT_PAGE: u32 = 200;
/// Most rows one export carries; a longer list is cut there and says so in `X-Xintu-Truncated`.
const EXPORT_MAX_ROWS: u64 = 100_000;

/// One page of a list: the number of rows the filter matches, and this page's rows.
struct Page {
    total: u64,
    rows: Vec<Value>,
}

/// A list: its name (the JSON key and the file name), its CSV columns (keys of each row, in
/// order) and how to read one page of it.
struct List<'a> {
    name: &'static str,
    columns: &'static [&'static str],
    state: &'a AppState,
    query: &'a ListQuery,
}

impl List<'_> {
    async fn answer<F>(self, read: F) -> Result<Response, ApiError>
    where
        F: AsyncFn(&AppState, &ListQuery, membership::Page) -> Result<Page, ApiError>,
    {
        match self.query.format.as_deref() {
            None | Some("json") => {
                let page = membership::Page {
                    offset: self.query.offset,
                    limit: self.query.limit.unwrap_or(50),
                };
                let page = read(self.state, self.query, page).await?;
                Ok(Json(json!({ "total": page.total, self.name: page.rows })).into_response())
            }
            Some("csv") => self.export(read).await,
            Some(other) => Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("format must be json or csv, not {other:?}"),
            )),
        }
    }

    /// Every row the filter matches, page by page, as one CSV file (UTF-8 with a byte-order
    /// mark, which spreadsheet programs need to read Chinese text).
    async fn export<F>(self, read: F) -> Result<Response, ApiError>
    where
        F: AsyncFn(&AppState, &ListQuery, membership::Page) -> Result<Page, ApiError>,
    {
        let mut file = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
        let write_failed = |err: csv::Error| {
            tracing::error!(error = %err, "csv export failed");
            ApiError::new(ErrorCode::Internal, "the export could not be written")
        };
        file.write_record(self.columns).map_err(write_failed)?;
        let mut written: u64 = 0;
        let mut total = 0;
        loop {
            let page = membership::Page {
                offset: u32::try_from(written).unwrap_or(u32::MAX),
                limit: EXPORT_PAGE,
            };
            let page = read(self.state, self.query, page).await?;
            total = total.max(page.total);
            let count = page.rows.len() as u64;
            for row in page.rows {
                let cells = self.columns.iter().map(|column| cell(&row[*column]));
                file.write_record(cells).map_err(write_failed)?;
            }
            written += count;
            if count < u64::from(EXPORT_PAGE) || written >= total || written >= EXPORT_MAX_ROWS {
                break;
            }
        }
        let body = file
            .into_inner()
            .map_err(|err| write_failed(err.into_error().into()))?;
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let disposition = format!("attachment; filename=\"xintu-{}-{stamp}.csv\"", self.name);
        let truncated = if written < total { "true" } else { "false" };
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
                (
                    header::HeaderName::from_static("x-xintu-truncated"),
                    truncated.to_owned(),
                ),
            ],
            body,
        )
            .into_response())
    }
}

/// A JSON value as a CSV cell. Text that a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
            format!("'{text}")
        }
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// WeChat users with their credits and membership.
#[utoipa::path(get, path = "/api/v1/admin/users", operation_id = "admin_users", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `users`; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn users(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "users",
        columns: &[
            "user_id",
            "openid",
            "following",
            "remaining_credits",
            "held_credits",
            "total_credits",
            "is_member",
            "member_expire_at",
            "created_at",
            "last_active_at",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_users(membership::ListUsersRequest {
                openid_prefix: query.openid.clone().unwrap_or_default(),
                page: Some(page),
            })
            .await?
            .into_inner();
        let rows = answer
            .users
            .into_iter()
            .map(|u| {
                json!({
                    "user_id": u.user_id,
                    "openid": u.openid,
                    "following": u.following,
                    "remaining_credits": u.remaining_credits,
                    "held_credits": u.held_credits,
                    "total_credits": u.total_credits,
                    "is_member": u.is_member,
                    "member_expire_at": rfc3339_if_set(u.member_expire_at_unix),
                    "created_at": rfc3339_if_set(u.created_at_unix),
                    "last_active_at": rfc3339_if_set(u.last_active_at_unix),
                })
            })
            .collect();
        Ok(Page {
            total: answer.total,
            rows,
        })
    })
    .await
}

/// Payment orders, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orders", operation_id = "admin_orders", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `orders`; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn orders(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "orders",
        columns: &[
            "order_no",
            "openid",
            "order_type",
            "total_fee",
            "status",
            "credits_amount",
            "created_at",
            "paid_at",
            "transaction_id",
            "refunded_fee",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_orders(membership::ListOrdersRequest {
                status: query.status.clone().unwrap_or_default(),
                page: Some(page),
            })
            .await?
            .into_inner();
        let rows = answer
            .orders
            .into_iter()
            .map(|o| {
                json!({
                    "order_no": o.order_no,
                    "openid": o.openid,
                    "order_type": o.order_type,
                    "total_fee": o.total_fee,
                    "status": o.status,
                    "credits_amount": o.credits_amount,
                    "created_at": rfc3339_if_set(o.created_at_unix),
                    "paid_at": rfc3339_if_set(o.paid_at_unix),
                    "transaction_id": o.transaction_id,
                    "refunded_fee": o.refunded_fee,
                })
            })
            .collect();
        Ok(Page {
            total: answer.total,
            rows,
        })
    })
    .await
}

/// App clients and their WeChat bindings.
#[utoipa::path(get, path = "/api/v1/admin/bindings", operation_id = "admin_bindings", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `bindings`; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn bindings(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "bindings",
        columns: &[
            "scene_id",
            "client_id",
            "status",
            "openid",
            "created_at",
            "completed_at",
            "expire_at",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_bindings(membership::ListBindingsRequest { page: Some(page) })
            .await?
            .into_inner();
        let rows = answer
            .bindings
            .into_iter()
            .map(|b| {
                json!({
                    "scene_id": b.scene_id,
                    "client_id": b.client_id,
                    "status": b.status,
                    "openid": Some(b.openid).filter(|o| !o.is_empty()),
                    "created_at": rfc3339_if_set(b.created_at_unix),
                    "completed_at": rfc3339_if_set(b.completed_at_unix),
                    "expire_at": rfc3339_if_set(b.expire_at_unix),
                })
            })
            .collect();
        Ok(Page {
            total: answer.total,
            rows,
        })
    })
    .await
}

/// The audit log: every credit adjustment by an operator and every grant by a service, newest
/// first, with the ledger reference of what it changed.
#[utoipa::path(get, path = "/api/v1/admin/audit", operation_id = "admin_audit", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `audit` entries; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn audit(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "audit",
        columns: &[
            "id",
            "actor",
            "action",
            "openid",
            "delta",
            "reason",
            "reference",
            "created_at",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_audit(membership::ListAuditRequest { page: Some(page) })
            .await?
            .into_inner();
        let rows = answer
            .entries
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "actor": a.actor,
                    "action": a.action,
                    "openid": Some(a.openid).filter(|o| !o.is_empty()),
                    "delta": a.delta,
                    "reason": a.reason,
                    "reference": a.reference,
                    "created_at": rfc3339_if_set(a.created_at_unix),
                })
            })
            .collect();
        Ok(Page {
            total: answer.total,
            rows,
        })
    })
    .await
}

/// A refund as the admin API shows it.
pub fn refund_json(r: membership::Refund) -> Value {
    json!({
        "refund_no": r.refund_no,
        "order_no": r.order_no,
        "openid": Some(r.openid).filter(|o| !o.is_empty()),
        "refund_fee": r.refund_fee,
        "credits_taken": r.credits_taken,
        "membership_days": r.membership_days,
        "status": r.status,
        "refund_id": Some(r.refund_id).filter(|id| !id.is_empty()),
        "reason": r.reason,
        "admin": r.admin,
        "failure": Some(r.failure).filter(|f| !f.is_empty()),
        "created_at": rfc3339_if_set(r.created_at_unix),
        "settled_at": rfc3339_if_set(r.settled_at_unix),
    })
}

/// Refunds, newest first (`order_no` for one order's), with what each took back and how it
/// stands at WeChat Pay.
#[utoipa::path(get, path = "/api/v1/admin/refunds", operation_id = "admin_refunds", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `refunds`; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn refunds(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "refunds",
        columns: &[
            "refund_no",
            "order_no",
            "openid",
            "refund_fee",
            "credits_taken",
            "membership_days",
            "status",
            "refund_id",
            "reason",
            "admin",
            "failure",
            "created_at",
            "settled_at",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_refunds(membership::ListRefundsRequest {
                order_no: query.order_no.clone().unwrap_or_default(),
                page: Some(page),
            })
            .await?
            .into_inner();
        Ok(Page {
            total: answer.total,
            rows: answer.refunds.into_iter().map(refund_json).collect(),
        })
    })
    .await
}

/// A checked bill day as the admin API shows it.
pub fn bill_check_json(c: membership::BillCheck) -> Value {
    json!({
        "bill_date": c.bill_date,
        "status": c.status,
        "wechat_payments": c.wechat_payments,
        "wechat_payment_fen": c.wechat_payment_fen,
        "wechat_refunds": c.wechat_refunds,
        "wechat_refund_fen": c.wechat_refund_fen,
        "differences": c.differences,
        "failure": Some(c.failure).filter(|f| !f.is_empty()),
        "checked_at": rfc3339_if_set(c.checked_at_unix),
    })
}

/// The daily reconciliation of WeChat Pay's bill: each checked day, newest first, with the
/// bill's totals and how many differences it found.
#[utoipa::path(get, path = "/api/v1/admin/bills", operation_id = "admin_bills", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `bills`; with format=csv, all of them as a file",
        content((serde_json::Value = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn bills(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let list = List {
        name: "bills",
        columns: &[
            "bill_date",
            "status",
            "wechat_payments",
            "wechat_payment_fen",
            "wechat_refunds",
            "wechat_refund_fen",
            "differences",
            "failure",
            "checked_at",
        ],
        state: &state,
        query: &query,
    };
    list.answer(async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_bill_checks(membership::ListBillChecksRequest { page: Some(page) })
            .await?
            .into_inner();
        Ok(Page {
            total: answer.total,
            rows: answer.checks.into_iter().map(bill_check_json).collect(),
        })
    })
    .await
}

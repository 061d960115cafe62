//! The admin API's lists: users, orders and bindings, a page at a time as JSON, or the whole
//! filtered list as a CSV file (`format=csv`). Each needs the admin session.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use proto::membership::v1 as membership;

use super::rows::{
    AdminBindingOut, AdminOrderOut, AdminRefundOut, AdminUserOut, AuditEntryOut, BillCheckOut,
};
use crate::AppState;
use crate::admin::AdminSession;
use crate::error::ApiError;

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
struct Page<Row> {
    total: u64,
    rows: Vec<Row>,
}

/// A list's JSON page: `total` and the page's rows under the list's name; the list's name also
/// names its CSV file, whose columns are the rows' fields in the order given.
trait ListOut: Serialize + From<Page<Self::Row>> {
    type Row: Serialize;
    const NAME: &'static str;
    const COLUMNS: &'static [&'static str];
}

macro_rules! list_out {
    ($out:ident, $name:ident, $row:ty, $doc:literal, [$($column:literal),+ $(,)?]) => {
        #[doc = $doc]
        #[derive(Serialize, ToSchema)]
        pub struct $out {
            /// How many rows the filter matches.
            pub total: u64,
            pub $name: Vec<$row>,
        }

        impl From<Page<$row>> for $out {
            fn from(page: Page<$row>) -> Self {
                Self { total: page.total, $name: page.rows }
            }
        }

        impl ListOut for $out {
            type Row = $row;
            const NAME: &'static str = stringify!($name);
            const COLUMNS: &'static [&'static str] = &[$($column),+];
        }
    };
}

list_out!(
    UsersOut,
    users,
    AdminUserOut,
    "A page of users.",
    [
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
    ]
);
list_out!(
    OrdersOut,
    orders,
    AdminOrderOut,
    "A page of payment orders.",
    [
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
    ]
);
list_out!(
    BindingsOut,
    bindings,
    AdminBindingOut,
    "A page of bindings.",
    [
        "scene_id",
        "client_id",
        "status",
        "openid",
        "created_at",
        "completed_at",
        "expire_at",
    ]
);
list_out!(
    AuditEntriesOut,
    audit,
    AuditEntryOut,
    "A page of the audit log.",
    [
        "id",
        "actor",
        "action",
        "openid",
        "delta",
        "reason",
        "reference",
        "created_at",
    ]
);
list_out!(
    RefundsOut,
    refunds,
    AdminRefundOut,
    "A page of refunds.",
    [
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
    ]
);
list_out!(
    BillsOut,
    bills,
    BillCheckOut,
    "A page of checked bill days.",
    [
        "bill_date",
        "status",
        "wechat_payments",
        "wechat_payment_fen",
        "wechat_refunds",
        "wechat_refund_fen",
        "differences",
        "failure",
        "checked_at",
    ]
);

/// A list's answer: a page as JSON, or (`format=csv`) every row the filter matches as a file.
/// `read` reads one page from membership.
async fn respond<L, F>(state: &AppState, query: &ListQuery, read: F) -> Result<Response, ApiError>
where
    L: ListOut,
    F: AsyncFn(&AppState, &ListQuery, membership::Page) -> Result<Page<L::Row>, ApiError>,
{
    match query.format.as_deref() {
        None | Some("json") => {
            let page = membership::Page {
                offset: query.offset,
                limit: query.limit.unwrap_or(50),
            };
            let page = read(state, query, page).await?;
            Ok(Json(L::from(page)).into_response())
        }
        Some("csv") => export::<L, F>(state, query, read).await,
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("format must be json or csv, not {other:?}"),
        )),
    }
}

/// Every row the filter matches, page by page, as one CSV file (UTF-8 with a byte-order mark,
/// which spreadsheet programs need to read Chinese text).
async fn export<L, F>(state: &AppState, query: &ListQuery, read: F) -> Result<Response, ApiError>
where
    L: ListOut,
    F: AsyncFn(&AppState, &ListQuery, membership::Page) -> Result<Page<L::Row>, ApiError>,
{
    let mut file = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    let write_failed = |err: csv::Error| {
        tracing::error!(error = %err, "csv export failed");
        ApiError::new(ErrorCode::Internal, "the export could not be written")
    };
    file.write_record(L::COLUMNS).map_err(write_failed)?;
    let mut written: u64 = 0;
    let mut total = 0;
    loop {
        let page = membership::Page {
            offset: u32::try_from(written).unwrap_or(u32::MAX),
            limit: EXPORT_PAGE,
        };
        let page = read(state, query, page).await?;
        total = total.max(page.total);
        let count = page.rows.len() as u64;
        for row in page.rows {
            let row = serde_json::to_value(row)
                .map_err(|err| write_failed(std::io::Error::from(err).into()))?;
            let cells = L::COLUMNS.iter().map(|column| cell(&row[*column]));
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
    let disposition = format!("attachment; filename=\"xintu-{}-{stamp}.csv\"", L::NAME);
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
        content((UsersOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn users(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<UsersOut, _>(&state, &query, async |state, query, page| {
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
        Ok(Page {
            total: answer.total,
            rows: answer.users.into_iter().map(AdminUserOut::from).collect(),
        })
    })
    .await
}

/// Payment orders, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orders", operation_id = "admin_orders", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `orders`; with format=csv, all of them as a file",
        content((OrdersOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn orders(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<OrdersOut, _>(&state, &query, async |state, query, page| {
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
        Ok(Page {
            total: answer.total,
            rows: answer.orders.into_iter().map(AdminOrderOut::from).collect(),
        })
    })
    .await
}

/// App clients and their WeChat bindings.
#[utoipa::path(get, path = "/api/v1/admin/bindings", operation_id = "admin_bindings", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `bindings`; with format=csv, all of them as a file",
        content((BindingsOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn bindings(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<BindingsOut, _>(&state, &query, async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_bindings(membership::ListBindingsRequest { page: Some(page) })
            .await?
            .into_inner();
        Ok(Page {
            total: answer.total,
            rows: answer
                .bindings
                .into_iter()
                .map(AdminBindingOut::from)
                .collect(),
        })
    })
    .await
}

/// The audit log: every credit adjustment by an operator and every grant by a service, newest
/// first, with the ledger reference of what it changed.
#[utoipa::path(get, path = "/api/v1/admin/audit", operation_id = "admin_audit", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `audit` entries; with format=csv, all of them as a file",
        content((AuditEntriesOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn audit(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<AuditEntriesOut, _>(&state, &query, async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_audit(membership::ListAuditRequest { page: Some(page) })
            .await?
            .into_inner();
        Ok(Page {
            total: answer.total,
            rows: answer
                .entries
                .into_iter()
                .map(AuditEntryOut::from)
                .collect(),
        })
    })
    .await
}

/// Refunds, newest first (`order_no` for one order's), with what each took back and how it
/// stands at WeChat Pay.
#[utoipa::path(get, path = "/api/v1/admin/refunds", operation_id = "admin_refunds", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `refunds`; with format=csv, all of them as a file",
        content((RefundsOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn refunds(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<RefundsOut, _>(&state, &query, async |state, query, page| {
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
            rows: answer
                .refunds
                .into_iter()
                .map(AdminRefundOut::from)
                .collect(),
        })
    })
    .await
}

/// The daily reconciliation of WeChat Pay's bill: each checked day, newest first, with the
/// bill's totals and how many differences it found.
#[utoipa::path(get, path = "/api/v1/admin/bills", operation_id = "admin_bills", params(ListQuery),
    security(("admin_session" = [])),
    responses((status = 200, description = "`total` and a page of `bills`; with format=csv, all of them as a file",
        content((BillsOut = "application/json"), (String = "text/csv"))),
        (status = 400), (status = 401), (status = 503)))]
pub async fn bills(
    State(state): State<AppState>,
    _session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    respond::<BillsOut, _>(&state, &query, async |state, _query, page| {
        let answer = state
            .clients
            .admin
            .clone()
            .list_bill_checks(membership::ListBillChecksRequest { page: Some(page) })
            .await?
            .into_inner();
        Ok(Page {
            total: answer.total,
            rows: answer.checks.into_iter().map(BillCheckOut::from).collect(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A CSV file has a column for each field of the list's rows, and only those.
    fn columns_are_the_fields<L: ListOut>()
    where
        L::Row: Default,
    {
        let row = serde_json::to_value(L::Row::default()).unwrap();
        let fields: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let columns: BTreeSet<&str> = L::COLUMNS.iter().copied().collect();
        assert_eq!(
            columns.len(),
            L::COLUMNS.len(),
            "{}: a column twice",
            L::NAME
        );
        assert_eq!(fields, columns, "{}", L::NAME);
    }

    #[test]
    fn each_lists_csv_columns_are_the_fields_of_its_rows() {
        columns_are_the_fields::<UsersOut>();
        columns_are_the_fields::<OrdersOut>();
        columns_are_the_fields::<BindingsOut>();
        columns_are_the_fields::<AuditEntriesOut>();
        columns_are_the_fields::<RefundsOut>();
        columns_are_the_fields::<BillsOut>();
    }
}

//! `payment_refunds`.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor, MySqlPool};

use crate::domain::refund::RefundStatus;

#[derive(Clone, Debug, FromRow)]
pub struct RefundRow {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub user_id: i64,
    pub refund_fee: i64,
    pub credits_taken: i64,
    pub membership_days: i32,
    pub membership_ms_taken: i64,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub refund_id: Option<String>,
    pub reason: String,
    pub admin: String,
    pub failure: String,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "out_refund_no, out_trade_no, user_id, refund_fee, credits_taken, \
                       membership_days, membership_ms_taken, CAST(status AS CHAR) AS status, \
                       refund_id, reason, admin, failure, created_at, settled_at";

/// The fen, credits and days of an order's refunds that still count (all but failed ones), read
/// with locks: the caller holds the order's row, so no other refund of it can slip in between.
#[derive(Clone, Copy, Debug, Default, FromRow)]
pub struct RefundedSoFar {
    pub fee: i64,
    pub credits: i64,
    pub days: i64,
}

#[tracing::instrument(name = "refunds.so_far", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn so_far(
    conn: &mut MySqlConnection,
    out_trade_no: &str,
) -> Result<RefundedSoFar, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(refund_fee), 0) AS SIGNED) AS fee, \
         CAST(COALESCE(SUM(credits_taken), 0) AS SIGNED) AS credits, \
         CAST(COALESCE(SUM(membership_days), 0) AS SIGNED) AS days \
         FROM payment_refunds WHERE out_trade_no = ? AND status <> 'failed' FOR UPDATE",
    )
    .bind(out_trade_no)
    .fetch_one(&mut *conn)
    .await
}

pub struct NewRefund<'a> {
    pub out_refund_no: &'a str,
    pub out_trade_no: &'a str,
    pub user_id: i64,
    pub refund_fee: i64,
    pub credits_taken: i64,
    pub membership_days: i64,
    pub membership_ms_taken: i64,
    pub reason: &'a str,
    pub admin: &'a str,
    /// When the reconciler first asks WeChat Pay, if no answer settles it before.
    pub first_check_secs: u32,
}

#[tracing::instrument(name = "refunds.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(conn: &mut MySqlConnection, refund: &NewRefund<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_refunds (out_refund_no, out_trade_no, user_id, refund_fee, \
         credits_taken, membership_days, membership_ms_taken, reason, admin, next_check_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3) + INTERVAL ? SECOND)",
    )
    .bind(refund.out_refund_no)
    .bind(refund.out_trade_no)
    .bind(refund.user_id)
    .bind(refund.refund_fee)
    .bind(refund.credits_taken)
    .bind(refund.membership_days)
    .bind(refund.membership_ms_taken)
    .bind(refund.reason)
    .bind(refund.admin)
    .bind(refund.first_check_secs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "refunds.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    out_refund_no: &str,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_refunds WHERE out_refund_no = ?"
    ))
    .bind(out_refund_no)
    .fetch_optional(executor)
    .await
}

/// Locks the refund row for the rest of the transaction (always before the user's row).
#[tracing::instrument(name = "refunds.lock", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn lock(
    conn: &mut MySqlConnection,
    out_refund_no: &str,
) -> Result<Option<RefundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_refunds WHERE out_refund_no = ? FOR UPDATE"
    ))
    .bind(out_refund_no)
    .fetch_optional(&mut *conn)
    .await
}

/// Moves an open (pending or processing) refund to `status`, recording WeChat Pay's refund id
/// and, for a final status, the settling time. Returns whether this call moved it.
#[tracing::instrument(name = "refunds.transition", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn transition(
    conn: &mut MySqlConnection,
    out_refund_no: &str,
    status: RefundStatus,
    refund_id: Option<&str>,
    failure: &str,
) -> Result<bool, sqlx::Error> {
    let settled = !matches!(status, RefundStatus::Pending | RefundStatus::Processing);
    let result = sqlx::query(
        "UPDATE payment_refunds SET status = ?, refund_id = COALESCE(?, refund_id), failure = ?, \
         settled_at = IF(?, CURRENT_TIMESTAMP(3), NULL), \
         next_check_at = IF(?, NULL, next_check_at) \
         WHERE out_refund_no = ? AND status IN ('pending', 'processing')",
    )
    .bind(status.as_str())
    .bind(refund_id)
    .bind(failure)
    .bind(settled)
    .bind(settled)
    .bind(out_refund_no)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Open refunds whose next check is due: a plain (non-locking) read.
#[tracing::instrument(name = "refunds.due_for_check", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn due_for_check(
    executor: impl MySqlExecutor<'_>,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT out_refund_no FROM payment_refunds WHERE {DUE} ORDER BY next_check_at LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The condition under which a refund is due for a check.
const DUE: &str = "status IN ('pending', 'processing') \
    AND next_check_at IS NOT NULL AND next_check_at <= CURRENT_TIMESTAMP(3)";

/// Claims a refund for one check and schedules the next (the pause doubles per check, capped).
/// Another instance that claimed it first wins, and a refund whose row another session holds is
/// passed over for the round. Returns whether this instance got it.
#[tracing::instrument(name = "refunds.claim_check", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_check(
    pool: &MySqlPool,
    out_refund_no: &str,
    first_secs: u32,
    max_secs: u32,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE payment_refunds SET checks = checks + 1, next_check_at = CURRENT_TIMESTAMP(3) \
         + INTERVAL LEAST(?, ? * POW(2, LEAST(checks, 16))) SECOND \
         WHERE out_refund_no = ? AND {DUE}"
    );
    let update = sqlx::query(&sql).bind(max_secs).bind(first_secs);
    super::claim_if_due_and_free(
        pool,
        "payment_refunds",
        "out_refund_no",
        out_refund_no,
        DUE,
        update,
    )
    .await
}

/// A refund with its user's openid, for the admin site.
#[derive(Clone, Debug, FromRow)]
pub struct RefundListRow {
    #[sqlx(flatten)]
    pub refund: RefundRow,
    pub openid: Option<String>,
}

/// Refunds for the admin site, newest first, optionally of one order.
#[tracing::instrument(name = "refunds.list", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list(
    pool: &sqlx::MySqlPool,
    out_trade_no: Option<&str>,
    offset: u32,
    limit: u32,
) -> Result<(Vec<RefundListRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, (SELECT openid FROM wechat_users u WHERE u.id = r.user_id) AS openid \
         FROM payment_refunds r WHERE (? IS NULL OR out_trade_no = ?) \
         ORDER BY created_at DESC, out_refund_no DESC LIMIT ? OFFSET ?"
    ))
    .bind(out_trade_no)
    .bind(out_trade_no)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_refunds WHERE (? IS NULL OR out_trade_no = ?)",
    )
    .bind(out_trade_no)
    .bind(out_trade_no)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

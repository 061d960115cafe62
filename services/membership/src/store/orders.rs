//! `payment_orders`.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor, MySqlPool};

use crate::domain::order::{OrderStatus, OrderType};

#[derive(Clone, Debug, FromRow)]
pub struct OrderRow {
    pub out_trade_no: String,
    pub user_id: i64,
    pub openid: String,
    #[sqlx(try_from = "String")]
    pub order_type: OrderType,
    pub credits_amount: i32,
    pub membership_days: i32,
    pub total_fee: i64,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub prepay_id: Option<String>,
    pub transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expire_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "out_trade_no, user_id, openid, CAST(order_type AS CHAR) AS order_type, \
                       credits_amount, membership_days, total_fee, CAST(status AS CHAR) AS status, \
                       prepay_id, transaction_id, created_at, expire_at, paid_at";

pub struct NewOrder<'a> {
    pub out_trade_no: &'a str,
    pub user_id: i64,
    pub openid: &'a str,
    pub order_type: OrderType,
    pub credits_amount: i64,
    pub membership_days: u32,
    pub total_fee: i64,
    pub client_ip: &'a str,
    pub expire_at: DateTime<Utc>,
}

#[tracing::instrument(name = "orders.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(conn: &mut MySqlConnection, order: &NewOrder<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_orders (out_trade_no, user_id, openid, order_type, credits_amount, \
         membership_days, total_fee, client_ip, expire_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order.out_trade_no)
    .bind(order.user_id)
    .bind(order.openid)
    .bind(order.order_type.as_str())
    .bind(order.credits_amount)
    .bind(order.membership_days)
    .bind(order.total_fee)
    .bind(order.client_ip)
    .bind(order.expire_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "orders.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    out_trade_no: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_orders WHERE out_trade_no = ?"
    ))
    .bind(out_trade_no)
    .fetch_optional(executor)
    .await
}

/// Locks the order row for the rest of the transaction (always before the user's row).
#[tracing::instrument(name = "orders.lock", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn lock(
    conn: &mut MySqlConnection,
    out_trade_no: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_orders WHERE out_trade_no = ? FOR UPDATE"
    ))
    .bind(out_trade_no)
    .fetch_optional(&mut *conn)
    .await
}

#[tracing::instrument(name = "orders.set_prepay", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn set_prepay(
    executor: impl MySqlExecutor<'_>,
    out_trade_no: &str,
    prepay_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_orders SET prepay_id = ? WHERE out_trade_no = ? AND status = 'notpay'",
    )
    .bind(prepay_id)
    .bind(out_trade_no)
    .execute(executor)
    .await?;
    Ok(())
}

/// WeChat refused to create the order: nothing can be paid on it.
#[tracing::instrument(name = "orders.mark_failed", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_failed(
    executor: impl MySqlExecutor<'_>,
    out_trade_no: &str,
    failure: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payment_orders SET status = 'failed', failure = ? \
         WHERE out_trade_no = ? AND status = 'notpay'",
    )
    .bind(failure)
    .bind(out_trade_no)
    .execute(executor)
    .await?;
    Ok(())
}

/// The one guarded transition to paid: only an unpaid (or closed, if WeChat took the money after
/// all) order with exactly this amount. Returns whether this call made it.
#[tracing::instrument(name = "orders.mark_paid", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_paid(
    conn: &mut MySqlConnection,
    out_trade_no: &str,
    transaction_id: &str,
    total_fee: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE payment_orders SET status = 'paid', transaction_id = ?, paid_at = CURRENT_TIMESTAMP(3) \
         WHERE out_trade_no = ? AND status IN ('notpay', 'closed') AND total_fee = ?",
    )
    .bind(transaction_id)
    .bind(out_trade_no)
    .bind(total_fee)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks an unpaid order closed (WeChat confirmed it). Returns whether this call closed it.
#[tracing::instrument(name = "orders.mark_closed", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_closed(
    executor: impl MySqlExecutor<'_>,
    out_trade_no: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE payment_orders SET status = 'closed', closed_at = CURRENT_TIMESTAMP(3) \
         WHERE out_trade_no = ? AND status = 'notpay'",
    )
    .bind(out_trade_no)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Unpaid orders older than `older_than_secs` not checked for as long: a plain (non-locking) read.
#[tracing::instrument(name = "orders.due_for_check", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn due_for_check(
    executor: impl MySqlExecutor<'_>,
    older_than_secs: u32,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT out_trade_no FROM payment_orders WHERE {DUE} \
         AND created_at <= CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND \
         ORDER BY created_at LIMIT ?"
    ))
    .bind(older_than_secs)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// When the reconciler asks about an order again, after it has asked `checks` times.
#[derive(Clone, Copy, Debug)]
pub struct CheckSchedule {
    /// The first pause; each later one doubles.
    pub first_secs: u32,
    /// The longest pause.
    pub max_secs: u32,
    /// An order may be closed this long after its creation (and not before its expiry): the
    /// next check is pulled forward to that moment so expired orders close on time.
    pub close_min_age_secs: u32,
}

/// The condition under which an order is due for a check.
const DUE: &str = "status = 'notpay' AND attention = '' \
    AND (next_check_at IS NULL OR next_check_at <= CURRENT_TIMESTAMP(3))";

/// Claims an order for one check by this instance and schedules the next one (backoff from its
/// check count). Another instance that claimed it first wins, and an order whose row another
/// session holds is passed over for the round. Returns whether this instance got it.
#[tracing::instrument(name = "orders.claim_check", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_check(
    pool: &MySqlPool,
    out_trade_no: &str,
    schedule: CheckSchedule,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE payment_orders SET checked_at = CURRENT_TIMESTAMP(3), checks = checks + 1, \
         next_check_at = CASE \
           WHEN GREATEST(expire_at, created_at + INTERVAL ? SECOND) > CURRENT_TIMESTAMP(3) \
           THEN LEAST(CURRENT_TIMESTAMP(3) + INTERVAL LEAST(?, ? * POW(2, LEAST(checks - 1, 16))) SECOND, \
                      GREATEST(expire_at, created_at + INTERVAL ? SECOND)) \
           ELSE CURRENT_TIMESTAMP(3) + INTERVAL LEAST(?, ? * POW(2, LEAST(checks - 1, 16))) SECOND END \
         WHERE out_trade_no = ? AND {DUE}"
    );
    let update = sqlx::query(&sql)
        .bind(schedule.close_min_age_secs)
        .bind(schedule.max_secs)
        .bind(schedule.first_secs)
        .bind(schedule.close_min_age_secs)
        .bind(schedule.max_secs)
        .bind(schedule.first_secs);
    super::claim_if_due_and_free(
        pool,
        "payment_orders",
        "out_trade_no",
        out_trade_no,
        DUE,
        update,
    )
    .await
}

/// Takes an unpaid order off the reconciler's schedule because a person must look at it.
#[tracing::instrument(name = "orders.set_attention", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn set_attention(
    executor: impl MySqlExecutor<'_>,
    out_trade_no: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE payment_orders SET attention = ?, next_check_at = NULL \
         WHERE out_trade_no = ? AND status = 'notpay' AND attention = ''",
    )
    .bind(reason)
    .bind(out_trade_no)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

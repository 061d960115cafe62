//! Read models of the admin site (replica) and the audit of operators' actions (primary).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor, MySqlPool};

use crate::domain::binding::BindingStatus;
use crate::domain::order::{OrderStatus, OrderType};

#[derive(Debug, Default, FromRow)]
pub struct OrderTotals {
    pub revenue_fen: i64,
    pub paid_orders: i64,
    pub member_orders: i64,
    pub credit_orders: i64,
}

/// Paid orders in [from, to) by payment time.
#[tracing::instrument(name = "admin.order_totals", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn order_totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<OrderTotals, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(total_fee), 0) AS SIGNED) AS revenue_fen, COUNT(*) AS paid_orders, \
         CAST(COALESCE(SUM(order_type = 'member'), 0) AS SIGNED) AS member_orders, \
         CAST(COALESCE(SUM(order_type = 'credits'), 0) AS SIGNED) AS credit_orders \
         FROM payment_orders WHERE status = 'paid' AND paid_at >= ? AND paid_at < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

/// Refunds asked for in [from, to) that WeChat Pay accepted (or may have: still open): money
/// that went, or is going, back.
#[derive(Debug, Default, FromRow)]
pub struct RefundTotals {
    pub refunded_fen: i64,
    pub refunds: i64,
}

#[tracing::instrument(name = "admin.refund_totals", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn refund_totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<RefundTotals, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(refund_fee), 0) AS SIGNED) AS refunded_fen, COUNT(*) AS refunds \
         FROM payment_refunds WHERE status <> 'failed' AND created_at >= ? AND created_at < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

#[derive(Debug, Default, FromRow)]
pub struct UserTotals {
    pub new_followers: i64,
    pub active_members: i64,
    pub total_users: i64,
}

#[tracing::instrument(name = "admin.user_totals", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn user_totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<UserTotals, sqlx::Error> {
    // New followers: users first seen in the range who follow (the welcome credits mark a follow).
    sqlx::query_as(
        "SELECT \
         (SELECT COUNT(*) FROM credit_ledger WHERE reason = 'follow_bonus' \
            AND created_at >= ? AND created_at < ?) AS new_followers, \
         (SELECT COUNT(*) FROM wechat_users WHERE is_member = 1 \
            AND member_expire_at > CURRENT_TIMESTAMP(3)) AS active_members, \
         (SELECT COUNT(*) FROM wechat_users) AS total_users",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct UserListRow {
    pub id: i64,
    pub openid: String,
    pub subscribed: bool,
    pub remaining_credits: i64,
    pub held_credits: i64,
    pub total_credits: i64,
    pub is_member: bool,
    pub member_expire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
}

/// Users whose openid starts with `prefix` (the openid index serves the prefix), newest first.
#[tracing::instrument(name = "admin.list_users", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list_users(
    pool: &MySqlPool,
    prefix: &str,
    offset: u32,
    limit: u32,
) -> Result<(Vec<UserListRow>, i64), sqlx::Error> {
    let pattern = format!("{}%", escape_like(prefix));
    let rows = sqlx::query_as(
        "SELECT id, openid, subscribed, remaining_credits, held_credits, total_credits, is_member, \
         member_expire_at, created_at, last_active_at FROM wechat_users \
         WHERE openid LIKE ? ORDER BY id DESC LIMIT ? OFFSET ?",
    )
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM wechat_users WHERE openid LIKE ?")
        .bind(&pattern)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

fn escape_like(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[derive(Debug, FromRow)]
pub struct OrderListRow {
    pub out_trade_no: String,
    pub openid: String,
    #[sqlx(try_from = "String")]
    pub order_type: OrderType,
    pub total_fee: i64,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub credits_amount: i32,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub transaction_id: Option<String>,
    pub refunded_fee: i64,
}

#[tracing::instrument(name = "admin.list_orders", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list_orders(
    pool: &MySqlPool,
    status: Option<OrderStatus>,
    offset: u32,
    limit: u32,
) -> Result<(Vec<OrderListRow>, i64), sqlx::Error> {
    let status = status.map(OrderStatus::as_str);
    let rows = sqlx::query_as(
        "SELECT out_trade_no, openid, CAST(order_type AS CHAR) AS order_type, total_fee, \
         CAST(status AS CHAR) AS status, credits_amount, created_at, paid_at, transaction_id, \
         CAST((SELECT COALESCE(SUM(r.refund_fee), 0) FROM payment_refunds r \
               WHERE r.out_trade_no = o.out_trade_no AND r.status <> 'failed') AS SIGNED) \
           AS refunded_fee \
         FROM payment_orders o WHERE (? IS NULL OR status = ?) \
         ORDER BY created_at DESC, out_trade_no DESC LIMIT ? OFFSET ?",
    )
    .bind(status)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_orders WHERE (? IS NULL OR status = ?)")
            .bind(status)
            .bind(status)
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}

#[derive(Debug, FromRow)]
pub struct BindingListRow {
    pub id: u32,
    pub client_id: String,
    #[sqlx(try_from = "String")]
    pub status: BindingStatus,
    pub openid: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expire_at: DateTime<Utc>,
}

#[tracing::instrument(name = "admin.list_bindings", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list_bindings(
    pool: &MySqlPool,
    offset: u32,
    limit: u32,
) -> Result<(Vec<BindingListRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, client_id, CAST(status AS CHAR) AS status, openid, created_at, completed_at, \
         expire_at FROM client_bindings ORDER BY id DESC LIMIT ? OFFSET ?",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM client_bindings")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

#[derive(Debug, FromRow)]
pub struct AuditListRow {
    pub id: i64,
    pub admin: String,
    pub action: String,
    pub openid: Option<String>,
    pub delta: i64,
    pub reason: String,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[tracing::instrument(name = "admin.list_audit", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list_audit(
    pool: &MySqlPool,
    offset: u32,
    limit: u32,
) -> Result<(Vec<AuditListRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT a.id, a.admin, a.action, u.openid, a.delta, a.reason, a.reference, a.created_at \
         FROM admin_audit a LEFT JOIN wechat_users u ON u.id = a.user_id \
         ORDER BY a.id DESC LIMIT ? OFFSET ?",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM admin_audit")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// Records an operator's action; the id is the reference of what it changes.
#[tracing::instrument(name = "admin.audit", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn audit(
    conn: &mut MySqlConnection,
    admin: &str,
    action: &str,
    user_id: i64,
    delta: i64,
    reason: &str,
) -> Result<i64, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO admin_audit (admin, action, user_id, delta, reason) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(admin)
    .bind(action)
    .bind(user_id)
    .bind(delta)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    i64::try_from(result.last_insert_id()).map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

/// An audited action that names what it changed (a ledger reference, a refund number).
pub struct ReferencedAuditRow<'a> {
    /// `grant` (a service or an operator tool) or `refund` (an operator).
    pub action: &'a str,
    pub actor: &'a str,
    pub user_id: i64,
    pub delta: i64,
    pub note: &'a str,
    pub reference: &'a str,
}

/// Records an action with the reference of what it changed.
#[tracing::instrument(name = "admin.audit_referenced", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn audit_referenced(
    conn: &mut MySqlConnection,
    row: &ReferencedAuditRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_audit (admin, action, user_id, delta, reason, reference) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(row.actor)
    .bind(row.action)
    .bind(row.user_id)
    .bind(row.delta)
    .bind(row.note)
    .bind(row.reference)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The user id of an openid, from whatever executor the caller holds.
#[tracing::instrument(name = "admin.user_id", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn user_id(
    executor: impl MySqlExecutor<'_>,
    openid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_optional(executor)
        .await
}

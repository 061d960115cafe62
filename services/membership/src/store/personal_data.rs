//! Everything the membership service holds about one user, read for their data export. Reads
//! the primary: an export is rare and must be complete as of the moment it is asked for.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, MySqlPool};

#[derive(Debug, FromRow, Serialize)]
pub struct UserData {
    #[serde(skip)]
    pub id: i64,
    pub openid: String,
    pub following: bool,
    pub remaining_credits: i64,
    pub held_credits: i64,
    pub total_credits: i64,
    pub is_member: bool,
    pub member_expire_at: Option<DateTime<Utc>>,
    pub expiry_reminders: bool,
    pub first_seen_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub unfollowed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, FromRow, Serialize)]
pub struct DeviceData {
    pub client_id: String,
    pub bound_at: Option<DateTime<Utc>>,
}

#[derive(Debug, FromRow, Serialize)]
pub struct OrderData {
    pub order_no: String,
    pub order_type: String,
    pub credits_amount: i32,
    pub membership_days: i32,
    pub total_fee: i64,
    pub status: String,
    pub transaction_id: Option<String>,
    pub client_ip: String,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

#[derive(Debug, FromRow, Serialize)]
pub struct RefundData {
    pub refund_no: String,
    pub order_no: String,
    pub refund_fee: i64,
    pub credits_taken: i64,
    pub membership_days: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, FromRow, Serialize)]
pub struct LedgerData {
    pub delta: i64,
    pub balance_after: i64,
    pub reason: String,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, FromRow, Serialize)]
pub struct EventData {
    pub event: String,
    pub event_key: String,
    pub outcome: String,
    pub received_at: DateTime<Utc>,
}

#[tracing::instrument(name = "personal_data.user", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn user(pool: &MySqlPool, openid: &str) -> Result<Option<UserData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, openid, subscribed AS following, remaining_credits, held_credits, \
         total_credits, is_member, member_expire_at, expiry_reminders, \
         created_at AS first_seen_at, last_active_at, unsubscribed_at AS unfollowed_at \
         FROM wechat_users WHERE openid = ? AND erased_at IS NULL",
    )
    .bind(openid)
    .fetch_optional(pool)
    .await
}

#[tracing::instrument(name = "personal_data.devices", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn devices(pool: &MySqlPool, user_id: i64) -> Result<Vec<DeviceData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT client_id, completed_at AS bound_at FROM client_bindings \
         WHERE user_id = ? ORDER BY completed_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "personal_data.orders", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn orders(pool: &MySqlPool, user_id: i64) -> Result<Vec<OrderData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT out_trade_no AS order_no, CAST(order_type AS CHAR) AS order_type, \
         credits_amount, membership_days, total_fee, CAST(status AS CHAR) AS status, \
         transaction_id, client_ip, created_at, paid_at \
         FROM payment_orders WHERE user_id = ? ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "personal_data.refunds", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn refunds(pool: &MySqlPool, user_id: i64) -> Result<Vec<RefundData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT out_refund_no AS refund_no, out_trade_no AS order_no, refund_fee, \
         credits_taken, membership_days, CAST(status AS CHAR) AS status, created_at, settled_at \
         FROM payment_refunds WHERE user_id = ? ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "personal_data.ledger", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn ledger(pool: &MySqlPool, user_id: i64) -> Result<Vec<LedgerData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT delta, balance_after, reason, reference, created_at FROM credit_ledger \
         WHERE user_id = ? ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(name = "personal_data.events", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn events(pool: &MySqlPool, openid: &str) -> Result<Vec<EventData>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event, event_key, outcome, received_at FROM wechat_events \
         WHERE openid = ? ORDER BY id",
    )
    .bind(openid)
    .fetch_all(pool)
    .await
}

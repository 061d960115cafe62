//! What erasing a user's personal data changes, and the `erasures` rows that say what the other
//! services must still forget. Every function takes the caller's transaction except the
//! follow-up ones.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor};

/// What keeps an erasure from going ahead now: money or credits still moving.
#[derive(Debug, Default, FromRow)]
pub struct Blockers {
    /// Orders WeChat Pay may still take a payment for.
    pub unpaid_orders: i64,
    /// Refunds WeChat Pay has not settled.
    pub open_refunds: i64,
}

#[tracing::instrument(name = "erasure.blockers", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn blockers(conn: &mut MySqlConnection, user_id: i64) -> Result<Blockers, sqlx::Error> {
    sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM payment_orders WHERE user_id = ? AND status = 'notpay') \
             AS unpaid_orders, \
           (SELECT COUNT(*) FROM payment_refunds WHERE user_id = ? \
              AND status IN ('pending', 'processing')) AS open_refunds",
    )
    .bind(user_id)
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await
}

/// A client bound to the user, with the hash of the token that stops working.
#[derive(Debug, FromRow)]
pub struct BoundClient {
    pub client_id: String,
    pub client_token_hash: Vec<u8>,
}

/// Deletes the user's bindings (bound apps and their QR codes); returns what they were.
#[tracing::instrument(name = "erasure.delete_bindings", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_bindings(
    conn: &mut MySqlConnection,
    user_id: i64,
    openid: &str,
) -> Result<Vec<BoundClient>, sqlx::Error> {
    let clients: Vec<BoundClient> = sqlx::query_as(
        "SELECT client_id, client_token_hash FROM client_bindings \
         WHERE user_id = ? OR openid = ? FOR UPDATE",
    )
    .bind(user_id)
    .bind(openid)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM client_bindings WHERE user_id = ? OR openid = ?")
        .bind(user_id)
        .bind(openid)
        .execute(&mut *conn)
        .await?;
    Ok(clients)
}

/// Deletes what else names the user and has no financial meaning: the official account's
/// events of the openid and the user's settled credit holds.
#[tracing::instrument(name = "erasure.delete_traces", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_traces(
    conn: &mut MySqlConnection,
    user_id: i64,
    openid: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM wechat_events WHERE openid = ?")
        .bind(openid)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM credit_holds WHERE user_id = ? AND status <> 'held'")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Puts the pseudonym in place of the openid wherever a financial record keeps it: the user
/// row (with everything else personal cleared), the orders (and their payer's IP address) and
/// the welcome bonus's ledger reference (`follow_bonus_reference`).
#[tracing::instrument(name = "erasure.pseudonymise", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn pseudonymise(
    conn: &mut MySqlConnection,
    user_id: i64,
    pseudonym: &str,
    follow_bonus_reference: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payment_orders SET openid = ?, client_ip = '' WHERE user_id = ?")
        .bind(pseudonym)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE credit_ledger SET reference = ? \
         WHERE user_id = ? AND reason = 'follow_bonus' AND reference NOT LIKE 'erased:%'",
    )
    .bind(follow_bonus_reference)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE wechat_users SET openid = ?, subscribed = 0, is_member = 0, \
         member_expire_at = NULL, expiry_reminders = FALSE, reminded_for_expiry = NULL, \
         erased_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(pseudonym)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub struct NewErasure<'a> {
    pub user_id: i64,
    pub pseudonym: &'a str,
    pub openid: &'a str,
    /// A JSON array of client ids.
    pub client_ids_json: &'a str,
    pub actor: &'a str,
    pub credits_forfeited: i64,
}

#[tracing::instrument(name = "erasure.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(
    conn: &mut MySqlConnection,
    erasure: &NewErasure<'_>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO erasures (user_id, pseudonym, openid, client_ids, actor, credits_forfeited) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(erasure.user_id)
    .bind(erasure.pseudonym)
    .bind(erasure.openid)
    .bind(erasure.client_ids_json)
    .bind(erasure.actor)
    .bind(erasure.credits_forfeited)
    .execute(&mut *conn)
    .await?;
    Ok(done.last_insert_id())
}

/// An erasure whose follow-ups in the other services are not confirmed yet.
#[derive(Debug, FromRow)]
pub struct PendingErasure {
    pub id: i64,
    pub user_id: i64,
    pub pseudonym: String,
    pub openid: Option<String>,
    /// A JSON array of client ids; NULL once completed.
    pub client_ids: Option<String>,
    pub credits_forfeited: i64,
}

/// Pending erasures made before `before`, oldest first.
#[tracing::instrument(name = "erasure.pending", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn pending(
    executor: impl MySqlExecutor<'_>,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<PendingErasure>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, pseudonym, openid, CAST(client_ids AS CHAR) AS client_ids, credits_forfeited \
         FROM erasures WHERE completed_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Marks the follow-ups done and forgets the openid and client ids; false when the erasure is
/// unknown or was completed before.
#[tracing::instrument(name = "erasure.complete", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn complete(executor: impl MySqlExecutor<'_>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE erasures SET openid = NULL, client_ids = NULL, \
         completed_at = CURRENT_TIMESTAMP(3) WHERE id = ? AND completed_at IS NULL",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

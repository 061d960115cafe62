//! `credit_holds`: credits reserved under a reference until committed, released or expired.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor};

use crate::domain::hold::HoldStatus;

#[derive(Clone, Debug, FromRow)]
pub struct HoldRow {
    pub reference: String,
    pub user_id: i64,
    pub amount: i64,
    pub captured: i64,
    #[sqlx(try_from = "String")]
    pub status: HoldStatus,
}

const COLUMNS: &str = "reference, user_id, amount, captured, CAST(status AS CHAR) AS status";

/// Inserts a hold; a unique violation means the reference exists (the caller reads it).
#[tracing::instrument(name = "holds.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(
    conn: &mut MySqlConnection,
    reference: &str,
    user_id: i64,
    amount: i64,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO credit_holds (reference, user_id, amount, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(reference)
    .bind(user_id)
    .bind(amount)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "holds.lock", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn lock(
    conn: &mut MySqlConnection,
    reference: &str,
) -> Result<Option<HoldRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credit_holds WHERE reference = ? FOR UPDATE"
    ))
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await
}

#[tracing::instrument(name = "holds.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    reference: &str,
) -> Result<Option<HoldRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credit_holds WHERE reference = ?"
    ))
    .bind(reference)
    .fetch_optional(executor)
    .await
}

/// Reserves `amount` on the user's row when that much is spendable. Returns false otherwise.
#[tracing::instrument(name = "holds.hold_on_user", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn hold_on_user(
    conn: &mut MySqlConnection,
    user_id: i64,
    amount: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE wechat_users SET held_credits = held_credits + ? \
         WHERE id = ? AND remaining_credits - held_credits >= ?",
    )
    .bind(amount)
    .bind(user_id)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The guarded settle: only a `held` hold moves, once.
#[tracing::instrument(name = "holds.settle", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn settle(
    conn: &mut MySqlConnection,
    reference: &str,
    status: HoldStatus,
    captured: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE credit_holds SET status = ?, captured = ?, updated_at = CURRENT_TIMESTAMP(3) \
         WHERE reference = ? AND status = 'held'",
    )
    .bind(status.as_str())
    .bind(captured)
    .bind(reference)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Frees `amount` held credits on the user's row.
#[tracing::instrument(name = "holds.unhold_on_user", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn unhold_on_user(
    conn: &mut MySqlConnection,
    user_id: i64,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE wechat_users SET held_credits = held_credits - ? WHERE id = ?")
        .bind(amount)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Holds past their expiry (a plain read; each is then released with the guarded settle).
#[tracing::instrument(name = "holds.expired", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn expired(
    executor: impl MySqlExecutor<'_>,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT reference FROM credit_holds WHERE status = 'held' \
         AND expires_at <= CURRENT_TIMESTAMP(3) ORDER BY expires_at LIMIT ?",
    )
    .bind(limit)
    .fetch_all(executor)
    .await
}

//! Deleting records past their retention, a batch at a time so no delete holds many locks or
//! writes a large binlog event. Each function deletes at most `batch` rows and returns how many.

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

#[tracing::instrument(name = "retention.events", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_events(
    pool: &MySqlPool,
    before: DateTime<Utc>,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM wechat_events WHERE received_at < ? LIMIT ?")
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Bindings that bind nothing: QR codes never scanned and apps signed out (both `pending`),
/// expired before `before`. A bound app's row stays as long as it is bound.
#[tracing::instrument(name = "retention.bindings", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_bindings(
    pool: &MySqlPool,
    before: DateTime<Utc>,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM client_bindings WHERE status = 'pending' AND expire_at < ? LIMIT ?",
    )
    .bind(before)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Settled holds (their ledger rows stay); a hold still `held` is the janitor's.
#[tracing::instrument(name = "retention.holds", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn delete_holds(
    pool: &MySqlPool,
    before: DateTime<Utc>,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM credit_holds WHERE status IN ('captured', 'released') AND expires_at < ? \
         LIMIT ?",
    )
    .bind(before)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

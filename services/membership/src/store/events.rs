//! `wechat_events`: official-account events already applied.

use sqlx::MySqlConnection;

/// Claims a delivery by its dedup key. Returns false when the event was applied before (a
/// concurrent duplicate waits on the row lock of the first and then finds it).
#[tracing::instrument(name = "events.claim", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim(
    conn: &mut MySqlConnection,
    dedup_key: &str,
    openid: &str,
    event: &str,
    event_key: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO wechat_events (dedup_key, openid, event, event_key, outcome) \
         VALUES (?, ?, ?, ?, 'pending')",
    )
    .bind(dedup_key)
    .bind(openid)
    .bind(event)
    .bind(event_key)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(err) if platform::db::is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

#[tracing::instrument(name = "events.record_outcome", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn record_outcome(
    conn: &mut MySqlConnection,
    dedup_key: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE wechat_events SET outcome = ?, detail = ? WHERE dedup_key = ?")
        .bind(outcome)
        .bind(detail)
        .bind(dedup_key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

//! The columns of `wechat_users` behind membership expiry reminders.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlPool};

/// Turns the member's reminders on or off. Returns false for a user we do not know.
#[tracing::instrument(name = "reminders.set", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn set(pool: &MySqlPool, openid: &str, enabled: bool) -> Result<bool, sqlx::Error> {
    let known: Option<i64> = sqlx::query_scalar("SELECT id FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_optional(pool)
        .await?;
    let Some(user_id) = known else {
        return Ok(false);
    };
    sqlx::query("UPDATE wechat_users SET expiry_reminders = ? WHERE id = ?")
        .bind(enabled)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(true)
}

/// A member whose membership ends soon and who asked to be reminded.
#[derive(Clone, Debug, FromRow)]
pub struct DueReminder {
    pub id: i64,
    pub openid: String,
    pub member_expire_at: DateTime<Utc>,
}

/// Members opted in, following the account, whose membership ends within `days` and who were not
/// reminded of this end yet.
#[tracing::instrument(name = "reminders.due", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn due(pool: &MySqlPool, days: u32, limit: u32) -> Result<Vec<DueReminder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, openid, member_expire_at FROM wechat_users \
         WHERE expiry_reminders = 1 AND subscribed = 1 AND is_member = 1 \
         AND member_expire_at > CURRENT_TIMESTAMP(3) \
         AND member_expire_at <= CURRENT_TIMESTAMP(3) + INTERVAL ? DAY \
         AND (reminded_for_expiry IS NULL OR reminded_for_expiry <> member_expire_at) \
         ORDER BY member_expire_at LIMIT ?",
    )
    .bind(days)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Claims the reminder of this membership end for this instance, before it is sent: another
/// instance's round, or this one's next, will not send it again. Returns whether it was claimed
/// (false: sent by someone else, or the membership changed meanwhile).
#[tracing::instrument(name = "reminders.claim", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim(pool: &MySqlPool, reminder: &DueReminder) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE wechat_users SET reminded_for_expiry = member_expire_at \
         WHERE id = ? AND member_expire_at = ? \
         AND (reminded_for_expiry IS NULL OR reminded_for_expiry <> member_expire_at)",
    )
    .bind(reminder.id)
    .bind(reminder.member_expire_at)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives a claim back after a send that failed for a reason worth trying again.
#[tracing::instrument(name = "reminders.release", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn release(pool: &MySqlPool, reminder: &DueReminder) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE wechat_users SET reminded_for_expiry = NULL \
         WHERE id = ? AND reminded_for_expiry = ?",
    )
    .bind(reminder.id)
    .bind(reminder.member_expire_at)
    .execute(pool)
    .await?;
    Ok(())
}

//! `wechat_users`: one row per WeChat user (openid) we have seen follow.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor};

#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub openid: String,
    pub subscribed: bool,
    pub remaining_credits: i64,
    pub held_credits: i64,
    pub total_credits: i64,
    pub is_member: bool,
    pub member_expire_at: Option<DateTime<Utc>>,
    /// The member asked for a template message before the membership ends.
    pub expiry_reminders: bool,
}

impl UserRow {
    /// The membership end, when the user is or was a member.
    pub fn member_until(&self) -> Option<DateTime<Utc>> {
        self.member_expire_at.filter(|_| self.is_member)
    }
}

const COLUMNS: &str = "id, openid, subscribed, remaining_credits, held_credits, total_credits, \
                       is_member, member_expire_at, expiry_reminders";

#[tracing::instrument(name = "users.find_by_openid", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_by_openid(
    executor: impl MySqlExecutor<'_>,
    openid: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM wechat_users WHERE openid = ?"
    ))
    .bind(openid)
    .fetch_optional(executor)
    .await
}

#[tracing::instrument(name = "users.find_by_id", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_by_id(
    executor: impl MySqlExecutor<'_>,
    user_id: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM wechat_users WHERE id = ?"))
        .bind(user_id)
        .fetch_optional(executor)
        .await
}

/// Locks the user's row for the rest of the transaction (orders row first, then this).
#[tracing::instrument(name = "users.lock", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn lock(
    conn: &mut MySqlConnection,
    user_id: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM wechat_users WHERE id = ? FOR UPDATE"
    ))
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
}

/// Returns the user's id, creating a not-following user (an H5 buyer we have not seen follow).
#[tracing::instrument(name = "users.ensure", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn ensure(conn: &mut MySqlConnection, openid: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO wechat_users (openid, subscribed) VALUES (?, 0) \
         ON DUPLICATE KEY UPDATE id = id",
    )
    .bind(openid)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT id FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_one(&mut *conn)
        .await
}

#[tracing::instrument(name = "users.set_membership", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn set_membership(
    conn: &mut MySqlConnection,
    user_id: i64,
    expire_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE wechat_users SET is_member = 1, member_expire_at = ? WHERE id = ?")
        .bind(expire_at)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a follow: creates the user, or marks an existing one followed and active. Returns the
/// user id and whether the row was created by this call.
#[tracing::instrument(name = "users.upsert_follower", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn upsert_follower(
    conn: &mut MySqlConnection,
    openid: &str,
) -> Result<(i64, bool), sqlx::Error> {
    // MySQL reports 1 affected row for an insert, 2 for an update, 0 for an unchanged row.
    let result = sqlx::query(
        "INSERT INTO wechat_users (openid) VALUES (?) \
         ON DUPLICATE KEY UPDATE subscribed = 1, unsubscribed_at = NULL, \
           last_active_at = CURRENT_TIMESTAMP(3)",
    )
    .bind(openid)
    .execute(&mut *conn)
    .await?;
    let created = result.rows_affected() == 1;
    let id = sqlx::query_scalar("SELECT id FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_one(&mut *conn)
        .await?;
    Ok((id, created))
}

/// Marks the user unfollowed; credits and bindings are kept.
#[tracing::instrument(name = "users.mark_unfollowed", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_unfollowed(conn: &mut MySqlConnection, openid: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE wechat_users SET subscribed = 0, unsubscribed_at = CURRENT_TIMESTAMP(3) \
         WHERE openid = ?",
    )
    .bind(openid)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "users.remaining_credits", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn remaining_credits(
    conn: &mut MySqlConnection,
    openid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT remaining_credits FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_optional(&mut *conn)
        .await
}

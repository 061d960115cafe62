//! `wechat_users`: one row per WeChat user (openid) we have seen follow.

use sqlx::MySqlConnection;

/// Records a follow: creates the user, or marks an existing one followed and active. Returns the
/// user id and whether the row was created by this call.
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

pub async fn remaining_credits(
    conn: &mut MySqlConnection,
    openid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT remaining_credits FROM wechat_users WHERE openid = ?")
        .bind(openid)
        .fetch_optional(&mut *conn)
        .await
}

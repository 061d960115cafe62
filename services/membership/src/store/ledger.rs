//! `credit_ledger`: every credit change is one row with a unique (reason, reference), written in
//! the same transaction as the balance it changes.

use sqlx::MySqlConnection;

/// Why credits changed. Stored as text; the set grows with payments and photo processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The welcome credits of a new follower; reference = openid.
    FollowBonus,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FollowBonus => "follow_bonus",
        }
    }
}

/// Adds `delta` (> 0) to the user's remaining and total credits, with its ledger row, unless the
/// (reason, reference) was used before. Returns whether the credits were added. The ledger row
/// is written first, so a used reference leaves nothing half done.
pub async fn grant_once(
    conn: &mut MySqlConnection,
    user_id: i64,
    delta: i64,
    reason: Reason,
    reference: &str,
) -> Result<bool, sqlx::Error> {
    let balance: i64 =
        sqlx::query_scalar("SELECT remaining_credits FROM wechat_users WHERE id = ? FOR UPDATE")
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?;
    let inserted = sqlx::query(
        "INSERT INTO credit_ledger (user_id, delta, balance_after, reason, reference) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(delta)
    .bind(balance + delta)
    .bind(reason.as_str())
    .bind(reference)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(err) if platform::db::is_unique_violation(&err) => return Ok(false),
        Err(err) => return Err(err),
    }
    sqlx::query(
        "UPDATE wechat_users SET remaining_credits = remaining_credits + ?, \
         total_credits = total_credits + ? WHERE id = ?",
    )
    .bind(delta)
    .bind(delta)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

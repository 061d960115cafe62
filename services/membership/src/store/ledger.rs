//! `credit_ledger`: every credit change is one row with a unique (reason, reference), written in
//! the same transaction as the balance it changes.

use sqlx::MySqlConnection;

/// Why credits changed; with the reference it is the ledger row's unique key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The welcome credits of a new follower; reference = openid.
    FollowBonus,
    /// The credits that come with a paid membership; reference = out_trade_no.
    MembershipBonus,
    /// Credits bought; reference = out_trade_no.
    Purchase,
    /// Credits spent by a service (a held amount committed, or a direct charge).
    Charge,
    /// An operator's correction; reference = the audit id.
    AdminAdjust,
    /// Credits taken back by a refund of the order that granted them; reference = out_refund_no.
    Refund,
    /// Credits a refund took, given back because WeChat Pay refused or closed the refund;
    /// reference = out_refund_no.
    RefundReturned,
    /// The credits left when the user's personal data was erased; reference = `erasure:` and
    /// the user's pseudonym.
    Erasure,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FollowBonus => "follow_bonus",
            Self::MembershipBonus => "membership_bonus",
            Self::Purchase => "purchase",
            Self::Charge => "charge",
            Self::AdminAdjust => "admin_adjust",
            Self::Refund => "refund",
            Self::RefundReturned => "refund_returned",
            Self::Erasure => "erasure",
        }
    }

    /// The reasons another service may grant with (`CreditService.Grant`).
    pub fn grantable(name: &str) -> Option<Self> {
        match name {
            "admin_adjust" => Some(Self::AdminAdjust),
            _ => None,
        }
    }
}

/// Adds `delta` (> 0) to the user's remaining and total credits, with its ledger row, unless the
/// (reason, reference) was used before. Returns whether the credits were added. The ledger row
/// is written first, so a used reference leaves nothing half done.
#[tracing::instrument(name = "ledger.grant_once", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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

/// The user and amount of the ledger row written under (reason, reference), if there is one:
/// a repeated request is the same request only when both match.
#[tracing::instrument(name = "ledger.find_change", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_change(
    conn: &mut MySqlConnection,
    reason: Reason,
    reference: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT user_id, delta FROM credit_ledger WHERE reason = ? AND reference = ?")
        .bind(reason.as_str())
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await
}

/// Spends `amount` (> 0) credits, with its ledger row, when that much is spendable (remaining
/// minus held, plus `from_held` of the caller's own hold, which is freed at the same time).
/// Returns false, changing nothing, when the balance is too low. A used reference fails with a
/// unique violation; the caller rolls back.
#[tracing::instrument(name = "ledger.spend", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn spend(
    conn: &mut MySqlConnection,
    user_id: i64,
    amount: i64,
    from_held: i64,
    reference: &str,
) -> Result<bool, sqlx::Error> {
    // One guarded statement: concurrent spends serialise on the row and re-check the guard.
    let updated = sqlx::query(
        "UPDATE wechat_users SET remaining_credits = remaining_credits - ?, \
         held_credits = held_credits - ? \
         WHERE id = ? AND remaining_credits - held_credits + ? >= ? AND held_credits >= ?",
    )
    .bind(amount)
    .bind(from_held)
    .bind(user_id)
    .bind(from_held)
    .bind(amount)
    .bind(from_held)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    if amount > 0 {
        record_change(conn, user_id, -amount, Reason::Charge, reference).await?;
    }
    Ok(true)
}

/// Writes the ledger row of a balance change just made on the user's row (same transaction),
/// with the balance after it. Returns that balance.
async fn record_change(
    conn: &mut MySqlConnection,
    user_id: i64,
    delta: i64,
    reason: Reason,
    reference: &str,
) -> Result<i64, sqlx::Error> {
    let balance: i64 =
        sqlx::query_scalar("SELECT remaining_credits FROM wechat_users WHERE id = ?")
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "INSERT INTO credit_ledger (user_id, delta, balance_after, reason, reference) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(delta)
    .bind(balance)
    .bind(reason.as_str())
    .bind(reference)
    .execute(&mut *conn)
    .await?;
    Ok(balance)
}

/// Adds (delta > 0) or removes (delta < 0) credits with its ledger row, never taking the
/// spendable balance below zero. Returns the new balance, or None (nothing changed) when a removal
/// is larger than what is spendable.
#[tracing::instrument(name = "ledger.adjust", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn adjust(
    conn: &mut MySqlConnection,
    user_id: i64,
    delta: i64,
    reason: Reason,
    reference: &str,
) -> Result<Option<i64>, sqlx::Error> {
    // Added credits count towards the total; removals do not take it back.
    let updated = sqlx::query(
        "UPDATE wechat_users SET remaining_credits = remaining_credits + ?, \
         total_credits = total_credits + GREATEST(?, 0) \
         WHERE id = ? AND remaining_credits - held_credits + ? >= 0",
    )
    .bind(delta)
    .bind(delta)
    .bind(user_id)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(None);
    }
    Ok(Some(
        record_change(conn, user_id, delta, reason, reference).await?,
    ))
}

/// Gives back `amount` (> 0) credits taken earlier under the same reference, with its ledger
/// row (`reason` names the giving back). The total granted is not raised: these credits were
/// counted when first granted. A used (reason, reference) fails with a unique violation.
#[tracing::instrument(name = "ledger.give_back", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn give_back(
    conn: &mut MySqlConnection,
    user_id: i64,
    amount: i64,
    reason: Reason,
    reference: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query("UPDATE wechat_users SET remaining_credits = remaining_credits + ? WHERE id = ?")
        .bind(amount)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    record_change(conn, user_id, amount, reason, reference).await
}

/// How many users hold a balance other than the sum of their ledger rows: 0 unless the books
/// are broken (the check every credit test ends with).
pub async fn users_off_their_ledger(pool: &sqlx::MySqlPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM wechat_users u WHERE u.remaining_credits <> \
         (SELECT COALESCE(SUM(l.delta), 0) FROM credit_ledger l WHERE l.user_id = u.id)",
    )
    .fetch_one(pool)
    .await
}

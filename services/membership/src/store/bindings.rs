//! `client_bindings`: one row per app install; its id is the QR scene id.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlConnection, MySqlExecutor};

use crate::domain::binding::BindingStatus;

#[derive(Clone, Debug, FromRow)]
pub struct BindingRow {
    pub id: u32,
    pub client_id: String,
    pub client_token_hash: Vec<u8>,
    #[sqlx(try_from = "String")]
    pub status: BindingStatus,
    pub openid: Option<String>,
    pub user_id: Option<i64>,
    pub ticket: Option<String>,
    pub expire_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, client_id, client_token_hash, status, openid, user_id, ticket, \
                       expire_at, completed_at";

/// Creates the client's row, or resets an existing one to pending with a new token and expiry.
/// Returns the row id (the scene id), which stays the same across refreshes.
#[tracing::instrument(name = "bindings.upsert_pending", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn upsert_pending(
    conn: &mut MySqlConnection,
    client_id: &str,
    token_hash: &[u8; 32],
    expire_at: DateTime<Utc>,
) -> Result<u32, sqlx::Error> {
    sqlx::query(
        "INSERT INTO client_bindings (client_id, client_token_hash, status, expire_at) \
         VALUES (?, ?, 'pending', ?) \
         ON DUPLICATE KEY UPDATE client_token_hash = VALUES(client_token_hash), \
           status = 'pending', openid = NULL, user_id = NULL, ticket = NULL, qr_url = NULL, \
           completed_at = NULL, expire_at = VALUES(expire_at), updated_at = CURRENT_TIMESTAMP(3)",
    )
    .bind(client_id)
    .bind(&token_hash[..])
    .bind(expire_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT id FROM client_bindings WHERE client_id = ?")
        .bind(client_id)
        .fetch_one(&mut *conn)
        .await
}

/// A client's binding status and token hash ([`client_state`]).
#[derive(Clone, Debug, FromRow)]
pub struct ClientState {
    #[sqlx(try_from = "String")]
    pub status: BindingStatus,
    pub client_token_hash: Vec<u8>,
}

/// The status and token hash of a client's binding. With `lock`, the row is locked for the rest
/// of the transaction; callers lock only a row they have seen exists, since a locking read of a
/// missing key locks the gap and makes concurrent first QR codes deadlock.
#[tracing::instrument(name = "bindings.client_state", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn client_state(
    conn: &mut MySqlConnection,
    client_id: &str,
    lock: bool,
) -> Result<Option<ClientState>, sqlx::Error> {
    let sql = if lock {
        "SELECT CAST(status AS CHAR) AS status, client_token_hash FROM client_bindings \
         WHERE client_id = ? FOR UPDATE"
    } else {
        "SELECT CAST(status AS CHAR) AS status, client_token_hash FROM client_bindings \
         WHERE client_id = ?"
    };
    sqlx::query_as(sql)
        .bind(client_id)
        .fetch_optional(&mut *conn)
        .await
}

/// A signed-out row: a token hash nobody holds, no longer bound, its QR code expired.
const SIGNED_OUT: &str = "client_token_hash = ?, status = 'pending', openid = NULL, \
    user_id = NULL, ticket = NULL, qr_url = NULL, completed_at = NULL, \
    expire_at = CURRENT_TIMESTAMP(3), updated_at = CURRENT_TIMESTAMP(3)";

/// Signs a client out by its token. Returns the client id, or None when no row has the token.
#[tracing::instrument(name = "bindings.revoke", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn revoke(
    conn: &mut MySqlConnection,
    token_hash: &[u8; 32],
    unknown_hash: &[u8; 32],
) -> Result<Option<String>, sqlx::Error> {
    let client_id: Option<String> = sqlx::query_scalar(
        "SELECT client_id FROM client_bindings WHERE client_token_hash = ? FOR UPDATE",
    )
    .bind(&token_hash[..])
    .fetch_optional(&mut *conn)
    .await?;
    if client_id.is_some() {
        sqlx::query(&format!(
            "UPDATE client_bindings SET {SIGNED_OUT} WHERE client_token_hash = ?"
        ))
        .bind(&unknown_hash[..])
        .bind(&token_hash[..])
        .execute(&mut *conn)
        .await?;
    }
    Ok(client_id)
}

/// Signs out `client_id` when it is bound to `openid` now. Returns the hash of the token that
/// stopped working, or None when that client is not this user's.
#[tracing::instrument(name = "bindings.revoke_users_client", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn revoke_users_client(
    conn: &mut MySqlConnection,
    openid: &str,
    client_id: &str,
    unknown_hash: &[u8; 32],
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let token_hash: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT client_token_hash FROM client_bindings \
         WHERE client_id = ? AND openid = ? AND status = 'completed' FOR UPDATE",
    )
    .bind(client_id)
    .bind(openid)
    .fetch_optional(&mut *conn)
    .await?;
    if token_hash.is_some() {
        sqlx::query(&format!(
            "UPDATE client_bindings SET {SIGNED_OUT} WHERE client_id = ?"
        ))
        .bind(&unknown_hash[..])
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(token_hash)
}

/// A user's bound clients and when each was bound ([`bound_to_user`]).
#[derive(Clone, Debug, FromRow)]
pub struct UserClientRow {
    pub client_id: String,
    pub completed_at: DateTime<Utc>,
}

/// The clients bound to `openid` now, most recently bound first (at most `limit`).
#[tracing::instrument(name = "bindings.bound_to_user", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn bound_to_user(
    executor: impl MySqlExecutor<'_>,
    openid: &str,
    limit: u32,
) -> Result<Vec<UserClientRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT client_id, completed_at FROM client_bindings \
         WHERE openid = ? AND status = 'completed' AND completed_at IS NOT NULL \
         ORDER BY completed_at DESC, id DESC LIMIT ?",
    )
    .bind(openid)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Stores the QR code WeChat made for the row.
#[tracing::instrument(name = "bindings.set_qrcode", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn set_qrcode(
    executor: impl MySqlExecutor<'_>,
    id: u32,
    ticket: &str,
    qr_url: &str,
    expire_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE client_bindings SET ticket = ?, qr_url = ?, expire_at = ?, \
         updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(ticket)
    .bind(qr_url)
    .bind(expire_at)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "bindings.find_by_client", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_by_client(
    executor: impl MySqlExecutor<'_>,
    client_id: &str,
) -> Result<Option<BindingRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM client_bindings WHERE client_id = ?"
    ))
    .bind(client_id)
    .fetch_optional(executor)
    .await
}

#[tracing::instrument(name = "bindings.find_by_token_hash", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_by_token_hash(
    executor: impl MySqlExecutor<'_>,
    token_hash: &[u8; 32],
) -> Result<Option<BindingRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM client_bindings WHERE client_token_hash = ?"
    ))
    .bind(&token_hash[..])
    .fetch_optional(executor)
    .await
}

/// Locks the row of a scene for the rest of the transaction.
#[tracing::instrument(name = "bindings.lock_scene", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn lock_scene(
    conn: &mut MySqlConnection,
    scene_id: u32,
) -> Result<Option<BindingRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM client_bindings WHERE id = ? FOR UPDATE"
    ))
    .bind(scene_id)
    .fetch_optional(&mut *conn)
    .await
}

#[tracing::instrument(name = "bindings.complete", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn complete(
    conn: &mut MySqlConnection,
    id: u32,
    openid: &str,
    user_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE client_bindings SET status = 'completed', openid = ?, user_id = ?, \
         completed_at = CURRENT_TIMESTAMP(3), updated_at = CURRENT_TIMESTAMP(3) \
         WHERE id = ? AND status = 'pending'",
    )
    .bind(openid)
    .bind(user_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

//! Admin sessions on the server: each sign-in gets a random session id, recorded in Redis for the
//! session's lifetime and named in the signed cookie. Signing out deletes the record, so every
//! copy of the cookie stops working at once; a cookie is honoured only while its record exists.
//! Without Redis no session can be checked: admin calls fail closed (503), as sign-in does.

use crate::AppState;
use crate::error::ApiError;

fn key(state: &AppState, session_id: &str) -> String {
    format!(
        "{}:gateway:admin-session:{session_id}",
        state.cfg.redis.redis_key_prefix
    )
}

/// Records a new session of `username`; returns its id.
pub async fn start(state: &AppState, username: &str) -> Result<String, ApiError> {
    let session_id = format!("{:032x}", rand::random::<u128>());
    let ttl = state.cfg.admin_session_ttl_secs.max(1);
    let mut redis = state.redis.clone();
    redis::cmd("SET")
        .arg(key(state, &session_id))
        .arg(username)
        .arg("EX")
        .arg(ttl)
        .query_async::<()>(&mut redis)
        .await
        .map_err(|_| super::unavailable("sign-in is unavailable, try again later"))?;
    Ok(session_id)
}

/// Whether the session is still recorded for `username` (not signed out, not expired).
pub async fn is_live(state: &AppState, session_id: &str, username: &str) -> Result<bool, ApiError> {
    let mut redis = state.redis.clone();
    let recorded: Option<String> = redis::cmd("GET")
        .arg(key(state, session_id))
        .query_async(&mut redis)
        .await
        .map_err(|_| super::unavailable("the admin session cannot be checked, try again later"))?;
    Ok(recorded.as_deref() == Some(username))
}

/// Ends a session for every copy of its cookie.
pub async fn end(state: &AppState, session_id: &str) -> Result<(), ApiError> {
    let mut redis = state.redis.clone();
    redis::cmd("DEL")
        .arg(key(state, session_id))
        .query_async::<()>(&mut redis)
        .await
        .map_err(|_| super::unavailable("sign-out is unavailable, try again later"))
}

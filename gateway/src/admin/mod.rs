//! The admin site's sign-in: one operator account with an argon2 password hash from config, a
//! server-side session named by a signed cookie, a lockout after repeated failures that an
//! attacker cannot turn against the operator ([`lockout`]), and state changes accepted only from
//! the admin site's own origin ([`origin`]). Counts and sessions live in Redis, shared by every
//! gateway instance; without Redis the admin API fails closed.

pub mod lockout;
pub mod origin;
pub mod sessions;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, SameSite};
use proto::ErrorCode;
use secrecy::ExposeSecret;

use crate::AppState;
use crate::error::ApiError;
use crate::session_cookie::SessionCookie;

pub use origin::require_admin_origin;

pub const ADMIN_COOKIE: &str = "xintu_admin";

/// A signed-in operator.
pub struct AdminSession {
    pub username: String,
    /// The server-side session this cookie names (ended by sign-out).
    pub session_id: String,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(ErrorCode::AdminUnavailable, message)
}

/// Checks the credentials, counting failures per address (see [`lockout`]).
pub async fn verify_login(
    state: &AppState,
    username: &str,
    password: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let configured = state
        .cfg
        .admin_password_hash
        .as_ref()
        .filter(|hash| !hash.expose_secret().is_empty());
    let Some(hash) = configured else {
        return Err(unavailable("no admin account is configured"));
    };
    let username_ok = username == state.cfg.admin_username;
    let attempt = lockout::Attempt::new(state, ip, username_ok);
    attempt.check(state).await?;
    // argon2 is meant to be slow (tens of milliseconds of CPU): it runs on a blocking thread so a
    // burst of sign-in attempts cannot stall the requests sharing this runtime's threads. It runs
    // for an unknown user name too, so the answer's timing does not tell the name.
    let (hash, given) = (hash.expose_secret().to_owned(), password.to_owned());
    let password_ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2::Argon2::default()
                    .verify_password(given.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if username_ok && password_ok {
        attempt.succeeded(state).await;
        return Ok(());
    }
    attempt.failed(state).await?;
    // The attempted name is not logged: it is whatever a stranger typed (a password, at times).
    tracing::warn!(
        known_account = username_ok,
        address = %attempt.address,
        "failed admin sign-in"
    );
    Err(ApiError::new(
        ErrorCode::InvalidCredentials,
        "wrong username or password",
    ))
}

/// The admin session: `username|session_id`, Strict so that no other site can send it.
const ADMIN_SESSION: SessionCookie = SessionCookie {
    name: ADMIN_COOKIE,
    same_site: SameSite::Strict,
};

pub fn session_cookie(state: &AppState, username: &str, session_id: &str) -> Cookie<'static> {
    ADMIN_SESSION.issue(
        &format!("{username}|{session_id}"),
        state.cfg.admin_session_ttl_secs,
        state.cfg.session_cookie_secure,
        chrono::Utc::now().timestamp(),
    )
}

/// The session a request's cookie names, when the cookie is ours, unexpired and for the
/// configured operator (whether the session is still live is not asked here).
pub fn claimed_session(headers: &HeaderMap, state: &AppState) -> Option<AdminSession> {
    let value = ADMIN_SESSION.read(
        headers,
        state.cookie_keys.admin_session.clone().into(),
        chrono::Utc::now().timestamp(),
    )?;
    let (username, session_id) = value.rsplit_once('|')?;
    let valid = username == state.cfg.admin_username && !session_id.is_empty();
    valid.then(|| AdminSession {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
    })
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let denied = || ApiError::new(ErrorCode::AdminSignInRequired, "sign in to the admin site");
        let session = claimed_session(&parts.headers, state).ok_or_else(denied)?;
        if !sessions::is_live(state, &session.session_id, &session.username).await? {
            return Err(denied());
        }
        Ok(session)
    }
}

/// Hashes a password for `admin_password_hash` (the `hash-password` command).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

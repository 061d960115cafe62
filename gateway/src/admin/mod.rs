//! The admin site's sign-in: one operator account with an argon2 password hash from config, a
//! signed session cookie, and a lockout after repeated failures, counted in Redis so every gateway
//! instance shares it (and refusing sign-in while Redis is unreachable: fail closed).

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use redis::AsyncCommands;
use secrecy::ExposeSecret;

use crate::AppState;
use crate::error::ApiError;

pub const ADMIN_COOKIE: &str = "xintu_admin";

/// A signed-in operator.
pub struct AdminSession {
    pub username: String,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "admin_unavailable",
        message,
    )
}

/// Checks the credentials, counting failures per account and per address.
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
    // Without Redis the failure counts cannot be kept: sign-in fails closed (503) rather than
    // open a way around the lockout.
    let mut redis = state.redis.clone();
    let keys = [
        format!(
            "{}:gateway:admin-fail:user:{username}",
            state.cfg.redis_key_prefix
        ),
        format!(
            "{}:gateway:admin-fail:ip:{}",
            state.cfg.redis_key_prefix,
            ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        ),
    ];
    for key in &keys {
        let failures: Option<u32> = redis
            .get(key)
            .await
            .map_err(|_| unavailable("sign-in is unavailable, try again later"))?;
        if failures.unwrap_or(0) >= state.cfg.admin_max_failures {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "admin_locked",
                "too many failed sign-ins; try again later",
            ));
        }
    }
    let username_ok = username == state.cfg.admin_username;
    // argon2 is meant to be slow (tens of milliseconds of CPU): it runs on a blocking thread so a
    // burst of sign-in attempts cannot stall the requests sharing this runtime's threads.
    let (hash, attempt) = (hash.expose_secret().to_owned(), password.to_owned());
    let password_ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2::Argon2::default()
                    .verify_password(attempt.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if username_ok && password_ok {
        let _: Result<(), _> = redis.del(&keys[0]).await;
        return Ok(());
    }
    for key in &keys {
        let count: u32 = redis
            .incr(key, 1)
            .await
            .map_err(|_| unavailable("sign-in is unavailable"))?;
        if count == 1 {
            let _: Result<(), _> = redis
                .expire(
                    key,
                    i64::try_from(state.cfg.admin_lockout_secs).unwrap_or(900),
                )
                .await;
        }
    }
    tracing::warn!(username, "failed admin sign-in");
    Err(ApiError::unauthorized(
        "invalid_credentials",
        "wrong username or password",
    ))
}

/// The session cookie: `username|expires_unix`, signed; Strict so other sites cannot use it.
pub fn session_cookie(state: &AppState, username: &str) -> Cookie<'static> {
    let ttl = i64::try_from(state.cfg.admin_session_ttl_secs).unwrap_or(28_800);
    let expires = chrono::Utc::now().timestamp() + ttl;
    Cookie::build((ADMIN_COOKIE, format!("{username}|{expires}")))
        .path("/")
        .http_only(true)
        .secure(state.cfg.session_cookie_secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(ttl))
        .build()
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = SignedCookieJar::from_headers(
            &parts.headers,
            state.cookie_keys.admin_session.clone().into(),
        );
        let denied =
            || ApiError::unauthorized("admin_sign_in_required", "sign in to the admin site");
        let cookie = jar.get(ADMIN_COOKIE).ok_or_else(denied)?;
        let (username, expires) = cookie.value().rsplit_once('|').ok_or_else(denied)?;
        let expires: i64 = expires.parse().map_err(|_| denied())?;
        if username != state.cfg.admin_username || expires <= chrono::Utc::now().timestamp() {
            return Err(denied());
        }
        Ok(Self {
            username: username.to_owned(),
        })
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

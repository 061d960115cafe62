//! The member page's session: our own signed, HttpOnly cookie holding the openid that the OAuth
//! code exchange proved. Nothing a client sends (an openid header, a body field) replaces it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::AppState;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "xintu_session";
pub const OAUTH_STATE_COOKIE: &str = "xintu_oauth_state";

/// The signed-in WeChat user of the member page.
pub struct MemberSession {
    pub openid: String,
}

/// Encodes `openid|expires_unix`; the cookie's signature covers both.
pub fn session_cookie(state: &AppState, openid: &str) -> Cookie<'static> {
    let expires =
        chrono::Utc::now().timestamp() + i64::try_from(state.cfg.session_ttl_secs).unwrap_or(7200);
    Cookie::build((SESSION_COOKIE, format!("{openid}|{expires}")))
        .path("/")
        .http_only(true)
        .secure(state.cfg.session_cookie_secure)
        .same_site(SameSite::Lax)
        .max_age(time_seconds(state.cfg.session_ttl_secs))
        .build()
}

/// A short-lived cookie binding the OAuth `state` to this browser.
pub fn oauth_state_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((OAUTH_STATE_COOKIE, value))
        .path("/api/v1/member/oauth")
        .http_only(true)
        .secure(state.cfg.session_cookie_secure)
        .same_site(SameSite::Lax)
        .max_age(time_seconds(600))
        .build()
}

fn time_seconds(seconds: u64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(i64::try_from(seconds).unwrap_or(600))
}

impl FromRequestParts<AppState> for MemberSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = SignedCookieJar::from_headers(
            &parts.headers,
            state.cookie_keys.member_session.clone().into(),
        );
        let unauthenticated =
            || ApiError::unauthorized("not_signed_in", "sign in through WeChat first");
        let cookie = jar.get(SESSION_COOKIE).ok_or_else(unauthenticated)?;
        let (openid, expires) = cookie
            .value()
            .rsplit_once('|')
            .ok_or_else(unauthenticated)?;
        let expires: i64 = expires.parse().map_err(|_| unauthenticated())?;
        if openid.is_empty() || expires <= chrono::Utc::now().timestamp() {
            return Err(unauthenticated());
        }
        if let Some(fields) = parts.extensions.get::<crate::recording::RecordFields>() {
            fields.set_openid(openid);
        }
        Ok(Self {
            openid: openid.to_owned(),
        })
    }
}

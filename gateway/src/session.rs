//! The member page's session: our own signed, HttpOnly cookie holding the openid that the OAuth
//! code exchange proved. Nothing a client sends (an openid header, a body field) replaces it.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use proto::ErrorCode;

use crate::AppState;
use crate::error::ApiError;
use crate::session_cookie::SessionCookie;

pub const SESSION_COOKIE: &str = "xintu_session";
pub const OAUTH_STATE_COOKIE: &str = "xintu_oauth_state";

/// The signed-in WeChat user of the member page.
pub struct MemberSession {
    pub openid: String,
}

/// The member session: the openid, Lax so that WeChat's redirect back (a top-level navigation
/// from another site) arrives with it.
pub const MEMBER_SESSION: SessionCookie = SessionCookie {
    name: SESSION_COOKIE,
    same_site: SameSite::Lax,
};

pub fn session_cookie(state: &AppState, openid: &str) -> Cookie<'static> {
    MEMBER_SESSION.issue(
        openid,
        state.cfg.session_ttl_secs,
        state.cfg.session_cookie_secure,
        chrono::Utc::now().timestamp(),
    )
}

/// A short-lived cookie binding the OAuth `state` to this browser.
pub fn oauth_state_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((OAUTH_STATE_COOKIE, value))
        .path("/api/v1/member/oauth")
        .http_only(true)
        .secure(state.cfg.session_cookie_secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(600))
        .build()
}

impl FromRequestParts<AppState> for MemberSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let openid = signed_in_openid(
            &parts.headers,
            state.cookie_keys.member_session.clone().into(),
            chrono::Utc::now().timestamp(),
        )
        .ok_or_else(|| ApiError::new(ErrorCode::NotSignedIn, "sign in through WeChat first"))?;
        if let Some(fields) = parts.extensions.get::<crate::recording::RecordFields>() {
            fields.set_openid(&openid);
        }
        Ok(Self { openid })
    }
}

/// The openid of a session cookie among `headers` that `key` signed and that is current at
/// `now` (unix seconds); None for anything else, whatever the headers hold.
pub fn signed_in_openid(headers: &HeaderMap, key: Key, now: i64) -> Option<String> {
    MEMBER_SESSION.read(headers, key, now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;
    use crate::cookie_keys::CookieKeys;

    const NOW: i64 = 1_800_000_000;

    /// The Cookie header a browser sends back for `value` signed with `key`.
    fn sent(key: &Key, value: &str) -> String {
        let mut jar = cookie::CookieJar::new();
        jar.signed_mut(key)
            .add(Cookie::new(SESSION_COOKIE, value.to_owned()));
        format!(
            "{SESSION_COOKIE}={}",
            jar.get(SESSION_COOKIE).unwrap().value()
        )
    }

    fn read(header: &str, key: &Key) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(header).ok()?,
        );
        signed_in_openid(&headers, key.clone(), NOW)
    }

    proptest! {
        /// sign → verify: a current session reads back its openid; an expired one, the same
        /// value under another purpose's key, or any changed byte reads as no session.
        #[test]
        fn a_session_verifies_only_as_signed_and_while_current(
            openid in "[A-Za-z0-9_-]{1,64}",
            lifetime in -100_000i64..100_000,
            secret in prop::collection::vec(any::<u8>(), 32..64),
            flip in any::<prop::sample::Index>(),
        ) {
            let keys = CookieKeys::derive(&secret);
            let member: Key = keys.member_session.into();
            let expires = NOW + lifetime;
            let header = sent(&member, &format!("{openid}|{expires}"));
            let current = (lifetime > 0).then(|| openid.clone());
            prop_assert_eq!(read(&header, &member), current);
            prop_assert_eq!(read(&header, &keys.admin_session.into()), None);
            prop_assert_eq!(read(&header, &keys.oauth_state.into()), None);
            let mut changed = header.into_bytes();
            let at = SESSION_COOKIE.len() + 1
                + flip.index(changed.len() - SESSION_COOKIE.len() - 1);
            changed[at] ^= 0x01;
            prop_assert_eq!(read(&String::from_utf8(changed).unwrap(), &member), None);
        }
    }
}

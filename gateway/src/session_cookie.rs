//! What the member and admin session cookies hold: `value|expires_unix`, signed with the key of
//! the cookie's purpose ([`crate::cookie_keys`]). The signature covers the expiry, so a cookie
//! that a client keeps past its max-age still reads as no session. One writer and one reader for
//! both kinds, so the two cannot drift apart in how they check a cookie.

use axum::http::HeaderMap;
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};

/// One kind of session cookie: HttpOnly, for the whole site.
pub struct SessionCookie {
    pub name: &'static str,
    pub same_site: SameSite,
}

impl SessionCookie {
    /// The cookie holding `value`, current for `ttl_secs` from `now` (unix seconds).
    pub fn issue(&self, value: &str, ttl_secs: u64, secure: bool, now: i64) -> Cookie<'static> {
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl);
        Cookie::build((self.name, format!("{value}|{expires}")))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(self.same_site)
            .max_age(cookie::time::Duration::seconds(ttl))
            .build()
    }

    /// The value of this cookie among `headers` when `key` signed it and it is current at `now`;
    /// None for anything else, whatever the headers hold.
    pub fn read(&self, headers: &HeaderMap, key: Key, now: i64) -> Option<String> {
        let jar = SignedCookieJar::<Key>::from_headers(headers, key);
        let cookie = jar.get(self.name)?;
        let (value, expires) = cookie.value().rsplit_once('|')?;
        let expires: i64 = expires.parse().ok()?;
        (!value.is_empty() && expires > now).then(|| value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const KIND: SessionCookie = SessionCookie {
        name: "xintu_test",
        same_site: SameSite::Strict,
    };

    /// The Cookie header a browser sends back for a cookie that `key` signed.
    fn sent_back(cookie: Cookie<'static>, key: &Key) -> HeaderMap {
        let mut jar = cookie::CookieJar::new();
        jar.signed_mut(key).add(cookie);
        let signed = jar.get(KIND.name).unwrap().value();
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("{}={signed}", KIND.name)).unwrap(),
        );
        headers
    }

    #[test]
    fn an_issued_value_reads_back_whole_until_it_expires() {
        let key = Key::generate();
        let cookie = KIND.issue("operator|5f3c9a", 600, true, NOW);
        assert_eq!(cookie.max_age(), Some(cookie::time::Duration::seconds(600)));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.http_only(), Some(true));
        let headers = sent_back(cookie, &key);
        assert_eq!(
            KIND.read(&headers, key.clone(), NOW).as_deref(),
            Some("operator|5f3c9a")
        );
        assert_eq!(
            KIND.read(&headers, key.clone(), NOW + 599).as_deref(),
            Some("operator|5f3c9a")
        );
        assert_eq!(KIND.read(&headers, key, NOW + 600), None);
        assert_eq!(KIND.read(&headers, Key::generate(), NOW), None);
    }

    #[test]
    fn a_signed_value_without_a_readable_expiry_or_with_nothing_before_it_is_no_session() {
        let key = Key::generate();
        for value in ["operator", "operator|soon", "|1900000000", ""] {
            let headers = sent_back(Cookie::new(KIND.name, value), &key);
            assert_eq!(KIND.read(&headers, key.clone(), NOW), None, "{value:?}");
        }
    }
}

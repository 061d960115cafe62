//! One signing key per kind of cookie, each derived from `SESSION_SECRET` for its purpose alone:
//! the member session, the admin session and the OAuth state. A key that leaks or a cookie that
//! is misused for one purpose says nothing about the others.

use axum::extract::FromRef;
use axum_extra::extract::cookie::Key;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::AppState;

/// The three cookie keys.
#[derive(Clone)]
pub struct CookieKeys {
    pub member_session: MemberSessionKey,
    pub admin_session: AdminSessionKey,
    pub oauth_state: OAuthStateKey,
}

impl CookieKeys {
    /// Derives each key as HMAC-SHA256(secret, purpose), then cookie's own key expansion.
    pub fn derive(secret: &[u8]) -> Self {
        Self {
            member_session: MemberSessionKey(derive(secret, "xintu/cookie/member-session/v1")),
            admin_session: AdminSessionKey(derive(secret, "xintu/cookie/admin-session/v1")),
            oauth_state: OAuthStateKey(derive(secret, "xintu/cookie/oauth-state/v1")),
        }
    }
}

fn derive(secret: &[u8], purpose: &str) -> Key {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(purpose.as_bytes());
    Key::derive_from(&mac.finalize().into_bytes())
}

macro_rules! cookie_key {
    ($name:ident, $field:ident) => {
        /// A cookie key for one purpose (see [`CookieKeys`]).
        #[derive(Clone)]
        pub struct $name(Key);

        impl From<$name> for Key {
            fn from(key: $name) -> Self {
                key.0
            }
        }

        impl FromRef<AppState> for $name {
            fn from_ref(state: &AppState) -> Self {
                state.cookie_keys.$field.clone()
            }
        }
    };
}

cookie_key!(MemberSessionKey, member_session);
cookie_key!(AdminSessionKey, admin_session);
cookie_key!(OAuthStateKey, oauth_state);

#[cfg(test)]
mod tests {
    use cookie::{Cookie, CookieJar};

    use super::*;

    #[test]
    fn a_cookie_signed_for_one_purpose_does_not_verify_for_another() {
        let keys = CookieKeys::derive(b"k3J9x2Lq8Zm4Wv7Tn1Rb6Yc0Hd5Ga2Ef8Pu3Si");
        let member: Key = keys.member_session.into();
        let admin: Key = keys.admin_session.into();
        let oauth: Key = keys.oauth_state.into();
        let mut jar = CookieJar::new();
        jar.signed_mut(&member)
            .add(Cookie::new("xintu_admin", "admin|99999999999"));
        // The signed value, as the browser sends it back.
        let sent = jar
            .get("xintu_admin")
            .cloned()
            .unwrap_or_else(|| Cookie::new("", ""));
        let mut received = CookieJar::new();
        received.add_original(sent);
        assert!(received.signed(&member).get("xintu_admin").is_some());
        assert!(received.signed(&admin).get("xintu_admin").is_none());
        assert!(received.signed(&oauth).get("xintu_admin").is_none());
    }
}

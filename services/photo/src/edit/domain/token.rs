//! The tokens in result URLs: `<task id>.<index>.<expiry>.<signature>`, signed with HMAC-SHA256
//! under a secret the photo instances share. A token cannot be guessed or altered, and stops
//! working at its expiry; it is all a URL needs (an app can hand it to an image view).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultToken {
    pub task_id: String,
    pub index: u32,
    pub expires_at_unix: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
}

#[derive(Clone)]
pub struct UrlSigner {
    secret: SecretString,
}

impl UrlSigner {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC takes a key of any length; this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(payload.as_bytes());
        mac
    }

    pub fn sign(&self, task_id: &str, index: u32, expires_at_unix: i64) -> String {
        let payload = format!("{task_id}.{index}.{expires_at_unix}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks the signature (in constant time) and the expiry against `now_unix`.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<ResultToken, TokenError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(payload)
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let mut parts = payload.split('.');
        let (Some(task_id), Some(index), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let index = index.parse().map_err(|_| TokenError::Malformed)?;
        let expires_at_unix: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        if expires_at_unix <= now_unix {
            return Err(TokenError::Expired);
        }
        Ok(ResultToken {
            task_id: task_id.to_owned(),
            index,
            expires_at_unix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> UrlSigner {
        UrlSigner::new(SecretString::from(secret.to_owned()))
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let signer = signer("a-secret-of-the-photo-instances-0123456789");
        let token = signer.sign("0123456789abcdef0123456789abcdef", 1, 1_000);
        let named = signer.verify(&token, 999).unwrap();
        assert_eq!(named.task_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(named.index, 1);
        assert_eq!(signer.verify(&token, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let ours = signer("a-secret-of-the-photo-instances-0123456789");
        let token = ours.sign("0123456789abcdef0123456789abcdef", 0, 5_000);
        let later = token.replace(".5000.", ".9000.");
        assert_eq!(ours.verify(&later, 1), Err(TokenError::BadSignature));
        let other_index = token.replacen(".0.", ".1.", 1);
        assert_eq!(ours.verify(&other_index, 1), Err(TokenError::BadSignature));
        let theirs = signer("another-secret-another-secret-0123456789");
        assert_eq!(theirs.verify(&token, 1), Err(TokenError::BadSignature));
        assert_eq!(ours.verify("nonsense", 1), Err(TokenError::Malformed));
        assert_eq!(ours.verify("a.b.c.!!!", 1), Err(TokenError::Malformed));
    }
}

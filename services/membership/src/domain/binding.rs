//! App clients, their bearer tokens and binding state.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::MembershipError;

/// An app install's identifier, chosen by the app: 1–64 of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, MembershipError> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(MembershipError::invalid(
                "client_id",
                "must be 1 to 64 characters of letters, digits, '.', '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's secret bearer token. Only its SHA-256 is stored.
pub struct ClientToken(String);

impl ClientToken {
    const PREFIX: &'static str = "ct_";

    /// Makes a new token with 256 bits of randomness.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{}{}", Self::PREFIX, URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Compares with a stored hash in constant time.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        stored_hash.len() == 32 && bool::from(self.hash().ct_eq(stored_hash))
    }
}

/// A binding as `client_bindings.status` stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum BindingStatus {
    /// A QR code is out; nobody has scanned it yet.
    Pending,
    /// Scanned: the client is bound to a user.
    Completed,
}

platform::stored_enum!(BindingStatus);

/// Binding state as the app sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingState {
    Pending,
    Completed,
    /// Pending past the QR code's expiry.
    Expired,
}

impl BindingState {
    /// Derives the state from the stored status and the QR code's expiry.
    pub fn derive(stored: BindingStatus, expire_at: chrono::DateTime<chrono::Utc>) -> Self {
        match stored {
            BindingStatus::Completed => Self::Completed,
            BindingStatus::Pending if expire_at <= chrono::Utc::now() => Self::Expired,
            BindingStatus::Pending => Self::Pending,
        }
    }

    /// As the admin site lists it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Expired => "expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_validated() {
        assert!(ClientId::parse("pc-8f2a.install_1").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse(&"a".repeat(65)).is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("客户端").is_err());
    }

    #[test]
    fn tokens_are_random_and_match_only_their_hash() {
        let a = ClientToken::generate();
        let b = ClientToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("ct_") && a.expose().len() > 40);
        assert!(a.matches(&a.hash()));
        assert!(!a.matches(&b.hash()));
        assert!(!a.matches(&a.hash()[..31]));
    }
}

//! The SHA-256 of an image's bytes: the cache key apps can compute themselves.

use std::fmt;

use sha2::Digest as _;

/// A SHA-256 digest of image bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 digest is 64 hex digits")]
pub struct DigestError;

impl Digest {
    /// Hashes image bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Parses 64 hex digits, either case.
    pub fn parse(hex_digits: &str) -> Result<Self, DigestError> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_digits.trim(), &mut raw).map_err(|_| DigestError)?;
        Ok(Self(raw))
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, DigestError> {
        <[u8; 32]>::try_from(raw).map(Self).map_err(|_| DigestError)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Returns the lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_in_lower_case_hex() {
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Digest::of(b"abc").to_hex(), expected);
        assert_eq!(
            Digest::parse(&expected.to_uppercase()).unwrap(),
            Digest::of(b"abc")
        );
    }

    #[test]
    fn malformed_digests_are_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(66)] {
            assert_eq!(Digest::parse(bad), Err(DigestError), "{bad}");
        }
        assert!(Digest::from_bytes(&[0; 31]).is_err());
    }
}

//! WeChat Pay API v2 signatures: every non-empty field except `sign`, sorted by name, joined as
//! `k=v&…&key=<API key>`, then MD5 or HMAC-SHA256, upper-case hex.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The two v2 sign types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignType {
    Md5,
    HmacSha256,
}

impl std::str::FromStr for SignType {
    type Err = String;

    /// A configured sign type: exactly `MD5` or `HMAC-SHA256`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "MD5" => Ok(Self::Md5),
            "HMAC-SHA256" => Ok(Self::HmacSha256),
            other => Err(format!("{other:?} is not MD5 or HMAC-SHA256")),
        }
    }
}

impl SignType {
    /// As written in the `sign_type` / `signType` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// Parses the `sign_type` field of a merchant's request; absent means MD5, as WeChat
    /// defines for requests. (Answers and notifies are verified with the configured type
    /// instead: see [`verify`].)
    pub fn parse(field: Option<&str>) -> Option<Self> {
        match field {
            None | Some("") | Some("MD5") => Some(Self::Md5),
            Some("HMAC-SHA256") => Some(Self::HmacSha256),
            Some(_) => None,
        }
    }
}

/// Computes the v2 signature of `fields` (the `sign` field, if present, is skipped).
pub fn sign<'a, I>(fields: I, key: &str, sign_type: SignType) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let sorted: BTreeMap<&str, &str> = fields
        .into_iter()
        .filter(|(name, value)| *name != "sign" && !value.is_empty())
        .collect();
    let mut plain = String::new();
    for (name, value) in sorted {
        plain.push_str(name);
        plain.push('=');
        plain.push_str(value);
        plain.push('&');
    }
    plain.push_str("key=");
    plain.push_str(key);
    let digest = match sign_type {
        SignType::Md5 => Md5::digest(plain.as_bytes()).to_vec(),
        SignType::HmacSha256 => match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
            Ok(mut mac) => {
                mac.update(plain.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            // HMAC accepts keys of any length; this arm cannot be taken.
            Err(_) => Vec::new(),
        },
    };
    hex::encode_upper(digest)
}

/// Why a received document is not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no sign")]
    MissingSign,
    #[error("sign_type is not the merchant's sign type")]
    SignTypeMismatch,
    #[error("sign does not match")]
    BadSign,
}

/// Verifies the `sign` field of a received document (an answer or a notify) over every field
/// received, with the merchant's configured sign type. WeChat Pay signs answers with the
/// algorithm of the request and leaves `sign_type` out of them; notifies may or may not carry
/// it. So the configured type decides, and a `sign_type` that is present must name it: a
/// message cannot downgrade HMAC-SHA256 to MD5 by saying so. A missing or empty `sign` fails
/// closed.
pub fn verify(
    fields: &BTreeMap<String, String>,
    key: &str,
    configured: SignType,
) -> Result<(), VerifyError> {
    let presented = fields
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingSign)?;
    match fields.get("sign_type").map(String::as_str) {
        None | Some("") => {}
        Some(named) if named == configured.as_str() => {}
        Some(_) => return Err(VerifyError::SignTypeMismatch),
    }
    let expected = sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        key,
        configured,
    );
    let presented = presented.to_ascii_uppercase();
    let matches = expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::BadSign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    // WeChat Pay's documentation example (pay.weixin.qq.com, jsapi.php?chapter=4_3), as
    // binarywang/WxJava's SignUtilsTest uses it.
    #[test]
    fn v6_official_example() {
        let fields = [
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ];
        assert_eq!(
            sign(fields, KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign(fields, KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    // wechatpy/wechatpy tests/test_pay.py.
    #[test]
    fn v7_wechatpy() {
        let fields = [("test1", "test1"), ("test2", "test2")];
        assert_eq!(
            sign(fields, KEY, SignType::Md5),
            "1E3A8D73B5A4AEE787C0F68B5DAB8520"
        );
        assert_eq!(
            sign(fields, KEY, SignType::HmacSha256),
            "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"
        );
    }

    #[test]
    fn empty_fields_and_sign_are_skipped() {
        let with_extras = [
            ("test1", "test1"),
            ("empty", ""),
            ("test2", "test2"),
            ("sign", "X"),
        ];
        assert_eq!(
            sign(with_extras, KEY, SignType::Md5),
            "1E3A8D73B5A4AEE787C0F68B5DAB8520"
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn verify_uses_every_field_and_the_configured_sign_type() {
        let mut md5 = fields(&[("test1", "test1"), ("test2", "test2")]);
        assert_eq!(
            verify(&md5, KEY, SignType::Md5),
            Err(VerifyError::MissingSign),
            "a missing sign fails closed"
        );
        md5.insert("sign".into(), "1E3A8D73B5A4AEE787C0F68B5DAB8520".into());
        assert_eq!(verify(&md5, KEY, SignType::Md5), Ok(()));
        md5.insert("coupon_id_0".into(), "added".into());
        assert_eq!(
            verify(&md5, KEY, SignType::Md5),
            Err(VerifyError::BadSign),
            "a field added in transit breaks the sign"
        );
        md5.remove("coupon_id_0");
        assert_eq!(
            verify(&md5, KEY, SignType::HmacSha256),
            Err(VerifyError::BadSign),
            "an MD5 sign does not pass where HMAC-SHA256 is configured"
        );
        assert!(verify(&BTreeMap::new(), KEY, SignType::Md5).is_err());
    }

    #[test]
    fn answers_without_sign_type_verify_with_the_configured_type() {
        // How WeChat Pay answers a request signed with HMAC-SHA256: no sign_type field.
        let answer = fields(&[
            ("test1", "test1"),
            ("test2", "test2"),
            (
                "sign",
                "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659",
            ),
        ]);
        assert_eq!(verify(&answer, KEY, SignType::HmacSha256), Ok(()));
        assert_eq!(
            verify(&answer, KEY, SignType::Md5),
            Err(VerifyError::BadSign)
        );
    }

    #[test]
    fn a_present_sign_type_must_name_the_configured_one() {
        let mut hmac = fields(&[("test1", "test1"), ("test2", "test2")]);
        hmac.insert("sign_type".into(), "HMAC-SHA256".into());
        let signed = sign(
            hmac.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            KEY,
            SignType::HmacSha256,
        );
        hmac.insert("sign".into(), signed);
        assert_eq!(verify(&hmac, KEY, SignType::HmacSha256), Ok(()));
        // The same document as MD5-configured: refused before any hashing.
        assert_eq!(
            verify(&hmac, KEY, SignType::Md5),
            Err(VerifyError::SignTypeMismatch)
        );
        // A downgrade: signed with MD5 and saying so, where HMAC-SHA256 is configured.
        let mut downgraded = fields(&[("test1", "test1"), ("test2", "test2")]);
        downgraded.insert("sign_type".into(), "MD5".into());
        let signed = sign(
            downgraded.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            KEY,
            SignType::Md5,
        );
        downgraded.insert("sign".into(), signed);
        assert_eq!(
            verify(&downgraded, KEY, SignType::HmacSha256),
            Err(VerifyError::SignTypeMismatch)
        );
        assert_eq!(verify(&downgraded, KEY, SignType::Md5), Ok(()));
        downgraded.insert("sign_type".into(), "SHA1".into());
        assert_eq!(
            verify(&downgraded, KEY, SignType::Md5),
            Err(VerifyError::SignTypeMismatch)
        );
    }

    #[test]
    fn configured_sign_types_parse_exactly() {
        assert_eq!("MD5".parse::<SignType>(), Ok(SignType::Md5));
        assert_eq!("HMAC-SHA256".parse::<SignType>(), Ok(SignType::HmacSha256));
        assert!("md5".parse::<SignType>().is_err());
        assert!("".parse::<SignType>().is_err());
    }

    #[test]
    fn verify_configured_follows_the_configuration() {
        let mut fields: BTreeMap<String, String> = [("test1", "test1"), ("test2", "test2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(verify(&fields, KEY, SignType::Md5).is_err(), "no sign");
        fields.insert(
            "sign".into(),
            "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659".into(),
        );
        // No sign_type: the configured type applies (answers never carry one).
        assert!(verify(&fields, KEY, SignType::HmacSha256).is_ok());
        assert!(verify(&fields, KEY, SignType::Md5).is_err());
        fields.insert(
            "sign".into(),
            "edac6d70d2fdf5a2382f8204fc96a1918017e46acc5297f565ed1a7610acf659".into(),
        );
        assert!(
            verify(&fields, KEY, SignType::HmacSha256).is_ok(),
            "hex case"
        );
        // A named type must equal the configured one.
        let mut named = fields.clone();
        named.insert("sign_type".into(), "HMAC-SHA256".into());
        let resigned = sign(
            named.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            KEY,
            SignType::HmacSha256,
        );
        named.insert("sign".into(), resigned);
        assert!(verify(&named, KEY, SignType::HmacSha256).is_ok());
        assert!(verify(&named, KEY, SignType::Md5).is_err());
        named.insert("sign_type".into(), "SHA1".into());
        assert!(verify(&named, KEY, SignType::HmacSha256).is_err());
        fields.insert("sign".into(), String::new());
        assert!(
            verify(&fields, KEY, SignType::HmacSha256).is_err(),
            "empty sign"
        );
    }
}

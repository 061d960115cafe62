//! WeChat Pay v2 refund notifies: the details travel in `req_info`, base64 of AES-256-ECB
//! (PKCS#7) under the lower-case hex MD5 of the merchant's API key, and decrypt to a flat
//! `<root>` document (`out_refund_no`, `refund_status`, `refund_fee`, …). The notify carries no
//! `sign`: only a holder of the API key can write a `req_info` that decrypts and parses.

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

use crate::xml::{self, Fields, Value};

/// The root element of the decrypted details.
const ROOT: &str = "root";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefundInfoError {
    #[error("req_info is not valid base64")]
    BadBase64,
    #[error("req_info does not decrypt under our API key")]
    BadCiphertext,
    #[error("the decrypted refund details are malformed: {0}")]
    Malformed(#[from] xml::XmlError),
}

/// The AES-256 key: the 32 ASCII characters of the API key's lower-case hex MD5.
fn key(api_key: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    // 16 digest bytes are exactly 32 hex digits.
    let _ = hex::encode_to_slice(Md5::digest(api_key.as_bytes()), &mut key);
    key
}

/// Decrypts and parses a refund notify's `req_info`.
pub fn decrypt_req_info(req_info: &str, api_key: &str) -> Result<Fields, RefundInfoError> {
    let sealed = STANDARD
        .decode(req_info.trim())
        .map_err(|_| RefundInfoError::BadBase64)?;
    if sealed.len() > xml::MAX_BODY_BYTES {
        return Err(RefundInfoError::Malformed(xml::XmlError::TooLarge));
    }
    let plain = ecb::Decryptor::<Aes256>::new(&key(api_key).into())
        .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
        .map_err(|_| RefundInfoError::BadCiphertext)?;
    Ok(xml::parse_rooted(&plain, ROOT)?)
}

/// Writes and encrypts refund details as WeChat Pay does (the sandbox's side).
pub fn encrypt_req_info(fields: &[(&str, Value<'_>)], api_key: &str) -> String {
    let plain = xml::write_rooted(ROOT, fields);
    let sealed = ecb::Encryptor::<Aes256>::new(&key(api_key).into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    STANDARD.encode(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // wechatpy/wechatpy tests/test_crypto.py::test_refund_notify_decrypt_message.
    const V8_KEY: &str = "OF4Ne3znh8KqL0V4NqmALQa0uXMYKcEk";
    const V8_REQ_INFO: &str = "51A27s9LxbaEv52nBOrqa0FCs3HVIM31Wc3BpNqSCP5MQlS8HL1Vl7mZ21043B7PZy7adtOZGtZv44lGl0U8JXlVFL4Ltxsw6+pACjZBB0Qi1LUDjFlP2IyTxYX4eC57kxnCphDdIyRkU67kOWW/HN/efggTUlaPJkoL5kVe9Y1MZF55IHR4lwGI7WtVLtxATX1tkAVZF+/ri0WlPXo9+GkqeB2/id6Ozw09Tqp8C/TKbmKBpRhTCRU2TzfQoLa6fjbgETFHJ795aEMyUZPQYbbsz6U9Rj9lUzEh8+Oc8KYTXa9zVk+nnFr82+yjffb3d36ylTe0y/VmYf90rf9cbiJQdM00zZ8Qa99SlMTs2wjOO4Mi4Btlg1PebsLF8TkqbSZkRJDGs61UunUB8Km1b/VeBxXuv4D3H7DiVZ9Fj7lq2j07zFDpxxlhhen7kZvMWWO3lrfFpA9c4eFOqfF9SxcU9nBmHfDD1g/dsrMl6+a71xQHJ/gn80fZOefUBv92ggqutsuJ4gd4OqkmO0XUs8e4XQyLpra+LvpmahsU5lBIZuQcMq3FHrqe8hXTfp3+3qym2wGfvPI75jx41VZwmBQy9izB1Id+A5lUeXC5QJy+ryDu/dWkhB+aMjkElaI/Epmcc/IEPaI73W6Hc58hNednOM536rPnn+GDc98PdGszpLTjmaZSu8dtqwPaym66yRqFQowzFoBbooik57iHUFBCeWya7XcXYL9WKhRF3uIZM+Kfv9/Zs2pF+w9/EJpltuzPpT1GP2VTMSHz45zwphFlS2lX8wHyZ+k9n2dptzQqpOCPedt5iQAmAe1oNQMxNdPDH9g68x9UzWD1kfK/dPO+3NPAh0XG+io4x15fIknNf7JLjpAuWicMMzCdwC4hhqeYOzQ+pC9f2xJXi5YViNKIZY69oO8eoHYRitLZrHLgx3oB2zimmqX6BI+DMklKAzAqqgGmbFxcVTvxZB6cMCx+H7TTWXnjAG+6A3SrCcxg0l5+UB93pkAYR7SVJ+VaZoiBqlqnZvb7IM17n9XaaFntlzvbbFCIa7OnOQb5Lvw=";

    #[test]
    fn v8_decrypts_wechatpys_refund_notify() {
        let fields = decrypt_req_info(V8_REQ_INFO, V8_KEY).unwrap();
        assert_eq!(fields["out_refund_no"], "1234");
        assert_eq!(fields["out_trade_no"], "2020010418301551404339261814");
        assert_eq!(fields["transaction_id"], "4200000483202001042069747825");
        assert_eq!(fields["refund_id"], "50300103182020010413419046597");
        assert!(fields.contains_key("refund_status"), "{fields:?}");
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        assert!(decrypt_req_info(V8_REQ_INFO, "0F4Ne3znh8KqL0V4NqmALQa0uXMYKcEk").is_err());
        let mut sealed = STANDARD.decode(V8_REQ_INFO).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 0x55;
        assert!(decrypt_req_info(&STANDARD.encode(&sealed), V8_KEY).is_err());
        assert_eq!(
            decrypt_req_info("not base64!", V8_KEY),
            Err(RefundInfoError::BadBase64)
        );
        assert_eq!(
            decrypt_req_info(&STANDARD.encode([0u8; 15]), V8_KEY),
            Err(RefundInfoError::BadCiphertext),
            "not a whole block"
        );
    }

    #[test]
    fn round_trips_and_refuses_declarations_inside() {
        let sealed = encrypt_req_info(
            &[
                ("out_refund_no", Value::Text("RF1")),
                ("refund_fee", Value::Number(150)),
            ],
            V8_KEY,
        );
        let fields = decrypt_req_info(&sealed, V8_KEY).unwrap();
        assert_eq!(fields["out_refund_no"], "RF1");
        assert_eq!(fields["refund_fee"], "150");
        let hostile =
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><root><a>&x;</a></root>";
        let sealed = STANDARD.encode(
            ecb::Encryptor::<Aes256>::new(&key(V8_KEY).into())
                .encrypt_padded_vec_mut::<Pkcs7>(hostile.as_bytes()),
        );
        assert_eq!(
            decrypt_req_info(&sealed, V8_KEY),
            Err(RefundInfoError::Malformed(xml::XmlError::Declaration))
        );
    }
}

//! WeChat Pay API v3 wire formats: the merchant's RSA signature on each request (the
//! `Authorization` header) and on the JSAPI payment parameters, the verification of WeChat Pay's
//! signed answers and notifications, and the AES-256-GCM resources notifications carry.
//!
//! v3 signs with keys, not a shared secret. The merchant signs with the private key of its API
//! certificate; WeChat Pay signs with a key the merchant looks up by the `Wechatpay-Serial`
//! header: a WeChat Pay public key (`PUB_KEY_ID_…`, the mode new merchants get) or a platform
//! certificate (by its serial number). During a switch from one to the other both sign, so
//! [`PlatformKeys`] holds every key by its id.
//!
//! Checked against public SDKs' test data: wechatpy (the request signature) and the official
//! wechatpay-go and wechatpay-java (a signed notification, AES-256-GCM), named where used.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How far a signed answer's or notification's timestamp may be from our clock, seconds: older
/// ones are refused as replays (WeChat Pay's own SDKs allow five minutes).
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;

/// The `Authorization` scheme of v3 requests.
pub const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum V3Error {
    #[error("unreadable key: {0}")]
    InvalidKey(String),
    #[error("no WeChat Pay key with serial {0:?}")]
    UnknownSerial(String),
    #[error("timestamp {0:?} is outside the accepted window")]
    StaleTimestamp(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("the resource does not decrypt with this APIv3 key")]
    Decrypt,
}

/// What the merchant signs for a request: method, path with query, timestamp, nonce and body,
/// each followed by a newline (the body empty for a GET).
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The merchant's signing key: its API certificate's private key and serial number.
#[derive(Clone)]
pub struct MerchantSigner {
    mchid: String,
    serial_no: String,
    key: SigningKey<Sha256>,
}

impl std::fmt::Debug for MerchantSigner {
    // The private key never prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantSigner")
            .field("mchid", &self.mchid)
            .field("serial_no", &self.serial_no)
            .finish_non_exhaustive()
    }
}

impl MerchantSigner {
    /// Reads `apiclient_key.pem` as the merchant platform gives it (PKCS#8, `BEGIN PRIVATE KEY`)
    /// or in the older PKCS#1 form (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(mchid: &str, serial_no: &str, pem: &str) -> Result<Self, V3Error> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|err| V3Error::InvalidKey(err.to_string()))?;
        Ok(Self {
            mchid: mchid.to_owned(),
            serial_no: serial_no.to_owned(),
            key: SigningKey::new(key),
        })
    }

    /// Base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of `message`.
    pub fn sign(&self, message: &str) -> String {
        BASE64.encode(self.key.sign(message.as_bytes()).to_bytes())
    }

    /// The `Authorization` header of a request.
    pub fn authorization(
        &self,
        method: &str,
        path_and_query: &str,
        timestamp: i64,
        nonce: &str,
        body: &str,
    ) -> String {
        let signature = self.sign(&request_message(
            method,
            path_and_query,
            timestamp,
            nonce,
            body,
        ));
        format!(
            "{AUTH_SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",timestamp=\"{timestamp}\",\
             serial_no=\"{}\",signature=\"{signature}\"",
            self.mchid, self.serial_no
        )
    }

    /// `paySign` of the JSAPI payment parameters (`signType` `RSA`): the app id, timestamp,
    /// nonce and `prepay_id=…` package, each followed by a newline.
    pub fn jsapi_pay_sign(
        &self,
        appid: &str,
        timestamp: i64,
        nonce: &str,
        prepay_id: &str,
    ) -> String {
        self.sign(&format!(
            "{appid}\n{timestamp}\n{nonce}\nprepay_id={prepay_id}\n"
        ))
    }
}

/// A certificate's serial number as WeChat Pay writes it and its RSA public key. The merchant's
/// `apiclient_cert.pem` names the `serial_no` of its requests this way.
pub fn certificate_key(pem: &str) -> Result<(String, RsaPublicKey), V3Error> {
    let invalid = |err: String| V3Error::InvalidKey(err);
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let certificate = pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
    // The number in upper-case hex, no leading zeros (the DER integer carries a zero byte
    // before a high first bit).
    let serial = certificate
        .tbs_certificate
        .serial
        .to_str_radix(16)
        .to_ascii_uppercase();
    let key = RsaPublicKey::from_public_key_der(certificate.public_key().raw)
        .map_err(|e| invalid(e.to_string()))?;
    Ok((serial, key))
}

/// The signature headers of a WeChat Pay answer or notification.
#[derive(Clone, Copy, Debug)]
pub struct SignedHeaders<'a> {
    /// `Wechatpay-Timestamp`, unix seconds as text.
    pub timestamp: &'a str,
    /// `Wechatpay-Nonce`.
    pub nonce: &'a str,
    /// `Wechatpay-Signature`, base64.
    pub signature: &'a str,
    /// `Wechatpay-Serial`: which key signed.
    pub serial: &'a str,
}

/// WeChat Pay's verification keys by id: public keys (`PUB_KEY_ID_…`) and platform certificates
/// (by serial number, upper-case hex).
#[derive(Clone, Debug, Default)]
pub struct PlatformKeys {
    keys: HashMap<String, VerifyingKey<Sha256>>,
}

impl PlatformKeys {
    /// Adds a WeChat Pay public key (`BEGIN PUBLIC KEY`) under its id.
    pub fn add_public_key(&mut self, id: &str, pem: &str) -> Result<(), V3Error> {
        let key = RsaPublicKey::from_public_key_pem(pem)
            .map_err(|err| V3Error::InvalidKey(err.to_string()))?;
        self.keys.insert(id.to_owned(), VerifyingKey::new(key));
        Ok(())
    }

    /// Adds a platform certificate (`BEGIN CERTIFICATE`); returns its serial number, the id
    /// WeChat Pay names it by.
    pub fn add_certificate(&mut self, pem: &str) -> Result<String, V3Error> {
        let (serial, key) = certificate_key(pem)?;
        self.keys.insert(serial.clone(), VerifyingKey::new(key));
        Ok(serial)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a signed answer or notification: the key named by the serial, a timestamp within
    /// [`TIMESTAMP_WINDOW_SECS`] of `now` (unix seconds), and the signature over timestamp, nonce
    /// and the body's exact bytes, each followed by a newline.
    pub fn verify(&self, headers: SignedHeaders<'_>, body: &[u8], now: i64) -> Result<(), V3Error> {
        let key = self
            .keys
            .get(headers.serial)
            .or_else(|| self.keys.get(&headers.serial.to_ascii_uppercase()))
            .ok_or_else(|| V3Error::UnknownSerial(headers.serial.to_owned()))?;
        let timestamp: i64 = headers
            .timestamp
            .parse()
            .map_err(|_| V3Error::StaleTimestamp(headers.timestamp.to_owned()))?;
        if (now - timestamp).abs() > TIMESTAMP_WINDOW_SECS {
            return Err(V3Error::StaleTimestamp(headers.timestamp.to_owned()));
        }
        let signature = BASE64
            .decode(headers.signature)
            .ok()
            .and_then(|bytes| Signature::try_from(bytes.as_slice()).ok())
            .ok_or(V3Error::BadSignature)?;
        let mut message = Vec::with_capacity(body.len() + 64);
        message.extend_from_slice(headers.timestamp.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(headers.nonce.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(body);
        message.push(b'\n');
        key.verify(&message, &signature)
            .map_err(|_| V3Error::BadSignature)
    }
}

/// A notification's envelope; its business content is in the encrypted `resource`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`, …
    pub event_type: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct EncryptedResource {
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64 of the ciphertext followed by the 16-byte tag.
    pub ciphertext: String,
    pub nonce: String,
    #[serde(default)]
    pub associated_data: String,
    #[serde(default)]
    pub original_type: String,
}

impl Notification {
    /// Parses a notification body (verify its signature first: until then it is anyone's).
    pub fn parse(body: &[u8]) -> Result<Self, V3Error> {
        serde_json::from_slice(body).map_err(|err| V3Error::Malformed(err.to_string()))
    }
}

/// Decrypts a resource with the merchant's APIv3 key (32 ASCII characters set on the merchant
/// platform): AES-256-GCM with the resource's nonce and associated data.
pub fn decrypt_resource(
    api_v3_key: &[u8],
    resource: &EncryptedResource,
) -> Result<Vec<u8>, V3Error> {
    if resource.algorithm != "AEAD_AES_256_GCM" {
        return Err(V3Error::Malformed(format!(
            "algorithm {:?}",
            resource.algorithm
        )));
    }
    let cipher = Aes256Gcm::new_from_slice(api_v3_key)
        .map_err(|_| V3Error::InvalidKey("the APIv3 key is 32 bytes".to_owned()))?;
    let nonce = resource.nonce.as_bytes();
    if nonce.len() != 12 {
        return Err(V3Error::Malformed("the nonce is 12 bytes".to_owned()));
    }
    let ciphertext = BASE64
        .decode(&resource.ciphertext)
        .map_err(|_| V3Error::Malformed("ciphertext is not base64".to_owned()))?;
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: &ciphertext,
                aad: resource.associated_data.as_bytes(),
            },
        )
        .map_err(|_| V3Error::Decrypt)
}

/// Encrypts `plaintext` as WeChat Pay encrypts a notification's resource: what the sandbox, which
/// plays WeChat Pay, sends. `nonce` is 12 ASCII characters.
pub fn encrypt_resource(
    api_v3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    original_type: &str,
    plaintext: &[u8],
) -> Result<EncryptedResource, V3Error> {
    let cipher = Aes256Gcm::new_from_slice(api_v3_key)
        .map_err(|_| V3Error::InvalidKey("the APIv3 key is 32 bytes".to_owned()))?;
    if nonce.len() != 12 {
        return Err(V3Error::Malformed("the nonce is 12 bytes".to_owned()));
    }
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: plaintext,
                aad: associated_data.as_bytes(),
            },
        )
        .map_err(|_| V3Error::Decrypt)?;
    Ok(EncryptedResource {
        algorithm: "AEAD_AES_256_GCM".to_owned(),
        ciphertext: BASE64.encode(ciphertext),
        nonce: nonce.to_owned(),
        associated_data: associated_data.to_owned(),
        original_type: original_type.to_owned(),
    })
}

/// The transaction a `TRANSACTION.SUCCESS` notification carries (decrypted) and an order query
/// answers. Only what a JSAPI merchant reads; WeChat Pay sends more (bank, promotions, scene).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    /// Absent until the order is paid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transaction_id: String,
    #[serde(default)]
    pub trade_type: String,
    /// SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING or PAYERROR.
    pub trade_state: String,
    #[serde(default)]
    pub trade_state_desc: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bank_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attach: String,
    /// RFC 3339, China time; absent until paid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub success_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    /// Absent for an order that was never paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TransactionAmount>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Payer {
    pub openid: String,
}

/// Integer fen. `total` is the order's amount; `payer_total` what the user paid after coupons.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct TransactionAmount {
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default)]
    pub currency: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payer_currency: String,
}

/// The body of a v3 error answer (HTTP 4xx/5xx).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub code: String,
    pub message: String,
}

/// A refund as v3 reports it: the answer to a refund request or query (`status`) and the
/// resource of a `REFUND.*` notification (`refund_status`, and `mchid`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RefundState {
    /// Only in notifications.
    #[serde(default)]
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub transaction_id: String,
    pub out_refund_no: String,
    pub refund_id: String,
    /// SUCCESS, CLOSED, PROCESSING or ABNORMAL.
    #[serde(alias = "refund_status")]
    pub status: String,
    pub amount: RefundAmount,
}

/// Integer fen: the order's total and this refund.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RefundAmount {
    pub total: i64,
    pub refund: i64,
}

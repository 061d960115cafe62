//! WeChat pushes: signature checks, safe-mode decryption and the flat XML, before anything is
//! trusted; and the sealing of passive replies in the mode the push came in.

pub mod replay;

use secrecy::{ExposeSecret, SecretString};
use wechat_protocol::crypto::{CryptoError, MessageCrypto};
use wechat_protocol::sign::{sha1_signature, signature_matches};
use wechat_protocol::xml::{self, Fields, Value, XmlError};

/// The query string WeChat adds to every push.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PushQuery {
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub echostr: Option<String>,
    #[serde(default)]
    pub encrypt_type: Option<String>,
    #[serde(default)]
    pub msg_signature: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("signature mismatch")]
    BadSignature,
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("cannot decrypt the message: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the push is encrypted but safe mode is not configured")]
    UnexpectedEncryption,
    #[error("safe mode is configured but the push is not encrypted")]
    MissingEncryption,
    #[error("missing field {0}")]
    MissingField(&'static str),
}

/// An authenticated push.
pub struct OpenedPush {
    pub fields: Fields,
    /// True when the push came encrypted; the reply must be encrypted too.
    pub encrypted: bool,
}

impl OpenedPush {
    pub fn field(&self, name: &'static str) -> Result<&str, PushError> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
            .ok_or(PushError::MissingField(name))
    }
}

/// Verifies and opens pushes for one official account.
#[derive(Clone)]
pub struct PushCodec {
    token: SecretString,
    crypto: Option<MessageCrypto>,
}

impl PushCodec {
    /// Plain mode without `aes_key`, safe mode with it.
    pub fn new(
        token: SecretString,
        aes_key: Option<&SecretString>,
        appid: &str,
    ) -> Result<Self, CryptoError> {
        let crypto = aes_key
            .map(|key| MessageCrypto::new(key.expose_secret(), appid))
            .transpose()?;
        Ok(Self { token, crypto })
    }

    /// Checks the URL signature over (token, timestamp, nonce), sent with every push.
    pub fn verify_url(&self, query: &PushQuery) -> Result<(), PushError> {
        let expected =
            sha1_signature(&[self.token.expose_secret(), &query.timestamp, &query.nonce]);
        if query.timestamp.is_empty() || !signature_matches(&expected, &query.signature) {
            return Err(PushError::BadSignature);
        }
        Ok(())
    }

    /// Verifies a push and returns its fields: signature first, then the XML, then (safe mode) the
    /// message signature over the ciphertext, then decryption and the inner XML.
    pub fn open(&self, query: &PushQuery, body: &[u8]) -> Result<OpenedPush, PushError> {
        self.verify_url(query)?;
        let outer = xml::parse(body)?;
        let encrypted = query.encrypt_type.as_deref() == Some("aes");
        match (&self.crypto, encrypted) {
            (None, false) => Ok(OpenedPush {
                fields: outer,
                encrypted: false,
            }),
            (None, true) => Err(PushError::UnexpectedEncryption),
            (Some(_), false) => Err(PushError::MissingEncryption),
            (Some(crypto), true) => {
                let ciphertext = outer
                    .get("Encrypt")
                    .filter(|value| !value.is_empty())
                    .ok_or(PushError::MissingField("Encrypt"))?;
                let expected = sha1_signature(&[
                    self.token.expose_secret(),
                    &query.timestamp,
                    &query.nonce,
                    ciphertext,
                ]);
                let presented = query.msg_signature.as_deref().unwrap_or("");
                if !signature_matches(&expected, presented) {
                    return Err(PushError::BadSignature);
                }
                let inner = crypto.decrypt(ciphertext)?;
                Ok(OpenedPush {
                    fields: xml::parse(inner.as_bytes())?,
                    encrypted: true,
                })
            }
        }
    }

    /// Seals a reply document: as is for a plain push, encrypted and signed for a safe one.
    pub fn seal(&self, reply: String, encrypted: bool) -> String {
        match (&self.crypto, encrypted) {
            (Some(crypto), true) => {
                let ciphertext = crypto.encrypt(&reply);
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let nonce = rand::random::<u32>().to_string();
                let signature =
                    sha1_signature(&[self.token.expose_secret(), &timestamp, &nonce, &ciphertext]);
                xml::write(&[
                    ("Encrypt", Value::Text(&ciphertext)),
                    ("MsgSignature", Value::Text(&signature)),
                    ("TimeStamp", Value::Text(&timestamp)),
                    ("Nonce", Value::Text(&nonce)),
                ])
            }
            _ => reply,
        }
    }
}

/// A passive text reply to the user (To/From swapped from the push).
pub fn text_reply(push: &OpenedPush, content: &str) -> Option<String> {
    let user = push.fields.get("FromUserName")?;
    let account = push.fields.get("ToUserName")?;
    Some(xml::write(&[
        ("ToUserName", Value::Text(user)),
        ("FromUserName", Value::Text(account)),
        ("CreateTime", Value::Number(chrono::Utc::now().timestamp())),
        ("MsgType", Value::Text("text")),
        ("Content", Value::Text(content)),
    ]))
}

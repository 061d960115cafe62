//! The sandbox acting as WeChat users: scanning a binding QR code makes WeChat push a signed
//! `subscribe` (not yet following) or `SCAN` (following) event to the account's server URL.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wechat_protocol::crypto::MessageCrypto;
use wechat_protocol::sign::{sha1_signature, signature_matches};
use wechat_protocol::xml::{self, Value};

use crate::Sandbox;

/// One signed delivery, ready to send (and to send again, as WeChat's retries do).
#[derive(Clone, Debug)]
pub struct Push {
    /// The query string: signature, timestamp, nonce, openid (+ encrypt_type, msg_signature).
    pub query: Vec<(String, String)>,
    pub body: String,
}

/// What the account's server answered.
#[derive(Clone, Debug)]
pub struct PushReply {
    pub status: u16,
    pub body: String,
    /// The passive reply's fields, decrypted and verified in safe mode; None for "success"/"".
    pub message: Option<BTreeMap<String, String>>,
}

impl PushReply {
    /// The text the user would see in WeChat.
    pub fn content(&self) -> Option<&str> {
        self.message.as_ref()?.get("Content").map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unknown QR ticket")]
    UnknownTicket,
    #[error("the QR code has expired")]
    ExpiredTicket,
    #[error("push failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the reply is not valid: {0}")]
    BadReply(String),
}

impl Sandbox {
    /// Builds a signed event push exactly as WeChat would send it.
    pub fn event_push(
        &self,
        openid: &str,
        event: &str,
        event_key: &str,
        ticket: &str,
        create_time: i64,
    ) -> Push {
        let cfg = &self.state.cfg;
        let mut fields = vec![
            ("ToUserName", Value::Text(&cfg.original_id)),
            ("FromUserName", Value::Text(openid)),
            ("CreateTime", Value::Number(create_time)),
            ("MsgType", Value::Text("event")),
            ("Event", Value::Text(event)),
        ];
        if !event_key.is_empty() || event != "unsubscribe" {
            fields.push(("EventKey", Value::Text(event_key)));
        }
        if !ticket.is_empty() {
            fields.push(("Ticket", Value::Text(ticket)));
        }
        self.sign_push(&xml::write(&fields), openid)
    }

    /// Signs (and in safe mode encrypts) a push document.
    pub fn sign_push(&self, document: &str, openid: &str) -> Push {
        let cfg = &self.state.cfg;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let nonce = rand::random::<u32>().to_string();
        let signature = sha1_signature(&[&cfg.push_token, &timestamp, &nonce]);
        let mut query = vec![
            ("signature".to_owned(), signature),
            ("timestamp".to_owned(), timestamp.clone()),
            ("nonce".to_owned(), nonce.clone()),
            ("openid".to_owned(), openid.to_owned()),
        ];
        let body = match self.crypto() {
            Some(crypto) => {
                let encrypted = crypto.encrypt(document);
                let msg_signature =
                    sha1_signature(&[&cfg.push_token, &timestamp, &nonce, &encrypted]);
                query.push(("encrypt_type".to_owned(), "aes".to_owned()));
                query.push(("msg_signature".to_owned(), msg_signature));
                xml::write(&[
                    ("ToUserName", Value::Text(&cfg.original_id)),
                    ("Encrypt", Value::Text(&encrypted)),
                ])
            }
            None => document.to_owned(),
        };
        Push { query, body }
    }

    fn crypto(&self) -> Option<MessageCrypto> {
        let cfg = &self.state.cfg;
        let key = cfg.aes_key.as_deref()?;
        MessageCrypto::new(key, &cfg.appid).ok()
    }

    /// Sends one delivery to `push_url` and reads the reply.
    pub async fn deliver(&self, push_url: &str, push: &Push) -> Result<PushReply, UserError> {
        self.state.pushes_sent.fetch_add(1, Ordering::SeqCst);
        let response = self
            .state
            .http
            .post(push_url)
            .query(&push.query)
            .header("content-type", "text/xml")
            .body(push.body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        let message = if status == 200 {
            self.open_reply(&body)?
        } else {
            None
        };
        Ok(PushReply {
            status,
            body,
            message,
        })
    }

    /// Delivers like WeChat: up to 3 attempts while the server fails or takes over 5 s.
    pub async fn deliver_with_retries(
        &self,
        push_url: &str,
        push: &Push,
    ) -> Result<PushReply, UserError> {
        let mut last = None;
        for _ in 0..3 {
            match tokio::time::timeout(Duration::from_secs(5), self.deliver(push_url, push)).await {
                Ok(Ok(reply)) if reply.status == 200 => return Ok(reply),
                Ok(Ok(reply)) => last = Some(Ok(reply)),
                Ok(Err(err)) => last = Some(Err(err)),
                Err(_) => {}
            }
        }
        last.unwrap_or_else(|| Err(UserError::BadReply("no answer within 5 s, 3 times".into())))
    }

    /// Verifies and decrypts a passive reply the way WeChat does.
    fn open_reply(&self, body: &str) -> Result<Option<BTreeMap<String, String>>, UserError> {
        if body.is_empty() || body == "success" {
            return Ok(None);
        }
        let fields = xml::parse(body.as_bytes()).map_err(|e| UserError::BadReply(e.to_string()))?;
        let Some(crypto) = self.crypto() else {
            return Ok(Some(fields));
        };
        let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let (encrypted, timestamp, nonce) = (get("Encrypt"), get("TimeStamp"), get("Nonce"));
        let expected =
            sha1_signature(&[&self.state.cfg.push_token, &timestamp, &nonce, &encrypted]);
        if !signature_matches(&expected, &get("MsgSignature")) {
            return Err(UserError::BadReply("MsgSignature does not match".into()));
        }
        let inner = crypto
            .decrypt(&encrypted)
            .map_err(|e| UserError::BadReply(e.to_string()))?;
        xml::parse(inner.as_bytes())
            .map(Some)
            .map_err(|e| UserError::BadReply(e.to_string()))
    }

    /// A user scans a binding QR code: `subscribe` with `qrscene_<id>` if they did not follow the
    /// account yet, else `SCAN` with `<id>`. Expired or unknown codes send nothing, as in WeChat.
    pub async fn scan(
        &self,
        push_url: &str,
        ticket: &str,
        openid: &str,
    ) -> Result<PushReply, UserError> {
        let record = self.qrcode(ticket).ok_or(UserError::UnknownTicket)?;
        if record.expires_at <= chrono::Utc::now().timestamp() {
            return Err(UserError::ExpiredTicket);
        }
        let now = chrono::Utc::now().timestamp();
        let push = if self.follow(openid) {
            self.event_push(
                openid,
                "subscribe",
                &format!("qrscene_{}", record.scene_id),
                ticket,
                now,
            )
        } else {
            self.event_push(openid, "SCAN", &record.scene_id.to_string(), ticket, now)
        };
        self.deliver_with_retries(push_url, &push).await
    }

    /// A user unfollows the account.
    pub async fn unfollow_account(
        &self,
        push_url: &str,
        openid: &str,
    ) -> Result<PushReply, UserError> {
        self.unfollow(openid);
        let push = self.event_push(
            openid,
            "unsubscribe",
            "",
            "",
            chrono::Utc::now().timestamp(),
        );
        self.deliver_with_retries(push_url, &push).await
    }
}

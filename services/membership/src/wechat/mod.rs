//! Client for the WeChat official-account API (base URL from config: WeChat or the sandbox).

mod token;

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use platform::redis::Redis;

pub use token::AccessTokens;

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    /// Holds the error without its URL: WeChat's URLs carry the access token and the OAuth
    /// exchange the AppSecret, and this error is logged.
    #[error("wechat request failed: {}", describe_transport(.0))]
    Transport(reqwest::Error),
    #[error("wechat answered http {0}")]
    Http(u16),
    #[error("wechat answered errcode {code}: {message}")]
    Api { code: i64, message: String },
    #[error("wechat quota reached (errcode {code})")]
    QuotaExceeded { code: i64 },
    #[error("wechat answered an unexpected body: {0}")]
    Malformed(String),
}

impl From<reqwest::Error> for WechatError {
    fn from(err: reqwest::Error) -> Self {
        Self::Transport(err.without_url())
    }
}

/// What went wrong with an HTTP call, cause by cause, for the log: timed out, refused, reset.
/// Only the outermost error knows the URL, and the callers have removed it.
pub(crate) fn describe_transport(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl WechatError {
    /// 40001 / 40014 / 42001: the access token we sent is no longer valid (WxJava's set).
    pub fn is_token_rejected(&self) -> bool {
        matches!(
            self,
            Self::Api {
                code: 40001 | 40014 | 42001,
                ..
            }
        )
    }

    /// Worth one more try: transport failures, 5xx, WeChat's "system busy" (-1) and its
    /// "system error" (-1000), which the token endpoints answer on a bad moment.
    fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Http(status) => *status >= 500,
            Self::Api {
                code: -1 | -1000, ..
            } => true,
            _ => false,
        }
    }
}

/// A temporary QR code as WeChat created it.
#[derive(Clone, Debug, Deserialize)]
pub struct QrCode {
    pub ticket: String,
    pub expire_seconds: u32,
    pub url: String,
}

/// Settings of the client.
#[derive(Clone, Debug)]
pub struct WechatSettings {
    pub api_base: String,
    pub appid: String,
    pub secret: SecretString,
    pub timeout: Duration,
    pub token_key: String,
    pub token_lock_key: String,
}

/// The official-account API, with the shared access token handled for the caller.
#[derive(Clone)]
pub struct WechatApi {
    http: reqwest::Client,
    api_base: String,
    tokens: AccessTokens,
}

impl WechatApi {
    pub fn new(settings: WechatSettings, redis: Redis) -> Result<Self, WechatError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let api_base = settings.api_base.trim_end_matches('/').to_owned();
        let tokens = AccessTokens::new(http.clone(), settings, redis);
        Ok(Self {
            http,
            api_base,
            tokens,
        })
    }

    /// Creates a temporary QR code (`QR_SCENE`) for `scene_id`.
    pub async fn create_qrcode(
        &self,
        scene_id: u32,
        expire_seconds: u32,
    ) -> Result<QrCode, WechatError> {
        let body = serde_json::json!({
            "expire_seconds": expire_seconds,
            "action_name": "QR_SCENE",
            "action_info": { "scene": { "scene_id": scene_id } },
        });
        self.post_json("/cgi-bin/qrcode/create", &body).await
    }

    /// Posts `body` to a business API with the shared token and reads the JSON answer.
    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, WechatError> {
        self.with_token(|token| {
            let url = format!("{}{path}", self.api_base);
            let request = self
                .http
                .post(url)
                .query(&[("access_token", token)])
                .json(body);
            send_json(request)
        })
        .await
    }

    /// Sends a template message (`message/template/send`) to a follower; returns its msgid.
    /// `data` maps each of the template's keys to its text.
    pub async fn send_template(
        &self,
        openid: &str,
        template_id: &str,
        url: &str,
        data: &[(&str, String)],
    ) -> Result<u64, WechatError> {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(key, value)| ((*key).to_owned(), serde_json::json!({ "value": value })))
            .collect();
        let mut body = serde_json::json!({
            "touser": openid,
            "template_id": template_id,
            "data": data,
        });
        if !url.is_empty() {
            body["url"] = serde_json::Value::from(url);
        }
        let sent: TemplateSent = self
            .post_json("/cgi-bin/message/template/send", &body)
            .await?;
        Ok(sent.msgid)
    }

    /// Calls `call` with the shared token. When WeChat rejects that very token, drops it from the
    /// cache (only if still the cached one), fetches a fresh one and calls once more; a transient
    /// failure is also tried once more.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, WechatError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let token = self.tokens.get().await?;
        match call(token.clone()).await {
            Err(err) if err.is_token_rejected() => {
                tracing::warn!(error = %err, "access token rejected; refetching once");
                self.tokens.invalidate(&token).await;
                let fresh = self.tokens.get().await?;
                call(fresh).await
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, "transient wechat failure; retrying once");
                tokio::time::sleep(Duration::from_millis(200)).await;
                call(token).await
            }
            other => other,
        }
    }
}

/// Sends a request and decodes WeChat's JSON answer, turning `errcode != 0` into an error.
async fn send_json<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, WechatError> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(WechatError::Http(status.as_u16()));
    }
    let value: serde_json::Value = response.json().await?;
    interpret(value)
}

/// Reads WeChat's JSON answer: `errcode != 0` is an error (quota codes apart), anything else must
/// have the shape of `T`.
fn interpret<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, WechatError> {
    if let Some(code) = value.get("errcode").and_then(serde_json::Value::as_i64)
        && code != 0
    {
        let message = value
            .get("errmsg")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        return Err(match code {
            45009 | 45011 => WechatError::QuotaExceeded { code },
            _ => WechatError::Api { code, message },
        });
    }
    serde_json::from_value(value).map_err(|err| WechatError::Malformed(err.to_string()))
}

#[derive(Deserialize)]
struct TemplateSent {
    msgid: u64,
}

#[derive(Deserialize)]
struct OAuthToken {
    openid: String,
    #[serde(default)]
    is_snapshotuser: Option<i64>,
}

impl WechatApi {
    /// Exchanges a web OAuth code (snsapi_base) for the user's openid. Used and invalid codes
    /// (40163, 40029) and snapshot-page virtual users come back as `Ok(None)`.
    pub async fn oauth_openid(&self, code: &str) -> Result<Option<String>, WechatError> {
        let url = format!("{}/sns/oauth2/access_token", self.api_base);
        let request = self.http.get(url).query(&[
            ("appid", self.tokens.appid()),
            ("secret", self.tokens.secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ]);
        oauth_outcome(send_json::<OAuthToken>(request).await)
    }
}

/// What an OAuth code exchange says about the user: an openid, nobody (used, invalid or missing
/// code; snapshot-page virtual user), or a failure.
fn oauth_outcome(answer: Result<OAuthToken, WechatError>) -> Result<Option<String>, WechatError> {
    match answer {
        Ok(token) if token.is_snapshotuser == Some(1) || token.openid.is_empty() => Ok(None),
        Ok(token) => Ok(Some(token.openid)),
        Err(WechatError::Api {
            code: 40029 | 40163 | 41008,
            ..
        }) => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod conformance;

//! WeChat Pay API v2 client (XML, MD5/HMAC-SHA256 signatures): unified order (JSAPI), order
//! query and close, and the JSAPI pay parameters for the H5 page. Answers are verified before
//! they are believed.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::xml::{self, Value};

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// Holds the error without its URL, like every outbound error that may be logged.
    #[error("wechat pay request failed: {}", crate::wechat::describe_transport(.0))]
    Transport(reqwest::Error),
    #[error("wechat pay answered http {0}")]
    Http(u16),
    #[error("wechat pay answered malformed XML: {0}")]
    Malformed(String),
    #[error("wechat pay answer failed verification")]
    BadSignature,
    #[error("wechat pay refused: {code}: {message}")]
    Refused { code: String, message: String },
}

impl From<reqwest::Error> for PayError {
    fn from(err: reqwest::Error) -> Self {
        Self::Transport(err.without_url())
    }
}

impl PayError {
    /// The business error code WeChat Pay answered, if it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when WeChat Pay may or may not have acted: the caller must not assume either.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Transport(_) | Self::Http(_))
            || matches!(self.code(), Some("SYSTEMERROR"))
    }
}

#[derive(Clone, Debug)]
pub struct PaySettings {
    pub api_base: String,
    pub appid: String,
    pub mch_id: String,
    pub api_key: SecretString,
    pub sign_type: SignType,
    pub notify_url: String,
    pub timeout: Duration,
}

/// A unified order to place.
pub struct UnifiedOrder<'a> {
    pub out_trade_no: &'a str,
    pub description: &'a str,
    pub total_fee: i64,
    pub openid: &'a str,
    pub client_ip: &'a str,
    /// `yyyyMMddHHmmss`, China time.
    pub time_expire: &'a str,
}

/// `getBrandWCPayRequest` parameters, signed for the page.
#[derive(Clone, Debug)]
pub struct JsapiParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// WeChat Pay's view of an order (`orderquery`).
#[derive(Clone, Debug)]
pub struct QueriedOrder {
    pub trade_state: String,
    pub transaction_id: String,
    pub total_fee: Option<i64>,
}

#[derive(Clone)]
pub struct PayClient {
    http: reqwest::Client,
    settings: PaySettings,
}

impl PayClient {
    pub fn new(settings: PaySettings) -> Result<Self, PayError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http, settings })
    }

    pub fn appid(&self) -> &str {
        &self.settings.appid
    }

    pub fn mch_id(&self) -> &str {
        &self.settings.mch_id
    }

    /// Verifies a document signed with our API key (a notify or an answer) with the configured
    /// sign type: answers carry no `sign_type`, and one that a notify carries must name ours.
    pub fn verify(&self, fields: &BTreeMap<String, String>) -> Result<(), pay::VerifyError> {
        pay::verify(
            fields,
            self.settings.api_key.expose_secret(),
            self.settings.sign_type,
        )
    }

    /// Places a JSAPI order; returns the prepay id.
    pub async fn unified_order(&self, order: &UnifiedOrder<'_>) -> Result<String, PayError> {
        let total_fee = order.total_fee.to_string();
        let answer = self
            .call(
                "/pay/unifiedorder",
                &[
                    ("body", order.description),
                    ("out_trade_no", order.out_trade_no),
                    ("total_fee", &total_fee),
                    ("spbill_create_ip", order.client_ip),
                    ("notify_url", &self.settings.notify_url),
                    ("trade_type", "JSAPI"),
                    ("openid", order.openid),
                    ("time_expire", order.time_expire),
                    ("fee_type", "CNY"),
                ],
            )
            .await?;
        answer
            .get("prepay_id")
            .filter(|id| !id.is_empty())
            .cloned()
            .ok_or_else(|| PayError::Malformed("no prepay_id".into()))
    }

    /// Asks WeChat Pay for an order's state.
    pub async fn order_query(&self, out_trade_no: &str) -> Result<QueriedOrder, PayError> {
        let answer = self
            .call("/pay/orderquery", &[("out_trade_no", out_trade_no)])
            .await?;
        Ok(QueriedOrder {
            trade_state: answer.get("trade_state").cloned().unwrap_or_default(),
            transaction_id: answer.get("transaction_id").cloned().unwrap_or_default(),
            total_fee: answer.get("total_fee").and_then(|fee| fee.parse().ok()),
        })
    }

    /// Closes an unpaid order.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), PayError> {
        self.call("/pay/closeorder", &[("out_trade_no", out_trade_no)])
            .await
            .map(|_| ())
    }

    /// The signed parameters the H5 page hands to `getBrandWCPayRequest`.
    pub fn jsapi_params(&self, prepay_id: &str) -> JsapiParams {
        let time_stamp = chrono::Utc::now().timestamp().to_string();
        let nonce_str = nonce();
        let package = format!("prepay_id={prepay_id}");
        let sign_type = self.settings.sign_type.as_str().to_owned();
        let pay_sign = pay::sign(
            [
                ("appId", self.settings.appid.as_str()),
                ("timeStamp", time_stamp.as_str()),
                ("nonceStr", nonce_str.as_str()),
                ("package", package.as_str()),
                ("signType", sign_type.as_str()),
            ],
            self.settings.api_key.expose_secret(),
            self.settings.sign_type,
        );
        JsapiParams {
            app_id: self.settings.appid.clone(),
            time_stamp,
            nonce_str,
            package,
            sign_type,
            pay_sign,
        }
    }

    /// Sends a signed request and returns the verified answer of a SUCCESS/SUCCESS call.
    async fn call(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<BTreeMap<String, String>, PayError> {
        let nonce_str = nonce();
        let sign_type = self.settings.sign_type.as_str();
        let mut fields: Vec<(&str, &str)> = vec![
            ("appid", &self.settings.appid),
            ("mch_id", &self.settings.mch_id),
            ("nonce_str", &nonce_str),
            ("sign_type", sign_type),
        ];
        fields.extend_from_slice(params);
        let sign = pay::sign(
            fields.iter().copied(),
            self.settings.api_key.expose_secret(),
            self.settings.sign_type,
        );
        let mut document: Vec<(&str, Value<'_>)> =
            fields.iter().map(|(k, v)| (*k, Value::Text(v))).collect();
        document.push(("sign", Value::Text(&sign)));
        let url = format!("{}{path}", self.settings.api_base.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(xml::write(&document))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(PayError::Http(status.as_u16()));
        }
        let body = response.bytes().await?;
        let answer = xml::parse(&body).map_err(|err| PayError::Malformed(err.to_string()))?;
        if answer.get("return_code").map(String::as_str) != Some("SUCCESS") {
            return Err(PayError::Refused {
                code: "FAIL".into(),
                message: answer.get("return_msg").cloned().unwrap_or_default(),
            });
        }
        // A SUCCESS answer is signed; an unsigned or mis-signed one is not WeChat Pay's.
        if self.verify(&answer).is_err()
            || answer.get("appid") != Some(&self.settings.appid)
            || answer.get("mch_id") != Some(&self.settings.mch_id)
        {
            return Err(PayError::BadSignature);
        }
        if answer.get("result_code").map(String::as_str) != Some("SUCCESS") {
            return Err(PayError::Refused {
                code: answer.get("err_code").cloned().unwrap_or_default(),
                message: answer.get("err_code_des").cloned().unwrap_or_default(),
            });
        }
        Ok(answer)
    }
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

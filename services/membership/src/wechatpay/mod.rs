//! WeChat Pay clients: API v2 (XML, a shared key; `v2`) and API v3 (JSON, RSA both ways;
//! `v3`), behind one [`PayClient`]. A deployment picks the API its orders are placed, queried,
//! closed and refunded with and its bill downloaded by (`WECHATPAY_API_VERSION`). v2 notifies
//! are still verified under v3 when a v2 API key is configured: orders placed before a switch
//! are notified the way they were placed.

mod v2;
mod v3;

pub use v3::{V3Notify, V3Settings, v2_refund_status};

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{FixedOffset, Offset, Utc};
use rand::RngCore;
use secrecy::SecretString;
use wechat_protocol::pay::{self, SignType};

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
    #[error("refunds need the merchant certificate (WECHATPAY_CERT_PATH, WECHATPAY_KEY_PATH)")]
    NoCertificate,
    #[error("the merchant certificate cannot be used: {0}")]
    BadCertificate(String),
    #[error("the API v3 settings cannot be used: {0}")]
    BadV3Settings(String),
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
    /// Where refund notifies go.
    pub refund_notify_url: String,
    /// The client certificate calls under `secapi/` need; refunds are off without it.
    pub secapi: Option<SecapiSettings>,
}

/// The merchant's API client certificate (`apiclient_cert.pem` and `apiclient_key.pem` from the
/// merchant platform) and where certificate-requiring calls go.
#[derive(Clone)]
pub struct SecapiSettings {
    /// WeChat Pay's base for `secapi/` calls; the API base unless a test endpoint says otherwise.
    pub base: String,
    /// The certificate and its private key, PEM, one after the other.
    pub identity_pem: secrecy::SecretSlice<u8>,
    /// An extra root to trust for `base` (a private test endpoint); WeChat Pay's own
    /// certificate chains to the public roots.
    pub extra_root_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SecapiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecapiSettings")
            .field("base", &self.base)
            .field("extra_root", &self.extra_root_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A unified order to place.
pub struct UnifiedOrder<'a> {
    pub out_trade_no: &'a str,
    pub description: &'a str,
    pub total_fee: i64,
    pub openid: &'a str,
    pub client_ip: &'a str,
    /// When WeChat Pay stops taking payment for it.
    pub expire_at: chrono::DateTime<chrono::Utc>,
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

/// A refund to ask for.
pub struct RefundRequest<'a> {
    pub out_trade_no: &'a str,
    pub out_refund_no: &'a str,
    pub total_fee: i64,
    pub refund_fee: i64,
    /// Shown to the user with the refund (≤ 80 characters).
    pub description: &'a str,
}

/// WeChat Pay's view of one refund (`pay/refundquery`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueriedRefund {
    /// SUCCESS, REFUNDCLOSE, PROCESSING or CHANGE.
    pub status: String,
    pub refund_id: String,
    pub refund_fee: Option<i64>,
}

#[derive(Clone)]
pub struct PayClient {
    v2: v2::V2Client,
    /// Places, queries and closes orders when configured.
    v3: Option<v3::V3Client>,
}

impl PayClient {
    pub fn new(settings: PaySettings, v3: Option<V3Settings>) -> Result<Self, PayError> {
        Ok(Self {
            v2: v2::V2Client::new(settings)?,
            v3: v3.map(v3::V3Client::new).transpose()?,
        })
    }

    /// `v3` or `v2`: the API orders are placed with.
    pub fn api_version(&self) -> &'static str {
        if self.v3.is_some() { "v3" } else { "v2" }
    }

    /// Whether refunds can be asked for: through v3, or v2 with a merchant certificate.
    pub fn can_refund(&self) -> bool {
        self.v3.is_some() || self.v2.can_refund()
    }

    /// The v2 API key, which v2 refund notifies are encrypted with; None when there is none.
    pub fn v2_api_key(&self) -> Option<&SecretString> {
        self.v2.api_key()
    }

    pub fn appid(&self) -> &str {
        self.v2.appid()
    }

    pub fn mch_id(&self) -> &str {
        self.v2.mch_id()
    }

    /// Verifies a v2 document (a notify) signed with our API key; without one, nothing is.
    pub fn verify(&self, fields: &BTreeMap<String, String>) -> Result<(), pay::VerifyError> {
        self.v2.verify(fields)
    }

    /// Checks and decrypts a v3 notification; None when API v3 is not configured.
    pub fn v3_notify(
        &self,
        signature: wechat_protocol::pay_v3::SignedHeaders<'_>,
        body: &[u8],
    ) -> Option<Result<V3Notify, wechat_protocol::pay_v3::V3Error>> {
        self.v3
            .as_ref()
            .map(|v3| v3.notification(signature, body, Utc::now().timestamp()))
    }

    /// Places a JSAPI order; returns the prepay id.
    pub async fn unified_order(&self, order: &UnifiedOrder<'_>) -> Result<String, PayError> {
        match &self.v3 {
            Some(v3) => v3.jsapi_order(order).await,
            None => self.v2.unified_order(order).await,
        }
    }

    /// Asks WeChat Pay for an order's state.
    pub async fn order_query(&self, out_trade_no: &str) -> Result<QueriedOrder, PayError> {
        match &self.v3 {
            Some(v3) => v3.order_query(out_trade_no).await,
            None => self.v2.order_query(out_trade_no).await,
        }
    }

    /// Closes an unpaid order.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), PayError> {
        match &self.v3 {
            Some(v3) => v3.close_order(out_trade_no).await,
            None => self.v2.close_order(out_trade_no).await,
        }
    }

    /// The signed parameters the H5 page hands to `getBrandWCPayRequest`.
    pub fn jsapi_params(&self, prepay_id: &str) -> JsapiParams {
        match &self.v3 {
            Some(v3) => v3.jsapi_params(prepay_id),
            None => self.v2.jsapi_params(prepay_id),
        }
    }

    /// Asks for a refund (idempotent by `out_refund_no` at WeChat Pay); returns WeChat Pay's
    /// refund id. Accepted means processing: the refund notify or a query says how it ends.
    pub async fn refund(&self, refund: &RefundRequest<'_>) -> Result<String, PayError> {
        match &self.v3 {
            Some(v3) => v3.refund(refund).await,
            None => self.v2.refund(refund).await,
        }
    }

    /// How a refund stands, in v2's words. An unknown refund is `Refused` with REFUNDNOTEXIST.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<QueriedRefund, PayError> {
        match &self.v3 {
            Some(v3) => v3.refund_query(out_refund_no).await,
            None => self.v2.refund_query(out_refund_no).await,
        }
    }

    /// The merchant's bill of one China-time day (all transactions, uncompressed); None when
    /// WeChat Pay has none. It is believed as WeChat Pay's answer, and only compared.
    pub async fn download_bill(
        &self,
        bill_date: chrono::NaiveDate,
    ) -> Result<Option<Vec<u8>>, PayError> {
        match &self.v3 {
            Some(v3) => v3.download_bill(bill_date).await,
            None => self.v2.download_bill(bill_date).await,
        }
    }
}

pub(crate) fn china_time() -> FixedOffset {
    // UTC+8 is within chrono's ±24 h range, so the UTC fallback is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_v2_api_key_no_v2_notify_verifies() {
        let client = |api_key: &str| {
            PayClient::new(
                PaySettings {
                    api_base: "http://127.0.0.1:9".into(),
                    appid: "wx5a1dbox0000000001".into(),
                    mch_id: "1900000109".into(),
                    api_key: SecretString::from(api_key.to_owned()),
                    sign_type: SignType::HmacSha256,
                    notify_url: "http://127.0.0.1:9/notify".into(),
                    timeout: Duration::from_secs(1),
                    refund_notify_url: "http://127.0.0.1:9/refund-notify".into(),
                    secapi: None,
                },
                None,
            )
            .unwrap()
        };
        // A notify "signed" with the empty key: anyone can write one.
        let mut fields: BTreeMap<String, String> =
            [("return_code", "SUCCESS"), ("out_trade_no", "XT1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        let sign = pay::sign(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "",
            SignType::HmacSha256,
        );
        fields.insert("sign".to_owned(), sign);
        let keyless = client("");
        assert!(keyless.v2_api_key().is_none());
        assert_eq!(keyless.verify(&fields), Err(pay::VerifyError::BadSign));
        // The same check passes for a document signed with a configured key.
        let key = "sandboxsandboxsandboxsandbox0001";
        fields.remove("sign");
        let sign = pay::sign(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            key,
            SignType::HmacSha256,
        );
        fields.insert("sign".to_owned(), sign);
        assert_eq!(client(key).verify(&fields), Ok(()));
    }
}

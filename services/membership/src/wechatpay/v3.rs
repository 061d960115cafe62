//! WeChat Pay API v3 client (JSON; every request signed with the merchant's RSA key, every
//! answer and notification signed by WeChat Pay and verified here): JSAPI order, order query
//! and close, the page's `paySign` (`signType` RSA), and notification decryption.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wechat_protocol::pay_v3::{
    self, ErrorAnswer, MerchantSigner, Notification, PlatformKeys, RefundState, SignedHeaders,
    Transaction, V3Error,
};

use super::{JsapiParams, PayError, QueriedOrder, QueriedRefund, RefundRequest, UnifiedOrder};

#[derive(Clone)]
pub struct V3Settings {
    pub api_base: String,
    pub appid: String,
    pub mch_id: String,
    /// The merchant's API certificate serial number and its private key (`apiclient_key.pem`).
    pub merchant_serial_no: String,
    pub merchant_key_pem: SecretString,
    /// The 32-character APIv3 key: notifications' resources are encrypted with it.
    pub api_v3_key: SecretString,
    /// WeChat Pay's public key and/or platform certificates, by id.
    pub platform_keys: PlatformKeys,
    /// Sent as `Wechatpay-Serial` so that answers are signed with the WeChat Pay public key.
    pub public_key_id: Option<String>,
    /// Where payment and refund notifications go (one route reads both by their event type).
    pub notify_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for V3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3Settings")
            .field("api_base", &self.api_base)
            .field("mch_id", &self.mch_id)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .finish_non_exhaustive()
    }
}

/// A notification that verified and decrypted.
#[derive(Clone, Debug)]
pub struct V3Notify {
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, …
    pub event_type: String,
    /// The decrypted resource: JSON whose shape the event type says.
    pub resource: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct V3Client {
    http: reqwest::Client,
    signer: MerchantSigner,
    settings: Arc<V3Settings>,
}

/// v3's refund states as v2 names them (the refund rules speak v2's names): CLOSED is
/// REFUNDCLOSE, ABNORMAL (the money could not go back) is CHANGE.
pub fn v2_refund_status(status: &str) -> String {
    match status {
        "CLOSED" => "REFUNDCLOSE",
        "ABNORMAL" => "CHANGE",
        other => other,
    }
    .to_owned()
}

/// v3 names some business errors differently from v2; the order rules speak v2's names.
fn v2_code(code: &str) -> String {
    match code {
        "ORDER_NOT_EXIST" => "ORDERNOTEXIST",
        "ORDER_CLOSED" => "ORDERCLOSED",
        "ORDER_PAID" => "ORDERPAID",
        "SYSTEM_ERROR" => "SYSTEMERROR",
        "NOT_ENOUGH" => "NOTENOUGH",
        other => other,
    }
    .to_owned()
}

impl V3Client {
    pub(super) fn new(settings: V3Settings) -> Result<Self, PayError> {
        let signer = MerchantSigner::from_pem(
            &settings.mch_id,
            &settings.merchant_serial_no,
            settings.merchant_key_pem.expose_secret(),
        )
        .map_err(|err| PayError::BadV3Settings(format!("merchant key: {err}")))?;
        if settings.platform_keys.is_empty() {
            return Err(PayError::BadV3Settings(
                "no WeChat Pay public key or platform certificate".into(),
            ));
        }
        if settings.api_v3_key.expose_secret().len() != 32 {
            return Err(PayError::BadV3Settings(
                "the APIv3 key is 32 characters".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            http,
            signer,
            settings: Arc::new(settings),
        })
    }

    pub(super) async fn jsapi_order(&self, order: &UnifiedOrder<'_>) -> Result<String, PayError> {
        let settings = &self.settings;
        let time_expire = order
            .expire_at
            .with_timezone(&super::china_time())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let body = json!({
            "appid": settings.appid,
            "mchid": settings.mch_id,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "time_expire": time_expire,
            "notify_url": settings.notify_url,
            "amount": { "total": order.total_fee, "currency": "CNY" },
            "payer": { "openid": order.openid },
            "scene_info": { "payer_client_ip": order.client_ip },
        });
        let answer = self
            .call(Method::POST, "/v3/pay/transactions/jsapi", Some(&body))
            .await?;
        #[derive(serde::Deserialize)]
        struct Prepay {
            prepay_id: String,
        }
        serde_json::from_slice::<Prepay>(&answer)
            .ok()
            .map(|answer| answer.prepay_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PayError::Malformed("no prepay_id".into()))
    }

    pub(super) async fn order_query(&self, out_trade_no: &str) -> Result<QueriedOrder, PayError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            path_segment(out_trade_no),
            path_segment(&self.settings.mch_id)
        );
        let answer = self.call(Method::GET, &path, None).await?;
        let transaction: Transaction =
            serde_json::from_slice(&answer).map_err(|err| PayError::Malformed(err.to_string()))?;
        // A signed answer about another merchant's or app's order is not about ours.
        if transaction.appid != self.settings.appid
            || transaction.mchid != self.settings.mch_id
            || transaction.out_trade_no != out_trade_no
        {
            return Err(PayError::BadSignature);
        }
        Ok(QueriedOrder {
            trade_state: transaction.trade_state,
            transaction_id: transaction.transaction_id,
            total_fee: transaction.amount.map(|amount| amount.total),
        })
    }

    pub(super) async fn close_order(&self, out_trade_no: &str) -> Result<(), PayError> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            path_segment(out_trade_no)
        );
        let body = json!({ "mchid": self.settings.mch_id });
        self.call(Method::POST, &path, Some(&body))
            .await
            .map(|_| ())
    }

    /// Asks for a refund (idempotent by `out_refund_no`); returns WeChat Pay's refund id.
    pub(super) async fn refund(&self, refund: &RefundRequest<'_>) -> Result<String, PayError> {
        let reason: String = refund.description.chars().take(80).collect();
        let body = json!({
            "out_trade_no": refund.out_trade_no,
            "out_refund_no": refund.out_refund_no,
            "reason": reason,
            "notify_url": self.settings.notify_url,
            "amount": { "refund": refund.refund_fee, "total": refund.total_fee, "currency": "CNY" },
        });
        let answer = self
            .call(Method::POST, "/v3/refund/domestic/refunds", Some(&body))
            .await?;
        let state: RefundState =
            serde_json::from_slice(&answer).map_err(|err| PayError::Malformed(err.to_string()))?;
        if state.out_refund_no != refund.out_refund_no {
            return Err(PayError::Malformed(
                "the answer is about another refund".into(),
            ));
        }
        Ok(state.refund_id)
    }

    /// How a refund stands. An unknown refund is `Refused` with REFUNDNOTEXIST, as in v2.
    pub(super) async fn refund_query(
        &self,
        out_refund_no: &str,
    ) -> Result<QueriedRefund, PayError> {
        let path = format!(
            "/v3/refund/domestic/refunds/{}",
            path_segment(out_refund_no)
        );
        let answer = match self.call(Method::GET, &path, None).await {
            Err(PayError::Refused { code, message }) if code == "RESOURCE_NOT_EXISTS" => {
                return Err(PayError::Refused {
                    code: "REFUNDNOTEXIST".into(),
                    message,
                });
            }
            answer => answer?,
        };
        let state: RefundState =
            serde_json::from_slice(&answer).map_err(|err| PayError::Malformed(err.to_string()))?;
        if state.out_refund_no != out_refund_no {
            return Err(PayError::Malformed(
                "the answer is about another refund".into(),
            ));
        }
        Ok(QueriedRefund {
            status: v2_refund_status(&state.status),
            refund_id: state.refund_id,
            refund_fee: Some(state.amount.refund),
        })
    }

    pub(super) fn jsapi_params(&self, prepay_id: &str) -> JsapiParams {
        let timestamp = chrono::Utc::now().timestamp();
        let nonce_str = super::nonce();
        let pay_sign =
            self.signer
                .jsapi_pay_sign(&self.settings.appid, timestamp, &nonce_str, prepay_id);
        JsapiParams {
            app_id: self.settings.appid.clone(),
            time_stamp: timestamp.to_string(),
            nonce_str,
            package: format!("prepay_id={prepay_id}"),
            sign_type: "RSA".to_owned(),
            pay_sign,
        }
    }

    /// Verifies a notification's signature (and age), then decrypts its resource.
    pub(super) fn notification(
        &self,
        signature: SignedHeaders<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<V3Notify, V3Error> {
        self.settings.platform_keys.verify(signature, body, now)?;
        let notification = Notification::parse(body)?;
        let resource = pay_v3::decrypt_resource(
            self.settings.api_v3_key.expose_secret().as_bytes(),
            &notification.resource,
        )?;
        Ok(V3Notify {
            event_type: notification.event_type,
            resource,
        })
    }

    /// Sends a signed request; returns the body of a verified 2xx answer. A verified 4xx is
    /// `Refused` with its code; a 5xx may or may not have been acted on.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, PayError> {
        let url = format!(
            "{}{path_and_query}",
            self.settings.api_base.trim_end_matches('/')
        );
        let (status, headers, answer) = self.send(method, &url, path_and_query, body).await?;
        if status >= 500 {
            return Err(PayError::Http(status));
        }
        self.verify_answer(&headers, &answer)?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        match serde_json::from_slice::<ErrorAnswer>(&answer) {
            Ok(error) => Err(PayError::Refused {
                code: v2_code(&error.code),
                message: error.message,
            }),
            Err(_) => Err(PayError::Http(status)),
        }
    }

    /// Signs and sends one request; returns the status, headers and body as they came.
    async fn send(
        &self,
        method: Method,
        url: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), PayError> {
        let body = body.map(serde_json::Value::to_string);
        let timestamp = chrono::Utc::now().timestamp();
        let nonce = super::nonce();
        let authorization = self.signer.authorization(
            method.as_str(),
            path_and_query,
            timestamp,
            &nonce,
            body.as_deref().unwrap_or(""),
        );
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .header(
                USER_AGENT,
                concat!("xintu-membership/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(id) = &self.settings.public_key_id {
            request = request.header("Wechatpay-Serial", id);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answer = response.bytes().await?.to_vec();
        Ok((status, headers, answer))
    }

    /// The merchant's trade bill of one China-time day (all transactions); None when WeChat Pay
    /// has none (no transactions). v3 answers with a link and the file's SHA-1; the file itself
    /// comes unsigned, so it is believed only when it matches that hash.
    pub(super) async fn download_bill(
        &self,
        bill_date: chrono::NaiveDate,
    ) -> Result<Option<Vec<u8>>, PayError> {
        #[derive(serde::Deserialize)]
        struct BillLink {
            hash_type: String,
            hash_value: String,
            download_url: String,
        }
        let path = format!(
            "/v3/bill/tradebill?bill_date={}&bill_type=ALL",
            bill_date.format("%Y-%m-%d")
        );
        let link = match self.call(Method::GET, &path, None).await {
            Err(PayError::Refused { code, .. }) if code == "NO_STATEMENT_EXIST" => return Ok(None),
            link => link?,
        };
        let link: BillLink =
            serde_json::from_slice(&link).map_err(|err| PayError::Malformed(err.to_string()))?;
        if !link.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(PayError::Malformed(format!("hash_type {}", link.hash_type)));
        }
        let url = url::Url::parse(&link.download_url)
            .map_err(|err| PayError::Malformed(format!("download_url: {err}")))?;
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let (status, _, bill) = self
            .send(Method::GET, url.as_str(), &path_and_query, None)
            .await?;
        if status != 200 {
            return Err(PayError::Http(status));
        }
        let digest = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&bill));
        if !digest.eq_ignore_ascii_case(&link.hash_value) {
            return Err(PayError::Malformed(
                "the bill does not match its hash".into(),
            ));
        }
        Ok(Some(bill))
    }

    fn verify_answer(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), PayError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
        };
        let signature = SignedHeaders {
            timestamp: header("Wechatpay-Timestamp"),
            nonce: header("Wechatpay-Nonce"),
            signature: header("Wechatpay-Signature"),
            serial: header("Wechatpay-Serial"),
        };
        self.settings
            .platform_keys
            .verify(signature, body, chrono::Utc::now().timestamp())
            .map_err(|err| {
                tracing::warn!(error = %err, "wechat pay v3 answer failed verification");
                PayError::BadSignature
            })
    }
}

/// Our order numbers and merchant ids are letters and digits; anything else is escaped rather
/// than trusted into a path.
fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_error_names_map_to_the_ones_the_order_rules_use() {
        assert_eq!(v2_code("ORDER_NOT_EXIST"), "ORDERNOTEXIST");
        assert_eq!(v2_code("ORDER_CLOSED"), "ORDERCLOSED");
        assert_eq!(v2_code("SYSTEM_ERROR"), "SYSTEMERROR");
        assert_eq!(v2_code("PARAM_ERROR"), "PARAM_ERROR");
        assert_eq!(path_segment("XT2026/../x"), "XT2026%2F..%2Fx");
    }
}

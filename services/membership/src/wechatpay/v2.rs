//! WeChat Pay API v2 client (XML, MD5/HMAC-SHA256 signatures): unified order (JSAPI), order
//! query and close, the JSAPI pay parameters for the H5 page, and refunds (`secapi/pay/refund`
//! with the merchant's client certificate, and `pay/refundquery`). Answers are verified before
//! they are believed.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wechat_protocol::pay;
use wechat_protocol::xml::{self, Value};

use super::{
    JsapiParams, PayError, PaySettings, QueriedOrder, QueriedRefund, RefundRequest, SecapiSettings,
    UnifiedOrder, nonce,
};

#[derive(Clone)]
pub struct V2Client {
    http: reqwest::Client,
    /// Presents the merchant certificate; `None` when none is configured.
    secapi: Option<reqwest::Client>,
    settings: PaySettings,
}

impl V2Client {
    pub fn new(settings: PaySettings) -> Result<Self, PayError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let secapi = settings
            .secapi
            .as_ref()
            .map(|secapi| Self::secapi_client(secapi, settings.timeout))
            .transpose()?;
        Ok(Self {
            http,
            secapi,
            settings,
        })
    }

    fn secapi_client(
        secapi: &SecapiSettings,
        timeout: Duration,
    ) -> Result<reqwest::Client, PayError> {
        let bad = |err: reqwest::Error| PayError::BadCertificate(err.without_url().to_string());
        let identity =
            reqwest::Identity::from_pem(secapi.identity_pem.expose_secret()).map_err(bad)?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .identity(identity);
        if let Some(root) = &secapi.extra_root_pem {
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(root).map_err(bad)?);
        }
        builder.build().map_err(bad)
    }

    /// Whether refunds can be asked for (a merchant certificate is configured).
    pub fn can_refund(&self) -> bool {
        self.secapi.is_some()
    }

    /// The API key: refund notifies are encrypted with it.
    /// The API key; None when there is none (a v3 merchant may have none, and an empty key
    /// would let anyone sign or encrypt).
    pub fn api_key(&self) -> Option<&SecretString> {
        Some(&self.settings.api_key).filter(|key| !key.expose_secret().is_empty())
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
        let Some(api_key) = self.api_key() else {
            return Err(pay::VerifyError::BadSign);
        };
        pay::verify(fields, api_key.expose_secret(), self.settings.sign_type)
    }

    /// Places a JSAPI order; returns the prepay id.
    pub async fn unified_order(&self, order: &UnifiedOrder<'_>) -> Result<String, PayError> {
        let total_fee = order.total_fee.to_string();
        let time_expire = order
            .expire_at
            .with_timezone(&super::china_time())
            .format("%Y%m%d%H%M%S")
            .to_string();
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
                    ("time_expire", &time_expire),
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

    /// Asks for a refund (idempotent by `out_refund_no` at WeChat Pay); returns WeChat Pay's
    /// refund id. Accepted means processing: the refund notify or a query says how it ends.
    pub async fn refund(&self, refund: &RefundRequest<'_>) -> Result<String, PayError> {
        let (Some(client), Some(secapi)) = (&self.secapi, &self.settings.secapi) else {
            return Err(PayError::NoCertificate);
        };
        let total_fee = refund.total_fee.to_string();
        let refund_fee = refund.refund_fee.to_string();
        let description: String = refund.description.chars().take(80).collect();
        let answer = self
            .call_at(
                client,
                &secapi.base,
                "/secapi/pay/refund",
                &[
                    ("out_trade_no", refund.out_trade_no),
                    ("out_refund_no", refund.out_refund_no),
                    ("total_fee", &total_fee),
                    ("refund_fee", &refund_fee),
                    ("refund_fee_type", "CNY"),
                    ("refund_desc", &description),
                    ("notify_url", &self.settings.refund_notify_url),
                ],
            )
            .await?;
        if answer.get("out_refund_no").map(String::as_str) != Some(refund.out_refund_no) {
            return Err(PayError::Malformed(
                "the answer is about another refund".into(),
            ));
        }
        Ok(answer.get("refund_id").cloned().unwrap_or_default())
    }

    /// Asks WeChat Pay how a refund stands. An unknown refund is `Refused` with REFUNDNOTEXIST.
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<QueriedRefund, PayError> {
        let answer = self
            .call("/pay/refundquery", &[("out_refund_no", out_refund_no)])
            .await?;
        let count: usize = answer
            .get("refund_count")
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        // The answer lists the order's refunds as `<field>_$n`; ours is the one with our number.
        (0..count.min(50))
            .find(|n| {
                answer
                    .get(&format!("out_refund_no_{n}"))
                    .map(String::as_str)
                    == Some(out_refund_no)
            })
            .map(|n| QueriedRefund {
                status: answer
                    .get(&format!("refund_status_{n}"))
                    .cloned()
                    .unwrap_or_default(),
                refund_id: answer
                    .get(&format!("refund_id_{n}"))
                    .cloned()
                    .unwrap_or_default(),
                refund_fee: answer
                    .get(&format!("refund_fee_{n}"))
                    .and_then(|fee| fee.parse().ok()),
            })
            .ok_or_else(|| PayError::Malformed("the answer does not list the refund".into()))
    }

    /// Downloads the merchant's bill of one China-time day (all transactions, uncompressed).
    /// Returns None when WeChat Pay has no bill for the day (no transactions). The bill is text,
    /// not a signed document: it is believed as WeChat Pay's answer over TLS, and only compared.
    pub async fn download_bill(
        &self,
        bill_date: chrono::NaiveDate,
    ) -> Result<Option<Vec<u8>>, PayError> {
        let bill_date = bill_date.format("%Y%m%d").to_string();
        let params = [("bill_date", bill_date.as_str()), ("bill_type", "ALL")];
        let body = self
            .post_signed(
                &self.http,
                &self.settings.api_base,
                "/pay/downloadbill",
                &params,
            )
            .await?;
        // Success is the bill itself; a failure is the usual XML.
        if !body.trim_ascii_start().starts_with(b"<xml") {
            return Ok(Some(body));
        }
        let answer = xml::parse(&body).map_err(|err| PayError::Malformed(err.to_string()))?;
        let message = answer.get("return_msg").cloned().unwrap_or_default();
        let code = answer
            .get("error_code")
            .or_else(|| answer.get("err_code"))
            .cloned()
            .unwrap_or_else(|| "FAIL".to_owned());
        if code == "20002" || message.contains("No Bill Exist") {
            return Ok(None);
        }
        Err(PayError::Refused { code, message })
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
        self.call_at(&self.http, &self.settings.api_base, path, params)
            .await
    }

    async fn call_at(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<BTreeMap<String, String>, PayError> {
        let body = self.post_signed(http, base, path, params).await?;
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

impl V2Client {
    /// Posts `params` with the fields every request carries (appid, mch_id, nonce_str,
    /// sign_type), signed with the API key, as a document; returns the answer's bytes.
    async fn post_signed(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<u8>, PayError> {
        let nonce_str = nonce();
        let mut fields: Vec<(&str, &str)> = vec![
            ("appid", &self.settings.appid),
            ("mch_id", &self.settings.mch_id),
            ("nonce_str", &nonce_str),
            ("sign_type", self.settings.sign_type.as_str()),
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
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let response = http
            .post(url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(xml::write(&document))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(PayError::Http(status.as_u16()));
        }
        Ok(response.bytes().await?.to_vec())
    }
}

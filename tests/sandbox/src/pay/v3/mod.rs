//! WeChat Pay API v3 as the merchant sees it: the JSAPI order (`/v3/pay/transactions/jsapi`),
//! the query and the close by merchant order number, and the `TRANSACTION.SUCCESS`
//! notification. Orders live beside v2's: one merchant, one set of orders, two APIs.
//!
//! Its wire behaviour follows WeChat Pay's v3 documentation, not our client: every request must
//! carry a `WECHATPAY2-SHA256-RSA2048` Authorization that verifies with the merchant
//! certificate's key, names that certificate's serial and is no older than five minutes, else
//! 401 `SIGN_ERROR`; every answer (errors too) and notification is signed with WeChat Pay's key
//! and names it in `Wechatpay-Serial`; success is 200 with JSON or 204 without a body, failure
//! a 4xx/5xx with `{code, message}`; the notification's transaction is AES-256-GCM encrypted with
//! the APIv3 key. A notification is delivered until the merchant answers 200 or 204.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::{Value, json};
use sha2::Sha256;
use wechat_protocol::pay_v3::{
    AUTH_SCHEME, ErrorAnswer, Notification, Payer, TIMESTAMP_WINDOW_SECS, Transaction,
    TransactionAmount, certificate_key, encrypt_resource, request_message,
};

mod bill;
mod refund;

use super::notify::china_now;
use super::{PayOrder, Placement, TradeState, nonce_str};
use crate::{Sandbox, lock};

/// WeChat Pay's own signing key (its "WeChat Pay public key" pair).
pub(crate) struct PlatformKey {
    key: SigningKey<Sha256>,
    public_key_pem: String,
}

/// The v3 signature headers of an answer or notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Signature {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
}

pub(super) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/v3/pay/transactions/jsapi", post(jsapi_order))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(query_order),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(close_order),
        )
        .route("/v3/bill/tradebill", get(bill::trade_bill))
        .route("/v3/billdownload/file", get(bill::download))
        .route("/v3/refund/domestic/refunds", post(refund::refund))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            get(refund::query_refund),
        )
}

/// `yyyy-MM-ddTHH:mm:ss+08:00`, as v3 writes times.
pub(super) fn china_rfc3339(yyyymmddhhmmss: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(yyyymmddhhmmss, "%Y%m%d%H%M%S")
        .map(|time| format!("{}+08:00", time.format("%Y-%m-%dT%H:%M:%S")))
        .unwrap_or_default()
}

impl Sandbox {
    fn platform_key(&self) -> std::io::Result<&PlatformKey> {
        self.state
            .platform_key
            .get_or_init(|| {
                let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|err| err.to_string())?;
                let public_key_pem = private
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|err| err.to_string())?;
                Ok(PlatformKey {
                    key: SigningKey::new(private),
                    public_key_pem,
                })
            })
            .as_ref()
            .map_err(|err| std::io::Error::other(err.clone()))
    }

    /// WeChat Pay's public key (`pub_key.pem` on the merchant platform) and its id: what a
    /// merchant configures to verify v3 answers and notifications.
    pub fn wechatpay_public_key(&self) -> std::io::Result<(String, String)> {
        Ok((
            self.state.cfg.public_key_id.clone(),
            self.platform_key()?.public_key_pem.clone(),
        ))
    }

    /// Signs `body` as WeChat Pay signs an answer or notification, at `timestamp`.
    pub fn v3_sign(&self, timestamp: i64, body: &[u8]) -> std::io::Result<V3Signature> {
        let nonce = nonce_str();
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signature = self.platform_key()?.key.sign(&message);
        Ok(V3Signature {
            timestamp: timestamp.to_string(),
            nonce,
            signature: BASE64.encode(signature.to_bytes()),
            serial: self.state.cfg.public_key_id.clone(),
        })
    }

    fn v3_answer(&self, status: StatusCode, body: Option<Value>) -> Response {
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let Ok(signed) = self.v3_sign(chrono::Utc::now().timestamp(), body.as_bytes()) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = value.parse() {
                headers.insert(name, value);
            }
        };
        set("Wechatpay-Timestamp", &signed.timestamp);
        set("Wechatpay-Nonce", &signed.nonce);
        set("Wechatpay-Signature", &signed.signature);
        set("Wechatpay-Serial", &signed.serial);
        set("Wechatpay-Signature-Type", AUTH_SCHEME);
        set(
            "Request-ID",
            &format!("08F78BB5AF0610{:016X}", rand::random::<u64>()),
        );
        if status != StatusCode::NO_CONTENT {
            set("Content-Type", "application/json; charset=utf-8");
        }
        response
    }

    fn v3_error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let error = ErrorAnswer {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        self.v3_answer(status, serde_json::to_value(error).ok())
    }

    /// The answer to a request that an injected fault makes fail: 500 SYSTEM_ERROR.
    fn v3_fault(&self, message: &str) -> Option<Response> {
        self.system_error_injected()
            .then(|| self.v3_error(StatusCode::INTERNAL_SERVER_ERROR, "SYSTEM_ERROR", message))
    }

    /// Checks a merchant request's Authorization as WeChat Pay does: the scheme, our mchid, the
    /// merchant certificate's serial, a fresh timestamp, and the RSA signature over method,
    /// path and query, timestamp, nonce and body.
    fn check_v3_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Box<Response>> {
        let refuse = |message: &str| {
            Box::new(self.v3_error(StatusCode::UNAUTHORIZED, "SIGN_ERROR", message))
        };
        let authorization = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let Some(fields) = authorization.strip_prefix(AUTH_SCHEME).map(str::trim_start) else {
            return Err(refuse("错误的签名方式"));
        };
        let field = |name: &str| {
            fields.split(',').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.trim_matches('"').to_owned())
            })
        };
        let (Some(mchid), Some(nonce), Some(timestamp), Some(serial), Some(signature)) = (
            field("mchid"),
            field("nonce_str"),
            field("timestamp"),
            field("serial_no"),
            field("signature"),
        ) else {
            return Err(refuse("Authorization不合法"));
        };
        if mchid != self.state.cfg.mch_id {
            return Err(refuse("商户号不匹配"));
        }
        let Ok(merchant) = self.merchant_tls() else {
            return Err(Box::new(self.v3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SYSTEM_ERROR",
                "系统错误",
            )));
        };
        if serial != merchant.serial_no {
            return Err(refuse("商户证书序列号有误"));
        }
        let Ok(time) = timestamp.parse::<i64>() else {
            return Err(refuse("timestamp不合法"));
        };
        if (chrono::Utc::now().timestamp() - time).abs() > TIMESTAMP_WINDOW_SECS {
            return Err(refuse("请求已过期"));
        }
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let Ok(body) = std::str::from_utf8(body) else {
            return Err(refuse("签名错误"));
        };
        let message = request_message(method.as_str(), path_and_query, time, &nonce, body);
        let verified = certificate_key(&merchant.client_cert_pem)
            .ok()
            .zip(
                BASE64
                    .decode(&signature)
                    .ok()
                    .and_then(|bytes| Signature::try_from(bytes.as_slice()).ok()),
            )
            .is_some_and(|((_, key), signature)| {
                VerifyingKey::<Sha256>::new(key)
                    .verify(message.as_bytes(), &signature)
                    .is_ok()
            });
        if !verified {
            return Err(refuse("签名错误"));
        }
        Ok(())
    }

    /// The transaction as v3 reports it in a query and a notification.
    fn v3_transaction(&self, order: &PayOrder) -> Transaction {
        let cfg = &self.state.cfg;
        let paid = order.state.was_paid();
        Transaction {
            appid: cfg.appid.clone(),
            mchid: cfg.mch_id.clone(),
            out_trade_no: order.out_trade_no.clone(),
            transaction_id: order.transaction_id.clone().unwrap_or_default(),
            trade_type: if paid {
                "JSAPI".to_owned()
            } else {
                String::new()
            },
            trade_state: order.state.as_str().to_owned(),
            trade_state_desc: order.state.description().to_owned(),
            bank_type: if paid {
                "CMB_CREDIT".to_owned()
            } else {
                String::new()
            },
            attach: order.attach.clone(),
            success_time: order
                .time_end
                .as_deref()
                .map(china_rfc3339)
                .unwrap_or_default(),
            payer: Some(Payer {
                openid: order.openid.clone(),
            }),
            amount: Some(TransactionAmount {
                total: order.total_fee,
                payer_total: paid.then(|| order.total_fee - order.coupon_fee),
                currency: "CNY".to_owned(),
                payer_currency: "CNY".to_owned(),
            }),
        }
    }

    /// The body of the `TRANSACTION.SUCCESS` notification of a paid order, encrypted with
    /// `api_v3_key` (the merchant's, unless a test wants another), from `transaction`.
    pub fn v3_notification_body(
        &self,
        transaction: &Transaction,
        api_v3_key: &str,
    ) -> std::io::Result<String> {
        let plaintext = serde_json::to_vec(transaction)?;
        let nonce: String = nonce_str().chars().take(12).collect();
        let resource = encrypt_resource(
            api_v3_key.as_bytes(),
            &nonce,
            "transaction",
            "transaction",
            &plaintext,
        )
        .map_err(std::io::Error::other)?;
        let notification = Notification {
            id: format!("EV-2018022511223320873{:016}", rand::random::<u32>()),
            create_time: china_rfc3339(&china_now()),
            event_type: "TRANSACTION.SUCCESS".to_owned(),
            resource_type: "encrypt-resource".to_owned(),
            summary: "支付成功".to_owned(),
            resource,
        };
        Ok(serde_json::to_string(&notification)?)
    }

    /// The transaction WeChat Pay reports for an order (for tests that tamper with it).
    pub fn v3_order_transaction(&self, out_trade_no: &str) -> Option<Transaction> {
        self.pay_order(out_trade_no)
            .map(|order| self.v3_transaction(&order))
    }

    /// One v3 notification delivery of a paid order; true when the merchant answered 200 or 204.
    pub(super) async fn send_v3_notify(&self, order: &PayOrder) -> bool {
        let transaction = self.v3_transaction(order);
        let signed = self
            .v3_notification_body(&transaction, &self.state.cfg.api_v3_key)
            .and_then(|body| {
                let signature = self.v3_sign(chrono::Utc::now().timestamp(), body.as_bytes())?;
                Ok((body, signature))
            });
        let Ok((body, signature)) = signed else {
            tracing::error!("sandbox cannot sign or encrypt a v3 notification");
            return false;
        };
        self.state.notifies_sent.fetch_add(1, Ordering::SeqCst);
        let (status, _) = self
            .post_v3_notify(&order.notify_url, &body, &signature)
            .await;
        matches!(status, 200 | 204)
    }

    /// Posts a v3 notification with the given signature headers; returns (status, body).
    pub async fn post_v3_notify(
        &self,
        url: &str,
        body: &str,
        signature: &V3Signature,
    ) -> (u16, String) {
        let sent = self
            .state
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("Wechatpay-Timestamp", &signature.timestamp)
            .header("Wechatpay-Nonce", &signature.nonce)
            .header("Wechatpay-Signature", &signature.signature)
            .header("Wechatpay-Serial", &signature.serial)
            .header("Wechatpay-Signature-Type", AUTH_SCHEME)
            .body(body.to_owned())
            .send()
            .await;
        let Ok(response) = sent else {
            return (0, String::new());
        };
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// A merchant request whose Authorization checked out (see `check_v3_request`): its URI and
/// body. Anything else is answered 401 SIGN_ERROR before a handler sees it.
pub(super) struct Signed {
    uri: Uri,
    body: Bytes,
}

impl FromRequest<Sandbox> for Signed {
    type Rejection = Response;

    async fn from_request(request: Request, sandbox: &Sandbox) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
            return Err(sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "请求体过大"));
        };
        sandbox
            .check_v3_request(&parts.method, &parts.uri, &parts.headers, &body)
            .map_err(|answer| *answer)?;
        Ok(Self {
            uri: parts.uri,
            body,
        })
    }
}

/// A JSON body's text field, "" when absent.
pub(super) fn text<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

async fn jsapi_order(State(sandbox): State<Sandbox>, Signed { body, .. }: Signed) -> Response {
    sandbox.state.unified_orders.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = sandbox.v3_fault("系统错误") {
        return fault;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "请求体格式错误");
    };
    let cfg = &sandbox.state.cfg;
    let required = [
        "/appid",
        "/mchid",
        "/description",
        "/out_trade_no",
        "/notify_url",
        "/payer/openid",
    ];
    if let Some(missing) = required
        .iter()
        .find(|field| text(&request, field).is_empty())
    {
        let message = format!(
            "输入源“/body{missing}”映射到字段“{}”必填性规则校验失败",
            &missing[1..]
        );
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &message);
    }
    if text(&request, "/mchid") != cfg.mch_id || text(&request, "/appid") != cfg.appid {
        return sandbox.v3_error(
            StatusCode::BAD_REQUEST,
            "APPID_MCHID_NOT_MATCH",
            "appid和mch_id不匹配",
        );
    }
    let total = request
        .pointer("/amount/total")
        .and_then(Value::as_i64)
        .filter(|total| *total > 0);
    let currency = request
        .pointer("/amount/currency")
        .and_then(Value::as_str)
        .unwrap_or("CNY");
    let out_trade_no = text(&request, "/out_trade_no").to_owned();
    let valid_no = (6..=32).contains(&out_trade_no.len())
        && out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    let (Some(total), "CNY", true) = (total, currency, valid_no) else {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "参数错误");
    };
    let description = text(&request, "/description").to_owned();
    if description.chars().count() > 127 {
        return sandbox.v3_error(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            "description长度超过限制",
        );
    }
    let openid = text(&request, "/payer/openid").to_owned();
    let order = PayOrder {
        attach: text(&request, "/attach").to_owned(),
        v3: true,
        ..PayOrder::unpaid(
            out_trade_no,
            total,
            openid,
            description,
            text(&request, "/notify_url").to_owned(),
        )
    };
    let (code, message) = match sandbox.place_order(order) {
        Placement::Placed(prepay_id) => {
            return sandbox.v3_answer(StatusCode::OK, Some(json!({ "prepay_id": prepay_id })));
        }
        Placement::AlreadyPaid => ("ORDERPAID", "该订单已支付"),
        Placement::AlreadyClosed => ("ORDER_CLOSED", "订单已关闭"),
        Placement::NumberUsed => ("OUT_TRADE_NO_USED", "商户订单号重复"),
    };
    sandbox.v3_error(StatusCode::BAD_REQUEST, code, message)
}

async fn query_order(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    Signed { uri, .. }: Signed,
) -> Response {
    sandbox.state.order_queries.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = sandbox.v3_fault("系统错误") {
        return fault;
    }
    let mchid = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("mchid="));
    if mchid != Some(sandbox.state.cfg.mch_id.as_str()) {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "mchid参数错误");
    }
    match sandbox.pay_order(&out_trade_no) {
        Some(order) => {
            let transaction = sandbox.v3_transaction(&order);
            sandbox.v3_answer(StatusCode::OK, serde_json::to_value(transaction).ok())
        }
        None => sandbox.v3_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在"),
    }
}

async fn close_order(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    Signed { body, .. }: Signed,
) -> Response {
    sandbox.state.close_orders.fetch_add(1, Ordering::SeqCst);
    let mchid = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body.get("mchid").and_then(Value::as_str).map(str::to_owned));
    if mchid.as_deref() != Some(sandbox.state.cfg.mch_id.as_str()) {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "mchid参数错误");
    }
    let mut accounts = lock(&sandbox.state.accounts);
    let Some(order) = accounts.pay_orders.get_mut(&out_trade_no) else {
        drop(accounts);
        return sandbox.v3_error(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在");
    };
    let answer = match order.state {
        TradeState::Success | TradeState::Refund => Err(("ORDERPAID", "该订单已支付")),
        TradeState::Closed | TradeState::Revoked => Err(("ORDER_CLOSED", "订单已关闭")),
        TradeState::NotPay | TradeState::UserPaying | TradeState::PayError => {
            order.state = TradeState::Closed;
            Ok(())
        }
    };
    drop(accounts);
    match answer {
        Ok(()) => sandbox.v3_answer(StatusCode::NO_CONTENT, None),
        Err((code, message)) => sandbox.v3_error(StatusCode::BAD_REQUEST, code, message),
    }
}

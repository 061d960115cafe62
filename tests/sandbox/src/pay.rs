//! WeChat Pay API v2 as the merchant sees it: `pay/unifiedorder`, `pay/orderquery`,
//! `pay/closeorder` (signed XML both ways, WeChat's error codes), and the sandbox acting as a
//! paying user: the signed notify sent to the order's notify_url, retried until SUCCESS.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::xml::{self, Value};

use crate::{NotifyMode, Sandbox, lock};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradeState {
    NotPay,
    Success,
    Closed,
}

impl TradeState {
    fn as_str(&self) -> &'static str {
        match self {
            Self::NotPay => "NOTPAY",
            Self::Success => "SUCCESS",
            Self::Closed => "CLOSED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PayOrder {
    pub out_trade_no: String,
    pub prepay_id: String,
    pub total_fee: i64,
    pub openid: String,
    pub notify_url: String,
    pub body: String,
    pub state: TradeState,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    pub created_at: i64,
    pub sign_type: SignType,
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/pay/unifiedorder", post(unified_order))
        .route("/pay/orderquery", post(order_query))
        .route("/pay/closeorder", post(close_order))
}

fn xml_response(fields: &BTreeMap<String, String>) -> Response {
    let document: Vec<(&str, Value<'_>)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), Value::Text(v.as_str())))
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "text/xml")],
        xml::write(&document),
    )
        .into_response()
}

fn return_fail(message: &str) -> Response {
    let mut fields = BTreeMap::new();
    fields.insert("return_code".to_owned(), "FAIL".to_owned());
    fields.insert("return_msg".to_owned(), message.to_owned());
    xml_response(&fields)
}

impl Sandbox {
    /// Signs a WeChat Pay document with the merchant key, adding `sign`.
    pub fn pay_sign(&self, fields: &mut BTreeMap<String, String>, sign_type: SignType) {
        fields.remove("sign");
        let sign = pay::sign(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.state.cfg.pay_key,
            sign_type,
        );
        fields.insert("sign".to_owned(), sign);
    }

    /// A signed SUCCESS answer with the common fields, plus `extra`.
    fn pay_answer(&self, sign_type: SignType, extra: &[(&str, String)]) -> Response {
        let cfg = &self.state.cfg;
        let mut fields: BTreeMap<String, String> = [
            ("return_code", "SUCCESS".to_owned()),
            ("return_msg", "OK".to_owned()),
            ("appid", cfg.appid.clone()),
            ("mch_id", cfg.mch_id.clone()),
            ("nonce_str", format!("{:016x}", rand::random::<u64>())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if sign_type == SignType::HmacSha256 {
            fields.insert("sign_type".to_owned(), "HMAC-SHA256".to_owned());
        }
        for (k, v) in extra {
            fields.insert((*k).to_owned(), v.clone());
        }
        self.pay_sign(&mut fields, sign_type);
        xml_response(&fields)
    }

    fn business_error(&self, sign_type: SignType, code: &str, description: &str) -> Response {
        self.pay_answer(
            sign_type,
            &[
                ("result_code", "FAIL".to_owned()),
                ("err_code", code.to_owned()),
                ("err_code_des", description.to_owned()),
            ],
        )
    }

    /// Checks a merchant request: XML, signature, appid and mch_id. Returns its fields and sign
    /// type, or WeChat's answer to a bad request.
    fn check_request(
        &self,
        body: &[u8],
    ) -> Result<(BTreeMap<String, String>, SignType), Box<Response>> {
        let Ok(fields) = xml::parse(body) else {
            return Err(Box::new(return_fail("XML格式错误")));
        };
        let Some(sign_type) = SignType::parse(fields.get("sign_type").map(String::as_str)) else {
            return Err(Box::new(return_fail("签名类型错误")));
        };
        if !pay::verify(&fields, &self.state.cfg.pay_key) {
            return Err(Box::new(return_fail("签名错误")));
        }
        if fields.get("appid") != Some(&self.state.cfg.appid) {
            return Err(Box::new(return_fail("appid不存在")));
        }
        if fields.get("mch_id") != Some(&self.state.cfg.mch_id) {
            return Err(Box::new(return_fail("mch_id参数格式错误")));
        }
        Ok((fields, sign_type))
    }

    fn system_error_injected(&self) -> bool {
        let mut faults = lock(&self.state.faults);
        if faults.pay_system_errors > 0 {
            faults.pay_system_errors -= 1;
            return true;
        }
        false
    }

    /// The order as WeChat Pay has it.
    pub fn pay_order(&self, out_trade_no: &str) -> Option<PayOrder> {
        lock(&self.state.accounts)
            .pay_orders
            .get(out_trade_no)
            .cloned()
    }

    /// The signed notify WeChat Pay sends for a paid order (for tests that tamper with it).
    pub fn notify_fields(&self, out_trade_no: &str) -> Option<BTreeMap<String, String>> {
        let order = self.pay_order(out_trade_no)?;
        let cfg = &self.state.cfg;
        let mut fields: BTreeMap<String, String> = [
            ("return_code", "SUCCESS".to_owned()),
            ("appid", cfg.appid.clone()),
            ("mch_id", cfg.mch_id.clone()),
            ("nonce_str", format!("{:016x}", rand::random::<u64>())),
            ("result_code", "SUCCESS".to_owned()),
            ("openid", order.openid.clone()),
            ("is_subscribe", "N".to_owned()),
            ("trade_type", "JSAPI".to_owned()),
            ("bank_type", "OTHERS".to_owned()),
            ("total_fee", order.total_fee.to_string()),
            ("fee_type", "CNY".to_owned()),
            ("cash_fee", order.total_fee.to_string()),
            (
                "transaction_id",
                order.transaction_id.clone().unwrap_or_default(),
            ),
            ("out_trade_no", order.out_trade_no.clone()),
            ("time_end", order.time_end.clone().unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if order.sign_type == SignType::HmacSha256 {
            fields.insert("sign_type".to_owned(), "HMAC-SHA256".to_owned());
        }
        self.pay_sign(&mut fields, order.sign_type);
        Some(fields)
    }

    /// The user pays the order (by out_trade_no or prepay_id): WeChat Pay records the payment and
    /// notifies the merchant as the notify mode says. Returns the transaction id.
    pub async fn pay(&self, order_ref: &str) -> Option<String> {
        let (out_trade_no, transaction_id) = {
            let mut accounts = lock(&self.state.accounts);
            let key = accounts
                .pay_orders
                .values()
                .find(|o| o.out_trade_no == order_ref || o.prepay_id == order_ref)?
                .out_trade_no
                .clone();
            let order = accounts.pay_orders.get_mut(&key)?;
            if order.state != TradeState::NotPay {
                return order.transaction_id.clone();
            }
            let transaction_id = format!("4200{:024}", rand::random::<u64>());
            order.state = TradeState::Success;
            order.transaction_id = Some(transaction_id.clone());
            order.time_end = Some(chrono::Utc::now().format("%Y%m%d%H%M%S").to_string());
            (key, transaction_id)
        };
        let mode = lock(&self.state.accounts).notify_mode;
        let copies = match mode {
            NotifyMode::Drop => 0,
            NotifyMode::Normal => 1,
            NotifyMode::Duplicates(n) => n.max(1),
        };
        if copies > 0 {
            let sandbox = self.clone();
            let no = out_trade_no;
            tokio::spawn(async move { sandbox.notify_until_acknowledged(&no, copies).await });
            return Some(transaction_id);
        }
        Some(transaction_id)
    }

    /// Sends the notify (`copies` at once on the first round) until a SUCCESS answer or the
    /// retry schedule runs out.
    async fn notify_until_acknowledged(&self, out_trade_no: &str, copies: u32) {
        let delays = self.state.cfg.notify_retry_delays_ms.clone();
        for round in 0..=delays.len() {
            let sends = if round == 0 { copies } else { 1 };
            let attempts = (0..sends).map(|_| self.send_notify(out_trade_no));
            let acknowledged = futures::future::join_all(attempts)
                .await
                .into_iter()
                .any(|ok| ok);
            if acknowledged {
                return;
            }
            if let Some(delay) = delays.get(round) {
                tokio::time::sleep(Duration::from_millis(*delay)).await;
            }
        }
        tracing::warn!(out_trade_no, "notify never acknowledged");
    }

    /// One notify delivery; true when the merchant answered SUCCESS.
    pub async fn send_notify(&self, out_trade_no: &str) -> bool {
        let Some(order) = self.pay_order(out_trade_no) else {
            return false;
        };
        let Some(fields) = self.notify_fields(out_trade_no) else {
            return false;
        };
        self.post_notify(&order.notify_url, &fields).await.0
    }

    /// Posts a notify document to `url`; returns (answered SUCCESS, HTTP status, body).
    pub async fn post_notify(
        &self,
        url: &str,
        fields: &BTreeMap<String, String>,
    ) -> (bool, u16, String) {
        let document: Vec<(&str, Value<'_>)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), Value::Text(v.as_str())))
            .collect();
        self.post_raw_notify(url, xml::write(&document)).await
    }

    /// Posts any body as a notify (tests use it for malformed and hostile documents).
    pub async fn post_raw_notify(&self, url: &str, body: String) -> (bool, u16, String) {
        self.state.notifies_sent.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .state
            .http
            .post(url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await;
        let Ok(response) = sent else {
            return (false, 0, String::new());
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let success = status == 200
            && xml::parse(text.as_bytes())
                .ok()
                .and_then(|answer| answer.get("return_code").cloned())
                .is_some_and(|code| code == "SUCCESS");
        (success, status, text)
    }

    /// Sets an order's creation time back (tests of closing rules).
    pub fn age_pay_order(&self, out_trade_no: &str, seconds: i64) {
        if let Some(order) = lock(&self.state.accounts).pay_orders.get_mut(out_trade_no) {
            order.created_at -= seconds;
        }
    }
}

async fn unified_order(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let (fields, sign_type) = match sandbox.check_request(&body) {
        Ok(checked) => checked,
        Err(answer) => return *answer,
    };
    sandbox.state.unified_orders.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(sign_type, "SYSTEMERROR", "系统超时");
    }
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let total_fee = get("total_fee").parse::<i64>().ok().filter(|fee| *fee > 0);
    let out_trade_no = get("out_trade_no");
    let valid_no = !out_trade_no.is_empty()
        && out_trade_no.len() <= 32
        && out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    let (Some(total_fee), true) = (total_fee, valid_no) else {
        return sandbox.business_error(sign_type, "PARAM_ERROR", "参数错误");
    };
    if get("trade_type") != "JSAPI" || get("openid").is_empty() || get("notify_url").is_empty() {
        return sandbox.business_error(sign_type, "PARAM_ERROR", "JSAPI支付必须传openid");
    }
    if get("body").is_empty() || get("spbill_create_ip").is_empty() {
        return sandbox.business_error(sign_type, "PARAM_ERROR", "缺少参数");
    }
    let mut accounts = lock(&sandbox.state.accounts);
    if let Some(existing) = accounts.pay_orders.get(&out_trade_no) {
        let answer = match existing.state {
            TradeState::Success => Err(("ORDERPAID", "该订单已支付")),
            TradeState::Closed => Err(("ORDERCLOSED", "该订单已关")),
            TradeState::NotPay
                if existing.total_fee == total_fee && existing.openid == get("openid") =>
            {
                Ok(existing.prepay_id.clone())
            }
            TradeState::NotPay => Err(("INVALID_REQUEST", "201 商户订单号重复")),
        };
        drop(accounts);
        return match answer {
            Ok(prepay_id) => sandbox.pay_answer(
                sign_type,
                &[
                    ("result_code", "SUCCESS".into()),
                    ("trade_type", "JSAPI".into()),
                    ("prepay_id", prepay_id),
                ],
            ),
            Err((code, description)) => sandbox.business_error(sign_type, code, description),
        };
    }
    let prepay_id = format!(
        "wx{}{:016x}",
        chrono::Utc::now().format("%d%H%M%S"),
        rand::random::<u64>()
    );
    accounts.pay_orders.insert(
        out_trade_no.clone(),
        PayOrder {
            out_trade_no,
            prepay_id: prepay_id.clone(),
            total_fee,
            openid: get("openid"),
            notify_url: get("notify_url"),
            body: get("body"),
            state: TradeState::NotPay,
            transaction_id: None,
            time_end: None,
            created_at: chrono::Utc::now().timestamp(),
            sign_type,
        },
    );
    drop(accounts);
    sandbox.pay_answer(
        sign_type,
        &[
            ("result_code", "SUCCESS".into()),
            ("trade_type", "JSAPI".into()),
            ("prepay_id", prepay_id),
        ],
    )
}

async fn order_query(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let (fields, sign_type) = match sandbox.check_request(&body) {
        Ok(checked) => checked,
        Err(answer) => return *answer,
    };
    sandbox.state.order_queries.fetch_add(1, Ordering::SeqCst);
    if sandbox.system_error_injected() {
        return sandbox.business_error(sign_type, "SYSTEMERROR", "系统错误");
    }
    let out_trade_no = fields.get("out_trade_no").cloned().unwrap_or_default();
    let Some(order) = sandbox.pay_order(&out_trade_no) else {
        return sandbox.business_error(sign_type, "ORDERNOTEXIST", "此交易订单号不存在");
    };
    let mut extra = vec![
        ("result_code", "SUCCESS".to_owned()),
        ("out_trade_no", order.out_trade_no.clone()),
        ("trade_state", order.state.as_str().to_owned()),
        ("openid", order.openid.clone()),
        ("trade_type", "JSAPI".to_owned()),
    ];
    if order.state == TradeState::Success {
        extra.push(("total_fee", order.total_fee.to_string()));
        extra.push(("fee_type", "CNY".to_owned()));
        extra.push((
            "transaction_id",
            order.transaction_id.clone().unwrap_or_default(),
        ));
        extra.push(("time_end", order.time_end.unwrap_or_default()));
    }
    sandbox.pay_answer(sign_type, &extra)
}

async fn close_order(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let (fields, sign_type) = match sandbox.check_request(&body) {
        Ok(checked) => checked,
        Err(answer) => return *answer,
    };
    sandbox.state.close_orders.fetch_add(1, Ordering::SeqCst);
    let out_trade_no = fields.get("out_trade_no").cloned().unwrap_or_default();
    let mut accounts = lock(&sandbox.state.accounts);
    let Some(order) = accounts.pay_orders.get_mut(&out_trade_no) else {
        drop(accounts);
        return sandbox.business_error(sign_type, "ORDERNOTEXIST", "订单不存在");
    };
    // v2 refuses to close an order younger than 5 minutes.
    if chrono::Utc::now().timestamp() - order.created_at < 300 {
        drop(accounts);
        return sandbox.business_error(sign_type, "SYSTEMERROR", "订单生成后5分钟内不能关单");
    }
    let answer = match order.state {
        TradeState::Success => Err(("ORDERPAID", "订单已支付")),
        TradeState::Closed => Err(("ORDERCLOSED", "订单已关闭")),
        TradeState::NotPay => {
            order.state = TradeState::Closed;
            Ok(())
        }
    };
    drop(accounts);
    match answer {
        Ok(()) => sandbox.pay_answer(sign_type, &[("result_code", "SUCCESS".to_owned())]),
        Err((code, description)) => sandbox.business_error(sign_type, code, description),
    }
}

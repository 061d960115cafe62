//! Orders of the member page (membership and credits, paid with WeChat Pay JSAPI) and WeChat
//! Pay's notify (docs/architecture.md, "Orders and payments").

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use proto::membership::v1 as pb;
use wechat_protocol::xml::{self, Value};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientIp};
use crate::session::MemberSession;

#[derive(Deserialize, ToSchema)]
pub struct CreateOrderIn {
    /// `member` or `credits`.
    pub order_type: String,
    /// For `credits`: how many (1..=1000).
    #[serde(default)]
    pub credits_amount: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderOut {
    pub order_no: String,
    /// `member` or `credits`.
    pub order_type: &'static str,
    pub credits_amount: u32,
    pub membership_days: u32,
    /// Integer fen.
    pub total_fee: i64,
    /// `notpay`, `paid`, `closed` or `failed`.
    pub status: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
    pub expire_at: String,
}

/// Exactly the object to pass to `WeixinJSBridge.invoke('getBrandWCPayRequest', ...)`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayParamsOut {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreateOrderOut {
    pub order: OrderOut,
    pub pay_params: PayParamsOut,
}

/// The order as the page sees it. A status or type this gateway does not know (a newer
/// membership service) is an error: shown as "not paid", a paid order would invite a second
/// payment.
fn order_out(order: pb::Order) -> Result<OrderOut, ApiError> {
    let status = match pb::OrderStatus::try_from(order.status) {
        Ok(pb::OrderStatus::Notpay) => "notpay",
        Ok(pb::OrderStatus::Paid) => "paid",
        Ok(pb::OrderStatus::Closed) => "closed",
        Ok(pb::OrderStatus::Failed) => "failed",
        Ok(pb::OrderStatus::Unspecified) | Err(_) => {
            return Err(unknown_in_order("status", order.status));
        }
    };
    let order_type = match pb::OrderType::try_from(order.order_type) {
        Ok(pb::OrderType::Member) => "member",
        Ok(pb::OrderType::Credits) => "credits",
        Ok(pb::OrderType::Unspecified) | Err(_) => {
            return Err(unknown_in_order("order_type", order.order_type));
        }
    };
    Ok(OrderOut {
        order_no: order.order_no,
        order_type,
        credits_amount: order.credits_amount,
        membership_days: order.membership_days,
        total_fee: order.total_fee,
        status,
        created_at: super::rfc3339(order.created_at_unix),
        paid_at: super::rfc3339_if_set(order.paid_at_unix),
        expire_at: super::rfc3339(order.expire_at_unix),
    })
}

fn unknown_in_order(field: &str, value: i32) -> ApiError {
    tracing::error!(
        field,
        value,
        "membership sent an order value this gateway does not know"
    );
    ApiError::new(
        ErrorCode::Internal,
        format!("unknown order {field} {value}"),
    )
}

/// Creates an order for the signed-in user; the amount is computed by the server.
#[utoipa::path(post, path = "/api/v1/payment/create-order", request_body = CreateOrderIn,
    responses((status = 200, body = CreateOrderOut), (status = 400), (status = 401),
        (status = 409, description = "membership active for more than the renew window"),
        (status = 429, description = "more orders from this member in a minute than allowed"),
        (status = 502),
        (status = 503, description = "database_unavailable or membership_unavailable: retry later")))]
pub async fn create_order(
    State(state): State<AppState>,
    session: MemberSession,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<CreateOrderIn>,
) -> Result<Json<CreateOrderOut>, ApiError> {
    let (order_type, credits_amount) = match (input.order_type.as_str(), input.credits_amount) {
        ("member", _) => (pb::OrderType::Member, 0),
        ("credits", Some(count)) => (pb::OrderType::Credits, count),
        ("credits", None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "credits_amount is required",
            ));
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "order_type must be member or credits",
            ));
        }
    };
    state.limits.check_order(&session.openid).await?;
    let mut orders = state.clients.order.clone();
    let created = orders
        .create_order(pb::CreateOrderRequest {
            openid: session.openid,
            order_type: order_type.into(),
            credits_amount,
            client_ip: ip.map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string()),
        })
        .await?
        .into_inner();
    let (Some(order), Some(params)) = (created.order, created.pay_params) else {
        return Err(ApiError::new(ErrorCode::Internal, "incomplete order"));
    };
    Ok(Json(CreateOrderOut {
        order: order_out(order)?,
        pay_params: PayParamsOut {
            app_id: params.app_id,
            time_stamp: params.time_stamp,
            nonce_str: params.nonce_str,
            package: params.package,
            sign_type: params.sign_type,
            pay_sign: params.pay_sign,
        },
    }))
}

/// The signed-in user's order, for the page to poll after paying.
#[utoipa::path(get, path = "/api/v1/payment/orders/{order_no}",
    params(("order_no" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 401), (status = 404),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn get_order(
    State(state): State<AppState>,
    session: MemberSession,
    Path(order_no): Path<String>,
) -> Result<Json<OrderOut>, ApiError> {
    let mut orders = state.clients.order.clone();
    let order = orders
        .get_order(pb::GetOrderRequest {
            openid: session.openid,
            order_no,
        })
        .await?
        .into_inner();
    Ok(Json(order_out(order)?))
}

fn pay_reply(status: StatusCode, success: bool, message: &str) -> Response {
    let code = if success { "SUCCESS" } else { "FAIL" };
    let body = xml::write(&[
        ("return_code", Value::Text(code)),
        ("return_msg", Value::Text(message)),
    ]);
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// WeChat Pay's notify: the raw body goes to the membership service, which verifies and applies
/// it; the reply is the XML WeChat Pay expects. Anything but SUCCESS makes it retry.
#[utoipa::path(post, path = "/api/v1/payment/notify", operation_id = "pay_notify", tag = "called by WeChat Pay",
    request_body(content = String, content_type = "text/xml",
        description = "WeChat Pay v2's signed result notify"),
    responses(
        (status = 200, content_type = "text/xml", body = String,
            description = "`<xml><return_code>SUCCESS</return_code>…</xml>`: applied, or applied before"),
        (status = 400, content_type = "text/xml", body = String,
            description = "FAIL: a bad signature, malformed XML, an unknown order or a tampered amount; nothing changed"),
        (status = 413, content_type = "text/xml", body = String, description = "FAIL: body too large"),
        (status = 503, content_type = "text/xml", body = String,
            description = "FAIL: not applied now; WeChat Pay retries")))]
pub async fn notify(State(state): State<AppState>, body: Body) -> Response {
    relay_notify(&state, body, PayNotify::Payment).await
}

/// WeChat Pay's refund notify: its details are encrypted with the merchant's API key (there is
/// no signature); the membership service decrypts, checks and applies them.
#[utoipa::path(post, path = "/api/v1/payment/refund-notify", tag = "called by WeChat Pay",
    request_body(content = String, content_type = "text/xml",
        description = "WeChat Pay v2's refund notify with its encrypted `req_info`"),
    responses(
        (status = 200, content_type = "text/xml", body = String,
            description = "`<xml><return_code>SUCCESS</return_code>…</xml>`: applied, or applied before"),
        (status = 200, content_type = "text/xml", body = String,
            description = "FAIL: malformed XML, a req_info that does not decrypt under our key, an unknown refund or another amount; nothing changed"),
        (status = 413, content_type = "text/xml", body = String, description = "FAIL: body too large"),
        (status = 503, content_type = "text/xml", body = String,
            description = "FAIL: not applied now; WeChat Pay retries")))]
pub async fn refund_notify(State(state): State<AppState>, body: Body) -> Response {
    relay_notify(&state, body, PayNotify::Refund).await
}

/// WeChat Pay API v3's notifications, of payments and of refunds: the raw JSON body and its
/// `Wechatpay-*` signature headers go to the membership service, which verifies, decrypts and
/// applies it. v3 reads only the HTTP status: 204 stops it, anything else makes it retry.
#[utoipa::path(post, path = "/api/v1/payment/v3-notify", operation_id = "pay_notify_v3", tag = "called by WeChat Pay",
    params(
        ("Wechatpay-Timestamp" = String, Header), ("Wechatpay-Nonce" = String, Header),
        ("Wechatpay-Signature" = String, Header), ("Wechatpay-Serial" = String, Header)),
    request_body(content = String, content_type = "application/json",
        description = "WeChat Pay v3's signed notification (TRANSACTION.SUCCESS or REFUND.*) with its AES-256-GCM `resource`"),
    responses(
        (status = 204, description = "applied, or applied before"),
        (status = 400, body = V3NotifyRefusal,
            description = "FAIL: a bad or stale signature, an unknown key, a resource that does not decrypt, an unknown order or refund or another amount; nothing changed"),
        (status = 413, body = V3NotifyRefusal, description = "FAIL: body too large"),
        (status = 503, body = V3NotifyRefusal,
            description = "FAIL: not applied now; WeChat Pay retries")))]
pub async fn v3_notify(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let limit = wechat_protocol::xml::MAX_BODY_BYTES;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return v3_reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let request = pb::HandlePayNotifyV3Request {
        body: body.to_vec(),
        timestamp: header("wechatpay-timestamp"),
        nonce: header("wechatpay-nonce"),
        signature: header("wechatpay-signature"),
        serial: header("wechatpay-serial"),
    };
    match state
        .clients
        .order
        .clone()
        .handle_pay_notify_v3(request)
        .await
    {
        Ok(answer) if answer.get_ref().success => StatusCode::NO_CONTENT.into_response(),
        Ok(answer) => v3_reply(StatusCode::BAD_REQUEST, &answer.into_inner().message),
        Err(status) => {
            tracing::warn!(code = ?status.code(), "v3 pay notify not processed; wechat pay will retry");
            v3_reply(ApiError::from(status).status, "try again")
        }
    }
}

/// The body of a refused v3 notification, as WeChat Pay documents it.
#[derive(Serialize, ToSchema)]
pub struct V3NotifyRefusal {
    /// Always `FAIL`.
    pub code: &'static str,
    pub message: String,
}

fn v3_reply(status: StatusCode, message: &str) -> Response {
    let body = V3NotifyRefusal {
        code: "FAIL",
        message: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

#[derive(Clone, Copy)]
enum PayNotify {
    Payment,
    Refund,
}

async fn relay_notify(state: &AppState, body: Body, kind: PayNotify) -> Response {
    let limit = wechat_protocol::xml::MAX_BODY_BYTES;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return pay_reply(StatusCode::PAYLOAD_TOO_LARGE, false, "body too large");
    };
    let mut orders = state.clients.order.clone();
    let request = pb::HandlePayNotifyRequest {
        body: body.to_vec(),
    };
    let answer = match kind {
        PayNotify::Payment => orders.handle_pay_notify(request).await,
        PayNotify::Refund => orders.handle_refund_notify(request).await,
    };
    match answer {
        Ok(answer) => {
            let answer = answer.into_inner();
            pay_reply(StatusCode::OK, answer.success, &answer.message)
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), "pay notify not processed; wechat pay will retry");
            pay_reply(ApiError::from(status).status, false, "try again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: i32, order_type: i32) -> pb::Order {
        pb::Order {
            order_no: "X1".to_owned(),
            status,
            order_type,
            ..pb::Order::default()
        }
    }

    #[test]
    fn an_order_value_the_gateway_does_not_know_is_an_error_never_unpaid() {
        let credits = pb::OrderType::Credits.into();
        for unknown in [pb::OrderStatus::Unspecified.into(), 99] {
            let refused = order_out(order(unknown, credits)).map(|out| out.status);
            assert_eq!(
                refused.map_err(|err| (err.status, err.code)),
                Err((StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal))
            );
        }
        let paid = pb::OrderStatus::Paid.into();
        assert!(order_out(order(paid, 7)).is_err());
        let known = order_out(order(paid, pb::OrderType::Member.into())).unwrap();
        assert_eq!((known.status, known.order_type), ("paid", "member"));
    }
}

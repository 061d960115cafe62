//! The admin API (`/api/v1/admin/...`): sign-in and sign-out, the reports ([`reports`]) and
//! audited credit adjustments. Every endpoint but login needs the admin session, and every
//! state-changing one comes from the admin site's own origin ([`crate::admin::origin`]).

pub mod bills;
pub mod lists;
pub mod personal_data;
pub mod reports;
pub mod rows;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::Cookie;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use proto::membership::v1 as membership;

use self::rows::AdminRefundOut;
use crate::AppState;
use crate::admin::{
    ADMIN_COOKIE, AdminSession, claimed_session, require_admin_origin, session_cookie, sessions,
    verify_login,
};
use crate::cookie_keys::AdminSessionKey;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientIp};

/// The admin routes, behind the origin check.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/login", post(login))
        .route("/api/v1/admin/logout", post(logout))
        .route("/api/v1/admin/me", get(me))
        .route("/api/v1/admin/overview", get(reports::overview))
        .route("/api/v1/admin/timeseries", get(reports::timeseries))
        .route("/api/v1/admin/users", get(lists::users))
        .route("/api/v1/admin/orders", get(lists::orders))
        .route("/api/v1/admin/bindings", get(lists::bindings))
        .route("/api/v1/admin/audit", get(lists::audit))
        .route("/api/v1/admin/refunds", get(lists::refunds))
        .route("/api/v1/admin/bills", get(lists::bills))
        .route("/api/v1/admin/bills/{bill_date}", get(bills::report))
        .route("/api/v1/admin/bills/{bill_date}/check", post(bills::check))
        .route("/api/v1/admin/credits/adjust", post(adjust_credits))
        .route(
            "/api/v1/admin/users/{openid}/data",
            get(personal_data::export),
        )
        .route(
            "/api/v1/admin/users/{openid}/erasure",
            post(personal_data::erase),
        )
        .route(
            "/api/v1/admin/orders/{order_no}/refunds",
            post(refund_order),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_origin,
        ))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginIn {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdminOut {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedOutOut {
    pub signed_out: bool,
}

/// Signs the operator in: a session (Redis) named by a signed HttpOnly cookie. Failures lock the
/// address they come from, never the account.
#[utoipa::path(post, path = "/api/v1/admin/login", operation_id = "admin_login", request_body = LoginIn,
    responses((status = 200, body = AdminOut, description = "signed in; the session cookie is set"),
        (status = 401, description = "invalid_credentials"),
        (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 429, description = "admin_locked: too many failures from this address"),
        (status = 503, description = "admin_unavailable: no account configured, or Redis unreachable")))]
pub async fn login(
    State(state): State<AppState>,
    jar: SignedCookieJar<AdminSessionKey>,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<LoginIn>,
) -> Result<Response, ApiError> {
    verify_login(&state, &input.username, &input.password, ip).await?;
    let session_id = sessions::start(&state, &input.username).await?;
    let jar = jar.add(session_cookie(&state, &input.username, &session_id));
    let out = AdminOut {
        username: input.username,
    };
    Ok((jar, Json(out)).into_response())
}

/// Signs out: the session ends on the server, so every copy of its cookie stops working, and
/// the cookie is cleared. Without a session it only clears the cookie.
#[utoipa::path(post, path = "/api/v1/admin/logout", operation_id = "admin_logout",
    security(("admin_session" = [])),
    responses((status = 200, body = SignedOutOut),
        (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 503, description = "admin_unavailable: the session could not be ended (Redis)")))]
pub async fn logout(
    State(state): State<AppState>,
    jar: SignedCookieJar<AdminSessionKey>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = claimed_session(&headers, &state) {
        sessions::end(&state, &session.session_id).await?;
        tracing::info!(admin = session.username, "admin signed out");
    }
    let jar = jar.remove(Cookie::build(ADMIN_COOKIE).path("/"));
    Ok((jar, Json(SignedOutOut { signed_out: true })).into_response())
}

/// The signed-in operator (401 when the session is missing, expired or signed out).
#[utoipa::path(get, path = "/api/v1/admin/me", operation_id = "admin_me",
    security(("admin_session" = [])),
    responses((status = 200, body = AdminOut), (status = 401), (status = 503)))]
pub async fn me(session: AdminSession) -> Json<AdminOut> {
    Json(AdminOut {
        username: session.username,
    })
}

#[derive(Deserialize, ToSchema)]
pub struct AdjustIn {
    pub openid: String,
    /// Credits to add (negative: to take; never below zero).
    pub delta: i64,
    /// Why; required, kept in the audit row.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdjustOut {
    pub audit_id: i64,
    pub remaining_credits: i64,
}

/// Adjusts a user's credits: one `admin_adjust` ledger row, referenced by its audit row.
#[utoipa::path(post, path = "/api/v1/admin/credits/adjust", operation_id = "admin_adjust_credits", request_body = AdjustIn,
    security(("admin_session" = [])),
    responses((status = 200, body = AdjustOut),
        (status = 400, description = "no reason, or a zero delta"),
        (status = 401), (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 404, description = "no such user"),
        (status = 409, description = "the balance would go below zero"), (status = 503)))]
pub async fn adjust_credits(
    State(state): State<AppState>,
    session: AdminSession,
    ApiJson(input): ApiJson<AdjustIn>,
) -> Result<Json<AdjustOut>, ApiError> {
    let mut client = state.clients.admin.clone();
    let answer = client
        .adjust_credits(membership::AdjustCreditsRequest {
            openid: input.openid,
            delta: input.delta,
            reason: input.reason,
            admin: session.username,
        })
        .await?
        .into_inner();
    Ok(Json(AdjustOut {
        audit_id: answer.audit_id,
        remaining_credits: answer.remaining_credits,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct RefundIn {
    /// Integer fen, at most what is left of the order.
    pub refund_fee: i64,
    /// Why; required, audited, and shown to the user with the refund.
    pub reason: String,
}

/// Refunds part or all of a paid order through WeChat Pay. What the order bought is taken back
/// at once (a credits order only while the user has not spent them; a membership is shortened);
/// a refund WeChat Pay refuses gives it back. Audited.
#[utoipa::path(post, path = "/api/v1/admin/orders/{order_no}/refunds", operation_id = "admin_refund_order", request_body = RefundIn,
    params(("order_no" = String, Path, description = "the order's number")),
    security(("admin_session" = [])),
    responses((status = 200, description = "the refund: `status` pending (WeChat Pay's answer not known yet; the reconciler asks), processing or success", body = AdminRefundOut),
        (status = 400, description = "no reason, or refund_fee outside what is left of the order"),
        (status = 401), (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 404, description = "no such order"),
        (status = 409, description = "not_refundable: the order is not paid; credits_spent: the user spent credits it would take back (the message says how much can be refunded)"),
        (status = 502, description = "wechatpay_unavailable: WeChat Pay refused the refund; nothing was taken"),
        (status = 503, description = "refunds_not_configured: no merchant certificate")))]
pub async fn refund_order(
    State(state): State<AppState>,
    session: AdminSession,
    axum::extract::Path(order_no): axum::extract::Path<String>,
    ApiJson(input): ApiJson<RefundIn>,
) -> Result<Json<AdminRefundOut>, ApiError> {
    let mut client = state.clients.admin.clone();
    let refund = client
        .refund_order(membership::RefundOrderRequest {
            order_no,
            refund_fee: input.refund_fee,
            reason: input.reason,
            admin: session.username,
        })
        .await?
        .into_inner();
    Ok(Json(refund.into()))
}

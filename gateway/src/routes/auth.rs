//! App binding: QR code creation and binding-status polls, plain or long, and sign-out
//! (docs/architecture.md, "Binding rules"; docs/api.md, "Signing an app in").

use proto::ErrorCode;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use proto::membership::v1 as pb;

use crate::AppState;
use crate::client_cache::{CachedClient, token_key};
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientBearer, ClientIp};

#[derive(Deserialize, ToSchema)]
pub struct QrCodeIn {
    /// The app install's id: 1–64 of letters, digits, '.', '_', '-'.
    pub client_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct QrCodeOut {
    /// The QR_SCENE scene id (the binding's id).
    pub scene_id: u32,
    pub ticket: String,
    /// The content to encode in a QR image.
    pub qrcode_url: String,
    /// WeChat's ready-made QR image for the ticket.
    pub qrcode_image_url: String,
    pub expire_seconds: u32,
    /// RFC 3339.
    pub expires_at: String,
    /// Secret bearer token for this client; shown once, send it on every later call.
    pub client_token: String,
}

/// Creates (or refreshes) the client's binding and its WeChat QR code. A client that is bound
/// refreshes only with its current token (`Authorization: Bearer`): without it the answer is 409
/// `client_bound` and nothing changes, so nobody who merely knows a client id can sign an app
/// out. A client that is not bound (new, pending, expired or signed out) needs no token.
#[utoipa::path(post, path = "/api/v1/auth/wechat/qrcode", request_body = QrCodeIn,
    security((), ("client_token" = [])),
    responses((status = 200, body = QrCodeOut), (status = 400),
        (status = 409, description = "client_bound: the client is bound; send its current token or sign it out first"),
        (status = 429), (status = 502),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn create_qrcode(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    bearer: Option<ClientBearer>,
    ApiJson(input): ApiJson<QrCodeIn>,
) -> Result<Json<QrCodeOut>, ApiError> {
    state.limits.check_qrcode(&input.client_id, ip).await?;
    let presented = bearer.map(|ClientBearer(token)| token).unwrap_or_default();
    let replaced = (!presented.is_empty()).then(|| token_key(&presented));
    let mut client = state.clients.binding.clone();
    let issued = client
        .create_qr_code(pb::CreateQrCodeRequest {
            client_id: input.client_id,
            client_token: presented,
        })
        .await?
        .into_inner();
    // The presented token was replaced: this instance forgets it before answering; the others
    // hear of it from membership.
    if let Some(replaced) = replaced {
        state.client_cache.revoke(&replaced);
    }
    Ok(Json(QrCodeOut {
        scene_id: issued.scene_id,
        ticket: issued.ticket,
        qrcode_url: issued.qr_url,
        qrcode_image_url: issued.qrcode_image_url,
        expire_seconds: issued.expire_seconds,
        expires_at: super::rfc3339(issued.expires_at_unix),
        client_token: issued.client_token,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BindingQuery {
    pub client_id: String,
    /// Long poll: wait up to this many seconds (at most 25) for the scan, answering as soon as
    /// the binding completes on any instance; absent or 0 answers at once.
    #[serde(default)]
    pub wait: u64,
}

#[derive(Serialize, ToSchema)]
pub struct BindingOut {
    pub client_id: String,
    /// `pending`, `completed` or `expired`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub expires_at: String,
}

/// Returns the client's binding status; `completed` carries the WeChat openid. With `wait`, a
/// pending binding is answered when it completes (or at the wait's end, as it then is).
#[utoipa::path(get, path = "/api/v1/auth/wechat/binding", params(BindingQuery),
    security(("client_token" = [])),
    responses((status = 200, body = BindingOut), (status = 401),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn binding_status(
    State(state): State<AppState>,
    ClientBearer(token): ClientBearer,
    query: Result<Query<BindingQuery>, QueryRejection>,
) -> Result<Json<BindingOut>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))?;
    let wait = Duration::from_secs(query.wait.min(state.cfg.binding_wait_max_secs));
    // Registered before the first read, so a scan landing in between is not missed.
    let mut watch = (!wait.is_zero()).then(|| state.binding_waiters.watch(&query.client_id));
    let first = binding_view(&state, &query.client_id, &token).await?;
    let Some(watch) = watch.as_mut().filter(|_| first.status == "pending") else {
        return Ok(Json(first));
    };
    // Woken by the change (or the gateway closing), or not at all: either way, read again.
    let _ = tokio::time::timeout(wait, watch.changed()).await;
    Ok(Json(binding_view(&state, &query.client_id, &token).await?))
}

/// The binding as the token's holder sees it: a bound token this gateway remembers answers at
/// once; otherwise membership answers (fresh even while the replica lags), and a completed answer
/// is remembered.
async fn binding_view(
    state: &AppState,
    client_id: &str,
    token: &str,
) -> Result<BindingOut, ApiError> {
    let key = token_key(token);
    if let Some(cached) = state.client_cache.get(&key)
        && cached.client_id == client_id
    {
        return Ok(BindingOut {
            client_id: client_id.to_owned(),
            status: "completed",
            openid: Some(cached.openid.clone()),
            completed_at: Some(super::rfc3339(cached.completed_at_unix)),
            expires_at: super::rfc3339(cached.expires_at_unix),
        });
    }
    let epoch = state.client_cache.epoch();
    let mut client = state.clients.binding.clone();
    let view = client
        .get_binding_status(pb::GetBindingStatusRequest {
            client_id: client_id.to_owned(),
            client_token: token.to_owned(),
        })
        .await?
        .into_inner();
    let status = match pb::BindingStatus::try_from(view.status) {
        Ok(pb::BindingStatus::Completed) => "completed",
        Ok(pb::BindingStatus::Expired) => "expired",
        _ => "pending",
    };
    if status == "completed" && view.user_id > 0 && !view.openid.is_empty() {
        let cached = CachedClient {
            client_id: client_id.to_owned(),
            openid: view.openid.clone(),
            user_id: view.user_id,
            completed_at_unix: view.completed_at_unix,
            expires_at_unix: view.expires_at_unix,
        };
        state.client_cache.insert(key, cached, epoch);
    }
    Ok(BindingOut {
        client_id: client_id.to_owned(),
        status,
        openid: super::text_if_set(view.openid),
        completed_at: super::rfc3339_if_set(view.completed_at_unix),
        expires_at: super::rfc3339(view.expires_at_unix),
    })
}

#[derive(Serialize, ToSchema)]
pub struct UnbindOut {
    pub client_id: String,
    /// Always `signed_out`.
    pub status: &'static str,
}

/// Signs the app out: its token stops working at once and the client is no longer bound (its
/// next QR code needs no token). The WeChat user keeps their credits and membership.
#[utoipa::path(post, path = "/api/v1/auth/wechat/unbind",
    security(("client_token" = [])),
    responses((status = 200, body = UnbindOut), (status = 401),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn unbind(
    State(state): State<AppState>,
    ClientBearer(token): ClientBearer,
) -> Result<Json<UnbindOut>, ApiError> {
    let revoked = token_key(&token);
    let mut client = state.clients.binding.clone();
    let done = client
        .unbind(pb::UnbindRequest {
            client_token: token,
        })
        .await?
        .into_inner();
    state.client_cache.revoke(&revoked);
    Ok(Json(UnbindOut {
        client_id: done.client_id,
        status: "signed_out",
    }))
}

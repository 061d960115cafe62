//! The member page's devices: the apps bound to the signed-in user, each of which the user can
//! sign out (a lost laptop, a sold phone) without holding that app's token.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use proto::membership::v1 as pb;

use crate::AppState;
use crate::error::ApiError;
use crate::session::MemberSession;

#[derive(Serialize, ToSchema)]
pub struct DeviceOut {
    /// The app install's own id.
    pub client_id: String,
    /// RFC 3339: when its QR code was scanned.
    pub bound_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DevicesOut {
    /// Most recently bound first.
    pub devices: Vec<DeviceOut>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceSignedOutOut {
    pub client_id: String,
    /// Always `signed_out`.
    pub status: String,
}

/// The apps bound to the signed-in user now.
#[utoipa::path(get, path = "/api/v1/member/devices", operation_id = "list_devices",
    responses((status = 200, body = DevicesOut), (status = 401),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn list(
    State(state): State<AppState>,
    session: MemberSession,
) -> Result<Json<DevicesOut>, ApiError> {
    let mut binding = state.clients.binding.clone();
    let answer = binding
        .list_user_clients(pb::ListUserClientsRequest {
            openid: session.openid,
        })
        .await?
        .into_inner();
    Ok(Json(DevicesOut {
        devices: answer
            .clients
            .into_iter()
            .map(|client| DeviceOut {
                client_id: client.client_id,
                bound_at: super::rfc3339(client.bound_at_unix),
            })
            .collect(),
    }))
}

/// Signs one of the user's apps out: its token stops working and the app must scan again.
#[utoipa::path(post, path = "/api/v1/member/devices/{client_id}/sign-out", operation_id = "sign_out_device",
    params(("client_id" = String, Path, description = "a client bound to the signed-in user")),
    responses((status = 200, body = DeviceSignedOutOut), (status = 400), (status = 401),
        (status = 404, description = "no such client is bound to this user"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn sign_out(
    State(state): State<AppState>,
    session: MemberSession,
    Path(client_id): Path<String>,
) -> Result<Json<DeviceSignedOutOut>, ApiError> {
    let mut binding = state.clients.binding.clone();
    let answer = binding
        .sign_out_user_client(pb::SignOutUserClientRequest {
            openid: session.openid,
            client_id,
        })
        .await?
        .into_inner();
    Ok(Json(DeviceSignedOutOut {
        client_id: answer.client_id,
        status: "signed_out".to_owned(),
    }))
}

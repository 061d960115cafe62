//! Operators and a user's personal data: download it for them, or erase it at their request.
//! Erasure is audited under the operator's name.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::admin::AdminSession;
use crate::erasure;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::personal_data::{ErasedOut, download, erased_out};

/// Everything held about the user, as a JSON file (what the member page's download gives).
#[utoipa::path(get, path = "/api/v1/admin/users/{openid}/data", operation_id = "admin_export_personal_data",
    params(("openid" = String, Path, description = "the user's openid")),
    security(("admin_session" = [])),
    responses((status = 200, description = "a JSON file (Content-Disposition: attachment)", body = serde_json::Value),
        (status = 401), (status = 404, description = "no such user, or erased"),
        (status = 503, description = "a service holding part of the data cannot answer: no partial copy")))]
pub async fn export(
    State(state): State<AppState>,
    _session: AdminSession,
    Path(openid): Path<String>,
) -> Result<Response, ApiError> {
    let filename = format!(
        "xintu-user-{}.json",
        openid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(64)
            .collect::<String>()
    );
    download(&state, openid, &filename).await
}

#[derive(Deserialize, ToSchema)]
pub struct EraseUserIn {
    /// Why (the user's request, its date and channel); required and audited.
    pub reason: String,
}

/// Erases the user's personal data at their request: as the member page's erasure, audited
/// under the operator's name with the reason.
#[utoipa::path(post, path = "/api/v1/admin/users/{openid}/erasure", operation_id = "admin_erase_personal_data", request_body = EraseUserIn,
    params(("openid" = String, Path, description = "the user's openid")),
    security(("admin_session" = [])),
    responses((status = 200, body = ErasedOut), (status = 400, description = "no reason"),
        (status = 401), (status = 403, description = "origin_not_allowed: not from the admin site"),
        (status = 404, description = "no such user, or erased"),
        (status = 409, description = "erasure_blocked: an order may still be paid, a refund is open or an edit is running; nothing changed"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn erase(
    State(state): State<AppState>,
    session: AdminSession,
    Path(openid): Path<String>,
    ApiJson(input): ApiJson<EraseUserIn>,
) -> Result<Json<ErasedOut>, ApiError> {
    let erased = erasure::erase(&state, openid, session.username, input.reason).await?;
    Ok(Json(erased_out(&erased)))
}

//! A member's personal data on the member page: download everything we hold about them, and
//! erase it (the account closes: apps signed out, credits left forfeited, financial records kept
//! under a pseudonym).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::Cookie;
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::cookie_keys::MemberSessionKey;
use crate::erasure::{self, Erased};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::recording::RecordFields;
use crate::session::{MemberSession, SESSION_COOKIE};

/// The export of `openid` as a JSON file download named `filename`.
pub async fn download(
    state: &AppState,
    openid: String,
    filename: &str,
) -> Result<Response, ApiError> {
    let document = crate::export::personal_data(state, openid).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        document,
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct ErasedOut {
    /// Always `erased`.
    pub status: String,
    /// Credits that were left and are gone with the account.
    pub credits_forfeited: i64,
    /// `done`, or `pending` while the photo or stats service has yet to forget the user (it is
    /// retried until they have).
    pub follow_ups: String,
}

pub fn erased_out(erased: &Erased) -> ErasedOut {
    ErasedOut {
        status: "erased".to_owned(),
        credits_forfeited: erased.credits_forfeited,
        follow_ups: if erased.follow_ups_done {
            "done"
        } else {
            "pending"
        }
        .to_owned(),
    }
}

/// Everything we hold about the signed-in user, as a JSON file: profile, apps, orders, refunds,
/// credit ledger, official account events, image edit tasks and request log rows.
#[utoipa::path(get, path = "/api/v1/member/data", operation_id = "export_personal_data",
    responses((status = 200, description = "a JSON file (Content-Disposition: attachment)", body = serde_json::Value),
        (status = 401), (status = 404, description = "nothing is held about this user"),
        (status = 503, description = "a service holding part of the data cannot answer: no partial copy")))]
pub async fn export(
    State(state): State<AppState>,
    session: MemberSession,
) -> Result<Response, ApiError> {
    download(&state, session.openid, "xintu-my-data.json").await
}

#[derive(Deserialize, ToSchema)]
pub struct EraseIn {
    /// Must be true: the user confirmed on the page that the account and its credits go.
    pub confirm: bool,
}

/// Erases the signed-in user's personal data and ends the session. Orders, refunds and credit
/// ledger rows are kept under a pseudonym (financial records); everything else that names the
/// user goes, here and in the photo and stats services.
#[utoipa::path(post, path = "/api/v1/member/erasure", operation_id = "erase_personal_data", request_body = EraseIn,
    responses((status = 200, body = ErasedOut), (status = 400, description = "not confirmed"),
        (status = 401), (status = 404, description = "nothing is held about this user"),
        (status = 409, description = "erasure_blocked: an order may still be paid, a refund is open or an edit is running; nothing changed"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn erase(
    State(state): State<AppState>,
    Extension(record): Extension<RecordFields>,
    jar: SignedCookieJar<MemberSessionKey>,
    session: MemberSession,
    ApiJson(input): ApiJson<EraseIn>,
) -> Result<(SignedCookieJar<MemberSessionKey>, Json<ErasedOut>), ApiError> {
    if !input.confirm {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            "confirm must be true",
        ));
    }
    record.forget_caller();
    let erased = erasure::erase(
        &state,
        session.openid,
        "member".to_owned(),
        "the member asked for their data to be erased".to_owned(),
    )
    .await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Json(erased_out(&erased))))
}

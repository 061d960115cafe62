//! The bound app's account: its credits and membership, so an app can show the balance before it
//! spends any (classify and edit answers carry it only afterwards).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use proto::membership::v1 as pb;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::AuthenticatedClient;

#[derive(Serialize, ToSchema)]
pub struct AccountOut {
    /// The app client this token belongs to.
    pub client_id: String,
    /// The WeChat user the client is bound to.
    pub openid: String,
    /// Credits that can be spent now: remaining minus those held by work in progress.
    pub available_credits: i64,
    pub remaining_credits: i64,
    /// Held by classifications and edits still running; spent or given back when they end.
    pub held_credits: i64,
    /// Every credit the user has ever received.
    pub total_credits: i64,
    pub is_member: bool,
    /// RFC 3339, when a member (or once was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_expire_at: Option<String>,
}

/// The bound user's credits and membership, read from the primary database: an app that has
/// just spent credits sees the balance after it.
#[utoipa::path(get, path = "/api/v1/account", operation_id = "get_account",
    security(("client_token" = [])),
    responses((status = 200, body = AccountOut), (status = 401),
        (status = 403, description = "the client is not bound to WeChat"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn account(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
) -> Result<Json<AccountOut>, ApiError> {
    let (user_id, openid) = caller.bound_user()?;
    let mut credit = state.clients.credit.clone();
    let balance = credit
        .get_balance(pb::GetBalanceRequest { user_id })
        .await?
        .into_inner();
    Ok(Json(AccountOut {
        client_id: caller.client_id.clone(),
        openid: openid.to_owned(),
        available_credits: balance.available,
        remaining_credits: balance.remaining,
        held_credits: balance.held,
        total_credits: balance.total,
        is_member: balance.is_member,
        member_expire_at: super::rfc3339_if_set(balance.member_expire_at_unix),
    }))
}

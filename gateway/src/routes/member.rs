//! The member H5 page's sign-in (WeChat web OAuth, snsapi_base) and profile.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::SignedCookieJar;
use proto::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use proto::membership::v1 as pb;

use crate::AppState;
use crate::cookie_keys::{MemberSessionKey, OAuthStateKey};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::session::{MemberSession, OAUTH_STATE_COOKIE, oauth_state_cookie, session_cookie};

#[derive(Deserialize, IntoParams)]
pub struct AuthorizeQuery {
    /// A path on this site to return to after sign-in (default: the member page).
    pub return_to: Option<String>,
}

/// Only same-site paths: an open redirect would hand the session to anyone's page.
fn safe_return_path(candidate: Option<&str>, fallback: &str) -> String {
    candidate
        .and_then(same_site_path)
        .unwrap_or_else(|| fallback.to_owned())
}

/// `candidate` as a path on our own site, or None. Browsers read a Location as the WHATWG URL
/// parser does: tabs and newlines are dropped and `\` is a `/`, so `/\t/evil.example` lands on
/// another host. The candidate is therefore resolved by that same parser against a placeholder
/// origin; only one that stays on it is kept, and in its resolved form, so the browser reads
/// exactly what was checked.
fn same_site_path(candidate: &str) -> Option<String> {
    if !candidate.starts_with('/')
        || candidate.len() > 200
        || candidate.contains('|')
        || candidate.chars().any(char::is_control)
    {
        return None;
    }
    let origin = reqwest::Url::parse("https://return-to.invalid/").ok()?;
    let resolved = origin.join(candidate).ok()?;
    if resolved.origin() != origin.origin() {
        return None;
    }
    let mut path = resolved.path().to_owned();
    if let Some(query) = resolved.query() {
        path.push('?');
        path.push_str(query);
    }
    if let Some(fragment) = resolved.fragment() {
        path.push('#');
        path.push_str(fragment);
    }
    // A path that still begins with `//` would be read as another host's address.
    (!path.starts_with("//")).then_some(path)
}

/// Starts sign-in: a `state` bound to this browser by a signed cookie, then WeChat's page.
#[utoipa::path(get, path = "/api/v1/member/oauth/authorize", operation_id = "member_oauth_authorize", params(AuthorizeQuery),
    responses((status = 302, description = "to WeChat's OAuth page")))]
pub async fn authorize(
    State(state): State<AppState>,
    jar: SignedCookieJar<OAuthStateKey>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let return_to = safe_return_path(query.return_to.as_deref(), &state.cfg.member_page_path);
    let jar = jar.add(oauth_state_cookie(&state, format!("{nonce}|{return_to}")));
    let callback = format!(
        "{}/api/v1/member/oauth/callback",
        state.cfg.public_base_url.trim_end_matches('/')
    );
    let mut target = match reqwest::Url::parse(&format!(
        "{}/connect/oauth2/authorize",
        state.cfg.wechat_open_base.trim_end_matches('/')
    )) {
        Ok(url) => url,
        Err(_) => {
            return ApiError::new(ErrorCode::Internal, "bad wechat_open_base").into_response();
        }
    };
    // WeChat requires this parameter order and the #wechat_redirect fragment.
    target
        .query_pairs_mut()
        .append_pair("appid", &state.cfg.wechat_appid)
        .append_pair("redirect_uri", &callback)
        .append_pair("response_type", "code")
        .append_pair("scope", "snsapi_base")
        .append_pair("state", &nonce);
    target.set_fragment(Some("wechat_redirect"));
    (
        jar,
        (StatusCode::FOUND, [(header::LOCATION, target.to_string())]),
    )
        .into_response()
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub state: String,
}

/// WeChat's redirect back: checks `state`, exchanges the code for the openid, and sets our
/// signed session cookie.
#[utoipa::path(get, path = "/api/v1/member/oauth/callback", operation_id = "member_oauth_callback", params(CallbackQuery),
    responses((status = 302, description = "signed in, back to the page"), (status = 401)))]
pub async fn callback(
    State(state): State<AppState>,
    jar: SignedCookieJar<OAuthStateKey>,
    sessions: SignedCookieJar<MemberSessionKey>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let expected = jar.get(OAUTH_STATE_COOKIE).map(|c| c.value().to_owned());
    let (nonce, return_to) = expected
        .as_deref()
        .and_then(|value| value.split_once('|'))
        .ok_or_else(|| ApiError::new(ErrorCode::OauthStateMismatch, "start sign-in again"))?;
    let matches = nonce.len() == query.state.len()
        && bool::from(subtle_eq(nonce.as_bytes(), query.state.as_bytes()));
    if query.code.is_empty() || !matches {
        return Err(ApiError::new(
            ErrorCode::OauthStateMismatch,
            "start sign-in again",
        ));
    }
    let mut member = state.clients.member.clone();
    let openid = member
        .exchange_o_auth_code(pb::ExchangeOAuthCodeRequest { code: query.code })
        .await?
        .into_inner()
        .openid;
    let return_to = safe_return_path(Some(return_to), &state.cfg.member_page_path);
    let jar = jar.remove(
        axum_extra::extract::cookie::Cookie::build(OAUTH_STATE_COOKIE).path("/api/v1/member/oauth"),
    );
    let sessions = sessions.add(session_cookie(&state, &openid));
    Ok((
        jar,
        sessions,
        (StatusCode::FOUND, [(header::LOCATION, return_to)]),
    )
        .into_response())
}

fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}

#[derive(Serialize, ToSchema)]
pub struct PricesOut {
    pub member_price_fen: i64,
    pub member_days: u32,
    pub member_bonus_credits: i64,
    pub member_renew_window_days: u32,
    pub credit_unit_fen: i64,
    pub credits_min: u32,
    pub credits_max: u32,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileOut {
    pub openid: String,
    /// Follows the official account.
    pub following: bool,
    /// Credits that can be spent now.
    pub available_credits: i64,
    pub remaining_credits: i64,
    pub total_credits: i64,
    pub is_member: bool,
    /// RFC 3339, when a member (or once was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_expire_at: Option<String>,
    pub can_buy_membership: bool,
    pub prices: PricesOut,
    /// A template message from the official account a few days before the membership ends.
    pub expiry_reminders: bool,
}

/// The signed-in user's credits, membership and the current prices.
#[utoipa::path(get, path = "/api/v1/member/profile", operation_id = "member_profile",
    responses((status = 200, body = ProfileOut), (status = 401),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn profile(
    State(state): State<AppState>,
    session: MemberSession,
) -> Result<Json<ProfileOut>, ApiError> {
    let mut member = state.clients.member.clone();
    let profile = member
        .get_profile(pb::GetProfileRequest {
            openid: session.openid,
        })
        .await?
        .into_inner();
    Ok(Json(profile_out(profile)))
}

#[derive(Deserialize, ToSchema)]
pub struct RemindersIn {
    /// true: remind me before my membership ends; false: do not.
    pub enabled: bool,
}

/// Turns the signed-in user's membership expiry reminders on or off (a template message from
/// the official account a few days before the end; only while following it). Returns the
/// profile.
#[utoipa::path(post, path = "/api/v1/member/reminders", request_body = RemindersIn,
    responses((status = 200, body = ProfileOut), (status = 400), (status = 401),
        (status = 404, description = "the user has never followed or bought: nothing to remind of"),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn set_reminders(
    State(state): State<AppState>,
    session: MemberSession,
    ApiJson(input): ApiJson<RemindersIn>,
) -> Result<Json<ProfileOut>, ApiError> {
    let mut member = state.clients.member.clone();
    let profile = member
        .set_expiry_reminders(pb::SetExpiryRemindersRequest {
            openid: session.openid,
            enabled: input.enabled,
        })
        .await?
        .into_inner();
    Ok(Json(profile_out(profile)))
}

fn profile_out(profile: pb::Profile) -> ProfileOut {
    let prices = profile.prices.unwrap_or_default();
    ProfileOut {
        openid: profile.openid,
        following: profile.following,
        available_credits: profile.available_credits,
        remaining_credits: profile.remaining_credits,
        total_credits: profile.total_credits,
        is_member: profile.is_member,
        member_expire_at: super::rfc3339_if_set(profile.member_expire_at_unix),
        can_buy_membership: profile.can_buy_membership,
        prices: PricesOut {
            member_price_fen: prices.member_price_fen,
            member_days: prices.member_days,
            member_bonus_credits: prices.member_bonus_credits,
            member_renew_window_days: prices.member_renew_window_days,
            credit_unit_fen: prices.credit_unit_fen,
            credits_min: prices.credits_min,
            credits_max: prices.credits_max,
        },
        expiry_reminders: profile.expiry_reminders,
    }
}

#[cfg(test)]
mod tests {
    use super::{safe_return_path, same_site_path};

    #[test]
    fn only_same_site_paths_are_return_targets() {
        assert_eq!(
            safe_return_path(Some("/member/?x=1"), "/member/"),
            "/member/?x=1"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "member",
            "/a|b",
        ] {
            assert_eq!(safe_return_path(Some(bad), "/member/"), "/member/", "{bad}");
        }
        assert_eq!(safe_return_path(None, "/member/"), "/member/");
    }

    #[test]
    fn only_same_site_paths_are_kept_as_the_browser_reads_them() {
        for hostile in [
            "/\t/evil.example",
            "/\n/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\/evil.example",
            "https://evil.example/",
            "/\u{0}/evil.example",
        ] {
            assert_eq!(same_site_path(hostile), None, "{hostile:?}");
        }
        assert_eq!(
            same_site_path("/member/?tab=credits#top").as_deref(),
            Some("/member/?tab=credits#top")
        );
        // Dot segments are resolved, and stay on the site.
        assert_eq!(same_site_path("/member/../../x").as_deref(), Some("/x"));
        assert_eq!(
            same_site_path("/%09/evil.example").as_deref(),
            Some("/%09/evil.example"),
            "an encoded tab in a path is not stripped by browsers"
        );
    }
}

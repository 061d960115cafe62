//! WeChat web OAuth (snsapi_base): the authorize page redirects back with a code, and
//! `sns/oauth2/access_token` exchanges it (single use, 5 minutes) for the openid.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::{Sandbox, lock};

const CODE_TTL_SECS: i64 = 300;

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/connect/oauth2/authorize", get(authorize))
        .route("/sns/oauth2/access_token", get(access_token))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    /// Sandbox only: which WeChat user is "in the browser".
    sandbox_openid: Option<String>,
}

impl Sandbox {
    /// Issues an OAuth code for `openid`, as the authorize page would.
    pub fn oauth_code(&self, openid: &str) -> String {
        let code = format!("sbxcode{}", rand::random::<u64>());
        let expires = chrono::Utc::now().timestamp() + CODE_TTL_SECS;
        lock(&self.state.accounts)
            .oauth_codes
            .insert(code.clone(), (openid.to_owned(), expires));
        code
    }
}

async fn authorize(
    State(sandbox): State<Sandbox>,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    if query.appid != sandbox.state.cfg.appid {
        return (StatusCode::BAD_REQUEST, "appid 错误").into_response();
    }
    if !matches!(query.scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
        return (StatusCode::BAD_REQUEST, "scope 参数错误或没有 scope 权限").into_response();
    }
    let Ok(mut target) = url::Url::parse(&query.redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri 参数错误").into_response();
    };
    let openid = query
        .sandbox_openid
        .unwrap_or_else(|| sandbox.state.cfg.oauth_openid.clone());
    let code = sandbox.oauth_code(&openid);
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query.state);
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    grant_type: String,
}

async fn access_token(State(sandbox): State<Sandbox>, Query(query): Query<TokenQuery>) -> Response {
    let error = crate::official_account::error;
    if query.appid != sandbox.state.cfg.appid {
        return error(40013, "invalid appid");
    }
    if query.secret != sandbox.state.cfg.secret {
        return error(40125, "invalid appsecret");
    }
    if query.grant_type != "authorization_code" {
        return error(40002, "invalid grant_type");
    }
    if query.code.is_empty() {
        return error(41008, "missing code");
    }
    sandbox.state.oauth_exchanges.fetch_add(1, Ordering::SeqCst);
    let mut accounts = lock(&sandbox.state.accounts);
    let Some((openid, expires)) = accounts.oauth_codes.get(&query.code).cloned() else {
        return error(40029, "invalid code");
    };
    if expires == 0 {
        return error(40163, "code been used");
    }
    if expires < chrono::Utc::now().timestamp() {
        return error(40029, "invalid code");
    }
    // Single use: mark it spent, so a second exchange answers 40163 as WeChat does.
    accounts.oauth_codes.insert(query.code, (openid.clone(), 0));
    Json(json!({
        "access_token": format!("sbxuser{}", rand::random::<u64>()),
        "expires_in": 7200,
        "refresh_token": format!("sbxrefresh{}", rand::random::<u64>()),
        "openid": openid,
        "scope": "snsapi_base",
    }))
    .into_response()
}

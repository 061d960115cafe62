//! The official-account API as WeChat answers it: `cgi-bin/token`, `cgi-bin/stable_token`,
//! `cgi-bin/qrcode/create` and `cgi-bin/showqrcode`, with WeChat's error codes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{IssuedToken, QrRecord, Sandbox, lock};

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/cgi-bin/token", get(classic_token))
        .route(
            "/cgi-bin/stable_token",
            post(stable_token).get(stable_token_get),
        )
        .route("/cgi-bin/qrcode/create", post(create_qrcode))
        .route("/cgi-bin/showqrcode", get(show_qrcode))
}

/// WeChat's error body: HTTP 200, `errmsg` followed by a request id (`rid: xxxxxxxx-xxxxxxxx-xxxxxxxx`)
/// as real answers carry it.
pub(crate) fn error(code: i64, message: &str) -> Response {
    let errmsg = format!("{message} rid: {}", rid());
    Json(json!({ "errcode": code, "errmsg": errmsg })).into_response()
}

/// A request id in WeChat's shape: three groups of 8 hex digits.
pub(crate) fn rid() -> String {
    let hex = format!("{:024x}", rand::random::<u128>() >> 32);
    format!("{}-{}-{}", &hex[..8], &hex[8..16], &hex[16..])
}

fn random_string(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Applies the configured delay and answers WeChat's "system busy" while server errors are
/// injected: HTTP 200 with errcode -1, as WeChat answers a bad moment (never a 5xx).
pub(crate) async fn injected(sandbox: &Sandbox) -> Option<Response> {
    let delay = lock(&sandbox.state.faults).delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut faults = lock(&sandbox.state.faults);
    if faults.server_errors > 0 {
        faults.server_errors -= 1;
        return Some(error(-1, "system error"));
    }
    None
}

#[derive(Deserialize)]
struct StableTokenIn {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

async fn stable_token_get() -> Response {
    error(43002, "require POST method")
}

/// Normal mode hands out the same token until it expires; force_refresh mints a new one and
/// revokes the old.
async fn stable_token(State(sandbox): State<Sandbox>, body: axum::body::Bytes) -> Response {
    if let Some(fault) = injected(&sandbox).await {
        return fault;
    }
    let Ok(input) = serde_json::from_slice::<StableTokenIn>(&body) else {
        return error(47001, "data format error");
    };
    if input.grant_type != "client_credential" {
        return error(40002, "invalid grant_type");
    }
    if let Some(refusal) = check_credentials(&sandbox, &input.appid, &input.secret) {
        return refusal;
    }
    sandbox.state.token_fetches.fetch_add(1, Ordering::SeqCst);
    let now = chrono::Utc::now().timestamp();
    let mut accounts = lock(&sandbox.state.accounts);
    let reuse = accounts
        .token
        .clone()
        .filter(|token| !input.force_refresh && token.expires_at - now >= 300);
    let token = match reuse {
        Some(token) => token,
        None => {
            if let Some(old) = accounts.token.take() {
                accounts.revoked.insert(old.value);
            }
            let token = IssuedToken {
                value: format!("sbx_{}", random_string(48)),
                expires_at: now + sandbox.state.cfg.token_ttl_secs,
            };
            accounts.token = Some(token.clone());
            token
        }
    };
    Json(json!({ "access_token": token.value, "expires_in": token.expires_at - now }))
        .into_response()
}

#[derive(Deserialize)]
struct ClassicTokenQuery {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
}

/// The classic endpoint mints a new token on every call and invalidates the previous one.
async fn classic_token(
    State(sandbox): State<Sandbox>,
    Query(query): Query<ClassicTokenQuery>,
) -> Response {
    if let Some(fault) = injected(&sandbox).await {
        return fault;
    }
    if query.grant_type != "client_credential" {
        return error(40002, "invalid grant_type");
    }
    if let Some(refusal) = check_credentials(&sandbox, &query.appid, &query.secret) {
        return refusal;
    }
    sandbox.state.token_fetches.fetch_add(1, Ordering::SeqCst);
    let now = chrono::Utc::now().timestamp();
    let mut accounts = lock(&sandbox.state.accounts);
    if let Some(old) = accounts.token.take() {
        accounts.revoked.insert(old.value);
    }
    let token = IssuedToken {
        value: format!("sbx_{}", random_string(48)),
        expires_at: now + sandbox.state.cfg.token_ttl_secs,
    };
    accounts.token = Some(token.clone());
    Json(json!({ "access_token": token.value, "expires_in": sandbox.state.cfg.token_ttl_secs }))
        .into_response()
}

fn check_credentials(sandbox: &Sandbox, appid: &str, secret: &str) -> Option<Response> {
    if appid.is_empty() {
        return Some(error(41002, "appid missing"));
    }
    if appid != sandbox.state.cfg.appid {
        return Some(error(40013, "invalid appid"));
    }
    if secret != sandbox.state.cfg.secret {
        return Some(error(40125, "invalid appsecret"));
    }
    None
}

/// Checks a business call's access token, and applies token and quota faults.
pub(crate) fn check_access_token(sandbox: &Sandbox, token: Option<&str>) -> Option<Response> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(error(41001, "access_token missing"));
    };
    {
        let mut faults = lock(&sandbox.state.faults);
        if faults.revoke_token > 0 {
            faults.revoke_token -= 1;
            drop(faults);
            let mut accounts = lock(&sandbox.state.accounts);
            if accounts.token.as_ref().is_some_and(|t| t.value == token) {
                accounts.token = None;
            }
            accounts.revoked.insert(token.to_owned());
            return Some(error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            ));
        }
        if faults.quota_exceeded > 0 {
            faults.quota_exceeded -= 1;
            return Some(error(45009, "reach max api daily quota limit"));
        }
    }
    let accounts = lock(&sandbox.state.accounts);
    match &accounts.token {
        Some(current) if current.value == token => {
            if current.expires_at <= chrono::Utc::now().timestamp() {
                Some(error(42001, "access_token expired"))
            } else {
                None
            }
        }
        _ if accounts.revoked.contains(token) => Some(error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
        _ => Some(error(40014, "invalid access_token")),
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    pub access_token: Option<String>,
}

async fn create_qrcode(
    State(sandbox): State<Sandbox>,
    Query(query): Query<TokenQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(fault) = injected(&sandbox).await {
        return fault;
    }
    if let Some(refusal) = check_access_token(&sandbox, query.access_token.as_deref()) {
        return refusal;
    }
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return error(47001, "data format error");
    };
    let action = input
        .get("action_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let scene = input.pointer("/action_info/scene");
    let scene_id = match action {
        "QR_SCENE" | "QR_LIMIT_SCENE" => scene
            .and_then(|s| s.get("scene_id"))
            .and_then(Value::as_u64)
            .filter(|id| *id > 0 && *id <= u64::from(u32::MAX)),
        // WeChat answers an unknown action_name with 40052 (captured: "invalid action name hint:
        // [...]"); the sandbox knows only the integer-scene kinds the client uses.
        _ => return error(40052, "invalid action name"),
    };
    let Some(scene_id) = scene_id.and_then(|id| u32::try_from(id).ok()) else {
        // WeChat accepts a misplaced scene and later sends qrscene_0; we refuse it loudly.
        return error(40097, "invalid args: scene_id");
    };
    let expire_seconds = match input.get("expire_seconds").and_then(Value::as_i64) {
        None => 30,
        Some(seconds) if (1..=2_592_000).contains(&seconds) => seconds,
        Some(_) => return error(40097, "invalid args: expire_seconds"),
    };
    sandbox.state.qrcode_creates.fetch_add(1, Ordering::SeqCst);
    let ticket = format!("gQ{}", random_string(36));
    let url = format!("http://weixin.qq.com/q/{}", random_string(16));
    lock(&sandbox.state.accounts).qrcodes.insert(
        ticket.clone(),
        QrRecord {
            scene_id,
            expires_at: chrono::Utc::now().timestamp() + expire_seconds,
        },
    );
    Json(json!({ "ticket": ticket, "expire_seconds": expire_seconds, "url": url })).into_response()
}

#[derive(Deserialize)]
struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

/// A 1×1 PNG stands in for the QR image (apps render their own from `url`).
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

async fn show_qrcode(State(sandbox): State<Sandbox>, Query(query): Query<TicketQuery>) -> Response {
    match sandbox.qrcode(&query.ticket) {
        Some(record) if record.expires_at > chrono::Utc::now().timestamp() => {
            ([(axum::http::header::CONTENT_TYPE, "image/png")], PIXEL_PNG).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "invalid ticket").into_response(),
    }
}

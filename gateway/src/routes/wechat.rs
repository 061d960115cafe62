//! WeChat's push endpoint: URL check on GET, signed events on POST (subscribe and SCAN complete a
//! binding, unsubscribe marks the user unfollowed; docs/architecture.md, "Binding rules").

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;

use proto::membership::v1 as pb;

use crate::AppState;
use crate::error::ApiError;
use crate::wechat::replay::Claim;
use crate::wechat::{OpenedPush, PushError, PushQuery, text_reply};

/// "success" tells WeChat the push was handled and needs no reply.
fn plain_success() -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        "success",
    )
        .into_response()
}

/// Answers WeChat's server URL check with the echostr when the signature holds.
#[utoipa::path(get, path = "/api/v1/auth/wechat/verify", operation_id = "wechat_verify_url", tag = "called by WeChat",
    params(
        ("signature" = String, Query, description = "SHA-1 of the sorted token, timestamp and nonce"),
        ("timestamp" = String, Query), ("nonce" = String, Query),
        ("echostr" = String, Query, description = "echoed back when the signature holds")),
    responses((status = 200, description = "the echostr", content_type = "text/plain", body = String),
        (status = 403, description = "invalid_signature")))]
pub async fn verify_url(
    State(state): State<AppState>,
    Query(query): Query<PushQuery>,
) -> Result<Response, ApiError> {
    state.push.verify_url(&query).map_err(push_error)?;
    let echostr = query.echostr.unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echostr,
    )
        .into_response())
}

/// Receives a push: verifies before anything else, applies subscribe / SCAN / unsubscribe
/// through the membership service, and answers a passive reply in the push's own mode.
#[utoipa::path(post, path = "/api/v1/auth/wechat/verify", operation_id = "wechat_push", tag = "called by WeChat",
    params(("signature" = String, Query), ("timestamp" = String, Query), ("nonce" = String, Query),
        ("encrypt_type" = Option<String>, Query, description = "`aes` in safe mode"),
        ("msg_signature" = Option<String>, Query, description = "safe mode's signature")),
    request_body(content = String, content_type = "text/xml",
        description = "the official account's push (plain or safe mode)"),
    responses((status = 200, content_type = "text/xml", body = String,
            description = "`success`, or a passive text reply in the push's own mode"),
        (status = 400, description = "malformed XML, a DOCTYPE or entities"),
        (status = 403, description = "invalid_signature, stale_push or replayed_push"),
        (status = 413)))]
pub async fn receive_push(
    State(state): State<AppState>,
    Query(query): Query<PushQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.cfg.max_body_bytes;
    let body: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?;
    let push = state.push.open(&query, &body).map_err(push_error)?;
    if !state
        .replay
        .is_timely(&query.timestamp, chrono::Utc::now().timestamp())
    {
        tracing::warn!("push with a stale timestamp refused");
        return Err(ApiError::new(
            ErrorCode::StalePush,
            "the push's timestamp is too far from now",
        ));
    }
    match state
        .replay
        .claim(&query.timestamp, &query.nonce, &body)
        .await
    {
        Claim::Fresh => {}
        // WeChat sending it again: it was applied; "success" stops the retries.
        Claim::Retry => return Ok(plain_success()),
        Claim::Forged => {
            tracing::warn!("a used push signature with another body refused");
            return Err(ApiError::new(
                ErrorCode::ReplayedPush,
                "this push signature was used before",
            ));
        }
    }
    let reply = match handle(&state, &push).await {
        Ok(reply) => reply,
        Err(err) => {
            // Not applied: WeChat's retry of it must be.
            state.replay.release(&query.timestamp, &query.nonce).await;
            return Err(err);
        }
    };
    let body = match reply {
        Some(document) => state.push.seal(document, push.encrypted),
        // "success" tells WeChat the push was handled and needs no reply.
        None => "success".to_owned(),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response())
}

async fn handle(state: &AppState, push: &OpenedPush) -> Result<Option<String>, ApiError> {
    let openid = push.field("FromUserName").map_err(push_error)?;
    push.field("ToUserName").map_err(push_error)?;
    let create_time: i64 = push
        .field("CreateTime")
        .map_err(push_error)?
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::InvalidField, "CreateTime is not a number"))?;
    if push.field("MsgType").map_err(push_error)? != "event" {
        // Messages are not for this account's automation: acknowledged, nothing to do.
        return Ok(None);
    }
    let kind = match push.field("Event").map_err(push_error)? {
        "subscribe" => pb::EventKind::Subscribe,
        "SCAN" => pb::EventKind::Scan,
        "unsubscribe" => pb::EventKind::Unsubscribe,
        other => {
            tracing::debug!(event = other, "unhandled event acknowledged");
            return Ok(None);
        }
    };
    let field = |name: &str| push.fields.get(name).cloned().unwrap_or_default();
    let mut client = state.clients.binding.clone();
    let result = client
        .handle_official_account_event(pb::OfficialAccountEvent {
            openid: openid.to_owned(),
            create_time,
            kind: kind.into(),
            event_key: field("EventKey"),
            ticket: field("Ticket"),
        })
        .await?
        .into_inner();
    let content = reply_text(&result);
    Ok(content.and_then(|content| text_reply(push, &content)))
}

/// The text a user sees after an event, or None for no reply.
fn reply_text(result: &pb::OfficialAccountEventResult) -> Option<String> {
    let outcome =
        pb::EventOutcome::try_from(result.outcome).unwrap_or(pb::EventOutcome::Unspecified);
    match outcome {
        pb::EventOutcome::Bound if result.granted_credits > 0 => Some(format!(
            "绑定成功！欢迎使用芯图相册，已赠送您 {} 积分。回到应用即可开始整理照片。",
            result.granted_credits
        )),
        pb::EventOutcome::Bound => Some("绑定成功！回到芯图相册应用即可继续使用。".to_owned()),
        pb::EventOutcome::Followed if result.scene_note() == pb::SceneNote::Expired => {
            Some("二维码已过期，请在芯图相册应用中刷新二维码后重新扫描。".to_owned())
        }
        pb::EventOutcome::Followed | pb::EventOutcome::Duplicate => {
            Some("欢迎关注芯图相册！在应用中扫描二维码即可完成绑定。".to_owned())
        }
        pb::EventOutcome::Unfollowed | pb::EventOutcome::Unspecified => None,
    }
}

fn push_error(err: PushError) -> ApiError {
    use wechat_protocol::xml::XmlError;
    match err {
        PushError::BadSignature => {
            tracing::warn!("push with a bad signature refused");
            ApiError::new(ErrorCode::InvalidSignature, "signature mismatch")
        }
        PushError::Xml(XmlError::TooLarge) => {
            ApiError::payload_too_large(wechat_protocol::xml::MAX_BODY_BYTES)
        }
        PushError::Xml(XmlError::Declaration) => ApiError::new(
            ErrorCode::XmlDeclarationRefused,
            "DOCTYPE and ENTITY declarations are not accepted",
        ),
        PushError::Xml(XmlError::Malformed(detail)) => {
            ApiError::new(ErrorCode::MalformedXml, detail)
        }
        PushError::Crypto(err) => ApiError::new(ErrorCode::InvalidEncryption, err.to_string()),
        PushError::UnexpectedEncryption | PushError::MissingEncryption => {
            ApiError::new(ErrorCode::EncryptionModeMismatch, err.to_string())
        }
        PushError::MissingField(name) => {
            ApiError::new(ErrorCode::MissingField, format!("missing field {name}"))
        }
    }
}

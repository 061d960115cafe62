//! Template messages (模板消息) as WeChat answers them: `cgi-bin/message/template/send`.
//!
//! Request, answer and rules from the service-account document "Send template messages"
//! (developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage.html,
//! formerly doc/offiaccount/Message_Management/Template_Message_Interface.html): the body is
//! `{touser, template_id, url?, miniprogram?, client_msg_id?, data: {key: {value, color?}}}`, the
//! answer `{"errcode":0,"errmsg":"ok","msgid":200228332}` (also doraemonext/wechat-python-sdk
//! `tests/fixtures/message_template_send.json`). Error codes and their errmsg text are
//! the global return codes (developers.weixin.qq.com/doc/oplatform/Return_codes/
//! Return_code_descriptions_new.html, as binarywang/WxJava `WxOpenErrorMsgEnum` copies them).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::official_account::{TokenQuery, check_access_token, error, injected};
use crate::{Sandbox, lock};

/// How long WeChat remembers a `client_msg_id`: "对于同一个openid + client_msg_id, 只发送一条消息,
/// 10分钟有效,超过10分钟不保证效果" (the document's client_msg_id row).
const CLIENT_MSG_ID_SECS: i64 = 600;

/// The first msgid the sandbox hands out; WeChat's are plain integers (the documented example is
/// 200228332), so any increasing sequence will do.
const FIRST_MSGID: u64 = 2_000_000_001;

/// A template message WeChat accepted, as the sandbox recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub msgid: u64,
    pub touser: String,
    pub template_id: String,
    pub url: Option<String>,
    /// Each data key with its value (colours dropped: they only paint the message).
    pub data: BTreeMap<String, String>,
}

/// The template-message book of the account: what was sent, and the client_msg_ids seen.
#[derive(Default)]
pub(crate) struct TemplateBook {
    sent: Vec<TemplateMessage>,
    /// (openid, client_msg_id) → (msgid, when first sent, unix seconds).
    client_msg_ids: BTreeMap<(String, String), (u64, i64)>,
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new().route("/cgi-bin/message/template/send", post(send))
}

/// What a valid body asks for.
struct Request {
    touser: String,
    template_id: String,
    url: Option<String>,
    client_msg_id: Option<String>,
    data: BTreeMap<String, String>,
}

/// Reads the body, or None for anything that is not the documented shape: JSON with string
/// `touser` and `template_id` and a `data` object whose every member is an object with a `value`.
/// The document types `value` as "any" (`{ "key1": { "value": any } }`), so numbers and booleans
/// pass and are recorded as their JSON text; null, arrays and objects do not.
fn parse(body: &[u8]) -> Option<Request> {
    let input = serde_json::from_slice::<Value>(body).ok()?;
    let text = |name: &str| input.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut data = BTreeMap::new();
    for (key, item) in input.get("data")?.as_object()? {
        let value = match item.as_object()?.get("value")? {
            Value::String(text) => text.clone(),
            scalar @ (Value::Number(_) | Value::Bool(_)) => scalar.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => return None,
        };
        data.insert(key.clone(), value);
    }
    Some(Request {
        touser: text("touser")?,
        template_id: text("template_id")?,
        url: text("url"),
        client_msg_id: text("client_msg_id").filter(|id| !id.is_empty()),
        data,
    })
}

async fn send(
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
    // 47001 "data format error" (解析 JSON/XML 内容错误) is the global code for a body WeChat
    // cannot read; the document names no other code for a missing field, so the sandbox answers
    // every malformed body with it.
    let Some(request) = parse(&body) else {
        return error(47001, "data format error");
    };
    // 40037 "invalid template_id" (不合法的 template_id): an id the account has not added. Real
    // answers carry it so: `{"errcode":40037,"errmsg":"invalid template_id rid: …"}` (captured in
    // developers.weixin.qq.com community threads on template/send).
    if !sandbox.state.cfg.templates.contains(&request.template_id) {
        return error(40037, "invalid template_id");
    }
    // 43004 "require subscribe" (需要接收者关注): template messages go to followers only.
    if !sandbox.is_follower(&request.touser) {
        return error(43004, "require subscribe");
    }
    let msgid = sandbox.record_template_message(request);
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid })).into_response()
}

impl Sandbox {
    /// Every template message accepted so far, in the order they were sent.
    pub fn template_messages(&self) -> Vec<TemplateMessage> {
        lock(&self.state.accounts).templates.sent.clone()
    }

    /// Records an accepted message and returns its msgid. A client_msg_id the same follower used
    /// in the last 10 minutes sends nothing, as documented ("只发送一条消息"); the document does
    /// not say what the repeat is answered, so the sandbox answers success with the first send's
    /// msgid (a retry after a lost answer then reads as the send it repeats).
    fn record_template_message(&self, request: Request) -> u64 {
        let now = chrono::Utc::now().timestamp();
        let mut accounts = lock(&self.state.accounts);
        let book = &mut accounts.templates;
        let key = request.client_msg_id.map(|id| (request.touser.clone(), id));
        let repeat = key
            .as_ref()
            .and_then(|key| book.client_msg_ids.get(key))
            .filter(|(_, at)| now - at < CLIENT_MSG_ID_SECS);
        if let Some((msgid, _)) = repeat {
            return *msgid;
        }
        let msgid = FIRST_MSGID + book.sent.len() as u64;
        book.sent.push(TemplateMessage {
            msgid,
            touser: request.touser,
            template_id: request.template_id,
            url: request.url,
            data: request.data,
        });
        if let Some(key) = key {
            book.client_msg_ids.insert(key, (msgid, now));
        }
        self.state
            .template_messages_sent
            .fetch_add(1, Ordering::SeqCst);
        msgid
    }
}

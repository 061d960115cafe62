//! The sandbox's template messages (`cgi-bin/message/template/send`), driven over HTTP as a
//! merchant's server sends them, checked against the documented request and answer examples
//! (developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage.html and its
//! predecessor, mp.weixin.qq.com/wiki?t=resource/res_main&id=mp1433751277), answers captured from
//! WeChat, and the global return codes (developers.weixin.qq.com/doc/oplatform/Return_codes/
//! Return_code_descriptions_new.html, as binarywang/WxJava `WxOpenErrorMsgEnum` copies them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::routing::post;
use sandbox::{Faults, Sandbox, SandboxConfig, TemplateMessage};
use serde_json::{Value, json};

const SEND: &str = "/cgi-bin/message/template/send";
const TEMPLATE: &str = "sandbox-member-expiry-0001";

/// A documented exchange: the request body exactly as the source prints it, and the answer.
struct Row {
    name: &'static str,
    source: &'static str,
    request: &'static str,
    answer: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        name: "current_document",
        source: "api_sendtemplatemessage.html request and answer examples (also lenye/pmsg \
                 internal/im/weixin/offiaccount/message/template.go; answer: \
                 doraemonext/wechat-python-sdk tests/fixtures/message_template_send.json)",
        request: r##"{
           "touser":"OPENID",
           "template_id":"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
           "url":"http://weixin.qq.com/download",
           "miniprogram":{
             "appid":"xiaochengxuappid12345",
             "pagepath":"index?foo=bar"
           },
           "client_msg_id":"MSG_000001",
           "data":{
                   "keyword1":{
                       "value":"巧克力"
                   },
                   "keyword2": {
                       "value":"39.8元"
                   },
                   "keyword3": {
                       "value":"2014年9月22日"
                   }
           }
       }"##,
        answer: r##"{
           "errcode":0,
           "errmsg":"ok",
           "msgid":200228332
       }"##,
    },
    Row {
        name: "wiki_with_colours",
        source: "mp1433751277 (the wiki before the current document) request example, as \
                 cnblogs.com/weiapro/p/7731655.html quotes it: first/keynote/remark with colours, \
                 no client_msg_id",
        request: r##"{
           "touser":"OPENID",
           "template_id":"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
           "url":"http://weixin.qq.com/download",
           "miniprogram":{
             "appid":"xiaochengxuappid12345",
             "pagepath":"index?foo=bar"
           },
           "data":{
                   "first": {
                       "value":"恭喜你购买成功！",
                       "color":"#173177"
                   },
                   "keynote1":{
                       "value":"巧克力",
                       "color":"#173177"
                   },
                   "keynote2": {
                       "value":"39.8元",
                       "color":"#173177"
                   },
                   "keynote3": {
                       "value":"2014年9月22日",
                       "color":"#173177"
                   },
                   "remark":{
                       "value":"欢迎再次购买！",
                       "color":"#173177"
                   }
           }
       }"##,
        answer: r##"{"errcode":0,"errmsg":"ok","msgid":200228332}"##,
    },
];

/// A refusal captured from WeChat (developers.weixin.qq.com community thread "微信小程序模板消息
/// 发送偶现失败?(templateMessage.send返回40037)", posted from a template/send call).
const CAPTURED_40037: &str =
    r#"{"errcode":40037,"errmsg":"invalid template_id rid: 625d25ce-0db95788-7576ce7c"}"#;

struct Harness {
    sandbox: Sandbox,
    http: reqwest::Client,
    /// The account's server URL, for the sandbox's subscribe pushes (it answers "success").
    push_url: String,
}

async fn start(cfg: SandboxConfig) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_url = format!("http://{}/wechat", listener.local_addr().unwrap());
    let server = Router::new().route("/wechat", post(|| async { "success" }));
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });
    Harness {
        sandbox: Sandbox::start_local(cfg).await.unwrap(),
        http: reqwest::Client::new(),
        push_url,
    }
}

impl Harness {
    /// The account's token from `stable_token`, which hands out the same one while it is
    /// current (the classic endpoint would revoke the last one on every call).
    async fn token(&self) -> String {
        let cfg = self.sandbox.config();
        let answer: Value = self
            .http
            .post(format!("{}/cgi-bin/stable_token", self.sandbox.url()))
            .json(&json!({
                "grant_type": "client_credential",
                "appid": cfg.appid,
                "secret": cfg.secret,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// The user follows the account the way WeChat users do: by scanning a QR code.
    async fn follow(&self, openid: &str) {
        let token = self.token().await;
        let qr: Value = self
            .http
            .post(format!(
                "{}/cgi-bin/qrcode/create?access_token={token}",
                self.sandbox.url()
            ))
            .json(&json!({
                "expire_seconds": 60,
                "action_name": "QR_SCENE",
                "action_info": { "scene": { "scene_id": 7 } },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ticket = qr["ticket"].as_str().unwrap();
        let reply = self
            .sandbox
            .scan(&self.push_url, ticket, openid)
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }

    async fn send_raw(&self, token: Option<&str>, body: &str) -> Value {
        let url = match token {
            Some(token) => format!("{}{SEND}?access_token={token}", self.sandbox.url()),
            None => format!("{}{SEND}", self.sandbox.url()),
        };
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        // WeChat answers refusals with HTTP 200 too; only errcode tells them apart.
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn send(&self, token: &str, body: &Value) -> Value {
        self.send_raw(Some(token), &body.to_string()).await
    }

    async fn control_messages(&self) -> Vec<TemplateMessage> {
        self.http
            .get(format!("{}/_sandbox/template-messages", self.sandbox.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn message(touser: &str) -> Value {
    json!({
        "touser": touser,
        "template_id": TEMPLATE,
        "url": "https://xintu.example/member",
        "data": {
            "first": { "value": "您的会员即将到期", "color": "#173177" },
            "keyword1": { "value": "芯图相册会员" },
            "keyword2": { "value": "2025年7月1日" },
            "remark": { "value": "续费后积分不清零" },
        },
    })
}

/// A refusal: the code, and the documented errmsg followed by WeChat's request id.
fn assert_refused(answer: &Value, code: i64, errmsg: &str) {
    assert_eq!(answer["errcode"], code, "{answer}");
    let text = answer["errmsg"].as_str().unwrap();
    let rid = text
        .strip_prefix(&format!("{errmsg} rid: "))
        .unwrap_or_else(|| panic!("errmsg {text:?} is not {errmsg:?} + rid"));
    let groups: Vec<&str> = rid.split('-').collect();
    assert_eq!(groups.len(), 3, "{rid}");
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 8 && g.chars().all(|c| c.is_ascii_hexdigit())),
        "{rid}"
    );
    assert!(answer.get("msgid").is_none(), "{answer}");
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn a_follower_gets_the_message_with_the_documented_answer() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    let token = h.token().await;

    let answer = h.send(&token, &message("o_member_1")).await;

    let documented: Value = serde_json::from_str(ROWS[0].answer).unwrap();
    assert_eq!(keys(&answer), keys(&documented), "{answer}");
    assert_eq!(answer["errcode"], 0);
    assert_eq!(answer["errmsg"], "ok");
    let msgid = answer["msgid"].as_u64().unwrap();
    let expected = TemplateMessage {
        msgid,
        touser: "o_member_1".into(),
        template_id: TEMPLATE.into(),
        url: Some("https://xintu.example/member".into()),
        data: BTreeMap::from([
            ("first".into(), "您的会员即将到期".into()),
            ("keyword1".into(), "芯图相册会员".into()),
            ("keyword2".into(), "2025年7月1日".into()),
            ("remark".into(), "续费后积分不清零".into()),
        ]),
    };
    assert_eq!(h.sandbox.template_messages(), vec![expected.clone()]);
    assert_eq!(h.control_messages().await, vec![expected]);
    assert_eq!(h.sandbox.stats().template_messages_sent, 1);

    // Each send is a message of its own, with its own msgid.
    let again = h.send(&token, &message("o_member_1")).await;
    assert_ne!(again["msgid"].as_u64().unwrap(), msgid);
    assert_eq!(h.sandbox.template_messages().len(), 2);
    assert_eq!(h.sandbox.stats().template_messages_sent, 2);
}

#[tokio::test]
async fn documented_examples_are_answered_as_documented() {
    for row in ROWS {
        let request: Value = serde_json::from_str(row.request).unwrap();
        let documented: Value = serde_json::from_str(row.answer).unwrap();
        let template_id = request["template_id"].as_str().unwrap().to_owned();
        let h = start(SandboxConfig {
            templates: vec![template_id.clone()],
            ..SandboxConfig::default()
        })
        .await;
        h.follow("OPENID").await;
        let token = h.token().await;

        // The body goes out byte for byte as the source prints it.
        let answer = h.send_raw(Some(&token), row.request).await;

        let (name, source) = (row.name, row.source);
        assert_eq!(
            keys(&answer),
            keys(&documented),
            "{name} ({source}): {answer}"
        );
        assert_eq!(answer["errcode"], documented["errcode"], "{name}");
        assert_eq!(answer["errmsg"], documented["errmsg"], "{name}");
        assert!(answer["msgid"].is_u64(), "{name}: {answer}");
        let sent = h.sandbox.template_messages();
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(sent[0].msgid, answer["msgid"].as_u64().unwrap(), "{name}");
        assert_eq!(sent[0].touser, "OPENID", "{name}");
        assert_eq!(sent[0].template_id, template_id, "{name}");
        assert_eq!(
            sent[0].url.as_deref(),
            Some("http://weixin.qq.com/download")
        );
        let data: BTreeMap<String, String> = request["data"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["value"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(sent[0].data, data, "{name}");
    }
}

#[tokio::test]
async fn an_unknown_template_is_refused_as_wechat_refuses_it() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    let token = h.token().await;
    let mut body = message("o_member_1");
    body["template_id"] = json!("ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY");

    let answer = h.send(&token, &body).await;

    assert_refused(&answer, 40037, "invalid template_id");
    let captured: Value = serde_json::from_str(CAPTURED_40037).unwrap();
    assert_eq!(keys(&answer), keys(&captured));
    assert!(h.sandbox.template_messages().is_empty());
    assert_eq!(h.sandbox.stats().template_messages_sent, 0);
}

#[tokio::test]
async fn only_followers_receive_template_messages() {
    let h = start(SandboxConfig::default()).await;
    let token = h.token().await;

    let stranger = h.send(&token, &message("o_never_followed")).await;
    assert_refused(&stranger, 43004, "require subscribe");

    h.follow("o_leaving").await;
    let follower = h.send(&token, &message("o_leaving")).await;
    assert_eq!(follower["errcode"], 0, "{follower}");
    h.sandbox
        .unfollow_account(&h.push_url, "o_leaving")
        .await
        .unwrap();
    let gone = h.send(&token, &message("o_leaving")).await;
    assert_refused(&gone, 43004, "require subscribe");

    assert_eq!(h.sandbox.template_messages().len(), 1);
    assert_eq!(h.sandbox.stats().template_messages_sent, 1);
}

#[tokio::test]
async fn bodies_not_in_the_documented_shape_are_data_format_errors() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    let token = h.token().await;
    let good = message("o_member_1");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        edit(&mut body);
        body.to_string()
    };
    let bodies = [
        ("not JSON", "touser=o_member_1".to_owned()),
        ("empty", String::new()),
        ("an array", "[]".to_owned()),
        (
            "no touser",
            with(&|b| {
                b.as_object_mut().unwrap().remove("touser");
            }),
        ),
        ("touser a number", with(&|b| b["touser"] = json!(12345))),
        (
            "no template_id",
            with(&|b| {
                b.as_object_mut().unwrap().remove("template_id");
            }),
        ),
        (
            "no data",
            with(&|b| {
                b.as_object_mut().unwrap().remove("data");
            }),
        ),
        (
            "data an array",
            with(&|b| b["data"] = json!([{ "value": "x" }])),
        ),
        ("data a string", with(&|b| b["data"] = json!("first=x"))),
        ("item a string", with(&|b| b["data"]["first"] = json!("x"))),
        (
            "item without value",
            with(&|b| b["data"]["first"] = json!({ "color": "#173177" })),
        ),
        (
            "value null",
            with(&|b| b["data"]["first"] = json!({ "value": null })),
        ),
        (
            "value an object",
            with(&|b| b["data"]["first"] = json!({ "value": { "text": "x" } })),
        ),
    ];
    for (what, body) in bodies {
        let answer = h.send_raw(Some(&token), &body).await;
        assert_eq!(answer["errcode"], 47001, "{what}: {answer}");
        assert_refused(&answer, 47001, "data format error");
    }
    assert!(h.sandbox.template_messages().is_empty());

    // The document types `value` as any: a number is sent, recorded as its JSON text.
    let number = with(&|b| b["data"]["keyword1"] = json!({ "value": 39.8 }));
    let answer = h.send_raw(Some(&token), &number).await;
    assert_eq!(answer["errcode"], 0, "{answer}");
    assert_eq!(h.sandbox.template_messages()[0].data["keyword1"], "39.8");
}

#[tokio::test]
async fn access_tokens_are_checked_as_for_every_business_call() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    let body = message("o_member_1").to_string();

    let missing = h.send_raw(None, &body).await;
    assert_refused(&missing, 41001, "access_token missing");
    let unknown = h.send_raw(Some("sbx_not_a_token"), &body).await;
    assert_refused(&unknown, 40014, "invalid access_token");

    let old = h.token().await;
    h.sandbox.revoke_current_token();
    let revoked = h.send_raw(Some(&old), &body).await;
    assert_refused(
        &revoked,
        40001,
        "invalid credential, access_token is invalid or not latest",
    );
    // A newer token replaces the old one: the old one stays refused.
    let current = h.token().await;
    let replaced = h.send_raw(Some(&old), &body).await;
    assert_eq!(replaced["errcode"], 40001, "{replaced}");
    let fine = h.send_raw(Some(&current), &body).await;
    assert_eq!(fine["errcode"], 0, "{fine}");
    assert_eq!(h.sandbox.template_messages().len(), 1);

    // A token past its lifetime.
    let short = start(SandboxConfig {
        token_ttl_secs: 0,
        ..SandboxConfig::default()
    })
    .await;
    let expired_token = short.token().await;
    let expired = short.send_raw(Some(&expired_token), &body).await;
    assert_refused(&expired, 42001, "access_token expired");
}

#[tokio::test]
async fn injected_faults_answer_before_anything_is_sent() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    let token = h.token().await;
    let body = message("o_member_1");

    h.sandbox.set_faults(Faults {
        server_errors: 1,
        ..Faults::default()
    });
    assert_refused(&h.send(&token, &body).await, -1, "system error");
    assert_eq!(h.send(&token, &body).await["errcode"], 0);

    h.sandbox.set_faults(Faults {
        quota_exceeded: 1,
        ..Faults::default()
    });
    assert_refused(
        &h.send(&token, &body).await,
        45009,
        "reach max api daily quota limit",
    );
    assert_eq!(h.send(&token, &body).await["errcode"], 0);

    // The revoke fault takes the token away: it stays refused until a new one is fetched.
    h.sandbox.set_faults(Faults {
        revoke_token: 1,
        ..Faults::default()
    });
    let invalid = "invalid credential, access_token is invalid or not latest";
    assert_refused(&h.send(&token, &body).await, 40001, invalid);
    assert_refused(&h.send(&token, &body).await, 40001, invalid);
    let fresh = h.token().await;
    assert_eq!(h.send(&fresh, &body).await["errcode"], 0);

    assert_eq!(h.sandbox.template_messages().len(), 3);
    assert_eq!(h.sandbox.stats().template_messages_sent, 3);
}

#[tokio::test]
async fn a_repeated_client_msg_id_sends_one_message() {
    let h = start(SandboxConfig::default()).await;
    h.follow("o_member_1").await;
    h.follow("o_member_2").await;
    let token = h.token().await;
    let mut body = message("o_member_1");
    body["client_msg_id"] = json!("expiry-2025-07-01-o_member_1");

    let first = h.send(&token, &body).await;
    let repeat = h.send(&token, &body).await;

    // "对于同一个openid + client_msg_id, 只发送一条消息": one message; the repeat reads as it.
    assert_eq!(first["errcode"], 0, "{first}");
    assert_eq!(repeat, first);
    assert_eq!(h.sandbox.template_messages().len(), 1);
    assert_eq!(h.sandbox.stats().template_messages_sent, 1);

    // The id is per openid: another follower with the same id gets a message of their own.
    body["touser"] = json!("o_member_2");
    let other = h.send(&token, &body).await;
    assert_eq!(other["errcode"], 0, "{other}");
    assert_ne!(other["msgid"], first["msgid"]);

    // Without a client_msg_id (or with an empty one), every send is a message.
    let mut plain = message("o_member_1");
    plain["client_msg_id"] = json!("");
    h.send(&token, &plain).await;
    h.send(&token, &plain).await;
    assert_eq!(h.sandbox.template_messages().len(), 4);
    assert_eq!(h.sandbox.stats().template_messages_sent, 4);
}

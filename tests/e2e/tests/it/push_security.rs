//! Bad pushes get a clear error and change nothing.

use e2e::{Options, System};

async fn post_raw(
    system: &System,
    query: &[(String, String)],
    body: String,
) -> (u16, serde_json::Value) {
    let response = system
        .http
        .post(system.push_url())
        .query(query)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn assert_nothing_written(system: &System) {
    let snapshot = system.snapshot("o_attacker").await;
    assert_eq!(snapshot.users, 0);
    assert_eq!(snapshot.events, 0);
    let pool = system.db.primary().await;
    let bound: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM client_bindings WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(bound, 0);
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("client-sec").await;
    let scene = qr.scene_id;
    let push = system.sandbox.event_push(
        "o_attacker",
        "subscribe",
        &format!("qrscene_{scene}"),
        "",
        1,
    );

    let mut forged = push.query.clone();
    forged[0].1 = "0".repeat(40);
    let (status, body) = post_raw(&system, &forged, push.body.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "invalid_signature");

    let unsigned: Vec<_> = push
        .query
        .iter()
        .filter(|(k, _)| k != "signature")
        .cloned()
        .collect();
    let (status, _) = post_raw(&system, &unsigned, push.body.clone()).await;
    assert_eq!(status, 403);

    // A valid signature does not cover a body swapped in transit only in safe mode; in plain
    // mode WeChat signs the query alone, so at least the timestamp must be the signed one.
    let mut shifted = push.query.clone();
    shifted[1].1 = "1".to_owned();
    let (status, _) = post_raw(&system, &shifted, push.body.clone()).await;
    assert_eq!(status, 403);
    assert_nothing_written(&system).await;
}

#[tokio::test]
async fn doctype_entities_and_malformed_xml_are_refused() {
    let system = System::start(Options::membership_flows()).await;
    let signed = system.sandbox.sign_push("", "o_attacker").query;
    let cases = [
        (
            r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><ToUserName>gh</ToUserName><FromUserName>&x;</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>"#.to_owned(),
            400,
            "xml_declaration_refused",
        ),
        (
            r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">]><xml><FromUserName>&lol1;</FromUserName></xml>"#.to_owned(),
            400,
            "xml_declaration_refused",
        ),
        ("<xml><FromUserName>o_attacker</FromUserName>".to_owned(), 400, "malformed_xml"),
        (
            "<xml><ToUserName>gh</ToUserName><FromUserName>o_attacker</FromUserName><MsgType>event</MsgType><Event>subscribe</Event></xml>".to_owned(),
            400,
            "missing_field",
        ),
        (format!("<xml><A>{}</A></xml>", "x".repeat(70 * 1024)), 413, "payload_too_large"),
    ];
    for (body, expected_status, expected_code) in cases {
        let (status, answer) = post_raw(&system, &signed, body).await;
        assert_eq!(status, expected_status, "{answer}");
        assert_eq!(answer["error"]["code"], expected_code);
    }
    assert_nothing_written(&system).await;
}

#[tokio::test]
async fn unknown_events_and_messages_are_acknowledged_and_ignored() {
    let system = System::start(Options::membership_flows()).await;
    let click = system
        .sandbox
        .event_push("o_attacker", "CLICK", "MENU_1", "", 5);
    let reply = system
        .sandbox
        .deliver(&system.push_url(), &click)
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "success"));
    let text = "<xml><ToUserName><![CDATA[gh_5a1db0x00001]]></ToUserName><FromUserName><![CDATA[o_attacker]]></FromUserName><CreateTime>6</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>";
    let push = system.sandbox.sign_push(text, "o_attacker");
    let reply = system
        .sandbox
        .deliver(&system.push_url(), &push)
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "success"));
    assert_nothing_written(&system).await;
}

#[tokio::test]
async fn url_check_echoes_only_with_a_valid_signature() {
    let system = System::start(Options::membership_flows()).await;
    let mut query = system.sandbox.sign_push("", "").query;
    query.retain(|(k, _)| k != "openid");
    query.push(("echostr".into(), "4375120948345356249".into()));
    let response = system
        .http
        .get(system.push_url())
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "4375120948345356249");
    query[0].1 = "f".repeat(40);
    let response = system
        .http
        .get(system.push_url())
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn safe_mode_refuses_a_tampered_ciphertext_or_a_plain_push() {
    let system = System::start(Options {
        safe_mode: true,
        ..Options::membership_flows()
    })
    .await;
    let push = system
        .sandbox
        .event_push("o_attacker", "subscribe", "", "", 7);
    // Flip one character of the ciphertext: msg_signature no longer matches.
    let tampered = push.body.replacen("<![CDATA[", "<![CDATA[A", 2);
    let (status, body) = post_raw(&system, &push.query, tampered).await;
    assert_eq!(status, 403, "{body}");
    // A plaintext push with a valid URL signature is refused in safe mode.
    let plain: Vec<_> = push
        .query
        .iter()
        .filter(|(k, _)| k != "encrypt_type" && k != "msg_signature")
        .cloned()
        .collect();
    let document = "<xml><ToUserName>gh</ToUserName><FromUserName>o_attacker</FromUserName><CreateTime>7</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>";
    let (status, body) = post_raw(&system, &plain, document.to_owned()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "encryption_mode_mismatch");
    assert_nothing_written(&system).await;
}

/// The query of `push` with its timestamp moved by `seconds` and signed again, as a push sent
/// that long ago (or ahead) would be.
fn shifted(system: &System, push: &sandbox::user::Push, seconds: i64) -> Vec<(String, String)> {
    let mut query = push.query.clone();
    let timestamp = (chrono::Utc::now().timestamp() + seconds).to_string();
    let nonce = query.iter().find(|(k, _)| k == "nonce").unwrap().1.clone();
    let token = system.sandbox.config().push_token.clone();
    let signature = wechat_protocol::sign::sha1_signature(&[&token, &timestamp, &nonce]);
    for (key, value) in &mut query {
        match key.as_str() {
            "timestamp" => *value = timestamp.clone(),
            "signature" => *value = signature.clone(),
            _ => {}
        }
    }
    query
}

/// In plain mode a push's signature covers its query only: a captured one must not carry another
/// body, a stale one must not be accepted at all, and WeChat's own retry of a push (same query,
/// same body) changes nothing, on any gateway instance.
#[tokio::test]
async fn stale_and_replayed_pushes_are_refused_across_instances() {
    let system = System::start(Options {
        gateways: 2,
        ..Options::membership_flows()
    })
    .await;
    let victim = system.create_qrcode("client-victim").await;
    let scene = victim.scene_id;
    let ticket = victim.ticket.as_str();

    // Signed, but sent ten minutes ago (or ten minutes ahead): refused, nothing written.
    let push = system.sandbox.event_push(
        "o_attacker",
        "subscribe",
        &format!("qrscene_{scene}"),
        ticket,
        1,
    );
    for seconds in [-600, 600] {
        let (status, body) = post_raw(
            &system,
            &shifted(&system, &push, seconds),
            push.body.clone(),
        )
        .await;
        assert_eq!(status, 403, "{seconds}: {body}");
        assert_eq!(body["error"]["code"], "stale_push");
    }
    assert_nothing_written(&system).await;

    // A genuine push (the user's scan of another QR code) is applied once.
    let own = system.create_qrcode("client-own").await;
    let genuine = system.sandbox.event_push(
        "o_user",
        "subscribe",
        &format!("qrscene_{}", own.scene_id),
        own.ticket.as_str(),
        2,
    );
    let (status, _) = post_raw(&system, &genuine.query, genuine.body.clone()).await;
    assert_eq!(status, 200);
    // WeChat sends it again to the other instance: acknowledged, not applied twice.
    let retry = system
        .http
        .post(format!(
            "{}/api/v1/auth/wechat/verify",
            system.gateway_urls[1]
        ))
        .query(&genuine.query)
        .body(genuine.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.text().await.unwrap(), "success");
    assert_eq!(system.snapshot("o_user").await.ledger_rows, 1);

    // The captured query with the attacker's body (binding the victim's QR code to them):
    // refused at either instance.
    for instance in 0..2 {
        let response = system
            .http
            .post(format!(
                "{}/api/v1/auth/wechat/verify",
                system.gateway_urls[instance]
            ))
            .query(&genuine.query)
            .body(push.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "instance {instance}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "replayed_push");
    }
    let victim_view = system
        .binding("client-victim", victim.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(victim_view.status, "pending");
    let attacker = system.snapshot("o_attacker").await;
    assert_eq!(
        (attacker.remaining_credits, attacker.users),
        (None, 1),
        "only o_user exists"
    );
}

/// WeChat puts the QR code's ticket in every scan event: a scene without one binds nothing.
#[tokio::test]
async fn a_scan_event_without_its_ticket_binds_nothing() {
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("client-no-ticket").await;
    let push = system.sandbox.event_push(
        "o_ticketless",
        "subscribe",
        &format!("qrscene_{}", qr.scene_id),
        "",
        3,
    );
    let reply = system
        .sandbox
        .deliver(&system.push_url(), &push)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let view = system
        .binding("client-no-ticket", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(view.status, "pending");
}

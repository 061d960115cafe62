//! A bound app belongs to its token: a stranger who knows the client id cannot reset it, the app
//! can sign itself out, and a rotated or revoked token stops working at once, even while the
//! replica lags.

use e2e::api::refusal;
use e2e::{Options, System};
use platform::testing::Replica;

/// Binds `client_id` to `openid` and returns the client's token.
async fn bound(system: &System, client_id: &str, openid: &str) -> String {
    let qr = system.create_qrcode(client_id).await;
    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), openid)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    qr.client_token.clone()
}

async fn qrcode(system: &System, client_id: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": client_id }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn location_status(system: &System, token: &str) -> u16 {
    system
        .http
        .get(format!("{}/api/v1/location", system.gateway()))
        .query(&[("lat", "39.9087"), ("lng", "116.3975")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_stranger_cannot_reset_a_bound_client() {
    let system = System::start(Options::default()).await;
    let token = bound(&system, "pc-owned", "o_owner").await;
    for presented in [None, Some("ct_not-the-token")] {
        let (status, body) = qrcode(&system, "pc-owned", presented).await;
        assert_eq!(status, 409, "{presented:?}: {body}");
        assert_eq!(body["error"]["code"], "client_bound");
    }
    // Nothing changed: the app is still bound and its token still works.
    let view = system.binding("pc-owned", &token).await.expect("a binding");
    assert_eq!(view.status, "completed");
    assert_eq!(location_status(&system, &token).await, 200);
    // The app itself may refresh with its token (to bind another WeChat user).
    let (status, fresh) = qrcode(&system, "pc-owned", Some(&token)).await;
    assert_eq!(status, 200, "{fresh}");
    assert_ne!(fresh["client_token"], token.as_str());
}

#[tokio::test]
async fn a_rotated_or_revoked_token_stops_at_once_while_the_replica_lags() {
    let system = System::start(Options {
        replica: Replica::Lagging,
        ..Options::default()
    })
    .await;
    let token = bound(&system, "pc-rotating", "o_rotating").await;
    let other = bound(&system, "pc-leaving", "o_leaving").await;
    system.db.wait_for_replica().await;
    assert_eq!(location_status(&system, &token).await, 200);
    assert_eq!(location_status(&system, &other).await, 200);
    // From here the replica still shows both clients bound with their old tokens.
    system.db.pause_replica().await;

    // Rotation: the app asks for a new QR code with its token; the old token is dead at once.
    let (status, fresh) = qrcode(&system, "pc-rotating", Some(&token)).await;
    assert_eq!(status, 200, "{fresh}");
    let rotated = location_status(&system, &token).await;

    // Sign-out: the token is dead at once, and the client needs no token for its next QR code.
    let signed_out = system
        .http
        .post(format!("{}/api/v1/auth/wechat/unbind", system.gateway()))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    let signed_out_status = signed_out.status().as_u16();
    let signed_out_body: serde_json::Value = signed_out.json().await.unwrap();
    let revoked = location_status(&system, &other).await;
    let poll = system.binding("pc-leaving", &other).await;
    let again = system
        .http
        .post(format!("{}/api/v1/auth/wechat/unbind", system.gateway()))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    system.db.resume_replica().await;

    assert_eq!(rotated, 401, "the rotated token still worked");
    assert_eq!(signed_out_status, 200, "{signed_out_body}");
    assert_eq!(signed_out_body["client_id"], "pc-leaving");
    assert_eq!(signed_out_body["status"], "signed_out");
    assert_eq!(revoked, 401, "the revoked token still worked");
    assert_eq!(refusal(poll).status, 401);
    assert_eq!(again, 401, "a revoked token cannot sign out twice");
    let (status, _) = qrcode(&system, "pc-leaving", None).await;
    assert_eq!(status, 200, "a signed-out client is no longer bound");
}

/// With a replica that keeps up (a few milliseconds behind), a token read from the replica just
/// before it applied the sign-out must not count: refused at once, every time.
#[tokio::test]
async fn a_signed_out_token_is_refused_at_once_while_the_replica_catches_up() {
    let system = System::start(Options::default()).await;
    let mut still_worked = Vec::new();
    for round in 0..60 {
        let client_id = format!("pc-churn-{round}");
        let token = bound(&system, &client_id, "o_churn").await;
        assert_eq!(location_status(&system, &token).await, 200);
        let response = system
            .http
            .post(format!("{}/api/v1/auth/wechat/unbind", system.gateway()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        if location_status(&system, &token).await != 401 {
            still_worked.push(round);
        }
    }
    assert!(
        still_worked.is_empty(),
        "signed-out tokens still worked in rounds {still_worked:?}"
    );
}

//! The binding flow (docs/architecture.md, "Binding rules"): QR code → scan → binding completed →
//! credits.

use e2e::api::{Error, refusal};
use e2e::{Options, System};
use platform::testing::Replica;

async fn bind(
    system: &System,
    client_id: &str,
    openid: &str,
) -> (e2e::api::types::QrCodeOut, sandbox::user::PushReply) {
    let qr = system.create_qrcode(client_id).await;
    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), openid)
        .await
        .expect("scan");
    (qr, reply)
}

#[tokio::test]
async fn new_follower_binds_and_gets_ten_credits() {
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("pc-install-1").await;
    assert!(qr.scene_id > 0);
    assert!(
        qr.qrcode_image_url
            .as_str()
            .contains("/cgi-bin/showqrcode?ticket=")
    );
    assert_eq!(qr.expire_seconds, 600);
    let token = qr.client_token.as_str();

    let pending = system
        .binding("pc-install-1", token)
        .await
        .expect("a binding");
    assert_eq!(pending.status, "pending");
    assert_eq!(pending.openid, None);

    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_new_user")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let message = reply.message.as_ref().expect("a passive reply");
    assert_eq!(message["ToUserName"], "o_new_user");
    assert_eq!(message["MsgType"], "text");
    assert!(reply.content().unwrap().contains("绑定成功"), "{reply:?}");

    let done = system
        .binding("pc-install-1", token)
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    assert_eq!(done.openid.as_deref(), Some("o_new_user"));

    let snapshot = system.snapshot("o_new_user").await;
    assert_eq!(snapshot.remaining_credits, Some(10));
    assert_eq!(snapshot.ledger_rows, 1);
    assert_eq!(snapshot.ledger_sum, Some(10));
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn safe_mode_binds_with_encrypted_push_and_reply() {
    let system = System::start(Options {
        safe_mode: true,
        ..Options::membership_flows()
    })
    .await;
    let (qr, reply) = bind(&system, "mobile-safe-1", "o_safe_user").await;
    assert_eq!(reply.status, 200);
    // The raw body is the encrypted envelope; the sandbox verified and decrypted it.
    assert!(reply.body.contains("<Encrypt>") && reply.body.contains("<MsgSignature>"));
    assert!(reply.content().unwrap().contains("绑定成功"));
    let done = system
        .binding("mobile-safe-1", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    assert_eq!(
        system.snapshot("o_safe_user").await.remaining_credits,
        Some(10)
    );
}

#[tokio::test]
async fn returning_follower_rebinds_without_new_credits() {
    let system = System::start(Options::membership_flows()).await;
    bind(&system, "client-a", "o_returning").await;
    system
        .sandbox
        .unfollow_account(&system.push_url(), "o_returning")
        .await
        .unwrap();
    let pool = system.db.primary().await;
    let (subscribed, before): (i8, i64) = sqlx::query_as(
        "SELECT subscribed, CAST(UNIX_TIMESTAMP(last_active_at) * 1000 AS SIGNED) FROM wechat_users WHERE openid = 'o_returning'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(subscribed, 0, "unsubscribe marks the user unfollowed");
    assert_eq!(
        system.snapshot("o_returning").await.remaining_credits,
        Some(10),
        "credits are kept"
    );

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (qr, reply) = bind(&system, "client-b", "o_returning").await;
    assert!(reply.content().unwrap().contains("绑定成功"));
    let done = system
        .binding("client-b", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    let (subscribed, after): (i8, i64) = sqlx::query_as(
        "SELECT subscribed, CAST(UNIX_TIMESTAMP(last_active_at) * 1000 AS SIGNED) FROM wechat_users WHERE openid = 'o_returning'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(subscribed, 1);
    assert!(after > before, "last_active_at moves on a returning follow");
    let snapshot = system.snapshot("o_returning").await;
    assert_eq!(snapshot.users, 1);
    assert_eq!(
        snapshot.remaining_credits,
        Some(10),
        "no second welcome bonus"
    );
    assert_eq!(snapshot.ledger_rows, 1);

    // Already following: a scan of a new client's QR code sends SCAN, which binds too.
    let (qr, reply) = bind(&system, "client-c", "o_returning").await;
    assert_eq!(reply.status, 200);
    let done = system
        .binding("client-c", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    assert_eq!(
        system.snapshot("o_returning").await.remaining_credits,
        Some(10)
    );
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn the_same_event_delivered_three_times_at_once_binds_once() {
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("client-dup").await;
    let scene = qr.scene_id;
    let push = system.sandbox.event_push(
        "o_dup",
        "subscribe",
        &format!("qrscene_{scene}"),
        qr.ticket.as_str(),
        1_764_000_000,
    );
    let url = system.push_url();
    let deliveries = (0..3).map(|_| system.sandbox.deliver(&url, &push));
    let replies = futures::future::join_all(deliveries).await;
    for reply in replies {
        assert_eq!(reply.unwrap().status, 200);
    }
    let snapshot = system.snapshot("o_dup").await;
    assert_eq!(snapshot.users, 1);
    assert_eq!(snapshot.remaining_credits, Some(10));
    assert_eq!(snapshot.ledger_rows, 1);
    assert_eq!(
        snapshot.events, 1,
        "one applied event row for three deliveries"
    );
    let done = system
        .binding("client-dup", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn expired_and_unknown_scenes_bind_nothing() {
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("client-late").await;
    let token = qr.client_token.as_str();
    let ticket = qr.ticket.as_str();
    // The binding row expires (as if ten minutes had passed); WeChat still delivers the event.
    let pool = system.db.primary().await;
    sqlx::query("UPDATE client_bindings SET expire_at = NOW(3) - INTERVAL 1 SECOND WHERE client_id = 'client-late'")
        .execute(&pool)
        .await
        .unwrap();
    // Real expiry is the clock passing a time every copy holds; this write stands in for it, so
    // the replica must hold it too before the status read (which may be served there).
    system.db.wait_for_replica().await;
    let scene = qr.scene_id;
    let push = system.sandbox.event_push(
        "o_late",
        "subscribe",
        &format!("qrscene_{scene}"),
        ticket,
        1_764_000_100,
    );
    let reply = system
        .sandbox
        .deliver(&system.push_url(), &push)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.content().unwrap().contains("二维码已过期"),
        "{reply:?}"
    );
    let view = system
        .binding("client-late", token)
        .await
        .expect("a binding");
    assert_eq!(view.status, "expired");
    // The follow itself counts: the user exists with the welcome credits, unbound.
    assert_eq!(system.snapshot("o_late").await.remaining_credits, Some(10));

    let push = system
        .sandbox
        .event_push("o_other", "SCAN", "987654", "", 1_764_000_200);
    let reply = system
        .sandbox
        .deliver(&system.push_url(), &push)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let bound: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM client_bindings WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(bound, 0);
}

#[tokio::test]
async fn binding_status_needs_the_clients_own_token() {
    let system = System::start(Options::membership_flows()).await;
    let a = system.create_qrcode("client-token-a").await;
    let b = system.create_qrcode("client-token-b").await;
    let outcome = system
        .binding("client-token-a", b.client_token.as_str())
        .await;
    let Err(Error::ErrorResponse(refused)) = outcome else {
        panic!("another client's token was not refused: {outcome:?}");
    };
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.error.code, "invalid_client_token");
    assert!(!refused.error.request_id.is_empty());
    let response = system
        .http
        .get(format!(
            "{}/api/v1/auth/wechat/binding?client_id=client-token-a",
            system.gateway()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A new QR code for the same client replaces its token: the old one stops working.
    let again = system.create_qrcode("client-token-a").await;
    assert_eq!(
        again.scene_id, a.scene_id,
        "the binding row is refreshed, not duplicated"
    );
    let replaced = system
        .binding("client-token-a", a.client_token.as_str())
        .await;
    assert_eq!(refusal(replaced).status, 401);
    system
        .binding("client-token-a", again.client_token.as_str())
        .await
        .expect("the new token reads the binding");
}

#[tokio::test]
async fn invalid_client_ids_are_refused() {
    let system = System::start(Options::membership_flows()).await;
    for body in [
        serde_json::json!({ "client_id": "" }),
        serde_json::json!({ "client_id": "has space" }),
        serde_json::json!({ "client_id": "x".repeat(65) }),
    ] {
        let response = system
            .http
            .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_argument");
    }
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(system.sandbox.stats().qrcode_creates, 0);
}

#[tokio::test]
async fn qrcode_creation_is_rate_limited_per_client() {
    let system = System::start(Options {
        qrcode_per_client_per_minute: 2,
        ..Options::membership_flows()
    })
    .await;
    system.create_qrcode("client-busy").await;
    system.create_qrcode("client-busy").await;
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": "client-busy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another client is not affected.
    system.create_qrcode("client-calm").await;
}

#[tokio::test]
async fn completed_shows_on_the_first_poll_while_the_replica_lags() {
    let system = System::start(Options {
        replica: Replica::Lagging,
        ..Options::membership_flows()
    })
    .await;
    let qr = system.create_qrcode("client-lag").await;
    let token = qr.client_token.as_str();
    system.db.wait_for_replica().await;
    system.db.pause_replica().await;
    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_lag")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let view = system.binding("client-lag", token).await;
    // Prove the replica really is stale before checking what the API answered.
    let stale: String = {
        let replica =
            sqlx::MySqlPool::connect(secrecy::ExposeSecret::expose_secret(&system.db.replica_url))
                .await
                .unwrap();
        let status = sqlx::query_scalar(
            "SELECT CAST(status AS CHAR) FROM client_bindings WHERE client_id = 'client-lag'",
        )
        .fetch_one(&replica)
        .await
        .unwrap();
        replica.close().await;
        status
    };
    system.db.resume_replica().await;
    assert_eq!(stale, "pending", "the replica should still be behind");
    let view = view.expect("a binding");
    assert_eq!(view.status, "completed");
    assert_eq!(view.openid.as_deref(), Some("o_lag"));
}

/// The follow (and its welcome credits) written by a scan shows on the member page at once,
/// though the replica has not applied it: the push records the user's freshness, not only the
/// client's. (Seen flaking in the edge test through lighttpd before the fix.)
#[tokio::test]
async fn the_member_page_shows_a_new_follow_at_once_while_the_replica_lags() {
    let system = System::start(Options {
        replica: Replica::Lagging,
        ..Options::membership_flows()
    })
    .await;
    let qr = system.create_qrcode("client-follow-lag").await;
    system.db.wait_for_replica().await;
    system.db.pause_replica().await;
    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_follow_lag")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let profile = system.sign_in("o_follow_lag").await.profile().await;
    let stale: i64 = {
        let replica =
            sqlx::MySqlPool::connect(secrecy::ExposeSecret::expose_secret(&system.db.replica_url))
                .await
                .unwrap();
        let followers = sqlx::query_scalar(
            "SELECT COUNT(*) FROM wechat_users WHERE openid = 'o_follow_lag' AND subscribed = 1",
        )
        .fetch_one(&replica)
        .await
        .unwrap();
        replica.close().await;
        followers
    };
    system.db.resume_replica().await;
    assert_eq!(stale, 0, "the replica should still be behind");
    assert!(profile.following, "{profile:?}");
    assert_eq!(profile.remaining_credits, 10, "{profile:?}");
}

//! The official-account access token: shared by every instance, refetched once when revoked.

use e2e::{Options, System};

#[tokio::test]
async fn two_gateways_and_two_memberships_share_one_token() {
    let system = System::start(Options {
        memberships: 2,
        gateways: 2,
        ..Options::membership_flows()
    })
    .await;
    let calls = (0..12).map(|i| {
        let gateway = system.gateway_urls[i % 2].clone();
        let system = &system;
        async move {
            system
                .create_qrcode_via(&gateway, &format!("shared-{i}"))
                .await
        }
    });
    let codes = futures::future::join_all(calls).await;
    assert_eq!(codes.len(), 12);
    let stats = system.sandbox.stats();
    assert_eq!(stats.qrcode_creates, 12);
    assert_eq!(
        stats.token_fetches, 1,
        "one token fetch for every instance together"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refetched_once_and_the_call_succeeds() {
    let system = System::start(Options::membership_flows()).await;
    system.create_qrcode("client-rev-1").await;
    assert_eq!(system.sandbox.stats().token_fetches, 1);
    system.sandbox.set_faults(sandbox::Faults {
        revoke_token: 1,
        ..Default::default()
    });
    let qr = system.create_qrcode("client-rev-2").await;
    assert!(qr.ticket.as_str().starts_with("gQ"));
    let stats = system.sandbox.stats();
    assert_eq!(stats.token_fetches, 2, "exactly one refetch");
    assert_eq!(stats.qrcode_creates, 2);
    // The fresh token is cached for the next call.
    system.create_qrcode("client-rev-3").await;
    assert_eq!(system.sandbox.stats().token_fetches, 2);
}

#[tokio::test]
async fn provider_failures_answer_502_and_transient_ones_are_retried() {
    let system = System::start(Options::membership_flows()).await;
    system.create_qrcode("client-fault-0").await;
    // One "system busy" (errcode -1) from WeChat: retried once, the user never sees it.
    system.sandbox.set_faults(sandbox::Faults {
        server_errors: 1,
        ..Default::default()
    });
    system.create_qrcode("client-fault-1").await;
    // Quota reached: a clear 502, not retried.
    system.sandbox.set_faults(sandbox::Faults {
        quota_exceeded: 1,
        ..Default::default()
    });
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": "client-fault-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wechat_quota_exceeded");
    // Revoked twice in a row: one refetch only, then the error is reported.
    system.sandbox.set_faults(sandbox::Faults {
        revoke_token: 2,
        ..Default::default()
    });
    let before = system.sandbox.stats().token_fetches;
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": "client-fault-3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        system.sandbox.stats().token_fetches,
        before + 1,
        "no refetch loop"
    );
}

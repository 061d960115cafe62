//! `GET /api/v1/account`: a bound app reads its user's credits and membership, as the primary
//! database has them, and nobody else's.

use e2e::{Options, System};
use proto::membership::v1 as pb;
use serde_json::Value;

async fn balance(system: &System, user_id: i64) -> pb::Balance {
    system
        .credit_client()
        .get_balance(pb::GetBalanceRequest { user_id })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_bound_app_reads_its_credits_holds_and_membership() {
    let system = System::start(Options::default()).await;
    let qr = system.create_qrcode("account-pc").await;
    let token = qr["client_token"].as_str().unwrap().to_owned();
    // The token is the client's, but nobody has scanned yet: there is no account to show.
    let (status, body) = system.account(&token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("client_not_bound"))
    );

    let reply = system
        .sandbox
        .scan(
            &system.push_url(),
            qr["ticket"].as_str().unwrap(),
            "o_account",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let user_id = system.user_id("o_account").await;
    let (status, fresh) = system.account(&token).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["client_id"], "account-pc");
    assert_eq!(fresh["openid"], "o_account");
    let welcome = balance(&system, user_id).await;
    assert!(welcome.remaining > 0, "a new user gets welcome credits");
    assert_eq!(fresh["available_credits"], welcome.available);
    assert_eq!(fresh["remaining_credits"], welcome.remaining);
    assert_eq!(fresh["total_credits"], welcome.total);
    assert_eq!(fresh["held_credits"], 0);
    assert_eq!(fresh["is_member"], false);
    assert!(fresh.get("member_expire_at").is_none(), "{fresh}");

    // Work in progress holds 2 credits: still remaining, no longer available.
    system
        .credit_client()
        .reserve(pb::ReserveRequest {
            user_id,
            amount: 2,
            reference: "account-task".into(),
            ttl_seconds: 600,
        })
        .await
        .unwrap();
    let (_, holding) = system.account(&token).await;
    assert_eq!(holding["held_credits"], 2);
    assert_eq!(holding["remaining_credits"], welcome.remaining);
    assert_eq!(holding["available_credits"], welcome.remaining - 2);

    // Membership bought on the member page shows at once, bonus credits included.
    let browser = system.sign_in("o_account").await;
    let bonus = browser.profile().await["prices"]["member_bonus_credits"]
        .as_i64()
        .unwrap();
    let created = browser
        .create_order(serde_json::json!({ "order_type": "member" }))
        .await;
    let order_no = created["order"]["order_no"].as_str().unwrap().to_owned();
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    let (_, member) = system.account(&token).await;
    assert_eq!(member["is_member"], true, "{member}");
    assert_eq!(member["remaining_credits"], welcome.remaining + bonus);
    assert_eq!(member["available_credits"], welcome.remaining + bonus - 2);
    let expires = member["member_expire_at"].as_str().unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    assert!(expires > chrono::Utc::now(), "{member}");
}

#[tokio::test]
async fn the_account_answers_only_its_own_token() {
    let system = System::start(Options::default()).await;
    let response = system
        .http
        .get(format!("{}/api/v1/account", system.gateway()))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_client_token"))
    );
    let (status, body) = system.account("ct_not_a_token").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_client_token"))
    );

    // Two apps of two users each see their own user.
    let first = system.bind_client("account-first", "o_account_first").await;
    let second = system
        .bind_client("account-second", "o_account_second")
        .await;
    assert_eq!(system.account(&first).await.1["openid"], "o_account_first");
    assert_eq!(
        system.account(&second).await.1["openid"],
        "o_account_second"
    );

    // Signed out, the token no longer reads the account.
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/unbind", system.gateway()))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = system.account(&first).await;
    assert_eq!(status, 401, "{body}");
}

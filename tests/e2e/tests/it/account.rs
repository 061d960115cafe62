//! `GET /api/v1/account`: a bound app reads its user's credits and membership, as the primary
//! database has them, and nobody else's.

use e2e::api::refusal;
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
    let system = System::start(Options::membership_flows()).await;
    let qr = system.create_qrcode("account-pc").await;
    let token = qr.client_token.clone();
    // The token is the client's, but nobody has scanned yet: there is no account to show.
    assert_eq!(
        refusal(system.account(&token).await).status_and_code(),
        (403, "client_not_bound")
    );

    let reply = system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_account")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let user_id = system.user_id("o_account").await;
    let fresh = system.account(&token).await.expect("the account");
    assert_eq!(fresh.client_id, "account-pc");
    assert_eq!(fresh.openid, "o_account");
    let welcome = balance(&system, user_id).await;
    assert!(welcome.remaining > 0, "a new user gets welcome credits");
    assert_eq!(fresh.available_credits, welcome.available);
    assert_eq!(fresh.remaining_credits, welcome.remaining);
    assert_eq!(fresh.total_credits, welcome.total);
    assert_eq!(fresh.held_credits, 0);
    assert!(!fresh.is_member);
    assert_eq!(fresh.member_expire_at, None);

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
    let holding = system.account(&token).await.expect("the account");
    assert_eq!(holding.held_credits, 2);
    assert_eq!(holding.remaining_credits, welcome.remaining);
    assert_eq!(holding.available_credits, welcome.remaining - 2);

    // Membership bought on the member page shows at once, bonus credits included.
    let browser = system.sign_in("o_account").await;
    let bonus = browser.profile().await.prices.member_bonus_credits;
    let created = browser.create_order(e2e::api::member_order()).await;
    let order_no = created.order.order_no.clone();
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    let member = system.account(&token).await.expect("the account");
    assert!(member.is_member, "{member:?}");
    assert_eq!(member.remaining_credits, welcome.remaining + bonus);
    assert_eq!(member.available_credits, welcome.remaining + bonus - 2);
    let expires = member.member_expire_at.as_deref().expect("an expiry");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    assert!(expires > chrono::Utc::now(), "{member:?}");
}

#[tokio::test]
async fn the_account_answers_only_its_own_token() {
    let system = System::start(Options::membership_flows()).await;
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
    assert_eq!(
        refusal(system.account("ct_not_a_token").await).status_and_code(),
        (401, "invalid_client_token")
    );

    // Two apps of two users each see their own user.
    let first = system.bind_client("account-first", "o_account_first").await;
    let second = system
        .bind_client("account-second", "o_account_second")
        .await;
    assert_eq!(
        system.account(&first).await.unwrap().openid,
        "o_account_first"
    );
    assert_eq!(
        system.account(&second).await.unwrap().openid,
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
    assert_eq!(
        refusal(system.account(&first).await).status_and_code(),
        (401, "invalid_client_token")
    );
}

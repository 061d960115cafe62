//! Membership and credit purchases through the gateway (docs/architecture.md, "Orders and
//! payments"): OAuth → profile → order → sandbox pay → notify.

use std::collections::BTreeMap;

use e2e::api::refusal;
use e2e::{Options, System};
use platform::testing::Replica;
use sandbox::NotifyMode;
use sandbox::pay::NotifyStyle;
use wechat_protocol::pay::{SignType, sign};

fn notify_url(system: &System) -> String {
    format!("{}/api/v1/payment/notify", system.gateway())
}

#[tokio::test]
async fn membership_purchase_end_to_end() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_buyer").await;
    let profile = browser.profile().await;
    assert_eq!(profile.openid, "o_buyer");
    assert!(!profile.is_member);
    assert_eq!(profile.remaining_credits, 0);
    assert!(profile.can_buy_membership);
    assert_eq!(profile.prices.member_price_fen, 1990);

    let created = browser.create_order(e2e::api::member_order()).await;
    let order = &created.order;
    assert_eq!(order.total_fee, 1990);
    assert_eq!(order.status, "notpay");
    assert_eq!(order.membership_days, 30);
    // The page's parameters carry a paySign WeChat accepts: recompute it with the merchant key.
    let params = &created.pay_params;
    assert!(params.package.starts_with("prepay_id=wx"));
    assert_eq!(params.sign_type, "HMAC-SHA256");
    let expected = sign(
        e2e::api::pay_sign_fields(params),
        &system.sandbox.config().pay_key,
        SignType::HmacSha256,
    );
    assert_eq!(params.pay_sign, expected);
    // WeChat Pay has the order at our price.
    let order_no = order.order_no.as_str();
    assert_eq!(system.sandbox.pay_order(order_no).unwrap().total_fee, 1990);

    system.sandbox.pay(order_no).await.unwrap();
    let paid = browser.wait_for_order(order_no, "paid").await;
    assert!(paid.paid_at.is_some());
    let profile = browser.profile().await;
    assert!(profile.is_member);
    assert_eq!(profile.remaining_credits, 10);
    assert_eq!(profile.total_credits, 10);
    assert!(!profile.can_buy_membership);
    let expiry =
        chrono::DateTime::parse_from_rfc3339(profile.member_expire_at.as_deref().unwrap()).unwrap();
    let days = (expiry.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!(
        (29 * 24..=30 * 24).contains(&days),
        "{days} hours of membership"
    );

    // More than 7 days left: a second membership is refused with a clear 409.
    let refused = browser.place_order(e2e::api::member_order()).await;
    assert_eq!(
        refusal(refused).status_and_code(),
        (409, "membership_active")
    );
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn membership_bought_in_the_last_week_extends_from_the_expiry() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_renewer").await;
    let first = browser.create_order(e2e::api::member_order()).await;
    let no = first.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    browser.wait_for_order(&no, "paid").await;
    // Five days left.
    let pool = system.db.primary().await;
    sqlx::query("UPDATE wechat_users SET member_expire_at = NOW(3) + INTERVAL 5 DAY WHERE openid = 'o_renewer'")
        .execute(&pool)
        .await
        .unwrap();
    let second = browser.create_order(e2e::api::member_order()).await;
    let no = second.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    browser.wait_for_order(&no, "paid").await;
    let days_left: i64 = sqlx::query_scalar(
        "SELECT TIMESTAMPDIFF(HOUR, NOW(3), member_expire_at) FROM wechat_users WHERE openid = 'o_renewer'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        (34 * 24..=35 * 24).contains(&days_left),
        "{days_left} hours: 5 days + 30"
    );
    assert_eq!(browser.profile().await.remaining_credits, 20);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn credits_purchase_end_to_end() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_credits").await;
    let created = browser.create_order(e2e::api::credits_order(10)).await;
    assert_eq!(created.order.total_fee, 500);
    assert_eq!(created.order.credits_amount, 10);
    let no = created.order.order_no.as_str();
    system.sandbox.pay(no).await.unwrap();
    browser.wait_for_order(no, "paid").await;
    let profile = browser.profile().await;
    assert_eq!(profile.remaining_credits, 10);
    assert!(!profile.is_member);
    for bad in [
        serde_json::json!({ "order_type": "credits", "credits_amount": 0 }),
        serde_json::json!({ "order_type": "credits", "credits_amount": 1001 }),
        serde_json::json!({ "order_type": "credits" }),
        serde_json::json!({ "order_type": "gold" }),
        serde_json::json!({ "order_type": "credits", "credits_amount": -5 }),
    ] {
        let (status, body) = browser
            .post("/api/v1/payment/create-order", bad.clone())
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    // A client-sent amount is ignored: the server prices the order.
    let (status, created) = browser
        .post(
            "/api/v1/payment/create-order",
            serde_json::json!({ "order_type": "credits", "credits_amount": 3, "total_fee": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["order"]["total_fee"], 150);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn an_openid_header_without_a_session_is_refused() {
    let system = System::start(Options::membership_flows()).await;
    for path in ["/api/v1/member/profile", "/api/v1/payment/orders/XT1"] {
        let response = system
            .http
            .get(format!("{}{path}", system.gateway()))
            .header("X-WeChat-OpenID", "o_victim")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let response = system
        .http
        .post(format!("{}/api/v1/payment/create-order", system.gateway()))
        .header("X-WeChat-OpenID", "o_victim")
        .header("Cookie", "xintu_session=o_victim|99999999999")
        .json(&e2e::api::member_order())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "an unsigned cookie is not a session"
    );
    assert_eq!(system.sandbox.stats().unified_orders, 0);
}

#[tokio::test]
async fn oauth_refuses_a_wrong_state_and_a_reused_code() {
    let system = System::start(Options::membership_flows()).await;
    let code = system.sandbox.oauth_code("o_someone");
    // No state cookie from /authorize: refused before the code is spent.
    let response = system
        .http
        .get(format!(
            "{}/api/v1/member/oauth/callback?code={code}&state=x",
            system.gateway()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(system.sandbox.stats().oauth_exchanges, 0);
    // A real sign-in works; a replay of its code does not.
    system.sign_in("o_someone").await;
    assert_eq!(system.sandbox.stats().oauth_exchanges, 1);
}

/// After sign-in the browser goes back where `return_to` said, but only ever to a page of our
/// own site as the browser itself reads the address: a tab, a newline or a backslash cannot turn
/// it into another host's.
#[tokio::test]
async fn sign_in_returns_only_to_our_own_site() {
    let system = System::start(Options::membership_flows()).await;
    let site = reqwest::Url::parse(system.gateway()).unwrap();
    for hostile in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example/",
        "/\\evil.example",
        "/\\/evil.example",
        "//evil.example",
        "https://evil.example/",
    ] {
        let (_, landing) = system
            .sign_in_returning("o_redirected", Some(hostile))
            .await;
        // What a browser does with the Location: WHATWG parsing against the current page.
        let lands_on = site.join(&landing).unwrap();
        assert_eq!(
            lands_on.origin(),
            site.origin(),
            "{hostile:?} -> {landing:?}"
        );
        assert_eq!(
            landing, "/member/",
            "{hostile:?} falls back to the member page"
        );
    }
    let (browser, landing) = system
        .sign_in_returning("o_redirected", Some("/member/?tab=credits"))
        .await;
    assert_eq!(landing, "/member/?tab=credits");
    assert_eq!(browser.profile().await.openid, "o_redirected");
}

/// Orders cost a WeChat Pay call and a row each: a signed-in user gets ten a minute, then 429,
/// and the refused ones never reach WeChat Pay. Another user is not affected.
#[tokio::test]
async fn orders_per_user_are_limited() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_bulk").await;
    let order = e2e::api::credits_order(1);
    for _ in 0..10 {
        browser.create_order(order.clone()).await;
    }
    let refused = browser.place_order(order.clone()).await;
    assert_eq!(refusal(refused).status_and_code(), (429, "rate_limited"));
    assert_eq!(system.sandbox.stats().unified_orders, 10);
    let other = system.sign_in("o_calm").await;
    other.create_order(order).await;
    assert_eq!(system.sandbox.stats().unified_orders, 11);
}

#[tokio::test]
async fn fifty_concurrent_notifies_credit_once() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_dup_pay").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let created = browser.create_order(e2e::api::credits_order(7)).await;
    let no = created.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    let fields = system.sandbox.notify_fields(&no).unwrap();
    let url = notify_url(&system);
    let deliveries = (0..50).map(|_| system.sandbox.post_notify(&url, &fields));
    let replies = futures::future::join_all(deliveries).await;
    for (acknowledged, status, body) in &replies {
        assert!(*acknowledged, "{status} {body}");
    }
    let profile = browser.profile().await;
    assert_eq!(profile.remaining_credits, 7);
    let pool = system.db.primary().await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_ledger WHERE reference = ?")
        .bind(&no)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // Replayed later, sequentially: still acknowledged, still once.
    for _ in 0..5 {
        assert!(system.sandbox.post_notify(&url, &fields).await.0);
    }
    assert_eq!(browser.profile().await.remaining_credits, 7);
    system.assert_ledger_invariant().await;
}

/// WeChat Pay answers carry no `sign_type` (they are signed with the algorithm of the request),
/// and notifies may or may not carry one: with either configured sign type, orders are placed,
/// paid and credited, whichever way the notify comes.
#[tokio::test]
async fn orders_are_paid_with_either_sign_type_and_notifies_with_or_without_sign_type() {
    for sign_type in [SignType::HmacSha256, SignType::Md5] {
        let system = System::start(Options {
            wechatpay_sign_type: sign_type,
            ..Options::membership_flows()
        })
        .await;
        let browser = system.sign_in("o_sign_types").await;
        let mut credits = 0;
        for name_sign_type in [false, true] {
            system.sandbox.set_notify_style(NotifyStyle {
                name_sign_type,
                coupon_fee: 0,
            });
            let created = browser.create_order(e2e::api::credits_order(3)).await;
            let params = &created.pay_params;
            assert_eq!(params.sign_type, sign_type.as_str());
            let expected = sign(
                e2e::api::pay_sign_fields(params),
                &system.sandbox.config().pay_key,
                sign_type,
            );
            assert_eq!(params.pay_sign, expected, "{sign_type:?}");
            let no = created.order.order_no.clone();
            system.sandbox.pay(&no).await.unwrap();
            let fields = system.sandbox.notify_fields(&no).unwrap();
            assert_eq!(
                fields.contains_key("sign_type"),
                name_sign_type,
                "{fields:?}"
            );
            browser.wait_for_order(&no, "paid").await;
            credits += 3;
            assert_eq!(
                browser.profile().await.remaining_credits,
                credits,
                "{sign_type:?}, sign_type named: {name_sign_type}"
            );
        }
        system.assert_ledger_invariant().await;
    }
}

/// A notify carries every field WeChat Pay documents, not only those we read: coupon fields,
/// `settlement_total_fee`, `cash_fee_type`, `device_info` and a Chinese `attach` all pass
/// through verification, and the order is credited by `total_fee`, not by the cash paid.
#[tokio::test]
async fn a_notify_with_a_coupon_and_chinese_attach_credits_the_order_amount() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_coupon").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    system.sandbox.set_notify_style(NotifyStyle {
        name_sign_type: false,
        coupon_fee: 100,
    });
    let created = browser.create_order(e2e::api::credits_order(7)).await;
    let no = created.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    let mut fields = system.sandbox.notify_fields(&no).unwrap();
    assert_eq!(fields["total_fee"], "350");
    assert_eq!(fields["cash_fee"], "250");
    assert_eq!(fields["settlement_total_fee"], "250");
    assert_eq!(fields["coupon_fee_0"], "100");
    assert_eq!(fields["cash_fee_type"], "CNY");
    fields.insert("attach".into(), "芯图相册·积分 <7个> & 更多".into());
    fields.insert("device_info".into(), "WEB".into());
    resign(&system, &mut fields);
    let (acknowledged, status, reply) = system
        .sandbox
        .post_notify(&notify_url(&system), &fields)
        .await;
    assert!(acknowledged, "{status} {reply}");
    browser.wait_for_order(&no, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 7);
    system.assert_ledger_invariant().await;
}

fn resign(system: &System, fields: &mut BTreeMap<String, String>) {
    system.sandbox.pay_sign(fields, SignType::HmacSha256);
}

#[tokio::test]
async fn forged_tampered_and_hostile_notifies_change_nothing() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_target").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let created = browser.create_order(e2e::api::credits_order(20)).await;
    let no = created.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    let genuine = system.sandbox.notify_fields(&no).unwrap();
    let url = notify_url(&system);
    let before = system.counts().await;

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut tampered = genuine.clone();
    tampered.insert("total_fee".into(), "1".into());
    resign(&system, &mut tampered);
    cases.push(("tampered total_fee, validly signed", xml(&tampered)));
    let mut wrong_app = genuine.clone();
    wrong_app.insert("appid".into(), "wx_someone_else".into());
    resign(&system, &mut wrong_app);
    cases.push(("another appid", xml(&wrong_app)));
    let mut wrong_mch = genuine.clone();
    wrong_mch.insert("mch_id".into(), "1900000999".into());
    resign(&system, &mut wrong_mch);
    cases.push(("another mch_id", xml(&wrong_mch)));
    let mut bad_sign = genuine.clone();
    bad_sign.insert("total_fee".into(), "1".into());
    cases.push(("signature no longer matches", xml(&bad_sign)));
    let mut no_sign = genuine.clone();
    no_sign.remove("sign");
    cases.push(("no signature", xml(&no_sign)));
    // HMAC-SHA256 is configured: an MD5 signature is refused, whether or not the notify names
    // it, so nobody can downgrade the merchant's algorithm.
    let mut md5_unnamed = genuine.clone();
    system.sandbox.pay_sign(&mut md5_unnamed, SignType::Md5);
    cases.push(("MD5-signed, no sign_type", xml(&md5_unnamed)));
    let mut md5_named = genuine.clone();
    md5_named.insert("sign_type".into(), "MD5".into());
    system.sandbox.pay_sign(&mut md5_named, SignType::Md5);
    cases.push(("MD5-signed, sign_type MD5", xml(&md5_named)));
    let mut mislabelled = genuine.clone();
    mislabelled.insert("sign_type".into(), "MD5".into());
    resign(&system, &mut mislabelled);
    cases.push(("HMAC-signed, sign_type MD5", xml(&mislabelled)));
    let mut unknown = genuine.clone();
    unknown.insert("out_trade_no".into(), "XT00000000000000000000000000".into());
    resign(&system, &mut unknown);
    cases.push(("unknown order", xml(&unknown)));
    cases.push((
        "XXE",
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
            xml(&genuine).replacen("<xml>", "<xml><attach>&x;</attach>", 1)
        ),
    ));
    cases.push((
        "billion laughs",
        r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;">]><xml><return_code>&lol3;</return_code></xml>"#.to_owned(),
    ));
    cases.push(("not XML", "return_code=SUCCESS".to_owned()));
    for (name, body) in cases {
        let (acknowledged, status, reply) = system.sandbox.post_raw_notify(&url, body).await;
        assert!(!acknowledged, "{name} was acknowledged: {reply}");
        assert!(reply.contains("FAIL"), "{name}: {status} {reply}");
        assert_eq!(system.counts().await, before, "{name} changed something");
    }
    // Over the body cap: refused at the gateway.
    let (acknowledged, status, _) = system
        .sandbox
        .post_raw_notify(&url, format!("<xml><a>{}</a></xml>", "x".repeat(70_000)))
        .await;
    assert!(!acknowledged);
    assert_eq!(status, 413);
    // result_code=FAIL: a verified report of a failed payment, acknowledged, nothing applied.
    let mut failed = genuine.clone();
    failed.insert("result_code".into(), "FAIL".into());
    failed.insert("err_code".into(), "NOTENOUGH".into());
    resign(&system, &mut failed);
    assert!(system.sandbox.post_notify(&url, &failed).await.0);
    assert_eq!(system.counts().await, before);
    let order = browser.order(&no).await.expect("the order");
    assert_eq!(order.status, "notpay");
    // And the genuine notify still works afterwards.
    assert!(system.sandbox.post_notify(&url, &genuine).await.0);
    assert_eq!(browser.profile().await.remaining_credits, 20);
    system.assert_ledger_invariant().await;
}

fn xml(fields: &BTreeMap<String, String>) -> String {
    let document: Vec<(&str, wechat_protocol::xml::Value<'_>)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), wechat_protocol::xml::Value::Text(v.as_str())))
        .collect();
    wechat_protocol::xml::write(&document)
}

#[tokio::test]
async fn primary_down_during_the_notify_then_the_retry_credits_once() {
    let system = System::start(Options {
        cuttable_primary: true,
        ..Options::membership_flows()
    })
    .await;
    let browser = system.sign_in("o_outage").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let created = browser.create_order(e2e::api::credits_order(5)).await;
    let no = created.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    let proxy = system.primary_proxy.clone().unwrap();
    proxy.cut();
    let (acknowledged, status, reply) = system
        .sandbox
        .post_notify(
            &notify_url(&system),
            &system.sandbox.notify_fields(&no).unwrap(),
        )
        .await;
    assert!(!acknowledged, "{status} {reply}");
    assert!(
        status >= 500,
        "a non-success reply makes WeChat Pay retry: {status}"
    );
    proxy.restore();
    // WeChat Pay's retries: the first after recovery applies, the next are duplicates.
    for _ in 0..3 {
        let mut acknowledged = false;
        for _ in 0..100 {
            acknowledged = system.sandbox.send_notify(&no).await;
            if acknowledged {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(acknowledged);
    }
    browser.wait_for_order(&no, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 5);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_lost_notify_is_settled_by_the_reconciler_once_even_racing_a_late_notify() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_query_after_secs: 0,
        memberships: 2,
        ..Options::membership_flows()
    })
    .await;
    let browser = system.sign_in("o_lost").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let mut orders = Vec::new();
    for _ in 0..5 {
        let created = browser.create_order(e2e::api::credits_order(2)).await;
        orders.push(created.order.order_no.clone());
    }
    // Pay all five; the notifies are lost. Race a late notify against the reconcilers for each.
    let url = notify_url(&system);
    for no in &orders {
        system.sandbox.pay(no).await.unwrap();
    }
    let late = orders.iter().map(|no| {
        let fields = system.sandbox.notify_fields(no).unwrap();
        let url = url.clone();
        let sandbox = system.sandbox.clone();
        async move { sandbox.post_notify(&url, &fields).await }
    });
    for (acknowledged, _, reply) in futures::future::join_all(late).await {
        assert!(acknowledged, "{reply}");
    }
    for no in &orders {
        browser.wait_for_order(no, "paid").await;
    }
    // Let the reconcilers run a few more rounds: nothing more may happen.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(browser.profile().await.remaining_credits, 10);
    let pool = system.db.primary().await;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM credit_ledger WHERE reason = 'purchase'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows, 5);
    system.assert_ledger_invariant().await;

    // A lost notify with no late one: the reconciler alone pays it.
    let created = browser.create_order(e2e::api::credits_order(3)).await;
    let no = created.order.order_no.clone();
    system.sandbox.pay(&no).await.unwrap();
    browser.wait_for_order(&no, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 13);
    assert!(system.sandbox.stats().order_queries >= 1);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn stale_orders_are_closed_only_after_wechat_confirms() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_query_after_secs: 0,
        ..Options::membership_flows()
    })
    .await;
    let browser = system.sign_in("o_idle").await;
    let young = browser
        .create_order(e2e::api::credits_order(1))
        .await
        .order
        .order_no;
    let old = browser
        .create_order(e2e::api::credits_order(1))
        .await
        .order
        .order_no;
    let paid_late = browser
        .create_order(e2e::api::credits_order(4))
        .await
        .order
        .order_no;
    // Two orders are past their lifetime and 10 minutes old, here and at WeChat.
    for no in [&old, &paid_late] {
        crate::reconciler::age(&system, no).await;
    }
    // The user paid one of them at the last moment and its notify was lost.
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    system.sandbox.pay(&paid_late).await.unwrap();
    browser.wait_for_order(&old, "closed").await;
    browser.wait_for_order(&paid_late, "paid").await;
    assert_eq!(
        system.sandbox.pay_order(&old).unwrap().state,
        sandbox::pay::TradeState::Closed,
        "closed at WeChat first"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let young_order = browser.order(&young).await.expect("the order");
    assert_eq!(young_order.status, "notpay", "a live order is left alone");
    assert_eq!(browser.profile().await.remaining_credits, 4);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn wechat_pay_errors_are_clear_and_leave_a_retryable_order() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_unlucky").await;
    system.sandbox.set_faults(sandbox::Faults {
        pay_system_errors: 1,
        ..Default::default()
    });
    let refused = browser.place_order(e2e::api::credits_order(2)).await;
    assert_eq!(
        refusal(refused).status_and_code(),
        (502, "wechatpay_unavailable")
    );
    // SYSTEMERROR: the outcome is unknown, so the order stays unpaid for the reconciler.
    let pool = system.db.primary().await;
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM payment_orders WHERE status = 'notpay'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open, 1);
    // The next attempt works.
    browser.create_order(e2e::api::credits_order(2)).await;
}

#[tokio::test]
async fn order_poll_sees_paid_while_the_replica_lags() {
    let system = System::start(Options {
        replica: Replica::Lagging,
        ..Options::membership_flows()
    })
    .await;
    let browser = system.sign_in("o_replica_lags").await;
    let created = browser.create_order(e2e::api::credits_order(4)).await;
    let no = created.order.order_no.clone();
    system.db.wait_for_replica().await;
    system.db.pause_replica().await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    system.sandbox.pay(&no).await.unwrap();
    let acknowledged = system.sandbox.send_notify(&no).await;
    let order = browser.order(&no).await;
    let profile = browser.profile().await;
    let stale: String = {
        let replica =
            sqlx::MySqlPool::connect(secrecy::ExposeSecret::expose_secret(&system.db.replica_url))
                .await
                .unwrap();
        let status = sqlx::query_scalar(
            "SELECT CAST(status AS CHAR) FROM payment_orders WHERE out_trade_no = ?",
        )
        .bind(&no)
        .fetch_one(&replica)
        .await
        .unwrap();
        replica.close().await;
        status
    };
    system.db.resume_replica().await;
    assert!(acknowledged);
    assert_eq!(stale, "notpay", "the replica should still be behind");
    let order = order.expect("the order");
    assert_eq!(order.status, "paid", "first poll after the notify");
    assert_eq!(profile.remaining_credits, 4);
}

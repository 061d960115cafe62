//! Purchases through WeChat Pay API v3 (`WECHATPAY_API_VERSION=v3`): the JSAPI order signed
//! with the merchant's RSA key, the page's RSA `paySign`, the signed and encrypted
//! `TRANSACTION.SUCCESS` notification at `/api/v1/payment/v3-notify`, the reconciler's query
//! and close, refunds (`/v3/refund/domestic/refunds`, the `REFUND.*` notification, the
//! query) and the daily bill (`/v3/bill/tradebill` and its hashed file), all against the
//! sandbox's v3 endpoints, for a merchant without v2 keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use e2e::{Options, System};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sandbox::{NotifyMode, RefundMode, RefundStatus};

use crate::refunds::{refund, wait_for_refund};
use sha2::Sha256;
use wechat_protocol::pay_v3::certificate_key;

/// A merchant that started on v3: no v2 API key and no v2 client certificate, so everything
/// (orders, refunds, the bill) can only go through v3.
fn v3_options() -> Options {
    Options {
        wechatpay_api_v3: true,
        merchant_certificate: false,
        wechatpay_v2_api_key: false,
        ..Options::membership_flows()
    }
}

fn v3_notify_url(system: &System) -> String {
    format!("{}/api/v1/payment/v3-notify", system.gateway())
}

#[tokio::test]
async fn a_v3_order_is_signed_paid_notified_and_credited_once() {
    let system = System::start(v3_options()).await;
    let browser = system.sign_in("o_v3_buyer").await;
    // WeChat's servers racing each other with the same notification.
    system.sandbox.set_notify_mode(NotifyMode::Duplicates(4));
    let created = browser.create_order(e2e::api::credits_order(7)).await;
    let order_no = created.order.order_no.clone();
    assert_eq!(created.order.total_fee, 350);
    // The sandbox has it as a v3 order, at our price: the signed JSAPI order went through.
    let placed = system.sandbox.pay_order(&order_no).unwrap();
    assert!(placed.v3);
    assert_eq!(placed.total_fee, 350);
    assert!(placed.notify_url.ends_with("/api/v1/payment/v3-notify"));

    // The page's parameters: signType RSA, and a paySign the merchant certificate's key
    // verifies over appId, timeStamp, nonceStr and package, each followed by a newline.
    let params = &created.pay_params;
    assert_eq!(params.sign_type, "RSA");
    assert_eq!(params.package, format!("prepay_id={}", placed.prepay_id));
    let message = e2e::api::pay_sign_fields(params)[..4]
        .iter()
        .map(|(_, value)| format!("{value}\n"))
        .collect::<String>();
    let (_, merchant_key) =
        certificate_key(&system.sandbox.merchant_tls().unwrap().client_cert_pem).unwrap();
    let signature = BASE64.decode(&params.pay_sign).unwrap();
    VerifyingKey::<Sha256>::new(merchant_key)
        .verify(
            message.as_bytes(),
            &Signature::try_from(signature.as_slice()).unwrap(),
        )
        .expect("paySign verifies with the merchant key");

    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    // Every copy is acknowledged; the credits arrive once.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(browser.profile().await.remaining_credits, 7);
    assert!(system.sandbox.stats().notifies_sent >= 4);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn forged_stale_and_tampered_v3_notifications_change_nothing() {
    let system = System::start(v3_options()).await;
    let browser = system.sign_in("o_v3_forged").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let created = browser.create_order(e2e::api::credits_order(4)).await;
    let order_no = created.order.order_no.clone();
    system.sandbox.pay(&order_no).await.unwrap();
    let sandbox = &system.sandbox;
    let key = sandbox.config().api_v3_key.clone();
    let url = v3_notify_url(&system);
    let now = chrono::Utc::now().timestamp();
    let paid = sandbox.v3_order_transaction(&order_no).unwrap();
    let genuine = sandbox.v3_notification_body(&paid, &key).unwrap();

    let mut cheaper = paid.clone();
    cheaper.amount.as_mut().unwrap().total = 1;
    let mut unknown = paid.clone();
    unknown.out_trade_no = "XT20260101000000999999999999".to_owned();
    let mut other_merchant = paid.clone();
    other_merchant.mchid = "1900000999".to_owned();
    let mut dollars = paid.clone();
    dollars.amount.as_mut().unwrap().currency = "USD".to_owned();

    let mut cases: Vec<(&str, String, sandbox::pay::V3Signature)> = Vec::new();
    // Genuinely signed by WeChat Pay's key, but not a payment of this order as it stands.
    for (what, transaction) in [
        ("amount", &cheaper),
        ("unknown order", &unknown),
        ("another merchant", &other_merchant),
        ("currency", &dollars),
    ] {
        let body = sandbox.v3_notification_body(transaction, &key).unwrap();
        let signature = sandbox.v3_sign(now, body.as_bytes()).unwrap();
        cases.push((what, body, signature));
    }
    // Encrypted under another APIv3 key.
    let body = sandbox
        .v3_notification_body(&paid, "0123456789abcdef0123456789abcdef")
        .unwrap();
    cases.push((
        "other key",
        body.clone(),
        sandbox.v3_sign(now, body.as_bytes()).unwrap(),
    ));
    // Signed six minutes ago: a replay.
    cases.push((
        "stale",
        genuine.clone(),
        sandbox.v3_sign(now - 360, genuine.as_bytes()).unwrap(),
    ));
    // The genuine signature over another body.
    let signature = sandbox.v3_sign(now, genuine.as_bytes()).unwrap();
    cases.push((
        "edited body",
        genuine.replace("encrypt-resource", "encrypt-resourcE"),
        signature.clone(),
    ));
    // The genuine signature, naming a key we do not hold.
    let mut unknown_serial = signature.clone();
    unknown_serial.serial = "PUB_KEY_ID_0000000000000000000000000000".to_owned();
    cases.push(("unknown serial", genuine.clone(), unknown_serial));
    // Another signature: the bytes of a real one, one flipped.
    let mut flipped = signature.clone();
    let mut bytes = BASE64.decode(&flipped.signature).unwrap();
    bytes[10] ^= 1;
    flipped.signature = BASE64.encode(bytes);
    cases.push(("bad signature", genuine.clone(), flipped));
    // Unsigned.
    let mut unsigned = signature.clone();
    unsigned.signature = String::new();
    cases.push(("unsigned", genuine.clone(), unsigned));
    // A DOCTYPE where JSON belongs.
    let hostile =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    cases.push((
        "xml",
        hostile.to_owned(),
        sandbox.v3_sign(now, hostile.as_bytes()).unwrap(),
    ));

    for (what, body, signature) in &cases {
        let (status, reply) = sandbox.post_v3_notify(&url, body, signature).await;
        assert_eq!(status, 400, "{what}: {reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["code"], "FAIL", "{what}");
    }
    let order = browser.order(&order_no).await.expect("the order");
    assert_eq!(order.status, "notpay");
    assert_eq!(browser.profile().await.remaining_credits, 0);

    // The genuine notification applies; the same one again changes nothing more.
    for _ in 0..2 {
        let signature = sandbox
            .v3_sign(chrono::Utc::now().timestamp(), genuine.as_bytes())
            .unwrap();
        let (status, reply) = sandbox.post_v3_notify(&url, &genuine, &signature).await;
        assert_eq!(status, 204, "{reply}");
    }
    browser.wait_for_order(&order_no, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 4);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn the_reconciler_settles_and_closes_v3_orders_by_query() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_query_after_secs: 0,
        ..v3_options()
    })
    .await;
    let browser = system.sign_in("o_v3_lost").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    // A lost notification: the v3 query says SUCCESS and the reconciler applies it.
    let created = browser.create_order(e2e::api::credits_order(3)).await;
    let paid_no = created.order.order_no.clone();
    system.sandbox.pay(&paid_no).await.unwrap();
    browser.wait_for_order(&paid_no, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 3);
    assert!(system.sandbox.stats().order_queries >= 1);

    // An abandoned order past its lifetime: asked about, closed through v3, then closed here.
    let created = browser.create_order(e2e::api::credits_order(2)).await;
    let stale_no = created.order.order_no.clone();
    crate::reconciler::age(&system, &stale_no).await;
    browser.wait_for_order(&stale_no, "closed").await;
    assert_eq!(
        system.sandbox.pay_order(&stale_no).unwrap().state,
        sandbox::pay::TradeState::Closed
    );
    assert!(system.sandbox.stats().close_orders >= 1);
    assert_eq!(browser.profile().await.remaining_credits, 3);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn v3_refunds_are_notified_queried_and_take_back_once() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_backoff_first_secs: 1,
        ..v3_options()
    })
    .await;
    system.sandbox.set_notify_mode(NotifyMode::Duplicates(3));
    let browser = system.sign_in("o_v3_refund").await;
    let order_no = system.paid_credits(&browser, 20).await;
    let admin = system.admin_sign_in().await;

    // Half back: 10 credits taken, the refund accepted through v3, then its REFUND.SUCCESS
    // notification (three copies at once) settles it once. WeChat Pay holds it until told, so
    // the answer cannot race the notification.
    system.sandbox.set_refund_mode(RefundMode::Hold);
    let first = refund(&admin, &order_no, 500).await.expect("the refund");
    assert_eq!(first.credits_taken, 10);
    assert_eq!(first.status, "processing", "{first:?}");
    let first_no = first.refund_no;
    assert!(system.sandbox.refund(&first_no).unwrap().v3);
    assert!(
        system
            .sandbox
            .settle_refund(&first_no, RefundStatus::Success)
    );
    wait_for_refund(&admin, &order_no, &first_no, "success").await;
    assert!(system.sandbox.stats().refund_notifies_sent >= 3);
    assert_eq!(browser.profile().await.remaining_credits, 10);

    // The rest, with the notification lost and the refund CLOSED at WeChat Pay: the
    // reconciler's v3 query finds it, and what it took comes back.
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    system.sandbox.set_refund_mode(RefundMode::Close);
    let second_no = refund(&admin, &order_no, 500)
        .await
        .expect("the refund")
        .refund_no;
    wait_for_refund(&admin, &order_no, &second_no, "failed").await;
    assert!(system.sandbox.stats().refund_queries >= 1);
    assert_eq!(browser.profile().await.remaining_credits, 10);

    // More than is left of the order: refused by us before WeChat Pay is asked.
    let asked = system.sandbox.stats().refunds;
    let refused = e2e::api::refusal(refund(&admin, &order_no, 600).await);
    assert_eq!(refused.status, 400);
    assert_eq!(system.sandbox.stats().refunds, asked);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn the_bill_check_reads_the_v3_bill_and_a_v2_notify_signed_without_a_key_is_refused() {
    let system = System::start(v3_options()).await;
    let browser = system.sign_in("o_v3_bill").await;
    let admin = system.admin_sign_in().await;
    let day = crate::bills::yesterday();
    let paid = system.paid_credits(&browser, 6).await;
    crate::bills::pay_on(&system, &paid, day).await;
    let report = crate::bills::check_bill(&admin, day)
        .await
        .expect("the report");
    assert_eq!(crate::bills::check_status(&report), "matched", "{report:?}");
    let check = report.check.as_ref().unwrap();
    assert_eq!((check.wechat_payments, check.wechat_payment_fen), (1, 300));
    // A day without transactions: no statement at WeChat Pay, nothing differs.
    let quiet = day - chrono::Duration::days(3);
    let empty = crate::bills::check_bill(&admin, quiet)
        .await
        .expect("the report");
    assert_eq!(crate::bills::check_status(&empty), "no_bill");
    assert!(system.sandbox.stats().bill_downloads >= 2);

    // This merchant has no v2 API key: a v2 notify "signed" with the empty key, as anyone can
    // write one, is refused and changes nothing.
    let created = browser.create_order(e2e::api::credits_order(9)).await;
    let order_no = created.order.order_no.clone();
    let mut fields: std::collections::BTreeMap<String, String> = [
        ("return_code", "SUCCESS".to_owned()),
        ("result_code", "SUCCESS".to_owned()),
        ("appid", system.sandbox.config().appid.clone()),
        ("mch_id", system.sandbox.config().mch_id.clone()),
        ("out_trade_no", order_no.clone()),
        ("transaction_id", "4200000000000000000000000001".to_owned()),
        ("total_fee", "450".to_owned()),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    let sign = wechat_protocol::pay::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "",
        wechat_protocol::pay::SignType::HmacSha256,
    );
    fields.insert("sign".to_owned(), sign);
    let url = format!("{}/api/v1/payment/notify", system.gateway());
    let (acknowledged, _, reply) = system.sandbox.post_notify(&url, &fields).await;
    assert!(!acknowledged, "{reply}");
    let order = browser.order(&order_no).await.expect("the order");
    assert_eq!(order.status, "notpay");
    assert_eq!(browser.profile().await.remaining_credits, 6);
    system.assert_ledger_invariant().await;
}

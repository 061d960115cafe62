//! Refunds through the admin API: WeChat Pay v2 `secapi/pay/refund` over mutual TLS, the
//! encrypted refund notify, `refundquery` in the reconciler, and what a refund takes back
//! (never credits already spent; a membership is shortened), as ledger rows.

use std::time::Duration;

use e2e::api::{self, Answer, refusal, types};
use e2e::{MemberBrowser, Options, System};
use sandbox::{NotifyMode, RefundMode, RefundStatus};
use wechat_protocol::xml::Value;

/// The operator refunds `refund_fee` fen of the order.
pub(crate) async fn refund(
    admin: &MemberBrowser,
    order_no: &str,
    refund_fee: i64,
) -> Answer<types::AdminRefundOut> {
    let body = api::refund(refund_fee, "用户申请退款");
    api::answer(
        admin
            .api()
            .admin_refund_order()
            .order_no(order_no)
            .body(body)
            .send(),
    )
    .await
}

/// Waits until the refund shows `status` in the admin list.
pub(crate) async fn wait_for_refund(
    admin: &MemberBrowser,
    order_no: &str,
    refund_no: &str,
    status: &str,
) {
    for _ in 0..200 {
        let list = api::answer(admin.api().admin_refunds().order_no(order_no).send())
            .await
            .expect("the order's refunds");
        if list
            .refunds
            .iter()
            .any(|r| r.refund_no == refund_no && r.status == status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("refund {refund_no} never became {status}");
}

async fn remaining(browser: &MemberBrowser) -> i64 {
    browser.profile().await.remaining_credits
}

#[tokio::test]
async fn a_credits_order_is_refunded_in_parts_and_never_past_the_unspent_credits() {
    let system = System::start(Options::with_refunds()).await;
    system.sandbox.set_notify_mode(NotifyMode::Duplicates(3));
    let browser = system.sign_in("o_refund_parts").await;
    let order_no = system.paid_credits(&browser, 100).await;
    assert_eq!(remaining(&browser).await, 100);
    let admin = system.admin_sign_in().await;

    // 30 % back: 30 credits taken at once, the refund accepted by WeChat Pay, then its notify
    // (sent three times at once) settles it, once. WeChat Pay holds it until told, so the
    // answer cannot race the notify.
    system.sandbox.set_refund_mode(RefundMode::Hold);
    let first = refund(&admin, &order_no, 1500).await.expect("the refund");
    assert_eq!(first.credits_taken, 30);
    assert_eq!(first.status, "processing", "{first:?}");
    assert!(first.refund_id.as_deref().unwrap().starts_with("50"));
    let first_no = first.refund_no.as_str();
    assert!(
        system
            .sandbox
            .settle_refund(first_no, RefundStatus::Success)
    );
    wait_for_refund(&admin, &order_no, first_no, "success").await;
    system.sandbox.set_refund_mode(RefundMode::default());
    assert_eq!(remaining(&browser).await, 70);

    // The user spends 50 of the 70: only the value of 20 unspent credits can go back now.
    let spent = api::adjustment("o_refund_parts", -50, "spent");
    api::answer(admin.api().admin_adjust_credits().body(spent).send())
        .await
        .expect("the adjustment");
    let before = system.snapshot("o_refund_parts").await;
    let refused = refusal(refund(&admin, &order_no, 3500).await);
    assert_eq!(refused.status_and_code(), (409, "credits_spent"));
    assert!(refused.message.contains("at most 1000 fen"), "{refused:?}");
    // More than is left of the order, zero, and an unpaid order are refused too.
    let too_much = refusal(refund(&admin, &order_no, 3501).await);
    assert_eq!(too_much.status_and_code(), (400, "invalid_argument"));
    assert_eq!(refusal(refund(&admin, &order_no, 0).await).status, 400);
    let unpaid = browser
        .create_order(e2e::api::credits_order(3))
        .await
        .order
        .order_no;
    let not_paid = refusal(refund(&admin, &unpaid, 50).await);
    assert_eq!(not_paid.status_and_code(), (409, "not_refundable"));
    let unknown = refusal(refund(&admin, "XT_no_such_order", 50).await);
    assert_eq!(unknown.status, 404);
    assert_eq!(
        system.snapshot("o_refund_parts").await,
        before,
        "refusals change nothing"
    );

    // The largest refund that fits goes through and takes exactly the unspent 20.
    let second = refund(&admin, &order_no, 1000).await.expect("the refund");
    assert_eq!(second.credits_taken, 20);
    wait_for_refund(&admin, &order_no, &second.refund_no, "success").await;
    assert_eq!(remaining(&browser).await, 0);

    // The admin lists show it: the order's refunded fen, and each refund in the audit log.
    let orders = api::answer(admin.api().admin_orders().status("paid").send())
        .await
        .expect("the paid orders");
    let listed = orders
        .orders
        .iter()
        .find(|o| o.order_no == order_no)
        .unwrap();
    assert_eq!(listed.refunded_fee, 2500);
    let audit = api::answer(admin.api().admin_audit().send())
        .await
        .expect("the audit log");
    let refunds: Vec<_> = audit
        .audit
        .iter()
        .filter(|a| a.action == "refund")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1].reference, first_no);
    assert_eq!(refunds[1].delta, -30);
    let pool = system.db.primary().await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.reason, l.delta FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id \
         WHERE u.openid = 'o_refund_parts' AND l.reason = 'refund' ORDER BY l.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, [("refund".into(), -30), ("refund".into(), -20)]);
    assert_eq!(system.sandbox.stats().refunds, 2);
    // The overview counts the money that went back next to the revenue.
    let overview = api::answer(admin.api().admin_overview().send())
        .await
        .expect("the overview");
    assert_eq!(
        (
            overview.revenue_fen,
            overview.refunded_fen,
            overview.refunds
        ),
        (5000, 2500, 2)
    );
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_closed_refund_gives_back_what_it_took_and_a_membership_refund_shortens_it() {
    let system = System::start(Options::with_refunds()).await;
    let browser = system.sign_in("o_refund_member").await;
    let order_no = system.paid_order(&browser, e2e::api::member_order()).await;
    let member = browser.profile().await;
    assert!(member.is_member);
    let admin = system.admin_sign_in().await;

    // WeChat Pay closes the refund: the membership and the bonus credits come back.
    system.sandbox.set_refund_mode(RefundMode::Close);
    let closed = refund(&admin, &order_no, 1990).await.expect("the refund");
    assert_eq!((closed.credits_taken, closed.membership_days), (10, 30));
    wait_for_refund(&admin, &order_no, &closed.refund_no, "failed").await;
    let back = browser.profile().await;
    assert!(back.is_member);
    assert_eq!(back.remaining_credits, 10);
    assert_eq!(back.member_expire_at, member.member_expire_at);

    // The whole refund again, succeeding: the membership ends now, the bonus goes back.
    system
        .sandbox
        .set_refund_mode(RefundMode::Succeed { after_ms: 50 });
    let done = refund(&admin, &order_no, 1990).await.expect("the refund");
    wait_for_refund(&admin, &order_no, &done.refund_no, "success").await;
    let after = browser.profile().await;
    assert!(!after.is_member);
    assert_eq!(after.remaining_credits, 0);
    let pool = system.db.primary().await;
    let reasons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.reason, l.delta FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id \
         WHERE u.openid = 'o_refund_member' ORDER BY l.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        reasons,
        [
            ("membership_bonus".into(), 10),
            ("refund".into(), -10),
            ("refund_returned".into(), 10),
            ("refund".into(), -10),
        ]
    );
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_lost_refund_request_is_asked_again_by_the_reconciler() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_backoff_first_secs: 1,
        ..Options::with_refunds()
    })
    .await;
    let browser = system.sign_in("o_refund_lost").await;
    let order_no = system.paid_credits(&browser, 10).await;
    let admin = system.admin_sign_in().await;
    // WeChat Pay answers SYSTEMERROR: nobody knows whether it took the refund.
    system.sandbox.set_faults(sandbox::Faults {
        pay_system_errors: 1,
        ..sandbox::Faults::default()
    });
    let pending = refund(&admin, &order_no, 500).await.expect("the refund");
    assert_eq!(pending.status, "pending");
    assert_eq!(
        remaining(&browser).await,
        0,
        "taken while the outcome is open"
    );
    // The reconciler's refundquery finds no refund, asks again with the same number, and the
    // refund completes.
    wait_for_refund(&admin, &order_no, &pending.refund_no, "success").await;
    assert!(system.sandbox.stats().refund_queries >= 1);
    assert_eq!(remaining(&browser).await, 0);
    system.assert_ledger_invariant().await;
}

/// A refund whose row another session holds locked is passed over for the round, not waited
/// for (InnoDB's lock timeout, 50 s): the refunds after it are still asked about.
#[tokio::test]
async fn a_refund_locked_elsewhere_does_not_hold_up_the_others() {
    let system = System::start(Options {
        reconcile_interval_ms: 100,
        reconcile_backoff_first_secs: 1,
        ..Options::with_refunds()
    })
    .await;
    let browser = system.sign_in("o_refund_locked").await;
    // Two orders: a refund locks every refund of its order while it is made.
    let orders = [
        system.paid_credits(&browser, 10).await,
        system.paid_credits(&browser, 10).await,
    ];
    let admin = system.admin_sign_in().await;
    system.sandbox.set_faults(sandbox::Faults {
        pay_system_errors: 2,
        ..sandbox::Faults::default()
    });
    let locked = refund(&admin, &orders[0], 300).await.expect("a refund");
    let pool = system.db.primary().await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT out_refund_no FROM payment_refunds WHERE out_refund_no = ? FOR UPDATE")
        .bind(&locked.refund_no)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    let other = refund(&admin, &orders[1], 200).await.expect("a refund");
    assert_eq!(
        (locked.status.as_str(), other.status.as_str()),
        ("pending", "pending")
    );
    // The locked one is due first (the older), round after round.
    wait_for_refund(&admin, &orders[1], &other.refund_no, "success").await;
    holder.rollback().await.unwrap();
    wait_for_refund(&admin, &orders[0], &locked.refund_no, "success").await;
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn concurrent_refunds_never_return_more_than_was_paid() {
    let system = System::start(Options::with_refunds()).await;
    let browser = system.sign_in("o_refund_race").await;
    let order_no = system.paid_credits(&browser, 100).await;
    let admin = system.admin_sign_in().await;
    let attempts = (0..6).map(|_| refund(&admin, &order_no, 1500));
    let answers = futures::future::join_all(attempts).await;
    let (accepted, refused): (Vec<_>, Vec<_>) = answers.into_iter().partition(Result::is_ok);
    assert_eq!(
        accepted.len(),
        3,
        "3 × 1500 fits in 5000, a 4th does not: {accepted:?} {refused:?}"
    );
    for refused in refused {
        assert_eq!(
            refusal(refused).status_and_code(),
            (400, "invalid_argument")
        );
    }
    assert_eq!(remaining(&browser).await, 100 - 3 * 30);
    let sandbox_total: i64 = system
        .sandbox
        .refunds_of(&order_no)
        .iter()
        .map(|r| r.refund_fee)
        .sum();
    assert_eq!(sandbox_total, 4500);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_forged_or_tampered_refund_notify_changes_nothing() {
    let system = System::start(Options::with_refunds()).await;
    system.sandbox.set_refund_mode(RefundMode::Hold);
    let browser = system.sign_in("o_refund_forged").await;
    let order_no = system.paid_credits(&browser, 10).await;
    let admin = system.admin_sign_in().await;
    let refund_no = refund(&admin, &order_no, 500)
        .await
        .expect("the refund")
        .refund_no;
    let url = format!("{}/api/v1/payment/refund-notify", system.gateway());
    let cfg = system.sandbox.config().clone();
    let notify = |key: &str, refund_fee: &str, status: &str| {
        let req_info = wechat_protocol::refund::encrypt_req_info(
            &[
                ("out_refund_no", Value::Text(&refund_no)),
                ("out_trade_no", Value::Text(&order_no)),
                ("refund_fee", Value::Text(refund_fee)),
                ("refund_status", Value::Text(status)),
                ("refund_id", Value::Text("50300000000000000000000000001")),
            ],
            key,
        );
        wechat_protocol::xml::write(&[
            ("return_code", Value::Text("SUCCESS")),
            ("appid", Value::Text(&cfg.appid)),
            ("mch_id", Value::Text(&cfg.mch_id)),
            ("nonce_str", Value::Text("n")),
            ("req_info", Value::Text(&req_info)),
        ])
    };
    let post = |body: String| system.http.post(&url).body(body).send();
    for (body, why) in [
        (
            notify("another-key-another-key-another1", "500", "REFUNDCLOSE"),
            "wrong key",
        ),
        (notify(&cfg.pay_key, "499", "REFUNDCLOSE"), "another amount"),
        (notify(&cfg.pay_key, "500", "WHATEVER"), "unknown status"),
        (
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>".into(),
            "a DOCTYPE",
        ),
        ("<xml><return_code>SUCCESS".into(), "malformed"),
    ] {
        let answer = post(body).await.unwrap().text().await.unwrap();
        assert!(answer.contains("FAIL"), "{why}: {answer}");
    }
    // Nothing changed: the refund still waits for WeChat Pay, the credits still taken.
    wait_for_refund(&admin, &order_no, &refund_no, "processing").await;
    assert_eq!(remaining(&browser).await, 0);
    // The genuine notify (WeChat Pay closes it) gives them back, once, however often it comes.
    for _ in 0..3 {
        let answer = post(notify(&cfg.pay_key, "500", "REFUNDCLOSE"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(answer.contains("SUCCESS"), "{answer}");
    }
    wait_for_refund(&admin, &order_no, &refund_no, "failed").await;
    assert_eq!(remaining(&browser).await, 10);
    system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn without_the_merchant_certificate_refunds_are_refused_clearly_and_change_nothing() {
    let system = System::start(Options {
        merchant_certificate: false,
        ..Options::membership_flows()
    })
    .await;
    let browser = system.sign_in("o_refund_no_cert").await;
    let order_no = system.paid_credits(&browser, 10).await;
    let admin = system.admin_sign_in().await;
    let before = system.snapshot("o_refund_no_cert").await;
    let refused = refusal(refund(&admin, &order_no, 500).await);
    assert_eq!(refused.status_and_code(), (503, "refunds_not_configured"));
    assert!(
        refused.message.contains("WECHATPAY_CERT_PATH"),
        "{refused:?}"
    );
    assert_eq!(system.snapshot("o_refund_no_cert").await, before);
    assert_eq!(system.sandbox.stats().refunds, 0);
}

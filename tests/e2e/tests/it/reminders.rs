//! Membership expiry reminders: a member opts in on the member page, and the official account
//! sends one template message (the sandbox's `message/template/send`) a few days before the end:
//! once per membership end, only to followers who asked.

use std::time::Duration;

use e2e::{MemberBrowser, Options, System};

const TEMPLATE: &str = "sandbox-member-expiry-0001";

/// A follower (scanned the account's QR code) who bought membership.
async fn member(system: &System, openid: &str, follow: bool) -> MemberBrowser {
    if follow {
        let qr = system.create_qrcode(&format!("pc-{openid}")).await;
        system
            .sandbox
            .scan(&system.push_url(), qr.ticket.as_str(), openid)
            .await
            .unwrap();
    }
    let browser = system.sign_in(openid).await;
    system.paid_order(&browser, e2e::api::member_order()).await;
    browser
}

/// Moves the membership's end to `hours` from now.
async fn ends_in(system: &System, openid: &str, hours: i64) {
    let pool = system.db.primary().await;
    sqlx::query(
        "UPDATE wechat_users SET member_expire_at = NOW(3) + INTERVAL ? HOUR WHERE openid = ?",
    )
    .bind(hours)
    .bind(openid)
    .execute(&pool)
    .await
    .unwrap();
}

async fn sent_to(system: &System, openid: &str) -> usize {
    system
        .sandbox
        .template_messages()
        .iter()
        .filter(|m| m.touser == openid)
        .count()
}

async fn wait_for_messages(system: &System, openid: &str, count: usize) {
    for _ in 0..100 {
        if sent_to(system, openid).await >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{openid} never got {count} reminder(s)");
}

#[tokio::test]
async fn members_who_asked_get_one_reminder_per_membership_end() {
    let system = System::start(Options {
        expiry_reminder_template_id: Some(TEMPLATE.to_owned()),
        expiry_reminder_interval_ms: 100,
        ..Options::membership_flows()
    })
    .await;
    let asked = member(&system, "o_remind_me", true).await;
    let silent = member(&system, "o_remind_not", true).await;
    let not_following = member(&system, "o_remind_unfollowed", false).await;
    for openid in ["o_remind_me", "o_remind_not", "o_remind_unfollowed"] {
        ends_in(&system, openid, 48).await;
    }
    // Off by default; the member page turns it on.
    assert!(!asked.profile().await.expiry_reminders);
    let (status, profile) = asked
        .post(
            "/api/v1/member/reminders",
            serde_json::json!({ "enabled": true }),
        )
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["expiry_reminders"], true);
    let (status, _) = not_following
        .post(
            "/api/v1/member/reminders",
            serde_json::json!({ "enabled": true }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = silent
        .post(
            "/api/v1/member/reminders",
            serde_json::json!({ "enabled": "yes" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    wait_for_messages(&system, "o_remind_me", 1).await;
    let message = system
        .sandbox
        .template_messages()
        .into_iter()
        .find(|m| m.touser == "o_remind_me")
        .unwrap();
    assert_eq!(message.template_id, TEMPLATE);
    assert_eq!(message.data["keyword1"], "芯图相册会员");
    assert!(
        message.data["keyword2"].starts_with("20"),
        "{:?}",
        message.data
    );
    // Later rounds send nothing more; nobody else asked (or follows).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sent_to(&system, "o_remind_me").await, 1);
    assert_eq!(sent_to(&system, "o_remind_not").await, 0);
    assert_eq!(sent_to(&system, "o_remind_unfollowed").await, 0);

    // A renewal moves the end: that end gets its own reminder. Turned off, none.
    ends_in(&system, "o_remind_me", 60).await;
    wait_for_messages(&system, "o_remind_me", 2).await;
    let (_, profile) = asked
        .post(
            "/api/v1/member/reminders",
            serde_json::json!({ "enabled": false }),
        )
        .await;
    assert_eq!(profile["expiry_reminders"], false);
    ends_in(&system, "o_remind_me", 30).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sent_to(&system, "o_remind_me").await, 2);
}

//! Personal data: a member downloads what we hold about them and erases it; an operator does
//! both for a user. Erasure deletes or pseudonymises everything that names the user, across the
//! services, and keeps orders and ledger rows under a pseudonym.

use std::time::Duration;

use e2e::api::{self, refusal};
use e2e::{MemberBrowser, Options, System};
use serde_json::Value;
use sqlx::MySqlPool;

/// Rows of the stats service's request log that still name `openid` or `client_id`.
async fn logged_as(system: &System, openid: &str, client_id: &str) -> i64 {
    let pool = system.stats.db.primary().await;
    let rows =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE openid = ? OR client_id = ?")
            .bind(openid)
            .bind(client_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

async fn count(pool: &MySqlPool, sql: &str, value: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(value)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn erase(member: &MemberBrowser) -> (u16, Value) {
    member
        .post(
            "/api/v1/member/erasure",
            serde_json::json!({ "confirm": true }),
        )
        .await
}

#[tokio::test]
async fn a_member_downloads_their_data_then_erases_it_everywhere() {
    let system = System::start(Options::default()).await;
    let token = system.bind_client("erase-pc", "o_erase").await;
    let member = system.sign_in("o_erase").await;
    let order_no = system.paid_credits(&member, 20).await;
    system
        .account(&token)
        .await
        .expect("the app reads its account");

    // The download holds the profile, the app, the order and every ledger row.
    let response = member
        .http
        .get(format!("{}/api/v1/member/data", system.gateway()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    let data: Value = response.json().await.unwrap();
    assert_eq!(data["user"]["openid"], "o_erase");
    assert_eq!(data["user"]["remaining_credits"], 30);
    assert_eq!(data["devices"][0]["client_id"], "erase-pc");
    assert_eq!(data["orders"][0]["order_no"], order_no.as_str());
    let reasons: Vec<&str> = data["credit_ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["follow_bonus", "purchase"]);
    assert!(
        !data["official_account_events"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The app's and the page's requests are in the request log under the user's name.
    for _ in 0..200 {
        if logged_as(&system, "o_erase", "erase-pc").await > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged_as(&system, "o_erase", "erase-pc").await > 1);

    // Not without the confirmation.
    let (status, body) = member
        .post(
            "/api/v1/member/erasure",
            serde_json::json!({ "confirm": false }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(member.profile().await.remaining_credits, 30);

    let (status, erased) = erase(&member).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["status"], "erased");
    assert_eq!(erased["credits_forfeited"], 30);
    assert_eq!(erased["follow_ups"], "done");
    // The session ended, and the app is signed out.
    let profile = e2e::api::answer(member.api().member_profile().send()).await;
    assert_eq!(e2e::api::refusal(profile).status, 401);
    system.wait_until_token_refused(&token).await;

    // The membership database keeps the order and the ledger under a pseudonym, nothing else.
    let pool = system.db.primary().await;
    let (pseudonym, remaining, erased_at): (String, i64, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as(
            "SELECT u.openid, u.remaining_credits, u.erased_at FROM wechat_users u \
             JOIN payment_orders o ON o.user_id = u.id WHERE o.out_trade_no = ?",
        )
        .bind(&order_no)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(pseudonym.starts_with("erased:"), "{pseudonym}");
    assert_eq!(remaining, 0);
    assert!(erased_at.is_some());
    for (sql, value) in [
        (
            "SELECT COUNT(*) FROM wechat_users WHERE openid = ?",
            "o_erase",
        ),
        (
            "SELECT COUNT(*) FROM client_bindings WHERE client_id = ?",
            "erase-pc",
        ),
        (
            "SELECT COUNT(*) FROM wechat_events WHERE openid = ?",
            "o_erase",
        ),
        (
            "SELECT COUNT(*) FROM payment_orders WHERE openid = ?",
            "o_erase",
        ),
        (
            "SELECT COUNT(*) FROM credit_ledger WHERE reference = ?",
            "o_erase",
        ),
        (
            "SELECT COUNT(*) FROM erasures WHERE openid = ? OR client_ids IS NOT NULL",
            "o_erase",
        ),
    ] {
        assert_eq!(count(&pool, sql, value).await, 0, "{sql}");
    }
    let ledger: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.reason, l.delta FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id \
         WHERE u.openid = ? ORDER BY l.id",
    )
    .bind(&pseudonym)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        [
            ("follow_bonus".into(), 10),
            ("purchase".into(), 20),
            ("erasure".into(), -30)
        ]
    );
    let audit: (String, String, i64) =
        sqlx::query_as("SELECT admin, reference, delta FROM admin_audit WHERE action = 'erase'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audit, ("member".into(), pseudonym.clone(), -30));
    system.assert_ledger_invariant().await;

    // The stats service forgot the user, including requests still on their way (the erasure's
    // own request is recorded without a name).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(logged_as(&system, "o_erase", "erase-pc").await, 0);

    // Following again makes a new account, without a second welcome bonus.
    let qr = system.create_qrcode("erase-pc").await;
    system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_erase")
        .await
        .unwrap();
    let back = system.sign_in("o_erase").await.profile().await;
    assert!(back.following, "{back:?}");
    assert_eq!(back.remaining_credits, 0, "{back:?}");
    pool.close().await;
}

#[tokio::test]
async fn erasure_waits_while_an_order_may_still_be_paid_and_changes_nothing() {
    let system = System::start(Options::default()).await;
    system.bind_client("wait-pc", "o_erase_wait").await;
    let member = system.sign_in("o_erase_wait").await;
    member.create_order(e2e::api::credits_order(5)).await;
    let before = system.snapshot("o_erase_wait").await;
    let (status, body) = erase(&member).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "erasure_blocked");
    assert_eq!(system.snapshot("o_erase_wait").await, before);
    assert_eq!(member.profile().await.remaining_credits, 10);
    let (status, _) = member.get("/api/v1/member/data").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_operator_exports_and_erases_a_user_with_a_reason_in_the_audit_log() {
    let system = System::start(Options::default()).await;
    system.bind_client("op-erase-pc", "o_erase_op").await;
    let admin = system.admin_sign_in().await;
    let anonymous = system
        .http
        .get(format!(
            "{}/api/v1/admin/users/o_erase_op/data",
            system.gateway()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, data) = admin.get("/api/v1/admin/users/o_erase_op/data").await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["user"]["openid"], "o_erase_op");

    let client = admin.api();
    let erase = |reason: &str| {
        let body = api::types::EraseUserIn {
            reason: reason.to_owned(),
        };
        let call = client.admin_erase_personal_data().openid("o_erase_op");
        api::answer(call.body(body).send())
    };
    assert_eq!(refusal(erase(" ").await).status, 400);
    let erased = erase("用户来电申请删除（工单 42）").await.expect("erased");
    assert_eq!(erased.credits_forfeited, 10);
    let audit = api::answer(admin.api().admin_audit().send())
        .await
        .expect("the audit log");
    let entry = &audit.audit[0];
    assert_eq!(entry.action, "erase", "{audit:?}");
    assert_eq!(entry.actor, "admin");
    assert_eq!(entry.reason, "用户来电申请删除（工单 42）");
    assert!(entry.openid.as_deref().unwrap().starts_with("erased:"));
    // Gone: neither exported nor erased again.
    let (status, _) = admin.get("/api/v1/admin/users/o_erase_op/data").await;
    assert_eq!(status, 404);
    assert_eq!(refusal(erase("again").await).status, 404);
}

#[tokio::test]
async fn follow_ups_a_stopped_service_missed_are_run_again() {
    let system = System::start(Options::default()).await;
    system.bind_client("later-pc", "o_erase_later").await;
    let member = system.sign_in("o_erase_later").await;
    member.profile().await;
    system.stats.stop();
    let (status, erased) = erase(&member).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["follow_ups"], "pending");
    let pool = system.db.primary().await;
    let pending = "SELECT COUNT(*) FROM erasures WHERE completed_at IS NULL AND actor = ?";
    assert_eq!(count(&pool, pending, "member").await, 1);
    system.stats.restart().await;
    for _ in 0..200 {
        if count(&pool, pending, "member").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&pool, pending, "member").await, 0, "never completed");
    pool.close().await;
    assert_eq!(logged_as(&system, "o_erase_later", "later-pc").await, 0);
}

#[tokio::test]
async fn the_download_holds_the_users_edits_and_request_log_and_nothing_partial() {
    use crate::edit::support::{bind, bound_app, form, photo};

    let app = bound_app(Options::default(), "o_export").await;
    let system = &app.system;
    // Another user's edit, which is not in the copy.
    let other = bind(system, "pc-o_export_other", "o_export_other").await;
    let (status, theirs) = app
        .submit_edit_as(
            &other,
            form(photo(), "free_text", &[("prompt", "别人的提示词")]),
            None,
        )
        .await;
    assert_eq!(status, 202, "{theirs}");
    let (task, _) = app
        .edit_to_end(
            form(
                photo(),
                "description_edit",
                &[("prompt", "给小猫添加一副墨镜")],
            ),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let task_id = task["task_id"].as_str().unwrap();
    let member = system.sign_in("o_export").await;
    // The app's edit submission and the polls after it reach the request log. Records are sent
    // in batches, so the polls' can land a moment after the submission's.
    let client_id = "pc-o_export";
    let stats = system.stats.db.primary().await;
    let submissions = "SELECT COUNT(*) FROM request_logs WHERE client_id = ? \
        AND endpoint = '/api/v1/photos/edit' AND method = 'POST'";
    for _ in 0..200 {
        if count(&stats, submissions, client_id).await > 0
            && logged_as(system, "o_export", client_id).await > 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&stats, submissions, client_id).await, 1);
    stats.close().await;
    let logged = logged_as(system, "o_export", client_id).await;

    let (status, data) = member.get("/api/v1/member/data").await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["user"]["openid"], "o_export");
    let edits = data["edit_tasks"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "only the user's own edit: {edits:?}");
    assert_eq!(edits[0]["task_id"], task_id);
    assert_eq!(edits[0]["prompt"], "给小猫添加一副墨镜");
    assert_eq!(edits[0]["function"], "description_edit");
    assert_eq!(edits[0]["status"], "succeeded");
    assert_eq!(edits[0]["client_id"], client_id);
    assert_eq!(edits[0]["stored_results"], 1);
    let log = data["request_log"].as_array().unwrap();
    assert!(
        i64::try_from(log.len()).unwrap() >= logged && logged > 1,
        "{logged} rows logged, {} in the copy",
        log.len()
    );
    assert_eq!(
        data["request_log_rows"].as_i64().unwrap(),
        i64::try_from(log.len()).unwrap()
    );
    assert_eq!(data["request_log_truncated"], false);
    assert!(
        log.iter()
            .any(|row| row["endpoint"] == "/api/v1/photos/edit" && row["client_id"] == client_id),
        "the edit submission is in the copy: {log:?}"
    );
    assert!(
        log.iter()
            .all(|row| row["client_id"] != "pc-o_export_other"),
        "another user's requests are not"
    );

    // A service that cannot answer fails the copy rather than leave its part out.
    system.stats.stop();
    let (status, body) = member.get("/api/v1/member/data").await;
    assert_eq!(status, 503, "{body}");
    system.stats.restart().await;
    let (status, _) = member.get("/api/v1/member/data").await;
    assert_eq!(status, 200);
}

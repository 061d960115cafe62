//! The admin lists: a page at a time as JSON, or everything the filter matches as a CSV file
//! that a spreadsheet opens safely.

use e2e::{Options, System, api};
use platform::testing::Replica;
use serde_json::Value;

/// A CSV export: its headers' values of interest and its rows (header row first).
struct Export {
    content_type: String,
    disposition: String,
    truncated: String,
    rows: Vec<Vec<String>>,
}

async fn export(system: &System, admin: &e2e::MemberBrowser, path: &str) -> Export {
    let response = admin
        .http
        .get(format!("{}{path}", system.gateway()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response.headers()[name]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, disposition, truncated) = (
        header("content-type"),
        header("content-disposition"),
        header("x-xintu-truncated"),
    );
    let body = response.bytes().await.unwrap();
    assert!(
        body.starts_with("\u{feff}".as_bytes()),
        "a byte-order mark, for spreadsheets"
    );
    let rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&body[3..])
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    Export {
        content_type,
        disposition,
        truncated,
        rows,
    }
}

#[tokio::test]
async fn lists_export_every_row_as_csv_across_pages() {
    let system = System::start(Options::membership_flows()).await;
    // More bindings than one page of the export (200): the file must hold them all.
    for n in 0..230 {
        system.create_qrcode(&format!("export-pc-{n:03}")).await;
    }
    // A user whose openid a spreadsheet would run as a formula.
    let formula = "=HYPERLINK(\"http://evil.example\",\"x\")";
    system.bind_client("export-bound", formula).await;
    let admin = system.admin_sign_in().await;
    // The lists read the replica; the users' writes reach it a moment later.
    system.db.wait_for_replica().await;

    let file = export(&system, &admin, "/api/v1/admin/bindings?format=csv").await;
    assert_eq!(file.content_type, "text/csv; charset=utf-8");
    assert!(
        file.disposition
            .starts_with("attachment; filename=\"xintu-bindings-")
            && file.disposition.ends_with(".csv\""),
        "{}",
        file.disposition
    );
    assert_eq!(file.truncated, "false");
    assert_eq!(
        file.rows[0],
        [
            "scene_id",
            "client_id",
            "status",
            "openid",
            "created_at",
            "completed_at",
            "expire_at"
        ]
    );
    let page = api::answer(admin.api().admin_bindings().limit(1).send())
        .await
        .expect("a page of bindings");
    let total = page.total;
    assert_eq!(total, 231);
    assert_eq!(
        file.rows.len(),
        usize::try_from(total).unwrap() + 1,
        "the header and every binding"
    );
    let mut clients: Vec<&str> = file.rows[1..].iter().map(|row| row[1].as_str()).collect();
    clients.sort_unstable();
    clients.dedup();
    assert_eq!(clients.len(), 231, "no binding twice, none left out");

    // The JSON pages and the file agree.
    let client = admin.api();
    let tail = client.admin_bindings().offset(200).limit(50).send();
    let tail = api::answer(tail).await.expect("the last page of bindings");
    let tail_ids: Vec<&str> = tail.bindings.iter().map(|b| b.client_id.as_str()).collect();
    assert_eq!(tail_ids.len(), 31);
    let file_tail: Vec<&str> = file.rows[201..].iter().map(|row| row[1].as_str()).collect();
    assert_eq!(tail_ids, file_tail);

    // The users file, filtered as the list is; the formula is text in the sheet.
    let users = export(
        &system,
        &admin,
        "/api/v1/admin/users?format=csv&openid=%3DHYPER",
    )
    .await;
    assert_eq!(users.rows.len(), 2, "{:?}", users.rows);
    assert_eq!(users.rows[0][1], "openid");
    assert_eq!(users.rows[1][1], format!("'{formula}"));
    assert_eq!(users.rows[1][3], "10", "the welcome credits, as a number");

    let orders = export(
        &system,
        &admin,
        "/api/v1/admin/orders?format=csv&status=paid",
    )
    .await;
    assert_eq!(orders.rows.len(), 1, "only the header: nothing paid");
}

#[tokio::test]
async fn an_export_needs_the_admin_session_and_a_known_format() {
    let system = System::start(Options::membership_flows()).await;
    let response = system
        .http
        .get(format!(
            "{}/api/v1/admin/orders?format=csv",
            system.gateway()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let admin = system.admin_sign_in().await;
    let (status, body): (u16, Value) = admin.get("/api/v1/admin/users?format=xml").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn the_audit_log_lists_each_adjustment_newest_first_with_its_ledger_reference() {
    let system = System::start(Options::membership_flows()).await;
    system.bind_client("audit-pc", "o_audited").await;
    let admin = system.admin_sign_in().await;
    for (delta, reason) in [
        (15, "compensation, ticket 7"),
        (-3, "=refund of a mistaken grant"),
    ] {
        let adjustment = api::adjustment("o_audited", delta, reason);
        api::answer(admin.api().admin_adjust_credits().body(adjustment).send())
            .await
            .expect("the adjustment");
    }
    let log = api::answer(admin.api().admin_audit().send())
        .await
        .expect("the audit log");
    assert_eq!(log.total, 2);
    let newest = &log.audit[0];
    assert_eq!(newest.actor, "admin");
    assert_eq!(newest.action, "adjust_credits");
    assert_eq!(newest.openid.as_deref(), Some("o_audited"));
    assert_eq!(newest.delta, -3);
    assert_eq!(newest.reason, "=refund of a mistaken grant");
    assert_eq!(log.audit[1].delta, 15);
    // Each entry names the ledger row it made.
    let pool = system.db.primary().await;
    for entry in &log.audit {
        let delta: i64 = sqlx::query_scalar(
            "SELECT delta FROM credit_ledger WHERE reason = 'admin_adjust' AND reference = ?",
        )
        .bind(&entry.reference)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(delta, entry.delta, "{}", entry.reference);
    }
    pool.close().await;

    let file = export(&system, &admin, "/api/v1/admin/audit?format=csv").await;
    assert_eq!(
        file.rows[0],
        [
            "id",
            "actor",
            "action",
            "openid",
            "delta",
            "reason",
            "reference",
            "created_at"
        ]
    );
    assert_eq!(file.rows.len(), 3);
    assert_eq!(file.rows[1][4], "-3", "a number is not a formula");
    assert_eq!(file.rows[1][5], "'=refund of a mistaken grant");
}

/// What an operator has just done shows in the lists at once, though the replica has not
/// applied it yet: the lists read as of the operator's own last write.
#[tokio::test]
async fn an_operators_own_changes_show_at_once_while_the_replica_lags() {
    let system = System::start(Options {
        replica: Replica::Lagging,
        ..Options::with_refunds()
    })
    .await;
    let browser = system.sign_in("o_lag_operator").await;
    let order_no = system.paid_credits(&browser, 10).await;
    let admin = system.admin_sign_in().await;
    system.db.wait_for_replica().await;
    system.db.pause_replica().await;

    let adjustment = api::adjustment("o_lag_operator", 5, "goodwill");
    api::answer(admin.api().admin_adjust_credits().body(adjustment).send())
        .await
        .expect("the adjustment");
    let refund = api::answer(
        admin
            .api()
            .admin_refund_order()
            .order_no(&order_no)
            .body(api::refund(100, "partly unhappy"))
            .send(),
    )
    .await
    .expect("the refund");
    let yesterday =
        (chrono::Utc::now() + chrono::Duration::hours(8) - chrono::Duration::days(1)).date_naive();
    let client = admin.api();
    let check = client
        .admin_check_bill()
        .bill_date(yesterday.to_string())
        .send();
    api::answer(check).await.expect("the bill check");

    let audit = api::answer(admin.api().admin_audit().send()).await;
    let refunds = api::answer(admin.api().admin_refunds().send()).await;
    let orders = api::answer(admin.api().admin_orders().status("paid").send()).await;
    let bills = api::answer(admin.api().admin_bills().send()).await;
    // Prove the replica really is behind before judging what the lists answered.
    let stale: i64 = {
        let replica =
            sqlx::MySqlPool::connect(secrecy::ExposeSecret::expose_secret(&system.db.replica_url))
                .await
                .unwrap();
        let entries = sqlx::query_scalar("SELECT COUNT(*) FROM admin_audit")
            .fetch_one(&replica)
            .await
            .unwrap();
        replica.close().await;
        entries
    };
    system.db.resume_replica().await;
    assert_eq!(stale, 0, "the replica should still be behind");
    let audit = audit.expect("the audit log");
    let actions: Vec<&str> = audit.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["refund", "adjust_credits"], "{audit:?}");
    let refunds = refunds.expect("the refunds");
    assert_eq!(refunds.total, 1, "{refunds:?}");
    assert_eq!(refunds.refunds[0].refund_no, refund.refund_no);
    let orders = orders.expect("the paid orders");
    assert_eq!(orders.orders[0].order_no, order_no, "{orders:?}");
    assert_eq!(orders.orders[0].refunded_fee, 100, "{orders:?}");
    let bills = bills.expect("the checked bills");
    assert_eq!(bills.total, 1, "{bills:?}");
    assert_eq!(bills.bills[0].bill_date, yesterday.to_string());
}

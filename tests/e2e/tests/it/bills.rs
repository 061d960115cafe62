//! The daily reconciliation of WeChat Pay's bill (`pay/downloadbill`, the sandbox's bill in
//! WeChat Pay's documented layout) against our orders and refunds, through the admin API: every
//! kind of difference is found and named, a matching or empty day is reported as such, and a
//! check changes no money.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, Utc};
use e2e::{Options, System};
use sandbox::BillRow;

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

pub(crate) fn yesterday() -> NaiveDate {
    (Utc::now().with_timezone(&china()) - chrono::Duration::days(1)).date_naive()
}

/// Noon of `day` in China time, in UTC (for our rows) and as WeChat Pay writes times.
fn noon(day: NaiveDate) -> (chrono::DateTime<Utc>, String, String) {
    let at = day
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_local_timezone(china())
        .unwrap();
    (
        at.with_timezone(&Utc),
        at.format("%Y%m%d%H%M%S").to_string(),
        at.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// Moves a payment to `day` on both sides: WeChat Pay's time_end and our paid_at.
pub(crate) async fn pay_on(system: &System, order_no: &str, day: NaiveDate) {
    let (utc, time_end, _) = noon(day);
    assert!(system.sandbox.set_time_end(order_no, &time_end));
    let pool = system.db.primary().await;
    sqlx::query("UPDATE payment_orders SET paid_at = ? WHERE out_trade_no = ?")
        .bind(utc)
        .bind(order_no)
        .execute(&pool)
        .await
        .unwrap();
}

fn kinds(report: &serde_json::Value) -> Vec<(String, String)> {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["order_no"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_bill_check_names_every_difference_and_changes_no_money() {
    let system = System::start(Options::membership_flows()).await;
    let browser = system.sign_in("o_bill").await;
    let admin = system.admin_sign_in().await;
    let day = yesterday();
    let (matched, amount, ours_only) = (
        system.paid_credits(&browser, 10).await,
        system.paid_credits(&browser, 4).await,
        system.paid_credits(&browser, 2).await,
    );
    for order_no in [&matched, &amount, &ours_only] {
        pay_on(&system, order_no, day).await;
    }
    // WeChat Pay has ours_only on the day before, and a payment for an order we never made.
    let (_, earlier, _) = noon(day - chrono::Duration::days(1));
    assert!(system.sandbox.set_time_end(&ours_only, &earlier));
    let (_, _, bill_time) = noon(day);
    system
        .sandbox
        .add_bill_row(BillRow::payment("XT_NOT_OURS_0001", 990, &bill_time));
    // Our record of one amount is off by a fen.
    let pool = system.db.primary().await;
    sqlx::query("UPDATE payment_orders SET total_fee = total_fee + 1 WHERE out_trade_no = ?")
        .bind(&amount)
        .execute(&pool)
        .await
        .unwrap();
    let before = system.snapshot("o_bill").await;

    let path = format!("/api/v1/admin/bills/{day}/check");
    let (status, report) = admin.post(&path, serde_json::json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["check"]["status"], "differences");
    assert_eq!(report["check"]["wechat_payments"], 3);
    assert_eq!(report["check"]["wechat_payment_fen"], 500 + 200 + 990);
    assert_eq!(
        kinds(&report),
        [
            ("unknown_order".to_owned(), "XT_NOT_OURS_0001".to_owned()),
            ("amount_mismatch".to_owned(), amount.clone()),
            ("missing_from_bill".to_owned(), ours_only.clone()),
        ]
    );
    let off = &report["differences"][1];
    assert_eq!(
        (off["wechat_fee"].as_i64(), off["our_fee"].as_i64()),
        (Some(200), Some(201))
    );
    assert_eq!(
        system.snapshot("o_bill").await,
        before,
        "a check changes no money"
    );

    // The day is listed and its report can be read again.
    let (_, list) = admin.get("/api/v1/admin/bills").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["bills"][0]["bill_date"], day.to_string());
    assert_eq!(list["bills"][0]["differences"], 3);
    let (status, again) = admin.get(&format!("/api/v1/admin/bills/{day}")).await;
    assert_eq!(status, 200);
    assert_eq!(kinds(&again), kinds(&report));

    // A day without transactions: no bill, nothing differs. Today has no bill yet.
    let quiet = day - chrono::Duration::days(5);
    let (status, empty) = admin
        .post(
            &format!("/api/v1/admin/bills/{quiet}/check"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["check"]["status"], "no_bill");
    let today = day + chrono::Duration::days(1);
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/bills/{today}/check"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &"invalid_argument".into())
    );
    let (status, _) = admin
        .post(
            "/api/v1/admin/bills/2026-13-01/check",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = admin.get(&format!("/api/v1/admin/bills/{quiet}x")).await;
    assert_eq!(status, 400);
    assert!(system.sandbox.stats().bill_downloads >= 2);
}

#[tokio::test]
async fn refunds_are_matched_by_number_on_the_day_wechat_pay_accepted_them() {
    let system = System::start(Options::with_refunds()).await;
    let browser = system.sign_in("o_bill_refund").await;
    let admin = system.admin_sign_in().await;
    let day = yesterday();
    let order_no = system.paid_credits(&browser, 10).await;
    pay_on(&system, &order_no, day).await;
    let (status, refund) = admin
        .post(
            &format!("/api/v1/admin/orders/{order_no}/refunds"),
            serde_json::json!({ "refund_fee": 200, "reason": "对账测试" }),
        )
        .await;
    assert_eq!(status, 200, "{refund}");
    let refund_no = refund["refund_no"].as_str().unwrap().to_owned();
    // Settled, then moved to the day on both sides.
    for _ in 0..100 {
        let (_, list) = admin.get("/api/v1/admin/refunds").await;
        if list["refunds"][0]["status"] == "success" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (utc, _, bill_time) = noon(day);
    assert!(system.sandbox.set_refund_time(&refund_no, &bill_time));
    let pool = system.db.primary().await;
    sqlx::query("UPDATE payment_refunds SET created_at = ? WHERE out_refund_no = ?")
        .bind(utc)
        .bind(&refund_no)
        .execute(&pool)
        .await
        .unwrap();
    let path = format!("/api/v1/admin/bills/{day}/check");
    let (status, report) = admin.post(&path, serde_json::json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["check"]["status"], "matched", "{report}");
    assert_eq!(report["check"]["wechat_refunds"], 1);
    assert_eq!(report["check"]["wechat_refund_fen"], 200);

    // A refund WeChat Pay reports that we never asked for is named.
    system.sandbox.add_bill_row(BillRow::refund(
        &order_no,
        "RF_NOT_OURS_0001",
        100,
        &bill_time,
    ));
    let (_, report) = admin.post(&path, serde_json::json!({})).await;
    assert_eq!(report["check"]["status"], "differences");
    assert_eq!(report["differences"][0]["kind"], "unknown_refund");
    assert_eq!(report["differences"][0]["refund_no"], "RF_NOT_OURS_0001");
}

#[tokio::test]
async fn the_daily_job_checks_yesterday_once_by_itself() {
    let system = System::start(Options {
        bill_check_interval_ms: 100,
        bill_check_hour: 0,
        ..Options::membership_flows()
    })
    .await;
    let admin = system.admin_sign_in().await;
    let mut listed = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, list) = admin.get("/api/v1/admin/bills").await;
        if list["total"] == 1 && list["bills"][0]["status"] != "running" {
            listed = list;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["bills"][0]["bill_date"], yesterday().to_string());
    assert_eq!(listed["bills"][0]["status"], "no_bill");
    // Later rounds leave the checked day alone: one download, however many rounds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(system.sandbox.stats().bill_downloads, 1);
}

//! The daily reconciliation of WeChat Pay's bill (`pay/downloadbill`, the sandbox's bill in
//! WeChat Pay's documented layout) against our orders and refunds, through the admin API: every
//! kind of difference is found and named, a matching or empty day is reported as such, and a
//! check changes no money.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, Utc};
use e2e::api::{self, Answer, refusal, types};
use e2e::{MemberBrowser, Options, System};
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

/// The operator has the day's bill fetched and checked now.
pub(crate) async fn check_bill(
    admin: &MemberBrowser,
    day: impl std::fmt::Display,
) -> Answer<types::BillReportOut> {
    let client = admin.api();
    let call = client.admin_check_bill().bill_date(day.to_string());
    api::answer(call.send()).await
}

/// The status of a report's check.
pub(crate) fn check_status(report: &types::BillReportOut) -> &str {
    &report.check.as_ref().expect("a checked day").status
}

/// Each difference's kind and order.
fn kinds(report: &types::BillReportOut) -> Vec<(String, String)> {
    report
        .differences
        .iter()
        .map(|d| (d.kind.clone(), d.order_no.clone().unwrap_or_default()))
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

    let report = check_bill(&admin, day).await.expect("the report");
    assert_eq!(check_status(&report), "differences");
    let check = report.check.as_ref().unwrap();
    assert_eq!(check.wechat_payments, 3);
    assert_eq!(check.wechat_payment_fen, 500 + 200 + 990);
    assert_eq!(
        kinds(&report),
        [
            ("unknown_order".to_owned(), "XT_NOT_OURS_0001".to_owned()),
            ("amount_mismatch".to_owned(), amount.clone()),
            ("missing_from_bill".to_owned(), ours_only.clone()),
        ]
    );
    let off = &report.differences[1];
    assert_eq!((off.wechat_fee, off.our_fee), (Some(200), Some(201)));
    assert_eq!(
        system.snapshot("o_bill").await,
        before,
        "a check changes no money"
    );

    // The day is listed and its report can be read again.
    let list = api::answer(admin.api().admin_bills().send())
        .await
        .expect("the checked days");
    assert_eq!(list.total, 1);
    assert_eq!(list.bills[0].bill_date, day.to_string());
    assert_eq!(list.bills[0].differences, 3);
    let client = admin.api();
    let again = client.admin_bill_report().bill_date(day.to_string());
    let again = api::answer(again.send()).await.expect("the report again");
    assert_eq!(kinds(&again), kinds(&report));

    // A day without transactions: no bill, nothing differs. Today has no bill yet.
    let quiet = day - chrono::Duration::days(5);
    let empty = check_bill(&admin, quiet)
        .await
        .expect("the quiet day's report");
    assert_eq!(check_status(&empty), "no_bill");
    let today = day + chrono::Duration::days(1);
    let too_early = refusal(check_bill(&admin, today).await);
    assert_eq!(too_early.status_and_code(), (400, "invalid_argument"));
    assert_eq!(refusal(check_bill(&admin, "2026-13-01").await).status, 400);
    let not_a_day = client.admin_bill_report().bill_date(format!("{quiet}x"));
    assert_eq!(refusal(api::answer(not_a_day.send()).await).status, 400);
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
    let client = admin.api();
    let refund = client
        .admin_refund_order()
        .order_no(&order_no)
        .body(api::refund(200, "对账测试"))
        .send();
    let refund_no = api::answer(refund).await.expect("the refund").refund_no;
    // Settled, then moved to the day on both sides.
    for _ in 0..100 {
        let list = api::answer(admin.api().admin_refunds().send())
            .await
            .expect("the refunds");
        if list.refunds[0].status == "success" {
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
    let report = check_bill(&admin, day).await.expect("the report");
    assert_eq!(check_status(&report), "matched", "{report:?}");
    let check = report.check.as_ref().unwrap();
    assert_eq!((check.wechat_refunds, check.wechat_refund_fen), (1, 200));

    // A refund WeChat Pay reports that we never asked for is named.
    system.sandbox.add_bill_row(BillRow::refund(
        &order_no,
        "RF_NOT_OURS_0001",
        100,
        &bill_time,
    ));
    let report = check_bill(&admin, day).await.expect("the report");
    assert_eq!(check_status(&report), "differences");
    assert_eq!(report.differences[0].kind, "unknown_refund");
    assert_eq!(
        report.differences[0].refund_no.as_deref(),
        Some("RF_NOT_OURS_0001")
    );
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
    let mut listed = None;
    for _ in 0..100 {
        let list = api::answer(admin.api().admin_bills().send())
            .await
            .expect("the checked days");
        if list.total == 1 && list.bills[0].status != "running" {
            listed = list.bills.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = listed.expect("yesterday checked");
    assert_eq!(listed.bill_date, yesterday().to_string());
    assert_eq!(listed.status, "no_bill");
    // Later rounds leave the checked day alone: one download, however many rounds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(system.sandbox.stats().bill_downloads, 1);
}

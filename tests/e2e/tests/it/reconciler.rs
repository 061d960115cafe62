//! The reconciler against every `trade_state` WeChat Pay's `orderquery` can answer: one defined
//! outcome each, a backoff per order instead of a query per round, and the states that need a
//! person taken off the schedule with the reason kept on the order.

use std::time::Duration;

use e2e::{MemberBrowser, Options, System};
use sandbox::NotifyMode;
use sandbox::pay::TradeState;

async fn order(browser: &MemberBrowser) -> String {
    browser
        .create_order(e2e::api::credits_order(2))
        .await
        .order
        .order_no
}

/// A reconciler round every 100 ms, asking about orders at once, first again after 1 s.
fn fast_reconciler() -> Options {
    Options {
        reconcile_interval_ms: 100,
        reconcile_query_after_secs: 0,
        reconcile_backoff_first_secs: 1,
        ..Options::membership_flows()
    }
}

/// Moves an order three hours into the past, here and at WeChat Pay: past its lifetime and old
/// enough to close.
pub(crate) async fn age(system: &System, no: &str) {
    let pool = system.db.primary().await;
    sqlx::query(
        "UPDATE payment_orders SET created_at = NOW(3) - INTERVAL 3 HOUR, \
         expire_at = NOW(3) - INTERVAL 1 HOUR WHERE out_trade_no = ?",
    )
    .bind(no)
    .execute(&pool)
    .await
    .unwrap();
    system.sandbox.age_pay_order(no, 3 * 3600);
}

async fn order_row(system: &System, no: &str) -> (String, String, i32) {
    let pool = system.db.primary().await;
    sqlx::query_as(
        "SELECT CAST(status AS CHAR), attention, checks FROM payment_orders WHERE out_trade_no = ?",
    )
    .bind(no)
    .fetch_one(&pool)
    .await
    .unwrap()
}

/// Waits until the order's row matches `done`, or fails after 15 s.
async fn wait_row(system: &System, no: &str, done: impl Fn(&(String, String, i32)) -> bool) {
    for _ in 0..150 {
        if done(&order_row(system, no).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{no} never settled: {:?}", order_row(system, no).await);
}

#[tokio::test]
async fn every_trade_state_has_one_outcome() {
    let system = System::start(fast_reconciler()).await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let browser = system.sign_in("o_reconciled").await;
    let mut cases = Vec::new();
    for state in [
        TradeState::NotPay,
        TradeState::PayError,
        TradeState::Closed,
        TradeState::Revoked,
        TradeState::Refund,
        TradeState::UserPaying,
    ] {
        let old = order(&browser).await;
        assert!(system.sandbox.set_trade_state(&old, state));
        age(&system, &old).await;
        cases.push((state, old));
    }
    let young_paying = order(&browser).await;
    system
        .sandbox
        .set_trade_state(&young_paying, TradeState::UserPaying);

    for (state, no) in &cases {
        let (status, attention) = match state {
            // Closed at WeChat Pay first, then here.
            TradeState::NotPay | TradeState::PayError => ("closed", ""),
            TradeState::Closed | TradeState::Revoked => ("closed", ""),
            // Money was taken and given back before we applied it: a person decides.
            TradeState::Refund => ("notpay", "refund_unapplied"),
            // Still paying long after the order's end: a person looks.
            TradeState::UserPaying => ("notpay", "userpaying_stuck"),
            TradeState::Success => unreachable!(),
        };
        wait_row(&system, no, |row| row.0 == status && row.1 == attention).await;
        if matches!(state, TradeState::NotPay | TradeState::PayError) {
            assert_eq!(
                system.sandbox.pay_order(no).unwrap().state,
                TradeState::Closed,
                "{state:?}: closed at WeChat Pay"
            );
        }
    }
    // A person's orders are off the schedule: no more questions about them.
    let settled_checks = [
        order_row(&system, &cases[4].1).await.2,
        order_row(&system, &cases[5].1).await.2,
    ];
    // A user still paying a live order is left alone (asked again later, never closed).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, attention, _) = order_row(&system, &young_paying).await;
    assert_eq!((status.as_str(), attention.as_str()), ("notpay", ""));
    assert_eq!(
        system.sandbox.pay_order(&young_paying).unwrap().state,
        TradeState::UserPaying
    );
    assert_eq!(
        [
            order_row(&system, &cases[4].1).await.2,
            order_row(&system, &cases[5].1).await.2,
        ],
        settled_checks
    );
    // No credits moved for any of them.
    assert_eq!(browser.profile().await.remaining_credits, 0);
    // The user finishes paying the live one: the next check applies it.
    system.sandbox.pay(&young_paying).await.unwrap();
    browser.wait_for_order(&young_paying, "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 2);
    system.assert_ledger_invariant().await;
}

/// An abandoned order is asked about on a doubling pause, not once per round: over five seconds
/// of 100 ms rounds (50 rounds) it is asked about two to four times (pauses of 1, 2 and 4 s).
#[tokio::test]
async fn an_abandoned_order_is_asked_about_on_a_backoff() {
    let system = System::start(fast_reconciler()).await;
    let browser = system.sign_in("o_abandoned").await;
    let no = order(&browser).await;
    let before = system.sandbox.stats().order_queries;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let asked = system.sandbox.stats().order_queries - before;
    // Pauses of 1, 2, 4 s after the checks at about 0, 1 and 3 s.
    assert!((2..=4).contains(&asked), "asked {asked} times in 5 s");
    let (status, _, checks) = order_row(&system, &no).await;
    assert_eq!(status, "notpay");
    // The claim is counted just before its query is sent.
    let asked = i64::try_from(asked).unwrap();
    assert!(
        (asked..=asked + 1).contains(&i64::from(checks)),
        "{checks} checks"
    );
}

/// An order whose row another session holds locked (a write in flight, a primary that froze
/// mid-transaction) is passed over for the round, not waited for: InnoDB would wait its lock
/// timeout (50 s) and every order after it in the round with it, round after round.
#[tokio::test]
async fn an_order_locked_elsewhere_does_not_hold_up_the_others() {
    let system = System::start(fast_reconciler()).await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let browser = system.sign_in("o_locked").await;
    let locked = order(&browser).await;
    let pool = system.db.primary().await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT out_trade_no FROM payment_orders WHERE out_trade_no = ? FOR UPDATE")
        .bind(&locked)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    // Past its first pause: the rounds ask about it again, and it comes first (the oldest).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let other = order(&browser).await;
    system.sandbox.pay(&other).await.unwrap();
    wait_row(&system, &other, |row| row.0 == "paid").await;

    // Once the lock is gone the order is asked about again like any other.
    system.sandbox.pay(&locked).await.unwrap();
    holder.rollback().await.unwrap();
    wait_row(&system, &locked, |row| row.0 == "paid").await;
    assert_eq!(browser.profile().await.remaining_credits, 4);
    system.assert_ledger_invariant().await;
}

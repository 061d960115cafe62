//! Retention: events, bindings that bind nothing and settled credit holds are deleted once past
//! their days; what is recent, what still binds and what still holds credits stays, and the
//! ledger is never touched.

use std::time::Duration;

use e2e::{Options, System};
use proto::membership::v1 as pb;

async fn count(pool: &sqlx::MySqlPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn records_past_their_retention_are_deleted_and_nothing_else() {
    let system = System::start(Options {
        retention_interval_ms: 200,
        ..Options::membership_flows()
    })
    .await;
    // A bound app (its subscribe event), a QR code never scanned, and an app signed out.
    let bound = system.bind_client("kept-pc", "o_retention").await;
    system.create_qrcode("never-scanned").await;
    let gone = system.bind_client("gone-pc", "o_retention_2").await;
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/unbind", system.gateway()))
        .bearer_auth(&gone)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A captured hold, a released one and one still held.
    let user_id = system.user_id("o_retention").await;
    let mut credits = system.credit_client();
    for reference in ["old-captured", "old-released", "still-held"] {
        credits
            .reserve(pb::ReserveRequest {
                user_id,
                amount: 1,
                reference: reference.into(),
                ttl_seconds: 600,
            })
            .await
            .unwrap();
    }
    credits
        .commit(pb::CommitRequest {
            reference: "old-captured".into(),
            used: 1,
        })
        .await
        .unwrap();
    credits
        .release(pb::ReleaseRequest {
            reference: "old-released".into(),
        })
        .await
        .unwrap();

    // The rows to delete exist; being recent, retention leaves them alone so far.
    let pool = system.db.primary().await;
    let old = "SELECT \
        (SELECT COUNT(*) FROM wechat_events WHERE openid = 'o_retention') + \
        (SELECT COUNT(*) FROM client_bindings WHERE status = 'pending') + \
        (SELECT COUNT(*) FROM credit_holds WHERE status <> 'held')";
    assert_eq!(
        count(&pool, old).await,
        1 + 2 + 2,
        "the rows to delete exist"
    );

    // Everything is made 100 days old except the new follower's event, which stays recent.
    // Retention runs every 200 ms: from here on it may delete at any moment.
    let ledger_before = count(&pool, "SELECT COUNT(*) FROM credit_ledger").await;
    for sql in [
        "UPDATE wechat_events SET received_at = NOW(3) - INTERVAL 100 DAY WHERE openid = 'o_retention'",
        "UPDATE client_bindings SET expire_at = NOW(3) - INTERVAL 100 DAY",
        "UPDATE credit_holds SET expires_at = NOW(3) - INTERVAL 100 DAY WHERE status <> 'held'",
        "UPDATE credit_holds SET expires_at = NOW(3) + INTERVAL 1 HOUR WHERE status = 'held'",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    for _ in 0..100 {
        if count(&pool, old).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&pool, old).await, 0, "retention never deleted them");

    // What stays: the recent event, the bound app (it still works), the live hold, the ledger.
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM wechat_events WHERE openid = 'o_retention_2'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM client_bindings WHERE client_id = 'kept-pc'"
        )
        .await,
        1
    );
    system
        .account(&bound)
        .await
        .expect("a bound app keeps its token");
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM credit_holds WHERE reference = 'still-held'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM credit_ledger").await,
        ledger_before
    );
    pool.close().await;
    // The app whose row went can bind again.
    system.bind_client("gone-pc", "o_retention_2").await;
    system.assert_ledger_invariant().await;
}

//! `platform::db::retry_transaction` against a real lock: a transaction that waits too long for a
//! row another session holds gets InnoDB's lock wait timeout (1205) and is run again; one that
//! fails for another reason is not; and it is run three times at most.
#![allow(clippy::expect_used)] // a test binary: failing loudly is the point

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use platform::db::{is_retryable, retry_transaction};
use platform::testing::{Replica, TestDatabase};
use secrecy::ExposeSecret;
use sqlx::mysql::MySqlPool;
use sqlx::{Connection, Executor, MySqlConnection};

/// A test database with one counter row, and its primary pool.
async fn counter() -> (TestDatabase, MySqlPool) {
    let db = TestDatabase::create("retry_transaction", Replica::Shared).await;
    let pool = db.pools().primary;
    pool.execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
        .await
        .expect("create table");
    pool.execute("INSERT INTO counters VALUES (1, 0)")
        .await
        .expect("insert");
    (db, pool)
}

/// Another session holding the counter row's lock until it commits.
async fn hold_the_row(db: &TestDatabase) -> MySqlConnection {
    let mut holder = MySqlConnection::connect(db.primary_url.expose_secret())
        .await
        .expect("connect");
    holder.execute("BEGIN").await.expect("begin");
    holder
        .execute("SELECT n FROM counters WHERE id = 1 FOR UPDATE")
        .await
        .expect("lock the row");
    holder
}

/// One attempt: a transaction of its own that increments the counter, waiting at most a second
/// for its lock; `attempts` counts the attempts made.
async fn increment(pool: &MySqlPool, attempts: &AtomicU32) -> Result<(), sqlx::Error> {
    attempts.fetch_add(1, Ordering::SeqCst);
    let mut conn = pool.acquire().await?;
    conn.execute("SET SESSION innodb_lock_wait_timeout = 1")
        .await?;
    let mut tx = conn.begin().await?;
    tx.execute("UPDATE counters SET n = n + 1 WHERE id = 1")
        .await?;
    tx.commit().await
}

/// The database error is the error itself.
fn itself(err: &sqlx::Error) -> Option<&sqlx::Error> {
    Some(err)
}

async fn count(pool: &MySqlPool) -> i32 {
    sqlx::query_scalar("SELECT n FROM counters WHERE id = 1")
        .fetch_one(pool)
        .await
        .expect("read the counter")
}

#[tokio::test]
async fn a_lock_wait_timeout_runs_the_transaction_again() {
    let (db, pool) = counter().await;
    let mut holder = hold_the_row(&db).await;
    let attempts = Arc::new(AtomicU32::new(0));
    // The lock is held through the first attempt (its wait ends after a second, with 1205) and
    // given up once the second has begun, which then gets the row.
    let second_begun = attempts.clone();
    let release = tokio::spawn(async move {
        while second_begun.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        holder.execute("COMMIT").await.expect("commit");
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        retry_transaction(|| increment(&pool, &attempts), itself),
    )
    .await
    .expect("the retries end");
    release.await.expect("release");
    outcome.expect("the attempt after the lock was given up commits");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(count(&pool).await, 1, "committed once");
    db.drop_database().await;
}

#[tokio::test]
async fn a_transaction_is_run_three_times_at_most() {
    let (db, pool) = counter().await;
    let mut holder = hold_the_row(&db).await;
    let attempts = AtomicU32::new(0);
    let outcome = retry_transaction(|| increment(&pool, &attempts), itself).await;
    let err = outcome.expect_err("the row stays locked");
    assert!(is_retryable(&err), "the last lock wait timeout: {err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    holder.execute("COMMIT").await.expect("commit");
    assert_eq!(count(&pool).await, 0, "nothing committed");
    db.drop_database().await;
}

#[tokio::test]
async fn another_error_is_returned_at_once() {
    let (db, pool) = counter().await;
    let attempts = AtomicU32::new(0);
    let outcome = retry_transaction(
        || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            pool.execute("INSERT INTO counters VALUES (1, 0)")
                .await
                .map(|_| ())
        },
        itself,
    )
    .await;
    let err = outcome.expect_err("a duplicate key");
    assert!(platform::db::is_unique_violation(&err), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    db.drop_database().await;
}

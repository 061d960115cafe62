//! The credit ledger is append-only in the database itself, checked with the real users of
//! `deploy/mysql/init`: the migration user owns the schema; the runtime user can add rows but
//! not change or delete one, nor change the schema or read another service's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: failing loudly is the point

use platform::testing::service_user_url;
use secrecy::ExposeSecret;
use sqlx::mysql::MySqlPool;

const SCHEMA: &str = "xintu_membership";

async fn connect(user: &str, password: &str, schema: &str) -> MySqlPool {
    let url = service_user_url(user, password, schema);
    MySqlPool::connect(url.expose_secret()).await.unwrap()
}

/// Runs `sql` and returns the server's error message; panics if it succeeded.
async fn refused(pool: &MySqlPool, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(pool).await {
        Ok(_) => panic!("{sql} was allowed"),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn the_runtime_user_cannot_change_ledger_rows_or_the_schema() {
    let owner = connect("membership_migrate", "membership-migrate-local", SCHEMA).await;
    membership_svc::MIGRATOR.run(&owner).await.unwrap();
    let runtime = connect("membership", "membership-local", SCHEMA).await;

    // Rows are what the service writes: a user and a ledger row go in.
    let tag = format!("{:016x}", rand::random::<u64>());
    let user_id = sqlx::query("INSERT INTO wechat_users (openid, remaining_credits) VALUES (?, 5)")
        .bind(format!("o_rights_{tag}"))
        .execute(&runtime)
        .await
        .unwrap()
        .last_insert_id();
    let reference = format!("rights-{tag}");
    sqlx::query(
        "INSERT INTO credit_ledger (user_id, delta, balance_after, reason, reference) \
         VALUES (?, 5, 5, 'admin_adjust', ?)",
    )
    .bind(user_id)
    .bind(&reference)
    .execute(&runtime)
    .await
    .unwrap();

    let edit = format!("UPDATE credit_ledger SET delta = 500 WHERE reference = '{reference}'");
    let delete = format!("DELETE FROM credit_ledger WHERE reference = '{reference}'");
    for pool in [&runtime, &owner] {
        assert!(refused(pool, &edit).await.contains("append-only"));
        assert!(refused(pool, &delete).await.contains("append-only"));
    }
    // Without DDL the runtime user cannot take the guard away or empty the table.
    for sql in [
        "DROP TRIGGER credit_ledger_no_update",
        "TRUNCATE TABLE credit_ledger",
        "ALTER TABLE credit_ledger ADD COLUMN note INT",
        "DROP TABLE credit_ledger",
        "CREATE TABLE scratch (id INT)",
    ] {
        let message = refused(&runtime, sql).await;
        assert!(message.contains("denied"), "{sql}: {message}");
    }
    let (delta, rows): (i64, i64) = sqlx::query_as(
        "SELECT CAST(SUM(delta) AS SIGNED), COUNT(*) FROM credit_ledger WHERE reference = ?",
    )
    .bind(&reference)
    .fetch_one(&runtime)
    .await
    .unwrap();
    assert_eq!((delta, rows), (5, 1), "the row is as written");

    // The one change allowed: an erasure puts a pseudonym in place of the openid that
    // references a welcome bonus, and nothing else of the row may change with it.
    let openid = format!("o_rights_{tag}");
    sqlx::query(
        "INSERT INTO credit_ledger (user_id, delta, balance_after, reason, reference) \
         VALUES (?, 10, 15, 'follow_bonus', ?)",
    )
    .bind(user_id)
    .bind(&openid)
    .execute(&runtime)
    .await
    .unwrap();
    let erased = format!("erased:{tag}");
    for sql in [
        format!(
            "UPDATE credit_ledger SET reference = '{erased}', delta = 11 WHERE reference = '{openid}'"
        ),
        format!("UPDATE credit_ledger SET reference = 'o_other' WHERE reference = '{openid}'"),
        format!("UPDATE credit_ledger SET reference = '{erased}x' WHERE reference = '{reference}'"),
    ] {
        assert!(
            refused(&runtime, &sql).await.contains("append-only"),
            "{sql}"
        );
    }
    sqlx::query("UPDATE credit_ledger SET reference = ? WHERE reference = ?")
        .bind(&erased)
        .bind(&openid)
        .execute(&runtime)
        .await
        .unwrap();
    let again =
        format!("UPDATE credit_ledger SET reference = '{erased}2' WHERE reference = '{erased}'");
    assert!(
        refused(&runtime, &again).await.contains("append-only"),
        "a pseudonym stays"
    );

    // Another service's schema is not readable.
    let message = refused(&runtime, "SELECT COUNT(*) FROM xintu_photo.edit_tasks").await;
    assert!(message.contains("denied"), "{message}");
}

//! The stats service's database user, with the real users of `deploy/mysql/init`: the migration
//! user owns the schema; the runtime user reads its own tables, changes none of them, and
//! cannot read another service's schema.

#![allow(clippy::unwrap_used)] // a test binary: failing loudly is the point

use platform::testing::{assert_runtime_user_rights, connect_as};

#[tokio::test]
async fn the_runtime_user_has_its_own_rows_and_nothing_else() {
    let owner = connect_as("stats_migrate", "stats-migrate-local", "xintu_stats").await;
    stats_svc::MIGRATOR.run(&owner).await.unwrap();
    let runtime = connect_as("stats", "stats-local", "xintu_stats").await;
    assert_runtime_user_rights(
        &runtime,
        "request_logs",
        &["xintu_membership.wechat_users", "xintu_photo.edit_tasks"],
    )
    .await;
}

//! The photo service's database user, with the real users of `deploy/mysql/init`: the migration
//! user owns the schema; the runtime user reads its own tables, changes none of them, and
//! cannot read another service's schema.

use platform::testing::{assert_runtime_user_rights, connect_as};

#[tokio::test]
async fn the_runtime_user_has_its_own_rows_and_nothing_else() {
    let owner = connect_as("photo_migrate", "photo-migrate-local", "xintu_photo").await;
    photo_svc::MIGRATOR.run(&owner).await.unwrap();
    let runtime = connect_as("photo", "photo-local", "xintu_photo").await;
    assert_runtime_user_rights(
        &runtime,
        "edit_tasks",
        &["xintu_membership.wechat_users", "xintu_stats.request_logs"],
    )
    .await;
}

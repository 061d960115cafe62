//! SQL of the membership service, one module per aggregate. Functions take a connection or a
//! pool; the use case that calls them owns the transaction and picks primary or replica.

pub mod admin;
pub mod bills;
pub mod bindings;
pub mod erasure;
pub mod events;
pub mod holds;
pub mod ledger;
pub mod orders;
pub mod personal_data;
pub mod refunds;
pub mod reminders;
pub mod retention;
pub mod users;

/// Claims the row of `table` whose `key` column holds `value`, in a short transaction of its
/// own: locks it if it matches `due` and no other session holds it (`FOR UPDATE SKIP LOCKED`),
/// then runs `update` (bound to `value` last) on it; whether the update changed it. A claim that
/// found the row held (a payment being applied, a write stalled with its primary) passes it
/// over rather than wait InnoDB's whole lock timeout. `table`, `key`, `due` and `update` are this
/// module's own SQL, never input.
async fn claim_if_due_and_free<'q>(
    pool: &sqlx::MySqlPool,
    table: &str,
    key: &str,
    value: &'q str,
    due: &str,
    update: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: Option<String> = sqlx::query_scalar(&format!(
        "SELECT {key} FROM {table} WHERE {key} = ? AND {due} FOR UPDATE SKIP LOCKED"
    ))
    .bind(value)
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() {
        return Ok(false);
    }
    let updated = update.bind(value).execute(&mut *tx).await?.rows_affected() == 1;
    tx.commit().await?;
    Ok(updated)
}

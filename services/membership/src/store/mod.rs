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

/// Locks the row of `table` whose `key` column holds `value`, if it matches `due` and no other
/// session holds it (`FOR UPDATE SKIP LOCKED`): whether it did. A claim that found the row held
/// (a payment being applied, a write stalled with its primary) passes it over rather than wait
/// InnoDB's whole lock timeout. `table`, `key` and `due` are this module's own SQL, never input.
async fn lock_if_due_and_free(
    conn: &mut sqlx::MySqlConnection,
    table: &str,
    key: &str,
    value: &str,
    due: &str,
) -> Result<bool, sqlx::Error> {
    let locked: Option<String> = sqlx::query_scalar(&format!(
        "SELECT {key} FROM {table} WHERE {key} = ? AND {due} FOR UPDATE SKIP LOCKED"
    ))
    .bind(value)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(locked.is_some())
}

//! `bill_checks` and `bill_differences`, and the reads of orders and refunds a bill is compared
//! with (always the primary: a reconciliation must not miss the last writes).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, MySql, MySqlConnection, MySqlExecutor, MySqlPool, QueryBuilder};

use crate::domain::bill::{BillComparison, DifferenceKind, OurPayment, OurRefund};

#[derive(Clone, Debug, FromRow)]
pub struct BillCheckRow {
    pub bill_date: NaiveDate,
    pub status: String,
    pub wechat_payments: i32,
    pub wechat_payment_fen: i64,
    pub wechat_refunds: i32,
    pub wechat_refund_fen: i64,
    pub differences: i32,
    pub failure: String,
    pub checked_at: DateTime<Utc>,
}

const COLUMNS: &str = "bill_date, CAST(status AS CHAR) AS status, wechat_payments, \
                       wechat_payment_fen, wechat_refunds, wechat_refund_fen, differences, failure, \
                       checked_at";

#[derive(Clone, Debug, FromRow)]
pub struct DifferenceRow {
    #[sqlx(try_from = "String")]
    pub kind: DifferenceKind,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub wechat_fee: Option<i64>,
    pub our_fee: Option<i64>,
}

/// Claims a day: a new row, or with `again` (an operator asks) the day started over whatever it
/// was. Returns whether this call claimed it; without `again`, a day already claimed is left to
/// whoever has it, so the daily job checks each day once across instances.
#[tracing::instrument(name = "bills.claim", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim(
    executor: impl MySqlExecutor<'_>,
    bill_date: NaiveDate,
    again: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if again {
        "INSERT INTO bill_checks (bill_date, status) VALUES (?, 'running') \
         ON DUPLICATE KEY UPDATE status = 'running', checked_at = CURRENT_TIMESTAMP(3)"
    } else {
        "INSERT IGNORE INTO bill_checks (bill_date, status) VALUES (?, 'running')"
    };
    let result = sqlx::query(sql).bind(bill_date).execute(executor).await?;
    // ON DUPLICATE KEY UPDATE counts 2 for an updated row, 0 for an untouched one.
    Ok(result.rows_affected() >= 1)
}

fn in_list<'a>(sql: &'a str, column: &str, values: &'a [String]) -> QueryBuilder<'a, MySql> {
    let mut query = QueryBuilder::new(sql);
    query.push(format!(" WHERE {column} IN ("));
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    list.push_unseparated(")");
    query
}

const PAYMENT_COLUMNS: &str = "SELECT out_trade_no, status = 'paid' AS paid, transaction_id, total_fee \
                               FROM payment_orders";

#[derive(FromRow)]
struct PaymentRow {
    out_trade_no: String,
    paid: bool,
    transaction_id: Option<String>,
    total_fee: i64,
}

impl From<PaymentRow> for OurPayment {
    fn from(row: PaymentRow) -> Self {
        Self {
            out_trade_no: row.out_trade_no,
            paid: row.paid,
            transaction_id: row.transaction_id,
            total_fee: row.total_fee,
        }
    }
}

/// Our orders with these numbers (the bill's), any day.
#[tracing::instrument(name = "bills.orders_named", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn orders_named(
    conn: &mut MySqlConnection,
    numbers: &[String],
) -> Result<Vec<OurPayment>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in numbers.chunks(500) {
        let rows: Vec<PaymentRow> = in_list(PAYMENT_COLUMNS, "out_trade_no", chunk)
            .build_query_as()
            .fetch_all(&mut *conn)
            .await?;
        found.extend(rows.into_iter().map(OurPayment::from));
    }
    Ok(found)
}

/// Our orders paid within [from, to).
#[tracing::instrument(name = "bills.orders_paid_between", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn orders_paid_between(
    conn: &mut MySqlConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<OurPayment>, sqlx::Error> {
    let rows: Vec<PaymentRow> = sqlx::query_as(&format!(
        "{PAYMENT_COLUMNS} WHERE status = 'paid' AND paid_at >= ? AND paid_at < ?"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(OurPayment::from).collect())
}

const REFUND_COLUMNS: &str = "SELECT out_refund_no, refund_fee, status = 'success' AS succeeded \
                              FROM payment_refunds";

#[derive(FromRow)]
struct RefundRow {
    out_refund_no: String,
    refund_fee: i64,
    succeeded: bool,
}

impl From<RefundRow> for OurRefund {
    fn from(row: RefundRow) -> Self {
        Self {
            out_refund_no: row.out_refund_no,
            refund_fee: row.refund_fee,
            succeeded: row.succeeded,
        }
    }
}

/// Our refunds with these numbers (the bill's), any day.
#[tracing::instrument(name = "bills.refunds_named", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn refunds_named(
    conn: &mut MySqlConnection,
    numbers: &[String],
) -> Result<Vec<OurRefund>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in numbers.chunks(500) {
        let rows: Vec<RefundRow> = in_list(REFUND_COLUMNS, "out_refund_no", chunk)
            .build_query_as()
            .fetch_all(&mut *conn)
            .await?;
        found.extend(rows.into_iter().map(OurRefund::from));
    }
    Ok(found)
}

/// Our refunds WeChat Pay accepted within [from, to) (the bill lists a refund on the day it was
/// accepted, whatever became of it): all but those still open without an answer and those it
/// refused outright.
#[tracing::instrument(name = "bills.refunds_accepted_between", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn refunds_accepted_between(
    conn: &mut MySqlConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<OurRefund>, sqlx::Error> {
    let rows: Vec<RefundRow> = sqlx::query_as(&format!(
        "{REFUND_COLUMNS} WHERE created_at >= ? AND created_at < ? AND status <> 'pending' \
         AND NOT (status = 'failed' AND failure <> 'REFUNDCLOSE')"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(OurRefund::from).collect())
}

/// Writes a day's outcome: its totals, status, and its differences in place of earlier ones. In
/// the caller's transaction; the day's row is locked first, so two checks of one day write one
/// after the other.
#[tracing::instrument(name = "bills.save", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn save(
    conn: &mut MySqlConnection,
    bill_date: NaiveDate,
    status: &str,
    comparison: &BillComparison,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT bill_date FROM bill_checks WHERE bill_date = ? FOR UPDATE")
        .bind(bill_date)
        .fetch_optional(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM bill_differences WHERE bill_date = ?")
        .bind(bill_date)
        .execute(&mut *conn)
        .await?;
    for difference in &comparison.differences {
        sqlx::query(
            "INSERT INTO bill_differences (bill_date, kind, out_trade_no, out_refund_no, \
             wechat_fee, our_fee) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(bill_date)
        .bind(difference.kind.as_str())
        .bind(&difference.out_trade_no)
        .bind(&difference.out_refund_no)
        .bind(difference.wechat_fee)
        .bind(difference.our_fee)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE bill_checks SET status = ?, wechat_payments = ?, wechat_payment_fen = ?, \
         wechat_refunds = ?, wechat_refund_fen = ?, differences = ?, failure = '', \
         checked_at = CURRENT_TIMESTAMP(3) WHERE bill_date = ?",
    )
    .bind(status)
    .bind(comparison.wechat_payments)
    .bind(comparison.wechat_payment_fen)
    .bind(comparison.wechat_refunds)
    .bind(comparison.wechat_refund_fen)
    .bind(i64::try_from(comparison.differences.len()).unwrap_or(i64::MAX))
    .bind(bill_date)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that a day could not be checked, and why.
#[tracing::instrument(name = "bills.fail", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn fail(
    executor: impl MySqlExecutor<'_>,
    bill_date: NaiveDate,
    failure: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bill_checks SET status = 'failed', failure = ?, checked_at = CURRENT_TIMESTAMP(3) \
         WHERE bill_date = ?",
    )
    .bind(failure)
    .bind(bill_date)
    .execute(executor)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "bills.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    bill_date: NaiveDate,
) -> Result<Option<BillCheckRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bill_checks WHERE bill_date = ?"
    ))
    .bind(bill_date)
    .fetch_optional(executor)
    .await
}

#[tracing::instrument(name = "bills.differences", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn differences(
    executor: impl MySqlExecutor<'_>,
    bill_date: NaiveDate,
) -> Result<Vec<DifferenceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, out_trade_no, out_refund_no, wechat_fee, our_fee FROM bill_differences \
         WHERE bill_date = ? ORDER BY id",
    )
    .bind(bill_date)
    .fetch_all(executor)
    .await
}

/// Checked days, newest first.
#[tracing::instrument(name = "bills.list", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn list(
    pool: &MySqlPool,
    offset: u32,
    limit: u32,
) -> Result<(Vec<BillCheckRow>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bill_checks ORDER BY bill_date DESC LIMIT ? OFFSET ?"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT COUNT(*) FROM bill_checks")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

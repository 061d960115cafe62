//! What must hold once the load has stopped, read from the primary: every order the soak paid is
//! paid and credited exactly once, the ledger adds up, no credit hold is left open, and every
//! request a gateway answered has its record in the statistics.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use e2e::compose::Compose;

use crate::mix::PaidOrder;

fn quoted(values: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    values
        .into_iter()
        .map(|v| format!("'{}'", v.as_ref().replace('\'', "")))
        .collect::<Vec<_>>()
        .join(",")
}

fn number(text: &str) -> Result<i64> {
    text.trim()
        .parse()
        .with_context(|| format!("a number: {text:?}"))
}

/// Polls `probe` every second until it returns 0 or `limit` passes; returns its last answer.
fn settles(limit: Duration, mut probe: impl FnMut() -> Result<i64>) -> Result<i64> {
    let started = Instant::now();
    loop {
        let left = probe()?;
        if left == 0 || started.elapsed() > limit {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every order the soak paid ends paid (the notify, or the reconciler when it was dropped), with
/// exactly one purchase in the ledger for its credits.
pub fn orders_credited_once(compose: &Compose, orders: &[PaidOrder]) -> Result<String> {
    let list = quoted(orders.iter().map(|o| &o.order_no));
    let unpaid = settles(Duration::from_secs(120), || {
        number(&compose.sql(&format!(
            "SELECT COUNT(*) FROM xintu_membership.payment_orders \
             WHERE out_trade_no IN ({list}) AND status <> 'paid'"
        ))?)
    })?;
    if unpaid > 0 {
        println!("{}", unpaid_orders(compose, orders, &list));
    }
    ensure!(
        unpaid == 0,
        "{unpaid} of the soak's paid orders never became paid"
    );
    let rows = compose.sql(&format!(
        "SELECT reference, COUNT(*), SUM(delta) FROM xintu_membership.credit_ledger \
         WHERE reason = 'purchase' AND reference IN ({list}) GROUP BY reference"
    ))?;
    let mut credited = std::collections::BTreeMap::new();
    for line in rows.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        ensure!(fields.len() == 3, "ledger row {line:?}");
        credited.insert(
            fields[0].to_owned(),
            (number(fields[1])?, number(fields[2])?),
        );
    }
    let mut wrong = Vec::new();
    for order in orders {
        match credited.get(&order.order_no) {
            Some(&(1, delta)) if delta == order.credits => {}
            other => wrong.push(format!(
                "{} ({} credits): {other:?}",
                order.order_no, order.credits
            )),
        }
    }
    ensure!(
        wrong.is_empty(),
        "orders not credited exactly once: {wrong:?}"
    );
    // And every paid order of the database, the setup's and earlier runs' included.
    let elsewhere = number(&compose.sql(
        "SELECT COUNT(*) FROM xintu_membership.payment_orders o WHERE o.status = 'paid' AND \
         (SELECT COUNT(*) FROM xintu_membership.credit_ledger l WHERE l.reference = o.out_trade_no \
          AND l.reason IN ('purchase', 'membership_bonus')) <> 1",
    )?)?;
    ensure!(
        elsewhere == 0,
        "{elsewhere} paid orders without exactly one ledger row"
    );
    Ok(format!(
        "{} orders paid by the soak: each paid and credited exactly once",
        orders.len()
    ))
}

/// What the database and the membership instances' logs say about the paid orders that stayed
/// unpaid (a failed run explains itself).
fn unpaid_orders(compose: &Compose, orders: &[PaidOrder], list: &str) -> String {
    let rows = compose
        .sql(&format!(
            "SELECT out_trade_no, status, checks, attention, prepay_id IS NOT NULL, \
             DATE_FORMAT(created_at, '%T.%f'), DATE_FORMAT(checked_at, '%T.%f'), \
             DATE_FORMAT(next_check_at, '%T.%f'), DATE_FORMAT(CURRENT_TIMESTAMP(3), '%T.%f') \
             FROM xintu_membership.payment_orders \
             WHERE out_trade_no IN ({list}) AND status <> 'paid' ORDER BY created_at LIMIT 12"
        ))
        .unwrap_or_else(|err| format!("(the orders could not be read: {err:#})"));
    let mut text = String::from(
        "unpaid orders (order, status, checks, attention, has prepay_id, created, last checked, \
         next check, now), and when the soak's payment was answered:\n",
    );
    let logs: String = compose
        .containers("membership")
        .unwrap_or_default()
        .iter()
        .filter_map(|c| compose.logs(c).ok())
        .collect();
    for row in rows.lines() {
        let order_no = row.split('\t').next().unwrap_or_default();
        let paid_at = orders
            .iter()
            .find(|o| o.order_no == order_no)
            .map(|o| format!("{:.1?}", o.paid_at))
            .unwrap_or_default();
        let _ = writeln!(text, "  {row}\tpaid at {paid_at}");
        for line in logs.lines().filter(|l| l.contains(order_no)).take(6) {
            let _ = writeln!(text, "    {}", line.chars().take(400).collect::<String>());
        }
    }
    text
}

/// remaining_credits = SUM(delta) for every user; each ledger row's balance_after is the running
/// sum; no balance and no hold below zero.
pub fn ledger_adds_up(compose: &Compose) -> Result<String> {
    let answer = compose.sql(
        "SELECT \
           (SELECT COUNT(*) FROM xintu_membership.wechat_users u WHERE u.remaining_credits <> \
              (SELECT COALESCE(SUM(delta), 0) FROM xintu_membership.credit_ledger l \
               WHERE l.user_id = u.id)), \
           (SELECT COUNT(*) FROM xintu_membership.credit_ledger l WHERE l.balance_after <> \
              (SELECT SUM(e.delta) FROM xintu_membership.credit_ledger e \
               WHERE e.user_id = l.user_id AND e.id <= l.id)), \
           (SELECT COUNT(*) FROM xintu_membership.wechat_users \
            WHERE remaining_credits < 0 OR held_credits < 0), \
           (SELECT COUNT(*) FROM xintu_membership.credit_ledger), \
           (SELECT COUNT(*) FROM xintu_membership.wechat_users)",
    )?;
    let fields: Vec<i64> = answer
        .split_whitespace()
        .map(number)
        .collect::<Result<_>>()?;
    ensure!(fields.len() == 5, "ledger check: {answer}");
    ensure!(
        fields[0] == 0 && fields[1] == 0 && fields[2] == 0,
        "users whose balance is not their ledger's sum: {}; ledger rows whose balance_after is \
         not the running sum: {}; negative balances or holds: {}",
        fields[0],
        fields[1],
        fields[2]
    );
    Ok(format!(
        "ledger adds up: {} users, {} ledger rows, none negative",
        fields[4], fields[3]
    ))
}

/// No hold is left `held` once the work behind it has ended (committed or released, or
/// released by the janitor). An edit whose request held its credits and then could not queue
/// its task (the primary froze in between) is failed, and its hold released, by photo's sweep
/// of requests left in `new` (`edit_abandon_after_secs`, 120 s in the deployment), so the check
/// waits that long and a little more before it counts a hold as left open.
pub fn no_open_holds(compose: &Compose) -> Result<String> {
    let open = settles(Duration::from_secs(150), || {
        number(
            &compose
                .sql("SELECT COUNT(*) FROM xintu_membership.credit_holds WHERE status = 'held'")?,
        )
    })?;
    let shown = if open > 0 {
        compose.sql(
            "SELECT reference, amount, created_at, expires_at FROM \
             xintu_membership.credit_holds WHERE status = 'held' LIMIT 10",
        )?
    } else {
        String::new()
    };
    ensure!(open == 0, "{open} credit holds left open:\n{shown}");
    let holds = compose.sql(
        "SELECT status, COUNT(*) FROM xintu_membership.credit_holds GROUP BY status ORDER BY 1",
    )?;
    Ok(format!(
        "no credit hold left open ({})",
        holds.trim().replace('\t', " ").replace('\n', ", ")
    ))
}

/// Every request a gateway answered (its `x-request-id`) has a row in the statistics.
pub fn no_record_lost(compose: &Compose, request_ids: &[String]) -> Result<String> {
    let mut script = String::from(
        "USE xintu_stats;\nCREATE TEMPORARY TABLE soak_requests (id VARCHAR(64) NOT NULL PRIMARY KEY) \
         CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n",
    );
    for chunk in request_ids.chunks(2000) {
        let _ = writeln!(
            script,
            "INSERT IGNORE INTO soak_requests VALUES {};",
            chunk
                .iter()
                .map(|id| format!("('{}')", id.replace('\'', "")))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    // One pass over the records, each looked up in the ids' key (the records have no index on
    // request_id): the ids found, subtracted from all.
    script.push_str(
        "SELECT (SELECT COUNT(*) FROM soak_requests) - COUNT(DISTINCT s.id) \
         FROM xintu_stats.request_logs r STRAIGHT_JOIN soak_requests s ON s.id = r.request_id;\n",
    );
    // The gateways send records in batches; the last ones may still be on their way.
    let missing = settles(Duration::from_secs(30), || {
        number(compose.sql(&script)?.lines().last().unwrap_or_default())
    })?;
    ensure!(
        missing == 0,
        "{missing} of {} requests a gateway answered have no record",
        request_ids.len()
    );
    Ok(format!(
        "every one of {} requests a gateway answered has its record",
        request_ids.len()
    ))
}

//! Property: whatever the interleaving of reserve / commit / release / charge / grant /
//! pay notify / hold janitor across concurrent callers and both membership instances, the books
//! stay exact on the real database: every balance equals the sum of its ledger rows and is never
//! negative, the held credits are exactly the open holds, each reference is applied once, and
//! every answer a caller got is what the ledger shows.
//!
//! Each generated case gets fresh users, references and orders on one running system; the tasks
//! of a case run at once, with random pauses between their calls.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{Options, System};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proto::membership::v1 as pb;
use sandbox::NotifyMode;

/// Users per case: few, so that the tasks contend for the same rows.
const USERS: usize = 2;
/// References per kind per case: few, so that repeats and conflicting reuses happen.
const REFERENCES: usize = 4;
/// Orders per case (one per user), paid in the sandbox and notified by the tasks: duplicate
/// deliveries race each other.
const ORDERS: usize = USERS;

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        user: usize,
        amount: i64,
        reference: usize,
        /// 0 = the service default; 1 = expires at once, for the janitor to release.
        ttl_seconds: u32,
    },
    /// A worker's whole use of a hold: reserve, work a little, then settle it (or die, leaving
    /// it to expire).
    Work {
        user: usize,
        amount: i64,
        reference: usize,
        settle: Settle,
    },
    Commit {
        reference: usize,
        used: i64,
    },
    Release {
        reference: usize,
    },
    Charge {
        user: usize,
        amount: i64,
        reference: usize,
    },
    Grant {
        user: usize,
        amount: i64,
        reference: usize,
    },
    Notify {
        order: usize,
    },
    Balance {
        user: usize,
    },
    Pause {
        millis: u64,
    },
}

#[derive(Clone, Copy, Debug)]
enum Settle {
    Commit {
        used: i64,
    },
    Release,
    /// The worker dies: the hold (1 s TTL) is the janitor's.
    Die,
}

fn settle() -> impl Strategy<Value = Settle> {
    prop_oneof![
        3 => (0..=6i64).prop_map(|used| Settle::Commit { used }),
        1 => Just(Settle::Release),
        1 => Just(Settle::Die),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let reference = 0..REFERENCES;
    prop_oneof![
        3 => (user.clone(), 1..=6i64, reference.clone(), prop_oneof![Just(0u32), Just(1u32)])
            .prop_map(|(user, amount, reference, ttl_seconds)| Op::Reserve { user, amount, reference, ttl_seconds }),
        4 => (user.clone(), 1..=6i64, reference.clone(), settle())
            .prop_map(|(user, amount, reference, settle)| Op::Work { user, amount, reference, settle }),
        2 => (reference.clone(), 0..=6i64).prop_map(|(reference, used)| Op::Commit { reference, used }),
        2 => reference.clone().prop_map(|reference| Op::Release { reference }),
        3 => (user.clone(), 1..=6i64, reference.clone())
            .prop_map(|(user, amount, reference)| Op::Charge { user, amount, reference }),
        1 => (user, 1..=6i64, reference).prop_map(|(user, amount, reference)| Op::Grant { user, amount, reference }),
        2 => (0..ORDERS).prop_map(|order| Op::Notify { order }),
        1 => (0..USERS).prop_map(|user| Op::Balance { user }),
        2 => (0..15u64).prop_map(|millis| Op::Pause { millis }),
    ]
}

/// Tasks of a case, each a sequence of calls.
fn tasks() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..12), 2..6)
}

/// What a caller was told, to hold against the ledger afterwards.
#[derive(Debug, Default)]
struct Observed {
    /// Charge reference → (user, amount) of each charge answered OK.
    charged: Vec<(String, i64, i64)>,
    /// Grant reference → (user, amount) of each grant answered OK.
    granted: Vec<(String, i64, i64)>,
    /// Hold reference → used, of each commit answered OK.
    committed: Vec<(String, i64)>,
    /// Hold references whose release was answered OK.
    released: Vec<String>,
    /// Orders whose notify was acknowledged.
    acknowledged: Vec<String>,
    /// Every balance answered: each must have been a valid state when it was read.
    balances: Vec<pb::Balance>,
    /// Calls by operation and outcome (`ok` or the error code), to show what a run exercised.
    outcomes: BTreeMap<String, usize>,
}

impl Observed {
    fn count<T>(&mut self, operation: &str, result: Result<T, tonic::Status>) -> Result<T, ()> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(status) => {
                platform::grpc::error_code(status).map_or("other", proto::ErrorCode::as_str)
            }
        };
        *self
            .outcomes
            .entry(format!("{operation} {outcome}"))
            .or_default() += 1;
        result.map_err(|_| ())
    }
}

struct Case<'a> {
    system: &'a System,
    tag: String,
    users: Vec<i64>,
    /// out_trade_no and its credits.
    orders: Vec<(String, i64)>,
    notify_fields: Vec<BTreeMap<String, String>>,
}

impl Case<'_> {
    fn hold(&self, reference: usize) -> String {
        format!("{}-hold-{reference}", self.tag)
    }

    fn charge(&self, reference: usize) -> String {
        format!("{}-charge-{reference}", self.tag)
    }

    fn grant(&self, reference: usize) -> String {
        format!("{}-grant-{reference}", self.tag)
    }

    async fn run_task(&self, instance: usize, ops: Vec<Op>) -> Observed {
        let url = &self.system.membership_urls[instance % self.system.membership_urls.len()];
        let mut client =
            pb::credit_service_client::CreditServiceClient::new(self.system.grpc_channel(url));
        let notify_url = format!("{}/api/v1/payment/notify", self.system.gateway());
        let mut seen = Observed::default();
        // A worker's use of a hold is its calls in a row, with a pause for the work.
        let ops = ops.into_iter().flat_map(|op| match op {
            Op::Work {
                user,
                amount,
                reference,
                settle,
            } => {
                let reserve = Op::Reserve {
                    user,
                    amount,
                    reference,
                    ttl_seconds: if matches!(settle, Settle::Die) { 1 } else { 0 },
                };
                let settle = match settle {
                    Settle::Commit { used } => Op::Commit {
                        reference,
                        used: used.min(amount),
                    },
                    Settle::Release => Op::Release { reference },
                    Settle::Die => Op::Pause { millis: 0 },
                };
                vec![reserve, Op::Pause { millis: 5 }, settle]
            }
            op => vec![op],
        });
        for op in ops {
            match op {
                Op::Reserve {
                    user,
                    amount,
                    reference,
                    ttl_seconds,
                } => {
                    let request = pb::ReserveRequest {
                        user_id: self.users[user],
                        amount,
                        reference: self.hold(reference),
                        ttl_seconds,
                    };
                    if let Ok(hold) = seen.count("reserve", client.reserve(request).await) {
                        seen.balances.extend(hold.into_inner().balance);
                    }
                }
                Op::Work { .. } => unreachable!("expanded above"),
                Op::Commit { reference, used } => {
                    let reference = self.hold(reference);
                    let request = pb::CommitRequest {
                        reference: reference.clone(),
                        used,
                    };
                    if let Ok(hold) = seen.count("commit", client.commit(request).await) {
                        seen.balances.extend(hold.into_inner().balance);
                        seen.committed.push((reference, used));
                    }
                }
                Op::Release { reference } => {
                    let reference = self.hold(reference);
                    let request = pb::ReleaseRequest {
                        reference: reference.clone(),
                    };
                    if let Ok(hold) = seen.count("release", client.release(request).await) {
                        let hold = hold.into_inner();
                        if hold.status() == pb::HoldStatus::Released {
                            seen.released.push(reference);
                        }
                        seen.balances.extend(hold.balance);
                    }
                }
                Op::Charge {
                    user,
                    amount,
                    reference,
                } => {
                    let reference = self.charge(reference);
                    let request = pb::ChargeRequest {
                        user_id: self.users[user],
                        amount,
                        reference: reference.clone(),
                    };
                    if let Ok(balance) = seen.count("charge", client.charge(request).await) {
                        seen.balances.push(balance.into_inner());
                        seen.charged.push((reference, self.users[user], amount));
                    }
                }
                Op::Grant {
                    user,
                    amount,
                    reference,
                } => {
                    let reference = self.grant(reference);
                    let request = grant_request(self.users[user], amount, reference.clone());
                    if let Ok(balance) = seen.count("grant", client.grant(request).await) {
                        seen.balances.push(balance.into_inner());
                        seen.granted.push((reference, self.users[user], amount));
                    }
                }
                Op::Notify { order } => {
                    let (acknowledged, status, body) = self
                        .system
                        .sandbox
                        .post_notify(&notify_url, &self.notify_fields[order])
                        .await;
                    assert!(acknowledged, "notify refused: {status} {body}");
                    seen.acknowledged.push(self.orders[order].0.clone());
                }
                Op::Balance { user } => {
                    let request = pb::GetBalanceRequest {
                        user_id: self.users[user],
                    };
                    seen.balances
                        .push(client.get_balance(request).await.unwrap().into_inner());
                }
                Op::Pause { millis } => tokio::time::sleep(Duration::from_millis(millis)).await,
            }
        }
        seen
    }
}

fn grant_request(user_id: i64, amount: i64, reference: String) -> pb::GrantRequest {
    pb::GrantRequest {
        user_id,
        amount,
        reason: "admin_adjust".into(),
        reference,
        note: "property test".into(),
        actor: "ledger-properties".into(),
    }
}

async fn prepare(system: &System, number: usize) -> Case<'_> {
    let tag = format!("p{number}-{:08x}", rand::random::<u32>());
    let mut users = Vec::new();
    let mut orders = Vec::new();
    let mut notify_fields = Vec::new();
    // One order per user: the order makes the user, and its payment is notified by the tasks.
    for (index, credits) in (0..USERS).zip(3i32..) {
        let openid = format!("o_{tag}_{index}");
        let browser = system.sign_in(&openid).await;
        let created = browser.create_order(e2e::api::credits_order(credits)).await;
        let no = created.order.order_no.clone();
        system.sandbox.pay(&no).await.unwrap();
        notify_fields.push(system.sandbox.notify_fields(&no).unwrap());
        orders.push((no, i64::from(credits)));
        let user_id = system.user_id(&openid).await;
        users.push(user_id);
        // Something to spend from the start, so that spending is not mostly refused.
        system
            .credit_client()
            .grant(grant_request(user_id, 12, format!("{tag}-start-{index}")))
            .await
            .unwrap();
    }
    Case {
        system,
        tag,
        users,
        orders,
        notify_fields,
    }
}

/// Waits until the janitor has released every expired hold of the case.
async fn janitor_done(pool: &sqlx::MySqlPool, tag: &str) {
    for _ in 0..100 {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_holds WHERE reference LIKE ? AND status = 'held' \
             AND expires_at < NOW(3)",
        )
        .bind(format!("{tag}-%"))
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expired holds were never released");
}

async fn check(case: &Case<'_>, seen: &[Observed]) -> Result<(), TestCaseError> {
    let pool = case.system.db.primary().await;
    // Let the last expiring holds expire, then the janitor release them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    janitor_done(&pool, &case.tag).await;

    for &user in &case.users {
        let (remaining, held, ledger, open_holds): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT remaining_credits, held_credits, \
             (SELECT CAST(COALESCE(SUM(delta), 0) AS SIGNED) FROM credit_ledger WHERE user_id = u.id), \
             (SELECT CAST(COALESCE(SUM(amount), 0) AS SIGNED) FROM credit_holds \
              WHERE user_id = u.id AND status = 'held') \
             FROM wechat_users u WHERE id = ?",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
        prop_assert_eq!(
            remaining,
            ledger,
            "remaining = SUM(ledger) for user {}",
            user
        );
        prop_assert!(
            remaining >= held && held >= 0,
            "{} held of {}",
            held,
            remaining
        );
        prop_assert_eq!(held, open_holds, "held = the open holds of user {}", user);
        let negative: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_ledger WHERE user_id = ? AND balance_after < 0",
        )
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
        prop_assert_eq!(negative, 0, "a ledger row went below zero");
        // Each row's balance_after is the running sum: no change was lost or applied twice.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT delta, balance_after FROM credit_ledger WHERE user_id = ? ORDER BY id",
        )
        .bind(user)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut running = 0;
        for (delta, balance_after) in rows {
            running += delta;
            prop_assert_eq!(running, balance_after, "ledger history of user {}", user);
        }
    }
    // Refusals are the rules' (insufficient, conflict, settled, not found); nothing failed inside.
    for outcome in seen.iter().flat_map(|o| o.outcomes.keys()) {
        prop_assert!(
            !outcome.ends_with(" internal") && !outcome.ends_with(" other"),
            "a call failed: {}",
            outcome
        );
    }
    // Every balance a caller was shown was a state the rules allow.
    for balance in seen.iter().flat_map(|o| &o.balances) {
        prop_assert!(
            balance.held >= 0
                && balance.available >= 0
                && balance.available == balance.remaining - balance.held,
            "a caller was shown {:?}",
            balance
        );
    }

    let change = |reason: &'static str, reference: String| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT user_id, delta FROM credit_ledger WHERE reason = ? AND reference = ?",
            )
            .bind(reason)
            .bind(reference)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    for observed in seen {
        for (reference, user, amount) in &observed.charged {
            let rows = change("charge", reference.clone()).await;
            prop_assert_eq!(rows, vec![(*user, -amount)], "charge {}", reference);
        }
        for (reference, user, amount) in &observed.granted {
            let rows = change("admin_adjust", reference.clone()).await;
            prop_assert_eq!(rows, vec![(*user, *amount)], "grant {}", reference);
        }
        for (reference, used) in &observed.committed {
            let (status, captured, user): (String, i64, i64) = sqlx::query_as(
                "SELECT CAST(status AS CHAR), captured, user_id FROM credit_holds WHERE reference = ?",
            )
            .bind(reference)
            .fetch_one(&pool)
            .await
            .unwrap();
            prop_assert_eq!((status.as_str(), captured), ("captured", *used));
            // Nothing used spends nothing and leaves no row.
            let expected = if *used > 0 {
                vec![(user, -used)]
            } else {
                Vec::new()
            };
            prop_assert_eq!(
                change("charge", reference.clone()).await,
                expected,
                "commit {}",
                reference
            );
        }
        for reference in &observed.released {
            let (status, captured): (String, i64) = sqlx::query_as(
                "SELECT CAST(status AS CHAR), captured FROM credit_holds WHERE reference = ?",
            )
            .bind(reference)
            .fetch_one(&pool)
            .await
            .unwrap();
            prop_assert_eq!((status.as_str(), captured), ("released", 0));
            prop_assert!(change("charge", reference.clone()).await.is_empty());
        }
    }
    // Every notified order is paid; every paid order (notified, or found by the reconciler) is
    // credited exactly once, to its buyer; an unpaid one not at all.
    let notified: std::collections::BTreeSet<&String> =
        seen.iter().flat_map(|o| &o.acknowledged).collect();
    for ((no, credits), &user) in case.orders.iter().zip(&case.users) {
        let status: String = sqlx::query_scalar(
            "SELECT CAST(status AS CHAR) FROM payment_orders WHERE out_trade_no = ?",
        )
        .bind(no)
        .fetch_one(&pool)
        .await
        .unwrap();
        if notified.contains(no) {
            prop_assert_eq!(status.as_str(), "paid", "order {} notified", no);
        }
        let expected = if status == "paid" {
            vec![(user, *credits)]
        } else {
            Vec::new()
        };
        prop_assert_eq!(
            change("purchase", no.clone()).await,
            expected,
            "order {}",
            no
        );
    }
    // The unique key allows one row per (reason, reference); nothing got round it.
    let repeated: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM credit_ledger WHERE reference LIKE ? \
         GROUP BY reason, reference HAVING COUNT(*) > 1) r",
    )
    .bind(format!("{}-%", case.tag))
    .fetch_one(&pool)
    .await
    .unwrap();
    prop_assert_eq!(repeated, 0);
    pool.close().await;
    Ok(())
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn random_interleavings_of_credit_operations_keep_the_books_exact() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let system = runtime.block_on(System::start(Options {
        memberships: 2,
        hold_janitor_interval_ms: 100,
        orders_per_user_per_minute: 1_000,
        ..Options::membership_flows()
    }));
    // The tasks deliver the notifies themselves, so that duplicates race each other.
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let cases = std::env::var("XINTU_LEDGER_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let mut runner = TestRunner::new(Config {
        cases,
        // A failing case is shrunk on the live system; each try takes seconds.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let number = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
    let result = runner.run(&tasks(), |tasks| {
        let number = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(async {
            let case = prepare(&system, number).await;
            let runs = tasks
                .into_iter()
                .enumerate()
                .map(|(instance, ops)| case.run_task(instance, ops));
            let seen = futures::future::join_all(runs).await;
            for (outcome, calls) in seen.iter().flat_map(|o| &o.outcomes) {
                *lock(&outcomes).entry(outcome.clone()).or_default() += calls;
            }
            check(&case, &seen).await
        })
    });
    runtime.block_on(async move { drop(system) });
    eprintln!("calls by outcome: {:?}", lock(&outcomes));
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

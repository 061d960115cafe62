//! The docker compose deployment, checked from the host as its users and its operator meet it
//! (a command, not a test: `deploy/local/xintu compose-test` builds the images, writes the
//! project's environment and runs this). Every request goes to a port published on 127.0.0.1;
//! the containers talk to each other on their own network.
//!
//! 1. `up`: the whole stack with the sandbox becomes healthy; the one-shot migrations ran.
//! 2. The flows: QR → scan → poll (nginx, the push through lighttpd), the QR image from the host,
//!    location, classify, an edit and its result (nginx), WeChat OAuth → order → pay → credits
//!    (lighttpd), the member page signing in from headless Chromium, the admin site's sign-in and
//!    overview (lighttpd's admin host).
//! 3. `--scale photo=3 --scale membership=2 --scale gateway=2`: calls reach every instance,
//!    counted in each instance's own request log; lost notifies are found by two reconcilers
//!    and each payment credited once; duplicated notifies credit once; a photo, a membership and
//!    a gateway instance killed under load fail no request sent after the kill (only those in
//!    flight as it died, and never as an internal error); each schema's migrations were applied
//!    by one step, once.
//! 4. `down` and `up` keep every row.

#![allow(clippy::print_stdout, clippy::expect_used)] // a CLI report; the e2e helpers assert

mod load;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use e2e::browser::{Browser, BrowserOptions, WECHAT_USER_AGENT};
use e2e::compose::edge::{Edge, sample_photo};
use e2e::compose::{Compose, Container};

const SCHEMAS: [&str; 3] = ["xintu_membership", "xintu_photo", "xintu_stats"];
/// Discovery resolves and probes every 2 s; a killed instance is out of every balancer after
/// its next round, with a margin for a busy 2-core machine.
const ROUTED_AROUND_WITHIN: Duration = Duration::from_secs(3);

/// When the check began: each step says how far into it it starts, which is where a slower run
/// shows where it lost its time.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn step(title: &str) {
    println!("\n== {title} (at {:.0?})", STARTED.elapsed());
}

/// Lines of a container's request log (tower-http's, at debug) that finished a request whose
/// span names `what` (a gRPC method or an HTTP path).
fn requests_logged(compose: &Compose, container: &Container, what: &str) -> Result<usize> {
    Ok(compose
        .logs(container)?
        .lines()
        .filter(|line| line.contains("finished processing request") && line.contains(what))
        .count())
}

/// Per instance of `service`, how many requests naming `what` it logged.
fn spread(compose: &Compose, service: &str, what: &str) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for container in compose.containers(service)? {
        let count = requests_logged(compose, &container, what)?;
        counts.insert(container.name, count);
    }
    Ok(counts)
}

/// Rows per table of our schemas.
fn row_counts(compose: &Compose) -> Result<BTreeMap<String, u64>> {
    // Two statements in all: each `sql` call is a `docker-compose ps` and a `docker exec`, about a
    // second, and a count per table made this step take a minute.
    let schemas = SCHEMAS.map(|schema| format!("'{schema}'")).join(",");
    let tables = compose.sql(&format!(
        "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables \
         WHERE table_schema IN ({schemas}) AND table_type = 'BASE TABLE'"
    ))?;
    let counts = tables
        .split_whitespace()
        .map(|table| {
            let (schema, name) = table.split_once('.').unwrap_or_default();
            format!("SELECT '{table}', COUNT(*) FROM `{schema}`.`{name}`")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut rows = BTreeMap::new();
    for line in compose.sql(&counts)?.lines() {
        let (table, count) = line.split_once('\t').context("a table and its count")?;
        rows.insert(table.to_owned(), count.trim().parse()?);
    }
    ensure!(!rows.is_empty(), "no tables in {schemas}");
    Ok(rows)
}

async fn up_and_flows(compose: &Compose, edge: &Edge, admin_password: &str) -> Result<()> {
    step("up: the whole stack with the sandbox");
    let started = Instant::now();
    compose.up(&[])?;
    compose.wait_healthy(Duration::from_secs(240))?;
    println!("healthy after {:.0?}", started.elapsed());

    step("an app binds through a QR code");
    let app = edge.bind_app("compose-pc-1", "o_compose_user_1").await?;
    println!("bound; the QR image loads from the host");
    let (status, place) = edge.locate(&app).await?;
    ensure!(status == 200, "location: {status} {place}");
    println!("location: {place}");

    step("classify and edit");
    let (status, labels) = edge.classify(&app, sample_photo("coffee.png")?).await?;
    ensure!(status == 200, "classify: {status} {labels}");
    println!("classify: {labels}");
    let task = edge.edit(&app, sample_photo("astronaut.png")?).await?;
    ensure!(task["status"] == "succeeded", "edit: {task}");
    let results = task["results"].as_array().context("edit results")?;
    ensure!(!results.is_empty(), "edit without results: {task}");
    for result in results {
        let url = result["url"].as_str().context("result url")?;
        let (status, bytes) = edge.fetch(url).await?;
        ensure!(status == 200 && bytes > 0, "edit result {url}: {status}");
    }
    println!("edit succeeded; {} result(s) served", results.len());

    step("the member page: WeChat OAuth, an order, WeChat Pay, credits");
    let member = edge.member("o_compose_user_1").await;
    let before = member.profile().await;
    let created = member.create_order(e2e::api::credits_order(20)).await;
    let order_no = created.order.order_no.as_str();
    edge.pay(order_no).await?;
    member.wait_for_order(order_no, "paid").await;
    let after = member.profile().await;
    ensure!(
        after.remaining_credits == before.remaining_credits + 20,
        "credits before {before:?}, after {after:?}"
    );
    println!(
        "paid {order_no}: credits {} → {}",
        before.remaining_credits, after.remaining_credits
    );

    step("the member page in headless Chromium (WeChat's browser)");
    // The sandbox signs the browser in as its default WeChat user, who has no app yet.
    let browser = Browser::start(BrowserOptions {
        phone: Some((390, 844, WECHAT_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    let page = format!("{}/member/", edge.web);
    browser.goto(&page).await;
    browser
        .wait_for(
            "document.getElementById('app').dataset.state === 'main'",
            "the member page signed in through WeChat OAuth",
        )
        .await;
    ensure!(
        browser.current_url().await == page,
        "the page did not come back"
    );
    let credits = browser.text("#credits").await;
    browser.screenshot("compose-member-page").await;
    browser.quit().await;
    println!("signed in through the sandbox's OAuth and back on {page}: {credits} credits");

    step("the admin site");
    let admin = edge.admin(admin_password).await?;
    let (status, overview) = admin.get("/api/v1/admin/overview").await;
    ensure!(status == 200, "overview: {status} {overview}");
    ensure!(
        overview["paid_orders"].as_i64() >= Some(1) && overview["total_users"].as_i64() >= Some(1),
        "overview without the payment: {overview}"
    );
    println!(
        "overview: {} paid order(s), {} fen, {} user(s)",
        overview["paid_orders"], overview["revenue_fen"], overview["total_users"]
    );
    Ok(())
}

/// Payments whose notify is lost, found by the reconcilers of both membership instances; then
/// notifies delivered four times at once. Each payment is credited exactly once.
async fn payments_once(compose: &Compose, edge: &Edge) -> Result<()> {
    step("two reconcilers, lost and duplicated notifies");
    let member = edge.member("o_compose_payer").await;
    let start = member.profile().await.remaining_credits;
    let mut orders = Vec::new();
    let mut expected = start;
    for (mode, amounts) in [
        (json!("drop"), &[3, 5, 7, 11][..]),
        (json!({ "duplicates": 4 }), &[13, 17][..]),
    ] {
        edge.notify_mode(mode).await?;
        for &amount in amounts {
            let created = member.create_order(e2e::api::credits_order(amount)).await;
            let order_no = created.order.order_no;
            edge.pay(&order_no).await?;
            orders.push(order_no);
            expected += i64::from(amount);
        }
    }
    edge.notify_mode(json!("normal")).await?;
    for order_no in &orders {
        member.wait_for_order(order_no, "paid").await;
    }
    // Both reconcilers keep running; give them rounds in which a second credit would land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = member.profile().await.remaining_credits;
    ensure!(
        end == expected,
        "credits {start} → {end}, expected {expected}"
    );
    let list = orders
        .iter()
        .map(|o| format!("'{o}'"))
        .collect::<Vec<_>>()
        .join(",");
    let ledger = compose.sql(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT reference) FROM xintu_membership.credit_ledger \
         WHERE reference IN ({list})"
    ))?;
    ensure!(
        ledger.split_whitespace().collect::<Vec<_>>() == ["6", "6"],
        "ledger rows of the six orders (rows, references): {ledger}"
    );
    // Each membership instance logs the payments it applied: together, each order once.
    let mut applied_by = BTreeMap::new();
    let mut applied = BTreeMap::<&str, usize>::new();
    for container in compose.containers("membership")? {
        let logs = compose.logs(&container)?;
        let mut mine = 0;
        for line in logs.lines().filter(|l| l.contains("payment applied")) {
            if let Some(order) = orders.iter().find(|o| line.contains(o.as_str())) {
                *applied.entry(order.as_str()).or_default() += 1;
                mine += 1;
            }
        }
        applied_by.insert(container.name, mine);
    }
    ensure!(
        applied.len() == orders.len() && applied.values().all(|&n| n == 1),
        "payments applied per order: {applied:?}"
    );
    println!(
        "6 orders (4 notifies lost, 2 delivered 4×): credits {start} → {end}, one ledger row and \
         one application each; applied per membership instance: {applied_by:?}"
    );
    Ok(())
}

async fn scaled(compose: &Compose, edge: Arc<Edge>) -> Result<()> {
    step("scale: photo=3 membership=2 gateway=2");
    let scale = [("photo", 3), ("membership", 2), ("gateway", 2)];
    let started = Instant::now();
    compose.up(&scale)?;
    compose.wait_healthy(Duration::from_secs(180))?;
    // nginx and lighttpd resolve the gateway's name when they start.
    compose.compose(&["restart", "nginx", "lighttpd"])?;
    compose.wait_healthy(Duration::from_secs(60))?;
    // The gateways resolve the services' names again every 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("healthy after {:.0?}", started.elapsed());

    let app = Arc::new(edge.bind_app("compose-pc-2", "o_compose_user_2").await?);
    let member = Arc::new(edge.member("o_compose_user_2").await);
    for _ in 0..60 {
        let (status, body) = edge.locate(&app).await?;
        ensure!(status == 200, "location: {status} {body}");
        let (status, body) = member.get("/api/v1/member/profile").await;
        ensure!(status == 200, "profile: {status} {body}");
    }
    for (service, what) in [
        ("gateway", "/api/v1/location"),
        ("photo", "LocationService/Locate"),
        ("membership", "GetProfile"),
    ] {
        let counts = spread(compose, service, what)?;
        println!("{service} instances, requests logged ({what}): {counts:?}");
        ensure!(
            u32::try_from(counts.len()).ok() == scale.iter().find(|s| s.0 == service).map(|s| s.1),
            "{service}: {counts:?}"
        );
        ensure!(
            counts.values().all(|&n| n > 0),
            "{service} not spread: {counts:?}"
        );
    }

    payments_once(compose, &edge).await?;

    step("instances killed under load");
    let workers = 6;
    let mut victims = Vec::new();
    for service in ["photo", "membership", "gateway"] {
        victims.push(
            compose
                .containers(service)?
                .pop()
                .context("an instance to kill")?,
        );
    }
    let started = Instant::now();
    let stop = CancellationToken::new();
    let load = tokio::spawn(load::run(
        edge.clone(),
        app.clone(),
        member.clone(),
        workers,
        started,
        stop.clone(),
    ));
    // Each kill's window: from the `docker kill` until discovery's next rounds (every 2 s) have
    // surely taken the instance out of every balancer.
    let mut windows = Vec::new();
    for victim in victims {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let from = started.elapsed();
        compose.kill(&victim)?;
        let killed = started.elapsed();
        println!("killed {} at {from:.1?}", victim.name);
        windows.push((victim.name, from, killed, killed + ROUTED_AROUND_WITHIN));
    }
    tokio::time::sleep(ROUTED_AROUND_WITHIN + Duration::from_secs(1)).await;
    stop.cancel();
    let outcome = load.await?;
    println!(
        "{} requests by {workers} workers, {} failed",
        outcome.requests,
        outcome.failures.len()
    );
    for (name, from, killed, to) in &windows {
        let failed: Vec<&load::Failure> = outcome
            .failures
            .iter()
            .filter(|f| f.at >= *from && f.at <= *to)
            .collect();
        // Sent once `docker kill` had returned: certainly not in flight when the instance died.
        let later = failed.iter().filter(|f| f.sent > *killed).count();
        let shown: Vec<String> = failed
            .iter()
            .map(|f| format!("{:.0?} {}", f.at.saturating_sub(*from), f.what))
            .collect();
        println!(
            "  {name}: {} failed, {later} of them sent after the kill: {shown:?}",
            failed.len()
        );
        // In flight: sent before `docker kill` returned (the instance died somewhere in that
        // call). A request sent after it must find a live instance.
        ensure!(
            later == 0,
            "{name}: {later} requests sent after the kill failed"
        );
    }
    // An instance gone is an unavailable upstream to its clients (502, 503), never a 500, which
    // says a bug (lighttpd's own answer for a gateway killed mid-request was one).
    let internal: Vec<&load::Failure> = outcome
        .failures
        .iter()
        .filter(|f| f.status == Some(500))
        .collect();
    ensure!(
        internal.is_empty(),
        "requests failed as internal errors: {internal:?}"
    );
    let outside: Vec<&load::Failure> = outcome
        .failures
        .iter()
        .filter(|f| {
            !windows
                .iter()
                .any(|(_, from, _, to)| f.at >= *from && f.at <= *to)
        })
        .collect();
    ensure!(
        outside.is_empty(),
        "failures while no instance had just died: {outside:?}"
    );
    let after_kills = edge.locate(&app).await?;
    ensure!(after_kills.0 == 200, "after the kills: {after_kills:?}");

    step("migrations ran once");
    for service in ["membership-migrate", "photo-migrate", "stats-migrate"] {
        let steps = compose.containers(service)?;
        ensure!(steps.len() == 1, "{service}: {} containers", steps.len());
        let state = compose.exit_code(&steps[0])?;
        ensure!(state == "exited 0", "{service}: {state}");
    }
    for schema in SCHEMAS {
        let rows = compose.sql(&format!(
            "SELECT COUNT(*), COUNT(DISTINCT version), MIN(success) FROM {schema}._sqlx_migrations"
        ))?;
        let fields: Vec<&str> = rows.split_whitespace().collect();
        ensure!(
            fields.len() == 3 && fields[0] == fields[1] && fields[2] == "1",
            "{schema}: {rows}"
        );
        println!("{schema}: {} migrations, each applied once", fields[0]);
    }
    Ok(())
}

async fn down_and_up(compose: &Compose, edge: &Edge) -> Result<()> {
    step("down, then up: every row kept");
    // The services first, so that what they buffer (request records) is written before counting.
    compose.compose(&[
        "stop",
        "nginx",
        "lighttpd",
        "gateway",
        "photo",
        "membership",
        "stats",
    ])?;
    let stopped = STARTED.elapsed();
    let before = row_counts(compose)?;
    compose.compose(&["down"])?;
    let down = STARTED.elapsed();
    compose.up(&[])?;
    compose.wait_healthy(Duration::from_secs(240))?;
    println!(
        "services stopped at {stopped:.0?}, down at {down:.0?}, healthy again at {:.0?}",
        STARTED.elapsed()
    );
    let after = row_counts(compose)?;
    let rows: u64 = before.values().sum();
    ensure!(before == after, "rows before {before:?}\nafter {after:?}");
    let member = edge.member("o_compose_payer").await;
    let profile = member.profile().await;
    println!(
        "{} tables, {rows} rows, the same after down and up; the payer still has {} credits",
        before.len(),
        profile.remaining_credits
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    LazyLock::force(&STARTED);
    let compose = Compose::from_env()?;
    let edge = Arc::new(Edge::from_env()?);
    let admin_password =
        std::env::var("XINTU_COMPOSE_ADMIN_PASSWORD").context("XINTU_COMPOSE_ADMIN_PASSWORD")?;
    up_and_flows(&compose, &edge, &admin_password).await?;
    scaled(&compose, edge.clone()).await?;
    down_and_up(&compose, &edge).await?;
    println!("\ncompose check passed in {:.0?}", STARTED.elapsed());
    Ok(())
}

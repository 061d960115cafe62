//! The admin site (`deploy/web/admin`) run for real: lighttpd serves it on the admin host and
//! proxies `/api/v1/admin/*` to the gateway; headless Chromium signs in, reads the overview with
//! seeded numbers (and model calls) and adjusts credits. Screenshots go to the artifacts directory.

use e2e::browser::{Browser, BrowserOptions};
use e2e::edge::{Lighttpd, free_port};
use e2e::{ADMIN_PASSWORD, Options, System};

const ADMIN: &str = "admin.xintuxiangce.top";
const OPENID: &str = "o_admin_site_user";

fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// Types `value` into the input `id` (as a user would: the value, then an input event).
async fn fill(browser: &Browser, id: &str, value: &str) {
    browser
        .execute(&format!(
            "const el = document.getElementById({}); el.value = {}; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); return true;",
            js(id),
            js(value)
        ))
        .await;
}

async fn wait_state(browser: &Browser, state: &str) {
    browser
        .wait_for(
            &format!(
                "document.getElementById('app').dataset.state === {}",
                js(state)
            ),
            &format!("the admin page in state {state}"),
        )
        .await;
}

async fn wait_text(browser: &Browser, id: &str, text: &str) {
    browser
        .wait_for(
            &format!(
                "document.getElementById({}) && document.getElementById({}).innerText === {}",
                js(id),
                js(id),
                js(text)
            ),
            &format!("#{id} showing {text}"),
        )
        .await;
}

/// The admin site behind lighttpd in Chromium, signed in as the admin.
async fn signed_in_site(system: &System) -> (Lighttpd, Browser) {
    let lighttpd = Lighttpd::start(free_port(), &system.gateway_urls).await;
    let browser = Browser::start(BrowserOptions::default()).await;
    browser.goto(&lighttpd.host_url(ADMIN, "/")).await;
    wait_state(&browser, "login").await;
    fill(&browser, "login-username", "admin").await;
    fill(&browser, "login-password", ADMIN_PASSWORD).await;
    browser.click("#login-submit").await;
    wait_state(&browser, "main").await;
    (lighttpd, browser)
}

/// Two calls of the cloud model as the photo service records them: one answered with 1200 tokens in
/// 800 ms, one refused after 1000 ms but billed 300 tokens.
async fn record_model_calls(system: &System) {
    use proto::stats::v1 as pb;
    let mut client =
        pb::stats_service_client::StatsServiceClient::new(system.grpc_channel(&system.stats.url()));
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let records = [(200, 800, 1200), (502, 1000, 300)]
        .into_iter()
        .map(|(status, latency_ms, model_tokens)| pb::RequestRecord {
            at_unix_ms: at,
            kind: pb::RecordKind::ModelCall.into(),
            endpoint: "qwen-vl-max".into(),
            status,
            latency_ms,
            client_id: "admin-site-app".into(),
            source: "model".into(),
            model_tokens,
            ..Default::default()
        })
        .collect();
    client
        .record_requests(pb::RecordRequestsRequest {
            records,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn admin_adjust_rows(system: &System) -> Vec<(i64, String)> {
    let pool = system.db.primary().await;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT l.delta, u.openid FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id \
         WHERE l.reason = 'admin_adjust'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn admin_site_signs_in_shows_the_overview_and_adjusts_credits() {
    let system = System::start(Options::membership_flows()).await;
    // Seed: one client bound by a new follower (10 free credits), who buys 10 credits (¥5.00).
    let qr = system.create_qrcode("admin-site-app").await;
    system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), OPENID)
        .await
        .expect("scan");
    let member = system.sign_in(OPENID).await;
    let created = member.create_order(e2e::api::credits_order(10)).await;
    let order_no = created.order.order_no.clone();
    system.sandbox.pay(&order_no).await.unwrap();
    member.wait_for_order(&order_no, "paid").await;
    assert_eq!(member.profile().await.remaining_credits, 20);
    record_model_calls(&system).await;

    let lighttpd = Lighttpd::start(free_port(), &system.gateway_urls).await;
    let browser = Browser::start(BrowserOptions::default()).await;
    browser.goto(&lighttpd.host_url(ADMIN, "/")).await;
    wait_state(&browser, "login").await;
    browser.screenshot("admin-1-login").await;

    // A wrong password: the form says so and stays.
    fill(&browser, "login-username", "admin").await;
    fill(&browser, "login-password", "not-the-password").await;
    browser.click("#login-submit").await;
    browser
        .wait_for(
            "!document.getElementById('login-error').hidden && \
             document.getElementById('login-error').dataset.code === 'invalid_credentials'",
            "the wrong-password error",
        )
        .await;
    assert_eq!(browser.text("#login-error").await, "用户名或密码错误");
    assert_eq!(
        browser
            .execute("return document.getElementById('app').dataset.state")
            .await,
        "login"
    );
    browser.screenshot("admin-2-wrong-password").await;

    // The right one: the overview with the seeded numbers.
    fill(&browser, "login-password", ADMIN_PASSWORD).await;
    browser.click("#login-submit").await;
    wait_state(&browser, "main").await;
    browser
        .wait_for(
            "document.getElementById('app').dataset.overview === 'ready'",
            "the overview loaded",
        )
        .await;
    assert_eq!(browser.text("#admin-name").await, "admin");
    assert_eq!(browser.text("#m-revenue").await, "¥5.00");
    assert_eq!(browser.text("#m-paid-orders").await, "1");
    assert_eq!(browser.text("#m-order-mix").await, "会员 0 · 额度 1");
    assert_eq!(browser.text("#m-new-followers").await, "1");
    assert_eq!(browser.text("#m-total-users").await, "1");
    assert_eq!(browser.text("#m-active-members").await, "0");
    // The requests above were recorded (asynchronously): the chart and table fill in on reload.
    browser.screenshot("admin-3-overview").await;

    // Reloading keeps the session (GET /me answers 200): straight to the overview.
    browser.goto(&lighttpd.host_url(ADMIN, "/")).await;
    wait_state(&browser, "main").await;
    browser
        .wait_for(
            "document.getElementById('app').dataset.overview === 'ready' && \
             document.querySelector('#chart svg') !== null && \
             document.querySelectorAll('#endpoints tr:not(.empty)').length > 0",
            "the chart and the endpoint table",
        )
        .await;
    browser.screenshot("admin-4-overview-chart").await;
    // The model-call table: calls, failures, tokens, and PERCENTILE_CONT over 800 and 1000 ms.
    browser
        .wait_for(
            "document.getElementById('model-calls').innerText.includes('qwen-vl-max')",
            "the model-call table",
        )
        .await;
    assert_eq!(
        browser
            .execute(
                "return Array.from(document.querySelectorAll('#model-calls tr td')) \
                 .map(td => td.innerText).join('|')"
            )
            .await,
        "qwen-vl-max|云端|2|1|1,500|900.0|990.0"
    );

    // The tables.
    browser.click(".tab[data-tab='users']").await;
    browser
        .wait_for(
            &format!(
                "document.getElementById('users').innerText.includes({})",
                js(OPENID)
            ),
            "the seeded user in the users table",
        )
        .await;
    assert_eq!(browser.text("#users-total").await, "共 1 位用户");
    browser.screenshot("admin-5-users").await;
    browser.click(".tab[data-tab='orders']").await;
    browser
        .wait_for(
            "document.getElementById('orders').innerText.includes('¥5.00')",
            "the paid order in the orders table",
        )
        .await;
    browser.click(".tab[data-tab='bindings']").await;
    browser
        .wait_for(
            "document.getElementById('bindings').innerText.includes('admin-site-app')",
            "the binding in the bindings table",
        )
        .await;

    // Credits: a reason is required; then +15 on 20 gives 35.
    browser.click(".tab[data-tab='credits']").await;
    fill(&browser, "adjust-openid", OPENID).await;
    fill(&browser, "adjust-delta", "15").await;
    browser.click("#adjust-submit").await;
    wait_text(&browser, "adjust-result", "请填写调整原因").await;
    assert!(admin_adjust_rows(&system).await.is_empty());
    fill(&browser, "adjust-reason", "客服补偿：识别失败").await;
    browser.click("#adjust-submit").await;
    browser
        .wait_for(
            "document.getElementById('adjust-result').dataset.kind === 'ok'",
            "the adjustment answered",
        )
        .await;
    assert_eq!(browser.text("#adjust-balance").await, "35");
    browser.screenshot("admin-6-adjusted").await;
    assert_eq!(
        admin_adjust_rows(&system).await,
        vec![(15, OPENID.to_owned())]
    );
    // The member's profile reads the replica, which has the operator's write a moment later (a
    // member's own writes are routed by their GTIDs; an operator's are not the member's).
    system.db.wait_for_replica().await;
    assert_eq!(member.profile().await.remaining_credits, 35);

    // The audit log shows it, with the ledger reference it made.
    browser.click(".tab[data-tab='audit']").await;
    wait_text(&browser, "audit-total", "共 1 条记录").await;
    let entry = browser.text("#audit").await;
    assert!(
        entry.contains("客服补偿：识别失败") && entry.contains("+15") && entry.contains(OPENID),
        "{entry}"
    );
    assert!(entry.contains("audit:"), "{entry}");
    browser.screenshot("admin-8-audit").await;

    // Logging out ends the session: the next load shows the login form.
    browser.click("#logout").await;
    wait_state(&browser, "login").await;
    browser.goto(&lighttpd.host_url(ADMIN, "/")).await;
    wait_state(&browser, "login").await;
    browser.quit().await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains("POST /api/v1/admin/credits/adjust"));
}

const ROWS: &str = "document.querySelectorAll('#bindings tr').length";

#[tokio::test]
async fn admin_site_pages_through_a_long_list_and_exports_it() {
    let system = System::start(Options::membership_flows()).await;
    for n in 0..60 {
        system.create_qrcode(&format!("page-pc-{n:02}")).await;
    }
    let (_lighttpd, browser) = signed_in_site(&system).await;

    // Newest first, fifty to a page.
    browser.click(".tab[data-tab='bindings']").await;
    wait_text(&browser, "bindings-total", "共 60 条绑定").await;
    browser
        .wait_for(&format!("{ROWS} === 50"), "the first page")
        .await;
    let pager = "#bindings-pager .pager-at";
    assert_eq!(browser.text(pager).await, "第 1–50 条，共 60 条");
    let disabled = |step: &str| {
        format!("return document.querySelector('#bindings-pager [data-step=\"{step}\"]').disabled")
    };
    assert_eq!(browser.execute(&disabled("-1")).await, true);
    assert!(browser.text("#bindings").await.contains("page-pc-59"));
    browser.click("#bindings-pager [data-step='1']").await;
    browser
        .wait_for(&format!("{ROWS} === 10"), "the second page")
        .await;
    assert_eq!(browser.text(pager).await, "第 51–60 条，共 60 条");
    assert_eq!(browser.execute(&disabled("1")).await, true);
    assert!(browser.text("#bindings").await.contains("page-pc-00"));
    browser.screenshot("admin-7-bindings-page-2").await;
    browser.click("#bindings-pager [data-step='-1']").await;
    browser
        .wait_for(&format!("{ROWS} === 50"), "back to the first page")
        .await;

    // The export link downloads every binding, not the page on screen.
    browser
        .execute(
            "window.__csv = null; \
             fetch(document.getElementById('bindings-export').href) \
               .then(r => r.text().then(t => { window.__csv = { type: r.headers.get('content-type'), text: t }; })); \
             return true;",
        )
        .await;
    browser
        .wait_for("window.__csv !== null", "the export downloaded")
        .await;
    assert_eq!(
        browser.execute("return window.__csv.type").await,
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        browser
            .execute("return window.__csv.text.trim().split('\\n').length")
            .await,
        61,
        "the header and all sixty bindings"
    );

    // The users' export carries the search.
    browser.click(".tab[data-tab='users']").await;
    fill(&browser, "users-openid", "o_someone").await;
    browser
        .execute("document.querySelector('#users-form button').click(); return true;")
        .await;
    browser
        .wait_for(
            "document.getElementById('users-export').href.endsWith('?format=csv&openid=o_someone')",
            "the export link with the search",
        )
        .await;
    browser.quit().await;
}

#[tokio::test]
async fn admin_site_refunds_part_of_an_order_and_lists_the_refund() {
    let system = System::start(Options::with_refunds()).await;
    // 10 credits for ¥5.00, paid.
    let member = system.sign_in("o_admin_site_refund").await;
    let order_no = system.paid_credits(&member, 10).await;

    let (lighttpd, browser) = signed_in_site(&system).await;

    // The paid order has a refund button; the form offers what is left of it.
    browser.click(".tab[data-tab='orders']").await;
    wait_text(&browser, "orders-total", "共 1 笔订单").await;
    browser.click("#orders button.refund").await;
    wait_text(&browser, "refund-left", "可退金额：¥5.00").await;
    fill(&browser, "refund-amount", "2").await;
    browser.click("#refund-submit").await;
    wait_text(&browser, "refund-result", "请填写退款原因").await;
    fill(&browser, "refund-reason", "用户误购，部分退款").await;
    browser.screenshot("admin-9-refund-form").await;
    browser.click("#refund-submit").await;
    browser
        .wait_for(
            "document.getElementById('refund-result').dataset.kind === 'ok'",
            "the refund answered",
        )
        .await;
    let result = browser.text("#refund-result").await;
    assert!(
        result.contains("¥2.00") && result.contains("收回额度 4"),
        "{result}"
    );
    browser.screenshot("admin-10-refunded").await;
    // 4 of the 10 credits went back with ¥2.00.
    assert_eq!(member.profile().await.remaining_credits, 6);

    // The refunds tab lists it, settled by WeChat Pay's notify.
    browser.click(".tab[data-tab='refunds']").await;
    wait_text(&browser, "refunds-total", "共 1 笔退款").await;
    for _ in 0..100 {
        if browser.text("#refunds").await.contains("已退款") {
            break;
        }
        browser.click("#refunds-refresh").await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listed = browser.text("#refunds").await;
    assert!(
        listed.contains(&order_no) && listed.contains("已退款") && listed.contains("用户误购"),
        "{listed}"
    );
    browser.screenshot("admin-11-refunds").await;
    browser.quit().await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains(&format!("POST /api/v1/admin/orders/{order_no}/refunds")));
}

#[tokio::test]
async fn admin_site_exports_and_erases_a_users_personal_data() {
    let system = System::start(Options::membership_flows()).await;
    system
        .bind_client("admin-site-erase", "o_admin_site_erase")
        .await;
    let (lighttpd, browser) = signed_in_site(&system).await;
    browser.click(".tab[data-tab='users']").await;
    wait_text(&browser, "users-total", "共 1 位用户").await;
    assert_eq!(
        browser
            .execute("return document.querySelector('#users a[download]').getAttribute('href')")
            .await,
        "/api/v1/admin/users/o_admin_site_erase/data"
    );
    browser.click("#users button.erase").await;
    browser.click("#erase-submit").await;
    wait_text(&browser, "erase-result", "请填写删除原因").await;
    fill(&browser, "erase-reason", "用户在公众号留言申请注销").await;
    browser.screenshot("admin-12-erase-form").await;
    browser.click("#erase-submit").await;
    browser
        .wait_for(
            "document.getElementById('erase-result').dataset.kind === 'ok'",
            "the erasure answered",
        )
        .await;
    assert!(browser.text("#erase-result").await.contains("作废额度 10"));
    // The list shows the user as erased, under the pseudonym.
    browser
        .wait_for(
            "document.getElementById('users').innerText.includes('已删除')",
            "the erased user listed",
        )
        .await;
    assert!(browser.text("#users").await.contains("erased:"));
    assert_eq!(
        browser
            .execute("return document.getElementById('erase-submit').disabled")
            .await,
        true,
        "an erased user cannot be submitted twice"
    );
    browser.screenshot("admin-13-erased").await;
    // The audit log names the action, the operator and the reason.
    browser.click(".tab[data-tab='audit']").await;
    browser
        .wait_for(
            "document.getElementById('audit').innerText.includes('删除个人数据')",
            "the erasure in the audit log",
        )
        .await;
    assert!(
        browser
            .text("#audit")
            .await
            .contains("用户在公众号留言申请注销")
    );
    browser.quit().await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains("POST /api/v1/admin/users/o_admin_site_erase/erasure"));
}

#[tokio::test]
async fn admin_site_checks_a_days_bill_and_shows_the_differences() {
    let system = System::start(Options::membership_flows()).await;
    let day =
        (chrono::Utc::now() + chrono::Duration::hours(8) - chrono::Duration::days(1)).date_naive();
    let bill_time = format!("{day} 12:00:00");
    system.sandbox.add_bill_row(sandbox::BillRow::payment(
        "XT_NOT_OURS_0002",
        1990,
        &bill_time,
    ));

    let (lighttpd, browser) = signed_in_site(&system).await;

    browser.click(".tab[data-tab='bills']").await;
    wait_text(&browser, "bills-total", "共 0 天").await;
    fill(&browser, "bills-date", &day.to_string()).await;
    browser.click("#bills-check").await;
    wait_text(&browser, "bills-status", "有差异").await;
    wait_text(&browser, "bills-total", "共 1 天").await;
    let differences = browser.text("#bill-differences").await;
    assert!(
        differences.contains("微信有此收款，我方无此订单")
            && differences.contains("XT_NOT_OURS_0002")
            && differences.contains("¥19.90"),
        "{differences}"
    );
    browser.screenshot("admin-12-bill-differences").await;
    browser.quit().await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains(&format!("POST /api/v1/admin/bills/{day}/check")));
}

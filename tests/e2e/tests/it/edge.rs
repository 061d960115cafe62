//! The web tier and the edge, run for real: lighttpd (`deploy/lighttpd`) and nginx (`deploy/nginx`)
//! with the project's own configuration on free loopback ports in front of the running system, and
//! the member H5 page and the sites (`deploy/web`) in headless Chromium. Screenshots are kept under
//! the artifacts directory (`$CARGO_TARGET_DIR/artifacts/edge/`).

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::cookie::CookieStore;

use e2e::api::types;
use e2e::browser::{Browser, BrowserOptions, PHONE_USER_AGENT, WECHAT_USER_AGENT};
use e2e::edge::{
    Lighttpd, Nginx, NginxListen, ScratchDir, free_port, post_head_only, raw_http, repo_root,
    require_tool, site_client,
};
use e2e::{MemberBrowser, Options, System};
use sandbox::NotifyMode;
use serde_json::{Value, json};
use wechat_protocol::pay::{SignType, sign};

const WWW: &str = "www.xintuxiangce.top";
const API: &str = "api.aifuture.net.cn";

/// The system behind lighttpd: the gateways' public URL (OAuth redirect_uri) is lighttpd's www
/// host, and they take the client address from the X-Real-IP lighttpd sets.
async fn with_lighttpd(options: Options) -> (System, Lighttpd) {
    let port = free_port();
    let system = System::start(Options {
        public_base_url: Some(format!("http://{WWW}:{port}")),
        trust_proxy_headers: true,
        ..options
    })
    .await;
    let lighttpd = Lighttpd::start(port, &system.gateway_urls).await;
    (system, lighttpd)
}

/// The request id an edge gave the response: its own (32 hex digits), never the client's.
fn edge_request_id(response: &reqwest::Response) -> String {
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("a request id")
        .to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "the edge's request id: {id}"
    );
    id
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
}

/// Signs `openid` in the way the member page does, every step through lighttpd:
/// authorize → WeChat (the sandbox) → callback → back on the member page.
async fn sign_in_via(
    lighttpd: &Lighttpd,
    openid: &str,
) -> (MemberBrowser, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = site_client(lighttpd.port, Some(jar.clone()));
    let to_wechat = http
        .get(lighttpd.host_url(WWW, "/api/v1/member/oauth/authorize?return_to=/member/"))
        .send()
        .await
        .unwrap();
    assert_eq!(to_wechat.status(), 302);
    let mut wechat = reqwest::Url::parse(location(&to_wechat)).unwrap();
    wechat.set_fragment(None);
    wechat
        .query_pairs_mut()
        .append_pair("sandbox_openid", openid);
    let back = http.get(wechat).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = location(&back).to_owned();
    assert!(
        callback.starts_with(&lighttpd.host_url(WWW, "/api/v1/member/oauth/callback?")),
        "WeChat sends the user back through lighttpd: {callback}"
    );
    let signed_in = http.get(&callback).send().await.unwrap();
    assert_eq!(signed_in.status(), 302);
    assert_eq!(location(&signed_in), "/member/");
    (
        MemberBrowser {
            http,
            gateway: lighttpd.host_url(WWW, ""),
        },
        jar,
    )
}

async fn client_ip_of(system: &System, out_trade_no: &str) -> String {
    let pool = system.db.primary().await;
    let ip: String =
        sqlx::query_scalar("SELECT client_ip FROM payment_orders WHERE out_trade_no = ?")
            .bind(out_trade_no)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    ip
}

fn assert_pay_sign(system: &System, params: &types::PayParamsOut) {
    let expected = sign(
        e2e::api::pay_sign_fields(params),
        &system.sandbox.config().pay_key,
        SignType::HmacSha256,
    );
    assert_eq!(params.pay_sign, expected, "{params:?}");
}

#[tokio::test]
async fn wechat_push_and_pay_notify_pass_through_lighttpd() {
    let (system, mut lighttpd) = with_lighttpd(Options {
        safe_mode: true,
        gateways: 2,
        ..Options::default()
    })
    .await;
    let push_url = format!("{}/api/v1/auth/wechat/verify", lighttpd.url);

    // WeChat's server URL check: the signed GET is answered with the echostr.
    let mut query = system.sandbox.sign_push("", "").query;
    query.retain(|(k, _)| k != "openid");
    query.push(("echostr".into(), "7203659183547728391".into()));
    let check = system
        .http
        .get(&push_url)
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "7203659183547728391");

    // The user scans the app's QR code: the safe-mode push goes through lighttpd, the gateway
    // verifies and decrypts it, and the encrypted, signed reply comes back intact.
    let qr = system.create_qrcode("pc-behind-edge").await;
    let reply = system
        .sandbox
        .scan(&push_url, qr.ticket.as_str(), "o_edge_user")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("<Encrypt>") && reply.body.contains("<MsgSignature>"));
    assert!(reply.content().unwrap().contains("绑定成功"), "{reply:?}");
    let done = system
        .binding("pc-behind-edge", qr.client_token.as_str())
        .await
        .expect("a binding");
    assert_eq!(done.status, "completed");
    assert_eq!(done.openid.as_deref(), Some("o_edge_user"));

    // A tampered push through lighttpd is still refused by the gateway's signature check.
    let forged = system
        .sandbox
        .event_push("o_forger", "subscribe", "", "", 7);
    let tampered = sandbox::user::Push {
        query: forged.query.clone(),
        body: forged.body.replacen("<![CDATA[", "<![CDATA[A", 2),
    };
    let refused = system.sandbox.deliver(&push_url, &tampered).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The member page's API through lighttpd: OAuth sign-in, profile, order.
    let (member, jar) = sign_in_via(&lighttpd, "o_edge_user").await;
    let profile = member.profile().await;
    assert_eq!(profile.openid, "o_edge_user");
    assert!(profile.following);
    assert_eq!(profile.remaining_credits, 10);

    // A client-sent X-Real-IP is replaced by lighttpd with the real peer address.
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let created: types::CreateOrderOut = member
        .http
        .post(lighttpd.host_url(WWW, "/api/v1/payment/create-order"))
        .header("X-Real-IP", "203.0.113.9")
        .json(&e2e::api::credits_order(20))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_no = created.order.order_no.clone();
    assert_eq!(created.order.total_fee, 1000);
    assert_pay_sign(&system, &created.pay_params);
    assert_eq!(client_ip_of(&system, &order_no).await, "127.0.0.1");
    // ...whereas straight to a gateway (which trusts the header, being behind an edge) it
    // would count: the header is what the gateway uses, so the edge must own it.
    let session = jar
        .cookies(&reqwest::Url::parse(&lighttpd.host_url(WWW, "/")).unwrap())
        .expect("the session cookie");
    let direct: types::CreateOrderOut = system
        .http
        .post(format!("{}/api/v1/payment/create-order", system.gateway()))
        .header("cookie", session)
        .header("X-Real-IP", "203.0.113.9")
        .json(&e2e::api::credits_order(1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct_no = direct.order.order_no.as_str();
    assert_eq!(client_ip_of(&system, direct_no).await, "203.0.113.9");

    // The user pays; WeChat Pay's notify reaches the gateway through lighttpd.
    system.sandbox.pay(&order_no).await.unwrap();
    let notify_url = format!("{}/api/v1/payment/notify", lighttpd.url);
    // A notify whose amount was changed in transit fails its signature: nothing changes.
    let mut tampered = system.sandbox.notify_fields(&order_no).unwrap();
    tampered.insert("total_fee".into(), "1".into());
    let (ok, status, body) = system.sandbox.post_notify(&notify_url, &tampered).await;
    assert!(!ok, "{status} {body}");
    assert!(body.contains("FAIL"), "{body}");
    let order = member.order(&order_no).await.expect("the order");
    assert_eq!(order.status, "notpay");
    // The genuine notify: signature intact, SUCCESS answered, the order paid once.
    let fields = system.sandbox.notify_fields(&order_no).unwrap();
    let (ok, status, body) = system.sandbox.post_notify(&notify_url, &fields).await;
    assert!(ok, "{status} {body}");
    assert!(
        body.contains("<return_code><![CDATA[SUCCESS]]></return_code>"),
        "{body}"
    );
    member.wait_for_order(&order_no, "paid").await;
    let (ok, _, _) = system.sandbox.post_notify(&notify_url, &fields).await;
    assert!(ok, "a repeated notify is acknowledged");
    let profile = member.profile().await;
    assert_eq!(profile.remaining_credits, 30);
    assert_eq!(profile.total_credits, 30);
    system.assert_ledger_invariant().await;

    // lighttpd logged each proxied request with the request id it gave the gateway.
    let log = lighttpd
        .access_log_with("POST /api/v1/payment/notify")
        .await;
    let notify_line = log
        .lines()
        .find(|line| line.contains("POST /api/v1/payment/notify"))
        .expect("the notify in lighttpd's access log");
    let id = notify_line.split('"').nth(3).expect("the request id field");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{notify_line}"
    );
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains("POST /api/v1/auth/wechat/verify "), "{log}");
    assert!(
        !log.contains("signature="),
        "push signatures stay out of the access log: {log}"
    );
    lighttpd.assert_running();
}

#[tokio::test]
async fn lighttpd_proxies_nothing_else() {
    let (system, lighttpd) = with_lighttpd(Options::default()).await;
    let http = site_client(lighttpd.port, None);
    let before = system.sandbox.stats();
    let refused = [
        ("POST", "/api/v1/auth/wechat/qrcode"),
        ("GET", "/api/v1/auth/wechat/binding?client_id=pc-1"),
        ("GET", "/api/v1/location?lat=30.25&lng=120.16"),
        ("POST", "/api/v1/location/batch"),
        ("POST", "/api/v1/photos/classify"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/admin/login"),
        ("GET", "/api/v1/admin/overview"),
        ("GET", "/api/v2/member/profile"),
        ("GET", "/api/v1/payment/refund"),
        ("GET", "/api"),
        ("GET", "/api/"),
    ];
    for (method, path) in refused {
        let mut request = http.request(method.parse().unwrap(), lighttpd.host_url(WWW, path));
        if method == "POST" {
            request = request
                .header("content-type", "application/json")
                .body("{}");
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("403 · 无权访问"),
            "lighttpd itself answers {path}: {body}"
        );
    }
    // The gateway's own endpoints are not published by the web tier either.
    for path in ["/healthz", "/readyz"] {
        let response = http.get(lighttpd.host_url(WWW, path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // Paths are normalised before they are matched: no way around the list.
    for (path, status) in [
        ("/api/v1/payment/notify/../../auth/wechat/qrcode", "403"),
        ("/api/v1/member/%2e%2e/%2e%2e/auth/wechat/binding", "403"),
        ("/api/v1/member/profile/../../openapi.json", "403"),
        (
            "/api/v1/payment/orders/x%2F..%2F..%2Fauth%2Fwechat%2Fqrcode",
            "400",
        ),
    ] {
        let answer = raw_http(
            lighttpd.port,
            &format!("GET {path} HTTP/1.1\r\nHost: {WWW}\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
    }
    // The other hosts pass on nothing of the member page's or WeChat's.
    for host in [
        "www.aifuture.net.cn",
        "admin.xintuxiangce.top",
        "admin.xintuxaingce.top",
    ] {
        for path in [
            "/api/v1/payment/notify",
            "/api/v1/auth/wechat/verify",
            "/api/v1/member/profile",
        ] {
            let response = http
                .get(lighttpd.host_url(host, path))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{host}{path}");
        }
    }
    // The admin hosts pass on the admin API only (the admin site calls it on its own origin).
    let admin = http
        .get(lighttpd.host_url("admin.xintuxiangce.top", "/api/v1/admin/overview"))
        .send()
        .await
        .unwrap();
    assert_ne!(admin.status(), 403);
    assert!(
        admin.headers().contains_key("x-request-id"),
        "answered by the gateway"
    );
    let after = system.sandbox.stats();
    assert_eq!(after.qrcode_creates, before.qrcode_creates);
    assert_eq!(after.unified_orders, before.unified_orders);
    // What is listed does reach the gateway (its JSON error for a missing session).
    let profile = http
        .get(lighttpd.host_url(WWW, "/api/v1/member/profile"))
        .header("X-Request-Id", "chosen-by-the-client")
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 401);
    let id = profile.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "chosen-by-the-client", "the edge sets the request id");
    let body: Value = profile.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_signed_in");
    assert_eq!(body["error"]["request_id"], id.as_str());
}

/// An app server that reads each request and then answers as `reply` says: `None` resets the
/// connection (a gateway killed mid-request), `Some(answer)` writes the answer with the request's
/// X-Request-Id filled in for `{id}` (written in lower case, as the gateway writes headers).
async fn app_server(reply: Option<&'static str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = vec![0; 16 * 1024];
            let read = stream.read(&mut request).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..read]).into_owned();
            match reply {
                None => {
                    let _ = stream.set_zero_linger();
                }
                Some(answer) => {
                    let id = request
                        .lines()
                        .find_map(|line| line.strip_prefix("X-Request-Id: "))
                        .unwrap_or_default();
                    let _ = stream
                        .write_all(answer.replace("{id}", id).as_bytes())
                        .await;
                }
            }
        }
    });
    url
}

/// What lighttpd makes of an app server that fails (reset mid-request, or nobody listening) is
/// the edge's JSON error with the request id, as nginx answers: a client sees an unavailable
/// upstream to retry, never an internal error (lighttpd's own page says 500) nor HTML. The
/// gateway's own errors pass through unchanged.
#[tokio::test]
async fn lighttpd_answers_a_failed_app_server_with_the_edge_json() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    for (what, server) in [
        ("reset mid-request", app_server(None).await),
        ("nobody listening", closed),
    ] {
        let lighttpd = Lighttpd::start(free_port(), &[server]).await;
        let response = site_client(lighttpd.port, None)
            .get(lighttpd.host_url(WWW, "/api/v1/member/profile"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{what}"
        );
        let id = edge_request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upstream_unavailable", "{what}");
        assert_eq!(body["error"]["request_id"], id.as_str(), "{what}");
    }
    // The gateway's own 503 (a service down) is the gateway's to tell.
    let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                  x-request-id: {id}\r\nContent-Length: 41\r\nConnection: close\r\n\r\n\
                  {\"error\":{\"code\":\"service_unavailable\"}}\n";
    let lighttpd = Lighttpd::start(free_port(), &[app_server(Some(answer)).await]).await;
    let response = site_client(lighttpd.port, None)
        .get(lighttpd.host_url(WWW, "/api/v1/member/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": { "code": "service_unavailable" } }));
}

#[tokio::test]
async fn lighttpd_serves_each_site_by_host() {
    // No app server is needed to serve the sites: they share nothing with the API.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let lighttpd = Lighttpd::start(free_port(), &[nowhere]).await;
    let http = site_client(lighttpd.port, None);
    let web = repo_root().join("deploy/web");
    let read = |path: &str| std::fs::read(web.join(path)).unwrap();
    let sites = [
        (WWW, "xintuxiangce"),
        ("admin.xintuxaingce.top", "admin"),
        ("admin.xintuxiangce.top", "admin"),
        ("www.aifuture.net.cn", "aifuture"),
        // Requests naming no known host (WeChat's servers use the configured one) get 芯图相册.
        ("127.0.0.1", "xintuxiangce"),
    ];
    let mut bodies = BTreeSet::new();
    for (host, dir) in sites {
        let url = if host == "127.0.0.1" {
            format!("{}/", lighttpd.url)
        } else {
            lighttpd.host_url(host, "/")
        };
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{host}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = response.bytes().await.unwrap();
        assert_eq!(body.as_ref(), read(&format!("{dir}/index.html")), "{host}");
        bodies.insert(body.to_vec());
    }
    assert_eq!(bodies.len(), 3, "three different sites");

    // The member page lives on the 芯图相册 host only, with a strict content security policy.
    let member = http
        .get(lighttpd.host_url(WWW, "/member/"))
        .send()
        .await
        .unwrap();
    assert_eq!(member.status(), 200);
    let csp = member.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(
        member.bytes().await.unwrap(),
        read("xintuxiangce/member/index.html")
    );
    for (path, content_type) in [
        ("/member/member.js", "text/javascript; charset=utf-8"),
        ("/member/member.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let response = http.get(lighttpd.host_url(WWW, path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
    }
    for host in ["www.aifuture.net.cn", "admin.xintuxiangce.top"] {
        let response = http
            .get(lighttpd.host_url(host, "/member/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{host} has no member page");
    }
    // Each site's own stylesheet.
    let www_css = http
        .get(lighttpd.host_url(WWW, "/assets/site.css"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(www_css, read("xintuxiangce/assets/site.css"));
    let aifuture_css = http
        .get(lighttpd.host_url("www.aifuture.net.cn", "/assets/site.css"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(aifuture_css, read("aifuture/assets/site.css"));
    // No directory listings, no configuration, friendly 404s.
    let listing = http
        .get(lighttpd.host_url(WWW, "/assets/"))
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 403);
    let missing = http
        .get(lighttpd.host_url(WWW, "/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("页面不存在"));
    for path in ["/../lighttpd/xintu.conf", "/../lighttpd/edge.lua"] {
        let answer = raw_http(
            lighttpd.port,
            &format!("GET {path} HTTP/1.1\r\nHost: {WWW}\r\nConnection: close\r\n\r\n"),
        );
        assert!(!answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
    }
}

async fn upstream_of(nginx: &Nginx, request_id: &str) -> String {
    nginx.logged(request_id).await["upstream_addr"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn nginx_spreads_requests_and_survives_a_stopped_gateway() {
    let system = System::start(Options {
        gateways: 2,
        trust_proxy_headers: true,
        ..Options::default()
    })
    .await;
    let mut nginx = Nginx::start(&system.gateway_urls).await;
    let http = reqwest::Client::new();
    let gateways: Vec<String> = system
        .gateway_urls
        .iter()
        .map(|url| url.trim_start_matches("http://").to_owned())
        .collect();

    // Requests are spread over both instances; the request id is nginx's, not the client's.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let response = http
            .get(format!("{}/api/v1/openapi.json", nginx.url))
            .header("X-Request-Id", "chosen-by-the-client")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let id = edge_request_id(&response);
        assert_eq!(response.headers().get_all("x-request-id").iter().count(), 1);
        ids.push(id);
    }
    let mut served = BTreeSet::new();
    for id in &ids {
        served.insert(upstream_of(&nginx, id).await);
    }
    assert_eq!(
        served,
        gateways.iter().cloned().collect(),
        "both gateways served"
    );
    // The id nginx logged is the one the gateway used (its JSON errors carry it).
    let response = http
        .get(format!("{}/api/v1/member/profile", nginx.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], id.as_str());
    assert_eq!(nginx.logged(&id).await["upstream_status"], "401");

    // The client address: nginx overwrites X-Real-IP. The member's cookie (host 127.0.0.1) is
    // sent to nginx's port too.
    let member = system.sign_in("o_app_user").await;
    let created: types::CreateOrderOut = member
        .http
        .post(format!("{}/api/v1/payment/create-order", nginx.url))
        .header("X-Real-IP", "203.0.113.9")
        .json(&e2e::api::member_order())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_no = created.order.order_no.as_str();
    assert_eq!(client_ip_of(&system, order_no).await, "127.0.0.1");

    // One gateway stops: nginx keeps answering from the other, including a POST whose first
    // attempt found the stopped instance's port closed (nothing was sent, so it is retried).
    system.stop_gateway(1);
    let stopped = gateways[1].clone();
    for attempt in 0.. {
        if tokio::net::TcpStream::connect(&stopped).await.is_err() {
            break;
        }
        assert!(attempt < 400, "gateway 1 never stopped listening");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let mut after = Vec::new();
    for index in 0..10 {
        let response = if index % 2 == 0 {
            http.get(format!("{}/api/v1/openapi.json", nginx.url))
                .send()
                .await
                .unwrap()
        } else {
            http.post(format!("{}/api/v1/auth/wechat/qrcode", nginx.url))
                .json(&json!({ "client_id": format!("pc-failover-{index}") }))
                .send()
                .await
                .unwrap()
        };
        assert_eq!(response.status(), 200, "request {index} after the stop");
        after.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut upstreams = Vec::new();
    for id in &after {
        upstreams.push(upstream_of(&nginx, id).await);
    }
    assert!(
        upstreams
            .iter()
            .all(|addrs| addrs.rsplit(", ").next() == Some(gateways[0].as_str())),
        "every answer came from the running gateway: {upstreams:?}"
    );
    assert!(
        upstreams.iter().any(|addrs| addrs.contains(&stopped)),
        "nginx tried the stopped gateway and moved on: {upstreams:?}"
    );
    nginx.assert_running();
    assert!(nginx.error_log().contains("connect() failed"));
}

/// A service that is down is the gateways' answer to give, not a sign that the gateways are: with
/// photo stopped, every location lookup through nginx gets the gateway's own 503, and the
/// gateways stay in nginx's rotation for everything else (an nginx that counted those 503s as
/// failed instances took both out and answered 502 on every route).
#[tokio::test]
async fn nginx_passes_a_service_outage_through_and_keeps_other_routes_up() {
    let system = System::start(Options {
        gateways: 2,
        trust_proxy_headers: true,
        ..Options::default()
    })
    .await;
    let nginx = Nginx::start(&system.gateway_urls).await;
    let http = reqwest::Client::new();
    let token = system.bind_client("pc-outage", "o_outage_user").await;
    system.stop_photo();
    for attempt in 0.. {
        let status = http
            .get(format!("{}/api/v1/location?lat=39.9&lng=116.4", nginx.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 503 {
            break;
        }
        assert!(attempt < 200, "the photo outage never showed: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for _ in 0..6 {
        let response = http
            .get(format!("{}/api/v1/location?lat=39.9&lng=116.4", nginx.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
        let binding = http
            .get(format!(
                "{}/api/v1/auth/wechat/binding?client_id=pc-outage",
                nginx.url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(binding.status(), 200, "{:?}", binding.text().await);
    }
}

/// The admin API answers only on the admin site's host: through the public API host (nginx) its
/// sign-in is a 404 from nginx that never reaches a gateway.
#[tokio::test]
async fn the_public_api_host_has_no_admin_api() {
    let system = System::start(Options::default()).await;
    let nginx = Nginx::start(&system.gateway_urls).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/admin/login"),
        (reqwest::Method::GET, "/api/v1/admin/overview"),
        (reqwest::Method::GET, "/api/v1/admin/../admin/me"),
    ] {
        let response = http
            .request(method, format!("{}{path}", nginx.url))
            .json(&serde_json::json!({ "username": "admin", "password": "guess" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(nginx.logged(&id).await["upstream_addr"], "", "{path}");
    }
}

#[tokio::test]
async fn edges_refuse_oversized_bodies() {
    let system = System::start(Options::default()).await;
    let nginx = Nginx::start(&system.gateway_urls).await;
    let lighttpd = Lighttpd::start(free_port(), &system.gateway_urls).await;
    let http = reqwest::Client::new();

    // nginx: over 64 KiB on an API endpoint is refused from the request head, in the API's error
    // format, and never reaches a gateway.
    let head = post_head_only(nginx.port, API, "/api/v1/auth/wechat/qrcode", 64 * 1024 + 1);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let response = http
        .post(format!("{}/api/v1/payment/notify", nginx.url))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(body["error"]["request_id"], id.as_str());
    assert_eq!(nginx.logged(&id).await["upstream_addr"], "");
    // Photo uploads may be larger: 1 MiB is passed on to the gateway (which answers it)...
    let upload = http
        .post(format!("{}/api/v1/photos/classify", nginx.url))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 1 << 20])
        .send()
        .await
        .unwrap();
    let id = upload.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let entry = nginx.logged(&id).await;
    assert_ne!(entry["upstream_addr"], "", "{entry}");
    assert!(
        entry["request_length"].as_u64().unwrap() > 1 << 20,
        "{entry}"
    );
    // ...up to 41 MiB: the gateway's largest batch (40 MiB) and its form fields.
    let head = post_head_only(
        nginx.port,
        API,
        "/api/v1/photos/classify",
        41 * 1024 * 1024 + 1,
    );
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // lighttpd: the same 64 KiB for everything it passes on.
    let head = post_head_only(lighttpd.port, WWW, "/api/v1/payment/notify", 64 * 1024 + 1);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let head = post_head_only(lighttpd.port, WWW, "/api/v1/auth/wechat/verify", 1 << 20);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // Under the limit a notify is passed on, and the gateway answers in WeChat Pay's format.
    let padded = format!("<xml><padding>{}</padding></xml>", "x".repeat(60 * 1024));
    let response = http
        .post(format!("{}/api/v1/payment/notify", lighttpd.url))
        .header("content-type", "text/xml")
        .body(padded)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("<return_code>"), "{text}");
}

#[tokio::test]
async fn nginx_terminates_tls_with_certificate_files() {
    let openssl = require_tool("openssl", "openssl");
    let dir = ScratchDir::new("tls");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&openssl)
            .args(args)
            .current_dir(&dir.path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // A private CA and a certificate for api.aifuture.net.cn, as the operator's files would be.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Xintu test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "privkey.pem",
        "-out",
        "api.csr",
        "-subj",
        "/CN=api.aifuture.net.cn",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:api.aifuture.net.cn\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "fullchain.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);

    let system = System::start(Options::default()).await;
    let nginx = Nginx::start_with(
        &system.gateway_urls,
        NginxListen::Tls {
            cert: dir.join("fullchain.pem"),
            key: dir.join("privkey.pem"),
        },
    )
    .await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve(
            API,
            std::net::SocketAddr::from(([127, 0, 0, 1], nginx.port)),
        )
        .build()
        .unwrap();
    let response = client
        .get(format!("https://{API}:{}/api/v1/openapi.json", nginx.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::get(format!(
        "http://127.0.0.1:{}/api/v1/openapi.json",
        nginx.port
    ))
    .await
    .unwrap();
    assert_eq!(plain.status(), 400);
}

// ---------------------------------------------------------------------------------------------
// The member page in headless Chromium.

/// A stand-in for WeChat's native bridge, injected before the page's scripts as WeChat does. It
/// records each `getBrandWCPayRequest` and lets the test answer it (ok, cancel, fail), and it
/// appears — with the `WeixinJSBridgeReady` event — only when the test announces it.
const BRIDGE: &str = r#"
(() => {
  const calls = [];
  const bridge = {
    invoke(api, params, callback) { calls.push({ api, params, callback, answered: null }); },
  };
  window.__wxTest = {
    announce() {
      window.WeixinJSBridge = bridge;
      document.dispatchEvent(new Event('WeixinJSBridgeReady'));
      return true;
    },
    requests() { return calls.map(c => ({ api: c.api, params: c.params, answered: c.answered })); },
    respond(index, errMsg) { calls[index].answered = errMsg; calls[index].callback({ err_msg: errMsg }); return true; },
  };
})();
"#;

fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

async fn wait_state(browser: &Browser, state: &str) {
    browser
        .wait_for(
            &format!(
                "document.getElementById('app').dataset.state === {}",
                js(state)
            ),
            &format!("the page in state {state}"),
        )
        .await;
}

async fn wait_notice(browser: &Browser, kind: &str) {
    browser
        .wait_for(
            &format!(
                "!document.getElementById('notice').hidden && \
                 document.getElementById('notice').dataset.kind === {}",
                js(kind)
            ),
            &format!("the {kind} notice"),
        )
        .await;
}

/// Waits for the page's `index`-th payment request and returns its parameters.
async fn pay_request(browser: &Browser, index: usize) -> Value {
    let request = browser
        .wait_for(
            &format!("window.__wxTest.requests()[{index}]"),
            &format!("payment request {index}"),
        )
        .await;
    assert_eq!(request["api"], "getBrandWCPayRequest");
    request["params"].clone()
}

async fn answer(browser: &Browser, index: usize, err_msg: &str) {
    browser
        .execute(&format!(
            "return window.__wxTest.respond({index}, {});",
            js(err_msg)
        ))
        .await;
}

async fn out_trade_no(system: &System, params: &Value) -> String {
    let prepay_id = params["package"]
        .as_str()
        .unwrap()
        .trim_start_matches("prepay_id=")
        .to_owned();
    let pool = system.db.primary().await;
    let no: String =
        sqlx::query_scalar("SELECT out_trade_no FROM payment_orders WHERE prepay_id = ?")
            .bind(prepay_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    no
}

async fn order_status(system: &System, out_trade_no: &str) -> String {
    let pool = system.db.primary().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM payment_orders WHERE out_trade_no = ?")
            .bind(out_trade_no)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    status
}

#[tokio::test]
async fn member_page_in_wechat_signs_in_and_buys() {
    let (system, lighttpd) = with_lighttpd(Options::default()).await;
    let openid = system.sandbox.config().oauth_openid.clone();
    let notify_url = format!("{}/api/v1/payment/notify", lighttpd.url);
    // The user bound the app first (the push through lighttpd): 10 credits, following.
    let qr = system.create_qrcode("phone-app-1").await;
    system
        .sandbox
        .scan(
            &format!("{}/api/v1/auth/wechat/verify", lighttpd.url),
            qr.ticket.as_str(),
            &openid,
        )
        .await
        .unwrap();
    // WeChat Pay's notifies are delivered by the test, through lighttpd, when it chooses.
    system.sandbox.set_notify_mode(NotifyMode::Drop);

    let browser = Browser::start(BrowserOptions {
        phone: Some((390, 844, WECHAT_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    browser.add_init_script(BRIDGE).await;
    let page = lighttpd.host_url(WWW, "/member/");
    browser.goto(&page).await;

    // Not signed in: the page goes through WeChat OAuth and comes back signed in.
    wait_state(&browser, "main").await;
    assert_eq!(browser.current_url().await, page);
    assert_eq!(browser.text("#credits").await, "10");
    assert_eq!(browser.text("#member-badge").await, "未开通会员");
    assert_eq!(browser.text("#member-price").await, "¥19.90");
    assert_eq!(browser.text("#buy-member").await, "开通会员 ¥19.90");
    assert_eq!(browser.text("#unit-price").await, "¥0.50");
    assert_eq!(
        browser
            .execute("return document.getElementById('follow-hint').hidden")
            .await,
        true
    );
    browser.screenshot("member-1-signed-in").await;

    // 1. Fifty credits; the bridge is not there yet: the page waits for WeixinJSBridgeReady.
    browser.click(".chip[data-amount='50']").await;
    assert_eq!(browser.text("#credits-total").await, "¥25.00");
    browser.click("#buy-credits").await;
    wait_notice(&browser, "paying").await;
    browser
        .wait_for(
            "document.getElementById('notice-title').innerText === '请在微信支付中完成付款'",
            "the order created, waiting for the bridge",
        )
        .await;
    assert_eq!(
        browser
            .execute("return window.__wxTest.requests().length")
            .await,
        0
    );
    browser.execute("return window.__wxTest.announce()").await;
    let params = pay_request(&browser, 0).await;
    // The page hands WeChat the parameters exactly as the API gave them.
    assert_pay_sign(&system, &serde_json::from_value(params.clone()).unwrap());
    let cancelled = out_trade_no(&system, &params).await;
    // ...and the user cancels in WeChat Pay.
    answer(&browser, 0, "get_brand_wcpay_request:cancel").await;
    wait_notice(&browser, "cancelled").await;
    assert_eq!(browser.text("#notice-title").await, "已取消支付");
    assert_eq!(browser.text("#credits").await, "10");
    assert_eq!(order_status(&system, &cancelled).await, "notpay");
    browser.screenshot("member-2-cancelled").await;

    // 2. Membership; the payment fails.
    browser.click("#buy-member").await;
    let params = pay_request(&browser, 1).await;
    answer(&browser, 1, "get_brand_wcpay_request:fail").await;
    wait_notice(&browser, "failed").await;
    assert_eq!(browser.text("#notice-title").await, "支付没有成功");
    assert_eq!(browser.text("#member-badge").await, "未开通会员");
    assert_eq!(
        order_status(&system, &out_trade_no(&system, &params).await).await,
        "notpay"
    );
    browser.screenshot("member-3-failed").await;

    // A second tab, opened now, still shows "not a member" later (for the 409 below).
    let first_tab = browser.new_tab().await;
    browser.add_init_script(BRIDGE).await;
    browser.goto(&page).await;
    wait_state(&browser, "main").await;
    let second_tab = browser.window_handle().await;
    browser.switch_to(&first_tab).await;

    // 3. Membership, paid: WeChat says ok first; the page polls until the notify (through
    //    lighttpd) has marked the order paid, then shows the membership.
    browser.click("#buy-member").await;
    let params = pay_request(&browser, 2).await;
    let member_order = out_trade_no(&system, &params).await;
    system.sandbox.pay(&member_order).await.unwrap();
    answer(&browser, 2, "get_brand_wcpay_request:ok").await;
    wait_notice(&browser, "confirming").await;
    browser.screenshot("member-4-confirming").await;
    let fields = system.sandbox.notify_fields(&member_order).unwrap();
    let (ok, status, body) = system.sandbox.post_notify(&notify_url, &fields).await;
    assert!(ok, "{status} {body}");
    wait_notice(&browser, "success").await;
    assert_eq!(browser.text("#notice-title").await, "支付成功，会员已开通");
    assert_eq!(browser.text("#member-badge").await, "芯图会员");
    assert_eq!(browser.text("#credits").await, "20");
    assert_eq!(browser.text("#member-days").await, "30");
    assert_eq!(browser.text("#buy-member").await, "会员有效期内");
    assert_eq!(
        browser
            .execute("return document.getElementById('buy-member').disabled")
            .await,
        true
    );
    browser.screenshot("member-5-member-paid").await;

    // 4. A hundred credits, paid; this time the notify arrives before WeChat's ok.
    browser.click(".chip[data-amount='100']").await;
    browser.click("#buy-credits").await;
    let params = pay_request(&browser, 3).await;
    let credits_order = out_trade_no(&system, &params).await;
    system.sandbox.pay(&credits_order).await.unwrap();
    let fields = system.sandbox.notify_fields(&credits_order).unwrap();
    let (ok, status, body) = system.sandbox.post_notify(&notify_url, &fields).await;
    assert!(ok, "{status} {body}");
    answer(&browser, 3, "get_brand_wcpay_request:ok").await;
    wait_notice(&browser, "success").await;
    browser
        .wait_for(
            "document.getElementById('credits').innerText === '120'",
            "120 credits after the notify",
        )
        .await;
    assert_eq!(browser.text("#notice-title").await, "支付成功，额度已到账");
    browser.screenshot("member-6-credits-paid").await;

    // 5. The other tab still offers membership; the server answers 409 and the page says so.
    browser.switch_to(&second_tab).await;
    assert_eq!(browser.text("#member-badge").await, "未开通会员");
    browser.execute("return window.__wxTest.announce()").await;
    browser.click("#buy-member").await;
    wait_notice(&browser, "member_active").await;
    assert_eq!(browser.text("#notice-title").await, "您已是芯图会员");
    assert_eq!(browser.text("#member-badge").await, "芯图会员");
    assert_eq!(
        browser
            .execute("return window.__wxTest.requests().length")
            .await,
        0,
        "no payment was asked for"
    );
    browser.screenshot("member-7-already-member").await;
    browser.quit().await;

    // Exactly the two paid orders changed the balance.
    let (_, paid, credits) = system.counts().await;
    assert_eq!((paid, credits), (2, 120));
    system.assert_ledger_invariant().await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains("GET /api/v1/member/oauth/callback "));
    assert!(
        !log.contains("code="),
        "OAuth codes stay out of the access log"
    );
    assert!(log.contains("GET /api/v1/payment/orders/"));
}

const DEVICES: &str = "document.querySelectorAll('#device-list .device')";

#[tokio::test]
async fn member_page_lists_the_users_apps_and_signs_one_out() {
    let (system, lighttpd) = with_lighttpd(Options::default()).await;
    let openid = system.sandbox.config().oauth_openid.clone();
    let laptop = system.bind_client("laptop-home", &openid).await;
    let phone = system.bind_client("phone-app-2", &openid).await;
    let stranger = system
        .bind_client("someone-elses-pc", "o_someone_else")
        .await;

    let browser = Browser::start(BrowserOptions {
        phone: Some((390, 844, WECHAT_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    browser.add_init_script(BRIDGE).await;
    browser.goto(&lighttpd.host_url(WWW, "/member/")).await;
    wait_state(&browser, "main").await;
    browser
        .wait_for(&format!("{DEVICES}.length === 2"), "the user's two apps")
        .await;
    let listed = browser
        .execute(&format!(
            "return Array.from({DEVICES}).map(d => d.dataset.clientId)"
        ))
        .await;
    assert_eq!(listed, json!(["phone-app-2", "laptop-home"]));
    assert!(
        browser
            .execute("return document.getElementById('devices-state').hidden")
            .await
            == true
    );
    browser.screenshot("member-devices-1-listed").await;

    // The first tap only asks; nothing is signed out yet.
    let laptop_button = ".device[data-client-id='laptop-home'] button";
    browser.click(laptop_button).await;
    assert_eq!(browser.text(laptop_button).await, "确认退出");
    system
        .account(&laptop)
        .await
        .expect("the laptop still reads its account");
    browser.screenshot("member-devices-2-confirm").await;

    browser.click(laptop_button).await;
    wait_notice(&browser, "signed_out").await;
    assert_eq!(browser.text("#notice-title").await, "设备已退出登录");
    browser
        .wait_for(&format!("{DEVICES}.length === 1"), "one app left")
        .await;
    assert_eq!(
        browser.text(".device strong").await,
        "phone-app-2",
        "the other app stays"
    );
    browser.screenshot("member-devices-3-signed-out").await;
    browser.quit().await;

    system.wait_until_token_refused(&laptop).await;
    system
        .account(&phone)
        .await
        .expect("the phone still reads its account");
    system
        .account(&stranger)
        .await
        .expect("another user's app is untouched");
}

#[tokio::test]
async fn member_page_turns_expiry_reminders_on_and_off() {
    let (system, lighttpd) = with_lighttpd(Options::default()).await;
    let openid = system.sandbox.config().oauth_openid.clone();
    // A follower (bound an app), so reminders can reach them.
    system.bind_client("laptop-reminders", &openid).await;
    let browser = Browser::start(BrowserOptions {
        phone: Some((390, 844, WECHAT_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    browser.add_init_script(BRIDGE).await;
    browser.goto(&lighttpd.host_url(WWW, "/member/")).await;
    wait_state(&browser, "main").await;
    let checked = "return document.getElementById('reminders').checked";
    assert_eq!(browser.execute(checked).await, false, "off until asked");
    browser.click("#reminders").await;
    browser
        .wait_for(
            "document.getElementById('reminders-hint').innerText.startsWith('已开启')",
            "the reminder switch saved",
        )
        .await;
    assert_eq!(browser.execute(checked).await, true);
    let pool = system.db.primary().await;
    let stored: bool =
        sqlx::query_scalar("SELECT expiry_reminders FROM wechat_users WHERE openid = ?")
            .bind(&openid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(stored);
    browser
        .execute("document.getElementById('reminders').scrollIntoView(); return true;")
        .await;
    browser.screenshot("member-8-reminders-on").await;
    // A reload shows what is stored; turning it off sticks too.
    browser.goto(&lighttpd.host_url(WWW, "/member/")).await;
    wait_state(&browser, "main").await;
    assert_eq!(browser.execute(checked).await, true);
    browser.click("#reminders").await;
    browser
        .wait_for(
            "document.getElementById('reminders-hint').innerText.startsWith('已关闭')",
            "the reminder switch saved off",
        )
        .await;
    browser.quit().await;
    let stored: bool =
        sqlx::query_scalar("SELECT expiry_reminders FROM wechat_users WHERE openid = ?")
            .bind(&openid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!stored);
}

#[tokio::test]
async fn member_page_offers_the_data_download_and_closes_the_account_on_a_second_tap() {
    let (system, lighttpd) = with_lighttpd(Options::default()).await;
    let openid = system.sandbox.config().oauth_openid.clone();
    let laptop = system.bind_client("laptop-erase", &openid).await;
    let browser = Browser::start(BrowserOptions {
        phone: Some((390, 844, WECHAT_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    browser.add_init_script(BRIDGE).await;
    browser.goto(&lighttpd.host_url(WWW, "/member/")).await;
    wait_state(&browser, "main").await;
    assert_eq!(
        browser
            .execute("return document.getElementById('download-data').getAttribute('href')")
            .await,
        "/api/v1/member/data"
    );
    // The first tap only asks, naming the credits that would go.
    browser.click("#erase").await;
    browser
        .wait_for(
            "document.getElementById('erase-hint').innerText.includes('10 张额度将作废')",
            "the erasure asks first",
        )
        .await;
    browser
        .execute("document.getElementById('data-card').scrollIntoView(); return true;")
        .await;
    browser.screenshot("member-9-erase-confirm").await;
    system.account(&laptop).await.expect("nothing erased yet");
    browser.click("#erase").await;
    wait_state(&browser, "erased").await;
    assert!(
        browser
            .text("#erased-text")
            .await
            .contains("10 张额度已作废")
    );
    browser.screenshot("member-10-erased").await;
    browser.quit().await;
    system.wait_until_token_refused(&laptop).await;
    let log = lighttpd.access_log_complete().await;
    assert!(log.contains("POST /api/v1/member/erasure"), "{log}");
}

#[tokio::test]
async fn sites_and_member_page_outside_wechat_in_chromium() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let lighttpd = Lighttpd::start(free_port(), &[nowhere]).await;

    // Outside WeChat the member page says where to open it, and calls no API.
    let phone = Browser::start(BrowserOptions {
        phone: Some((390, 844, PHONE_USER_AGENT)),
        ..BrowserOptions::default()
    })
    .await;
    phone.goto(&lighttpd.host_url(WWW, "/member/")).await;
    wait_state(&phone, "outside").await;
    assert!(phone.text("#view-outside").await.contains("请在微信中打开"));
    assert_eq!(
        phone
            .execute("return document.getElementById('page-link').value")
            .await,
        lighttpd.host_url(WWW, "/member/").as_str()
    );
    phone.screenshot("member-0-outside-wechat").await;
    phone.goto(&lighttpd.host_url(WWW, "/")).await;
    wait_loaded(&phone).await;
    phone.screenshot("site-xintuxiangce-phone").await;
    phone.quit().await;

    // The sites on a laptop screen: their own stylesheets and images load.
    let desktop = Browser::start(BrowserOptions::default()).await;
    for (host, name, heading) in [
        (WWW, "site-xintuxiangce", Some("让相册自己整理")),
        (
            "www.aifuture.net.cn",
            "site-aifuture",
            Some("做进每天都用的软件"),
        ),
        // The admin site is another team's page (deploy/web/admin): it only has to load here.
        ("admin.xintuxiangce.top", "site-admin", None),
    ] {
        desktop.goto(&lighttpd.host_url(host, "/")).await;
        wait_loaded(&desktop).await;
        if let Some(heading) = heading {
            assert!(desktop.text("h1").await.contains(heading), "{host}");
        }
        desktop.screenshot(name).await;
    }
    desktop.quit().await;
    // The public sites share nothing with the API at run time.
    let log = lighttpd.access_log_complete().await;
    let api_calls: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("/api/") && !line.contains(" admin.xintu"))
        .collect();
    assert!(
        api_calls.is_empty(),
        "the sites called the API: {api_calls:?}"
    );
}

/// The document, its stylesheets, fonts and images have loaded.
async fn wait_loaded(browser: &Browser) {
    browser
        .wait_for(
            "document.readyState === 'complete' && document.fonts.status === 'loaded' && \
             Array.from(document.images).every(i => i.complete && i.naturalWidth > 0) && \
             Array.from(document.styleSheets).every(s => s.cssRules.length > 0)",
            "the page with its styles and images",
        )
        .await;
}

/// Runs `nginx -t` on the committed files with the environment directory `env` of deploy/nginx
/// (addresses and certificate paths replaced as given: names that only resolve in compose, files
/// that only exist on the server).
/// The files of an nginx environment that only the OpenTelemetry module understands.
const OTEL_ONLY: [&str; 2] = ["modules.conf", "otel.conf"];

fn nginx_check(env: &str, replace: &[(&str, String)]) -> std::process::Output {
    let nginx = require_tool("nginx", "nginx");
    let dir = ScratchDir::new("nginx-check");
    let source = repo_root().join("deploy/nginx");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "conf") {
            std::os::unix::fs::symlink(&path, dir.path.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("env")).unwrap();
    for entry in std::fs::read_dir(source.join("env").join(env)).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        if OTEL_ONLY.contains(&path.file_name().unwrap().to_str().unwrap()) {
            // Debian's nginx has no OpenTelemetry module to load or configure: these files are
            // checked for what they must say, then left out of `nginx -t`.
            assert!(text.contains("otel"), "{}: {text}", path.display());
            text.clear();
        }
        if path.file_name().unwrap() == "http.conf" {
            // Keep nginx's temp directories (created even by -t) out of the system's.
            for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                text.push_str(&format!(
                    "{kind}_temp_path {}/{kind};\n",
                    dir.path.display()
                ));
            }
        }
        std::fs::write(dir.join("env").join(path.file_name().unwrap()), text).unwrap();
    }
    std::process::Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(format!("{}/", dir.path.display()))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-g")
        .arg(format!("pid {}/nginx.pid;", dir.path.display()))
        .output()
        .unwrap()
}

#[test]
fn production_and_compose_entry_files_pass_the_servers_checks() {
    // nginx, production: TLS with certificate files (pointed at throwaway ones) and the redirect.
    let openssl = require_tool("openssl", "openssl");
    let certs = ScratchDir::new("prod-certs");
    let made = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=api.aifuture.net.cn"])
        .arg("-keyout")
        .arg(certs.join("privkey.pem"))
        .arg("-out")
        .arg(certs.join("fullchain.pem"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls_dir = certs.path.display().to_string();
    let output = nginx_check(
        "production",
        &[("/etc/nginx/tls/api.aifuture.net.cn", tls_dir)],
    );
    assert!(
        output.status.success(),
        "nginx -t (production): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // nginx, compose: the gateway service's name only resolves inside compose.
    let output = nginx_check("compose", &[("gateway:8080", "127.0.0.1:8080".to_owned())]);
    assert!(
        output.status.success(),
        "nginx -t (compose): {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // lighttpd, the compose entry file with its mount points mapped to the repository.
    let lighttpd = require_tool("lighttpd", "lighttpd");
    let dir = ScratchDir::new("lighttpd-check");
    let root = repo_root();
    let entry = std::fs::read_to_string(root.join("deploy/lighttpd/lighttpd.conf"))
        .unwrap()
        .replace(
            "/etc/lighttpd/xintu",
            &root.join("deploy/lighttpd").display().to_string(),
        )
        .replace(
            "/srv/xintu/web",
            &root.join("deploy/web").display().to_string(),
        )
        // The gateway service's name only resolves inside compose; app-servers.sh lists what a
        // name resolves to.
        .replace(
            "app-servers.sh gateway 8080",
            "app-servers.sh localhost 8080",
        );
    assert!(
        entry.contains("/deploy/lighttpd/app-servers.sh localhost 8080"),
        "the compose entry file lists the gateway's addresses with app-servers.sh"
    );
    std::fs::write(dir.join("lighttpd.conf"), entry).unwrap();
    let output = std::process::Command::new(lighttpd)
        .arg("-tt")
        .arg("-f")
        .arg(dir.join("lighttpd.conf"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lighttpd -tt (compose entry): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! Secrets and personal data stay out of the logs. The whole system runs in this test's process
//! with its log captured (JSON, span fields included, our crates at debug) while the providers
//! answer, then refuse connections, then hang; the captured text is then searched for every
//! secret and raw identifier that the flows handled.

use std::time::Duration;

use e2e::captured_log::CapturedLog;
use e2e::photo::PhotoOptions;
use e2e::proxy::ProviderBehaviour;
use e2e::{ADMIN_PASSWORD, Options, System};
use tracing_subscriber::EnvFilter;

use crate::classify::support::{App, photo};

/// Installs a capture as this process's subscriber (nextest runs each test in its own).
fn install_capture() -> CapturedLog {
    let log = CapturedLog::default();
    let ours = [
        "gateway",
        "membership_svc",
        "photo_svc",
        "stats_svc",
        "platform",
    ];
    let mut filter = EnvFilter::new("info").add_directive("sandbox=off".parse().unwrap());
    for target in ours {
        filter = filter.add_directive(format!("{target}=debug").parse().unwrap());
    }
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(filter)
        .with_writer(log.clone())
        .try_init()
        .expect("the test's process has no other subscriber");
    log
}

/// Asks for a QR code, signs in through OAuth and classifies in the cloud: each of these reaches
/// a provider with a credential in its URL, header or body.
async fn provider_calls(app: &App, client_id: &str, oauth_code: &str, image: &str) {
    let system = &app.system;
    let (status, body) = create_qrcode(system, client_id).await;
    assert!(status >= 500, "{status} {body}");
    let status = oauth_callback(system, oauth_code).await;
    assert!(status >= 500, "the OAuth exchange answered {status}");
    let (status, body) = app.classify(photo(image), Some("cloud")).await;
    assert!(status == 200 || status >= 500, "{status} {body}");
}

/// A browser that starts sign-in and comes back with `code` (and the state it was given).
async fn oauth_callback(system: &System, code: &str) -> u16 {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = format!("{}/api/v1/member/oauth/authorize", system.gateway());
    let to_wechat = browser.get(authorize).send().await.unwrap();
    let location = to_wechat.headers()["location"].to_str().unwrap();
    let wechat_page = reqwest::Url::parse(location).unwrap();
    let state = wechat_page
        .query_pairs()
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let mut callback = reqwest::Url::parse(&format!(
        "{}/api/v1/member/oauth/callback",
        system.gateway()
    ))
    .unwrap();
    callback
        .query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", &state);
    browser
        .get(callback)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create_qrcode(system: &System, client_id: &str) -> (u16, serde_json::Value) {
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": client_id }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_providers_and_payments_leave_no_secret_or_openid_in_the_logs() {
    let log = install_capture();
    let options = Options {
        faulty_providers: true,
        provider_timeout_ms: Some(400),
        photo: PhotoOptions {
            max_retries: 0,
            attempt_timeout_ms: 400,
            breaker_failures: 100,
            ..PhotoOptions::default()
        },
        ..Options::default()
    };
    let system = System::start(options).await;
    let openid = "o_private_member_7f3a9c2e1d";
    let token = system.bind_client("log-privacy-pc", openid).await;
    let app = App {
        system,
        token: token.clone(),
        openid: openid.to_owned(),
    };
    let system = &app.system;
    let access_token = system
        .sandbox
        .current_access_token()
        .expect("the QR code fetched an access token");

    // Answering providers: a member pays for credits; an attacker guesses the admin account.
    let browser = system.sign_in(openid).await;
    let created = browser.create_order(e2e::api::credits_order(10)).await;
    let order_no = created.order.order_no.clone();
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    let guessed_admin = "mallory-guessed-operator";
    let failed = system
        .http
        .post(format!("{}/api/v1/admin/login", system.gateway()))
        .json(&serde_json::json!({ "username": guessed_admin, "password": "hunter2-guess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);

    // Providers refusing connections, then hanging past every timeout.
    let providers = system.providers.as_ref().unwrap();
    let mut codes = Vec::new();
    for (behaviour, client_id, image) in [
        (ProviderBehaviour::Refuse, "refused-pc", "rocket.jpg"),
        (ProviderBehaviour::Stall, "stalled-pc", "chelsea.png"),
    ] {
        providers.set(behaviour);
        let code = system.sandbox.oauth_code(openid);
        provider_calls(&app, client_id, &code, image).await;
        let refused = browser.place_order(e2e::api::credits_order(10)).await;
        let refused = e2e::api::refusal(refused);
        assert!(refused.status >= 500, "{refused:?}");
        codes.push(code);
    }
    providers.set(ProviderBehaviour::Forward);
    // Whatever the services log after answering (request records, retries) is in too.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let text = log.text();
    // The failures were logged: the capture saw them, so their silence below means something.
    for expected in [
        "wechat call failed",
        "wechat pay call failed",
        "payment applied",
        "failed admin sign-in",
    ] {
        assert!(text.contains(expected), "no {expected:?} in the log");
    }
    let sandbox = system.sandbox.config();
    let secrets = [
        ("the app secret", sandbox.secret.as_str()),
        ("the access token", access_token.as_str()),
        ("the pay key", sandbox.pay_key.as_str()),
        ("the DashScope key", sandbox.dashscope_api_key.as_str()),
        ("the push token", sandbox.push_token.as_str()),
        ("the admin password", ADMIN_PASSWORD),
        ("a guessed password", "hunter2-guess"),
        ("the client token", token.as_str()),
        ("an OAuth code", codes[0].as_str()),
        ("an OAuth code", codes[1].as_str()),
        ("the openid", openid),
        ("a guessed admin username", guessed_admin),
    ];
    for (what, value) in secrets {
        if let Some(at) = text.find(value) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} is in the log: {}", &text[line_start..line_end]);
        }
    }
}

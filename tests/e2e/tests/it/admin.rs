//! The admin API's defences: a lockout that an attacker cannot turn against the operator, state
//! changes only from the admin site's own origin, and sign-out that ends the session on the server.

use e2e::captured_log::CapturedLog;
use e2e::{ADMIN_PASSWORD, Options, System};
use serde_json::{Value, json};

/// An admin API call as a browser (or a tool) makes it: the address it comes from (the gateways
/// trust X-Real-IP here, as behind the edge), and the headers a browser adds.
#[derive(Default)]
struct Call<'a> {
    address: Option<&'a str>,
    origin: Option<&'a str>,
    referer: Option<&'a str>,
    cookie: Option<&'a str>,
}

async fn send(
    system: &System,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    call: &Call<'_>,
) -> (u16, Value, Option<String>) {
    let mut request = system
        .http
        .request(method, format!("{}{path}", system.gateway()));
    for (name, value) in [
        ("x-real-ip", call.address),
        ("origin", call.origin),
        ("referer", call.referer),
        ("cookie", call.cookie),
    ] {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // The session cookie as `name=value`, what a copied cookie is.
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("xintu_admin="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    (status, response.json().await.unwrap_or(Value::Null), cookie)
}

async fn login(system: &System, password: &str, call: &Call<'_>) -> (u16, Value, Option<String>) {
    send(
        system,
        reqwest::Method::POST,
        "/api/v1/admin/login",
        Some(json!({ "username": "admin", "password": password })),
        call,
    )
    .await
}

async fn me(system: &System, cookie: &str) -> u16 {
    let call = Call {
        cookie: Some(cookie),
        ..Call::default()
    };
    send(
        system,
        reqwest::Method::GET,
        "/api/v1/admin/me",
        None,
        &call,
    )
    .await
    .0
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_operator_out() {
    let system = System::start(Options {
        trust_proxy_headers: true,
        ..Options::membership_flows()
    })
    .await;
    let attacker = Call {
        address: Some("203.0.113.7"),
        ..Call::default()
    };
    for attempt in 1..=5 {
        let (status, body, _) = login(&system, "guess", &attacker).await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    // The attacker's address is locked, even with the right password.
    let (status, body, _) = login(&system, ADMIN_PASSWORD, &attacker).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "admin_locked");

    // The operator, from an address that has not failed, signs in.
    let operator = Call {
        address: Some("198.51.100.20"),
        ..Call::default()
    };
    let (status, body, cookie) = login(&system, ADMIN_PASSWORD, &operator).await;
    assert_eq!(status, 200, "the operator was locked out: {body}");
    assert_eq!(me(&system, &cookie.unwrap()).await, 200);

    // The attacker's address stays locked; another address of the same IPv6 /64 is the same
    // attacker.
    let (status, _, _) = login(&system, ADMIN_PASSWORD, &attacker).await;
    assert_eq!(status, 429);
    for address in [
        "2001:db8:1:2::10",
        "2001:db8:1:2::11",
        "2001:db8:1:2:ffff::1",
    ] {
        let from_v6 = Call {
            address: Some(address),
            ..Call::default()
        };
        let (status, _, _) = login(&system, "guess", &from_v6).await;
        assert!(status == 401 || status == 429, "{address}: {status}");
    }
    let sixth = Call {
        address: Some("2001:db8:1:2:abcd::99"),
        ..Call::default()
    };
    for _ in 0..2 {
        let (status, body, _) = login(&system, "guess", &sixth).await;
        assert!(status == 401 || status == 429, "{body}");
    }
    let (status, _, _) = login(&system, ADMIN_PASSWORD, &sixth).await;
    assert_eq!(status, 429, "five failures from one /64 lock it");
}

/// Brute force from many addresses stays bounded: once the account has had many failures
/// (20 by default) each address gets a single try, and still the operator, from an address that
/// has not failed, gets in.
#[tokio::test]
async fn an_attack_from_many_addresses_gets_one_try_per_address() {
    let system = System::start(Options {
        trust_proxy_headers: true,
        ..Options::membership_flows()
    })
    .await;
    for host in 1..=4 {
        let address = format!("203.0.113.{host}");
        let call = Call {
            address: Some(&address),
            ..Call::default()
        };
        for _ in 0..5 {
            let (status, body, _) = login(&system, "guess", &call).await;
            assert_eq!(status, 401, "{address}: {body}");
        }
    }
    // Under attack: a new address's first failure is its last try.
    let fifth = Call {
        address: Some("203.0.113.5"),
        ..Call::default()
    };
    let (status, _, _) = login(&system, "guess", &fifth).await;
    assert_eq!(status, 401);
    let (status, body, _) = login(&system, ADMIN_PASSWORD, &fifth).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "admin_locked");
    // The operator, from an address that has not failed, still gets in.
    let operator = Call {
        address: Some("198.51.100.20"),
        ..Call::default()
    };
    let (status, body, _) = login(&system, ADMIN_PASSWORD, &operator).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn admin_state_changes_only_come_from_the_admin_sites_origin() {
    let system = System::start(Options::membership_flows()).await;
    system.bind_client("pc-origin", "o_origin").await;
    let own = system.gateway().to_owned();
    let foreign = "https://evil.example";

    // Sign-in from another site is refused; from the site itself (or a tool sending neither
    // header, which carries no session to abuse) it works.
    let (status, body, _) = login(
        &system,
        ADMIN_PASSWORD,
        &Call {
            origin: Some(foreign),
            ..Call::default()
        },
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    let (status, _, cookie) = login(
        &system,
        ADMIN_PASSWORD,
        &Call {
            origin: Some(&own),
            ..Call::default()
        },
    )
    .await;
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();

    let before = system.snapshot("o_origin").await;
    let adjust = json!({ "openid": "o_origin", "delta": 50, "reason": "forged" });
    let referer = format!("{foreign}/page");
    let own_with_other_port = format!("{}1", own.trim_end_matches('/'));
    let refused = [
        ("a foreign Origin", Some(foreign), None),
        ("a foreign Referer", None, Some(referer.as_str())),
        ("neither header", None, None),
        ("Origin null", Some("null"), None),
        ("another port", Some(own_with_other_port.as_str()), None),
    ];
    for (what, origin, referer) in refused {
        let call = Call {
            origin,
            referer,
            cookie: Some(&cookie),
            ..Call::default()
        };
        let (status, body, _) = send(
            &system,
            reqwest::Method::POST,
            "/api/v1/admin/credits/adjust",
            Some(adjust.clone()),
            &call,
        )
        .await;
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["error"]["code"], "origin_not_allowed", "{what}");
    }
    let after = system.snapshot("o_origin").await;
    assert_eq!(after.remaining_credits, before.remaining_credits);
    assert_eq!(after.ledger_rows, before.ledger_rows);
    // A refused sign-out leaves the session alive.
    let call = Call {
        origin: Some(foreign),
        cookie: Some(&cookie),
        ..Call::default()
    };
    let (status, _, _) = send(
        &system,
        reqwest::Method::POST,
        "/api/v1/admin/logout",
        None,
        &call,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(me(&system, &cookie).await, 200);

    // From the site's own origin (or with its page as Referer) the adjustment is made.
    let own_page = format!("{own}/");
    for (origin, referer) in [(Some(own.as_str()), None), (None, Some(own_page.as_str()))] {
        let call = Call {
            origin,
            referer,
            cookie: Some(&cookie),
            ..Call::default()
        };
        let (status, body, _) = send(
            &system,
            reqwest::Method::POST,
            "/api/v1/admin/credits/adjust",
            Some(json!({ "openid": "o_origin", "delta": 5, "reason": "goodwill" })),
            &call,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let after = system.snapshot("o_origin").await;
    assert_eq!(
        after.remaining_credits,
        before.remaining_credits.map(|c| c + 10)
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_the_cookie() {
    let system = System::start(Options::membership_flows()).await;
    let own = system.gateway().to_owned();
    let (status, _, cookie) = login(&system, ADMIN_PASSWORD, &Call::default()).await;
    assert_eq!(status, 200);
    let copied = cookie.unwrap();
    // A second session (another browser) is not affected by the first one's sign-out.
    let (_, _, other) = login(&system, ADMIN_PASSWORD, &Call::default()).await;
    let other = other.unwrap();
    assert_eq!(me(&system, &copied).await, 200);

    let call = Call {
        origin: Some(&own),
        cookie: Some(&copied),
        ..Call::default()
    };
    let (status, body, _) = send(
        &system,
        reqwest::Method::POST,
        "/api/v1/admin/logout",
        None,
        &call,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signed_out"], true);

    // The copy kept from before the sign-out no longer works, for reads or changes.
    let call = Call {
        cookie: Some(&copied),
        ..Call::default()
    };
    let (status, body, _) = send(
        &system,
        reqwest::Method::GET,
        "/api/v1/admin/users",
        None,
        &call,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "admin_sign_in_required");
    let call = Call {
        origin: Some(&own),
        cookie: Some(&copied),
        ..Call::default()
    };
    let (status, _, _) = send(
        &system,
        reqwest::Method::POST,
        "/api/v1/admin/credits/adjust",
        Some(json!({ "openid": "o_nobody", "delta": 1, "reason": "r" })),
        &call,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(me(&system, &other).await, 200);
}

/// A failed sign-in is logged with what an operator needs (the address, whether the name was
/// the account's), never with the name typed: people type passwords into the name field.
#[tokio::test]
async fn a_failed_sign_in_is_logged_without_the_name_typed() {
    let (logs, _logging) = CapturedLog::on_this_thread(tracing::Level::WARN);
    let system = System::start(Options::membership_flows()).await;
    for username in ["admin", "Hunter2-typed-as-the-name"] {
        let (status, body, _) = send(
            &system,
            reqwest::Method::POST,
            "/api/v1/admin/login",
            Some(json!({ "username": username, "password": "guess" })),
            &Call::default(),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    let text = logs.text();
    let failures: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("failed admin sign-in"))
        .collect();
    assert_eq!(failures.len(), 2, "{text}");
    assert!(
        failures[0].contains("known_account=true"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].contains("known_account=false"),
        "{}",
        failures[1]
    );
    assert!(failures[1].contains("address=127.0.0.1"), "{}", failures[1]);
    assert!(
        !text.contains("Hunter2"),
        "the typed name was logged: {text}"
    );
}

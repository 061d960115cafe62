//! What operators rely on: health, readiness, reflection, the OpenAPI document, request ids.

use std::collections::BTreeSet;

use e2e::{Options, System};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn services_answer_health_and_reflection() {
    let system = System::start(Options::default()).await;
    platform::grpc::healthcheck(&system.membership_urls[0])
        .await
        .unwrap();
    // Reflection, like every call but a probe's health check, needs the service token.
    let channel = system.grpc_channel(&system.membership_urls[0]);
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "membership.v1.BindingService",
        "membership.v1.OrderService",
        "membership.v1.CreditService",
        "membership.v1.MemberService",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

/// Every path the gateway routes (lib.rs, photos and admin routers).
const GATEWAY_PATHS: [&str; 46] = [
    "/api/v1/account",
    "/api/v1/admin/audit",
    "/api/v1/admin/bills",
    "/api/v1/admin/bills/{bill_date}",
    "/api/v1/admin/bills/{bill_date}/check",
    "/api/v1/admin/bindings",
    "/api/v1/admin/credits/adjust",
    "/api/v1/admin/login",
    "/api/v1/admin/logout",
    "/api/v1/admin/me",
    "/api/v1/admin/orders",
    "/api/v1/admin/orders/{order_no}/refunds",
    "/api/v1/admin/overview",
    "/api/v1/admin/refunds",
    "/api/v1/admin/timeseries",
    "/api/v1/admin/users",
    "/api/v1/admin/users/{openid}/data",
    "/api/v1/admin/users/{openid}/erasure",
    "/api/v1/auth/wechat/binding",
    "/api/v1/auth/wechat/qrcode",
    "/api/v1/auth/wechat/unbind",
    "/api/v1/auth/wechat/verify",
    "/api/v1/location",
    "/api/v1/location/batch",
    "/api/v1/member/data",
    "/api/v1/member/devices",
    "/api/v1/member/devices/{client_id}/sign-out",
    "/api/v1/member/oauth/authorize",
    "/api/v1/member/oauth/callback",
    "/api/v1/member/profile",
    "/api/v1/member/erasure",
    "/api/v1/member/reminders",
    "/api/v1/openapi.json",
    "/api/v1/payment/create-order",
    "/api/v1/payment/notify",
    "/api/v1/payment/orders/{order_no}",
    "/api/v1/payment/refund-notify",
    "/api/v1/payment/v3-notify",
    "/api/v1/photos/classify",
    "/api/v1/photos/classify/batch",
    "/api/v1/photos/edit",
    "/api/v1/photos/edit/results/{token}",
    "/api/v1/photos/edit/{task_id}",
    "/api/v1/photos/lookup",
    "/healthz",
    "/readyz",
];

#[tokio::test]
async fn the_gateway_reports_liveness_readiness_and_its_api() {
    let system = System::start(Options::default()).await;
    let get = |path: &str| {
        system
            .http
            .get(format!("{}{path}", system.gateway()))
            .send()
    };
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    let doc: serde_json::Value = get("/api/v1/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Every route of the gateway is in the document...
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, BTreeSet::from(GATEWAY_PATHS));
    // Errors have one documented body; WeChat Pay's callback answers in its own XML.
    let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
    assert_eq!(
        responses("/api/v1/account", "get")["403"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"].is_object());
    assert!(responses("/api/v1/payment/notify", "post")["400"]["content"]["text/xml"].is_object());
    // ...and every operation it documents is routed: no "no such endpoint", no 405.
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let probe_path = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "probe"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            let response = system
                .http
                .request(method.clone(), format!("{}{probe_path}", system.gateway()))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && body.contains("no such endpoint")),
                "{method} {path} is documented but not routed"
            );
            // WeChat Pay's callbacks answer in the format WeChat Pay reads, not ours.
            let for_wechat_pay = item[method.as_str().to_lowercase()]["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|tag| tag == "called by WeChat Pay"));
            if status >= 400 && body.starts_with('{') && !for_wechat_pay {
                let error: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(
                    error["error"]["code"].is_string(),
                    "{method} {path}: {body}"
                );
            }
        }
    }
    assert_eq!(
        operations,
        GATEWAY_PATHS.len() + 1,
        "one path (verify) has two methods"
    );
    // Readiness follows the services: with membership gone, the gateway is alive but not ready.
    system.stop_memberships();
    let mut not_ready = false;
    for _ in 0..100 {
        if get("/readyz")
            .await
            .map(|r| r.status() == 503)
            .unwrap_or(false)
        {
            not_ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(not_ready);
}

#[tokio::test]
async fn every_answer_carries_its_request_id() {
    let system = System::start(Options::default()).await;
    let response = system
        .http
        .get(format!(
            "{}/api/v1/auth/wechat/binding?client_id=x",
            system.gateway()
        ))
        .bearer_auth("ct_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let header = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], header.as_str());
    assert_eq!(header.len(), 36, "a UUID");
}

/// What one request of the load got: when it was sent and answered, and the answer.
struct Outcome {
    client_id: String,
    sent: std::time::Instant,
    done: std::time::Instant,
    answer: Result<u16, reqwest::Error>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_answers_every_request_it_accepted() {
    use std::time::{Duration, Instant};

    // The background loops run every 50 ms, so a stop finds them busy; the request recorder
    // holds what it has until the stop, so only its last flush can deliver it.
    let system = System::start(Options {
        reconcile_interval_ms: 50,
        hold_janitor_interval_ms: 50,
        request_log_flush_ms: 600_000,
        ..Options::default()
    })
    .await;
    // Every WeChat answer takes 150 ms, so QR codes are being made when the stop comes.
    system.sandbox.set_faults(sandbox::Faults {
        delay_ms: 150,
        ..Default::default()
    });
    // A new connection per request: after the stop, a request either reaches the gateway on a
    // connection it accepted, or is refused; no pooled connection races its closing.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/auth/wechat/qrcode", system.gateway());
    // 200 QR codes over about 2 s; the gateway is told to stop after the first 100.
    let mut load = Vec::new();
    let mut stopped_at = None;
    for i in 0..200 {
        if i == 100 {
            system.stop_gateway(0);
            stopped_at = Some(Instant::now());
        }
        let http = http.clone();
        let url = url.clone();
        let client_id = format!("drain-{i}");
        load.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = http
                .post(url)
                .json(&serde_json::json!({ "client_id": client_id }))
                .send()
                .await
                .map(|response| response.status().as_u16());
            Outcome {
                client_id,
                sent,
                done: Instant::now(),
                answer,
            }
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped_at = stopped_at.unwrap();
    let mut outcomes = Vec::new();
    for request in load {
        outcomes.push(request.await.unwrap());
    }

    // Every answer the gateway gave is a success: nothing was cut with a 5xx on the way out.
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.answer.is_ok()).collect();
    for outcome in &answered {
        assert_eq!(
            outcome.answer.as_ref().ok(),
            Some(&200),
            "{} was answered with an error status",
            outcome.client_id
        );
    }
    // Requests well under way at the stop were all answered...
    let settled_before_stop = outcomes
        .iter()
        .filter(|o| o.sent + Duration::from_millis(100) < stopped_at);
    for outcome in settled_before_stop {
        assert!(
            outcome.answer.is_ok(),
            "{} was sent before the stop and not answered: {:?}",
            outcome.client_id,
            outcome.answer
        );
    }
    // ...some of them only after it (so the drain was exercised), and the gateway did stop.
    let drained = answered.iter().filter(|o| o.done > stopped_at).count();
    assert!(drained > 0, "no request was in flight at the stop");
    let refused = outcomes.iter().filter(|o| o.answer.is_err()).count();
    assert!(refused > 0, "the gateway kept accepting after the stop");

    // None cut mid-flight: a QR code was made exactly for each request that got its answer.
    let pool = system.db.primary().await;
    let made: Vec<String> =
        sqlx::query_scalar("SELECT client_id FROM client_bindings WHERE client_id LIKE 'drain-%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let mut made = made;
    made.sort();
    let mut expected: Vec<String> = answered.iter().map(|o| o.client_id.clone()).collect();
    expected.sort();
    assert_eq!(
        made, expected,
        "QR codes made for requests whose answer was lost"
    );

    // The gateway's run returns only after its recorder's last flush: by then every answered
    // request is in the stats service (no waiting here; a process exits right after `run`).
    let stats = system.stats.db.primary().await;
    sqlx::query("SELECT 1").execute(&stats).await.unwrap();
    assert!(
        system.gateway_returned(0, Duration::from_secs(15)).await,
        "the stopped gateway never finished"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM request_logs WHERE endpoint = '/api/v1/auth/wechat/qrcode'",
    )
    .fetch_one(&stats)
    .await
    .unwrap();
    stats.close().await;
    assert_eq!(recorded, answered.len() as i64, "requests recorded");

    // The services behind stop too: calls finish, background loops end, `run` returns.
    system.stop_memberships();
    assert!(
        system.memberships_returned(Duration::from_secs(15)).await,
        "a membership instance kept running after its stop"
    );
}

//! The gateway's router on its own: what it answers before any service is asked. Only Redis
//! runs (the push replay guard and the allowances use it); the services' addresses are a port
//! nothing listens on, so a request that reached one would be answered 503, never what these
//! tests expect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: failing loudly is the point

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use tower::ServiceExt;

use gateway::AppState;
use gateway::config::GatewayConfig;

/// Where no service answers.
const NOBODY: &str = "http://127.0.0.1:9";

fn gateway_alone() -> (Router, GatewayConfig) {
    let mut cfg = GatewayConfig::defaults().expect("gateway defaults");
    cfg.request_logging = false;
    cfg.membership_grpc_url = NOBODY.into();
    cfg.photo_grpc_url = NOBODY.into();
    cfg.stats_grpc_url = NOBODY.into();
    cfg.redis.redis_url = platform::testing::redis_url();
    cfg.redis.redis_key_prefix = platform::testing::redis_prefix();
    let state = AppState::new(cfg.clone()).expect("the gateway's state");
    (gateway::app(state), cfg)
}

/// The status and JSON body of one request.
async fn answer(router: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.oneshot(request).await.expect("an answer");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn an_unknown_path_is_404_with_its_stable_code() {
    let (router, _) = gateway_alone();
    let (status, body) = answer(router, get("/api/v1/no-such-thing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_openapi_document_is_served_without_any_service() {
    let (router, _) = gateway_alone();
    let (status, body) = answer(router, get("/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{body}"
    );
}

#[tokio::test]
async fn callers_without_credentials_are_refused_before_any_service_is_asked() {
    let cases = [
        (
            "/api/v1/account",
            StatusCode::UNAUTHORIZED,
            "missing_client_token",
        ),
        (
            "/api/v1/location?lat=39.9&lng=116.4",
            StatusCode::UNAUTHORIZED,
            "missing_client_token",
        ),
        (
            "/api/v1/member/profile",
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
        ),
        (
            "/api/v1/admin/overview",
            StatusCode::UNAUTHORIZED,
            "admin_sign_in_required",
        ),
    ];
    // The premise: a request that does need a service is answered 503 here.
    let (router, _) = gateway_alone();
    let with_token = Request::get("/api/v1/account")
        .header("authorization", "Bearer some-client-token")
        .body(Body::empty())
        .unwrap();
    let (status, body) = answer(router, with_token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    for (uri, expected_status, expected_code) in cases {
        let (router, _) = gateway_alone();
        let (status, body) = answer(router, get(uri)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (expected_status, &expected_code.into()),
            "{uri}: {body}"
        );
    }
}

/// A push signed with the account's token whose body is hostile is refused by the gateway
/// itself: membership, which would apply it, is never reached.
#[tokio::test]
async fn hostile_pushes_are_refused_at_the_gateway() {
    let (_, cfg) = gateway_alone();
    let token = cfg.wechat_token.expose_secret().to_owned();
    let cases = [
        (
            r#"<!DOCTYPE lolz [<!ENTITY lol "lol">]><xml><FromUserName>&lol;</FromUserName></xml>"#
                .to_owned(),
            StatusCode::BAD_REQUEST,
            "xml_declaration_refused",
        ),
        (
            "<xml><FromUserName>o_attacker</FromUserName>".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed_xml",
        ),
        (
            format!("<xml><A>{}</A></xml>", "x".repeat(70 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (index, (body, expected_status, expected_code)) in cases.into_iter().enumerate() {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let nonce = format!("router-{index}-{}", rand::random::<u32>());
        let signature =
            wechat_protocol::sign::sha1_signature(&[token.as_str(), &timestamp, &nonce]);
        let uri = format!(
            "/api/v1/auth/wechat/verify?signature={signature}&timestamp={timestamp}&nonce={nonce}"
        );
        let request = Request::post(uri).body(Body::from(body)).unwrap();
        let (router, _) = gateway_alone();
        let (status, answer) = answer(router, request).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (expected_status, &expected_code.into()),
            "{answer}"
        );
    }
    // And one whose signature does not hold is refused before its body is read.
    let (router, _) = gateway_alone();
    let request = Request::post(format!(
        "/api/v1/auth/wechat/verify?signature=00&timestamp={}&nonce=n",
        chrono::Utc::now().timestamp()
    ))
    .body(Body::from("<xml></xml>"))
    .unwrap();
    let (status, body) = answer(router, request).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &"invalid_signature".into())
    );
}

/// With its services down the gateway answers each client call with an error of its own (503,
/// the service's `*_unavailable` code), and the OpenAPI document must list that status for the
/// operation: a client generated from the document reads an undeclared status as an unexpected
/// response, not as an error with its code.
#[tokio::test]
async fn what_the_gateway_answers_with_its_services_down_is_in_the_document() {
    let document: serde_json::Value =
        serde_json::from_str(&gateway::routes::openapi::pretty_document().unwrap()).unwrap();
    let declared = |operation_id: &str| -> Vec<String> {
        let operation = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .find(|operation| operation["operationId"] == operation_id)
            .unwrap_or_else(|| panic!("{operation_id} is not in the document"));
        operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let digest = "0".repeat(64);
    let calls = [
        ("get_account", "GET", "/api/v1/account", None),
        (
            "binding_status",
            "GET",
            "/api/v1/auth/wechat/binding?client_id=pc-1",
            None,
        ),
        (
            "create_qrcode",
            "POST",
            "/api/v1/auth/wechat/qrcode",
            Some(serde_json::json!({ "client_id": "pc-1" })),
        ),
        ("unbind", "POST", "/api/v1/auth/wechat/unbind", None),
        ("locate", "GET", "/api/v1/location?lat=39.9&lng=116.4", None),
        (
            "locate_batch",
            "POST",
            "/api/v1/location/batch",
            Some(serde_json::json!({ "points": [{ "lat": 39.9, "lng": 116.4 }] })),
        ),
        (
            "lookup",
            "POST",
            "/api/v1/photos/lookup",
            Some(serde_json::json!({ "sha256": [digest] })),
        ),
        ("get_edit_task", "GET", "/api/v1/photos/edit/task-1", None),
    ];
    let mut undeclared = Vec::new();
    for (operation_id, method, uri, body) in calls {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer ct_some_token")
            .header("content-type", "application/json");
        let request = match body {
            Some(body) => request.body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        let (router, _) = gateway_alone();
        let (status, answer) = answer(router, request.unwrap()).await;
        assert!(
            status.is_server_error(),
            "{operation_id}: {status} {answer}: the call did not need the service"
        );
        if !declared(operation_id).contains(&status.as_str().to_owned()) {
            undeclared.push(format!("{operation_id} answers {status} ({answer})"));
        }
    }
    assert!(undeclared.is_empty(), "{undeclared:#?}");
}

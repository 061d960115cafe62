//! What operators rely on: health, readiness, reflection, the OpenAPI document, request ids.

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
    let channel = tonic::transport::Channel::from_shared(system.membership_urls[0].clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
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
    for path in [
        "/api/v1/auth/wechat/qrcode",
        "/api/v1/auth/wechat/binding",
        "/api/v1/member/profile",
        "/api/v1/payment/create-order",
        "/api/v1/payment/orders/{order_no}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
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

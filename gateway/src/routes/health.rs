//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use platform::grpc::ServiceChannel;
use serde_json::{Value, json};

use crate::AppState;

/// The process is up; with the request recorder's counters (records sent to stats, dropped).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\", \"recorder\": {…}}`")))]
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "recorder": state.recorder.stats() }))
}

/// Every service the gateway calls answers its health check.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ready\", \"membership\": true, \"photo\": true}`"),
        (status = 503, description = "`not_ready`, with the service that did not answer")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (membership, photo) = tokio::join!(
        serving(state.clients.membership_channel.clone()),
        serving(state.clients.photo_channel.clone()),
    );
    let ready = membership && photo;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "membership": membership,
            "photo": photo,
        })),
    )
}

/// Returns true when a service instance behind `channel` reports itself serving. The check
/// carries the gateway's service token, so a gateway whose token the services refuse is not
/// ready.
async fn serving(channel: ServiceChannel) -> bool {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|answer| {
            answer.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        })
        .unwrap_or(false)
}

//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Every service the gateway calls answers its health check.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        state.clients.membership_channel.clone(),
    );
    let membership = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|answer| {
            answer.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        })
        .unwrap_or(false);
    let status = if membership {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if membership { "ready" } else { "not_ready" },
            "membership": membership,
        })),
    )
}

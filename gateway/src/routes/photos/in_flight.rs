//! Bounds the bytes of photo uploads this gateway holds at once, across every request: an upload
//! reserves its size (its Content-Length, else the largest its route takes) before its body is
//! read, and keeps it until its answer is sent, the bytes having been in memory until the photo
//! service took them. An upload that finds the budget spent waits briefly, then is refused with
//! 503 `uploads_busy` and `Retry-After` without its body being read: nothing reaches a service.

use proto::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The budget is counted in KiB: fine enough for small photos, and a semaphore of u32 permits.
const UNIT: usize = 1024;

/// One budget per gateway, shared by the upload routes.
#[derive(Clone, Debug)]
pub struct UploadBudget {
    units: Arc<Semaphore>,
    wait: Duration,
}

impl UploadBudget {
    pub fn new(total_bytes: usize, wait: Duration) -> Self {
        Self {
            units: Arc::new(Semaphore::new(total_bytes / UNIT)),
            wait,
        }
    }

    /// The gate of one route, whose bodies are at most `max_body` bytes.
    pub fn gate(&self, max_body: usize) -> UploadGate {
        UploadGate {
            budget: self.clone(),
            max_body,
        }
    }
}

#[derive(Clone, Debug)]
pub struct UploadGate {
    budget: UploadBudget,
    max_body: usize,
}

/// The middleware of an upload route (see the module's documentation).
pub async fn limit(State(gate): State<UploadGate>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    let bytes = match declared {
        Some(len) if len > gate.max_body => {
            return ApiError::payload_too_large(gate.max_body).into_response();
        }
        Some(len) => len,
        // A chunked body may be as large as the route takes.
        None => gate.max_body,
    };
    let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
    let acquire = Arc::clone(&gate.budget.units).acquire_many_owned(units);
    match tokio::time::timeout(gate.budget.wait, acquire).await {
        Ok(Ok(_reserved)) => next.run(request).await,
        Ok(Err(_)) => ApiError::new(ErrorCode::Internal, "internal error").into_response(),
        Err(_) => {
            tracing::warn!(bytes, "upload budget spent; upload refused");
            ApiError::new(
                ErrorCode::UploadsBusy,
                "too many photo uploads are in flight; try again shortly",
            )
            .into_response()
        }
    }
}

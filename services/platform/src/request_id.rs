//! One request id from the gateway through every service.
//!
//! The gateway assigns the id (tower-http `SetRequestIdLayer`) and runs each request inside
//! [`scope`]; the gRPC client interceptor copies it into the `x-request-id` metadata, and the
//! service-side trace layer records it on the request span.

use std::future::Future;

/// The header (and gRPC metadata key) that carries the request id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Returns the current request id, if the caller runs inside [`scope`].
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

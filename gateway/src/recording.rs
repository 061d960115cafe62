//! Every request is recorded for the stats service and counted in the request metrics: route template, status, latency, caller and
//! error code. Extractors and handlers add what they learn (client, openid, classification source,
//! model tokens) to the request's `RecordFields`; the middleware sends the record when the answer
//! is ready. Sending never waits (see `platform::request_log`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use proto::stats::v1::{RecordKind, RequestRecord};

use crate::AppState;

/// What handlers learned about the caller and the work, filled during the request.
#[derive(Clone, Default)]
pub struct RecordFields(Arc<Mutex<Fields>>);

#[derive(Default)]
struct Fields {
    client_id: String,
    openid: String,
    source: String,
    model_tokens: u32,
}

impl RecordFields {
    fn with<F: FnOnce(&mut Fields)>(&self, change: F) {
        // A poisoned lock only means a handler panicked mid-write; the fields are plain data.
        let mut fields = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut fields);
    }

    pub fn set_caller(&self, client_id: &str, openid: Option<&str>) {
        self.with(|f| {
            client_id.clone_into(&mut f.client_id);
            if let Some(openid) = openid {
                openid.clone_into(&mut f.openid);
            }
        });
    }

    pub fn set_openid(&self, openid: &str) {
        self.with(|f| openid.clone_into(&mut f.openid));
    }

    /// Drops who the caller was: the record of an erasure must not name whom it erased.
    pub fn forget_caller(&self) {
        self.with(|f| {
            f.client_id.clear();
            f.openid.clear();
        });
    }

    /// The classification's source (cache, local, model) and the model tokens it used.
    pub fn set_source(&self, source: &str, model_tokens: u32) {
        self.with(|f| {
            source.clone_into(&mut f.source);
            f.model_tokens = f.model_tokens.saturating_add(model_tokens);
        });
    }
}

/// The error code of an answer, put on the response by `ApiError`.
#[derive(Clone)]
pub struct ErrorCode(pub proto::ErrorCode);

pub async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let _active = state.metrics.started();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let fields = RecordFields::default();
    request.extensions_mut().insert(fields.clone());
    let response = next.run(request).await;
    let error_code = response
        .extensions()
        .get::<ErrorCode>()
        .map_or("", |code| code.0.as_str());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .answered(&endpoint, &method, status, error_code, elapsed);
    let f = fields
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state.recorder.record(RequestRecord {
        at_unix_ms: chrono::Utc::now().timestamp_millis(),
        kind: RecordKind::Http.into(),
        endpoint,
        method,
        status: u32::from(status),
        latency_ms: u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX),
        client_id: f.client_id.clone(),
        openid: f.openid.clone(),
        source: f.source.clone(),
        model_tokens: f.model_tokens,
        error_code: error_code.to_owned(),
        request_id: platform::request_id::current().unwrap_or_default(),
    });
    drop(f);
    response
}

//! DashScope image editing, as its native API answers it (per DashScope's documentation of the two
//! models): `wanx2.1-imageedit` as an asynchronous task (submit, then poll `/api/v1/tasks/{id}`),
//! `qwen-image-edit(-plus)` as a synchronous call, and the result images on an OSS-like URL that
//! expires. The account's limits (submissions per second, tasks in flight) are enforced, faults can
//! be injected, and every call is counted.
//!
//! Task states are computed from the time since submission, so nothing runs in the background.
//! The "edit" itself inverts the colours of the (first) input image: a real PNG of the input's
//! size that a test can tell apart from the input.

mod pictures;
mod qwen;
mod wanx;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Sandbox, lock};

/// Timings and account limits of the image-editing models.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EditSettings {
    /// How long a submitted task stays PENDING, milliseconds.
    pub pending_ms: u64,
    /// How long it then stays RUNNING before it ends, milliseconds.
    pub running_ms: u64,
    /// How long a synchronous qwen-image-edit call takes, milliseconds.
    pub sync_delay_ms: u64,
    /// How long an accepted task submission takes to answer, milliseconds: the task exists
    /// (and counts against the limits) from its arrival.
    pub submit_delay_ms: u64,
    /// How long a result URL stays valid after the image was made, milliseconds (DashScope: 24 h).
    pub result_ttl_ms: u64,
    /// Task submissions accepted per second, over a sliding one-second window (DashScope: 2).
    pub submits_per_second: u32,
    /// Tasks PENDING or RUNNING at once (DashScope: 2).
    pub max_in_flight: u32,
}

impl Default for EditSettings {
    fn default() -> Self {
        Self {
            pending_ms: 50,
            running_ms: 100,
            sync_delay_ms: 50,
            submit_delay_ms: 0,
            result_ttl_ms: 24 * 60 * 60 * 1000,
            submits_per_second: 2,
            max_in_flight: 2,
        }
    }
}

/// Faults for the next calls and tasks. Counts are used up one call or task at a time, and only
/// by well-formed requests: a request refused with InvalidParameter leaves them alone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EditFaults {
    /// Task submissions that answer 429 `Throttling.RateQuota`.
    pub submit_rate_limited: u32,
    /// Task submissions that answer 400 `DataInspectionFailed` (input moderation).
    pub submit_moderation: u32,
    /// Tasks that end FAILED with `InternalError.Algo`.
    pub fail_tasks: u32,
    /// Tasks that end FAILED with `DataInspectionFailed` (output moderation).
    pub moderate_tasks: u32,
    /// Tasks that stay RUNNING forever (and so stay in flight).
    pub stuck_tasks: u32,
    /// Tasks with n > 1 that end SUCCEEDED with one failed image; tasks with n = 1 skip this.
    pub partial_tasks: u32,
    /// Synchronous edits that answer 429 `Throttling.RateQuota`.
    pub sync_rate_limited: u32,
    /// Synchronous edits that answer 400 `DataInspectionFailed`.
    pub sync_moderation: u32,
    /// Synchronous edits that answer 500 `InternalError`.
    pub sync_server_errors: u32,
}

/// Counters tests assert on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EditStats {
    /// Task submissions accepted (a task was created).
    pub submits: u64,
    /// Submissions and synchronous edits answered 429, limits and faults alike.
    pub throttled: u64,
    /// Submissions and synchronous edits refused with 400, 401 or 403.
    pub rejected: u64,
    /// Task polls, unknown task ids included.
    pub polls: u64,
    /// Synchronous edit calls, every attempt.
    pub sync_calls: u64,
    /// The most tasks ever in flight at once.
    pub max_in_flight: u64,
    /// Tasks in flight now (PENDING or RUNNING).
    pub in_flight: u64,
    /// Tasks that have ended SUCCEEDED (partly failed ones included).
    pub tasks_succeeded: u64,
    /// Tasks that have ended FAILED.
    pub tasks_failed: u64,
    /// Result images downloaded (200 answers only).
    pub results_served: u64,
}

/// The image-editing state of one sandbox.
#[derive(Default)]
pub(crate) struct ImageEdit {
    settings: Mutex<EditSettings>,
    /// Faults live with the tasks so that a submission checks limits, takes its faults and
    /// records its task under one lock.
    desk: Mutex<Desk>,
    submits: AtomicU64,
    throttled: AtomicU64,
    rejected: AtomicU64,
    polls: AtomicU64,
    sync_calls: AtomicU64,
    results_served: AtomicU64,
}

#[derive(Default)]
struct Desk {
    faults: EditFaults,
    tasks: HashMap<String, wanx::Task>,
    /// When the accepted submissions of the last second arrived, oldest first.
    recent_submits: VecDeque<Instant>,
    max_in_flight: u64,
    results: HashMap<String, pictures::StoredResult>,
    /// Results made at or before this instant have expired (`expire_edit_results`).
    expired_up_to: Option<Instant>,
}

impl Desk {
    fn in_flight(&self, now: Instant) -> u64 {
        self.tasks
            .values()
            .filter(|task| task.in_flight(now))
            .count() as u64
    }
}

impl ImageEdit {
    fn settings(&self) -> EditSettings {
        lock(&self.settings).clone()
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a submission's or synchronous edit's answer as throttled or rejected.
    fn tally(&self, response: &Response) {
        match response.status() {
            StatusCode::TOO_MANY_REQUESTS => Self::count(&self.throttled),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Self::count(&self.rejected);
            }
            _ => {}
        }
    }
}

impl Sandbox {
    /// Replaces the timings and limits; tasks already submitted keep the timings they got.
    pub fn set_edit_settings(&self, settings: EditSettings) {
        *lock(&self.state.image_edit.settings) = settings;
    }

    /// Replaces the pending image-editing faults.
    pub fn set_edit_faults(&self, faults: EditFaults) {
        lock(&self.state.image_edit.desk).faults = faults;
    }

    pub fn edit_stats(&self) -> EditStats {
        let edit = &self.state.image_edit;
        let now = Instant::now();
        let desk = lock(&edit.desk);
        let (mut succeeded, mut failed) = (0, 0);
        for task in desk.tasks.values() {
            match task.ended_ok(now) {
                Some(true) => succeeded += 1,
                Some(false) => failed += 1,
                None => {}
            }
        }
        EditStats {
            submits: edit.submits.load(Ordering::SeqCst),
            throttled: edit.throttled.load(Ordering::SeqCst),
            rejected: edit.rejected.load(Ordering::SeqCst),
            polls: edit.polls.load(Ordering::SeqCst),
            sync_calls: edit.sync_calls.load(Ordering::SeqCst),
            max_in_flight: desk.max_in_flight,
            in_flight: desk.in_flight(now),
            tasks_succeeded: succeeded,
            tasks_failed: failed,
            results_served: edit.results_served.load(Ordering::SeqCst),
        }
    }

    /// Expires every result image made so far, as if its 24 hours had passed. Results of tasks
    /// that have not ended yet stay valid once they are made.
    pub fn expire_edit_results(&self) {
        lock(&self.state.image_edit.desk).expired_up_to = Some(Instant::now());
    }
}

/// Data URIs of 4096-pixel photos are far beyond axum's 2 MB default; DashScope takes 10 MB files.
const MAX_BODY_BYTES: usize = 48 * 1024 * 1024;

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/api/v1/services/aigc/image2image/image-synthesis",
            post(wanx::submit),
        )
        .route(
            "/api/v1/services/aigc/multimodal-generation/generation",
            post(qwen::generate),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route("/api/v1/tasks/{task_id}", get(wanx::poll))
        .route("/_sandbox/edit-results/{name}", get(pictures::serve))
}

/// A DashScope request id (the native API uses UUIDs).
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A native API error: exactly `request_id`, `code` and `message`.
fn native_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "request_id": request_id(), "code": code, "message": message });
    (status, axum::Json(body)).into_response()
}

fn invalid_parameter(message: &str) -> Response {
    native_error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

fn rate_limited() -> Response {
    native_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
    )
}

fn server_error() -> Response {
    // DashScope's own spelling.
    native_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
    )
}

/// Checks the bearer key; the 401 answer when it is wrong.
fn key_refused(sandbox: &Sandbox, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {}", sandbox.state.cfg.dashscope_api_key);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (given != Some(expected.as_str())).then(|| {
        native_error(
            StatusCode::UNAUTHORIZED,
            "InvalidApiKey",
            "Invalid API-key provided.",
        )
    })
}

/// Where result images are served: the host the caller reached us by (in compose that is the
/// sandbox's service name, not the address it listens on), else our own address.
fn result_base(sandbox: &Sandbox, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| sandbox.url(), |host| format!("http://{host}"))
}

/// Uses up one of `count`; true when there was one.
fn take(count: &mut u32) -> bool {
    let had = *count > 0;
    if had {
        *count -= 1;
    }
    had
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

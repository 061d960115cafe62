//! `wanx2.1-imageedit`: submit an asynchronous task, then poll `/api/v1/tasks/{task_id}`.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDateTime, TimeDelta};
use image::ImageFormat;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pictures::{self, StoredResult};
use super::{
    Desk, EditFaults, ImageEdit, invalid_parameter, key_refused, millis, native_error,
    rate_limited, request_id, result_base, server_error, take,
};
use crate::{Sandbox, lock};

const MODEL: &str = "wanx2.1-imageedit";

/// The functions `wanx2.1-imageedit` documents (its `function` parameter).
const FUNCTIONS: [&str; 10] = [
    "stylization_all",
    "stylization_local",
    "description_edit",
    "description_edit_with_mask",
    "remove_watermark",
    "expand",
    "super_resolution",
    "colorization",
    "doodle",
    "control_cartoon_feature",
];

const BASE_SIDES: RangeInclusive<u32> = 512..=4096;
const FORMATS: [ImageFormat; 3] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP];
const ALGO_ERROR: &str = "An internal error occurred during algorithm processing.";

/// How a task ends, chosen by the faults at submission.
#[derive(Clone, Copy)]
enum Outcome {
    Succeeded,
    /// SUCCEEDED, with the last image failed.
    Partial,
    Failed {
        code: &'static str,
        message: &'static str,
    },
    /// RUNNING forever.
    Stuck,
}

pub(super) struct Task {
    submitted: Instant,
    /// Beijing time, as DashScope reports it.
    submit_time: NaiveDateTime,
    /// The timings in force at submission: later settings do not move a task's end.
    pending: Duration,
    running: Duration,
    outcome: Outcome,
    /// One entry per requested image: its result name, or None where the image failed.
    images: Vec<Option<String>>,
}

enum Status {
    Pending,
    Running,
    Ended,
}

impl Task {
    /// When the task ends; None for never (stuck, or timings too long to represent).
    fn end(&self) -> Option<Instant> {
        match self.outcome {
            Outcome::Stuck => None,
            _ => self
                .submitted
                .checked_add(self.pending)?
                .checked_add(self.running),
        }
    }

    fn status(&self, now: Instant) -> Status {
        let scheduled = self.submitted.checked_add(self.pending);
        if scheduled.is_none_or(|scheduled| now < scheduled) {
            Status::Pending
        } else if self.end().is_none_or(|end| now < end) {
            Status::Running
        } else {
            Status::Ended
        }
    }

    pub(super) fn in_flight(&self, now: Instant) -> bool {
        !matches!(self.status(now), Status::Ended)
    }

    /// Some(true) once ended SUCCEEDED, Some(false) once ended FAILED, None while in flight.
    pub(super) fn ended_ok(&self, now: Instant) -> Option<bool> {
        match self.status(now) {
            Status::Ended => Some(!matches!(self.outcome, Outcome::Failed { .. })),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct SubmitIn {
    #[serde(default)]
    model: String,
    input: Option<SubmitInput>,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize)]
struct SubmitInput {
    #[serde(default)]
    function: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    base_image_url: String,
    mask_image_url: Option<String>,
}

/// The parameters that have ranges; the others (`*_scale`, `is_sketch`, `watermark`) are taken
/// as they come.
#[derive(Default, Deserialize)]
struct Parameters {
    n: Option<i64>,
    strength: Option<f64>,
    upscale_factor: Option<i64>,
    seed: Option<i64>,
}

/// Checks everything but the images; returns n.
fn check(request: &SubmitIn) -> Result<(u32, &SubmitInput), String> {
    if request.model != MODEL {
        return Err(format!(
            "Model not exist: '{}' (this endpoint serves {MODEL}).",
            request.model
        ));
    }
    let input = request.input.as_ref().ok_or("input is required.")?;
    if !FUNCTIONS.contains(&input.function.as_str()) {
        return Err(format!(
            "input.function '{}' is not supported; expected one of {}.",
            input.function,
            FUNCTIONS.join(", ")
        ));
    }
    // The reference makes the prompt optional for colorization only.
    if input.prompt.trim().is_empty() && input.function != "colorization" {
        return Err("input.prompt must not be empty.".into());
    }
    if input.function == "description_edit_with_mask" && input.mask_image_url.is_none() {
        return Err("input.mask_image_url is required for description_edit_with_mask.".into());
    }
    let params = &request.parameters;
    let n = params.n.unwrap_or(1);
    if !(1..=4).contains(&n) {
        return Err(format!("parameters.n must be within [1, 4], got {n}."));
    }
    if let Some(strength) = params.strength.filter(|s| !(0.0..=1.0).contains(s)) {
        return Err(format!(
            "parameters.strength must be within [0, 1], got {strength}."
        ));
    }
    if let Some(factor) = params.upscale_factor.filter(|f| !(1..=4).contains(f)) {
        return Err(format!(
            "parameters.upscale_factor must be within [1, 4], got {factor}."
        ));
    }
    if let Some(seed) = params
        .seed
        .filter(|s| !(0..=i64::from(i32::MAX)).contains(s))
    {
        return Err(format!(
            "parameters.seed must be within [0, 2147483647], got {seed}."
        ));
    }
    Ok((n as u32, input))
}

/// Decodes the base image (and the mask where the function uses one); returns the result PNG.
fn check_images(function: &str, base: &str, mask: Option<&str>) -> Result<Vec<u8>, String> {
    let base = pictures::decode_data_uri(base, &FORMATS, &BASE_SIDES)
        .map_err(|err| format!("input.base_image_url: {err}."))?;
    if let (true, Some(mask)) = (function == "description_edit_with_mask", mask) {
        let mask = pictures::decode_data_uri(mask, &FORMATS, &(1..=*BASE_SIDES.end()))
            .map_err(|err| format!("input.mask_image_url: {err}."))?;
        if (mask.width, mask.height) != (base.width, base.height) {
            return Err(format!(
                "input.mask_image_url: the mask must have the base image's size {}x{}, got {}x{}.",
                base.width, base.height, mask.width, mask.height
            ));
        }
    }
    pictures::edited_png(&base.image)
}

pub(super) async fn submit(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = accept(&sandbox, &headers, &body).await;
    sandbox.state.image_edit.tally(&response);
    if response.status().is_success() {
        let delay = sandbox.state.image_edit.settings().submit_delay_ms;
        tokio::time::sleep(millis(delay)).await;
    }
    response
}

/// Checks in the order DashScope shows them: key, async header, parameters and images, then the
/// account's limits and the faults. Only accepted submissions fill the one-second window, and
/// faults are used up only by requests that pass validation.
async fn accept(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(refused) = key_refused(sandbox, headers) {
        return refused;
    }
    let asynchronous = headers
        .get("x-dashscope-async")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("enable"));
    if !asynchronous {
        return native_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "current user api does not support synchronous calls",
        );
    }
    let request: SubmitIn = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => return invalid_parameter(&format!("The request body is invalid: {err}.")),
    };
    let (n, input) = match check(&request) {
        Ok(checked) => checked,
        Err(message) => return invalid_parameter(&message),
    };
    let (function, base, mask) = (
        input.function.clone(),
        input.base_image_url.clone(),
        input.mask_image_url.clone(),
    );
    // Decoding and encoding a 4096-pixel image takes a while: off the async workers.
    let png =
        tokio::task::spawn_blocking(move || check_images(&function, &base, mask.as_deref())).await;
    let png = match png {
        Ok(Ok(png)) => Arc::new(png),
        Ok(Err(message)) => return invalid_parameter(&message),
        Err(_) => return server_error(),
    };
    let edit = &sandbox.state.image_edit;
    let settings = edit.settings();
    let now = Instant::now();
    let mut desk = lock(&edit.desk);
    if take(&mut desk.faults.submit_rate_limited) {
        return rate_limited();
    }
    while desk
        .recent_submits
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
    {
        desk.recent_submits.pop_front();
    }
    if desk.recent_submits.len() >= settings.submits_per_second as usize {
        return rate_limited();
    }
    if desk.in_flight(now) >= u64::from(settings.max_in_flight) {
        return native_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttling.AllocationQuota",
            "Too many tasks in progress, please try again later.",
        );
    }
    if take(&mut desk.faults.submit_moderation) {
        return native_error(
            StatusCode::BAD_REQUEST,
            "DataInspectionFailed",
            "Input data may contain inappropriate content.",
        );
    }
    let outcome = outcome(&mut desk.faults, n);
    let task_id = uuid::Uuid::new_v4().to_string();
    let task = Task {
        submitted: now,
        submit_time: beijing_now(),
        pending: millis(settings.pending_ms),
        running: millis(settings.running_ms),
        outcome,
        images: (0..n)
            .map(|i| {
                let failed = matches!(outcome, Outcome::Partial) && i == n - 1;
                let made = matches!(outcome, Outcome::Succeeded | Outcome::Partial);
                (made && !failed).then(|| format!("{}.png", uuid::Uuid::new_v4().simple()))
            })
            .collect(),
    };
    store_results(&mut desk, &task, &png);
    desk.tasks.insert(task_id.clone(), task);
    desk.recent_submits.push_back(now);
    desk.max_in_flight = desk.max_in_flight.max(desk.in_flight(now));
    ImageEdit::count(&edit.submits);
    Json(json!({
        "output": { "task_status": "PENDING", "task_id": task_id },
        "request_id": request_id(),
    }))
    .into_response()
}

/// Takes the fault for a new task, if any, in the order they are declared.
fn outcome(faults: &mut EditFaults, n: u32) -> Outcome {
    if take(&mut faults.fail_tasks) {
        Outcome::Failed {
            code: "InternalError.Algo",
            message: ALGO_ERROR,
        }
    } else if take(&mut faults.moderate_tasks) {
        Outcome::Failed {
            code: "DataInspectionFailed",
            message: "Output data may contain inappropriate content.",
        }
    } else if take(&mut faults.stuck_tasks) {
        Outcome::Stuck
    } else if n > 1 && take(&mut faults.partial_tasks) {
        Outcome::Partial
    } else {
        Outcome::Succeeded
    }
}

/// Registers the task's images; they become downloadable when the task ends.
fn store_results(desk: &mut Desk, task: &Task, png: &Arc<Vec<u8>>) {
    let Some(end) = task.end() else { return };
    for name in task.images.iter().flatten() {
        let result = StoredResult {
            png: Arc::clone(png),
            made_at: end,
        };
        desk.results.insert(name.clone(), result);
    }
}

pub(super) async fn poll(
    State(sandbox): State<Sandbox>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let edit = &sandbox.state.image_edit;
    ImageEdit::count(&edit.polls);
    if let Some(refused) = key_refused(&sandbox, &headers) {
        return refused;
    }
    let base = result_base(&sandbox, &headers);
    let now = Instant::now();
    let desk = lock(&edit.desk);
    let Some(task) = desk.tasks.get(&task_id) else {
        // What DashScope says of an id it no longer (or never) knew.
        return Json(json!({
            "request_id": request_id(),
            "output": { "task_id": task_id, "task_status": "UNKNOWN" },
        }))
        .into_response();
    };
    let total = task.images.len();
    let mut output = json!({ "task_id": task_id, "submit_time": format_time(task.submit_time) });
    let scheduled_time = after(task.submit_time, task.pending);
    let end_time = after(scheduled_time, task.running);
    let mut usage = None;
    match (task.status(now), task.outcome) {
        (Status::Pending, _) => {
            output["task_status"] = "PENDING".into();
            output["task_metrics"] = metrics(total, 0, 0);
        }
        (Status::Running, _) => {
            output["task_status"] = "RUNNING".into();
            output["scheduled_time"] = format_time(scheduled_time).into();
            output["task_metrics"] = metrics(total, 0, 0);
        }
        (Status::Ended, Outcome::Failed { code, message }) => {
            output["task_status"] = "FAILED".into();
            output["scheduled_time"] = format_time(scheduled_time).into();
            output["end_time"] = format_time(end_time).into();
            output["code"] = code.into();
            output["message"] = message.into();
            output["task_metrics"] = metrics(total, 0, total);
        }
        (Status::Ended, _) => {
            let results: Vec<Value> = task
                .images
                .iter()
                .map(|name| match name {
                    Some(name) => json!({ "url": format!("{base}/_sandbox/edit-results/{name}") }),
                    None => json!({ "code": "InternalError.Algo", "message": ALGO_ERROR }),
                })
                .collect();
            let succeeded = task.images.iter().flatten().count();
            output["task_status"] = "SUCCEEDED".into();
            output["scheduled_time"] = format_time(scheduled_time).into();
            output["end_time"] = format_time(end_time).into();
            output["results"] = results.into();
            output["task_metrics"] = metrics(total, succeeded, total - succeeded);
            usage = Some(json!({ "image_count": succeeded }));
        }
    }
    let mut body = json!({ "request_id": request_id(), "output": output });
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    Json(body).into_response()
}

fn metrics(total: usize, succeeded: usize, failed: usize) -> Value {
    json!({ "TOTAL": total, "SUCCEEDED": succeeded, "FAILED": failed })
}

/// DashScope reports times in Beijing time (UTC+8), without a zone.
fn beijing_now() -> NaiveDateTime {
    (chrono::Utc::now() + TimeDelta::hours(8)).naive_utc()
}

fn after(time: NaiveDateTime, pause: Duration) -> NaiveDateTime {
    TimeDelta::from_std(pause)
        .ok()
        .and_then(|pause| time.checked_add_signed(pause))
        .unwrap_or(NaiveDateTime::MAX)
}

fn format_time(time: NaiveDateTime) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

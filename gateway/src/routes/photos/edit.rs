//! Image edits (docs/architecture.md, "Image edits"): submit an edit (202 with a task), poll the
//! task, and fetch a stored result by the signed URL the task gave. The photo service validates
//! and runs them.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use proto::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

use proto::photo::v1 as pb;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::AuthenticatedClient;

use super::edit_form;

/// The multipart form of `POST /api/v1/photos/edit` (for the OpenAPI document).
#[allow(dead_code)] // documents the form; the handler reads it field by field
#[derive(ToSchema)]
pub struct EditForm {
    /// The photo (JPEG, PNG or WebP; 512–4096 px per side for wanx functions).
    #[schema(format = Binary, value_type = String)]
    image: Vec<u8>,
    /// Only for `description_edit_with_mask`: same size as the image, white = edit.
    #[schema(format = Binary, value_type = Option<String>)]
    mask: Option<Vec<u8>>,
    /// `stylization_all`, `stylization_local`, `description_edit`, `description_edit_with_mask`,
    /// `remove_watermark`, `expand`, `super_resolution`, `colorization`, `doodle`,
    /// `control_cartoon_feature` (wanx2.1-imageedit), or `free_text` (qwen-image-edit).
    function: String,
    /// What to change; optional for super_resolution, colorization, remove_watermark, expand.
    prompt: Option<String>,
    /// Output images (1 credit each): 1–4 for wanx functions, 1 for free_text.
    outputs: Option<u32>,
    strength: Option<f32>,
    upscale_factor: Option<u32>,
    top_scale: Option<f32>,
    bottom_scale: Option<f32>,
    left_scale: Option<f32>,
    right_scale: Option<f32>,
    is_sketch: Option<bool>,
    seed: Option<u32>,
    negative_prompt: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EditResultOut {
    /// Our copy of the result; works until `results_expire_at`, no token needed, while this app
    /// is still bound to this WeChat user (re-bound or signed out, it is 404).
    pub url: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub content_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct EditErrorOut {
    /// `timeout`, `moderation_rejected`, `provider_rejected`, `provider_failed`,
    /// `provider_lost`, `payment_failed`, `insufficient_credits`, `credits_unavailable`.
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct EditTaskOut {
    pub task_id: String,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: &'static str,
    pub function: String,
    pub model: String,
    pub outputs: u32,
    /// Set once succeeded: the images produced (each cost one credit).
    pub results: Vec<EditResultOut>,
    /// Unix seconds when the result URLs stop working (ask the task again for fresh ones).
    pub results_expire_at: Option<i64>,
    /// True once the stored results were deleted, 30 days after the task succeeded (by
    /// default): `results` is empty then, and the same request may be made again.
    pub results_purged: bool,
    /// Credits held for the task, and credits it cost (0 unless it succeeded).
    pub credits_reserved: i64,
    pub credits_charged: i64,
    pub error: Option<EditErrorOut>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// False when this request repeated an earlier one: its task is returned, nothing charged.
    pub created: bool,
}

/// Submits an edit: validated, credits held (1 per output), queued. The same request again
/// (same `Idempotency-Key`, or the same content without one) returns the same task.
#[utoipa::path(post, path = "/api/v1/photos/edit", operation_id = "submit_edit",
    request_body(content = EditForm, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried request return the first task")),
    security(("client_token" = [])),
    responses(
        (status = 202, body = EditTaskOut),
        (status = 400, description = "unknown function, missing prompt, bad parameter, mask missing/not allowed/size mismatch"),
        (status = 401), (status = 403, description = "client not bound to WeChat"),
        (status = 409, description = "not enough credits"),
        (status = 413, description = "image over the size cap"),
        (status = 422, description = "not an image, outside the model's pixel sizes (image_dimensions, from the header: more than 4096 px per side), or more than the service decodes at once (image_too_large)"),
        (status = 429), (status = 503, description = "editing not configured, credits unavailable, or at capacity (uploads_busy, decode_busy: nothing done; retry after Retry-After seconds)")))]
pub async fn submit(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (user_id, openid) = caller.bound_user()?;
    state.limits.check_photos(&caller.client_id, 1).await?;
    let form = edit_form::read(
        super::multipart_of(multipart)?,
        state.cfg.photo_limits.edit_max_image_bytes,
    )
    .await?;
    let request_key = headers
        .get("idempotency-key")
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be ASCII",
            )
        })?
        .unwrap_or_default();
    let task = state
        .clients
        .edit
        .clone()
        .submit_edit(pb::SubmitEditRequest {
            caller: Some(super::caller_of(&caller, user_id, openid)),
            image: form.image,
            mask: form.mask.unwrap_or_default(),
            function: form.function,
            prompt: form.prompt,
            outputs: form.outputs,
            parameters: Some(form.parameters),
            request_key,
        })
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, Json(task_out(&state, task))).into_response())
}

/// An edit task of the calling WeChat user on the calling client (404 for any other task: one of
/// another app, or of another user on this app).
#[utoipa::path(get, path = "/api/v1/photos/edit/{task_id}", operation_id = "get_edit_task",
    params(("task_id" = String, Path)),
    security(("client_token" = [])),
    responses((status = 200, body = EditTaskOut), (status = 401), (status = 403), (status = 404),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    Path(task_id): Path<String>,
) -> Result<Json<EditTaskOut>, ApiError> {
    let (user_id, openid) = caller.bound_user()?;
    let task = state
        .clients
        .edit
        .clone()
        .get_edit(pb::GetEditRequest {
            caller: Some(super::caller_of(&caller, user_id, openid)),
            task_id,
        })
        .await?
        .into_inner();
    Ok(Json(task_out(&state, task)))
}

/// A stored result. The URL is the authority (signed, expiring): apps can hand it to an image
/// view without headers. It stops working once the app is re-bound to another user or signed
/// out. The file is streamed through as the photo service reads it: a download never holds a
/// whole result in the gateway's memory.
#[utoipa::path(get, path = "/api/v1/photos/edit/results/{token}", operation_id = "get_edit_result",
    params(("token" = String, Path)),
    responses((status = 200, description = "the image (with its Content-Length)", content_type = "image/png"),
        (status = 404, description = "unknown, altered or expired URL, or the app is no longer bound to the task's user"),
        (status = 503, description = "membership_unavailable")))]
pub async fn result(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let mut chunks = state
        .clients
        .edit
        .clone()
        .stream_edit_result(pb::ReadEditResultRequest { token })
        .await?
        .into_inner();
    // The first message names the file; an error before it (404) is answered as one.
    let header = chunks.message().await?.ok_or_else(|| {
        ApiError::from(tonic::Status::internal(
            "an edit result stream without a header",
        ))
    })?;
    let body = Body::from_stream(chunks.map(|chunk| chunk.map(|chunk| chunk.data)));
    Ok((
        [
            (header::CONTENT_TYPE, header.content_type),
            (header::CONTENT_LENGTH, header.total_bytes.to_string()),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response())
}

fn task_out(state: &AppState, task: pb::EditTask) -> EditTaskOut {
    let status = match pb::EditStatus::try_from(task.status) {
        Ok(pb::EditStatus::Running) => "running",
        Ok(pb::EditStatus::Succeeded) => "succeeded",
        Ok(pb::EditStatus::Failed) => "failed",
        _ => "pending",
    };
    let base = state.cfg.edit_result_base_url.trim_end_matches('/');
    EditTaskOut {
        task_id: task.task_id,
        status,
        function: task.function,
        model: task.model,
        outputs: task.outputs,
        results: task
            .results
            .into_iter()
            .map(|r| EditResultOut {
                url: format!("{base}/api/v1/photos/edit/results/{}", r.token),
                width: r.width,
                height: r.height,
                bytes: r.bytes,
                content_type: r.content_type,
            })
            .collect(),
        results_expire_at: (task.results_expire_at_unix > 0).then_some(task.results_expire_at_unix),
        results_purged: task.results_purged,
        credits_reserved: task.credits_reserved,
        credits_charged: task.credits_charged,
        error: (!task.error_code.is_empty()).then_some(EditErrorOut {
            code: task.error_code,
            message: task.error_message,
        }),
        created_at: task.created_at_unix_ms,
        finished_at: (task.finished_at_unix_ms > 0).then_some(task.finished_at_unix_ms),
        created: task.created,
    }
}

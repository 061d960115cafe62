//! Photo classification (docs/architecture.md, "Classification order"): one image, a batch, and
//! cached results by digest. Handlers check the shape and the caller, then hand the work to the
//! photo service.

pub mod edit;
pub mod edit_form;
pub mod in_flight;
mod out;
mod upload;

use proto::ErrorCode;
use std::time::Duration;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::middleware;
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use proto::photo::v1 as pb;

use crate::AppState;
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::extract::{ApiJson, AuthenticatedClient};
use crate::recording::RecordFields;

pub use edit::{EditErrorOut, EditForm, EditResultOut, EditTaskOut};
pub use out::{
    BatchItemOut, BatchOut, ClassificationOut, CloudSkippedOut, ItemErrorOut, LookupItemOut,
    LookupOut, ScoredLabelOut,
};

/// The routes, each with a body cap sized for its images (the gateway-wide cap is for JSON), and
/// the uploads of all of them within one budget of bytes in flight.
pub fn router(cfg: &GatewayConfig) -> Router<AppState> {
    let uploads = in_flight::UploadBudget::new(
        cfg.photo_uploads_in_flight_bytes,
        Duration::from_millis(cfg.photo_upload_wait_ms),
    );
    let upload_route = |handler: MethodRouter<AppState>, max_body: usize| {
        handler
            .layer(DefaultBodyLimit::max(max_body))
            .layer(middleware::from_fn_with_state(
                uploads.gate(max_body),
                in_flight::limit,
            ))
    };
    Router::new()
        .route(
            "/api/v1/photos/classify",
            upload_route(post(classify), cfg.single_upload_body()),
        )
        .route(
            "/api/v1/photos/classify/batch",
            upload_route(post(classify_batch), cfg.batch_upload_body()),
        )
        .route("/api/v1/photos/lookup", post(lookup))
        .route(
            "/api/v1/photos/edit",
            // An image and its mask.
            upload_route(post(edit::submit), cfg.edit_upload_body()),
        )
        .route("/api/v1/photos/edit/{task_id}", get(edit::get))
        .route("/api/v1/photos/edit/results/{token}", get(edit::result))
}

/// The multipart form of `/api/v1/photos/classify` (for the OpenAPI document).
#[allow(dead_code)] // documents the form; the handler reads it field by field
#[derive(ToSchema)]
pub struct ClassifyForm {
    /// The image file (JPEG, PNG, WebP or GIF), at most 10 MiB by default.
    #[schema(format = Binary, value_type = String)]
    image: Vec<u8>,
    /// `auto` (default: the cloud model only when the local answer is unsure), `local`, `cloud`.
    mode: Option<String>,
}

/// The multipart form of `/api/v1/photos/classify/batch` (for the OpenAPI document).
#[allow(dead_code)] // documents the form; the handler reads it field by field
#[derive(ToSchema)]
pub struct ClassifyBatchForm {
    /// Repeated `images` (or `image`) file parts, at most 20 by default.
    #[schema(format = Binary, value_type = Vec<String>)]
    images: Vec<Vec<u8>>,
    /// `auto` (default), `local` or `cloud`, for every image.
    mode: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LookupIn {
    /// SHA-256 digests of image bytes, 64 hex digits each (1 to 500 by default).
    pub sha256: Vec<String>,
}

/// Classifies one image into an album category.
#[utoipa::path(post, path = "/api/v1/photos/classify",
    request_body(content = ClassifyForm, content_type = "multipart/form-data"),
    security(("client_token" = [])),
    responses(
        (status = 200, body = ClassificationOut),
        (status = 400, description = "missing image, empty image or unknown mode"),
        (status = 401), (status = 403, description = "client not bound to WeChat"),
        (status = 413, description = "image over the size cap"),
        (status = 422, description = "not an image, truncated, corrupt, or too many pixels (image_too_large: more than the service decodes at once)"),
        (status = 429, description = "too many photos from this client"),
        (status = 503, description = "uploads_busy (the gateway) or decode_busy (the photo service): at capacity, nothing done; retry after Retry-After seconds")))]
pub async fn classify(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    record: Option<Extension<RecordFields>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<ClassificationOut>, ApiError> {
    let (user_id, openid) = caller.bound_user()?;
    state.limits.check_photos(&caller.client_id, 1).await?;
    let form = upload::read_form(
        multipart_of(multipart)?,
        state.cfg.photo_limits.classify_max_image_bytes,
        1,
    )
    .await?;
    let mode = parse_mode(form.mode.as_deref())?;
    let Some(upload) = form.images.into_iter().next() else {
        return Err(ApiError::new(
            ErrorCode::MissingImage,
            "send the image as the multipart field `image`",
        ));
    };
    let mut request = tonic::Request::new(pb::ClassifyRequest {
        image: upload.bytes,
        mode: mode.into(),
        caller: Some(caller_of(&caller, user_id, openid)),
    });
    request.set_timeout(classify_deadline(&state));
    let answer = state
        .clients
        .classifier
        .clone()
        .classify(request)
        .await?
        .into_inner();
    if let Some(Extension(record)) = record {
        record.set_source(source_name(answer.source), answer.model_tokens);
    }
    Ok(Json(out::classification_out(answer)))
}

/// Classifies several images, each answered on its own.
#[utoipa::path(post, path = "/api/v1/photos/classify/batch",
    request_body(content = ClassifyBatchForm, content_type = "multipart/form-data"),
    security(("client_token" = [])),
    responses(
        (status = 200, body = BatchOut, description = "per image: a classification or an error"),
        (status = 400, description = "no images, too many images or unknown mode"),
        (status = 401), (status = 403), (status = 413), (status = 429),
        (status = 503, description = "uploads_busy or decode_busy: at capacity, nothing done; retry after Retry-After seconds")))]
pub async fn classify_batch(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    record: Option<Extension<RecordFields>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<BatchOut>, ApiError> {
    let (user_id, openid) = caller.bound_user()?;
    let max_images = state.cfg.photo_limits.classify_batch_max;
    let form = upload::read_form(
        multipart_of(multipart)?,
        state.cfg.photo_limits.classify_max_image_bytes,
        max_images,
    )
    .await?;
    let mode = parse_mode(form.mode.as_deref())?;
    if form.images.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            format!("send 1 to {max_images} images as multipart fields `images`"),
        ));
    }
    state
        .limits
        .check_photos(&caller.client_id, form.images.len())
        .await?;
    let (file_names, images): (Vec<_>, Vec<_>) = form
        .images
        .into_iter()
        .map(|upload| (upload.file_name, upload.bytes))
        .unzip();
    let mut request = tonic::Request::new(pb::ClassifyBatchRequest {
        images,
        mode: mode.into(),
        caller: Some(caller_of(&caller, user_id, openid)),
    });
    request.set_timeout(classify_deadline(&state));
    let answer = state
        .clients
        .classifier
        .clone()
        .classify_batch(request)
        .await?
        .into_inner();
    if answer.items.len() != file_names.len() {
        tracing::error!(
            sent = file_names.len(),
            received = answer.items.len(),
            "photo service answered a batch short"
        );
        return Err(ApiError::from(tonic::Status::internal("short batch")));
    }
    let mut credits_charged = 0;
    let mut model_tokens = 0u32;
    // One record per request: it carries the costliest source among the images.
    let mut costliest = pb::ClassificationSource::Cache;
    let results = answer
        .items
        .into_iter()
        .zip(file_names)
        .enumerate()
        .map(|(index, (item, filename))| {
            let mut result = BatchItemOut {
                index,
                filename,
                classification: None,
                error: None,
            };
            match item.outcome {
                Some(pb::classify_batch_item::Outcome::Classification(answer)) => {
                    credits_charged += answer.credits_charged;
                    model_tokens = model_tokens.saturating_add(answer.model_tokens);
                    if let Ok(source) = pb::ClassificationSource::try_from(answer.source) {
                        costliest = costliest.max(source);
                    }
                    result.classification = Some(out::classification_out(answer));
                }
                Some(pb::classify_batch_item::Outcome::Error(error)) => {
                    // Only codes of the registry reach apps; one the gateway does not know is
                    // a photo service of another release, and shows as internal.
                    let code = error.code.parse::<ErrorCode>().unwrap_or_else(|_| {
                        tracing::warn!(code = %error.code, "unknown error code of a batch item");
                        ErrorCode::Internal
                    });
                    result.error = Some(ItemErrorOut {
                        code: code.as_str().to_owned(),
                        message: error.message,
                    });
                }
                None => {
                    result.error = Some(ItemErrorOut {
                        code: ErrorCode::Internal.as_str().to_owned(),
                        message: "no answer for this image".into(),
                    });
                }
            }
            result
        })
        .collect();
    if let Some(Extension(record)) = record {
        record.set_source(source_name(costliest.into()), model_tokens);
    }
    Ok(Json(BatchOut {
        results,
        credits_charged,
    }))
}

/// Returns cached classifications by SHA-256 of the image bytes, so apps upload only misses.
#[utoipa::path(post, path = "/api/v1/photos/lookup", request_body = LookupIn,
    security(("client_token" = [])),
    responses(
        (status = 200, body = LookupOut),
        (status = 400, description = "no digests, too many, or a malformed one"),
        (status = 401), (status = 403), (status = 429),
        (status = 503, description = "a service the call needs cannot answer now (service_unavailable and the like): retry later")))]
pub async fn lookup(
    State(state): State<AppState>,
    caller: AuthenticatedClient,
    ApiJson(input): ApiJson<LookupIn>,
) -> Result<Json<LookupOut>, ApiError> {
    caller.bound_user()?;
    state.limits.check_lookup(&caller.client_id).await?;
    let max = state.cfg.photo_limits.lookup_max;
    if input.sha256.is_empty() || input.sha256.len() > max {
        return Err(ApiError::new(
            ErrorCode::InvalidBatchSize,
            format!("send 1 to {max} digests, not {}", input.sha256.len()),
        ));
    }
    let answer = state
        .clients
        .classifier
        .clone()
        .lookup(pb::LookupRequest {
            sha256: input.sha256,
        })
        .await?
        .into_inner();
    let results = answer
        .items
        .into_iter()
        .map(|item| LookupItemOut {
            found: item.classification.is_some(),
            sha256: item.sha256,
            classification: item.classification.map(out::classification_out),
        })
        .collect();
    Ok(Json(LookupOut { results }))
}

pub(super) fn multipart_of(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Multipart, ApiError> {
    multipart.map_err(|rejection| {
        ApiError::new(
            ErrorCode::InvalidMultipart,
            format!("send multipart/form-data: {}", rejection.body_text()),
        )
    })
}

fn parse_mode(mode: Option<&str>) -> Result<pb::ClassifyMode, ApiError> {
    match mode {
        None | Some("") | Some("auto") => Ok(pb::ClassifyMode::Auto),
        Some("local") => Ok(pb::ClassifyMode::Local),
        Some("cloud") => Ok(pb::ClassifyMode::Cloud),
        Some(_) => Err(upload::invalid_mode()),
    }
}

pub(super) fn caller_of(caller: &AuthenticatedClient, user_id: i64, openid: &str) -> pb::Caller {
    pb::Caller {
        user_id,
        client_id: caller.client_id.clone(),
        openid: openid.to_owned(),
    }
}

/// The photo service gets the deadline in `grpc-timeout` and plans the cloud call within it.
fn classify_deadline(state: &AppState) -> Duration {
    Duration::from_millis(state.cfg.classify_timeout_ms)
}

fn source_name(source: i32) -> &'static str {
    match pb::ClassificationSource::try_from(source) {
        Ok(pb::ClassificationSource::Local) => "local",
        Ok(pb::ClassificationSource::Model) => "model",
        _ => "cache",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_mode(None).unwrap(), pb::ClassifyMode::Auto);
        assert_eq!(parse_mode(Some("")).unwrap(), pb::ClassifyMode::Auto);
        assert_eq!(parse_mode(Some("cloud")).unwrap(), pb::ClassifyMode::Cloud);
        assert_eq!(parse_mode(Some("local")).unwrap(), pb::ClassifyMode::Local);
        let err = parse_mode(Some("fast")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidMode);
    }
}

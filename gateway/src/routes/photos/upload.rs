//! Reads the images of a multipart upload within the size caps, without trusting any length the
//! client declares: each part is read chunk by chunk and refused (413) as soon as it is too big.

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use proto::ErrorCode;

use crate::error::ApiError;

/// One uploaded image.
pub struct Upload {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// The fields of a classification form.
pub struct Form {
    pub images: Vec<Upload>,
    pub mode: Option<String>,
}

/// Field names that carry an image (`images[]` as some form libraries name repeated fields).
const IMAGE_FIELDS: [&str; 3] = ["image", "images", "images[]"];
/// The longest `mode` value read.
const MAX_MODE_BYTES: usize = 32;

/// Reads at most `max_images` images of at most `max_image_bytes` each, and the `mode` field.
pub async fn read_form(
    mut multipart: Multipart,
    max_image_bytes: usize,
    max_images: usize,
) -> Result<Form, ApiError> {
    let mut form = Form {
        images: Vec::new(),
        mode: None,
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if IMAGE_FIELDS.contains(&name.as_str()) {
            if form.images.len() == max_images {
                return Err(ApiError::new(
                    ErrorCode::TooManyImages,
                    format!("send at most {max_images} images in one request"),
                ));
            }
            let file_name = field.file_name().map(str::to_owned);
            let bytes = read_file(&mut field, max_image_bytes).await?;
            form.images.push(Upload { file_name, bytes });
        } else if name == "mode" {
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                value.extend_from_slice(&chunk);
                if value.len() > MAX_MODE_BYTES {
                    return Err(invalid_mode());
                }
            }
            let value = String::from_utf8(value).map_err(|_| invalid_mode())?;
            form.mode = Some(value.trim().to_owned());
        }
        // Other fields are skipped: the next `next_field` drains them.
    }
    Ok(form)
}

/// Reads one file part, refusing it (413) as soon as it passes `max_bytes`.
pub async fn read_file(
    field: &mut axum::extract::multipart::Field<'_>,
    max_bytes: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(image_too_big(max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn image_too_big(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("an image is larger than {limit} bytes"),
    )
}

pub fn invalid_mode() -> ApiError {
    ApiError::new(ErrorCode::InvalidMode, "mode must be auto, local or cloud")
}

pub fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
    }
    ApiError::new(ErrorCode::InvalidMultipart, err.body_text())
}

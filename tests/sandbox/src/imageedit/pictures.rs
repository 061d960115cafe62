//! Input images (base64 data URIs, checked as DashScope checks them), the "edited" result PNG,
//! and the result URLs with their OSS-style expiry.

use std::io::Cursor;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use image::{DynamicImage, ImageFormat, ImageReader};

use super::{ImageEdit, millis};
use crate::{Sandbox, lock};

/// DashScope's file size limit for an input image.
const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// A decoded input image.
pub(super) struct Picture {
    pub width: u32,
    pub height: u32,
    pub image: DynamicImage,
}

/// Decodes a `data:image/...;base64,` URI. `formats` are those the model takes and the sandbox
/// can decode; `sides` bounds width and height. Errors are messages for InvalidParameter.
pub(super) fn decode_data_uri(
    uri: &str,
    formats: &[ImageFormat],
    sides: &RangeInclusive<u32>,
) -> Result<Picture, String> {
    let data = uri
        .strip_prefix("data:image/")
        .and_then(|rest| rest.split_once(";base64,"))
        .map(|(_, data)| data)
        .ok_or("the sandbox takes images as data:image/...;base64,... URIs only")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| "the image data is not valid base64")?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "the image is {} bytes, larger than 10 MB",
            bytes.len()
        ));
    }
    let format = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.format())
        .ok_or("the image format is not recognised")?;
    if format == ImageFormat::Bmp {
        // DashScope takes BMP, but the workspace's image crate is built without a BMP decoder.
        return Err("BMP images are not supported by the sandbox; send JPEG, PNG or WebP".into());
    }
    if !formats.contains(&format) {
        return Err(format!("the image format {format:?} is not supported"));
    }
    // Read the header first, so an oversized image is refused before it is decoded.
    let (width, height) = ImageReader::with_format(Cursor::new(&bytes), format)
        .into_dimensions()
        .map_err(|err| format!("the image cannot be decoded: {err}"))?;
    if !sides.contains(&width) || !sides.contains(&height) {
        return Err(format!(
            "image width and height must be within [{}, {}] pixels, got {width}x{height}",
            sides.start(),
            sides.end()
        ));
    }
    let image = ImageReader::with_format(Cursor::new(&bytes), format)
        .decode()
        .map_err(|err| format!("the image cannot be decoded: {err}"))?;
    Ok(Picture {
        width,
        height,
        image,
    })
}

/// The "edit": the image with its colours inverted (alpha kept), as an 8-bit PNG.
pub(super) fn edited_png(image: &DynamicImage) -> Result<Vec<u8>, String> {
    let mut edited = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    };
    edited.invert();
    let mut png = Cursor::new(Vec::new());
    edited
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|err| format!("cannot encode the result: {err}"))?;
    Ok(png.into_inner())
}

/// A result image behind `/_sandbox/edit-results/{name}`.
pub(super) struct StoredResult {
    pub png: Arc<Vec<u8>>,
    /// When the image is made: a task's end, or a synchronous call's answer.
    pub made_at: Instant,
}

/// Serves a result image while its URL is valid, then OSS's "Request has expired." 403.
pub(super) async fn serve(State(sandbox): State<Sandbox>, Path(name): Path<String>) -> Response {
    let edit: &ImageEdit = &sandbox.state.image_edit;
    let ttl = millis(edit.settings().result_ttl_ms);
    let now = Instant::now();
    let (png, expired) = {
        let desk = lock(&edit.desk);
        match desk.results.get(&name) {
            // A task's images exist from its end on; before that the key is unknown.
            Some(result) if result.made_at <= now => {
                let expired = now.duration_since(result.made_at) >= ttl
                    || desk.expired_up_to.is_some_and(|cut| result.made_at <= cut);
                (Arc::clone(&result.png), expired)
            }
            _ => {
                return oss_error(
                    StatusCode::NOT_FOUND,
                    "NoSuchKey",
                    "The specified key does not exist.",
                );
            }
        }
    };
    if expired {
        return oss_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired.",
        );
    }
    ImageEdit::count(&edit.results_served);
    ([(header::CONTENT_TYPE, "image/png")], png.to_vec()).into_response()
}

fn oss_error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = format!("{:024X}", rand::random::<u128>() >> 32);
    let server_time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S.000Z");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  \
         <Message>{message}</Message>\n  <RequestId>{request_id}</RequestId>\n  \
         <HostId>dashscope-result-sh.oss-cn-shanghai.aliyuncs.com</HostId>\n  \
         <ServerTime>{server_time}</ServerTime>\n</Error>\n"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

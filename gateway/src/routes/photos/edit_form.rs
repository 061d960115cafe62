//! Reads the multipart form of an edit within the size caps: the image and mask chunk by chunk
//! (413 as soon as one is too big), short text fields, and typed parameters (400 naming the
//! field that does not parse). Unknown fields are refused, so a misspelt parameter is never
//! silently ignored.

use axum::extract::Multipart;
use axum::extract::multipart::Field;
use proto::ErrorCode;

use proto::photo::v1 as pb;

use crate::error::ApiError;

use super::upload;

/// Longest text field read (prompts are at most 800 characters).
const MAX_TEXT_BYTES: usize = 4096;

pub struct EditFormData {
    pub image: Vec<u8>,
    pub mask: Option<Vec<u8>>,
    pub function: String,
    pub prompt: String,
    pub outputs: u32,
    pub parameters: pb::EditParameters,
}

pub async fn read(
    mut multipart: Multipart,
    max_image_bytes: usize,
) -> Result<EditFormData, ApiError> {
    let mut image = None;
    let mut mask = None;
    let mut function = None;
    let mut prompt = String::new();
    let mut outputs = 1;
    let mut parameters = pb::EditParameters::default();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(upload::multipart_error)?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" => image = Some(upload::read_file(&mut field, max_image_bytes).await?),
            "mask" => mask = Some(upload::read_file(&mut field, max_image_bytes).await?),
            "function" => function = Some(text(&mut field, &name).await?),
            "prompt" => prompt = text(&mut field, &name).await?,
            "outputs" | "n" => outputs = number(&mut field, &name).await?,
            "strength" => parameters.strength = Some(number(&mut field, &name).await?),
            "upscale_factor" => parameters.upscale_factor = Some(number(&mut field, &name).await?),
            "top_scale" => parameters.top_scale = Some(number(&mut field, &name).await?),
            "bottom_scale" => parameters.bottom_scale = Some(number(&mut field, &name).await?),
            "left_scale" => parameters.left_scale = Some(number(&mut field, &name).await?),
            "right_scale" => parameters.right_scale = Some(number(&mut field, &name).await?),
            "is_sketch" => parameters.is_sketch = Some(number(&mut field, &name).await?),
            "seed" => parameters.seed = Some(number(&mut field, &name).await?),
            "negative_prompt" => parameters.negative_prompt = Some(text(&mut field, &name).await?),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::UnknownField,
                    format!("unknown form field {name:?}"),
                ));
            }
        }
    }
    let image = image.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingImage,
            "send the photo as the multipart field `image`",
        )
    })?;
    let function = function
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingFunction, "send the edit's `function`"))?;
    Ok(EditFormData {
        image,
        mask,
        function,
        prompt,
        outputs,
        parameters,
    })
}

async fn text(field: &mut Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(upload::multipart_error)? {
        value.extend_from_slice(&chunk);
        if value.len() > MAX_TEXT_BYTES {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("{name} is longer than {MAX_TEXT_BYTES} bytes"),
            ));
        }
    }
    String::from_utf8(value)
        .map(|v| v.trim().to_owned())
        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, format!("{name} is not UTF-8")))
}

async fn number<T: std::str::FromStr>(field: &mut Field<'_>, name: &str) -> Result<T, ApiError> {
    text(field, name).await?.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{name} does not parse as a value of its type"),
        )
    })
}

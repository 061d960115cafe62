//! The multipart uploads, which the generator does not write: the form fields are the gateway's
//! (`ClassifyForm`, `ClassifyBatchForm` and `EditForm` in the OpenAPI document), the answers
//! and errors the generated types.

// The error is the generated operations' own (`progenitor_client::Error`), large or not: the
// uploads answer like every other operation.
#![allow(clippy::result_large_err)]

use progenitor_client::{ClientInfo, Error, ResponseValue};
use reqwest::header::ACCEPT;
use reqwest::multipart::{Form, Part};
use serde::de::DeserializeOwned;

use crate::{Client, types};

/// A photo to upload: its bytes and the file name the answers echo.
#[derive(Debug, Clone)]
pub struct Photo {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl Photo {
    pub fn new(file_name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            file_name: file_name.into(),
            bytes: bytes.into(),
        }
    }

    fn part(&self) -> Part {
        Part::bytes(self.bytes.clone()).file_name(self.file_name.clone())
    }
}

/// `POST /api/v1/photos/edit`: the function and its parameters (the document's `EditForm`).
/// Leave a parameter `None` for the model's default.
#[derive(Debug, Clone)]
pub struct EditRequest {
    pub image: Photo,
    /// `stylization_all`, `description_edit`, `super_resolution`, `free_text`, …
    pub function: String,
    /// What to change; optional for super_resolution, colorization, remove_watermark, expand.
    pub prompt: Option<String>,
    /// Only for `description_edit_with_mask`: same size as the image, white = edit.
    pub mask: Option<Photo>,
    /// Output images, one credit each.
    pub outputs: Option<u32>,
    pub strength: Option<f32>,
    pub upscale_factor: Option<u32>,
    pub top_scale: Option<f32>,
    pub bottom_scale: Option<f32>,
    pub left_scale: Option<f32>,
    pub right_scale: Option<f32>,
    pub is_sketch: Option<bool>,
    pub seed: Option<u32>,
    pub negative_prompt: Option<String>,
    /// Sent as `Idempotency-Key`: a retried request with the same key answers the first task.
    pub idempotency_key: Option<String>,
}

impl EditRequest {
    pub fn new(function: impl Into<String>, image: Photo) -> Self {
        Self {
            image,
            function: function.into(),
            prompt: None,
            mask: None,
            outputs: None,
            strength: None,
            upscale_factor: None,
            top_scale: None,
            bottom_scale: None,
            left_scale: None,
            right_scale: None,
            is_sketch: None,
            seed: None,
            negative_prompt: None,
            idempotency_key: None,
        }
    }

    fn form(&self) -> Form {
        let mut form = Form::new()
            .part("image", self.image.part())
            .text("function", self.function.clone());
        if let Some(mask) = &self.mask {
            form = form.part("mask", mask.part());
        }
        let texts = [
            ("prompt", self.prompt.clone()),
            ("negative_prompt", self.negative_prompt.clone()),
            ("outputs", self.outputs.map(|n| n.to_string())),
            ("strength", self.strength.map(|n| n.to_string())),
            ("upscale_factor", self.upscale_factor.map(|n| n.to_string())),
            ("top_scale", self.top_scale.map(|n| n.to_string())),
            ("bottom_scale", self.bottom_scale.map(|n| n.to_string())),
            ("left_scale", self.left_scale.map(|n| n.to_string())),
            ("right_scale", self.right_scale.map(|n| n.to_string())),
            ("is_sketch", self.is_sketch.map(|b| u8::from(b).to_string())),
            ("seed", self.seed.map(|n| n.to_string())),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                form = form.text(name, value);
            }
        }
        form
    }
}

impl Client {
    /// `POST /api/v1/photos/classify`: one photo. `mode`: `auto` (the default: the cloud model
    /// only when the local answer is unsure), `local` or `cloud`.
    pub async fn classify(
        &self,
        photo: &Photo,
        mode: Option<&str>,
    ) -> Result<ResponseValue<types::ClassificationOut>, Error<types::ErrorBody>> {
        let mut form = Form::new().part("image", photo.part());
        if let Some(mode) = mode {
            form = form.text("mode", mode.to_owned());
        }
        self.post_form("/api/v1/photos/classify", form, None).await
    }

    /// `POST /api/v1/photos/classify/batch`: several photos, one answer each, in order; a photo
    /// that fails does not fail the others.
    pub async fn classify_batch(
        &self,
        photos: &[Photo],
        mode: Option<&str>,
    ) -> Result<ResponseValue<types::BatchOut>, Error<types::ErrorBody>> {
        let mut form = photos
            .iter()
            .fold(Form::new(), |form, photo| form.part("images", photo.part()));
        if let Some(mode) = mode {
            form = form.text("mode", mode.to_owned());
        }
        self.post_form("/api/v1/photos/classify/batch", form, None)
            .await
    }

    /// `POST /api/v1/photos/edit`: starts an edit task; poll it with `get_edit_task`.
    pub async fn submit_edit(
        &self,
        request: &EditRequest,
    ) -> Result<ResponseValue<types::EditTaskOut>, Error<types::ErrorBody>> {
        self.post_form(
            "/api/v1/photos/edit",
            request.form(),
            request.idempotency_key.as_deref(),
        )
        .await
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: Form,
        idempotency_key: Option<&str>,
    ) -> Result<ResponseValue<T>, Error<types::ErrorBody>> {
        let mut request = self
            .client()
            .post(format!("{}{path}", self.baseurl()))
            .header(ACCEPT, "application/json")
            .multipart(form);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.map_err(Error::CommunicationError)?;
        let status = response.status();
        if !(status.is_success() || status.is_client_error() || status.is_server_error()) {
            return Err(Error::UnexpectedResponse(response));
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Error::ResponseBodyError)?;
        if status.is_success() {
            let answer = parse(body)?;
            Ok(ResponseValue::new(answer, status, headers))
        } else {
            let error = parse(body)?;
            Err(Error::ErrorResponse(ResponseValue::new(
                error, status, headers,
            )))
        }
    }
}

fn parse<T: DeserializeOwned>(body: bytes::Bytes) -> Result<T, Error<types::ErrorBody>> {
    serde_json::from_slice(&body).map_err(|error| Error::InvalidResponsePayload(body, error))
}

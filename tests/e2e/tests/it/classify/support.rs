//! A system with one bound app client, and the calls an app makes.

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::Digest as _;

use e2e::{Options, System};

/// The sample photos `deploy/local/fetch-model.sh` prepares (scikit-image's data).
pub fn photo(name: &str) -> Vec<u8> {
    photo_model::data_dir::sample_photo(name).expect("a sample photo")
}

/// Lower-case hex SHA-256, computed here, independently of the service.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The system and an app client bound to a WeChat user (10 welcome credits).
pub struct App {
    pub system: System,
    pub token: String,
    pub openid: String,
}

pub async fn bound_app(options: Options, openid: &str) -> App {
    let system = System::start(options).await;
    let token = bind(&system, &format!("pc-{openid}"), openid).await;
    App {
        system,
        token,
        openid: openid.to_owned(),
    }
}

/// Binds a client to `openid` and returns its token.
pub async fn bind(system: &System, client_id: &str, openid: &str) -> String {
    system.bind_client(client_id, openid).await
}

fn image_part(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("application/octet-stream")
        .unwrap()
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.system.gateway())
    }

    /// Posts one image as the multipart field `image`.
    pub async fn classify(&self, image: Vec<u8>, mode: Option<&str>) -> (u16, Value) {
        let mut form = Form::new().part("image", image_part("photo", image));
        if let Some(mode) = mode {
            form = form.text("mode", mode.to_owned());
        }
        self.post_form("/api/v1/photos/classify", form).await
    }

    /// Classifies a sample photo and expects success.
    pub async fn classify_photo(&self, name: &str, mode: Option<&str>) -> Value {
        let (status, body) = self.classify(photo(name), mode).await;
        assert_eq!(status, 200, "{name}: {body}");
        body
    }

    pub async fn post_form(&self, path: &str, form: Form) -> (u16, Value) {
        self.post_form_with_id(path, form, None).await
    }

    /// Posts a form; with `request_id`, the gateway takes it as the request's id (`x-request-id`).
    pub async fn post_form_with_id(
        &self,
        path: &str,
        form: Form,
        request_id: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .system
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .multipart(form);
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        answer(request.send().await.unwrap()).await
    }

    /// Posts named images as repeated `images` fields.
    pub async fn batch(&self, images: Vec<(&str, Vec<u8>)>, mode: Option<&str>) -> (u16, Value) {
        self.batch_with_id(images, mode, None).await
    }

    /// A batch whose gateway request id is `request_id`.
    pub async fn batch_with_id(
        &self,
        images: Vec<(&str, Vec<u8>)>,
        mode: Option<&str>,
        request_id: Option<&str>,
    ) -> (u16, Value) {
        let mut form = Form::new();
        for (name, bytes) in images {
            form = form.part("images", image_part(name, bytes));
        }
        if let Some(mode) = mode {
            form = form.text("mode", mode.to_owned());
        }
        self.post_form_with_id("/api/v1/photos/classify/batch", form, request_id)
            .await
    }

    /// Classifies a sample photo under the gateway request id `request_id`; expects success.
    pub async fn classify_photo_with_id(
        &self,
        name: &str,
        mode: Option<&str>,
        request_id: &str,
    ) -> Value {
        let mut form = Form::new().part("image", image_part(name, photo(name)));
        if let Some(mode) = mode {
            form = form.text("mode", mode.to_owned());
        }
        let (status, body) = self
            .post_form_with_id("/api/v1/photos/classify", form, Some(request_id))
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        body
    }

    pub async fn lookup(&self, digests: &[String]) -> (u16, Value) {
        let response = self
            .system
            .http
            .post(self.url("/api/v1/photos/lookup"))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "sha256": digests }))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// DashScope calls the sandbox received so far (every attempt).
    pub fn vision_calls(&self) -> u64 {
        self.system.sandbox.stats().vision_calls
    }

    /// (remaining, held) credits of this app's user, read from membership's primary.
    pub async fn credits(&self) -> (i64, i64) {
        let pool = self.system.db.primary().await;
        let row: (i64, i64) = sqlx::query_as(
            "SELECT remaining_credits, held_credits FROM wechat_users WHERE openid = ?",
        )
        .bind(&self.openid)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        row
    }

    /// Ledger rows of this app's user.
    pub async fn ledger_rows(&self) -> i64 {
        self.system.snapshot(&self.openid).await.ledger_rows
    }

    /// Rows in the photo service's durable cache.
    pub async fn cached_rows(&self) -> i64 {
        let pool = self.system.photo_db().primary().await;
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM classification_cache")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count
    }
}

/// Asserts the cloud was wanted but skipped for `reason`, with nothing charged.
pub fn assert_skipped(body: &Value, reason: &str) {
    assert_eq!(body["cloud_skipped"]["reason"], reason, "{body}");
    assert!(body["cloud_skipped"]["message"].is_string(), "{body}");
    assert_eq!(body["credits_charged"], 0, "{body}");
    assert_ne!(body["source"], "model", "{body}");
}

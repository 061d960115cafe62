//! An app that edits photos, and what the tests look at: tasks, results, credits, holds.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::Value;

pub use crate::classify::support::{App, bind, bound_app};

/// A PNG whose pixels tell where they are, so a result can be checked pixel by pixel.
pub fn test_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// A photo within every model's sizes (wanx takes 512 to 4096 pixels per side).
pub fn photo() -> Vec<u8> {
    test_png(768, 512)
}

/// A JPEG of a landscape 800×600 picture, red in its stored top-left corner and blue elsewhere,
/// whose EXIF says "rotate 90° clockwise to display" (orientation 6, as phones write): shown, it
/// is a 600×800 portrait with red at the top right.
pub fn turned_phone_photo() -> Vec<u8> {
    let stored = image::RgbImage::from_fn(800, 600, |x, y| {
        if x < 160 && y < 160 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&stored)
        .unwrap();
    // APP1: "Exif\0\0", a big-endian TIFF header, one IFD with one entry: Orientation (0x0112),
    // SHORT, count 1, value 6; no next IFD.
    let mut app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    app1.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn file(bytes: Vec<u8>) -> Part {
    Part::bytes(bytes)
        .file_name("photo.png")
        .mime_str("image/png")
        .unwrap()
}

/// An edit form: the image, the function and the given text fields.
pub fn form(image: Vec<u8>, function: &str, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new()
        .part("image", file(image))
        .text("function", function.to_owned());
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    form
}

pub fn with_mask(form: Form, mask: Vec<u8>) -> Form {
    form.part("mask", file(mask))
}

impl App {
    pub async fn submit_edit(&self, form: Form) -> (u16, Value) {
        self.submit_edit_with_key(form, None).await
    }

    pub async fn submit_edit_with_key(&self, form: Form, key: Option<&str>) -> (u16, Value) {
        self.submit_edit_as(&self.token, form, key).await
    }

    pub async fn submit_edit_as(&self, token: &str, form: Form, key: Option<&str>) -> (u16, Value) {
        let (status, body, _) = self.submit_edit_traced(token, form, key).await;
        (status, body)
    }

    /// Submits and also returns the gateway's request id of the submission.
    pub async fn submit_edit_traced(
        &self,
        token: &str,
        form: Form,
        key: Option<&str>,
    ) -> (u16, Value, String) {
        let mut request = self
            .system
            .http
            .post(format!("{}/api/v1/photos/edit", self.system.gateway()))
            .bearer_auth(token)
            .multipart(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            request_id,
        )
    }

    /// Submits (expecting 202) and waits for the task's end; returns the ended task and the
    /// gateway's request id of the submission.
    pub async fn edit_to_end(&self, form: Form, within: Duration) -> (Value, String) {
        let (status, task, request_id) = self.submit_edit_traced(&self.token, form, None).await;
        assert_eq!(status, 202, "{task}");
        let task_id = task["task_id"].as_str().unwrap();
        (self.wait_for_edit(task_id, within).await, request_id)
    }

    /// Submits and expects 202; returns the task id.
    pub async fn edit(&self, form: Form) -> String {
        let (status, body) = self.submit_edit(form).await;
        assert_eq!(status, 202, "{body}");
        body["task_id"].as_str().unwrap().to_owned()
    }

    pub async fn edit_task_as(&self, token: &str, task_id: &str) -> (u16, Value) {
        let response = self
            .system
            .http
            .get(format!(
                "{}/api/v1/photos/edit/{task_id}",
                self.system.gateway()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls the task through the gateway until it has ended (succeeded or failed).
    pub async fn wait_for_edit(&self, task_id: &str, within: Duration) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (status, task) = self.edit_task_as(&self.token, task_id).await;
            // A photo instance that just restarted may not be reachable yet.
            assert!(status == 200 || status == 503, "{status}: {task}");
            if task["status"] == "succeeded" || task["status"] == "failed" {
                return task;
            }
            assert!(
                started.elapsed() < within,
                "edit {task_id} did not end: {task}"
            );
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Fetches a result URL (relative to the gateway) without any credentials.
    pub async fn fetch(&self, url: &str) -> (u16, Vec<u8>, String) {
        let response = reqwest::get(format!("{}{url}", self.system.gateway()))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            response.bytes().await.unwrap().to_vec(),
            content_type,
        )
    }

    /// Gives this app's user `amount` more credits (as an admin adjustment would).
    pub async fn grant(&self, amount: i64) {
        let user_id = self.system.user_id(&self.openid).await;
        self.system
            .credit_client()
            .grant(proto::membership::v1::GrantRequest {
                user_id,
                amount,
                reason: "admin_adjust".into(),
                reference: format!("test-grant-{}", uuid_like()),
                note: "test credits".into(),
                actor: "e2e".into(),
            })
            .await
            .unwrap();
    }

    /// (spend rows, their total) of the ledger for edits of this app's user.
    pub async fn edit_spending(&self) -> (i64, i64) {
        let pool = self.system.db.primary().await;
        let row: (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(-l.delta) AS SIGNED) FROM credit_ledger l \
             JOIN wechat_users u ON u.id = l.user_id WHERE u.openid = ? AND l.reference LIKE 'edit:%'",
        )
        .bind(&self.openid)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        (row.0, row.1.unwrap_or(0))
    }

    /// The status of the credit hold of a task (held, captured, released, expired).
    pub async fn hold_status(&self, task_id: &str) -> Option<String> {
        let pool = self.system.db.primary().await;
        let status =
            sqlx::query_scalar("SELECT CAST(status AS CHAR) FROM credit_holds WHERE reference = ?")
                .bind(format!("edit:{task_id}"))
                .fetch_optional(&pool)
                .await
                .unwrap();
        pool.close().await;
        status
    }

    /// Rows in the photo service's edit table.
    pub async fn edit_rows(&self) -> i64 {
        let pool = self.system.photo_db().primary().await;
        let count = sqlx::query_scalar("SELECT COUNT(*) FROM edit_tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count
    }

    /// The internal state of a task in the photo service's table.
    pub async fn edit_state(&self, task_id: &str) -> String {
        let pool = self.system.photo_db().primary().await;
        let status = sqlx::query_scalar("SELECT CAST(status AS CHAR) FROM edit_tasks WHERE id = ?")
            .bind(task_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        status
    }
}

fn uuid_like() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    hasher.finish()
}

/// Checks a result is the sandbox's edit of [`photo`]: same size, colours inverted.
pub fn assert_inverted_photo(bytes: &[u8]) {
    let result = image::load_from_memory(bytes).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), (768, 512));
    for (x, y) in [(0, 0), (100, 50), (767, 511)] {
        let expected = image::Rgb([255 - (x % 256) as u8, 255 - (y % 256) as u8, 127]);
        assert_eq!(*result.get_pixel(x, y), expected, "pixel {x},{y}");
    }
}

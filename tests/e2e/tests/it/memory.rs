//! Memory has a ceiling: every image decode of the photo service reserves its memory in one decode
//! budget, edit uploads larger than any model takes are refused from their header, the gateway
//! bounds the upload bytes it holds, and edit results are streamed, not held whole. The system runs
//! in this test's process, so the process's resident high-water mark (restarted before each burst)
//! bounds what the services held.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use e2e::Options;
use e2e::memory::{compact_png, mib, rise_during};
use e2e::photo::PhotoOptions;

use crate::classify::support::{App, bound_app, sha256_hex};
use crate::edit::support::{form, photo};

const MIB: u64 = 1024 * 1024;
/// What a burst may add beside the decodes: request bytes, buffers, the services' own work.
const SLACK: u64 = 64 * MIB;

/// A valid `side`×`side` RGBA PNG that compresses about a thousandfold (a flat picture):
/// 8000×8000 is some 250 KB, and 244 MiB of pixels decoded. `variant` changes one pixel, so
/// each variant is a different photo.
fn flat_png(side: u32, variant: u8) -> Vec<u8> {
    let mut image = image::RgbaImage::from_pixel(side, side, image::Rgba([90, 140, 200, 255]));
    image.put_pixel(0, 0, image::Rgba([variant, 0, 0, 255]));
    compact_png(&image)
}

/// Classifies with the local model; returns status, Retry-After and body.
async fn classify(app: &App, image: Vec<u8>) -> (u16, Option<String>, Value) {
    let form = Form::new()
        .part("image", Part::bytes(image).file_name("huge.png"))
        .text("mode", "local");
    let response = app
        .system
        .http
        .post(format!("{}/api/v1/photos/classify", app.system.gateway()))
        .bearer_auth(&app.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn three_edits_of_a_small_8000_pixel_png_are_refused_from_its_header() {
    let app = bound_app(Options::default(), "o_mem_edit_header").await;
    let png = flat_png(8000, 1);
    assert!(png.len() < 400 * 1024, "{} bytes", png.len());
    let credits = app.credits().await;
    let edits = (0..3).map(|seed| {
        let seed = seed.to_string();
        app.submit_edit(form(
            png.clone(),
            "description_edit",
            &[("prompt", "给小猫添加一副墨镜"), ("seed", &seed)],
        ))
    });
    let (answers, rise) = rise_during(futures::future::join_all(edits)).await;
    for (status, body) in &answers {
        assert_eq!(*status, 422, "{body}");
        assert_eq!(body["error"]["code"], "image_dimensions", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("8000×8000"),
            "{body}"
        );
    }
    assert!(
        rise < SLACK,
        "memory rose by {:.0} MiB: the pixels were decoded",
        mib(rise)
    );
    assert_eq!(app.edit_rows().await, 0, "no task for a refused edit");
    assert_eq!(app.credits().await, credits, "nothing held or charged");
    // The service is up and takes a photo of a size the models take.
    let task = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "金箔艺术风格")],
        ))
        .await;
    let task = app.wait_for_edit(&task, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

#[tokio::test]
async fn a_burst_of_huge_photos_is_decoded_within_the_budget() {
    // One 6000×6000 RGBA photo (137 MiB of pixels, about 152 MiB to decode) fits, two do not.
    const BUDGET: u64 = 160 * MIB;
    let app = bound_app(
        Options {
            photo: PhotoOptions {
                decode_budget_bytes: Some(BUDGET),
                decode_budget_wait_ms: Some(0),
                // A 36-megapixel decode may take a while on a loaded machine.
                classify_timeout_ms: Some(60_000),
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_mem_classify_burst",
    )
    .await;
    let images: Vec<Vec<u8>> = (1..=3).map(|variant| flat_png(6000, variant)).collect();
    let burst = images.iter().map(|png| classify(&app, png.clone()));
    let (answers, rise) = rise_during(futures::future::join_all(burst)).await;
    assert!(
        rise <= BUDGET + SLACK,
        "memory rose by {:.0} MiB, over the {} MiB budget and {} MiB of slack",
        mib(rise),
        BUDGET / MIB,
        SLACK / MIB
    );
    let mut refused = Vec::new();
    for ((status, retry_after, body), png) in answers.iter().zip(&images) {
        match status {
            200 => assert_eq!(body["sha256"], sha256_hex(png), "{body}"),
            503 => {
                assert_eq!(body["error"]["code"], "decode_busy", "{body}");
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused.push(png.clone());
            }
            _ => panic!("{status}: {body}"),
        }
    }
    assert!(refused.len() < images.len(), "one decode fits the budget");
    // A refused photo left nothing behind, and classifies when the budget is free again.
    for png in refused {
        let (_, lookup) = app.lookup(&[sha256_hex(&png)]).await;
        assert_eq!(lookup["results"][0]["found"], false, "{lookup}");
        let (status, _, body) = classify(&app, png).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn an_edit_photo_needing_more_than_the_whole_budget_is_refused_and_holds_nothing() {
    let app = bound_app(
        Options {
            photo: PhotoOptions {
                // The least allowed; a 4096×4096 RGBA photo needs 64 MiB of pixels and more.
                decode_budget_bytes: Some(64 * MIB),
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_mem_edit_budget",
    )
    .await;
    let large = compact_png(&image::RgbaImage::from_pixel(
        4096,
        4096,
        image::Rgba([10, 20, 30, 255]),
    ));
    let credits = app.credits().await;
    let (status, body) = app
        .submit_edit(form(
            large,
            "stylization_all",
            &[("prompt", "金箔艺术风格")],
        ))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("MiB"),
        "{body}"
    );
    assert_eq!(app.edit_rows().await, 0);
    assert_eq!(app.credits().await, credits);
    let task = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "金箔艺术风格")],
        ))
        .await;
    assert_eq!(app.edit_rows().await, 1, "{task}");
}

/// An HTTP/1.1 request whose chunked body is sent a piece at a time, on its own connection.
struct HeldUpload {
    stream: tokio::net::TcpStream,
}

impl HeldUpload {
    async fn start(gateway: &str, path: &str, token: &str, boundary: &str) -> Self {
        let addr = gateway.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        Self { stream }
    }

    async fn send(&mut self, data: &[u8]) {
        let chunk = [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
        self.stream.write_all(&chunk).await.unwrap();
    }

    /// Ends the body and reads the answer: its status and body.
    async fn finish(mut self) -> (u16, String) {
        self.stream.write_all(b"0\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer[9..12].parse().unwrap();
        (status, answer)
    }
}

#[tokio::test]
async fn photo_uploads_past_the_in_flight_budget_are_refused_before_reaching_a_service() {
    // As much as one batch may take: a batch upload without a length reserves all of it.
    let budget = gateway::config::GatewayConfig::defaults()
        .unwrap()
        .batch_upload_body();
    let app = bound_app(
        Options {
            photo: PhotoOptions {
                uploads_in_flight_bytes: Some(budget),
                upload_wait_ms: Some(100),
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_mem_uploads",
    )
    .await;
    let boundary = "xintu-held-upload";
    let mut held = HeldUpload::start(
        app.system.gateway(),
        "/api/v1/photos/classify/batch",
        &app.token,
        boundary,
    )
    .await;
    held.send(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"mode\"\r\n\r\nlocal\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"images\"; \
             filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    // Until the held upload has its reservation, a form without an image is refused as such
    // (400, before any photo work); from then on it waits and is refused as busy.
    let mut probes = 0;
    let busy = loop {
        let (status, body) = app
            .post_form("/api/v1/photos/classify", Form::new().text("mode", "local"))
            .await;
        if status == 503 {
            break body;
        }
        assert_eq!(body["error"]["code"], "missing_image", "{status}: {body}");
        probes += 1;
        assert!(probes < 200, "the held upload never took the budget");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(busy["error"]["code"], "uploads_busy", "{busy}");

    let credits = app.credits().await;
    let request = || {
        app.system
            .http
            .post(format!("{}/api/v1/photos/edit", app.system.gateway()))
            .bearer_auth(&app.token)
            .multipart(form(
                photo(),
                "stylization_all",
                &[("prompt", "金箔艺术风格")],
            ))
    };
    let refused = request().send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uploads_busy", "{body}");
    assert_eq!(
        app.edit_rows().await,
        0,
        "nothing reached the photo service"
    );
    assert_eq!(app.credits().await, credits, "nothing held");

    // The held upload completes and is answered; then the refused edit goes through.
    held.send(&photo()).await;
    held.send(format!("\r\n--{boundary}--\r\n").as_bytes())
        .await;
    let (status, answer) = held.finish().await;
    assert_eq!(status, 200, "{answer}");
    let accepted = request().send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(app.edit_rows().await, 1);
}

#[tokio::test]
async fn edit_results_are_streamed_through_byte_for_byte_and_never_held_whole() {
    let app = bound_app(Options::default(), "o_mem_download").await;
    let (task, _) = app
        .edit_to_end(
            form(photo(), "stylization_all", &[("prompt", "金箔艺术风格")]),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let url = task["results"][0]["url"].as_str().unwrap().to_owned();
    // The stored result made as large as results may be (32 MiB), of bytes that do not compress.
    let task_id = task["task_id"].as_str().unwrap();
    let path = e2e::photo::edit_storage_dir(app.system.photo_db())
        .join(format!("edits/{task_id}/result-0.png"));
    assert!(path.exists(), "{}", path.display());
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let big: Vec<u8> = (0..32 * MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, &big).unwrap();
    let expected = sha256_hex(&big);
    drop(big);

    let download = |url: String| {
        let http = app.system.http.clone();
        let gateway = app.system.gateway().to_owned();
        async move {
            let mut response = http.get(format!("{gateway}{url}")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let headers = response.headers().clone();
            let mut digest = sha2::Sha256::new();
            let mut len = 0u64;
            while let Some(chunk) = response.chunk().await.unwrap() {
                digest.update(&chunk);
                len += chunk.len() as u64;
            }
            (headers, len, hex::encode(digest.finalize()))
        }
    };
    let (downloads, rise) = rise_during(futures::future::join_all(
        (0..4).map(|_| download(url.clone())),
    ))
    .await;
    for (headers, len, sha) in downloads {
        assert_eq!(len, 32 * MIB);
        assert_eq!(sha, expected, "byte for byte");
        assert_eq!(headers["content-length"], (32 * MIB).to_string());
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(headers["cache-control"], "private, max-age=3600");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    assert!(
        rise < 24 * MIB,
        "four downloads of a 32 MiB result raised memory by {:.0} MiB",
        mib(rise)
    );
}

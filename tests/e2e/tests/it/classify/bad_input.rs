//! Bad uploads: each gets a clear error (or, in a batch, its own error), and no credit moves.

use e2e::Options;
use e2e::photo::PhotoOptions;
use reqwest::multipart::Form;

use super::support::{bind, bound_app, photo};

/// A PNG signature and header claiming `width`×`height` RGB, then nothing (a decompression bomb).
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 2, b'I', b'D', b'A', b'T', 0x78, 0x9c, 0, 0, 0, 0]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What is sent, the mode, and the status and error code expected.
struct BadUpload {
    what: &'static str,
    bytes: Vec<u8>,
    mode: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn bad(what: &'static str, bytes: Vec<u8>, status: u16, code: &'static str) -> BadUpload {
    BadUpload {
        what,
        bytes,
        mode: None,
        status,
        code,
    }
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_cost_nothing() {
    let app = bound_app(Options::default(), "o_bad_input").await;
    let rocket = photo("rocket.jpg");
    let cases = [
        bad(
            "text",
            b"definitely not a photo".to_vec(),
            422,
            "not_an_image",
        ),
        bad(
            "truncated jpeg",
            rocket[..rocket.len() / 2].to_vec(),
            422,
            "truncated_image",
        ),
        bad(
            "bomb 100000x100000",
            png_bomb(100_000, 100_000),
            422,
            "image_too_large",
        ),
        bad(
            "bomb 9000x9000",
            png_bomb(9000, 9000),
            422,
            "truncated_image",
        ),
        bad("empty", Vec::new(), 400, "empty_image"),
        BadUpload {
            mode: Some("turbo"),
            ..bad("unknown mode", rocket.clone(), 400, "invalid_mode")
        },
        // One byte over the 10 MiB cap.
        bad(
            "over the cap",
            vec![0xFF; 10 * 1024 * 1024 + 1],
            413,
            "payload_too_large",
        ),
    ];
    for case in cases {
        let what = case.what;
        let (got, body) = app.classify(case.bytes, case.mode).await;
        assert_eq!(got, case.status, "{what}: {body}");
        assert_eq!(body["error"]["code"], case.code, "{what}: {body}");
        assert!(body["error"]["request_id"].is_string(), "{what}: {body}");
    }

    let (status, body) = app
        .post_form("/api/v1/photos/classify", Form::new().text("mode", "auto"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "missing_image");
    let not_multipart = app
        .system
        .http
        .post(format!("{}/api/v1/photos/classify", app.system.gateway()))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({ "image": "base64?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), 400);
    let body: serde_json::Value = not_multipart.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_multipart");

    assert_eq!(app.vision_calls(), 0);
    assert_eq!(app.credits().await, (10, 0));
    assert_eq!(
        app.cached_rows().await,
        0,
        "nothing was stored for bad input"
    );
}

#[tokio::test]
async fn a_batch_answers_each_image_and_refuses_bad_shapes() {
    let app = bound_app(Options::default(), "o_batch").await;
    let (status, body) = app
        .batch(
            vec![
                ("coffee.png", photo("coffee.png")),
                ("notes.txt", b"hello".to_vec()),
                ("chelsea.png", photo("chelsea.png")),
            ],
            Some("local"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[0]["filename"], "coffee.png");
    assert_eq!(results[0]["classification"]["category"], "food");
    assert!(results[0]["error"].is_null());
    assert_eq!(results[1]["filename"], "notes.txt");
    assert_eq!(results[1]["error"]["code"], "not_an_image");
    assert!(results[1]["classification"].is_null());
    assert_eq!(results[2]["classification"]["category"], "animal");
    assert_eq!(body["credits_charged"], 0);

    // A form with no image part (a form with no part at all is no valid multipart body).
    let (status, body) = app.batch(vec![], Some("auto")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "empty_batch");
    let many = (0..21)
        .map(|_| ("coffee.png", photo("coffee.png")))
        .collect();
    let (status, body) = app.batch(many, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "too_many_images");
    let (status, body) = app
        .batch(
            vec![("coffee.png", photo("coffee.png"))],
            Some("everything"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_mode");
    assert_eq!(app.credits().await, (10, 0));
}

#[tokio::test]
async fn callers_must_be_bound_and_within_their_rate() {
    let app = bound_app(
        Options {
            photo: PhotoOptions {
                photos_per_client_per_minute: 3,
                lookups_per_client_per_minute: 1,
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_rate",
    )
    .await;
    let url = format!("{}/api/v1/photos/classify", app.system.gateway());
    let form = || {
        Form::new().part(
            "image",
            reqwest::multipart::Part::bytes(photo("coffee.png")),
        )
    };
    let anonymous = app
        .system
        .http
        .post(&url)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A client that never completed binding has no user to charge.
    let unbound = app.system.create_qrcode("pc-unbound").await;
    let response = app
        .system
        .http
        .post(&url)
        .bearer_auth(unbound.client_token.as_str())
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "client_not_bound");

    // Three photos a minute: a batch of two and one more pass, the next is refused. (The same
    // photo throughout: one quick inference, so all four fall well inside the 20 s in which the
    // limiter gives back one photo.)
    let (status, body) = app
        .batch(
            vec![("a", photo("coffee.png")), ("b", photo("coffee.png"))],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.classify(photo("coffee.png"), None).await.0, 200);
    let (status, body) = app.classify(photo("coffee.png"), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Lookups have an allowance of their own (one a minute here).
    let digest = super::support::sha256_hex(&photo("coffee.png"));
    let (status, body) = app.lookup(std::slice::from_ref(&digest)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.lookup(&[digest]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another client of another user has its own allowance.
    let other = bind(&app.system, "pc-other", "o_rate_other").await;
    let response = app
        .system
        .http
        .post(&url)
        .bearer_auth(other)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The contract is documented.
    let doc: serde_json::Value = app
        .system
        .http
        .get(format!("{}/api/v1/openapi.json", app.system.gateway()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/photos/classify",
        "/api/v1/photos/classify/batch",
        "/api/v1/photos/lookup",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path}");
    }
}

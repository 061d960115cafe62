//! The sandbox's DashScope image editing, driven over HTTP as the photo service drives it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::{ImageFormat, RgbImage};
use reqwest::StatusCode;
use sandbox::{EditFaults, EditSettings, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const SUBMIT: &str = "/api/v1/services/aigc/image2image/image-synthesis";
const GENERATE: &str = "/api/v1/services/aigc/multimodal-generation/generation";

struct Harness {
    sandbox: Sandbox,
    http: reqwest::Client,
    key: String,
}

/// A sandbox with the given settings; limits are lifted unless the test is about them.
async fn start(settings: EditSettings) -> Harness {
    let sandbox = Sandbox::start_local(SandboxConfig::default())
        .await
        .unwrap();
    sandbox.set_edit_settings(settings);
    let key = sandbox.config().dashscope_api_key.clone();
    Harness {
        sandbox,
        http: reqwest::Client::new(),
        key,
    }
}

fn unlimited() -> EditSettings {
    EditSettings {
        submits_per_second: 100,
        max_in_flight: 100,
        ..EditSettings::default()
    }
}

/// A gradient, so that inverted colours can be checked pixel by pixel.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

fn data_uri(image: &RgbImage) -> String {
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, ImageFormat::Png).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(png.into_inner());
    format!("data:image/png;base64,{data}")
}

fn wanx(function: &str, base: &str, n: u32) -> Value {
    json!({
        "model": "wanx2.1-imageedit",
        "input": { "function": function, "prompt": "转换成法国绘本风格", "base_image_url": base },
        "parameters": { "n": n },
    })
}

fn qwen<S: AsRef<str>>(model: &str, images: &[S], text: &str) -> Value {
    let mut content: Vec<Value> = images
        .iter()
        .map(|image| json!({ "image": image.as_ref() }))
        .collect();
    content.push(json!({ "text": text }));
    json!({
        "model": model,
        "input": { "messages": [{ "role": "user", "content": content }] },
        "parameters": { "negative_prompt": " ", "watermark": false, "seed": 42 },
    })
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.url())
    }

    /// Posts `body` to a control endpoint of the sandbox, as another process would.
    async fn control(&self, path: &str, body: &Value) -> StatusCode {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn submit(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(SUBMIT))
            .bearer_auth(&self.key)
            .header("X-DashScope-Async", "enable")
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Submits and returns the task id, asserting the PENDING answer.
    async fn submit_ok(&self, body: &Value) -> String {
        let (status, answer) = self.submit(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["output"]["task_status"], "PENDING");
        answer["output"]["task_id"].as_str().unwrap().to_owned()
    }

    async fn poll(&self, task_id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/tasks/{task_id}")))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls until the task leaves PENDING and RUNNING (within 5 s).
    async fn finished(&self, task_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = self.poll(task_id).await;
            let status = answer["output"]["task_status"].as_str().unwrap().to_owned();
            if status != "PENDING" && status != "RUNNING" {
                return answer;
            }
            assert!(Instant::now() < deadline, "task still {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn generate(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(GENERATE))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn download(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }
}

/// Asserts a native error body: exactly request_id, code and message.
fn assert_native_error(answer: &Value, code: &str) {
    let fields: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["code", "message", "request_id"], "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}

/// A 400 `InvalidParameter` whose message names `expected`.
fn assert_invalid_parameter(status: StatusCode, answer: &Value, expected: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_native_error(answer, "InvalidParameter");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "{expected:?} not in {message:?}"
    );
}

/// Downloads a result and asserts it is `input` with its colours inverted.
async fn assert_inverted(harness: &Harness, url: &str, input: &RgbImage) {
    let response = harness.download(url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let bytes = response.bytes().await.unwrap();
    let result = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(result.dimensions(), input.dimensions());
    for (got, sent) in result.pixels().zip(input.pixels()) {
        assert_eq!(got.0, sent.0.map(|c| 255 - c));
    }
}

#[tokio::test]
async fn task_goes_pending_running_succeeded_with_an_inverted_png() {
    let harness = start(EditSettings {
        pending_ms: 500,
        running_ms: 500,
        ..EditSettings::default()
    })
    .await;
    // wanx takes sides of 512 to 4096 pixels.
    let input = picture(768, 512);
    let body = wanx("stylization_all", &data_uri(&input), 1);
    let task_id = harness.submit_ok(&body).await;

    // Poll far more often than the states change, keeping the first answer of each state.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen
        .last()
        .is_none_or(|last| last["output"]["task_status"] != "SUCCEEDED")
    {
        assert!(Instant::now() < deadline, "{seen:?}");
        let answer = harness.poll(&task_id).await;
        if seen
            .last()
            .is_none_or(|last| last["output"]["task_status"] != answer["output"]["task_status"])
        {
            seen.push(answer);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let states: Vec<&Value> = seen.iter().map(|a| &a["output"]["task_status"]).collect();
    assert_eq!(states, ["PENDING", "RUNNING", "SUCCEEDED"]);
    let [pending, running, done] = seen.as_slice() else {
        unreachable!()
    };
    assert_eq!(pending["output"]["task_id"], task_id.as_str());
    // "2025-02-21 17:56:31.786"
    assert_eq!(pending["output"]["submit_time"].as_str().unwrap().len(), 23);
    assert!(pending["output"].get("scheduled_time").is_none());
    assert!(running["output"]["scheduled_time"].is_string());
    assert!(running["output"].get("results").is_none());

    let output = &done["output"];
    assert_eq!(output["task_status"], "SUCCEEDED", "{done}");
    assert!(output["end_time"].is_string());
    assert_eq!(
        output["task_metrics"],
        json!({ "TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0 })
    );
    assert_eq!(done["usage"], json!({ "image_count": 1 }));
    let url = output["results"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/_sandbox/edit-results/", harness.sandbox.url())));
    assert!(url.ends_with(".png"));
    assert_inverted(&harness, url, &input).await;

    let stats = harness.sandbox.edit_stats();
    assert_eq!(
        (stats.submits, stats.tasks_succeeded, stats.results_served),
        (1, 1, 1)
    );
    assert_eq!((stats.in_flight, stats.max_in_flight), (0, 1));
    assert!(stats.polls >= 3);
}

#[tokio::test]
async fn result_urls_expire() {
    let harness = start(unlimited()).await;
    let task_id = harness
        .submit_ok(&wanx("colorization", &data_uri(&picture(512, 512)), 2))
        .await;
    let done = harness.finished(&task_id).await;
    let url = done["output"]["results"][1]["url"].as_str().unwrap();
    assert_eq!(harness.download(url).await.status(), StatusCode::OK);

    harness.sandbox.expire_edit_results();
    let expired = harness.download(url).await;
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    let xml = expired.text().await.unwrap();
    assert!(xml.contains("<Code>AccessDenied</Code>"), "{xml}");
    assert!(
        xml.contains("<Message>Request has expired.</Message>"),
        "{xml}"
    );

    // The time-to-live, set over the control API as another process would.
    let settings = json!({ "result_ttl_ms": 300, "sync_delay_ms": 0 });
    assert_eq!(
        harness
            .control("/_sandbox/dashscope/edit/settings", &settings)
            .await,
        StatusCode::NO_CONTENT
    );
    let image = data_uri(&picture(400, 300));
    let (status, answer) = harness
        .generate(&qwen("qwen-image-edit", &[&image], "去除图像中的文字"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let url = answer["output"]["choices"][0]["message"]["content"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(harness.download(url).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(harness.download(url).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(harness.sandbox.edit_stats().results_served, 2);
}

#[tokio::test]
async fn submit_without_the_async_header_is_refused() {
    let harness = start(unlimited()).await;
    let response = harness
        .http
        .post(harness.url(SUBMIT))
        .bearer_auth(&harness.key)
        .json(&wanx("expand", &data_uri(&picture(512, 512)), 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let answer: Value = response.json().await.unwrap();
    assert_native_error(&answer, "AccessDenied");
    assert_eq!(
        answer["message"],
        "current user api does not support synchronous calls"
    );
    assert_eq!(harness.sandbox.edit_stats().rejected, 1);
}

#[tokio::test]
async fn a_wrong_key_is_refused_everywhere() {
    let harness = start(unlimited()).await;
    let image = data_uri(&picture(512, 512));
    let wrong = harness
        .http
        .post(harness.url(SUBMIT))
        .bearer_auth("sk-wrong");
    let submit = wrong
        .header("X-DashScope-Async", "enable")
        .json(&wanx("expand", &image, 1));
    let poll = harness
        .http
        .get(harness.url("/api/v1/tasks/x"))
        .bearer_auth("sk-wrong");
    let generate = harness.http.post(harness.url(GENERATE)).json(&qwen(
        "qwen-image-edit",
        &[&image],
        "换背景",
    ));
    for request in [submit, poll, generate] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let answer: Value = response.json().await.unwrap();
        assert_native_error(&answer, "InvalidApiKey");
        assert_eq!(answer["message"], "Invalid API-key provided.");
    }
}

#[tokio::test]
async fn invalid_submissions_are_invalid_parameter() {
    let harness = start(unlimited()).await;
    let base = data_uri(&picture(768, 512));
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = wanx("description_edit", &base, 1);
        edit(&mut body);
        body
    };
    let mask_for = |image: &RgbImage| {
        let mask = data_uri(image);
        move |body: &mut Value| {
            body["input"]["function"] = "description_edit_with_mask".into();
            body["input"]["mask_image_url"] = mask.clone().into();
        }
    };
    let bmp = format!(
        "data:image/bmp;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b"BM\0\0\0\0\0\0\0\0")
    );
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| b["model"] = "wanx-v1".into()), "Model not exist"),
        (
            with(&|b| b["input"]["function"] = "sharpen".into()),
            "input.function",
        ),
        (with(&|b| b["input"]["prompt"] = "".into()), "input.prompt"),
        (
            with(&|b| b["input"]["base_image_url"] = "https://x/a.png".into()),
            "data:image",
        ),
        (
            with(&|b| b["input"]["base_image_url"] = "data:image/png;base64,AAAA".into()),
            "not recognised",
        ),
        (
            with(&|b| b["input"]["base_image_url"] = bmp.clone().into()),
            "BMP",
        ),
        (
            wanx("description_edit", &data_uri(&picture(511, 600)), 1),
            "511x600",
        ),
        (
            wanx("description_edit", &data_uri(&picture(600, 4097)), 1),
            "600x4097",
        ),
        (
            with(&|b| b["input"]["function"] = "description_edit_with_mask".into()),
            "mask_image_url is required",
        ),
        (with(&mask_for(&picture(320, 240))), "320x240"),
        (with(&|b| b["parameters"]["n"] = 0.into()), "parameters.n"),
        (with(&|b| b["parameters"]["n"] = 5.into()), "parameters.n"),
    ];
    let count = cases.len() as u64;
    for (body, expected) in cases {
        let (status, answer) = harness.submit(&body).await;
        assert_invalid_parameter(status, &answer, expected);
    }
    // A mask of the right size is fine.
    harness
        .submit_ok(&with(&mask_for(&picture(768, 512))))
        .await;
    let stats = harness.sandbox.edit_stats();
    assert_eq!((stats.rejected, stats.submits), (count, 1));
}

#[tokio::test]
async fn two_submissions_per_second_then_429() {
    let harness = start(EditSettings {
        max_in_flight: 100,
        ..EditSettings::default()
    })
    .await;
    let body = wanx("super_resolution", &data_uri(&picture(512, 512)), 1);
    let started = Instant::now();
    harness.submit_ok(&body).await;
    // The first submission was counted before this instant.
    let first_counted = Instant::now();
    harness.submit_ok(&body).await;
    let (status, answer) = harness.submit(&body).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "too slow to test"
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_native_error(&answer, "Throttling.RateQuota");
    assert_eq!(
        answer["message"],
        "Requests rate limit exceeded, please try again later."
    );
    // The window slides: a second after the first submission there is room again.
    tokio::time::sleep_until((first_counted + Duration::from_millis(1050)).into()).await;
    harness.submit_ok(&body).await;
    let stats = harness.sandbox.edit_stats();
    assert_eq!((stats.submits, stats.throttled), (3, 1));
}

#[tokio::test]
async fn at_most_two_tasks_in_flight() {
    let harness = start(EditSettings {
        submits_per_second: 100,
        // Long enough that both tasks are surely still in flight at the third submission.
        pending_ms: 1500,
        running_ms: 500,
        ..EditSettings::default()
    })
    .await;
    let body = wanx("doodle", &data_uri(&picture(512, 512)), 1);
    let first = harness.submit_ok(&body).await;
    harness.submit_ok(&body).await;
    let (status, answer) = harness.submit(&body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_native_error(&answer, "Throttling.AllocationQuota");
    assert_eq!(
        answer["message"],
        "Too many tasks in progress, please try again later."
    );
    harness.finished(&first).await;
    harness.submit_ok(&body).await;
    let stats = harness.sandbox.edit_stats();
    assert_eq!((stats.max_in_flight, stats.throttled), (2, 1));
}

#[tokio::test]
async fn submission_faults() {
    let harness = start(unlimited()).await;
    harness.sandbox.set_edit_faults(EditFaults {
        submit_rate_limited: 1,
        submit_moderation: 1,
        ..EditFaults::default()
    });
    let body = wanx("stylization_local", &data_uri(&picture(512, 512)), 1);
    let (status, answer) = harness.submit(&body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_native_error(&answer, "Throttling.RateQuota");
    let (status, answer) = harness.submit(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_native_error(&answer, "DataInspectionFailed");
    assert_eq!(
        answer["message"],
        "Input data may contain inappropriate content."
    );
    harness.submit_ok(&body).await;
    let stats = harness.sandbox.edit_stats();
    assert_eq!((stats.throttled, stats.rejected, stats.submits), (1, 1, 1));
}

#[tokio::test]
async fn task_faults() {
    let harness = start(unlimited()).await;
    harness.sandbox.set_edit_faults(EditFaults {
        fail_tasks: 1,
        moderate_tasks: 1,
        stuck_tasks: 1,
        partial_tasks: 1,
        ..EditFaults::default()
    });
    let base = data_uri(&picture(512, 512));
    let failed = harness.submit_ok(&wanx("expand", &base, 1)).await;
    let moderated = harness.submit_ok(&wanx("expand", &base, 1)).await;
    let stuck = harness.submit_ok(&wanx("expand", &base, 1)).await;
    // A single image cannot fail partly: the fault waits for a task with n > 1.
    let whole = harness.submit_ok(&wanx("expand", &base, 1)).await;
    let partial = harness.submit_ok(&wanx("expand", &base, 3)).await;

    for (task, code) in [
        (&failed, "InternalError.Algo"),
        (&moderated, "DataInspectionFailed"),
    ] {
        let done = harness.finished(task).await;
        assert_eq!(done["output"]["task_status"], "FAILED", "{done}");
        assert_eq!(done["output"]["code"], code);
        assert!(done["output"]["message"].is_string());
        assert!(done["output"].get("results").is_none() && done.get("usage").is_none());
    }
    let done = harness.finished(&whole).await;
    assert_eq!(done["usage"]["image_count"], 1, "{done}");
    let done = harness.finished(&partial).await;
    let output = &done["output"];
    assert_eq!(output["task_status"], "SUCCEEDED", "{done}");
    assert_eq!(
        output["task_metrics"],
        json!({ "TOTAL": 3, "SUCCEEDED": 2, "FAILED": 1 })
    );
    assert_eq!(done["usage"]["image_count"], 2);
    let results = output["results"].as_array().unwrap();
    assert_eq!(results.iter().filter(|r| r["url"].is_string()).count(), 2);
    assert!(results.iter().any(|r| r["code"] == "InternalError.Algo"));

    // The stuck task stays RUNNING, and in flight, long after the others ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = harness.poll(&stuck).await;
    assert_eq!(still["output"]["task_status"], "RUNNING", "{still}");
    let stats = harness.sandbox.edit_stats();
    assert_eq!(
        (stats.in_flight, stats.tasks_failed, stats.tasks_succeeded),
        (1, 2, 2)
    );
}

#[tokio::test]
async fn an_unknown_task_is_unknown() {
    let harness = start(unlimited()).await;
    let answer = harness.poll("0385dc79-5ff8-4d82-bcb6-5cb9bbb2a0c8").await;
    assert_eq!(answer["output"]["task_status"], "UNKNOWN");
    assert_eq!(
        answer["output"]["task_id"],
        "0385dc79-5ff8-4d82-bcb6-5cb9bbb2a0c8"
    );
    assert_eq!(harness.sandbox.edit_stats().polls, 1);
}

#[tokio::test]
async fn sync_edit_answers_with_an_inverted_png() {
    let harness = start(EditSettings {
        sync_delay_ms: 200,
        ..EditSettings::default()
    })
    .await;
    let input = picture(640, 480);
    let image = data_uri(&input);
    let started = Instant::now();
    let (status, answer) = harness
        .generate(&qwen("qwen-image-edit", &[&image], "将背景更改为海滩"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let choice = &answer["output"]["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        answer["usage"],
        json!({ "width": 640, "height": 480, "image_count": 1 })
    );
    let url = choice["message"]["content"][0]["image"].as_str().unwrap();
    assert_inverted(&harness, url, &input).await;

    // The plus model takes several images and makes several results.
    let second = data_uri(&picture(300, 300));
    let mut body = qwen(
        "qwen-image-edit-plus",
        &[&image, &second],
        "图1的人站在图2前",
    );
    body["parameters"]["n"] = 2.into();
    let (status, answer) = harness.generate(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let content = answer["output"]["choices"][0]["message"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(answer["usage"]["image_count"], 2);
    assert_eq!(harness.sandbox.edit_stats().sync_calls, 2);
}

#[tokio::test]
async fn invalid_sync_edits_are_invalid_parameter() {
    let harness = start(unlimited()).await;
    let image = data_uri(&picture(400, 400));
    let base = qwen("qwen-image-edit", &[&image], "换背景");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = base.clone();
        edit(&mut body);
        body
    };
    let messages = "/input/messages";
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|b| b["model"] = "qwen-vl-max".into()),
            "Model not exist",
        ),
        (
            with(&|b| {
                let message = b["input"]["messages"][0].clone();
                *b.pointer_mut(messages).unwrap() = json!([message.clone(), message]);
            }),
            "exactly one user message",
        ),
        (
            qwen::<&str>("qwen-image-edit", &[], "换背景"),
            "1 to 3 image parts",
        ),
        (
            qwen("qwen-image-edit-plus", &[&image; 4], "换背景"),
            "1 to 3 image parts",
        ),
        (qwen("qwen-image-edit", &[&image], " "), "must not be empty"),
        (
            with(&|b| b["input"]["messages"][0]["content"] = json!([{ "image": image }])),
            "exactly one text part",
        ),
        (with(&|b| b["parameters"]["n"] = 2.into()), "parameters.n"),
        (
            with(&|b| {
                b["model"] = "qwen-image-edit-plus".into();
                b["parameters"]["n"] = 7.into();
            }),
            "parameters.n",
        ),
        (
            qwen(
                "qwen-image-edit",
                &[&data_uri(&picture(200, 300))],
                "换背景",
            ),
            "200x300",
        ),
        (
            qwen("qwen-image-edit", &["https://x/a.png"], "换背景"),
            "data:image",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = harness.generate(&body).await;
        assert_invalid_parameter(status, &answer, expected);
    }
}

#[tokio::test]
async fn sync_edit_faults_set_over_http() {
    let harness = start(unlimited()).await;
    let faults = json!({ "sync_rate_limited": 1, "sync_server_errors": 1, "sync_moderation": 1 });
    assert_eq!(
        harness
            .control("/_sandbox/dashscope/edit/faults", &faults)
            .await,
        StatusCode::NO_CONTENT
    );
    let image = data_uri(&picture(400, 400));
    let body = qwen("qwen-image-edit", &[&image], "修复老照片");
    let expected = [
        (StatusCode::TOO_MANY_REQUESTS, "Throttling.RateQuota"),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        (StatusCode::BAD_REQUEST, "DataInspectionFailed"),
    ];
    for (status, code) in expected {
        let (got, answer) = harness.generate(&body).await;
        assert_eq!(got, status, "{answer}");
        assert_native_error(&answer, code);
    }
    let (status, answer) = harness.generate(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let stats: Value = harness
        .http
        .get(harness.url("/_sandbox/dashscope/edit/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["sync_calls"], 4);
    assert_eq!(
        (&stats["throttled"], &stats["rejected"]),
        (&json!(1), &json!(1))
    );
}

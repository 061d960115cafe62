//! Image-edit throughput and overhead through the gateway (a command, not a test): the whole
//! system in-process against the real MariaDB + Redis of `deploy/local/xintu infra-up`, the
//! sandbox playing Bailian with no delay of its own and limits high enough not to queue.
//! Reports:
//! - submissions accepted per second (multipart in, decode and checks, image stored, task row,
//!   credits held through membership, 202 out);
//! - the end-to-end time of one task (submit → provider → result stored → credits taken →
//!   `succeeded` seen by a client polling every 10 ms), one at a time: the overhead we add;
//! - the same for a free-text (synchronous) edit.
//!
//!   eval "$(deploy/local/xintu env)"
//!   cargo run --release -p e2e --bin edit-bench -- [submissions] [concurrency] [tasks]

#![allow(clippy::expect_used, clippy::print_stdout, clippy::unwrap_used)] // a CLI report

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};

use e2e::bench::{Report, measure};
use e2e::photo::PhotoOptions;
use e2e::{Options, System};

fn photo() -> Vec<u8> {
    let image = image::RgbImage::from_fn(768, 512, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

fn form(image: &[u8], function: &str, seed: usize) -> Form {
    Form::new()
        .part("image", Part::bytes(image.to_vec()).file_name("photo.png"))
        .text("function", function.to_owned())
        .text("prompt", "转换成法国绘本风格")
        .text("seed", seed.to_string())
}

async fn submit(http: &reqwest::Client, url: &str, token: &str, form: Form) -> Option<String> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .ok()?;
    if response.status() != 202 {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    body["task_id"].as_str().map(str::to_owned)
}

async fn wait(http: &reqwest::Client, gateway: &str, token: &str, task_id: &str) -> bool {
    loop {
        let body: serde_json::Value = http
            .get(format!("{gateway}/api/v1/photos/edit/{task_id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match body["status"].as_str() {
            Some("succeeded") => return true,
            Some("failed") => return false,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Runs `tasks` edits one after the other and times each from submit to `succeeded`.
async fn end_to_end(
    name: &'static str,
    system: &System,
    token: &str,
    function: &str,
    tasks: usize,
    first_seed: usize,
) -> Report {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/photos/edit", system.gateway());
    let image = photo();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let t = Instant::now();
        let task = submit(&http, &url, token, form(&image, function, first_seed + i))
            .await
            .expect("submit");
        assert!(
            wait(&http, system.gateway(), token, &task).await,
            "{name}: task {task} failed"
        );
        latencies.push(t.elapsed());
    }
    Report {
        name,
        requests: tasks,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let args = e2e::bench::numeric_args();
    let submissions = args.first().copied().unwrap_or(500);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let tasks = args.get(2).copied().unwrap_or(50);
    println!(
        "xintu edit benchmark: {submissions} submissions ({concurrency} in flight), {tasks} tasks end to end"
    );
    let system = System::start(Options {
        photo: PhotoOptions {
            photos_per_client_per_minute: u32::MAX,
            edit_poll_ms: 20,
            ..PhotoOptions::default()
        },
        ..Options::default()
    })
    .await;
    system.sandbox.set_edit_settings(sandbox::EditSettings {
        pending_ms: 0,
        running_ms: 0,
        sync_delay_ms: 0,
        submits_per_second: 100_000,
        max_in_flight: 100_000,
        ..sandbox::EditSettings::default()
    });
    let token = system.bind_client("bench-editor", "o_bench_edit").await;
    let user_id = system.user_id("o_bench_edit").await;
    system
        .credit_client()
        .grant(proto::membership::v1::GrantRequest {
            user_id,
            amount: (submissions + 2 * tasks) as i64,
            reason: "admin_adjust".into(),
            reference: "edit-bench".into(),
            note: "test credits".into(),
            actor: "e2e".into(),
        })
        .await
        .unwrap();

    let mut e2e_wanx = end_to_end(
        "edit end to end, wanx (async)",
        &system,
        &token,
        "stylization_all",
        tasks,
        1_000_000,
    )
    .await;
    let mut e2e_free = end_to_end(
        "edit end to end, free text (sync)",
        &system,
        &token,
        "free_text",
        tasks,
        2_000_000,
    )
    .await;

    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/photos/edit", system.gateway());
    let image = photo();
    let mut accepted = measure(
        "edit submissions accepted (202)",
        submissions,
        concurrency,
        |i| {
            let (http, url, token, image) = (&http, &url, &token, &image);
            async move {
                submit(http, url, token, form(image, "stylization_all", i))
                    .await
                    .is_some()
            }
        },
    )
    .await;

    for report in [&mut accepted, &mut e2e_wanx, &mut e2e_free] {
        report.print();
    }
    let stats = system.sandbox.edit_stats();
    println!(
        "sandbox: {} submits, {} sync edits, {} polls",
        stats.submits, stats.sync_calls, stats.polls
    );
}

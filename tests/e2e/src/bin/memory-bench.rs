//! Peak memory of the gateway and the photo service under a burst of worst-case images (a
//! command, not a test). The two run as their own processes (the release binaries), so their
//! resident high-water marks (VmHWM) are theirs alone; membership, stats and the sandbox run
//! in-process here as in the tests, against the real MariaDB + Redis of `deploy/local/xintu
//! infra-up`. The burst, all at once with `concurrency` requests in flight:
//! - classifications (local model) of valid 8000×8000 RGBA PNGs of about 250 KB (244 MiB of
//!   pixels each);
//! - classifications (auto: local, then the cloud model when unsure) of noise JPEGs at the
//!   10 MiB upload cap;
//! - batches of 20 noise JPEGs of 2 MB (the 40 MiB batch cap);
//! - edits of 4096×4096 RGBA PNGs (the largest the models take) and of the 8000×8000 PNG
//!   (refused from its header).
//!
//! Reports, per process, the resident memory idle and the peak during the burst, and per kind
//! how many requests were served, refused as busy, or refused otherwise.
//!
//!   eval "$(deploy/local/xintu env)"
//!   cargo build --release -p gateway -p photo-svc
//!   cargo run --release -p e2e --bin memory-bench -- [rounds] [concurrency]

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::unwrap_used
)] // a CLI report: it stops loudly

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;

use e2e::memory::{Process, compact_png, mib};
use e2e::photo::PhotoOptions;
use e2e::{Options, System};

const MIB: usize = 1024 * 1024;

fn huge_png(variant: u32) -> Vec<u8> {
    let mut image = image::RgbaImage::from_pixel(8000, 8000, image::Rgba([90, 140, 200, 255]));
    image.put_pixel(
        0,
        0,
        image::Rgba([(variant % 256) as u8, (variant / 256) as u8, 0, 255]),
    );
    compact_png(&image)
}

fn edit_png(variant: u32) -> Vec<u8> {
    let mut image = image::RgbaImage::from_pixel(4096, 4096, image::Rgba([30, 90, 60, 255]));
    image.put_pixel(
        0,
        0,
        image::Rgba([(variant % 256) as u8, (variant / 256) as u8, 0, 255]),
    );
    compact_png(&image)
}

/// A JPEG of noise (which does not compress) of at most `bytes` and close to it, at quality 95.
fn noise_jpeg(bytes: usize, seed: u64) -> Vec<u8> {
    let mut bytes_per_pixel = 2.4;
    loop {
        let pixels = bytes as f64 / bytes_per_pixel;
        let width = (pixels * 4.0 / 3.0).sqrt() as u32;
        let jpeg = noise_jpeg_of(width, (f64::from(width) * 0.75) as u32, seed);
        if jpeg.len() <= bytes {
            return jpeg;
        }
        bytes_per_pixel *= jpeg.len() as f64 / bytes as f64 * 1.02;
    }
}

fn noise_jpeg_of(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let image =
        image::RgbImage::from_fn(width, height, |_, _| image::Rgb([next(), next(), next()]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(&image)
        .unwrap();
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A release binary beside this one.
fn binary(name: &str) -> std::path::PathBuf {
    let path = std::env::current_exe().unwrap().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p gateway -p photo-svc",
        path.display()
    );
    path
}

struct Child2(Child);

impl Drop for Child2 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_serving(http: &reqwest::Client, url: &str, child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{url}: the process exited"
        );
        if let Ok(response) = http.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never answered");
}

#[derive(Clone, Copy)]
enum Kind {
    HugePngLocal,
    JpegAtCapAuto,
    BatchAtCap,
    EditLargest,
    EditHugePng,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::HugePngLocal => "classify 8000x8000 PNG (local)",
            Self::JpegAtCapAuto => "classify 10 MiB JPEG (auto)",
            Self::BatchAtCap => "batch of 20 x 2 MB JPEGs",
            Self::EditLargest => "edit 4096x4096 PNG",
            Self::EditHugePng => "edit 8000x8000 PNG",
        }
    }
}

#[tokio::main]
async fn main() {
    let args = e2e::bench::numeric_args();
    let rounds = args.first().copied().unwrap_or(3);
    let concurrency = args.get(1).copied().unwrap_or(16);

    let system = System::start(Options {
        request_logging: false,
        photo: PhotoOptions {
            photos_per_client_per_minute: 1_000_000,
            ..PhotoOptions::default()
        },
        ..Options::default()
    })
    .await;
    // The sandbox's own limits out of the way: edits are submitted as fast as they come.
    system.sandbox.set_edit_settings(sandbox::EditSettings {
        submits_per_second: 1000,
        max_in_flight: 1000,
        ..sandbox::EditSettings::default()
    });
    let token = system
        .bind_client("pc-memory-bench", "o_memory_bench")
        .await;
    let user_id = system.user_id("o_memory_bench").await;
    system
        .credit_client()
        .grant(proto::membership::v1::GrantRequest {
            user_id,
            amount: 100_000,
            reason: "admin_adjust".into(),
            reference: format!("memory-bench-{}", std::process::id()),
            note: "memory bench".into(),
            actor: "bench".into(),
        })
        .await
        .unwrap();

    let prefix = format!("xintu-memory-bench-{}", std::process::id());
    let storage = std::env::temp_dir().join(&prefix);
    let photo_port = free_port();
    let sandbox = system.sandbox.config().clone();
    let photo = Command::new(binary("photo-svc"))
        .arg("serve")
        .env("PHOTO_LISTEN_ADDR", format!("127.0.0.1:{photo_port}"))
        .env(
            "DATABASE_URL",
            system.photo_db().primary_url.expose_secret(),
        )
        .env(
            "DATABASE_REPLICA_URL",
            system.photo_db().replica_url.expose_secret(),
        )
        .env("REDIS_URL", platform::testing::redis_url().expose_secret())
        .env("REDIS_KEY_PREFIX", &prefix)
        .env("MEMBERSHIP_GRPC_URL", system.membership_urls.join(","))
        .env("DASHSCOPE_API_KEY", &sandbox.dashscope_api_key)
        .env("DASHSCOPE_BASE_URL", system.sandbox.url())
        .env("DASHSCOPE_MAX_CALLS_PER_SECOND", "1000")
        .env("EDIT_STORAGE_DIR", &storage)
        .env("EDIT_WANX_MAX_IN_FLIGHT", "1000")
        .env("EDIT_WANX_SUBMITS_PER_WINDOW", "1000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let gateway_port = free_port();
    let mut gateway = Command::new(binary("gateway"))
        .arg("serve")
        .env("GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gateway_port}"))
        .env("MEMBERSHIP_GRPC_URL", system.membership_urls.join(","))
        .env("PHOTO_GRPC_URL", format!("http://127.0.0.1:{photo_port}"))
        .env("STATS_GRPC_URL", system.stats.url())
        .env("REQUEST_LOGGING", "false")
        .env("REDIS_URL", platform::testing::redis_url().expose_secret())
        .env("REDIS_KEY_PREFIX", &prefix)
        .env("WECHAT_APPID", &sandbox.appid)
        .env("WECHAT_TOKEN", &sandbox.push_token)
        .env("PHOTOS_PER_CLIENT_PER_MINUTE", "1000000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{gateway_port}");
    wait_until_serving(&http, &format!("{base}/readyz"), &mut gateway).await;
    let (gateway_proc, photo_proc) = (Process::Pid(gateway.id()), Process::Pid(photo.id()));
    let (gateway, photo) = (Child2(gateway), Child2(photo));

    println!("preparing the images ...");
    let jpeg_at_cap = noise_jpeg(10 * MIB - 64 * 1024, 7);
    let batch_jpegs: Vec<Vec<u8>> = (0..20)
        .map(|i| noise_jpeg(2 * MIB - 16 * 1024, i + 11))
        .collect();
    let mut requests = Vec::new();
    for round in 0..rounds as u32 {
        requests.push((Kind::HugePngLocal, vec![huge_png(round + 1)], round));
        requests.push((Kind::JpegAtCapAuto, vec![jpeg_at_cap.clone()], round));
        requests.push((Kind::BatchAtCap, batch_jpegs.clone(), round));
        requests.push((Kind::EditLargest, vec![edit_png(round + 1)], round));
        requests.push((Kind::EditHugePng, vec![huge_png(1000 + round)], round));
    }
    println!(
        "8000x8000 PNG {} KB, JPEG at the cap {:.1} MiB, batch {:.1} MiB, 4096x4096 PNG {} KB",
        huge_png(0).len() / 1024,
        jpeg_at_cap.len() as f64 / MIB as f64,
        batch_jpegs.iter().map(Vec::len).sum::<usize>() as f64 / MIB as f64,
        edit_png(0).len() / 1024
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = (
        gateway_proc.resident().unwrap(),
        photo_proc.resident().unwrap(),
    );
    let started = (gateway_proc.peak().unwrap(), photo_proc.peak().unwrap());
    gateway_proc.restart_peak().unwrap();
    photo_proc.restart_peak().unwrap();

    let outcomes: Arc<Mutex<BTreeMap<&'static str, BTreeMap<String, usize>>>> = Arc::default();
    let began = Instant::now();
    futures::stream::iter(requests)
        .map(|(kind, images, round)| {
            let (http, base, token, outcomes) =
                (http.clone(), base.clone(), token.clone(), outcomes.clone());
            async move {
                let (path, form) = match kind {
                    Kind::HugePngLocal | Kind::JpegAtCapAuto => (
                        "/api/v1/photos/classify",
                        Form::new()
                            .part("image", Part::bytes(images[0].clone()).file_name("a"))
                            .text(
                                "mode",
                                if matches!(kind, Kind::HugePngLocal) {
                                    "local"
                                } else {
                                    "auto"
                                },
                            ),
                    ),
                    Kind::BatchAtCap => (
                        "/api/v1/photos/classify/batch",
                        images
                            .iter()
                            .fold(Form::new().text("mode", "local"), |form, image| {
                                form.part("images", Part::bytes(image.clone()).file_name("b"))
                            }),
                    ),
                    Kind::EditLargest | Kind::EditHugePng => (
                        "/api/v1/photos/edit",
                        Form::new()
                            .part("image", Part::bytes(images[0].clone()).file_name("e.png"))
                            .text("function", "stylization_all")
                            .text("prompt", "金箔艺术风格")
                            .text("seed", round.to_string()),
                    ),
                };
                let outcome = match http
                    .post(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .multipart(form)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: serde_json::Value =
                            response.json().await.unwrap_or(serde_json::Value::Null);
                        match body["error"]["code"].as_str() {
                            Some(code) => format!("{status} {code}"),
                            None => status.to_string(),
                        }
                    }
                    Err(err) => format!("failed: {err}"),
                };
                *outcomes
                    .lock()
                    .unwrap()
                    .entry(kind.name())
                    .or_default()
                    .entry(outcome)
                    .or_default() += 1;
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    let elapsed = began.elapsed();
    let peak = (gateway_proc.peak().unwrap(), photo_proc.peak().unwrap());

    println!("\nburst of {rounds} rounds, {concurrency} in flight, {elapsed:.1?}:");
    for (kind, counts) in outcomes.lock().unwrap().iter() {
        let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n}x {k}")).collect();
        println!("  {kind:<32} {}", counts.join(", "));
    }
    println!(
        "\n{:<10} {:>12} {:>16} {:>14}",
        "process", "idle RSS", "peak at start", "burst peak"
    );
    for (name, idle, started, peak) in [
        ("gateway", idle.0, started.0, peak.0),
        ("photo", idle.1, started.1, peak.1),
    ] {
        println!(
            "{name:<10} {:>8.0} MiB {:>12.0} MiB {:>10.0} MiB",
            mib(idle),
            mib(started),
            mib(peak)
        );
    }
    drop((gateway, photo));
    let _ = std::fs::remove_dir_all(storage);
}

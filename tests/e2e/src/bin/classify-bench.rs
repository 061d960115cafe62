//! Classification throughput through the gateway (a command, not a test): the whole system runs
//! in-process against the real MariaDB + Redis of `deploy/local/xintu infra-up`, with the sandbox
//! as WeChat and DashScope. Reports requests/s and p50/p99 for:
//! - classify, cache hits: the same photo uploaded again and again (multipart in, SHA-256, one
//!   Redis read, JSON out);
//! - lookup, cache hits: 100 digests per request;
//! - classify, local model: distinct images (each one a cache miss and one local inference).
//!
//!   eval "$(deploy/local/xintu env)"
//!   cargo run --release -p e2e --bin classify-bench -- [requests] [concurrency]

#![allow(clippy::expect_used, clippy::print_stdout, clippy::unwrap_used)] // a CLI report

use reqwest::multipart::{Form, Part};
use sha2::Digest as _;

use e2e::bench::measure;
use e2e::photo::PhotoOptions;
use e2e::{Options, System};

fn photo(name: &str) -> Vec<u8> {
    photo_model::data_dir::sample_photo(name).expect("a sample photo")
}

/// A PNG of `seed`'s own colour: distinct bytes, so a guaranteed cache miss.
fn distinct_png(seed: usize) -> Vec<u8> {
    let pixel = image::Rgb([(seed % 251) as u8, (seed / 251 % 251) as u8, 97]);
    let picture = image::RgbImage::from_fn(320, 240, |x, y| {
        if (x / 16 + y / 16) % 2 == 0 {
            pixel
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

async fn classify(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    image: Vec<u8>,
    mode: &str,
) -> bool {
    let form = Form::new()
        .part("image", Part::bytes(image).file_name("photo"))
        .text("mode", mode.to_owned());
    http.post(url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::main]
async fn main() {
    let args = e2e::bench::numeric_args();
    let requests = args.first().copied().unwrap_or(5000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    println!(
        "xintu classification benchmark: {requests} requests per scenario, {concurrency} in flight"
    );
    let system = System::start(Options {
        photo: PhotoOptions {
            photos_per_client_per_minute: u32::MAX,
            lookups_per_client_per_minute: u32::MAX,
            ..PhotoOptions::default()
        },
        ..Options::default()
    })
    .await;
    let token = system
        .bind_client("bench-classifier", "o_bench_classify")
        .await;
    let http = reqwest::Client::new();
    let classify_url = format!("{}/api/v1/photos/classify", system.gateway());
    let lookup_url = format!("{}/api/v1/photos/lookup", system.gateway());

    // Warm the cache with every sample photo (the first upload runs the local model).
    let names = [
        "coffee.png",
        "chelsea.png",
        "motorcycle_left.png",
        "rocket.jpg",
        "page.png",
    ];
    let photos: Vec<Vec<u8>> = names.iter().map(|name| photo(name)).collect();
    for bytes in &photos {
        assert!(classify(&http, &classify_url, &token, bytes.clone(), "local").await);
    }
    let sizes: Vec<String> = photos
        .iter()
        .map(|p| format!("{} KB", p.len() / 1024))
        .collect();
    println!("sample photos: {}", sizes.join(", "));

    let mut hits = measure("classify, cache hit", requests, concurrency, |i| {
        let (http, url, token) = (&http, &classify_url, &token);
        let image = photos[i % photos.len()].clone();
        async move { classify(http, url, token, image, "local").await }
    })
    .await;

    let digests: Vec<String> = (0..100)
        .map(|i| hex::encode(sha2::Sha256::digest(&photos[i % photos.len()])))
        .collect();
    let mut lookups = measure(
        "lookup, 100 digests, all hits",
        requests / 5,
        concurrency,
        |_| {
            let (http, url, token, digests) = (&http, &lookup_url, &token, &digests);
            async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "sha256": digests }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        },
    )
    .await;

    let misses = (requests / 50).max(20);
    let mut local = measure("classify, local model (misses)", misses, concurrency, |i| {
        let (http, url, token) = (&http, &classify_url, &token);
        let image = distinct_png(i);
        async move { classify(http, url, token, image, "local").await }
    })
    .await;

    for report in [&mut hits, &mut lookups, &mut local] {
        report.print();
    }
    assert_eq!(
        system.sandbox.stats().vision_calls,
        0,
        "local mode never calls the cloud"
    );
}

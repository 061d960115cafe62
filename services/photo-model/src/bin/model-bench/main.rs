//! `cargo run --release -p photo-model --features bench --bin model-bench`: local model latency
//! per photo (p50/p95) with 1 and 2 threads, and decode + resize time of a 12-megapixel JPEG.
//! Each thread count runs in a child process with RAYON_NUM_THREADS set, because the rayon pool
//! is sized once per process.
//! `--json FILE` saves the figures for `deploy/local/bench_torch.py`, which runs the same model
//! in PyTorch on the same photos and prints the ratios.

mod decode_bench;
mod model_runs;
mod stats;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;
use photo_model::data_dir::{self, TESTDATA_DIR};

/// The test photos from deploy/local/fetch-model.sh.
const PHOTOS: [&str; 5] = [
    "coffee.png",
    "chelsea.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "astronaut.png",
];

#[derive(Parser)]
#[command(about = "Benchmarks the local photo model")]
struct Args {
    /// Timed runs per photo and thread count.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// Timed runs of the 12 MP decode.
    #[arg(long, default_value_t = 10)]
    decode_iterations: usize,
    /// Also write the figures to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run the model part in this process and print JSON.
    #[arg(long, hide = true)]
    worker: bool,
}

fn read_photos() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let dir = data_dir::data_dir().join(TESTDATA_DIR);
    PHOTOS
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "{} is missing: run deploy/local/fetch-model.sh",
                    path.display()
                )
            })?;
            Ok(((*name).to_owned(), bytes))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let photos = read_photos()?;
    let model_path = data_dir::default_model_path();
    if args.worker {
        let report = model_runs::run(&model_path, &photos, args.iterations)?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }

    let mut model_reports = Vec::new();
    for threads in &args.threads {
        let output = Command::new(std::env::current_exe()?)
            .args(["--worker", "--iterations", &args.iterations.to_string()])
            .env("RAYON_NUM_THREADS", threads.to_string())
            .output()?;
        if !output.status.success() {
            bail!("worker failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        print_model_report(&report);
        model_reports.push(report);
    }

    let jpeg_path = data_dir::data_dir().join("bench/photo-12mp.jpg");
    let source = photos
        .iter()
        .find(|(name, _)| name == "chelsea.png")
        .map(|(_, bytes)| bytes.as_slice())
        .context("chelsea.png not loaded")?;
    let jpeg = decode_bench::make_12mp_jpeg(source, &jpeg_path)?;
    let decode_report = decode_bench::run(&jpeg, &jpeg_path, args.decode_iterations)?;
    println!(
        "\n12 MP JPEG {}x{} ({:.1} MB, {})",
        decode_report.width,
        decode_report.height,
        decode_report.bytes as f64 / 1e6,
        decode_report.path
    );
    println!(
        "  decode + resize to 1024   {}  (photo_model::decode)",
        decode_report.decode_and_resize
    );
    println!(
        "  decode to model input     {}",
        decode_report.decode_to_model_input
    );
    println!(
        "  same, without DCT scaling {}",
        decode_report.full_decode_and_resize
    );
    println!(
        "  full decode only          {}",
        decode_report.full_decode_only
    );
    println!(
        "  resize fast_image_resize  {}",
        decode_report.resize_fast_image_resize
    );
    println!(
        "  resize image::thumbnail   {}",
        decode_report.resize_image_thumbnail
    );

    if let Some(path) = args.json {
        let all = serde_json::json!({ "model": model_reports, "decode_12mp": decode_report });
        std::fs::write(&path, serde_json::to_string_pretty(&all)?)?;
        println!("\nfigures written to {}", path.display());
    }
    Ok(())
}

fn print_model_report(report: &serde_json::Value) {
    let latency = |key: &str| {
        let l = &report[key];
        format!(
            "p50 {:7.2} ms  p95 {:7.2} ms  mean {:7.2} ms  (n={})",
            l["p50_ms"].as_f64().unwrap_or(f64::NAN),
            l["p95_ms"].as_f64().unwrap_or(f64::NAN),
            l["mean_ms"].as_f64().unwrap_or(f64::NAN),
            l["samples"]
        )
    };
    println!(
        "\nthreads={}  (model load {:.1} ms)",
        report["threads"],
        report["load_ms"].as_f64().unwrap_or(f64::NAN)
    );
    println!("  forward pass   {}", latency("forward"));
    println!("  classify       {}", latency("classify"));
    for image in report["images"].as_array().into_iter().flatten() {
        println!(
            "  {:20} top-1 {:18} {:.3}  -> {:9} sure={:5}  forward p50 {:.2} ms",
            image["image"].as_str().unwrap_or("?"),
            image["top1"].as_str().unwrap_or("?"),
            image["top1_score"].as_f64().unwrap_or(f64::NAN),
            image["category"].as_str().unwrap_or("?"),
            image["sure"],
            image["forward"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

//! `cargo run --release -p location --bin location-bench -- DIR [POINTS] [ROUNDS]`: location
//! lookups per second on one thread over two fixed sets of points: a mix as an album's photos are (Chinese cities, points
//! scattered over China, the rest of the world, the sea) and travel abroad (around the quality
//! table's sights, where the city rule does its work), on the data
//! `deploy/local/fetch-geodata.sh` prepared in DIR (`~/.cache/xintu/data/geo` by default there);
//! with the load time and the memory the data takes. POINTS (20 000) is the size of each set,
//! ROUNDS (5) the times each set is looked up. It allocates as the photo service does (mimalloc),
//! since a lookup's answer is a handful of new strings.

#![allow(clippy::print_stdout)] // a command-line report

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use location::Locator;
use location::coordinate::Wgs84;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: location-bench DIR [POINTS] [ROUNDS]";

struct Args {
    geodata_dir: PathBuf,
    points: usize,
    rounds: usize,
}

impl Args {
    fn parse() -> Option<Self> {
        let mut args = std::env::args().skip(1);
        let geodata_dir = PathBuf::from(args.next()?);
        let mut count = |default| args.next().map_or(Some(default), |arg| arg.parse().ok());
        let points = count(20_000)?;
        let rounds = count(5)?;
        Some(Self {
            geodata_dir,
            points,
            rounds,
        })
    }
}

/// Well-known places, most of them in China, as an album's photos are.
const LANDMARKS: &[(f64, f64)] = &[
    (39.9087, 116.3975), // 天安门
    (31.2380, 121.4860), // 外滩
    (30.2437, 120.1410), // 西湖
    (23.1064, 113.3245), // 广州塔
    (30.6598, 104.0633), // 成都
    (22.2819, 114.1582), // 香港中环
    (35.6896, 139.6917), // 东京
    (48.8530, 2.3499),   // 巴黎
    (40.6892, -74.0445), // 纽约
    (30.0, -150.0),      // 太平洋
];

/// A small deterministic generator (64-bit LCG), so every run measures the same points.
struct Lcg(u64);

impl Lcg {
    fn next_unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_unit()
    }
}

/// 40% near landmarks (photos cluster), 40% anywhere over China's box, 20% anywhere on Earth.
fn mixed_points(count: usize) -> Vec<Wgs84> {
    let mut random = Lcg(0x5eed_2026);
    (0..count)
        .filter_map(|i| {
            let (lat, lng) = match i % 5 {
                0 | 1 => {
                    let (lat, lng) = LANDMARKS[i % LANDMARKS.len()];
                    (
                        lat + random.between(-0.05, 0.05),
                        lng + random.between(-0.05, 0.05),
                    )
                }
                2 | 3 => (random.between(18.0, 53.0), random.between(74.0, 134.0)),
                _ => (random.between(-60.0, 70.0), random.between(-180.0, 180.0)),
            };
            Wgs84::parse(lat, lng).ok()
        })
        .collect()
}

/// Points within about 10 km of the quality table's sights (services/photo/tests/it).
fn travel_points(count: usize) -> Vec<Wgs84> {
    let sights: Vec<(f64, f64)> = include_str!("../../../photo/tests/it/location-quality.tsv")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect();
    let mut random = Lcg(0x7_2a7e1);
    (0..count)
        .filter_map(|i| {
            let (lat, lng) = sights[i % sights.len()];
            Wgs84::parse(
                lat + random.between(-0.1, 0.1),
                lng + random.between(-0.1, 0.1),
            )
            .ok()
        })
        .collect()
}

/// This process's resident memory in KiB (Linux), 0 where unknown.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let Some(args) = Args::parse() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let dir = args.geodata_dir;
    let rss_before = rss_kib();
    let started = Instant::now();
    let locator = match location::geodata::load(&dir) {
        Ok(locator) => locator,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let load_time = started.elapsed();
    println!(
        "geodata: {} (loaded in {:.2} s, {} MiB resident)",
        dir.display(),
        load_time.as_secs_f64(),
        rss_kib().saturating_sub(rss_before) / 1024
    );
    for (set, points) in [
        ("mixed", mixed_points(args.points)),
        ("travel", travel_points(args.points)),
    ] {
        // One warm-up round, then the measured ones.
        let found = run(&locator, &points).0;
        let mut elapsed = Duration::ZERO;
        for _ in 0..args.rounds {
            elapsed += run(&locator, &points).1;
        }
        let lookups = points.len() * args.rounds;
        let per_second = lookups as f64 / elapsed.as_secs_f64();
        println!(
            "{lookups} lookups of {} {set} points ({found} placed, {} at sea) on one thread: \
             {per_second:.0} lookups/s, {:.1} µs each",
            points.len(),
            points.len() - found,
            elapsed.as_secs_f64() * 1e6 / lookups as f64,
        );
    }
    ExitCode::SUCCESS
}

fn run(locator: &Locator, points: &[Wgs84]) -> (usize, Duration) {
    let started = Instant::now();
    let found = points
        .iter()
        .filter(|point| std::hint::black_box(locator.locate(**point)).is_some())
        .count();
    (found, started.elapsed())
}

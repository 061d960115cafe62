//! A decode never holds more memory at once than `Probe::decode_peak_bytes` says, the figure the
//! photo service reserves in its decode budget before decoding: measured on real decodes of
//! each format, as the rise of the process's resident high-water mark (restarted before each
//! decode). One test in a binary of its own, so nothing else runs in the process meanwhile.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)] // a test binary

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use photo_upload::{DecodeLimits, decode, probe};

const MIB: f64 = 1024.0 * 1024.0;

fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap();
    line.trim()
        .strip_suffix("kB")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

fn rgb(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    }))
}

fn rgba(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgba8(RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x % 251) as u8, (y % 241) as u8, 90, 200])
    }))
}

#[test]
fn decodes_stay_within_their_estimated_peak() {
    // Large enough that every big buffer is its own mapping (glibc maps blocks over 32 MiB at the
    // latest), given back when freed: the resident mark then sees each decode whole.
    let cases = [
        (
            "PNG RGB 5000x4000",
            encoded(rgb(5000, 4000), ImageFormat::Png),
        ),
        (
            "PNG RGBA 4000x3000",
            encoded(rgba(4000, 3000), ImageFormat::Png),
        ),
        (
            "PNG RGB 16-bit 3000x2000",
            encoded(
                DynamicImage::ImageRgb16(rgb(3000, 2000).into_rgb16()),
                ImageFormat::Png,
            ),
        ),
        (
            "JPEG 5000x4000",
            encoded(rgb(5000, 4000), ImageFormat::Jpeg),
        ),
        (
            "WebP lossless RGBA 4000x3000",
            encoded(rgba(4000, 3000), ImageFormat::WebP),
        ),
    ];
    let mut over = Vec::new();
    for (name, bytes) in &cases {
        // Test pictures compress less than photos: the byte cap is not what is measured.
        let roomy = DecodeLimits {
            max_bytes: 64 << 20,
            ..DecodeLimits::default()
        };
        let header = probe(bytes, &roomy).unwrap();
        let whole = header.width.max(header.height);
        for working_max_side in [1024, whole] {
            let limits = DecodeLimits {
                working_max_side,
                ..roomy.clone()
            };
            let estimate = header.decode_peak_bytes(working_max_side);
            let before = status_bytes("VmRSS");
            std::fs::write("/proc/self/clear_refs", "5").unwrap();
            let decoded = decode(bytes, &limits).unwrap();
            let rise = status_bytes("VmHWM").saturating_sub(before);
            drop(decoded);
            println!(
                "{name:<30} working {working_max_side:>5}: held {:>6.1} MiB, estimated {:>6.1} MiB",
                rise as f64 / MIB,
                estimate as f64 / MIB
            );
            if rise > estimate {
                over.push(format!("{name} at {working_max_side}"));
            }
        }
    }
    assert!(over.is_empty(), "decodes over their estimate: {over:?}");
}

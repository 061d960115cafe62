//! Decode + downscale time of a 12-megapixel JPEG, the size of a typical phone photo.
//!
//! The JPEG is made at bench time: a test photo upscaled to 4032×3024 with mild deterministic
//! noise added, so that it compresses like a real photo (a smooth upscale would be unrealistically
//! small and fast to decode).

use std::path::Path;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use photo_model::model::preprocess;
use photo_model::{DecodeLimits, decode};
use serde::Serialize;

use crate::stats::{Latency, time_runs};

pub const WIDTH: u32 = 4032;
pub const HEIGHT: u32 = 3024;

#[derive(Debug, Serialize)]
pub struct DecodeReport {
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
    /// `photo_model::decode`: limits, EXIF, full decode, downscale to the 1024 px working size.
    pub decode_and_resize: Latency,
    /// The same plus the model input (short side 256, centre crop 224, normalised tensor).
    pub decode_to_model_input: Latency,
    /// The same without the reduced-size JPEG path: image's full decode, then fast_image_resize.
    pub full_decode_and_resize: Latency,
    /// Parts, for where the time goes: image's full decode to RGB alone...
    pub full_decode_only: Latency,
    /// ...fast_image_resize from 12 MP to 1024 px (what `decode` uses)...
    pub resize_fast_image_resize: Latency,
    /// ...and image's own `thumbnail` for comparison.
    pub resize_image_thumbnail: Latency,
}

/// Builds the 12 MP JPEG from a smaller photo and writes it to `out` (for the PyTorch bench).
pub fn make_12mp_jpeg(source: &[u8], out: &Path) -> anyhow::Result<Vec<u8>> {
    let small = image::load_from_memory(source)?.into_rgb8();
    let mut big = RgbImage::new(WIDTH, HEIGHT);
    Resizer::new().resize(
        &small,
        &mut big,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom)),
    )?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for value in big.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state >> 60) as i16 - 8; // -8..=7
        *value = (i16::from(*value) + noise).clamp(0, 255) as u8;
    }
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&big)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, &bytes)?;
    Ok(bytes)
}

pub fn run(jpeg: &[u8], path: &Path, iterations: usize) -> anyhow::Result<DecodeReport> {
    let limits = DecodeLimits {
        max_bytes: 32 * 1024 * 1024,
        ..DecodeLimits::default()
    };
    let full_rgb = image::load_from_memory(jpeg)?.into_rgb8();
    let side = limits.working_max_side;
    let (tw, th) = (
        side,
        (f64::from(side) * f64::from(HEIGHT) / f64::from(WIDTH)).round() as u32,
    );

    decode(jpeg, &limits)?; // warm-up
    Ok(DecodeReport {
        path: path.display().to_string(),
        width: WIDTH,
        height: HEIGHT,
        bytes: jpeg.len(),
        decode_and_resize: Latency::of(&time_runs(iterations, || Ok(decode(jpeg, &limits)?))?),
        decode_to_model_input: Latency::of(&time_runs(iterations, || {
            let decoded = decode(jpeg, &limits)?;
            Ok(preprocess::image_to_input(&decoded.image)?)
        })?),
        full_decode_and_resize: Latency::of(&time_runs(iterations, || {
            let full = image::load_from_memory(jpeg)?.into_rgb8();
            let mut out = RgbImage::new(tw, th);
            Resizer::new().resize(
                &full,
                &mut out,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            )?;
            Ok(out)
        })?),
        full_decode_only: Latency::of(&time_runs(iterations, || {
            Ok(image::load_from_memory(jpeg)?.into_rgb8())
        })?),
        resize_fast_image_resize: Latency::of(&time_runs(iterations, || {
            let mut out = RgbImage::new(tw, th);
            Resizer::new().resize(
                &full_rgb,
                &mut out,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
            )?;
            Ok(out)
        })?),
        resize_image_thumbnail: Latency::of(&time_runs(iterations, || {
            Ok(image::imageops::thumbnail(&full_rgb, tw, th))
        })?),
    })
}

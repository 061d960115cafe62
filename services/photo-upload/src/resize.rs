//! Fast, antialiased downscaling (fast_image_resize: SIMD convolution, like PIL's bilinear filter).

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};

use crate::decode::DecodeError;

fn options() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
}

/// Scales down (never up) to fit in `max_side`×`max_side`, keeping the aspect, and converts to
/// RGB. The scaling is done in the decoder's own pixel format, so a photo that is not 8-bit RGB
/// (RGBA, grey, 16-bit) is never copied whole just to be converted; alpha is dropped, not
/// composited, as a conversion to RGB would.
pub fn fit_within(image: DynamicImage, max_side: u32) -> Result<RgbImage, DecodeError> {
    let (width, height) = (image.width(), image.height());
    let long_side = width.max(height);
    if long_side <= max_side {
        return Ok(image.into_rgb8());
    }
    let scale = f64::from(max_side) / f64::from(long_side);
    let target = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, max_side);
    let mut out = DynamicImage::new(target(width), target(height), image.color());
    Resizer::new()
        .resize(&image, &mut out, &options().use_alpha(false))
        .map_err(|err| DecodeError::Internal(format!("resize: {err}")))?;
    drop(image);
    Ok(out.into_rgb8())
}

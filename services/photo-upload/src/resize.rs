//! Fast, antialiased downscaling (fast_image_resize: SIMD convolution, like PIL's bilinear filter):
//! to the working size, and the local model's input crop (`photo-model`), which is here so that
//! fast_image_resize's convolutions (generic over pixel type, filter precision and SIMD level) are
//! compiled into one crate: compiled into the model's too, they were 71% of its code, and with
//! both crates optimised in every build, over a minute of a new machine's test build.

use fast_image_resize::{FilterType, ResizeAlg, ResizeError, ResizeOptions, Resizer};
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

/// Resizes so the short side becomes `short_side`, then cuts the centre `crop`×`crop` square,
/// in one pass: the crop is taken on the source, scaled by the same factor.
pub fn resize_short_side_center_crop(
    image: &RgbImage,
    short_side: u32,
    crop: u32,
) -> Result<RgbImage, ResizeError> {
    let (width, height) = image.dimensions();
    let scale = f64::from(short_side) / f64::from(width.min(height).max(1));
    let src_crop_w = (f64::from(crop) / scale).min(f64::from(width));
    let src_crop_h = (f64::from(crop) / scale).min(f64::from(height));
    let left = (f64::from(width) - src_crop_w) / 2.0;
    let top = (f64::from(height) - src_crop_h) / 2.0;
    let mut out = RgbImage::new(crop, crop);
    Resizer::new().resize(
        image,
        &mut out,
        &options().crop(left, top, src_crop_w, src_crop_h),
    )?;
    Ok(out)
}

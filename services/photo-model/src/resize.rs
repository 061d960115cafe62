//! The model's input crop: fast, antialiased resizing (fast_image_resize: SIMD convolution, like
//! PIL's bilinear filter; the filter of photo-upload's downscale to the working size too).

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

fn options() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
}

/// Resizes so the short side becomes `short_side`, then cuts the centre `crop`×`crop` square,
/// in one pass: the crop is taken on the source, scaled by the same factor.
pub fn resize_short_side_center_crop(
    image: &RgbImage,
    short_side: u32,
    crop: u32,
) -> Result<RgbImage, fast_image_resize::ResizeError> {
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

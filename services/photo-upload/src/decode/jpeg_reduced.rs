//! Large JPEGs decoded at reduced size in the DCT domain (1/2, 1/4 or 1/8 per side), which
//! skips most of the inverse DCT and colour conversion work of a full decode: a 12-megapixel
//! phone photo decodes about twice as fast at 1/4 as in full and then downscaled (see
//! model-bench). image's JPEG decoder (zune-jpeg) cannot scale, so this path uses jpeg-decoder.

use image::RgbImage;
use jpeg_decoder::{Decoder, PixelFormat};

/// The reduced image's long side may fall short of the working size by this fraction: the
/// power-of-two scales rarely hit it exactly (4032 px / 4 = 1008 for a 1024 working size), and
/// neither the model (short side 256) nor the cloud model (about 1024) can tell the difference.
const ACCEPTED_SHORTFALL: f64 = 1.0 / 8.0;

/// Tells whether a reduced decode can apply, i.e. the photo is at least twice the working size.
pub fn worth_trying(width: u32, height: u32, working_max_side: u32) -> bool {
    width.max(height) >= working_max_side.saturating_mul(2)
}

/// Decodes at the smallest DCT scale whose long side reaches the working size (less the accepted
/// shortfall). Returns `None` when this decoder cannot handle the file (e.g. CMYK, arithmetic
/// coding, or damage); the caller then falls back to a full decode, which reports errors.
pub fn decode_reduced(bytes: &[u8], working_max_side: u32, max_alloc: u64) -> Option<RgbImage> {
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_alloc).ok()?);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (width, height) = (f64::from(info.width), f64::from(info.height));
    let wanted_long_side = f64::from(working_max_side) * (1.0 - ACCEPTED_SHORTFALL);
    let factor = wanted_long_side / width.max(height);
    let request = |side: f64| (side * factor).ceil().clamp(1.0, f64::from(u16::MAX)) as u16;
    let (out_w, out_h) = decoder.scale(request(width), request(height)).ok()?;
    let pixels = decoder.decode().ok()?;
    let (out_w, out_h) = (u32::from(out_w), u32::from(out_h));
    match decoder.info()?.pixel_format {
        PixelFormat::RGB24 => RgbImage::from_raw(out_w, out_h, pixels),
        PixelFormat::L8 => RgbImage::from_raw(
            out_w,
            out_h,
            pixels.iter().flat_map(|&luma| [luma; 3]).collect(),
        ),
        PixelFormat::L16 | PixelFormat::CMYK32 => None,
    }
}

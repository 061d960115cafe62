//! Turns uploaded bytes into a bounded, upright RGB working image plus the metadata the rules need.
//!
//! Decoding is the first thing untrusted bytes meet, so every step is capped before it allocates:
//! the byte length, then the dimensions and decoded size read from the header, then `image::Limits`
//! on the decoder itself (with the `image` crate's default limits, a 65-byte PNG claiming
//! 9000×9000 makes the decoder allocate 243 MB before it notices the data is missing).

mod camera;
mod cost;
mod error;
mod gif_frame;
mod jpeg_end;
mod jpeg_reduced;
mod png_chunks;
mod webp_chunks;

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

pub use camera::CameraExif;
pub use cost::Probe;
pub use error::DecodeError;

use crate::resize;

/// The caps applied to one decode. Every number is configuration for the photo service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted upload, in bytes (the HTTP layers cap it too).
    pub max_bytes: usize,
    /// Largest accepted width, as stored in the file.
    pub max_width: u32,
    /// Largest accepted height, as stored in the file.
    pub max_height: u32,
    /// Largest buffer the decoder may allocate, in bytes.
    pub max_alloc: u64,
    /// The working image is scaled down to fit in this many pixels per side. 1024 suits both
    /// the local model (short side 256) and the cloud model (longest side about 1024).
    pub working_max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_width: 12_000,
            max_height: 12_000,
            // 256 MiB holds an 89-megapixel RGB photo.
            max_alloc: 256 * 1024 * 1024,
            working_max_side: 1024,
        }
    }
}

/// Image formats accepted from users, sniffed from the bytes (never from a file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl PhotoFormat {
    fn from_image_format(format: ImageFormat) -> Option<Self> {
        match format {
            ImageFormat::Jpeg => Some(Self::Jpeg),
            ImageFormat::Png => Some(Self::Png),
            ImageFormat::WebP => Some(Self::WebP),
            ImageFormat::Gif => Some(Self::Gif),
            _ => None,
        }
    }

    /// Returns the MIME type, e.g. for a data URI.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
        }
    }
}

/// What is known about the original file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    pub format: PhotoFormat,
    /// Width as displayed, i.e. after the EXIF orientation is applied.
    pub width: u32,
    /// Height as displayed, i.e. after the EXIF orientation is applied.
    pub height: u32,
    /// The EXIF orientation that was applied (1 = none).
    pub exif_orientation: u8,
    /// Camera make and model from EXIF, when the file has them.
    pub camera: Option<CameraExif>,
    pub byte_len: usize,
}

impl ImageMetadata {
    /// Tells whether EXIF names the camera (Make or Model); screenshots never do.
    pub fn has_camera_exif(&self) -> bool {
        self.camera.is_some()
    }
}

/// A decoded photo: its metadata and an upright RGB copy no larger than the working size.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub metadata: ImageMetadata,
    pub image: RgbImage,
}

/// Decodes a photo within `limits`: sniffs the format, refuses oversized input before any large
/// allocation, applies the EXIF orientation and scales the result down to the working size.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    let (decoder, header) = open(bytes, limits)?;
    let Header {
        probe,
        orientation,
        camera,
    } = header;
    let (format, width, height) = (probe.format, probe.width, probe.height);

    let reduced = (format == PhotoFormat::Jpeg
        && jpeg_reduced::worth_trying(width, height, limits.working_max_side))
    .then(|| jpeg_reduced::decode_reduced(bytes, limits.working_max_side, limits.max_alloc))
    .flatten();
    let decoded = match reduced {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(DecodeError::from_image)?,
    };
    let working = resize::fit_within(decoded, limits.working_max_side)?;
    // Rotating after the downscale touches far fewer pixels.
    let mut upright = DynamicImage::ImageRgb8(working);
    upright.apply_orientation(orientation);

    let (width, height) = if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    Ok(DecodedImage {
        metadata: ImageMetadata {
            format,
            width,
            height,
            exif_orientation: orientation.to_exif(),
            camera,
            byte_len: bytes.len(),
        },
        image: upright.into_rgb8(),
    })
}

/// Reads what the header of a photo says, within `limits` and without decoding any pixel: the
/// caller learns what decoding it would cost before it commits any memory to it. The same
/// checks as [`decode`] refuse the same inputs.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<Probe, DecodeError> {
    open(bytes, limits).map(|(_, header)| header.probe)
}

/// The header of a photo, read by [`open`].
struct Header {
    probe: Probe,
    orientation: Orientation,
    camera: Option<CameraExif>,
}

/// Checks the byte cap, sniffs the format, finds truncated JPEGs and reads the header, refusing
/// oversized images; returns the decoder, ready for the pixels, with its limits set.
fn open<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(impl ImageDecoder + 'a, Header), DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooManyBytes {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let format = sniff_format(bytes)?;
    if format == PhotoFormat::Jpeg && jpeg_end::jpeg_end(bytes) == jpeg_end::JpegEnd::Truncated {
        return Err(DecodeError::Truncated);
    }

    if format == PhotoFormat::Png && !png_chunks::palette_is_valid(bytes) {
        return Err(DecodeError::Corrupt(image::ImageError::Decoding(
            image::error::DecodingError::new(
                image::error::ImageFormatHint::Exact(ImageFormat::Png),
                "the PLTE chunk is not 1 to 256 whole RGB entries",
            ),
        )));
    }

    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(image_format(format));
    // Dimensions are checked by hand below so that the error can name them.
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(header_limits.clone());
    let mut decoder = reader.into_decoder().map_err(DecodeError::from_image)?;

    let (width, height) = decoder.dimensions();
    check_size(width, height, decoder.total_bytes(), bytes.len(), limits)?;
    // The decoders would size their buffers from the frame, not from the canvas checked above.
    let frame_fits = match format {
        PhotoFormat::WebP => webp_chunks::frames_fit_canvas(bytes, width, height),
        PhotoFormat::Gif => gif_frame::first_frame_fits(bytes),
        PhotoFormat::Jpeg | PhotoFormat::Png => true,
    };
    if !frame_fits {
        return Err(DecodeError::FrameLargerThanCanvas);
    }
    let mut decode_limits = header_limits;
    decode_limits.max_image_width = Some(limits.max_width);
    decode_limits.max_image_height = Some(limits.max_height);
    decoder
        .set_limits(decode_limits)
        .map_err(DecodeError::from_image)?;

    // Broken EXIF must not make a good photo undecodable: it then counts as absent.
    let exif = if format != PhotoFormat::WebP || webp_chunks::exif_is_safe_to_read(bytes) {
        decoder.exif_metadata().ok().flatten()
    } else {
        None
    };
    let orientation = exif
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let camera = exif.as_deref().and_then(CameraExif::from_exif_chunk);
    let probe = Probe {
        format,
        width,
        height,
        exif_orientation: orientation.to_exif(),
        decoded_bytes: decoder.total_bytes(),
        decoded_rgb8: decoder.color_type() == ColorType::Rgb8,
        progressive: format == PhotoFormat::Jpeg && jpeg_end::is_progressive(bytes),
    };
    Ok((
        decoder,
        Header {
            probe,
            orientation,
            camera,
        },
    ))
}

fn sniff_format(bytes: &[u8]) -> Result<PhotoFormat, DecodeError> {
    let format = image::guess_format(bytes).map_err(|_| DecodeError::NotAnImage)?;
    PhotoFormat::from_image_format(format).ok_or(DecodeError::UnsupportedFormat {
        format: format!("{format:?}").to_lowercase(),
    })
}

fn image_format(format: PhotoFormat) -> ImageFormat {
    match format {
        PhotoFormat::Jpeg => ImageFormat::Jpeg,
        PhotoFormat::Png => ImageFormat::Png,
        PhotoFormat::WebP => ImageFormat::WebP,
        PhotoFormat::Gif => ImageFormat::Gif,
    }
}

/// Above this decoded size a file must also be plausibly large for its pixel count.
const PLAUSIBILITY_CHECK_FROM_BYTES: u64 = 16 * 1024 * 1024;
/// No real photo packs more pixels than this into one byte of file; deflate's best ratio on
/// 1-bit PNG rows is about 8,256. Tiny files that claim more are truncated bombs.
const MAX_PIXELS_PER_FILE_BYTE: u64 = 8_192;

fn check_size(
    width: u32,
    height: u32,
    decoded_bytes: u64,
    file_len: usize,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    let too_large = DecodeError::TooLarge {
        width,
        height,
        max_width: limits.max_width,
        max_height: limits.max_height,
    };
    if width > limits.max_width || height > limits.max_height || decoded_bytes > limits.max_alloc {
        return Err(too_large);
    }
    let pixels = u64::from(width) * u64::from(height);
    let file_len = u64::try_from(file_len).unwrap_or(u64::MAX);
    if decoded_bytes > PLAUSIBILITY_CHECK_FROM_BYTES
        && pixels > file_len.saturating_mul(MAX_PIXELS_PER_FILE_BYTE)
    {
        return Err(DecodeError::Truncated);
    }
    Ok(())
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

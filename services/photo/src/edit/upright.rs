//! A photo whose EXIF orientation says to turn it is stored, sent to the provider and served
//! upright, re-encoded without the tag. The image models read pixels as stored, while the user
//! saw the photo turned and drew any mask on it so; the sizes checked against the models' limits
//! are the upright ones too. Phone cameras set the tag on most photos taken upright.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use photo_model::{DecodeLimits, ImageMetadata, PhotoFormat};

use crate::error::PhotoError;

/// Re-encoded JPEGs keep nearly all detail; the provider re-encodes its results anyway.
const JPEG_QUALITY: u8 = 92;

/// The photo turned upright: a JPEG stays a JPEG, anything else becomes a PNG (without alpha,
/// which a turned photo does not carry in practice). None when no turning is needed.
pub(super) fn upright(
    bytes: &[u8],
    metadata: &ImageMetadata,
    limits: &DecodeLimits,
) -> Result<Option<(Vec<u8>, PhotoFormat)>, PhotoError> {
    if metadata.exif_orientation <= 1 {
        return Ok(None);
    }
    // A working size as large as the photo: the whole picture, not a preview.
    let whole = DecodeLimits {
        working_max_side: metadata.width.max(metadata.height),
        ..limits.clone()
    };
    let image = photo_model::decode(bytes, &whole)
        .map_err(PhotoError::from_decode)?
        .image;
    let mut encoded = Vec::new();
    let format = match metadata.format {
        PhotoFormat::Jpeg => {
            JpegEncoder::new_with_quality(&mut encoded, JPEG_QUALITY).encode_image(&image)
        }
        _ => PngEncoder::new(&mut encoded).write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        ),
    }
    .map(|()| match metadata.format {
        PhotoFormat::Jpeg => PhotoFormat::Jpeg,
        _ => PhotoFormat::Png,
    })
    .map_err(|err| PhotoError::Internal(format!("re-encoding an upright photo: {err}")))?;
    if encoded.len() > limits.max_bytes {
        return Err(PhotoError::Image {
            code: "image_too_large",
            message: format!(
                "turned upright, the photo takes {} bytes, over the {} allowed",
                encoded.len(),
                limits.max_bytes
            ),
        });
    }
    Ok(Some((encoded, format)))
}

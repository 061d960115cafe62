//! A photo whose EXIF orientation says to turn it is stored, sent to the provider and served
//! upright, re-encoded without the tag. The image models read pixels as stored, while the user
//! saw the photo turned and drew any mask on it so; the sizes checked against the models' limits
//! are the upright ones too. Phone cameras set the tag on most photos taken upright.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use photo_model::{DecodeLimits, ImageMetadata, PhotoFormat, Probe};
use proto::ErrorCode;

use crate::error::PhotoError;

/// Re-encoded JPEGs keep nearly all detail; the provider re-encodes its results anyway.
const JPEG_QUALITY: u8 = 92;

/// The most memory inspecting a photo holds at once: the check decode at `inspect_side`, then,
/// for a photo to be turned, the whole picture decoded, turned and re-encoded (within the byte
/// cap). The two run one after the other.
pub(super) fn peak_bytes(probe: &Probe, inspect_side: u32, limits: &DecodeLimits) -> u64 {
    let inspect = probe.decode_peak_bytes(inspect_side);
    if probe.exif_orientation <= 1 {
        return inspect;
    }
    let (width, height) = probe.upright_size();
    let encoded = u64::try_from(limits.max_bytes).unwrap_or(u64::MAX);
    inspect.max(probe.decode_peak_bytes(width.max(height)) + encoded)
}

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
    let mut encoded = Capped::new(limits.max_bytes);
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
    });
    match format {
        Ok(format) => Ok(Some((encoded.bytes, format))),
        Err(_) if encoded.over => Err(PhotoError::Image {
            code: ErrorCode::ImageTooLarge,
            message: format!(
                "turned upright, the photo takes more than the {} bytes allowed",
                limits.max_bytes
            ),
        }),
        Err(err) => Err(PhotoError::Internal(format!(
            "re-encoding an upright photo: {err}"
        ))),
    }
}

/// The re-encoded photo, refused as soon as it passes the byte cap (its room is reserved up
/// front, so it is never copied while it grows).
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(cap),
            cap,
            over: false,
        }
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("over the byte cap"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

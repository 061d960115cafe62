//! Why a photo could not be decoded, in terms a client can act on.

use image::ImageError;

/// A decode failure. Every variant except `Internal` is the client's input at fault.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the image is {len} bytes, more than the {max} bytes allowed")]
    TooManyBytes { len: usize, max: usize },
    #[error("the data is not an image in a known format")]
    NotAnImage,
    #[error("image format {format} is not supported (use JPEG, PNG, WebP or GIF)")]
    UnsupportedFormat { format: String },
    #[error("the image is {width}x{height} pixels, more than the {max_width}x{max_height} allowed")]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    #[error("decoding the image would exceed the memory or size limits")]
    OverLimits,
    #[error("the image data is truncated")]
    Truncated,
    #[error("a frame of the image is larger than the image")]
    FrameLargerThanCanvas,
    #[error("the image data is corrupt")]
    Corrupt(#[source] ImageError),
    /// A failure on our side (e.g. resizing), not the input's fault.
    #[error("internal image processing error: {0}")]
    Internal(String),
}

impl DecodeError {
    /// Sorts a decoder error into what the client did wrong.
    pub(crate) fn from_image(err: ImageError) -> Self {
        match &err {
            // Dimensions were checked (with a clearer error) before the decoder got its limits.
            ImageError::Limits(_) => Self::OverLimits,
            ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                Self::Truncated
            }
            _ if looks_truncated(&err) => Self::Truncated,
            _ => Self::Corrupt(err),
        }
    }

    /// Tells whether the client sent something unusable (as opposed to a failure on our side).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Internal(_))
    }
}

/// The codecs report running out of data in their own words; these are the ones seen for
/// truncated JPEG, PNG, WebP and GIF files (see the decode tests).
fn looks_truncated(err: &ImageError) -> bool {
    let text = err.to_string().to_lowercase();
    [
        "eof",
        "end of file",
        "unexpected end",
        "no more bytes",
        "truncated",
        "not enough data",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

//! Camera EXIF: the Make and Model tags that tell a photo from a screenshot.

use exif::{In, Reader, Tag, Value};

/// The camera named by a photo's EXIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraExif {
    pub make: Option<String>,
    pub model: Option<String>,
}

impl CameraExif {
    /// Reads Make and Model from a raw EXIF chunk (a TIFF structure, with or without the JPEG
    /// `Exif\0\0` prefix). Returns `None` when the chunk is unreadable or names no camera.
    pub fn from_exif_chunk(chunk: &[u8]) -> Option<Self> {
        let tiff = chunk.strip_prefix(b"Exif\0\0").unwrap_or(chunk);
        let exif = Reader::new().read_raw(tiff.to_vec()).ok()?;
        let text = |tag| {
            let field = exif.get_field(tag, In::PRIMARY)?;
            match &field.value {
                Value::Ascii(parts) => parts
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).trim().to_owned())
                    .find(|s| !s.is_empty()),
                _ => None,
            }
        };
        let camera = Self {
            make: text(Tag::Make),
            model: text(Tag::Model),
        };
        (camera.make.is_some() || camera.model.is_some()).then_some(camera)
    }
}

//! Finds the model and test photos that deploy/local/fetch-model.sh prepared. They are required:
//! a missing file fails the test with the command that fixes it, so CI cannot skip silently.

use std::path::PathBuf;
use std::sync::OnceLock;

use photo_model::data_dir;
use photo_model::{CategoryRules, DecodeLimits, DecodedImage, LocalClassifier};

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run deploy/local/fetch-model.sh (it prepares $XINTU_DATA_DIR, default ~/.cache/xintu/data)",
        path.display()
    );
    path
}

pub fn photo_bytes(name: &str) -> Vec<u8> {
    data_dir::sample_photo(name).expect("a sample photo")
}

pub fn decoded_photo(name: &str) -> DecodedImage {
    photo_model::decode(&photo_bytes(name), &DecodeLimits::default()).unwrap()
}

/// One classifier for the whole test binary: loading it once keeps the tests fast.
pub fn classifier() -> &'static LocalClassifier {
    static CLASSIFIER: OnceLock<LocalClassifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        let path = require(data_dir::default_model_path());
        LocalClassifier::load(path, CategoryRules::embedded().unwrap()).unwrap()
    })
}

/// Encodes an image as PNG bytes.
pub fn png_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Encodes an image as JPEG bytes.
pub fn jpeg_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A smooth synthetic picture (gradients), so JPEG and PNG compress it like a photo.
pub fn gradient(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

//! The picture the cloud model sees: the upright working image, scaled so its longest side is at
//! most the configured size (tokens are billed on the image size), as a JPEG data URI.

use base64::Engine as _;
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

/// Good enough for recognition at a third of PNG's size.
const JPEG_QUALITY: u8 = 85;

pub fn jpeg_data_uri(image: &RgbImage, max_side: u32) -> Result<String, image::ImageError> {
    let (width, height) = image.dimensions();
    let longest = width.max(height);
    let scaled;
    let image = if longest > max_side {
        let scale = f64::from(max_side) / f64::from(longest);
        let fit = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
        scaled = image::imageops::resize(image, fit(width), fit(height), FilterType::Triangle);
        &scaled
    } else {
        image
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY).encode_image(image)?;
    let mut uri = String::from("data:image/jpeg;base64,");
    base64::engine::general_purpose::STANDARD.encode_string(&jpeg, &mut uri);
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_images_are_scaled_to_the_longest_side() {
        let image = RgbImage::from_pixel(2000, 1000, image::Rgb([200, 100, 50]));
        let uri = jpeg_data_uri(&image, 1024).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1024, 512));
        let small = RgbImage::from_pixel(300, 200, image::Rgb([1, 2, 3]));
        let uri = jpeg_data_uri(&small, 1024).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(image::load_from_memory(&jpeg).unwrap().width(), 300);
    }
}

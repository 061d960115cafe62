//! Decoding good photos: formats, metadata, EXIF orientation, early downscaling.

use exif::experimental::Writer;
use exif::{Field, In, Tag, Value};
use image::{Rgb, RgbImage};
use photo_model::{DecodeLimits, PhotoFormat, decode};

use crate::support::{decoded_photo, gradient, jpeg_bytes, png_bytes};

/// Builds a JPEG whose APP1 segment carries EXIF with the given orientation, make and model.
fn jpeg_with_exif(image: &RgbImage, orientation: u16, make: &str, model: &str) -> Vec<u8> {
    let fields = [
        Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![orientation]),
        },
        Field {
            tag: Tag::Make,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![make.as_bytes().to_vec()]),
        },
        Field {
            tag: Tag::Model,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![model.as_bytes().to_vec()]),
        },
    ];
    let mut writer = Writer::new();
    for field in &fields {
        writer.push_field(field);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff.get_ref());

    let jpeg = jpeg_bytes(image);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn real_photos_report_format_size_and_no_camera() {
    let coffee = decoded_photo("coffee.png");
    assert_eq!(coffee.metadata.format, PhotoFormat::Png);
    assert_eq!((coffee.metadata.width, coffee.metadata.height), (600, 400));
    assert_eq!(coffee.image.dimensions(), (600, 400));
    assert!(!coffee.metadata.has_camera_exif());

    let rocket = decoded_photo("rocket.jpg");
    assert_eq!(rocket.metadata.format, PhotoFormat::Jpeg);
    assert_eq!(rocket.metadata.exif_orientation, 1);
}

#[test]
fn big_photos_are_scaled_down_to_the_working_size() {
    let jpeg = jpeg_bytes(&gradient(3000, 2000));
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (decoded.metadata.width, decoded.metadata.height),
        (3000, 2000)
    );
    assert_eq!(decoded.image.dimensions(), (1024, 683));

    let small = DecodeLimits {
        working_max_side: 300,
        ..DecodeLimits::default()
    };
    let decoded = decode(&png_bytes(&gradient(400, 1000)), &small).unwrap();
    assert_eq!(decoded.image.dimensions(), (120, 300));
}

#[test]
fn exif_orientation_is_applied_and_camera_is_read() {
    // A landscape 200×100 picture, red in its top-left corner, stored with orientation 6
    // ("rotate 90° clockwise to display"): displayed, it is portrait with red top-right.
    let mut stored = RgbImage::from_pixel(200, 100, Rgb([0, 0, 255]));
    for x in 0..40 {
        for y in 0..40 {
            stored.put_pixel(x, y, Rgb([255, 0, 0]));
        }
    }
    let jpeg = jpeg_with_exif(&stored, 6, "Canon", "EOS R6");
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();

    assert_eq!(decoded.metadata.exif_orientation, 6);
    assert_eq!(
        (decoded.metadata.width, decoded.metadata.height),
        (100, 200)
    );
    assert_eq!(decoded.image.dimensions(), (100, 200));
    let top_right = decoded.image.get_pixel(90, 10);
    let top_left = decoded.image.get_pixel(10, 10);
    assert!(top_right[0] > 200 && top_right[2] < 60, "{top_right:?}");
    assert!(top_left[2] > 200 && top_left[0] < 60, "{top_left:?}");

    let camera = decoded.metadata.camera.as_ref().unwrap();
    assert_eq!(camera.make.as_deref(), Some("Canon"));
    assert_eq!(camera.model.as_deref(), Some("EOS R6"));
    assert!(decoded.metadata.has_camera_exif());
}

#[test]
fn webp_and_gif_are_decoded() {
    let picture = gradient(64, 48);
    for (format, expected) in [
        (image::ImageFormat::WebP, PhotoFormat::WebP),
        (image::ImageFormat::Gif, PhotoFormat::Gif),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut bytes, format).unwrap();
        let decoded = decode(bytes.get_ref(), &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.metadata.format, expected);
        assert_eq!(decoded.image.dimensions(), (64, 48));
    }
}

#[test]
fn large_jpegs_are_decoded_reduced_in_the_dct_domain_and_still_upright() {
    // 4032×3024 (12 MP) is decoded at 1/4 scale: 1008×756, short of 1024 by less than 1/8.
    let mut stored = gradient(4032, 3024);
    for x in 0..800 {
        for y in 0..800 {
            stored.put_pixel(x, y, Rgb([255, 0, 0]));
        }
    }
    let jpeg = jpeg_with_exif(&stored, 6, "Xiaomi", "14");
    let decoded = decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (decoded.metadata.width, decoded.metadata.height),
        (3024, 4032)
    );
    assert_eq!(decoded.image.dimensions(), (756, 1008));
    let top_right = decoded.image.get_pixel(756 - 40, 40);
    assert!(top_right[0] > 200 && top_right[1] < 60, "{top_right:?}");

    let gray = image::DynamicImage::ImageRgb8(gradient(2400, 1600)).into_luma8();
    let mut bytes = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    let decoded = decode(bytes.get_ref(), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.image.dimensions(), (1024, 683));
}

//! Screenshots are decided by metadata: no camera EXIF, PNG, and a screen's exact size.

use photo_model::decode::CameraExif;
use photo_model::{AlbumCategory, CategoryRules, DecodeLimits, ImageMetadata, PhotoFormat, decode};

use crate::support::{classifier, decoded_photo, gradient, png_bytes};

fn metadata(format: PhotoFormat, width: u32, height: u32, camera: bool) -> ImageMetadata {
    ImageMetadata {
        format,
        width,
        height,
        exif_orientation: 1,
        camera: camera.then(|| CameraExif {
            make: Some("Apple".into()),
            model: Some("iPhone 15".into()),
        }),
        byte_len: 1,
    }
}

#[test]
fn phone_sized_png_without_exif_is_a_screenshot() {
    let png = png_bytes(&gradient(1080, 2400));
    let decoded = decode(&png, &DecodeLimits::default()).unwrap();
    let answer = classifier().classify(&decoded).unwrap();
    assert_eq!(answer.category, AlbumCategory::Screenshot);
    assert_eq!(answer.label_zh, "截图");
    assert!(answer.sure);
    assert!(answer.decided_by_metadata);
    assert!(
        !answer.top_labels.is_empty(),
        "the network still reports what it saw"
    );
}

#[test]
fn the_rule_needs_every_condition() {
    let rules = CategoryRules::embedded().unwrap();
    let rule = rules.screenshot_rule();
    assert!(rule.matches(&metadata(PhotoFormat::Png, 1170, 2532, false)));
    assert!(
        rule.matches(&metadata(PhotoFormat::Png, 2532, 1170, false)),
        "landscape too"
    );
    assert!(
        rule.matches(&metadata(PhotoFormat::Png, 1920, 1080, false)),
        "desktop"
    );
    assert!(
        !rule.matches(&metadata(PhotoFormat::Png, 1170, 2532, true)),
        "camera EXIF"
    );
    assert!(
        !rule.matches(&metadata(PhotoFormat::Jpeg, 1170, 2532, false)),
        "JPEG"
    );
    assert!(
        !rule.matches(&metadata(PhotoFormat::Png, 1171, 2532, false)),
        "not a screen size"
    );
}

#[test]
fn an_ordinary_png_photo_is_not_a_screenshot() {
    let answer = classifier()
        .classify(&decoded_photo("chelsea.png"))
        .unwrap();
    assert_ne!(answer.category, AlbumCategory::Screenshot);
    assert!(!answer.decided_by_metadata);
}

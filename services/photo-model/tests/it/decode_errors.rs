//! Bad input: each case is a clear error, found before any large allocation.

use std::time::{Duration, Instant};

use photo_model::{DecodeError, DecodeLimits, decode};

use crate::support::{gradient, jpeg_bytes, photo_bytes, png_bytes};

/// A valid PNG signature and IHDR chunk claiming `width`×`height` RGB, then nothing: the shape
/// of a decompression bomb (under 70 bytes).
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // An IDAT chunk header with a few bytes of nothing, as bombs usually carry.
    png.extend_from_slice(&[0, 0, 0, 2, b'I', b'D', b'A', b'T', 0x78, 0x9c, 0, 0, 0, 0]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn assert_quick<T>(what: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = run();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{what} took {:?}",
        started.elapsed()
    );
    out
}

#[test]
fn png_bomb_claiming_100000_square_is_refused_from_the_header() {
    let bomb = png_header_only(100_000, 100_000);
    assert!(bomb.len() < 80);
    let err = assert_quick("bomb", || decode(&bomb, &DecodeLimits::default())).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("100000x100000"), "{err}");
}

#[test]
fn png_bomb_within_dimension_limits_is_refused_before_allocating() {
    // 9000×9000 RGB is 243 MB decoded and passes image's default limits (a 65-byte file makes the
    // decoder allocate it all); here it passes the dimension cap too, so only the size
    // plausibility check stops it.
    let bomb = png_header_only(9000, 9000);
    let err = assert_quick("bomb", || decode(&bomb, &DecodeLimits::default())).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated), "{err:?}");
}

#[test]
fn decoded_size_over_max_alloc_is_refused() {
    let limits = DecodeLimits {
        max_alloc: 1024 * 1024,
        ..DecodeLimits::default()
    };
    let err = decode(&png_bytes(&gradient(1000, 1000)), &limits).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err:?}");
}

#[test]
fn truncated_jpeg_is_an_error() {
    let jpeg = jpeg_bytes(&gradient(640, 480));
    for keep in [jpeg.len() / 2, jpeg.len() / 10, 400] {
        let err = decode(&jpeg[..keep], &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated),
            "{keep} bytes: {err:?}"
        );
    }
}

#[test]
fn truncated_real_photos_are_errors() {
    for name in ["rocket.jpg", "coffee.png"] {
        let bytes = photo_bytes(name);
        let err = decode(&bytes[..bytes.len() * 2 / 3], &DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated), "{name}: {err:?}");
    }
}

#[test]
fn random_bytes_are_not_an_image() {
    // A fixed xorshift stream: reproducible "random" bytes without a dependency.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let err = decode(&bytes, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::NotAnImage), "{err:?}");
    assert!(matches!(
        decode(b"", &DecodeLimits::default()),
        Err(DecodeError::NotAnImage)
    ));
    assert!(matches!(
        decode(b"hello, not a photo", &DecodeLimits::default()),
        Err(DecodeError::NotAnImage)
    ));
}

#[test]
fn over_the_byte_cap_is_refused_before_looking_at_the_bytes() {
    let limits = DecodeLimits {
        max_bytes: 1000,
        ..DecodeLimits::default()
    };
    let png = png_bytes(&gradient(200, 200));
    assert!(png.len() > 1000);
    let err = decode(&png, &limits).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooManyBytes { len, max: 1000 } if len == png.len()),
        "{err:?}"
    );
}

#[test]
fn known_but_unsupported_formats_are_named() {
    // A BMP signature is enough to be recognised, and BMP is not on the allowlist.
    let bmp = b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00";
    let err = decode(bmp, &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedFormat { ref format } if format == "bmp"),
        "{err:?}"
    );
}

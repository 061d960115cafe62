//! Images whose headers claim more than the file or the canvas holds, found by the
//! `photo_decode` fuzz target. First, a WebP whose EXIF chunk claims more bytes than the file
//! holds (959 bytes claiming a 1.1 GiB chunk) is probed and decoded without allocating for the
//! claim: the webp crate sizes its EXIF buffer from the chunk header before reading it, so such
//! a file could make every upload allocate gigabytes before any budget is checked.
//! Its own binary: the allocator's ceiling applies to the whole process, and going over it aborts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary

use photo_upload::{DecodeLimits, decode, probe};

/// Far above what probing or decoding this small image needs, far below the claim.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

const BOMB: &[u8] = include_bytes!("data/webp-exif-claims-4gib.webp");

#[test]
fn an_exif_chunk_longer_than_the_file_is_ignored_not_allocated() {
    let limits = DecodeLimits::default();
    let header = probe(BOMB, &limits).expect("the image itself is fine");
    assert_eq!(
        header.exif_orientation, 1,
        "the broken EXIF counts as absent"
    );
    // Whatever the pixels hold, the outcome is an answer, not an allocation of the claim.
    let _ = decode(BOMB, &limits);
    assert!(
        ALLOCATOR.allocated() < 16 << 20,
        "nothing large is left held"
    );
}

/// Found by the same target: a 314-byte WebP whose RIFF header says 206 bytes, followed by an
/// EXIF chunk claiming 1.85 GB. The webp crate looks for chunks a little past the RIFF size
/// (it counts from the end of the VP8X chunk), so it found that EXIF chunk and allocated its
/// claim; the check before it stopped at the RIFF size and never saw it.
#[test]
fn a_webp_exif_chunk_just_past_the_riff_size_is_not_allocated() {
    let webp = include_bytes!("data/webp-exif-past-the-riff-size.webp");
    let limits = DecodeLimits::default();
    // Whatever the answer, it comes without allocating the claim (over the ceiling, the
    // process aborts).
    if let Ok(header) = probe(webp, &limits) {
        assert_eq!(
            header.exif_orientation, 1,
            "the broken EXIF counts as absent"
        );
    }
    let _ = decode(webp, &limits);
    assert!(ALLOCATOR.allocated() < 16 << 20);
}

#[test]
fn a_webp_exif_chunk_that_fits_is_still_read() {
    let webp = include_bytes!("data/webp-exif-orientation-3.webp");
    let header = probe(webp, &DecodeLimits::default()).unwrap();
    assert_eq!(header.exif_orientation, 3);
}

/// Found by the same target: a 265-byte WebP whose 24x16 canvas holds a VP8 frame declaring
/// 12079x12079, for which the decoder allocated 139 MiB though the probe (and so the decode
/// budget) went by the canvas.
#[test]
fn a_webp_frame_larger_than_its_canvas_is_refused_before_decoding() {
    let bomb = include_bytes!("data/webp-frame-larger-than-canvas.webp");
    let limits = DecodeLimits::default();
    let refused = probe(bomb, &limits).unwrap_err();
    assert!(refused.is_client_error());
    assert!(matches!(
        decode(bomb, &limits),
        Err(photo_upload::DecodeError::FrameLargerThanCanvas)
    ));
}

/// Found by the same target: a GIF whose 20x10 logical screen holds a first frame of 771 x
/// 10,431 pixels, read by the decoder into a frame buffer of its own (32 MB) while the decode
/// budget went by the screen.
#[test]
fn a_gif_frame_larger_than_its_screen_is_refused_before_decoding() {
    let bomb = include_bytes!("data/gif-frame-larger-than-screen.gif");
    let limits = DecodeLimits::default();
    assert!(matches!(
        decode(bomb, &limits),
        Err(photo_upload::DecodeError::FrameLargerThanCanvas)
    ));
}

/// An animated GIF as ImageMagick writes it (application and comment extensions before the
/// first frame) still decodes.
#[test]
fn a_real_animated_gif_still_decodes() {
    let gif = include_bytes!("data/animated-imagemagick.gif");
    let decoded = decode(gif, &DecodeLimits::default()).unwrap();
    let (width, height) = (decoded.metadata.width, decoded.metadata.height);
    assert_eq!(width.max(height), 16, "{width}x{height}");
}

/// Found by the same target in a fuzz smoke: a 608-byte indexed PNG whose PLTE chunk is 49 bytes
/// (16 entries and one stray byte). The png crate expands the palette three bytes at a time and
/// panics on the stray one; a panic in decoding is a request that kills its worker. A palette
/// that is not whole RGB entries (or holds more than 256) is refused as corrupt before decoding.
#[test]
fn a_png_palette_that_is_not_whole_entries_is_refused_not_a_panic() {
    let png = include_bytes!("data/png-palette-not-whole-entries.png");
    let limits = DecodeLimits::default();
    assert!(matches!(
        probe(png, &limits),
        Err(photo_upload::DecodeError::Corrupt(_))
    ));
    assert!(matches!(
        decode(png, &limits),
        Err(photo_upload::DecodeError::Corrupt(_))
    ));
}

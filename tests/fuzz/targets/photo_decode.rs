//! Untrusted image bytes as the photo service meets them: the header probe, then the bounded
//! decode (JPEG, PNG, WebP, GIF including animated, with EXIF orientation and camera tags),
//! with the service's default limits. Beyond not crashing:
//!
//! - a probe and a decode refuse the same inputs;
//! - a decode never holds more memory than the probe's `decode_peak_bytes`, the figure the
//!   service reserves in its decode budget: the allocator's cap is set to it for the decode,
//!   so going over aborts and libFuzzer reports it;
//! - the working image fits the working size and matches the upright dimensions.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photo_upload::{DecodeLimits, decode, probe};

/// Outside a decode (the probe included, which allocates no pixels), the harness may hold this
/// much; it leaves room for a panic's backtrace to be symbolised.
const HARNESS_CAP: usize = 128 << 20;
/// Allocator bookkeeping and small buffers a decode's estimate does not model.
const SLACK: usize = 1 << 20;

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, HARNESS_CAP);

fuzz_target!(|bytes: &[u8]| {
    let limits = DecodeLimits::default();
    let probed = probe(bytes, &limits);
    let budget = probed.as_ref().map_or(0, |header| {
        header.decode_peak_bytes(limits.working_max_side)
    });
    let held = ALLOCATOR.allocated();
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    let _ = ALLOCATOR.set_limit(
        held.saturating_add(budget)
            .saturating_add(SLACK)
            .max(HARNESS_CAP),
    );
    let decoded = decode(bytes, &limits);
    let _ = ALLOCATOR.set_limit(HARNESS_CAP.max(ALLOCATOR.allocated()));
    match (&probed, decoded) {
        (Ok(header), Ok(image)) => {
            let (width, height) = header.upright_size();
            assert_eq!(
                (image.metadata.width, image.metadata.height),
                (width, height)
            );
            let side = limits.working_max_side;
            assert!(image.image.width() <= side && image.image.height() <= side);
            assert!(image.image.width() > 0 && image.image.height() > 0);
        }
        (Err(_), Ok(_)) => panic!("the probe refused what decode accepted"),
        // A header can be fine and the pixels not.
        (_, Err(_)) => {}
    }
});

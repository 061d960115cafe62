//! What the photo API takes: one declaration, read by the gateway, which refuses what is over
//! before reading or forwarding it, and by the photo service, which enforces it. Its defaults are
//! [`PHOTO_LIMITS_DEFAULTS`], a section both read with their own settings.

use serde::Deserialize;

/// The `[photo_limits]` section's defaults, documented.
pub const PHOTO_LIMITS_DEFAULTS: &str = include_str!("../photo_limits.default.toml");

/// Room in a gRPC message for the fields around the images it carries.
const MESSAGE_ENVELOPE: usize = 1024 * 1024;

/// `[photo_limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PhotoLimits {
    pub classify_max_image_bytes: usize,
    pub classify_batch_max: usize,
    pub classify_batch_max_bytes: usize,
    pub lookup_max: usize,
    pub location_batch_max: usize,
    pub edit_max_image_bytes: usize,
}

impl PhotoLimits {
    /// The first limit out of its range, as a sentence naming it.
    pub fn invalid(&self) -> Option<&'static str> {
        const MAX_IMAGE: std::ops::RangeInclusive<usize> = 1024..=64 * 1024 * 1024;
        let checks: [(bool, &'static str); 6] = [
            (
                MAX_IMAGE.contains(&self.classify_max_image_bytes),
                "classify_max_image_bytes must be within 1 KiB..=64 MiB",
            ),
            (
                (1..=100).contains(&self.classify_batch_max),
                "classify_batch_max must be within 1..=100",
            ),
            (
                self.classify_batch_max_bytes >= 1024,
                "classify_batch_max_bytes must be at least 1 KiB",
            ),
            (
                (1..=10_000).contains(&self.lookup_max),
                "lookup_max must be within 1..=10000",
            ),
            (
                (1..=10_000).contains(&self.location_batch_max),
                "location_batch_max must be within 1..=10000",
            ),
            (
                MAX_IMAGE.contains(&self.edit_max_image_bytes),
                "edit_max_image_bytes must be within 1 KiB..=64 MiB",
            ),
        ];
        checks
            .iter()
            .find(|(ok, _)| !ok)
            .map(|(_, message)| *message)
    }

    /// The largest classification request: one image or a whole batch, and its envelope.
    pub fn classify_message_bytes(&self) -> usize {
        self.classify_max_image_bytes
            .max(self.classify_batch_max_bytes)
            .saturating_add(MESSAGE_ENVELOPE)
    }

    /// The largest edit request: an image, its mask, and the envelope.
    pub fn edit_message_bytes(&self) -> usize {
        self.edit_max_image_bytes
            .saturating_mul(2)
            .saturating_add(MESSAGE_ENVELOPE)
    }
}

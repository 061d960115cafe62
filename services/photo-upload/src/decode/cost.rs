//! What decoding a photo costs in memory, known from its header before any pixel is decoded, so
//! that a service can budget the memory of every decode it runs at once.

use super::PhotoFormat;

/// What a photo's header says, read by [`super::probe`] before any pixel is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: PhotoFormat,
    /// Width as stored, before the EXIF orientation.
    pub width: u32,
    /// Height as stored, before the EXIF orientation.
    pub height: u32,
    /// The EXIF orientation (1 = none).
    pub exif_orientation: u8,
    /// Bytes of the decoder's full-size buffer.
    pub(super) decoded_bytes: u64,
    /// The decoder delivers 8-bit RGB, so no converted copy is made.
    pub(super) decoded_rgb8: bool,
    /// A progressive JPEG: its decoders keep every coefficient of the picture at once.
    pub(super) progressive: bool,
}

/// Row buffers, inflate windows, Huffman tables and the like, whatever the size.
const CODEC_OVERHEAD: u64 = 4 * 1024 * 1024;

impl Probe {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Width and height as displayed, after the EXIF orientation.
    pub fn upright_size(&self) -> (u32, u32) {
        if matches!(self.exif_orientation, 5..=8) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    /// The most memory [`super::decode`] holds at once for this photo with `working_max_side`,
    /// in bytes, as an upper bound: the decoder's buffer and what its codec keeps beside it, then
    /// the working copy (scaled in the decoder's pixel format, converted to RGB, and copied once
    /// more when turned upright). When the working copy is the whole photo, the conversion to
    /// RGB is a full copy. `decode_memory.rs` in the tests measures real decodes against it.
    pub fn decode_peak_bytes(&self, working_max_side: u32) -> u64 {
        let pixels = self.pixels();
        let decoder = self.decoded_bytes + self.codec_bytes() + CODEC_OVERHEAD;
        let long_side = self.width.max(self.height).max(1);
        let working = if long_side <= working_max_side {
            // No scaling: the RGB conversion (unless the decoder made RGB) and the upright copy.
            let conversion = if self.decoded_rgb8 { 0 } else { 3 * pixels };
            conversion + 3 * pixels
        } else {
            let scale = f64::from(working_max_side) / f64::from(long_side);
            let side = |s: u32| (f64::from(s) * scale).ceil() as u64 + 1;
            let working_pixels = side(self.width) * side(self.height);
            let bytes_per_pixel = self.decoded_bytes.div_ceil(pixels.max(1));
            working_pixels * (bytes_per_pixel + 3 + 3)
        };
        decoder + working
    }

    /// What a codec allocates beside the decoder's buffer: coefficients of a progressive JPEG
    /// (two bytes per sample, up to four components), a lossless WebP's 32-bit pixels or a lossy
    /// one's YUV planes, a GIF's palette indices and a frame composed apart from the canvas.
    fn codec_bytes(&self) -> u64 {
        let pixels = self.pixels();
        match self.format {
            PhotoFormat::Jpeg if self.progressive => 8 * pixels,
            PhotoFormat::Jpeg | PhotoFormat::Png => 0,
            PhotoFormat::WebP => 4 * pixels,
            PhotoFormat::Gif => 5 * pixels,
        }
    }
}

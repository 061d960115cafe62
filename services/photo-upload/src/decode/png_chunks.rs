//! A check of a PNG's palette before the png crate reads it. That crate expands the PLTE chunk
//! three bytes at a time into a 256-entry table and panics on a palette that is not whole RGB
//! entries or holds more than 256 of them (found by the `photo_decode` fuzz target: a 49-byte
//! PLTE). The PNG specification allows neither, so such a file is corrupt.

/// The most entries a PNG palette may hold.
const MAX_ENTRIES: usize = 256;

/// Returns false if a PLTE chunk is empty, not whole RGB entries, or longer than 256 of them.
/// Walks the chunks up to the first IDAT (the palette must come before the image data) or to
/// where the file ends; a file without a palette passes.
pub(crate) fn palette_is_valid(bytes: &[u8]) -> bool {
    // The 8-byte signature, then chunks: length (4, big-endian), type (4), data, CRC (4).
    let mut rest = bytes.get(8..).unwrap_or_default();
    while let Some((header, body)) = rest.split_at_checked(8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        match &header[4..8] {
            b"PLTE" => return length > 0 && length % 3 == 0 && length <= 3 * MAX_ENTRIES,
            b"IDAT" | b"IEND" => return true,
            _ => {}
        }
        let Some(next) = length.checked_add(4).and_then(|skip| body.get(skip..)) else {
            return true;
        };
        rest = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(chunks: &[(&[u8; 4], usize)]) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, length) in chunks {
            out.extend_from_slice(&(*length as u32).to_be_bytes());
            out.extend_from_slice(*kind);
            out.extend(std::iter::repeat_n(0u8, *length + 4));
        }
        out
    }

    #[test]
    fn whole_palettes_of_1_to_256_entries_pass() {
        for entries in [1, 16, 256] {
            let file = png(&[(b"IHDR", 13), (b"PLTE", 3 * entries), (b"IDAT", 10)]);
            assert!(palette_is_valid(&file), "{entries}");
        }
        assert!(
            palette_is_valid(&png(&[(b"IHDR", 13), (b"IDAT", 10)])),
            "no palette"
        );
    }

    #[test]
    fn broken_palettes_are_refused() {
        for length in [0, 49, 3 * 257] {
            let file = png(&[
                (b"IHDR", 13),
                (b"gAMA", 4),
                (b"PLTE", length),
                (b"IDAT", 10),
            ]);
            assert!(!palette_is_valid(&file), "{length}");
        }
    }

    #[test]
    fn only_what_comes_before_the_image_data_counts() {
        let file = png(&[(b"IHDR", 13), (b"IDAT", 10), (b"PLTE", 49)]);
        assert!(palette_is_valid(&file));
    }
}

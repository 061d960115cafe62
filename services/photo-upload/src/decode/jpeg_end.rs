//! Detects truncated JPEG files. image's JPEG decoder (zune-jpeg in lenient mode) fills missing
//! scan data with grey instead of failing, so a cut-off upload would otherwise be classified as
//! a half-grey photo. A complete JPEG reaches its EOI marker; this walks the marker segments and
//! entropy-coded scans (where 0xFF is always stuffed or a marker) to check that it does.

/// What the marker walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegEnd {
    /// The end-of-image marker was reached.
    Complete,
    /// The data stops inside a segment or scan.
    Truncated,
    /// The structure is not what the walk understands; the decoder decides.
    Unknown,
}

const EOI: u8 = 0xd9;
const SOS: u8 = 0xda;

fn is_standalone(marker: u8) -> bool {
    // RSTn, TEM and SOI carry no length.
    matches!(marker, 0xd0..=0xd7 | 0x01 | 0xd8)
}

/// Walks a JPEG from its SOI marker to its EOI marker.
pub fn jpeg_end(bytes: &[u8]) -> JpegEnd {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return JpegEnd::Unknown;
    }
    let mut at = 2;
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, then the marker code.
        match bytes.get(at) {
            None => return JpegEnd::Truncated,
            Some(0xff) => {}
            Some(_) => return JpegEnd::Unknown,
        }
        while bytes.get(at + 1) == Some(&0xff) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return JpegEnd::Truncated;
        };
        at += 2;
        if marker == EOI {
            return JpegEnd::Complete;
        }
        if is_standalone(marker) {
            continue;
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return JpegEnd::Truncated;
        };
        if length < 2 {
            return JpegEnd::Unknown;
        }
        at += length;
        if at > bytes.len() {
            return JpegEnd::Truncated;
        }
        if marker == SOS {
            match next_marker_after_scan(bytes, at) {
                Some(next) => at = next,
                None => return JpegEnd::Truncated,
            }
        }
    }
}

/// Tells whether a JPEG is progressive (its decoders then keep every DCT coefficient of the
/// whole picture at once), from its first frame header; a file the walk cannot read counts as
/// progressive, the costlier case.
pub fn is_progressive(bytes: &[u8]) -> bool {
    let mut at = 2;
    while let (Some(&0xff), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) {
        if marker == 0xff {
            at += 1;
            continue;
        }
        at += 2;
        if is_standalone(marker) {
            continue;
        }
        if is_frame_header(marker) {
            return matches!(marker, 0xc2 | 0xc6 | 0xca | 0xce);
        }
        if marker == SOS || marker == EOI {
            break;
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            break;
        };
        at += length;
    }
    true
}

/// SOF0 to SOF15, except DHT, JPG and DAC, which share the range.
fn is_frame_header(marker: u8) -> bool {
    (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc)
}

/// Skips entropy-coded data: returns the offset of the first marker that is neither stuffing
/// (`FF 00`) nor a restart marker, or `None` if the data ends first.
fn next_marker_after_scan(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += bytes.get(at..)?.iter().position(|&b| b == 0xff)?;
        match *bytes.get(at + 1)? {
            0x00 | 0xd0..=0xd7 => at += 2,
            0xff => at += 1,
            _ => return Some(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        let image =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn complete_jpeg_reaches_eoi() {
        let jpeg = tiny_jpeg();
        assert_eq!(jpeg_end(&jpeg), JpegEnd::Complete);
        let mut trailing = jpeg;
        trailing.extend_from_slice(b"trailer written by some phones");
        assert_eq!(jpeg_end(&trailing), JpegEnd::Complete);
    }

    #[test]
    fn every_cut_is_truncated() {
        let jpeg = tiny_jpeg();
        for keep in 2..jpeg.len() - 1 {
            assert_eq!(jpeg_end(&jpeg[..keep]), JpegEnd::Truncated, "cut at {keep}");
        }
    }

    #[test]
    fn baseline_jpegs_are_not_progressive() {
        assert!(!is_progressive(&tiny_jpeg()));
        // The same frame header marked progressive (SOF2 instead of SOF0).
        let mut progressive = tiny_jpeg();
        let sof0 = progressive
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .unwrap();
        progressive[sof0 + 1] = 0xc2;
        assert!(is_progressive(&progressive));
        assert!(is_progressive(b"not a jpeg"));
    }

    #[test]
    fn garbage_is_left_to_the_decoder() {
        assert_eq!(jpeg_end(b"not a jpeg"), JpegEnd::Unknown);
        assert_eq!(jpeg_end(&[0xff, 0xd8, 0x12, 0x34]), JpegEnd::Unknown);
    }
}

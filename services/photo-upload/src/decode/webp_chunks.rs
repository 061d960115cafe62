//! Checks of a WebP's RIFF chunks before the webp crate reads them. That crate sizes buffers from
//! what headers claim and only then reads, so a file of a few hundred bytes can make it allocate
//! gigabytes, outside every limit and before any decode budget is checked (both found by the
//! `photo_decode` fuzz target):
//!
//! - the EXIF chunk's buffer is the size its header claims, however short the file;
//! - a frame's buffers are sized from the frame's own VP8/VP8L header, which may claim far more
//!   pixels than the canvas that the probe (and so the budget) goes by.
//!
//! Walking the chunks first costs nothing. What the walk cannot account for is refused.

/// More than any real photo's EXIF: orientation and camera tags sit in the first few KiB.
const MAX_EXIF_BYTES: usize = 1 << 20;
/// An ANMF chunk's frame header before its sub-chunks (offset, size, duration, flags).
const ANMF_HEADER: usize = 16;

struct Chunk<'a> {
    fourcc: &'a [u8],
    /// The bytes of the body that the region holds: all of it unless `complete` is false.
    body: &'a [u8],
    /// False for a chunk claiming more bytes than the region holds; it is the last one seen.
    complete: bool,
}

/// The chunks of `region`, up to and including one that claims more bytes than are left
/// (nothing after it can be found, by us or by the decoder).
fn chunks(mut region: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    while let Some((header, rest)) = region.split_at_checked(8) {
        let claimed = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let size = usize::try_from(claimed).unwrap_or(usize::MAX);
        let complete = size <= rest.len();
        out.push(Chunk {
            fourcc: &header[..4],
            body: &rest[..size.min(rest.len())],
            complete,
        });
        if !complete {
            break;
        }
        // Chunks are padded to an even length; a missing final pad byte is tolerated.
        region = rest.get(size + (size & 1)..).unwrap_or_default();
    }
    out
}

/// The chunks after the RIFF header, to the end of the file. Not only to the size the RIFF
/// header gives: the decoder follows the same chain of chunks a little past that size (it
/// counts the size from the end of the VP8X chunk, not from the header), so a chunk there is
/// read all the same (found by the fuzz target: an EXIF claim of 1.85 GB just past it). The
/// whole file holds every chunk the decoder can find.
fn top_level(bytes: &[u8]) -> Option<Vec<Chunk<'_>>> {
    Some(chunks(bytes.get(12..)?))
}

/// True when every EXIF chunk lies within the file and is at most [`MAX_EXIF_BYTES`].
/// Otherwise the EXIF is treated as absent, as broken EXIF is.
pub fn exif_is_safe_to_read(bytes: &[u8]) -> bool {
    top_level(bytes).is_some_and(|chunks| {
        chunks.iter().all(|chunk| {
            chunk.fourcc != b"EXIF" || (chunk.complete && chunk.body.len() <= MAX_EXIF_BYTES)
        })
    })
}

/// The width and height a VP8 (lossy) or VP8L (lossless) bitstream's header declares.
fn bitstream_size(chunk: &Chunk<'_>) -> Option<(u32, u32)> {
    let b = chunk.body;
    match chunk.fourcc {
        b"VP8 " => {
            // A 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
            if b.get(3..6)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let width = u16::from_le_bytes([*b.get(6)?, *b.get(7)?]) & 0x3fff;
            let height = u16::from_le_bytes([*b.get(8)?, *b.get(9)?]) & 0x3fff;
            Some((u32::from(width), u32::from(height)))
        }
        b"VP8L" => {
            // The signature 0x2f, then 14 bits of width - 1 and 14 of height - 1.
            if *b.first()? != 0x2f {
                return None;
            }
            let bits = u32::from_le_bytes(b.get(1..5)?.try_into().ok()?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        _ => None,
    }
}

/// True when every frame's bitstream (a still image's, or each animation frame's) declares no
/// more pixels per side than the canvas, `width` x `height`, that the probe reported. A frame
/// cut short still has its header read by the decoder, so it is checked all the same.
pub fn frames_fit_canvas(bytes: &[u8], width: u32, height: u32) -> bool {
    let fits =
        |chunk: &Chunk<'_>| bitstream_size(chunk).is_some_and(|(w, h)| w <= width && h <= height);
    let Some(top) = top_level(bytes) else {
        return false;
    };
    top.iter().all(|chunk| match chunk.fourcc {
        b"VP8 " | b"VP8L" => fits(chunk),
        b"ANMF" => chunk.body.get(ANMF_HEADER..).is_some_and(|frame| {
            chunks(frame)
                .iter()
                .filter(|c| c.fourcc == b"VP8 " || c.fourcc == b"VP8L")
                .all(fits)
        }),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn riff(chunks: &[(&[u8; 4], &[u8], Option<u32>)]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (fourcc, data, claimed) in chunks {
            body.extend_from_slice(*fourcc);
            let size = claimed.unwrap_or(u32::try_from(data.len()).unwrap_or(u32::MAX));
            body.extend_from_slice(&size.to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn vp8(width: u16, height: u16) -> Vec<u8> {
        let mut data = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        data.extend_from_slice(&width.to_le_bytes());
        data.extend_from_slice(&height.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        data
    }

    #[test]
    fn an_exif_chunk_that_fits_is_read() {
        let file = riff(&[(b"VP8X", &[0; 10], None), (b"EXIF", b"II*\0abc", None)]);
        assert!(exif_is_safe_to_read(&file));
    }

    #[test]
    fn an_exif_claim_beyond_the_file_or_the_cap_is_not_read() {
        let beyond = riff(&[
            (b"VP8X", &[0; 10], None),
            (b"EXIF", b"II*\0", Some(1 << 30)),
        ]);
        assert!(!exif_is_safe_to_read(&beyond));
        let huge = vec![0u8; MAX_EXIF_BYTES + 2];
        assert!(!exif_is_safe_to_read(&riff(&[(b"EXIF", &huge, None)])));
        assert!(!exif_is_safe_to_read(b"RIFF"));
    }

    #[test]
    fn chunks_past_the_riff_size_count_too() {
        // The RIFF header covers only VP8X; the decoder still finds the EXIF chunk after it.
        let mut file = riff(&[(b"VP8X", &[0; 10], None)]);
        file.extend_from_slice(b"EXIF");
        file.extend_from_slice(&0x6e9c_72aa_u32.to_le_bytes());
        file.extend_from_slice(b"II*\0");
        assert!(!exif_is_safe_to_read(&file));
    }

    #[test]
    fn frames_larger_than_the_canvas_are_refused() {
        let still = riff(&[(b"VP8X", &[0; 10], None), (b"VP8 ", &vp8(24, 16), None)]);
        assert!(frames_fit_canvas(&still, 24, 16));
        assert!(!frames_fit_canvas(&still, 24, 15));
        let mut frame = vec![0; ANMF_HEADER];
        frame.extend_from_slice(b"VP8 ");
        let bitstream = vp8(12079, 12079);
        frame.extend_from_slice(&u32::try_from(bitstream.len()).unwrap_or(0).to_le_bytes());
        frame.extend_from_slice(&bitstream);
        let animated = riff(&[(b"VP8X", &[0; 10], None), (b"ANMF", &frame, None)]);
        assert!(!frames_fit_canvas(&animated, 24, 16));
        assert!(frames_fit_canvas(&animated, 12079, 12079));
    }
}

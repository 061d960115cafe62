//! Whether a GIF's first frame (the one decoded) lies within its logical screen. The decoder
//! reads a frame that does not fill the screen into a buffer of the frame's own size, so a
//! 20x10 GIF whose frame claims 771x10,431 pixels took a 32 MB buffer while the probe, and so
//! the decode budget, went by the screen (found by the `photo_decode` fuzz target).

/// The first image descriptor's frame fits the screen. Anything the walk does not recognise
/// answers false, and the file is refused.
pub fn first_frame_fits(bytes: &[u8]) -> bool {
    first_frame_fits_inner(bytes).unwrap_or(false)
}

fn le16(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([
        *bytes.get(at)?,
        *bytes.get(at + 1)?,
    ])))
}

/// Length of a colour table announced by a packed-fields byte, if its flag is set.
fn colour_table_len(packed: u8) -> usize {
    if packed & 0x80 == 0 {
        0
    } else {
        3 << ((packed & 0x07) + 1)
    }
}

fn first_frame_fits_inner(bytes: &[u8]) -> Option<bool> {
    // Header (6), then the logical screen descriptor: width, height, packed fields, ...
    let (screen_width, screen_height) = (le16(bytes, 6)?, le16(bytes, 8)?);
    let mut at = 13 + colour_table_len(*bytes.get(10)?);
    loop {
        match *bytes.get(at)? {
            // An extension: its label, then data sub-blocks up to an empty one.
            0x21 => {
                at += 2;
                loop {
                    let size = usize::from(*bytes.get(at)?);
                    at += 1 + size;
                    if size == 0 {
                        break;
                    }
                }
            }
            // The first image descriptor: left, top, width, height.
            0x2c => {
                let (left, top) = (le16(bytes, at + 1)?, le16(bytes, at + 3)?);
                let (width, height) = (le16(bytes, at + 5)?, le16(bytes, at + 7)?);
                return Some(left + width <= screen_width && top + height <= screen_height);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gif(screen: (u16, u16), frame: (u16, u16, u16, u16)) -> Vec<u8> {
        let mut out = b"GIF89a".to_vec();
        out.extend_from_slice(&screen.0.to_le_bytes());
        out.extend_from_slice(&screen.1.to_le_bytes());
        out.extend_from_slice(&[0x80, 0, 0]); // a global table of 2 colours
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&[0x21, 0xf9, 4, 0, 0, 0, 0, 0]); // graphic control
        out.push(0x2c);
        for value in [frame.0, frame.1, frame.2, frame.3] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3b]);
        out
    }

    #[test]
    fn a_frame_within_the_screen_fits() {
        assert!(first_frame_fits(&gif((20, 10), (0, 0, 20, 10))));
        assert!(first_frame_fits(&gif((20, 10), (5, 2, 15, 8))));
    }

    #[test]
    fn a_frame_beyond_the_screen_or_an_unreadable_file_does_not() {
        assert!(!first_frame_fits(&gif((20, 10), (0, 0, 771, 10))));
        assert!(!first_frame_fits(&gif((20, 10), (6, 0, 15, 10))));
        assert!(!first_frame_fits(&gif((20, 10), (0, 768, 1, 1))));
        assert!(!first_frame_fits(b"GIF89a"));
    }
}

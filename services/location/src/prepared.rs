//! A binary copy of the parsed location data, kept beside the files it was parsed from.
//!
//! Parsing the 27 MB of GeoJSON takes about a second of CPU at every start of the service (and
//! every end-to-end test starts one); reading the same data back from postcard takes a small
//! part of that. The copy begins with a key over the data files' names, sizes and modification
//! times and over its own layout, so a changed file or layout leaves it unused until it is
//! written again. A copy that cannot be read or written is skipped with a debug line: the files
//! stay the source of truth, and a read-only data directory (an image's) parses every time.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest as _, Sha256};

use super::geodata::{FORMAT, Parsed, SOURCES};

const FILE_NAME: &str = ".locator-prepared.bin";

/// The layout of `Parsed` and of every type in it (postcard writes no field names). Raise it
/// with any change to them: `the_layout_is_pinned` fails until the pin is updated too.
const LAYOUT: u32 = 1;

pub(super) type Key = [u8; 32];

/// The key of the data in `dir` as it is now; None when a file cannot be looked at (then the
/// parse reports it).
pub(super) fn key(dir: &Path) -> Option<Key> {
    let mut hasher = Sha256::new();
    hasher.update(LAYOUT.to_le_bytes());
    hasher.update(FORMAT.to_le_bytes());
    for name in SOURCES {
        let meta = std::fs::metadata(dir.join(name)).ok()?;
        let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        hasher.update(name.as_bytes());
        hasher.update(meta.len().to_le_bytes());
        hasher.update(modified.as_nanos().to_le_bytes());
    }
    Some(hasher.finalize().into())
}

/// The copy in `dir`, when it was written for `key`.
pub(super) fn read(dir: &Path, key: &Key) -> Option<Parsed> {
    let path = dir.join(FILE_NAME);
    let bytes = std::fs::read(&path).ok()?;
    let (stored, body) = bytes.split_at_checked(key.len())?;
    if stored != key {
        tracing::debug!(path = %path.display(), "the prepared location data is of other files");
        return None;
    }
    postcard::from_bytes(body)
        .inspect_err(|err| {
            tracing::debug!(path = %path.display(), error = %err, "prepared location data unread");
        })
        .ok()
}

/// Writes the copy for `key` (the key of the files as they were before `parsed` was read).
pub(super) fn write(dir: &Path, key: &Key, parsed: &Parsed) {
    if let Err(err) = try_write(dir, key, parsed) {
        tracing::debug!(dir = %dir.display(), error = %err, "prepared location data not written");
    }
}

fn try_write(dir: &Path, key: &Key, parsed: &Parsed) -> std::io::Result<()> {
    let body = postcard::to_stdvec(parsed).map_err(std::io::Error::other)?;
    // Written whole under a name of this process, then renamed over the copy: a reader (another
    // process starting at the same time) sees the old copy or the new one, never a part.
    let temp = dir.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(key)?;
        file.write_all(&body)
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, dir.join(FILE_NAME)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::super::geodata::Parsed;

    /// postcard writes values in field order without names: a changed type reads back wrong or
    /// not at all. This pins the bytes of one sample, so a change to any type in `Parsed` fails
    /// here until `LAYOUT` is raised and the pin updated.
    #[test]
    fn the_layout_is_pinned() {
        let bytes = postcard::to_stdvec(&Parsed::sample()).expect("serialize the sample");
        let digest = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            (super::LAYOUT, digest.as_str()),
            (
                1,
                "097d18266c0422ef42288fbcc6a9e33cabccfaa35ba08d6e0ad9de63c8a587aa"
            ),
            "the layout of the prepared location data changed: raise LAYOUT and update the pin"
        );
    }

    #[test]
    fn the_sample_reads_back_as_written() {
        let sample = Parsed::sample();
        let bytes = postcard::to_stdvec(&sample).expect("serialize the sample");
        let read: Parsed = postcard::from_bytes(&bytes).expect("read the sample");
        assert_eq!(read, sample);
    }
}

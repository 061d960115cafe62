//! The app's small inputs, read as the gateway and photo service read them:
//!
//! - first byte even: a `/api/v1/location` query string → the gateway's `PointIn` → the photo
//!   service's WGS-84 check → the place found in the real offline geodata (loaded once from
//!   `GEODATA_DIR`, as the photo service reads it; deploy/local/fuzz.sh sets it), whose name is
//!   never empty;
//! - first byte odd: a `/api/v1/photos/lookup` or `/api/v1/location/batch` JSON body → the
//!   gateway's types → each digest parsed as the photo service does, and each point checked.

#![no_main]

use std::sync::OnceLock;

use axum::extract::Query;
use gateway::routes::location::{LocationBatchIn, PointIn};
use gateway::routes::photos::LookupIn;
use libfuzzer_sys::fuzz_target;
use location::Locator;
use location::coordinate::Wgs84;
use photo_upload::Digest;

// The geodata's indexes take some 200 MiB; the rest of the harness little.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 768 << 20);

fn locator() -> &'static Locator {
    static LOCATOR: OnceLock<Locator> = OnceLock::new();
    LOCATOR.get_or_init(|| {
        let dir = std::env::var_os("GEODATA_DIR").unwrap_or_else(|| {
            unreachable!("GEODATA_DIR names the geodata (deploy/local/fuzz.sh)")
        });
        location::geodata::load(std::path::Path::new(&dir)).unwrap_or_else(|err| {
            unreachable!("the geodata loads (deploy/local/fetch-geodata.sh): {err}")
        })
    })
}

fn locate(lat: f64, lng: f64) {
    let Ok(point) = Wgs84::parse(lat, lng) else {
        return;
    };
    assert!((-90.0..=90.0).contains(&point.lat()) && (-180.0..=180.0).contains(&point.lng()));
    if let Some(place) = locator().locate(point) {
        assert!(
            !place.place.display().is_empty(),
            "a place without a name at {lat},{lng}"
        );
    }
}

// The geodata is loaded before the first input: loaded inside it, on a busy machine, its parsing
// counted against that input's 10-s timeout and was reported as a hang.
fuzz_target!(init: { locator(); }, |input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(query) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(uri) = format!("/api/v1/location?{query}").parse::<http::Uri>() else {
            return;
        };
        if let Ok(Query(point)) = Query::<PointIn>::try_from_uri(&uri) {
            locate(point.lat, point.lng);
        }
        return;
    }
    if let Ok(lookup) = serde_json::from_slice::<LookupIn>(data) {
        for digest in &lookup.sha256 {
            if let Ok(parsed) = Digest::parse(digest) {
                assert!(parsed.to_hex().eq_ignore_ascii_case(digest.trim()));
            }
        }
    }
    if let Ok(batch) = serde_json::from_slice::<LocationBatchIn>(data) {
        for point in batch.points.iter().take(100) {
            locate(point.lat, point.lng);
        }
    }
});

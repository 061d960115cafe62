//! Offline reverse geocoding: a WGS-84 point to Chinese place names (docs/architecture.md,
//! "Offline location").
//!
//! China: the point is shifted to GCJ-02 and tested against China's county-level polygons (AMap
//! lineage, GCJ-02). Elsewhere: the country polygon holding the point, and the nearest GeoNames
//! place within 25 km in that country. At sea, far from any place: nothing.

pub mod coordinate;
pub mod place;
pub mod places;
pub mod regions;

use std::collections::HashMap;

use self::coordinate::Wgs84;
use self::place::{CHINA, Location, Place, Source};
use self::places::{CountryCode, NamedPlace, PlaceIndex};
use self::regions::RegionIndex;

/// Nearest-place cutoff (Immich's): farther than this, a place name would mislead.
pub const NEAREST_PLACE_MAX_KM: f64 = 25.0;
/// The simplification tolerance of the China polygons (degrees): a point that close to a polygon
/// but in none lies in a sliver the simplification opened, so it belongs to the nearest.
pub const CHINA_EDGE_TOLERANCE_DEG: f64 = 0.003;

/// A county-level region of China and the names above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct District {
    pub province: String,
    pub city: String,
    /// Empty where the area has no district name of its own.
    pub district: String,
}

/// A country polygon's code and Chinese name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Country {
    /// None for the disputed zones the World Bank layer draws on their own (戈兰高地, ...):
    /// no GeoNames place carries such a code.
    pub code: Option<CountryCode>,
    pub name: String,
}

/// Everything a lookup needs, built once at start and shared read-only.
pub struct Locator {
    china: RegionIndex<District>,
    countries: RegionIndex<Country>,
    places: PlaceIndex,
    /// Chinese (else English) names by country code, for places outside every country polygon.
    country_names: HashMap<CountryCode, String>,
}

impl Locator {
    pub fn new(
        china: RegionIndex<District>,
        countries: RegionIndex<Country>,
        places: PlaceIndex,
        country_names: HashMap<CountryCode, String>,
    ) -> Self {
        Self {
            china,
            countries,
            places,
            country_names,
        }
    }

    /// Returns where `point` is, or None at sea far from any place.
    pub fn locate(&self, point: Wgs84) -> Option<Location> {
        if let Some(district) = self.china_district(point) {
            return Some(china_location(district, Source::ChinaRegion));
        }
        let country = self.countries.containing(point.lng(), point.lat());
        // Inside a country, only its own places: across a border the nearest town is the
        // neighbour's, and "德国 斯特拉斯堡" would be wrong twice.
        let in_country = |place: &NamedPlace| {
            country
                .and_then(|country| country.code)
                .is_none_or(|code| place.country == code)
        };
        // The album speaks Chinese: a place with a Chinese name within reach ("巴黎") reads
        // better than a nearer quarter or hamlet known only by its local name ("Paris 16 Passy").
        let nearest = self
            .places
            .nearest_within(point, NEAREST_PLACE_MAX_KM, |place| {
                place.has_chinese_name && in_country(place)
            })
            .or_else(|| {
                self.places
                    .nearest_within(point, NEAREST_PLACE_MAX_KM, in_country)
            })
            .map(|(place, _km)| place);
        match (country, nearest) {
            (_, Some(place)) if place.country.is_china() => {
                // Off China's coast (a ferry, a beach the simplified coastline cut off): the
                // place's own region names it fully.
                let at_place = Wgs84::parse(place.lat, place.lng).ok();
                match at_place.and_then(|at| self.china_district(at)) {
                    Some(district) => Some(china_location(district, Source::NearestPlace)),
                    None => Some(Location {
                        place: Place {
                            country: CHINA.to_owned(),
                            city: place.name.clone(),
                            ..Place::default()
                        },
                        source: Source::NearestPlace,
                    }),
                }
            }
            (country, Some(place)) => Some(Location {
                place: Place {
                    country: country
                        .map(|country| country.name.clone())
                        .or_else(|| self.country_names.get(&place.country).cloned())
                        .unwrap_or_default(),
                    city: place.name.clone(),
                    ..Place::default()
                },
                source: Source::NearestPlace,
            }),
            (Some(country), None) => Some(Location {
                place: Place {
                    country: country.name.clone(),
                    ..Place::default()
                },
                source: Source::Country,
            }),
            (None, None) => None,
        }
    }

    fn china_district(&self, point: Wgs84) -> Option<&District> {
        if !point.in_china_box() {
            return None;
        }
        let gcj = point.to_gcj02();
        self.china.containing(gcj.lng, gcj.lat).or_else(|| {
            self.china
                .nearest_within(gcj.lng, gcj.lat, CHINA_EDGE_TOLERANCE_DEG)
        })
    }

    /// Sizes of the loaded data, for the startup log.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.china.len(), self.countries.len(), self.places.len())
    }
}

fn china_location(district: &District, source: Source) -> Location {
    Location {
        place: Place {
            country: CHINA.to_owned(),
            province: district.province.clone(),
            city: district.city.clone(),
            district: district.district.clone(),
        },
        source,
    }
}

#[cfg(test)]
mod tests;

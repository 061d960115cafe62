//! Offline reverse geocoding: a WGS-84 point to Chinese place names (docs/architecture.md,
//! "Offline location").
//!
//! China: the point is shifted to GCJ-02 and tested against China's county-level polygons (AMap
//! lineage, GCJ-02); in Taiwan, whose polygon stops at the province, the first-level division
//! (county or city) names the city. Elsewhere: the country polygon holding the point, its
//! first-level division, and the city the point belongs to among the populated places within
//! 60 km in the same first-level unit (places::PlaceIndex::city_for); where that place is part of
//! a bigger city (a borough), the bigger city with the place as its district
//! (places::PlaceIndex::enclosing). At sea, far from any place: nothing.

mod banded;
pub mod coordinate;
pub mod geodata;
pub mod place;
pub mod places;
mod prepared;
pub mod regions;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use self::coordinate::Wgs84;
use self::place::{CHINA, Location, Place, Source};
use self::places::{CountryCode, NamedPlace, PlaceIndex};
use self::regions::RegionIndex;

/// How far from a point its city may be, on land. A city's own area rarely reaches farther, and
/// beyond it a place name would mislead.
pub const CITY_MAX_KM: f64 = 60.0;
/// Outside every country polygon (at sea, or on a coast the simplified polygons cut off): only a
/// place this close names the point.
pub const OFFSHORE_MAX_KM: f64 = 25.0;
/// The simplification tolerance of the China polygons (degrees): a point that close to a polygon
/// but in none lies in a sliver the simplification opened, so it belongs to the nearest.
pub const CHINA_EDGE_TOLERANCE_DEG: f64 = 0.003;
/// The same for the first-level divisions, simplified at 0.01° and drawn at Natural Earth's
/// 1:10m scale, whose coasts can sit a few kilometres off a beach.
pub const DIVISION_EDGE_TOLERANCE_DEG: f64 = 0.05;
/// The province name China's polygons give all of Taiwan.
const TAIWAN_PROVINCE: &str = "台湾省";

/// A county-level region of China and the names above it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct District {
    pub province: String,
    pub city: String,
    /// Empty where the area has no district name of its own.
    pub district: String,
}

/// A country polygon's code and Chinese name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Country {
    /// None for the disputed zones the World Bank layer draws on their own (戈兰高地, ...):
    /// no GeoNames place carries such a code.
    pub code: Option<CountryCode>,
    pub name: String,
}

/// A country's first-level division (a state, province, prefecture, Taiwan's counties and cities).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Division {
    /// The GeoNames first-level unit it lies in (a US state, England, Île-de-France), which
    /// places carry too; None where unknown. Natural Earth's divisions are finer in places
    /// (London's boroughs) and would cut a city off from its own districts.
    pub unit: Option<u32>,
    pub country: CountryCode,
    /// The zh-CN name, or the local one where there is none.
    pub name: String,
    pub has_chinese_name: bool,
}

/// Everything a lookup needs, built once at start and shared read-only.
pub struct Locator {
    china: RegionIndex<District>,
    countries: RegionIndex<Country>,
    divisions: RegionIndex<Division>,
    places: PlaceIndex,
    /// Chinese (else English) names by country code, for places outside every country polygon.
    country_names: HashMap<CountryCode, String>,
}

impl Locator {
    pub fn new(
        china: RegionIndex<District>,
        countries: RegionIndex<Country>,
        divisions: RegionIndex<Division>,
        places: PlaceIndex,
        country_names: HashMap<CountryCode, String>,
    ) -> Self {
        Self {
            china,
            countries,
            divisions,
            places,
            country_names,
        }
    }

    /// Returns where `point` is, or None at sea far from any place.
    pub fn locate(&self, point: Wgs84) -> Option<Location> {
        if let Some(district) = self.china_district(point) {
            return Some(self.china_location(district, point, Source::ChinaRegion));
        }
        let country = self.countries.containing(point.lng(), point.lat());
        let country_code = country.and_then(|country| country.code);
        let division = self
            .division(point)
            .filter(|division| country_code.is_none_or(|code| division.country == code));
        // Inside a country, only its own places: across a border the nearest town is the
        // neighbour's, and "德国 斯特拉斯堡" would be wrong twice.
        let in_country = |place: &NamedPlace| country_code.is_none_or(|code| place.country == code);
        // Within the unit first: a city in another state or prefecture (Jersey City across the
        // Hudson, Kawasaki next to Tokyo) does not take the point.
        let in_division = |place: &NamedPlace| {
            division
                .and_then(|division| division.unit)
                .is_none_or(|unit| place.unit == unit)
        };
        let max_km = if country.is_some() {
            CITY_MAX_KM
        } else {
            OFFSHORE_MAX_KM
        };
        let city = self
            .places
            .city_for(point, max_km, |place| {
                in_country(place) && in_division(place)
            })
            .or_else(|| self.places.city_for(point, max_km, in_country))
            .map(|(place, _km)| place);
        match (country, city) {
            (_, Some(place)) if place.country.is_china() => {
                // Off China's coast (a ferry, a beach the simplified coastline cut off): the
                // place's own region names it fully.
                let at_place = Wgs84::parse(place.lat, place.lng).ok();
                match at_place.and_then(|at| Some((at, self.china_district(at)?))) {
                    Some((at, district)) => {
                        Some(self.china_location(district, at, Source::NearestPlace))
                    }
                    None => Some(Location {
                        place: Place {
                            country: CHINA.to_owned(),
                            city: place.name.clone(),
                            city_untranslated: !place.has_chinese_name,
                            ..Place::default()
                        },
                        source: Source::NearestPlace,
                    }),
                }
            }
            (country, Some(place)) => {
                let division = division.filter(|division| division.country == place.country);
                // A borough or a quarter of a bigger city names the district: 纽约 曼哈顿. One
                // without a Chinese name is left out rather than shown in a foreign script.
                let (city, district) = match self.places.enclosing(place) {
                    Some(city) if place.has_chinese_name => (city, place.name.clone()),
                    Some(city) => (city, String::new()),
                    None => (place, String::new()),
                };
                Some(Location {
                    place: Place {
                        country: country
                            .map(|country| country.name.clone())
                            .or_else(|| self.country_names.get(&place.country).cloned())
                            .unwrap_or_default(),
                        city: city.name.clone(),
                        city_untranslated: !city.has_chinese_name,
                        district,
                        ..division_names(division)
                    },
                    source: Source::City,
                })
            }
            (Some(country), None) => Some(Location {
                place: Place {
                    country: country.name.clone(),
                    ..division_names(division)
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

    /// The first-level division holding `point` (WGS-84, as Natural Earth's polygons are).
    fn division(&self, point: Wgs84) -> Option<&Division> {
        self.divisions
            .containing(point.lng(), point.lat())
            .or_else(|| {
                self.divisions
                    .nearest_within(point.lng(), point.lat(), DIVISION_EDGE_TOLERANCE_DEG)
            })
    }

    fn china_location(&self, district: &District, point: Wgs84, source: Source) -> Location {
        let mut place = Place {
            country: CHINA.to_owned(),
            province: district.province.clone(),
            city: district.city.clone(),
            district: district.district.clone(),
            ..Place::default()
        };
        if district.province == TAIWAN_PROVINCE {
            // Taiwan's counties and cities are its first-level divisions.
            if let Some(division) = self
                .division(point)
                .filter(|division| division.country == CountryCode::TAIWAN)
            {
                place.city = division.name.clone();
                place.city_untranslated = !division.has_chinese_name;
                place.district = String::new();
            }
        }
        Location { place, source }
    }

    /// Sizes of the loaded data, for the startup log.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.china.len(),
            self.countries.len(),
            self.divisions.len(),
            self.places.len(),
        )
    }
}

/// The province level of a place abroad: its division's name, if it has one.
fn division_names(division: Option<&Division>) -> Place {
    division.map_or_else(Place::default, |division| Place {
        province: division.name.clone(),
        province_untranslated: !division.has_chinese_name,
        ..Place::default()
    })
}

#[cfg(test)]
mod tests;

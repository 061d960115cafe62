//! Nearest named place: GeoNames places in an R-tree of points on the unit sphere, where the
//! straight-line (chord) distance orders places exactly as the great-circle distance does.

use rstar::RTree;
use rstar::primitives::GeomWithData;

use super::coordinate::Wgs84;

/// Mean Earth radius, km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// An ISO 3166 alpha-3 country code ("JPN").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 3]);

impl CountryCode {
    /// Accepts exactly three ASCII capital letters.
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_uppercase)
            .then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII capitals get in (parse), so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Returns true for the codes China's polygons cover (mainland, 台湾, 香港, 澳门).
    pub fn is_china(&self) -> bool {
        matches!(&self.0, b"CHN" | b"TWN" | b"HKG" | b"MAC")
    }
}

/// A named place.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPlace {
    pub lat: f64,
    pub lng: f64,
    pub country: CountryCode,
    /// The Simplified-Chinese name, or the GeoNames name where it has none.
    pub name: String,
    pub has_chinese_name: bool,
}

/// Places indexed for nearest-neighbour search.
pub struct PlaceIndex {
    places: Vec<NamedPlace>,
    tree: RTree<GeomWithData<[f64; 3], usize>>,
}

impl PlaceIndex {
    pub fn new(places: Vec<NamedPlace>) -> Self {
        let points = places
            .iter()
            .enumerate()
            .map(|(index, place)| GeomWithData::new(unit_vector(place.lat, place.lng), index))
            .collect();
        Self {
            places,
            tree: RTree::bulk_load(points),
        }
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Returns the nearest place within `max_km` that `accept` takes, with its distance in km.
    pub fn nearest_within(
        &self,
        point: Wgs84,
        max_km: f64,
        accept: impl Fn(&NamedPlace) -> bool,
    ) -> Option<(&NamedPlace, f64)> {
        let max_chord = chord(max_km);
        let query = unit_vector(point.lat(), point.lng());
        self.tree
            .nearest_neighbor_iter_with_distance_2(&query)
            .take_while(|(_, distance_2)| *distance_2 <= max_chord * max_chord)
            .map(|(entry, distance_2)| (&self.places[entry.data], distance_2))
            .find(|(place, _)| accept(place))
            .map(|(place, distance_2)| (place, arc_km(distance_2.sqrt())))
    }
}

fn unit_vector(lat: f64, lng: f64) -> [f64; 3] {
    let (lat, lng) = (lat.to_radians(), lng.to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

/// The chord between two points `km` apart on the surface, in Earth radii.
fn chord(km: f64) -> f64 {
    2.0 * (km / EARTH_RADIUS_KM / 2.0).sin()
}

fn arc_km(chord: f64) -> f64 {
    2.0 * (chord / 2.0).min(1.0).asin() * EARTH_RADIUS_KM
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(lat: f64, lng: f64, country: &str, name: &str) -> NamedPlace {
        NamedPlace {
            lat,
            lng,
            country: CountryCode::parse(country).unwrap(),
            name: name.into(),
            has_chinese_name: !name.is_ascii(),
        }
    }

    fn index() -> PlaceIndex {
        PlaceIndex::new(vec![
            place(35.6895, 139.69171, "JPN", "东京"),
            place(35.44272, 139.36931, "JPN", "厚木"),
            place(48.5734, 7.7521, "FRA", "斯特拉斯堡"),
            place(48.5705, 7.8162, "DEU", "Kehl"),
            place(0.0, 179.99, "KIR", "East"),
        ])
    }

    #[test]
    fn finds_the_nearest_place_and_its_distance() {
        let index = index();
        let point = Wgs84::parse(35.6896, 139.6917).unwrap();
        let (found, km) = index.nearest_within(point, 25.0, |_| true).unwrap();
        assert_eq!(found.name, "东京");
        assert!(km < 0.05, "{km}");
    }

    #[test]
    fn nothing_beyond_the_radius() {
        let index = index();
        // About 36 km south-west of Atsugi.
        let point = Wgs84::parse(35.2, 139.0).unwrap();
        assert!(index.nearest_within(point, 25.0, |_| true).is_none());
        assert!(index.nearest_within(point, 60.0, |_| true).is_some());
    }

    #[test]
    fn the_filter_skips_places_of_another_country() {
        let index = index();
        // Between Strasbourg and Kehl, nearer Strasbourg: a filter on Germany must give Kehl.
        let point = Wgs84::parse(48.5725, 7.7800).unwrap();
        let (any, _) = index.nearest_within(point, 25.0, |_| true).unwrap();
        assert_eq!(any.name, "斯特拉斯堡");
        let germany = CountryCode::parse("DEU").unwrap();
        let (german, _) = index
            .nearest_within(point, 25.0, |p| p.country == germany)
            .unwrap();
        assert_eq!(german.name, "Kehl");
    }

    #[test]
    fn distances_wrap_around_the_antimeridian() {
        let index = index();
        let point = Wgs84::parse(0.0, -179.99).unwrap();
        let (found, km) = index.nearest_within(point, 25.0, |_| true).unwrap();
        assert_eq!(found.name, "East");
        assert!((km - 2.22).abs() < 0.05, "{km}");
    }

    #[test]
    fn country_codes_are_three_capitals() {
        assert_eq!(CountryCode::parse("JPN").unwrap().as_str(), "JPN");
        assert!(CountryCode::parse("jpn").is_none());
        assert!(CountryCode::parse("JP").is_none());
        assert!(CountryCode::parse("HKG").unwrap().is_china());
        assert!(!CountryCode::parse("JPN").unwrap().is_china());
    }
}

//! Which city a point is in: GeoNames populated places in R-trees of points on the unit sphere,
//! where the straight-line (chord) distance orders places exactly as the great-circle distance
//! does, scored by size against distance.

use rstar::primitives::GeomWithData;
use rstar::{PointDistance as _, RTree};
use serde::{Deserialize, Serialize};

use super::coordinate::Wgs84;

/// Mean Earth radius, km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// An ISO 3166 alpha-3 country code ("JPN").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CountryCode([u8; 3]);

impl CountryCode {
    pub const TAIWAN: Self = Self(*b"TWN");

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

/// A populated place (GeoNames cities500, less sections of cities and historical entries).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedPlace {
    pub lat: f64,
    pub lng: f64,
    pub country: CountryCode,
    /// The GeoNames first-level unit the place is in (numbered as the divisions' units are).
    pub unit: u32,
    pub population: u32,
    /// The zh-CN name, or the GeoNames name where no source has one.
    pub name: String,
    pub has_chinese_name: bool,
    /// The country's capital (GeoNames PPLC): never a part of a bigger city, and the city of
    /// every point its area covers (新德里, inside the much bigger 德里).
    pub capital: bool,
}

/// How much a city's size outweighs its distance: a place scores population / (km + this)².
/// Without the offset, a hamlet a few metres away would beat the capital a kilometre off.
const SCORE_OFFSET_KM: f64 = 3.0;
/// Places smaller than this count as this big: cities500 lists seats of any size, and a place
/// without a census figure is still a place.
const SMALLEST_POPULATION: u32 = 500;
/// A place's own area reaches about 0.012 km × √population from its point (纽约 36 km, a city of
/// 100 000 3.8 km), and at least this far.
const SMALLEST_REACH_KM: f64 = 2.0;
const REACH_KM_PER_ROOT_PERSON: f64 = 0.012;
/// Where no place's area covers the point, places up to this much beyond their reach are still
/// considered (an airport or a suburb just past the edge of its city).
const OUTER_REACH_KM: f64 = 10.0;
/// Places are searched in tiers, largest first; a tier stops as soon as even its largest place
/// could neither cover the point nor beat the best score so far, so the many villages near a big
/// city are never visited.
const TIER_FLOORS: [u32; 4] = [1_000_000, 100_000, 10_000, 0];
/// A place is part of a bigger city (曼哈顿 of 纽约, 1.5 and 8.8 million, 8 km apart) when that
/// city has at least this many times its population...
const ENCLOSING_POPULATION_RATIO: u32 = 5;
/// ...and the place lies within this share of the city's reach: well inside it, not a town on
/// its edge with a life of its own (凡尔赛, 17 km from 巴黎's point, just inside its 17.5 km).
const ENCLOSING_REACH_SHARE: f64 = 0.5;

struct Tier {
    largest: u32,
    tree: RTree<GeomWithData<[f64; 3], usize>>,
}

/// Places indexed for "which city is this point in".
pub struct PlaceIndex {
    places: Vec<NamedPlace>,
    tiers: Vec<Tier>,
    /// The countries' capitals again (a few hundred), searched first.
    capitals: RTree<GeomWithData<[f64; 3], usize>>,
}

/// A place of some population at some distance from the point, as the rules see it.
struct Candidate {
    score: f64,
    /// Its own area covers the point.
    covers: bool,
    /// The point is within its outer reach.
    reaches: bool,
}

impl Candidate {
    fn new(population: u32, km: f64) -> Self {
        let reach = reach_km(population);
        Self {
            score: score(population, km),
            covers: km <= reach,
            reaches: km <= reach + OUTER_REACH_KM,
        }
    }
}

/// The best candidates seen so far, by rule: (index, score, km).
#[derive(Default)]
struct Best {
    /// Among places whose area covers the point.
    covering: Option<(usize, f64, f64)>,
    /// Among places within their outer reach.
    reaching: Option<(usize, f64, f64)>,
}

impl Best {
    fn score(slot: Option<(usize, f64, f64)>) -> f64 {
        slot.map_or(0.0, |(_, score, _)| score)
    }

    fn offer(&mut self, index: usize, population: u32, km: f64) {
        let candidate = Candidate::new(population, km);
        if self.covering_loses_to(&candidate) {
            self.covering = Some((index, candidate.score, km));
        }
        if self.reaching_loses_to(&candidate) {
            self.reaching = Some((index, candidate.score, km));
        }
    }

    /// Whether a place of `population` at `km` or farther could still change the answer.
    fn could_improve(&self, population: u32, km: f64) -> bool {
        let candidate = Candidate::new(population, km);
        self.covering_loses_to(&candidate)
            || (self.covering.is_none() && self.reaching_loses_to(&candidate))
    }

    fn covering_loses_to(&self, candidate: &Candidate) -> bool {
        candidate.covers && candidate.score > Self::score(self.covering)
    }

    fn reaching_loses_to(&self, candidate: &Candidate) -> bool {
        candidate.reaches && candidate.score > Self::score(self.reaching)
    }

    fn answer(&self) -> Option<(usize, f64)> {
        self.covering
            .or(self.reaching)
            .map(|(index, _, km)| (index, km))
    }
}

impl PlaceIndex {
    pub fn new(places: Vec<NamedPlace>) -> Self {
        let mut members: Vec<Vec<GeomWithData<[f64; 3], usize>>> =
            TIER_FLOORS.iter().map(|_| Vec::new()).collect();
        let mut largest = [0u32; TIER_FLOORS.len()];
        for (index, place) in places.iter().enumerate() {
            let tier = TIER_FLOORS
                .iter()
                .position(|floor| place.population >= *floor)
                .unwrap_or(TIER_FLOORS.len() - 1);
            members[tier].push(GeomWithData::new(unit_vector(place.lat, place.lng), index));
            largest[tier] = largest[tier].max(place.population.max(SMALLEST_POPULATION));
        }
        let tiers = members
            .into_iter()
            .zip(largest)
            .map(|(points, largest)| Tier {
                largest,
                tree: RTree::bulk_load(points),
            })
            .collect();
        let capitals: Vec<_> = places
            .iter()
            .enumerate()
            .filter(|(_, place)| place.capital)
            .map(|(index, place)| GeomWithData::new(unit_vector(place.lat, place.lng), index))
            .collect();
        let capitals = RTree::bulk_load(capitals);
        Self {
            places,
            tiers,
            capitals,
        }
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Returns the city `point` belongs to among the places within `max_km` that `accept`
    /// takes, with its distance in km. Of the places whose area covers the point (about
    /// 0.012 km × √population around them), the one with the highest population / (km + 3)²:
    /// a big city wins over the neighbourhood next to the point (Times Square is in 纽约), and a
    /// village 45 km out is not. Where none covers it, the same among places up to 10 km past
    /// their reach (an airport beyond its city's edge); else the nearest place.
    pub fn city_for(
        &self,
        point: Wgs84,
        max_km: f64,
        accept: impl Fn(&NamedPlace) -> bool,
    ) -> Option<(&NamedPlace, f64)> {
        let max_chord_2 = chord(max_km).powi(2);
        let query = unit_vector(point.lat(), point.lng());
        if let Some(found) = self.capital_around(&query, max_chord_2, &accept) {
            return Some(found);
        }
        let mut best = Best::default();
        for tier in &self.tiers {
            // A tier whose largest place could not win even at the point is not searched.
            if !best.could_improve(tier.largest, 0.0) {
                continue;
            }
            // Only places within their outer reach can cover or reach the point: a range query
            // as wide as the tier's largest place reaches, with no queue of nearest entries.
            let radius_2 = chord(reach_km(tier.largest) + OUTER_REACH_KM)
                .powi(2)
                .min(max_chord_2);
            for entry in tier.tree.locate_within_distance(query, radius_2) {
                let place = &self.places[entry.data];
                if accept(place) {
                    let km = arc_km(entry.distance_2(&query).sqrt());
                    best.offer(entry.data, place.population, km);
                }
            }
        }
        best.answer()
            .or_else(|| self.nearest(&query, max_chord_2, &accept))
            .map(|(index, km)| (&self.places[index], km))
    }

    /// The nearest place `accept` takes within the chord, of any size: where no place's area
    /// reaches the point (a farm, a mountain, a beach), the nearest names it.
    fn nearest(
        &self,
        query: &[f64; 3],
        max_chord_2: f64,
        accept: &impl Fn(&NamedPlace) -> bool,
    ) -> Option<(usize, f64)> {
        self.tiers
            .iter()
            .filter_map(|tier| {
                tier.tree
                    .nearest_neighbor_iter_with_distance_2(query)
                    .take_while(|(_, distance_2)| *distance_2 <= max_chord_2)
                    .find(|(entry, _)| accept(&self.places[entry.data]))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(entry, distance_2)| (entry.data, arc_km(distance_2.sqrt())))
    }

    /// The nearest capital, if its inner area (half its reach) holds the point: a capital is the
    /// city of its own centre even inside a bigger city (新德里 in 德里), and the rule stays
    /// clear of the towns at its edge. Capitals lie far apart, so the nearest is the only one
    /// whose inner area can hold the point.
    fn capital_around(
        &self,
        query: &[f64; 3],
        max_chord_2: f64,
        accept: &impl Fn(&NamedPlace) -> bool,
    ) -> Option<(&NamedPlace, f64)> {
        let nearest = self.capitals.nearest_neighbor(query)?;
        let distance_2 = nearest
            .geom()
            .iter()
            .zip(query)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>();
        let km = arc_km(distance_2.sqrt());
        let place = &self.places[nearest.data];
        (distance_2 <= max_chord_2
            && km <= reach_km(place.population) * ENCLOSING_REACH_SHARE
            && accept(place))
        .then_some((place, km))
    }

    /// Returns the bigger city `place` is a part of, if any: the most populous place of the same
    /// country and unit with at least 5 times its population whose area reaches well past it
    /// (`place` within half its reach). 曼哈顿 is part of 纽约; 凡尔赛 is not part of 巴黎, and
    /// a capital is part of nothing.
    pub fn enclosing(&self, place: &NamedPlace) -> Option<&NamedPlace> {
        if place.capital {
            return None;
        }
        let floor = place
            .population
            .max(SMALLEST_POPULATION)
            .saturating_mul(ENCLOSING_POPULATION_RATIO);
        let query = unit_vector(place.lat, place.lng);
        let mut best: Option<&NamedPlace> = None;
        for tier in self.tiers.iter().filter(|tier| tier.largest >= floor) {
            let radius_2 = chord(reach_km(tier.largest) * ENCLOSING_REACH_SHARE).powi(2);
            for entry in tier.tree.locate_within_distance(query, radius_2) {
                let km = arc_km(entry.distance_2(&query).sqrt());
                let candidate = &self.places[entry.data];
                if candidate.population >= floor
                    && km <= reach_km(candidate.population) * ENCLOSING_REACH_SHARE
                    && candidate.country == place.country
                    && candidate.unit == place.unit
                    && best.is_none_or(|best| candidate.population > best.population)
                {
                    best = Some(candidate);
                }
            }
        }
        best
    }
}

fn score(population: u32, km: f64) -> f64 {
    f64::from(population.max(SMALLEST_POPULATION)) / (km + SCORE_OFFSET_KM).powi(2)
}

fn reach_km(population: u32) -> f64 {
    (REACH_KM_PER_ROOT_PERSON * f64::from(population).sqrt()).max(SMALLEST_REACH_KM)
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

    fn place(lat: f64, lng: f64, country: &str, population: u32, name: &str) -> NamedPlace {
        NamedPlace {
            lat,
            lng,
            country: CountryCode::parse(country).unwrap(),
            unit: 0,
            population,
            name: name.into(),
            has_chinese_name: !name.is_ascii(),
            capital: false,
        }
    }

    fn index() -> PlaceIndex {
        PlaceIndex::new(vec![
            place(40.71427, -74.00597, "USA", 8_804_190, "纽约"),
            place(40.76955, -73.97791, "USA", 20_000, "Midtown"),
            place(40.7282, -74.0776, "USA", 292_449, "泽西市"),
            place(41.0, -73.6, "USA", 600, "Village"),
            place(48.5734, 7.7521, "FRA", 290_576, "斯特拉斯堡"),
            place(48.5705, 7.8162, "DEU", 36_000, "Kehl"),
            place(0.0, 179.99, "KIR", 800, "East"),
        ])
    }

    #[test]
    fn a_big_city_a_few_km_off_wins_over_a_small_place_next_to_the_point() {
        let index = index();
        // Times Square: 6.5 km from 纽约's point, 1 km from "Midtown".
        let point = Wgs84::parse(40.7580, -73.9855).unwrap();
        let (found, km) = index.city_for(point, 60.0, |_| true).unwrap();
        assert_eq!(found.name, "纽约");
        assert!((km - 5.6).abs() < 1.0, "{km}");
    }

    #[test]
    fn a_village_45_km_from_a_big_city_is_in_the_village() {
        let index = index();
        // 纽约 would score higher, but its area does not reach this far.
        let point = Wgs84::parse(41.001, -73.601).unwrap();
        let (found, _) = index.city_for(point, 60.0, |_| true).unwrap();
        assert_eq!(found.name, "Village");
        // 10 km from the village and 49 km from 纽约, beyond its reach (36 km) and 10 km more:
        // the nearest place, as nothing covers the point.
        let point = Wgs84::parse(41.09, -73.6).unwrap();
        let (found, km) = index.city_for(point, 60.0, |_| true).unwrap();
        assert_eq!(found.name, "Village");
        assert!((km - 10.0).abs() < 0.5, "{km}");
    }

    #[test]
    fn beyond_a_city_s_edge_it_still_wins_within_its_outer_reach() {
        // An airport 12 km from a city of 300 000 (reach 6.6 km), hamlets 2.4 and 4.7 km off:
        // nothing covers the point, the city is within its reach and 10 km more.
        let index = PlaceIndex::new(vec![
            place(35.0, 140.0, "JPN", 300_000, "成田"),
            place(35.13, 140.0, "JPN", 0, "Hamlet"),
            place(35.15, 140.0, "JPN", 0, "Other"),
        ]);
        let point = Wgs84::parse(35.108, 140.0).unwrap();
        let (found, km) = index.city_for(point, 60.0, |_| true).unwrap();
        assert_eq!(found.name, "成田", "{km}");
    }

    #[test]
    fn a_borough_well_inside_a_bigger_city_is_part_of_it() {
        let mut jersey_city = place(40.7282, -74.0776, "USA", 292_449, "泽西市");
        jersey_city.unit = 1; // New Jersey, across the Hudson
        let index = PlaceIndex::new(vec![
            place(40.71427, -74.00597, "USA", 8_804_190, "纽约"),
            place(40.78343, -73.96625, "USA", 1_487_536, "曼哈顿"),
            jersey_city.clone(),
            place(48.85341, 2.3488, "FRA", 2_138_551, "巴黎"),
            place(48.80359, 2.13424, "FRA", 85_416, "凡尔赛"),
            place(48.8846, 2.2697, "FRA", 60_000, "讷伊"),
        ]);
        let named = |name: &str| index.places.iter().find(|p| p.name == name).unwrap();
        assert_eq!(index.enclosing(named("曼哈顿")).unwrap().name, "纽约");
        assert_eq!(index.enclosing(named("讷伊")).unwrap().name, "巴黎");
        // 17 km out, at the edge of 巴黎's reach: a town of its own.
        assert!(index.enclosing(named("凡尔赛")).is_none());
        // Another state, and the big cities themselves.
        assert!(index.enclosing(&jersey_city).is_none());
        assert!(index.enclosing(named("纽约")).is_none());
        assert!(index.enclosing(named("巴黎")).is_none());
    }

    #[test]
    fn a_capital_names_its_centre_even_inside_a_bigger_city() {
        let new_delhi = NamedPlace {
            capital: true,
            ..place(28.63576, 77.22445, "IND", 317_797, "新德里")
        };
        let index = PlaceIndex::new(vec![
            place(28.65195, 77.23149, "IND", 10_927_986, "德里"),
            new_delhi.clone(),
        ]);
        // India Gate, 2.5 km from 新德里's point (half its reach: 3.4 km).
        let india_gate = Wgs84::parse(28.6129, 77.2295).unwrap();
        assert_eq!(
            index.city_for(india_gate, 60.0, |_| true).unwrap().0.name,
            "新德里"
        );
        // 8 km north, well inside 德里 and beyond the capital's centre.
        let north = Wgs84::parse(28.71, 77.21).unwrap();
        assert_eq!(
            index.city_for(north, 60.0, |_| true).unwrap().0.name,
            "德里"
        );
        // The filter applies to the capital too.
        let found = index.city_for(india_gate, 60.0, |p| !p.capital).unwrap();
        assert_eq!(found.0.name, "德里");
        assert!(index.enclosing(&new_delhi).is_none());
    }

    #[test]
    fn nothing_beyond_the_radius() {
        let index = index();
        let point = Wgs84::parse(44.0, -70.0).unwrap();
        assert!(index.city_for(point, 60.0, |_| true).is_none());
    }

    #[test]
    fn the_filter_skips_places_of_another_country() {
        let index = index();
        // Between Strasbourg and Kehl, nearer Kehl: a filter on Germany must give Kehl, none on
        // the country the bigger Strasbourg.
        let point = Wgs84::parse(48.5710, 7.8100).unwrap();
        let (any, _) = index.city_for(point, 60.0, |_| true).unwrap();
        assert_eq!(any.name, "斯特拉斯堡");
        let germany = CountryCode::parse("DEU").unwrap();
        let (german, _) = index
            .city_for(point, 60.0, |p| p.country == germany)
            .unwrap();
        assert_eq!(german.name, "Kehl");
    }

    #[test]
    fn distances_wrap_around_the_antimeridian() {
        let index = index();
        let point = Wgs84::parse(0.0, -179.99).unwrap();
        let (found, km) = index.city_for(point, 25.0, |_| true).unwrap();
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

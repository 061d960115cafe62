//! The lookup rules on small made-up data (the real data is tested in tests/it and e2e).

use geo::{MultiPolygon, polygon};

use super::*;
use crate::domain::location::places::NamedPlace;

fn rectangle(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> MultiPolygon<f64> {
    MultiPolygon(vec![polygon![
        (x: min_x, y: min_y),
        (x: max_x, y: min_y),
        (x: max_x, y: max_y),
        (x: min_x, y: max_y),
        (x: min_x, y: min_y),
    ]])
}

fn code(code: &str) -> CountryCode {
    CountryCode::parse(code).unwrap()
}

fn locator() -> Locator {
    let dongcheng = District {
        province: "北京市".into(),
        city: "北京市".into(),
        district: "东城区".into(),
    };
    // In GCJ-02, as AMap's polygons are.
    let china = RegionIndex::new([(dongcheng, rectangle(116.38, 39.88, 116.44, 39.94))]);
    let japan = Country {
        code: Some(code("JPN")),
        name: "日本".into(),
    };
    let countries = RegionIndex::new([(japan, rectangle(139.0, 35.0, 141.0, 37.0))]);
    let places = PlaceIndex::new(vec![
        NamedPlace {
            lat: 35.6895,
            lng: 139.69171,
            country: code("JPN"),
            name: "东京".into(),
            has_chinese_name: true,
        },
        NamedPlace {
            lat: 35.70,
            lng: 139.70,
            country: code("JPN"),
            name: "Okubo".into(),
            has_chinese_name: false,
        },
        NamedPlace {
            lat: 39.905,
            lng: 116.40,
            country: code("CHN"),
            name: "东城".into(),
            has_chinese_name: true,
        },
        NamedPlace {
            lat: 1.29,
            lng: 103.85,
            country: code("SGP"),
            name: "新加坡".into(),
            has_chinese_name: true,
        },
    ]);
    let names = [(code("SGP"), "新加坡".to_owned())].into_iter().collect();
    Locator::new(china, countries, places, names)
}

fn locate(lat: f64, lng: f64) -> Option<Location> {
    locator().locate(Wgs84::parse(lat, lng).unwrap())
}

#[test]
fn china_points_get_province_city_district() {
    let found = locate(39.9087, 116.3975).unwrap();
    assert_eq!(found.source, Source::ChinaRegion);
    assert_eq!(found.place.country, "中国");
    assert_eq!(found.place.province, "北京市");
    assert_eq!(found.place.district, "东城区");
    assert_eq!(found.place.display(), "北京市 东城区");
}

#[test]
fn gps_points_are_shifted_to_gcj02_before_the_polygon_test() {
    // West of the polygon's edge as a raw WGS-84 number, inside it once shifted (~600 m east).
    let found = locate(39.9087, 116.376).unwrap();
    assert_eq!(found.place.district, "东城区");
    // East of the edge by more than the shift plus the tolerance: not in the polygon.
    let locator = locator();
    let outside = locator.china_district(Wgs84::parse(39.9087, 116.44).unwrap());
    assert!(outside.is_none());
}

#[test]
fn off_china_s_coast_the_nearest_place_s_region_answers() {
    // About 14 km east of the polygon: no polygon, but a Chinese place within 25 km.
    let found = locate(39.95, 116.55).unwrap();
    assert_eq!(found.source, Source::NearestPlace);
    assert_eq!(found.place.display(), "北京市 东城区");
}

#[test]
fn abroad_the_country_and_the_nearest_place() {
    let found = locate(35.6896, 139.6917).unwrap();
    assert_eq!(found.source, Source::NearestPlace);
    assert_eq!(found.place.country, "日本");
    assert_eq!(found.place.city, "东京");
    assert_eq!(found.place.display(), "日本 东京");
}

#[test]
fn a_place_with_a_chinese_name_wins_over_a_nearer_one_without() {
    // 200 m from "Okubo", 1.5 km from 东京.
    let found = locate(35.7015, 139.7015).unwrap();
    assert_eq!(found.place.city, "东京");
    // Without any Chinese-named place in reach, the local name is used.
    let locator = Locator::new(
        RegionIndex::new([]),
        RegionIndex::new([]),
        PlaceIndex::new(vec![NamedPlace {
            lat: 48.8566,
            lng: 2.2769,
            country: code("FRA"),
            name: "Paris 16 Passy".into(),
            has_chinese_name: false,
        }]),
        HashMap::from([(code("FRA"), "法国".to_owned())]),
    );
    let found = locator
        .locate(Wgs84::parse(48.8584, 2.2945).unwrap())
        .unwrap();
    assert_eq!(found.place.display(), "法国 Paris 16 Passy");
}

#[test]
fn far_from_any_place_only_the_country() {
    let found = locate(36.9, 140.9).unwrap();
    assert_eq!(found.source, Source::Country);
    assert_eq!(found.place.display(), "日本");
}

#[test]
fn a_place_outside_every_country_polygon_names_its_country() {
    let found = locate(1.30, 103.86).unwrap();
    assert_eq!(found.place.country, "新加坡");
    assert_eq!(found.place.display(), "新加坡");
}

#[test]
fn the_open_sea_is_nowhere() {
    assert_eq!(locate(30.0, -150.0), None);
    assert_eq!(locate(20.0, 125.0), None, "inside the China box, at sea");
}

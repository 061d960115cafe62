//! The lookup rules on small made-up data (the real data is tested in tests/it and e2e).

use geo::{MultiPolygon, polygon};

use super::*;
use crate::Division;
use crate::places::NamedPlace;

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

fn place(lat: f64, lng: f64, country: &str, unit: u32, population: u32, name: &str) -> NamedPlace {
    NamedPlace {
        lat,
        lng,
        country: code(country),
        unit,
        population,
        name: name.into(),
        has_chinese_name: !name.is_ascii(),
        capital: false,
    }
}

fn division(unit: u32, country: &str, name: &str) -> Division {
    Division {
        unit: Some(unit),
        country: code(country),
        name: name.into(),
        has_chinese_name: !name.is_ascii(),
    }
}

fn locator() -> Locator {
    let dongcheng = District {
        province: "北京市".into(),
        city: "北京市".into(),
        district: "东城区".into(),
    };
    let taiwan = District {
        province: "台湾省".into(),
        city: "台湾省".into(),
        district: "台湾省".into(),
    };
    // In GCJ-02, as AMap's polygons are.
    let china = RegionIndex::new([
        (dongcheng, rectangle(116.38, 39.88, 116.44, 39.94)),
        (taiwan, rectangle(120.0, 22.0, 122.0, 25.3)),
    ]);
    let japan = Country {
        code: Some(code("JPN")),
        name: "日本".into(),
    };
    let countries = RegionIndex::new([(japan, rectangle(139.0, 35.0, 141.0, 37.0))]);
    // Tokyo (north of 35.5) and Kanagawa; Taipei. WGS-84, as Natural Earth's polygons are.
    let divisions = RegionIndex::new([
        (
            division(0, "JPN", "东京都"),
            rectangle(139.0, 35.5, 141.0, 37.0),
        ),
        (
            division(1, "JPN", "Kanagawa"),
            rectangle(139.0, 35.0, 141.0, 35.5),
        ),
        (
            division(2, "TWN", "台北市"),
            rectangle(121.4, 24.9, 121.7, 25.2),
        ),
    ]);
    let places = PlaceIndex::new(vec![
        place(35.6895, 139.69171, "JPN", 0, 8_336_599, "东京"),
        place(35.70, 139.70, "JPN", 0, 2_000, "Okubo"),
        // Kawasaki: big, just south of Tokyo's edge, in the other division.
        place(35.49, 139.70, "JPN", 1, 1_500_000, "川崎"),
        place(36.95, 140.95, "JPN", 0, 600, "Kitaibaraki"),
        place(39.905, 116.40, "CHN", 9, 1_000_000, "东城"),
        place(1.29, 103.85, "SGP", 9, 5_600_000, "新加坡"),
    ]);
    let names = [(code("SGP"), "新加坡".to_owned())].into_iter().collect();
    Locator::new(china, countries, divisions, places, names)
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
fn abroad_the_country_the_division_and_the_city() {
    let found = locate(35.6896, 139.6917).unwrap();
    assert_eq!(found.source, Source::City);
    assert_eq!(found.place.country, "日本");
    assert_eq!(found.place.province, "东京都");
    assert_eq!(found.place.city, "东京");
    assert!(!found.place.city_untranslated);
    assert_eq!(found.place.display(), "日本 东京");
}

#[test]
fn a_big_city_wins_over_a_small_place_next_to_the_point() {
    // 200 m from "Okubo", 1.5 km from 东京.
    let found = locate(35.7015, 139.7015).unwrap();
    assert_eq!(found.place.city, "东京");
}

#[test]
fn a_city_in_another_division_does_not_take_the_point() {
    // Just north of the line, 2 km from 川崎 and 20 km from 东京: by size and distance alone
    // 川崎 would win; the division keeps the point in 东京.
    let found = locate(35.505, 139.70).unwrap();
    assert_eq!(found.place.province, "东京都");
    assert_eq!(found.place.city, "东京");
    // Just south of it, in Kanagawa, whose name no source has in Chinese.
    let found = locate(35.495, 139.70).unwrap();
    assert_eq!(found.place.city, "川崎");
    assert_eq!(found.place.province, "Kanagawa");
    assert!(found.place.province_untranslated);
}

#[test]
fn a_local_name_is_marked_untranslated() {
    let found = locate(36.951, 140.951).unwrap();
    assert_eq!(found.place.city, "Kitaibaraki");
    assert!(found.place.city_untranslated);
    assert_eq!(found.place.display(), "日本 Kitaibaraki");
}

#[test]
fn far_from_any_city_the_country_and_its_division() {
    // More than 60 km from every place.
    let found = locate(36.3, 140.9).unwrap();
    assert_eq!(found.source, Source::Country);
    assert_eq!(found.place.display(), "日本 东京都");
}

#[test]
fn taiwan_is_named_to_its_county_or_city() {
    // 台北101: China's polygons say 台湾省, the division says which city.
    let found = locate(25.0340, 121.5645).unwrap();
    assert_eq!(found.source, Source::ChinaRegion);
    assert_eq!(found.place.province, "台湾省");
    assert_eq!(found.place.city, "台北市");
    assert_eq!(found.place.display(), "台湾省 台北市");
    // Where no division is known, the province alone, as before.
    let found = locate(23.0, 120.5).unwrap();
    assert_eq!(found.place.display(), "台湾省");
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

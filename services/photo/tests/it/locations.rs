//! Known places across China's provinces, municipalities and special regions, abroad and at sea.
//! One test loads the data once and checks a table, so a failure lists every wrong row.

use std::time::Instant;

use photo_svc::location::Locator;
use photo_svc::location::coordinate::Wgs84;

fn load() -> Locator {
    let started = Instant::now();
    let dir = photo_svc::location::geodata::default_dir();
    let locator = photo_svc::location::geodata::load(&dir)
        .expect("geodata (run deploy/local/fetch-geodata.sh)");
    eprintln!("geodata loaded in {:?}", started.elapsed());
    locator
}

fn display(locator: &Locator, lat: f64, lng: f64) -> String {
    locator
        .locate(Wgs84::parse(lat, lng).unwrap())
        .map(|found| found.place.display())
        .unwrap_or_default()
}

#[test]
fn known_places_get_their_chinese_names() {
    let locator = load();
    // WGS-84 as a phone's GPS writes them.
    let table: &[(f64, f64, &str)] = &[
        (39.9087, 116.3975, "北京市 东城区"),           // 天安门
        (31.2380, 121.4860, "上海市 黄浦区"),           // 外滩
        (30.2437, 120.1410, "浙江省 杭州市 西湖区"),    // 西湖
        (23.1064, 113.3245, "广东省 广州市 海珠区"),    // 广州塔
        (22.5431, 114.0579, "广东省 深圳市 福田区"),    // 深圳市民中心
        (30.6598, 104.0633, "四川省 成都市 青羊区"),    // 成都人民公园
        (39.1255, 117.1902, "天津市 和平区"),           // 天津
        (29.5575, 106.5770, "重庆市 渝中区"),           // 解放碑
        (22.2819, 114.1582, "香港特别行政区 中西区"),   // 中环
        (22.1987, 113.5439, "澳门特别行政区 花王堂区"), // 澳门
        (25.0330, 121.5654, "台湾省 台北市"),           // 台北101
        (30.3724, 113.4540, "湖北省 仙桃市"),           // a city without districts
        (43.8256, 87.6168, "新疆维吾尔自治区 乌鲁木齐市 水磨沟区"),
        (29.6525, 91.1721, "西藏自治区 拉萨市 城关区"), // 布达拉宫
        (35.6896, 139.6917, "日本 东京"),
        (48.8530, 2.3499, "法国 巴黎"),       // 西岱岛
        (23.0, 5.0, "阿尔及利亚 塔曼拉塞特"), // the Sahara: a country and its division, no town near
        (30.0, -150.0, ""),                   // the Pacific
        (-45.0, 30.0, ""),                    // the Southern Ocean
    ];
    let wrong: Vec<String> = table
        .iter()
        .map(|(lat, lng, expected)| (lat, lng, expected, display(&locator, *lat, *lng)))
        .filter(|(_, _, expected, got)| got != *expected)
        .map(|(lat, lng, expected, got)| format!("({lat}, {lng}): want {expected:?}, got {got:?}"))
        .collect();
    assert!(wrong.is_empty(), "wrong places:\n{}", wrong.join("\n"));
}

/// One row of `location-quality.tsv`.
struct Sight<'a> {
    lat: f64,
    lng: f64,
    country: &'a str,
    cities: Vec<&'a str>,
    district: &'a str,
    what: &'a str,
}

fn sights() -> Vec<Sight<'static>> {
    include_str!("location-quality.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 6, "{line:?}");
            Sight {
                lat: fields[0].parse().unwrap(),
                lng: fields[1].parse().unwrap(),
                country: fields[2],
                cities: fields[3].split('|').collect(),
                district: fields[4],
                what: fields[5],
            }
        })
        .collect()
}

/// "札幌市" and "札幌", "釜山广域市" and "釜山" name the same city: the suffix is not counted.
fn without_city_suffix(name: &str) -> &str {
    ["广域市", "特别市", "市"]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|stem| stem.chars().count() >= 2)
        })
        .unwrap_or(name)
}

/// The quality table: at least 200 points in 40+ countries. The figure and the misses are printed
/// (`cargo nextest run -p photo-svc --no-capture -E 'test(quality)'`) and kept in the README; the
/// test fails if fewer points than the README states get their city.
#[test]
fn quality_table_of_sights_and_city_centres() {
    let locator = load();
    let sights = sights();
    let countries: std::collections::HashSet<&str> = sights.iter().map(|s| s.country).collect();
    assert!(sights.len() >= 200 && countries.len() >= 40);
    let mut misses = Vec::new();
    for sight in &sights {
        let found = locator
            .locate(Wgs84::parse(sight.lat, sight.lng).unwrap())
            .map(|found| found.place)
            .unwrap_or_default();
        let city = if found.city.is_empty() {
            &found.province
        } else {
            &found.city
        };
        let city_ok = sight
            .cities
            .iter()
            .any(|want| without_city_suffix(want) == without_city_suffix(city));
        let checks_district = matches!(sight.country, "HK" | "MO") && !sight.district.is_empty();
        let district_ok = !checks_district || found.district == sight.district;
        if !(city_ok && district_ok) {
            misses.push(format!(
                "{} ({}, {}) {}: want {}{}, got {:?}",
                sight.what,
                sight.lat,
                sight.lng,
                sight.country,
                sight.cities.join("|"),
                if checks_district {
                    format!(" {}", sight.district)
                } else {
                    String::new()
                },
                found.display(),
            ));
        }
    }
    let hits = sights.len() - misses.len();
    eprintln!(
        "location quality: {hits}/{} = {:.1}% in {} countries and regions; misses:\n{}",
        sights.len(),
        100.0 * hits as f64 / sights.len() as f64,
        countries.len(),
        misses.join("\n")
    );
    assert!(
        hits >= QUALITY_HITS,
        "fewer hits than the README states: {hits} < {QUALITY_HITS}"
    );
}

/// Hits on the quality table with the pinned data (README, "Location quality").
const QUALITY_HITS: usize = 227;

/// A copy of the data files in a fresh directory of their own, with their modification times.
fn copy_of_the_data() -> std::path::PathBuf {
    let from = photo_svc::location::geodata::default_dir();
    let to = std::env::temp_dir().join(format!(
        "xintu-geo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".geojson") || name.ends_with(".tsv") || name == "manifest.json" {
            std::fs::copy(entry.path(), to.join(&*name)).unwrap();
        }
    }
    to
}

/// Overwrites a file with as many bytes of nonsense, keeping its modification time: only the
/// prepared copy, keyed by size and time, can still answer for it.
fn spoil_keeping_size_and_time(path: &std::path::Path) {
    let meta = std::fs::metadata(path).unwrap();
    let modified = meta.modified().unwrap();
    std::fs::write(path, vec![b'x'; meta.len() as usize]).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(modified).unwrap();
}

#[test]
fn the_prepared_copy_answers_as_the_files_do_until_a_file_changes() {
    let dir = copy_of_the_data();
    let prepared = dir.join(".locator-prepared.bin");
    let started = Instant::now();
    let parsed = photo_svc::location::geodata::load(&dir).unwrap();
    eprintln!("parsed in {:?}", started.elapsed());
    assert!(prepared.exists(), "the first load leaves a prepared copy");

    // The files no longer parse, but their names, sizes and times are those the copy was made
    // of: the copy answers, exactly as the files did.
    let districts = dir.join("china-districts.geojson");
    spoil_keeping_size_and_time(&districts);
    let started = Instant::now();
    let read = photo_svc::location::geodata::load(&dir).unwrap();
    eprintln!("read back in {:?}", started.elapsed());
    assert_eq!(read.counts(), parsed.counts());
    for sight in sights() {
        assert_eq!(
            display(&read, sight.lat, sight.lng),
            display(&parsed, sight.lat, sight.lng),
            "{}",
            sight.what
        );
    }

    // A file changed since (its time moved): the copy is not used, and the file is read.
    let file = std::fs::File::options()
        .write(true)
        .open(&districts)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    let refused = photo_svc::location::geodata::load(&dir);
    assert!(
        matches!(
            refused,
            Err(photo_svc::location::geodata::GeodataError::Malformed { .. })
        ),
        "the changed file was parsed"
    );

    // A copy that is not one (cut short) is passed over: the files answer, and a good copy
    // replaces it.
    std::fs::copy(
        photo_svc::location::geodata::default_dir().join("china-districts.geojson"),
        &districts,
    )
    .unwrap();
    std::fs::write(&prepared, b"short").unwrap();
    let again = photo_svc::location::geodata::load(&dir).unwrap();
    assert_eq!(again.counts(), parsed.counts());
    assert!(std::fs::metadata(&prepared).unwrap().len() > 1_000_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

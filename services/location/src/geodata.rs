//! Loads the location data that `deploy/local/fetch-geodata.sh` prepares (never downloaded at run
//! time): China's county polygons, country polygons and names, the world's first-level divisions,
//! GeoNames populated places with their zh-CN names.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use geo::MultiPolygon;
use serde::{Deserialize, Serialize};

use crate::places::{CountryCode, NamedPlace, PlaceIndex};
use crate::prepared;
use crate::regions::RegionIndex;
use crate::{Country, District, Division, Locator};

/// The `format` in manifest.json this code reads (deploy/local/prepare_geodata.py `FORMAT`).
pub const FORMAT: u32 = 3;

/// Data that cannot be used; the message says how to get good data.
#[derive(Debug, thiserror::Error)]
pub enum GeodataError {
    #[error("cannot read {path}: {source} (run deploy/local/fetch-geodata.sh)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason} (run deploy/local/fetch-geodata.sh)")]
    Malformed { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
struct Manifest {
    format: u32,
}

#[derive(Deserialize)]
struct DistrictFeature {
    #[serde(deserialize_with = "geojson::de::deserialize_geometry")]
    geometry: MultiPolygon<f64>,
    province: String,
    city: String,
    district: String,
}

#[derive(Deserialize)]
struct CountryFeature {
    #[serde(deserialize_with = "geojson::de::deserialize_geometry")]
    geometry: MultiPolygon<f64>,
    iso3: String,
    name: String,
}

#[derive(Deserialize)]
struct DivisionFeature {
    #[serde(deserialize_with = "geojson::de::deserialize_geometry")]
    geometry: MultiPolygon<f64>,
    iso3: String,
    name: String,
    zh: bool,
    /// -1 where unknown.
    unit: i64,
}

/// The data files, read and parsed, before they are indexed: what the prepared copy holds.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Parsed {
    districts: Vec<(District, MultiPolygon<f64>)>,
    countries: Vec<(Country, MultiPolygon<f64>)>,
    divisions: Vec<(Division, MultiPolygon<f64>)>,
    places: Vec<NamedPlace>,
    country_names: HashMap<CountryCode, String>,
}

/// The files `parse` reads (besides the manifest): the prepared copy is keyed by them.
pub(super) const SOURCES: [&str; 5] = [
    "china-districts.geojson",
    "countries.geojson",
    "countries.tsv",
    "admin1.geojson",
    "places.tsv",
];

/// Reads the data in `dir` and builds the lookup indexes; call it once, off the async runtime.
/// Parsing the files takes about a second; a binary copy of what they parse to is kept beside
/// them (see `prepared`), so the next start (every end-to-end test starts the service) reads
/// that instead, while the files are unchanged.
pub fn load(dir: &Path) -> Result<Locator, GeodataError> {
    let manifest_path = dir.join("manifest.json");
    let manifest: Manifest = serde_json::from_reader(open(&manifest_path)?)
        .map_err(|err| malformed(&manifest_path, err))?;
    if manifest.format != FORMAT {
        return Err(malformed(
            &manifest_path,
            format!("format {}, this build reads {FORMAT}", manifest.format),
        ));
    }
    let key = prepared::key(dir);
    let parsed = match key.as_ref().and_then(|key| prepared::read(dir, key)) {
        Some(parsed) => parsed,
        None => {
            let parsed = parse(dir)?;
            if let Some(key) = &key {
                prepared::write(dir, key, &parsed);
            }
            parsed
        }
    };
    Ok(parsed.into_locator())
}

impl Parsed {
    /// One of each kind of record, for the tests of the prepared copy's layout.
    #[cfg(test)]
    pub(super) fn sample() -> Self {
        use geo::{LineString, Polygon};
        let square = MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]),
            vec![],
        )]);
        let japan = CountryCode::parse("JPN").expect("a code");
        Self {
            districts: vec![(
                District {
                    province: "浙江省".into(),
                    city: "杭州市".into(),
                    district: "西湖区".into(),
                },
                square.clone(),
            )],
            countries: vec![(
                Country {
                    code: Some(japan),
                    name: "日本".into(),
                },
                square.clone(),
            )],
            divisions: vec![(
                Division {
                    unit: Some(40),
                    country: japan,
                    name: "东京".into(),
                    has_chinese_name: true,
                },
                square,
            )],
            places: vec![NamedPlace {
                lat: 35.6895,
                lng: 139.6917,
                country: japan,
                unit: 40,
                population: 8_336_599,
                name: "东京".into(),
                has_chinese_name: true,
                capital: true,
            }],
            country_names: HashMap::from([(japan, "日本".into())]),
        }
    }

    fn into_locator(self) -> Locator {
        Locator::new(
            RegionIndex::new(self.districts),
            RegionIndex::new(self.countries),
            RegionIndex::new(self.divisions),
            PlaceIndex::new(self.places),
            self.country_names,
        )
    }
}

/// Reads and parses every data file in `dir`.
pub(super) fn parse(dir: &Path) -> Result<Parsed, GeodataError> {
    let path = dir.join("china-districts.geojson");
    let districts: Vec<DistrictFeature> =
        geojson::de::deserialize_feature_collection_to_vec(open(&path)?)
            .map_err(|err| malformed(&path, err))?;
    let districts = districts
        .into_iter()
        .map(|feature| {
            let district = District {
                province: feature.province,
                city: feature.city,
                district: feature.district,
            };
            (district, feature.geometry)
        })
        .collect();

    let path = dir.join("countries.geojson");
    let features: Vec<CountryFeature> =
        geojson::de::deserialize_feature_collection_to_vec(open(&path)?)
            .map_err(|err| malformed(&path, err))?;
    let mut countries = Vec::with_capacity(features.len());
    for feature in features {
        countries.push((
            Country {
                // Disputed zones have composite codes ("ISR-SYR"): no place belongs to them.
                code: CountryCode::parse(&feature.iso3),
                name: feature.name,
            },
            feature.geometry,
        ));
    }

    let path = dir.join("countries.tsv");
    let mut country_names = HashMap::new();
    for line in read_to_string(&path)?.lines() {
        let [code, name] = fields(&path, line)?;
        country_names.insert(country_code(&path, code)?, name.to_owned());
    }

    let path = dir.join("admin1.geojson");
    let features: Vec<DivisionFeature> =
        geojson::de::deserialize_feature_collection_to_vec(open(&path)?)
            .map_err(|err| malformed(&path, err))?;
    let mut divisions = Vec::with_capacity(features.len());
    for feature in features {
        divisions.push((
            Division {
                unit: u32::try_from(feature.unit).ok(),
                country: country_code(&path, &feature.iso3)?,
                name: feature.name,
                has_chinese_name: feature.zh,
            },
            feature.geometry,
        ));
    }

    let path = dir.join("places.tsv");
    let text = read_to_string(&path)?;
    let mut places = Vec::with_capacity(text.len() / 46);
    for line in text.lines() {
        // The name's source (cldr, geonames-zh, ...) is for people reading the file.
        let [
            lat,
            lng,
            code,
            unit,
            population,
            name_zh,
            _source,
            name,
            feature,
        ] = fields(&path, line)?;
        places.push(NamedPlace {
            lat: number(&path, lat)?,
            lng: number(&path, lng)?,
            country: country_code(&path, code)?,
            unit: unit
                .parse()
                .map_err(|_| malformed(&path, format!("bad unit {unit:?}")))?,
            population: population
                .parse()
                .map_err(|_| malformed(&path, format!("bad population {population:?}")))?,
            name: if name_zh.is_empty() { name } else { name_zh }.to_owned(),
            has_chinese_name: !name_zh.is_empty(),
            capital: feature == "PPLC",
        });
    }
    Ok(Parsed {
        districts,
        countries,
        divisions,
        places,
        country_names,
    })
}

fn open(path: &Path) -> Result<BufReader<File>, GeodataError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| GeodataError::Read {
            path: path.to_owned(),
            source,
        })
}

fn read_to_string(path: &Path) -> Result<String, GeodataError> {
    std::fs::read_to_string(path).map_err(|source| GeodataError::Read {
        path: path.to_owned(),
        source,
    })
}

fn malformed(path: &Path, reason: impl ToString) -> GeodataError {
    GeodataError::Malformed {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Splits a tab-separated line into exactly `N` fields.
fn fields<'a, const N: usize>(path: &Path, line: &'a str) -> Result<[&'a str; N], GeodataError> {
    let parts: Vec<&str> = line.split('\t').collect();
    parts
        .try_into()
        .map_err(|_| malformed(path, format!("expected {N} tab-separated fields: {line:?}")))
}

fn number(path: &Path, text: &str) -> Result<f64, GeodataError> {
    text.parse()
        .map_err(|_| malformed(path, format!("not a number: {text:?}")))
}

fn country_code(path: &Path, text: &str) -> Result<CountryCode, GeodataError> {
    CountryCode::parse(text).ok_or_else(|| malformed(path, format!("bad country code {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_says_how_to_fix_it() {
        let err = load(Path::new("/nonexistent/geo")).err().unwrap();
        assert!(err.to_string().contains("fetch-geodata.sh"), "{err}");
    }

    #[test]
    fn lines_must_have_every_field() {
        let path = Path::new("places.tsv");
        assert!(fields::<3>(path, "a\tb\tc").is_ok());
        assert!(fields::<3>(path, "a\tb").is_err());
        assert!(fields::<3>(path, "a\tb\tc\td").is_err());
    }
}

//! Coordinates: the WGS-84 point a photo's EXIF carries, and the GCJ-02 one China's maps use.

use std::f64::consts::PI;

/// A valid WGS-84 coordinate in degrees (what GPS receivers and EXIF write).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wgs84 {
    lat: f64,
    lng: f64,
}

/// A coordinate that is not on the globe.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidCoordinate {
    #[error("lat must be a number within -90..=90, got {0}")]
    Latitude(f64),
    #[error("lng must be a number within -180..=180, got {0}")]
    Longitude(f64),
}

impl Wgs84 {
    /// Accepts finite latitudes within ±90 and longitudes within ±180.
    pub fn parse(lat: f64, lng: f64) -> Result<Self, InvalidCoordinate> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(InvalidCoordinate::Latitude(lat));
        }
        if !lng.is_finite() || !(-180.0..=180.0).contains(&lng) {
            return Err(InvalidCoordinate::Longitude(lng));
        }
        Ok(Self { lat, lng })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lng(self) -> f64 {
        self.lng
    }

    /// Returns true inside the rectangle where the GCJ-02 shift is defined (the usual
    /// `out_of_china` test). It also covers neighbours; the China polygons decide the rest.
    pub fn in_china_box(self) -> bool {
        (72.004..=137.8347).contains(&self.lng) && (0.8293..=55.8271).contains(&self.lat)
    }

    /// Returns the GCJ-02 coordinate of this point: the standard public formula (Krasovsky
    /// ellipsoid), about 300–700 m of shift inside China. AMap's polygons are in GCJ-02, so a GPS
    /// point must be shifted before it is tested against them.
    pub fn to_gcj02(self) -> Gcj02 {
        const A: f64 = 6_378_245.0;
        // 0.00669342162296594323 as published; f64 keeps 17 significant digits of it.
        const EE: f64 = 0.006_693_421_622_965_943;
        let x = self.lng - 105.0;
        let y = self.lat - 35.0;
        let rad_lat = self.lat / 180.0 * PI;
        let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
        let sqrt_magic = magic.sqrt();
        let d_lat = shift_lat(x, y) * 180.0 / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
        let d_lng = shift_lng(x, y) * 180.0 / (A / sqrt_magic * rad_lat.cos() * PI);
        Gcj02 {
            lat: self.lat + d_lat,
            lng: self.lng + d_lng,
        }
    }
}

/// A GCJ-02 coordinate in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gcj02 {
    pub lat: f64,
    pub lng: f64,
}

/// The term both shifts share.
fn periodic(x: f64) -> f64 {
    (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0
}

fn shift_lat(x: f64, y: f64) -> f64 {
    -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * x.abs().sqrt()
        + periodic(x)
        + (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0
        + (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0
}

fn shift_lng(x: f64, y: f64) -> f64 {
    300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * x.abs().sqrt()
        + periodic(x)
        + (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0
        + (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of the reference implementation (eviltransform, `test_wgs2gcj`).
    #[test]
    fn wgs84_to_gcj02_matches_the_reference_vectors() {
        let vectors = [
            // wgs lat, wgs lng, gcj lat, gcj lng
            (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215), // Shanghai
            (22.543847, 113.912316, 22.540796131694766, 113.9171764808363), // Shenzhen
            (39.911954, 116.377817, 39.91334545536069, 116.38404722455657), // Beijing
        ];
        for (lat, lng, gcj_lat, gcj_lng) in vectors {
            let gcj = Wgs84::parse(lat, lng).unwrap().to_gcj02();
            assert!(
                (gcj.lat - gcj_lat).abs() < 1e-9,
                "{lat},{lng}: lat {}",
                gcj.lat
            );
            assert!(
                (gcj.lng - gcj_lng).abs() < 1e-9,
                "{lat},{lng}: lng {}",
                gcj.lng
            );
        }
    }

    #[test]
    fn the_shift_is_hundreds_of_metres() {
        let wgs = Wgs84::parse(39.9087, 116.3975).unwrap();
        let gcj = wgs.to_gcj02();
        let metres_north = (gcj.lat - wgs.lat()) * 111_320.0;
        let metres_east = (gcj.lng - wgs.lng()) * 111_320.0 * wgs.lat().to_radians().cos();
        let shift = metres_north.hypot(metres_east);
        assert!((300.0..=700.0).contains(&shift), "{shift} m");
    }

    #[test]
    fn coordinates_off_the_globe_are_refused() {
        for (lat, lng) in [
            (f64::NAN, 0.0),
            (0.0, f64::NAN),
            (90.0001, 0.0),
            (-91.0, 0.0),
            (0.0, 180.5),
            (0.0, -181.0),
            (f64::INFINITY, 0.0),
        ] {
            assert!(Wgs84::parse(lat, lng).is_err(), "{lat},{lng}");
        }
        for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)] {
            assert!(Wgs84::parse(lat, lng).is_ok(), "{lat},{lng}");
        }
    }

    #[test]
    fn the_china_box_holds_china_and_not_europe() {
        assert!(Wgs84::parse(39.9, 116.4).unwrap().in_china_box());
        assert!(Wgs84::parse(22.3, 114.2).unwrap().in_china_box());
        assert!(!Wgs84::parse(48.85, 2.35).unwrap().in_china_box());
        assert!(!Wgs84::parse(-33.9, 151.2).unwrap().in_china_box());
    }

    /// Ground distance in metres between two nearby points (equirectangular: exact enough at
    /// these distances).
    fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
        let north = (b.0 - a.0) * 111_320.0;
        let east = (b.1 - a.1) * 111_320.0 * a.0.to_radians().cos();
        north.hypot(east)
    }

    fn shift(lat: f64, lng: f64) -> (f64, f64) {
        let gcj = Wgs84::parse(lat, lng).unwrap().to_gcj02();
        (gcj.lat - lat, gcj.lng - lng)
    }

    proptest::proptest! {
        /// Across mainland China's latitudes and longitudes the shift stays within GCJ-02's
        /// known range (sampled over this box: about 20 m to 714 m), and it is smooth: two points 10 m apart shift alike to within a metre, so a photo next to
        /// a border lands on the same side as its neighbours.
        #[test]
        fn the_shift_is_bounded_and_smooth(
            lat in 18.0f64..53.5,
            lng in 73.5f64..135.0,
            bearing in 0.0f64..std::f64::consts::TAU,
        ) {
            let gcj = Wgs84::parse(lat, lng).unwrap().to_gcj02();
            let moved = metres((lat, lng), (gcj.lat, gcj.lng));
            proptest::prop_assert!((10.0..=800.0).contains(&moved), "{lat},{lng}: {moved} m");
            let step = 10.0 / 111_320.0;
            let (lat2, lng2) = (
                lat + step * bearing.cos(),
                lng + step * bearing.sin() / lat.to_radians().cos(),
            );
            let (a, b) = (shift(lat, lng), shift(lat2, lng2));
            let apart = metres((lat, lng), (lat + (b.0 - a.0), lng + (b.1 - a.1)));
            proptest::prop_assert!(apart < 1.0, "{lat},{lng}: shifts differ by {apart} m");
        }
    }
}

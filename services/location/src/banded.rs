//! Point-in-polygon in a time that does not grow with the polygon. A county or a country has
//! hundreds to tens of thousands of edges, and a plain test crosses every one of them; here the
//! edges are sorted into horizontal bands once, and a test crosses only the few in the point's
//! band.

use geo::{Coord, Distance, Euclidean, Line, Point, Polygon};

/// About this many edges share a band, on average.
const EDGES_PER_BAND: usize = 2;
/// The most bands one polygon gets (a country's coast of 100 000 edges).
const MAX_BANDS: usize = 1 << 15;

/// A polygon (its exterior and its holes) with its edges in bands.
pub struct BandedPolygon {
    /// Every ring's points, one ring after the other, each ring closed.
    points: Vec<Coord<f64>>,
    min_y: f64,
    /// Bands per unit of y.
    scale: f64,
    /// Band `b` holds `band_edges[band_starts[b]..band_starts[b + 1]]`.
    band_starts: Vec<u32>,
    /// An edge is the index of its first point: it runs from `points[e]` to `points[e + 1]`.
    band_edges: Vec<u32>,
}

impl BandedPolygon {
    pub fn new(polygon: &Polygon<f64>) -> Self {
        let mut points = Vec::new();
        let mut edges = Vec::new();
        for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
            let first = points.len();
            points.extend_from_slice(&ring.0);
            // A ring's last point is its first again (geo closes rings); the one edge a ring
            // ends with is from its last point back to its first, when that is not so.
            if ring.0.first() != ring.0.last() {
                points.push(ring.0[0]);
            }
            let last = points.len().saturating_sub(1);
            edges.extend((first..last).map(|start| start as u32));
        }
        let (min_y, max_y) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), point| {
                (low.min(point.y), high.max(point.y))
            });
        let bands = (edges.len() / EDGES_PER_BAND).clamp(1, MAX_BANDS);
        let height = max_y - min_y;
        let scale = if height > 0.0 {
            bands as f64 / height
        } else {
            0.0
        };
        let mut banded = Self {
            points,
            min_y,
            scale,
            band_starts: Vec::new(),
            band_edges: Vec::new(),
        };
        // Counted first, then placed: one allocation of the exact size.
        let span = |banded: &Self, edge: u32| {
            let (a, b) = banded.ends(edge);
            let low = banded.band_of(a.y.min(b.y), bands);
            let high = banded.band_of(a.y.max(b.y), bands);
            low..=high
        };
        let mut counts = vec![0u32; bands + 1];
        for &edge in &edges {
            for band in span(&banded, edge) {
                counts[band + 1] += 1;
            }
        }
        for band in 0..bands {
            counts[band + 1] += counts[band];
        }
        let mut next = counts.clone();
        let mut band_edges = vec![0u32; counts[bands] as usize];
        for &edge in &edges {
            for band in span(&banded, edge) {
                band_edges[next[band] as usize] = edge;
                next[band] += 1;
            }
        }
        banded.band_starts = counts;
        banded.band_edges = band_edges;
        banded
    }

    /// Whether (x, y) lies inside: inside the exterior and in none of the holes. A point exactly
    /// on an edge may go either way.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let Some(edges) = self.edges_between(y, y) else {
            return false;
        };
        // Crossings of a ray to the left, each edge half-open in y so a vertex counts once.
        edges
            .iter()
            .filter(|&&edge| {
                let (a, b) = self.ends(edge);
                (a.y > y) != (b.y > y) && x < a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y)
            })
            .count()
            % 2
            == 1
    }

    /// The distance from (x, y) to the polygon (0 inside, else to the nearest edge) where it is
    /// at most `tolerance`; None where it is more. Only the edges of the bands within
    /// `tolerance` of the point are measured: any other is farther than that.
    pub fn distance_within(&self, x: f64, y: f64, tolerance: f64) -> Option<f64> {
        if self.contains(x, y) {
            return Some(0.0);
        }
        let point = Point::new(x, y);
        self.edges_between(y - tolerance, y + tolerance)?
            .iter()
            .map(|&edge| {
                let (a, b) = self.ends(edge);
                Euclidean.distance(&point, &Line::new(a, b))
            })
            .min_by(f64::total_cmp)
            .filter(|distance| *distance <= tolerance)
    }

    /// The edges of the bands that cover `low_y..=high_y` (an edge may be listed more than
    /// once); None where that lies wholly beyond the polygon's height, or is not a number.
    fn edges_between(&self, low_y: f64, high_y: f64) -> Option<&[u32]> {
        let bands = self.band_starts.len() - 1;
        let low = (low_y - self.min_y) * self.scale;
        let high = (high_y - self.min_y) * self.scale;
        if high.is_nan() || high < 0.0 || low > bands as f64 {
            return None;
        }
        let low = (low.max(0.0) as usize).min(bands - 1);
        let high = (high as usize).min(bands - 1);
        let range = self.band_starts[low] as usize..self.band_starts[high + 1] as usize;
        Some(&self.band_edges[range])
    }

    fn band_of(&self, y: f64, bands: usize) -> usize {
        (((y - self.min_y) * self.scale) as usize).min(bands - 1)
    }

    fn ends(&self, edge: u32) -> (Coord<f64>, Coord<f64>) {
        let start = edge as usize;
        (self.points[start], self.points[start + 1])
    }
}

#[cfg(test)]
mod tests {
    use geo::{Contains, LineString};
    use proptest::prelude::*;

    use super::*;

    /// A star-like ring around (cx, cy): `radii` at even angles, so it never crosses itself.
    fn star(cx: f64, cy: f64, radii: &[f64]) -> LineString<f64> {
        let step = std::f64::consts::TAU / radii.len() as f64;
        let mut points: Vec<(f64, f64)> = radii
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let angle = step * i as f64;
                (cx + r * angle.cos(), cy + r * angle.sin())
            })
            .collect();
        points.push(points[0]);
        LineString::from(points)
    }

    proptest! {
        /// The same answer as geo's own test, on jagged polygons with a hole, for points
        /// anywhere around them (a point exactly on an edge has probability zero). The hole
        /// stays inside the exterior, as in a valid polygon (where it pokes out, the two tests
        /// are entitled to differ): an exterior of 8 points or more, none nearer its centre
        /// than 5, comes no nearer than 5·cos(22.5°) ≈ 4.62, and the hole reaches 3.5 + 0.71.
        #[test]
        fn agrees_with_geo(
            outer in prop::collection::vec(5.0f64..10.0, 8..200),
            inner in prop::collection::vec(1.0f64..3.5, 3..50),
            points in prop::collection::vec((-12.0f64..12.0, -12.0f64..12.0), 50),
            tolerance in 0.0f64..3.0,
        ) {
            let polygon = Polygon::new(star(0.0, 0.0, &outer), vec![star(0.5, -0.5, &inner)]);
            let banded = BandedPolygon::new(&polygon);
            for (x, y) in points {
                let expected = polygon.contains(&Point::new(x, y));
                prop_assert_eq!(banded.contains(x, y), expected, "({}, {})", x, y);
                let distance = Euclidean.distance(&Point::new(x, y), &polygon);
                match banded.distance_within(x, y, tolerance) {
                    Some(within) => prop_assert!((within - distance).abs() < 1e-9),
                    None => prop_assert!(distance > tolerance),
                }
            }
        }
    }

    #[test]
    fn points_beyond_the_polygon_s_height_are_outside() {
        let polygon = Polygon::new(star(0.0, 0.0, &[1.0, 1.0, 1.0, 1.0]), vec![]);
        let banded = BandedPolygon::new(&polygon);
        assert!(banded.contains(0.0, 0.0));
        assert!(!banded.contains(0.0, 1.5));
        assert!(!banded.contains(0.0, -1.5));
        assert!(!banded.contains(0.0, f64::NAN));
        let within = banded.distance_within(0.0, 3.0, 2.5).unwrap();
        assert!((within - 2.0).abs() < 1e-9);
        assert_eq!(banded.distance_within(0.0, 3.0, 1.5), None);
    }

    #[test]
    fn an_empty_polygon_holds_nothing() {
        let banded = BandedPolygon::new(&Polygon::new(LineString::new(vec![]), vec![]));
        assert!(!banded.contains(0.0, 0.0));
        assert_eq!(banded.distance_within(0.0, 0.0, 1.0), None);
    }
}

//! Point-in-polygon over many regions: an R-tree of polygon bounding boxes narrows the candidates,
//! an exact test on the polygon's banded edges decides.

use geo::{BoundingRect, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, Envelope, RTree, RTreeObject};
use smallvec::SmallVec;

use crate::banded::BandedPolygon;

/// Regions (any `T`: names, codes) with their polygons, in the polygons' own degrees.
pub struct RegionIndex<T> {
    regions: Vec<T>,
    /// Each part of every region's multipolygon, with the index of its region. Indexing the parts
    /// rather than whole regions keeps the boxes tight for regions with far-away islands.
    parts: Vec<(BandedPolygon, usize)>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl<T> RegionIndex<T> {
    /// Builds the index; empty polygons are skipped.
    pub fn new(regions: impl IntoIterator<Item = (T, MultiPolygon<f64>)>) -> Self {
        let mut names = Vec::new();
        let mut parts = Vec::new();
        let mut boxes = Vec::new();
        for (region, shape) in regions {
            let region_index = names.len();
            names.push(region);
            for polygon in &shape.0 {
                let Some(rect) = polygon.bounding_rect() else {
                    continue;
                };
                let envelope = Rectangle::from_corners(rect.min().into(), rect.max().into());
                boxes.push(GeomWithData::new(envelope, parts.len()));
                parts.push((BandedPolygon::new(polygon), region_index));
            }
        }
        Self {
            regions: names,
            parts,
            tree: RTree::bulk_load(boxes),
        }
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Returns the region whose polygon contains (x, y). Where simplified polygons overlap (an
    /// enclave such as Monaco inside France's simplified outline), the part with the smallest
    /// bounding box holds the point.
    pub fn containing(&self, x: f64, y: f64) -> Option<&T> {
        let mut candidates: SmallVec<[(f64, usize); 8]> = self
            .tree
            .locate_all_at_point(&[x, y])
            .map(|candidate| (candidate.geom().envelope().area(), candidate.data))
            .collect();
        // Smallest first: the first that contains the point is the answer.
        candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        candidates
            .into_iter()
            .find(|(_, part)| self.parts[*part].0.contains(x, y))
            .map(|(_, part)| &self.regions[self.parts[part].1])
    }

    /// Returns the region closest to (x, y) within `tolerance` degrees, for points that fall in the
    /// slivers polygon simplification opens along shared borders and coasts.
    pub fn nearest_within(&self, x: f64, y: f64, tolerance: f64) -> Option<&T> {
        let search = AABB::from_corners(
            [x - tolerance, y - tolerance],
            [x + tolerance, y + tolerance],
        );
        self.tree
            .locate_in_envelope_intersecting(&search)
            .filter_map(|candidate| {
                let (polygon, region) = &self.parts[candidate.data];
                Some((polygon.distance_within(x, y, tolerance)?, *region))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, region)| &self.regions[region])
    }
}

#[cfg(test)]
mod tests {
    use geo::{LineString, polygon};

    use super::*;

    fn square(x: f64, y: f64, side: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![
            (x: x, y: y),
            (x: x + side, y: y),
            (x: x + side, y: y + side),
            (x: x, y: y + side),
            (x: x, y: y),
        ]])
    }

    fn index() -> RegionIndex<&'static str> {
        // "west" and "east" share no border: a 0.002-wide sliver lies between them, as
        // simplification leaves. "ring" is a square with a square hole, and an island far away.
        let mut ring = square(20.0, 0.0, 10.0);
        ring.0[0].interiors_push(LineString::from(vec![
            (23.0, 3.0),
            (27.0, 3.0),
            (27.0, 7.0),
            (23.0, 7.0),
            (23.0, 3.0),
        ]));
        ring.0.extend(square(50.0, 50.0, 1.0).0);
        RegionIndex::new([
            ("west", square(0.0, 0.0, 1.0)),
            ("east", square(1.002, 0.0, 1.0)),
            ("ring", ring),
        ])
    }

    #[test]
    fn finds_the_polygon_that_contains_the_point() {
        let index = index();
        assert_eq!(index.len(), 3);
        assert_eq!(index.containing(0.5, 0.5), Some(&"west"));
        assert_eq!(index.containing(1.5, 0.5), Some(&"east"));
        assert_eq!(index.containing(21.0, 1.0), Some(&"ring"));
        assert_eq!(index.containing(50.5, 50.5), Some(&"ring"), "the island");
    }

    #[test]
    fn holes_and_outside_points_find_nothing() {
        let index = index();
        assert_eq!(index.containing(25.0, 5.0), None, "inside the hole");
        assert_eq!(index.containing(5.0, 5.0), None);
        assert_eq!(index.containing(1.001, 0.5), None, "in the sliver");
    }

    #[test]
    fn the_sliver_goes_to_the_closer_neighbour_within_tolerance() {
        let index = index();
        assert_eq!(index.nearest_within(1.0005, 0.5, 0.003), Some(&"west"));
        assert_eq!(index.nearest_within(1.0015, 0.5, 0.003), Some(&"east"));
        assert_eq!(
            index.nearest_within(1.5, 0.5, 0.003),
            Some(&"east"),
            "inside is distance 0"
        );
        assert_eq!(index.nearest_within(3.0, 0.5, 0.003), None, "too far");
    }
}

//! Geometry clean-up: what is repaired and what is dropped, with a reason for each,
//! so the quality report can count them.

use geo::{Area, BooleanOps};
use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Polygon};

/// Outcome of cleaning one geometry.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub geometry: Option<Geometry<f64>>,
    pub repairs: Vec<&'static str>,
    /// Set when the whole geometry was dropped.
    pub dropped: Option<&'static str>,
}

pub const RING_CLOSED: &str = "unclosed ring closed";
pub const DUPLICATE_POINTS: &str = "repeated points removed";
pub const HOLE_REMOVED: &str = "degenerate hole removed";
pub const PART_REMOVED: &str = "degenerate part removed";
pub const SELF_INTERSECTION: &str = "self-intersection resolved";
pub const SHORT_RING: &str = "ring with fewer than 4 points";
pub const ZERO_AREA: &str = "polygon with zero area";
pub const SHORT_LINE: &str = "line with fewer than 2 distinct points";
pub const NOT_FINITE: &str = "non-finite coordinate";
pub const EMPTY: &str = "empty geometry";

fn finite(c: &Coord<f64>) -> bool {
    c.x.is_finite() && c.y.is_finite()
}

fn dedup(coords: &[Coord<f64>], repairs: &mut Vec<&'static str>) -> Vec<Coord<f64>> {
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(coords.len());
    for c in coords {
        if out.last() != Some(c) {
            out.push(*c);
        }
    }
    if out.len() != coords.len() {
        repairs.push(DUPLICATE_POINTS);
    }
    out
}

/// A closed ring with at least 4 points, or the reason it cannot be one.
fn clean_ring(
    ring: &LineString<f64>,
    repairs: &mut Vec<&'static str>,
) -> Result<LineString<f64>, &'static str> {
    let mut coords = dedup(&ring.0, repairs);
    if coords.first() != coords.last()
        && let Some(first) = coords.first().copied()
    {
        coords.push(first);
        repairs.push(RING_CLOSED);
    }
    if coords.len() < 4 {
        return Err(SHORT_RING);
    }
    Ok(LineString(coords))
}

fn clean_polygon(
    poly: &Polygon<f64>,
    repairs: &mut Vec<&'static str>,
) -> Result<Vec<Polygon<f64>>, &'static str> {
    let exterior = clean_ring(poly.exterior(), repairs)?;
    let mut holes = Vec::new();
    for hole in poly.interiors() {
        match clean_ring(hole, repairs) {
            Ok(h) if Polygon::new(h.clone(), vec![]).unsigned_area() > 0.0 => holes.push(h),
            _ => repairs.push(HOLE_REMOVED),
        }
    }
    let candidate = Polygon::new(exterior, holes);
    if is_valid(&candidate) {
        return if candidate.unsigned_area() == 0.0 { Err(ZERO_AREA) } else { Ok(vec![candidate]) };
    }
    // Resolve self-intersections and ring overlaps by re-noding the polygon with
    // itself (i_overlay); a bow-tie becomes two triangles, a spike disappears.
    let fixed = MultiPolygon::new(vec![candidate]).union(&MultiPolygon::<f64>::new(vec![]));
    let parts: Vec<Polygon<f64>> = fixed.0.into_iter().filter(|p| p.unsigned_area() > 0.0).collect();
    if parts.is_empty() {
        return Err(ZERO_AREA);
    }
    repairs.push(SELF_INTERSECTION);
    Ok(parts)
}

/// OGC validity as geo's `Validation` decides it, with each ring's
/// self-intersection test done through an R-tree of its edges instead of comparing
/// every edge with every other (a 100 000-vertex outline took minutes that way).
fn is_valid(polygon: &Polygon<f64>) -> bool {
    use geo::coordinate_position::CoordPos;
    use geo::dimensions::Dimensions;
    use geo::{PreparedGeometry, Relate};
    let rings = || std::iter::once(polygon.exterior()).chain(polygon.interiors());
    if rings().any(|r| r.0.len() < 4 || r.0.iter().any(|c| !finite(c)) || ring_self_intersects(r)) {
        return false;
    }
    if polygon.interiors().is_empty() {
        return true;
    }
    let exterior = Polygon::new(polygon.exterior().clone(), vec![]);
    let exterior = PreparedGeometry::from(&exterior);
    for (i, hole) in polygon.interiors().iter().enumerate() {
        let hole = Polygon::new(hole.clone(), vec![]);
        let prepared = PreparedGeometry::from(&hole);
        let m = exterior.relate(&prepared);
        if !m.is_contains() || m.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional
        {
            return false;
        }
        for other in &polygon.interiors()[i + 1..] {
            let m = prepared.relate(&Polygon::new(other.clone(), vec![]));
            if m.get(CoordPos::Inside, CoordPos::Inside) == Dimensions::TwoDimensional
                || m.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional
            {
                return false;
            }
        }
    }
    true
}

/// Whether two edges of a ring meet other than where consecutive edges join (the
/// test geo's validation makes), finding candidate pairs through an R-tree.
fn ring_self_intersects(ring: &LineString<f64>) -> bool {
    use geo::Intersects;
    use rstar::{AABB, RTree, RTreeObject};
    struct Edge(usize, geo_types::Line<f64>);
    impl RTreeObject for Edge {
        type Envelope = AABB<[f64; 2]>;
        fn envelope(&self) -> Self::Envelope {
            AABB::from_corners([self.1.start.x, self.1.start.y], [self.1.end.x, self.1.end.y])
        }
    }
    let edges: Vec<Edge> = ring.lines().enumerate().map(|(i, l)| Edge(i, l)).collect();
    let lines: Vec<geo_types::Line<f64>> = edges.iter().map(|e| e.1).collect();
    let tree = RTree::bulk_load(edges);
    lines.iter().enumerate().any(|(i, line)| {
        tree.locate_in_envelope_intersecting(&AABB::from_corners(
            [line.start.x, line.start.y],
            [line.end.x, line.end.y],
        ))
        .any(|other| {
            other.0 != i
                && line.intersects(&other.1)
                && line.start != other.1.end
                && line.end != other.1.start
        })
    })
}

fn clean_line(
    line: &LineString<f64>,
    repairs: &mut Vec<&'static str>,
) -> Result<LineString<f64>, &'static str> {
    let coords = dedup(&line.0, repairs);
    if coords.len() < 2 { Err(SHORT_LINE) } else { Ok(LineString(coords)) }
}

/// Cleans a geometry already in the service frame.
pub fn clean(geometry: Geometry<f64>) -> Cleaned {
    let mut out = Cleaned::default();
    if geo::CoordsIter::coords_iter(&geometry).next().is_none() {
        out.dropped = Some(EMPTY);
        return out;
    }
    if !geo::CoordsIter::coords_iter(&geometry).all(|c| finite(&c)) {
        out.dropped = Some(NOT_FINITE);
        return out;
    }
    let repairs = &mut out.repairs;
    let result: Result<Geometry<f64>, &'static str> = match geometry {
        Geometry::Point(p) => Ok(Geometry::Point(p)),
        Geometry::MultiPoint(mp) => Ok(Geometry::MultiPoint(MultiPoint(mp.0))),
        Geometry::Line(l) => clean_line(&LineString(vec![l.start, l.end]), repairs).map(Geometry::LineString),
        Geometry::LineString(ls) => clean_line(&ls, repairs).map(Geometry::LineString),
        Geometry::MultiLineString(mls) => {
            let mut kept = Vec::new();
            let mut last_err = SHORT_LINE;
            for ls in &mls.0 {
                match clean_line(ls, repairs) {
                    Ok(l) => kept.push(l),
                    Err(e) => {
                        last_err = e;
                        repairs.push(PART_REMOVED);
                    }
                }
            }
            if kept.is_empty() { Err(last_err) } else { Ok(Geometry::MultiLineString(MultiLineString(kept))) }
        }
        Geometry::Polygon(p) => clean_polygon(&p, repairs).map(|parts| {
            if parts.len() == 1 {
                Geometry::Polygon(
                    parts.into_iter().next().unwrap_or_else(|| Polygon::new(LineString(vec![]), vec![])),
                )
            } else {
                Geometry::MultiPolygon(MultiPolygon(parts))
            }
        }),
        Geometry::MultiPolygon(mp) => {
            let mut kept = Vec::new();
            let mut last_err = SHORT_RING;
            for p in &mp.0 {
                match clean_polygon(p, repairs) {
                    Ok(parts) => kept.extend(parts),
                    Err(e) => {
                        last_err = e;
                        repairs.push(PART_REMOVED);
                    }
                }
            }
            if kept.is_empty() { Err(last_err) } else { Ok(Geometry::MultiPolygon(MultiPolygon(kept))) }
        }
        Geometry::Rect(r) => {
            clean_polygon(&r.to_polygon(), repairs).map(|p| Geometry::MultiPolygon(MultiPolygon(p)))
        }
        Geometry::Triangle(t) => {
            clean_polygon(&t.to_polygon(), repairs).map(|p| Geometry::MultiPolygon(MultiPolygon(p)))
        }
        Geometry::GeometryCollection(_) => Err("geometry collection (not supported in tiles)"),
    };
    match result {
        Ok(g) => out.geometry = Some(g),
        Err(reason) => {
            // A dropped feature counts once, under its reason, not also as repaired.
            out.dropped = Some(reason);
            out.repairs.clear();
        }
    }
    out.repairs.sort_unstable();
    out.repairs.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{line_string, polygon};

    #[test]
    fn closes_rings_and_drops_short_ones() {
        // geo closes rings on construction; what arrives here is closed.
        let open = Geometry::Polygon(Polygon::new(
            line_string![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.)],
            vec![],
        ));
        let Some(Geometry::Polygon(p)) = clean(open).geometry else { panic!("kept") };
        assert_eq!(p.exterior().0.first(), p.exterior().0.last());
        let spiky = Geometry::Polygon(Polygon::new(
            line_string![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 0.)],
            vec![],
        ));
        assert_eq!(clean(spiky).repairs, vec![DUPLICATE_POINTS]);
        let short = Geometry::Polygon(Polygon::new(
            line_string![(x: 0., y: 0.), (x: 1., y: 0.), (x: 0., y: 0.)],
            vec![],
        ));
        assert_eq!(clean(short).dropped, Some(SHORT_RING));
    }

    #[test]
    fn splits_a_bow_tie() {
        let bow = Geometry::Polygon(
            polygon![(x: 0., y: 0.), (x: 2., y: 2.), (x: 2., y: 0.), (x: 0., y: 2.), (x: 0., y: 0.)],
        );
        let c = clean(bow);
        assert!(c.repairs.contains(&SELF_INTERSECTION), "{:?}", c.repairs);
        let Some(Geometry::MultiPolygon(mp)) = c.geometry else { panic!("two parts expected") };
        assert_eq!(mp.0.len(), 2);
        assert!((mp.unsigned_area() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn drops_empty_and_non_finite() {
        assert_eq!(clean(Geometry::LineString(LineString(vec![]))).dropped, Some(EMPTY));
        let nan = Geometry::LineString(line_string![(x: f64::NAN, y: 0.), (x: 1., y: 1.)]);
        assert_eq!(clean(nan).dropped, Some(NOT_FINITE));
    }

    #[test]
    fn validity_agrees_with_geo_on_every_kind_of_flaw_and_scales() {
        use geo::Validation;
        let ring = |pts: &[(f64, f64)]| LineString(pts.iter().map(|&(x, y)| Coord { x, y }).collect());
        let square = ring(&[(0., 0.), (10., 0.), (10., 10.), (0., 10.), (0., 0.)]);
        let cases = vec![
            Polygon::new(square.clone(), vec![]),
            Polygon::new(ring(&[(0., 0.), (2., 2.), (2., 0.), (0., 2.), (0., 0.)]), vec![]),
            Polygon::new(square.clone(), vec![ring(&[(2., 2.), (4., 2.), (4., 4.), (2., 4.), (2., 2.)])]),
            // A hole touching the exterior along a line, and at a point.
            Polygon::new(square.clone(), vec![ring(&[(0., 2.), (4., 2.), (4., 4.), (0., 4.), (0., 2.)])]),
            Polygon::new(square.clone(), vec![ring(&[(0., 5.), (4., 2.), (4., 4.), (0., 5.)])]),
            // A hole outside, overlapping holes, a hole inside a hole.
            Polygon::new(square.clone(), vec![ring(&[(20., 2.), (24., 2.), (24., 4.), (20., 2.)])]),
            Polygon::new(
                square.clone(),
                vec![
                    ring(&[(2., 2.), (6., 2.), (6., 6.), (2., 6.), (2., 2.)]),
                    ring(&[(4., 4.), (8., 4.), (8., 8.), (4., 8.), (4., 4.)]),
                ],
            ),
            Polygon::new(
                square.clone(),
                vec![
                    ring(&[(1., 1.), (9., 1.), (9., 9.), (1., 9.), (1., 1.)]),
                    ring(&[(3., 3.), (5., 3.), (5., 5.), (3., 5.), (3., 3.)]),
                ],
            ),
            // A spike out and back, and a figure eight touching itself.
            Polygon::new(
                ring(&[
                    (0., 0.),
                    (10., 0.),
                    (10., 5.),
                    (15., 5.),
                    (10., 5.),
                    (10., 10.),
                    (0., 10.),
                    (0., 0.),
                ]),
                vec![],
            ),
            Polygon::new(
                ring(&[(0., 0.), (4., 0.), (2., 2.), (4., 4.), (0., 4.), (2., 2.), (0., 0.)]),
                vec![],
            ),
        ];
        for (k, p) in cases.iter().enumerate() {
            assert_eq!(is_valid(p), p.is_valid(), "case {k}: {p:?}");
        }
        // A 200 000-vertex circle, valid, and the same with two vertices swapped.
        let n = 200_000;
        let mut pts: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                (a.cos() * 1000.0, a.sin() * 1000.0)
            })
            .collect();
        pts.push(pts[0]);
        assert!(is_valid(&Polygon::new(ring(&pts), vec![])));
        pts.swap(1000, 1001);
        assert!(!is_valid(&Polygon::new(ring(&pts), vec![])));
    }
}

//! The feature store format: a GeoJSON FeatureCollection (RFC 7946) in the service
//! frame, sorted by feature id. Ingest writes it, the server indexes and serves it.

use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("GeoJSON geometry: {0}")]
pub struct GeoJsonError(pub String);

fn coord(c: &Coord<f64>) -> Value {
    json!([c.x, c.y])
}

fn line(ls: &LineString<f64>) -> Value {
    Value::Array(ls.0.iter().map(coord).collect())
}

fn polygon(p: &Polygon<f64>) -> Value {
    let mut rings = vec![line(p.exterior())];
    rings.extend(p.interiors().iter().map(line));
    Value::Array(rings)
}

/// A geo geometry as a GeoJSON geometry object.
pub fn to_geojson(g: &Geometry<f64>) -> Value {
    match g {
        Geometry::Point(p) => json!({"type": "Point", "coordinates": coord(&p.0)}),
        Geometry::MultiPoint(mp) => {
            json!({"type": "MultiPoint", "coordinates": mp.0.iter().map(|p| coord(&p.0)).collect::<Vec<_>>()})
        }
        Geometry::Line(l) => {
            json!({"type": "LineString", "coordinates": [coord(&l.start), coord(&l.end)]})
        }
        Geometry::LineString(ls) => json!({"type": "LineString", "coordinates": line(ls)}),
        Geometry::MultiLineString(m) => {
            json!({"type": "MultiLineString", "coordinates": m.0.iter().map(line).collect::<Vec<_>>()})
        }
        Geometry::Polygon(p) => json!({"type": "Polygon", "coordinates": polygon(p)}),
        Geometry::MultiPolygon(m) => {
            json!({"type": "MultiPolygon", "coordinates": m.0.iter().map(polygon).collect::<Vec<_>>()})
        }
        Geometry::Rect(r) => json!({"type": "Polygon", "coordinates": polygon(&r.to_polygon())}),
        Geometry::Triangle(t) => {
            json!({"type": "Polygon", "coordinates": polygon(&t.to_polygon())})
        }
        Geometry::GeometryCollection(gc) => {
            json!({"type": "GeometryCollection", "geometries": gc.0.iter().map(to_geojson).collect::<Vec<_>>()})
        }
    }
}

fn parse_coord(v: &Value) -> Result<Coord<f64>, GeoJsonError> {
    let a = v.as_array().ok_or_else(|| GeoJsonError("position is not an array".into()))?;
    match (a.first().and_then(Value::as_f64), a.get(1).and_then(Value::as_f64)) {
        (Some(x), Some(y)) => Ok(Coord { x, y }),
        _ => Err(GeoJsonError("position needs two numbers".into())),
    }
}

fn array(v: &Value) -> Result<&Vec<Value>, GeoJsonError> {
    v.as_array().ok_or_else(|| GeoJsonError("coordinates are not an array".into()))
}

fn parse_line(v: &Value) -> Result<LineString<f64>, GeoJsonError> {
    Ok(LineString(array(v)?.iter().map(parse_coord).collect::<Result<_, _>>()?))
}

fn parse_polygon(v: &Value) -> Result<Polygon<f64>, GeoJsonError> {
    let mut rings = array(v)?.iter().map(parse_line);
    let exterior = rings.next().ok_or_else(|| GeoJsonError("polygon without rings".into()))??;
    Ok(Polygon::new(exterior, rings.collect::<Result<_, _>>()?))
}

/// A GeoJSON geometry object as a geo geometry.
pub fn from_geojson(v: &Value) -> Result<Geometry<f64>, GeoJsonError> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let c = v.get("coordinates").unwrap_or(&Value::Null);
    Ok(match kind {
        "Point" => Geometry::Point(Point(parse_coord(c)?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint(
            array(c)?.iter().map(|p| parse_coord(p).map(Point)).collect::<Result<_, _>>()?,
        )),
        "LineString" => Geometry::LineString(parse_line(c)?),
        "MultiLineString" => Geometry::MultiLineString(MultiLineString(
            array(c)?.iter().map(parse_line).collect::<Result<_, _>>()?,
        )),
        "Polygon" => Geometry::Polygon(parse_polygon(c)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
            array(c)?.iter().map(parse_polygon).collect::<Result<_, _>>()?,
        )),
        "GeometryCollection" => Geometry::GeometryCollection(geo_types::GeometryCollection(
            v.get("geometries")
                .map(array)
                .transpose()?
                .into_iter()
                .flatten()
                .map(from_geojson)
                .collect::<Result<_, _>>()?,
        )),
        other => return Err(GeoJsonError(format!("unknown type '{other}'"))),
    })
}

/// The GeoJSON geometry type name of a geometry.
pub fn type_name(g: &Geometry<f64>) -> &'static str {
    match g {
        Geometry::Point(_) => "Point",
        Geometry::MultiPoint(_) => "MultiPoint",
        Geometry::Line(_) | Geometry::LineString(_) => "LineString",
        Geometry::MultiLineString(_) => "MultiLineString",
        Geometry::Polygon(_) | Geometry::Rect(_) | Geometry::Triangle(_) => "Polygon",
        Geometry::MultiPolygon(_) => "MultiPolygon",
        Geometry::GeometryCollection(_) => "GeometryCollection",
    }
}

/// Metres per degree of latitude (mean), for coarsening grids.
pub const METRES_PER_DEGREE: f64 = 111_320.0;

/// Snaps a position to the centre of its cell in a grid `metres` on a side: rows of
/// equal latitude, and columns as wide in metres at each row's centre.
pub fn coarsen_coord(c: Coord<f64>, metres: f64) -> Coord<f64> {
    let lat_step = metres / METRES_PER_DEGREE;
    let y = ((c.y / lat_step).floor() + 0.5) * lat_step;
    let lon_step = (metres / (METRES_PER_DEGREE * y.to_radians().cos().max(1e-6))).min(360.0);
    let x = ((c.x / lon_step).floor() + 0.5) * lon_step;
    Coord { x, y: y.clamp(-90.0, 90.0) }
}

fn mean(coords: &[Coord<f64>]) -> Option<Coord<f64>> {
    let n = coords.len() as f64;
    (n > 0.0).then(|| Coord {
        x: coords.iter().map(|c| c.x).sum::<f64>() / n,
        y: coords.iter().map(|c| c.y).sum::<f64>() / n,
    })
}

fn snapped(coords: &[Coord<f64>], metres: f64) -> Vec<Coord<f64>> {
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(coords.len());
    for c in coords {
        let s = coarsen_coord(*c, metres);
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// A ring on the grid, or `None` when it collapses (fewer than three cells).
fn coarse_ring(ring: &LineString<f64>, metres: f64) -> Option<LineString<f64>> {
    let mut cells = snapped(&ring.0, metres);
    if cells.len() > 1 && cells.first() == cells.last() {
        cells.pop();
    }
    let mut distinct = cells.clone();
    distinct.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    distinct.dedup();
    if distinct.len() < 3 {
        return None;
    }
    let first = cells[0];
    cells.push(first);
    Some(LineString(cells))
}

fn coarse_polygon(p: &Polygon<f64>, metres: f64) -> Option<Polygon<f64>> {
    let exterior = coarse_ring(p.exterior(), metres)?;
    let holes = p.interiors().iter().filter_map(|h| coarse_ring(h, metres)).collect();
    Some(Polygon::new(exterior, holes))
}

fn cell_of_centre(coords: &[Coord<f64>], metres: f64) -> Geometry<f64> {
    let centre = mean(coords).unwrap_or(Coord { x: 0.0, y: 0.0 });
    Geometry::Point(Point(coarsen_coord(centre, metres)))
}

/// A geometry with every position on the grid of [`coarsen_coord`]: what a caller
/// below a layer's coarsening clearance sees, and what its tiles carry. Lines and
/// outlines that collapse within a cell become the cell of their centre.
pub fn coarsen(g: &Geometry<f64>, metres: f64) -> Geometry<f64> {
    match g {
        Geometry::Point(p) => Geometry::Point(Point(coarsen_coord(p.0, metres))),
        Geometry::MultiPoint(mp) => {
            let mut cells: Vec<Coord<f64>> = mp.0.iter().map(|p| coarsen_coord(p.0, metres)).collect();
            cells.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
            cells.dedup();
            Geometry::MultiPoint(MultiPoint(cells.into_iter().map(Point).collect()))
        }
        Geometry::Line(l) => coarsen(&Geometry::LineString(LineString(vec![l.start, l.end])), metres),
        Geometry::LineString(ls) => {
            let cells = snapped(&ls.0, metres);
            if cells.len() < 2 {
                cell_of_centre(&ls.0, metres)
            } else {
                Geometry::LineString(LineString(cells))
            }
        }
        Geometry::MultiLineString(mls) => {
            let lines: Vec<LineString<f64>> =
                mls.0.iter().map(|l| LineString(snapped(&l.0, metres))).filter(|l| l.0.len() >= 2).collect();
            if lines.is_empty() {
                cell_of_centre(&mls.0.iter().flat_map(|l| l.0.iter().copied()).collect::<Vec<_>>(), metres)
            } else {
                Geometry::MultiLineString(MultiLineString(lines))
            }
        }
        Geometry::Polygon(p) => coarse_polygon(p, metres)
            .map_or_else(|| cell_of_centre(&p.exterior().0, metres), Geometry::Polygon),
        Geometry::MultiPolygon(mp) => {
            let parts: Vec<Polygon<f64>> = mp.0.iter().filter_map(|p| coarse_polygon(p, metres)).collect();
            if parts.is_empty() {
                cell_of_centre(
                    &mp.0.iter().flat_map(|p| p.exterior().0.iter().copied()).collect::<Vec<_>>(),
                    metres,
                )
            } else {
                Geometry::MultiPolygon(MultiPolygon(parts))
            }
        }
        Geometry::Rect(r) => coarsen(&Geometry::Polygon(r.to_polygon()), metres),
        Geometry::Triangle(t) => coarsen(&Geometry::Polygon(t.to_polygon()), metres),
        Geometry::GeometryCollection(gc) => Geometry::GeometryCollection(geo_types::GeometryCollection(
            gc.0.iter().map(|g| coarsen(g, metres)).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    /// Ground distance in metres between two nearby positions.
    fn metres_between(a: Coord<f64>, b: Coord<f64>) -> f64 {
        let dy = (a.y - b.y) * METRES_PER_DEGREE;
        let dx = (a.x - b.x) * METRES_PER_DEGREE * ((a.y + b.y) / 2.0).to_radians().cos();
        dx.hypot(dy)
    }

    #[test]
    fn coarsened_positions_move_at_most_half_a_cell_diagonal_and_share_cells() {
        for metres in [10.0, 100.0, 1000.0] {
            for i in 0..500 {
                let c = Coord { x: 106.55 + f64::from(i) * 0.00137, y: 29.56 + f64::from(i % 37) * 0.00091 };
                let s = coarsen_coord(c, metres);
                assert!(metres_between(c, s) <= metres * 0.5 * 2f64.sqrt() * 1.01, "{c:?} -> {s:?}");
                assert_eq!(coarsen_coord(s, metres), s, "a cell centre is its own cell");
            }
        }
        // Positions 1 m apart inside one 100 m cell are indistinguishable.
        let a = coarsen_coord(Coord { x: 106.55002, y: 29.56002 }, 100.0);
        let b = coarsen_coord(Coord { x: 106.55003, y: 29.56003 }, 100.0);
        assert_eq!(a, b);
    }

    #[test]
    fn small_outlines_collapse_to_their_cell_and_large_ones_keep_a_coarse_shape() {
        let block = polygon![(x: 106.550, y: 29.560), (x: 106.555, y: 29.560), (x: 106.555, y: 29.565), (x: 106.550, y: 29.565)];
        let small = polygon![(x: 106.55001, y: 29.56001), (x: 106.55009, y: 29.56001), (x: 106.55009, y: 29.56008), (x: 106.55001, y: 29.56008)];
        match coarsen(&Geometry::Polygon(small), 100.0) {
            Geometry::Point(p) => assert_eq!(p.0, coarsen_coord(Coord { x: 106.55005, y: 29.560045 }, 100.0)),
            other => panic!("expected the cell of its centre, got {other:?}"),
        }
        let Geometry::Polygon(p) = coarsen(&Geometry::Polygon(block), 100.0) else {
            panic!("a 500 m block keeps an outline at 100 m");
        };
        assert!(
            p.exterior().0.iter().all(|c| coarsen_coord(*c, 100.0) == *c),
            "every vertex is a cell centre"
        );
        assert_eq!(p.exterior().0.first(), p.exterior().0.last(), "closed");
        let road = LineString(vec![Coord { x: 106.55, y: 29.56 }, Coord { x: 106.5601, y: 29.56 }]);
        let Geometry::LineString(l) = coarsen(&Geometry::LineString(road), 100.0) else {
            panic!("a 1 km road stays a line")
        };
        assert_eq!(l.0.len(), 2);
    }

    #[test]
    fn round_trips_polygons_with_holes() {
        let p = polygon!(
            exterior: [(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 0.)],
            interiors: [[(x: 1., y: 1.), (x: 2., y: 1.), (x: 2., y: 2.), (x: 1., y: 1.)]],
        );
        let g = Geometry::MultiPolygon(MultiPolygon(vec![p]));
        let v = to_geojson(&g);
        assert_eq!(v["type"], "MultiPolygon");
        assert_eq!(from_geojson(&v).expect("parse"), g);
    }

    #[test]
    fn rejects_malformed_geometry() {
        assert!(from_geojson(&json!({"type": "Point", "coordinates": ["a"]})).is_err());
        assert!(from_geojson(&json!({"type": "Blob"})).is_err());
    }
}

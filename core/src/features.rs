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

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

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

//! Source CRS resolution and reprojection into the service frame (WGS84 lon/lat).
//!
//! PROJ does the work through GDAL's OSR bindings (one PROJ in the process); GCJ-02,
//! which PROJ lacks, is the one CRS handled in Rust ([`crate::gcj02`]).

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use geo_types::{Coord, Geometry};

use crate::IngestError;
use crate::gcj02;

/// A CRS as a file declares it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclaredCrs {
    Epsg(u32),
    Definition(String),
}

enum Kind {
    Identity,
    Proj(CoordTransform),
    Gcj02,
}

/// Moves geometry from one source CRS into WGS84 longitude/latitude.
pub struct Reprojector {
    kind: Kind,
    label: String,
    area_of_use: Option<[f64; 4]>,
}

impl std::fmt::Debug for Reprojector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reprojector({})", self.label)
    }
}

/// A CRS from any definition GDAL accepts (`EPSG:n`, WKT, a PROJ string, …).
///
/// gdal 0.19's `SpatialRef::from_definition` and `from_epsg` do not free the spatial
/// reference they allocated when the definition is refused, and definitions come
/// from inside files (LAS WKT records and GeoTIFF keys, .prj files), so every file
/// with a bad one leaked (found by `scripts/fuzz.sh las` under LeakSanitizer). Here
/// the handle belongs to a `SpatialRef` from the start, so it is released either way.
#[allow(unsafe_code)]
pub(crate) fn spatial_ref(definition: &str) -> gdal::errors::Result<SpatialRef> {
    let definition = std::ffi::CString::new(definition)?;
    let srs = SpatialRef::new()?;
    // SAFETY: `srs` holds a valid handle for the whole call, and the definition is a
    // NUL-terminated string that outlives it; GDAL copies what it keeps.
    let status = unsafe { gdal_sys::OSRSetFromUserInput(srs.to_c_hsrs(), definition.as_ptr()) };
    if status != gdal_sys::OGRErr::OGRERR_NONE {
        return Err(gdal::errors::GdalError::OgrError { err: status, method_name: "OSRSetFromUserInput" });
    }
    Ok(srs)
}

fn is_gcj02(spec: &str) -> bool {
    matches!(spec.trim().to_ascii_uppercase().replace(['-', '_'], "").as_str(), "GCJ02" | "MARS")
}

impl Reprojector {
    /// From `--src-crs`: `EPSG:n`, `ESRI:n`, WKT, a PROJ string, or `GCJ-02`.
    pub fn from_user(spec: &str) -> Result<Self, IngestError> {
        if is_gcj02(spec) {
            return Ok(Self {
                kind: Kind::Gcj02,
                label: "GCJ-02".into(),
                area_of_use: Some([72.004, 0.8293, 137.8347, 55.8271]),
            });
        }
        let srs = spatial_ref(spec)
            .map_err(|e| IngestError::UnknownCrs { crs: spec.to_owned(), reason: e.to_string() })?;
        Self::from_srs(srs, spec)
    }

    pub fn from_declared(crs: &DeclaredCrs) -> Result<Self, IngestError> {
        match crs {
            DeclaredCrs::Epsg(code) => {
                let label = format!("EPSG:{code}");
                let srs = spatial_ref(&label)
                    .map_err(|e| IngestError::UnknownCrs { crs: label.clone(), reason: e.to_string() })?;
                Self::from_srs(srs, &label)
            }
            DeclaredCrs::Definition(def) => Self::from_user(def),
        }
    }

    pub fn wgs84() -> Self {
        Self { kind: Kind::Identity, label: "EPSG:4326".into(), area_of_use: None }
    }

    fn from_srs(mut srs: SpatialRef, given: &str) -> Result<Self, IngestError> {
        let label = match (srs.auth_name(), srs.auth_code()) {
            (Some(name), Ok(code)) => format!("{name}:{code}"),
            _ => srs.name().unwrap_or_else(|| given.chars().take(60).collect()),
        };
        let area_of_use = srs
            .area_of_use()
            .map(|a| [a.west_lon_degree, a.south_lat_degree, a.east_lon_degree, a.north_lat_degree]);
        if label == "EPSG:4326" || label == "OGC:CRS84" {
            return Ok(Self { kind: Kind::Identity, label, area_of_use });
        }
        srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut wgs84 = SpatialRef::from_epsg(4326)
            .map_err(|e| IngestError::UnknownCrs { crs: "EPSG:4326".into(), reason: e.to_string() })?;
        wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let transform = CoordTransform::new(&srs, &wgs84)
            .map_err(|e| IngestError::UnknownCrs { crs: label.clone(), reason: e.to_string() })?;
        Ok(Self { kind: Kind::Proj(transform), label, area_of_use })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// `[west, south, east, north]` degrees where the CRS is meant to be used.
    pub fn area_of_use(&self) -> Option<[f64; 4]> {
        self.area_of_use
    }

    /// Reprojects in place; fails when PROJ cannot transform a coordinate.
    pub fn to_wgs84(&self, geometry: &mut Geometry<f64>) -> Result<(), String> {
        match &self.kind {
            Kind::Identity => Ok(()),
            Kind::Gcj02 => for_each_coord_run(geometry, &mut |coords| {
                for c in coords.iter_mut() {
                    let (lon, lat) = gcj02::gcj02_to_wgs84(c.x, c.y);
                    *c = Coord { x: lon, y: lat };
                }
                Ok(())
            }),
            Kind::Proj(transform) => for_each_coord_run(geometry, &mut |coords| {
                let mut xs: Vec<f64> = coords.iter().map(|c| c.x).collect();
                let mut ys: Vec<f64> = coords.iter().map(|c| c.y).collect();
                transform.transform_coords(&mut xs, &mut ys, &mut []).map_err(|e| e.to_string())?;
                for ((c, x), y) in coords.iter_mut().zip(xs).zip(ys) {
                    *c = Coord { x, y };
                }
                Ok(())
            }),
        }
    }
}

type RunFn<'a> = dyn FnMut(&mut [Coord<f64>]) -> Result<(), String> + 'a;

/// Calls `f` on every contiguous run of coordinates (a ring, a line, a point), so
/// reprojection goes through PROJ in batches rather than per point.
pub fn for_each_coord_run(geometry: &mut Geometry<f64>, f: &mut RunFn<'_>) -> Result<(), String> {
    match geometry {
        Geometry::Point(p) => {
            let mut c = [p.0];
            f(&mut c)?;
            p.0 = c[0];
            Ok(())
        }
        Geometry::Line(l) => {
            let mut c = [l.start, l.end];
            f(&mut c)?;
            (l.start, l.end) = (c[0], c[1]);
            Ok(())
        }
        Geometry::LineString(ls) => f(&mut ls.0),
        Geometry::Polygon(poly) => polygon_runs(poly, f),
        Geometry::MultiPoint(mp) => {
            let mut c: Vec<Coord<f64>> = mp.0.iter().map(|p| p.0).collect();
            f(&mut c)?;
            for (p, c) in mp.0.iter_mut().zip(c) {
                p.0 = c;
            }
            Ok(())
        }
        Geometry::MultiLineString(mls) => mls.0.iter_mut().try_for_each(|ls| f(&mut ls.0)),
        Geometry::MultiPolygon(mp) => mp.0.iter_mut().try_for_each(|p| polygon_runs(p, f)),
        Geometry::GeometryCollection(gc) => gc.0.iter_mut().try_for_each(|g| for_each_coord_run(g, f)),
        Geometry::Rect(r) => {
            let mut poly = Geometry::Polygon(r.to_polygon());
            for_each_coord_run(&mut poly, f)?;
            *geometry = poly;
            Ok(())
        }
        Geometry::Triangle(t) => {
            let mut poly = Geometry::Polygon(t.to_polygon());
            for_each_coord_run(&mut poly, f)?;
            *geometry = poly;
            Ok(())
        }
    }
}

fn polygon_runs(poly: &mut geo_types::Polygon<f64>, f: &mut RunFn<'_>) -> Result<(), String> {
    let mut result = Ok(());
    poly.exterior_mut(|ring| result = f(&mut ring.0));
    result?;
    let mut result = Ok(());
    poly.interiors_mut(|rings| {
        for ring in rings {
            if let Err(e) = f(&mut ring.0) {
                result = Err(e);
                return;
            }
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{Point, point};

    #[test]
    fn spatial_ref_takes_every_definition_form_and_refuses_garbage_with_an_error() {
        for (definition, code) in [("EPSG:3067", 3067), ("EPSG:4326", 4326)] {
            assert_eq!(spatial_ref(definition).and_then(|s| s.auth_code()).expect(definition), code);
        }
        let utm = spatial_ref("+proj=utm +zone=35 +datum=WGS84 +units=m +no_defs").expect("PROJ string");
        assert!(utm.is_projected() && utm.to_proj4().expect("proj4").contains("+zone=35"));
        let wkt = spatial_ref("EPSG:3067").and_then(|s| s.to_wkt()).expect("wkt");
        assert_eq!(spatial_ref(&wkt).and_then(|s| s.auth_code()).expect("from WKT"), 3067);
        for garbage in ["EPSG:999999", "PROJCS[\"broken\",GEOGCS[", "not a crs", "EPSG:\x004326", ""] {
            assert!(spatial_ref(garbage).is_err(), "{garbage:?} must be refused");
        }
    }

    fn transform(crs: &str, x: f64, y: f64) -> (f64, f64) {
        let r = Reprojector::from_user(crs).expect("known CRS");
        let mut g = Geometry::Point(point!(x: x, y: y));
        r.to_wgs84(&mut g).expect("transform");
        let p = Point::try_from(g).expect("point");
        (p.x(), p.y())
    }

    #[test]
    fn reprojects_the_crs_families_the_city_uses() {
        // Web Mercator: the inverse of core's own forward formula.
        let (lon, lat) = transform("EPSG:3857", 2_776_044.8, 8_437_657.3);
        assert!((lon - 24.9377).abs() < 1e-4 && (lat - 60.1699).abs() < 1e-4, "{lon},{lat}");
        // UTM 35N (Helsinki): false easting 500 km at 27°E.
        let (lon, lat) = transform("EPSG:32635", 385_000.0, 6_672_000.0);
        assert!((lon - 24.93).abs() < 0.02 && (lat - 60.17).abs() < 0.02, "{lon},{lat}");
        // CGCS2000 geographic is lon/lat with traditional axis order here.
        let (lon, lat) = transform("EPSG:4490", 106.55, 29.56);
        assert!((lon - 106.55).abs() < 1e-9 && (lat - 29.56).abs() < 1e-9);
        // CGCS2000 3-degree Gauss-Krüger zone 35 (EPSG:4523, CM 105°E, easting carries
        // the zone number): 556.3 km east of the 500 km false easting is ~0.58° east.
        let (lon, lat) = transform("EPSG:4523", 35_556_300.0, 3_271_300.0);
        assert!((lon - 105.5809).abs() < 1e-3 && (lat - 29.5584).abs() < 1e-3, "{lon},{lat}");
        // NAD83 / New York Long Island (ftUS), EPSG:2263: Manhattan near 987 000, 212 000 ft.
        let (lon, lat) = transform("EPSG:2263", 987_000.0, 212_000.0);
        assert!((lon + 73.99).abs() < 0.02 && (lat - 40.75).abs() < 0.02, "{lon},{lat}");
    }

    #[test]
    fn every_cgcs2000_gauss_kruger_3_degree_zone_puts_its_central_meridian_right() {
        // EPSG:4513-4533: zones 25-45 with the zone number in the easting;
        // EPSG:4534-4554: the same central meridians (75°E-135°E) without it.
        for i in 0..21u32 {
            let cm = 75.0 + 3.0 * f64::from(i);
            let zone = 25.0 + f64::from(i);
            let (lon, lat) = transform(&format!("EPSG:{}", 4513 + i), zone * 1e6 + 500_000.0, 3_300_000.0);
            assert!(
                (lon - cm).abs() < 1e-9 && (lat - 29.818_554_517).abs() < 1e-6,
                "EPSG:{}: {lon},{lat}",
                4513 + i
            );
            let (lon, _) = transform(&format!("EPSG:{}", 4534 + i), 500_000.0, 3_300_000.0);
            assert!((lon - cm).abs() < 1e-9, "EPSG:{}: {lon}", 4534 + i);
            let r = Reprojector::from_user(&format!("EPSG:{}", 4534 + i)).expect("zone");
            let [w, _, e, _] = r.area_of_use().expect("area of use");
            // The area is the zone's 3° strip clipped to China (zone 45 ends at 134.8°E).
            assert!(w >= cm - 1.55 && e <= cm + 1.55 && e > w, "EPSG:{}: {w}..{e}", 4534 + i);
        }
    }

    #[test]
    fn gcj02_is_opt_in_and_inverted() {
        let (lon, lat) = transform("GCJ-02", 121.531541859215, 31.17530398364597);
        assert!((lon - 121.5272106).abs() < 1e-8 && (lat - 31.1774276).abs() < 1e-8);
    }

    #[test]
    fn unknown_crs_is_a_clear_error() {
        let err = Reprojector::from_user("EPSG:999999").expect_err("no such CRS");
        assert!(err.to_string().contains("EPSG:999999"), "{err}");
    }
}

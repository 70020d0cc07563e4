//! Where a point cloud's coordinates are: its CRS (WKT or GeoTIFF VLRs, or
//! `--src-crs`), the unit of its heights, and the move into the layer's
//! east-north-up frame.

use cim_core::frame::EnuFrame;
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use las::Header;

use crate::IngestError;
use crate::ifc::georef::Anchor;

/// GeoTIFF key ids (OGC 19-008r4) and EPSG unit codes this module reads.
const PROJECTED_CRS_KEY: u16 = 3072;
const GEODETIC_CRS_KEY: u16 = 2048;
const VERTICAL_UNITS_KEY: u16 = 4099;
const USER_DEFINED: u16 = 32767;

fn unit_metres(epsg_unit: u16) -> Option<(f64, &'static str)> {
    match epsg_unit {
        9001 => Some((1.0, "metre")),
        9002 => Some((0.3048, "foot")),
        9003 => Some((1200.0 / 3937.0, "US survey foot")),
        _ => None,
    }
}

/// How a file's coordinates were placed.
pub struct CloudCrs {
    /// What the catalogue shows as the source CRS.
    pub label: String,
    kind: Kind,
    /// Multiplies z before reprojection (feet to metres for CRSs without a vertical part).
    z_to_metres: f64,
    /// Doubts recorded in the quality report.
    pub warnings: Vec<String>,
}

enum Kind {
    Proj(CoordTransform),
    /// Local metres: x east, y north after rotation, placed at the anchor.
    Anchored {
        origin: [f64; 3],
        cos: f64,
        sin: f64,
        anchor: [f64; 3],
    },
}

/// A CRS definition, where it came from, and the GeoTIFF vertical unit (metres per
/// unit, name) if the file gives one.
type Declared = (String, String, Option<(f64, &'static str)>);

/// The CRS a file declares: its WKT record if it has one (LAS 1.4 says to prefer
/// it), else its GeoTIFF keys.
fn declared(header: &Header) -> Result<Option<Declared>, String> {
    let geotiff = header.get_geotiff_crs().map_err(|e| format!("GeoTIFF CRS record: {e}"))?;
    let key = |id: u16| {
        geotiff.as_ref().and_then(|g| {
            g.entries.iter().find(|e| e.id == id).and_then(|e| match e.data {
                las::crs::GeoTiffData::U16(v) => Some(v),
                _ => None,
            })
        })
    };
    let vertical_unit = key(VERTICAL_UNITS_KEY).and_then(unit_metres);
    let mut empty_wkt = false;
    if let Some(bytes) = header.get_wkt_crs_bytes() {
        let wkt = String::from_utf8_lossy(bytes)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace() || c == '\'' || c == '"')
            .to_owned();
        if wkt.is_empty() {
            empty_wkt = true;
        } else {
            return Ok(Some((wkt, "WKT record".into(), vertical_unit)));
        }
    }
    let code = key(PROJECTED_CRS_KEY).filter(|&c| c != 0).or(key(GEODETIC_CRS_KEY).filter(|&c| c != 0));
    match code {
        Some(USER_DEFINED) => {
            Err("its GeoTIFF keys define their own CRS (user-defined, 32767), which is not read here; pass --src-crs".into())
        }
        Some(code) => Ok(Some((format!("EPSG:{code}"), "GeoTIFF keys".into(), vertical_unit))),
        None if empty_wkt => Err(
            "its WKT CRS record is empty (and it has no GeoTIFF CRS keys); pass --src-crs with the survey's CRS".into(),
        ),
        None => Ok(None),
    }
}

/// `[min, max]` per axis of the header.
fn header_box(header: &Header) -> [[f64; 3]; 2] {
    let b = header.bounds();
    [[b.min.x, b.min.y, b.min.z], [b.max.x, b.max.y, b.max.z]]
}

impl CloudCrs {
    /// Decides how to place `path`: `--anchor` (local metres), else `--src-crs`, else
    /// what the header declares. Refuses a declared CRS its coordinates contradict.
    pub fn resolve(
        path: &std::path::Path,
        header: &Header,
        src_crs: Option<&str>,
        anchor: Option<&Anchor>,
    ) -> Result<Self, IngestError> {
        let bad = |reason: String| IngestError::source(path, reason);
        let declared = declared(header);
        let coords = header_box(header);
        let range = format!(
            "x {:.1}..{:.1}, y {:.1}..{:.1}, z {:.1}..{:.1}",
            coords[0][0], coords[1][0], coords[0][1], coords[1][1], coords[0][2], coords[1][2]
        );
        let mut warnings = Vec::new();
        // A declared CRS that the coordinates contradict is worth a warning even when
        // the user overrides it, and an error when nothing does.
        let contradiction = match &declared {
            Ok(Some((def, from, _))) => contradiction(def, &coords).map(|why| {
                format!(
                    "the header's CRS ({from}: {}) disagrees with its coordinates ({range}): {why}",
                    short(def)
                )
            }),
            _ => None,
        };
        if let Some(a) = anchor {
            if let Some(c) = &contradiction {
                warnings.push(c.clone());
            }
            let origin =
                [(coords[0][0] + coords[1][0]) / 2.0, (coords[0][1] + coords[1][1]) / 2.0, coords[0][2]];
            let r = a.rotation_deg.to_radians();
            return Ok(Self {
                label: format!(
                    "local metres placed by --anchor {},{},{},{}",
                    a.lon, a.lat, a.height, a.rotation_deg
                ),
                kind: Kind::Anchored { origin, cos: r.cos(), sin: r.sin(), anchor: [a.lon, a.lat, a.height] },
                z_to_metres: 1.0,
                warnings,
            });
        }
        let (definition, from, vertical_unit) = match (src_crs, declared) {
            (Some(spec), declared) => {
                // A CRS typed by hand is held to its area of use as the vector path
                // holds it (a neighbouring zone lands a few degrees off), more
                // tightly than a declared one.
                if let Some(why) = contradiction_within(spec, &coords, SRC_CRS_MARGIN_DEG) {
                    return Err(bad(format!(
                        "--src-crs {spec} does not fit the coordinates ({range}): {why}; wrong zone or CRS?"
                    )));
                }
                if let Some(c) = contradiction {
                    warnings.push(format!("{c}; overridden by --src-crs {spec}"));
                } else if let Ok(Some((def, from, _))) = declared {
                    warnings.push(format!(
                        "the header's CRS ({from}: {}) was overridden by --src-crs {spec}",
                        short(&def)
                    ));
                }
                (spec.to_owned(), "--src-crs".to_owned(), None)
            }
            (None, Err(why)) => return Err(bad(why)),
            (None, Ok(None)) => return Err(IngestError::MissingCrs { path: path.to_path_buf() }),
            (None, Ok(Some(d))) => {
                if let Some(c) = contradiction {
                    return Err(bad(format!("{c}; pass --src-crs (or --anchor for local coordinates)")));
                }
                d
            }
        };
        let mut srs = crate::crs::spatial_ref(&definition)
            .map_err(|e| IngestError::UnknownCrs { crs: short(&definition), reason: e.to_string() })?;
        let label = match (srs.auth_name(), srs.auth_code()) {
            (Some(name), Ok(code)) => format!("{name}:{code}"),
            _ => srs.name().unwrap_or_else(|| short(&definition)),
        };
        let label = format!("{label} ({from})");
        // A compound CRS carries its height unit and PROJ converts it; a horizontal
        // one leaves z alone, so it is scaled here: by the GeoTIFF vertical unit key,
        // else by the horizontal unit, which is what feet-based surveys use.
        let z_to_metres = if srs.is_compound() || srs.is_geocentric() {
            1.0
        } else if let Some((m, name)) = vertical_unit {
            if m != 1.0 {
                warnings.push(format!("heights converted from {name} (GeoTIFF vertical units key)"));
            }
            m
        } else if srs.is_projected() && (srs.linear_units() - 1.0).abs() > 1e-12 {
            let name = srs.linear_units_name().unwrap_or_else(|| "the horizontal unit".into());
            warnings.push(format!(
                "no vertical unit declared: heights taken in {name} like the horizontal axes ({} m each)",
                srs.linear_units()
            ));
            srs.linear_units()
        } else {
            1.0
        };
        srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut target = SpatialRef::from_epsg(4979)
            .map_err(|e| IngestError::UnknownCrs { crs: "EPSG:4979".into(), reason: e.to_string() })?;
        target.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let transform = CoordTransform::new(&srs, &target)
            .map_err(|e| IngestError::UnknownCrs { crs: label.clone(), reason: e.to_string() })?;
        Ok(Self { label, kind: Kind::Proj(transform), z_to_metres, warnings })
    }

    /// Moves points (in place) to longitude, latitude (degrees), height (metres).
    /// A point PROJ cannot move comes out as NaN.
    pub fn to_geodetic(&self, xs: &mut [f64], ys: &mut [f64], zs: &mut [f64]) {
        match &self.kind {
            Kind::Proj(t) => {
                if self.z_to_metres != 1.0 {
                    zs.iter_mut().for_each(|z| *z *= self.z_to_metres);
                }
                if t.transform_coords(xs, ys, zs).is_err() {
                    // One bad point fails the batch: redo it point by point.
                    for i in 0..xs.len() {
                        let (mut x, mut y, mut z) = ([xs[i]], [ys[i]], [zs[i]]);
                        if t.transform_coords(&mut x, &mut y, &mut z).is_ok() {
                            (xs[i], ys[i], zs[i]) = (x[0], y[0], z[0]);
                        } else {
                            (xs[i], ys[i], zs[i]) = (f64::NAN, f64::NAN, f64::NAN);
                        }
                    }
                }
            }
            Kind::Anchored { origin, cos, sin, anchor } => {
                let frame = EnuFrame::at(anchor[0], anchor[1], anchor[2]);
                for i in 0..xs.len() {
                    let (x, y) = (xs[i] - origin[0], ys[i] - origin[1]);
                    let enu = [x * cos - y * sin, x * sin + y * cos, zs[i] - origin[2]];
                    let (lon, lat, h) = frame.to_geodetic(enu);
                    (xs[i], ys[i], zs[i]) = (lon, lat, h);
                }
            }
        }
    }
}

/// Chunks smaller than this go through PROJ point by point.
const GRID_MIN_POINTS: usize = 4096;
/// Largest distance (metres) an interpolated point may lie from PROJ's answer.
const GRID_TOLERANCE_M: f64 = 0.001;

impl CloudCrs {
    /// As [`Self::to_geodetic`], but PROJ runs only on a grid over the chunk's box
    /// (at its lowest and highest z) and the points are interpolated in it:
    /// bilinearly across, linearly up. Every chunk checks a spread of its points
    /// against PROJ; a grid that misses by over a millimetre is refined, and the
    /// finest that still misses gives way to PROJ for every point.
    pub fn to_geodetic_gridded(&self, xs: &mut [f64], ys: &mut [f64], zs: &mut [f64]) -> Reprojected {
        let exactly = |xs: &mut [f64], ys: &mut [f64], zs: &mut [f64]| {
            self.to_geodetic(xs, ys, zs);
            Reprojected::PointByPoint
        };
        if matches!(self.kind, Kind::Anchored { .. }) || xs.len() < GRID_MIN_POINTS {
            return exactly(xs, ys, zs);
        }
        let span = |v: &[f64]| {
            v.iter()
                .filter(|c| c.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &c| (lo.min(c), hi.max(c)))
        };
        let ((x0, x1), (y0, y1), (z0, z1)) = (span(xs), span(ys), span(zs));
        if !(x0.is_finite() && y0.is_finite() && z0.is_finite())
            || xs.iter().chain(ys.iter()).chain(zs.iter()).any(|c| !c.is_finite())
        {
            return exactly(xs, ys, zs);
        }
        let z1 = if z1 > z0 { z1 } else { z0 + 1.0 };
        // A spread of points to check against PROJ.
        let checks: Vec<usize> = (0..64).map(|i| i * (xs.len() - 1) / 63).collect();
        let mut exact: Vec<[f64; 3]> = checks.iter().map(|&i| [xs[i], ys[i], zs[i]]).collect();
        {
            let (mut ex, mut ey, mut ez): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                exact.iter().map(|p| p[0]).collect(),
                exact.iter().map(|p| p[1]).collect(),
                exact.iter().map(|p| p[2]).collect(),
            );
            self.to_geodetic(&mut ex, &mut ey, &mut ez);
            for (k, p) in exact.iter_mut().enumerate() {
                *p = [ex[k], ey[k], ez[k]];
            }
        }
        if exact.iter().flatten().any(|c| !c.is_finite()) {
            return exactly(xs, ys, zs);
        }
        for cells in [16usize, 64, 256] {
            let Some(grid) = Grid::build(self, cells, [x0, x1], [y0, y1], [z0, z1]) else { break };
            let fits = checks
                .iter()
                .zip(&exact)
                .all(|(&i, e)| metres_apart(grid.at(xs[i], ys[i], zs[i]), *e) <= GRID_TOLERANCE_M);
            if fits {
                for i in 0..xs.len() {
                    let g = grid.at(xs[i], ys[i], zs[i]);
                    (xs[i], ys[i], zs[i]) = (g[0], g[1], g[2]);
                }
                return Reprojected::Grid { cells };
            }
        }
        exactly(xs, ys, zs)
    }
}

/// The distance between two longitude, latitude, height points.
fn metres_apart(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (a, b) = (
        cim_core::frame::geodetic_to_ecef(a[0], a[1], a[2]),
        cim_core::frame::geodetic_to_ecef(b[0], b[1], b[2]),
    );
    (0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>().sqrt()
}

/// How a chunk was reprojected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprojected {
    /// Interpolated in a grid of `cells` x `cells` PROJ answers.
    Grid { cells: usize },
    /// PROJ for every point (small, local, odd or too curved for any grid).
    PointByPoint,
}

/// PROJ's answers on a regular grid: `(cells + 1)²` nodes at two heights.
struct Grid {
    cells: usize,
    origin: [f64; 3],
    step: [f64; 3],
    /// Longitude, latitude, height per node; the low layer first.
    nodes: Vec<[f64; 3]>,
}

impl Grid {
    fn build(crs: &CloudCrs, cells: usize, x: [f64; 2], y: [f64; 2], z: [f64; 2]) -> Option<Self> {
        let side = cells + 1;
        let step =
            [(x[1] - x[0]).max(1e-9) / cells as f64, (y[1] - y[0]).max(1e-9) / cells as f64, z[1] - z[0]];
        let (mut gx, mut gy, mut gz) = (Vec::new(), Vec::new(), Vec::new());
        for height in z {
            for j in 0..side {
                for i in 0..side {
                    gx.push(x[0] + i as f64 * step[0]);
                    gy.push(y[0] + j as f64 * step[1]);
                    gz.push(height);
                }
            }
        }
        crs.to_geodetic(&mut gx, &mut gy, &mut gz);
        let nodes: Vec<[f64; 3]> = (0..gx.len()).map(|k| [gx[k], gy[k], gz[k]]).collect();
        // A grid across the antimeridian or with unprojectable corners is no use.
        let lon_jump = nodes.windows(2).any(|w| (w[0][0] - w[1][0]).abs() > 90.0);
        (!lon_jump && nodes.iter().flatten().all(|c| c.is_finite())).then_some(Self {
            cells,
            origin: [x[0], y[0], z[0]],
            step,
            nodes,
        })
    }

    fn at(&self, x: f64, y: f64, z: f64) -> [f64; 3] {
        let side = self.cells + 1;
        let cell = |v: f64, k: usize| {
            let t = (v - self.origin[k]) / self.step[k];
            let i = (t.floor().max(0.0) as usize).min(self.cells - 1);
            (i, t - i as f64)
        };
        let ((i, u), (j, v)) = (cell(x, 0), cell(y, 1));
        let w = (z - self.origin[2]) / self.step[2];
        let layer = |l: usize| {
            let n = |di: usize, dj: usize| self.nodes[l * side * side + (j + dj) * side + i + di];
            let (a, b, c, d) = (n(0, 0), n(1, 0), n(0, 1), n(1, 1));
            [0, 1, 2].map(|k| (a[k] * (1.0 - u) + b[k] * u) * (1.0 - v) + (c[k] * (1.0 - u) + d[k] * u) * v)
        };
        let (lo, hi) = (layer(0), layer(1));
        [0, 1, 2].map(|k| lo[k] + (hi[k] - lo[k]) * w)
    }
}

fn short(definition: &str) -> String {
    let name = definition.split('"').nth(1).filter(|_| definition.contains('['));
    name.map(str::to_owned).unwrap_or_else(|| definition.chars().take(60).collect())
}

/// Why coordinates cannot be in `definition`, judged from the header's box.
/// How far outside its area of use (degrees) a declared CRS may put a cloud's
/// centre, and a CRS given with `--src-crs`.
const DECLARED_MARGIN_DEG: f64 = 5.0;
const SRC_CRS_MARGIN_DEG: f64 = 1.0;

fn contradiction(definition: &str, coords: &[[f64; 3]; 2]) -> Option<String> {
    contradiction_within(definition, coords, DECLARED_MARGIN_DEG)
}

fn contradiction_within(definition: &str, coords: &[[f64; 3]; 2], margin: f64) -> Option<String> {
    // A header without points has no box to judge by.
    if coords.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let srs = crate::crs::spatial_ref(definition).ok()?;
    if srs.is_geographic() {
        let lon_ok = coords[0][0] >= -180.0 && coords[1][0] <= 360.0;
        let lat_ok = coords[0][1] >= -90.0 && coords[1][1] <= 90.0;
        return (!lon_ok || !lat_ok).then(|| {
            "a geographic CRS needs longitudes within ±180° (or 0..360°) and latitudes within ±90°".into()
        });
    }
    if srs.is_geocentric() {
        let radius = |p: [f64; 3]| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
        let r = radius(coords[0]).max(radius(coords[1]));
        return (!(6.2e6..6.5e6).contains(&r)).then(|| {
            format!("a geocentric CRS puts points about 6 371 km from the Earth's centre, these lie {:.0} km away", r / 1000.0)
        });
    }
    // A projected CRS: the box's centre must land within (a margin around) the
    // area the CRS is meant for.
    let area = srs.area_of_use()?;
    let mut srs = srs;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut wgs84 = SpatialRef::from_epsg(4326).ok()?;
    wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let t = CoordTransform::new(&srs, &wgs84).ok()?;
    let (mut x, mut y) = ([(coords[0][0] + coords[1][0]) / 2.0], [(coords[0][1] + coords[1][1]) / 2.0]);
    let moved = t.transform_coords(&mut x, &mut y, &mut []).is_ok() && x[0].is_finite() && y[0].is_finite();
    let inside = moved
        && (area.south_lat_degree - margin..=area.north_lat_degree + margin).contains(&y[0])
        && if area.west_lon_degree <= area.east_lon_degree {
            (area.west_lon_degree - margin..=area.east_lon_degree + margin).contains(&x[0])
        } else {
            x[0] >= area.west_lon_degree - margin || x[0] <= area.east_lon_degree + margin
        };
    (!inside).then(|| {
        format!(
            "their centre lands at {:.3}°, {:.3}°, outside the CRS's area of use ({:.1}..{:.1}°E, {:.1}..{:.1}°N)",
            x[0], y[0], area.west_lon_degree, area.east_lon_degree, area.south_lat_degree, area.north_lat_degree
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm_32n() -> CloudCrs {
        let header = las::Builder::from((1, 2)).into_header().expect("a LAS 1.2 header");
        CloudCrs::resolve(std::path::Path::new("test.las"), &header, Some("EPSG:32632"), None)
            .expect("UTM 32N")
    }

    /// `n` points scattered over a square `width` metres wide around 9°E 49.6°N, 0–300 m up.
    fn chunk(width: f64, n: usize) -> [Vec<f64>; 3] {
        let mut next = super::super::scatter(0x9E37_79B9_7F4A_7C15);
        let mut out = [Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
        for _ in 0..n {
            out[0].push(500_000.0 + (next() - 0.5) * width);
            out[1].push(5_495_000.0 + (next() - 0.5) * width);
            out[2].push(next() * 300.0);
        }
        out
    }

    #[test]
    fn gridded_reprojection_stays_within_a_millimetre_of_proj_refining_or_giving_way_as_needed() {
        let crs = utm_32n();
        let mut seen = Vec::new();
        for width in [500.0, 10_000.0, 30_000.0, 3_000_000.0] {
            let [mut xs, mut ys, mut zs] = chunk(width, 20_000);
            let (mut ex, mut ey, mut ez) = (xs.clone(), ys.clone(), zs.clone());
            crs.to_geodetic(&mut ex, &mut ey, &mut ez);
            let how = crs.to_geodetic_gridded(&mut xs, &mut ys, &mut zs);
            let worst = (0..xs.len())
                .map(|i| metres_apart([xs[i], ys[i], zs[i]], [ex[i], ey[i], ez[i]]))
                .fold(0.0, f64::max);
            assert!(worst <= GRID_TOLERANCE_M, "{width} m wide, {how:?}: a point {worst} m off");
            seen.push(how);
        }
        // A survey block fits the coarsest grid, wider drops refine it twice, and half a
        // continent bends too much for any grid: PROJ takes every point.
        assert_eq!(
            seen,
            [
                Reprojected::Grid { cells: 16 },
                Reprojected::Grid { cells: 64 },
                Reprojected::Grid { cells: 256 },
                Reprojected::PointByPoint
            ]
        );
    }
}

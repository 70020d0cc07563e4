//! Cutting Mapbox Vector Tiles from the layer's R-tree into a PMTiles archive.
//!
//! Zoom by zoom, breadth first: a tile is built only if the R-tree finds features in
//! its buffered envelope, and only its children are visited next, so empty ocean
//! costs nothing. Each zoom first simplifies every feature once (Douglas–Peucker at
//! half a pixel), so neighbouring tiles share the same simplified edges.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use cim_core::mvt::{DEFAULT_EXTENT, LayerBuilder, PropertyValue, TileGeometry, TilePoint};
use cim_core::pmtiles::{ArchiveInfo, Compression, TileType, Writer, gzip};
use cim_core::tile::{TileId, lonlat_to_mercator};
use geo::{BoundingRect, MapCoords, Simplify};
use geo_types::{Geometry, LineString, Polygon};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde_json::Value;

use crate::IngestError;
use crate::clip::{Pt, clip_line, clip_ring};
use crate::feature::LayerFeature;

/// Buffer around each tile, in tile units (tippecanoe's default of 5/256).
pub const BUFFER: f64 = 80.0;

#[derive(Debug, Clone)]
pub struct TilingConfig {
    /// Layer name inside each tile.
    pub layer: String,
    /// `[west, south, east, north]` degrees, for the archive header.
    pub bounds: [f64; 4],
    /// Attribute name → TileJSON type, for the archive metadata.
    pub fields: serde_json::Map<String, Value>,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// Stop descending when the next zoom would need more tiles than this;
    /// clients overzoom the last level.
    pub max_tiles_per_zoom: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TilingStats {
    pub tiles: usize,
    pub max_zoom: u8,
    pub bytes: u64,
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// Features projected to Web Mercator with their R-tree.
pub struct MercatorIndex {
    pub geometries: Vec<Geometry<f64>>,
    pub tree: RTree<Indexed>,
}

impl MercatorIndex {
    pub fn build(features: &[LayerFeature]) -> Self {
        let geometries: Vec<Geometry<f64>> = features
            .par_iter()
            .map(|f| {
                f.geometry.map_coords(|c| {
                    let (x, y) = lonlat_to_mercator(c.x, c.y);
                    geo_types::Coord { x, y }
                })
            })
            .collect();
        let entries: Vec<Indexed> = geometries
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let r = g.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        Self { geometries, tree: RTree::bulk_load(entries) }
    }

    pub fn candidates(&self, bbox: [f64; 4]) -> impl Iterator<Item = usize> + '_ {
        self.tree
            .locate_in_envelope_intersecting(&AABB::from_corners([bbox[0], bbox[1]], [bbox[2], bbox[3]]))
            .map(|e| e.data)
    }
}

fn mvt_properties(props: &serde_json::Map<String, Value>) -> Vec<(String, PropertyValue)> {
    props
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::Null => return None,
                Value::Bool(b) => PropertyValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => PropertyValue::Int(i),
                    None => PropertyValue::Double(n.as_f64().unwrap_or(0.0)),
                },
                Value::String(s) => PropertyValue::String(s.clone()),
                other => PropertyValue::String(other.to_string()),
            };
            Some((k.clone(), v))
        })
        .collect()
}

struct TileFrame {
    min_x: f64,
    max_y: f64,
    scale: f64,
}

impl TileFrame {
    fn new(tile: TileId) -> Self {
        let b = tile.bounds_mercator();
        Self { min_x: b[0], max_y: b[3], scale: f64::from(DEFAULT_EXTENT) / tile.size_m() }
    }
    fn px(&self, c: &geo_types::Coord<f64>) -> Pt {
        [(c.x - self.min_x) * self.scale, (self.max_y - c.y) * self.scale]
    }
}

fn quantize(points: &[Pt]) -> Vec<TilePoint> {
    points.iter().map(|p| [p[0].round() as i32, p[1].round() as i32]).collect()
}

fn tile_polygon(frame: &TileFrame, poly: &Polygon<f64>) -> Vec<Vec<TilePoint>> {
    let (lo, hi) = (-BUFFER, f64::from(DEFAULT_EXTENT) + BUFFER);
    let ring = |ls: &LineString<f64>| {
        let pts: Vec<Pt> = ls.0.iter().map(|c| frame.px(c)).collect();
        quantize(&clip_ring(&pts, lo, hi))
    };
    let mut rings = vec![ring(poly.exterior())];
    rings.extend(poly.interiors().iter().map(ring));
    rings
}

fn tile_lines(frame: &TileFrame, ls: &LineString<f64>, out: &mut Vec<Vec<TilePoint>>) {
    let (lo, hi) = (-BUFFER, f64::from(DEFAULT_EXTENT) + BUFFER);
    let pts: Vec<Pt> = ls.0.iter().map(|c| frame.px(c)).collect();
    out.extend(clip_line(&pts, lo, hi).iter().map(|p| quantize(p)));
}

fn in_tile(p: TilePoint) -> bool {
    let e = DEFAULT_EXTENT as i32;
    (0..e).contains(&p[0]) && (0..e).contains(&p[1])
}

fn to_tile_geometry(frame: &TileFrame, g: &Geometry<f64>) -> Option<TileGeometry> {
    match g {
        Geometry::Point(p) => {
            let q = quantize(&[frame.px(&p.0)])[0];
            in_tile(q).then(|| TileGeometry::Points(vec![q]))
        }
        Geometry::MultiPoint(mp) => {
            let pts: Vec<TilePoint> = quantize(&mp.0.iter().map(|p| frame.px(&p.0)).collect::<Vec<_>>())
                .into_iter()
                .filter(|p| in_tile(*p))
                .collect();
            (!pts.is_empty()).then_some(TileGeometry::Points(pts))
        }
        Geometry::LineString(ls) => {
            let mut out = Vec::new();
            tile_lines(frame, ls, &mut out);
            (!out.is_empty()).then_some(TileGeometry::Lines(out))
        }
        Geometry::MultiLineString(mls) => {
            let mut out = Vec::new();
            for ls in &mls.0 {
                tile_lines(frame, ls, &mut out);
            }
            (!out.is_empty()).then_some(TileGeometry::Lines(out))
        }
        Geometry::Polygon(p) => Some(TileGeometry::Polygons(vec![tile_polygon(frame, p)])),
        Geometry::MultiPolygon(mp) => {
            Some(TileGeometry::Polygons(mp.0.iter().map(|p| tile_polygon(frame, p)).collect()))
        }
        _ => None,
    }
}

fn simplify(g: &Geometry<f64>, epsilon: f64) -> Geometry<f64> {
    match g {
        Geometry::LineString(ls) => Geometry::LineString(ls.simplify(epsilon)),
        Geometry::MultiLineString(m) => Geometry::MultiLineString(m.simplify(epsilon)),
        Geometry::Polygon(p) => Geometry::Polygon(p.simplify(epsilon)),
        Geometry::MultiPolygon(m) => Geometry::MultiPolygon(m.simplify(epsilon)),
        other => other.clone(),
    }
}

/// Builds the archive at `out`; returns what was written.
pub fn build_pmtiles(
    features: &[LayerFeature],
    index: &MercatorIndex,
    config: &TilingConfig,
    out: &Path,
    cancel: &AtomicBool,
    progress: &indicatif::ProgressBar,
) -> Result<TilingStats, IngestError> {
    let (layer, bounds, fields) = (config.layer.as_str(), config.bounds, &config.fields);
    let properties: Vec<Vec<(String, PropertyValue)>> =
        features.par_iter().map(|f| mvt_properties(&f.properties)).collect();
    let mut writer = Writer::new(TileType::Mvt, Compression::Gzip);
    let mut level = vec![TileId { z: 0, x: 0, y: 0 }];
    let mut stats = TilingStats::default();
    for z in 0..=config.max_zoom {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(layer.to_owned()));
        }
        if level.is_empty() {
            break;
        }
        if level.len() > config.max_tiles_per_zoom && z > config.min_zoom {
            tracing::info!(zoom = z, tiles = level.len(), "stopping: zoom would exceed --max-tiles-per-zoom");
            break;
        }
        progress.set_message(format!("MVT zoom {z}: {} tiles", level.len()));
        let probe = TileId { z, x: 0, y: 0 };
        let px_m = probe.size_m() / f64::from(DEFAULT_EXTENT);
        let at_max = z == config.max_zoom;
        // At the deepest zoom tiles carry the full geometry: no copy, no simplification.
        let simplified: Vec<Cow<'_, Geometry<f64>>> = index
            .geometries
            .par_iter()
            .map(|g| if at_max { Cow::Borrowed(g) } else { Cow::Owned(simplify(g, px_m * 0.5)) })
            .collect();
        let built: Vec<(TileId, Option<Vec<u8>>)> = level
            .par_iter()
            .filter_map(|&tile| {
                let b = tile.bounds_mercator();
                let buf = BUFFER * px_m;
                let mut ids: Vec<usize> =
                    index.candidates([b[0] - buf, b[1] - buf, b[2] + buf, b[3] + buf]).collect();
                if ids.is_empty() {
                    return None;
                }
                if z < config.min_zoom {
                    return Some((tile, None));
                }
                ids.sort_unstable();
                let frame = TileFrame::new(tile);
                let mut builder = LayerBuilder::new(layer, DEFAULT_EXTENT);
                for i in ids {
                    let g: &Geometry<f64> = &simplified[i];
                    if !at_max && is_subpixel(g, px_m) {
                        continue;
                    }
                    if let Some(tg) = to_tile_geometry(&frame, g) {
                        let props: Vec<(&str, PropertyValue)> =
                            properties[i].iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                        builder.add_feature(features[i].fid, &tg, &props);
                    }
                }
                Some((tile, (!builder.is_empty()).then(|| gzip(&cim_core::mvt::encode_tile(&[builder])))))
            })
            .collect();
        let mut next = Vec::new();
        for (tile, bytes) in built {
            if let Some(bytes) = bytes {
                stats.bytes += bytes.len() as u64;
                writer.add_tile(tile, bytes);
                stats.tiles += 1;
                stats.max_zoom = z;
            }
            if z < config.max_zoom {
                next.extend(tile.children());
            }
        }
        progress.inc(1);
        level = next;
    }
    let (w, s, e, n) = (bounds[0], bounds[1], bounds[2], bounds[3]);
    let info = ArchiveInfo {
        bounds,
        center: [(w + e) / 2.0, (s + n) / 2.0],
        center_zoom: stats.max_zoom.saturating_sub(2).max(config.min_zoom),
        metadata: serde_json::json!({
            "name": layer,
            "format": "pbf",
            "generator": concat!("cim-ingest ", env!("CARGO_PKG_VERSION")),
            "vector_layers": [{
                "id": layer,
                "fields": fields,
                "minzoom": config.min_zoom,
                "maxzoom": stats.max_zoom,
            }],
        }),
    };
    let file = std::fs::File::create(out).map_err(|e| IngestError::store(out, e))?;
    let mut buffered = std::io::BufWriter::new(file);
    writer.finish(&info, &mut buffered)?;
    std::io::Write::flush(&mut buffered).map_err(|e| IngestError::store(out, e))?;
    Ok(stats)
}

fn is_subpixel(g: &Geometry<f64>, px_m: f64) -> bool {
    match g {
        Geometry::Point(_) | Geometry::MultiPoint(_) => false,
        other => other.bounding_rect().is_none_or(|r| r.width() < px_m && r.height() < px_m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertices(g: &TileGeometry) -> usize {
        match g {
            TileGeometry::Points(p) => p.len(),
            TileGeometry::Lines(l) => l.iter().map(Vec::len).sum(),
            TileGeometry::Polygons(p) => p.iter().flatten().map(Vec::len).sum(),
        }
    }

    #[test]
    fn coarser_zooms_keep_fewer_vertices_of_the_same_line() {
        // A 2 km wiggle along a Helsinki street, a vertex every 2 m.
        let line: Vec<geo_types::Coord<f64>> = (0..1000)
            .map(|i| {
                let t = f64::from(i) / 1000.0;
                let (x, y) = lonlat_to_mercator(24.93 + 0.036 * t, 60.17 + 0.0003 * (t * 60.0).sin());
                geo_types::Coord { x, y }
            })
            .collect();
        let g = Geometry::LineString(LineString(line));
        let mut counts = Vec::new();
        for z in [8u8, 12, 15] {
            let px_m = TileId { z, x: 0, y: 0 }.size_m() / f64::from(DEFAULT_EXTENT);
            let simplified = simplify(&g, px_m * 0.5);
            counts.push(geo::CoordsIter::coords_count(&simplified));
        }
        // And what reaches a tile stays within half a pixel of the source: the z8 tile
        // holding the line shows it with those few vertices.
        let (mx, my) = lonlat_to_mercator(24.948, 60.17);
        let (x, y, _, _) = cim_core::tile::tile_range(8, [mx, my, mx, my]);
        let px_m = TileId { z: 8, x, y }.size_m() / f64::from(DEFAULT_EXTENT);
        let tg = to_tile_geometry(&TileFrame::new(TileId { z: 8, x, y }), &simplify(&g, px_m * 0.5))
            .expect("in tile");
        assert!(vertices(&tg) <= counts[0]);
        assert!(counts[0] < counts[1] && counts[1] < counts[2], "vertices by zoom 8/12/15: {counts:?}");
        assert!(counts[2] <= 1000);
        assert!(counts[0] < 100, "z8 needs no more than a handful of vertices: {counts:?}");
    }
}

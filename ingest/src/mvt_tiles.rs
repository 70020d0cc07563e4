//! Cutting Mapbox Vector Tiles from the layer's R-tree into a PMTiles archive.
//!
//! Zoom by zoom, breadth first: a tile is built only if the R-tree finds features in
//! its buffered envelope, and only its children are visited next, so empty ocean
//! costs nothing. Each zoom first simplifies every feature once (Douglas–Peucker at
//! half a pixel), so neighbouring tiles share the same simplified edges.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use cim_core::catalogue::{TilingReport, ZoomTiles};
use cim_core::mvt::{DEFAULT_EXTENT, LayerBuilder, PropertyValue, TileGeometry, TilePoint};
use cim_core::pmtiles::{ArchiveInfo, Compression, TileType, Writer, gzip};
use cim_core::tile::{TileId, lonlat_to_mercator};
use geo::{Area, Euclidean, Length, MapCoords, Simplify};
use geo_types::{Coord, Geometry, LineString, Polygon};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde_json::Value;

use crate::IngestError;
use crate::clip::{Pt, clip_line, clip_ring};
use crate::feature::{Shape, Summary};
use crate::spill::{SpillReader, TileAttributes};

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
    /// The budget of one tile: compressed bytes and features.
    pub max_tile_bytes: usize,
    pub max_tile_features: usize,
    /// Tiles built side by side before they are written: what bounds the memory
    /// in flight.
    pub chunk_tiles: usize,
    /// Whether tiles are built side by side (each takes up to
    /// [`PLACED_BYTES`] a feature of its budget while it is built) or one at a time.
    pub side_by_side: bool,
}

/// Memory a placed feature takes while its tile is built: its tile geometry, its
/// attributes and its share of the encoder, bytes (measured on city buildings).
pub const PLACED_BYTES: usize = 600;

#[derive(Debug, Clone, Default)]
pub struct TilingStats {
    pub tiles: usize,
    pub bytes: u64,
    /// Zoom by zoom: sizes, what the budget left out, pixel marks; the zooms written.
    pub report: TilingReport,
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// The features' boxes in Web Mercator, for finding a tile's candidates without
/// reading any feature.
pub struct MercatorIndex {
    tree: RTree<Indexed>,
}

impl MercatorIndex {
    pub fn build(features: &[Summary]) -> Self {
        let entries: Vec<Indexed> = features
            .par_iter()
            .enumerate()
            .map(|(i, f)| {
                let b = f.mercator_box();
                GeomWithData::new(Rectangle::from_corners([b[0], b[1]], [b[2], b[3]]), i)
            })
            .collect();
        Self { tree: RTree::bulk_load(entries) }
    }

    /// Features whose box meets `bbox`, with their box.
    fn candidates(&self, bbox: [f64; 4]) -> impl Iterator<Item = (usize, [f64; 4])> + '_ {
        self.tree
            .locate_in_envelope_intersecting(&AABB::from_corners([bbox[0], bbox[1]], [bbox[2], bbox[3]]))
            .map(|e| {
                let (lo, hi) = (e.geom().lower(), e.geom().upper());
                (e.data, [lo[0], lo[1], hi[0], hi[1]])
            })
    }
}

/// A feature's attributes as a tile carries them (nulls left out).
pub fn mvt_properties<'a>(
    props: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Vec<(String, PropertyValue)> {
    props
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

/// A feature as one tile holds it, and what decides whether it stays when the tile
/// is over its budget.
struct Placed {
    index: usize,
    geometry: TileGeometry,
    attributes: TileAttributes,
    /// The tile holds the feature's centre: a drop here is the one counted.
    home: bool,
}

/// What one tile came to.
#[derive(Default)]
struct TileOutcome {
    bytes: Option<Vec<u8>>,
    features: usize,
    over_budget: bool,
    dropped: u64,
    marks: u64,
}

/// What ranks a feature (in Web Mercator) when its tile is over budget: area, else
/// length; 0 for points.
pub fn rank(g: &Geometry<f64>) -> f64 {
    match g {
        Geometry::Polygon(_) | Geometry::MultiPolygon(_) => g.unsigned_area(),
        Geometry::LineString(l) => Euclidean.length(l),
        Geometry::MultiLineString(l) => Euclidean.length(l),
        _ => 0.0,
    }
}

/// Larger first; equal sizes (points) in an order that scatters them, so a thinned
/// tile thins evenly rather than losing one end of the id range.
fn by_rank(features: &[Summary], a: usize, b: usize) -> std::cmp::Ordering {
    let (fa, fb) = (&features[a], &features[b]);
    fb.rank.total_cmp(&fa.rank).then(scatter(fa.fid).cmp(&scatter(fb.fid)))
}

/// A fixed bijective mix of the id (splitmix64's finaliser).
fn scatter(fid: u64) -> u64 {
    let mut z = fid.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Pixels of the zoom's own resolution: 16 tile units at the default extent.
const CELL: i32 = (DEFAULT_EXTENT / 256) as i32;

/// The pixel cell holding a mercator position.
fn cell_of(frame: &TileFrame, centre: [f64; 2]) -> (i32, i32) {
    let p = frame.px(&Coord { x: centre[0], y: centre[1] });
    ((p[0] as i32).div_euclid(CELL), (p[1] as i32).div_euclid(CELL))
}

/// A one-pixel stand-in for a feature smaller than a pixel, in `cell` and of its own
/// geometry type, so a fill or line style still draws it.
fn pixel_mark(shape: Shape, cell: (i32, i32)) -> Option<TileGeometry> {
    let (x, y) = (cell.0 * CELL, cell.1 * CELL);
    match shape {
        Shape::Area => Some(TileGeometry::Polygons(vec![vec![vec![
            [x, y],
            [x, y + CELL],
            [x + CELL, y + CELL],
            [x + CELL, y],
            [x, y],
        ]]])),
        Shape::Line => Some(TileGeometry::Lines(vec![vec![[x, y + CELL / 2], [x + CELL, y + CELL / 2]]])),
        Shape::Point => None,
    }
}

fn centre_of(b: &[f64; 4]) -> [f64; 2] {
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]
}

/// One tile's candidates, sorted out from their boxes alone.
struct Candidate {
    index: usize,
    home: bool,
    /// Smaller than a pixel: drawn as a one-pixel mark in its own tile.
    mark: Option<(i32, i32)>,
}

/// Everything one zoom's tiles share.
struct ZoomCtx<'a> {
    features: &'a [Summary],
    spill: &'a SpillReader,
    index: &'a MercatorIndex,
    config: &'a TilingConfig,
    z: u8,
    px_m: f64,
    at_max: bool,
}

impl ZoomCtx<'_> {
    /// Builds one tile: `None` where no feature's box meets it.
    fn tile(&self, tile: TileId) -> Result<Option<(TileId, Option<TileOutcome>)>, IngestError> {
        let (config, features, px_m) = (self.config, self.features, self.px_m);
        let b = tile.bounds_mercator();
        let buf = BUFFER * px_m;
        let frame = TileFrame::new(tile);
        let mut any = false;
        let mut candidates = Vec::new();
        for (i, r) in self.index.candidates([b[0] - buf, b[1] - buf, b[2] + buf, b[3] + buf]) {
            any = true;
            let c = centre_of(&r);
            let home = c[0] >= b[0] && c[0] < b[2] && c[1] >= b[1] && c[1] < b[3];
            let subpixel =
                !self.at_max && features[i].shape != Shape::Point && r[2] - r[0] < px_m && r[3] - r[1] < px_m;
            if subpixel {
                // Only in its own tile, so a mark is drawn once.
                if home {
                    candidates.push(Candidate { index: i, home, mark: Some(cell_of(&frame, c)) });
                }
            } else {
                candidates.push(Candidate { index: i, home, mark: None });
            }
        }
        if !any {
            return Ok(None);
        }
        if self.z < config.min_zoom {
            return Ok(Some((tile, None)));
        }
        let mut outcome = TileOutcome::default();
        // More candidates than a tile may hold: the largest are placed first, and
        // placing stops at the budget.
        let cut = candidates.len() > config.max_tile_features;
        if cut {
            candidates.par_sort_unstable_by(|a, b| by_rank(features, a.index, b.index));
        } else {
            candidates.par_sort_unstable_by_key(|c| c.index);
        }
        // Which candidates are placed is decided from their boxes alone; their
        // records are then read on both cores.
        let mut taken = std::collections::HashSet::new();
        let mut picked: Vec<&Candidate> = Vec::with_capacity(candidates.len().min(config.max_tile_features));
        for c in &candidates {
            let full = picked.len() >= config.max_tile_features;
            if let Some(cell) = c.mark {
                if taken.contains(&cell) {
                    continue;
                }
                if full {
                    outcome.dropped += 1;
                    continue;
                }
                taken.insert(cell);
            } else if full {
                outcome.dropped += u64::from(c.home);
                continue;
            }
            picked.push(c);
        }
        let placed: Vec<Option<Placed>> = picked
            .par_iter()
            .map(|c| {
                let f = &features[c.index];
                let (exact, attributes) = self.spill.tile_geometry(f.span)?;
                let geometry = match c.mark {
                    Some(cell) => pixel_mark(f.shape, cell),
                    None => {
                        let projected = exact.map_coords(|c| {
                            let (x, y) = lonlat_to_mercator(c.x, c.y);
                            Coord { x, y }
                        });
                        let g = if self.at_max { projected } else { simplify(&projected, px_m * 0.5) };
                        to_tile_geometry(&frame, &g)
                    }
                };
                Ok(geometry.map(|geometry| Placed { index: c.index, geometry, attributes, home: c.home }))
            })
            .collect::<Result<_, IngestError>>()?;
        let placed: Vec<Placed> = placed.into_iter().flatten().collect();
        outcome.marks = picked.iter().filter(|c| c.mark.is_some()).count() as u64;
        let encode = |chosen: &[usize]| {
            let mut builder = LayerBuilder::new(&config.layer, DEFAULT_EXTENT);
            for &k in chosen {
                let p = &placed[k];
                // Checked when read.
                let props = p.attributes.decode().unwrap_or_default();
                builder.add_feature(features[p.index].fid, &p.geometry, &props);
            }
            // What survives encoding (a feature can quantise to nothing).
            let count = builder.len();
            (!builder.is_empty()).then(|| (gzip(&cim_core::mvt::encode_tile(&[builder])), count))
        };
        let mut chosen: Vec<usize> = (0..placed.len()).collect();
        if cut {
            // Features in id order inside the tile, as an uncut tile has them.
            chosen.sort_unstable_by_key(|&k| placed[k].index);
        }
        let mut bytes = encode(&chosen);
        let over_bytes = bytes.as_ref().is_some_and(|(b, _)| b.len() > config.max_tile_bytes);
        if over_bytes {
            // Over its byte budget: keep the largest, shrinking the count by what
            // the last try overshot until the tile fits.
            let mut order: Vec<usize> = (0..placed.len()).collect();
            order.sort_by(|&a, &b| by_rank(features, placed[a].index, placed[b].index));
            let mut keep = placed.len();
            loop {
                let size = bytes.as_ref().map_or(0, |(b, _)| b.len());
                if size <= config.max_tile_bytes || keep == 0 {
                    break;
                }
                let fit = keep as f64 * config.max_tile_bytes as f64 / size as f64 * 0.95;
                keep = (fit as usize).min(keep - 1);
                chosen = order[..keep].to_vec();
                chosen.sort_unstable_by_key(|&k| placed[k].index);
                bytes = encode(&chosen);
            }
            let mut kept = vec![false; placed.len()];
            for &k in &chosen {
                kept[k] = true;
            }
            outcome.dropped += placed.iter().zip(&kept).filter(|(p, kept)| p.home && !**kept).count() as u64;
        }
        // Over budget: something was left out (a cut tile may hold all it was given).
        outcome.over_budget = over_bytes || outcome.dropped > 0;
        outcome.features = bytes.as_ref().map_or(0, |(_, count)| *count);
        outcome.bytes = bytes.map(|(b, _)| b);
        Ok(Some((tile, Some(outcome))))
    }
}

/// Builds the archive at `out` from the features (in id order) and their records;
/// returns what was written. Tiles are built a chunk at a time, both cores on each
/// chunk, and go to disk as each chunk is done.
pub fn build_pmtiles(
    features: &[Summary],
    spill: &SpillReader,
    config: &TilingConfig,
    out: &Path,
    cancel: &AtomicBool,
    progress: &indicatif::ProgressBar,
) -> Result<TilingStats, IngestError> {
    let (layer, bounds, fields) = (config.layer.as_str(), config.bounds, &config.fields);
    let index = MercatorIndex::build(features);
    // Finished tiles go to disk as they come; the archive is assembled at the end.
    let spill_path = out.with_extension("tiles.partial");
    let tiles_file = std::fs::File::create(&spill_path).map_err(|e| IngestError::store(&spill_path, e))?;
    let mut writer = Writer::with_spill(
        TileType::Mvt,
        Compression::Gzip,
        std::io::BufWriter::with_capacity(1 << 20, tiles_file),
    );
    let mut level = vec![TileId { z: 0, x: 0, y: 0 }];
    let mut stats = TilingStats::default();
    let report = &mut stats.report;
    report.max_tile_bytes = config.max_tile_bytes as u64;
    report.max_tile_features = config.max_tile_features as u64;
    let mut first_written: Option<u8> = None;
    for z in 0..=config.max_zoom {
        if cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(layer.to_owned()));
        }
        if level.is_empty() {
            break;
        }
        if level.len() > config.max_tiles_per_zoom && z > config.min_zoom {
            let why = format!(
                "zoom {z} would need {} tiles, more than --max-tiles-per-zoom {}; clients overzoom zoom {}",
                level.len(),
                config.max_tiles_per_zoom,
                z - 1
            );
            tracing::warn!("{why}");
            report.stopped = Some(why);
            break;
        }
        progress.set_message(format!("MVT zoom {z}: {} tiles", level.len()));
        let probe = TileId { z, x: 0, y: 0 };
        let ctx = ZoomCtx {
            features,
            spill,
            index: &index,
            config,
            z,
            px_m: probe.size_m() / f64::from(DEFAULT_EXTENT),
            at_max: z == config.max_zoom,
        };
        let mut next = Vec::new();
        let mut zoom = ZoomTiles::default();
        for chunk in level.chunks(config.chunk_tiles.max(1)) {
            if cancel.load(Ordering::Relaxed) {
                return Err(IngestError::Interrupted(layer.to_owned()));
            }
            let built: Vec<(TileId, Option<TileOutcome>)> = if config.side_by_side {
                chunk.par_iter().filter_map(|&tile| ctx.tile(tile).transpose()).collect::<Result<_, _>>()?
            } else {
                chunk.iter().filter_map(|&tile| ctx.tile(tile).transpose()).collect::<Result<_, _>>()?
            };
            for (tile, outcome) in built {
                if let Some(outcome) = outcome {
                    zoom.tiles_over_budget += u64::from(outcome.over_budget);
                    zoom.features_dropped += outcome.dropped;
                    zoom.pixel_marks += outcome.marks;
                    if let Some(bytes) = outcome.bytes {
                        zoom.tiles += 1;
                        zoom.largest_tile_bytes = zoom.largest_tile_bytes.max(bytes.len() as u64);
                        zoom.most_features = zoom.most_features.max(outcome.features as u64);
                        stats.bytes += bytes.len() as u64;
                        writer
                            .add_tile(tile, &bytes)
                            .map_err(|e| IngestError::store(&spill_path, std::io::Error::other(e)))?;
                        stats.tiles += 1;
                    }
                }
                if z < config.max_zoom {
                    next.extend(tile.children());
                }
            }
        }
        if zoom.tiles > 0 {
            first_written.get_or_insert(z);
            report.max_zoom = z;
            report.zooms.insert(z, zoom);
        }
        if zoom.features_dropped > 0 {
            tracing::warn!(
                zoom = z,
                tiles = zoom.tiles_over_budget,
                dropped = zoom.features_dropped,
                "tiles over budget kept their largest features"
            );
        }
        progress.inc(1);
        level = next;
    }
    report.min_zoom = first_written.unwrap_or(config.min_zoom);
    let (w, s, e, n) = (bounds[0], bounds[1], bounds[2], bounds[3]);
    let info = ArchiveInfo {
        bounds,
        center: [(w + e) / 2.0, (s + n) / 2.0],
        center_zoom: report.max_zoom.saturating_sub(2).max(report.min_zoom),
        metadata: serde_json::json!({
            "name": layer,
            "format": "pbf",
            "generator": concat!("cim-ingest ", env!("CARGO_PKG_VERSION")),
            "vector_layers": [{
                "id": layer,
                "fields": fields,
                "minzoom": report.min_zoom,
                "maxzoom": report.max_zoom,
            }],
        }),
    };
    let (_, prefix, tiles_file) = writer.finish_parts(&info)?;
    drop(tiles_file);
    let mut file = std::fs::File::create(out).map_err(|e| IngestError::store(out, e))?;
    let io = |e| IngestError::store(out, e);
    std::io::Write::write_all(&mut file, &prefix).map_err(io)?;
    let mut data = std::fs::File::open(&spill_path).map_err(|e| IngestError::store(&spill_path, e))?;
    std::io::copy(&mut data, &mut file).map_err(io)?;
    std::fs::remove_file(&spill_path).map_err(|e| IngestError::store(&spill_path, e))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` squares in a block of Helsinki 1.4 km across, square k of side (k + 1) × 0.2 m
    /// (in longitude), their ids scattered so size and id order differ; in id order,
    /// spilled to `dir`.
    /// Each square's id and geometry, their summaries, their records.
    type Squares = (Vec<(u64, Geometry<f64>)>, Vec<Summary>, SpillReader);

    fn squares(n: u64, dir: &Path) -> Squares {
        let mut squares: Vec<(u64, Geometry<f64>)> = (0..n)
            .map(|k| {
                let side = (k + 1) as f64 * 2e-6;
                let (x, y) = (24.93 + (k % 25) as f64 * 1e-3, 60.16 + (k / 25) as f64 * 5e-4);
                let ring = vec![(x, y), (x + side, y), (x + side, y + side), (x, y + side), (x, y)];
                (scatter(k), Geometry::Polygon(Polygon::new(LineString::from(ring), vec![])))
            })
            .collect();
        squares.sort_by_key(|s| s.0);
        let mut spill = crate::spill::SpillWriter::create(&dir.join("spill")).expect("spill");
        let props = serde_json::Map::new();
        let summaries = squares
            .iter()
            .map(|(fid, g)| {
                let tile = crate::spill::TilePart { geometry: g.clone(), properties: Vec::new() };
                let incoming = crate::feature::Incoming {
                    fid: Some(*fid),
                    tile,
                    exact: None,
                    properties: &props,
                    building: None,
                };
                incoming.spill(&mut spill).expect("spilled").expect("a box")
            })
            .collect();
        (squares, summaries, spill.finish().expect("reader"))
    }

    #[test]
    fn a_tile_over_its_budget_keeps_its_largest_features_and_counts_the_rest_once() {
        let dir = std::env::temp_dir().join(format!("cim-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (features, summaries, spill) = squares(600, &dir);
        let config = TilingConfig {
            layer: "t".into(),
            bounds: [24.93, 60.16, 24.96, 60.172],
            fields: serde_json::Map::new(),
            min_zoom: 0,
            max_zoom: 14,
            max_tiles_per_zoom: 1000,
            max_tile_bytes: 500_000,
            max_tile_features: 100,
            chunk_tiles: 3,
            side_by_side: true,
        };
        let out = dir.join("t.pmtiles");
        let stats = build_pmtiles(
            &summaries,
            &spill,
            &config,
            &out,
            &AtomicBool::new(false),
            &indicatif::ProgressBar::hidden(),
        )
        .expect("tiles");
        let archive = std::fs::read(&out).expect("archive");
        let _ = std::fs::remove_dir_all(&dir);
        let (_, entries) = cim_core::pmtiles::tile_entries(&archive).expect("entries");
        assert!(!entries.is_empty());
        let report = &stats.report;
        assert_eq!((report.min_zoom, report.max_zoom), (0, 14), "{report:?}");
        // Every zoom's tiles hold at most 100 features; those kept are the largest.
        let area_of = |fid: u64| {
            let f = features.iter().find(|f| f.0 == fid).expect("fid");
            f.1.unsigned_area()
        };
        let mut checked = 0;
        for z in 0..=14u32 {
            let zoom = report.zooms.get(&(z as u8)).expect("every zoom written");
            assert!(zoom.most_features <= 100, "z{z}: {zoom:?}");
            let (mx, my) = cim_core::tile::lonlat_to_mercator(24.94, 60.165);
            let (x, y, _, _) = cim_core::tile::tile_range(z as u8, [mx, my, mx, my]);
            let Some(gz) = cim_core::pmtiles::read_tile(&archive, TileId { z: z as u8, x, y }).expect("read")
            else {
                continue;
            };
            let layers = cim_core::mvt_decode::decode_tile(&decompress(&gz)).expect("decode");
            let ids: Vec<u64> = layers[0].features.iter().filter_map(|f| f.id).collect();
            assert!(ids.len() <= 100, "z{z}: {}", ids.len());
            if zoom.features_dropped > 0 && z == 12 {
                let kept_min = ids.iter().map(|&id| area_of(id)).fold(f64::MAX, f64::min);
                let left_max = features
                    .iter()
                    .filter(|f| !ids.contains(&f.0))
                    .map(|f| f.1.unsigned_area())
                    .fold(0.0, f64::max);
                assert!(kept_min >= left_max, "z{z}: kept {kept_min} < left out {left_max}");
                checked += 1;
            }
        }
        assert!(checked > 0, "some zoom was over its budget: {report:?}");
        // At zoom 14 the block spans several tiles; at zoom 12 one holds all 600, keeps
        // 100 and counts 500 left out.
        assert_eq!(report.zooms[&12].features_dropped, 500, "{:?}", report.zooms[&12]);
        // At zoom 0 every square is smaller than a pixel: one mark for the block.
        assert_eq!(report.zooms[&0].pixel_marks, 1, "{:?}", report.zooms[&0]);
    }

    fn decompress(gz: &[u8]) -> Vec<u8> {
        cim_core::pmtiles::decompress(gz, Compression::Gzip).expect("gunzip")
    }

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

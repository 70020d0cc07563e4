//! The vector kind: GIS features read through [`crate::source`], reprojected,
//! repaired and tiled as Mapbox Vector Tiles ([`crate::mvt_tiles`]), polygons with
//! heights extruded as 3D Tiles buildings ([`crate::buildings`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cim_core::catalogue::{
    AttributeField, CATALOGUE_FILE, CatalogueEntry, FEATURES_FILE, LayerContent, MVT_ARCHIVE_FILE,
    QualityReport, TILESET_DIR,
};
use cim_core::features::type_name;
use geo::BoundingRect;
use geo_types::Geometry;
use serde_json::{Map, Value};

use crate::IngestError;
use crate::crs::Reprojector;
use crate::feature::{Extrusion, Incoming, Summary};
use crate::mvt_tiles::{TilingConfig, build_pmtiles, mvt_properties};
use crate::options::IngestOptions;
use crate::repair;
use crate::run::{Built, Kind, LayerRun, Takes};
use crate::source::{FeatureSink, RawFeature, SourceMeta, importer_for};
use crate::spill::{SpillReader, SpillWriter, TilePart};
use rayon::prelude::*;

pub const KIND: Kind = Kind {
    name: "vector",
    inputs: "GIS files",
    takes: Takes { attribute_rules: true, coarsen: true, anchor: false },
    build,
};

/// Height given to a building that carries none, in metres.
pub const DEFAULT_BUILDING_HEIGHT: f64 = 10.0;
/// Storey height used to turn `building:levels` into metres.
pub const METRES_PER_LEVEL: f64 = 3.0;

/// Parses "12", "12.5 m", "12m" into metres.
fn parse_metres(v: &Value) -> Option<f64> {
    let h = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let t = s.trim().trim_end_matches('m').trim();
            t.replace(',', ".").parse::<f64>().ok()?
        }
        _ => return None,
    };
    (h.is_finite() && h > 0.0 && h < 1000.0).then_some(h)
}

/// Bytes a feature costs the run in memory: its [`Summary`] and, while tiling, its
/// R-tree entry.
const BYTES_PER_FEATURE: usize = 200;

struct Collector<'a> {
    options: &'a IngestOptions,
    reprojector: Option<Reprojector>,
    crs_labels: BTreeSet<String>,
    path: PathBuf,
    quality: QualityReport,
    spill: SpillWriter,
    features: Vec<Summary>,
    attributes: BTreeMap<String, &'static str>,
    /// Attribute names of the buildings as tiles show them (3D Tiles columns).
    building_keys: BTreeSet<String>,
    geometry_types: BTreeSet<&'static str>,
    read_in_file: u64,
    /// `[west, south, east, north]` of every exact geometry.
    bounds: [f64; 4],
    /// Highest roof, metres.
    max_height: f64,
    ground: Option<Ground>,
    /// Buildings whose coarsened footprint is a point (tiles show a point).
    collapsed: u64,
}

/// A published terrain layer that buildings stand on (`--ground`).
struct Ground {
    layer: String,
    surface: cim_core::terrain::TerrainSurface,
}

impl Collector<'_> {
    fn height_of(&self, props: &Map<String, Value>, polygonal: bool) -> (Option<f64>, bool) {
        if !polygonal {
            return (None, false);
        }
        let explicit = match &self.options.height_attr {
            Some(attr) => props.get(attr).and_then(parse_metres),
            None => props.get("height").and_then(parse_metres).or_else(|| {
                props.get("building:levels").and_then(parse_metres).map(|l| l * METRES_PER_LEVEL)
            }),
        };
        let tagged = props.get("building").is_some_and(|b| b.as_str() != Some("no"));
        match (explicit, self.options.default_height) {
            (Some(h), _) => (Some(h), false),
            (None, Some(d)) => (Some(d), true),
            (None, None) if tagged => (Some(DEFAULT_BUILDING_HEIGHT), true),
            (None, None) => (None, false),
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        _ => "string",
    }
}

impl FeatureSink for Collector<'_> {
    fn begin_layer(&mut self, meta: &SourceMeta) -> Result<(), IngestError> {
        let reprojector = match (&self.options.src_crs, &meta.crs) {
            (Some(spec), _) => Reprojector::from_user(spec)?,
            (None, Some(declared)) => Reprojector::from_declared(declared)?,
            (None, None) => {
                return Err(IngestError::MissingCrs { path: self.path.clone() });
            }
        };
        self.crs_labels.insert(reprojector.label().to_owned());
        self.quality.crs_area_of_use = reprojector.area_of_use();
        self.reprojector = Some(reprojector);
        tracing::debug!(layer = meta.layer, format = meta.format, "reading source layer");
        Ok(())
    }

    fn feature(&mut self, mut raw: RawFeature) -> Result<(), IngestError> {
        crate::source::expand_other_tags(&mut raw.properties);
        if self.options.cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(self.options.layer.clone()));
        }
        self.quality.features_read += 1;
        self.read_in_file += 1;
        let label = raw.fid.map_or_else(|| format!("#{}", self.read_in_file), |f| f.to_string());
        let source = self.path.display().to_string();
        let Some(mut geometry) = raw.geometry else {
            self.quality.empty_geometries += 1;
            self.quality.count_dropped(repair::EMPTY);
            self.quality.example(&source, &label, repair::EMPTY);
            return Ok(());
        };
        let Some(reprojector) = &self.reprojector else {
            return Err(IngestError::source(&self.path, "feature before its layer header"));
        };
        if let Err(e) = reprojector.to_wgs84(&mut geometry) {
            self.quality.count_dropped("reprojection failed");
            self.quality.example(&source, &label, &format!("reprojection failed: {e}"));
            return Ok(());
        }
        let cleaned = repair::clean(geometry);
        for r in &cleaned.repairs {
            self.quality.count_repaired(r);
            self.quality.example(&source, &label, &format!("repaired: {r}"));
        }
        let Some(geometry) = cleaned.geometry else {
            let reason = cleaned.dropped.unwrap_or(repair::EMPTY);
            if reason == repair::EMPTY {
                self.quality.empty_geometries += 1;
            }
            self.quality.count_dropped(reason);
            self.quality.example(&source, &label, reason);
            return Ok(());
        };
        let Some(bbox) = geometry.bounding_rect() else {
            return Ok(());
        };
        if bbox.min().x < -180.000_001
            || bbox.max().x > 180.000_001
            || bbox.min().y < -90.0
            || bbox.max().y > 90.0
        {
            let reason = "coordinates outside the globe after reprojection (wrong CRS?)";
            self.quality.count_dropped(reason);
            self.quality.example(&source, &label, reason);
            return Ok(());
        }
        if let Some([w, s, e, n]) = self.quality.crs_area_of_use {
            // A small margin: survey data often sits right at a zone's edge.
            let m = 0.5;
            if bbox.max().x < w - m || bbox.min().x > e + m || bbox.max().y < s - m || bbox.min().y > n + m {
                self.quality.outside_crs_area_of_use += 1;
                self.quality.example(&source, &label, "outside the source CRS's area of use");
            }
        }
        for (k, v) in &raw.properties {
            if !v.is_null() {
                let t = json_type(v);
                let entry = self.attributes.entry(k.clone()).or_insert(t);
                if *entry != t {
                    *entry = if matches!((*entry, t), ("integer", "number") | ("number", "integer")) {
                        "number"
                    } else {
                        "string"
                    };
                }
            }
        }
        let polygonal = matches!(geometry, Geometry::Polygon(_) | Geometry::MultiPolygon(_));
        let (building_height, missing) = self.height_of(&raw.properties, polygonal);
        if missing && building_height.is_some() {
            self.quality.missing_heights += 1;
        }
        self.geometry_types.insert(type_name(&geometry));
        let mut properties = raw.properties;
        let mut building = building_height.map(|height| Extrusion { height, base: 0.0 });
        if let (Some(e), Some(ground)) = (&mut building, &self.ground) {
            set_on_ground(e, &geometry, ground, &mut properties, &mut self.quality, &label);
        }
        self.bounds = [
            self.bounds[0].min(bbox.min().x),
            self.bounds[1].min(bbox.min().y),
            self.bounds[2].max(bbox.max().x),
            self.bounds[3].max(bbox.max().y),
        ];
        if let Some(e) = building {
            self.max_height = self.max_height.max(e.height + e.base);
        }
        // Protected attributes stay in the feature store (served by clearance) and
        // never reach a tile, which anyone who may see the layer can fetch.
        let rules = &self.options.attribute_rules;
        let shown = mvt_properties(properties.iter().filter(|(k, _)| !rules.iter().any(|r| r.matches(k))));
        // Coarsened positions likewise: tiles carry the grid, the feature store the truth.
        let coarse = self.options.coarsen.map(|rule| cim_core::features::coarsen(&geometry, rule.metres));
        if matches!(coarse, Some(Geometry::Point(_))) && building.take().is_some() {
            self.collapsed += 1;
        }
        if building.is_some() {
            for (k, _) in &shown {
                if !self.building_keys.contains(k) {
                    self.building_keys.insert(k.clone());
                }
            }
        }
        let (tile_geometry, exact) = match coarse {
            Some(c) => (c, Some(geometry)),
            None => (geometry, None),
        };
        let incoming = Incoming {
            fid: raw.fid,
            tile: TilePart { geometry: tile_geometry, properties: shown },
            exact: exact.as_ref(),
            properties: &properties,
            building,
        };
        if let Some(summary) = incoming.spill(&mut self.spill)? {
            self.features.push(summary);
        }
        within_budget(self.options, self.features.len())?;
        Ok(())
    }
}

/// Refuses a run whose features would outgrow three quarters of the memory budget
/// (the rest is for reading, and for the tiles built side by side).
fn within_budget(options: &IngestOptions, features: usize) -> Result<(), IngestError> {
    let needed = features.saturating_mul(BYTES_PER_FEATURE);
    if needed <= options.memory_bytes / 4 * 3 {
        return Ok(());
    }
    Err(IngestError::MemoryBudget {
        layer: options.layer.clone(),
        features: features as u64,
        needed_mb: (needed as u64 * 4 / 3).div_ceil(1 << 20),
        budget_mb: (options.memory_bytes as u64) >> 20,
    })
}

/// What the reading thread hands over.
enum Handed {
    Layer(SourceMeta),
    Features(Vec<RawFeature>),
}

/// A sink that hands features over in batches.
struct HandOver {
    to: std::sync::mpsc::SyncSender<Handed>,
    batch: Vec<RawFeature>,
    path: PathBuf,
}

impl HandOver {
    const BATCH: usize = 512;

    fn send(&mut self, what: Handed) -> Result<(), IngestError> {
        // The other side only hangs up after an error of its own, which is the one
        // reported.
        self.to.send(what).map_err(|_| IngestError::source(&self.path, "reading stopped"))
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
        self.send(Handed::Features(batch))
    }
}

impl FeatureSink for HandOver {
    fn begin_layer(&mut self, meta: &SourceMeta) -> Result<(), IngestError> {
        self.flush()?;
        self.send(Handed::Layer(meta.clone()))
    }

    fn feature(&mut self, feature: RawFeature) -> Result<(), IngestError> {
        self.batch.push(feature);
        if self.batch.len() >= Self::BATCH { self.flush() } else { Ok(()) }
    }
}

/// Reads `path` on a thread of its own while this one reprojects, repairs and
/// spills, so both cores work while a file is read; a few batches in between.
fn read_beside(
    importer: &'static dyn crate::source::Importer,
    path: &Path,
    sink: &mut dyn FeatureSink,
) -> Result<(), IngestError> {
    let (to, from) = std::sync::mpsc::sync_channel(4);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut hand = HandOver { to, batch: Vec::with_capacity(HandOver::BATCH), path: path.to_owned() };
            importer.read(path, &mut hand)?;
            hand.flush()
        });
        let mut result = Ok(());
        for handed in from.iter() {
            result = match handed {
                Handed::Layer(meta) => sink.begin_layer(&meta),
                Handed::Features(batch) => batch.into_iter().try_for_each(|f| sink.feature(f)),
            };
            if result.is_err() {
                break;
            }
        }
        drop(from);
        let read = reader.join().map_err(|_| IngestError::source(path, "the reading thread failed"))?;
        result.and(read)
    })
}

/// Opens the terrain layer buildings are set on.
fn open_ground(ground: &Path) -> Result<Ground, IngestError> {
    let catalogue: CatalogueEntry = std::fs::read(ground.join(CATALOGUE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| IngestError::source(ground, "--ground names no published layer"))?;
    let Some(summary) = catalogue.terrain() else {
        return Err(IngestError::source(ground, "--ground must name a terrain layer"));
    };
    let path = ground.join(&summary.surface);
    let bytes = std::fs::read(&path).map_err(|e| IngestError::store(&path, e))?;
    let surface =
        cim_core::terrain::TerrainSurface::from_bytes(&bytes).map_err(|e| IngestError::source(&path, e))?;
    Ok(Ground { layer: catalogue.id, surface })
}

/// Sets a building's floor on the lowest ground under its footprint's corners, from
/// a published terrain layer's finest meshes, so no building floats (and one on a
/// slope reaches into the ground on its high side, as real ones do).
fn set_on_ground(
    building: &mut Extrusion,
    footprint: &Geometry<f64>,
    ground: &Ground,
    properties: &mut Map<String, Value>,
    quality: &mut QualityReport,
    label: &str,
) {
    let mut lowest = f64::INFINITY;
    let mut missed = false;
    for c in geo::CoordsIter::coords_iter(footprint) {
        match ground.surface.height_at(c.x, c.y) {
            Some(h) => lowest = lowest.min(h),
            None => missed = true,
        }
    }
    if lowest.is_finite() {
        building.base = lowest;
        properties.insert("base_height".into(), Value::from((lowest * 1000.0).round() / 1000.0));
    }
    if missed {
        quality.count_repaired("building partly or wholly off the ground layer");
        quality.example(&ground.layer, label, "a footprint corner lies outside the terrain");
    }
}

/// Gives every feature a unique id: its source id where that is unique (the first
/// read keeps a repeated one), else a new one above the largest, in reading order,
/// counting duplicates for the report. Features are in reading order.
fn assign_fids(features: &mut [Summary], quality: &mut QualityReport) {
    let mut next = features.iter().filter(|f| f.source_fid).map(|f| f.fid).max().map_or(0, |m| m + 1);
    // Sorted by source id (reading order within one): the first of each run keeps it.
    let mut by_id: Vec<usize> = (0..features.len()).filter(|&i| features[i].source_fid).collect();
    by_id.sort_by_key(|&i| (features[i].fid, i));
    let mut fresh = vec![false; features.len()];
    for w in by_id.windows(2) {
        if features[w[0]].fid == features[w[1]].fid {
            fresh[w[1]] = true;
            quality.duplicate_ids += 1;
        }
    }
    for (f, fresh) in features.iter_mut().zip(fresh) {
        if fresh || !f.source_fid {
            f.fid = next;
            next += 1;
        }
    }
}

fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    // Fail on a bad --src-crs or --ground before reading anything.
    options.src_crs.as_deref().map(Reprojector::from_user).transpose()?;
    let ground = options.ground.as_deref().map(open_ground).transpose()?;
    let dir = run.stage()?;
    let spill_path = dir.join("features.spill.partial");
    let mut collector = Collector {
        options,
        reprojector: None,
        crs_labels: BTreeSet::new(),
        path: PathBuf::new(),
        quality: std::mem::take(&mut run.quality),
        spill: SpillWriter::create(&spill_path)?,
        features: Vec::new(),
        attributes: BTreeMap::new(),
        building_keys: BTreeSet::new(),
        geometry_types: BTreeSet::new(),
        read_in_file: 0,
        bounds: [f64::MAX, f64::MAX, f64::MIN, f64::MIN],
        max_height: 0.0,
        ground,
        collapsed: 0,
    };
    let started = std::time::Instant::now();
    let reading = run.progress(options.files.len() as u64, "read");
    for path in &options.files {
        let importer = importer_for(path, crate::sniff::input_format(path)?)?;
        reading.set_message(path.display().to_string());
        collector.path = path.clone();
        collector.read_in_file = 0;
        collector.reprojector = None;
        read_beside(importer, path, &mut collector)?;
        run.source(path, importer.name())?;
        reading.inc(1);
    }
    reading.finish_and_clear();
    tracing::info!(
        stage = "read",
        features = collector.features.len(),
        ms = started.elapsed().as_millis() as u64,
        "stage done"
    );
    let Collector {
        mut features,
        quality,
        attributes,
        geometry_types,
        crs_labels,
        spill,
        bounds,
        max_height,
        building_keys,
        collapsed,
        ..
    } = collector;
    run.quality = quality;
    let spill = spill.finish()?;
    let quality = &mut run.quality;
    if features.is_empty() {
        let why = if quality.features_read == 0 {
            let names: Vec<String> = options.files.iter().map(|f| f.display().to_string()).collect();
            format!("no features could be read from {} (empty, truncated or filtered out)", names.join(", "))
        } else {
            format!("all {} features were dropped: {}", quality.features_read, quality.summary_line())
        };
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why });
    }
    if quality.outside_crs_area_of_use == features.len() as u64 {
        let area = quality
            .crs_area_of_use
            .map_or_else(String::new, |[w, s, e, n]| format!("{w}..{e}°E, {s}..{n}°N"));
        return Err(IngestError::OutsideCrsArea {
            layer: options.layer.clone(),
            count: features.len() as u64,
            crs: crs_labels.into_iter().collect::<Vec<_>>().join(", "),
            area,
        });
    }
    assign_fids(&mut features, quality);
    features.par_sort_unstable_by_key(|f| f.fid);
    quality.features_written = features.len() as u64;
    if collapsed > 0 {
        tracing::info!(collapsed, "buildings coarsened to points for tiles");
    }

    let stage = std::time::Instant::now();
    write_features(&features, &spill, &dir.join(FEATURES_FILE))?;
    tracing::info!(stage = "features", ms = stage.elapsed().as_millis() as u64, "stage done");

    let fields: Map<String, Value> = attributes
        .iter()
        .filter(|(k, _)| !options.attribute_rules.iter().any(|r| r.matches(k)))
        .map(|(k, t)| {
            let mvt_type = match *t {
                "string" => "String",
                "boolean" => "Boolean",
                _ => "Number",
            };
            (k.clone(), Value::from(mvt_type))
        })
        .collect();
    let config = TilingConfig {
        layer: options.layer.clone(),
        bounds,
        fields,
        min_zoom: options.min_zoom,
        max_zoom: options.max_zoom,
        max_tiles_per_zoom: options.max_tiles_per_zoom,
        max_tile_bytes: options.max_tile_bytes,
        max_tile_features: options.max_tile_features,
        // A quarter of the budget for tiles in flight, each taking about four
        // times its budget while it is built.
        chunk_tiles: (options.memory_bytes / 4 / (4 * options.max_tile_bytes.max(1))).clamp(4, 4096),
        // A quarter of the budget holds two full tiles being built, or they take turns.
        side_by_side: options.memory_bytes / 4
            >= 2 * options.max_tile_features.saturating_mul(crate::mvt_tiles::PLACED_BYTES),
    };
    let stage = std::time::Instant::now();
    let tiling = run.progress(u64::from(options.max_zoom) + 1, "tiles");
    let stats =
        build_pmtiles(&features, &spill, &config, &dir.join(MVT_ARCHIVE_FILE), &options.cancel, &tiling)?;
    tiling.finish_and_clear();
    tracing::info!(stage = "mvt", tiles = stats.tiles, ms = stage.elapsed().as_millis() as u64, "stage done");
    let tiling = stats.report;
    if let Some(why) = &tiling.stopped {
        run.quality.warnings.push(format!("vector tiles stop at zoom {}: {why}", tiling.max_zoom));
    }
    let over: Vec<String> = tiling
        .zooms
        .iter()
        .filter(|(_, t)| t.features_dropped > 0)
        .map(|(z, t)| format!("z{z} {}", t.features_dropped))
        .collect();
    if !over.is_empty() {
        run.quality.warnings.push(format!(
            "vector tiles over {} kB or {} features kept their largest features; left out by zoom: {}",
            tiling.max_tile_bytes / 1000,
            tiling.max_tile_features,
            over.join(", ")
        ));
    }
    let (min_zoom, max_zoom) = (tiling.min_zoom, tiling.max_zoom);
    run.quality.tiling = Some(tiling);

    let building_count = features.iter().filter(|f| f.building.is_some()).count() as u64;
    let mut building_tiles = 0;
    if building_count > 0 {
        let out = dir.join(TILESET_DIR);
        let stage = std::time::Instant::now();
        building_tiles = crate::buildings::build_tileset(
            &features,
            &spill,
            &building_keys,
            &out,
            &options.layer,
            options.max_tileset_bytes,
            &options.cancel,
        )?;
        tracing::info!(
            stage = "3dtiles",
            tiles = building_tiles,
            buildings = building_count,
            ms = stage.elapsed().as_millis() as u64,
            "stage done"
        );
    }
    spill.remove()?;
    Ok(Built {
        content: LayerContent::Vector,
        bounds: [bounds[0], bounds[1], 0.0, bounds[2], bounds[3], max_height],
        source_crs: crs_labels.into_iter().collect::<Vec<_>>().join(", "),
        feature_count: features.len() as u64,
        geometry_types: geometry_types.into_iter().map(str::to_owned).collect(),
        attributes: attributes
            .into_iter()
            .map(|(name, t)| AttributeField { name, kind: t.to_owned() })
            .collect(),
        min_zoom,
        max_zoom,
        mvt_archive: true,
        tileset: building_count > 0,
        building_count,
        mvt_tiles: stats.tiles,
        tiles_3d: building_tiles,
    })
}

/// The feature store, in id order, from the spilled records.
fn write_features(features: &[Summary], spill: &SpillReader, path: &Path) -> Result<(), IngestError> {
    let mut store = crate::feature_store::FeatureStore::create(path)?;
    // Records are read and encoded a batch at a time on both cores, written in order.
    for batch in features.chunks(4096) {
        let encoded: Vec<_> = batch
            .par_iter()
            .map(|f| {
                let part = spill.store_part(f.span)?;
                Ok(crate::feature_store::encode(f.fid, &part.geometry, &part.properties))
            })
            .collect::<Result<_, IngestError>>()?;
        for e in &encoded {
            store.push_encoded(e)?;
        }
    }
    store.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_parse_with_units() {
        assert_eq!(parse_metres(&Value::from("12.5 m")), Some(12.5));
        assert_eq!(parse_metres(&Value::from("7,5")), Some(7.5));
        assert_eq!(parse_metres(&Value::from(30)), Some(30.0));
        assert_eq!(parse_metres(&Value::from("tall")), None);
        assert_eq!(parse_metres(&Value::from(-3)), None);
    }

    #[test]
    fn a_budget_the_features_outgrow_is_refused_with_what_they_need() {
        let mut options = IngestOptions::new("/tmp/store", "city", Vec::new());
        options.memory_bytes = 256 << 20;
        // 256 MiB: three quarters hold 1 006 632 features of 200 bytes.
        assert!(within_budget(&options, 1_006_632).is_ok());
        let e = within_budget(&options, 1_006_633).expect_err("over").to_string();
        assert!(e.contains("1006633 features need about 257 MB"), "{e}");
        assert!(e.contains("over the 256 MB budget (--memory-mb)"), "{e}");
        // The default holds the 5 million buildings of the city benchmark.
        options.memory_bytes = crate::options::DEFAULT_MEMORY_MB << 20;
        assert!(within_budget(&options, 5_000_000).is_ok());
    }

    #[test]
    fn duplicate_and_missing_ids_get_fresh_ones() {
        let f = |fid: Option<u64>| Summary {
            fid: fid.unwrap_or(0),
            source_fid: fid.is_some(),
            span: crate::spill::Span { offset: 0, len: 0 },
            bbox: [0.0; 4],
            rank: 0.0,
            vertices: 1,
            attribute_bytes: 0,
            shape: crate::feature::Shape::Point,
            building: None,
        };
        let mut features: Vec<Summary> = [Some(7), Some(7), None, Some(2)].into_iter().map(f).collect();
        let mut q = QualityReport::default();
        assign_fids(&mut features, &mut q);
        let ids: Vec<u64> = features.iter().map(|f| f.fid).collect();
        assert_eq!(ids, vec![7, 8, 9, 2]);
        assert_eq!(q.duplicate_ids, 1);
    }
}

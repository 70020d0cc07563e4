//! The vector kind: GIS features read through [`crate::source`], reprojected,
//! repaired and tiled as Mapbox Vector Tiles ([`crate::mvt_tiles`]), polygons with
//! heights extruded as 3D Tiles buildings ([`crate::buildings`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
use crate::feature::LayerFeature;
use crate::mvt_tiles::{MercatorIndex, TilingConfig, build_pmtiles};
use crate::options::IngestOptions;
use crate::repair;
use crate::run::{Built, Kind, LayerRun, Takes};
use crate::source::{FeatureSink, RawFeature, SourceMeta, importer_for};

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

struct Collector<'a> {
    options: &'a IngestOptions,
    reprojector: Option<Reprojector>,
    crs_labels: BTreeSet<String>,
    path: PathBuf,
    quality: QualityReport,
    features: Vec<LayerFeature>,
    pending_fids: Vec<Option<u64>>,
    attributes: BTreeMap<String, &'static str>,
    geometry_types: BTreeSet<&'static str>,
    read_in_file: u64,
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
        self.pending_fids.push(raw.fid);
        self.features.push(LayerFeature {
            fid: 0,
            geometry,
            properties: raw.properties,
            building_height,
            base_height: 0.0,
        });
        Ok(())
    }
}

/// Sets each building's floor on the lowest ground under its footprint's corners,
/// from a published terrain layer's finest meshes, so no building floats (and one
/// on a slope reaches into the ground on its high side, as real ones do).
fn set_on_ground(
    features: &mut [LayerFeature],
    ground: &Path,
    quality: &mut QualityReport,
) -> Result<(), IngestError> {
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
    for f in features.iter_mut().filter(|f| f.building_height.is_some()) {
        let mut lowest = f64::INFINITY;
        let mut missed = false;
        for c in geo::CoordsIter::coords_iter(&f.geometry) {
            match surface.height_at(c.x, c.y) {
                Some(h) => lowest = lowest.min(h),
                None => missed = true,
            }
        }
        if lowest.is_finite() {
            f.base_height = lowest;
            f.properties.insert("base_height".into(), Value::from((lowest * 1000.0).round() / 1000.0));
        }
        if missed {
            quality.count_repaired("building partly or wholly off the ground layer");
            quality.example(&catalogue.id, &f.fid.to_string(), "a footprint corner lies outside the terrain");
        }
    }
    Ok(())
}

/// Gives every feature a unique id: its source id where that is unique, else a new
/// one above the largest, counting duplicates for the report.
fn assign_fids(features: &mut [LayerFeature], fids: &[Option<u64>], quality: &mut QualityReport) {
    let mut seen = HashSet::new();
    let mut next = fids.iter().flatten().max().map_or(0, |m| m + 1);
    for (f, fid) in features.iter_mut().zip(fids) {
        f.fid = match fid {
            Some(id) if seen.insert(*id) => *id,
            Some(_) => {
                quality.duplicate_ids += 1;
                next += 1;
                next - 1
            }
            None => {
                next += 1;
                next - 1
            }
        };
        seen.insert(f.fid);
    }
}

fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    // Fail on a bad --src-crs before reading anything.
    options.src_crs.as_deref().map(Reprojector::from_user).transpose()?;
    let mut collector = Collector {
        options,
        reprojector: None,
        crs_labels: BTreeSet::new(),
        path: PathBuf::new(),
        quality: std::mem::take(&mut run.quality),
        features: Vec::new(),
        pending_fids: Vec::new(),
        attributes: BTreeMap::new(),
        geometry_types: BTreeSet::new(),
        read_in_file: 0,
    };
    let started = std::time::Instant::now();
    let reading = run.progress(options.files.len() as u64, "read");
    for path in &options.files {
        let importer = importer_for(path, crate::sniff::input_format(path)?)?;
        reading.set_message(path.display().to_string());
        collector.path = path.clone();
        collector.read_in_file = 0;
        collector.reprojector = None;
        importer.read(path, &mut collector)?;
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
    let Collector { mut features, pending_fids, quality, attributes, geometry_types, crs_labels, .. } =
        collector;
    run.quality = quality;
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
    assign_fids(&mut features, &pending_fids, quality);
    features.sort_by_key(|f| f.fid);
    quality.features_written = features.len() as u64;
    if let Some(ground) = &options.ground {
        set_on_ground(&mut features, ground, quality)?;
    }

    let bounds = features
        .iter()
        .filter_map(|f| f.geometry.bounding_rect())
        .fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, r| {
            [b[0].min(r.min().x), b[1].min(r.min().y), b[2].max(r.max().x), b[3].max(r.max().y)]
        });
    let max_height =
        features.iter().filter_map(|f| f.building_height.map(|h| h + f.base_height)).fold(0.0, f64::max);

    let dir = run.stage()?;
    write_features(&features, &dir.join(FEATURES_FILE))?;
    // Protected attributes stay in the feature store (served by clearance) and
    // never reach a tile, which anyone who may see the layer can fetch.
    for f in &mut features {
        f.properties.retain(|k, _| !options.attribute_rules.iter().any(|r| r.matches(k)));
    }
    // Coarsened positions likewise: tiles carry the grid, the feature store the truth.
    if let Some(rule) = options.coarsen {
        let mut collapsed = 0u64;
        for f in &mut features {
            f.geometry = cim_core::features::coarsen(&f.geometry, rule.metres);
            if matches!(f.geometry, Geometry::Point(_)) && f.building_height.take().is_some() {
                collapsed += 1;
            }
        }
        tracing::info!(metres = rule.metres, collapsed, "positions coarsened for tiles");
    }

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
    };
    let stage = std::time::Instant::now();
    let tiling = run.progress(u64::from(options.max_zoom) + 1, "tiles");
    let index = MercatorIndex::build(&features);
    let stats =
        build_pmtiles(&features, &index, &config, &dir.join(MVT_ARCHIVE_FILE), &options.cancel, &tiling)?;
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

    let building_count = features.iter().filter(|f| f.building_height.is_some()).count() as u64;
    let mut building_tiles = 0;
    if building_count > 0 {
        let out = dir.join(TILESET_DIR);
        let stage = std::time::Instant::now();
        building_tiles = crate::buildings::build_tileset(
            &features,
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

fn write_features(features: &[LayerFeature], path: &Path) -> Result<(), IngestError> {
    let mut store = crate::feature_store::FeatureStore::create(path)?;
    for f in features {
        store.push(f.fid, &f.geometry, &f.properties)?;
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
    fn duplicate_and_missing_ids_get_fresh_ones() {
        let f = |_| LayerFeature {
            fid: 0,
            geometry: Geometry::Point(geo_types::point!(x: 0., y: 0.)),
            properties: Map::new(),
            base_height: 0.0,
            building_height: None,
        };
        let mut features: Vec<LayerFeature> = (0..4).map(f).collect();
        let mut q = QualityReport::default();
        assign_fids(&mut features, &[Some(7), Some(7), None, Some(2)], &mut q);
        let ids: Vec<u64> = features.iter().map(|f| f.fid).collect();
        assert_eq!(ids, vec![7, 8, 9, 2]);
        assert_eq!(q.duplicate_ids, 1);
    }
}

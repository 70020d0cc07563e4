//! 3D city models (CityJSON) into a city model layer: one feature per city object,
//! 3D Tiles with the objects' own surfaces (not extrusions), coloured by semantic
//! surface, and every level of detail kept.
//!
//! * [`read`] parses and upgrades the file; vertices are reprojected horizontally
//!   into WGS84 by PROJ (heights stay as the source gives them) and placed in one
//!   east-north-up frame at the layer's centre.
//! * Tiles form a quadtree with additive refinement, largest objects first, like the
//!   extruded buildings. Where a tile's objects come in several levels of detail, the
//!   tile has no content of its own but a chain of replacement-refined children, one
//!   per level, from the coarsest up; each link's geometric error is how far its
//!   level departs from the best one (roof relief and height differences).
//! * Each object keeps its id, type, level of detail, parent/child links and
//!   attributes; parts inherit what their parent says and they do not.

pub mod read;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;

use cim_core::catalogue::{
    AttributeField, CityModelSummary, FEATURES_FILE, LayerContent, QualityReport, TILESET_DIR,
};
use cim_core::features::to_geojson;
use cim_core::frame::EnuFrame;
use cim_core::glb::{FeatureMesh, GlbMaterial, PropertyColumn, PropertyTable, identifier, write_glb_scene};
use cim_core::tileset::{Asset, BoundingVolume, Content, Refine, Tile, Tileset, region_from_degrees};
use geo::orient::{Direction, Orient};
use geo::{Area, BoundingRect};
use geo_types::{Coord, Geometry, LineString, MultiPolygon, Point, Polygon};
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::IngestError;
use crate::crs::Reprojector;
use crate::mesh::{cross, normalized, sub, triangulate_face};
use crate::options::IngestOptions;
use crate::run::{Built, GENERATOR, Kind, LayerRun, Takes};
use read::{RawObject, Surface};

pub const KIND: Kind = Kind {
    name: "city model",
    inputs: "CityJSON models",
    takes: Takes { attribute_rules: true, coarsen: false, anchor: false },
    build,
};
const MAX_ATTRIBUTE_COLUMNS: usize = 64;

/// Linear RGB of a semantic surface, or of an object type's unlabelled surfaces
/// (buildings then split roof and wall by the face's slope).
fn colour(semantic: Option<&str>, kind: &str, up: f64) -> [u8; 4] {
    let roof = [0.50, 0.12, 0.07];
    let wall = [0.80, 0.77, 0.70];
    let rgb = match semantic {
        Some("RoofSurface") => roof,
        Some("WallSurface") => wall,
        Some("GroundSurface") => [0.30, 0.28, 0.26],
        Some("ClosureSurface") => [0.60, 0.60, 0.62],
        Some("OuterCeilingSurface" | "OuterFloorSurface") => [0.70, 0.68, 0.64],
        Some("Window") => [0.25, 0.42, 0.62],
        Some("Door") => [0.38, 0.22, 0.12],
        Some("TrafficArea" | "AuxiliaryTrafficArea" | "TransportationMarking" | "TransportationHole") => {
            [0.22, 0.22, 0.24]
        }
        Some("WaterSurface" | "WaterGroundSurface" | "WaterClosureSurface") => [0.10, 0.30, 0.60],
        _ => match kind {
            "Building" | "BuildingPart" | "BuildingInstallation" | "BuildingConstructiveElement" => {
                if up > 0.7 { roof } else { wall }
            }
            "Road" | "Railway" | "TransportSquare" | "Waterway" => [0.22, 0.22, 0.24],
            "PlantCover" | "SolitaryVegetationObject" => [0.12, 0.38, 0.10],
            "LandUse" => [0.45, 0.50, 0.30],
            "WaterBody" => [0.10, 0.30, 0.60],
            "Bridge" | "BridgePart" | "Tunnel" | "TunnelPart" => [0.55, 0.53, 0.50],
            "TINRelief" => [0.50, 0.42, 0.30],
            _ => [0.65, 0.65, 0.65],
        },
    };
    let c = rgb.map(|v: f64| (v * 255.0).round() as u8);
    [c[0], c[1], c[2], 255]
}

/// A level of detail as a number, for ordering (`"2.2"` → 2.2).
fn lod_value(lod: &str) -> f64 {
    lod.parse().unwrap_or(0.0)
}

/// One triangle in the layer's ENU frame, with its semantic label.
struct Triangle {
    corners: [[f64; 3]; 3],
    semantic: Option<usize>,
}

struct Lod {
    name: String,
    triangles: Vec<Triangle>,
    /// Heights (ENU up) of the whole geometry and of its roof surfaces.
    top: f64,
    bottom: f64,
    roof_low: Option<f64>,
}

struct CityObject {
    fid: u64,
    raw: RawObject,
    properties: Map<String, Value>,
    lods: Vec<Lod>,
    footprint: Option<MultiPolygon<f64>>,
    /// `[west, south, east, north]` degrees, heights as given.
    bbox: [f64; 4],
    heights: [f64; 2],
    centre: [f64; 2],
    size: f64,
}

impl CityObject {
    fn best(&self) -> &Lod {
        &self.lods[self.lods.len() - 1]
    }

    /// The best level at or below `lod`, else the coarsest.
    fn view(&self, lod: f64) -> &Lod {
        self.lods.iter().rev().find(|l| lod_value(&l.name) <= lod + 1e-9).unwrap_or(&self.lods[0])
    }

    /// How far `view` departs from the best level, metres.
    fn view_error(&self, lod: f64) -> f64 {
        let (v, best) = (self.view(lod), self.best());
        if std::ptr::eq(v, best) {
            return 0.0;
        }
        let relief = |l: &Lod| l.roof_low.map_or(0.0, |low| l.top - low);
        let diff = (v.top - best.top)
            .abs()
            .max((v.bottom - best.bottom).abs())
            .max((relief(best) - relief(v)).abs());
        diff.max(0.1)
    }
}

/// City objects without geometry of their own but with parts that have some (a
/// `Building` made of `BuildingPart`s): features too, over the union of their
/// parts' footprints and heights, with no surfaces to draw. Then every object's
/// `parent` and `children` (CityJSON ids) also name the features they are
/// (`parent_fid`, `children_fids`).
fn add_assemblies(
    city: &mut Vec<CityObject>,
    mut hollow: Vec<RawObject>,
    quality: &mut QualityReport,
    layer: &str,
) {
    // Assemblies of assemblies: each pass places those whose parts are placed.
    loop {
        let placed: HashMap<String, usize> =
            city.iter().enumerate().map(|(i, o)| (o.raw.id.clone(), i)).collect();
        let (ready, waiting): (Vec<RawObject>, Vec<RawObject>) =
            hollow.into_iter().partition(|raw| raw.children.iter().any(|c| placed.contains_key(c)));
        hollow = waiting;
        if ready.is_empty() {
            break;
        }
        for raw in ready {
            let parts: Vec<&CityObject> =
                raw.children.iter().filter_map(|c| placed.get(c)).map(|&i| &city[i]).collect();
            let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
            let mut heights = [f64::INFINITY, f64::NEG_INFINITY];
            let mut polygons = Vec::new();
            for part in &parts {
                bbox = [
                    bbox[0].min(part.bbox[0]),
                    bbox[1].min(part.bbox[1]),
                    bbox[2].max(part.bbox[2]),
                    bbox[3].max(part.bbox[3]),
                ];
                heights = [heights[0].min(part.heights[0]), heights[1].max(part.heights[1])];
                polygons.extend(part.footprint.iter().flat_map(|m| m.0.iter().cloned()));
            }
            let size = parts.iter().map(|p| p.size).fold(0.0, f64::max);
            let mut properties = Map::new();
            properties.insert("cityjson_id".into(), json!(raw.id));
            properties.insert("type".into(), json!(raw.kind));
            properties.insert("base".into(), json!(heights[0]));
            properties.insert("top".into(), json!(heights[1]));
            properties.insert("height".into(), json!(heights[1] - heights[0]));
            if !raw.parents.is_empty() {
                properties.insert("parent".into(), json!(raw.parents.join(",")));
            }
            properties.insert("children".into(), json!(raw.children.join(",")));
            for (k, v) in &raw.attributes {
                properties.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let fid = city.len() as u64 + 1;
            city.push(CityObject {
                fid,
                centre: [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0],
                raw,
                properties,
                lods: Vec::new(),
                footprint: footprint_of(polygons),
                bbox,
                heights,
                size,
            });
        }
    }
    for raw in hollow {
        quality.count_dropped("no geometry of its own nor parts with any");
        quality.example(layer, &raw.id, "neither surfaces nor parts with surfaces");
    }
    let fids: HashMap<String, u64> = city.iter().map(|o| (o.raw.id.clone(), o.fid)).collect();
    for o in city.iter_mut() {
        if let Some(&parent) = o.raw.parents.iter().find_map(|p| fids.get(p)) {
            o.properties.insert("parent_fid".into(), json!(parent));
        }
        let children: Vec<u64> = o.raw.children.iter().filter_map(|c| fids.get(c).copied()).collect();
        if !children.is_empty() {
            o.properties.insert("children_fids".into(), json!(children));
        }
    }
}

/// The up component of a ring's unit normal.
fn newell_up(ring: &[[f64; 3]]) -> f64 {
    normalized(crate::mesh::newell(ring)).map_or(0.0, |n| n[2])
}

/// The union of an object's non-wall surfaces seen from above: in metres around
/// its first vertex (so the overlay's precision is a fraction of a millimetre),
/// all faces turned counter-clockwise (ground faces look down), in one pass.
fn footprint_of(parts: Vec<Polygon<f64>>) -> Option<MultiPolygon<f64>> {
    let first = parts.first()?.exterior().0.first().copied()?;
    let k_lon = 111_320.0 * first.y.to_radians().cos();
    let k_lat = 110_540.0;
    let to_m = |c: Coord<f64>| Coord { x: (c.x - first.x) * k_lon, y: (c.y - first.y) * k_lat };
    let to_deg = |c: Coord<f64>| Coord { x: first.x + c.x / k_lon, y: first.y + c.y / k_lat };
    let local: Vec<Polygon<f64>> = parts
        .iter()
        .map(|p| geo::MapCoords::map_coords(p, to_m).orient(Direction::Default))
        .filter(|p| p.unsigned_area() > 1e-6)
        .collect();
    let union = geo::unary_union(&local);
    let cleaned: Vec<Polygon<f64>> = union.0.into_iter().filter(|p| p.unsigned_area() > 1e-4).collect();
    (!cleaned.is_empty()).then(|| geo::MapCoords::map_coords(&MultiPolygon(cleaned), to_deg))
}

/// Flattens an attribute value for a string column.
fn attribute_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A surface's rings in degrees (heights as given) with its semantic label.
type PlacedSurface = (Vec<Vec<[f64; 3]>>, Option<String>);
/// One level of detail's surfaces.
type PlacedLod = (String, Vec<PlacedSurface>);

/// Reads every CityJSON file into one city model layer.
fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    let started = std::time::Instant::now();
    let mut quality = std::mem::take(&mut run.quality);
    let mut versions = Vec::new();
    let mut crs_labels = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    let mut objects: Vec<(RawObject, Vec<PlacedLod>)> = Vec::new();
    let user_crs = options.src_crs.as_deref().map(Reprojector::from_user).transpose()?;
    for path in &options.files {
        let file = read::read_city_file(path)?;
        let reprojector = match (&user_crs, &file.crs) {
            (Some(_), _) => None,
            (None, Some(crs)) => Some(Reprojector::from_user(crs)?),
            (None, None) => return Err(IngestError::MissingCrs { path: path.clone() }),
        };
        let Some(reprojector) = reprojector.as_ref().or(user_crs.as_ref()) else {
            return Err(IngestError::MissingCrs { path: path.clone() });
        };
        crs_labels.insert(reprojector.label().to_owned());
        versions.push(format!("{}{}", file.version, if file.seq { " (CityJSONSeq)" } else { "" }));
        if file.has_appearance {
            skipped.insert(
                "appearances (materials and textures): surfaces are coloured by semantics instead".to_owned(),
            );
        }
        run.source(
            path,
            format!("CityJSON {}{}", file.version, if file.seq { " (CityJSONSeq)" } else { "" }),
        )?;
        for raw in file.objects {
            quality.features_read += 1;
            for g in &raw.skipped_geometries {
                skipped.insert(format!("{g} geometries (no surfaces)"));
            }
            let mut lods = Vec::new();
            for (lod, surfaces) in &raw.lods {
                let mut placed = Vec::with_capacity(surfaces.len());
                for Surface { rings, semantic } in surfaces {
                    let mut coords: Vec<Coord<f64>> =
                        rings.iter().flatten().map(|p| Coord { x: p[0], y: p[1] }).collect();
                    let mut line = Geometry::LineString(LineString(std::mem::take(&mut coords)));
                    reprojector.to_wgs84(&mut line).map_err(|e| {
                        IngestError::source(
                            path,
                            format!(
                                "CityObjects[\"{}\"]: cannot reproject from {}: {e}",
                                raw.id,
                                reprojector.label()
                            ),
                        )
                    })?;
                    let Geometry::LineString(line) = line else { continue };
                    let mut it = line.0.into_iter();
                    let rings_deg: Vec<Vec<[f64; 3]>> = rings
                        .iter()
                        .map(|r| r.iter().filter_map(|p| it.next().map(|c| [c.x, c.y, p[2]])).collect())
                        .collect();
                    placed.push((rings_deg, semantic.clone()));
                }
                lods.push((lod.clone(), placed));
            }
            objects.push((raw, lods));
        }
    }
    if objects.is_empty() {
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why: "no city objects".into() });
    }

    // One frame at the centre of every vertex, at the lowest height.
    let mut extent = crate::run::NO_BOUNDS;
    for p in objects
        .iter()
        .flat_map(|(_, l)| l.iter().flat_map(|(_, s)| s.iter().flat_map(|(r, _)| r.iter().flatten())))
    {
        for k in 0..3 {
            extent[k] = extent[k].min(p[k]);
            extent[k + 3] = extent[k + 3].max(p[k]);
        }
    }
    if !extent[0].is_finite() {
        return Err(IngestError::NoFeatures {
            layer: options.layer.clone(),
            why: "no city object has surfaces".into(),
        });
    }
    if !(extent[0] >= -180.0 && extent[3] <= 180.0 && extent[1] >= -90.0 && extent[4] <= 90.0) {
        return Err(IngestError::source(
            &options.files[0],
            format!(
                "vertices land outside the Earth ({extent:?} degrees) in {}; wrong CRS? (pass --src-crs)",
                crs_labels.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let frame = EnuFrame::at((extent[0] + extent[3]) / 2.0, (extent[1] + extent[4]) / 2.0, extent[2]);

    // Parents' attributes, for parts that lack them.
    let parent_attributes: HashMap<String, Map<String, Value>> =
        objects.iter().map(|(raw, _)| (raw.id.clone(), raw.attributes.clone())).collect();
    let mut semantic_names: Vec<String> = Vec::new();
    let mut semantic_index: HashMap<String, usize> = HashMap::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_lod: BTreeMap<String, u64> = BTreeMap::new();
    let mut city: Vec<CityObject> = Vec::new();
    let mut hollow: Vec<RawObject> = Vec::new();
    for (raw, lods_deg) in objects {
        *by_type.entry(raw.kind.clone()).or_default() += 1;
        if lods_deg.iter().all(|(_, s)| s.is_empty()) {
            hollow.push(raw);
            continue;
        }
        let mut lods = Vec::new();
        let mut footprint_parts: Vec<Polygon<f64>> = Vec::new();
        let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        let mut heights = [f64::INFINITY, f64::NEG_INFINITY];
        let best_lod = lods_deg.iter().map(|(l, _)| lod_value(l)).fold(f64::NEG_INFINITY, f64::max);
        let mut sorted = lods_deg;
        sorted.sort_by(|a, b| lod_value(&a.0).total_cmp(&lod_value(&b.0)));
        for (name, surfaces) in sorted {
            *by_lod.entry(name.clone()).or_default() += 1;
            let mut lod = Lod {
                name: name.clone(),
                triangles: Vec::new(),
                top: f64::NEG_INFINITY,
                bottom: f64::INFINITY,
                roof_low: None,
            };
            for (rings, semantic) in &surfaces {
                let local: Vec<Vec<[f64; 3]>> = rings
                    .iter()
                    .map(|r| r.iter().map(|p| frame.to_local(p[0], p[1], p[2])).collect())
                    .collect();
                let semantic_id = semantic.as_ref().map(|s| {
                    *semantic_index.entry(s.clone()).or_insert_with(|| {
                        semantic_names.push(s.clone());
                        semantic_names.len() - 1
                    })
                });
                for p in local.iter().flatten() {
                    lod.top = lod.top.max(p[2]);
                    lod.bottom = lod.bottom.min(p[2]);
                    if semantic.as_deref() == Some("RoofSurface") {
                        lod.roof_low = Some(lod.roof_low.map_or(p[2], |l: f64| l.min(p[2])));
                    }
                }
                let mesh = triangulate_face(&local, None);
                if mesh.triangles.is_empty() {
                    quality.count_dropped("degenerate surface");
                    quality.example(&options.layer, &raw.id, &format!("a LoD {name} surface has no area"));
                    continue;
                }
                lod.triangles.extend(
                    mesh.triangles.into_iter().map(|corners| Triangle { corners, semantic: semantic_id }),
                );
                if (lod_value(&name) - best_lod).abs() < 1e-9 {
                    for p in rings.iter().flatten() {
                        bbox = [bbox[0].min(p[0]), bbox[1].min(p[1]), bbox[2].max(p[0]), bbox[3].max(p[1])];
                        heights = [heights[0].min(p[2]), heights[1].max(p[2])];
                    }
                    // The footprint: every surface that is not a wall, seen from above.
                    if let Some(outer) = rings.first().filter(|o| o.len() >= 3 && newell_up(o).abs() > 0.2) {
                        let ring = |r: &Vec<[f64; 3]>| {
                            LineString(r.iter().map(|p| Coord { x: p[0], y: p[1] }).collect())
                        };
                        footprint_parts
                            .push(Polygon::new(ring(outer), rings[1..].iter().map(ring).collect()));
                    }
                }
            }
            if !lod.triangles.is_empty() {
                lods.push(lod);
            }
        }
        if lods.is_empty() {
            quality.count_dropped("no surface could be triangulated");
            quality.example(&options.layer, &raw.id, "every surface degenerate");
            continue;
        }
        let footprint = footprint_of(footprint_parts);
        let lat = ((bbox[1] + bbox[3]) / 2.0).to_radians();
        let (w, h) = ((bbox[2] - bbox[0]) * 111_320.0 * lat.cos(), (bbox[3] - bbox[1]) * 110_540.0);
        let size = (w * w + h * h).sqrt().max(heights[1] - heights[0]);
        let fid = city.len() as u64 + 1;
        let mut properties = Map::new();
        properties.insert("cityjson_id".into(), json!(raw.id));
        properties.insert("type".into(), json!(raw.kind));
        properties.insert("lod".into(), json!(lods.last().map(|l| l.name.clone())));
        properties
            .insert("lods".into(), json!(lods.iter().map(|l| l.name.clone()).collect::<Vec<_>>().join(",")));
        properties.insert("base".into(), json!(heights[0]));
        properties.insert("top".into(), json!(heights[1]));
        properties.insert("height".into(), json!(heights[1] - heights[0]));
        if !raw.parents.is_empty() {
            properties.insert("parent".into(), json!(raw.parents.join(",")));
        }
        if !raw.children.is_empty() {
            properties.insert("children".into(), json!(raw.children.join(",")));
        }
        for (k, v) in &raw.attributes {
            properties.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for parent in &raw.parents {
            for (k, v) in parent_attributes.get(parent).into_iter().flatten() {
                properties.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        city.push(CityObject {
            fid,
            centre: [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0],
            raw,
            properties,
            lods,
            footprint,
            bbox,
            heights,
            size,
        });
    }
    add_assemblies(&mut city, hollow, &mut quality, &options.layer);
    quality.features_written = city.len() as u64;
    if city.is_empty() {
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why: quality.summary_line() });
    }

    let dir = run.stage()?;
    let content_dir = dir.join(TILESET_DIR).join("content");
    std::fs::create_dir_all(&content_dir).map_err(|e| IngestError::store(&content_dir, e))?;

    // Attribute columns shared by every tile.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for o in &city {
        keys.extend(o.properties.keys().map(String::as_str));
    }
    let mut used: BTreeSet<String> = ["fid".to_owned()].into();
    let columns: Vec<(String, String)> = keys
        .into_iter()
        .filter(|k| *k != "height" && !options.attribute_rules.iter().any(|r| r.matches(k)))
        .take(MAX_ATTRIBUTE_COLUMNS)
        .map(|k| {
            let mut id = identifier(k);
            while !used.insert(id.clone()) {
                id.push('_');
            }
            (k.to_owned(), id)
        })
        .collect();
    // Objects with surfaces of their own are drawn; assemblies are drawn as their parts.
    let mut order: Vec<usize> = (0..city.len()).filter(|&i| !city[i].lods.is_empty()).collect();
    order.sort_by(|&a, &b| city[b].size.total_cmp(&city[a].size).then(city[a].fid.cmp(&city[b].fid)));
    let area = [extent[0], extent[1], extent[3], extent[4]];
    let writer = TileWriter {
        city: &city,
        columns: &columns,
        semantic_names: &semantic_names,
        content_dir: &content_dir,
        written: std::sync::atomic::AtomicUsize::new(0),
    };
    let mut root = writer.node(&order, area, "r", 0, options)?;
    root.transform = Some(frame.to_ecef_matrix());
    let tileset = Tileset {
        asset: Asset { version: "1.1".into(), tileset_version: None, generator: Some(GENERATOR.into()) },
        geometric_error: city.iter().map(|o| o.size).fold(0.0, f64::max),
        root,
    };
    crate::tileset_files::write(&dir.join(TILESET_DIR), tileset, options.max_tileset_bytes)?;

    let mut triangles_by_surface: BTreeMap<String, u64> = BTreeMap::new();
    for o in city.iter().filter(|o| !o.lods.is_empty()) {
        for t in &o.best().triangles {
            let name = t.semantic.and_then(|s| semantic_names.get(s)).map_or("none", String::as_str);
            *triangles_by_surface.entry(name.to_owned()).or_default() += 1;
        }
    }
    let features: Vec<Value> = city
        .iter()
        .map(|o| {
            let geometry = match &o.footprint {
                Some(m) if m.0.len() == 1 => Geometry::Polygon(m.0[0].clone()),
                Some(m) => Geometry::MultiPolygon(m.clone()),
                None => Geometry::Point(Point::new(o.centre[0], o.centre[1])),
            };
            json!({"type": "Feature", "id": o.fid, "geometry": to_geojson(&geometry), "properties": o.properties})
        })
        .collect();
    let mut geometry_types: BTreeSet<String> = BTreeSet::new();
    for f in &features {
        geometry_types.insert(f["geometry"]["type"].as_str().unwrap_or("Unknown").to_owned());
    }
    crate::feature_store::write_values(&dir.join(FEATURES_FILE), features)?;

    let mut field_types: BTreeMap<String, &str> = BTreeMap::new();
    for o in &city {
        for (k, v) in &o.properties {
            let t = match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                Value::String(_) => "string",
                _ => "object",
            };
            field_types
                .entry(k.clone())
                .and_modify(|e| {
                    if *e != t {
                        *e = if *e == "integer" && t == "number" { "number" } else { "string" }
                    }
                })
                .or_insert(t);
        }
    }
    let footprints = city.iter().filter_map(|o| o.footprint.as_ref()).flat_map(|m| m.bounding_rect());
    let mut wgs = [extent[0], extent[1], extent[3], extent[4]];
    for r in footprints {
        wgs = [wgs[0].min(r.min().x), wgs[1].min(r.min().y), wgs[2].max(r.max().x), wgs[3].max(r.max().y)];
    }
    let building_count = by_type.iter().filter(|(k, _)| k.starts_with("Building")).map(|(_, v)| v).sum();
    let summary = CityModelSummary {
        versions,
        objects_by_type: by_type,
        objects_by_lod: by_lod,
        triangles_by_surface,
        skipped: skipped.into_iter().collect(),
    };
    let tiles = writer.written.into_inner();
    tracing::info!(
        stage = "city_model",
        objects = city.len(),
        tiles,
        seconds = started.elapsed().as_secs_f64(),
        "city model written"
    );
    run.quality = quality;
    Ok(Built {
        feature_count: city.len() as u64,
        geometry_types: geometry_types.into_iter().collect(),
        attributes: field_types
            .into_iter()
            .map(|(name, t)| AttributeField { name, kind: t.to_owned() })
            .collect(),
        building_count,
        ..Built::tiles_3d(
            LayerContent::CityModel(summary),
            [wgs[0], wgs[1], extent[2], wgs[2], wgs[3], extent[5]],
            crs_labels.into_iter().collect::<Vec<_>>().join("; "),
            tiles,
        )
    })
}

struct TileWriter<'a> {
    city: &'a [CityObject],
    columns: &'a [(String, String)],
    semantic_names: &'a [String],
    content_dir: &'a Path,
    written: std::sync::atomic::AtomicUsize,
}

impl TileWriter<'_> {
    fn region(&self, members: &[usize]) -> BoundingVolume {
        let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        let mut h = [f64::INFINITY, f64::NEG_INFINITY];
        for &i in members {
            let o = &self.city[i];
            b = [b[0].min(o.bbox[0]), b[1].min(o.bbox[1]), b[2].max(o.bbox[2]), b[3].max(o.bbox[3])];
            h = [h[0].min(o.heights[0]), h[1].max(o.heights[1])];
        }
        BoundingVolume::region(region_from_degrees(b, h[0], h[1]))
    }

    /// `members` are sorted largest first; quarters are built in parallel.
    fn node(
        &self,
        members: &[usize],
        area: [f64; 4],
        name: &str,
        depth: usize,
        options: &IngestOptions,
    ) -> Result<Tile, IngestError> {
        if options.cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(options.layer.clone()));
        }
        // About 110 bytes a triangle (three vertices, normals, ids, indices) at the
        // most detailed level, the largest content a tile writes.
        let weight = |i: usize| self.city[i].lods.iter().map(|l| 110 * l.triangles.len()).max().unwrap_or(0);
        let (own, rest) = crate::quadtree::split(members, depth, weight, crate::quadtree::CONTENT_BUDGET);
        let mut children = crate::quadtree::quadrants(area, rest, |i| self.city[i].centre)
            .into_par_iter()
            .enumerate()
            .filter(|(_, (_, quad))| !quad.is_empty())
            .map(|(q, (quad_area, quad))| {
                self.node(&quad, quad_area, &format!("{name}{q}"), depth + 1, options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let left_out = rest.first().map_or(0.0, |&i| self.city[i].size);
        let mut levels: Vec<f64> =
            own.iter().flat_map(|&i| self.city[i].lods.iter().map(|l| lod_value(&l.name))).collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        if levels.len() <= 1 {
            let uri = format!("content/{name}.glb");
            self.write_content(own, f64::INFINITY, &uri)?;
            return Ok(Tile {
                bounding_volume: self.region(members),
                geometric_error: left_out,
                refine: Some(Refine::Add),
                content: Some(Content { uri, bounding_volume: None }),
                transform: None,
                children,
            });
        }
        // A chain from the coarsest level up, each link replacing the one before.
        let mut chain: Option<Tile> = None;
        for (k, &lod) in levels.iter().enumerate().rev() {
            let uri = format!("content/{name}-lod{k}.glb");
            self.write_content(own, lod, &uri)?;
            let error = if k + 1 == levels.len() {
                0.0
            } else {
                own.iter().map(|&i| self.city[i].view_error(lod)).fold(0.0, f64::max)
            };
            chain = Some(Tile {
                bounding_volume: self.region(own),
                geometric_error: error,
                refine: Some(Refine::Replace),
                content: Some(Content { uri, bounding_volume: None }),
                transform: None,
                children: chain.into_iter().collect(),
            });
        }
        if let Some(chain) = chain {
            children.insert(0, chain);
        }
        Ok(Tile {
            bounding_volume: self.region(members),
            // Nothing of this tile shows until it refines: its error is its largest object.
            geometric_error: own.first().map_or(left_out, |&i| self.city[i].size),
            refine: Some(Refine::Add),
            content: None,
            transform: None,
            children,
        })
    }

    /// Writes `members` at their best level at or below `lod` (infinity: the best).
    fn write_content(&self, members: &[usize], lod: f64, uri: &str) -> Result<(), IngestError> {
        let mut mesh = FeatureMesh::default();
        let mut fids = Vec::with_capacity(members.len());
        let mut lods = Vec::with_capacity(members.len());
        let mut heights = Vec::with_capacity(members.len());
        let mut attrs: Vec<Vec<String>> = vec![Vec::with_capacity(members.len()); self.columns.len()];
        for (row, &i) in members.iter().enumerate() {
            let o = &self.city[i];
            let level = o.view(lod);
            for t in &level.triangles {
                let [a, b, c] = t.corners;
                let Some(n) = normalized(cross(sub(b, a), sub(c, a))) else { continue };
                let semantic = t.semantic.and_then(|s| self.semantic_names.get(s)).map(String::as_str);
                let rgba = colour(semantic, &o.raw.kind, n[2]);
                let base = mesh.positions.len() as u32;
                for p in [a, b, c] {
                    mesh.positions.push([p[0] as f32, p[2] as f32, -p[1] as f32]);
                    mesh.normals.push([n[0] as f32, n[2] as f32, -n[1] as f32]);
                    mesh.feature_ids.push(row as u32);
                    mesh.colors.push(rgba);
                }
                mesh.indices.extend_from_slice(&[base, base + 1, base + 2]);
            }
            fids.push(o.fid);
            lods.push(level.name.clone());
            heights.push(o.heights[1] - o.heights[0]);
            for (c, (key, _)) in self.columns.iter().enumerate() {
                attrs[c].push(o.properties.get(key).map(attribute_text).unwrap_or_default());
            }
        }
        let mut columns = vec![
            ("fid".to_owned(), PropertyColumn::UInt64(fids)),
            ("height".to_owned(), PropertyColumn::Float64(heights)),
        ];
        for ((key, id), values) in self.columns.iter().zip(attrs) {
            let values = if key == "lod" { lods.clone() } else { values };
            columns.push((id.clone(), PropertyColumn::String(values)));
        }
        let table = PropertyTable { class: "city_object".into(), count: members.len(), columns };
        let glb = write_glb_scene(
            &[(&mesh, 0)],
            &[GlbMaterial { name: "city_object".into(), base_color: [1.0, 1.0, 1.0, 1.0] }],
            &[],
            &[],
            &table,
            GENERATOR,
        );
        let path = self.content_dir.join(uri.trim_start_matches("content/"));
        std::fs::write(&path, glb).map_err(|e| IngestError::store(&path, e))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

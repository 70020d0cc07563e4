//! IFC models into a BIM layer.
//!
//! Each model is placed by its georeference (`ifc::georef`) in an east-north-up frame
//! at its anchor, which becomes its tile's `transform`. Under it, one 3D Tiles
//! content per storey (plus one for elements outside any storey) holds that storey's
//! elements: merged triangles for one-off geometry, and core-glTF instances for
//! representation maps the model repeats. Every element is one row of the
//! `EXT_structural_metadata` table (fid, GlobalId, IFC class, name, storey, property
//! sets) and one feature in `features.json`, so the feature API, picking and
//! `/api/bim/{layer}/elements/{GlobalId}` all see the same element.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::Ordering;

use cim_core::catalogue::{
    AttributeField, BimModel, BimSummary, FEATURES_FILE, GLOBAL_ID, LayerContent, QualityReport, Storey,
    TILESET_DIR,
};
use cim_core::frame::{EnuFrame, ecef_to_geodetic};
use cim_core::glb::{
    FeatureMesh, GlbMaterial, MeshInstance, PropertyColumn, PropertyTable, SharedMesh, write_glb_scene,
};
use cim_core::tileset::{Asset, BoundingVolume, Content, Refine, Tile, Tileset, region_from_degrees};
use serde_json::{Map, Value, json};

use crate::IngestError;
use crate::ifc::geometry::{BodyPart, GeometryBuilder};
use crate::ifc::georef::{Georeference, locate};
use crate::ifc::step::Instance;
use crate::ifc::{IfcModel, class_names::display_name};
use crate::mesh::{Affine, TriMesh, cross, norm};
use crate::options::IngestOptions;
use crate::run::{Built, GENERATOR, Kind, LayerRun, Takes, write_json};

pub const KIND: Kind = Kind {
    name: "BIM",
    inputs: "IFC models",
    takes: Takes { attribute_rules: false, coarsen: false, anchor: true },
    build,
};
/// Where IFC "no storey" elements go.
const NO_STOREY: u64 = 0;

/// One IFC product as written to the layer.
struct Element {
    fid: u64,
    step_id: u64,
    global_id: String,
    class: String,
    name: String,
    storey: u64,
    properties: Map<String, Value>,
    parts: Vec<BodyPart>,
    /// Bounds in the model's world frame, metres.
    bounds_model: Option<[[f64; 3]; 2]>,
}

/// A model read and placed.
struct PlacedModel {
    model: IfcModel,
    georef: Georeference,
    elements: Vec<Element>,
    /// Representation maps drawn by instancing: their meshes in model units.
    maps: HashMap<u64, TriMesh>,
}

fn is_product(model: &IfcModel, instance: &Instance) -> bool {
    if instance.attributes.len() < 7 || model.attribute(instance, 0).as_str().is_none() {
        return false;
    }
    let placement_ok = match model.attribute(instance, 5).as_ref() {
        Some(r) => model.class_of(r).is_some_and(|c| c.ends_with("PLACEMENT")),
        None => model.attribute(instance, 5).is_null(),
    };
    let shape_ok = match model.attribute(instance, 6).as_ref() {
        Some(r) => model.class_of(r) == Some("IFCPRODUCTDEFINITIONSHAPE"),
        None => model.attribute(instance, 6).is_null(),
    };
    // The spatial structure is part of the model even where it is only a name: a
    // site or building without placement or shape still holds the storeys.
    let spatial = matches!(
        &*instance.class,
        "IFCSITE" | "IFCBUILDING" | "IFCBUILDINGSTOREY" | "IFCSPACE" | "IFCFACILITY"
    );
    placement_ok
        && shape_ok
        && (spatial
            || model.attribute(instance, 5).as_ref().is_some()
            || model.attribute(instance, 6).as_ref().is_some())
}

fn text(model: &IfcModel, instance: &Instance, index: usize) -> String {
    model.attribute(instance, index).as_str().unwrap_or("").to_owned()
}

/// Every representation map referenced by more than one mapped item.
fn repeated_maps(model: &IfcModel) -> HashSet<u64> {
    let mut uses: HashMap<u64, u32> = HashMap::new();
    for &id in model.ids_of("IFCMAPPEDITEM") {
        if let Some(map) = model.get(id).ok().and_then(|i| model.attribute(i, 0).as_ref()) {
            *uses.entry(map).or_default() += 1;
        }
    }
    uses.into_iter().filter(|&(_, n)| n > 1).map(|(m, _)| m).collect()
}

fn read_model(
    path: &Path,
    file_index: u64,
    options: &IngestOptions,
    quality: &mut QualityReport,
    unsupported: &mut BTreeMap<String, u64>,
) -> Result<PlacedModel, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::source(path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::progress_bar(options.progress, size, "parse", None);
    let started = std::time::Instant::now();
    let model = IfcModel::read(BufReader::with_capacity(1 << 16, bar.wrap_read(file)), |_| {})
        .map_err(|e| IngestError::source(path, e))?;
    bar.finish_and_clear();
    tracing::info!(
        stage = "parse",
        instances = model.len(),
        bytes = size,
        us = started.elapsed().as_micros() as u64,
        "stage done"
    );
    let started = std::time::Instant::now();
    let source = path.display().to_string();
    for message in &model.dangling {
        quality.count_repaired("reference to an undefined instance (left unresolved)");
        quality.example(&source, "", message);
    }
    let project = |crs: &str, points: &[[f64; 2]]| -> Result<Vec<[f64; 2]>, String> {
        let reprojector = crate::crs::Reprojector::from_user(crs).map_err(|e| e.to_string())?;
        let mut geometry = geo_types::Geometry::MultiPoint(geo_types::MultiPoint(
            points.iter().map(|p| geo_types::Point::new(p[0], p[1])).collect(),
        ));
        reprojector.to_wgs84(&mut geometry)?;
        match geometry {
            geo_types::Geometry::MultiPoint(mp) => Ok(mp.0.iter().map(|p| [p.x(), p.y()]).collect()),
            _ => Err("reprojection changed the geometry type".into()),
        }
    };
    let georef = locate(&model, options.anchor, &project).map_err(|e| IngestError::source(path, e))?;
    let repeated = repeated_maps(&model);
    let mut builder = GeometryBuilder::new(&model);
    let unit = Affine::scale(model.length_unit);
    let ids = model.all_ids();
    let mut elements = Vec::new();
    let bar = crate::progress::progress_bar(options.progress, ids.len() as u64, "geometry", None);
    for id in ids {
        bar.inc(1);
        if options.cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(options.layer.clone()));
        }
        let instance = model.get(id).map_err(|e| IngestError::source(path, e))?;
        if !is_product(&model, instance) {
            continue;
        }
        quality.features_read += 1;
        let class = display_name(&instance.class);
        if &*instance.class == "IFCOPENINGELEMENT" {
            // Openings are voids, not elements; IfcRelVoidsElement ties them to hosts.
            quality.count_dropped("IfcOpeningElement (void; not subtracted from its host)");
            continue;
        }
        let storey = match model.enclosing(id, "IFCBUILDINGSTOREY") {
            Ok(s) => s.unwrap_or(NO_STOREY),
            Err(e) => return Err(IngestError::source(path, e)),
        };
        let storey = if &*instance.class == "IFCBUILDINGSTOREY" { id } else { storey };
        let label = format!("#{id} {class}");
        let parts = match builder.element_body(instance, &repeated) {
            Ok(parts) => parts,
            Err(e) => {
                quality.count_dropped("geometry error (element kept without geometry)");
                quality.example(&source, &label, &e.to_string());
                Vec::new()
            }
        };
        // Spaces and the site are volumes and ground that would hide the building's
        // elements: measured (bounds_model) but not drawn.
        let drawn = !matches!(&*instance.class, "IFCSPACE" | "IFCSITE" | "IFCBUILDING" | "IFCBUILDINGSTOREY");
        let mut bounds: Option<[[f64; 3]; 2]> = None;
        let mut scaled_parts = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                BodyPart::Mesh(mesh) => {
                    let mesh = mesh.transformed(&unit);
                    if let Some(b) = mesh.bounds() {
                        bounds = Some(union(bounds, b));
                    }
                    scaled_parts.push(BodyPart::Mesh(mesh));
                }
                BodyPart::Instance { map, transform } => {
                    // Bounds of instances come once the map meshes are built, below.
                    scaled_parts.push(BodyPart::Instance { map, transform: unit.then_after(&transform) });
                }
            }
        }
        let mut properties = Map::new();
        properties.insert(GLOBAL_ID.into(), Value::from(text(&model, instance, 0)));
        properties.insert("ifc_class".into(), Value::from(class.clone()));
        properties.insert("name".into(), Value::from(text(&model, instance, 2)));
        for (key, index) in [("description", 3), ("object_type", 4)] {
            let v = text(&model, instance, index);
            if !v.is_empty() {
                properties.insert(key.into(), Value::from(v));
            }
        }
        let psets = model.property_sets(id);
        if !psets.is_empty() {
            properties.insert("property_sets".into(), Value::Object(psets));
        }
        elements.push(Element {
            fid: (file_index << 32) | id,
            step_id: id,
            global_id: text(&model, instance, 0),
            class,
            name: text(&model, instance, 2),
            storey,
            properties,
            parts: if drawn { scaled_parts } else { Vec::new() },
            bounds_model: bounds,
        });
    }
    bar.finish_and_clear();
    // Meshes of the repeated maps, once each, and instance bounds from them.
    let mut maps: HashMap<u64, TriMesh> = HashMap::new();
    for element in &mut elements {
        for part in &element.parts {
            let BodyPart::Instance { map, transform } = part else { continue };
            if !maps.contains_key(map) {
                let mesh = builder.map_mesh(*map, 0).map_err(|e| IngestError::source(path, e))?;
                maps.insert(*map, mesh);
            }
            if let Some(b) = maps[map].bounds_under(transform) {
                element.bounds_model = Some(union(element.bounds_model, b));
            }
        }
    }
    let products = elements.len();
    tracing::info!(
        stage = "geometry",
        elements = products,
        us = started.elapsed().as_micros() as u64,
        "stage done"
    );
    for (what, n) in std::mem::take(&mut builder.unsupported) {
        *unsupported.entry(what).or_default() += n;
    }
    Ok(PlacedModel { model, georef, elements, maps })
}

/// glTF materials of BIM contents, by the part of the building an element is. A
/// viewer draws `shell` and `glazing` translucent for x-ray.
fn bim_materials() -> [GlbMaterial; 3] {
    [
        GlbMaterial { name: "shell".into(), base_color: [0.86, 0.84, 0.80, 1.0] },
        GlbMaterial { name: "glazing".into(), base_color: [0.45, 0.62, 0.78, 1.0] },
        GlbMaterial { name: "interior".into(), base_color: [0.78, 0.62, 0.42, 1.0] },
    ]
}

/// Which of [`bim_materials`] an IFC class is drawn with.
fn material_of(class: &str) -> usize {
    match class {
        "IfcWindow" | "IfcWindowStandardCase" => 1,
        c if c.starts_with("IfcWall")
            || c.starts_with("IfcSlab")
            || c.starts_with("IfcRoof")
            || c.starts_with("IfcCurtainWall")
            || c.starts_with("IfcPlate")
            || c == "IfcCovering"
            || c == "IfcMember" =>
        {
            0
        }
        _ => 2,
    }
}

/// ENU (z up) to glTF's y-up content frame: (east, up, -north).
const Y_UP: Affine = Affine { cols: [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], t: [0.0; 3] };

fn union(a: Option<[[f64; 3]; 2]>, b: [[f64; 3]; 2]) -> [[f64; 3]; 2] {
    match a {
        None => b,
        Some(a) => [
            [a[0][0].min(b[0][0]), a[0][1].min(b[0][1]), a[0][2].min(b[0][2])],
            [a[1][0].max(b[1][0]), a[1][1].max(b[1][1]), a[1][2].max(b[1][2])],
        ],
    }
}

/// Flat-shaded triangles into a mesh with one feature row.
fn push_triangles(mesh: &TriMesh, row: u32, out: &mut FeatureMesh) {
    for t in &mesh.triangles {
        let n = cross(
            [t[1][0] - t[0][0], t[1][1] - t[0][1], t[1][2] - t[0][2]],
            [t[2][0] - t[0][0], t[2][1] - t[0][1], t[2][2] - t[0][2]],
        );
        let length = norm(n);
        if length < 1e-12 || !length.is_finite() {
            continue;
        }
        let normal = n.map(|c| (c / length) as f32);
        let base = out.positions.len() as u32;
        for p in t {
            out.positions.push(p.map(|c| c as f32));
            out.normals.push(normal);
            out.feature_ids.push(row);
        }
        out.indices.extend_from_slice(&[base, base + 1, base + 2]);
    }
}

fn shared_mesh(mesh: &TriMesh, material: usize) -> SharedMesh {
    let mut flat = FeatureMesh::default();
    push_triangles(mesh, 0, &mut flat);
    SharedMesh { positions: flat.positions, normals: flat.normals, indices: flat.indices, material }
}

fn corners(b: [[f64; 3]; 2]) -> impl Iterator<Item = [f64; 3]> {
    (0..8).map(move |i| [b[i & 1][0], b[(i >> 1) & 1][1], b[(i >> 2) & 1][2]])
}

/// A content's axis-aligned box in the tile's ENU frame, as 3D Tiles writes boxes.
fn enu_box(gltf_bounds: [[f64; 3]; 2]) -> [f64; 12] {
    // glTF (x, y, z) = (east, up, -north).
    let lo = [gltf_bounds[0][0], -gltf_bounds[1][2], gltf_bounds[0][1]];
    let hi = [gltf_bounds[1][0], -gltf_bounds[0][2], gltf_bounds[1][1]];
    let half = |i: usize| ((hi[i] - lo[i]) / 2.0).max(0.005);
    let centre = |i: usize| (hi[i] + lo[i]) / 2.0;
    [centre(0), centre(1), centre(2), half(0), 0.0, 0.0, 0.0, half(1), 0.0, 0.0, 0.0, half(2)]
}

struct WrittenModel {
    tile: Tile,
    storeys: Vec<Storey>,
    /// Longitude/latitude/height bounds of everything written.
    bounds: [f64; 6],
    contents: usize,
}

fn write_model(
    placed: &PlacedModel,
    index: usize,
    content_dir: &Path,
    elements_out: &mut Vec<(u64, Value)>,
) -> Result<WrittenModel, IngestError> {
    let [lon, lat, height] = placed.georef.anchor;
    let frame = EnuFrame::at(lon, lat, height);
    let to_gltf = Y_UP.then_after(&placed.georef.to_enu);
    let to_ecef = frame.to_ecef_matrix();
    let gltf_to_lonlat = |p: [f64; 3]| {
        // Back from y-up to ENU, then ECEF, then geodetic.
        let (e, n, u) = (p[0], -p[2], p[1]);
        let m = &to_ecef;
        let ecef = [
            m[0] * e + m[4] * n + m[8] * u + m[12],
            m[1] * e + m[5] * n + m[9] * u + m[13],
            m[2] * e + m[6] * n + m[10] * u + m[14],
        ];
        ecef_to_geodetic(ecef)
    };
    let model = &placed.model;
    let storey_name =
        |id: u64| -> String { model.get(id).ok().map(|s| text(model, s, 2)).unwrap_or_default() };
    let storey_elevation = |id: u64| {
        model.get(id).ok().and_then(|s| model.attribute(s, 9).as_f64()).map(|e| e * model.length_unit)
    };
    let mut groups: BTreeMap<u64, Vec<&Element>> = BTreeMap::new();
    for e in &placed.elements {
        groups.entry(e.storey).or_default();
        if !e.parts.is_empty() {
            groups.entry(e.storey).or_default().push(e);
        }
    }
    let mut order: Vec<u64> = groups.keys().copied().collect();
    order.sort_by(|a, b| {
        let (ea, eb) = (storey_elevation(*a).unwrap_or(f64::MIN), storey_elevation(*b).unwrap_or(f64::MIN));
        ea.total_cmp(&eb).then(a.cmp(b))
    });
    let mut children = Vec::new();
    let mut storeys = Vec::new();
    let mut model_bounds: Option<[[f64; 3]; 2]> = None;
    let mut geo_bounds = [f64::MAX, f64::MAX, f64::MAX, f64::MIN, f64::MIN, f64::MIN];
    let mut element_bounds: HashMap<u64, [[f64; 3]; 2]> = HashMap::new();
    for (n, storey) in order.iter().enumerate() {
        let members = &groups[storey];
        let uri = format!("content/m{index}_s{n}.glb");
        if *storey != NO_STOREY && model.class_of(*storey) == Some("IFCBUILDINGSTOREY") {
            storeys.push(Storey {
                global_id: model.get(*storey).ok().map(|s| text(model, s, 0)).unwrap_or_default(),
                name: storey_name(*storey),
                elevation: storey_elevation(*storey),
                content: format!("{TILESET_DIR}/{uri}"),
                element_count: placed.elements.iter().filter(|e| e.storey == *storey).count() as u64,
            });
        }
        if members.is_empty() {
            continue;
        }
        let mut merged: [FeatureMesh; 3] = Default::default();
        let mut shared: Vec<SharedMesh> = Vec::new();
        let mut shared_index: HashMap<(u64, usize), usize> = HashMap::new();
        let mut instances: Vec<MeshInstance> = Vec::new();
        let mut bounds: Option<[[f64; 3]; 2]> = None;
        for (row, element) in members.iter().enumerate() {
            let row = row as u32;
            let material = material_of(&element.class);
            let mut own: Option<[[f64; 3]; 2]> = None;
            for part in &element.parts {
                match part {
                    BodyPart::Mesh(mesh) => {
                        let placed_mesh = mesh.clone().transformed(&to_gltf);
                        if let Some(b) = placed_mesh.bounds() {
                            own = Some(union(own, b));
                        }
                        push_triangles(&placed_mesh, row, &mut merged[material]);
                    }
                    BodyPart::Instance { map, transform } => {
                        let Some(map_mesh) = placed.maps.get(map) else { continue };
                        let matrix = to_gltf.then_after(transform);
                        if let Some(b) = map_mesh.bounds() {
                            let mut placed_bounds = None;
                            for c in corners(b) {
                                let p = matrix.apply(c);
                                placed_bounds = Some(union(placed_bounds, [p, p]));
                            }
                            if let Some(pb) = placed_bounds {
                                own = Some(union(own, pb));
                            }
                        }
                        if matrix.is_similarity() {
                            let at = *shared_index.entry((*map, material)).or_insert_with(|| {
                                shared.push(shared_mesh(map_mesh, material));
                                shared.len() - 1
                            });
                            instances.push(MeshInstance {
                                mesh: at,
                                matrix: matrix.to_column_major(),
                                feature_id: row,
                            });
                        } else {
                            // Mirrored or sheared: no glTF node can carry it faithfully.
                            push_triangles(
                                &map_mesh.clone().transformed(&matrix),
                                row,
                                &mut merged[material],
                            );
                        }
                    }
                }
            }
            if let Some(b) = own {
                bounds = Some(union(bounds, b));
                element_bounds.insert(element.fid, b);
            }
        }
        let Some(bounds) = bounds else { continue };
        model_bounds = Some(union(model_bounds, bounds));
        let text_column =
            |f: &dyn Fn(&Element) -> String| PropertyColumn::String(members.iter().map(|e| f(e)).collect());
        let table = PropertyTable {
            class: "element".into(),
            count: members.len(),
            columns: vec![
                ("fid".into(), PropertyColumn::UInt64(members.iter().map(|e| e.fid).collect())),
                (GLOBAL_ID.into(), text_column(&|e| e.global_id.clone())),
                ("ifc_class".into(), text_column(&|e| e.class.clone())),
                ("name".into(), text_column(&|e| e.name.clone())),
                (
                    "storey".into(),
                    text_column(&|e| {
                        if e.storey == NO_STOREY { String::new() } else { storey_name(e.storey) }
                    }),
                ),
                (
                    "property_sets".into(),
                    text_column(&|e| {
                        e.properties.get("property_sets").map(Value::to_string).unwrap_or_default()
                    }),
                ),
            ],
        };
        let parts: Vec<(&FeatureMesh, usize)> = merged.iter().enumerate().map(|(i, m)| (m, i)).collect();
        let glb = write_glb_scene(&parts, &bim_materials(), &shared, &instances, &table, GENERATOR);
        let path = content_dir.join(format!("m{index}_s{n}.glb"));
        std::fs::write(&path, glb).map_err(|e| IngestError::store(&path, e))?;
        for c in corners(bounds) {
            let (lo, la, h) = gltf_to_lonlat(c);
            geo_bounds = [
                geo_bounds[0].min(lo),
                geo_bounds[1].min(la),
                geo_bounds[2].min(h),
                geo_bounds[3].max(lo),
                geo_bounds[4].max(la),
                geo_bounds[5].max(h),
            ];
        }
        children.push(Tile {
            bounding_volume: BoundingVolume {
                region: None,
                oriented_box: Some(enu_box(bounds)),
                sphere: None,
            },
            geometric_error: 0.0,
            refine: Some(Refine::Add),
            content: Some(Content { uri, bounding_volume: None }),
            transform: None,
            children: Vec::new(),
        });
    }
    for element in &placed.elements {
        let centre = element_bounds.get(&element.fid).map(|b| {
            let c = [(b[0][0] + b[1][0]) / 2.0, (b[0][1] + b[1][1]) / 2.0, (b[0][2] + b[1][2]) / 2.0];
            gltf_to_lonlat(c)
        });
        let (lo, la, _) = centre.unwrap_or((lon, lat, height));
        let mut properties = element.properties.clone();
        if element.storey != NO_STOREY {
            properties.insert("storey".into(), Value::from(storey_name(element.storey)));
        }
        if let Some(b) = element.bounds_model {
            let mm = |v: f64| (v * 1000.0).round() / 1000.0;
            properties.insert(
                "bounds_model".into(),
                json!([mm(b[0][0]), mm(b[0][1]), mm(b[0][2]), mm(b[1][0]), mm(b[1][1]), mm(b[1][2])]),
            );
        }
        properties.insert("step_id".into(), Value::from(element.step_id));
        elements_out.push((
            element.fid,
            json!({"type": "Feature", "id": element.fid, "geometry": {"type": "Point", "coordinates": [lo, la]}, "properties": properties}),
        ));
    }
    let model_bounds = model_bounds.unwrap_or([[0.0; 3], [0.0; 3]]);
    let size = norm([
        model_bounds[1][0] - model_bounds[0][0],
        model_bounds[1][1] - model_bounds[0][1],
        model_bounds[1][2] - model_bounds[0][2],
    ]);
    let contents = children.len();
    Ok(WrittenModel {
        tile: Tile {
            bounding_volume: BoundingVolume {
                region: None,
                oriented_box: Some(enu_box(model_bounds)),
                sphere: None,
            },
            // Showing nothing of the model misses at most the whole model.
            geometric_error: size,
            refine: Some(Refine::Add),
            content: None,
            transform: Some(to_ecef),
            children,
        },
        storeys,
        bounds: geo_bounds,
        contents,
    })
}

/// Reads every IFC model and writes one BIM layer of them.
fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    let mut unsupported = BTreeMap::new();
    let mut models = Vec::new();
    for (i, path) in options.files.iter().enumerate() {
        let started = std::time::Instant::now();
        let placed = read_model(path, i as u64, options, &mut run.quality, &mut unsupported)?;
        tracing::info!(
            stage = "ifc",
            file = %path.display(),
            instances = placed.model.len(),
            elements = placed.elements.len(),
            ms = started.elapsed().as_millis() as u64,
            "model read"
        );
        run.source(path, format!("IFC ({})", placed.model.schema()))?;
        models.push(placed);
    }
    for (what, n) in unsupported {
        run.quality.dropped.insert(format!("representation item left out: {what}"), n);
    }
    let with_geometry: u64 =
        models.iter().flat_map(|m| &m.elements).filter(|e| !e.parts.is_empty()).count() as u64;
    if with_geometry == 0 {
        let names: Vec<String> = options.files.iter().map(|f| f.display().to_string()).collect();
        return Err(IngestError::NoFeatures {
            layer: options.layer.clone(),
            why: format!(
                "no element of {} has geometry that could be built: {}",
                names.join(", "),
                run.quality.summary_line()
            ),
        });
    }
    let dir = run.stage()?;
    let content_dir = dir.join(TILESET_DIR).join("content");
    std::fs::create_dir_all(&content_dir).map_err(|e| IngestError::store(&content_dir, e))?;
    let mut features = Vec::new();
    let mut written = Vec::new();
    for (index, placed) in models.iter().enumerate() {
        written.push(write_model(placed, index, &content_dir, &mut features)?);
    }
    let bounds = written.iter().fold([f64::MAX, f64::MAX, f64::MAX, f64::MIN, f64::MIN, f64::MIN], |a, w| {
        [
            a[0].min(w.bounds[0]),
            a[1].min(w.bounds[1]),
            a[2].min(w.bounds[2]),
            a[3].max(w.bounds[3]),
            a[4].max(w.bounds[4]),
            a[5].max(w.bounds[5]),
        ]
    });
    let contents: usize = written.iter().map(|w| w.contents).sum();
    let mut storeys = Vec::new();
    let mut tiles = Vec::new();
    for w in written {
        storeys.extend(w.storeys);
        tiles.push(w.tile);
    }
    let geometric_error = tiles.iter().map(|t| t.geometric_error).fold(0.0, f64::max);
    let root = if tiles.len() == 1 {
        tiles.remove(0)
    } else {
        Tile {
            bounding_volume: BoundingVolume::region(region_from_degrees(
                [bounds[0], bounds[1], bounds[3], bounds[4]],
                bounds[2],
                bounds[5],
            )),
            geometric_error,
            refine: Some(Refine::Add),
            content: None,
            transform: None,
            children: tiles,
        }
    };
    let tileset = Tileset {
        asset: Asset { version: "1.1".into(), tileset_version: None, generator: Some(GENERATOR.into()) },
        geometric_error,
        root,
    };
    write_json(&dir.join(TILESET_DIR).join("tileset.json"), &tileset)?;
    crate::feature_store::write_values(
        &dir.join(FEATURES_FILE),
        features.into_iter().map(|(_, f)| f).collect(),
    )?;

    let mut elements_by_class: BTreeMap<String, u64> = BTreeMap::new();
    for e in models.iter().flat_map(|m| &m.elements) {
        *elements_by_class.entry(e.class.clone()).or_default() += 1;
    }
    let element_count: u64 = elements_by_class.values().sum();
    run.quality.features_written = element_count;
    let string_field = |name: &str| AttributeField { name: name.into(), kind: "string".into() };
    let building_count = elements_by_class.get("IfcBuilding").copied().unwrap_or(0);
    let summary = BimSummary {
        models: models
            .iter()
            .map(|m| BimModel {
                schema: m.model.schema().to_owned(),
                georeference: m.georef.source.clone(),
                anchor: m.georef.anchor,
                model_to_enu: m.georef.to_enu.to_column_major(),
            })
            .collect(),
        elements_by_class,
        elements_with_geometry: with_geometry,
        storeys,
    };
    Ok(Built {
        feature_count: element_count,
        geometry_types: vec!["Point".into()],
        attributes: [GLOBAL_ID, "ifc_class", "name", "description", "object_type", "storey"]
            .into_iter()
            .map(string_field)
            .chain([AttributeField { name: "property_sets".into(), kind: "object".into() }])
            .collect(),
        building_count,
        ..Built::tiles_3d(
            LayerContent::Bim(summary),
            bounds,
            models.iter().map(|m| m.georef.source.clone()).collect::<Vec<_>>().join("; "),
            contents,
        )
    })
}

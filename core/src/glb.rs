//! GLB (binary glTF 2.0) content for 3D Tiles 1.1 with per-feature metadata.
//!
//! One triangle primitive carries `POSITION`, `NORMAL` and `_FEATURE_ID_0`; the
//! `EXT_mesh_features` extension ties those ids to an `EXT_structural_metadata`
//! property table, so a client that picks a triangle can read its feature's
//! attributes (and our `fid`, which the feature API serves).

use serde_json::{Value, json};

pub(crate) const GLB_MAGIC: u32 = 0x4654_6C67;
const CHUNK_JSON: u32 = 0x4E4F_534A;
const CHUNK_BIN: u32 = 0x004E_4942;
const FLOAT: u32 = 5126;
const UNSIGNED_BYTE: u32 = 5121;
const UNSIGNED_INT: u32 = 5125;
pub(crate) const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

/// Triangles in a y-up local frame (glTF convention), indexed.
#[derive(Debug, Clone, Default)]
pub struct FeatureMesh {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    /// Index into the property table's rows, per vertex.
    pub feature_ids: Vec<u32>,
    pub indices: Vec<u32>,
    /// `COLOR_0` per vertex (linear RGBA), or empty for the material's colour alone.
    pub colors: Vec<[u8; 4]>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertyColumn {
    UInt64(Vec<u64>),
    Float64(Vec<f64>),
    String(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTable {
    pub class: String,
    pub count: usize,
    /// Column name (a valid identifier, see [`identifier`]) and values.
    pub columns: Vec<(String, PropertyColumn)>,
}

/// Makes an attribute name a metadata identifier (`^[a-zA-Z_][a-zA-Z0-9_]*$`).
pub fn identifier(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

struct BinBuilder {
    bin: Vec<u8>,
    views: Vec<Value>,
}

impl BinBuilder {
    /// Appends bytes as a new bufferView, 8-byte aligned (metadata needs it for
    /// 64-bit values).
    fn view(&mut self, bytes: &[u8], target: Option<u32>) -> usize {
        while !self.bin.len().is_multiple_of(8) {
            self.bin.push(0);
        }
        let mut view = json!({"buffer": 0, "byteOffset": self.bin.len(), "byteLength": bytes.len()});
        if let Some(t) = target {
            view["target"] = json!(t);
        }
        self.bin.extend_from_slice(bytes);
        self.views.push(view);
        self.views.len() - 1
    }
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

fn vec3_min_max(values: &[[f32; 3]]) -> (Vec<f32>, Vec<f32>) {
    let mut min = [f32::INFINITY; 3];
    let mut max = [f32::NEG_INFINITY; 3];
    for v in values {
        for i in 0..3 {
            min[i] = min[i].min(v[i]);
            max[i] = max[i].max(v[i]);
        }
    }
    (min.to_vec(), max.to_vec())
}

/// A glTF material: named, so clients can tell parts apart (e.g. a BIM model's
/// shell, which a viewer may draw translucent, from its interior).
#[derive(Debug, Clone, PartialEq)]
pub struct GlbMaterial {
    pub name: String,
    /// Linear RGBA.
    pub base_color: [f32; 4],
}

impl GlbMaterial {
    /// The light stone of extruded city buildings.
    pub fn building() -> Self {
        Self { name: "building".into(), base_color: [0.85, 0.83, 0.8, 1.0] }
    }
}

/// Geometry drawn several times (a repeated IFC representation map, say): written
/// once, placed by each [`MeshInstance`]'s node.
#[derive(Debug, Clone, Default)]
pub struct SharedMesh {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
    /// Index into the materials.
    pub material: usize,
}

/// One placement of a [`SharedMesh`], as one feature.
#[derive(Debug, Clone)]
pub struct MeshInstance {
    /// Index into the shared meshes.
    pub mesh: usize,
    /// Column-major 4×4 node matrix (rotation and uniform scale plus translation)
    /// into the content frame.
    pub matrix: [f64; 16],
    /// Row of the property table.
    pub feature_id: u32,
}

/// Serialises a mesh and its property table to GLB bytes.
pub fn write_glb(mesh: &FeatureMesh, table: &PropertyTable, generator: &str) -> Vec<u8> {
    write_glb_scene(&[(mesh, 0)], &[GlbMaterial::building()], &[], &[], table, generator)
}

fn accessor_vec3(view: usize, values: &[[f32; 3]], bounds: bool) -> Value {
    let mut a = json!({"bufferView": view, "componentType": FLOAT, "count": values.len(), "type": "VEC3"});
    if bounds {
        let (min, max) = vec3_min_max(values);
        a["min"] = json!(min);
        a["max"] = json!(max);
    }
    a
}

/// Positions (with bounds), normals and indices as three views and accessors;
/// returns the accessor indices.
fn write_geometry(
    b: &mut BinBuilder,
    accessors: &mut Vec<Value>,
    positions: &[[f32; 3]],
    normals: &[[f32; 3]],
    indices: &[u32],
) -> (usize, usize, usize) {
    let pos_view = b.view(&f32_bytes(positions.iter().flatten().copied()), Some(ARRAY_BUFFER));
    let nrm_view = b.view(&f32_bytes(normals.iter().flatten().copied()), Some(ARRAY_BUFFER));
    let idx_bytes: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    let idx_view = b.view(&idx_bytes, Some(ELEMENT_ARRAY_BUFFER));
    accessors.push(accessor_vec3(pos_view, positions, true));
    accessors.push(accessor_vec3(nrm_view, normals, false));
    accessors.push(
        json!({"bufferView": idx_view, "componentType": UNSIGNED_INT, "count": indices.len(), "type": "SCALAR"}),
    );
    let n = accessors.len();
    (n - 3, n - 2, n - 1)
}

/// A `COLOR_0` accessor (normalised unsigned bytes), when there is one colour per vertex.
fn write_colors(
    b: &mut BinBuilder,
    accessors: &mut Vec<Value>,
    colors: &[[u8; 4]],
    vertices: usize,
) -> Option<usize> {
    if colors.is_empty() || colors.len() != vertices {
        return None;
    }
    let view = b.view(&colors.concat(), Some(ARRAY_BUFFER));
    accessors.push(json!({
        "bufferView": view, "componentType": UNSIGNED_BYTE, "normalized": true,
        "count": colors.len(), "type": "VEC4"
    }));
    Some(accessors.len() - 1)
}

/// A primitive without feature metadata (a terrain tile's surface or its skirts).
#[derive(Debug, Clone, Default)]
pub struct PlainPrimitive {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    /// `COLOR_0` per vertex, or empty.
    pub colors: Vec<[u8; 4]>,
    pub indices: Vec<u32>,
    /// Index into the materials.
    pub material: usize,
}

/// Serialises primitives with no metadata into one mesh on one node.
pub fn write_plain_glb(primitives: &[PlainPrimitive], materials: &[GlbMaterial], generator: &str) -> Vec<u8> {
    let mut b = BinBuilder { bin: Vec::new(), views: Vec::new() };
    let mut accessors: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for p in primitives.iter().filter(|p| !p.positions.is_empty() && !p.indices.is_empty()) {
        let (pos, nrm, idx) = write_geometry(&mut b, &mut accessors, &p.positions, &p.normals, &p.indices);
        let mut attributes = json!({"POSITION": pos, "NORMAL": nrm});
        if let Some(color) = write_colors(&mut b, &mut accessors, &p.colors, p.positions.len()) {
            attributes["COLOR_0"] = json!(color);
        }
        out.push(json!({"attributes": attributes, "indices": idx, "material": p.material, "mode": 4}));
    }
    while !b.bin.len().is_multiple_of(4) {
        b.bin.push(0);
    }
    let mut gltf = json!({
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "materials": materials.iter().map(|m| json!({
            "name": m.name,
            "pbrMetallicRoughness": {"baseColorFactor": m.base_color, "metallicFactor": 0.0, "roughnessFactor": 0.95}
        })).collect::<Vec<_>>(),
        "meshes": [{"primitives": out}],
        "accessors": accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": b.bin.len()}],
    });
    if out_is_empty(&gltf) {
        for key in ["meshes", "accessors", "nodes", "bufferViews", "buffers"] {
            if let Some(o) = gltf.as_object_mut() {
                o.remove(key);
            }
        }
        gltf["scenes"] = json!([{}]);
        return assemble_json_only(&gltf);
    }
    assemble(&gltf, &b.bin)
}

fn out_is_empty(gltf: &Value) -> bool {
    gltf["meshes"][0]["primitives"].as_array().is_none_or(Vec::is_empty)
}

/// A GLB with only a JSON chunk (no buffers).
fn assemble_json_only(gltf: &Value) -> Vec<u8> {
    let mut json_bytes = gltf.to_string().into_bytes();
    while !json_bytes.len().is_multiple_of(4) {
        json_bytes.push(b' ');
    }
    let total = 12 + 8 + json_bytes.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&GLB_MAGIC.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_JSON.to_le_bytes());
    out.extend_from_slice(&json_bytes);
    out
}

/// Serialises merged meshes (drawn as they are, one primitive each with its
/// material) plus instanced shared meshes, all with feature ids into one property
/// table. Core glTF instancing: each instance is a
/// node with its own matrix whose mesh reuses the shared positions, normals and
/// indices and adds only a constant `_FEATURE_ID_0`, so every client draws it and
/// picking still finds the right feature.
pub fn write_glb_scene(
    merged: &[(&FeatureMesh, usize)],
    materials: &[GlbMaterial],
    shared: &[SharedMesh],
    instances: &[MeshInstance],
    table: &PropertyTable,
    generator: &str,
) -> Vec<u8> {
    let mut b = BinBuilder { bin: Vec::new(), views: Vec::new() };
    let mut accessors: Vec<Value> = Vec::new();
    let mut meshes: Vec<Value> = Vec::new();
    let mut nodes: Vec<Value> = Vec::new();
    let feature_ids_extension = || {
        json!({"EXT_mesh_features": {"featureIds": [
            {"featureCount": table.count, "attribute": 0, "propertyTable": 0}
        ]}})
    };
    let add_accessor = |accessors: &mut Vec<Value>, a: Value| {
        accessors.push(a);
        accessors.len() - 1
    };
    let mut merged_primitives = Vec::new();
    for &(mesh, material) in merged {
        if mesh.positions.is_empty() || mesh.indices.is_empty() {
            continue;
        }
        let (pos, nrm, idx) =
            write_geometry(&mut b, &mut accessors, &mesh.positions, &mesh.normals, &mesh.indices);
        let fid_view = b.view(&f32_bytes(mesh.feature_ids.iter().map(|&i| i as f32)), Some(ARRAY_BUFFER));
        let fid = add_accessor(
            &mut accessors,
            json!({"bufferView": fid_view, "componentType": FLOAT, "count": mesh.feature_ids.len(), "type": "SCALAR"}),
        );
        let mut attributes = json!({"POSITION": pos, "NORMAL": nrm, "_FEATURE_ID_0": fid});
        if let Some(color) = write_colors(&mut b, &mut accessors, &mesh.colors, mesh.positions.len()) {
            attributes["COLOR_0"] = json!(color);
        }
        merged_primitives.push(json!({
            "attributes": attributes,
            "indices": idx, "material": material, "mode": 4,
            "extensions": feature_ids_extension()
        }));
    }
    if !merged_primitives.is_empty() {
        meshes.push(json!({"primitives": merged_primitives}));
        nodes.push(json!({"mesh": meshes.len() - 1}));
    }
    // Shared geometry once; per instance only a constant feature-id column.
    let mut shared_accessors = Vec::with_capacity(shared.len());
    for s in shared {
        if s.positions.is_empty() || s.indices.is_empty() {
            shared_accessors.push(None);
            continue;
        }
        let (pos, nrm, idx) = write_geometry(&mut b, &mut accessors, &s.positions, &s.normals, &s.indices);
        shared_accessors.push(Some((pos, nrm, idx, s.positions.len(), s.material)));
    }
    for instance in instances {
        let Some(Some((pos, nrm, idx, count, material))) = shared_accessors.get(instance.mesh).copied()
        else {
            continue;
        };
        let fid_view =
            b.view(&f32_bytes(std::iter::repeat_n(instance.feature_id as f32, count)), Some(ARRAY_BUFFER));
        let fid = add_accessor(
            &mut accessors,
            json!({"bufferView": fid_view, "componentType": FLOAT, "count": count, "type": "SCALAR"}),
        );
        meshes.push(json!({"primitives": [{
            "attributes": {"POSITION": pos, "NORMAL": nrm, "_FEATURE_ID_0": fid},
            "indices": idx, "material": material, "mode": 4,
            "extensions": feature_ids_extension()
        }]}));
        let matrix: Vec<f32> = instance.matrix.iter().map(|&v| v as f32).collect();
        nodes.push(json!({"mesh": meshes.len() - 1, "matrix": matrix}));
    }

    let mut class_props = serde_json::Map::new();
    let mut table_props = serde_json::Map::new();
    for (name, column) in &table.columns {
        match column {
            PropertyColumn::UInt64(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                let view = b.view(&bytes, None);
                class_props.insert(name.clone(), json!({"type": "SCALAR", "componentType": "UINT64"}));
                table_props.insert(name.clone(), json!({"values": view}));
            }
            PropertyColumn::Float64(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                let view = b.view(&bytes, None);
                class_props.insert(name.clone(), json!({"type": "SCALAR", "componentType": "FLOAT64"}));
                table_props.insert(name.clone(), json!({"values": view}));
            }
            PropertyColumn::String(v) => {
                let mut text = Vec::new();
                let mut offsets = Vec::with_capacity((v.len() + 1) * 4);
                for s in v {
                    offsets.extend_from_slice(&(text.len() as u32).to_le_bytes());
                    text.extend_from_slice(s.as_bytes());
                }
                offsets.extend_from_slice(&(text.len() as u32).to_le_bytes());
                class_props.insert(name.clone(), json!({"type": "STRING"}));
                if text.is_empty() {
                    // glTF forbids empty bufferViews and EXT_structural_metadata wants the
                    // values exactly as long as the last offset, so a column of empty
                    // strings is left out of the table: the property is optional in the
                    // class, and absent means no value.
                    continue;
                }
                let values = b.view(&text, None);
                let offs = b.view(&offsets, None);
                table_props.insert(
                    name.clone(),
                    json!({"values": values, "stringOffsets": offs, "stringOffsetType": "UINT32"}),
                );
            }
        }
    }
    while !b.bin.len().is_multiple_of(4) {
        b.bin.push(0);
    }

    let node_ids: Vec<usize> = (0..nodes.len()).collect();
    let mut gltf = json!({
        "asset": {"version": "2.0", "generator": generator},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "scene": 0,
        "scenes": [{"nodes": node_ids}],
        "nodes": nodes,
        "materials": materials.iter().map(|m| json!({
            "name": m.name,
            "pbrMetallicRoughness": {"baseColorFactor": m.base_color, "metallicFactor": 0.0, "roughnessFactor": 0.9}
        })).collect::<Vec<_>>(),
        "meshes": meshes,
        "accessors": accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": b.bin.len()}],
        "extensions": {"EXT_structural_metadata": {
            "schema": {"id": "cim", "classes": {table.class.clone(): {"properties": class_props}}},
            "propertyTables": [{"class": table.class, "count": table.count, "properties": table_props}]
        }}
    });
    if gltf["meshes"].as_array().is_some_and(Vec::is_empty) {
        // glTF wants at least one entry where an array is present.
        for key in ["meshes", "accessors", "nodes"] {
            if let Some(o) = gltf.as_object_mut() {
                o.remove(key);
            }
        }
        gltf["scenes"] = json!([{}]);
    }
    assemble(&gltf, &b.bin)
}

/// A GLB container: the header, the JSON chunk (space-padded) and the BIN chunk
/// (already 4-byte aligned).
pub(crate) fn assemble(gltf: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json_bytes = gltf.to_string().into_bytes();
    while !json_bytes.len().is_multiple_of(4) {
        json_bytes.push(b' ');
    }
    let total = 12 + 8 + json_bytes.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&GLB_MAGIC.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_JSON.to_le_bytes());
    out.extend_from_slice(&json_bytes);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
    out.extend_from_slice(bin);
    out
}

/// The JSON chunk of a GLB, for inspection.
pub fn json_chunk(glb: &[u8]) -> Option<Value> {
    let len = u32::from_le_bytes(glb.get(12..16)?.try_into().ok()?) as usize;
    serde_json::from_slice(glb.get(20..20 + len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glb_layout_is_consistent() {
        let mesh = FeatureMesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
            normals: vec![[0.0, 1.0, 0.0]; 3],
            feature_ids: vec![0; 3],
            indices: vec![0, 1, 2],
            colors: Vec::new(),
        };
        let table = PropertyTable {
            class: "building".into(),
            count: 1,
            columns: vec![
                ("fid".into(), PropertyColumn::UInt64(vec![42])),
                ("name".into(), PropertyColumn::String(vec!["Kiasma".into()])),
            ],
        };
        let glb = write_glb(&mesh, &table, "test");
        assert_eq!(&glb[0..4], b"glTF");
        assert_eq!(u32::from_le_bytes(glb[8..12].try_into().expect("4 bytes")) as usize, glb.len());
        let json = json_chunk(&glb).expect("json chunk");
        assert_eq!(json["accessors"][0]["max"], json!([1.0, 0.0, 0.0]));
        let props = &json["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["properties"];
        assert!(props["name"]["stringOffsets"].is_u64());
        for view in json["bufferViews"].as_array().expect("views") {
            assert_eq!(view["byteOffset"].as_u64().expect("offset") % 8, 0);
        }
    }

    #[test]
    fn string_values_are_as_long_as_their_last_offset_and_all_empty_columns_are_left_out() {
        let mesh = FeatureMesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
            normals: vec![[0.0, 1.0, 0.0]; 3],
            feature_ids: vec![0, 1, 1],
            indices: vec![0, 1, 2],
            colors: Vec::new(),
        };
        let table = PropertyTable {
            class: "building".into(),
            count: 2,
            columns: vec![
                ("note".into(), PropertyColumn::String(vec![String::new(), String::new()])),
                ("name".into(), PropertyColumn::String(vec!["Kiasma".into(), "Ateneum".into()])),
            ],
        };
        let glb = write_glb(&mesh, &table, "test");
        let json = json_chunk(&glb).expect("json chunk");
        let meta = &json["extensions"]["EXT_structural_metadata"];
        assert_eq!(meta["schema"]["classes"]["building"]["properties"]["note"]["type"], "STRING");
        let props = &meta["propertyTables"][0]["properties"];
        assert!(props.get("note").is_none(), "{props}");
        let u32_at = |at: usize| u32::from_le_bytes(glb[at..at + 4].try_into().expect("4 bytes")) as usize;
        let bin = 20 + u32_at(12) + 8;
        let view = |i: &Value| &json["bufferViews"][i.as_u64().expect("view") as usize];
        let offsets = view(&props["name"]["stringOffsets"]);
        let last = bin + offsets["byteOffset"].as_u64().expect("offset") as usize + 2 * 4;
        assert_eq!(u32_at(last), "KiasmaAteneum".len());
        assert_eq!(view(&props["name"]["values"])["byteLength"].as_u64(), Some(13));
    }

    #[test]
    fn instances_share_geometry_and_carry_their_own_feature_id() {
        let shared = SharedMesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            normals: vec![[0.0, 0.0, 1.0]; 3],
            indices: vec![0, 1, 2],
            material: 0,
        };
        let mut matrix = [0.0; 16];
        for i in 0..4 {
            matrix[i * 5] = 1.0;
        }
        matrix[12] = 5.0;
        let instances = vec![
            MeshInstance { mesh: 0, matrix, feature_id: 0 },
            MeshInstance { mesh: 0, matrix, feature_id: 1 },
        ];
        let table = PropertyTable {
            class: "element".into(),
            count: 2,
            columns: vec![("fid".into(), PropertyColumn::UInt64(vec![7, 8]))],
        };
        let glb = write_glb_scene(
            &[(&FeatureMesh::default(), 0)],
            &[GlbMaterial::building()],
            &[shared],
            &instances,
            &table,
            "test",
        );
        let json = json_chunk(&glb).expect("json");
        let meshes = json["meshes"].as_array().expect("meshes");
        assert_eq!(meshes.len(), 2, "no merged mesh when it is empty");
        let a = &meshes[0]["primitives"][0]["attributes"];
        let b = &meshes[1]["primitives"][0]["attributes"];
        assert_eq!(a["POSITION"], b["POSITION"], "positions written once");
        assert_ne!(a["_FEATURE_ID_0"], b["_FEATURE_ID_0"]);
        assert_eq!(json["nodes"][1]["matrix"][12], json!(5.0));
        assert_eq!(json["scenes"][0]["nodes"], json!([0, 1]));
    }

    #[test]
    fn identifiers_are_valid() {
        assert_eq!(identifier("building:levels"), "building_levels");
        assert_eq!(identifier("3d"), "_3d");
        assert_eq!(identifier(""), "_");
    }
}

//! GLB content to plain vertex arrays, on the fetch thread. Reads any glTF 2.0 binary
//! with triangle primitives (node hierarchy and matrices honoured), plus the
//! `EXT_mesh_features` ids and the `fid` column of `EXT_structural_metadata` when
//! present.

use glam::{DMat4, DQuat, DVec3};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Primitive {
    /// glTF content frame (node transforms applied), still f64-free: f32 local values.
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
    /// Row of the property table per vertex.
    pub feature_ids: Vec<u32>,
    /// The node matrix that places this primitive in the content frame.
    pub node: DMat4,
    /// The glTF material's name, if it has one (BIM contents: `shell`, `glazing`,
    /// `interior`).
    pub material: Option<String>,
    /// `COLOR_0` as linear RGBA, when the primitive has it (terrain tint, city
    /// model surfaces coloured by semantics).
    pub colors: Vec<[f32; 4]>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Content {
    pub primitives: Vec<Primitive>,
    /// Our `fid` per property-table row, when the content carries one.
    pub fids: Vec<u64>,
}

fn node_matrix(node: &gltf::Node<'_>) -> DMat4 {
    match node.transform() {
        gltf::scene::Transform::Matrix { matrix } => {
            DMat4::from_cols_array_2d(&matrix.map(|c| c.map(f64::from)))
        }
        gltf::scene::Transform::Decomposed { translation, rotation, scale } => {
            DMat4::from_scale_rotation_translation(
                DVec3::from(scale.map(f64::from)),
                DQuat::from_array(rotation.map(f64::from)),
                DVec3::from(translation.map(f64::from)),
            )
        }
    }
}

pub fn decode(bytes: Vec<u8>) -> Result<Content, String> {
    let glb = gltf::Gltf::from_slice(&bytes).map_err(|e| format!("not a valid GLB: {e}"))?;
    let blob = glb.blob.as_deref();
    let buffer = |b: gltf::Buffer<'_>| match b.source() {
        gltf::buffer::Source::Bin => blob,
        gltf::buffer::Source::Uri(_) => None,
    };
    // Material names without gltf's `names` feature: straight from the JSON chunk.
    let material_names: Vec<Option<String>> = cim_core::glb::json_chunk(&bytes)
        .and_then(|j| {
            j["materials"]
                .as_array()
                .map(|m| m.iter().map(|m| m["name"].as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default();
    let mut content = Content::default();
    let scene = glb.default_scene().or_else(|| glb.scenes().next()).ok_or("GLB has no scene")?;
    let mut stack: Vec<(gltf::Node<'_>, DMat4)> = scene.nodes().map(|n| (n, DMat4::IDENTITY)).collect();
    while let Some((node, parent)) = stack.pop() {
        let world = parent * node_matrix(&node);
        if let Some(mesh) = node.mesh() {
            for prim in mesh.primitives().filter(|p| p.mode() == gltf::mesh::Mode::Triangles) {
                let reader = prim.reader(buffer);
                let Some(positions) = reader.read_positions() else { continue };
                let positions: Vec<[f32; 3]> = positions.collect();
                let indices: Vec<u32> = match reader.read_indices() {
                    Some(i) => i.into_u32().collect(),
                    None => (0..positions.len() as u32).collect(),
                };
                if indices.iter().any(|&i| i as usize >= positions.len()) {
                    return Err("an index points past the vertices".into());
                }
                let normals: Vec<[f32; 3]> = reader.read_normals().map(Iterator::collect).unwrap_or_default();
                let feature_ids = prim
                    .attributes()
                    .find(|(s, _)| matches!(s, gltf::Semantic::Extras(n) if n == "FEATURE_ID_0"))
                    .and_then(|(_, accessor)| read_scalar_u32(&accessor, blob))
                    .unwrap_or_default();
                let material = prim.material().index().and_then(|i| material_names.get(i).cloned().flatten());
                let colors: Vec<[f32; 4]> = reader
                    .read_colors(0)
                    .map(|c| c.into_rgba_f32().collect())
                    .filter(|c: &Vec<[f32; 4]>| c.len() == positions.len())
                    .unwrap_or_default();
                content.primitives.push(Primitive {
                    positions,
                    normals,
                    indices,
                    feature_ids,
                    node: world,
                    material,
                    colors,
                });
            }
        }
        stack.extend(node.children().map(|c| (c, world)));
    }
    content.fids = fid_column(&glb, blob).unwrap_or_default();
    Ok(content)
}

/// Reads a SCALAR accessor of any component type as u32 (feature ids).
fn read_scalar_u32(accessor: &gltf::Accessor<'_>, blob: Option<&[u8]>) -> Option<Vec<u32>> {
    let view = accessor.view()?;
    let data = blob?;
    let stride = view.stride().unwrap_or(accessor.size());
    let start = view.offset() + accessor.offset();
    let mut out = Vec::with_capacity(accessor.count());
    for i in 0..accessor.count() {
        let at = start + i * stride;
        let v = match accessor.data_type() {
            gltf::accessor::DataType::F32 => {
                f32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as u32
            }
            gltf::accessor::DataType::U8 => u32::from(*data.get(at)?),
            gltf::accessor::DataType::U16 => {
                u32::from(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
            }
            gltf::accessor::DataType::U32 => u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?),
            _ => return None,
        };
        out.push(v);
    }
    Some(out)
}

/// The UINT64 `fid` column of the first property table, if any.
fn fid_column(glb: &gltf::Gltf, blob: Option<&[u8]>) -> Option<Vec<u64>> {
    let root = serde_json::to_value(glb.document.as_json()).ok()?;
    let meta = root.get("extensions")?.get("EXT_structural_metadata")?;
    let table = meta.get("propertyTables")?.get(0)?;
    let count = table.get("count")?.as_u64()? as usize;
    let view_index = table.get("properties")?.get("fid")?.get("values")?.as_u64()? as usize;
    let view = glb.views().nth(view_index)?;
    let data = blob?.get(view.offset()..view.offset() + view.length())?;
    (data.len() >= count * 8).then(|| {
        (0..count)
            .map(|i| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap_or_default()))
            .collect()
    })
}

//! Point cloud tile content: GLB with one `POINTS` primitive (3D Tiles 1.1).
//!
//! Positions are 16-bit integers relative to the tile's centre (`KHR_mesh_quantization`;
//! the node's translation and scale undo it), colours 8-bit normalised `COLOR_0`,
//! intensity and LAS classification the custom attributes `_INTENSITY` and
//! `_CLASSIFICATION`, declared as `EXT_structural_metadata` property attributes so
//! styling clients (CesiumJS) can colour by them. Every vertex attribute keeps glTF's
//! 4-byte element alignment.
//!
//! Axes are glTF's: y up. A tile's east, north, up `(e, n, u)` is `(e, u, -n)` here.

use serde_json::{Value, json};

use crate::glb::{ARRAY_BUFFER, GLB_MAGIC, assemble};

const UNSIGNED_BYTE: u32 = 5121;
const SHORT: u32 = 5122;
const UNSIGNED_SHORT: u32 = 5123;
const POINTS_MODE: u32 = 0;

/// Largest quantised magnitude; -32768 is left out so negating an axis stays exact.
pub const QUANT_MAX: f64 = 32767.0;

/// One tile's points in glTF axes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointTile {
    /// Where quantised zero lies, in the content frame (glTF axes).
    pub centre: [f64; 3],
    /// Metres per quantisation step.
    pub step: f64,
    pub positions: Vec<[i16; 3]>,
    /// 8-bit RGB, when the source had colour.
    pub colors: Option<Vec<[u8; 3]>>,
    pub intensity: Vec<u16>,
    pub classification: Vec<u8>,
}

impl PointTile {
    /// An empty tile whose cube of half-size `half_extent` around `centre` fits the
    /// quantised range.
    pub fn new(centre: [f64; 3], half_extent: f64, with_colors: bool) -> Self {
        Self {
            centre,
            step: (half_extent / QUANT_MAX).max(f64::MIN_POSITIVE),
            colors: with_colors.then(Vec::new),
            ..Default::default()
        }
    }

    /// Adds a point given in glTF axes; `None` when it lies outside the tile's cube.
    pub fn push(&mut self, p: [f64; 3], rgb: [u8; 3], intensity: u16, classification: u8) -> Option<()> {
        let mut q = [0i16; 3];
        for k in 0..3 {
            let v = ((p[k] - self.centre[k]) / self.step).round();
            if !(-QUANT_MAX..=QUANT_MAX).contains(&v) {
                return None;
            }
            q[k] = v as i16;
        }
        self.positions.push(q);
        if let Some(c) = &mut self.colors {
            c.push(rgb);
        }
        self.intensity.push(intensity);
        self.classification.push(classification);
        Some(())
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// A point's position back in the content frame.
    pub fn position(&self, i: usize) -> [f64; 3] {
        let q = self.positions[i];
        [0, 1, 2].map(|k| self.centre[k] + f64::from(q[k]) * self.step)
    }
}

fn padded(bytes: &mut Vec<u8>, to: usize) {
    while !bytes.len().is_multiple_of(to) {
        bytes.push(0);
    }
}

/// Serialises a point tile to GLB bytes.
pub fn write_points_glb(tile: &PointTile, generator: &str) -> Vec<u8> {
    let mut bin = Vec::with_capacity(tile.len() * 20);
    let mut views = Vec::new();
    let mut view = |bin: &mut Vec<u8>, bytes: Vec<u8>, stride: usize| {
        padded(bin, 4);
        views.push(json!({"buffer": 0, "byteOffset": bin.len(), "byteLength": bytes.len(),
                          "byteStride": stride, "target": ARRAY_BUFFER}));
        bin.extend_from_slice(&bytes);
        views.len() - 1
    };
    let n = tile.len();
    let mut min = [i16::MAX; 3];
    let mut max = [i16::MIN; 3];
    let mut pos = Vec::with_capacity(n * 8);
    for q in &tile.positions {
        for k in 0..3 {
            min[k] = min[k].min(q[k]);
            max[k] = max[k].max(q[k]);
            pos.extend_from_slice(&q[k].to_le_bytes());
        }
        pos.extend_from_slice(&[0, 0]);
    }
    let mut accessors = vec![json!({
        "bufferView": view(&mut bin, pos, 8), "componentType": SHORT, "count": n, "type": "VEC3",
        "min": min, "max": max
    })];
    let mut attributes = serde_json::Map::new();
    attributes.insert("POSITION".into(), json!(0));
    if let Some(colors) = &tile.colors {
        let bytes: Vec<u8> = colors.iter().flat_map(|c| [c[0], c[1], c[2], 0]).collect();
        accessors.push(json!({"bufferView": view(&mut bin, bytes, 4), "componentType": UNSIGNED_BYTE,
                              "normalized": true, "count": n, "type": "VEC3"}));
        attributes.insert("COLOR_0".into(), json!(accessors.len() - 1));
    }
    let bytes: Vec<u8> = tile
        .intensity
        .iter()
        .flat_map(|i| {
            let [a, b] = i.to_le_bytes();
            [a, b, 0, 0]
        })
        .collect();
    accessors.push(json!({"bufferView": view(&mut bin, bytes, 4), "componentType": UNSIGNED_SHORT,
                          "count": n, "type": "SCALAR"}));
    attributes.insert("_INTENSITY".into(), json!(accessors.len() - 1));
    let bytes: Vec<u8> = tile.classification.iter().flat_map(|&c| [c, 0, 0, 0]).collect();
    accessors.push(json!({"bufferView": view(&mut bin, bytes, 4), "componentType": UNSIGNED_BYTE,
                          "count": n, "type": "SCALAR"}));
    attributes.insert("_CLASSIFICATION".into(), json!(accessors.len() - 1));
    padded(&mut bin, 4);

    let gltf = json!({
        "asset": {"version": "2.0", "generator": generator},
        "extensionsUsed": ["KHR_mesh_quantization", "KHR_materials_unlit", "EXT_structural_metadata"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "translation": tile.centre, "scale": [tile.step, tile.step, tile.step]}],
        "materials": [{
            "name": "points",
            "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0},
            "extensions": {"KHR_materials_unlit": {}}
        }],
        "meshes": [{"primitives": [{
            "attributes": attributes, "mode": POINTS_MODE, "material": 0,
            "extensions": {"EXT_structural_metadata": {"propertyAttributes": [0]}}
        }]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": bin.len()}],
        "extensions": {"EXT_structural_metadata": {
            "schema": {"id": "cim_points", "classes": {"point": {"properties": {
                "intensity": {"type": "SCALAR", "componentType": "UINT16"},
                "classification": {"type": "SCALAR", "componentType": "UINT8"}
            }}}},
            "propertyAttributes": [{"class": "point", "properties": {
                "intensity": {"attribute": "_INTENSITY"},
                "classification": {"attribute": "_CLASSIFICATION"}
            }}]
        }}
    });
    assemble(&gltf, &bin)
}

/// Why a point GLB could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointGlbError(pub String);

impl std::fmt::Display for PointGlbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "point GLB: {}", self.0)
    }
}

impl std::error::Error for PointGlbError {}

/// An attribute's element count, its buffer view's bytes and its stride.
type Strided<'a> = (usize, &'a [u8], usize);

/// Reads back what [`write_points_glb`] wrote (the viewer's decoder).
pub fn read_points_glb(glb: &[u8]) -> Result<PointTile, PointGlbError> {
    let err = |what: &str| PointGlbError(what.to_owned());
    let word = |at: usize| -> Result<usize, PointGlbError> {
        let b = glb.get(at..at + 4).ok_or_else(|| err("truncated header"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if word(0)? != GLB_MAGIC as usize {
        return Err(err("not a GLB"));
    }
    let json_len = word(12)?;
    let json: Value =
        serde_json::from_slice(glb.get(20..20 + json_len).ok_or_else(|| err("truncated JSON chunk"))?)
            .map_err(|e| PointGlbError(format!("JSON chunk: {e}")))?;
    let bin_at = 20 + json_len + 8;
    let bin = glb.get(bin_at..bin_at + word(20 + json_len)?).ok_or_else(|| err("truncated BIN chunk"))?;
    let primitive = &json["meshes"][0]["primitives"][0];
    if primitive["mode"].as_u64() != Some(u64::from(POINTS_MODE)) {
        return Err(err("the first primitive is not POINTS"));
    }
    let node = &json["nodes"][0];
    let f = |v: &Value| v.as_f64().ok_or_else(|| err("node translation or scale is not a number"));
    let centre = [f(&node["translation"][0])?, f(&node["translation"][1])?, f(&node["translation"][2])?];
    let step = f(&node["scale"][0])?;
    let attribute = |name: &str, width: usize| -> Result<Option<Strided<'_>>, PointGlbError> {
        let Some(index) = primitive["attributes"][name].as_u64() else { return Ok(None) };
        let accessor = &json["accessors"][index as usize];
        let count = accessor["count"].as_u64().ok_or_else(|| err("accessor without count"))? as usize;
        let view = &json["bufferViews"][accessor["bufferView"].as_u64().unwrap_or(u64::MAX) as usize];
        let offset = view["byteOffset"].as_u64().unwrap_or(0) as usize;
        let stride = view["byteStride"].as_u64().unwrap_or(width as u64) as usize;
        let len = view["byteLength"].as_u64().unwrap_or(0) as usize;
        let bytes = bin
            .get(offset..offset + len)
            .ok_or_else(|| PointGlbError(format!("{name} lies past the BIN chunk")))?;
        if count > 0 && (count - 1) * stride + width > bytes.len() {
            return Err(PointGlbError(format!("{name} holds fewer than {count} elements")));
        }
        Ok(Some((count, bytes, stride)))
    };
    let (count, pos, stride) = attribute("POSITION", 6)?.ok_or_else(|| err("no POSITION"))?;
    let positions = (0..count)
        .map(|i| {
            let e = &pos[i * stride..];
            [0, 1, 2].map(|k| i16::from_le_bytes([e[2 * k], e[2 * k + 1]]))
        })
        .collect();
    let colors = attribute("COLOR_0", 3)?
        .map(|(n, b, s)| (0..n.min(count)).map(|i| [b[i * s], b[i * s + 1], b[i * s + 2]]).collect());
    let intensity = attribute("_INTENSITY", 2)?
        .map(|(n, b, s)| (0..n.min(count)).map(|i| u16::from_le_bytes([b[i * s], b[i * s + 1]])).collect())
        .unwrap_or_else(|| vec![0; count]);
    let classification = attribute("_CLASSIFICATION", 1)?
        .map(|(n, b, s)| (0..n.min(count)).map(|i| b[i * s]).collect())
        .unwrap_or_else(|| vec![0; count]);
    Ok(PointTile { centre, step, positions, colors, intensity, classification })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_within_half_a_step() {
        let mut tile = PointTile::new([10.0, 20.0, -30.0], 5.0, true);
        let points = [[10.0, 20.0, -30.0], [14.999, 15.0001, -25.5], [5.0, 24.0, -34.9]];
        for (i, p) in points.iter().enumerate() {
            tile.push(*p, [i as u8, 2, 3], 1000 + i as u16, 2 + i as u8).expect("inside");
        }
        assert!(tile.push([15.1, 20.0, -30.0], [0; 3], 0, 0).is_none(), "outside the cube");
        let glb = write_points_glb(&tile, "test");
        assert_eq!(glb.len() % 4, 0);
        let back = read_points_glb(&glb).expect("decodes");
        assert_eq!(back, tile);
        for (i, p) in points.iter().enumerate() {
            let q = back.position(i);
            for k in 0..3 {
                assert!((q[k] - p[k]).abs() <= back.step / 2.0 + 1e-12, "{q:?} vs {p:?}");
            }
        }
        assert!(read_points_glb(&glb[..glb.len() - 7]).is_err());
        assert!(read_points_glb(b"glTF").is_err());
    }
}

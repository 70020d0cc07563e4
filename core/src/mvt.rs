//! Mapbox Vector Tile 2.1 encoder.
//!
//! Geometry arrives already in integer tile coordinates (`0..extent`, y down, with a
//! buffer allowed outside). The encoder removes repeated points, fixes ring winding to
//! the spec's rule (exterior rings have positive surveyor's-formula area in tile
//! coordinates), drops degenerate parts and writes the protobuf by hand: the format
//! is small, and this keeps the crate free of build-time code generation.

use std::collections::HashMap;

pub const DEFAULT_EXTENT: u32 = 4096;

/// Attribute value of a feature.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    String(String),
    Double(f64),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ValueKey {
    String(String),
    Double(u64),
    Int(i64),
    Bool(bool),
}

impl From<&PropertyValue> for ValueKey {
    fn from(v: &PropertyValue) -> Self {
        match v {
            PropertyValue::String(s) => ValueKey::String(s.clone()),
            PropertyValue::Double(d) => ValueKey::Double(d.to_bits()),
            PropertyValue::Int(i) => ValueKey::Int(*i),
            PropertyValue::Bool(b) => ValueKey::Bool(*b),
        }
    }
}

pub type TilePoint = [i32; 2];

/// Geometry in tile coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum TileGeometry {
    Points(Vec<TilePoint>),
    /// One or more line strings.
    Lines(Vec<Vec<TilePoint>>),
    /// Polygons, each a list of rings with the exterior first. Rings may be open or
    /// closed and in any winding: the encoder normalises them.
    Polygons(Vec<Vec<Vec<TilePoint>>>),
}

/// Builds one layer of a tile, interning keys and values.
#[derive(Debug)]
pub struct LayerBuilder {
    name: String,
    extent: u32,
    keys: Vec<String>,
    key_index: HashMap<String, u32>,
    values: Vec<PropertyValue>,
    value_index: HashMap<ValueKey, u32>,
    features: Vec<Vec<u8>>,
}

impl LayerBuilder {
    pub fn new(name: &str, extent: u32) -> Self {
        Self {
            name: name.to_owned(),
            extent,
            keys: Vec::new(),
            key_index: HashMap::new(),
            values: Vec::new(),
            value_index: HashMap::new(),
            features: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Adds a feature; returns false (and adds nothing) when nothing of the geometry
    /// survives clean-up at this resolution.
    pub fn add_feature(
        &mut self,
        id: u64,
        geometry: &TileGeometry,
        properties: &[(&str, PropertyValue)],
    ) -> bool {
        let Some((geom_type, commands)) = encode_geometry(geometry) else {
            return false;
        };
        let mut tags = Vec::with_capacity(properties.len() * 2);
        for (key, value) in properties {
            tags.push(self.intern_key(key));
            tags.push(self.intern_value(value));
        }
        let mut feature = Vec::new();
        write_varint_field(&mut feature, 1, id);
        write_packed(&mut feature, 2, &tags);
        write_varint_field(&mut feature, 3, geom_type);
        write_packed(&mut feature, 4, &commands);
        self.features.push(feature);
        true
    }

    fn intern_key(&mut self, key: &str) -> u32 {
        if let Some(&i) = self.key_index.get(key) {
            return i;
        }
        let i = self.keys.len() as u32;
        self.keys.push(key.to_owned());
        self.key_index.insert(key.to_owned(), i);
        i
    }

    fn intern_value(&mut self, value: &PropertyValue) -> u32 {
        let key = ValueKey::from(value);
        if let Some(&i) = self.value_index.get(&key) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(value.clone());
        self.value_index.insert(key, i);
        i
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let mut layer = Vec::new();
        write_varint_field(&mut layer, 15, 2);
        write_bytes_field(&mut layer, 1, self.name.as_bytes());
        for feature in &self.features {
            write_bytes_field(&mut layer, 2, feature);
        }
        for key in &self.keys {
            write_bytes_field(&mut layer, 3, key.as_bytes());
        }
        for value in &self.values {
            let mut v = Vec::new();
            match value {
                PropertyValue::String(s) => write_bytes_field(&mut v, 1, s.as_bytes()),
                PropertyValue::Double(d) => {
                    write_tag(&mut v, 3, 1);
                    v.extend_from_slice(&d.to_le_bytes());
                }
                PropertyValue::Int(i) if *i >= 0 => write_varint_field(&mut v, 5, *i as u64),
                PropertyValue::Int(i) => write_varint_field(&mut v, 6, zigzag64(*i)),
                PropertyValue::Bool(b) => write_varint_field(&mut v, 7, u64::from(*b)),
            }
            write_bytes_field(&mut layer, 4, &v);
        }
        write_varint_field(&mut layer, 5, u64::from(self.extent));
        write_bytes_field(out, 3, &layer);
    }
}

/// Serialises layers into one tile; empty layers are left out.
pub fn encode_tile(layers: &[LayerBuilder]) -> Vec<u8> {
    let mut out = Vec::new();
    for layer in layers.iter().filter(|l| !l.is_empty()) {
        layer.encode(&mut out);
    }
    out
}

const MOVE_TO: u32 = 1;
const LINE_TO: u32 = 2;
const CLOSE_PATH: u32 = 7;

fn command(id: u32, count: u32) -> u32 {
    (id & 0x7) | (count << 3)
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Removes consecutive duplicates and, for rings, the closing repeat of the first point.
fn dedup(points: &[TilePoint], ring: bool) -> Vec<TilePoint> {
    let mut out: Vec<TilePoint> = Vec::with_capacity(points.len());
    for p in points {
        if out.last() != Some(p) {
            out.push(*p);
        }
    }
    if ring {
        while out.len() > 1 && out.first() == out.last() {
            out.pop();
        }
    }
    out
}

/// Twice the surveyor's-formula area in tile coordinates (positive = exterior).
fn ring_area2(ring: &[TilePoint]) -> i64 {
    let mut sum = 0i64;
    for i in 0..ring.len() {
        let [x0, y0] = ring[i];
        let [x1, y1] = ring[(i + 1) % ring.len()];
        sum += i64::from(x0) * i64::from(y1) - i64::from(x1) * i64::from(y0);
    }
    sum
}

struct Cursor {
    x: i32,
    y: i32,
    out: Vec<u32>,
}

impl Cursor {
    fn path(&mut self, points: &[TilePoint], close: bool) {
        let Some((first, rest)) = points.split_first() else {
            return;
        };
        self.out.push(command(MOVE_TO, 1));
        self.delta(*first);
        if !rest.is_empty() {
            self.out.push(command(LINE_TO, rest.len() as u32));
            for p in rest {
                self.delta(*p);
            }
        }
        if close {
            self.out.push(command(CLOSE_PATH, 1));
        }
    }

    fn delta(&mut self, [x, y]: TilePoint) {
        self.out.push(zigzag32(x - self.x));
        self.out.push(zigzag32(y - self.y));
        self.x = x;
        self.y = y;
    }
}

fn encode_geometry(geometry: &TileGeometry) -> Option<(u64, Vec<u32>)> {
    let mut cursor = Cursor { x: 0, y: 0, out: Vec::new() };
    let geom_type = match geometry {
        TileGeometry::Points(points) => {
            let points = dedup(points, false);
            if points.is_empty() {
                return None;
            }
            cursor.out.push(command(MOVE_TO, points.len() as u32));
            for p in points {
                cursor.delta(p);
            }
            1
        }
        TileGeometry::Lines(lines) => {
            for line in lines {
                let line = dedup(line, false);
                if line.len() >= 2 {
                    cursor.path(&line, false);
                }
            }
            2
        }
        TileGeometry::Polygons(polygons) => {
            for polygon in polygons {
                let mut rings = polygon.iter().map(|r| dedup(r, true));
                let Some(mut exterior) = rings.next() else {
                    continue;
                };
                let area = ring_area2(&exterior);
                if exterior.len() < 3 || area == 0 {
                    continue;
                }
                if area < 0 {
                    exterior.reverse();
                }
                cursor.path(&exterior, true);
                for mut hole in rings {
                    let area = ring_area2(&hole);
                    if hole.len() < 3 || area == 0 {
                        continue;
                    }
                    if area > 0 {
                        hole.reverse();
                    }
                    cursor.path(&hole, true);
                }
            }
            3
        }
    };
    if cursor.out.is_empty() { None } else { Some((geom_type, cursor.out)) }
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    write_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn write_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    write_tag(out, field, 0);
    write_varint(out, v);
}

fn write_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    write_tag(out, field, 2);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn write_packed(out: &mut Vec<u8>, field: u32, values: &[u32]) {
    if values.is_empty() {
        return;
    }
    let mut packed = Vec::with_capacity(values.len() * 2);
    for v in values {
        write_varint(&mut packed, u64::from(*v));
    }
    write_bytes_field(out, field, &packed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(geometry: &TileGeometry) -> Vec<u32> {
        encode_geometry(geometry).map(|(_, c)| c).unwrap_or_default()
    }

    #[test]
    fn encodes_the_spec_examples() {
        // MVT 2.1 spec, 4.3.5.1 "Example Point": MoveTo(25,17) → [9, 50, 34].
        assert_eq!(commands(&TileGeometry::Points(vec![[25, 17]])), vec![9, 50, 34]);
        // 4.3.5.3 "Example Linestring": (2,2) (2,10) (10,10).
        assert_eq!(
            commands(&TileGeometry::Lines(vec![vec![[2, 2], [2, 10], [10, 10]]])),
            vec![9, 4, 4, 18, 0, 16, 16, 0]
        );
        // 4.3.5.5 "Example Polygon": (3,6) (8,12) (20,34) closed.
        assert_eq!(
            commands(&TileGeometry::Polygons(vec![vec![vec![[3, 6], [8, 12], [20, 34], [3, 6]]]])),
            vec![9, 6, 12, 18, 10, 12, 24, 44, 15]
        );
    }

    #[test]
    fn fixes_winding_and_drops_degenerate_rings() {
        // Counter-clockwise on screen (negative area) must come out clockwise.
        let ccw = vec![[0, 0], [0, 10], [10, 10], [10, 0]];
        let hole_cw = vec![[2, 2], [4, 2], [4, 4], [2, 4]];
        let flat = vec![[0, 0], [5, 0], [9, 0]];
        let geometry = TileGeometry::Polygons(vec![vec![ccw, hole_cw], vec![flat]]);
        let (kind, cmds) = encode_geometry(&geometry).expect("polygon survives");
        assert_eq!(kind, 3);
        // Exterior reversed: first point (10,0) → zigzag(10)=20, zigzag(0)=0.
        assert_eq!(&cmds[..3], &[9, 20, 0]);
        assert_eq!(cmds.iter().filter(|c| **c == 15).count(), 2, "flat ring dropped");
    }

    #[test]
    fn interns_repeated_keys_and_values_once() {
        let mut layer = LayerBuilder::new("roads", DEFAULT_EXTENT);
        let props = [("kind", PropertyValue::String("primary".into()))];
        assert!(layer.add_feature(1, &TileGeometry::Points(vec![[1, 1]]), &props));
        assert!(layer.add_feature(2, &TileGeometry::Points(vec![[2, 2]]), &props));
        assert!(!layer.add_feature(3, &TileGeometry::Lines(vec![vec![[1, 1], [1, 1]]]), &props));
        assert_eq!((layer.keys.len(), layer.values.len(), layer.len()), (1, 1, 2));
        let tile = encode_tile(&[layer]);
        assert_eq!(tile[0], 0x1a, "field 3, length-delimited");
    }
}

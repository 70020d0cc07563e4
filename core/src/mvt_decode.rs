//! Mapbox Vector Tile 2.1 decoder: protobuf bytes back to tile-coordinate geometry
//! and typed properties. The viewer drapes ground layers with it; it reads any
//! conforming tile (GDAL's, tippecanoe's, martin's), not only ours.
//!
//! Polygon rings are grouped by winding as `@mapbox/vector-tile` groups them: a ring
//! wound like the feature's first ring starts a polygon, the others are its holes.

use crate::mvt::{PropertyValue, TileGeometry, TilePoint};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MvtDecodeError {
    #[error("vector tile truncated at byte {0}")]
    Truncated(usize),
    #[error("vector tile: unsupported protobuf wire type {wire} at byte {at}")]
    WireType { wire: u8, at: usize },
    #[error("vector tile layer '{layer}' feature {feature}: {reason}")]
    Feature { layer: String, feature: usize, reason: String },
    #[error("vector tile layer {0}: {1}")]
    Layer(usize, String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFeature {
    pub id: Option<u64>,
    pub geometry: TileGeometry,
    pub properties: Vec<(String, PropertyValue)>,
}

impl DecodedFeature {
    pub fn property(&self, key: &str) -> Option<&PropertyValue> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodedLayer {
    pub name: String,
    pub extent: u32,
    pub features: Vec<DecodedFeature>,
}

/// A field of a protobuf message: number and payload.
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
    Fixed64(u32, [u8; 8]),
    Fixed32(u32, [u8; 4]),
}

/// Walks the fields of one message. `base` is the message's offset in the tile, for
/// error positions.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn varint(&mut self) -> Result<u64, MvtDecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(MvtDecodeError::Truncated(self.base + self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MvtDecodeError::Truncated(self.base + self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MvtDecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(MvtDecodeError::Truncated(self.base + self.buf.len()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Offset in the whole tile of the next byte.
    fn at(&self) -> usize {
        self.base + self.pos
    }

    fn next_field(&mut self) -> Result<Option<Field<'a>>, MvtDecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.at();
        let key = self.varint()?;
        let number = (key >> 3) as u32;
        Ok(Some(match (key & 7) as u8 {
            0 => Field::Varint(number, self.varint()?),
            1 => Field::Fixed64(number, self.take(8)?.try_into().map_err(|_| MvtDecodeError::Truncated(at))?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| MvtDecodeError::Truncated(at))?;
                Field::Bytes(number, self.take(len)?)
            }
            5 => Field::Fixed32(number, self.take(4)?.try_into().map_err(|_| MvtDecodeError::Truncated(at))?),
            wire => return Err(MvtDecodeError::WireType { wire, at }),
        }))
    }
}

fn packed_u32(bytes: &[u8], base: usize) -> Result<Vec<u32>, MvtDecodeError> {
    let mut r = Reader::new(bytes, base);
    let mut out = Vec::with_capacity(bytes.len());
    while r.pos < bytes.len() {
        out.push(r.varint()? as u32);
    }
    Ok(out)
}

fn decode_value(bytes: &[u8], base: usize) -> Result<PropertyValue, MvtDecodeError> {
    let mut r = Reader::new(bytes, base);
    let mut value = None;
    while let Some(field) = r.next_field()? {
        value = Some(match field {
            Field::Bytes(1, s) => PropertyValue::String(String::from_utf8_lossy(s).into_owned()),
            Field::Fixed32(2, b) => PropertyValue::Double(f64::from(f32::from_le_bytes(b))),
            Field::Fixed64(3, b) => PropertyValue::Double(f64::from_le_bytes(b)),
            Field::Varint(4, v) => PropertyValue::Int(v as i64),
            Field::Varint(5, v) => PropertyValue::Int(i64::try_from(v).unwrap_or(i64::MAX)),
            Field::Varint(6, v) => PropertyValue::Int(((v >> 1) as i64) ^ -((v & 1) as i64)),
            Field::Varint(7, v) => PropertyValue::Bool(v != 0),
            _ => continue,
        });
    }
    Ok(value.unwrap_or(PropertyValue::String(String::new())))
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Command stream to paths; `close` marks which paths ended with ClosePath.
fn paths(commands: &[u32]) -> Result<Vec<(Vec<TilePoint>, bool)>, String> {
    let mut out: Vec<(Vec<TilePoint>, bool)> = Vec::new();
    let (mut x, mut y) = (0i32, 0i32);
    let mut i = 0;
    while i < commands.len() {
        let (id, count) = (commands[i] & 7, (commands[i] >> 3) as usize);
        i += 1;
        match id {
            1 | 2 => {
                if commands.len() < i + 2 * count {
                    return Err(format!("command at {} runs past the geometry", i - 1));
                }
                for k in 0..count {
                    x = x.wrapping_add(unzigzag(commands[i + 2 * k]));
                    y = y.wrapping_add(unzigzag(commands[i + 2 * k + 1]));
                    if id == 1 {
                        out.push((vec![[x, y]], false));
                    } else {
                        out.last_mut().ok_or("LineTo before MoveTo")?.0.push([x, y]);
                    }
                }
                i += 2 * count;
            }
            7 => out.last_mut().ok_or("ClosePath before MoveTo")?.1 = true,
            other => return Err(format!("unknown command {other}")),
        }
    }
    Ok(out)
}

fn signed_area2(ring: &[TilePoint]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i64::from(a[0]) * i64::from(b[1]) - i64::from(b[0]) * i64::from(a[1])
        })
        .sum()
}

fn geometry(kind: u64, commands: &[u32]) -> Result<Option<TileGeometry>, String> {
    let paths = paths(commands)?;
    Ok(match kind {
        1 => Some(TileGeometry::Points(paths.into_iter().flat_map(|(p, _)| p).collect())),
        2 => Some(TileGeometry::Lines(paths.into_iter().map(|(p, _)| p).filter(|p| p.len() >= 2).collect())),
        3 => {
            // The spec makes exterior rings positive, but encoders that snap tiny rings
            // to the grid can flip one; like the reference decoder, let the feature's
            // first ring say which winding is exterior.
            let mut polygons: Vec<Vec<Vec<TilePoint>>> = Vec::new();
            let mut exterior_positive = None;
            for (ring, _) in paths {
                let area = signed_area2(&ring);
                if ring.len() < 3 || area == 0 {
                    continue;
                }
                let positive = *exterior_positive.get_or_insert(area > 0);
                match polygons.last_mut() {
                    Some(polygon) if (area > 0) != positive => polygon.push(ring),
                    _ => polygons.push(vec![ring]),
                }
            }
            Some(TileGeometry::Polygons(polygons))
        }
        _ => None,
    })
}

fn decode_layer(bytes: &[u8], base: usize, index: usize) -> Result<DecodedLayer, MvtDecodeError> {
    let mut r = Reader::new(bytes, base);
    let (mut name, mut extent) = (String::new(), 4096u32);
    let (mut keys, mut values, mut raw_features) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(field) = r.next_field()? {
        let at = r.at();
        match field {
            Field::Bytes(1, s) => name = String::from_utf8_lossy(s).into_owned(),
            Field::Bytes(2, f) => raw_features.push((f, at - f.len())),
            Field::Bytes(3, k) => keys.push(String::from_utf8_lossy(k).into_owned()),
            Field::Bytes(4, v) => values.push(decode_value(v, at - v.len())?),
            Field::Varint(5, e) => extent = u32::try_from(e).unwrap_or(4096),
            _ => {}
        }
    }
    if extent == 0 {
        return Err(MvtDecodeError::Layer(index, "extent 0".into()));
    }
    let mut features = Vec::with_capacity(raw_features.len());
    for (n, (bytes, at)) in raw_features.into_iter().enumerate() {
        let bad = |reason: String| MvtDecodeError::Feature { layer: name.clone(), feature: n, reason };
        let mut r = Reader::new(bytes, at);
        let (mut id, mut tags, mut kind, mut commands) = (None, Vec::new(), 0, Vec::new());
        while let Some(field) = r.next_field()? {
            let at = r.at();
            match field {
                Field::Varint(1, v) => id = Some(v),
                Field::Bytes(2, t) => tags = packed_u32(t, at - t.len())?,
                Field::Varint(3, t) => kind = t,
                Field::Bytes(4, g) => commands = packed_u32(g, at - g.len())?,
                _ => {}
            }
        }
        if tags.len() % 2 != 0 {
            return Err(bad("odd number of tags".into()));
        }
        let mut properties = Vec::with_capacity(tags.len() / 2);
        for pair in tags.chunks_exact(2) {
            let key = keys.get(pair[0] as usize).ok_or_else(|| bad(format!("key index {}", pair[0])))?;
            let value =
                values.get(pair[1] as usize).ok_or_else(|| bad(format!("value index {}", pair[1])))?;
            properties.push((key.clone(), value.clone()));
        }
        if let Some(geometry) = geometry(kind, &commands).map_err(bad)? {
            features.push(DecodedFeature { id, geometry, properties });
        }
    }
    Ok(DecodedLayer { name, extent, features })
}

/// Decodes an uncompressed vector tile (gunzip first if it came compressed).
pub fn decode_tile(bytes: &[u8]) -> Result<Vec<DecodedLayer>, MvtDecodeError> {
    let mut r = Reader::new(bytes, 0);
    let mut layers = Vec::new();
    while let Some(field) = r.next_field()? {
        if let Field::Bytes(3, layer) = field {
            let at = r.at() - layer.len();
            layers.push(decode_layer(layer, at, layers.len())?);
        }
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvt::{LayerBuilder, encode_tile};

    fn owned(pairs: &[(&str, PropertyValue)]) -> Vec<(String, PropertyValue)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn decodes_what_the_encoder_wrote() {
        let mut layer = LayerBuilder::new("roads", 4096);
        let road = TileGeometry::Lines(vec![vec![[2, 2], [2, 10], [10, 10]]]);
        let p = [
            ("highway", PropertyValue::String("primary".into())),
            ("lanes", PropertyValue::Int(-2)),
            ("width", PropertyValue::Double(7.5)),
            ("oneway", PropertyValue::Bool(true)),
        ];
        assert!(layer.add_feature(42, &road, &p));
        // A square with a square hole, given in the wrong winding: the encoder fixes it.
        let block = TileGeometry::Polygons(vec![vec![
            vec![[0, 0], [0, 100], [100, 100], [100, 0]],
            vec![[10, 10], [90, 10], [90, 90], [10, 90]],
        ]]);
        layer.add_feature(7, &block, &[("landuse", PropertyValue::String("grass".into()))]);
        layer.add_feature(9, &TileGeometry::Points(vec![[5, 6], [7, 8]]), &[]);
        let tile = encode_tile(&[layer]);

        let layers = decode_tile(&tile).expect("decodes");
        assert_eq!(layers.len(), 1);
        assert_eq!((layers[0].name.as_str(), layers[0].extent), ("roads", 4096));
        let f = &layers[0].features;
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].id, &f[0].geometry, &f[0].properties), (Some(42), &road, &owned(&p)));
        assert_eq!(f[0].property("lanes"), Some(&PropertyValue::Int(-2)));
        let TileGeometry::Polygons(polygons) = &f[1].geometry else { panic!("{:?}", f[1].geometry) };
        assert_eq!(polygons.len(), 1, "hole stays with its exterior");
        assert_eq!(polygons[0].len(), 2);
        assert!(signed_area2(&polygons[0][0]) > 0 && signed_area2(&polygons[0][1]) < 0);
        assert_eq!(f[2].geometry, TileGeometry::Points(vec![[5, 6], [7, 8]]));
    }

    #[test]
    fn truncated_or_malformed_tiles_are_errors_not_panics() {
        let mut layer = LayerBuilder::new("l", 4096);
        layer.add_feature(
            1,
            &TileGeometry::Polygons(vec![vec![vec![[0, 0], [0, 50], [50, 50], [50, 0]]]]),
            &[("k", PropertyValue::String("v".into()))],
        );
        let tile = encode_tile(&[layer]);
        for cut in 1..tile.len() {
            // Any prefix either decodes (a shorter, valid message) or fails cleanly.
            let _ = decode_tile(&tile[..cut]);
        }
        assert!(matches!(decode_tile(&tile[..tile.len() - 3]), Err(MvtDecodeError::Truncated(_))));
        assert!(matches!(decode_tile(&[0x1f]), Err(MvtDecodeError::WireType { wire: 7, at: 0 })));
        // A LineTo with no MoveTo before it.
        assert_eq!(paths(&[(1 << 3) | 2, 2, 2]), Err("LineTo before MoveTo".to_owned()));
        assert!(paths(&[(3 << 3) | 1, 2]).is_err(), "a count past the end");
    }
}

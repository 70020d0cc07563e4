//! The vector kind's spill file: every cleaned feature written once as it is read,
//! then read back by position (`pread`) by each stage that needs its geometry, so the
//! run holds only a small [`crate::feature::Summary`] per feature in memory.
//!
//! A record is two parts, so a tile reads only what tiles use:
//! `u32 tile part length | tile part | store part`; the tile part is the geometry and
//! the attributes as tiles show them (coarsened, protected attributes left out), the
//! store part the exact geometry (only where it differs) and all attributes as JSON.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cim_core::mvt::PropertyValue;
use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::{Map, Value};

use crate::IngestError;

/// What tiles (MVT and 3D) read of a feature.
#[derive(Debug, Clone)]
pub struct TilePart {
    pub geometry: Geometry<f64>,
    pub properties: Vec<(String, PropertyValue)>,
}

/// What the feature store reads: the exact geometry and every attribute.
#[derive(Debug, Clone)]
pub struct StorePart {
    pub geometry: Geometry<f64>,
    pub properties: Map<String, Value>,
}

/// Where a record lies in the spill file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u32,
}

pub struct SpillWriter {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    record: Vec<u8>,
}

impl SpillWriter {
    pub fn create(path: &Path) -> Result<Self, IngestError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| IngestError::store(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 20, file),
            written: 0,
            record: Vec::new(),
        })
    }

    /// Appends one feature; `exact` is its geometry where the tiles' differs.
    pub fn push(
        &mut self,
        tile: &TilePart,
        exact: Option<&Geometry<f64>>,
        properties: &Map<String, Value>,
    ) -> Result<Span, IngestError> {
        let r = &mut self.record;
        r.clear();
        r.extend_from_slice(&[0; 4]);
        put_geometry(r, &tile.geometry);
        put_u32(r, tile.properties.len() as u32);
        for (k, v) in &tile.properties {
            put_str(r, k);
            match v {
                PropertyValue::String(s) => {
                    r.push(0);
                    put_str(r, s);
                }
                PropertyValue::Double(d) => {
                    r.push(1);
                    r.extend_from_slice(&d.to_le_bytes());
                }
                PropertyValue::Int(i) => {
                    r.push(2);
                    r.extend_from_slice(&i.to_le_bytes());
                }
                PropertyValue::Bool(b) => {
                    r.push(3);
                    r.push(u8::from(*b));
                }
            }
        }
        let tile_len = (r.len() - 4) as u32;
        r[..4].copy_from_slice(&tile_len.to_le_bytes());
        match exact {
            Some(g) => {
                r.push(1);
                put_geometry(r, g);
            }
            None => r.push(0),
        }
        serde_json::to_writer(&mut *r, properties)
            .map_err(|e| IngestError::store(&self.path, std::io::Error::other(e)))?;
        let len = u32::try_from(r.len()).map_err(|_| {
            IngestError::source(&self.path, format!("one feature of {} bytes; at most 4 GiB", r.len()))
        })?;
        self.out.write_all(r).map_err(|e| IngestError::store(&self.path, e))?;
        let span = Span { offset: self.written, len };
        self.written += u64::from(len);
        Ok(span)
    }

    pub fn finish(self) -> Result<SpillReader, IngestError> {
        let path = self.path;
        let file = self.out.into_inner().map_err(|e| IngestError::store(&path, e.into_error()))?;
        Ok(SpillReader { path, file })
    }
}

/// Reads records by position; shared by the stages' threads.
pub struct SpillReader {
    path: PathBuf,
    file: File,
}

impl SpillReader {
    fn bytes(&self, span: Span) -> Result<Vec<u8>, IngestError> {
        let mut buf = vec![0; span.len as usize];
        self.file.read_exact_at(&mut buf, span.offset).map_err(|e| IngestError::store(&self.path, e))?;
        Ok(buf)
    }

    fn corrupt(&self, span: Span) -> IngestError {
        IngestError::source(&self.path, format!("spilled record at byte {} is cut short", span.offset))
    }

    pub fn tile_part(&self, span: Span) -> Result<TilePart, IngestError> {
        let bytes = self.bytes(span)?;
        let mut c = Cursor { bytes: &bytes, at: 4 };
        decode_tile(&mut c).ok_or_else(|| self.corrupt(span))
    }

    /// The tile geometry, and the tile attributes still encoded (a tile holding
    /// many features keeps them so, a few hundred bytes each).
    pub fn tile_geometry(&self, span: Span) -> Result<(Geometry<f64>, TileAttributes), IngestError> {
        let bytes = self.bytes(span)?;
        let mut c = Cursor { bytes: &bytes, at: 4 };
        let geometry = get_geometry(&mut c, 0).ok_or_else(|| self.corrupt(span))?;
        let attributes = TileAttributes(bytes.get(c.at..).unwrap_or_default().into());
        if attributes.decode().is_none() {
            return Err(self.corrupt(span));
        }
        Ok((geometry, attributes))
    }

    pub fn store_part(&self, span: Span) -> Result<StorePart, IngestError> {
        let bytes = self.bytes(span)?;
        let corrupt = || self.corrupt(span);
        let tile_len = bytes.get(..4).ok_or_else(corrupt)?;
        let tile_len = u32::from_le_bytes([tile_len[0], tile_len[1], tile_len[2], tile_len[3]]) as usize;
        let mut c = Cursor { bytes: &bytes, at: 4 };
        let geometry = if bytes.get(4 + tile_len) == Some(&1) {
            c.at = 5 + tile_len;
            get_geometry(&mut c, 0).ok_or_else(corrupt)?
        } else {
            let g = get_geometry(&mut c, 0).ok_or_else(corrupt)?;
            c.at = 5 + tile_len;
            g
        };
        let json = bytes.get(c.at..).ok_or_else(corrupt)?;
        let properties = serde_json::from_slice(json).map_err(|e| IngestError::source(&self.path, e))?;
        Ok(StorePart { geometry, properties })
    }

    /// Removes the file (the run is done with it).
    pub fn remove(self) -> Result<(), IngestError> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|e| IngestError::store(&self.path, e))
    }
}

/// A feature's tile attributes as the spill file holds them (checked when read).
#[derive(Debug, Clone)]
pub struct TileAttributes(Box<[u8]>);

impl TileAttributes {
    pub fn decode(&self) -> Option<Vec<(&str, PropertyValue)>> {
        decode_attributes(&mut Cursor { bytes: &self.0, at: 0 })
    }
}

fn decode_attributes<'a>(c: &mut Cursor<'a>) -> Option<Vec<(&'a str, PropertyValue)>> {
    let n = c.count(6)?;
    let mut properties = Vec::with_capacity(n);
    for _ in 0..n {
        let key = c.str()?;
        let value = match c.take(1)?[0] {
            0 => PropertyValue::String(c.str()?.to_owned()),
            1 => PropertyValue::Double(f64::from_le_bytes(c.take(8)?.try_into().ok()?)),
            2 => PropertyValue::Int(i64::from_le_bytes(c.take(8)?.try_into().ok()?)),
            3 => PropertyValue::Bool(c.take(1)?[0] != 0),
            _ => return None,
        };
        properties.push((key, value));
    }
    Some(properties)
}

fn decode_tile(c: &mut Cursor<'_>) -> Option<TilePart> {
    let geometry = get_geometry(c, 0)?;
    let properties = decode_attributes(c)?.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Some(TilePart { geometry, properties })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn put_coords(out: &mut Vec<u8>, coords: &[Coord<f64>]) {
    put_u32(out, coords.len() as u32);
    for c in coords {
        out.extend_from_slice(&c.x.to_le_bytes());
        out.extend_from_slice(&c.y.to_le_bytes());
    }
}

fn put_polygon(out: &mut Vec<u8>, p: &Polygon<f64>) {
    put_u32(out, 1 + p.interiors().len() as u32);
    put_coords(out, &p.exterior().0);
    for r in p.interiors() {
        put_coords(out, &r.0);
    }
}

fn put_geometry(out: &mut Vec<u8>, g: &Geometry<f64>) {
    match g {
        Geometry::Point(p) => {
            out.push(1);
            put_coords(out, &[p.0]);
        }
        Geometry::Line(l) => {
            out.push(2);
            put_coords(out, &[l.start, l.end]);
        }
        Geometry::LineString(ls) => {
            out.push(2);
            put_coords(out, &ls.0);
        }
        Geometry::Polygon(p) => {
            out.push(3);
            put_polygon(out, p);
        }
        Geometry::Rect(r) => {
            out.push(3);
            put_polygon(out, &r.to_polygon());
        }
        Geometry::Triangle(t) => {
            out.push(3);
            put_polygon(out, &t.to_polygon());
        }
        Geometry::MultiPoint(mp) => {
            out.push(4);
            put_coords(out, &mp.0.iter().map(|p| p.0).collect::<Vec<_>>());
        }
        Geometry::MultiLineString(m) => {
            out.push(5);
            put_u32(out, m.0.len() as u32);
            for ls in &m.0 {
                put_coords(out, &ls.0);
            }
        }
        Geometry::MultiPolygon(m) => {
            out.push(6);
            put_u32(out, m.0.len() as u32);
            for p in &m.0 {
                put_polygon(out, p);
            }
        }
        Geometry::GeometryCollection(gc) => {
            out.push(7);
            put_u32(out, gc.0.len() as u32);
            for g in &gc.0 {
                put_geometry(out, g);
            }
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    /// A count whose items take at least `each` bytes, checked against what is left.
    fn count(&mut self, each: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(each)? <= self.bytes.len() - self.at).then_some(n)
    }
    fn coords(&mut self) -> Option<Vec<Coord<f64>>> {
        let n = self.count(16)?;
        let raw = self.take(n * 16)?;
        Some(
            raw.chunks_exact(16)
                .map(|c| Coord {
                    x: f64::from_le_bytes(c[..8].try_into().unwrap_or_default()),
                    y: f64::from_le_bytes(c[8..].try_into().unwrap_or_default()),
                })
                .collect(),
        )
    }
    fn polygon(&mut self) -> Option<Polygon<f64>> {
        let rings = self.count(4)?;
        let mut all = (0..rings).map(|_| self.coords().map(LineString)).collect::<Option<Vec<_>>>()?;
        if all.is_empty() {
            return None;
        }
        let exterior = all.remove(0);
        Some(Polygon::new(exterior, all))
    }
}

fn get_geometry(c: &mut Cursor<'_>, depth: usize) -> Option<Geometry<f64>> {
    Some(match c.take(1)?[0] {
        1 => Geometry::Point(Point(*c.coords()?.first()?)),
        2 => Geometry::LineString(LineString(c.coords()?)),
        3 => Geometry::Polygon(c.polygon()?),
        4 => Geometry::MultiPoint(MultiPoint(c.coords()?.into_iter().map(Point).collect())),
        5 => {
            let n = c.count(4)?;
            Geometry::MultiLineString(MultiLineString(
                (0..n).map(|_| c.coords().map(LineString)).collect::<Option<_>>()?,
            ))
        }
        6 => {
            let n = c.count(4)?;
            Geometry::MultiPolygon(MultiPolygon((0..n).map(|_| c.polygon()).collect::<Option<_>>()?))
        }
        7 if depth < 8 => {
            let n = c.count(1)?;
            Geometry::GeometryCollection(geo_types::GeometryCollection(
                (0..n).map(|_| get_geometry(c, depth + 1)).collect::<Option<_>>()?,
            ))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{line_string, polygon};

    #[test]
    fn records_read_back_as_written_each_part_on_its_own() {
        let dir = std::env::temp_dir().join(format!("cim-spill-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("features.spill");
        let mut w = SpillWriter::create(&path).expect("create");
        let square = Geometry::Polygon(polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.0, y: 0.0)],
            interiors: [[(x: 0.2, y: 0.2), (x: 0.4, y: 0.2), (x: 0.4, y: 0.4), (x: 0.2, y: 0.2)]],
        ));
        let road = Geometry::MultiLineString(MultiLineString(vec![
            line_string![(x: 1.5, y: 2.5), (x: 3.0, y: -1.0)],
            line_string![(x: 7.0, y: 8.0), (x: 9.0, y: 9.5)],
        ]));
        let coarse = Geometry::Point(Point::new(1.0, 2.0));
        let props: Map<String, Value> =
            serde_json::from_str(r#"{"name":"Kiasma","floors":5,"secret":"x","area":1.5,"open":true}"#)
                .expect("json");
        let tile_props = vec![
            ("name".to_owned(), PropertyValue::String("Kiasma".into())),
            ("floors".to_owned(), PropertyValue::Int(5)),
            ("area".to_owned(), PropertyValue::Double(1.5)),
            ("open".to_owned(), PropertyValue::Bool(true)),
        ];
        let a = w
            .push(&TilePart { geometry: square.clone(), properties: tile_props.clone() }, None, &props)
            .expect("a");
        let b = w
            .push(&TilePart { geometry: coarse.clone(), properties: Vec::new() }, Some(&road), &Map::new())
            .expect("b");
        assert_eq!(b.offset, u64::from(a.len));
        let r = w.finish().expect("finish");
        let t = r.tile_part(a).expect("tile a");
        assert_eq!(t.geometry, square);
        assert_eq!(t.properties, tile_props);
        let (g, attributes) = r.tile_geometry(a).expect("tile geometry a");
        assert_eq!(g, square);
        let decoded = attributes.decode().expect("attributes");
        assert_eq!(decoded.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Vec<_>>(), tile_props);
        let s = r.store_part(a).expect("store a");
        assert_eq!((s.geometry, s.properties), (square, props));
        assert_eq!(r.tile_part(b).expect("tile b").geometry, coarse);
        assert_eq!(r.store_part(b).expect("store b").geometry, road);
        // A span past what was written is an error, not a panic.
        assert!(r.tile_part(Span { offset: b.offset, len: b.len + 10 }).is_err());
        assert!(r.tile_part(Span { offset: 0, len: 9 }).is_err());
        r.remove().expect("remove");
        assert!(!path.exists());
    }
}

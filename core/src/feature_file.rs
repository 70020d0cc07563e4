//! The feature store file: every feature's GeoJSON in id order, an id table and a
//! packed Hilbert R-tree of their boxes, so a server answers by id, by position and
//! by box with a few positioned reads and holds nothing per feature in memory.
//!
//! Records stay the GeoJSON the feature API serves (no re-encoding on the way out),
//! and a feature's position is its rank by id, so positions and id order coincide.
//! The tree is FlatGeobuf's packed R-tree (leaves sorted by the Hilbert value of their
//! box centre, fixed fan-out, root first), pointing at positions rather than bytes.
//!
//! Layout, integers little-endian:
//!
//! ```text
//! "CIMFEAT1"                                   magic, 8 bytes
//! records                                      feature i's GeoJSON text, back to back
//! id table   n × (id u64, record end u64)      record i runs from the end of i-1 (or 8)
//! tree       nodes × (min x, min y, max x, max y f64, value u64), root first;
//!            a leaf's value is a position, a branch's the index of its first child
//! footer     table offset, tree offset, n, fan-out (u64 each), "CIMFEAT1"
//! ```

use std::io::Write;

use crate::read_at::ReadAt;
use crate::tile::TileId;

const MAGIC: &[u8; 8] = b"CIMFEAT1";
const FOOTER_LEN: u64 = 40;
const TABLE_ROW: u64 = 16;
const NODE_LEN: u64 = 40;
/// Entries per tree node (FlatGeobuf's default).
pub const FAN_OUT: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum FeatureFileError {
    #[error("feature file: {0}")]
    Io(#[from] std::io::Error),
    #[error("feature file is corrupt: {0}")]
    Corrupt(String),
    #[error("feature ids must increase: {next} follows {last}")]
    IdsNotIncreasing { last: u64, next: u64 },
}

fn corrupt(why: impl Into<String>) -> FeatureFileError {
    FeatureFileError::Corrupt(why.into())
}

/// A box that intersects nothing: features without positions.
const NO_BOX: [f64; 4] = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];

fn intersects(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// Writes a feature file as features arrive in increasing id order; only their ids,
/// record ends and boxes (40 bytes a feature) wait for the tree.
pub struct FeatureFileWriter<W: Write> {
    out: W,
    written: u64,
    table: Vec<(u64, u64)>,
    boxes: Vec<[f64; 4]>,
}

impl<W: Write> FeatureFileWriter<W> {
    pub fn new(mut out: W) -> Result<Self, FeatureFileError> {
        out.write_all(MAGIC)?;
        Ok(Self { out, written: MAGIC.len() as u64, table: Vec::new(), boxes: Vec::new() })
    }

    /// Adds one feature: its id, its box (`None` when it has no positions) and its
    /// GeoJSON text.
    pub fn push(&mut self, id: u64, bbox: Option<[f64; 4]>, geojson: &[u8]) -> Result<(), FeatureFileError> {
        if let Some(&(last, _)) = self.table.last()
            && id <= last
        {
            return Err(FeatureFileError::IdsNotIncreasing { last, next: id });
        }
        self.out.write_all(geojson)?;
        self.written += geojson.len() as u64;
        self.table.push((id, self.written));
        self.boxes.push(bbox.filter(|b| b.iter().all(|v| v.is_finite())).unwrap_or(NO_BOX));
        Ok(())
    }

    /// Writes the id table, the tree and the footer; returns the sink.
    pub fn finish(mut self) -> Result<W, FeatureFileError> {
        let table_offset = self.written;
        let mut buf = Vec::with_capacity(self.table.len() * TABLE_ROW as usize);
        for (id, end) in &self.table {
            buf.extend_from_slice(&id.to_le_bytes());
            buf.extend_from_slice(&end.to_le_bytes());
        }
        self.out.write_all(&buf)?;
        let tree_offset = table_offset + buf.len() as u64;
        let n = self.table.len() as u64;
        for node in packed_tree(&self.boxes) {
            let mut row = [0u8; NODE_LEN as usize];
            for (k, v) in node.0.iter().enumerate() {
                row[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            row[32..40].copy_from_slice(&node.1.to_le_bytes());
            self.out.write_all(&row)?;
        }
        for v in [table_offset, tree_offset, n, FAN_OUT] {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.out.write_all(MAGIC)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The level ranges of a packed tree over `n` leaves, leaves first, as node indices
/// in the root-first array.
fn levels(n: u64, fan_out: u64) -> Vec<(u64, u64)> {
    if n == 0 {
        return Vec::new();
    }
    let mut counts = vec![n];
    let mut c = n;
    while c > 1 {
        c = c.div_ceil(fan_out);
        counts.push(c);
    }
    let total: u64 = counts.iter().sum();
    let mut end = total;
    counts
        .iter()
        .map(|&c| {
            let range = (end - c, end);
            end -= c;
            range
        })
        .collect()
}

/// The nodes of a packed Hilbert R-tree over the boxes, root first.
fn packed_tree(boxes: &[[f64; 4]]) -> Vec<([f64; 4], u64)> {
    let n = boxes.len() as u64;
    let levels = levels(n, FAN_OUT);
    let Some(&(_, total)) = levels.first() else { return Vec::new() };
    let extent = boxes
        .iter()
        .filter(|b| b[0] <= b[2])
        .fold(NO_BOX, |e, b| [e[0].min(b[0]), e[1].min(b[1]), e[2].max(b[2]), e[3].max(b[3])]);
    let scale = |v: f64, lo: f64, hi: f64| {
        if hi > lo { (((v - lo) / (hi - lo)) * 65535.0).clamp(0.0, 65535.0) as u32 } else { 0 }
    };
    let hilbert = |b: &[f64; 4]| {
        if b[0] > b[2] {
            return u64::MAX;
        }
        let x = scale((b[0] + b[2]) / 2.0, extent[0], extent[2]);
        let y = scale((b[1] + b[3]) / 2.0, extent[1], extent[3]);
        TileId::new(16, x, y).map_or(0, |t| t.hilbert_id())
    };
    let mut order: Vec<(u64, u64)> = boxes.iter().enumerate().map(|(i, b)| (hilbert(b), i as u64)).collect();
    order.sort_unstable();
    let mut nodes = vec![(NO_BOX, 0u64); total as usize];
    let (leaf_start, _) = levels[0];
    for (k, &(_, i)) in order.iter().enumerate() {
        nodes[(leaf_start as usize) + k] = (boxes[i as usize], i);
    }
    for pair in levels.windows(2) {
        let ((child_start, child_end), (parent_start, _)) = (pair[0], pair[1]);
        let mut parent = parent_start;
        let mut first = child_start;
        while first < child_end {
            let last = (first + FAN_OUT).min(child_end);
            let bbox = nodes[first as usize..last as usize]
                .iter()
                .fold(NO_BOX, |e, (b, _)| [e[0].min(b[0]), e[1].min(b[1]), e[2].max(b[2]), e[3].max(b[3])]);
            nodes[parent as usize] = (bbox, first);
            parent += 1;
            first = last;
        }
    }
    nodes
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn f64_at(b: &[u8], at: usize) -> f64 {
    f64::from_bits(u64_at(b, at))
}

/// A feature file opened for positioned reads: the footer and the tree's shape,
/// nothing per feature.
pub struct FeatureFile<R> {
    source: R,
    count: u64,
    table: u64,
    tree: u64,
    fan_out: u64,
    levels: Vec<(u64, u64)>,
}

impl<R: ReadAt> FeatureFile<R> {
    /// Checks the footer against the file's length.
    pub fn open(source: R, len: u64) -> Result<Self, FeatureFileError> {
        if len < MAGIC.len() as u64 + FOOTER_LEN {
            return Err(corrupt(format!("{len} bytes is shorter than the header and footer")));
        }
        let mut head = [0u8; 8];
        source.read_exact_at(&mut head, 0)?;
        let mut foot = [0u8; FOOTER_LEN as usize];
        source.read_exact_at(&mut foot, len - FOOTER_LEN)?;
        if &head != MAGIC || &foot[32..40] != MAGIC {
            return Err(corrupt("not a feature file (magic)"));
        }
        let (table, tree, count, fan_out) =
            (u64_at(&foot, 0), u64_at(&foot, 8), u64_at(&foot, 16), u64_at(&foot, 24));
        if !(2..=1024).contains(&fan_out) {
            return Err(corrupt(format!("fan-out {fan_out}")));
        }
        let levels = levels(count, fan_out);
        let nodes = levels.first().map_or(0, |l| l.1);
        let expected = count
            .checked_mul(TABLE_ROW)
            .and_then(|t| table.checked_add(t))
            .filter(|&t| t == tree && table >= MAGIC.len() as u64)
            .and_then(|_| nodes.checked_mul(NODE_LEN))
            .and_then(|t| tree.checked_add(t))
            .and_then(|t| t.checked_add(FOOTER_LEN));
        if expected != Some(len) {
            return Err(corrupt(format!(
                "{count} features, table at {table}, tree at {tree} do not add up to {len} bytes"
            )));
        }
        Ok(Self { source, count, table, tree, fan_out, levels })
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn row(&self, position: u64) -> Result<(u64, u64), FeatureFileError> {
        if position >= self.count {
            return Err(corrupt(format!("position {position} of {}", self.count)));
        }
        let mut b = [0u8; TABLE_ROW as usize];
        self.source.read_exact_at(&mut b, self.table + position * TABLE_ROW)?;
        Ok((u64_at(&b, 0), u64_at(&b, 8)))
    }

    /// The id of the feature at `position` (ids increase with positions).
    pub fn id(&self, position: u64) -> Result<u64, FeatureFileError> {
        Ok(self.row(position)?.0)
    }

    /// The position of the feature with `id`, by binary search over the id table.
    pub fn position_of(&self, id: u64) -> Result<Option<u64>, FeatureFileError> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id(mid)?.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid)),
            }
        }
        Ok(None)
    }

    /// The GeoJSON text of the feature at `position`.
    pub fn record(&self, position: u64) -> Result<Vec<u8>, FeatureFileError> {
        let start = match position {
            0 => MAGIC.len() as u64,
            p => self.row(p - 1)?.1,
        };
        let end = self.row(position)?.1;
        if start > end || end > self.table {
            return Err(corrupt(format!(
                "record {position} runs {start}..{end}, records end at {}",
                self.table
            )));
        }
        let len = usize::try_from(end - start).map_err(|e| corrupt(e.to_string()))?;
        let mut buf = vec![0u8; len];
        self.source.read_exact_at(&mut buf, start)?;
        Ok(buf)
    }

    /// The features whose box intersects `bbox` (min x, min y, max x, max y): their
    /// positions, in increasing order, with their boxes; the caller tests the
    /// geometries themselves.
    pub fn search(&self, bbox: [f64; 4]) -> Result<Vec<(u64, [f64; 4])>, FeatureFileError> {
        let mut hits = Vec::new();
        let Some(top) = self.levels.len().checked_sub(1) else { return Ok(hits) };
        let mut pending = vec![(self.levels[top].0, top)];
        let mut buf = Vec::new();
        while let Some((first, level)) = pending.pop() {
            let (start, end) = self.levels[level];
            if first < start || first >= end {
                return Err(corrupt(format!("tree node {first} outside level {level} ({start}..{end})")));
            }
            let last = (first + self.fan_out).min(end);
            buf.resize(((last - first) * NODE_LEN) as usize, 0);
            self.source.read_exact_at(&mut buf, self.tree + first * NODE_LEN)?;
            for node in buf.chunks_exact(NODE_LEN as usize) {
                let b = [f64_at(node, 0), f64_at(node, 8), f64_at(node, 16), f64_at(node, 24)];
                if !intersects(&b, &bbox) {
                    continue;
                }
                let value = u64_at(node, 32);
                if level == 0 {
                    if value >= self.count {
                        return Err(corrupt(format!(
                            "tree leaf points at position {value} of {}",
                            self.count
                        )));
                    }
                    hits.push((value, b));
                } else {
                    pending.push((value, level - 1));
                }
            }
        }
        hits.sort_unstable_by_key(|&(p, _)| p);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(features: &[(u64, Option<[f64; 4]>)]) -> Vec<u8> {
        let mut w = FeatureFileWriter::new(Vec::new()).expect("writer");
        for (id, b) in features {
            w.push(*id, *b, format!("{{\"id\":{id}}}").as_bytes()).expect("push");
        }
        w.finish().expect("finish")
    }

    /// A deterministic scatter of small boxes (a linear congruential generator).
    fn scatter(n: u64) -> Vec<(u64, Option<[f64; 4]>)> {
        let mut s = 12345u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|i| {
                let (x, y, w, h) =
                    (24.9 + next() * 0.1, 60.1 + next() * 0.05, next() * 0.001, next() * 0.001);
                (i * 3 + 7, if i % 97 == 5 { None } else { Some([x, y, x + w, y + h]) })
            })
            .collect()
    }

    #[test]
    fn box_searches_find_exactly_what_a_scan_finds() {
        for n in [0u64, 1, 15, 16, 17, 257, 5000] {
            let features = scatter(n);
            let bytes = file(&features);
            let f = FeatureFile::open(bytes.clone(), bytes.len() as u64).expect("open");
            assert_eq!(f.len(), n);
            for q in [
                [24.9, 60.1, 25.0, 60.15],
                [24.95, 60.12, 24.951, 60.121],
                [24.93, 60.11, 24.93, 60.11],
                [0.0, 0.0, 1.0, 1.0],
            ] {
                let expected: Vec<(u64, [f64; 4])> = features
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, b))| b.filter(|b| intersects(b, &q)).map(|b| (i as u64, b)))
                    .collect();
                assert_eq!(f.search(q).expect("search"), expected, "n={n} q={q:?}");
            }
        }
    }

    #[test]
    fn ids_positions_and_records_round_trip() {
        let features = scatter(1000);
        let bytes = file(&features);
        let f = FeatureFile::open(bytes.as_slice(), bytes.len() as u64).expect("open");
        for (i, (id, _)) in features.iter().enumerate() {
            assert_eq!(f.id(i as u64).expect("id"), *id);
            assert_eq!(f.position_of(*id).expect("find"), Some(i as u64));
            assert_eq!(f.record(i as u64).expect("record"), format!("{{\"id\":{id}}}").into_bytes());
        }
        assert_eq!(f.position_of(8).expect("find"), None, "between ids");
        assert_eq!(f.position_of(u64::MAX).expect("find"), None);
        assert!(f.record(1000).is_err(), "past the end");
    }

    #[test]
    fn ids_out_of_order_are_refused() {
        let mut w = FeatureFileWriter::new(Vec::new()).expect("writer");
        w.push(5, None, b"{}").expect("push");
        assert!(matches!(
            w.push(5, None, b"{}"),
            Err(FeatureFileError::IdsNotIncreasing { last: 5, next: 5 })
        ));
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason_not_a_panic() {
        let bytes = file(&scatter(300));
        for cut in [0, 7, 47, bytes.len() - 1] {
            let short = &bytes[..cut];
            assert!(FeatureFile::open(short, cut as u64).is_err(), "cut at {cut}");
        }
        // Every single flipped byte in the footer and tree is refused or still
        // answers without panicking.
        for at in (bytes.len() - 40 * 40..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x5a;
            if let Ok(f) = FeatureFile::open(bad.as_slice(), bad.len() as u64) {
                let _ = f.search([24.9, 60.1, 25.0, 60.15]);
                let _ = f.record(299);
            }
        }
        // A table whose record ends run past the records is an error.
        let mut bad = bytes.clone();
        let table = u64_at(&bad, bad.len() - 40) as usize;
        bad[table + 8..table + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let f = FeatureFile::open(bad.as_slice(), bad.len() as u64).expect("footer intact");
        assert!(matches!(f.record(0), Err(FeatureFileError::Corrupt(_))));
    }
}

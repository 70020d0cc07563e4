//! PMTiles v3: a single-file tile archive (spec: github.com/protomaps/PMTiles, v3).
//!
//! The writer clusters tiles in Hilbert order, stores identical tiles once (run-length
//! encoded where contiguous) and splits the directory into leaves when the root would
//! not fit in the first 16 KiB. The reader side only parses bytes; the caller does
//! the (ranged) I/O, so the same code serves a file, a memory map or HTTP ranges.

use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::Compression as GzLevel;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::read_at::ReadAt;
use crate::tile::TileId;

pub const HEADER_LEN: usize = 127;
/// Header plus root directory must fit here, so a client needs one first request.
const ROOT_BUDGET: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum PmTilesError {
    #[error("not a PMTiles archive: magic bytes are {0:?}")]
    BadMagic([u8; 7]),
    #[error("PMTiles spec version {0} is not supported (only 3)")]
    UnsupportedVersion(u8),
    #[error("PMTiles header is {0} bytes; 127 are needed")]
    ShortHeader(usize),
    #[error("PMTiles directory is corrupt: {0}")]
    CorruptDirectory(&'static str),
    #[error("PMTiles compression {0:?} is not supported here")]
    UnsupportedCompression(Compression),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Unknown,
    None,
    Gzip,
    Brotli,
    Zstd,
}

impl Compression {
    fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::None,
            2 => Self::Gzip,
            3 => Self::Brotli,
            4 => Self::Zstd,
            _ => Self::Unknown,
        }
    }
    fn to_byte(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::None => 1,
            Self::Gzip => 2,
            Self::Brotli => 3,
            Self::Zstd => 4,
        }
    }
    /// The HTTP `Content-Encoding` token, if the bytes are stored encoded.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
            Self::Zstd => Some("zstd"),
            Self::None | Self::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileType {
    Unknown,
    Mvt,
    Png,
    Jpeg,
    Webp,
    Avif,
}

impl TileType {
    fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Mvt,
            2 => Self::Png,
            3 => Self::Jpeg,
            4 => Self::Webp,
            5 => Self::Avif,
            _ => Self::Unknown,
        }
    }
    fn to_byte(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Mvt => 1,
            Self::Png => 2,
            Self::Jpeg => 3,
            Self::Webp => 4,
            Self::Avif => 5,
        }
    }
}

/// The fixed 127-byte header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub root_dir_offset: u64,
    pub root_dir_length: u64,
    pub metadata_offset: u64,
    pub metadata_length: u64,
    pub leaf_dirs_offset: u64,
    pub leaf_dirs_length: u64,
    pub tile_data_offset: u64,
    pub tile_data_length: u64,
    pub addressed_tiles_count: u64,
    pub tile_entries_count: u64,
    pub tile_contents_count: u64,
    pub clustered: bool,
    pub internal_compression: Compression,
    pub tile_compression: Compression,
    pub tile_type: TileType,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// `[west, south, east, north]` degrees.
    pub bounds: [f64; 4],
    pub center_zoom: u8,
    pub center: [f64; 2],
}

fn e7(v: f64) -> i32 {
    (v * 1e7).round() as i32
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Self, PmTilesError> {
        if bytes.len() < HEADER_LEN {
            return Err(PmTilesError::ShortHeader(bytes.len()));
        }
        let mut magic = [0u8; 7];
        magic.copy_from_slice(&bytes[0..7]);
        if &magic != b"PMTiles" {
            return Err(PmTilesError::BadMagic(magic));
        }
        if bytes[7] != 3 {
            return Err(PmTilesError::UnsupportedVersion(bytes[7]));
        }
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let deg_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[o..o + 4]);
            f64::from(i32::from_le_bytes(b)) / 1e7
        };
        Ok(Self {
            root_dir_offset: u64_at(8),
            root_dir_length: u64_at(16),
            metadata_offset: u64_at(24),
            metadata_length: u64_at(32),
            leaf_dirs_offset: u64_at(40),
            leaf_dirs_length: u64_at(48),
            tile_data_offset: u64_at(56),
            tile_data_length: u64_at(64),
            addressed_tiles_count: u64_at(72),
            tile_entries_count: u64_at(80),
            tile_contents_count: u64_at(88),
            clustered: bytes[96] == 1,
            internal_compression: Compression::from_byte(bytes[97]),
            tile_compression: Compression::from_byte(bytes[98]),
            tile_type: TileType::from_byte(bytes[99]),
            min_zoom: bytes[100],
            max_zoom: bytes[101],
            bounds: [deg_at(102), deg_at(106), deg_at(110), deg_at(114)],
            center_zoom: bytes[118],
            center: [deg_at(119), deg_at(123)],
        })
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..7].copy_from_slice(b"PMTiles");
        b[7] = 3;
        let fields = [
            self.root_dir_offset,
            self.root_dir_length,
            self.metadata_offset,
            self.metadata_length,
            self.leaf_dirs_offset,
            self.leaf_dirs_length,
            self.tile_data_offset,
            self.tile_data_length,
            self.addressed_tiles_count,
            self.tile_entries_count,
            self.tile_contents_count,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[96] = u8::from(self.clustered);
        b[97] = self.internal_compression.to_byte();
        b[98] = self.tile_compression.to_byte();
        b[99] = self.tile_type.to_byte();
        b[100] = self.min_zoom;
        b[101] = self.max_zoom;
        for (i, v) in self.bounds.iter().enumerate() {
            b[102 + i * 4..106 + i * 4].copy_from_slice(&e7(*v).to_le_bytes());
        }
        b[118] = self.center_zoom;
        b[119..123].copy_from_slice(&e7(self.center[0]).to_le_bytes());
        b[123..127].copy_from_slice(&e7(self.center[1]).to_le_bytes());
        b
    }
}

/// A directory entry: a run of tiles, or (run_length 0) a pointer to a leaf directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tile_id: u64,
    pub offset: u64,
    pub length: u32,
    pub run_length: u32,
}

/// Where a lookup led: the tile bytes' range in the tile data section, a leaf directory
/// to read next (range in the leaf section), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Tile { offset: u64, length: u32 },
    Leaf { offset: u64, length: u32 },
    Missing,
}

/// Finds `tile_id` in one (decoded) directory.
pub fn find(entries: &[Entry], tile_id: u64) -> Lookup {
    let idx = entries.partition_point(|e| e.tile_id <= tile_id);
    let Some(entry) = idx.checked_sub(1).and_then(|i| entries.get(i)) else {
        return Lookup::Missing;
    };
    if entry.run_length == 0 {
        Lookup::Leaf { offset: entry.offset, length: entry.length }
    } else if tile_id < entry.tile_id + u64::from(entry.run_length) {
        Lookup::Tile { offset: entry.offset, length: entry.length }
    } else {
        Lookup::Missing
    }
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, PmTilesError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or(PmTilesError::CorruptDirectory("varint runs past the end"))?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(PmTilesError::CorruptDirectory("varint longer than 10 bytes"))
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn decompress(bytes: &[u8], compression: Compression) -> Result<Vec<u8>, PmTilesError> {
    match compression {
        Compression::None => Ok(bytes.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            GzDecoder::new(bytes).read_to_end(&mut out)?;
            Ok(out)
        }
        other => Err(PmTilesError::UnsupportedCompression(other)),
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), GzLevel::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decodes a directory from its (decompressed) bytes.
pub fn decode_directory(bytes: &[u8]) -> Result<Vec<Entry>, PmTilesError> {
    let mut pos = 0;
    let n = read_varint(bytes, &mut pos)? as usize;
    if n > bytes.len() {
        return Err(PmTilesError::CorruptDirectory("entry count exceeds directory size"));
    }
    let mut entries = vec![Entry { tile_id: 0, offset: 0, length: 0, run_length: 0 }; n];
    let mut last = 0u64;
    for e in entries.iter_mut() {
        last = last
            .checked_add(read_varint(bytes, &mut pos)?)
            .ok_or(PmTilesError::CorruptDirectory("tile id overflows"))?;
        e.tile_id = last;
    }
    for e in entries.iter_mut() {
        e.run_length = u32::try_from(read_varint(bytes, &mut pos)?)
            .map_err(|_| PmTilesError::CorruptDirectory("run length overflows"))?;
    }
    for e in entries.iter_mut() {
        e.length = u32::try_from(read_varint(bytes, &mut pos)?)
            .map_err(|_| PmTilesError::CorruptDirectory("length overflows"))?;
    }
    for i in 0..n {
        let v = read_varint(bytes, &mut pos)?;
        entries[i].offset = if v == 0 && i > 0 {
            // Found by the tiles_decode fuzz target: a crafted length overflowed here.
            entries[i - 1]
                .offset
                .checked_add(u64::from(entries[i - 1].length))
                .ok_or(PmTilesError::CorruptDirectory("offset overflows"))?
        } else {
            v.checked_sub(1).ok_or(PmTilesError::CorruptDirectory("offset 0 on first entry"))?
        };
    }
    Ok(entries)
}

pub fn encode_directory(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, entries.len() as u64);
    let mut last = 0;
    for e in entries {
        write_varint(&mut out, e.tile_id - last);
        last = e.tile_id;
    }
    for e in entries {
        write_varint(&mut out, u64::from(e.run_length));
    }
    for e in entries {
        write_varint(&mut out, u64::from(e.length));
    }
    for (i, e) in entries.iter().enumerate() {
        let contiguous = i > 0 && {
            let p = entries[i - 1];
            e.offset == p.offset + u64::from(p.length)
        };
        write_varint(&mut out, if contiguous { 0 } else { e.offset + 1 });
    }
    out
}

/// Writes an archive as its tiles arrive: each distinct tile's bytes go straight to
/// the `spill` sink (a file beside the archive, or memory), and only one entry per
/// tile and one fingerprint per distinct content stay in memory. [`Writer::finish_parts`]
/// then gives the header and directories that go before the spilled data.
#[derive(Debug)]
pub struct Writer<S = Vec<u8>> {
    tile_type: TileType,
    tile_compression: Compression,
    spill: S,
    spilled: u64,
    /// (tile id, offset in the spill, length), in arrival order.
    tiles: Vec<(u64, u64, u32)>,
    /// Distinct contents by fingerprint (two 64-bit hashes and the length).
    seen: HashMap<(u64, u64, u32), u64>,
}

/// What the caller knows about the tiles, for the header and metadata.
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    pub bounds: [f64; 4],
    pub center: [f64; 2],
    pub center_zoom: u8,
    /// JSON metadata (TileJSON-like: `vector_layers`, `name`, ...).
    pub metadata: serde_json::Value,
}

fn fingerprint(bytes: &[u8]) -> (u64, u64, u32) {
    use std::hash::{Hash, Hasher};
    let hash = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        bytes.hash(&mut h);
        h.finish()
    };
    (hash(0), hash(1), bytes.len() as u32)
}

impl Writer<Vec<u8>> {
    /// An archive whose tiles wait in memory. `tile_compression` states how the bytes
    /// given to [`Writer::add_tile`] are already compressed.
    pub fn new(tile_type: TileType, tile_compression: Compression) -> Self {
        Self::with_spill(tile_type, tile_compression, Vec::new())
    }

    /// Writes the whole archive to `out`.
    pub fn finish<W: Write>(self, info: &ArchiveInfo, out: &mut W) -> Result<Header, PmTilesError> {
        let (header, prefix, data) = self.finish_parts(info)?;
        out.write_all(&prefix)?;
        out.write_all(&data)?;
        Ok(header)
    }
}

impl<S: Write> Writer<S> {
    /// An archive whose distinct tiles are written to `spill` as they arrive; the
    /// archive is the prefix from [`Writer::finish_parts`] followed by the spill.
    pub fn with_spill(tile_type: TileType, tile_compression: Compression, spill: S) -> Self {
        Self { tile_type, tile_compression, spill, spilled: 0, tiles: Vec::new(), seen: HashMap::new() }
    }

    /// Adds a tile; identical contents are stored once.
    pub fn add_tile(&mut self, tile: TileId, bytes: &[u8]) -> Result<(), PmTilesError> {
        let length =
            u32::try_from(bytes.len()).map_err(|_| PmTilesError::CorruptDirectory("a tile over 4 GiB"))?;
        let key = fingerprint(bytes);
        let offset = match self.seen.get(&key) {
            Some(&at) => at,
            None => {
                self.spill.write_all(bytes)?;
                let at = self.spilled;
                self.spilled += u64::from(length);
                self.seen.insert(key, at);
                at
            }
        };
        self.tiles.push((tile.hilbert_id(), offset, length));
        Ok(())
    }

    pub fn tile_count(&self) -> usize {
        self.tiles.len()
    }

    /// The header, the bytes before the tile data (header, root directory, metadata,
    /// leaf directories) and the spill, which is the tile data.
    pub fn finish_parts(mut self, info: &ArchiveInfo) -> Result<(Header, Vec<u8>, S), PmTilesError> {
        self.spill.flush()?;
        // The first of a tile id given twice wins.
        self.tiles.sort_by_key(|&(id, _, _)| id);
        self.tiles.dedup_by_key(|&mut (id, _, _)| id);
        let mut entries: Vec<Entry> = Vec::new();
        // Clustered when distinct contents first appear in tile id order.
        let (mut clustered, mut next_new) = (true, 0u64);
        for &(id, offset, length) in &self.tiles {
            if offset >= next_new {
                clustered &= offset == next_new;
                next_new = offset + u64::from(length);
            }
            if let Some(last) = entries.last_mut()
                && last.offset == offset
                && last.tile_id + u64::from(last.run_length) == id
            {
                last.run_length += 1;
                continue;
            }
            entries.push(Entry { tile_id: id, offset, length, run_length: 1 });
        }
        let (root, leaves) = build_directories(&entries);
        let metadata = gzip(info.metadata.to_string().as_bytes());
        let zooms = self.tiles.iter().filter_map(|&(id, _, _)| TileId::from_hilbert_id(id).ok()).map(|t| t.z);
        let (min_zoom, max_zoom) = zooms.fold((u8::MAX, 0u8), |(lo, hi), z| (lo.min(z), hi.max(z)));
        let root_offset = HEADER_LEN as u64;
        let metadata_offset = root_offset + root.len() as u64;
        let leaf_offset = metadata_offset + metadata.len() as u64;
        let data_offset = leaf_offset + leaves.len() as u64;
        let header = Header {
            root_dir_offset: root_offset,
            root_dir_length: root.len() as u64,
            metadata_offset,
            metadata_length: metadata.len() as u64,
            leaf_dirs_offset: leaf_offset,
            leaf_dirs_length: leaves.len() as u64,
            tile_data_offset: data_offset,
            tile_data_length: self.spilled,
            addressed_tiles_count: self.tiles.len() as u64,
            tile_entries_count: entries.len() as u64,
            tile_contents_count: self.seen.len() as u64,
            clustered,
            internal_compression: Compression::Gzip,
            tile_compression: self.tile_compression,
            tile_type: self.tile_type,
            min_zoom: if self.tiles.is_empty() { 0 } else { min_zoom },
            max_zoom,
            bounds: info.bounds,
            center_zoom: info.center_zoom,
            center: info.center,
        };
        let mut prefix = Vec::with_capacity(data_offset as usize);
        prefix.extend_from_slice(&header.to_bytes());
        prefix.extend_from_slice(&root);
        prefix.extend_from_slice(&metadata);
        prefix.extend_from_slice(&leaves);
        Ok((header, prefix, self.spill))
    }
}

/// Root directory (compressed) and the concatenated compressed leaves.
fn build_directories(entries: &[Entry]) -> (Vec<u8>, Vec<u8>) {
    let root = gzip(&encode_directory(entries));
    if root.len() <= ROOT_BUDGET - HEADER_LEN {
        return (root, Vec::new());
    }
    let mut leaf_size = 4096usize;
    loop {
        let mut leaves = Vec::new();
        let mut pointers = Vec::new();
        for chunk in entries.chunks(leaf_size) {
            let leaf = gzip(&encode_directory(chunk));
            pointers.push(Entry {
                tile_id: chunk[0].tile_id,
                offset: leaves.len() as u64,
                length: leaf.len() as u32,
                run_length: 0,
            });
            leaves.extend_from_slice(&leaf);
        }
        let root = gzip(&encode_directory(&pointers));
        if root.len() <= ROOT_BUDGET - HEADER_LEN {
            return (root, leaves);
        }
        leaf_size *= 2;
    }
}

fn section(archive: &[u8], offset: u64, length: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    archive.get(start..end)
}

/// Every tile entry of an archive held in memory, leaf directories resolved, sorted
/// by tile id: one binary search per lookup afterwards.
pub fn tile_entries(archive: &[u8]) -> Result<(Header, Vec<Entry>), PmTilesError> {
    tile_entries_at(archive, archive.len() as u64)
}

/// A section of an archive of `len` bytes read by range, or `None` outside it.
fn read_section<R: ReadAt + ?Sized>(
    archive: &R,
    len: u64,
    offset: u64,
    length: u64,
) -> Result<Option<Vec<u8>>, PmTilesError> {
    if offset.checked_add(length).is_none_or(|end| end > len) {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::try_from(length).map_err(std::io::Error::other)?];
    archive.read_exact_at(&mut buf, offset)?;
    Ok(Some(buf))
}

/// [`tile_entries`] of an archive of `len` bytes read by range: only the header and
/// the directories are read, never the tiles.
pub fn tile_entries_at<R: ReadAt + ?Sized>(
    archive: &R,
    len: u64,
) -> Result<(Header, Vec<Entry>), PmTilesError> {
    let mut head = vec![0u8; HEADER_LEN.min(usize::try_from(len).unwrap_or(HEADER_LEN))];
    archive.read_exact_at(&mut head, 0)?;
    let header = Header::parse(&head)?;
    let root = read_section(archive, len, header.root_dir_offset, header.root_dir_length)?
        .ok_or(PmTilesError::CorruptDirectory("root directory outside the file"))?;
    let mut pending = vec![(decode_directory(&decompress(&root, header.internal_compression)?)?, 0u8)];
    let mut tiles = Vec::new();
    while let Some((entries, depth)) = pending.pop() {
        for e in entries {
            if e.run_length > 0 {
                tiles.push(e);
                continue;
            }
            if depth >= 3 {
                return Err(PmTilesError::CorruptDirectory("leaf directories nest deeper than 3"));
            }
            let leaf = header
                .leaf_dirs_offset
                .checked_add(e.offset)
                .map(|at| read_section(archive, len, at, u64::from(e.length)))
                .transpose()?
                .flatten()
                .ok_or(PmTilesError::CorruptDirectory("leaf outside the file"))?;
            pending.push((decode_directory(&decompress(&leaf, header.internal_compression)?)?, depth + 1));
        }
    }
    tiles.sort_by_key(|e| e.tile_id);
    Ok((header, tiles))
}

/// One tile of an archive held in memory (stored bytes, still compressed).
pub fn read_tile(archive: &[u8], tile: TileId) -> Result<Option<Vec<u8>>, PmTilesError> {
    let (header, entries) = tile_entries(archive)?;
    match find(&entries, tile.hilbert_id()) {
        Lookup::Tile { offset, length } => {
            section(archive, header.tile_data_offset + offset, u64::from(length))
                .map(|b| Some(b.to_vec()))
                .ok_or(PmTilesError::CorruptDirectory("tile outside the file"))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_whose_offsets_overflow_is_corrupt_not_a_panic() {
        // Two entries; the second's offset follows the first (varint 0), whose offset
        // and length add up past u64::MAX (the tiles_decode fuzz target's input).
        let mut bytes = Vec::new();
        for v in [2, 0, 1, 1, 1, u64::from(u32::MAX), 1, u64::MAX, 0] {
            write_varint(&mut bytes, v);
        }
        assert!(matches!(decode_directory(&bytes), Err(PmTilesError::CorruptDirectory("offset overflows"))));
    }

    fn info() -> ArchiveInfo {
        ArchiveInfo {
            bounds: [24.9, 60.1, 25.0, 60.2],
            center: [24.95, 60.15],
            center_zoom: 14,
            metadata: serde_json::json!({"name": "t"}),
        }
    }

    #[test]
    fn writes_and_reads_back_with_dedup_and_runs() {
        let mut w = Writer::new(TileType::Mvt, Compression::None);
        let t = |z, x, y| TileId::new(z, x, y).expect("valid tile");
        w.add_tile(t(1, 0, 0), b"same").expect("add");
        w.add_tile(t(1, 0, 1), b"same").expect("add");
        w.add_tile(t(0, 0, 0), b"root").expect("add");
        w.add_tile(t(2, 3, 3), b"same").expect("add");
        let mut bytes = Vec::new();
        let header = w.finish(&info(), &mut bytes).expect("write");
        assert!(!header.clustered, "the root tile's content came after the others'");
        assert_eq!(header.addressed_tiles_count, 4);
        assert_eq!(header.tile_contents_count, 2);
        // Tiles 1/0/0 and 1/0/1 have ids 1 and 2: one run of two.
        assert_eq!(header.tile_entries_count, 3);
        assert_eq!((header.min_zoom, header.max_zoom), (0, 2));
        assert_eq!(Header::parse(&bytes).expect("header"), header);
        assert_eq!(read_tile(&bytes, t(1, 0, 1)).expect("read"), Some(b"same".to_vec()));
        assert_eq!(read_tile(&bytes, t(0, 0, 0)).expect("read"), Some(b"root".to_vec()));
        assert_eq!(read_tile(&bytes, t(1, 1, 1)).expect("read"), None);
        assert_eq!(read_tile(&bytes, t(2, 3, 3)).expect("read"), Some(b"same".to_vec()));
    }

    #[test]
    fn a_spilled_archive_is_its_prefix_then_the_spill_and_clustered_in_id_order() {
        let t = |z, x, y| TileId::new(z, x, y).expect("valid tile");
        let tiles = [(t(0, 0, 0), &b"root"[..]), (t(1, 0, 0), b"a"), (t(1, 0, 1), b"b"), (t(1, 1, 1), b"a")];
        let mut spilled = Writer::with_spill(TileType::Mvt, Compression::None, Vec::new());
        let mut memory = Writer::new(TileType::Mvt, Compression::None);
        for (tile, bytes) in tiles {
            spilled.add_tile(tile, bytes).expect("add");
            memory.add_tile(tile, bytes).expect("add");
        }
        let (header, prefix, spill) = spilled.finish_parts(&info()).expect("parts");
        assert!(header.clustered, "contents arrived in tile id order");
        assert_eq!(spill, b"rootab", "each content once, as it arrived");
        assert_eq!(prefix.len() as u64, header.tile_data_offset);
        let mut whole = Vec::new();
        memory.finish(&info(), &mut whole).expect("write");
        assert_eq!([prefix, spill].concat(), whole);
        assert_eq!(read_tile(&whole, t(1, 1, 1)).expect("read"), Some(b"a".to_vec()));
    }

    #[test]
    fn splits_large_directories_into_leaves() {
        let mut w = Writer::new(TileType::Mvt, Compression::None);
        // Scattered tiles with varied sizes, so the directory does not compress away.
        let mut state = 0x2545_f491_u64;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let mut probe = None;
        for i in 0..40_000u32 {
            let tile = TileId::new(14, next() % 16_384, next() % 16_384).expect("valid");
            let bytes = vec![(i % 251) as u8; 1 + (next() % 300) as usize];
            if i == 31_337 {
                probe = Some((tile, bytes.clone()));
            }
            w.add_tile(tile, &bytes).expect("add");
        }
        let mut bytes = Vec::new();
        let header = w.finish(&info(), &mut bytes).expect("write");
        assert!(header.leaf_dirs_length > 0, "40 000 scattered entries need leaves");
        assert!(header.root_dir_offset + header.root_dir_length <= ROOT_BUDGET as u64);
        let (tile, want) = probe.expect("probe tile");
        assert_eq!(read_tile(&bytes, tile).expect("read"), Some(want.clone()));
        // The flattened index finds the same bytes.
        let (header, entries) = tile_entries(&bytes).expect("entries");
        assert_eq!(entries.len() as u64, header.tile_entries_count);
        let Lookup::Tile { offset, length } = find(&entries, tile.hilbert_id()) else {
            panic!("tile in index")
        };
        let start = (header.tile_data_offset + offset) as usize;
        assert_eq!(&bytes[start..start + length as usize], &want[..]);
    }

    #[test]
    fn rejects_corrupt_archives_with_reasons() {
        assert!(matches!(Header::parse(b"short"), Err(PmTilesError::ShortHeader(5))));
        let mut bad = vec![0u8; 127];
        bad[..7].copy_from_slice(b"PMTilez");
        assert!(matches!(Header::parse(&bad), Err(PmTilesError::BadMagic(_))));
        bad[..7].copy_from_slice(b"PMTiles");
        bad[7] = 2;
        assert!(matches!(Header::parse(&bad), Err(PmTilesError::UnsupportedVersion(2))));
        assert!(decode_directory(&[0xff, 0xff]).is_err());
        assert!(decode_directory(&[5, 1]).is_err());
    }
}

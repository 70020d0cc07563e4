//! Point clouds (LAS 1.0–1.4, LAZ, COPC) to 3D Tiles 1.1 with `POINTS` content.
//!
//! Files stream chunk by chunk through the `las` crate; each chunk is reprojected
//! in one PROJ batch into the layer's east-north-up frame and handed to the
//! [`octree`] builder, which keeps only a few levels in memory and spills the rest.
//! Each finished node becomes one GLB ([`cim_core::points`]); the tileset is written
//! last, from the nodes' tight bounds, with additive refinement.

pub mod crs;
pub mod octree;

/// Tests' deterministic numbers in 0..1 (xorshift64), the same on every machine.
#[cfg(test)]
fn scatter(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use cim_core::catalogue::{LayerContent, PointCloudSummary, QualityReport, TILESET_DIR};
use cim_core::frame::EnuFrame;
use cim_core::points::{PointTile, write_points_glb};
use cim_core::tileset::{Asset, BoundingVolume, Content, Refine, Tile, Tileset};

use crate::IngestError;
use crate::options::IngestOptions;
use crate::run::{Built, GENERATOR, Kind, LayerRun, Takes, write_json};
use crs::CloudCrs;
use octree::{Builder, CloudPoint, Cube, NodeId, NodeSink};

pub const KIND: Kind = Kind {
    name: "point cloud",
    inputs: "point clouds",
    takes: Takes { attribute_rules: false, coarsen: false, anchor: true },
    build,
};
/// Points read and reprojected per batch.
const CHUNK: u64 = 100_000;

fn open(path: &Path) -> Result<las::Reader, IngestError> {
    check_header_bounds(path)?;
    decode_or_refuse(path, "not a readable LAS/LAZ file", || las::Reader::from_path(path))
}

/// Refuses headers that would make the LAS/LAZ reader overflow or reserve memory
/// for what the file cannot hold: a LAS 1.4 point count whose size overflows, or a
/// LAZ chunk table claiming more chunks than the file has bytes (the fuzzer found a
/// 24-byte change asking for gigabytes).
fn check_header_bounds(path: &Path) -> Result<(), IngestError> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |reason: String| IngestError::source(path, reason);
    let mut file = std::fs::File::open(path).map_err(|e| IngestError::source(path, e))?;
    let file_len = file.metadata().map_err(|e| IngestError::source(path, e))?.len();
    let mut header = [0u8; 107];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"LASF" {
        return Ok(()); // the LAS reader gives the precise error
    }
    // LAS 1.4 counts points in 64 bits: the reader's own arithmetic on a crafted
    // count overflows (found by the las fuzz target), so the product is checked here.
    if header[25] >= 4 {
        let mut count = [0u8; 8];
        if file.seek(SeekFrom::Start(247)).is_ok() && file.read_exact(&mut count).is_ok() {
            let count = u64::from_le_bytes(count);
            let record = u64::from(u16::from_le_bytes([header[105], header[106]]));
            let start = u64::from(u32::from_le_bytes([header[96], header[97], header[98], header[99]]));
            if count.checked_mul(record).and_then(|b| b.checked_add(start)).is_none() {
                return Err(bad(format!(
                    "the header claims {count} points of {record} bytes, more than any file can hold (corrupt header)"
                )));
            }
        }
        // The reader allocates the first extended VLR's claimed length (64 bits) before
        // reading it: a crafted length aborts the process (found by the las fuzz target).
        let mut evlrs = [0u8; 12];
        if file.seek(SeekFrom::Start(235)).is_ok() && file.read_exact(&mut evlrs).is_ok() {
            let start = u64::from_le_bytes(evlrs[..8].try_into().unwrap_or_default());
            let count = u32::from_le_bytes(evlrs[8..].try_into().unwrap_or_default());
            let mut length = [0u8; 8];
            if count > 0
                && file.seek(SeekFrom::Start(start.saturating_add(20))).is_ok()
                && file.read_exact(&mut length).is_ok()
            {
                let length = u64::from_le_bytes(length);
                if start.saturating_add(60).saturating_add(length) > file_len {
                    return Err(bad(format!(
                        "the extended VLR at byte {start} claims {length} bytes, past the end of the file ({file_len} bytes)"
                    )));
                }
            }
        }
    }
    let compressed = header[104] & 0xC0 != 0;
    if !compressed {
        return Ok(());
    }
    let point_data = u64::from(u32::from_le_bytes([header[96], header[97], header[98], header[99]]));
    let mut word = [0u8; 8];
    if file.seek(SeekFrom::Start(point_data)).is_err() || file.read_exact(&mut word).is_err() {
        return Err(bad(format!(
            "LAZ: the point data offset {point_data} lies past the end of the file ({file_len} bytes)"
        )));
    }
    let table = i64::from_le_bytes(word);
    if table < 0 {
        return Ok(()); // no chunk table written: the reader scans the chunks
    }
    let table = table.unsigned_abs();
    let mut entry = [0u8; 8];
    if table.saturating_add(8) > file_len
        || file.seek(SeekFrom::Start(table)).is_err()
        || file.read_exact(&mut entry).is_err()
    {
        return Err(bad(format!(
            "LAZ: the chunk table offset {table} lies past the end of the file ({file_len} bytes)"
        )));
    }
    let chunks = u64::from(u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]));
    if chunks > file_len {
        return Err(bad(format!(
            "LAZ: the chunk table claims {chunks} chunks in a file of {file_len} bytes (corrupt or truncated)"
        )));
    }
    Ok(())
}

struct Source {
    path: PathBuf,
    crs: CloudCrs,
    points: u64,
    /// `[min, max]` of the header.
    header_box: [[f64; 3]; 2],
}

/// One node's facts, for the tileset.
#[derive(Debug, Clone)]
struct NodeInfo {
    points: u64,
    /// Tight `[min, max]` in the layer's ENU frame.
    bounds: [[f64; 3]; 2],
    step: f64,
}

struct TileWriter {
    content_dir: PathBuf,
    with_color: bool,
    nodes: Mutex<HashMap<NodeId, NodeInfo>>,
    by_class: Mutex<BTreeMap<u8, u64>>,
}

impl NodeSink for TileWriter {
    fn node(&self, id: NodeId, points: Vec<CloudPoint>) -> Result<(), String> {
        let mut bounds = [[f64::INFINITY; 3], [f64::NEG_INFINITY; 3]];
        let mut by_class: BTreeMap<u8, u64> = BTreeMap::new();
        for p in &points {
            grow(&mut bounds, p.enu);
            *by_class.entry(p.class).or_default() += 1;
        }
        let centre: [f64; 3] = [0, 1, 2].map(|k| (bounds[0][k] + bounds[1][k]) / 2.0);
        let half = (0..3).map(|k| (bounds[1][k] - bounds[0][k]) / 2.0).fold(1e-6, f64::max);
        // glTF is y-up: (east, north, up) is (east, up, -north) there.
        let gltf = |e: [f64; 3]| [e[0], e[2], -e[1]];
        let mut tile = PointTile::new(gltf(centre), half, self.with_color);
        for p in &points {
            tile.push(gltf(p.enu), p.rgb, p.intensity, p.class)
                .ok_or_else(|| format!("node {}: a point left its own bounds", id.name()))?;
        }
        let path = self.content_dir.join(format!("{}.glb", id.name()));
        std::fs::write(&path, write_points_glb(&tile, GENERATOR))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let info = NodeInfo { points: points.len() as u64, bounds, step: tile.step };
        self.nodes.lock().map_err(|e| e.to_string())?.insert(id, info);
        let mut total = self.by_class.lock().map_err(|e| e.to_string())?;
        for (c, n) in by_class {
            *total.entry(c).or_default() += n;
        }
        Ok(())
    }
}

fn grow(bounds: &mut [[f64; 3]; 2], p: [f64; 3]) {
    for (k, v) in p.into_iter().enumerate() {
        bounds[0][k] = bounds[0][k].min(v);
        bounds[1][k] = bounds[1][k].max(v);
    }
}

/// Streams every file's points into the layer frame, counting what it drops.
struct PointStream<'a> {
    sources: &'a [Source],
    frame: EnuFrame,
    cube: Cube,
    options: &'a IngestOptions,
    next_source: usize,
    reader: Option<(las::Reader, usize, u64)>,
    /// Whether the current file's colours use 16 bits (else the 8-bit values sit in
    /// the low byte, as many writers do).
    wide_color: bool,
    quality: &'a mut QualityReport,
    progress: indicatif::ProgressBar,
    read: u64,
    /// Time spent decoding LAS/LAZ and in PROJ, for the log's stage split.
    decode: std::time::Duration,
    reproject: std::time::Duration,
}

/// Runs one call into the third-party LAS/LAZ decoder, turning both its error and
/// a panic into an error naming the file and the position. laz 0.13 has arithmetic
/// that a corrupt compressed stream can overflow (found by scripts/fuzz.sh las); a
/// panic there must fail this ingest cleanly, not the whole job.
fn decode_or_refuse<T>(
    path: &Path,
    position: &str,
    decode: impl FnOnce() -> las::Result<T>,
) -> Result<T, IngestError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(IngestError::source(path, format!("{position}: {e}"))),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no detail".into());
            Err(IngestError::source(
                path,
                format!("{position}: the point decoder failed on corrupt data ({detail})"),
            ))
        }
    }
}

/// Whether a panic was raised inside a decoder whose calls [`decode_or_refuse`]
/// guards (laz; its path holds `laz-<version>/src`).
fn in_guarded_decoder(file: &str) -> bool {
    file.split(['/', '\\']).any(|part| part.starts_with("laz-"))
}

/// Wraps the process's panic hook so a panic inside a guarded decoder goes to the
/// debug log instead of stderr: [`decode_or_refuse`] reports it as an error naming
/// the file and position, which is what the user should read. Every other panic
/// keeps the previous hook (a decoder panic outside a guard still ends in one: the
/// ingest thread's own).
pub fn route_decoder_panics_to_their_guard() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match info.location() {
        Some(at) if in_guarded_decoder(at.file()) => {
            tracing::debug!(at = %at, "a guarded point decoder panicked: {info}");
        }
        _ => previous(info),
    }));
}

impl PointStream<'_> {
    /// The next chunk's points, `None` after the last file.
    fn next_chunk(&mut self) -> Result<Option<Vec<CloudPoint>>, IngestError> {
        loop {
            if self.options.cancel.load(Ordering::Relaxed) {
                return Err(IngestError::Interrupted(self.options.layer.clone()));
            }
            if self.reader.is_none() {
                let Some(source) = self.sources.get(self.next_source) else { return Ok(None) };
                self.reader = Some((open(&source.path)?, self.next_source, 0));
                self.next_source += 1;
                self.wide_color = false;
            }
            let Some((reader, index, done)) = &mut self.reader else { return Ok(None) };
            let source = &self.sources[*index];
            let want = CHUNK.min(source.points - *done);
            if want == 0 {
                self.reader = None;
                continue;
            }
            let decoding = std::time::Instant::now();
            let position = format!("reading points after point {done} of {}", source.points);
            let data = decode_or_refuse(&source.path, &position, || reader.read_points(want))?;
            if data.is_empty() {
                return Err(IngestError::source(
                    &source.path,
                    format!("the header promises {} points but the file ends after {done}", source.points),
                ));
            }
            let first = *done;
            *done += data.len() as u64;
            let mut xs: Vec<f64> = data.x().collect();
            let mut ys: Vec<f64> = data.y().collect();
            let mut zs: Vec<f64> = data.z().collect();
            let reprojecting = std::time::Instant::now();
            self.decode += reprojecting - decoding;
            source.crs.to_geodetic_gridded(&mut xs, &mut ys, &mut zs);
            self.reproject += reprojecting.elapsed();
            let colors: Option<Vec<(u16, u16, u16)>> = data.rgb().map(Iterator::collect);
            if let Some(c) = &colors
                && c.iter().any(|&(r, g, b)| r.max(g).max(b) > 255)
            {
                self.wide_color = true;
            }
            let shift = if self.wide_color { 8 } else { 0 };
            let mut out = Vec::with_capacity(data.len());
            for (i, (intensity, class)) in data.intensity().zip(data.classification()).enumerate() {
                let (lon, lat, h) = (xs[i], ys[i], zs[i]);
                let mut drop_point = |reason: &str, problem: &str| {
                    self.quality.count_dropped(reason);
                    self.quality.example(
                        &source.path.display().to_string(),
                        &format!("point {}", first + i as u64),
                        problem,
                    );
                };
                if !(lon.is_finite() && lat.is_finite() && h.is_finite()) || lat.abs() > 90.0 {
                    drop_point("could not be reprojected", "PROJ could not move it into the service frame");
                    continue;
                }
                let enu = self.frame.to_local(lon, lat, h);
                if !self.cube.contains(enu) {
                    drop_point("outside the header's bounds", "lies outside the bounds its header declares");
                    continue;
                }
                let rgb = colors.as_ref().map_or([255; 3], |c| {
                    let (r, g, b) = c[i];
                    [(r >> shift) as u8, (g >> shift) as u8, (b >> shift) as u8]
                });
                out.push(CloudPoint { enu, rgb, intensity, class });
            }
            self.read += data.len() as u64;
            self.progress.set_position(self.read);
            return Ok(Some(out));
        }
    }
}

/// The header box's corners, edge midpoints and centre in the layer frame.
fn box_samples(source: &Source) -> Vec<[f64; 3]> {
    let [lo, hi] = source.header_box;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut zs = Vec::new();
    for i in 0..3 {
        for j in 0..3 {
            for k in 0..3 {
                let t = |a: f64, b: f64, s: usize| a + (b - a) * s as f64 / 2.0;
                xs.push(t(lo[0], hi[0], i));
                ys.push(t(lo[1], hi[1], j));
                zs.push(t(lo[2], hi[2], k));
            }
        }
    }
    source.crs.to_geodetic(&mut xs, &mut ys, &mut zs);
    (0..xs.len()).map(|i| [xs[i], ys[i], zs[i]]).filter(|p| p.iter().all(|c| c.is_finite())).collect()
}

fn tile_tree(
    id: NodeId,
    nodes: &HashMap<NodeId, NodeInfo>,
    children: &HashMap<NodeId, Vec<NodeId>>,
    cube: &Cube,
) -> (Tile, [[f64; 3]; 2]) {
    let info = &nodes[&id];
    let mut bounds = info.bounds;
    let mut kids = Vec::new();
    for &child in children.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
        let (tile, b) = tile_tree(child, nodes, children, cube);
        for k in 0..3 {
            bounds[0][k] = bounds[0][k].min(b[0][k]);
            bounds[1][k] = bounds[1][k].max(b[1][k]);
        }
        kids.push(tile);
    }
    let centre = [0, 1, 2].map(|k| (bounds[0][k] + bounds[1][k]) / 2.0);
    // A box may not be flat: give it a millimetre where all points share a plane.
    let half = [0, 1, 2].map(|k| ((bounds[1][k] - bounds[0][k]) / 2.0).max(0.0005));
    // Leaving out the children misses points by at most this node's cell diagonal.
    let geometric_error = if kids.is_empty() { 0.0 } else { cube.cell(id.level) * 3f64.sqrt() };
    let tile = Tile {
        bounding_volume: BoundingVolume {
            region: None,
            oriented_box: Some([
                centre[0], centre[1], centre[2], half[0], 0.0, 0.0, 0.0, half[1], 0.0, 0.0, 0.0, half[2],
            ]),
            sphere: None,
        },
        geometric_error,
        refine: Some(Refine::Add),
        content: Some(Content { uri: format!("content/{}.glb", id.name()), bounding_volume: None }),
        transform: None,
        children: kids,
    };
    (tile, bounds)
}

/// Streams every point cloud file into one octree of 3D Tiles.
fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    let started = std::time::Instant::now();
    let mut quality = std::mem::take(&mut run.quality);
    let mut sources = Vec::new();
    let mut with_color = false;
    for path in &options.files {
        let reader = open(path)?;
        let header = reader.header();
        let crs = CloudCrs::resolve(path, header, options.src_crs.as_deref(), options.anchor.as_ref())?;
        for w in &crs.warnings {
            quality.warnings.push(format!("{}: {w}", path.display()));
        }
        with_color |= header.point_format().has_color;
        let b = header.bounds();
        let version = header.version();
        let format = header.point_format();
        run.source(
            path,
            format!(
                "LAS {}.{} point format {}{}",
                version.major,
                version.minor,
                format.to_u8().unwrap_or(u8::MAX),
                if format.is_compressed { " (LAZ)" } else { "" }
            ),
        )?;
        sources.push(Source {
            path: path.clone(),
            crs,
            points: header.number_of_points(),
            header_box: [[b.min.x, b.min.y, b.min.z], [b.max.x, b.max.y, b.max.z]],
        });
    }
    let total: u64 = sources.iter().map(|s| s.points).sum();
    let Some(first) = sources.first() else {
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why: "no input files".into() });
    };
    // The layer's frame sits at the first file's centre, at its lowest height.
    let geodetic = box_samples(first);
    let Some(centre) = geodetic.get(13).copied().filter(|_| geodetic.len() == 27) else {
        return Err(IngestError::source(
            &first.path,
            "its header's bounds cannot be moved into the service frame",
        ));
    };
    let lowest = geodetic.iter().map(|p| p[2]).fold(f64::INFINITY, f64::min);
    let frame = EnuFrame::at(centre[0], centre[1], lowest);
    // The root cube holds every header's box, with a margin for the curvature
    // between sampled points and rounding in the headers.
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for source in &sources {
        for g in box_samples(source) {
            let p = frame.to_local(g[0], g[1], g[2]);
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
    }
    let extent = (0..3).map(|k| hi[k] - lo[k]).fold(0.0, f64::max);
    let size = extent * 1.01 + 0.02;
    let cube = Cube { min: [0, 1, 2].map(|k| (lo[k] + hi[k]) / 2.0 - size / 2.0), size };

    let dir = run.stage()?;
    let content_dir = dir.join(TILESET_DIR).join("content");
    let spill_dir = dir.join(".spill");
    for d in [&content_dir, &spill_dir] {
        std::fs::create_dir_all(d).map_err(|e| IngestError::store(d, e))?;
    }
    let writer = TileWriter {
        content_dir,
        with_color,
        nodes: Mutex::new(HashMap::new()),
        by_class: Mutex::new(BTreeMap::new()),
    };
    let progress = crate::progress::progress_bar(
        options.progress,
        total,
        "points",
        Some("{spinner} {prefix:>10} [{bar:30}] {human_pos}/{human_len} points, {per_sec}, eta {eta}"),
    );
    let mut stream = PointStream {
        sources: &sources,
        frame,
        cube,
        options,
        next_source: 0,
        reader: None,
        wide_color: false,
        quality: &mut quality,
        progress: progress.clone(),
        read: 0,
        decode: std::time::Duration::ZERO,
        reproject: std::time::Duration::ZERO,
    };
    // This thread reads and reprojects while another builds the tree.
    let builder = Builder {
        cube,
        in_memory_points: octree::IN_MEMORY_POINTS,
        spill_dir: spill_dir.clone(),
        sink: &writer,
    };
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<CloudPoint>>(4);
    let stages = std::time::Instant::now();
    let (read, built) = std::thread::scope(|scope| {
        let building = scope.spawn(move || {
            let mut points = received.into_iter().flatten().map(Ok::<_, String>);
            if total <= octree::IN_MEMORY_POINTS {
                let all: Vec<CloudPoint> = points.by_ref().filter_map(Result::ok).collect();
                builder.build_in_memory(NodeId::ROOT, all)
            } else {
                builder.build_stream(NodeId::ROOT, &mut points)
            }
        });
        let read = loop {
            match stream.next_chunk() {
                Ok(Some(chunk)) => {
                    if chunks.send(chunk).is_err() {
                        break Ok(stream.read); // the builder stopped; its error says why
                    }
                }
                Ok(None) => break Ok(stream.read),
                Err(e) => break Err(e),
            }
        };
        drop(chunks);
        let built = building.join().unwrap_or_else(|_| Err("the octree builder panicked".into()));
        (read, built)
    });
    progress.finish_and_clear();
    tracing::info!(
        stage = "points_read",
        decode_ms = stream.decode.as_millis() as u64,
        reproject_ms = stream.reproject.as_millis() as u64,
        total_ms = stages.elapsed().as_millis() as u64,
        "points read and tiled"
    );
    let read = read?;
    built.map_err(|text| IngestError::source(&first.path, text))?;
    let _ = std::fs::remove_dir_all(&spill_dir);

    let nodes =
        writer.nodes.into_inner().map_err(|_| IngestError::source(&first.path, "a tile writer panicked"))?;
    let by_class = writer
        .by_class
        .into_inner()
        .map_err(|_| IngestError::source(&first.path, "a tile writer panicked"))?;
    let written: u64 = nodes.values().map(|n| n.points).sum();
    quality.features_read = read;
    quality.features_written = written;
    if written == 0 {
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why: quality.summary_line() });
    }
    let mut children: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for id in nodes.keys() {
        if let Some(parent) = id.parent() {
            children.entry(parent).or_default().push(*id);
        }
    }
    children.values_mut().for_each(|c| c.sort());
    let (mut root, bounds) = tile_tree(NodeId::ROOT, &nodes, &children, &cube);
    root.transform = Some(frame.to_ecef_matrix());
    let diagonal = (0..3).map(|k| (bounds[1][k] - bounds[0][k]).powi(2)).sum::<f64>().sqrt();
    let tileset = Tileset {
        asset: Asset { version: "1.1".into(), tileset_version: None, generator: Some(GENERATOR.into()) },
        geometric_error: diagonal.max(root.geometric_error),
        root,
    };
    write_json(&dir.join(TILESET_DIR).join("tileset.json"), &tileset)?;
    crate::run::write_no_features(&dir)?;

    // Geographic bounds from the tight box's corners.
    let mut wgs = crate::run::NO_BOUNDS;
    for i in 0..8 {
        let corner = [0, 1, 2].map(|k| if i >> k & 1 == 0 { bounds[0][k] } else { bounds[1][k] });
        let (lon, lat, h) = frame.to_geodetic(corner);
        for (k, v) in [lon, lat, h].into_iter().enumerate() {
            wgs[k] = wgs[k].min(v);
            wgs[k + 3] = wgs[k + 3].max(v);
        }
    }
    let levels = nodes.keys().map(|id| id.level).max().unwrap_or(0) + 1;
    let summary = PointCloudSummary {
        points: written,
        points_by_class: by_class,
        has_color: with_color,
        levels,
        tiles: nodes.len() as u64,
        root_spacing: cube.cell(0),
        max_quantisation_step: nodes.values().map(|n| n.step).fold(0.0, f64::max),
    };
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        stage = "points",
        points = written,
        tiles = nodes.len(),
        levels,
        points_per_s = (read as f64 / seconds.max(1e-9)) as u64,
        "point cloud written"
    );
    run.quality = quality;
    Ok(Built {
        geometry_types: vec!["Point".into()],
        ..Built::tiles_3d(
            LayerContent::PointCloud(summary),
            wgs,
            sources.iter().map(|s| s.crs.label.clone()).collect::<Vec<_>>().join("; "),
            nodes.len(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_point_decoder_becomes_an_error_naming_the_file_and_position() {
        let path = Path::new("/drops/corrupt.laz");
        let position = "reading points after point 4096 of 10653";
        let refused = decode_or_refuse::<u64>(path, position, || {
            let symbols: u32 = std::hint::black_box(u32::MAX);
            Ok(u64::from(symbols.checked_mul(2).expect("attempt to multiply with overflow")))
        })
        .expect_err("a panicking decoder must be refused");
        let text = refused.to_string();
        assert!(text.contains("/drops/corrupt.laz"), "{text}");
        assert!(text.contains("after point 4096 of 10653"), "{text}");
        assert!(text.contains("multiply with overflow"), "{text}");

        let failed = decode_or_refuse::<u64>(path, position, || Err(las::Error::ClosedWriter))
            .expect_err("the decoder's own error passes through");
        assert!(failed.to_string().contains("after point 4096"), "{failed}");

        let read = decode_or_refuse(path, position, || Ok(7u64));
        assert_eq!(read.ok(), Some(7));
    }

    #[test]
    fn only_the_guarded_decoders_panics_are_routed_to_the_guard() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        assert!(in_guarded_decoder(&format!("{registry}/laz-0.13.0/src/laszip/chunk_table.rs")));
        assert!(in_guarded_decoder("laz-0.13.0\\src\\las\\point6.rs"));
        assert!(!in_guarded_decoder(&format!("{registry}/las-0.11.2/src/reader/mod.rs")));
        assert!(!in_guarded_decoder("ingest/src/pointcloud/mod.rs"));
        assert!(!in_guarded_decoder("/rustc/59807616e1fa/library/core/src/panicking.rs"));
    }
}

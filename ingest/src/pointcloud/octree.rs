//! Level-of-detail octree by grid subsampling, in bounded memory.
//!
//! Every node lays a `GRID³` grid over its cube and keeps at most one point per
//! cell; a point whose cell is taken moves one level down. Each point is kept
//! exactly once (3D Tiles additive refinement), and a node's geometric error is its
//! cell diagonal: every point left to its descendants shares a cell with one it
//! keeps. The stream fills only a few levels at a time; points deeper go to one
//! spill file per node at the next level, and each spill file is built the same way
//! (in memory once it is small enough), so memory does not grow with the input.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// Cells per node edge.
pub const GRID: u32 = 128;
/// Levels filled per pass over a stream before the rest spills.
const LEVELS_PER_PASS: u8 = 2;
/// A spill file up to this many points is built in memory.
pub const IN_MEMORY_POINTS: u64 = 2_000_000;
/// A subtree of up to this many points (built in memory) becomes one leaf: small
/// tiles cost more in requests than they save in bytes.
pub const LEAF_POINTS: usize = 30_000;
/// Cells are never smaller than this (metres): the deepest level keeps every point.
const FINEST_CELL_M: f64 = 0.001;

/// Multiply-rotate hashing (as in rustc's FxHash) for the small integer keys placed
/// once per point per level: SipHash's resistance to chosen keys buys nothing here.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.add(u64::from(b)));
    }
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// A point in the layer's east-north-up frame with what the tiles carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloudPoint {
    pub enu: [f64; 3],
    pub rgb: [u8; 3],
    pub intensity: u16,
    pub class: u8,
}

const RECORD: usize = 24 + 3 + 2 + 1;

impl CloudPoint {
    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut b = [0u8; RECORD];
        for k in 0..3 {
            b[8 * k..8 * k + 8].copy_from_slice(&self.enu[k].to_le_bytes());
        }
        b[24..27].copy_from_slice(&self.rgb);
        b[27..29].copy_from_slice(&self.intensity.to_le_bytes());
        b[29] = self.class;
        out.write_all(&b)
    }

    fn read(b: &[u8; RECORD]) -> Self {
        let f = |k: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[8 * k..8 * k + 8]);
            f64::from_le_bytes(a)
        };
        Self {
            enu: [f(0), f(1), f(2)],
            rgb: [b[24], b[25], b[26]],
            intensity: u16::from_le_bytes([b[27], b[28]]),
            class: b[29],
        }
    }
}

/// An octree node: level and integer position among that level's `2^level` cubes
/// per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub x: u32,
    pub y: u32,
    pub z: u32,
}

impl NodeId {
    pub const ROOT: Self = Self { level: 0, x: 0, y: 0, z: 0 };

    pub fn parent(&self) -> Option<Self> {
        (self.level > 0).then(|| Self { level: self.level - 1, x: self.x / 2, y: self.y / 2, z: self.z / 2 })
    }

    /// The name its content file takes.
    pub fn name(&self) -> String {
        format!("{}-{}-{}-{}", self.level, self.x, self.y, self.z)
    }
}

/// The root cube and the grid.
#[derive(Debug, Clone, Copy)]
pub struct Cube {
    pub min: [f64; 3],
    pub size: f64,
}

impl Cube {
    /// Edge of a cell at `level`.
    pub fn cell(&self, level: u8) -> f64 {
        self.size / (f64::from(GRID) * 2f64.powi(i32::from(level)))
    }

    /// The level whose cells reach [`FINEST_CELL_M`]: it keeps all that arrives.
    pub fn deepest_level(&self) -> u8 {
        let mut level = 0;
        while self.cell(level) > FINEST_CELL_M && level < 24 {
            level += 1;
        }
        level
    }

    pub fn contains(&self, p: [f64; 3]) -> bool {
        (0..3).all(|k| p[k] >= self.min[k] && p[k] <= self.min[k] + self.size)
    }

    /// The node at `level` holding `p`, and `p`'s cell within it.
    fn locate(&self, p: [f64; 3], level: u8) -> (NodeId, u32) {
        let cells_per_axis = u64::from(GRID) << level;
        let cell = self.cell(level);
        let index =
            |k: usize| (((p[k] - self.min[k]) / cell).floor().max(0.0) as u64).min(cells_per_axis - 1);
        let (ix, iy, iz) = (index(0), index(1), index(2));
        let g = u64::from(GRID);
        let node = NodeId { level, x: (ix / g) as u32, y: (iy / g) as u32, z: (iz / g) as u32 };
        let local = (ix % g) + g * ((iy % g) + g * (iz % g));
        (node, local as u32)
    }
}

/// Receives each finished node's points (called from several threads).
pub trait NodeSink: Sync {
    fn node(&self, id: NodeId, points: Vec<CloudPoint>) -> Result<(), String>;
}

/// Places points in levels `[from, to)`, keeping one per cell.
struct Levels {
    cube: Cube,
    deepest: u8,
    nodes: FastMap<NodeId, (FastSet<u32>, Vec<CloudPoint>)>,
}

impl Levels {
    fn new(cube: Cube) -> Self {
        Self { cube, deepest: cube.deepest_level(), nodes: FastMap::default() }
    }

    /// The level that keeps `p`, or `None` when every level in the range is full there.
    fn place(&mut self, p: CloudPoint, from: u8, to: u8) -> Option<u8> {
        for level in from..to.min(self.deepest + 1) {
            let (node, cell) = self.cube.locate(p.enu, level);
            let entry = self.nodes.entry(node).or_default();
            if level == self.deepest || entry.0.insert(cell) {
                entry.1.push(p);
                return Some(level);
            }
        }
        None
    }

    fn emit(self, sink: &dyn NodeSink) -> Result<(), String> {
        let mut nodes: Vec<_> = self.nodes.into_iter().filter(|(_, (_, p))| !p.is_empty()).collect();
        nodes.sort_by_key(|(id, _)| *id);
        nodes.into_par_iter().try_for_each(|(id, (_, points))| sink.node(id, points))
    }
}

/// Builds the tree under `root` from `points`; `spill_dir` holds the spill files.
pub struct Builder<'a> {
    pub cube: Cube,
    /// A spill file up to this many points is built in memory (normally
    /// [`IN_MEMORY_POINTS`]); larger ones are streamed again.
    pub in_memory_points: u64,
    pub spill_dir: PathBuf,
    pub sink: &'a dyn NodeSink,
}

impl Builder<'_> {
    /// Builds from a stream of points (all inside the cube).
    pub fn build_stream<E: std::fmt::Display>(
        &self,
        root: NodeId,
        points: &mut dyn Iterator<Item = Result<CloudPoint, E>>,
    ) -> Result<(), String> {
        let mut levels = Levels::new(self.cube);
        let spill_level = root.level + LEVELS_PER_PASS;
        let mut spills: FastMap<NodeId, (BufWriter<File>, u64)> = FastMap::default();
        for p in points {
            let p = p.map_err(|e| e.to_string())?;
            if levels.place(p, root.level, spill_level).is_some() {
                continue;
            }
            let (node, _) = self.cube.locate(p.enu, spill_level);
            let (out, n) = match spills.get_mut(&node) {
                Some(s) => s,
                None => {
                    let path = self.spill_path(node);
                    let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    spills.entry(node).or_insert((BufWriter::with_capacity(1 << 18, file), 0))
                }
            };
            p.write(out).map_err(|e| format!("spill file: {e}"))?;
            *n += 1;
        }
        levels.emit(self.sink)?;
        let mut spilled = Vec::with_capacity(spills.len());
        for (node, (mut out, n)) in spills {
            out.flush().map_err(|e| format!("spill file: {e}"))?;
            spilled.push((node, n));
        }
        spilled.sort();
        spilled.into_par_iter().try_for_each(|(node, n)| self.build_spilled(node, n))
    }

    fn spill_path(&self, node: NodeId) -> PathBuf {
        self.spill_dir.join(format!("{}.points", node.name()))
    }

    fn build_spilled(&self, node: NodeId, count: u64) -> Result<(), String> {
        let path = self.spill_path(node);
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 18, file);
        if count <= self.in_memory_points {
            let mut points = Vec::with_capacity(count as usize);
            for _ in 0..count {
                points.push(read_record(&mut reader, &path)?);
            }
            let _ = std::fs::remove_file(&path);
            self.build_in_memory(node, points)
        } else {
            let mut stream = (0..count).map(|_| read_record(&mut reader, &path));
            let r = self.build_stream(node, &mut stream);
            let _ = std::fs::remove_file(&path);
            r
        }
    }

    /// Builds from points held in memory: the node keeps one point per cell and
    /// its eight children are built the same way, side by side. A node of at most
    /// [`LEAF_POINTS`] keeps them all (a leaf).
    pub fn build_in_memory(&self, node: NodeId, points: Vec<CloudPoint>) -> Result<(), String> {
        if points.len() <= LEAF_POINTS || node.level >= self.cube.deepest_level() {
            return if points.is_empty() { Ok(()) } else { self.sink.node(node, points) };
        }
        let mut taken = FastSet::with_capacity_and_hasher(points.len().min(1 << 16), Default::default());
        let mut kept = Vec::new();
        let mut children: [Vec<CloudPoint>; 8] = Default::default();
        for p in points {
            let (_, cell) = self.cube.locate(p.enu, node.level);
            if taken.insert(cell) {
                kept.push(p);
            } else {
                let (child, _) = self.cube.locate(p.enu, node.level + 1);
                let octant = (child.x & 1) | (child.y & 1) << 1 | (child.z & 1) << 2;
                children[octant as usize].push(p);
            }
        }
        self.sink.node(node, kept)?;
        let level = node.level + 1;
        children.into_par_iter().enumerate().filter(|(_, c)| !c.is_empty()).try_for_each(
            |(octant, points)| {
                let o = octant as u32;
                let child = NodeId {
                    level,
                    x: node.x * 2 + (o & 1),
                    y: node.y * 2 + (o >> 1 & 1),
                    z: node.z * 2 + (o >> 2),
                };
                self.build_in_memory(child, points)
            },
        )
    }
}

fn read_record(reader: &mut impl Read, path: &Path) -> Result<CloudPoint, String> {
    let mut b = [0u8; RECORD];
    reader.read_exact(&mut b).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(CloudPoint::read(&b))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(NodeId, Vec<CloudPoint>)>>);

    impl NodeSink for Collect {
        fn node(&self, id: NodeId, points: Vec<CloudPoint>) -> Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.push((id, points));
            Ok(())
        }
    }

    fn cloud(n: usize) -> Vec<CloudPoint> {
        // A deterministic scatter over a 100 m square with some relief.
        let mut next = super::super::scatter(0x2545_f491_4f6c_dd1d);
        (0..n)
            .map(|i| {
                let (x, y) = (next() * 100.0, next() * 100.0);
                CloudPoint {
                    enu: [x, y, 5.0 * (x / 10.0).sin()],
                    rgb: [1, 2, 3],
                    intensity: i as u16,
                    class: (i % 7) as u8,
                }
            })
            .collect()
    }

    fn check(nodes: &[(NodeId, Vec<CloudPoint>)], cube: Cube, input: &[CloudPoint]) {
        // Every point exactly once.
        let mut seen: Vec<u16> = nodes.iter().flat_map(|(_, p)| p.iter().map(|p| p.intensity)).collect();
        seen.sort_unstable();
        let mut want: Vec<u16> = input.iter().map(|p| p.intensity).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
        let ids: HashSet<NodeId> = nodes.iter().map(|(id, _)| *id).collect();
        let parents: HashSet<NodeId> = ids.iter().filter_map(NodeId::parent).collect();
        for (id, points) in nodes {
            // Connected: every node's parent holds points too.
            if let Some(parent) = id.parent() {
                assert!(ids.contains(&parent), "{id:?} has no parent");
            }
            // Inside its cube, and at most one point per cell above the deepest level.
            let size = cube.size / 2f64.powi(i32::from(id.level));
            let mut cells = HashSet::new();
            for p in points {
                for (k, i) in [id.x, id.y, id.z].into_iter().enumerate() {
                    let lo = cube.min[k] + f64::from(i) * size;
                    assert!(p.enu[k] >= lo - 1e-9 && p.enu[k] <= lo + size + 1e-9);
                }
                let (_, cell) = cube.locate(p.enu, id.level);
                // Leaves may hold a whole small subtree.
                let leaf = !parents.contains(id);
                assert!(leaf || cells.insert(cell), "two points in one cell of {id:?}");
            }
            if !parents.contains(id) {
                assert!(points.len() <= LEAF_POINTS || id.level == cube.deepest_level(), "{id:?} too big");
            }
        }
    }

    #[test]
    fn each_point_lands_once_one_per_cell_streamed_or_in_memory() {
        let input = cloud(60_000);
        let cube = Cube { min: [-1.0, -1.0, -50.0], size: 102.0 };
        let dir = std::env::temp_dir().join(format!("cim-octree-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let in_memory = Collect::default();
        Builder { cube, in_memory_points: IN_MEMORY_POINTS, spill_dir: dir.clone(), sink: &in_memory }
            .build_in_memory(NodeId::ROOT, input.clone())
            .expect("build");
        let streamed = Collect::default();
        let mut stream = input.iter().map(|p| Ok::<_, String>(*p));
        // Spill files of over 500 points stream again: several passes deep.
        Builder { cube, in_memory_points: 500, spill_dir: dir.clone(), sink: &streamed }
            .build_stream(NodeId::ROOT, &mut stream)
            .expect("build");
        let mut a = in_memory.0.into_inner().expect("lock");
        let mut b = streamed.0.into_inner().expect("lock");
        check(&a, cube, &input);
        check(&b, cube, &input);
        // Spilling changes only where small subtrees fold: the top levels agree.
        a.sort_by_key(|(id, _)| *id);
        b.sort_by_key(|(id, _)| *id);
        assert_eq!(a[0], b[0], "the root keeps the same points");
        assert!(a.len() > 4 && b.len() > 4, "a tree, not a lump: {} and {} nodes", a.len(), b.len());
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "spill files are removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

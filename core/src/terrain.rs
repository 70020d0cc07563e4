//! Terrain tile addressing and the terrain surface every side samples heights from.
//!
//! Terrain tiles follow the geographic tiling scheme of Cesium's terrain (TMS over
//! EPSG:4326: two tiles at zoom 0, `y` counted from the south). Each tile is a grid
//! of [`TILE_CELLS`]² cells whose sample positions are computed from global sample
//! indices, so two neighbouring tiles compute bit-identical positions (and heights)
//! on the edge they share.
//!
//! A [`TerrainSurface`] is one zoom level's triangulated meshes in grid coordinates:
//! what the ingest writes as 3D Tiles content, kept compact so the server can answer
//! `/api/elevation` and the ingest can set buildings on the ground with the very
//! triangles a client draws.

use thiserror::Error;

/// Cells along a terrain tile's side; a tile has `TILE_CELLS + 1` samples per side.
pub const TILE_CELLS: u32 = 64;

const SURFACE_MAGIC: &[u8; 8] = b"CIMTERR1";

/// A tile of the geographic terrain scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TerrainTile {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TerrainTile {
    /// Degrees a tile spans at zoom `z`, in both longitude and latitude.
    pub fn span(z: u8) -> f64 {
        180.0 / f64::from(1u32 << z)
    }

    /// Degrees between neighbouring samples at zoom `z`.
    pub fn sample_step(z: u8) -> f64 {
        Self::span(z) / f64::from(TILE_CELLS)
    }

    /// Longitude and latitude of the global sample `(gi, gj)` at zoom `z` (`gi` east
    /// from −180°, `gj` north from −90°).
    pub fn sample_position(z: u8, gi: i64, gj: i64) -> (f64, f64) {
        let step = Self::sample_step(z);
        (-180.0 + gi as f64 * step, -90.0 + gj as f64 * step)
    }

    /// The tile holding a position (its west and south edges are inside it).
    pub fn containing(z: u8, lon: f64, lat: f64) -> Option<Self> {
        if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) || z > 30 {
            return None;
        }
        let span = Self::span(z);
        let x = (((lon + 180.0) / span).floor() as u32).min((2u32 << z) - 1);
        let y = (((lat + 90.0) / span).floor() as u32).min((1u32 << z) - 1);
        Some(Self { z, x, y })
    }

    /// `[west, south, east, north]` degrees.
    pub fn bounds(&self) -> [f64; 4] {
        let span = Self::span(self.z);
        let west = -180.0 + f64::from(self.x) * span;
        let south = -90.0 + f64::from(self.y) * span;
        [west, south, west + span, south + span]
    }

    /// Global index of this tile's south-west sample.
    pub fn first_sample(&self) -> (i64, i64) {
        (i64::from(self.x) * i64::from(TILE_CELLS), i64::from(self.y) * i64::from(TILE_CELLS))
    }

    /// The four tiles one zoom finer.
    pub fn children(&self) -> [Self; 4] {
        let (z, x, y) = (self.z + 1, self.x * 2, self.y * 2);
        [Self { z, x, y }, Self { z, x: x + 1, y }, Self { z, x, y: y + 1 }, Self { z, x: x + 1, y: y + 1 }]
    }
}

/// One vertex of a surface tile: grid position (`i` east, `j` north, both
/// `0..=TILE_CELLS`) and height in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceVertex {
    pub i: u16,
    pub j: u16,
    pub h: f32,
}

/// One tile's triangles.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceTile {
    pub x: u32,
    pub y: u32,
    pub vertices: Vec<SurfaceVertex>,
    pub triangles: Vec<[u32; 3]>,
    /// Triangles overlapping each of `BUCKETS`² cells, so a height query tests a
    /// handful rather than all of them. Built by [`SurfaceTile::index`].
    buckets: Vec<Vec<u32>>,
}

/// Cells of a tile's triangle index per side.
const BUCKETS: usize = 16;

/// One zoom level of terrain meshes, tiles sorted by `(x, y)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TerrainSurface {
    pub zoom: u8,
    pub tiles: Vec<SurfaceTile>,
}

#[derive(Debug, Error, PartialEq)]
pub enum SurfaceError {
    #[error("not a terrain surface (bad magic)")]
    BadMagic,
    #[error("terrain surface ends early at byte {0}")]
    Truncated(usize),
    #[error("terrain surface tile {x}/{y}: {reason}")]
    BadTile { x: u32, y: u32, reason: String },
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SurfaceError> {
        let out = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(SurfaceError::Truncated(self.at))?;
        self.at += N;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, SurfaceError> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

impl TerrainSurface {
    /// Little-endian: magic, zoom (u32), tile count, then per tile `x`, `y`, vertex
    /// count, triangle count, vertices (`i` u16, `j` u16, `h` f32), triangles (3 × u32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SURFACE_MAGIC);
        out.extend_from_slice(&u32::from(self.zoom).to_le_bytes());
        out.extend_from_slice(&(self.tiles.len() as u32).to_le_bytes());
        for t in &self.tiles {
            for v in [t.x, t.y, t.vertices.len() as u32, t.triangles.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in &t.vertices {
                out.extend_from_slice(&v.i.to_le_bytes());
                out.extend_from_slice(&v.j.to_le_bytes());
                out.extend_from_slice(&v.h.to_le_bytes());
            }
            for tri in &t.triangles {
                for k in tri {
                    out.extend_from_slice(&k.to_le_bytes());
                }
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SurfaceError> {
        if bytes.get(..8) != Some(SURFACE_MAGIC.as_slice()) {
            return Err(SurfaceError::BadMagic);
        }
        let mut r = Reader { bytes, at: 8 };
        let zoom = u8::try_from(r.u32()?).map_err(|_| SurfaceError::BadMagic)?;
        let count = r.u32()? as usize;
        let mut tiles = Vec::with_capacity(count.min(bytes.len() / 16));
        for _ in 0..count {
            let (x, y) = (r.u32()?, r.u32()?);
            let (nv, nt) = (r.u32()? as usize, r.u32()? as usize);
            if nv.saturating_mul(8).saturating_add(nt.saturating_mul(12)) > bytes.len() - r.at {
                return Err(SurfaceError::Truncated(bytes.len()));
            }
            let mut vertices = Vec::with_capacity(nv);
            for _ in 0..nv {
                let i = u16::from_le_bytes(r.take::<2>()?);
                let j = u16::from_le_bytes(r.take::<2>()?);
                let h = f32::from_le_bytes(r.take::<4>()?);
                if u32::from(i.max(j)) > TILE_CELLS || !h.is_finite() {
                    return Err(SurfaceError::BadTile {
                        x,
                        y,
                        reason: format!("vertex ({i}, {j}, {h}) off the grid"),
                    });
                }
                vertices.push(SurfaceVertex { i, j, h });
            }
            let mut triangles = Vec::with_capacity(nt);
            for _ in 0..nt {
                let tri = [r.u32()?, r.u32()?, r.u32()?];
                if tri.iter().any(|&k| k as usize >= nv) {
                    return Err(SurfaceError::BadTile {
                        x,
                        y,
                        reason: "a triangle points past the vertices".into(),
                    });
                }
                triangles.push(tri);
            }
            tiles.push(SurfaceTile::new(x, y, vertices, triangles));
        }
        tiles.sort_by_key(|t| (t.x, t.y));
        Ok(Self { zoom, tiles })
    }

    pub fn tile(&self, x: u32, y: u32) -> Option<&SurfaceTile> {
        self.tiles.binary_search_by_key(&(x, y), |t| (t.x, t.y)).ok().map(|k| &self.tiles[k])
    }

    /// Height of the surface at a position, linear inside the triangle that holds
    /// it; `None` outside the terrain (or over a hole of no data).
    pub fn height_at(&self, lon: f64, lat: f64) -> Option<f64> {
        let tile = TerrainTile::containing(self.zoom, lon, lat)?;
        let step = TerrainTile::sample_step(self.zoom);
        // A position on a west or south edge also belongs to the neighbour there,
        // which may be the one that exists.
        let mut candidates = vec![(tile.x, tile.y)];
        let [west, south, ..] = tile.bounds();
        let (gx, gy) = ((lon - west) / step, (lat - south) / step);
        if gx < 1e-9 && tile.x > 0 {
            candidates.push((tile.x - 1, tile.y));
        }
        if gy < 1e-9 && tile.y > 0 {
            candidates.push((tile.x, tile.y - 1));
            if gx < 1e-9 && tile.x > 0 {
                candidates.push((tile.x - 1, tile.y - 1));
            }
        }
        for (x, y) in candidates {
            let Some(t) = self.tile(x, y) else { continue };
            let span = TerrainTile::span(self.zoom);
            let gx = (lon - (-180.0 + f64::from(x) * span)) / step;
            let gy = (lat - (-90.0 + f64::from(y) * span)) / step;
            if let Some(h) = t.height_at_grid(gx, gy) {
                return Some(h);
            }
        }
        None
    }
}

impl SurfaceTile {
    pub fn new(x: u32, y: u32, vertices: Vec<SurfaceVertex>, triangles: Vec<[u32; 3]>) -> Self {
        let mut tile = Self { x, y, vertices, triangles, buckets: Vec::new() };
        tile.index();
        tile
    }

    /// (Re)builds the triangle index.
    fn index(&mut self) {
        let cell = f64::from(TILE_CELLS) / BUCKETS as f64;
        let mut buckets = vec![Vec::new(); BUCKETS * BUCKETS];
        for (k, tri) in self.triangles.iter().enumerate() {
            let vs = tri.map(|v| {
                self.vertices.get(v as usize).map_or((0.0, 0.0), |p| (f64::from(p.i), f64::from(p.j)))
            });
            let range = |lo: f64, hi: f64| {
                let a = ((lo / cell).floor().max(0.0) as usize).min(BUCKETS - 1);
                let b = ((hi / cell).floor().max(0.0) as usize).min(BUCKETS - 1);
                a..=b
            };
            let (min_x, max_x) = (
                vs.iter().map(|v| v.0).fold(f64::MAX, f64::min),
                vs.iter().map(|v| v.0).fold(f64::MIN, f64::max),
            );
            let (min_y, max_y) = (
                vs.iter().map(|v| v.1).fold(f64::MAX, f64::min),
                vs.iter().map(|v| v.1).fold(f64::MIN, f64::max),
            );
            for by in range(min_y, max_y) {
                for bx in range(min_x, max_x) {
                    buckets[by * BUCKETS + bx].push(k as u32);
                }
            }
        }
        self.buckets = buckets;
    }

    /// Height at grid coordinates (fractional cells from the tile's south-west).
    pub fn height_at_grid(&self, gx: f64, gy: f64) -> Option<f64> {
        const EPS: f64 = 1e-9;
        let cell = f64::from(TILE_CELLS) / BUCKETS as f64;
        let bucket = |v: f64| ((v / cell).floor().max(0.0) as usize).min(BUCKETS - 1);
        let candidates = self.buckets.get(bucket(gy) * BUCKETS + bucket(gx));
        let all: Vec<u32>;
        let list: &[u32] = match candidates {
            Some(c) => c,
            None => {
                all = (0..self.triangles.len() as u32).collect();
                &all
            }
        };
        for tri in list.iter().filter_map(|&k| self.triangles.get(k as usize)) {
            let [a, b, c] = tri.map(|k| self.vertices[k as usize]);
            let (ax, ay) = (f64::from(a.i), f64::from(a.j));
            let (bx, by) = (f64::from(b.i), f64::from(b.j));
            let (cx, cy) = (f64::from(c.i), f64::from(c.j));
            if gx < ax.min(bx).min(cx) - EPS
                || gx > ax.max(bx).max(cx) + EPS
                || gy < ay.min(by).min(cy) - EPS
                || gy > ay.max(by).max(cy) + EPS
            {
                continue;
            }
            let det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy);
            if det.abs() < 1e-12 {
                continue;
            }
            let wa = ((by - cy) * (gx - cx) + (cx - bx) * (gy - cy)) / det;
            let wb = ((cy - ay) * (gx - cx) + (ax - cx) * (gy - cy)) / det;
            let wc = 1.0 - wa - wb;
            if wa >= -EPS && wb >= -EPS && wc >= -EPS {
                return Some(wa * f64::from(a.h) + wb * f64::from(b.h) + wc * f64::from(c.h));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane_tile(x: u32, y: u32, f: impl Fn(f64, f64) -> f64) -> SurfaceTile {
        let n = TILE_CELLS as u16;
        let vertices = [(0, 0), (n, 0), (n, n), (0, n)]
            .map(|(i, j)| SurfaceVertex { i, j, h: f(f64::from(i), f64::from(j)) as f32 })
            .to_vec();
        SurfaceTile::new(x, y, vertices, vec![[0, 1, 2], [0, 2, 3]])
    }

    #[test]
    fn neighbouring_tiles_compute_identical_edge_positions() {
        let z = 15;
        let left = TerrainTile { z, x: 34_300, y: 24_700 };
        let right = TerrainTile { z, x: 34_301, y: 24_700 };
        let (gi, gj) = right.first_sample();
        assert_eq!(gi, left.first_sample().0 + i64::from(TILE_CELLS));
        let [_, _, east, _] = left.bounds();
        let [west, ..] = right.bounds();
        assert_eq!(east.to_bits(), west.to_bits());
        assert_eq!(TerrainTile::sample_position(z, gi, gj).0.to_bits(), west.to_bits());
        assert_eq!(TerrainTile::containing(z, west, right.bounds()[1] + 1e-7), Some(right));
        assert_eq!(left.children()[3].bounds()[2], left.bounds()[2]);
    }

    #[test]
    fn surface_round_trips_and_interpolates_inside_its_triangles() {
        let tile = TerrainTile::containing(12, 4.84, 45.76).expect("tile");
        let slope = |i: f64, j: f64| 100.0 + 2.0 * i - 0.5 * j;
        let surface = TerrainSurface { zoom: 12, tiles: vec![plane_tile(tile.x, tile.y, slope)] };
        let back = TerrainSurface::from_bytes(&surface.to_bytes()).expect("parse");
        assert_eq!(back, surface);
        let [west, south, east, north] = tile.bounds();
        let step = TerrainTile::sample_step(12);
        for (fx, fy) in [(0.25, 0.75), (0.5, 0.5), (0.9, 0.1), (0.0, 0.0), (1.0, 1.0)] {
            let lon = west + fx * (east - west);
            let lat = south + fy * (north - south);
            let expected = slope((lon - west) / step, (lat - south) / step);
            let h = back.height_at(lon, lat).expect("inside");
            assert!((h - expected).abs() < 1e-3, "{fx},{fy}: {h} vs {expected}");
        }
        assert_eq!(back.height_at(west - 0.01, south + 0.001), None);
    }

    #[test]
    fn corrupt_surfaces_are_refused_with_a_reason() {
        let surface = TerrainSurface { zoom: 3, tiles: vec![plane_tile(1, 1, |_, _| 5.0)] };
        let bytes = surface.to_bytes();
        assert_eq!(TerrainSurface::from_bytes(b"nope"), Err(SurfaceError::BadMagic));
        assert!(matches!(
            TerrainSurface::from_bytes(&bytes[..bytes.len() - 3]),
            Err(SurfaceError::Truncated(_))
        ));
        let mut bad = bytes.clone();
        let last = bad.len() - 4;
        bad[last..].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(TerrainSurface::from_bytes(&bad), Err(SurfaceError::BadTile { x: 1, y: 1, .. })));
    }
}

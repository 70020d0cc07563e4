//! Fetched tile bodies into vertex arrays: the work that must not hold up a frame.
//! Natively it runs on the fetch threads. In a browser it runs in Web Workers that
//! run this same module (`platform/web.rs`), so jobs and results also have a byte form
//! that crosses `postMessage`: flat little-endian arrays, copied once on each side.

use cim_core::terrain::TerrainSurface;
use cim_core::tile::TileId;
use cim_core::tileset::Tileset;
use glam::{DMat4, DVec3};

use super::glb::{Content, Primitive, decode};
use crate::ground::{GroundClass, GroundMesh, tessellate};
use crate::points::PointVertices;

/// What to make of a fetched body.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// glTF content: buildings, BIM, terrain meshes, city models.
    Glb,
    /// A point cloud tile (POINTS GLB).
    Points,
    /// A vector tile (MVT, gzipped or not) draped in the render frame, on the terrain
    /// whose surface is at `terrain_url` where there is one.
    Ground { tile: TileId, to_render: DMat4, terrain_url: Option<String> },
    /// An external tileset (JSON: parsed where it is used, it has no byte form).
    Tileset,
}

/// What a job made.
#[derive(Debug)]
pub enum Decoded {
    Glb(Content),
    Points(PointVertices),
    /// One mesh per class.
    Ground(Vec<(GroundClass, GroundMesh)>),
    Tileset(Box<Tileset>),
}

impl Job {
    /// Whether a worker without the page's memory can do it (everything but a
    /// tileset, which the page parses itself: a worker would only hand back JSON).
    pub fn off_thread(&self) -> bool {
        !matches!(self, Job::Tileset)
    }

    /// Decodes `body`. `terrain` is the surface at the job's `terrain_url`, when the
    /// caller has it (a ground tile without it is draped flat).
    pub fn run(&self, body: Vec<u8>, terrain: Option<&TerrainSurface>) -> Result<Decoded, String> {
        match self {
            Job::Glb => decode(body).map(Decoded::Glb),
            Job::Points => cim_core::points::read_points_glb(&body)
                .map(|tile| Decoded::Points(PointVertices::from_tile(&tile)))
                .map_err(|e| e.to_string()),
            Job::Tileset => serde_json::from_slice::<Tileset>(&body)
                .map(|t| Decoded::Tileset(Box::new(t)))
                .map_err(|e| format!("external tileset: {e}")),
            Job::Ground { tile, to_render, .. } => {
                let plain = if body.starts_with(&[0x1f, 0x8b]) {
                    cim_core::pmtiles::decompress(&body, cim_core::pmtiles::Compression::Gzip)
                        .map_err(|e| e.to_string())?
                } else {
                    body
                };
                let layers = cim_core::mvt_decode::decode_tile(&plain).map_err(|e| e.to_string())?;
                let place = |lon: f64, lat: f64, h: f64| {
                    to_render.transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(lon, lat, h)))
                };
                Ok(Decoded::Ground(tessellate(&layers, *tile, &place, terrain)))
            }
        }
    }

    /// The job as bytes for a worker.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut w = Writer::default();
        match self {
            Job::Glb => w.u8(0),
            Job::Points => w.u8(1),
            Job::Ground { tile, to_render, terrain_url } => {
                w.u8(2);
                w.u8(tile.z);
                w.u32(tile.x);
                w.u32(tile.y);
                w.list(&to_render.to_cols_array());
                w.text(terrain_url.as_deref());
            }
            Job::Tileset => return Err("a tileset is parsed on the page".into()),
        }
        Ok(w.0)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        let job = match r.u8()? {
            0 => Job::Glb,
            1 => Job::Points,
            2 => {
                let (z, x, y) = (r.u8()?, r.u32()?, r.u32()?);
                let tile = TileId::new(u32::from(z), x, y).map_err(|e| format!("decode job: {e}"))?;
                let matrix: Vec<f64> = r.list()?;
                let matrix: [f64; 16] =
                    matrix.try_into().map_err(|_| "decode job: the matrix is not 4x4".to_owned())?;
                Job::Ground { tile, to_render: DMat4::from_cols_array(&matrix), terrain_url: r.text()? }
            }
            other => return Err(format!("decode job: unknown kind {other}")),
        };
        r.end()?;
        Ok(job)
    }
}

impl Decoded {
    /// The result as bytes for the page (a tileset has none: it never leaves the page).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut w = Writer::default();
        match self {
            Decoded::Glb(content) => {
                w.u8(0);
                w.u32(content.primitives.len() as u32);
                for p in &content.primitives {
                    w.arrays(&p.positions);
                    w.arrays(&p.normals);
                    w.list(&p.indices);
                    w.list(&p.feature_ids);
                    w.list(&p.node.to_cols_array());
                    w.text(p.material.as_deref());
                    w.arrays(&p.colors);
                }
                w.list(&content.fids);
            }
            Decoded::Points(v) => {
                w.u8(1);
                w.arrays(&v.corners);
                w.arrays(&v.attributes);
                w.list(&v.indices);
                w.list(&v.centre);
                w.list(&[v.step, v.up_range[0], v.up_range[1]]);
                w.u8(u8::from(v.has_color));
                w.u32(u32::from(v.intensity_top));
            }
            Decoded::Ground(meshes) => {
                w.u8(2);
                w.u32(meshes.len() as u32);
                for (class, mesh) in meshes {
                    w.u8(*class as u8);
                    w.arrays(&mesh.positions);
                    w.list(&mesh.indices);
                }
            }
            Decoded::Tileset(_) => return Err("a tileset is parsed on the page".into()),
        }
        Ok(w.0)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(bytes);
        let decoded = match r.u8()? {
            0 => {
                let count = r.u32()? as usize;
                let mut content = Content::default();
                for _ in 0..count {
                    let positions = r.arrays()?;
                    let normals = r.arrays()?;
                    let indices = r.list()?;
                    let feature_ids = r.list()?;
                    let node: Vec<f64> = r.list()?;
                    let node: [f64; 16] =
                        node.try_into().map_err(|_| "decoded tile: a node matrix is not 4x4".to_owned())?;
                    let material = r.text()?;
                    let colors = r.arrays()?;
                    content.primitives.push(Primitive {
                        positions,
                        normals,
                        indices,
                        feature_ids,
                        node: DMat4::from_cols_array(&node),
                        material,
                        colors,
                    });
                }
                content.fids = r.list()?;
                Decoded::Glb(content)
            }
            1 => {
                let corners = r.arrays()?;
                let attributes = r.arrays()?;
                let indices = r.list()?;
                let centre: Vec<f64> = r.list()?;
                let scalars: Vec<f64> = r.list()?;
                let (Ok(centre), &[step, low, high]) = (<[f64; 3]>::try_from(centre), scalars.as_slice())
                else {
                    return Err("decoded tile: bad point frame".into());
                };
                let has_color = r.u8()? != 0;
                let intensity_top = u16::try_from(r.u32()?).map_err(|e| format!("decoded tile: {e}"))?;
                Decoded::Points(PointVertices {
                    corners,
                    attributes,
                    indices,
                    centre,
                    step,
                    has_color,
                    up_range: [low, high],
                    intensity_top,
                })
            }
            2 => {
                let count = r.u32()? as usize;
                let mut meshes = Vec::new();
                for _ in 0..count {
                    let class = GroundClass::ALL
                        .get(usize::from(r.u8()?))
                        .copied()
                        .ok_or("decoded tile: unknown ground class")?;
                    meshes.push((class, GroundMesh { positions: r.arrays()?, indices: r.list()? }));
                }
                Decoded::Ground(meshes)
            }
            other => return Err(format!("decoded tile: unknown kind {other}")),
        };
        r.end()?;
        Ok(decoded)
    }
}

/// A number with a fixed little-endian width.
trait Le: Copy + Default {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    /// From exactly `SIZE` bytes.
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le {
    ($($t:ty),*) => {$(
        impl Le for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                bytes.try_into().map(<$t>::from_le_bytes).unwrap_or_default()
            }
        }
    )*};
}
le!(u8, i16, u32, u64, f32, f64);

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        v.put(&mut self.0);
    }

    fn list<T: Le>(&mut self, values: &[T]) {
        self.u32(values.len() as u32);
        self.0.reserve(values.len() * T::SIZE);
        for v in values {
            v.put(&mut self.0);
        }
    }

    fn arrays<T: Le, const N: usize>(&mut self, values: &[[T; N]]) {
        self.u32(values.len() as u32);
        self.0.reserve(values.len() * N * T::SIZE);
        for v in values.iter().flatten() {
            v.put(&mut self.0);
        }
    }

    /// Optional UTF-8 text: its length plus one (0 for none), then the bytes.
    fn text(&mut self, text: Option<&str>) {
        match text {
            None => self.u32(0),
            Some(t) => {
                self.u32(t.len() as u32 + 1);
                self.0.extend_from_slice(t.as_bytes());
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!("decoded bytes end at {} of the {n} bytes wanted at {}", self.bytes.len(), self.at)
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::get(self.take(4)?))
    }

    fn list<T: Le>(&mut self) -> Result<Vec<T>, String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n.saturating_mul(T::SIZE))?;
        Ok(bytes.chunks_exact(T::SIZE).map(T::get).collect())
    }

    fn arrays<T: Le, const N: usize>(&mut self) -> Result<Vec<[T; N]>, String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n.saturating_mul(N * T::SIZE))?;
        Ok(bytes
            .chunks_exact(N * T::SIZE)
            .map(|item| std::array::from_fn(|i| T::get(&item[i * T::SIZE..(i + 1) * T::SIZE])))
            .collect())
    }

    fn text(&mut self) -> Result<Option<String>, String> {
        match self.u32()? {
            0 => Ok(None),
            n => {
                let bytes = self.take(n as usize - 1)?;
                String::from_utf8(bytes.to_vec()).map(Some).map_err(|e| format!("decoded text: {e}"))
            }
        }
    }

    fn end(&self) -> Result<(), String> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(format!("{} bytes left over after the decoded tile", self.bytes.len() - self.at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(decoded: &Decoded) -> Decoded {
        Decoded::from_bytes(&decoded.to_bytes().expect("bytes")).expect("decodes")
    }

    #[test]
    fn a_real_glb_crosses_to_the_page_unchanged() {
        // A tile as the ingest writes it: feature ids, vertex colours, the fid column.
        use cim_core::glb::{FeatureMesh, PropertyColumn, PropertyTable, write_glb};
        let mesh = FeatureMesh {
            positions: vec![[0.0, 0.0, 0.0], [10.5, 0.0, 0.0], [0.0, 3.25, -1.0], [2.0, 2.0, 2.0]],
            normals: vec![[0.0, 1.0, 0.0]; 4],
            feature_ids: vec![0, 0, 1, 1],
            indices: vec![0, 1, 2, 1, 3, 2],
            colors: vec![[200, 10, 10, 255]; 4],
        };
        let table = PropertyTable {
            class: "building".into(),
            count: 2,
            columns: vec![("fid".into(), PropertyColumn::UInt64(vec![42, u64::MAX - 1]))],
        };
        let glb = write_glb(&mesh, &table, "test");
        let Decoded::Glb(direct) = Job::Glb.run(glb, None).expect("decodes") else { panic!("kind") };
        assert_eq!(direct.fids, [42, u64::MAX - 1]);
        assert_eq!(direct.primitives[0].colors.len(), 4);
        assert!(!direct.primitives.is_empty() && !direct.fids.is_empty());
        let Decoded::Glb(back) = round_trip(&Decoded::Glb(direct.clone())) else { panic!("kind") };
        assert_eq!(back, direct);
    }

    #[test]
    fn points_and_ground_meshes_cross_unchanged() {
        let points = PointVertices {
            corners: vec![[1, -2, 3, 0], [1, -2, 3, 1]],
            attributes: vec![[0xff00_00ff, 7], [0xff00_00ff, 7]],
            indices: vec![0, 1, 1],
            centre: [4_000_000.5, 1.25, -3.0],
            step: 0.001,
            has_color: true,
            up_range: [-1.0, 2.5],
            intensity_top: 65_000,
        };
        let Decoded::Points(back) = round_trip(&Decoded::Points(points.clone())) else { panic!("kind") };
        assert_eq!(back, points);

        let meshes = vec![
            (GroundClass::Water, GroundMesh { positions: vec![[0.5, -1.0, 2.0]; 3], indices: vec![0, 1, 2] }),
            (GroundClass::Border, GroundMesh::default()),
        ];
        let Decoded::Ground(back) = round_trip(&Decoded::Ground(meshes.clone())) else { panic!("kind") };
        assert_eq!(back, meshes);
    }

    #[test]
    fn jobs_cross_to_the_worker_unchanged() {
        let tile = TileId::new(15, 18_680, 9_483).expect("tile");
        let to_render = DMat4::from_cols_array(&std::array::from_fn(|i| i as f64 * 0.5 - 3.0));
        for job in [
            Job::Glb,
            Job::Points,
            Job::Ground { tile, to_render, terrain_url: None },
            Job::Ground { tile, to_render, terrain_url: Some("http://h/api/terrain/dem/surface".into()) },
        ] {
            assert_eq!(Job::from_bytes(&job.to_bytes().expect("bytes")).expect("job"), job);
        }
        assert!(Job::Tileset.to_bytes().is_err() && !Job::Tileset.off_thread());
    }

    #[test]
    fn cut_or_padded_bytes_are_errors_not_panics() {
        let meshes =
            vec![(GroundClass::Path, GroundMesh { positions: vec![[1.0; 3]; 4], indices: vec![0; 6] })];
        let bytes = Decoded::Ground(meshes).to_bytes().expect("bytes");
        for cut in 0..bytes.len() {
            assert!(Decoded::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Decoded::from_bytes(&padded).expect_err("padded").contains("left over"));
        // A huge count in a short message is refused before anything is allocated.
        let mut huge = vec![2u8];
        huge.extend_from_slice(&1u32.to_le_bytes());
        huge.push(0);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Decoded::from_bytes(&huge).is_err());
        assert!(Job::from_bytes(&[9]).is_err() && Job::from_bytes(&[2, 40, 0]).is_err());
    }
}

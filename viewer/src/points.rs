//! Point cloud tiles as the point shader (`src/shaders/points.wgsl`) reads them, and the
//! colour modes the layer panel switches between. GPU-free: the fetch thread runs
//! [`PointVertices::from_tile`], the tests check the packing against the shader's
//! unpacking rules.
//!
//! GPUs draw `POINTS` one pixel wide (WebGPU and WebGL2 have no point size), so each
//! point becomes a square of four vertices that share its quantised position; the
//! vertex shader pushes the corners apart on screen by a size that follows the point
//! spacing of the tile's level and the distance (size attenuation).

use cim_core::points::PointTile;

use crate::tree::TileTree;

/// The point shader; the render module compiles it in (no asset fetch in a browser).
pub const SHADER_SOURCE: &str = include_str!("shaders/points.wgsl");

/// GPU memory per point: four vertices of 16 bytes (quantised position and corner,
/// colour and class, intensity) and six 4-byte indices.
pub const GPU_BYTES_PER_POINT: usize = 4 * 16 + 6 * 4;

/// Bytes of the shader's `PointStyle` uniform: twelve 4-byte fields.
pub const SHADER_STYLE_BYTES: u64 = 48;

/// How points are coloured. The discriminant is what the shader's `style.mode` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointColouring {
    /// The survey's RGB (elevation where the layer has none).
    #[default]
    Rgb = 0,
    Intensity = 1,
    /// ASPRS LAS classes: ground, vegetation, building, water, ...
    Classification = 2,
    /// A ramp from the lowest to the highest point of the layer.
    Elevation = 3,
}

impl PointColouring {
    pub const ALL: [Self; 4] = [Self::Rgb, Self::Intensity, Self::Classification, Self::Elevation];

    pub fn next(self) -> Self {
        Self::ALL[(self as usize + 1) % Self::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Rgb => "RGB",
            Self::Intensity => "intensity",
            Self::Classification => "classification",
            Self::Elevation => "elevation",
        }
    }

    /// From a command line or page option (`rgb`, `intensity`, `classification`, `elevation`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.label().eq_ignore_ascii_case(name))
    }
}

/// One tile's points ready for the GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct PointVertices {
    /// Per vertex: the point's quantised position (glTF axes, steps of `step` around
    /// `centre`) and, last, which corner of its square this vertex is (0..4).
    pub corners: Vec<[i16; 4]>,
    /// Per vertex: `r | g << 8 | b << 16 | class << 24`, then `intensity`.
    pub attributes: Vec<[u32; 2]>,
    /// Two triangles per point.
    pub indices: Vec<u32>,
    pub centre: [f64; 3],
    pub step: f64,
    pub has_color: bool,
    /// Lowest and highest point along glTF's up axis (y), content frame metres.
    pub up_range: [f64; 2],
    /// The 99th percentile of intensity: the top of the intensity ramp, so a few
    /// glints do not make the rest black.
    pub intensity_top: u16,
}

/// Corner order around the square; the shader maps 0..4 to (-1,-1), (1,-1), (1,1), (-1,1).
const QUAD: [u32; 6] = [0, 1, 2, 0, 2, 3];

impl PointVertices {
    pub fn from_tile(tile: &PointTile) -> Self {
        let n = tile.len();
        let mut corners = Vec::with_capacity(n * 4);
        let mut attributes = Vec::with_capacity(n * 4);
        let mut indices = Vec::with_capacity(n * 6);
        let (mut low, mut high) = (i16::MAX, i16::MIN);
        for (i, q) in tile.positions.iter().enumerate() {
            let [r, g, b] = tile.colors.as_ref().and_then(|c| c.get(i)).copied().unwrap_or([255; 3]);
            let class = tile.classification.get(i).copied().unwrap_or(0);
            let packed = [
                u32::from(r) | u32::from(g) << 8 | u32::from(b) << 16 | u32::from(class) << 24,
                u32::from(tile.intensity.get(i).copied().unwrap_or(0)),
            ];
            let first = corners.len() as u32;
            for corner in 0..4 {
                corners.push([q[0], q[1], q[2], corner]);
                attributes.push(packed);
            }
            indices.extend(QUAD.iter().map(|k| first + k));
            low = low.min(q[1]);
            high = high.max(q[1]);
        }
        let up = |q: i16| tile.centre[1] + f64::from(q) * tile.step;
        let up_range = if n == 0 { [tile.centre[1]; 2] } else { [up(low), up(high)] };
        Self {
            corners,
            attributes,
            indices,
            centre: tile.centre,
            step: tile.step,
            has_color: tile.colors.is_some(),
            up_range,
            intensity_top: percentile(&tile.intensity, 0.99),
        }
    }

    pub fn points(&self) -> usize {
        self.corners.len() / 4
    }
}

fn percentile(values: &[u16], q: f64) -> u16 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable(k).1
}

/// The distance between neighbouring points in a tile, metres: what one point's
/// square covers. Our point tilesets give each level the diagonal of its subsampling
/// grid cell as geometric error; a leaf (error 0) holds the survey at full density,
/// taken as half its parent's spacing.
pub fn point_spacing(tree: &TileTree, tile: usize) -> f64 {
    let mut halvings = 0;
    let mut at = Some(tile);
    while let Some(i) = at {
        let error = tree.nodes[i].geometric_error;
        if error > 0.0 {
            return error / 3f64.sqrt() / f64::from(1u32 << halvings.min(20));
        }
        halvings += 1;
        at = tree.nodes[i].parent;
    }
    // A single tile with no error: its points are spread over its bounds.
    let radius = tree.nodes.get(tile).map_or(1.0, |n| n.bounds.radius);
    (radius * 0.01).max(0.01)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Sphere, TileNode};
    use cim_core::points::{read_points_glb, write_points_glb};
    use cim_core::tileset::Refine;
    use glam::{DMat4, DVec3};

    fn sample_tile() -> PointTile {
        let mut tile = PointTile::new([10.0, 20.0, 30.0], 50.0, true);
        for i in 0..200u16 {
            let f = f64::from(i);
            tile.push(
                [10.0 + f * 0.1, 20.0 - 5.0 + f * 0.05, 30.0 - f * 0.2],
                [i as u8, 7, 250],
                i * 10,
                (i % 19) as u8,
            )
            .expect("inside the cube");
        }
        tile
    }

    /// What the shader does with one vertex, in Rust: position, corner, colour bytes.
    fn unpack(v: &PointVertices, k: usize) -> ([f64; 3], u16, [u8; 4], u32) {
        let c = v.corners[k];
        let position = [0, 1, 2].map(|a| v.centre[a] + f64::from(c[a]) * v.step);
        let [w0, w1] = v.attributes[k];
        (position, c[3] as u16, w0.to_le_bytes(), w1)
    }

    #[test]
    fn every_point_becomes_a_square_of_four_vertices_that_unpack_to_the_decoded_point() {
        let tile = sample_tile();
        // Through the GLB bytes, as the viewer receives them.
        let decoded = read_points_glb(&write_points_glb(&tile, "test")).expect("our own GLB");
        let v = PointVertices::from_tile(&decoded);
        assert_eq!((v.points(), v.corners.len(), v.indices.len()), (200, 800, 1200));
        for i in 0..decoded.len() {
            let want = decoded.position(i);
            let colour = decoded.colors.as_ref().map(|c| c[i]).expect("colours");
            for corner in 0..4 {
                let (p, c, bytes, intensity) = unpack(&v, i * 4 + corner);
                assert!(
                    p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9),
                    "point {i}: {p:?} vs {want:?}"
                );
                assert_eq!(c as usize, corner);
                assert_eq!(bytes, [colour[0], colour[1], colour[2], decoded.classification[i]]);
                assert_eq!(intensity, u32::from(decoded.intensity[i]));
            }
            // Both triangles of the square use only this point's vertices.
            let tri = &v.indices[i * 6..i * 6 + 6];
            assert!(tri.iter().all(|&k| (k as usize) / 4 == i), "{tri:?}");
        }
        assert!(
            (v.up_range[0] - 15.0).abs() <= v.step && (v.up_range[1] - (15.0 + 199.0 * 0.05)).abs() <= v.step
        );
        assert_eq!(v.intensity_top, 1970, "the 99th percentile of 0, 10, .. 1990");
        assert!(v.has_color);
        let buffers = std::mem::size_of_val(&v.corners[..])
            + std::mem::size_of_val(&v.attributes[..])
            + std::mem::size_of_val(&v.indices[..]);
        assert_eq!(buffers, v.points() * GPU_BYTES_PER_POINT);
    }

    #[test]
    fn a_layer_without_colour_is_marked_so_the_shader_falls_back() {
        let mut tile = PointTile::new([0.0; 3], 1.0, false);
        tile.push([0.5, 0.5, 0.5], [1, 2, 3], 9, 2).expect("inside");
        let v = PointVertices::from_tile(&tile);
        assert!(!v.has_color);
        assert_eq!(v.attributes[0][0], 0x02FF_FFFF, "white, class 2");
        let empty = PointVertices::from_tile(&PointTile::new([0.0; 3], 1.0, false));
        assert_eq!((empty.points(), empty.intensity_top), (0, 0));
    }

    #[test]
    fn spacing_follows_the_level_error_and_halves_into_leaves() {
        let node = |parent, children, error| TileNode {
            parent,
            children,
            content: Some("x.glb".into()),
            geometric_error: error,
            refine: Refine::Add,
            transform: DMat4::IDENTITY,
            bounds: Sphere { centre: DVec3::ZERO, radius: 100.0 },
            depth: 0,
        };
        let s3 = 3f64.sqrt();
        let tree = TileTree {
            nodes: vec![
                node(None, vec![1], 4.0 * s3),
                node(Some(0), vec![2], 2.0 * s3),
                node(Some(1), vec![], 0.0),
            ],
            geometric_error: 8.0,
        };
        let spacing: Vec<f64> = (0..3).map(|i| point_spacing(&tree, i)).collect();
        assert!(spacing.iter().zip([4.0, 2.0, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{spacing:?}");
        let lone = TileTree { nodes: vec![node(None, vec![], 0.0)], geometric_error: 0.0 };
        assert_eq!(point_spacing(&lone, 0), 1.0);
    }

    /// The shader's bevy imports replaced by stand-ins with the same signatures, so
    /// naga checks our own code: types, bindings, entry points.
    fn standalone_shader() -> String {
        let stand_ins = r#"
struct View { clip_from_world: mat4x4<f32>, clip_from_view: mat4x4<f32>, viewport: vec4<f32> }
@group(0) @binding(0) var<uniform> view: View;
fn get_world_from_local(instance_index: u32) -> mat4x4<f32> { return mat4x4<f32>(); }
"#;
        let body: String = SHADER_SOURCE
            .lines()
            .filter(|l| !l.starts_with("#import"))
            .map(|l| l.replace("#{MATERIAL_BIND_GROUP}", "3") + "\n")
            .collect();
        format!("{stand_ins}{body}")
    }

    #[test]
    fn the_point_shader_validates_with_naga() {
        let source = standalone_shader();
        let module =
            naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&source)));
        let stages: Vec<_> = module.entry_points.iter().map(|e| (e.name.as_str(), e.stage)).collect();
        assert_eq!(
            stages,
            [("vertex", naga::ShaderStage::Vertex), ("fragment", naga::ShaderStage::Fragment)]
        );
        let style =
            module.types.iter().find(|(_, t)| t.name.as_deref() == Some("PointStyle")).expect("PointStyle");
        assert_eq!(u64::from(style.1.inner.size(module.to_ctx())), SHADER_STYLE_BYTES);
        // The vertex inputs are the mesh attributes render/points.rs declares.
        let vertex = &module.entry_points[0].function;
        let input = &module.types[vertex.arguments[0].ty];
        let naga::TypeInner::Struct { members, .. } = &input.inner else {
            panic!("vertex input is a struct")
        };
        let locations: Vec<_> = members
            .iter()
            .filter_map(|m| match m.binding {
                Some(naga::Binding::Location { location, .. }) => Some((location, &module.types[m.ty].inner)),
                _ => None,
            })
            .collect();
        assert!(
            matches!(
                locations[..],
                [
                    (0, naga::TypeInner::Vector { size: naga::VectorSize::Quad, scalar: naga::Scalar::I32 }),
                    (1, naga::TypeInner::Vector { size: naga::VectorSize::Bi, scalar: naga::Scalar::U32 })
                ]
            ),
            "{locations:?}"
        );
    }

    #[test]
    fn colour_modes_cycle_and_parse() {
        let mut mode = PointColouring::default();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(mode.label());
            mode = mode.next();
        }
        assert_eq!(seen, ["RGB", "intensity", "classification", "elevation"]);
        assert_eq!(mode, PointColouring::Rgb);
        assert_eq!(PointColouring::parse("Classification"), Some(PointColouring::Classification));
        assert_eq!(PointColouring::parse("height"), None);
    }
}

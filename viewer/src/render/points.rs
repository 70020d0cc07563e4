//! Point cloud layers on screen: the point material (`src/shaders/points.wgsl`), one per
//! tile because each level has its own point spacing, and the colour mode (RGB,
//! intensity, classification, elevation) switched from the layer panel or with `C`.
//! Tiles stream through [`super::tiles`] like any 3D layer; their selection there is
//! bounded by the point budget ([`crate::select::select_points`]).

use bevy::asset::{RenderAssetUsages, uuid_handle};
use bevy::ecs::system::SystemParam;
use bevy::mesh::{
    Indices, MeshVertexAttribute, MeshVertexBufferLayoutRef, PrimitiveTopology, VertexAttributeValues,
};
use bevy::pbr::{MaterialPipeline, MaterialPipelineKey};
use bevy::prelude::*;
use bevy::render::render_resource::{
    AsBindGroup, RenderPipelineDescriptor, ShaderType, SpecializedMeshPipelineError, VertexFormat,
};
use bevy::shader::ShaderRef;
use glam::{DMat4, DVec3};

use super::ViewerOptions;
use crate::points::{PointColouring, PointVertices, SHADER_SOURCE};

/// The point shader ([`SHADER_SOURCE`], compiled in: the browser bundle needs no asset fetch).
const SHADER: Handle<Shader> = uuid_handle!("5b0e7a52-3f4c-4a38-9d1e-6f2c8b7a9d10");

/// The point's quantised position and its square's corner ([`PointVertices::corners`]).
pub const ATTRIBUTE_POINT_CORNER: MeshVertexAttribute =
    MeshVertexAttribute::new("PointCorner", 3_141_592_601, VertexFormat::Sint16x4);
/// Colour and class, intensity ([`PointVertices::attributes`]).
pub const ATTRIBUTE_POINT_PACKED: MeshVertexAttribute =
    MeshVertexAttribute::new("PointPacked", 3_141_592_602, VertexFormat::Uint32x2);

/// Smallest and largest square drawn, pixels: a far level stays visible, a near
/// coarse level does not smear the screen.
const MIN_PIXELS: f32 = 1.5;
const MAX_PIXELS: f32 = 10.0;

pub struct PointsPlugin;

impl Plugin for PointsPlugin {
    fn build(&self, app: &mut App) {
        let colouring =
            app.world().get_resource::<ViewerOptions>().map_or_else(Default::default, |o| o.point_colouring);
        let _ = app
            .world_mut()
            .resource_mut::<Assets<Shader>>()
            .insert(SHADER.id(), Shader::from_wgsl(SHADER_SOURCE, "shaders/points.wgsl"));
        app.add_plugins(MaterialPlugin::<PointMaterial>::default())
            .insert_resource(PointColourMode(colouring))
            .add_systems(Update, (cycle_with_key, apply_colouring).chain());
    }
}

/// The colour mode every point layer is drawn in.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PointColourMode(pub PointColouring);

/// The shader's `PointStyle`, field for field.
#[derive(ShaderType, Debug, Clone, Copy, PartialEq, Default)]
pub struct PointStyle {
    pub mode: u32,
    pub has_color: u32,
    pub spacing_m: f32,
    pub min_pixels: f32,
    pub max_pixels: f32,
    pub elevation_low: f32,
    pub elevation_high: f32,
    pub intensity_top: f32,
    pub pad0: f32,
    pub pad1: f32,
    pub pad2: f32,
    pub pad3: f32,
}

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct PointMaterial {
    #[uniform(0)]
    pub style: PointStyle,
}

impl Material for PointMaterial {
    fn vertex_shader() -> ShaderRef {
        ShaderRef::Handle(SHADER)
    }

    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(SHADER)
    }

    // Unlit splats: no shadows cast or received, no depth prepass of their own.
    fn enable_prepass() -> bool {
        false
    }

    fn enable_shadows() -> bool {
        false
    }

    fn specialize(
        _pipeline: &MaterialPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        layout: &MeshVertexBufferLayoutRef,
        _key: MaterialPipelineKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        descriptor.vertex.buffers = vec![layout.0.get_layout(&[
            ATTRIBUTE_POINT_CORNER.at_shader_location(0),
            ATTRIBUTE_POINT_PACKED.at_shader_location(1),
        ])?];
        // The squares face the camera whatever the tile's transform does to winding.
        descriptor.primitive.cull_mode = None;
        Ok(())
    }
}

/// What a point layer's tiles share: the elevation ramp's ends and the intensity
/// shown as white. Tiles arrive in any order, so the ramp widens with each one
/// ([`LayerRamp::union`]) and the layer's materials follow ([`LayerRamp::restyle`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerRamp {
    pub elevation: [f32; 2],
    pub intensity_top: f32,
}

impl LayerRamp {
    pub fn of(vertices: &PointVertices, content_to_render: DMat4) -> Self {
        let [x, _, z] = vertices.centre;
        let up = |y: f64| content_to_render.transform_point3(DVec3::new(x, y, z)).y as f32;
        let (a, b) = (up(vertices.up_range[0]), up(vertices.up_range[1]));
        Self { elevation: [a.min(b), a.max(b)], intensity_top: f32::from(vertices.intensity_top.max(1)) }
    }

    pub fn union(self, other: Self) -> Self {
        Self {
            elevation: [self.elevation[0].min(other.elevation[0]), self.elevation[1].max(other.elevation[1])],
            intensity_top: self.intensity_top.max(other.intensity_top),
        }
    }

    pub fn restyle(&self, style: &mut PointStyle) {
        style.elevation_low = self.elevation[0];
        style.elevation_high = self.elevation[1];
        style.intensity_top = self.intensity_top;
    }
}

/// What drawing point tiles needs: their materials, the colour mode, and the
/// material each drawn tile holds (to restyle it when the layer's ramp widens).
#[derive(SystemParam)]
pub struct PointDrawing<'w, 's> {
    pub materials: ResMut<'w, Assets<PointMaterial>>,
    pub colouring: Res<'w, PointColourMode>,
    pub handles: Query<'w, 's, &'static MeshMaterial3d<PointMaterial>>,
}

/// Spawns one point tile, hidden until the selection shows it. `content_to_render`
/// takes glTF content coordinates to the render frame; `spacing_m` is the tile's
/// point spacing ([`crate::points::point_spacing`]).
pub fn spawn_point_tile(
    commands: &mut Commands,
    meshes: &mut Assets<Mesh>,
    points: &mut PointDrawing,
    content_to_render: DMat4,
    vertices: PointVertices,
    spacing_m: f64,
    ramp: LayerRamp,
) -> Entity {
    let colouring = points.colouring.0;
    let quantised_to_render = content_to_render
        * DMat4::from_translation(DVec3::from(vertices.centre))
        * DMat4::from_scale(DVec3::splat(vertices.step));
    let transform =
        Transform::from_matrix(Mat4::from_cols_array(&quantised_to_render.to_cols_array().map(|v| v as f32)));
    let mut style = PointStyle {
        mode: colouring as u32,
        has_color: u32::from(vertices.has_color),
        spacing_m: spacing_m as f32,
        min_pixels: MIN_PIXELS,
        max_pixels: MAX_PIXELS,
        ..default()
    };
    ramp.restyle(&mut style);
    // Render world only: the main world keeps no copy of millions of vertices.
    let mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
        .with_inserted_attribute(ATTRIBUTE_POINT_CORNER, VertexAttributeValues::Sint16x4(vertices.corners))
        .with_inserted_attribute(ATTRIBUTE_POINT_PACKED, vertices.attributes)
        .with_inserted_indices(Indices::U32(vertices.indices));
    commands
        .spawn((
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(points.materials.add(PointMaterial { style })),
            transform,
            Visibility::Hidden,
            // The mesh has no POSITION for bevy to box, and the tile selection has
            // already culled by frustum.
            bevy::camera::visibility::NoFrustumCulling,
            bevy::picking::Pickable::IGNORE,
        ))
        .id()
}

fn cycle_with_key(keys: Res<ButtonInput<KeyCode>>, mut mode: ResMut<PointColourMode>) {
    if keys.just_pressed(KeyCode::KeyC) {
        mode.0 = mode.0.next();
    }
}

fn apply_colouring(mode: Res<PointColourMode>, mut materials: ResMut<Assets<PointMaterial>>) {
    if !mode.is_changed() {
        return;
    }
    let want = mode.0 as u32;
    for (_, material) in materials.iter_mut() {
        if material.style.mode != want {
            material.style.mode = want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_style_uniform_is_as_big_as_the_shaders() {
        // points.rs's naga test measures the WGSL struct.
        assert_eq!(PointStyle::min_size().get(), crate::points::SHADER_STYLE_BYTES);
    }

    #[test]
    fn the_ramp_takes_the_tile_heights_into_the_render_frame() {
        let mut tile = cim_core::points::PointTile::new([0.0, 0.0, 0.0], 100.0, false);
        tile.push([0.0, -3.0, 0.0], [0; 3], 10, 2).expect("inside");
        tile.push([0.0, 40.0, 0.0], [0; 3], 500, 2).expect("inside");
        let vertices = PointVertices::from_tile(&tile);
        // Content frame lifted 100 m in the render frame.
        let ramp = LayerRamp::of(&vertices, DMat4::from_translation(DVec3::new(5.0, 100.0, 0.0)));
        assert!(
            (ramp.elevation[0] - 97.0).abs() < 0.01 && (ramp.elevation[1] - 140.0).abs() < 0.01,
            "{ramp:?}"
        );
        assert_eq!(ramp.intensity_top, 500.0);
        let wider = ramp.union(LayerRamp { elevation: [120.0, 150.0], intensity_top: 300.0 });
        assert_eq!((wider.elevation, wider.intensity_top), ([ramp.elevation[0], 150.0], 500.0));
        let mut style = PointStyle::default();
        wider.restyle(&mut style);
        assert_eq!(
            (style.elevation_low, style.elevation_high, style.intensity_top),
            (ramp.elevation[0], 150.0, 500.0)
        );
    }
}

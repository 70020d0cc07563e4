//! Picking: a ray from the cursor (or `--click`) through the tile meshes; the hit
//! triangle's feature id gives the building's `fid`. The picked building is drawn
//! again on top in a highlight colour, as a child of each tile that holds it.

use bevy::asset::RenderAssetUsages;
use bevy::ecs::system::SystemParam;
use bevy::mesh::{Indices, PrimitiveTopology, VertexAttributeValues};
use bevy::picking::mesh_picking::ray_cast::MeshRayCastSettings;
use bevy::prelude::*;

use super::params::{Drawing, Pointer, Ray};
use super::tiles::TileMesh;

/// Tile meshes a ray may hit: not an x-rayed BIM shell.
pub type PickableTiles<'w, 's> = Query<'w, 's, &'static TileMesh, Without<super::bim::PickThrough>>;

/// Picking a building: rays, the tile meshes they may hit, and the picked one.
#[derive(SystemParam)]
pub struct Picking<'w, 's> {
    pub ray: Ray<'w, 's>,
    tiles: PickableTiles<'w, 's>,
    pub picked: ResMut<'w, Picked>,
}

impl Picking<'_, '_> {
    /// The building under a screen position, if any.
    pub fn pick_at(&mut self, screen: Vec2) -> Option<(String, u64)> {
        let ray = self.ray.through(screen)?;
        // Only building tiles: not the ground, the draped layers or the highlight itself.
        let tiles = &self.tiles;
        let is_tile = |e: Entity| tiles.contains(e);
        let hits = self
            .ray
            .ray_cast
            .cast_ray(ray, &MeshRayCastSettings::default().with_filter(&is_tile).always_early_exit());
        let (entity, hit) = hits.first()?;
        let tile = tiles.get(*entity).ok()?;
        let triangle = hit.triangle_index?;
        let vertex = *tile.indices.get(triangle * 3)? as usize;
        let row = *tile.feature_ids.get(vertex)? as usize;
        Some((tile.layer.clone(), *tile.fids.get(row)?))
    }
}

pub struct PickPlugin;

impl Plugin for PickPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Picked>()
            .add_systems(Update, (click_to_pick.after(super::live::click_marker), highlight_picked).chain());
    }
}

/// The last building picked: layer and feature id.
#[derive(Resource, Default, Debug, Clone, PartialEq)]
pub struct Picked(pub Option<(String, u64)>);

/// Highlight colour; the screenshot test looks for it.
pub const HIGHLIGHT: Color = Color::srgb(1.0, 0.45, 0.0);

#[derive(Component)]
struct Highlight;

fn click_to_pick(pointer: Pointer, marker: Res<super::live::MarkerClick>, mut picking: Picking) {
    if marker.0 {
        return;
    }
    let Some(cursor) = pointer.clicked_at() else { return };
    let hit = picking.pick_at(cursor);
    if let Some((layer, fid)) = &hit {
        info!("picked {layer} fid {fid}");
    }
    // Clicking empty ground clears the selection.
    picking.picked.0 = hit;
}

/// The triangles of one property-table row, as a standalone mesh.
fn building_mesh(tile: &TileMesh, mesh: &Mesh, row: u32) -> Option<Mesh> {
    let Some(VertexAttributeValues::Float32x3(positions)) = mesh.attribute(Mesh::ATTRIBUTE_POSITION) else {
        return None;
    };
    // Tiles without normals were un-indexed for flat shading: corner k of triangle t
    // is then vertex 3t + k, while `tile.indices` still names the original vertex.
    let unindexed = mesh.indices().is_none();
    let mut out: Vec<[f32; 3]> = Vec::new();
    for (t, corners) in tile.indices.chunks_exact(3).enumerate() {
        if tile.feature_ids.get(corners[0] as usize) != Some(&row) {
            continue;
        }
        for (k, &v) in corners.iter().enumerate() {
            let at = if unindexed { 3 * t + k } else { v as usize };
            out.push(*positions.get(at)?);
        }
    }
    if out.is_empty() {
        return None;
    }
    let count = out.len() as u32;
    let mut mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, out)
        .with_inserted_indices(Indices::U32((0..count).collect()));
    mesh.duplicate_vertices();
    mesh.compute_flat_normals();
    Some(mesh)
}

fn highlight_picked(
    drawing: Drawing,
    picked: Res<Picked>,
    added: Query<(), Added<TileMesh>>,
    tiles: Query<(Entity, &TileMesh, &Mesh3d)>,
    old: Query<Entity, With<Highlight>>,
    mut material: Local<Option<Handle<StandardMaterial>>>,
) {
    let Drawing { mut commands, mut meshes, mut materials } = drawing;
    if !picked.is_changed() && added.is_empty() {
        return;
    }
    for e in &old {
        commands.entity(e).despawn();
    }
    let Some((layer, fid)) = &picked.0 else { return };
    let material = material
        .get_or_insert_with(|| {
            materials.add(StandardMaterial {
                base_color: HIGHLIGHT,
                unlit: true,
                // Same triangles as the building: win the depth tie.
                depth_bias: 100.0,
                ..default()
            })
        })
        .clone();
    for (entity, tile, handle) in &tiles {
        if &tile.layer != layer {
            continue;
        }
        let Some(row) = tile.fids.iter().position(|f| f == fid) else { continue };
        let Some(mesh) = meshes.get(&handle.0).and_then(|m| building_mesh(tile, m, row as u32)) else {
            continue;
        };
        commands.spawn((
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(material.clone()),
            Transform::IDENTITY,
            Highlight,
            bevy::light::NotShadowCaster,
            ChildOf(entity),
        ));
    }
}

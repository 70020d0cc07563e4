//! Picking: a ray from the cursor (or `--click`) through the tile meshes; the hit
//! triangle's feature id gives the building's `fid`.

use bevy::picking::mesh_picking::ray_cast::{MeshRayCast, MeshRayCastSettings};
use bevy::prelude::*;

use super::tiles::TileMesh;

pub struct PickPlugin;

impl Plugin for PickPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Picked>().add_systems(Update, click_to_pick);
    }
}

/// The last building picked: layer and feature id.
#[derive(Resource, Default, Debug, Clone, PartialEq)]
pub struct Picked(pub Option<(String, u64)>);

fn click_to_pick(
    mouse: Res<ButtonInput<MouseButton>>,
    windows: Query<&Window>,
    camera: Query<(&Camera, &GlobalTransform)>,
    mut ray_cast: MeshRayCast,
    tiles: Query<&TileMesh>,
    mut picked: ResMut<Picked>,
) {
    if !mouse.just_released(MouseButton::Left) {
        return;
    }
    let (Ok(window), Ok((camera, at))) = (windows.single(), camera.single()) else { return };
    let Some(cursor) = window.cursor_position() else { return };
    if let Some(hit) = pick_at(cursor, camera, at, &mut ray_cast, &tiles) {
        info!("picked {} fid {}", hit.0, hit.1);
        picked.0 = Some(hit);
    }
}

/// The building under a screen position, if any.
pub fn pick_at(
    cursor: Vec2,
    camera: &Camera,
    at: &GlobalTransform,
    ray_cast: &mut MeshRayCast,
    tiles: &Query<&TileMesh>,
) -> Option<(String, u64)> {
    let ray = camera.viewport_to_world(at, cursor).ok()?;
    let hits = ray_cast.cast_ray(ray, &MeshRayCastSettings::default().always_early_exit());
    if std::env::var_os("CIM_VIEWER_DEBUG").is_some() {
        println!(
            "ray {ray:?} hits {:?}",
            hits.iter()
                .map(|(e, h)| (*e, tiles.get(*e).is_ok(), h.distance, h.triangle_index))
                .collect::<Vec<_>>()
        );
    }
    let (entity, hit) = hits.first()?;
    let tile = tiles.get(*entity).ok()?;
    let triangle = hit.triangle_index?;
    let vertex = *tile.indices.get(triangle * 3)? as usize;
    let row = *tile.feature_ids.get(vertex)? as usize;
    Some((tile.layer.clone(), *tile.fids.get(row)?))
}

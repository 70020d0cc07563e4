//! Streaming 3D Tiles: catalogue → tilesets → per-frame selection → fetch + decode on
//! worker threads → meshes in the render frame → eviction under the memory budget.

use std::collections::{HashMap, HashSet};

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use glam::{DMat4, DVec3};

use super::glb::{Content, decode};
use super::platform::{Pending, fetch_then};
use super::{RenderFrame, ViewerOptions};
use crate::cache::TileCache;
use crate::select::{View, select};
use crate::tree::TileTree;

/// Requests in flight at most, across tilesets.
const MAX_IN_FLIGHT: usize = 8;

pub struct TilesPlugin;

impl Plugin for TilesPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Streaming>()
            .add_systems(Startup, (setup_scene, request_catalogue))
            .add_systems(Update, (receive_catalogue, receive_tilesets, stream_tiles).chain());
    }
}

/// One tileset being streamed.
pub struct Layer {
    pub id: String,
    pub tree: TileTree,
    pub cache: TileCache,
    pub pending: HashMap<usize, Pending<Content>>,
    /// Entities per loaded tile.
    pub loaded: HashMap<usize, Vec<Entity>>,
    pub failed: HashSet<usize>,
}

#[derive(Resource, Default)]
pub struct Streaming {
    catalogue: Option<Pending<Vec<(String, String)>>>,
    tilesets: Vec<(String, String, Pending<TileTree>)>,
    pub layers: Vec<Layer>,
    /// Messages for the person at the screen (server unreachable, bad tiles).
    pub errors: Vec<String>,
    pub frame: u64,
    /// Set once the catalogue has been read and every tileset answered.
    pub ready: bool,
    /// Tiles drawn, in flight, and wanted this frame.
    pub drawn: usize,
    pub in_flight: usize,
    pub wanted: usize,
    material: Option<Handle<StandardMaterial>>,
}

/// A tile's mesh knows where it came from, for picking.
#[derive(Component)]
pub struct TileMesh {
    pub layer: String,
    pub indices: Vec<u32>,
    pub feature_ids: Vec<u32>,
    pub fids: std::sync::Arc<Vec<u64>>,
}

/// Ground colour: the test tells buildings from ground by it.
pub const GROUND: Color = Color::srgb(0.30, 0.33, 0.31);

fn setup_scene(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    // Low afternoon sun from the south-west, so walls and shadows read.
    commands.spawn((
        DirectionalLight { illuminance: 6_000.0, shadow_maps_enabled: true, ..default() },
        Transform::from_xyz(0.0, 0.0, 0.0).looking_to(Vec3::new(0.5, -0.8, -0.35), Vec3::Y),
        bevy::light::CascadeShadowConfigBuilder {
            first_cascade_far_bound: 600.0,
            maximum_distance: 8_000.0,
            ..default()
        }
        .build(),
    ));
    commands.insert_resource(GlobalAmbientLight { brightness: 250.0, ..default() });
    // A ground plane just below the ellipsoid surface of the render frame.
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(40_000.0, 40_000.0))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: GROUND,
            perceptual_roughness: 1.0,
            ..default()
        })),
        Transform::from_xyz(0.0, -0.05, 0.0),
    ));
}

fn request_catalogue(options: Res<ViewerOptions>, mut streaming: ResMut<Streaming>) {
    let url = format!("{}/api/layers", options.server.trim_end_matches('/'));
    streaming.catalogue = Some(fetch_then(url, |bytes| {
        let layers: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("catalogue: {e}"))?;
        Ok(layers
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| Some((l["id"].as_str()?.to_owned(), l["tileset"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }));
}

fn receive_catalogue(options: Res<ViewerOptions>, mut streaming: ResMut<Streaming>) {
    let Some(pending) = &streaming.catalogue else { return };
    let Some(result) = pending.take() else { return };
    streaming.catalogue = None;
    match result {
        Err(e) => {
            streaming.errors.push(format!("server unreachable: {e}"));
            streaming.ready = true;
        }
        Ok(layers) => {
            let base = options.server.trim_end_matches('/').to_owned();
            for (id, _) in layers {
                if options.layers.as_ref().is_some_and(|only| !only.contains(&id)) {
                    continue;
                }
                let url = format!("{base}/3dtiles/{id}/tileset.json");
                let tileset_url = url.clone();
                let rx = fetch_then(url, move |bytes| {
                    TileTree::parse(&bytes, &tileset_url).map_err(|e| e.to_string())
                });
                streaming.tilesets.push((id, base.clone(), rx));
            }
            streaming.ready = streaming.tilesets.is_empty();
        }
    }
}

fn receive_tilesets(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    frame: Option<Res<RenderFrame>>,
    mut streaming: ResMut<Streaming>,
) {
    let mut still = Vec::new();
    let mut arrived = Vec::new();
    for (id, base, rx) in std::mem::take(&mut streaming.tilesets) {
        match rx.take() {
            Some(Ok(tree)) => arrived.push((id, tree)),
            Some(Err(e)) => streaming.errors.push(format!("layer {id}: {e}")),
            None => still.push((id, base, rx)),
        }
    }
    streaming.tilesets = still;
    let mut have_frame = frame.is_some();
    for (id, tree) in arrived {
        if !have_frame {
            // The first tileset fixes the render frame's origin.
            let (lon, lat, _) = cim_core::frame::ecef_to_geodetic(tree.centre().to_array());
            commands.insert_resource(RenderFrame::at(lon, lat));
            have_frame = true;
        }
        streaming.layers.push(Layer {
            id,
            tree,
            cache: TileCache::new(options.cache_bytes),
            pending: HashMap::new(),
            loaded: HashMap::new(),
            failed: HashSet::new(),
        });
    }
    if streaming.catalogue.is_none()
        && streaming.tilesets.is_empty()
        && (!streaming.layers.is_empty() || !streaming.errors.is_empty())
    {
        streaming.ready = true;
    }
}

fn dmat(t: &GlobalTransform) -> DMat4 {
    DMat4::from_cols_array(&t.to_matrix().to_cols_array().map(f64::from))
}

#[allow(clippy::too_many_arguments)]
fn stream_tiles(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    frame: Option<Res<RenderFrame>>,
    mut streaming: ResMut<Streaming>,
    camera: Query<(&GlobalTransform, &Projection), With<Camera3d>>,
    windows: Query<&Window>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut visibility: Query<&mut Visibility>,
) {
    let (Some(frame), Ok((cam, projection)), Ok(window)) = (frame, camera.single(), windows.single()) else {
        return;
    };
    let Projection::Perspective(perspective) = projection else { return };
    streaming.frame += 1;
    let frame_no = streaming.frame;
    let cam_ecef = frame.render_to_ecef * dmat(cam);
    let proj = DMat4::perspective_rh(
        f64::from(perspective.fov),
        f64::from(window.width() / window.height().max(1.0)),
        1.0,
        1e7,
    );
    let view = View::new(
        cam_ecef.transform_point3(DVec3::ZERO),
        proj * cam_ecef.inverse(),
        f64::from(window.height()),
        f64::from(perspective.fov),
    );
    let material = streaming
        .material
        .get_or_insert_with(|| {
            materials.add(StandardMaterial {
                base_color: Color::srgb(0.82, 0.80, 0.76),
                perceptual_roughness: 0.9,
                ..default()
            })
        })
        .clone();
    let (mut drawn, mut in_flight, mut wanted) = (0, 0, 0);
    let budget_left = MAX_IN_FLIGHT.saturating_sub(streaming.layers.iter().map(|l| l.pending.len()).sum());
    let mut starts = budget_left;
    let mut errors = Vec::new();
    for layer in &mut streaming.layers {
        // Arrivals first, so this frame's selection can use them.
        let done: Vec<usize> = layer
            .pending
            .iter()
            .filter_map(|(t, rx)| rx.take().map(|r| (*t, r)))
            .map(|(t, r)| {
                match r {
                    Ok(content) => {
                        let entities = spawn_content(
                            &mut commands,
                            &frame,
                            &layer.tree,
                            t,
                            &layer.id,
                            content,
                            &mut meshes,
                            &material,
                            &mut layer.cache,
                            frame_no,
                        );
                        layer.loaded.insert(t, entities);
                    }
                    Err(e) => {
                        errors.push(format!("layer {} tile {t}: {e}", layer.id));
                        layer.failed.insert(t);
                    }
                }
                t
            })
            .collect();
        for t in done {
            layer.pending.remove(&t);
        }
        let loaded = &layer.loaded;
        let failed = &layer.failed;
        let selection =
            select(&layer.tree, &view, options.max_sse, &|i| loaded.contains_key(&i) || failed.contains(&i));
        let shown: HashSet<usize> = selection.render.iter().copied().collect();
        for (tile, entities) in &layer.loaded {
            let want = if shown.contains(tile) { Visibility::Inherited } else { Visibility::Hidden };
            for e in entities {
                if let Ok(mut v) = visibility.get_mut(*e)
                    && *v != want
                {
                    *v = want;
                }
            }
            if shown.contains(tile) {
                layer.cache.touch(*tile, frame_no);
            }
        }
        for &tile in &selection.load {
            if layer.pending.contains_key(&tile) || layer.failed.contains(&tile) {
                continue;
            }
            if starts == 0 {
                break;
            }
            if let Some(url) = layer.tree.nodes[tile].content.clone() {
                layer.pending.insert(tile, fetch_then(url, decode));
                starts -= 1;
            }
        }
        for gone in layer.cache.evict(&shown) {
            for e in layer.loaded.remove(&gone).unwrap_or_default() {
                commands.entity(e).despawn();
            }
        }
        drawn += shown.len();
        in_flight += layer.pending.len();
        wanted += selection.load.iter().filter(|t| !layer.failed.contains(t)).count();
    }
    for e in &errors {
        warn!("{e}");
    }
    streaming.errors.extend(errors);
    (streaming.drawn, streaming.in_flight, streaming.wanted) = (drawn, in_flight, wanted);
}

#[allow(clippy::too_many_arguments)]
fn spawn_content(
    commands: &mut Commands,
    frame: &RenderFrame,
    tree: &TileTree,
    tile: usize,
    layer: &str,
    content: Content,
    meshes: &mut Assets<Mesh>,
    material: &Handle<StandardMaterial>,
    cache: &mut TileCache,
    frame_no: u64,
) -> Vec<Entity> {
    let to_render = frame.ecef_to_render * tree.nodes[tile].content_to_ecef();
    let fids = std::sync::Arc::new(content.fids);
    cache.insert(tile, content.bytes, frame_no);
    let mut out = Vec::new();
    for prim in content.primitives {
        // f64 all the way to the render frame, then f32: no jitter at city scale.
        let m = (to_render * prim.node).to_cols_array().map(|v| v as f32);
        let transform = Transform::from_matrix(Mat4::from_cols_array(&m));
        let mut mesh = Mesh::new(
            PrimitiveTopology::TriangleList,
            RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
        )
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, prim.positions.clone())
        .with_inserted_indices(Indices::U32(prim.indices.clone()));
        if prim.normals.len() == prim.positions.len() {
            mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, prim.normals);
        } else {
            mesh.duplicate_vertices();
            mesh.compute_flat_normals();
        }
        let e = commands
            .spawn((
                Mesh3d(meshes.add(mesh)),
                MeshMaterial3d(material.clone()),
                transform,
                Visibility::Hidden,
                // Tilesets from other tools do not all wind triangles the same way.
                bevy::picking::mesh_picking::ray_cast::RayCastBackfaces,
                TileMesh {
                    layer: layer.to_owned(),
                    indices: prim.indices,
                    feature_ids: prim.feature_ids,
                    fids: fids.clone(),
                },
            ))
            .id();
        out.push(e);
    }
    out
}

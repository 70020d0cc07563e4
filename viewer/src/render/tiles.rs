//! Streaming 3D Tiles: catalogue → tilesets → per-frame selection → fetch + decode on
//! worker threads → meshes in the render frame → eviction under the memory budget.

use std::collections::{HashMap, HashSet};

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use glam::{DMat4, DVec3};

use super::catalogue::Catalogue;
use super::decode::{Decoded, Job};
use super::glb::Content;
use super::params::{Drawing, StreamView};
use super::platform::{Pending, fetch_decode, fetch_then};
use super::points::{LayerRamp, PointDrawing, spawn_point_tile};
use super::{Problems, RenderFrame, ViewerOptions};
use crate::cache::TileCache;
use crate::points::point_spacing;
use crate::select::{View, select, select_points};
use crate::tree::{TileTree, is_tileset_url};

/// Requests in flight at most, across tilesets.
const MAX_IN_FLIGHT: usize = 8;

/// Points a point tile is assumed to hold before any has arrived (our leaves hold up
/// to 30 000, coarser levels about as many).
const POINTS_PER_TILE_GUESS: usize = 20_000;

pub struct TilesPlugin;

impl Plugin for TilesPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Streaming>()
            .add_systems(Startup, setup_scene)
            .add_systems(Update, (request_tilesets, receive_tilesets, stream_tiles).chain());
    }
}

/// One tileset being streamed.
pub struct Layer {
    pub id: String,
    pub tree: TileTree,
    pub cache: TileCache,
    pub pending: HashMap<usize, Pending<Decoded>>,
    /// Entities per loaded tile.
    pub loaded: HashMap<usize, Vec<Entity>>,
    pub failed: HashSet<usize>,
    /// A point cloud: its cache counts points against the point budget, not bytes.
    pub points: bool,
    /// Point clouds: the colour ramps, widened by every tile that arrives.
    pub ramp: Option<LayerRamp>,
}

impl Layer {
    /// Estimated GPU memory of the resident tiles (point layers count points).
    pub fn gpu_bytes(&self) -> usize {
        self.cache.used() * if self.points { crate::points::GPU_BYTES_PER_POINT } else { 1 }
    }
}

#[derive(Resource, Default)]
pub struct Streaming {
    requested: bool,
    /// Layer id, tileset URL, whether it is a point cloud, the answer.
    tilesets: Vec<(String, String, bool, Pending<TileTree>)>,
    pub layers: Vec<Layer>,
    pub frame: u64,
    /// Set once the catalogue has been read and every tileset answered.
    pub ready: bool,
    /// Tiles drawn, in flight, and wanted this frame.
    pub drawn: usize,
    pub in_flight: usize,
    pub wanted: usize,
    /// Draw calls this frame: one mesh per tile primitive, never one per building.
    pub meshes_drawn: usize,
    /// Tile contents arrived since start (for the benchmark's tiles per second).
    pub tiles_arrived: usize,
    /// Points drawn this frame and resident, across point cloud layers.
    pub points_drawn: usize,
    pub points_resident: usize,
    material: Option<Handle<StandardMaterial>>,
    coloured_material: Option<Handle<StandardMaterial>>,
}

impl Streaming {
    /// Every tileset read and every tile the view wants is drawn.
    pub fn complete(&self) -> bool {
        self.ready && self.in_flight == 0 && self.wanted == 0
    }
}

/// A tile's mesh knows where it came from, for picking and highlighting.
#[derive(Component)]
pub struct TileMesh {
    pub layer: String,
    pub indices: Vec<u32>,
    pub feature_ids: Vec<u32>,
    pub fids: std::sync::Arc<Vec<u64>>,
}

/// Ground colour: the test tells buildings from ground by it.
pub const GROUND: Color = Color::srgb(0.30, 0.33, 0.31);

/// Half the side of the ground grid, metres.
const GROUND_HALF_M: f32 = 30_000.0;

fn setup_scene(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    // Low afternoon sun from the south-west, so walls and shadows read.
    commands.spawn((
        DirectionalLight { illuminance: 6_000.0, shadow_maps_enabled: options.shadows, ..default() },
        Transform::from_xyz(0.0, 0.0, 0.0).looking_to(Vec3::new(0.5, -0.8, -0.35), Vec3::Y),
        bevy::light::CascadeShadowConfigBuilder {
            first_cascade_far_bound: 600.0,
            maximum_distance: 8_000.0,
            ..default()
        }
        .build(),
    ));
    commands.insert_resource(GlobalAmbientLight { brightness: 250.0, ..default() });
    // The ground follows the Earth's curvature (a flat plane would hide draped layers
    // and building bases a few kilometres out: the surface drops 2 m at 5 km).
    let mut ground =
        Plane3d::default().mesh().size(2.0 * GROUND_HALF_M, 2.0 * GROUND_HALF_M).subdivisions(63).build();
    if let Some(bevy::mesh::VertexAttributeValues::Float32x3(positions)) =
        ground.attribute_mut(Mesh::ATTRIBUTE_POSITION)
    {
        for p in positions.iter_mut() {
            let d2 = f64::from(p[0]).powi(2) + f64::from(p[2]).powi(2);
            p[1] = (-d2 / (2.0 * cim_core::frame::WGS84_A)) as f32 - 0.05;
        }
    }
    commands.spawn((
        Mesh3d(meshes.add(ground)),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: GROUND,
            perceptual_roughness: 1.0,
            ..default()
        })),
        Transform::IDENTITY,
    ));
}

fn request_tilesets(catalogue: Res<Catalogue>, mut streaming: ResMut<Streaming>) {
    if streaming.requested || !catalogue.loaded {
        return;
    }
    streaming.requested = true;
    for layer in &catalogue.layers {
        let Some(url) = layer.tileset.clone() else { continue };
        let tileset_url = url.clone();
        let rx = fetch_then(url.clone(), move |bytes| {
            TileTree::parse(&bytes, &tileset_url).map_err(|e| e.to_string())
        });
        streaming.tilesets.push((layer.id.clone(), url, layer.points, rx));
    }
}

fn receive_tilesets(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    frame: Option<Res<RenderFrame>>,
    mut streaming: ResMut<Streaming>,
    mut problems: ResMut<Problems>,
) {
    let mut still = Vec::new();
    let mut arrived = Vec::new();
    for (id, url, points, rx) in std::mem::take(&mut streaming.tilesets) {
        match rx.take() {
            Some(Ok(tree)) => arrived.push((id, points, tree)),
            Some(Err(e)) => problems.report(format!("layer {id}: {e}")),
            None => still.push((id, url, points, rx)),
        }
    }
    streaming.tilesets = still;
    let mut have_frame = frame.is_some();
    let point_layers = streaming.tilesets.iter().filter(|t| t.2).count()
        + streaming.layers.iter().filter(|l| l.points).count()
        + arrived.iter().filter(|a| a.1).count();
    for (id, points, tree) in arrived {
        if !have_frame {
            // A layer without bounds in the catalogue: centre on its tileset.
            let (lon, lat, _) = cim_core::frame::ecef_to_geodetic(tree.centre().to_array());
            commands.insert_resource(RenderFrame::at(lon, lat));
            have_frame = true;
        }
        // The point budget is shared out between the point cloud layers.
        let budget = if points { options.point_budget / point_layers.max(1) } else { options.cache_bytes };
        streaming.layers.push(Layer {
            id,
            tree,
            cache: TileCache::new(budget),
            pending: HashMap::new(),
            loaded: HashMap::new(),
            failed: HashSet::new(),
            points,
            ramp: None,
        });
    }
    streaming.ready = streaming.requested && streaming.tilesets.is_empty();
}

fn dmat(t: &GlobalTransform) -> DMat4 {
    DMat4::from_cols_array(&t.to_matrix().to_cols_array().map(f64::from))
}

/// The camera as tile selection sees it (ECEF), from the bevy camera.
pub fn view_of(
    frame: &RenderFrame,
    cam: &GlobalTransform,
    perspective: &PerspectiveProjection,
    window: &Window,
) -> View {
    let cam_ecef = frame.render_to_ecef * dmat(cam);
    let proj = DMat4::perspective_rh(
        f64::from(perspective.fov),
        f64::from(window.width() / window.height().max(1.0)),
        1.0,
        1e7,
    );
    View::new(
        cam_ecef.transform_point3(DVec3::ZERO),
        proj * cam_ecef.inverse(),
        f64::from(window.height()),
        f64::from(perspective.fov),
    )
}

fn fetch_content(url: String, points: bool) -> Pending<Decoded> {
    let job = if is_tileset_url(&url) {
        Job::Tileset
    } else if points {
        Job::Points
    } else {
        Job::Glb
    };
    fetch_decode(url, job, None)
}

fn stream_tiles(
    looking: StreamView,
    drawing: Drawing,
    mut visibility: Query<&mut Visibility>,
    mut streaming: ResMut<Streaming>,
    mut problems: ResMut<Problems>,
    catalogue: Res<super::catalogue::Catalogue>,
    mut points: PointDrawing,
) {
    let Some((frame, view)) = looking.view() else { return };
    let (options, hidden) = (&looking.options, &looking.hidden);
    let Drawing { mut commands, mut meshes, mut materials } = drawing;
    streaming.frame += 1;
    let frame_no = streaming.frame;
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
    let coloured_material = streaming
        .coloured_material
        .get_or_insert_with(|| {
            materials.add(StandardMaterial {
                base_color: Color::WHITE,
                perceptual_roughness: 0.95,
                ..default()
            })
        })
        .clone();
    let (mut drawn, mut in_flight, mut wanted, mut meshes_drawn) = (0, 0, 0, 0);
    let (mut points_drawn, mut points_resident) = (0, 0);
    let budget_left = MAX_IN_FLIGHT.saturating_sub(streaming.layers.iter().map(|l| l.pending.len()).sum());
    let mut starts = budget_left;
    let mut arrived = 0;
    for layer in &mut streaming.layers {
        // Arrivals first, so this frame's selection can use them.
        let done: Vec<(usize, Result<Decoded, String>)> =
            layer.pending.iter().filter_map(|(t, rx)| rx.take().map(|r| (*t, r))).collect();
        for (t, result) in done {
            layer.pending.remove(&t);
            arrived += 1;
            let url = layer.tree.nodes[t].content.clone().unwrap_or_default();
            let storey = storey_index(&catalogue, &layer.id, &url);
            match result {
                Ok(Decoded::Glb(content)) => {
                    let at = ContentAt {
                        layer: &layer.id,
                        storey,
                        to_render: frame.ecef_to_render * layer.tree.nodes[t].content_to_ecef(),
                    };
                    let (entities, gpu_bytes) = spawn_content(
                        &mut commands,
                        &mut meshes,
                        at,
                        content,
                        (&material, &coloured_material),
                    );
                    layer.cache.insert(t, gpu_bytes, frame_no);
                    layer.loaded.insert(t, entities);
                }
                Ok(Decoded::Points(vertices)) => {
                    let content_to_render = frame.ecef_to_render * layer.tree.nodes[t].content_to_ecef();
                    let tile_ramp = LayerRamp::of(&vertices, content_to_render);
                    let ramp = layer.ramp.map_or(tile_ramp, |r| r.union(tile_ramp));
                    if layer.ramp.is_some_and(|r| r != ramp) {
                        // A tile beyond the ramp so far: the tiles already drawn follow.
                        for e in layer.loaded.values().flatten() {
                            if let Ok(handle) = points.handles.get(*e)
                                && let Some(mut material) = points.materials.get_mut(&handle.0)
                            {
                                ramp.restyle(&mut material.style);
                            }
                        }
                    }
                    layer.ramp = Some(ramp);
                    let count = vertices.points();
                    let entity = spawn_point_tile(
                        &mut commands,
                        &mut meshes,
                        &mut points,
                        content_to_render,
                        vertices,
                        point_spacing(&layer.tree, t),
                        ramp,
                    );
                    layer.loaded.insert(t, vec![entity]);
                    layer.cache.insert(t, count, frame_no);
                }
                Ok(Decoded::Tileset(tileset)) => {
                    if let Err(e) = layer.tree.graft(t, &tileset, &url) {
                        problems.report(format!("layer {} {url}: {e}", layer.id));
                        layer.failed.insert(t);
                    }
                }
                Ok(Decoded::Ground(_)) => {
                    problems.report(format!("layer {} tile {t}: a vector tile in a tileset", layer.id));
                    layer.failed.insert(t);
                }
                Err(e) => {
                    problems.report(format!("layer {} tile {t}: {e}", layer.id));
                    layer.failed.insert(t);
                }
            }
        }
        let part = catalogue.layers.iter().find(|l| l.id == layer.id).map_or("buildings", |l| l.tiles_part());
        let shows = hidden.shows(&format!("{}/{part}", layer.id));
        let loaded = &layer.loaded;
        let failed = &layer.failed;
        let selection = if !shows {
            Default::default()
        } else if layer.points
            && layer.tree.nodes.first().is_some_and(|r| r.refine == cim_core::tileset::Refine::Add)
        {
            let cache = &layer.cache;
            let estimate = cache.used().checked_div(cache.len()).unwrap_or(POINTS_PER_TILE_GUESS);
            // A tile that failed costs nothing and is not asked for again.
            let cost = |i| if failed.contains(&i) { Some(0) } else { cache.cost(i) };
            select_points(&layer.tree, &view, options.max_sse, &cost, estimate, cache.budget())
        } else {
            select(&layer.tree, &view, options.max_sse, &|i| loaded.contains_key(&i) || failed.contains(&i))
        };
        let shown: HashSet<usize> = selection.render.iter().copied().collect();
        let storeys =
            catalogue.layers.iter().find(|l| l.id == layer.id).map_or(&[][..], |l| l.storeys.as_slice());
        for (tile, entities) in &layer.loaded {
            // A BIM storey switched off in the layer panel stays loaded but hidden.
            let storey_shown = layer.tree.nodes[*tile].content.as_deref().is_none_or(|url| {
                storeys
                    .iter()
                    .find(|(_, c)| c == url)
                    .is_none_or(|(name, _)| hidden.shows(&format!("{}/storey/{name}", layer.id)))
            });
            let want =
                if shown.contains(tile) && storey_shown { Visibility::Inherited } else { Visibility::Hidden };
            for e in entities {
                if let Ok(mut v) = visibility.get_mut(*e)
                    && *v != want
                {
                    *v = want;
                }
            }
            if shown.contains(tile) {
                layer.cache.touch(*tile, frame_no);
                meshes_drawn += entities.len();
                if layer.points {
                    points_drawn += layer.cache.cost(*tile).unwrap_or(0);
                }
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
                layer.pending.insert(tile, fetch_content(url, layer.points));
                starts -= 1;
            }
        }
        for gone in layer.cache.evict(&shown) {
            for e in layer.loaded.remove(&gone).unwrap_or_default() {
                commands.entity(e).despawn();
            }
        }
        drawn += shown.len();
        if layer.points {
            points_resident += layer.cache.used();
        }
        in_flight += layer.pending.len();
        wanted += selection.load.iter().filter(|t| !layer.failed.contains(t)).count();
    }
    (streaming.drawn, streaming.in_flight, streaming.wanted, streaming.meshes_drawn) =
        (drawn, in_flight, wanted, meshes_drawn);
    streaming.tiles_arrived += arrived;
    (streaming.points_drawn, streaming.points_resident) = (points_drawn, points_resident);
}

/// Bottom-up index of the BIM storey whose content `url` is, if it is one.
fn storey_index(catalogue: &super::catalogue::Catalogue, layer: &str, url: &str) -> Option<usize> {
    let info = catalogue.layers.iter().find(|l| l.id == layer)?;
    info.storeys.iter().position(|(_, c)| c == url)
}

/// Where a tile's content goes: its layer, its BIM storey if it is one, and the map
/// from its glTF coordinates to the render frame.
struct ContentAt<'a> {
    layer: &'a str,
    storey: Option<usize>,
    to_render: DMat4,
}

/// Spawns a tile's meshes, hidden until the selection shows them; returns them and
/// their estimated GPU bytes. `materials`: for plain surfaces, and for surfaces whose
/// vertices carry their own colour.
fn spawn_content(
    commands: &mut Commands,
    meshes: &mut Assets<Mesh>,
    at: ContentAt<'_>,
    content: Content,
    materials: (&Handle<StandardMaterial>, &Handle<StandardMaterial>),
) -> (Vec<Entity>, usize) {
    let ContentAt { layer, storey, to_render } = at;
    let fids = std::sync::Arc::new(content.fids);
    let mut gpu_bytes = 0;
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
        let coloured = !prim.colors.is_empty();
        if coloured {
            gpu_bytes += prim.colors.len() * 16;
            mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, prim.colors);
        }
        if prim.normals.len() == prim.positions.len() {
            mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, prim.normals);
            gpu_bytes += prim.positions.len() * 24 + prim.indices.len() * 4;
        } else {
            mesh.duplicate_vertices();
            mesh.compute_flat_normals();
            gpu_bytes += prim.indices.len() * 24;
        }
        let kind = super::bim::PartKind::from_material(prim.material.as_deref());
        let mut spawned = commands.spawn((
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(if coloured { materials.1.clone() } else { materials.0.clone() }),
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
        ));
        if let Some(storey) = storey {
            spawned.insert(super::bim::BimPart { storey, kind, base: transform });
        }
        out.push(spawned.id());
    }
    (out, gpu_bytes)
}

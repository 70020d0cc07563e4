//! Vector-tile ground layers: for each catalogue layer with a TileJSON, fetch the
//! tiles the camera needs (finer near, coarser far), decode and drape them off the
//! frame, draw one mesh per style class per tile, swap levels without holes.

use std::collections::{HashMap, HashSet};

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use cim_core::tile::TileId;

use super::catalogue::Catalogue;
use super::decode::{Decoded, Job};
use super::params::{Drawing, StreamView};
use super::platform::{Pending, fetch_decode, fetch_then};
use super::{Problems, ViewerOptions};
use crate::cache::TileCache;
use crate::ground::{GroundClass, overlaps, select_ground_tiles};

/// Ground tiles drawn at most per layer.
const MAX_GROUND_TILES: usize = 48;
/// Requests in flight at most, across layers.
const MAX_IN_FLIGHT: usize = 6;
/// Ground tiles are a small part of the budget; buildings get the rest.
const GROUND_SHARE_OF_CACHE: usize = 4;

pub struct GroundLayersPlugin;

impl Plugin for GroundLayersPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Ground>().add_systems(Update, (request_tilejson, stream_ground).chain());
    }
}

/// What a layer's TileJSON says about its vector tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct TileSource {
    pub template: String,
    pub bounds: [f64; 4],
    pub min_zoom: u8,
    pub max_zoom: u8,
}

/// Reads the fields of a TileJSON 3.0 document the ground needs.
pub fn parse_tilejson(json: &[u8]) -> Result<TileSource, String> {
    let doc: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("TileJSON: {e}"))?;
    let template = doc["tiles"][0].as_str().ok_or("TileJSON has no tiles URL")?.to_owned();
    let bounds = doc["bounds"]
        .as_array()
        .and_then(|b| {
            <[f64; 4]>::try_from(b.iter().filter_map(serde_json::Value::as_f64).collect::<Vec<_>>()).ok()
        })
        .unwrap_or([-180.0, -85.05, 180.0, 85.05]);
    // TileJSON 3.0 defaults: 0 and 30; our grid stops at 24.
    let zoom = |key: &str, default: u64| doc[key].as_u64().unwrap_or(default).min(24) as u8;
    Ok(TileSource { template, bounds, min_zoom: zoom("minzoom", 0), max_zoom: zoom("maxzoom", 30) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tilejson_and_fills_url_templates() {
        let json = br#"{"tilejson":"3.0.0","tiles":["http://h/tiles/city/{z}/{x}/{y}.mvt"],
            "bounds":[24.9,60.1,25.0,60.2],"minzoom":2,"maxzoom":16,"vector_layers":[]}"#;
        let source = parse_tilejson(json).expect("parses");
        assert_eq!(source.bounds, [24.9, 60.1, 25.0, 60.2]);
        assert_eq!((source.min_zoom, source.max_zoom), (2, 16));
        let t = TileId::new(16, 37307, 18969).expect("tile");
        assert_eq!(tile_url(&source.template, t), "http://h/tiles/city/16/37307/18969.mvt");
        // Defaults from the TileJSON spec when fields are left out.
        let bare = parse_tilejson(br#"{"tiles":["x/{z}/{x}/{y}"]}"#).expect("parses");
        assert_eq!((bare.min_zoom, bare.max_zoom, bare.bounds[0]), (0, 24, -180.0));
        assert!(parse_tilejson(br#"{"tiles":[]}"#).is_err());
    }
}

fn tile_url(template: &str, t: TileId) -> String {
    template
        .replace("{z}", &t.z.to_string())
        .replace("{x}", &t.x.to_string())
        .replace("{y}", &t.y.to_string())
}

struct GroundLayer {
    id: String,
    source: TileSource,
    pending: HashMap<TileId, Pending<Decoded>>,
    loaded: HashMap<TileId, Vec<(Entity, GroundClass)>>,
    failed: HashSet<TileId>,
    cache: TileCache,
}

#[derive(Resource, Default)]
pub struct Ground {
    requested: bool,
    tilejson: Vec<(String, Pending<TileSource>)>,
    layers: Vec<GroundLayer>,
    materials: HashMap<GroundClass, Handle<StandardMaterial>>,
    frame: u64,
    /// Every TileJSON answered.
    pub ready: bool,
    pub drawn: usize,
    pub in_flight: usize,
    pub wanted: usize,
    pub meshes_drawn: usize,
    /// Tiles arrived since start (for the benchmark's tiles per second).
    pub tiles_arrived: usize,
    /// The first terrain layer's finest meshes, which ground layers drape on; tiles
    /// wait for it (or its failure) so nothing is draped twice.
    terrain: Option<std::sync::Arc<cim_core::terrain::TerrainSurface>>,
    terrain_pending: Option<Pending<cim_core::terrain::TerrainSurface>>,
    /// Where that surface came from (Web Workers fetch it themselves).
    terrain_url: Option<String>,
}

impl Ground {
    /// Every TileJSON read and every ground tile the view wants is drawn.
    pub fn complete(&self) -> bool {
        self.ready && self.in_flight == 0 && self.wanted == 0
    }

    pub fn gpu_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.cache.used()).sum()
    }

    pub fn loaded(&self) -> usize {
        self.layers.iter().map(|l| l.cache.len()).sum()
    }
}

fn request_tilejson(catalogue: Res<Catalogue>, options: Res<ViewerOptions>, mut ground: ResMut<Ground>) {
    if ground.requested || !catalogue.loaded {
        return;
    }
    ground.requested = true;
    if let Some(terrain) = catalogue.layers.iter().find(|l| l.kind == "terrain") {
        let url = format!("{}/api/terrain/{}/surface", options.server.trim_end_matches('/'), terrain.id);
        ground.terrain_url = Some(url.clone());
        ground.terrain_pending = Some(fetch_then(url, |bytes| {
            cim_core::terrain::TerrainSurface::from_bytes(&bytes).map_err(|e| e.to_string())
        }));
    }
    for layer in &catalogue.layers {
        if let Some(url) = layer.tilejson.clone() {
            ground.tilejson.push((layer.id.clone(), fetch_then(url, |b| parse_tilejson(&b))));
        }
    }
}

fn material_for(class: GroundClass) -> StandardMaterial {
    let [r, g, b, a] = class.style().srgba;
    StandardMaterial {
        base_color: Color::srgba(r, g, b, a),
        perceptual_roughness: 1.0,
        // Draped flat: seen from below only by mistake, never culled away.
        cull_mode: None,
        // Later classes win ties with earlier ones and with the ground.
        depth_bias: 1.0 + class as u8 as f32,
        ..default()
    }
}

fn stream_ground(
    looking: StreamView,
    drawing: Drawing,
    mut visibility: Query<&mut Visibility>,
    mut ground: ResMut<Ground>,
    mut problems: ResMut<Problems>,
) {
    let (options, hidden) = (&looking.options, &looking.hidden);
    let Drawing { mut commands, mut meshes, mut materials } = drawing;
    let ground = &mut *ground;
    let mut still = Vec::new();
    for (id, rx) in std::mem::take(&mut ground.tilejson) {
        match rx.take() {
            Some(Ok(source)) => ground.layers.push(GroundLayer {
                id,
                source,
                pending: HashMap::new(),
                loaded: HashMap::new(),
                failed: HashSet::new(),
                cache: TileCache::new(options.cache_bytes / GROUND_SHARE_OF_CACHE),
            }),
            Some(Err(e)) => problems.report(format!("layer {id} ground: {e}")),
            None => still.push((id, rx)),
        }
    }
    ground.tilejson = still;
    if let Some(rx) = &ground.terrain_pending {
        match rx.take() {
            Some(Ok(surface)) => {
                ground.terrain = Some(std::sync::Arc::new(surface));
                ground.terrain_pending = None;
            }
            Some(Err(e)) => {
                problems.report(format!("terrain for draping: {e}"));
                ground.terrain_pending = None;
            }
            None => return,
        }
    }
    ground.ready = ground.requested && ground.tilejson.is_empty();
    let Some((frame, view)) = looking.view() else { return };
    ground.frame += 1;
    let frame_no = ground.frame;
    let materials_by_class = &mut ground.materials;
    let ground_surface = ground.terrain.clone();
    let terrain_url = ground_surface.as_ref().and(ground.terrain_url.clone());
    let mut starts = MAX_IN_FLIGHT.saturating_sub(ground.layers.iter().map(|l| l.pending.len()).sum());
    let (mut drawn, mut in_flight, mut wanted, mut meshes_drawn, mut arrived) = (0, 0, 0, 0, 0);
    for layer in &mut ground.layers {
        // Arrivals.
        let done: Vec<(TileId, Result<Decoded, String>)> =
            layer.pending.iter().filter_map(|(t, rx)| rx.take().map(|r| (*t, r))).collect();
        for (t, result) in done {
            layer.pending.remove(&t);
            arrived += 1;
            match result {
                Ok(Decoded::Ground(draped)) => {
                    let gpu_bytes = draped.iter().map(|(_, m)| m.gpu_bytes()).sum();
                    let mut entities = Vec::new();
                    for (class, m) in draped {
                        let material = materials_by_class
                            .entry(class)
                            .or_insert_with(|| materials.add(material_for(class)))
                            .clone();
                        let normals = vec![[0.0f32, 1.0, 0.0]; m.positions.len()];
                        let mesh =
                            Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
                                .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, m.positions)
                                .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
                                .with_inserted_indices(Indices::U32(m.indices));
                        let e = commands
                            .spawn((
                                Mesh3d(meshes.add(mesh)),
                                MeshMaterial3d(material),
                                Transform::IDENTITY,
                                Visibility::Hidden,
                                bevy::light::NotShadowCaster,
                            ))
                            .id();
                        entities.push((e, class));
                    }
                    layer.cache.insert(t.hilbert_id() as usize, gpu_bytes, frame_no);
                    layer.loaded.insert(t, entities);
                }
                Ok(_) => {
                    problems.report(format!(
                        "layer {} ground tile {}/{}/{}: not a vector tile",
                        layer.id, t.z, t.x, t.y
                    ));
                    layer.failed.insert(t);
                }
                Err(e) => {
                    problems.report(format!("layer {} ground tile {}/{}/{}: {e}", layer.id, t.z, t.x, t.y));
                    layer.failed.insert(t);
                }
            }
        }
        let shows = hidden.shows(&format!("{}/ground", layer.id));
        let want: Vec<TileId> = if shows {
            let s = &layer.source;
            select_ground_tiles(&view, s.bounds, s.min_zoom, s.max_zoom, MAX_GROUND_TILES)
        } else {
            Vec::new()
        };
        let ready = |t: &TileId| layer.loaded.contains_key(t) || layer.failed.contains(t);
        let missing: Vec<TileId> = want.iter().copied().filter(|t| !ready(t)).collect();
        // Draw what is wanted and loaded, plus any loaded tile that stands in for a
        // missing one (its parent or its children), so levels swap without holes.
        let shown: HashSet<TileId> = layer
            .loaded
            .keys()
            .copied()
            .filter(|t| want.contains(t) || missing.iter().any(|m| overlaps(*t, *m)))
            .collect();
        for (t, entities) in &layer.loaded {
            for (e, class) in entities {
                let on = shown.contains(t) && hidden.shows(class.group().label());
                let v = if on { Visibility::Inherited } else { Visibility::Hidden };
                if let Ok(mut current) = visibility.get_mut(*e)
                    && *current != v
                {
                    *current = v;
                }
                meshes_drawn += usize::from(on);
            }
        }
        for t in &shown {
            layer.cache.touch(t.hilbert_id() as usize, frame_no);
        }
        for t in &missing {
            if starts == 0 || layer.pending.contains_key(t) || layer.failed.contains(t) {
                continue;
            }
            let url = tile_url(&layer.source.template, *t);
            let job =
                Job::Ground { tile: *t, to_render: frame.ecef_to_render, terrain_url: terrain_url.clone() };
            layer.pending.insert(*t, fetch_decode(url, job, ground_surface.clone()));
            starts -= 1;
        }
        let keep: HashSet<usize> = shown.iter().map(|t| t.hilbert_id() as usize).collect();
        for gone in layer.cache.evict(&keep) {
            let Ok(t) = TileId::from_hilbert_id(gone as u64) else { continue };
            for (e, _) in layer.loaded.remove(&t).unwrap_or_default() {
                commands.entity(e).despawn();
            }
        }
        drawn += shown.len();
        in_flight += layer.pending.len();
        wanted += missing.iter().filter(|t| !layer.failed.contains(t)).count();
    }
    (ground.drawn, ground.in_flight, ground.wanted, ground.meshes_drawn) =
        (drawn, in_flight, wanted, meshes_drawn);
    ground.tiles_arrived += arrived;
}

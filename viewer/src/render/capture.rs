//! `--screenshot FILE`: once the catalogue is read and no visible tile is missing or
//! in flight for a few frames, click (if `--click`), write the PNG and exit.

use bevy::picking::mesh_picking::ray_cast::MeshRayCast;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};

use super::ground_layers::Ground;
use super::pick::pick_at;
use super::tiles::Streaming;
use super::{Problems, ViewerOptions};

/// Frames the scene must stay complete before the picture is taken.
const SETTLE_FRAMES: u32 = 20;
/// Give up waiting after this many frames and take the picture anyway.
const MAX_FRAMES: u64 = 3000;

pub struct CapturePlugin;

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<CaptureState>().add_systems(Last, capture);
    }
}

#[derive(Resource, Default)]
struct CaptureState {
    /// Frames so far: counted here, since tile streaming stops counting when there is
    /// nothing to stream (server unreachable).
    frames: u64,
    settled: u32,
    clicked: bool,
    clicked_at: Option<f32>,
    requested: bool,
    frames_after: u32,
}

#[allow(clippy::too_many_arguments)]
fn capture(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    streaming: Res<Streaming>,
    ground: Res<Ground>,
    problems: Res<Problems>,
    mut state: ResMut<CaptureState>,
    camera: Query<(&Camera, &GlobalTransform)>,
    mut ray_cast: MeshRayCast,
    tiles: super::pick::PickableTiles,
    mut exit: MessageWriter<AppExit>,
    mut picked: ResMut<super::pick::Picked>,
    attributes: Res<super::hud::Attributes>,
    heat: Res<super::sensors::HeatDrawn>,
    time: Res<Time>,
) {
    let Some(path) = &options.screenshot else { return };
    if state.requested {
        state.frames_after += 1;
        if path.exists() && state.frames_after > 3 {
            for e in &problems.0 {
                eprintln!("viewer: {e}");
            }
            println!(
                "tiles drawn {}, ground tiles drawn {}, draw calls {}, points drawn {}, points resident {}, errors {}",
                streaming.drawn,
                ground.drawn,
                streaming.meshes_drawn + ground.meshes_drawn,
                streaming.points_drawn,
                streaming.points_resident,
                problems.0.len()
            );
            exit.write(AppExit::Success);
        }
        return;
    }
    state.frames += 1;
    let complete = streaming.complete()
        && ground.complete()
        && (options.heat_map.is_none() || heat.0)
        && state.frames > 2;
    state.settled = if complete { state.settled + 1 } else { 0 };
    if state.settled < SETTLE_FRAMES && state.frames < MAX_FRAMES {
        return;
    }
    if !state.clicked {
        state.clicked = true;
        if let (Some(click), Ok((camera, at))) = (options.click, camera.single()) {
            match pick_at(Vec2::from(click), camera, at, &mut ray_cast, &tiles) {
                Some((layer, fid)) => {
                    println!("picked {layer} {fid}");
                    picked.0 = Some((layer, fid));
                }
                None => println!("picked nothing"),
            }
        }
    }
    // Let the attribute panel fill in before the picture (at most 10 s).
    let now = time.elapsed_secs();
    let since = *state.clicked_at.get_or_insert(now);
    if !attributes.settled(&picked) && now - since < 10.0 {
        return;
    }
    let _ = std::fs::remove_file(path);
    commands.spawn(Screenshot::primary_window()).observe(save_to_disk(path.clone()));
    state.requested = true;
}

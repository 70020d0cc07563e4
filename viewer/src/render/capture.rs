//! `--screenshot FILE`: once the catalogue is read, no visible tile is missing or
//! in flight and no render pipeline is still compiling for a few frames, click (if
//! `--click`), write the PNG and exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::render::render_resource::PipelineCache;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::render::{Render, RenderApp, RenderSystems};

use super::ViewerOptions;
use super::params::StreamStatus;
use super::pick::Picking;

/// Frames the scene must stay complete before the picture is taken.
const SETTLE_FRAMES: u32 = 20;
/// Give up waiting after this many frames and take the picture anyway.
const MAX_FRAMES: u64 = 3000;

pub struct CapturePlugin;

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        let pipelines = PipelinesReady::default();
        app.init_resource::<CaptureState>().insert_resource(pipelines.clone()).add_systems(Last, capture);
        if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
            render_app
                .insert_resource(pipelines)
                .add_systems(Render, note_pipelines.in_set(RenderSystems::Cleanup));
        }
    }
}

/// Whether the render world's pipeline cache had nothing left to compile at the end
/// of its last frame. bevy compiles pipelines in the background and skips what uses
/// one until it is ready: on llvmpipe a point or mesh pipeline can take seconds, and
/// a picture taken then shows tiles counted as drawn but only the clear colour (seen
/// in CI for the intensity-coloured point cloud, twice in a row).
#[derive(Resource, Clone)]
struct PipelinesReady(Arc<AtomicBool>);

impl Default for PipelinesReady {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }
}

fn note_pipelines(cache: Res<PipelineCache>, ready: Res<PipelinesReady>) {
    ready.0.store(cache.waiting_pipelines().next().is_none(), Ordering::Relaxed);
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
    /// Frames with every tile in but a pipeline still compiling.
    waited_for_pipelines: u64,
}

/// What the picture waits for: every visible tile in, the heat map drawn, the
/// pipelines compiled, the picked building's attributes shown.
#[derive(SystemParam)]
struct Readiness<'w> {
    status: StreamStatus<'w>,
    heat: Res<'w, super::live::HeatDrawn>,
    pipelines: Res<'w, PipelinesReady>,
    attributes: Res<'w, super::hud::Attributes>,
    time: Res<'w, Time>,
}

fn capture(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    ready: Readiness,
    mut state: ResMut<CaptureState>,
    mut picking: Picking,
    mut exit: MessageWriter<AppExit>,
) {
    let Readiness { status: StreamStatus { streaming, ground, problems }, heat, pipelines, attributes, time } =
        ready;
    let Some(path) = &options.screenshot else { return };
    if state.requested {
        state.frames_after += 1;
        if path.exists() && state.frames_after > 3 {
            for e in &problems.0 {
                eprintln!("viewer: {e}");
            }
            println!(
                "frames {} ({} waiting for pipelines), tiles drawn {}, ground tiles drawn {}, draw calls {}, points drawn {}, points resident {}, errors {}",
                state.frames,
                state.waited_for_pipelines,
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
    let tiles_in = streaming.complete()
        && ground.complete()
        && (options.heat_map.is_none() || heat.0)
        && state.frames > 2;
    let pipelines_ready = pipelines.0.load(Ordering::Relaxed);
    if tiles_in && !pipelines_ready {
        state.waited_for_pipelines += 1;
    }
    let complete = tiles_in && pipelines_ready;
    state.settled = if complete { state.settled + 1 } else { 0 };
    if state.settled < SETTLE_FRAMES && state.frames < MAX_FRAMES {
        return;
    }
    if !state.clicked {
        state.clicked = true;
        if let Some(click) = options.click {
            match picking.pick_at(Vec2::from(click)) {
                Some((layer, fid)) => {
                    println!("picked {layer} {fid}");
                    picking.picked.0 = Some((layer, fid));
                }
                None => println!("picked nothing"),
            }
        }
    }
    // Let the attribute panel fill in before the picture (at most 10 s).
    let now = time.elapsed_secs();
    let since = *state.clicked_at.get_or_insert(now);
    if !attributes.settled(&picking.picked) && now - since < 10.0 {
        return;
    }
    // A stale picture would look finished to the wait above; the page (no file
    // system, no --screenshot) has none.
    #[cfg(not(target_arch = "wasm32"))]
    let _ = std::fs::remove_file(path);
    commands.spawn(Screenshot::primary_window()).observe(save_to_disk(path.clone()));
    state.requested = true;
}

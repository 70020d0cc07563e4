//! `--bench SECONDS`: once the catalogue is in, fly a fixed path over the first
//! layer (a full turn around its centre, diving from the whole extent to street level
//! and back), then print one JSON line of figures and exit. The same path every run,
//! so runs compare.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::camera::{Orbit, orbit_over};
use super::catalogue::Catalogue;
use super::ground::Ground;
use super::params::StreamStatus;
use super::tiles::Streaming;
use super::{RenderFrame, ViewerOptions};

pub struct BenchPlugin;

impl Plugin for BenchPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Bench>().add_systems(PostUpdate, (fly_and_measure, report_milestones));
    }
}

#[derive(Resource, Default)]
struct Bench {
    start: Option<f64>,
    frame_ms: Vec<f64>,
    start_tiles: usize,
    max_draw_calls: usize,
    max_gpu_bytes: usize,
}

/// The camera at `u` in 0..1 along the path over `base` (the whole-extent view).
pub fn path_at(base: &Orbit, u: f32) -> Orbit {
    let dive = (u * std::f32::consts::TAU).cos() * 0.5 + 0.5; // 1 → 0 → 1
    Orbit {
        focus: base.focus,
        distance: base.distance * (0.12 + 0.88 * dive),
        heading: base.heading + u * std::f32::consts::TAU,
        pitch: (40.0 + 25.0 * (1.0 - dive)).to_radians(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The flight: its clock (real time, as frame times are), its figures and the camera it moves.
#[derive(SystemParam)]
struct Flying<'w, 's> {
    time: Res<'w, Time<Real>>,
    bench: ResMut<'w, Bench>,
    camera: Query<'w, 's, &'static mut Orbit>,
}

fn fly_and_measure(
    options: Res<ViewerOptions>,
    catalogue: Res<Catalogue>,
    frame: Option<Res<RenderFrame>>,
    status: StreamStatus,
    flying: Flying,
    mut exit: MessageWriter<AppExit>,
) {
    let StreamStatus { streaming, ground, problems } = status;
    let Flying { time, mut bench, mut camera } = flying;
    let Some(seconds) = options.bench_seconds else { return };
    let (Some(frame), Ok(mut orbit)) = (frame, camera.single_mut()) else { return };
    let Some(bounds) = catalogue.layers.iter().find_map(|l| l.bounds) else { return };
    let now = time.elapsed_secs_f64();
    let tiles = streaming.tiles_arrived + ground.tiles_arrived;
    let start = match bench.start {
        Some(s) => s,
        None => {
            bench.start = Some(now);
            bench.start_tiles = tiles;
            now
        }
    };
    let elapsed = now - start;
    if elapsed > 0.0 {
        bench.frame_ms.push(time.delta_secs_f64() * 1000.0);
    }
    bench.max_draw_calls = bench.max_draw_calls.max(streaming.meshes_drawn + ground.meshes_drawn);
    let gpu = streaming.layers.iter().map(|l| l.gpu_bytes()).sum::<usize>() + ground.gpu_bytes();
    bench.max_gpu_bytes = bench.max_gpu_bytes.max(gpu);
    let base = orbit_over(&frame, bounds, 50f32.to_radians());
    *orbit = path_at(&base, (elapsed / seconds).min(1.0) as f32);
    if elapsed < seconds {
        return;
    }
    let mut sorted = bench.frame_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let frames = sorted.len();
    let figures = serde_json::json!({
        "seconds": elapsed,
        "frames": frames,
        "fps": frames as f64 / elapsed,
        "frame_ms_p50": percentile(&sorted, 0.5),
        "frame_ms_p95": percentile(&sorted, 0.95),
        "frame_ms_max": sorted.last().copied().unwrap_or(0.0),
        "tiles_loaded": tiles - bench.start_tiles,
        "tiles_per_s": (tiles - bench.start_tiles) as f64 / elapsed,
        "max_draw_calls": bench.max_draw_calls,
        "max_gpu_estimate_mb": bench.max_gpu_bytes as f64 / 1_048_576.0,
        "peak_rss_mb": super::platform::peak_memory_bytes().map(|b| b as f64 / 1_048_576.0),
        "errors": problems.0.len(),
        "decoded_in_workers": super::platform::decoder_summary().map(|(_, tiles)| tiles),
    });
    super::platform::report(&format!("bench {figures}"));
    exit.write(AppExit::Success);
}

/// Says `milestone first_frame` once a frame went out and `milestone view_complete`
/// once every visible tile is drawn, each with the seconds since the app started:
/// the browser benchmark times them from the page load.
fn report_milestones(
    streaming: Res<Streaming>,
    ground: Res<Ground>,
    time: Res<Time<Real>>,
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    mut frames: Local<u64>,
    mut complete: Local<bool>,
) {
    *frames += 1;
    let at = time.elapsed_secs_f64();
    // Frame 1 is still being drawn while frame 2 is prepared.
    if *frames == 2 {
        super::platform::show_status("");
        // What actually draws (a browser build may be WebGL2 or WebGPU): tests and
        // bug reports read it here.
        if let Some(adapter) = adapter {
            super::platform::report(&format!("renderer {:?} {}", adapter.backend, adapter.name));
        }
        super::platform::report(&format!("milestone first_frame {at:.3}"));
    }
    if !*complete && streaming.complete() && ground.complete() {
        *complete = true;
        super::platform::report(&format!("milestone view_complete {at:.3}"));
        if let Some((workers, tiles)) = super::platform::decoder_summary() {
            super::platform::report(&format!("decoders {workers} workers decoded {tiles} tiles"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_dives_to_street_level_and_comes_back_round() {
        let base = Orbit { focus: Vec3::ZERO, distance: 2000.0, heading: 0.0, pitch: 0.8 };
        let start = path_at(&base, 0.0);
        let middle = path_at(&base, 0.5);
        let end = path_at(&base, 1.0);
        assert!((start.distance - 2000.0).abs() < 1e-2 && (end.distance - 2000.0).abs() < 1e-2);
        assert!((middle.distance - 240.0).abs() < 1e-2, "{}", middle.distance);
        assert!((end.heading - std::f32::consts::TAU).abs() < 1e-5);
        assert!(middle.pitch > start.pitch);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 100.0], 0.5), 3.0);
    }
}

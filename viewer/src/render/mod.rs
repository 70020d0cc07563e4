//! The bevy app: one plugin per concern.
//!
//! * [`tiles`]: streams 3D Tiles (select, fetch, decode off-thread, spawn, evict).
//! * [`camera`]: orbit / pan / zoom / tilt, home and north-up.
//! * [`pick`]: a click selects a building and reports its feature id.
//! * [`hud`]: FPS / tiles / memory readout, errors on screen, the picked building's attributes.
//! * [`capture`]: `--screenshot` waits for the visible tiles, writes a PNG and exits.
//! * [`platform`]: network and threads behind one seam (native now, web later).

pub mod camera;
pub mod capture;
pub mod glb;
pub mod hud;
pub mod pick;
pub mod platform;
pub mod tiles;

use bevy::prelude::*;
use glam::DMat4;

/// What the command line asked for.
#[derive(Resource, Debug, Clone)]
pub struct ViewerOptions {
    pub server: String,
    pub layers: Option<Vec<String>>,
    pub max_sse: f64,
    pub cache_bytes: usize,
    /// lon, lat, height (m), heading (deg), pitch (deg).
    pub camera: Option<[f64; 5]>,
    pub screenshot: Option<std::path::PathBuf>,
    /// Screen position to click once the tiles are in (screenshot mode), in pixels.
    pub click: Option<[f32; 2]>,
}

/// The render frame: local east-north-up metres at an origin near the city centre,
/// with bevy's y-up axes (x = east, y = up, z = -north). Positions stay f64 in ECEF
/// until this matrix brings them near the origin, so f32 never sees 6 000 km.
#[derive(Resource, Debug, Clone, Copy)]
pub struct RenderFrame {
    pub ecef_to_render: DMat4,
    pub render_to_ecef: DMat4,
}

impl RenderFrame {
    pub fn at(lon: f64, lat: f64) -> Self {
        let enu_to_ecef =
            DMat4::from_cols_array(&cim_core::frame::EnuFrame::at(lon, lat, 0.0).to_ecef_matrix());
        // bevy (x, y, z) = (east, up, -north) → ENU (x, -z, y).
        let render_to_enu = crate::tree::Y_UP_TO_Z_UP;
        let render_to_ecef = enu_to_ecef * render_to_enu;
        Self { ecef_to_render: render_to_ecef.inverse(), render_to_ecef }
    }
}

pub fn app(options: ViewerOptions, window: Window) -> App {
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin { primary_window: Some(window), ..default() }))
        .add_plugins(bevy::picking::mesh_picking::MeshPickingPlugin)
        .insert_resource(options)
        .insert_resource(ClearColor(Color::srgb(0.62, 0.72, 0.82)))
        .add_plugins((
            tiles::TilesPlugin,
            camera::OrbitCameraPlugin,
            pick::PickPlugin,
            hud::HudPlugin,
            capture::CapturePlugin,
        ));
    app
}

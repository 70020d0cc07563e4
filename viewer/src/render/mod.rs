//! The bevy app: one plugin per concern. A plugin drawing what a GPU-free module of
//! the crate computes shares its stem (`render::ground` draws `crate::ground`,
//! `render::live` shows `crate::live`, `render::points` draws `crate::points`).
//!
//! * [`catalogue`]: the server's layers; fixes the render frame's origin.
//! * [`tiles`]: streams 3D Tiles (select, fetch, decode off-thread, spawn, evict).
//! * [`ground`]: streams vector tiles and drapes roads, land use, water and
//!   borders on the ground, styled per class.
//! * [`camera`]: orbit / pan / zoom / tilt, fly-to, home and north-up.
//! * [`bim`]: BIM layers: storeys shown or hidden, exploded apart, x-ray of the shell.
//! * [`pick`]: a click selects a building, highlights it and reports its feature id.
//! * [`layer_panel`]: toggles each layer and ground class, flies to a layer.
//! * [`points`]: point cloud layers: the point shader's material and colour modes.
//! * [`live`]: live sensor markers by state, the alert list, a sensor's sparkline.
//! * [`fonts`]: in a browser, fetches the fonts for non-ASCII and CJK text on demand.
//! * [`hud`]: FPS / tiles / memory readout, errors on screen, the picked building's attributes.
//! * [`bench`]: `--bench`: flies a scripted path and reports frame times.
//! * [`capture`]: `--screenshot` waits for the visible tiles, writes a PNG and exits.
//! * [`decode`]: tile bodies into vertex arrays, and their byte form for Web Workers.
//! * [`params`]: the system parameter bundles the plugins share.
//! * [`platform`]: network, threads and workers behind one seam (native and web).

pub mod bench;
pub mod bim;
pub mod camera;
pub mod capture;
pub mod catalogue;
pub mod decode;
pub mod fonts;
pub mod glb;
pub mod ground;
pub mod hud;
pub mod layer_panel;
pub mod live;
pub mod page_options;
pub mod params;
pub mod pick;
pub mod platform;
pub mod points;
pub mod tiles;

use std::collections::HashSet;

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
    /// Layer panel entries switched off at start (`helsinki/buildings`, `roads`, ...).
    pub hidden: Vec<String>,
    /// Fly the scripted benchmark path for this many seconds, print figures, exit.
    pub bench_seconds: Option<f64>,
    /// Sun shadows (off helps software renderers and weak GPUs).
    pub shadows: bool,
    /// Sensor kind shown as a heat map at start.
    pub heat_map: Option<String>,
    /// BIM layers: shell and glazing drawn translucent, picks go through them.
    pub xray: bool,
    /// BIM layers: storeys lifted apart by this many metres each (0: in place).
    pub explode_m: f32,
    /// Point cloud layers: most points resident at once, all layers together.
    pub point_budget: usize,
    /// Point cloud layers: the colour mode at start (the layer panel and `C` switch it).
    pub point_colouring: crate::points::PointColouring,
    /// API token for servers that classify layers.
    pub access_token: Option<String>,
}

/// Messages for the person at the screen: server unreachable, missing or corrupt tiles.
#[derive(Resource, Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn report(&mut self, message: String) {
        warn!("{message}");
        // A flapping server must not grow this without bound.
        if self.0.len() >= 200 {
            self.0.remove(0);
        }
        self.0.push(message);
    }
}

/// What the layer panel has switched off. Keys: `<layer>/buildings`,
/// `<layer>/ground`, `<layer>/storey/<name>` (BIM), and a ground group's label
/// (`roads`, `water`, ...).
#[derive(Resource, Debug, Default, Clone)]
pub struct Hidden(pub HashSet<String>);

impl Hidden {
    pub fn shows(&self, key: &str) -> bool {
        !self.0.contains(key)
    }
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
    if let Some(token) = &options.access_token {
        platform::set_access_token(token.clone());
    }
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin { primary_window: Some(window), ..default() }))
        .add_plugins(bevy::picking::mesh_picking::MeshPickingPlugin)
        .insert_resource(Hidden(options.hidden.iter().cloned().collect()))
        .insert_resource(options)
        .init_resource::<Problems>()
        .insert_resource(ClearColor(Color::srgb(0.62, 0.72, 0.82)))
        .add_plugins((
            catalogue::CataloguePlugin,
            tiles::TilesPlugin,
            ground::GroundLayersPlugin,
            camera::OrbitCameraPlugin,
            pick::PickPlugin,
            layer_panel::LayerPanelPlugin,
            hud::HudPlugin,
            capture::CapturePlugin,
            bench::BenchPlugin,
            live::SensorsPlugin,
            bim::BimPlugin,
            points::PointsPlugin,
            fonts::FontsPlugin,
        ));
    app
}

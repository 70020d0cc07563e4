//! Natively: `cim-viewer --server URL [--screenshot FILE] [--camera lon,lat,h,heading,pitch] [--window WxH]`.
//! In a browser (wasm32, built by `scripts/build-web.sh`): the same app in the page's
//! `<canvas id="cim-viewer">`, its options from the page address
//! ([`cim_viewer::render::page_options`]).

#[cfg(target_arch = "wasm32")]
fn main() {
    use bevy::prelude::*;
    use cim_viewer::render::{app, page_options, platform};
    // The same module runs in the page's decoding workers, which only decode.
    if platform::serve_decoding() {
        return;
    }
    let (origin, search) = platform::page_address();
    let options = match page_options::from_query(&origin, &search) {
        Ok(o) => o,
        Err(e) => {
            // Nothing to render without a server: say why on the page and stop.
            platform::show_status(&format!("The viewer cannot start: {e}"));
            return;
        }
    };
    let window = Window {
        title: "CIM city viewer".into(),
        canvas: Some("#cim-viewer".into()),
        fit_canvas_to_parent: true,
        // The page scrolls and zooms otherwise while the camera orbits.
        prevent_default_event_handling: true,
        ..default()
    };
    app(options, window).run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> anyhow::Result<()> {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use anyhow::{Context, bail};
    use bevy::prelude::*;
    use bevy::window::{MonitorSelection, WindowMode, WindowResolution};
    use cim_viewer::points::PointColouring;
    use cim_viewer::render::{ViewerOptions, app};
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "cim-viewer", version, about = "Stream and render the city from a cim-server")]
    struct Cli {
        /// Base URL of the tile server, e.g. http://127.0.0.1:8080
        #[arg(long)]
        server: String,
        /// API token for a server with classified layers.
        #[arg(long)]
        token: Option<String>,
        /// Only these layers (comma-separated); default: every layer with 3D tiles.
        #[arg(long, value_delimiter = ',')]
        layers: Option<Vec<String>>,
        /// Start camera: lon,lat,height_m,heading_deg,pitch_deg (pitch negative looks down).
        #[arg(long, allow_hyphen_values = true)]
        camera: Option<String>,
        /// Window size in pixels, e.g. 3840x2160 for a video wall segment.
        #[arg(long, default_value = "1280x720")]
        window: String,
        #[arg(long)]
        fullscreen: bool,
        /// Render, wait until the visible tiles are loaded, write this PNG and exit.
        #[arg(long)]
        screenshot: Option<std::path::PathBuf>,
        /// With --screenshot: pick at x,y (pixels) before the picture and print the result.
        #[arg(long)]
        click: Option<String>,
        /// Maximum screen-space error in pixels before refining.
        #[arg(long, default_value_t = 16.0)]
        max_sse: f64,
        /// Tile cache budget in MiB (estimated GPU bytes of loaded tiles).
        #[arg(long, default_value_t = 512)]
        cache_mb: usize,
        /// Start with these layer-panel entries off (comma-separated): `<layer>/buildings`,
        /// `<layer>/ground`, `<layer>/storey/<name>`, `roads`, `rail`, `land use`, `water`,
        /// `district borders`, `sensors`, `sensors/<kind>`.
        #[arg(long, value_delimiter = ',')]
        hide: Vec<String>,
        /// No sun shadows: much faster on software renderers and weak GPUs.
        #[arg(long)]
        no_shadows: bool,
        /// Fly the scripted benchmark path for this many seconds, print figures as JSON, exit.
        #[arg(long)]
        bench: Option<f64>,
        /// Show this sensor kind's latest values as a heat map (the layer panel switches it).
        #[arg(long, value_name = "KIND")]
        heat_map: Option<String>,
        /// BIM layers: draw walls, slabs, roofs and windows translucent to see inside.
        #[arg(long)]
        xray: bool,
        /// BIM layers: lift storeys apart by this many metres each.
        #[arg(long, default_value_t = 0.0, value_name = "METRES")]
        explode: f32,
        /// Point cloud layers: most points resident at once (about 88 bytes of GPU memory each).
        #[arg(long, default_value_t = 3_000_000)]
        point_budget: usize,
        /// Point cloud colours at start: rgb, intensity, classification or elevation.
        #[arg(long, default_value = "rgb", value_parser = colouring)]
        point_colour: PointColouring,
    }

    fn colouring(name: &str) -> Result<PointColouring, String> {
        PointColouring::parse(name)
            .ok_or_else(|| format!("'{name}' is not rgb, intensity, classification or elevation"))
    }

    fn numbers<const N: usize>(s: &str, what: &str) -> anyhow::Result<[f64; N]> {
        let v: Vec<f64> = s
            .split([',', 'x'])
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{what} '{s}'"))?;
        v.try_into().map_err(|_| anyhow::anyhow!("{what} '{s}' needs {N} numbers"))
    }

    pub fn main() -> anyhow::Result<()> {
        let cli = Cli::parse();
        let [w, h] = numbers::<2>(&cli.window, "--window")?;
        if !(64.0..=16384.0).contains(&w) || !(64.0..=16384.0).contains(&h) {
            bail!("--window {w}x{h} is outside 64..16384");
        }
        let camera = cli.camera.as_deref().map(|c| numbers::<5>(c, "--camera")).transpose()?;
        let click = cli
            .click
            .as_deref()
            .map(|c| numbers::<2>(c, "--click").map(|[x, y]| [x as f32, y as f32]))
            .transpose()?;
        let options = ViewerOptions {
            server: cli.server,
            layers: cli.layers,
            max_sse: cli.max_sse,
            cache_bytes: cli.cache_mb * 1024 * 1024,
            camera,
            screenshot: cli.screenshot,
            click,
            hidden: cli.hide,
            bench_seconds: cli.bench.filter(|s| *s > 0.0),
            shadows: !cli.no_shadows,
            heat_map: cli.heat_map,
            xray: cli.xray,
            explode_m: cli.explode,
            point_budget: cli.point_budget,
            point_colouring: cli.point_colour,
            access_token: cli.token,
        };
        if !(0.0..=100.0).contains(&options.explode_m) {
            bail!("--explode {} is outside 0..100 metres", options.explode_m);
        }
        let window = Window {
            title: "CIM city viewer".into(),
            resolution: WindowResolution::new(w as u32, h as u32),
            mode: if cli.fullscreen {
                WindowMode::BorderlessFullscreen(MonitorSelection::Primary)
            } else {
                WindowMode::Windowed
            },
            ..default()
        };
        app(options, window).run();
        Ok(())
    }
}

//! `cim-ingest --store DIR --layer NAME [--src-crs CRS] [--height-attr NAME] FILE...`, or
//! `cim-ingest --store DIR --layer NAME --rollback [VERSION]`

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Context;
use cim_ingest::{IngestOptions, ingest};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "cim-ingest", version, about = "Ingest survey drops into the CIM store")]
struct Cli {
    /// Store directory the tile server serves.
    #[arg(long)]
    store: PathBuf,
    /// Layer to create or replace (letters, digits, '-', '_').
    #[arg(long)]
    layer: String,
    /// Source CRS, overriding the file's: EPSG:n, WKT, a PROJ string, or GCJ-02.
    #[arg(long)]
    src_crs: Option<String>,
    /// Attribute holding building height in metres.
    #[arg(long)]
    height_attr: Option<String>,
    /// Extrude every polygon lacking a height to this many metres.
    #[arg(long)]
    default_height: Option<f64>,
    #[arg(long, default_value_t = 0)]
    min_zoom: u8,
    #[arg(long, default_value_t = 16)]
    max_zoom: u8,
    /// Stop adding zoom levels once one would need more tiles than this (reported
    /// in quality.json; clients overzoom the last level written).
    #[arg(long, default_value_t = cim_ingest::options::DEFAULT_MAX_TILES_PER_ZOOM)]
    max_tiles_per_zoom: usize,
    /// Largest vector tile, kilobytes (1 000 bytes) compressed: a tile over it keeps
    /// its largest features, the rest counted per zoom in quality.json.
    #[arg(long, default_value_t = cim_ingest::options::DEFAULT_MAX_TILE_KB)]
    max_tile_kb: usize,
    /// Most features in one vector tile, likewise.
    #[arg(long, default_value_t = cim_ingest::options::DEFAULT_MAX_TILE_FEATURES)]
    max_tile_features: usize,
    /// Largest 3D Tiles tileset JSON, kilobytes: a larger tree is cut into external
    /// tilesets beside `tileset.json`.
    #[arg(long, default_value_t = cim_ingest::tileset_files::MAX_TILESET_BYTES / 1000)]
    max_tileset_kb: usize,
    /// Memory the run may use, MiB: it keeps about 200 bytes per vector feature in
    /// memory (the rest is spilled to disk) and builds tiles in chunks sized to this;
    /// a budget the input cannot fit is refused with the size it needs.
    #[arg(long, default_value_t = cim_ingest::options::DEFAULT_MEMORY_MB)]
    memory_mb: usize,
    /// Place IFC models here: longitude,latitude,height[,rotation] with the model's
    /// +x axis rotated that many degrees counter-clockwise from east. Overrides the
    /// model's IfcMapConversion or IfcSite reference point. For a point cloud in local
    /// metres (or with a CRS it contradicts): the centre of its header's box, at its
    /// lowest height, lands here.
    #[arg(long, allow_hyphen_values = true)]
    anchor: Option<cim_ingest::ifc::georef::Anchor>,
    /// Terrain: the finest level's error bound in metres (each coarser level doubles it).
    #[arg(long)]
    terrain_error: Option<f64>,
    /// Set extruded buildings on this published terrain layer (its name in --store).
    #[arg(long)]
    ground: Option<String>,
    /// Who may see the layer: public, internal or restricted (server tokens carry a
    /// clearance). A new layer is public unless given; a re-ingest keeps the current
    /// version's classification, owner, update cycle, --protect and --coarsen rules
    /// unless given, and refuses to lower any of them without --declassify.
    #[arg(long)]
    classification: Option<cim_core::catalogue::Classification>,
    /// Allow this run to lower the published layer's classification or drop or
    /// weaken its --protect / --coarsen rules (recorded in the catalogue's
    /// governance history).
    #[arg(long)]
    declassify: bool,
    /// The department that owns the data (catalogue).
    #[arg(long)]
    owner: Option<String>,
    /// How often the data is updated, e.g. "monthly" (catalogue).
    #[arg(long)]
    update_cycle: Option<String>,
    /// Desensitise an attribute: ATTRIBUTE:ACTION:CLEARANCE with ACTION drop, mask or
    /// hash; kept out of tiles, shown in full to callers cleared to CLEARANCE
    /// (vector and city model layers; repeat for several). ATTRIBUTE may end in `*`
    /// for every name it starts: `name*` covers name, name:fi, name:en, ...
    /// Given, the rules replace the current version's; `none` removes them all.
    #[arg(long = "protect", value_name = "RULE")]
    protect: Vec<String>,
    /// Coarsen positions: METRES:CLEARANCE snaps every vertex in the tiles, and in
    /// what callers below CLEARANCE get from the feature API, pick and query, to a
    /// grid of METRES (vector layers); `none` removes the current version's.
    #[arg(long, value_name = "RULE")]
    coarsen: Option<String>,
    /// Published versions of the layer to keep for rollback, the new one included.
    #[arg(long, default_value_t = cim_ingest::store::DEFAULT_KEEP_VERSIONS)]
    keep_versions: usize,
    /// Serve a kept earlier version again instead of ingesting: the given version,
    /// or without one the version before the current.
    #[arg(long, num_args = 0..=1, value_name = "VERSION")]
    rollback: Option<Option<String>>,
    /// Progress: bars, json (one line per update on stderr, for a supervising process)
    /// or off; bars when stderr is a terminal, else off.
    #[arg(long, value_name = "MODE")]
    progress: Option<String>,
    /// Stop (as on Ctrl-C: nothing published) when stdin closes: the process that
    /// runs the ingest holds its stdin open, so its death stops the ingest too.
    #[arg(long)]
    stop_on_stdin_close: bool,
    /// Input files; the format is sniffed from content and extension.
    #[arg(required_unless_present = "rollback")]
    files: Vec<PathBuf>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    cim_ingest::pointcloud::route_decoder_panics_to_their_guard();
    if let Err(e) = run() {
        eprintln!("cim-ingest: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.min_zoom <= cli.max_zoom,
        "--min-zoom {} is above --max-zoom {}",
        cli.min_zoom,
        cli.max_zoom
    );
    anyhow::ensure!(
        cli.max_zoom <= cim_core::tile::MAX_ZOOM,
        "--max-zoom {} is above {}",
        cli.max_zoom,
        cim_core::tile::MAX_ZOOM
    );
    if let Some(to) = &cli.rollback {
        anyhow::ensure!(cli.files.is_empty(), "--rollback takes no input files");
        let now = cim_ingest::store::rollback(&cli.store, &cli.layer, to.as_deref())?;
        println!("layer {} now serves version {now}", cli.layer);
        return Ok(());
    }
    anyhow::ensure!(cli.keep_versions >= 2, "--keep-versions {} must be at least 2", cli.keep_versions);
    let attribute_rules = match cli.protect.as_slice() {
        [] => None,
        [none] if none == "none" => Some(Vec::new()),
        rules => Some(
            rules
                .iter()
                .map(|r| r.parse::<cim_core::catalogue::AttributeRule>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--protect {e}"))?,
        ),
    };
    let coarsen = match cli.coarsen.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(rule) => Some(Some(rule.parse().map_err(|e| anyhow::anyhow!("--coarsen {e}"))?)),
    };
    let requested = cim_ingest::governance::Requested {
        classification: cli.classification,
        owner: cli.owner,
        update_cycle: cli.update_cycle,
        attribute_rules,
        coarsen,
        declassify: cli.declassify,
    };
    cim_ingest::store::validate_layer_name(&cli.layer)?;
    let governance = cim_ingest::governance::resolve(
        &cli.store,
        &cli.layer,
        &requested,
        &chrono::Utc::now().to_rfc3339(),
    )?;
    if !governance.inherited.is_empty() {
        eprintln!(
            "cim-ingest: layer {} keeps from its current version: {}",
            cli.layer,
            governance.inherited.join(", ")
        );
    }
    let mut options = IngestOptions::new(&cli.store, &cli.layer, cli.files);
    options.keep_versions = cli.keep_versions;
    options.attribute_rules = governance.attribute_rules;
    options.coarsen = governance.coarsen;
    options.governance_history = governance.history;
    options.src_crs = cli.src_crs;
    options.height_attr = cli.height_attr;
    options.default_height = cli.default_height;
    options.min_zoom = cli.min_zoom;
    options.max_zoom = cli.max_zoom;
    options.max_tiles_per_zoom = cli.max_tiles_per_zoom;
    anyhow::ensure!(
        (1..=100_000).contains(&cli.max_tile_kb),
        "--max-tile-kb {}: between 1 and 100000",
        cli.max_tile_kb
    );
    anyhow::ensure!(cli.max_tile_features >= 1, "--max-tile-features must be at least 1");
    options.max_tile_bytes = cli.max_tile_kb * 1000;
    options.max_tile_features = cli.max_tile_features;
    anyhow::ensure!(
        (2..=100_000).contains(&cli.max_tileset_kb),
        "--max-tileset-kb {}: between 2 and 100000",
        cli.max_tileset_kb
    );
    options.max_tileset_bytes = cli.max_tileset_kb * 1000;
    if cli.memory_mb < cim_ingest::options::MIN_MEMORY_MB {
        return Err(cim_ingest::IngestError::BudgetTooSmall {
            budget_mb: cli.memory_mb as u64,
            min_mb: cim_ingest::options::MIN_MEMORY_MB as u64,
        }
        .into());
    }
    options.memory_bytes = cli.memory_mb.saturating_mul(1 << 20);
    options.anchor = cli.anchor;
    if let Some(e) = cli.terrain_error {
        anyhow::ensure!(e.is_finite() && e > 0.0, "--terrain-error {e} must be a positive number of metres");
    }
    options.terrain_error = cli.terrain_error;
    options.ground = cli.ground.map(|g| cli.store.join(g));
    options.classification = governance.classification;
    options.owner = governance.owner;
    options.update_cycle = governance.update_cycle;
    options.progress = match cli.progress.as_deref() {
        Some(mode) => mode.parse().map_err(anyhow::Error::msg)?,
        None if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            cim_ingest::progress::ProgressMode::Bars
        }
        None => cim_ingest::progress::ProgressMode::Off,
    };
    let cancel = options.cancel.clone();
    if cli.stop_on_stdin_close {
        let cancel = options.cancel.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            // Anything read is ignored; end of file or an error means the parent is gone.
            while matches!(std::io::Read::read(&mut std::io::stdin(), &mut sink), Ok(n) if n > 0) {}
            tracing::warn!("stdin closed: stopping the ingest");
            cancel.store(true, Ordering::Relaxed);
        });
    }
    ctrlc::set_handler(move || cancel.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let summary = ingest(&options)?;
    println!("{}", summary.quality.summary_line());
    println!("{}", described(&summary));
    for w in &summary.quality.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// What a run published, in one line per kind.
fn described(summary: &cim_ingest::IngestSummary) -> String {
    use cim_core::catalogue::LayerContent;
    let c = &summary.catalogue;
    let head = format!("layer {} version {}", c.id, c.version);
    let dir = summary.layer_dir.display();
    match &c.content {
        LayerContent::Bim(bim) => format!(
            "{head}: BIM, {} elements ({} with geometry) on {} storeys in {} 3D tiles contents, placed by {} -> {dir}",
            c.feature_count,
            bim.elements_with_geometry,
            bim.storeys.len(),
            summary.building_tiles,
            bim.models.iter().map(|m| m.georeference.as_str()).collect::<Vec<_>>().join("; "),
        ),
        LayerContent::Terrain(terrain) => format!(
            "{head}: terrain, {}x{} pixels of {:.2} m from {}, zoom {}-{}: {} -> {dir}",
            terrain.raster_size[0],
            terrain.raster_size[1],
            terrain.pixel_size_m,
            c.source_crs,
            c.min_zoom,
            c.max_zoom,
            terrain
                .levels
                .iter()
                .map(|l| format!(
                    "z{} {} tiles {} triangles error {:.2} m (p99 {:.2}, bound {:.2})",
                    l.zoom, l.tiles, l.triangles, l.geometric_error_m, l.pixel_error_p99_m, l.error_bound_m
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        LayerContent::PointCloud(cloud) => format!(
            "{head}: point cloud, {} points in {} 3D tiles over {} levels (root spacing {:.3} m), {} -> {dir}",
            cloud.points, cloud.tiles, cloud.levels, cloud.root_spacing, c.source_crs,
        ),
        LayerContent::CityModel(city) => format!(
            "{head}: city model, {} objects ({} buildings; CityJSON {}) in {} 3D tiles contents, {} -> {dir}",
            c.feature_count,
            c.building_count,
            city.versions.join(", "),
            summary.building_tiles,
            c.source_crs,
        ),
        LayerContent::Vector | LayerContent::Sensors => format!(
            "{head}: {} features, {} MVT tiles (z{}-{}), {} buildings in {} 3D tiles -> {dir}",
            c.feature_count,
            summary.mvt_tiles,
            c.min_zoom,
            c.max_zoom,
            c.building_count,
            summary.building_tiles,
        ),
    }
}

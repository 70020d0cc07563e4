//! What one ingest run is asked to do: the CLI's and the server's jobs' options.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::progress::ProgressMode;

/// tippecanoe's defaults, which map clients are built around.
pub const DEFAULT_MAX_TILE_KB: usize = 500;
pub const DEFAULT_MAX_TILE_FEATURES: usize = 200_000;

/// Tiles of one zoom at most unless told: a guard against a zoom nobody meant (a
/// country at zoom 16), not a memory limit (tiles go to disk as they are built); a
/// city of 5 million buildings needs 209 328 at zoom 16.
pub const DEFAULT_MAX_TILES_PER_ZOOM: usize = 1_000_000;
/// The memory a run may use unless told, MiB.
pub const DEFAULT_MEMORY_MB: usize = 2048;
/// Less than this cannot hold a run's fixed costs (GDAL, PROJ, buffers, one chunk of tiles).
pub const MIN_MEMORY_MB: usize = 512;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub store: PathBuf,
    pub layer: String,
    pub files: Vec<PathBuf>,
    pub src_crs: Option<String>,
    pub height_attr: Option<String>,
    /// Extrude every polygon without a height to this; without it only features
    /// tagged as buildings are extruded (at [`crate::vector::DEFAULT_BUILDING_HEIGHT`]).
    pub default_height: Option<f64>,
    pub min_zoom: u8,
    pub max_zoom: u8,
    pub max_tiles_per_zoom: usize,
    /// Per vector tile, compressed bytes and features at most; over it a tile keeps
    /// its largest features and counts the rest in `quality.json`.
    pub max_tile_bytes: usize,
    pub max_tile_features: usize,
    /// What the run may hold in memory, bytes: bounds the features' summaries it
    /// keeps and the tiles it builds side by side.
    pub memory_bytes: usize,
    /// Largest tileset JSON, bytes: larger trees are cut into external tilesets.
    pub max_tileset_bytes: usize,
    pub cancel: Arc<AtomicBool>,
    /// Progress bars on a terminal, JSON lines for a supervising process, or nothing.
    pub progress: ProgressMode,
    /// Places IFC models, overriding their own georeference.
    pub anchor: Option<crate::ifc::georef::Anchor>,
    /// Error bound of a terrain layer's finest level, metres.
    pub terrain_error: Option<f64>,
    /// A published terrain layer whose surface sets the base height of extruded
    /// buildings (its directory in the store).
    pub ground: Option<PathBuf>,
    /// Who may see the layer, who owns it and how often it is updated (catalogue).
    pub classification: cim_core::catalogue::Classification,
    pub owner: Option<String>,
    pub update_cycle: Option<String>,
    /// Published versions kept for rollback, the new one included (at least two).
    pub keep_versions: usize,
    /// Desensitised attributes: kept out of tiles, served by clearance.
    pub attribute_rules: Vec<cim_core::catalogue::AttributeRule>,
    /// Coarsened positions for callers below a clearance and in every tile.
    pub coarsen: Option<cim_core::catalogue::CoarsenRule>,
    /// The governance history to publish ([`crate::governance::resolve`]).
    pub governance_history: Vec<cim_core::catalogue::GovernanceChange>,
}

impl IngestOptions {
    pub fn new(store: impl Into<PathBuf>, layer: &str, files: Vec<PathBuf>) -> Self {
        Self {
            store: store.into(),
            layer: layer.to_owned(),
            files,
            src_crs: None,
            height_attr: None,
            default_height: None,
            min_zoom: 0,
            max_zoom: 16,
            max_tiles_per_zoom: DEFAULT_MAX_TILES_PER_ZOOM,
            max_tile_bytes: DEFAULT_MAX_TILE_KB * 1000,
            max_tile_features: DEFAULT_MAX_TILE_FEATURES,
            max_tileset_bytes: crate::tileset_files::MAX_TILESET_BYTES,
            memory_bytes: DEFAULT_MEMORY_MB << 20,
            cancel: Arc::new(AtomicBool::new(false)),
            progress: ProgressMode::Off,
            anchor: None,
            terrain_error: None,
            ground: None,
            classification: cim_core::catalogue::Classification::Public,
            owner: None,
            update_cycle: None,
            keep_versions: crate::store::DEFAULT_KEEP_VERSIONS,
            attribute_rules: Vec::new(),
            coarsen: None,
            governance_history: Vec::new(),
        }
    }
}

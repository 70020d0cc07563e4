use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {reason}")]
    Source { path: PathBuf, reason: String },
    #[error("{path}: no importer recognises this file (checked its extension and first bytes)")]
    UnknownFormat { path: PathBuf },
    #[error("unknown CRS '{crs}': {reason}")]
    UnknownCrs { crs: String, reason: String },
    #[error(
        "{path}: the file declares no CRS; pass --src-crs (or, for a point cloud in local metres, --anchor lon,lat,height)"
    )]
    MissingCrs { path: PathBuf },
    #[error(
        "invalid layer name '{0}': use 1-64 letters, digits, '-' and '_' ('sensors' is the live sensor layer)"
    )]
    BadLayerName(String),
    #[error("layer '{layer}': no usable features ({why})")]
    NoFeatures { layer: String, why: String },
    #[error(
        "layer '{layer}': all {count} features lie outside the area of use of {crs} ({area}); wrong CRS? (pass --src-crs)"
    )]
    OutsideCrsArea { layer: String, count: u64, crs: String, area: String },
    #[error("store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted; the previous version of layer '{0}' is untouched and still served")]
    Interrupted(String),
    #[error(
        "layer '{layer}': {features} features need about {needed_mb} MB to tile, over the {budget_mb} MB budget (--memory-mb); raise it or split the input"
    )]
    MemoryBudget { layer: String, features: u64, needed_mb: u64, budget_mb: u64 },
    #[error("--memory-mb {budget_mb}: too small to run in; at least {min_mb} MB")]
    BudgetTooSmall { budget_mb: u64, min_mb: u64 },
    #[error("writing tiles: {0}")]
    PmTiles(#[from] cim_core::pmtiles::PmTilesError),
}

impl IngestError {
    pub fn source(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self::Source { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn store(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Store { path: path.to_path_buf(), source }
    }
}

//! What every layer run shares, whatever its kind: the sources' lineage, the staged
//! version, progress, the catalogue entry and the publish step. A kind reads its
//! inputs, writes its tiles into [`LayerRun::stage`] and hands back a [`Built`];
//! [`LayerRun::finish`] turns that into the catalogue and swaps the version in.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use cim_core::catalogue::{
    AttributeField, CATALOGUE_FILE, CatalogueEntry, FEATURES_FILE, LayerContent, MVT_ARCHIVE_FILE,
    QUALITY_FILE, QualityReport, SERVICE_FRAME, SourceFile, TILESET_DIR,
};
use sha2::{Digest, Sha256};

use crate::IngestError;
use crate::options::IngestOptions;
use crate::store::Staging;

/// What wrote the layer, in its catalogue and its tilesets.
pub const GENERATOR: &str = concat!("cim-ingest ", env!("CARGO_PKG_VERSION"));

/// Bounds that every point widens: `[west, south, low, east, north, high]` at their
/// opposite extremes.
pub const NO_BOUNDS: [f64; 6] =
    [f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];

/// One run of one layer, from its first source to its publication.
pub struct LayerRun<'a> {
    pub options: &'a IngestOptions,
    /// What was found wrong and what was done about it, filled in by the kind.
    pub quality: QualityReport,
    sources: Vec<SourceFile>,
    staged: Option<Staged>,
    started: std::time::Instant,
}

/// The version being written: begun only once the inputs have been read, so a run
/// that fails on its inputs touches nothing in the store.
struct Staged {
    staging: Staging,
    version: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// A kind of layer the ingest builds.
pub struct Kind {
    /// The layer kind in messages ("point cloud").
    pub name: &'static str,
    /// Its inputs in messages ("point clouds").
    pub inputs: &'static str,
    /// The options beyond the shared ones that it honours; given to another kind
    /// they are refused rather than ignored.
    pub takes: Takes,
    /// Reads the inputs, writes the tiles into [`LayerRun::stage`], returns the facts.
    pub build: fn(&mut LayerRun<'_>) -> Result<Built, IngestError>,
}

#[derive(Debug, Clone, Copy)]
pub struct Takes {
    /// `--protect`: desensitised attributes.
    pub attribute_rules: bool,
    /// `--coarsen`: coarsened positions.
    pub coarsen: bool,
    /// `--anchor`: placing inputs that carry no (or a wrong) georeference.
    pub anchor: bool,
}

/// What a kind built, for the catalogue: the facts only it knows.
#[derive(Debug)]
pub struct Built {
    pub content: LayerContent,
    /// `[west, south, min_height, east, north, max_height]`, degrees and metres.
    pub bounds: [f64; 6],
    /// The CRS the inputs were read in, as given or detected.
    pub source_crs: String,
    pub feature_count: u64,
    pub geometry_types: Vec<String>,
    pub attributes: Vec<AttributeField>,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// Whether it wrote vector tiles ([`MVT_ARCHIVE_FILE`]) and a 3D tileset
    /// (`TILESET_DIR/tileset.json`); every kind writes [`FEATURES_FILE`].
    pub mvt_archive: bool,
    pub tileset: bool,
    pub building_count: u64,
    /// Files written, for the summary line: vector tiles and 3D Tiles contents.
    pub mvt_tiles: usize,
    pub tiles_3d: usize,
}

impl Built {
    /// A layer of 3D Tiles only (no vector tiles, no zoom range).
    pub fn tiles_3d(content: LayerContent, bounds: [f64; 6], source_crs: String, tiles: usize) -> Self {
        Self {
            content,
            bounds,
            source_crs,
            feature_count: 0,
            geometry_types: Vec::new(),
            attributes: Vec::new(),
            min_zoom: 0,
            max_zoom: 0,
            mvt_archive: false,
            tileset: true,
            building_count: 0,
            mvt_tiles: 0,
            tiles_3d: tiles,
        }
    }
}

/// What one run published.
#[derive(Debug)]
pub struct IngestSummary {
    pub catalogue: CatalogueEntry,
    pub quality: QualityReport,
    pub layer_dir: PathBuf,
    pub mvt_tiles: usize,
    /// 3D Tiles contents written.
    pub building_tiles: usize,
}

impl<'a> LayerRun<'a> {
    pub fn begin(options: &'a IngestOptions) -> Self {
        Self {
            options,
            quality: QualityReport { layer: options.layer.clone(), ..Default::default() },
            sources: Vec::new(),
            staged: None,
            started: std::time::Instant::now(),
        }
    }

    /// Records an input for the lineage: its size and checksum, and its format as read.
    pub fn source(&mut self, path: &Path, format: impl Into<String>) -> Result<(), IngestError> {
        let (bytes, sha256) = sha256_file(path)?;
        self.sources.push(SourceFile {
            path: path.display().to_string(),
            format: format.into(),
            bytes,
            sha256,
        });
        Ok(())
    }

    /// The staged version's directory, begun on first use.
    pub fn stage(&mut self) -> Result<PathBuf, IngestError> {
        if let Some(s) = &self.staged {
            return Ok(s.staging.dir().to_path_buf());
        }
        let at = chrono::Utc::now();
        let version = format!("{}-{}", at.format("%Y%m%dT%H%M%S%.6fZ"), std::process::id());
        let staging = Staging::begin(&self.options.store, &self.options.layer, &version)?
            .keeping(self.options.keep_versions);
        let dir = staging.dir().to_path_buf();
        self.staged = Some(Staged { staging, version, at });
        Ok(dir)
    }

    /// The new version's name (staging it if not yet).
    pub fn version(&mut self) -> Result<String, IngestError> {
        self.stage()?;
        Ok(self.staged.as_ref().map(|s| s.version.clone()).unwrap_or_default())
    }

    /// A progress bar for one stage, in the run's progress mode.
    pub fn progress(&self, len: u64, stage: &str) -> indicatif::ProgressBar {
        crate::progress::progress_bar(self.options.progress, len, stage, None)
    }

    /// An error when the run was asked to stop.
    pub fn check_cancel(&self) -> Result<(), IngestError> {
        if self.options.cancel.load(Ordering::Relaxed) {
            Err(IngestError::Interrupted(self.options.layer.clone()))
        } else {
            Ok(())
        }
    }

    /// Writes the quality report and catalogue into the staged version and publishes
    /// it, unless the run was interrupted meanwhile.
    pub fn finish(mut self, built: Built) -> Result<IngestSummary, IngestError> {
        self.stage()?;
        let Some(Staged { staging, version, at }) = self.staged.take() else {
            return Err(IngestError::Interrupted(self.options.layer.clone()));
        };
        let options = self.options;
        let b = built.bounds;
        let [w, s, e, n] = cim_core::tileset::clamp_degrees([b[0], b[1], b[3], b[4]]);
        let mut governance_history = options.governance_history.clone();
        // The change this run made to the governance is this version's.
        for change in governance_history.iter_mut().filter(|c| c.version.is_empty()) {
            change.version.clone_from(&version);
        }
        let kind = built.content.kind();
        let catalogue = CatalogueEntry {
            id: options.layer.clone(),
            content: built.content,
            version,
            bounds_wgs84: [w, s, e, n],
            bounds_service_frame: [w, s, b[2], e, n, b[5]],
            service_frame: SERVICE_FRAME.to_owned(),
            source_crs: built.source_crs,
            sources: std::mem::take(&mut self.sources),
            feature_count: built.feature_count,
            geometry_types: built.geometry_types,
            attributes: built.attributes,
            min_zoom: built.min_zoom,
            max_zoom: built.max_zoom,
            mvt_archive: built.mvt_archive.then(|| MVT_ARCHIVE_FILE.to_owned()),
            tileset: built.tileset.then(|| format!("{TILESET_DIR}/tileset.json")),
            features: FEATURES_FILE.to_owned(),
            building_count: built.building_count,
            ingested_at: at.to_rfc3339(),
            tool: GENERATOR.to_owned(),
            classification: options.classification,
            owner: options.owner.clone(),
            update_cycle: options.update_cycle.clone(),
            attribute_rules: options.attribute_rules.clone(),
            coarsen: options.coarsen,
            governance_history,
        };
        write_json(&staging.dir().join(QUALITY_FILE), &self.quality)?;
        write_json(&staging.dir().join(CATALOGUE_FILE), &catalogue)?;
        self.check_cancel()?;
        let layer_dir = staging.commit()?;
        tracing::info!(
            layer = options.layer,
            ?kind,
            tiles_3d = built.tiles_3d,
            mvt_tiles = built.mvt_tiles,
            seconds = self.started.elapsed().as_secs_f64(),
            "layer published"
        );
        Ok(IngestSummary {
            catalogue,
            quality: self.quality,
            layer_dir,
            mvt_tiles: built.mvt_tiles,
            building_tiles: built.tiles_3d,
        })
    }
}

/// Size and SHA-256 of a source file; of its archive for a `/vsizip/` member.
pub(crate) fn sha256_file(path: &Path) -> Result<(u64, String), IngestError> {
    let on_disk = crate::source::archive_of(path).unwrap_or_else(|| path.to_path_buf());
    let mut file = std::fs::File::open(&on_disk).map_err(|e| IngestError::source(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| IngestError::source(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), IngestError> {
    let text =
        serde_json::to_vec_pretty(value).map_err(|e| IngestError::store(path, std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(|e| IngestError::store(path, e))
}

/// The feature store of a layer whose contents are not features (points, terrain):
/// empty, so the feature API answers with no items rather than failing.
pub(crate) fn write_no_features(dir: &Path) -> Result<(), IngestError> {
    crate::feature_store::write_values(&dir.join(FEATURES_FILE), Vec::new())
}

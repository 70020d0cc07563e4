//! Loading layers from the store and noticing re-ingests.
//!
//! `STORE/<layer>` is a symlink the ingest swaps atomically. Each request resolves
//! it; when it points at a new version directory, that version is loaded and
//! replaces the cached one, so a re-ingested layer is served without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cim_core::catalogue::{
    CATALOGUE_FILE, CatalogueEntry, Classification, CoarsenRule, FEATURES_FILE, GLOBAL_ID, LayerKind,
    MVT_ARCHIVE_FILE, RuleAction,
};
use cim_core::feature_file::FeatureFile;
use cim_core::features::{METRES_PER_DEGREE, from_geojson};
use cim_core::pmtiles::{Entry, Header, Lookup, find, tile_entries_at};
use cim_core::read_at::ReadAt;
use cim_core::terrain::TerrainSurface;
use cim_core::tile::TileId;
use geo::Intersects;
use geo_types::{Geometry, Point, Rect};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ApiError;
use crate::http_cache::{BudgetCache, Prepared};

/// A file of a layer version, read by range (many readers at once, no seek state).
pub struct DiskFile {
    file: std::fs::File,
    len: u64,
}

impl DiskFile {
    fn open(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
        Ok(Self { file, len })
    }
}

impl ReadAt for DiskFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
}

/// A PMTiles archive on disk: its directory in memory, flattened for binary search
/// (one entry per distinct tile run, not per feature), tiles read by range.
pub struct TileArchive {
    pub header: Header,
    file: DiskFile,
    entries: Vec<Entry>,
}

impl TileArchive {
    fn open(path: &Path) -> Result<Self, String> {
        let file = DiskFile::open(path)?;
        let (header, entries) =
            tile_entries_at(&file, file.len).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { header, file, entries })
    }

    /// The stored (possibly compressed) bytes of a tile and their offset, which
    /// identifies the content within this archive (identical tiles share it).
    pub fn tile(&self, tile: TileId) -> Result<Option<(Vec<u8>, u64)>, ApiError> {
        let Lookup::Tile { offset, length } = find(&self.entries, tile.hilbert_id()) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; length as usize];
        self.file
            .read_exact_at(&mut bytes, self.header.tile_data_offset.saturating_add(offset))
            .map_err(|e| ApiError::Internal(format!("tile {tile}: {e}")))?;
        Ok(Some((bytes, offset)))
    }
}

/// Bytes of prepared responses kept per layer version (TileJSON per host, 3D Tiles
/// files); the oldest go first.
const MAX_PREPARED_BYTES: usize = 64 << 20;

/// One published version of a layer, in memory.
pub struct Layer {
    pub dir: PathBuf,
    pub catalogue: CatalogueEntry,
    /// The catalogue for callers below admin: source paths cut to file names.
    catalogue_without_paths: CatalogueEntry,
    pub archive: Option<TileArchive>,
    prepared: BudgetCache<Arc<Prepared>>,
    /// The feature store on disk: features by position (their rank by id), by id
    /// and by box.
    features: FeatureFile<DiskFile>,
    /// BIM layers (one model's elements): feature position by IFC GlobalId.
    global_ids: HashMap<String, usize>,
    /// Terrain layers: the finest level's meshes.
    pub terrain: Option<TerrainSurface>,
    /// The grid callers below its clearance see positions on (computed per answer,
    /// so no coarse copy of the layer is kept).
    coarse: Option<CoarsenRule>,
}

impl Layer {
    fn load(dir: PathBuf) -> Result<Self, String> {
        let catalogue_path = dir.join(CATALOGUE_FILE);
        let catalogue: CatalogueEntry = serde_json::from_slice(
            &std::fs::read(&catalogue_path).map_err(|e| format!("{}: {e}", catalogue_path.display()))?,
        )
        .map_err(|e| format!("{CATALOGUE_FILE}: {e}"))?;
        let archive = match &catalogue.mvt_archive {
            Some(name) if name == MVT_ARCHIVE_FILE => Some(TileArchive::open(&dir.join(name))?),
            _ => None,
        };
        if catalogue.features != FEATURES_FILE {
            return Err(format!(
                "{}: the features are in '{}', written by an ingest before the feature store \
                 ({FEATURES_FILE}); re-ingest the layer",
                dir.display(),
                catalogue.features
            ));
        }
        let path = dir.join(FEATURES_FILE);
        let file = DiskFile::open(&path)?;
        let len = file.len;
        let features = FeatureFile::open(file, len).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut layer = Self {
            terrain: match catalogue.terrain() {
                Some(t) => {
                    let path = dir.join(&t.surface);
                    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    Some(TerrainSurface::from_bytes(&bytes).map_err(|e| format!("{}: {e}", t.surface))?)
                }
                None => None,
            },
            catalogue_without_paths: {
                let mut c = catalogue.clone();
                for source in &mut c.sources {
                    source.path = crate::paths::without_directories(&source.path);
                }
                c
            },
            coarse: catalogue.coarsen,
            catalogue,
            dir,
            archive,
            prepared: BudgetCache::new(MAX_PREPARED_BYTES),
            features,
            global_ids: HashMap::new(),
        };
        if layer.catalogue.kind() == LayerKind::Bim {
            // One model's elements: few enough to key in memory.
            for i in 0..layer.features.len() {
                let f = layer.stored(i as usize).map_err(|e| e.to_string())?;
                if let Some(g) = f["properties"][GLOBAL_ID].as_str() {
                    layer.global_ids.insert(g.to_owned(), i as usize);
                }
            }
        }
        Ok(layer)
    }

    /// The catalogue entry as the caller may read it: admins see where the ingest
    /// host read the sources, everyone else their file names.
    pub fn catalogue_for_caller(&self) -> &CatalogueEntry {
        if crate::access::current().role >= crate::access::Role::Admin {
            &self.catalogue
        } else {
            &self.catalogue_without_paths
        }
    }

    /// A response computed once per layer version and key, then served from memory.
    pub fn prepared(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Prepared, ApiError>,
    ) -> Result<Arc<Prepared>, ApiError> {
        if let Some(p) = self.prepared.get(key) {
            return Ok(p);
        }
        let p = Arc::new(make()?);
        self.prepared.insert(key, p.clone(), p.bytes());
        Ok(p)
    }

    /// How many features the layer has.
    pub fn feature_count(&self) -> usize {
        self.features.len() as usize
    }

    fn read_error(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(format!("{}: {e}", self.dir.join(FEATURES_FILE).display()))
    }

    /// Feature `index` as ingest stored it, whatever the caller's clearance: for
    /// decisions, never for answers.
    pub fn stored(&self, index: usize) -> Result<Value, ApiError> {
        let bytes = self.features.record(index as u64).map_err(|e| self.read_error(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.read_error(format!("feature {index}: {e}")))
    }

    /// The geometry of a stored feature as the caller may see it: on the coarsening
    /// grid below its clearance.
    fn geometry_for_caller(&self, f: &Value) -> Option<Geometry<f64>> {
        let exact = from_geojson(&f["geometry"]).ok()?;
        Some(match self.coarse_for_caller() {
            Some(rule) => cim_core::features::coarsen(&exact, rule.metres),
            None => exact,
        })
    }

    /// Feature `index` as the caller may see it: positions coarsened and protected
    /// attributes dropped, masked or hashed below their rule's clearance.
    pub fn feature(&self, index: usize) -> Result<Value, ApiError> {
        let mut f = self.stored(index)?;
        if self.coarse_for_caller().is_some() {
            let coarse =
                self.geometry_for_caller(&f).map_or(Value::Null, |g| cim_core::features::to_geojson(&g));
            f["geometry"] = coarse;
        }
        let rules = &self.catalogue.attribute_rules;
        if rules.is_empty() {
            return Ok(f);
        }
        let caller = crate::access::current();
        if let Some(props) = f.get_mut("properties").and_then(Value::as_object_mut) {
            // Of the rules covering a key (patterns cover name variants), the one
            // needing the highest clearance decides.
            let covered: Vec<(String, RuleAction)> = props
                .keys()
                .filter_map(|k| {
                    rules.iter().filter(|r| r.matches(k)).max_by_key(|r| r.clearance).map(|r| (k, r))
                })
                .filter(|(_, r)| !caller.may_see(r.clearance))
                .map(|(k, r)| (k.clone(), r.action))
                .collect();
            for (key, action) in covered {
                match action {
                    RuleAction::Drop => {
                        props.remove(&key);
                    }
                    RuleAction::Mask => {
                        props.insert(key, Value::from("***"));
                    }
                    RuleAction::Hash => {
                        // Keyed by the layer version: pseudonyms match within it only.
                        let text = match props.get(&key) {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => continue,
                        };
                        let digest =
                            Sha256::digest(format!("{}\u{0}{key}\u{0}{text}", self.catalogue.version));
                        props.insert(key, Value::from(format!("h:{}", hex::encode(&digest[..12]))));
                    }
                }
            }
        }
        Ok(f)
    }

    /// The feature of a BIM element.
    pub fn global_id(&self, id: &str) -> Option<usize> {
        self.global_ids.get(id).copied()
    }

    /// The coarsening grid, when the caller is below its clearance.
    fn coarse_for_caller(&self) -> Option<CoarsenRule> {
        self.coarse.filter(|c| !crate::access::current().may_see(c.clearance))
    }

    /// Positions of the features whose geometry, as the caller sees it, intersects
    /// `probe` (the box `bbox`, or its point when it has no extent), in id order. A
    /// feature whose box lies wholly inside `bbox` meets it without being read; the
    /// rest are read and tested.
    fn search(&self, bbox: [f64; 4], probe: &Geometry<f64>) -> Result<Vec<usize>, ApiError> {
        let coarse = self.coarse_for_caller();
        // Coarse positions lie within a cell of the exact ones: widen the search by
        // one cell so nothing the caller would see on the grid is missed.
        let searched = match coarse {
            Some(rule) => {
                let dlat = rule.metres / METRES_PER_DEGREE;
                let top = bbox[1].abs().max(bbox[3].abs()) + dlat;
                let dlon = (rule.metres / (METRES_PER_DEGREE * top.min(89.9).to_radians().cos())).min(360.0);
                [bbox[0] - dlon, bbox[1] - dlat, bbox[2] + dlon, bbox[3] + dlat]
            }
            None => bbox,
        };
        let candidates = self.features.search(searched).map_err(|e| self.read_error(e))?;
        let mut hits = Vec::new();
        for (position, b) in candidates {
            let inside = b[0] >= bbox[0] && b[1] >= bbox[1] && b[2] <= bbox[2] && b[3] <= bbox[3];
            if coarse.is_none() && inside {
                hits.push(position as usize);
                continue;
            }
            let f = self.stored(position as usize)?;
            if self.geometry_for_caller(&f).is_some_and(|g| g.intersects(probe)) {
                hits.push(position as usize);
            }
        }
        Ok(hits)
    }

    /// Positions of features whose geometry contains or touches the point. Below
    /// the coarsening clearance the point is snapped to its cell first, so a pick
    /// finds what is in the cell (features coarsened to points sit at cell centres)
    /// and probing within a cell learns nothing.
    pub fn pick(&self, lon: f64, lat: f64) -> Result<Vec<usize>, ApiError> {
        let (lon, lat) = match self.coarse_for_caller() {
            Some(rule) => {
                let s = cim_core::features::coarsen_coord(geo_types::Coord { x: lon, y: lat }, rule.metres);
                (s.x, s.y)
            }
            None => (lon, lat),
        };
        self.search([lon, lat, lon, lat], &Geometry::Point(Point::new(lon, lat)))
    }

    /// Positions of features intersecting the box, in id order.
    pub fn query(&self, bbox: [f64; 4]) -> Result<Vec<usize>, ApiError> {
        let rect = Rect::new((bbox[0], bbox[1]), (bbox[2], bbox[3]));
        self.search(bbox, &Geometry::Rect(rect))
    }

    /// A point inside feature `index` (not merely its centroid, which may fall in a
    /// courtyard), as the caller sees it: where a sensor attached to it is drawn.
    pub fn anchor(&self, index: usize) -> Option<(f64, f64)> {
        use geo::InteriorPoint;
        let f = self.stored(index).ok()?;
        self.geometry_for_caller(&f)?.interior_point().map(|p| (p.x(), p.y()))
    }

    /// Position of feature `fid`.
    pub fn find_fid(&self, fid: u64) -> Result<Option<usize>, ApiError> {
        Ok(self.features.position_of(fid).map_err(|e| self.read_error(e))?.map(|p| p as usize))
    }
}

pub struct LayerCache {
    store: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Layer>>>,
    /// Classifications of layer versions not loaded, by their resolved directory:
    /// listings check every layer per request without reading each catalogue.
    classifications: Mutex<HashMap<PathBuf, Classification>>,
    /// Loads under way, by version directory: concurrent first requests for a
    /// version share one load instead of each reading the layer.
    loading: Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<Arc<Layer>>>>>,
    /// Layer versions read from disk since start.
    loads: std::sync::atomic::AtomicU64,
}

/// The store's rule for layer names ([`cim_core::catalogue::is_layer_name`]).
pub fn valid_layer_name(name: &str) -> bool {
    cim_core::catalogue::is_layer_name(name)
}

impl LayerCache {
    pub fn new(store: PathBuf) -> Self {
        Self {
            store,
            loaded: Mutex::new(HashMap::new()),
            classifications: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            loads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Path {
        &self.store
    }

    /// The current version of a layer, loading it if it changed since last time.
    pub async fn get(&self, name: &str) -> Result<Arc<Layer>, ApiError> {
        if !valid_layer_name(name) {
            return Err(ApiError::NotFound(format!(
                "no layer '{}'",
                name.chars().take(64).collect::<String>()
            )));
        }
        let dir = std::fs::canonicalize(self.store.join(name))
            .map_err(|_| ApiError::NotFound(format!("no layer '{name}'")))?;
        // A layer above the caller's clearance does not exist for it.
        let visible = |layer: Arc<Layer>| {
            if crate::access::current().may_see(layer.catalogue.classification) {
                crate::access::note_served(layer.catalogue.classification);
                Ok(layer)
            } else {
                Err(ApiError::NotFound(format!("no layer '{name}'")))
            }
        };
        if let Some(layer) = self.cached(name).filter(|l| l.dir == dir) {
            return visible(layer);
        }
        let cell = self
            .loading
            .lock()
            .map_err(|_| ApiError::Internal("layer loads poisoned".into()))?
            .entry(dir.clone())
            .or_default()
            .clone();
        let from = dir.clone();
        let result = cell
            .get_or_try_init(|| async move {
                self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let loaded = tokio::task::spawn_blocking(move || Layer::load(from))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .map_err(ApiError::Internal)?;
                let layer = Arc::new(loaded);
                if let Ok(mut map) = self.loaded.lock() {
                    map.insert(name.to_owned(), layer.clone());
                }
                tracing::info!(layer = name, version = layer.catalogue.version, "layer loaded");
                Ok::<_, ApiError>(layer)
            })
            .await
            .cloned();
        // Done, or failed (the next request tries again): either way no longer loading.
        if let Ok(mut loading) = self.loading.lock() {
            loading.remove(&dir);
        }
        visible(result?)
    }

    /// Layer versions read from disk since start.
    pub fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cached(&self, name: &str) -> Option<Arc<Layer>> {
        self.loaded.lock().ok().and_then(|m| m.get(name).cloned())
    }

    /// Names of the published layers the caller may see, sorted.
    pub fn names(&self) -> Vec<String> {
        let principal = crate::access::current();
        self.all_names()
            .into_iter()
            .filter(|n| {
                let c = self.classification(n);
                let seen = principal.may_see(c);
                if seen {
                    crate::access::note_served(c);
                }
                seen
            })
            .collect()
    }

    /// The classification of a published layer, `None` when there is none by that
    /// name (whoever asks: for checks, not for answers).
    pub fn classification_of(&self, name: &str) -> Option<Classification> {
        (valid_layer_name(name) && self.store.join(name).join(CATALOGUE_FILE).is_file())
            .then(|| self.classification(name))
    }

    /// A layer's classification, from its loaded version when current, else from
    /// its catalogue file (restricted when unreadable: fail closed).
    fn classification(&self, name: &str) -> Classification {
        let dir = std::fs::canonicalize(self.store.join(name)).ok();
        if let Some(layer) = self.cached(name).filter(|l| Some(&l.dir) == dir.as_ref()) {
            return layer.catalogue.classification;
        }
        let Some(dir) = dir else { return Classification::Restricted };
        if let Some(c) = self.classifications.lock().ok().and_then(|m| m.get(&dir).copied()) {
            return c;
        }
        #[derive(serde::Deserialize)]
        struct Only {
            #[serde(default)]
            classification: Classification,
        }
        // A version directory never changes once published, so its answer is kept.
        match std::fs::read(dir.join(CATALOGUE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Only>(&b).ok())
        {
            Some(o) => {
                if let Ok(mut m) = self.classifications.lock() {
                    if m.len() > 10_000 {
                        m.clear();
                    }
                    m.insert(dir, o.classification);
                }
                o.classification
            }
            None => Classification::Restricted,
        }
    }

    /// The kept versions of a layer, oldest first (the current one is in its
    /// catalogue).
    pub fn versions(&self, name: &str) -> Vec<String> {
        let names: Vec<String> = std::fs::read_dir(self.store.join(cim_core::catalogue::VERSIONS_DIR))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        cim_core::catalogue::layer_versions(name, names.iter().map(String::as_str))
    }

    /// Names of every published layer, sorted.
    fn all_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.store)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_layer_name(n) && self.store.join(n).join(CATALOGUE_FILE).is_file())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_written_before_the_feature_store_is_refused_with_a_call_to_re_ingest() {
        let dir = std::env::temp_dir().join(format!("cim-legacy-layer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A vector layer's catalogue as ingests before the feature store wrote it.
        let catalogue = serde_json::json!({
            "id": "old", "kind": "vector", "version": "v1",
            "bounds_wgs84": [24.9, 60.1, 25.0, 60.2],
            "bounds_service_frame": [24.9, 60.1, 0.0, 25.0, 60.2, 0.0],
            "service_frame": cim_core::catalogue::SERVICE_FRAME, "source_crs": "EPSG:4326",
            "sources": [], "feature_count": 1, "geometry_types": ["Point"], "attributes": [],
            "min_zoom": 0, "max_zoom": 0, "mvt_archive": null, "tileset": null,
            "features": "features.json", "building_count": 0,
            "ingested_at": "2026-01-01T00:00:00+00:00", "tool": "cim-ingest 0.1.0",
        });
        std::fs::write(dir.join(CATALOGUE_FILE), catalogue.to_string()).expect("catalogue");
        std::fs::write(dir.join("features.json"), r#"{"type":"FeatureCollection","features":[]}"#)
            .expect("features");
        let why = Layer::load(dir.clone()).err().expect("refused");
        assert!(why.contains("features.json") && why.contains("re-ingest"), "{why}");
        // A feature store cut short is refused too, naming the file.
        std::fs::write(dir.join(FEATURES_FILE), b"CIMFEAT1").expect("store");
        let mut current = catalogue;
        current["features"] = FEATURES_FILE.into();
        std::fs::write(dir.join(CATALOGUE_FILE), current.to_string()).expect("catalogue");
        let why = Layer::load(dir.clone()).err().expect("refused");
        assert!(why.contains(FEATURES_FILE) && why.contains("shorter"), "{why}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}

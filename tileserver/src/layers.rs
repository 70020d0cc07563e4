//! Loading layers from the store and noticing re-ingests.
//!
//! `STORE/<layer>` is a symlink the ingest swaps atomically. Each request resolves
//! it; when it points at a new version directory, that version is loaded and
//! replaces the cached one, so a re-ingested layer is served without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cim_core::catalogue::{
    CATALOGUE_FILE, CatalogueEntry, Classification, GLOBAL_ID, LayerKind, MVT_ARCHIVE_FILE, RuleAction,
};
use cim_core::features::from_geojson;
use cim_core::pmtiles::{Entry, Header, Lookup, find, tile_entries};
use cim_core::terrain::TerrainSurface;
use cim_core::tile::TileId;
use geo::{BoundingRect, Intersects};
use geo_types::{Geometry, Point, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ApiError;
use crate::http_cache::Prepared;

type Indexed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A PMTiles archive in memory with its directory flattened for binary search.
pub struct TileArchive {
    pub header: Header,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl TileArchive {
    /// The stored (possibly compressed) bytes of a tile and their offset, which
    /// identifies the content within this archive (identical tiles share it).
    pub fn tile(&self, tile: TileId) -> Option<(&[u8], u64)> {
        let Lookup::Tile { offset, length } = find(&self.entries, tile.hilbert_id()) else {
            return None;
        };
        let start = usize::try_from(self.header.tile_data_offset + offset).ok()?;
        let bytes = self.bytes.get(start..start.checked_add(length as usize)?)?;
        Some((bytes, offset))
    }
}

/// Bytes of prepared responses kept per layer version (TileJSON per host, 3D Tiles
/// files); the oldest go first.
const MAX_PREPARED_BYTES: usize = 64 << 20;

/// Responses prepared for one layer version, under [`MAX_PREPARED_BYTES`].
#[derive(Default)]
struct PreparedCache {
    map: HashMap<String, Arc<Prepared>>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

/// One published version of a layer, in memory.
pub struct Layer {
    pub dir: PathBuf,
    pub catalogue: CatalogueEntry,
    /// The catalogue for callers below admin: source paths cut to file names.
    catalogue_without_paths: CatalogueEntry,
    pub archive: Option<TileArchive>,
    prepared: Mutex<PreparedCache>,
    /// GeoJSON features sorted by id, as ingest wrote them.
    pub features: Vec<Value>,
    geometries: Vec<Geometry<f64>>,
    tree: RTree<Indexed>,
    /// BIM layers: feature index by IFC GlobalId.
    global_ids: HashMap<String, usize>,
    /// Terrain layers: the finest level's meshes.
    pub terrain: Option<TerrainSurface>,
    /// What callers below the layer's coarsening clearance search and see.
    coarse: Option<Coarse>,
}

/// A layer's positions on its coarsening grid, indexed like the exact ones, so that
/// picking and box queries cannot trace an outline finer than the grid.
struct Coarse {
    clearance: cim_core::catalogue::Classification,
    metres: f64,
    geometries: Vec<Geometry<f64>>,
    geojson: Vec<Value>,
    tree: RTree<Indexed>,
}

impl Coarse {
    fn build(rule: cim_core::catalogue::CoarsenRule, exact: &[Geometry<f64>]) -> Self {
        let geometries: Vec<Geometry<f64>> =
            exact.iter().map(|g| cim_core::features::coarsen(g, rule.metres)).collect();
        let geojson = geometries.iter().map(cim_core::features::to_geojson).collect();
        Self { clearance: rule.clearance, metres: rule.metres, tree: index(&geometries), geometries, geojson }
    }
}

fn index(geometries: &[Geometry<f64>]) -> RTree<Indexed> {
    let entries = geometries
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let r = g.bounding_rect()?;
            Some(GeomWithData::new(
                Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                i,
            ))
        })
        .collect();
    RTree::bulk_load(entries)
}

impl Layer {
    fn load(dir: PathBuf) -> Result<Self, String> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let catalogue: CatalogueEntry =
            serde_json::from_slice(&read(CATALOGUE_FILE)?).map_err(|e| format!("{CATALOGUE_FILE}: {e}"))?;
        let archive = match &catalogue.mvt_archive {
            Some(name) if name == MVT_ARCHIVE_FILE => {
                let bytes = read(name)?;
                let (header, entries) = tile_entries(&bytes).map_err(|e| format!("{name}: {e}"))?;
                Some(TileArchive { header, bytes, entries })
            }
            _ => None,
        };
        let mut collection: Value = serde_json::from_slice(&read(&catalogue.features)?)
            .map_err(|e| format!("{}: {e}", catalogue.features))?;
        let features = match collection.get_mut("features").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => return Err(format!("{}: no features array", catalogue.features)),
        };
        let geometries = features
            .iter()
            .enumerate()
            .map(|(i, f)| from_geojson(&f["geometry"]).map_err(|e| format!("feature {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let coarse = catalogue.coarsen.map(|rule| Coarse::build(rule, &geometries));
        let global_ids = if catalogue.kind() == LayerKind::Bim {
            features
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f["properties"][GLOBAL_ID].as_str().map(|g| (g.to_owned(), i)))
                .collect()
        } else {
            HashMap::new()
        };
        let terrain = match catalogue.terrain() {
            Some(t) => Some(
                TerrainSurface::from_bytes(&read(&t.surface)?).map_err(|e| format!("{}: {e}", t.surface))?,
            ),
            None => None,
        };
        let mut catalogue_without_paths = catalogue.clone();
        for source in &mut catalogue_without_paths.sources {
            source.path = crate::paths::without_directories(&source.path);
        }
        Ok(Self {
            dir,
            terrain,
            catalogue,
            catalogue_without_paths,
            archive,
            prepared: Mutex::new(PreparedCache::default()),
            features,
            tree: index(&geometries),
            geometries,
            global_ids,
            coarse,
        })
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
        if let Some(p) = self.prepared.lock().ok().and_then(|c| c.map.get(key).cloned()) {
            return Ok(p);
        }
        let p = Arc::new(make()?);
        let size = p.bytes();
        if size <= MAX_PREPARED_BYTES / 8
            && let Ok(mut cache) = self.prepared.lock()
            && cache.map.insert(key.to_owned(), p.clone()).is_none()
        {
            cache.order.push_back(key.to_owned());
            cache.bytes += size;
            while cache.bytes > MAX_PREPARED_BYTES {
                let Some(old) = cache.order.pop_front() else { break };
                if let Some(gone) = cache.map.remove(&old) {
                    cache.bytes -= gone.bytes();
                }
            }
        }
        Ok(p)
    }

    /// Feature `index` as the caller may see it: protected attributes dropped,
    /// masked or hashed below their rule's clearance.
    pub fn feature(&self, index: usize) -> Value {
        let mut f = self.features.get(index).cloned().unwrap_or(Value::Null);
        if let Some(coarse) = self.coarse_for_caller()
            && let (Some(slot), Some(g)) = (f.get_mut("geometry"), coarse.geojson.get(index))
        {
            slot.clone_from(g);
        }
        let rules = &self.catalogue.attribute_rules;
        if rules.is_empty() {
            return f;
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
        f
    }

    /// The feature of a BIM element.
    pub fn global_id(&self, id: &str) -> Option<usize> {
        self.global_ids.get(id).copied()
    }

    /// The coarse positions, when the caller is below the layer's coarsening clearance.
    fn coarse_for_caller(&self) -> Option<&Coarse> {
        self.coarse.as_ref().filter(|c| !crate::access::current().may_see(c.clearance))
    }

    /// The geometries and index the caller searches: coarse below the clearance.
    fn searched(&self) -> (&[Geometry<f64>], &RTree<Indexed>) {
        match self.coarse_for_caller() {
            Some(c) => (&c.geometries, &c.tree),
            None => (&self.geometries, &self.tree),
        }
    }

    /// Indices of features whose geometry contains or touches the point. Below the
    /// coarsening clearance the point is snapped to its cell first, so a pick finds
    /// what is in the cell (features coarsened to points sit at cell centres) and
    /// probing within a cell learns nothing.
    pub fn pick(&self, lon: f64, lat: f64) -> Vec<usize> {
        let (lon, lat) = match self.coarse_for_caller() {
            Some(c) => {
                let s = cim_core::features::coarsen_coord(geo_types::Coord { x: lon, y: lat }, c.metres);
                (s.x, s.y)
            }
            None => (lon, lat),
        };
        let p = Point::new(lon, lat);
        let (geometries, tree) = self.searched();
        let mut hits: Vec<usize> = tree
            .locate_all_at_point(&[lon, lat])
            .map(|e| e.data)
            .filter(|&i| geometries[i].intersects(&p))
            .collect();
        hits.sort_unstable();
        hits
    }

    /// Indices of features intersecting the box, in id order.
    pub fn query(&self, bbox: [f64; 4]) -> Vec<usize> {
        let rect = Rect::new((bbox[0], bbox[1]), (bbox[2], bbox[3]));
        let (geometries, tree) = self.searched();
        let mut hits: Vec<usize> = tree
            .locate_in_envelope_intersecting(&AABB::from_corners([bbox[0], bbox[1]], [bbox[2], bbox[3]]))
            .map(|e| e.data)
            .filter(|&i| geometries[i].intersects(&rect))
            .collect();
        hits.sort_unstable();
        hits
    }

    /// A point inside feature `index` (not merely its centroid, which may fall in a
    /// courtyard): where a sensor attached to it is drawn.
    pub fn anchor(&self, index: usize) -> Option<(f64, f64)> {
        use geo::InteriorPoint;
        self.searched().0.get(index)?.interior_point().map(|p| (p.x(), p.y()))
    }

    pub fn fid(&self, index: usize) -> Option<u64> {
        self.features.get(index).and_then(|f| f["id"].as_u64())
    }

    /// Position of feature `fid` (features are sorted by id).
    pub fn find_fid(&self, fid: u64) -> Option<usize> {
        let i = self.features.partition_point(|f| f["id"].as_u64().is_some_and(|id| id < fid));
        (self.fid(i) == Some(fid)).then_some(i)
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

//! The catalogue entry and data-quality report each ingest writes beside a layer.
//!
//! The tile server lists these at `/api/layers` and builds OGC API collections from
//! them; the viewer reads them to know what to stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// File names inside a layer directory.
pub const CATALOGUE_FILE: &str = "catalogue.json";
pub const QUALITY_FILE: &str = "quality.json";
pub const MVT_ARCHIVE_FILE: &str = "tiles.pmtiles";
/// The feature store ([`crate::feature_file`]); layers written before it have
/// `features.json`, which the server refuses with a call to re-ingest.
pub const FEATURES_FILE: &str = "features.cimf";
pub const TILESET_DIR: &str = "3dtiles";
/// The BIM element property a BIM layer's features are keyed by.
pub const GLOBAL_ID: &str = "GlobalId";
/// A terrain layer's finest meshes ([`crate::terrain::TerrainSurface`]).
pub const TERRAIN_SURFACE_FILE: &str = "terrain_surface.bin";
/// A terrain layer's quantized-mesh-1.0 tiles (`{z}/{x}/{y}.terrain`) and their
/// `layer.json`.
pub const QUANTIZED_MESH_DIR: &str = "quantized-mesh";

/// The CRS every served position is in: WGS84 longitude, latitude (degrees) and
/// ellipsoidal height (metres).
pub const SERVICE_FRAME: &str = "EPSG:4979";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// 2D GIS features, with extruded 3D buildings where polygons carry heights.
    Vector,
    /// A BIM model (IFC): elements with IFC class, storey and property sets, as
    /// 3D Tiles with one content per storey.
    Bim,
    /// A point cloud (LAS/LAZ/COPC) as 3D Tiles with `POINTS` content.
    PointCloud,
    /// A DEM as terrain meshes: 3D Tiles with replacement refinement, plus the finest
    /// level as a [`crate::terrain::TerrainSurface`] for height queries.
    Terrain,
    /// 3D city models (CityJSON): buildings, roads, vegetation … as 3D Tiles with one
    /// feature per city object, surfaces coloured by their semantics.
    CityModel,
    /// The live sensor registry: points with their latest reading and state, kept
    /// by the server rather than written by an ingest.
    Sensors,
}

/// How sensitive a layer is; a caller sees layers at or below its clearance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    #[default]
    Public,
    Internal,
    Restricted,
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Restricted => "restricted",
        })
    }
}

impl std::str::FromStr for Classification {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" => Ok(Self::Public),
            "internal" => Ok(Self::Internal),
            "restricted" => Ok(Self::Restricted),
            other => Err(format!("'{other}' is not a classification (public, internal, restricted)")),
        }
    }
}

/// What callers below a rule's clearance get of a protected attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Left out.
    Drop,
    /// Replaced by `***`.
    Mask,
    /// Replaced by a keyed hash: the same value gives the same pseudonym within a
    /// layer version, so records can still be matched.
    Hash,
}

/// Coarsened positions: callers below `clearance` (and every tile) get each vertex
/// snapped to the centre of a grid cell `metres` on a side; outlines that collapse
/// become the cell of their centre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoarsenRule {
    pub metres: f64,
    pub clearance: Classification,
}

impl std::str::FromStr for CoarsenRule {
    type Err = String;

    /// `METRES:CLEARANCE`, e.g. `100:internal`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((metres, clearance)) = s.split_once(':') else {
            return Err(format!("'{s}': write METRES:CLEARANCE, e.g. 100:internal"));
        };
        let metres: f64 =
            metres.trim().parse().map_err(|_| format!("'{metres}' is not a number of metres"))?;
        if !(metres.is_finite() && (1.0..=100_000.0).contains(&metres)) {
            return Err(format!("{metres} m: use a grid of 1 to 100000 metres"));
        }
        Ok(Self { metres, clearance: clearance.parse()? })
    }
}

/// A desensitisation rule: `attribute` in full only for callers cleared to
/// `clearance`; never in tiles, which every caller of the layer can fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeRule {
    pub attribute: String,
    pub action: RuleAction,
    pub clearance: Classification,
}

impl std::str::FromStr for AttributeRule {
    type Err = String;

    /// `ATTRIBUTE:ACTION:CLEARANCE`, e.g. `phone:mask:internal`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.rsplitn(3, ':').collect();
        let [clearance, action, attribute] = parts.as_slice() else {
            return Err(format!("'{s}': write ATTRIBUTE:ACTION:CLEARANCE, e.g. phone:mask:internal"));
        };
        let action = match action.trim().to_ascii_lowercase().as_str() {
            "drop" => RuleAction::Drop,
            "mask" => RuleAction::Mask,
            "hash" => RuleAction::Hash,
            other => return Err(format!("'{other}' is not an action (drop, mask, hash)")),
        };
        if attribute.is_empty() {
            return Err(format!("'{s}': no attribute name"));
        }
        if attribute.trim_end_matches('*').contains('*') || *attribute == "*" {
            return Err(format!(
                "'{attribute}': '*' may only end a name (name* or name:* for name:fi, name:en, ...)"
            ));
        }
        Ok(Self { attribute: (*attribute).to_owned(), action, clearance: clearance.parse()? })
    }
}

impl AttributeRule {
    /// Whether the rule covers attribute `key`: its name exactly, or every name it
    /// starts when it ends with `*` (`name*` covers `name`, `name:fi`, `name_en`;
    /// `name:*` covers the `name:` variants only).
    pub fn matches(&self, key: &str) -> bool {
        match self.attribute.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == self.attribute,
        }
    }
}

/// The directory in a store holding every kept version of every layer.
pub const VERSIONS_DIR: &str = ".versions";
/// Suffix of a version being staged in [`VERSIONS_DIR`]; never served, and removed
/// when its ingest was interrupted.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The kept versions of `layer`, oldest first, from the entry names of a store's
/// versions directory (`<layer>@<version>`; unfinished `.partial` ones left out).
/// Version names start with their UTC time, so name order is age order.
pub fn layer_versions<'a>(layer: &str, entries: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = entries
        .into_iter()
        .filter_map(|name| name.strip_prefix(layer)?.strip_prefix('@'))
        .filter(|v| !v.ends_with(".partial"))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// The id of the live sensor layer, in `/api/layers` and OGC API `/collections`.
/// Ingest refuses it as a layer name so the two never collide.
pub const SENSORS_LAYER: &str = "sensors";

/// Whether `name` may name a stored layer: 1-64 ASCII letters, digits, '-' and
/// '_', not starting with '-' (a flag) or '.' (the store's own directories), and
/// not the live sensor layer's id. One rule for the ingest that writes layers and
/// the server that reads them.
pub fn is_layer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name != SENSORS_LAYER
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub format: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeField {
    pub name: String,
    /// `string`, `integer`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One published layer version: what it is, where it came from, what it holds and
/// who may see it (`catalogue.json`).
///
/// On disk the content is a `kind` tag beside one optional summary per kind (the
/// format older versions wrote and read); in memory it is one [`LayerContent`], so
/// a layer cannot be a terrain without its terrain facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wire::Entry", into = "wire::Entry")]
pub struct CatalogueEntry {
    pub id: String,
    /// What kind of layer this is, with that kind's facts.
    pub content: LayerContent,
    /// Unique per ingest; changes whenever the layer is rebuilt.
    pub version: String,
    /// `[west, south, east, north]` degrees (EPSG:4326).
    pub bounds_wgs84: [f64; 4],
    /// `[west, south, min_height, east, north, max_height]` in [`SERVICE_FRAME`].
    pub bounds_service_frame: [f64; 6],
    pub service_frame: String,
    /// The CRS the sources were read in, as given or detected (e.g. `EPSG:4490`).
    pub source_crs: String,
    /// Lineage: every input with its checksum.
    pub sources: Vec<SourceFile>,
    pub feature_count: u64,
    pub geometry_types: Vec<String>,
    pub attributes: Vec<AttributeField>,
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// Relative paths of what was produced.
    pub mvt_archive: Option<String>,
    pub tileset: Option<String>,
    pub features: String,
    pub building_count: u64,
    pub ingested_at: String,
    pub tool: String,
    /// Who may see the layer (older catalogues without one are public).
    pub classification: Classification,
    /// The department that owns the data, and how often it is updated.
    pub owner: Option<String>,
    pub update_cycle: Option<String>,
    /// Desensitised attributes (kept out of tiles, shown by clearance).
    pub attribute_rules: Vec<AttributeRule>,
    /// Positions coarsened below a clearance (tiles always carry the coarse ones).
    pub coarsen: Option<CoarsenRule>,
    /// Every change of who may see what, oldest first, carried from version to
    /// version: the lineage of the layer's governance.
    pub governance_history: Vec<GovernanceChange>,
}

/// A layer's kind with the facts only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerContent {
    Vector,
    Bim(BimSummary),
    PointCloud(PointCloudSummary),
    Terrain(TerrainSummary),
    CityModel(CityModelSummary),
    Sensors,
}

impl LayerContent {
    pub fn kind(&self) -> LayerKind {
        match self {
            Self::Vector => LayerKind::Vector,
            Self::Bim(_) => LayerKind::Bim,
            Self::PointCloud(_) => LayerKind::PointCloud,
            Self::Terrain(_) => LayerKind::Terrain,
            Self::CityModel(_) => LayerKind::CityModel,
            Self::Sensors => LayerKind::Sensors,
        }
    }
}

impl CatalogueEntry {
    pub fn kind(&self) -> LayerKind {
        self.content.kind()
    }

    pub fn bim(&self) -> Option<&BimSummary> {
        match &self.content {
            LayerContent::Bim(s) => Some(s),
            _ => None,
        }
    }

    pub fn point_cloud(&self) -> Option<&PointCloudSummary> {
        match &self.content {
            LayerContent::PointCloud(s) => Some(s),
            _ => None,
        }
    }

    pub fn terrain(&self) -> Option<&TerrainSummary> {
        match &self.content {
            LayerContent::Terrain(s) => Some(s),
            _ => None,
        }
    }

    pub fn city_model(&self) -> Option<&CityModelSummary> {
        match &self.content {
            LayerContent::CityModel(s) => Some(s),
            _ => None,
        }
    }
}

/// `catalogue.json` as it is written: the content as a tag plus optional summaries.
mod wire {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub(super) struct Entry {
        id: String,
        kind: LayerKind,
        version: String,
        bounds_wgs84: [f64; 4],
        bounds_service_frame: [f64; 6],
        service_frame: String,
        source_crs: String,
        sources: Vec<SourceFile>,
        feature_count: u64,
        geometry_types: Vec<String>,
        attributes: Vec<AttributeField>,
        min_zoom: u8,
        max_zoom: u8,
        mvt_archive: Option<String>,
        tileset: Option<String>,
        features: String,
        building_count: u64,
        ingested_at: String,
        tool: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bim: Option<BimSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        point_cloud: Option<PointCloudSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terrain: Option<TerrainSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        city_model: Option<CityModelSummary>,
        #[serde(default)]
        classification: Classification,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        update_cycle: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attribute_rules: Vec<AttributeRule>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coarsen: Option<CoarsenRule>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        governance_history: Vec<GovernanceChange>,
    }

    impl TryFrom<Entry> for CatalogueEntry {
        type Error = String;

        fn try_from(e: Entry) -> Result<Self, String> {
            let missing =
                |summary: &str| format!("layer {}: a {summary} layer without its `{summary}` facts", e.id);
            let content = match e.kind {
                LayerKind::Vector => LayerContent::Vector,
                LayerKind::Sensors => LayerContent::Sensors,
                LayerKind::Bim => LayerContent::Bim(e.bim.ok_or_else(|| missing("bim"))?),
                LayerKind::PointCloud => {
                    LayerContent::PointCloud(e.point_cloud.ok_or_else(|| missing("point_cloud"))?)
                }
                LayerKind::Terrain => LayerContent::Terrain(e.terrain.ok_or_else(|| missing("terrain"))?),
                LayerKind::CityModel => {
                    LayerContent::CityModel(e.city_model.ok_or_else(|| missing("city_model"))?)
                }
            };
            Ok(CatalogueEntry {
                id: e.id,
                content,
                version: e.version,
                bounds_wgs84: e.bounds_wgs84,
                bounds_service_frame: e.bounds_service_frame,
                service_frame: e.service_frame,
                source_crs: e.source_crs,
                sources: e.sources,
                feature_count: e.feature_count,
                geometry_types: e.geometry_types,
                attributes: e.attributes,
                min_zoom: e.min_zoom,
                max_zoom: e.max_zoom,
                mvt_archive: e.mvt_archive,
                tileset: e.tileset,
                features: e.features,
                building_count: e.building_count,
                ingested_at: e.ingested_at,
                tool: e.tool,
                classification: e.classification,
                owner: e.owner,
                update_cycle: e.update_cycle,
                attribute_rules: e.attribute_rules,
                coarsen: e.coarsen,
                governance_history: e.governance_history,
            })
        }
    }

    impl From<CatalogueEntry> for Entry {
        fn from(c: CatalogueEntry) -> Self {
            let kind = c.content.kind();
            let (mut bim, mut point_cloud, mut terrain, mut city_model) = (None, None, None, None);
            match c.content {
                LayerContent::Vector | LayerContent::Sensors => {}
                LayerContent::Bim(s) => bim = Some(s),
                LayerContent::PointCloud(s) => point_cloud = Some(s),
                LayerContent::Terrain(s) => terrain = Some(s),
                LayerContent::CityModel(s) => city_model = Some(s),
            }
            Entry {
                id: c.id,
                kind,
                version: c.version,
                bounds_wgs84: c.bounds_wgs84,
                bounds_service_frame: c.bounds_service_frame,
                service_frame: c.service_frame,
                source_crs: c.source_crs,
                sources: c.sources,
                feature_count: c.feature_count,
                geometry_types: c.geometry_types,
                attributes: c.attributes,
                min_zoom: c.min_zoom,
                max_zoom: c.max_zoom,
                mvt_archive: c.mvt_archive,
                tileset: c.tileset,
                features: c.features,
                building_count: c.building_count,
                ingested_at: c.ingested_at,
                tool: c.tool,
                bim,
                point_cloud,
                terrain,
                city_model,
                classification: c.classification,
                owner: c.owner,
                update_cycle: c.update_cycle,
                attribute_rules: c.attribute_rules,
                coarsen: c.coarsen,
                governance_history: c.governance_history,
            }
        }
    }
}

/// One re-ingest that changed a layer's classification or protection rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernanceChange {
    /// The version that made the change, and the one before it.
    pub version: String,
    pub from_version: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// Whether anything was lowered (`--declassify`).
    pub declassified: bool,
    /// What changed, e.g. `classification restricted -> public`.
    pub changes: Vec<String>,
}

/// The facts of a terrain layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerrainSummary {
    /// Raster width and height in pixels, and its pixel size in metres.
    pub raster_size: [u32; 2],
    pub pixel_size_m: f64,
    /// The raster's no-data value, if it declares one.
    pub nodata: Option<f64>,
    /// Valid raster pixels.
    pub valid_pixels: u64,
    /// Zoom levels of the geographic tiling scheme, coarsest first.
    pub levels: Vec<TerrainLevel>,
    /// The finest level's meshes, for `/api/elevation`.
    pub surface: String,
    /// Heights are the raster's values as given (no geoid applied).
    pub height_reference: String,
}

/// One zoom level of terrain tiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerrainLevel {
    pub zoom: u8,
    pub tiles: u64,
    /// Surface triangles (skirts not counted), all tiles together.
    pub triangles: u64,
    /// The simplification's bound: every grid sample is at most this far from the mesh.
    pub error_bound_m: f64,
    /// Largest distance, in metres, between the mesh and any raster pixel centre:
    /// the tiles' declared geometric error.
    pub geometric_error_m: f64,
    /// 99th percentile of that distance over the pixels measured (steep steps between
    /// neighbouring pixels dominate the maximum).
    pub pixel_error_p99_m: f64,
    /// Raster pixel centres the errors were measured at.
    pub pixels_measured: u64,
}

/// The facts of a city model layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CityModelSummary {
    /// CityJSON version of each source, as read (`1.0`, `1.1`, `2.0`).
    pub versions: Vec<String>,
    /// City objects by type (`Building`, `Road`, ...), every object counted.
    pub objects_by_type: BTreeMap<String, u64>,
    /// Levels of detail present, with the objects that have each.
    pub objects_by_lod: BTreeMap<String, u64>,
    /// Triangles by semantic surface (`RoofSurface`, `WallSurface`, ... or `none`).
    pub triangles_by_surface: BTreeMap<String, u64>,
    /// What was read but not carried into tiles (appearances, say).
    pub skipped: Vec<String>,
}

/// The facts of a point cloud layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointCloudSummary {
    /// Points written, over all tiles (each point is in exactly one: additive refinement).
    pub points: u64,
    /// Written points by LAS classification code.
    pub points_by_class: BTreeMap<u8, u64>,
    pub has_color: bool,
    /// Octree depth (the root is level 0) and tile count.
    pub levels: u8,
    pub tiles: u64,
    /// Distance between neighbouring points the root keeps, in metres.
    pub root_spacing: f64,
    /// Largest quantisation step of any tile, in metres.
    pub max_quantisation_step: f64,
}

/// The facts of a BIM layer's models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BimSummary {
    /// One per source file, in order.
    pub models: Vec<BimModel>,
    /// Elements by IFC class (e.g. `IfcWallStandardCase`), every element counted.
    pub elements_by_class: BTreeMap<String, u64>,
    pub elements_with_geometry: u64,
    /// Storeys from bottom to top.
    pub storeys: Vec<Storey>,
}

/// Where one IFC model stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BimModel {
    /// IFC schema as the file's header names it (`IFC4`, `IFC2X3`, `IFC4X3_RC2`).
    pub schema: String,
    /// How it was placed on the Earth (IfcMapConversion, IfcSite, `--anchor`).
    pub georeference: String,
    /// Longitude, latitude (degrees) and ellipsoidal height (metres) of the model's
    /// origin: the centre of its tile's east-north-up frame.
    pub anchor: [f64; 3],
    /// Column-major 4×4 from the model's coordinates in metres (as elements'
    /// `bounds_model` are given) to east, north, up metres at `anchor`.
    pub model_to_enu: [f64; 16],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storey {
    pub global_id: String,
    pub name: String,
    /// Elevation in metres, as the model states it.
    pub elevation: Option<f64>,
    /// The 3D Tiles content holding this storey's elements.
    pub content: String,
    pub element_count: u64,
}

/// Counts of what the ingest found wrong and what it did about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub layer: String,
    pub features_read: u64,
    pub features_written: u64,
    /// Geometries changed to make them valid, by reason.
    pub repaired: BTreeMap<String, u64>,
    /// Features left out, by reason.
    pub dropped: BTreeMap<String, u64>,
    pub empty_geometries: u64,
    pub duplicate_ids: u64,
    pub missing_heights: u64,
    pub outside_crs_area_of_use: u64,
    /// `[west, south, east, north]` degrees, when the source CRS declares one.
    pub crs_area_of_use: Option<[f64; 4]>,
    /// The first problems found, for a person to look at.
    pub examples: Vec<QualityIssue>,
    /// Doubts about a whole source (its CRS, units, header) that did not stop it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the vector tiles left out to stay within their budget (vector layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiling: Option<TilingReport>,
}

/// How the vector tiles were held to a size clients can use, zoom by zoom.
///
/// A tile over its budget keeps its largest features (area, then length; points
/// by a hash of their id, so they thin evenly) and leaves out the rest; each left
/// out feature is counted once per zoom, in the tile holding its centre. Features
/// smaller than a pixel at a zoom are shown there as one-pixel marks, one per
/// screen pixel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TilingReport {
    /// The budget: compressed bytes and features per tile.
    pub max_tile_bytes: u64,
    pub max_tile_features: u64,
    /// The zooms written, from the first that holds a tile to the last.
    pub min_zoom: u8,
    pub max_zoom: u8,
    /// Why the last zoom written is not the one asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Every zoom written.
    pub zooms: BTreeMap<u8, ZoomTiles>,
}

/// One zoom's tiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoomTiles {
    pub tiles: u64,
    /// The largest tile, compressed bytes, and the most features in one tile.
    pub largest_tile_bytes: u64,
    pub most_features: u64,
    /// Tiles whose features were over the budget.
    #[serde(default)]
    pub tiles_over_budget: u64,
    /// Features left out of their own tile.
    #[serde(default)]
    pub features_dropped: u64,
    /// Features smaller than a pixel, drawn as one-pixel marks.
    #[serde(default)]
    pub pixel_marks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityIssue {
    pub source: String,
    pub feature: String,
    pub problem: String,
}

const MAX_EXAMPLES: usize = 50;

impl QualityReport {
    pub fn count_repaired(&mut self, reason: &str) {
        *self.repaired.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn count_dropped(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn example(&mut self, source: &str, feature: &str, problem: &str) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(QualityIssue {
                source: source.to_owned(),
                feature: feature.to_owned(),
                problem: problem.to_owned(),
            });
        }
    }

    /// One line for logs and the ingest's stdout.
    pub fn summary_line(&self) -> String {
        let join = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            }
        };
        format!(
            "quality {}: read {}, written {}, repaired [{}], dropped [{}], empty {}, duplicate ids {}, missing heights {}, outside CRS area {}",
            self.layer,
            self.features_read,
            self.features_written,
            join(&self.repaired),
            join(&self.dropped),
            self.empty_geometries,
            self.duplicate_ids,
            self.missing_heights,
            self.outside_crs_area_of_use
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_rules_parse_from_the_command_line_form() {
        let r: AttributeRule = "owner:phone:mask:internal".parse().expect("rule");
        assert_eq!(
            r,
            AttributeRule {
                attribute: "owner:phone".into(),
                action: RuleAction::Mask,
                clearance: Classification::Internal
            }
        );
        assert!("phone:blur:internal".parse::<AttributeRule>().is_err());
        for good in ["helsinki", "helsinki_buildings-2", "B1"] {
            assert!(is_layer_name(good), "{good}");
        }
        for bad in ["", "-x", ".jobs", ".versions", "sensors", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(!is_layer_name(bad), "{bad}");
        }
        let names: AttributeRule = "name*:drop:internal".parse().expect("pattern");
        assert!(names.matches("name") && names.matches("name:fi") && names.matches("name:en"));
        assert!(!names.matches("old_name") && !names.matches("nam"));
        let variants: AttributeRule = "name:*:mask:internal".parse().expect("pattern");
        assert_eq!(variants.attribute, "name:*");
        assert!(variants.matches("name:sv") && !variants.matches("name"));
        let exact: AttributeRule = "name:mask:internal".parse().expect("rule");
        assert!(exact.matches("name") && !exact.matches("name:fi"));
        assert!("na*me:drop:internal".parse::<AttributeRule>().is_err());
        assert!("*:drop:internal".parse::<AttributeRule>().is_err());
        assert!("phone:mask:secret".parse::<AttributeRule>().is_err());
        assert!("phone".parse::<AttributeRule>().is_err());
    }

    #[test]
    fn catalogue_files_keep_their_tag_and_summaries() {
        // As every version so far wrote a terrain layer's catalogue.json.
        let written = serde_json::json!({
            "id": "dem", "kind": "terrain", "version": "v1",
            "bounds_wgs84": [24.9, 60.1, 25.0, 60.2],
            "bounds_service_frame": [24.9, 60.1, 0.0, 25.0, 60.2, 80.0],
            "service_frame": SERVICE_FRAME, "source_crs": "EPSG:3067",
            "sources": [{"path": "dem.tif", "format": "GTiff raster, Float32", "bytes": 10, "sha256": "ab"}],
            "feature_count": 0, "geometry_types": ["TIN"], "attributes": [],
            "min_zoom": 0, "max_zoom": 12, "mvt_archive": null, "tileset": "tiles3d/tileset.json",
            "features": "features.json", "building_count": 0,
            "ingested_at": "2026-01-01T00:00:00+00:00", "tool": "cim-ingest 0.1.0",
            "terrain": {
                "raster_size": [10, 10], "pixel_size_m": 2.0, "nodata": null, "valid_pixels": 100,
                "levels": [], "surface": "surface.bin", "height_reference": "as given"
            },
            "classification": "internal",
        });
        let entry: CatalogueEntry = serde_json::from_value(written.clone()).expect("read");
        assert_eq!(entry.kind(), LayerKind::Terrain);
        assert_eq!(entry.terrain().map(|t| t.valid_pixels), Some(100));
        assert!(entry.bim().is_none() && entry.point_cloud().is_none() && entry.city_model().is_none());
        assert_eq!(serde_json::to_value(&entry).expect("write"), written, "written back as read");

        let mut no_facts = written.clone();
        no_facts.as_object_mut().expect("object").remove("terrain");
        let e = serde_json::from_value::<CatalogueEntry>(no_facts).expect_err("a terrain without its facts");
        assert!(e.to_string().contains("layer dem: a terrain layer without its `terrain` facts"), "{e}");
        // A summary of another kind beside the tag is not this layer's content.
        let mut vector = written;
        vector["kind"] = "vector".into();
        let entry: CatalogueEntry = serde_json::from_value(vector).expect("read");
        assert_eq!(entry.content, LayerContent::Vector);
        assert!(serde_json::to_value(&entry).expect("write").get("terrain").is_none());
    }

    #[test]
    fn summary_line_counts_reasons() {
        let mut q = QualityReport { layer: "b".into(), features_read: 3, ..Default::default() };
        q.count_repaired("ring closed");
        q.count_repaired("ring closed");
        q.count_dropped("ring with fewer than 4 points");
        let line = q.summary_line();
        assert!(line.contains("repaired [ring closed 2]"), "{line}");
        assert!(line.contains("dropped [ring with fewer than 4 points 1]"), "{line}");
        let back: QualityReport =
            serde_json::from_str(&serde_json::to_string(&q).expect("json")).expect("parse");
        assert_eq!(back, q);
    }
}

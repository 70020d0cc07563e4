//! A vector layer's feature between reading and tiling.

use geo_types::Geometry;
use serde_json::{Map, Value};

/// A cleaned feature in the service frame.
#[derive(Debug, Clone)]
pub struct LayerFeature {
    pub fid: u64,
    pub geometry: Geometry<f64>,
    pub properties: Map<String, Value>,
    /// Extrusion height in metres, for features that become buildings.
    pub building_height: Option<f64>,
    /// Height of a building's floor: the lowest ground under its footprint when the
    /// ingest is given a terrain layer (`--ground`), else 0.
    pub base_height: f64,
}

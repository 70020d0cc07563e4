//! OGC 3D Tiles 1.1 `tileset.json` types.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tileset {
    pub asset: Asset,
    /// Error, in metres, of showing nothing of the tileset.
    pub geometric_error: f64,
    pub root: Tile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tileset_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tile {
    pub bounding_volume: BoundingVolume,
    pub geometric_error: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine: Option<Refine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<[f64; 16]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Tile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundingVolume {
    /// `[west, south, east, north, min_height, max_height]`, radians and metres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<[f64; 6]>,
    /// Centre then three half-axis vectors, in the tile's (transformed) frame.
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    pub oriented_box: Option<[f64; 12]>,
    /// Centre and radius, in the tile's (transformed) frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sphere: Option<[f64; 4]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Refine {
    Add,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub uri: String,
    /// Content's own bounds, when tighter than the tile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounding_volume: Option<BoundingVolume>,
}

impl BoundingVolume {
    pub fn region(region: [f64; 6]) -> Self {
        Self { region: Some(region), oriented_box: None, sphere: None }
    }
}

impl Tile {
    /// Depth-first walk over this tile and its descendants.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Tile)) {
        visit(self);
        for child in &self.children {
            child.walk(visit);
        }
    }
}

/// A region from degrees: `[west, south, east, north]` plus heights.
pub fn region_from_degrees(bounds: [f64; 4], min_h: f64, max_h: f64) -> [f64; 6] {
    [
        bounds[0].to_radians(),
        bounds[1].to_radians(),
        bounds[2].to_radians(),
        bounds[3].to_radians(),
        min_h,
        max_h,
    ]
}

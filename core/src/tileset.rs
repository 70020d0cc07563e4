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

/// A region from degrees: `[west, south, east, north]` plus heights, inside the
/// region's valid ranges (see [`clamp_degrees`]).
pub fn region_from_degrees(bounds: [f64; 4], min_h: f64, max_h: f64) -> [f64; 6] {
    let [w, s, e, n] = clamp_degrees(bounds);
    let (pi, half) = (std::f64::consts::PI, std::f64::consts::FRAC_PI_2);
    [
        w.to_radians().clamp(-pi, pi),
        s.to_radians().clamp(-half, half),
        e.to_radians().clamp(-pi, pi),
        n.to_radians().clamp(-half, half),
        min_h,
        max_h,
    ]
}

/// `[west, south, east, north]` degrees with longitudes in [-180, 180] and latitudes
/// in [-90, 90]: a reprojected 180° comes back a few ulps east of it
/// (180.00000000000006), which 3D Tiles validators, TileJSON and OGC extents refuse.
pub fn clamp_degrees(bounds: [f64; 4]) -> [f64; 4] {
    [
        bounds[0].clamp(-180.0, 180.0),
        bounds[1].clamp(-90.0, 90.0),
        bounds[2].clamp(-180.0, 180.0),
        bounds[3].clamp(-90.0, 90.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_reaching_the_antimeridian_stay_within_pi() {
        let east = 180.000_000_000_000_06_f64;
        assert!(east > 180.0);
        let r = region_from_degrees([179.5, -90.000_000_000_01, east, 10.0], 0.0, 5.0);
        assert_eq!(r[2], std::f64::consts::PI);
        assert_eq!(r[1], -std::f64::consts::FRAC_PI_2);
        assert!(r[0] < r[2]);
        assert_eq!(clamp_degrees([-180.1, 0.0, east, 91.0]), [-180.0, 0.0, 180.0, 90.0]);
    }
}

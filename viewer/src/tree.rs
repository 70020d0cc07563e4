//! A 3D Tiles 1.1 tileset (explicit tiling) flattened for traversal: every tile with
//! its accumulated transform and an ECEF bounding sphere.

use cim_core::frame::geodetic_to_ecef;
use cim_core::tileset::{BoundingVolume, Refine, Tile, Tileset};
use glam::{DMat4, DVec3, DVec4};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TreeError {
    #[error("tile {0} has no bounding volume the viewer understands (region, box or sphere)")]
    NoBoundingVolume(String),
    #[error("tileset JSON: {0}")]
    Json(String),
}

/// glTF content is y-up; 3D Tiles is z-up (3D Tiles 1.1, "glTF transforms").
pub const Y_UP_TO_Z_UP: DMat4 = DMat4::from_cols(
    DVec4::new(1.0, 0.0, 0.0, 0.0),
    DVec4::new(0.0, 0.0, 1.0, 0.0),
    DVec4::new(0.0, -1.0, 0.0, 0.0),
    DVec4::new(0.0, 0.0, 0.0, 1.0),
);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sphere {
    pub centre: DVec3,
    pub radius: f64,
}

#[derive(Debug, Clone)]
pub struct TileNode {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Absolute URL of the content, if any.
    pub content: Option<String>,
    pub geometric_error: f64,
    pub refine: Refine,
    /// Tile frame to ECEF (all ancestors' transforms applied).
    pub transform: DMat4,
    /// ECEF.
    pub bounds: Sphere,
    pub depth: u32,
}

impl TileNode {
    /// glTF content coordinates to ECEF.
    pub fn content_to_ecef(&self) -> DMat4 {
        self.transform * Y_UP_TO_Z_UP
    }
}

#[derive(Debug, Clone)]
pub struct TileTree {
    pub nodes: Vec<TileNode>,
    pub geometric_error: f64,
}

/// Resolves `uri` against the URL of the document it appears in.
pub fn resolve_url(base: &str, uri: &str) -> String {
    if uri.contains("://") {
        return uri.to_owned();
    }
    if let Some(path) = uri.strip_prefix('/') {
        let origin_end = base.find("://").map(|i| i + 3).and_then(|s| base[s..].find('/').map(|j| s + j));
        return format!("{}/{path}", &base[..origin_end.unwrap_or(base.len())]);
    }
    let dir = base.split(['?', '#']).next().unwrap_or(base);
    let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
    format!("{dir}{uri}")
}

fn sphere_of(volume: &BoundingVolume, transform: DMat4, name: &str) -> Result<Sphere, TreeError> {
    if let Some([w, s, e, n, lo, hi]) = volume.region {
        let mut corners = Vec::with_capacity(18);
        for lon in [w, (w + e) / 2.0, e] {
            for lat in [s, (s + n) / 2.0, n] {
                for h in [lo, hi] {
                    corners.push(DVec3::from(geodetic_to_ecef(lon.to_degrees(), lat.to_degrees(), h)));
                }
            }
        }
        let centre = corners.iter().copied().sum::<DVec3>() / corners.len() as f64;
        let radius = corners.iter().map(|c| c.distance(centre)).fold(0.0, f64::max);
        return Ok(Sphere { centre, radius });
    }
    let scale = transform
        .x_axis
        .truncate()
        .length()
        .max(transform.y_axis.truncate().length())
        .max(transform.z_axis.truncate().length());
    if let Some(b) = volume.oriented_box {
        let centre = transform.transform_point3(DVec3::new(b[0], b[1], b[2]));
        let half = DVec3::new(b[3], b[4], b[5]).length()
            + DVec3::new(b[6], b[7], b[8]).length()
            + DVec3::new(b[9], b[10], b[11]).length();
        return Ok(Sphere { centre, radius: half * scale });
    }
    if let Some([x, y, z, r]) = volume.sphere {
        return Ok(Sphere { centre: transform.transform_point3(DVec3::new(x, y, z)), radius: r * scale });
    }
    Err(TreeError::NoBoundingVolume(name.to_owned()))
}

/// Whether content is an external tileset rather than renderable content.
pub fn is_tileset_url(url: &str) -> bool {
    url.split(['?', '#']).next().is_some_and(|path| path.ends_with(".json"))
}

impl TileTree {
    pub fn parse(json: &[u8], url: &str) -> Result<Self, TreeError> {
        let tileset: Tileset = serde_json::from_slice(json).map_err(|e| TreeError::Json(e.to_string()))?;
        Self::from_tileset(&tileset, url)
    }

    pub fn from_tileset(tileset: &Tileset, url: &str) -> Result<Self, TreeError> {
        let mut tree = TileTree { nodes: Vec::new(), geometric_error: tileset.geometric_error };
        let refine = tileset.root.refine.unwrap_or(Refine::Replace);
        tree.push_subtree(&tileset.root, None, DMat4::IDENTITY, refine, url)?;
        Ok(tree)
    }

    /// Hangs an external tileset (content that is itself a `tileset.json`) under tile
    /// `at`: its root becomes `at`'s child, in `at`'s frame, and `at` keeps no content.
    pub fn graft(&mut self, at: usize, tileset: &Tileset, url: &str) -> Result<(), TreeError> {
        let node = self.nodes.get(at).ok_or_else(|| TreeError::Json(format!("no tile {at}")))?;
        let (transform, refine) = (node.transform, node.refine);
        let refine = tileset.root.refine.unwrap_or(refine);
        self.push_subtree(&tileset.root, Some(at), transform, refine, url)?;
        self.nodes[at].content = None;
        Ok(())
    }

    fn push_subtree(
        &mut self,
        root: &Tile,
        parent: Option<usize>,
        parent_transform: DMat4,
        refine: Refine,
        url: &str,
    ) -> Result<(), TreeError> {
        let (first, graft_point) = (self.nodes.len(), parent);
        let mut stack: Vec<(&Tile, Option<usize>, DMat4, Refine, String)> =
            vec![(root, parent, parent_transform, refine, "root".into())];
        while let Some((tile, parent, parent_transform, inherited, name)) = stack.pop() {
            let local = tile.transform.map_or(DMat4::IDENTITY, |m| DMat4::from_cols_array(&m));
            let transform = parent_transform * local;
            let refine = tile.refine.unwrap_or(inherited);
            let id = self.nodes.len();
            let bounds = match sphere_of(&tile.bounding_volume, transform, &name) {
                Ok(b) => b,
                Err(e) => {
                    // Leave the tree as it was: a half-grafted subtree would be drawn.
                    self.nodes.truncate(first);
                    if let Some(p) = graft_point {
                        self.nodes[p].children.retain(|&c| c < first);
                    }
                    return Err(e);
                }
            };
            self.nodes.push(TileNode {
                parent,
                children: Vec::new(),
                content: tile.content.as_ref().map(|c| resolve_url(url, &c.uri)),
                geometric_error: tile.geometric_error,
                refine,
                transform,
                bounds,
                depth: parent.map_or(0, |p| self.nodes[p].depth + 1),
            });
            if let Some(p) = parent {
                self.nodes[p].children.push(id);
            }
            for (i, child) in tile.children.iter().enumerate().rev() {
                stack.push((child, Some(id), transform, refine, format!("{name}/{i}")));
            }
        }
        Ok(())
    }

    /// The ECEF point the render frame is centred on: the root's bounding sphere.
    pub fn centre(&self) -> DVec3 {
        self.nodes.first().map_or(DVec3::ZERO, |n| n.bounds.centre)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_tilesets_graft_under_their_tile_in_its_frame() {
        let outer = br#"{"asset":{"version":"1.1"},"geometricError":100,
          "root":{"transform":[1,0,0,0, 0,1,0,0, 0,0,1,0, 500,0,0,1],
            "boundingVolume":{"sphere":[0,0,0,50]},"geometricError":50,"refine":"ADD",
            "children":[{"boundingVolume":{"sphere":[0,0,0,40]},"geometricError":20,
              "content":{"uri":"parts/inner.json"}}]}}"#;
        let mut tree = TileTree::parse(outer, "http://h/ts/tileset.json").expect("parse");
        let at = 1;
        let url = tree.nodes[at].content.clone().expect("content");
        assert_eq!(url, "http://h/ts/parts/inner.json");
        assert!(is_tileset_url(&url) && !is_tileset_url("http://h/a.glb?v=json"));
        let inner: Tileset = serde_json::from_slice(
            br#"{"asset":{"version":"1.1"},"geometricError":20,
              "root":{"transform":[1,0,0,0, 0,1,0,0, 0,0,1,0, 0,7,0,1],
                "boundingVolume":{"sphere":[0,0,0,5]},"geometricError":0,"content":{"uri":"b.glb"}}}"#,
        )
        .expect("inner");
        tree.graft(at, &inner, &url).expect("graft");
        assert_eq!(tree.nodes.len(), 3);
        assert_eq!(tree.nodes[at].content, None, "the external reference is not drawn");
        assert_eq!(tree.nodes[at].children, [2]);
        let grafted = &tree.nodes[2];
        assert_eq!(grafted.bounds.centre, DVec3::new(500.0, 7.0, 0.0), "outer then inner transform");
        assert_eq!(
            grafted.content.as_deref(),
            Some("http://h/ts/parts/b.glb"),
            "relative to the inner tileset"
        );
        assert_eq!((grafted.depth, grafted.refine), (2, Refine::Add));
        // A broken external tileset leaves the tree as it was.
        let broken: Tileset = serde_json::from_slice(
            br#"{"asset":{"version":"1.1"},"geometricError":1,"root":{"boundingVolume":{"sphere":[0,0,0,1]},
              "geometricError":0,"children":[{"boundingVolume":{},"geometricError":0}]}}"#,
        )
        .expect("parses as JSON");
        assert!(tree.graft(2, &broken, &url).is_err());
        assert_eq!((tree.nodes.len(), tree.nodes[2].children.len()), (3, 0));
    }

    #[test]
    fn urls_resolve_like_a_browser() {
        let base = "http://h:1/3dtiles/city/tileset.json";
        assert_eq!(resolve_url(base, "content/r0.glb"), "http://h:1/3dtiles/city/content/r0.glb");
        assert_eq!(resolve_url(base, "/x/y.glb"), "http://h:1/x/y.glb");
        assert_eq!(resolve_url(base, "https://other/t.glb"), "https://other/t.glb");
    }

    #[test]
    fn parses_boxes_spheres_regions_and_accumulates_transforms() {
        // A hand-checked tileset in the style of the Cesium samples: a translated root
        // with a box, a child with a sphere and its own translation, a grandchild region.
        let json = br#"{"asset":{"version":"1.1"},"geometricError":100,
          "root":{"transform":[1,0,0,0, 0,1,0,0, 0,0,1,0, 1000,0,0,1],
            "boundingVolume":{"box":[0,0,0, 10,0,0, 0,10,0, 0,0,10]},"geometricError":50,"refine":"REPLACE",
            "content":{"uri":"root.glb"},
            "children":[{"transform":[1,0,0,0, 0,1,0,0, 0,0,1,0, 0,20,0,1],
              "boundingVolume":{"sphere":[0,0,0,5]},"geometricError":0,"content":{"uri":"sub/child.glb"},
              "children":[{"boundingVolume":{"region":[0.4,1.0,0.41,1.01,0,10]},"geometricError":0}]}]}}"#;
        let tree = TileTree::parse(json, "http://h/ts/tileset.json").expect("parse");
        assert_eq!(tree.nodes.len(), 3);
        assert_eq!(tree.nodes[0].bounds.centre, DVec3::new(1000.0, 0.0, 0.0));
        assert!((tree.nodes[0].bounds.radius - 30.0).abs() < 1e-9);
        assert_eq!(tree.nodes[1].bounds, Sphere { centre: DVec3::new(1000.0, 20.0, 0.0), radius: 5.0 });
        assert_eq!(tree.nodes[1].refine, Refine::Replace, "inherited");
        assert_eq!(tree.nodes[1].content.as_deref(), Some("http://h/ts/sub/child.glb"));
        assert_eq!(tree.nodes[2].depth, 2);
        assert!(tree.nodes[2].bounds.centre.length() > 6.3e6, "regions are geodetic, not transformed");
        // y-up content (0, 1, 0) lands on +z of the tile frame.
        let up = tree.nodes[0].content_to_ecef().transform_point3(DVec3::new(0.0, 1.0, 0.0));
        assert_eq!(up, DVec3::new(1000.0, 0.0, 1.0));
    }
}

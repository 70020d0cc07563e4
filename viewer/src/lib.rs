//! The city viewer. Rendering with bevy (desktop and WASM) arrives with issue 3; this
//! crate already holds the pure, GPU-free part it will drive: choosing which 3D Tiles
//! to draw from a camera position by screen-space error.

use cim_core::frame::geodetic_to_ecef;
use cim_core::tileset::Tile;

/// Where the camera is and how it projects.
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    /// ECEF metres.
    pub position: [f64; 3],
    /// Viewport height in pixels.
    pub viewport_height: f64,
    /// Vertical field of view in radians.
    pub fov_y: f64,
}

/// Distance from the camera to a `region` bounding volume (radians, metres), using
/// the nearest point of its corners and centre: cheap and conservative enough for LOD.
fn distance_to_region(camera: &Camera, region: &[f64; 6]) -> f64 {
    let [w, s, e, n, lo, hi] = *region;
    let mut best = f64::MAX;
    for lon in [w, (w + e) / 2.0, e] {
        for lat in [s, (s + n) / 2.0, n] {
            for h in [lo, hi] {
                let p = geodetic_to_ecef(lon.to_degrees(), lat.to_degrees(), h);
                let d = ((p[0] - camera.position[0]).powi(2)
                    + (p[1] - camera.position[1]).powi(2)
                    + (p[2] - camera.position[2]).powi(2))
                .sqrt();
                best = best.min(d);
            }
        }
    }
    best
}

/// Screen-space error in pixels of drawing `tile` instead of refining it.
pub fn screen_space_error(camera: &Camera, tile: &Tile) -> f64 {
    let Some(region) = &tile.bounding_volume.region else {
        return f64::MAX;
    };
    let d = distance_to_region(camera, region).max(1e-3);
    tile.geometric_error * camera.viewport_height / (2.0 * d * (camera.fov_y / 2.0).tan())
}

/// Tiles to draw (with additive refinement a parent stays drawn under its children),
/// refining while the error exceeds `max_error_px`.
pub fn select_tiles<'a>(root: &'a Tile, camera: &Camera, max_error_px: f64) -> Vec<&'a Tile> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(tile) = stack.pop() {
        out.push(tile);
        if screen_space_error(camera, tile) > max_error_px {
            stack.extend(tile.children.iter());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_core::tileset::{BoundingVolume, Refine, region_from_degrees};

    fn tile(error: f64, bounds: [f64; 4], children: Vec<Tile>) -> Tile {
        Tile {
            bounding_volume: BoundingVolume { region: Some(region_from_degrees(bounds, 0.0, 30.0)) },
            geometric_error: error,
            refine: Some(Refine::Add),
            content: None,
            transform: None,
            children,
        }
    }

    #[test]
    fn near_cameras_refine_and_far_ones_do_not() {
        let leaf = tile(0.0, [24.94, 60.17, 24.945, 60.172], vec![]);
        let root = tile(50.0, [24.93, 60.16, 24.96, 60.18], vec![leaf]);
        let camera = |h: f64| Camera {
            position: geodetic_to_ecef(24.942, 60.171, h),
            viewport_height: 1080.0,
            fov_y: 60f64.to_radians(),
        };
        // 500 m up: 50 m error spans ~47 px > 16 px, so the child is drawn too.
        assert_eq!(select_tiles(&root, &camera(500.0), 16.0).len(), 2);
        // 20 km up: ~1.2 px, the root alone is enough.
        assert_eq!(select_tiles(&root, &camera(20_000.0), 16.0).len(), 1);
    }
}

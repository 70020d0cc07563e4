//! XYZ tile addressing on the Web Mercator (EPSG:3857) grid used by MVT and PMTiles.

use std::f64::consts::PI;

/// WGS84 semi-major axis, the sphere radius of Web Mercator.
pub const EARTH_RADIUS_M: f64 = 6_378_137.0;
/// Half the width of the Web Mercator world square in metres.
pub const WORLD_HALF_M: f64 = PI * EARTH_RADIUS_M;
/// Latitude at which Web Mercator becomes a square.
pub const MAX_MERCATOR_LAT: f64 = 85.051_128_779_806_59;
/// Deepest zoom the service addresses; 2^24 tiles per axis is ~2 m tiles.
pub const MAX_ZOOM: u8 = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    #[error("zoom {0} is outside 0..={MAX_ZOOM}")]
    ZoomOutOfRange(u32),
    #[error("tile {x}/{y} does not exist at zoom {z} (the grid is {size}×{size})")]
    OutsideGrid { z: u8, x: u32, y: u32, size: u64 },
}

/// One tile of the XYZ grid: y grows southwards, as in MVT, TileJSON and PMTiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    pub fn new(z: u32, x: u32, y: u32) -> Result<Self, TileError> {
        if z > u32::from(MAX_ZOOM) {
            return Err(TileError::ZoomOutOfRange(z));
        }
        let z = z as u8;
        let size = 1u64 << z;
        if u64::from(x) >= size || u64::from(y) >= size {
            return Err(TileError::OutsideGrid { z, x, y, size });
        }
        Ok(Self { z, x, y })
    }

    pub fn children(&self) -> [TileId; 4] {
        let (z, x, y) = (self.z + 1, self.x * 2, self.y * 2);
        [
            TileId { z, x, y },
            TileId { z, x: x + 1, y },
            TileId { z, x, y: y + 1 },
            TileId { z, x: x + 1, y: y + 1 },
        ]
    }

    /// Tile side in Web Mercator metres.
    pub fn size_m(&self) -> f64 {
        2.0 * WORLD_HALF_M / (1u64 << self.z) as f64
    }

    /// `[min_x, min_y, max_x, max_y]` in Web Mercator metres.
    pub fn bounds_mercator(&self) -> [f64; 4] {
        let size = self.size_m();
        let min_x = -WORLD_HALF_M + f64::from(self.x) * size;
        let max_y = WORLD_HALF_M - f64::from(self.y) * size;
        [min_x, max_y - size, min_x + size, max_y]
    }

    /// `[west, south, east, north]` in degrees.
    pub fn bounds_lonlat(&self) -> [f64; 4] {
        let [x0, y0, x1, y1] = self.bounds_mercator();
        let (w, s) = mercator_to_lonlat(x0, y0);
        let (e, n) = mercator_to_lonlat(x1, y1);
        [w, s, e, n]
    }

    /// The PMTiles v3 tile id: tiles of lower zooms first, then the Hilbert index.
    pub fn hilbert_id(&self) -> u64 {
        let base = ((1u64 << (2 * u32::from(self.z))) - 1) / 3;
        let n = 1u64 << self.z;
        let (mut x, mut y) = (u64::from(self.x), u64::from(self.y));
        let mut d = 0u64;
        let mut s = n / 2;
        while s > 0 {
            let rx = u64::from(x & s > 0);
            let ry = u64::from(y & s > 0);
            d += s * s * ((3 * rx) ^ ry);
            hilbert_rotate(n, &mut x, &mut y, rx, ry);
            s /= 2;
        }
        base + d
    }

    /// Inverse of [`TileId::hilbert_id`].
    pub fn from_hilbert_id(id: u64) -> Result<Self, TileError> {
        let mut base = 0u64;
        for z in 0..=MAX_ZOOM {
            let count = 1u64 << (2 * u32::from(z));
            if id < base + count {
                let n = 1u64 << z;
                let mut t = id - base;
                let (mut x, mut y) = (0u64, 0u64);
                let mut s = 1u64;
                while s < n {
                    let rx = 1 & (t / 2);
                    let ry = 1 & (t ^ rx);
                    hilbert_rotate(s, &mut x, &mut y, rx, ry);
                    x += s * rx;
                    y += s * ry;
                    t /= 4;
                    s *= 2;
                }
                return Ok(TileId { z, x: x as u32, y: y as u32 });
            }
            base += count;
        }
        Err(TileError::ZoomOutOfRange(u32::from(MAX_ZOOM) + 1))
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

fn hilbert_rotate(n: u64, x: &mut u64, y: &mut u64, rx: u64, ry: u64) {
    if ry == 0 {
        if rx == 1 {
            *x = n.wrapping_sub(1).wrapping_sub(*x);
            *y = n.wrapping_sub(1).wrapping_sub(*y);
        }
        std::mem::swap(x, y);
    }
}

/// WGS84 degrees to Web Mercator metres; latitude is clamped to the Mercator square.
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_MERCATOR_LAT, MAX_MERCATOR_LAT);
    let x = EARTH_RADIUS_M * lon.to_radians();
    let y = EARTH_RADIUS_M * (PI / 4.0 + lat.to_radians() / 2.0).tan().ln();
    (x, y)
}

/// Web Mercator metres to WGS84 degrees.
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / EARTH_RADIUS_M).to_degrees();
    let lat = (2.0 * (y / EARTH_RADIUS_M).exp().atan() - PI / 2.0).to_degrees();
    (lon, lat)
}

/// Inclusive `(x0, y0, x1, y1)` range of tiles at zoom `z` touching a Mercator box.
pub fn tile_range(z: u8, bbox_m: [f64; 4]) -> (u32, u32, u32, u32) {
    let n = 1u64 << z;
    let size = 2.0 * WORLD_HALF_M / n as f64;
    let max = (n - 1) as f64;
    let col = |x: f64| ((x + WORLD_HALF_M) / size).floor().clamp(0.0, max) as u32;
    let row = |y: f64| ((WORLD_HALF_M - y) / size).floor().clamp(0.0, max) as u32;
    (col(bbox_m[0]), row(bbox_m[3]), col(bbox_m[2]), row(bbox_m[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hilbert_ids_match_the_pmtiles_spec_examples() {
        // Values from the PMTiles v3 specification, section "Tile IDs".
        let cases =
            [((0, 0, 0), 0), ((1, 0, 0), 1), ((1, 0, 1), 2), ((1, 1, 1), 3), ((1, 1, 0), 4), ((2, 0, 0), 5)];
        for ((z, x, y), id) in cases {
            let tile = TileId::new(z, x, y).expect("valid tile");
            assert_eq!(tile.hilbert_id(), id, "{tile}");
            assert_eq!(TileId::from_hilbert_id(id).expect("valid id"), tile);
        }
    }

    #[test]
    fn hilbert_ids_round_trip_at_every_zoom() {
        for z in 0..=MAX_ZOOM {
            let n = 1u32 << z;
            for (x, y) in [(0, 0), (n - 1, 0), (n / 3, n / 2), (n - 1, n - 1)] {
                let tile = TileId::new(u32::from(z), x, y).expect("valid");
                assert_eq!(TileId::from_hilbert_id(tile.hilbert_id()).expect("id"), tile);
            }
        }
    }

    #[test]
    fn rejects_tiles_outside_the_grid() {
        assert!(matches!(TileId::new(2, 4, 0), Err(TileError::OutsideGrid { .. })));
        assert_eq!(TileId::new(31, 0, 0), Err(TileError::ZoomOutOfRange(31)));
    }

    #[test]
    fn mercator_matches_epsg_3857_reference_values() {
        // GDAL 3.6 / PROJ 9.1: `echo 11.6 48.1 | gdaltransform -s_srs EPSG:4326
        // -t_srs EPSG:3857` → 1291306.09320197 6123507.42497748.
        let (x, y) = lonlat_to_mercator(11.6, 48.1);
        assert!((x - 1_291_306.093_2).abs() < 0.001, "{x}");
        assert!((y - 6_123_507.425_0).abs() < 0.001, "{y}");
        let (lon, lat) = mercator_to_lonlat(x, y);
        assert!((lon - 11.6).abs() < 1e-9 && (lat - 48.1).abs() < 1e-9);
    }

    #[test]
    fn tile_range_covers_helsinki_at_zoom_14() {
        let (x0, y0) = lonlat_to_mercator(24.935, 60.164);
        let (x1, y1) = lonlat_to_mercator(24.953, 60.179);
        let (tx0, ty0, tx1, ty1) = tile_range(14, [x0, y0, x1, y1]);
        // Slippy-map formula by hand: x = floor((lon+180)/360*2^14) = 9326..9327.
        assert_eq!((tx0, tx1), (9326, 9327));
        assert!(ty0 <= ty1 && ty1 - ty0 <= 2);
        let b = TileId::new(14, tx0, ty0).expect("valid").bounds_lonlat();
        assert!(b[0] <= 24.935 && b[2] > 24.935);
    }
}

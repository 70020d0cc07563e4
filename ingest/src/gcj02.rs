//! GCJ-02, the obfuscated datum of Chinese web maps ("Mars coordinates").
//!
//! PROJ has no definition for it: the offset is a published closed-form formula
//! (WGS84 → GCJ-02) with no closed-form inverse, so GCJ-02 → WGS84 iterates the
//! forward formula to below a millimetre.

use std::f64::consts::PI;

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

/// The formula applies only inside this rectangle; elsewhere GCJ-02 equals WGS84.
pub fn out_of_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 (lon, lat) to GCJ-02 (lon, lat), degrees.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let d_lat = transform_lat(lon - 105.0, lat - 35.0);
    let d_lon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat.to_radians();
    let magic = 1.0 - EE * rad_lat.sin().powi(2);
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    (lon + d_lon, lat + d_lat)
}

/// GCJ-02 (lon, lat) to WGS84 (lon, lat), degrees, by fixed-point iteration of the
/// forward formula (converges to 1e-10° in a handful of steps).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (mut w_lon, mut w_lat) = (lon, lat);
    for _ in 0..30 {
        let (g_lon, g_lat) = wgs84_to_gcj02(w_lon, w_lat);
        let (e_lon, e_lat) = (lon - g_lon, lat - g_lat);
        w_lon += e_lon;
        w_lat += e_lat;
        if e_lon.abs() < 1e-10 && e_lat.abs() < 1e-10 {
            break;
        }
    }
    (w_lon, w_lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published reference pairs (WGS84 lat/lon, GCJ-02 lat/lon) from the test suite
    /// of googollee/eviltransform, used by many ports: Shanghai, Shenzhen, Beijing.
    const REFERENCE: [(f64, f64, f64, f64); 3] = [
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
    ];

    #[test]
    fn forward_matches_published_reference_points() {
        for (w_lat, w_lon, g_lat, g_lon) in REFERENCE {
            let (lon, lat) = wgs84_to_gcj02(w_lon, w_lat);
            assert!((lon - g_lon).abs() < 1e-9 && (lat - g_lat).abs() < 1e-9, "{lat},{lon}");
        }
    }

    #[test]
    fn inverse_recovers_wgs84_to_a_millimetre() {
        for (w_lat, w_lon, g_lat, g_lon) in REFERENCE {
            let (lon, lat) = gcj02_to_wgs84(g_lon, g_lat);
            // 1e-8° is about a millimetre.
            assert!((lon - w_lon).abs() < 1e-8 && (lat - w_lat).abs() < 1e-8, "{lat},{lon}");
        }
    }

    #[test]
    fn outside_china_is_unchanged() {
        assert_eq!(gcj02_to_wgs84(24.94, 60.17), (24.94, 60.17));
        assert_eq!(wgs84_to_gcj02(-104.9903, 39.7392), (-104.9903, 39.7392));
    }
}

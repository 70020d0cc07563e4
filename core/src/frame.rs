//! The service frame and its exact conversions.
//!
//! Every layer is reprojected at ingest into the *service frame*: WGS84 longitude and
//! latitude in degrees with ellipsoidal height in metres (EPSG:4979; EPSG:4326 in 2D).
//! From it, MVT tiles derive Web Mercator ([`crate::tile`]) and 3D Tiles derive
//! Earth-centred Earth-fixed coordinates (EPSG:4978) through the functions here.

/// WGS84 semi-major axis in metres.
pub const WGS84_A: f64 = 6_378_137.0;
/// WGS84 flattening.
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;

fn e2() -> f64 {
    WGS84_F * (2.0 - WGS84_F)
}

/// Geodetic (degrees, degrees, metres) to ECEF metres.
pub fn geodetic_to_ecef(lon_deg: f64, lat_deg: f64, h: f64) -> [f64; 3] {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    let n = WGS84_A / (1.0 - e2() * lat.sin().powi(2)).sqrt();
    [(n + h) * lat.cos() * lon.cos(), (n + h) * lat.cos() * lon.sin(), (n * (1.0 - e2()) + h) * lat.sin()]
}

/// ECEF metres to geodetic (degrees, degrees, metres); iterates to sub-millimetre.
pub fn ecef_to_geodetic(p: [f64; 3]) -> (f64, f64, f64) {
    let [x, y, z] = p;
    let lon = y.atan2(x);
    let r = (x * x + y * y).sqrt();
    let mut lat = z.atan2(r * (1.0 - e2()));
    let mut h = 0.0;
    for _ in 0..8 {
        let n = WGS84_A / (1.0 - e2() * lat.sin().powi(2)).sqrt();
        h = if lat.cos().abs() > 1e-12 { r / lat.cos() - n } else { z.abs() - n * (1.0 - e2()) };
        lat = z.atan2(r * (1.0 - e2() * n / (n + h)));
    }
    (lon.to_degrees(), lat.to_degrees(), h)
}

/// A local east-north-up frame tangent to the ellipsoid at an origin.
#[derive(Debug, Clone, Copy)]
pub struct EnuFrame {
    origin: [f64; 3],
    east: [f64; 3],
    north: [f64; 3],
    up: [f64; 3],
}

impl EnuFrame {
    pub fn at(lon_deg: f64, lat_deg: f64, h: f64) -> Self {
        let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
        Self {
            origin: geodetic_to_ecef(lon_deg, lat_deg, h),
            east: [-lon.sin(), lon.cos(), 0.0],
            north: [-lat.sin() * lon.cos(), -lat.sin() * lon.sin(), lat.cos()],
            up: [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()],
        }
    }

    /// Geodetic position to (east, north, up) metres in this frame; exact, no
    /// flat-earth approximation.
    pub fn to_local(&self, lon_deg: f64, lat_deg: f64, h: f64) -> [f64; 3] {
        let p = geodetic_to_ecef(lon_deg, lat_deg, h);
        let d = [p[0] - self.origin[0], p[1] - self.origin[1], p[2] - self.origin[2]];
        let dot = |v: [f64; 3]| d[0] * v[0] + d[1] * v[1] + d[2] * v[2];
        [dot(self.east), dot(self.north), dot(self.up)]
    }

    /// Local (east, north, up) metres back to ECEF.
    pub fn to_ecef(&self, enu: [f64; 3]) -> [f64; 3] {
        let (e, n, u, o) = (self.east, self.north, self.up, self.origin);
        [0, 1, 2].map(|k| o[k] + enu[0] * e[k] + enu[1] * n[k] + enu[2] * u[k])
    }

    /// Local (east, north, up) metres to longitude, latitude (degrees) and height.
    pub fn to_geodetic(&self, enu: [f64; 3]) -> (f64, f64, f64) {
        ecef_to_geodetic(self.to_ecef(enu))
    }

    /// A direction given in the east-north-up axes at another place, in this frame's
    /// axes (normals of a surface far from the frame's origin).
    pub fn direction_to_local(&self, lon_deg: f64, lat_deg: f64, enu_there: [f64; 3]) -> [f64; 3] {
        let there = Self::at(lon_deg, lat_deg, 0.0);
        let v = [0, 1, 2].map(|k| {
            enu_there[0] * there.east[k] + enu_there[1] * there.north[k] + enu_there[2] * there.up[k]
        });
        let dot = |a: [f64; 3]| v[0] * a[0] + v[1] * a[1] + v[2] * a[2];
        [dot(self.east), dot(self.north), dot(self.up)]
    }

    /// A direction in this frame's east-north-up axes, in ECEF axes.
    pub fn direction_to_ecef(&self, enu: [f64; 3]) -> [f64; 3] {
        [0, 1, 2].map(|k| enu[0] * self.east[k] + enu[1] * self.north[k] + enu[2] * self.up[k])
    }

    /// Column-major 4×4 matrix taking local ENU metres to ECEF: a 3D Tiles `transform`.
    pub fn to_ecef_matrix(&self) -> [f64; 16] {
        let (e, n, u, o) = (self.east, self.north, self.up, self.origin);
        [e[0], e[1], e[2], 0.0, n[0], n[1], n[2], 0.0, u[0], u[1], u[2], 0.0, o[0], o[1], o[2], 1.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecef_matches_proj() {
        // GDAL 3.6 / PROJ 9.1: `echo 24.94 60.17 20 | gdaltransform -s_srs EPSG:4979
        // -t_srs EPSG:4978` → 2884097.1774301 1341201.44940803 5509940.30308557.
        let p = geodetic_to_ecef(24.94, 60.17, 20.0);
        let want = [2_884_097.177_430_1, 1_341_201.449_408_03, 5_509_940.303_085_57];
        for i in 0..3 {
            assert!((p[i] - want[i]).abs() < 1e-4, "axis {i}: {} vs {}", p[i], want[i]);
        }
    }

    #[test]
    fn geodetic_round_trips_through_ecef() {
        for (lon, lat, h) in
            [(24.94, 60.17, 20.0), (106.55, 29.56, 250.0), (-73.99, 40.75, -30.0), (0.0, 0.0, 0.0)]
        {
            let (lo, la, hh) = ecef_to_geodetic(geodetic_to_ecef(lon, lat, h));
            assert!(
                (lo - lon).abs() < 1e-9 && (la - lat).abs() < 1e-9 && (hh - h).abs() < 1e-4,
                "{lo} {la} {hh}"
            );
        }
    }

    #[test]
    fn enu_axes_point_the_right_way_and_matrix_inverts_to_local() {
        let frame = EnuFrame::at(24.94, 60.17, 0.0);
        let north = frame.to_local(24.94, 60.171, 0.0);
        assert!(north[1] > 110.0 && north[1] < 112.0 && north[0].abs() < 1e-6);
        let east = frame.to_local(24.942, 60.17, 0.0);
        assert!(east[0] > 110.0 && east[0] < 112.0 && east[1].abs() < 0.01);
        let up = frame.to_local(24.94, 60.17, 30.0);
        assert!((up[2] - 30.0).abs() < 1e-6);
        // The matrix maps the local point back onto the ECEF position.
        let m = frame.to_ecef_matrix();
        let l = frame.to_local(24.95, 60.175, 12.0);
        let ecef = geodetic_to_ecef(24.95, 60.175, 12.0);
        for r in 0..3 {
            let v = m[r] * l[0] + m[4 + r] * l[1] + m[8 + r] * l[2] + m[12 + r];
            assert!((v - ecef[r]).abs() < 1e-6, "row {r}");
        }
    }
}

//! Places in the sample city and the geometry to find them, written here
//! independently of the crates under test.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::binaries::{Server, TempDir, data, ingest_ok, repo_root, temp_dir};
use crate::http::post_json;

/// Ray-casting point-in-ring test written here, independent of the geo crate.
pub fn point_in_ring(ring: &[Value], x: f64, y: f64) -> bool {
    let pts: Vec<(f64, f64)> =
        ring.iter().map(|p| (p[0].as_f64().unwrap_or(f64::NAN), p[1].as_f64().unwrap_or(f64::NAN))).collect();
    let mut inside = false;
    let n = pts.len();
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (xi, yi) = pts[i];
        let (xj, yj) = pts[j % n];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// The tile containing a lon/lat at zoom z (slippy-map formula, written out here).
pub fn tile_of(lon: f64, lat: f64, z: u32) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let lat_r = lat.to_radians();
    let y = ((1.0 - (lat_r.tan() + 1.0 / lat_r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor() as u32;
    (x, y)
}

/// West, south, east, north of a GeoJSON ring.
pub fn ring_bounds(ring: &[Value]) -> [f64; 4] {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for p in ring {
        let (Some(x), Some(y)) = (p[0].as_f64(), p[1].as_f64()) else { continue };
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    b
}

/// Registers sensor `boiler` (temperature, warn 80, alarm 90) on the largest
/// building, 30 m up, and sends it 97.5 °C: one marker in alarm. Returns where it is.
pub fn boiler_in_alarm_on_the_largest_building(server: &Server, items: &Value) -> (f64, f64) {
    let (fid, lon, lat) = deep_inside_the_largest_building(items);
    let sensor = serde_json::json!({"id":"boiler","kind":"temperature","unit":"°C","lon":lon,"lat":lat,
        "height":30,"feature":fid.to_string(),"warn":80,"alarm":90});
    assert_eq!(post_json(&format!("{}/api/sensors", server.url), &sensor), 201);
    let reading = serde_json::json!([{"sensor":"boiler","t":"2026-11-22T08:00:00Z","value":97.5}]);
    assert_eq!(post_json(&format!("{}/api/readings", server.url), &reading), 200);
    (lon, lat)
}

/// A point at least 15 m inside the largest building (checked with an independent
/// point-in-polygon test in all eight directions), so a click cannot graze an edge.
pub fn deep_inside_the_largest_building(items: &Value) -> (u64, f64, f64) {
    let mut best: Option<(f64, u64, f64, f64)> = None;
    for f in items["features"].as_array().expect("features") {
        if !f["properties"]["building"].is_string()
            || f["geometry"]["coordinates"][0].as_array().map_or(0, Vec::len) != 1
        {
            continue;
        }
        let ring = f["geometry"]["coordinates"][0][0].as_array().expect("ring");
        let [w, s, e, n] = ring_bounds(ring);
        let area = (e - w) * (n - s);
        if best.is_some_and(|b| area <= b.0) {
            continue;
        }
        let (dx, dy) = (15.0 / 55_500.0, 15.0 / 111_200.0);
        let deep = |x: f64, y: f64| {
            [
                (0.0, 0.0),
                (dx, 0.0),
                (-dx, 0.0),
                (0.0, dy),
                (0.0, -dy),
                (dx, dy),
                (-dx, -dy),
                (dx, -dy),
                (-dx, dy),
            ]
            .iter()
            .all(|(ox, oy)| point_in_ring(ring, x + ox, y + oy))
        };
        let found = (1..30)
            .flat_map(|i| {
                (1..30).map(move |j| (w + (e - w) * f64::from(i) / 30.0, s + (n - s) * f64::from(j) / 30.0))
            })
            .find(|&(x, y)| deep(x, y));
        if let Some((x, y)) = found {
            best = Some((area, f["id"].as_u64().expect("id"), x, y));
        }
    }
    let (_, fid, lon, lat) = best.expect("a building");
    (fid, lon, lat)
}

/// A store with layer `survey`: the 200 m x 100 m, 80 000-point LAS that laspy writes
/// (tests/oracles/split_cloud.py), placed beside Helsinki with its lowest point 10 m
/// up. West half red RGB and class 2 (ground), east half blue and class 6 (building);
/// intensity rises eastwards, heights rise 20 m northwards.
pub fn split_survey(tag: &str) -> TempDir {
    let store = temp_dir(tag);
    let las = store.join("split.las");
    let made = Command::new("python3")
        .arg(repo_root().join("tests/oracles/split_cloud.py"))
        .arg(&las)
        .output()
        .expect("python3 with laspy (the README test command installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    ingest_ok(&store, "survey", &["--anchor", "24.95,60.17,10"], &[&las]);
    store
}

/// A store with the Lyon DEM as terrain layer `ground` and thirty square buildings
/// over Fourvière's slope as layer `buildings`, set on that ground at ingest, with a
/// main road across the hill.
pub fn lyon_on_terrain(tag: &str) -> TempDir {
    let store = temp_dir(tag);
    ingest_ok(&store, "ground", &[], &[&data("dem/lyon_dem.tif")]);
    let mut features = Vec::new();
    for i in 0..6 {
        for j in 0..5 {
            let (lon, lat) = (4.8200 + 0.003 * f64::from(i), 45.7590 + 0.0025 * f64::from(j));
            let (dx, dy) = (0.0004, 0.00027); // about 30 m by 30 m
            let ring = [[lon, lat], [lon + dx, lat], [lon + dx, lat + dy], [lon, lat + dy], [lon, lat]];
            features.push(serde_json::json!({
                "type": "Feature",
                "properties": {"name": format!("block {i}-{j}"), "height": 12 + (i * 7 + j * 3) % 25},
                "geometry": {"type": "Polygon", "coordinates": [ring]}
            }));
        }
    }
    // A main road across the hill, drawn by the viewer on the ground.
    features.push(serde_json::json!({
        "type": "Feature",
        "properties": {"name": "montée", "highway": "primary"},
        "geometry": {"type": "LineString", "coordinates": [[4.8195, 45.7628], [4.8300, 45.7628], [4.8390, 45.7628]]}
    }));
    let file = store.join("lyon_blocks.geojson");
    std::fs::write(&file, serde_json::json!({"type": "FeatureCollection", "features": features}).to_string())
        .expect("write");
    ingest_ok(&store, "buildings", &["--ground", "ground", "--height-attr", "height"], &[&file]);
    store
}

/// The root `transform` (column-major, content frame to ECEF) of a layer's tileset.
pub fn root_transform(layer_dir: &Path) -> Vec<f64> {
    let text = std::fs::read(layer_dir.join("3dtiles/tileset.json")).expect("tileset.json");
    let tileset: Value = serde_json::from_slice(&text).expect("tileset JSON");
    tileset["root"]["transform"]
        .as_array()
        .expect("a root transform")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect()
}

/// A decoded glTF position (y-up) through a root transform (3D Tiles z-up first) to
/// longitude, latitude (degrees) and ellipsoidal height.
pub fn gltf_to_geodetic(m: &[f64], g: &[f64]) -> [f64; 3] {
    let (e, n, u) = (g[0], -g[2], g[1]);
    let ecef = [0, 1, 2].map(|k| m[k] * e + m[4 + k] * n + m[8 + k] * u + m[12 + k]);
    let (lon, lat, h) = cim_core::frame::ecef_to_geodetic(ecef);
    [lon, lat, h]
}

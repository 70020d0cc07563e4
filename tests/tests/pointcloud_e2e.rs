//! Point clouds: every LAS/LAZ/COPC file in `../shared/data/las` through the real
//! `cim-ingest` and `cim-server`, checked against laspy (PyPI `laspy[lazrs]`),
//! GDAL's `gdaltransform`, glTF-Transform, the Khronos glTF validator and CesiumJS.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cim_e2e::*;
use serde_json::Value;

const US_FOOT: f64 = 1200.0 / 3937.0;
const FOOT: f64 = 0.3048;
/// Where files with no usable CRS are placed (Helsinki, beside the sample city).
const ANCHOR: &str = "24.95,60.17,10";

/// How a file is placed and how GDAL should place its samples.
struct Case {
    file: &'static str,
    args: &'static [&'static str],
    /// GDAL's source CRS (`"wkt"`: the file's own WKT record) and the factor that
    /// turns its heights into metres before GDAL sees them; `None` for anchored files.
    gdal: Option<(&'static str, f64)>,
}

/// Files that need a flag or whose CRS GDAL must be told; any other file in the
/// directory must ingest as it is.
const CASES: &[Case] = &[
    // GeoTIFF keys: UTM 32N, heights in metres.
    Case { file: "32-1-472-150-76.laz", args: &[], gdal: Some(("EPSG:25832", 1.0)) },
    // Compound WKT with NAVD88 heights in US feet: PROJ converts them.
    Case { file: "autzen.copc.laz", args: &[], gdal: Some(("wkt", 1.0)) },
    Case { file: "laspy_simple.copc.laz", args: &[], gdal: Some(("wkt", 1.0)) },
    // GeoTIFF keys, Oregon Lambert in feet, heights in feet too.
    Case { file: "autzen.las", args: &[], gdal: Some(("EPSG:2994", FOOT)) },
    Case { file: "autzen.laz", args: &[], gdal: Some(("EPSG:2994", FOOT)) },
    // No CRS record at all: the same survey, so the user names its CRS.
    Case { file: "extrabytes.laz", args: &["--src-crs", "EPSG:2994"], gdal: Some(("EPSG:2994", FOOT)) },
    Case { file: "laspy_simple.las", args: &["--src-crs", "EPSG:2994"], gdal: Some(("EPSG:2994", FOOT)) },
    Case { file: "laspy_simple.laz", args: &["--src-crs", "EPSG:2994"], gdal: Some(("EPSG:2994", FOOT)) },
    // WKT records in US feet (New Mexico Central, Nebraska), horizontal only.
    Case { file: "laspy_1_4_w_evlr.las", args: &[], gdal: Some(("wkt", US_FOOT)) },
    Case { file: "laspy_1_4_w_evlr.laz", args: &[], gdal: Some(("wkt", US_FOOT)) },
    Case { file: "laspy_test1_4.las", args: &[], gdal: Some(("wkt", US_FOOT)) },
    Case { file: "laspy_file_with_both_wkt_and_geotiff_vlrs.las", args: &[], gdal: Some(("wkt", US_FOOT)) },
    // ESRI-flavoured WKT in international feet.
    Case { file: "laspy_autzen_trim.laz", args: &[], gdal: Some(("wkt", FOOT)) },
    Case { file: "pdal_autzen_trim_7.las", args: &[], gdal: Some(("wkt", FOOT)) },
    // GeoTIFF keys with a vertical unit key (US feet).
    Case { file: "pdal_4_6_crop.las", args: &[], gdal: Some(("EPSG:2903", US_FOOT)) },
    Case { file: "pdal_hexbin-crop.las", args: &[], gdal: Some(("EPSG:32642", 1.0)) },
    // Local or contradicted coordinates: placed by --anchor.
    Case { file: "laspy_plane.laz", args: &["--anchor", ANCHOR], gdal: None },
    Case { file: "laspy_vegetation_1_3.las", args: &["--anchor", ANCHOR], gdal: None },
    Case { file: "laspy_simple1_4.las", args: &["--anchor", ANCHOR], gdal: None },
];

fn layer_name(file: &str) -> String {
    file.trim_end_matches(".laz").trim_end_matches(".las").replace(['.', '-'], "_")
}

fn las_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("las"))
        .expect("../shared/data/las")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "las" || e == "laz"))
        .collect();
    files.sort();
    files
}

/// One store with every file ingested, shared by the tests of this file.
fn cloud_store() -> &'static TempDir {
    static STORE: OnceLock<TempDir> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = temp_dir("points");
        for path in las_files() {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let args = CASES.iter().find(|c| c.file == name).map_or(&[][..], |c| c.args);
            ingest_ok(&store, &layer_name(name), args, &[&path]);
        }
        store
    })
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

fn laspy(path: &Path, sample: usize) -> Value {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("tests/oracles/las_facts.py"))
        .arg(path)
        .arg(sample.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "laspy failed on {} (pip install 'laspy[lazrs]'): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("laspy json")
}

/// Every content GLB under a tileset, walking its tree.
fn contents(tileset: &Value, out: &mut Vec<String>) {
    if let Some(uri) = tileset["content"]["uri"].as_str() {
        out.push(uri.to_owned());
    }
    for child in tileset["children"].as_array().into_iter().flatten() {
        contents(child, out);
    }
}

/// `gdaltransform` of many points to WGS84 3D (EPSG:4979, the service frame), then
/// to ECEF. (Asking GDAL for EPSG:4978 directly lets PROJ pick another datum
/// operation for NAD83(HARN), a metre away.)
fn gdal_to_ecef(from: &str, points: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let mut child = std::process::Command::new("gdaltransform")
        .args(["-s_srs", from, "-t_srs", "EPSG:4979"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gdaltransform (apt-get install gdal-bin)");
    let mut stdin = child.stdin.take().expect("stdin");
    for p in points {
        writeln!(stdin, "{} {} {}", p[0], p[1], p[2]).expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("gdaltransform");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Vec<f64> = l.split_whitespace().map(|t| t.parse().expect("number")).collect();
            cim_core::frame::geodetic_to_ecef(v[0], v[1], v[2])
        })
        .collect()
}

fn apply(m: &[f64], p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| m[r] * p[0] + m[4 + r] * p[1] + m[8 + r] * p[2] + m[12 + r])
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

struct Decoded {
    /// ECEF, with intensity and class.
    points: Vec<([f64; 3], u64, u64)>,
    classes: BTreeMap<String, u64>,
    /// `[min, max]` in the layer's ENU frame.
    enu_box: [[f64; 3]; 2],
}

/// Every point of a layer, read by glTF-Transform and placed by the tileset alone.
fn decode_layer(store: &Path, layer: &str) -> Decoded {
    let dir = store.join(layer).join("3dtiles");
    let tileset = json_file(&dir.join("tileset.json"));
    assert_eq!(tileset["asset"]["version"], "1.1");
    let transform: Vec<f64> = tileset["root"]["transform"]
        .as_array()
        .expect("root transform")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let mut uris = Vec::new();
    contents(&tileset["root"], &mut uris);
    let files: Vec<String> = uris.iter().map(|u| dir.join(u).to_string_lossy().into_owned()).collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut decoded =
        Decoded { points: Vec::new(), classes: BTreeMap::new(), enu_box: [[f64::MAX; 3], [f64::MIN; 3]] };
    for tile in oracle("decode_points.mjs", &args).as_array().expect("tiles") {
        let p: Vec<f64> =
            tile["positions"].as_array().expect("positions").iter().filter_map(Value::as_f64).collect();
        let intensity = tile["intensity"].as_array().expect("intensity");
        let class = tile["classification"].as_array().expect("classification");
        for (i, g) in p.chunks_exact(3).enumerate() {
            // glTF is y-up; 3D Tiles turns it z-up: (x, y, z) -> (x, -z, y).
            let enu = [g[0], -g[2], g[1]];
            for (k, v) in enu.into_iter().enumerate() {
                decoded.enu_box[0][k] = decoded.enu_box[0][k].min(v);
                decoded.enu_box[1][k] = decoded.enu_box[1][k].max(v);
            }
            let ecef = apply(&transform, enu);
            decoded.points.push((ecef, intensity[i].as_u64().expect("u"), class[i].as_u64().expect("u")));
        }
        for (c, n) in tile["classes"].as_object().expect("classes") {
            *decoded.classes.entry(c.clone()).or_default() += n.as_u64().expect("count");
        }
    }
    decoded
}

#[test]
fn every_shared_point_cloud_ingests_and_agrees_with_laspy_and_gdal() {
    let store = cloud_store();
    let mut report = Vec::new();
    for path in las_files() {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let layer = layer_name(name);
        let case = CASES.iter().find(|c| c.file == name);
        let facts = laspy(&path, 40);
        let catalogue = json_file(&store.join(&layer).join("catalogue.json"));
        let quality = json_file(&store.join(&layer).join("quality.json"));
        let cloud = &catalogue["point_cloud"];
        let count = facts["count"].as_u64().expect("count");
        let dropped: u64 =
            quality["dropped"].as_object().expect("dropped").values().filter_map(Value::as_u64).sum();
        assert_eq!(cloud["points"].as_u64(), Some(count - dropped), "{name}: points written");
        assert_eq!(dropped, 0, "{name}: nothing dropped from these files: {quality}");
        assert_eq!(catalogue["kind"], "point_cloud");

        // Every point, read back by an independent glTF reader.
        let decoded = decode_layer(store, &layer);
        assert_eq!(decoded.points.len() as u64, count, "{name}: points in all tiles");
        let want: BTreeMap<String, u64> = facts["classes"]
            .as_object()
            .expect("classes")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
            .collect();
        assert_eq!(decoded.classes, want, "{name}: classification histogram");

        // A seeded sample, placed by GDAL (or by the anchor's definition), must be
        // among the decoded points within the quantisation error, with its
        // intensity and class.
        let step = cloud["max_quantisation_step"].as_f64().expect("step");
        let tolerance = step * 3f64.sqrt() / 2.0 + 0.002;
        let sample = facts["sample"].as_array().expect("sample");
        // Source coordinates to ECEF, independently of our code: GDAL from the file's
        // CRS, or the anchor's definition for anchored files.
        let wkt_file = std::env::temp_dir().join(format!("cim-e2e-{layer}.wkt"));
        if let Some(wkt) = facts["wkt"].as_str() {
            std::fs::write(&wkt_file, wkt).expect("wkt");
        }
        let (mins, maxs) = (&facts["mins"], &facts["maxs"]);
        let place = |points: &[[f64; 3]]| -> Vec<[f64; 3]> {
            match case.and_then(|c| c.gdal) {
                Some((crs, z_factor)) => {
                    let from =
                        if crs == "wkt" { wkt_file.to_string_lossy().into_owned() } else { crs.to_owned() };
                    gdal_to_ecef(
                        &from,
                        &points.iter().map(|p| [p[0], p[1], p[2] * z_factor]).collect::<Vec<_>>(),
                    )
                }
                None => {
                    // --anchor: the header box's centre, at its lowest z, lands on the anchor.
                    let frame = cim_core::frame::EnuFrame::at(24.95, 60.17, 10.0);
                    let c =
                        |k: usize| (mins[k].as_f64().expect("min") + maxs[k].as_f64().expect("max")) / 2.0;
                    let z0 = mins[2].as_f64().expect("min z");
                    points.iter().map(|p| frame.to_ecef([p[0] - c(0), p[1] - c(1), p[2] - z0])).collect()
                }
            }
        };
        let source: Vec<[f64; 3]> = sample
            .iter()
            .map(|s| [s["x"].as_f64().expect("x"), s["y"].as_f64().expect("y"), s["z"].as_f64().expect("z")])
            .collect();
        let expected = place(&source);
        assert_eq!(expected.len(), sample.len(), "{name}: gdaltransform moved every sample point");
        let mut worst: f64 = 0.0;
        for (s, e) in sample.iter().zip(&expected) {
            let (intensity, class) = (s["intensity"].as_u64(), s["class"].as_u64());
            let nearest = decoded
                .points
                .iter()
                .filter(|(_, i, c)| Some(*i) == intensity && Some(*c) == class)
                .map(|(p, _, _)| distance(*p, *e))
                .fold(f64::INFINITY, f64::min);
            worst = worst.max(nearest);
            assert!(
                nearest <= tolerance,
                "{name}: sample point {s} is {nearest:.4} m from any decoded point (tolerance {tolerance:.4})"
            );
        }
        // The decoded points lie in the header's box moved into the layer frame, and
        // fill most of it (a unit mistake would be off by 3.28 or 0.3048; the moved box
        // grows where grid north and true north differ, and data need not reach its
        // corners).
        // A 9 × 9 grid on the bottom and top faces: the Earth's curvature lifts a
        // face's middle above its corners in the layer frame.
        let at = |k: usize, t: f64| {
            let (lo, hi) = (mins[k].as_f64().expect("min"), maxs[k].as_f64().expect("max"));
            lo + (hi - lo) * t
        };
        let corners: Vec<[f64; 3]> = (0..162)
            .map(|i| [at(0, (i % 9) as f64 / 8.0), at(1, (i / 9 % 9) as f64 / 8.0), at(2, (i / 81) as f64)])
            .collect();
        let transform: Vec<f64> =
            json_file(&store.join(&layer).join("3dtiles/tileset.json"))["root"]["transform"]
                .as_array()
                .expect("transform")
                .iter()
                .filter_map(Value::as_f64)
                .collect();
        let to_enu = |ecef: [f64; 3]| {
            let d = [0, 1, 2].map(|k| ecef[k] - transform[12 + k]);
            [0, 1, 2].map(|c| (0..3).map(|k| transform[4 * c + k] * d[k]).sum::<f64>())
        };
        let corners_ecef = place(&corners);
        let mut header_box = [[f64::MAX; 3], [f64::MIN; 3]];
        for p in corners_ecef.into_iter().map(to_enu) {
            for k in 0..3 {
                header_box[0][k] = header_box[0][k].min(p[k]);
                header_box[1][k] = header_box[1][k].max(p[k]);
            }
        }
        let e = decoded.enu_box;
        for k in 0..3 {
            assert!(
                e[0][k] >= header_box[0][k] - tolerance && e[1][k] <= header_box[1][k] + tolerance,
                "{name}: axis {k}: points {:.3}..{:.3} outside the header's {:.3}..{:.3}",
                e[0][k],
                e[1][k],
                header_box[0][k],
                header_box[1][k]
            );
        }
        let extent: Vec<f64> = (0..3).map(|k| e[1][k] - e[0][k]).collect();
        let header_extent: Vec<f64> = (0..3).map(|k| header_box[1][k] - header_box[0][k]).collect();
        for k in 0..2 {
            assert!(
                extent[k] >= 0.8 * header_extent[k],
                "{name}: the points fill only {extent:?} of {header_extent:?}"
            );
        }
        let source_extent = header_extent.clone();
        report.push(format!(
            "{name}: {count} points in {} tiles, {} levels, worst sample {:.1} mm, step {:.1} mm, extent {:.1} x {:.1} x {:.1} m (header box {:.1} x {:.1} x {:.1})",
            cloud["tiles"], cloud["levels"], worst * 1000.0, step * 1000.0, extent[0], extent[1], extent[2],
            source_extent[0], source_extent[1], source_extent[2]
        ));
        if case.is_some_and(|c| c.file == "laspy_simple1_4.las") {
            let warnings = quality["warnings"].to_string();
            assert!(warnings.contains("disagrees with its coordinates"), "{name}: {warnings}");
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn point_tiles_pass_the_khronos_validator_and_cesiumjs_streams_every_point() {
    let store = cloud_store();
    let mut files = Vec::new();
    for layer in ["laspy_autzen_trim", "autzen_copc", "pdal_hexbin_crop", "laspy_plane"] {
        let dir = store.join(layer).join("3dtiles");
        let mut uris = Vec::new();
        contents(&json_file(&dir.join("tileset.json"))["root"], &mut uris);
        files.extend(uris.iter().map(|u| dir.join(u).to_string_lossy().into_owned()));
    }
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    for report in oracle("validate_glb.mjs", &args).as_array().expect("reports") {
        assert_eq!(report["errors"], 0, "gltf-validator: {report}");
        assert_eq!(report["warnings"], 0, "gltf-validator: {report}");
    }
    let server = Server::start(store);
    let layers = get_json(&format!("{}/api/layers", server.url));
    assert!(layers.to_string().contains("\"point_cloud\""), "{layers}");
    let tileset = get(&format!("{}/3dtiles/laspy_autzen_trim/tileset.json", server.url), &[]);
    assert_eq!(tileset.status, 200);
    let root = get(&format!("{}/3dtiles/laspy_autzen_trim/content/0-0-0-0.glb", server.url), &[]);
    assert_eq!(root.status, 200);
    assert_eq!(
        root.body,
        std::fs::read(store.join("laspy_autzen_trim/3dtiles/content/0-0-0-0.glb")).expect("glb")
    );
    let shot = std::env::temp_dir().join("cim-e2e-cesium-points.png");
    let seen = oracle(
        "cesium_check.mjs",
        &[&format!("{}/3dtiles/laspy_autzen_trim/tileset.json", server.url), shot.to_str().expect("path")],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported: {seen}");
    assert_eq!(seen["loaded"], true, "all tiles loaded: {seen}");
    let catalogue = json_file(&store.join("laspy_autzen_trim/catalogue.json"));
    assert_eq!(
        seen["tiles"], catalogue["point_cloud"]["tiles"],
        "CesiumJS loads every tile at full detail: {seen}"
    );
    assert_eq!(seen["points"], catalogue["point_cloud"]["points"], "and draws every point once: {seen}");
}

#[test]
fn cesiums_3d_tiles_validator_finds_no_error_in_any_served_point_cloud() {
    let server = Server::start(cloud_store());
    for path in las_files() {
        let layer = layer_name(path.file_name().and_then(|n| n.to_str()).expect("name"));
        let (report, files) = assert_served_tileset_valid(&server.url, &layer);
        assert!(files >= 2, "{layer}: the tileset and its tiles");
        println!("{layer}: 3d-tiles-validator on {files} files: {} warnings", report["numWarnings"]);
    }
}

#[test]
fn corrupt_truncated_and_contradicted_point_clouds_fail_clearly_and_leave_the_served_layer() {
    let store = temp_dir("points-bad");
    let good = data("las/pdal_autzen_trim_7.las");
    ingest_ok(&store, "survey", &[], &[&good]);
    let version = || json_file(&store.join("survey/catalogue.json"))["version"].clone();
    let before = version();
    let bytes = std::fs::read(&good).expect("las");
    let laz = std::fs::read(data("las/laspy_autzen_trim.laz")).expect("laz");
    let mut bad_signature = bytes.clone();
    bad_signature[..4].copy_from_slice(b"LASX");
    // A LAZ chunk table claiming 4 billion chunks (found by the las fuzz target: the
    // LAZ reader reserved memory for all of them).
    let mut chunk_bomb = laz.clone();
    let at = |o: usize| u32::from_le_bytes(laz[o..o + 4].try_into().expect("4 bytes")) as usize;
    let table = i64::from_le_bytes(laz[at(96)..at(96) + 8].try_into().expect("8 bytes"));
    let table = usize::try_from(table).expect("this file has a chunk table");
    chunk_bomb[table + 4..table + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    // A COPC file (variable-size LAZ chunks) whose chunk table lists no chunk: laz
    // 0.13 indexes the empty table and panics (the las fuzz target); the ingest's
    // guard around the decoder turns that into an error naming the file.
    let copc = std::fs::read(data("las/laspy_simple.copc.laz")).expect("copc");
    let mut no_chunks = copc.clone();
    let copc_at = |o: usize| u32::from_le_bytes(copc[o..o + 4].try_into().expect("4 bytes")) as usize;
    let copc_table = i64::from_le_bytes(copc[copc_at(96)..copc_at(96) + 8].try_into().expect("8 bytes"));
    let copc_table = usize::try_from(copc_table).expect("this file has a chunk table");
    no_chunks[copc_table + 4..copc_table + 8].copy_from_slice(&0u32.to_le_bytes());
    // A LAS 1.4 point count whose size overflows 64 bits (the las fuzz target).
    let mut huge_count = std::fs::read(data("las/laspy_simple1_4.las")).expect("las 1.4");
    assert_eq!(huge_count[25], 4, "a LAS 1.4 file");
    huge_count[247..255].copy_from_slice(&u64::MAX.to_le_bytes());
    // A LAS 1.4 extended VLR claiming 8.9 TB (the las fuzz target: the reader
    // allocated it and the process aborted).
    let mut evlr_bomb = std::fs::read(data("las/laspy_simple1_4.las")).expect("las 1.4");
    assert_eq!(u32::from_le_bytes(evlr_bomb[243..247].try_into().expect("4 bytes")), 1, "one EVLR");
    let evlr = u64::from_le_bytes(evlr_bomb[235..243].try_into().expect("8 bytes")) as usize;
    evlr_bomb[evlr + 20..evlr + 28].copy_from_slice(&0x820_03e8_0000u64.to_le_bytes());
    let evlr_claim = format!("the extended VLR at byte {evlr} claims 8933597511680 bytes, past the end");
    // A LAS 1.4 file whose WKT CRS record is blank and that has no GeoTIFF keys
    // (their record renumbered): it must name the empty record, not an empty CRS.
    let mut empty_wkt = std::fs::read(data("las/laspy_simple1_4.las")).expect("las 1.4");
    assert_eq!(&empty_wkt[377..392], b"LASF_Projection");
    assert_eq!(u16::from_le_bytes([empty_wkt[393], empty_wkt[394]]), 34735, "GeoKeyDirectory");
    empty_wkt[393..395].copy_from_slice(&1u16.to_le_bytes());
    let wkt_len = u64::from_le_bytes(empty_wkt[evlr + 20..evlr + 28].try_into().expect("8 bytes")) as usize;
    assert!(empty_wkt[evlr + 60..evlr + 60 + wkt_len].starts_with(b"GEOGCS"));
    empty_wkt[evlr + 60..evlr + 60 + wkt_len].fill(0);
    // The Oregon survey typed into the wrong state plane (Oregon North, feet).
    let wrong_zone = std::fs::read(data("las/laspy_simple.las")).expect("las");
    let mut garbage_header = bytes[..400].to_vec();
    garbage_header[94..96].copy_from_slice(&[0xff, 0xff]); // header size
    let cases: Vec<(&str, Vec<u8>, &[&str], &str)> = vec![
        ("truncated.las", bytes[..bytes.len() / 2].to_vec(), &[], "after point"),
        ("truncated.laz", laz[..laz.len() / 2].to_vec(), &[], "truncated.laz"),
        ("chunks.laz", chunk_bomb, &[], "the chunk table claims 4294967280 chunks"),
        ("no_chunks.copc.laz", no_chunks, &[], "the point decoder failed on corrupt data"),
        ("count.las", huge_count, &[], "more than any file can hold"),
        ("evlr.las", evlr_bomb, &[], &evlr_claim),
        ("badsig.las", bad_signature, &[], "not a readable LAS/LAZ file"),
        ("header.las", garbage_header, &[], "not a readable LAS/LAZ file"),
        ("empty.las", Vec::new(), &[], "not a readable LAS/LAZ file"),
        ("empty_wkt.las", empty_wkt, &[], "its WKT CRS record is empty"),
        (
            "wrong_zone.las",
            wrong_zone,
            &["--src-crs", "EPSG:2913"],
            "--src-crs EPSG:2913 does not fit the coordinates",
        ),
    ];
    for (file, content, args, expect) in cases {
        let path = store.join(file);
        std::fs::write(&path, content).expect("write");
        let out = ingest(&store, "survey", args, &[&path]);
        assert!(!out.ok, "{file} must fail");
        assert!(!out.stderr.contains("panicked"), "{file}: {}", out.stderr);
        assert!(out.stderr.contains(file) && out.stderr.contains(expect), "{file}: {}", out.stderr);
        assert_eq!(version(), before, "{file}: the served layer is untouched");
    }
    // A geographic CRS with coordinates no longitude can have: refused, by name.
    let simple = data("las/laspy_simple1_4.las");
    let out = ingest(&store, "survey", &[], &[&simple]);
    assert!(!out.ok);
    for needle in
        ["laspy_simple1_4.las", "disagrees with its coordinates", "x 1.0..226.0", "--src-crs", "--anchor"]
    {
        assert!(out.stderr.contains(needle), "missing '{needle}': {}", out.stderr);
    }
    // No CRS at all: refused, naming the way out.
    let out = ingest(&store, "survey", &[], &[&data("las/laspy_simple.las")]);
    assert!(
        !out.ok && out.stderr.contains("declares no CRS") && out.stderr.contains("--src-crs"),
        "{}",
        out.stderr
    );
    assert_eq!(version(), before);
}

//! Independent checkers: the npm and PyPI oracles, GDAL, coreutils, Cesium's
//! validator.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::binaries::{repo_root, temp_dir, walk_files};
use crate::http::mirror_served_tileset;

/// Runs one of the npm oracles in tests/oracles and parses its JSON output.
pub fn oracle(script: &str, args: &[&str]) -> Value {
    let dir = repo_root().join("tests/oracles");
    assert!(
        dir.join("node_modules").is_dir(),
        "run `npm ci` in tests/oracles first (the README test command does)"
    );
    let out = Command::new("node").arg(dir.join(script)).args(args).output().expect("node");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("oracle JSON")
}

/// `gdaltransform` of many points at once (`-output_xy`, traditional GIS order).
pub fn gdal_transform_many(from: &str, to: &str, points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    use std::io::Write;
    let mut child = Command::new("gdaltransform")
        .args(["-s_srs", from, "-t_srs", to, "-output_xy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gdaltransform (apt-get install gdal-bin)");
    let mut input = String::new();
    for [x, y] in points {
        input.push_str(&format!("{x:.9} {y:.9}\n"));
    }
    // Written from another thread: the answers fill the pipe while input still flows.
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("gdaltransform");
    writer.join().expect("writer").expect("write");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<[f64; 2]> = text
        .lines()
        .map(|l| {
            let n: Vec<f64> = l.split_whitespace().map(|t| t.parse().expect("number")).collect();
            [n[0], n[1]]
        })
        .collect();
    assert_eq!(v.len(), points.len(), "gdaltransform answered every point");
    v
}

/// Raster values at pixels `(col, row)` of band 1, read by GDAL's `gdallocationinfo`.
pub fn gdal_pixel_values(file: &Path, pixels: &[(usize, usize)]) -> Vec<f64> {
    use std::io::Write;
    let mut child = Command::new("gdallocationinfo")
        .args(["-valonly", "-b", "1"])
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gdallocationinfo (apt-get install gdal-bin)");
    let input: String = pixels.iter().map(|(c, r)| format!("{c} {r}\n")).collect();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("gdallocationinfo");
    writer.join().expect("writer").expect("write");
    let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("pixel value"))
        .collect();
    assert_eq!(v.len(), pixels.len(), "gdallocationinfo answered every pixel");
    v
}

/// Decodes triangle GLBs with glTF-Transform: per file, its primitives.
pub fn decode_meshes(files: &[PathBuf]) -> Vec<Value> {
    let mut out = Vec::new();
    for chunk in files.chunks(200) {
        let args: Vec<&str> = chunk.iter().map(|p| p.to_str().expect("utf-8 path")).collect();
        match oracle("decode_mesh.mjs", &args) {
            Value::Array(a) => out.extend(a),
            other => panic!("decode_mesh.mjs: {other}"),
        }
    }
    out
}

/// The `fid` column of a GLB's first property table, decoded from the binary chunk by
/// the glTF 2.0 and EXT_structural_metadata layouts.
pub fn glb_fids(glb: &[u8]) -> Vec<u64> {
    let u32_at = |o: usize| u32::from_le_bytes(glb[o..o + 4].try_into().expect("4 bytes")) as usize;
    let json_len = u32_at(12);
    let json: Value = serde_json::from_slice(&glb[20..20 + json_len]).expect("json chunk");
    let bin = 20 + json_len + 8;
    let table = &json["extensions"]["EXT_structural_metadata"]["propertyTables"][0];
    let class = &json["extensions"]["EXT_structural_metadata"]["schema"]["classes"]
        [table["class"].as_str().expect("class")];
    assert_eq!(class["properties"]["fid"]["componentType"], "UINT64");
    let view = &json["bufferViews"][table["properties"]["fid"]["values"].as_u64().expect("view") as usize];
    let start = bin + view["byteOffset"].as_u64().expect("offset") as usize;
    let count = table["count"].as_u64().expect("count") as usize;
    assert_eq!(view["byteLength"].as_u64(), Some(count as u64 * 8));
    (0..count)
        .map(|i| u64::from_le_bytes(glb[start + i * 8..start + i * 8 + 8].try_into().expect("8 bytes")))
        .collect()
}

/// SHA-256 in hex by coreutils' `sha256sum`, as an operator would make the file.
pub fn sha256_hex(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(token.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_owned()
}

/// The command that runs CesiumGS 3d-tiles-validator, installed into the cache by
/// `../shared/tools/3d-tiles-validator/install.sh` (a no-op once installed).
pub fn tiles_validator() -> Vec<String> {
    let script = repo_root().join("../shared/tools/3d-tiles-validator/install.sh");
    assert!(script.is_file(), "missing {} (tests read ../shared)", script.display());
    let out = Command::new("bash").arg(&script).output().expect("bash");
    assert!(out.status.success(), "installing 3d-tiles-validator: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let words: Vec<String> =
        line.lines().last().unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    assert!(words.len() >= 2, "install.sh printed no command: {line}");
    words
}

/// Runs Cesium's 3d-tiles-validator on a layer's served tileset and its content and
/// asserts it finds no error; returns the report (`numErrors`, `numWarnings`,
/// `issues`) and the number of files it was given.
pub fn assert_served_tileset_valid(base: &str, layer: &str) -> (Value, usize) {
    let dir = temp_dir(&format!("validate-{layer}"));
    let root = mirror_served_tileset(base, layer, &dir);
    let files = walk_files(&dir).len();
    let report = dir.join("report.json");
    let cmd = tiles_validator();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg("-t")
        .arg(&root)
        .arg("-r")
        .arg(&report)
        .output()
        .expect("run 3d-tiles-validator");
    let text = std::fs::read(&report).unwrap_or_else(|e| {
        panic!("3d-tiles-validator wrote no report ({e}): {}", String::from_utf8_lossy(&out.stderr))
    });
    let report: Value = serde_json::from_slice(&text).expect("validator report JSON");
    let errors = report["numErrors"].as_u64().expect("numErrors");
    assert_eq!(
        errors,
        0,
        "3d-tiles-validator: {errors} errors in layer {layer}'s served tileset ({files} files): {}",
        serde_json::to_string_pretty(&report["issues"])
            .unwrap_or_default()
            .chars()
            .take(6000)
            .collect::<String>()
    );
    (report, files)
}

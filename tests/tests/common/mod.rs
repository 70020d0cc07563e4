//! Drives the real `cim-ingest` and `cim-server` binaries and the npm oracles.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// `target/<profile>/`, where cargo put the workspace binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..").to_path_buf()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// The shared sample data beside the checkout.
pub fn data(rel: &str) -> PathBuf {
    let p = repo_root().join("../shared/data").join(rel);
    assert!(p.exists(), "sample data missing: {} (tests read ../shared/data)", p.display());
    p
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "cim-e2e-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn ingest(store: &Path, layer: &str, args: &[&str], files: &[&Path]) -> Outcome {
    let out = Command::new(bin_dir().join("cim-ingest"))
        .arg("--store")
        .arg(store)
        .arg("--layer")
        .arg(layer)
        .args(args)
        .args(files)
        .output()
        .expect("run cim-ingest (build it first: cargo build --workspace)");
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ingest_ok(store: &Path, layer: &str, args: &[&str], files: &[&Path]) -> String {
    let o = ingest(store, layer, args, files);
    assert!(o.ok, "ingest {layer} failed: {}", o.stderr);
    o.stdout
}

/// A running `cim-server`, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    /// `HOST:PORT` of the embedded MQTT broker, when started with `--mqtt-listen`.
    pub mqtt: Option<String>,
    /// Held open: the server prints its addresses there.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    pub fn start(store: &Path) -> Self {
        Self::start_with(store, &[])
    }

    pub fn start_with(store: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(bin_dir().join("cim-server"))
            .arg("--store")
            .arg(store)
            .arg("--bind")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run cim-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("server prints its address");
        let url = line.trim().rsplit(' ').next().expect("url").to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {line}");
        let mut mqtt = None;
        if extra.contains(&"--mqtt-listen") {
            line.clear();
            reader.read_line(&mut line).expect("server prints its MQTT address");
            let addr = line.trim().rsplit("mqtt://").next().expect("mqtt address").to_owned();
            mqtt = Some(addr);
        }
        Self { child, url, mqtt, _stdout: reader }
    }
}

#[allow(dead_code)]
impl Server {
    /// SIGKILL, no chance to flush or clean up: what a power cut looks like.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = ureq::get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).expect("body");
    Reply { status, headers, body }
}

pub fn get_json(url: &str) -> Value {
    let r = get(url, &[]);
    assert_eq!(r.status, 200, "GET {url}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

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

/// A bare static file server (std only) for tilesets written by other tools: `routes`
/// maps exact paths to bodies, `mounts` maps a URL prefix to a directory.
#[allow(dead_code)]
pub struct StaticServer {
    pub url: String,
}

#[allow(dead_code)]
impl StaticServer {
    pub fn start(routes: Vec<(String, Vec<u8>)>, mounts: Vec<(String, PathBuf)>) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = routes.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone()).or_else(|| {
                    mounts.iter().find_map(|(prefix, dir)| {
                        let rest = path.strip_prefix(prefix.as_str())?;
                        if rest.contains("..") {
                            return None;
                        }
                        std::fs::read(dir.join(rest)).ok()
                    })
                });
                let reply = match &body {
                    Some(b) => {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    }
                };
                let _ = stream.write_all(reply.as_bytes());
                if let Some(b) = body {
                    let _ = stream.write_all(&b);
                }
            }
        });
        Self { url }
    }
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

/// Lit roofs are near white; the viewer's ground is a dark grey (sRGB 0.30, 0.33, 0.31).
pub fn is_building(p: [u8; 3]) -> bool {
    p.iter().map(|c| u32::from(*c)).sum::<u32>() / 3 > 170
}

/// The picked building's highlight: saturated orange.
pub fn is_highlight([r, g, b]: [u8; 3]) -> bool {
    r > 150 && i32::from(r) - i32::from(g) > 50 && g > b
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

/// A PNG's size and pixels as RGB (alpha dropped).
pub fn read_png_rgb(path: &Path) -> (usize, usize, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    let rgb = buf.chunks_exact(channels).take(width * height).map(|p| [p[0], p[1], p[2]]).collect();
    (width, height, rgb)
}

pub fn is_alarm_red([r, g, b]: [u8; 3]) -> bool {
    r > 180 && g < 90 && b < 90
}

pub fn post_json(url: &str, body: &Value) -> u16 {
    match ureq::post(url).set("content-type", "application/json").send_string(&body.to_string()) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {url}: {e}"),
    }
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

/// `gdaltransform` of many points at once (`-output_xy`, traditional GIS order).
#[allow(dead_code)]
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
#[allow(dead_code)]
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
#[allow(dead_code)]
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
#[allow(dead_code)]
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

/// A store with the Lyon DEM as terrain layer `ground` and thirty square buildings
/// over Fourvière's slope as layer `buildings`, set on that ground at ingest, with a
/// main road across the hill.
#[allow(dead_code)]
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
#[allow(dead_code)]
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
#[allow(dead_code)]
pub fn gltf_to_geodetic(m: &[f64], g: &[f64]) -> [f64; 3] {
    let (e, n, u) = (g[0], -g[2], g[1]);
    let ecef = [0, 1, 2].map(|k| m[k] * e + m[4 + k] * n + m[8 + k] * u + m[12 + k]);
    let (lon, lat, h) = cim_core::frame::ecef_to_geodetic(ecef);
    [lon, lat, h]
}

/// SHA-256 in hex by coreutils' `sha256sum`, as an operator would make the file.
#[allow(dead_code)]
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

/// Downloads a layer's tileset from a running server as a client would (the
/// tileset, every content it names and the external tilesets those are, each
/// relative to the file naming it) into `dest`; returns the root tileset's path.
pub fn mirror_served_tileset(base: &str, layer: &str, dest: &Path) -> PathBuf {
    fn uris(tile: &Value, out: &mut Vec<String>) {
        for content in tile["content"]
            .as_object()
            .into_iter()
            .chain(tile["contents"].as_array().into_iter().flatten().filter_map(Value::as_object))
        {
            if let Some(u) = content.get("uri").and_then(Value::as_str) {
                out.push(u.to_owned());
            }
        }
        for child in tile["children"].as_array().into_iter().flatten() {
            uris(child, out);
        }
    }
    let mut pending = vec!["tileset.json".to_owned()];
    let mut seen = std::collections::HashSet::new();
    while let Some(rel) = pending.pop() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let reply = get(&format!("{base}/3dtiles/{layer}/{rel}"), &[]);
        assert_eq!(reply.status, 200, "GET /3dtiles/{layer}/{rel}: {}", String::from_utf8_lossy(&reply.body));
        let file = dest.join(&rel);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, &reply.body).expect("write");
        if rel.ends_with(".json") {
            let dir = rel.rsplit_once('/').map_or(String::new(), |(d, _)| format!("{d}/"));
            let mut found = Vec::new();
            uris(&reply.json()["root"], &mut found);
            pending.extend(found.into_iter().map(|u| format!("{dir}{u}")));
        }
    }
    dest.join("tileset.json")
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

/// Every file under a directory.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

/// nginx (Debian's) as a shared cache in front of `upstream`: every answer it may
/// keep is kept ten minutes, and `X-Cache-Status` says whether it came from the cache.
pub struct CachingProxy {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

impl CachingProxy {
    pub fn start(upstream: &str) -> Self {
        let dir = temp_dir("nginx");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(dir.join("cache")).expect("cache dir");
        let conf = format!(
            r#"user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache keys_zone=shared:1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_cache shared;
            proxy_cache_valid any 10m;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&*dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx (apt install nginx-light)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, url, _dir: dir };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for CachingProxy {
    fn drop(&mut self) {
        // TERM: the master stops its workers too (a KILL would orphan them).
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

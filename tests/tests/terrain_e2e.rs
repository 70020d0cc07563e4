//! Terrain: the Lyon DEM (`../shared/data/dem/lyon_dem.tif`) through the real
//! `cim-ingest` and `cim-server`, checked against GDAL (`gdalinfo`,
//! `gdallocationinfo`, `gdaltransform`), glTF-Transform, the Khronos glTF validator
//! and CesiumJS.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cim_e2e::*;
use serde_json::Value;

/// One decoded terrain tile: its surface vertices in degrees and metres, and triangles.
struct TileMesh {
    vertices: Vec<[f64; 3]>,
    triangles: Vec<[usize; 3]>,
    skirt_triangles: usize,
}

/// The geographic tiling scheme, written out here: tile `(z, x, y)` spans
/// `180 / 2^z` degrees from −180° east and −90° north.
fn tile_bounds(z: u32, x: u32, y: u32) -> [f64; 4] {
    let span = 180.0 / f64::from(1u32 << z);
    let (w, s) = (-180.0 + f64::from(x) * span, -90.0 + f64::from(y) * span);
    [w, s, w + span, s + span]
}

/// Every tile's surface, decoded by glTF-Transform and placed with the tileset's
/// root transform (glTF y-up to the 3D Tiles z-up frame first).
fn decode_terrain(layer_dir: &Path) -> HashMap<(u32, u32, u32), TileMesh> {
    let m = root_transform(layer_dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(layer_dir.join("3dtiles/content"))
        .expect("content")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut out = HashMap::new();
    for decoded in decode_meshes(&files) {
        let name = Path::new(decoded["file"].as_str().expect("file"))
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let zxy: Vec<u32> = name.split('-').map(|p| p.parse().expect("z-x-y")).collect();
        let prims = decoded["primitives"].as_array().expect("primitives");
        let surface = &prims[0];
        let p: Vec<f64> = surface["positions"]
            .as_array()
            .expect("positions")
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        let vertices = p.chunks(3).map(|g| gltf_to_geodetic(&m, g)).collect();
        let idx: Vec<usize> = surface["indices"]
            .as_array()
            .expect("indices")
            .iter()
            .map(|v| v.as_u64().expect("u64") as usize)
            .collect();
        let skirt_triangles = prims.get(1).map_or(0, |s| s["indices"].as_array().map_or(0, Vec::len) / 3);
        out.insert(
            (zxy[0], zxy[1], zxy[2]),
            TileMesh {
                vertices,
                triangles: idx.chunks(3).map(|t| [t[0], t[1], t[2]]).collect(),
                skirt_triangles,
            },
        );
    }
    out
}

/// Height of a decoded mesh at a position, linear in longitude and latitude.
fn mesh_height(tile: &TileMesh, lon: f64, lat: f64) -> Option<f64> {
    tile.triangles.iter().find_map(|t| {
        let [a, b, c] = t.map(|k| tile.vertices[k]);
        let det = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1]);
        let wa = ((b[1] - c[1]) * (lon - c[0]) + (c[0] - b[0]) * (lat - c[1])) / det;
        let wb = ((c[1] - a[1]) * (lon - c[0]) + (a[0] - c[0]) * (lat - c[1])) / det;
        let wc = 1.0 - wa - wb;
        (wa >= -1e-9 && wb >= -1e-9 && wc >= -1e-9).then(|| wa * a[2] + wb * b[2] + wc * c[2])
    })
}

/// What `gdalinfo -json` says of a raster: geotransform, size and CRS.
fn gdal_info(file: &Path) -> ([f64; 6], [usize; 2], String) {
    let out = std::process::Command::new("gdalinfo").arg("-json").arg(file).output().expect("gdalinfo");
    let info: Value = serde_json::from_slice(&out.stdout).expect("gdalinfo json");
    let g: Vec<f64> = info["geoTransform"]
        .as_array()
        .expect("geoTransform")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    let size = [info["size"][0].as_u64().expect("w") as usize, info["size"][1].as_u64().expect("h") as usize];
    let epsg = info["stac"]["proj:epsg"].as_u64().map(|c| format!("EPSG:{c}")).expect("an EPSG code");
    ([g[0], g[1], g[2], g[3], g[4], g[5]], size, epsg)
}

/// Pixel centres of a raster in degrees (by `gdaltransform`) with their values (by
/// `gdallocationinfo`).
fn raster_samples(file: &Path, pixels: &[(usize, usize)]) -> Vec<(f64, f64, f64)> {
    let (g, _, epsg) = gdal_info(file);
    let centres: Vec<[f64; 2]> = pixels
        .iter()
        .map(|&(c, r)| {
            let (c, r) = (c as f64 + 0.5, r as f64 + 0.5);
            [g[0] + c * g[1] + r * g[2], g[3] + c * g[4] + r * g[5]]
        })
        .collect();
    let degrees = gdal_transform_many(&epsg, "EPSG:4326", &centres);
    let values = gdal_pixel_values(file, pixels);
    degrees.iter().zip(values).map(|(d, v)| (d[0], d[1], v)).collect()
}

#[test]
fn a_dem_becomes_validated_crack_free_terrain_whose_heights_match_the_raster_within_the_declared_error() {
    let store = temp_dir("terrain-lyon");
    let dem = data("dem/lyon_dem.tif");
    let stdout = ingest_ok(&store, "ground", &[], &[&dem]);
    assert!(stdout.contains("terrain, 352x169 pixels") && stdout.contains("EPSG:3946"), "{stdout}");
    let catalogue: Value =
        serde_json::from_slice(&std::fs::read(store.join("ground/catalogue.json")).expect("catalogue"))
            .expect("json");
    assert_eq!(catalogue["kind"], "terrain");
    let levels = catalogue["terrain"]["levels"].as_array().expect("levels").clone();
    let (first_zoom, last_zoom) =
        (catalogue["min_zoom"].as_u64().expect("min"), catalogue["max_zoom"].as_u64().expect("max"));
    // 10 m pixels: the finest level's samples are no further apart than the pixels
    // (9.5 m at zoom 15), one zoom coarser they would be (19 m).
    assert_eq!(last_zoom, 15, "{catalogue}");
    assert_eq!(levels.len() as u64, last_zoom - first_zoom + 1);
    let finest = levels.last().expect("a level");
    let declared = finest["geometric_error_m"].as_f64().expect("error");
    let p99 = finest["pixel_error_p99_m"].as_f64().expect("p99");
    assert_eq!(finest["pixels_measured"], 352 * 169, "every pixel centre lies under the mesh");
    // Coarser levels carry fewer triangles and larger errors.
    for pair in levels.windows(2) {
        assert!(pair[0]["triangles"].as_u64() < pair[1]["triangles"].as_u64(), "{pair:?}");
        assert!(pair[0]["error_bound_m"].as_f64() > pair[1]["error_bound_m"].as_f64(), "{pair:?}");
    }

    // The Khronos validator accepts every tile.
    let files: Vec<PathBuf> = std::fs::read_dir(store.join("ground/3dtiles/content"))
        .expect("content")
        .map(|e| e.expect("entry").path())
        .collect();
    let tile_count: u64 = levels.iter().map(|l| l["tiles"].as_u64().expect("tiles")).sum();
    assert_eq!(files.len() as u64, tile_count);
    let args: Vec<&str> = files.iter().map(|p| p.to_str().expect("path")).collect();
    let reports = oracle("validate_glb.mjs", &args);
    for r in reports.as_array().expect("reports") {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["warnings"], 0, "{r}");
    }

    let tiles = decode_terrain(&store.join("ground"));
    // No cracks: where two neighbours of one level both have triangles along their
    // shared edge, neither has a vertex inside the other's edge segment (a
    // T-junction), and the vertices they share have the same height.
    let mut shared_edges = 0;
    let mut shared_vertices = 0;
    for (&(z, x, y), tile) in &tiles {
        assert!(tile.skirt_triangles > 0, "tile {z}/{x}/{y} has skirts");
        for (nx, ny, vertical) in [(x + 1, y, true), (x, y + 1, false)] {
            let Some(neighbour) = tiles.get(&(z, nx, ny)) else { continue };
            let [_, _, east, north] = tile_bounds(z, x, y);
            let on_line = |p: &[f64; 3]| {
                if vertical { (p[0] - east).abs() < 1e-7 } else { (p[1] - north).abs() < 1e-7 }
            };
            let along = |p: &[f64; 3]| if vertical { p[1] } else { p[0] };
            // Edge segments (along-edge coordinate, height at both ends) of a tile.
            let segments = |t: &TileMesh| {
                let mut s = Vec::new();
                for tri in &t.triangles {
                    for e in 0..3 {
                        let (a, b) = (t.vertices[tri[e]], t.vertices[tri[(e + 1) % 3]]);
                        if on_line(&a) && on_line(&b) {
                            let (a, b) = if along(&a) < along(&b) { (a, b) } else { (b, a) };
                            s.push([along(&a), a[2], along(&b), b[2]]);
                        }
                    }
                }
                s
            };
            let (mine, theirs) = (segments(tile), segments(neighbour));
            for (one, other, name) in [(&mine, &theirs, (x, y)), (&theirs, &mine, (nx, ny))] {
                for s in one.iter() {
                    for (t, h) in [(s[0], s[1]), (s[2], s[3])] {
                        for o in other.iter() {
                            assert!(
                                !(t > o[0] + 1e-9 && t < o[2] - 1e-9),
                                "T-junction: tile {z}/{}/{} has a vertex at {t} inside its neighbour's edge {o:?}",
                                name.0,
                                name.1
                            );
                            for (ot, oh) in [(o[0], o[1]), (o[2], o[3])] {
                                if (ot - t).abs() < 1e-9 {
                                    assert!(
                                        (oh - h).abs() < 0.002,
                                        "{z}/{x}/{y}-{nx}/{ny} at {t}: {h} vs {oh}"
                                    );
                                    shared_vertices += 1;
                                }
                            }
                        }
                    }
                }
            }
            if !mine.is_empty() && !theirs.is_empty() {
                shared_edges += 1;
            }
        }
    }
    assert!(shared_edges >= 40, "{shared_edges} shared edges checked");

    // Heights at raster pixel centres: the API against GDAL's pixel values, and the
    // API against the decoded finest tile.
    let server = Server::start(&store);
    // The attribution names the source file, not where the ingest host kept it.
    let layer_json = get_json(&format!("{}/terrain/ground/layer.json", server.url));
    let attribution = layer_json["attribution"].as_str().expect("attribution");
    assert!(attribution.starts_with("lyon_dem.tif (") && !attribution.contains('/'), "{attribution}");
    let (report, files) = assert_served_tileset_valid(&server.url, "ground");
    println!("3d-tiles-validator on {files} served terrain files: {} warnings", report["numWarnings"]);
    let (_, [w, h], _) = gdal_info(&dem);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<(usize, usize)> = (0..300)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state % w as u64) as usize, ((state >> 32) % h as u64) as usize)
        })
        .collect();
    let samples = raster_samples(&dem, &pixels);
    let mut within_p99 = 0;
    let mut total_error = 0.0;
    for (k, &(lon, lat, value)) in samples.iter().enumerate() {
        let reply = get_json(&format!("{}/api/elevation?lon={lon}&lat={lat}", server.url));
        let height = reply["height"].as_f64().expect("height");
        assert_eq!(reply["layer"], "ground");
        assert_eq!(reply["geometric_error"].as_f64(), Some(declared));
        let error = (height - value).abs();
        assert!(
            error <= declared + 1e-3,
            "pixel {:?}: API {height} vs raster {value}, declared error {declared}",
            pixels[k]
        );
        total_error += error;
        if error <= p99 + 1e-3 {
            within_p99 += 1;
        }
        if k % 6 == 0 {
            let span = 180.0 / f64::from(1u32 << last_zoom);
            let key = (
                last_zoom as u32,
                ((lon + 180.0) / span).floor() as u32,
                ((lat + 90.0) / span).floor() as u32,
            );
            let drawn = mesh_height(&tiles[&key], lon, lat).expect("the finest tile covers the pixel");
            assert!((drawn - height).abs() < 0.01, "pixel {:?}: drawn {drawn} vs API {height}", pixels[k]);
        }
    }
    let mean = total_error / samples.len() as f64;
    println!(
        "terrain: {shared_edges} shared edges ({shared_vertices} vertices) identical; 300 pixels: mean error {mean:.3} m, declared {declared:.2} m, {within_p99} within p99 {p99:.2} m"
    );
    assert!(mean < 0.5, "mean error {mean} m at pixel centres");
    assert!(within_p99 >= 285, "{within_p99}/300 within the stated 99th percentile {p99}");

    // Garbage and places with no terrain.
    assert_eq!(get(&format!("{}/api/elevation?lon=abc&lat=45", server.url), &[]).status, 400);
    assert_eq!(get(&format!("{}/api/elevation?lon=4.8", server.url), &[]).status, 400);
    assert_eq!(get(&format!("{}/api/elevation?lon=4.8&lat=95", server.url), &[]).status, 400);
    assert_eq!(get(&format!("{}/api/elevation?lon=10&lat=10", server.url), &[]).status, 404);

    // CesiumJS's own terrain provider reads the quantized-mesh tiles: its most
    // detailed heights are ours to the quantisation step (height range / 32767 per
    // tile, a few millimetres).
    let points: Vec<[f64; 2]> = samples.iter().take(40).map(|&(lon, lat, _)| [lon, lat]).collect();
    let layer_json = get_json(&format!("{}/terrain/ground/layer.json", server.url));
    assert_eq!(layer_json["format"], "quantized-mesh-1.0");
    assert_eq!(layer_json["maxzoom"], last_zoom);
    let flat = get(&format!("{}/terrain/ground/0/0/0.terrain", server.url), &[]);
    assert_eq!((flat.status, flat.header("content-type")), (200, Some("application/vnd.quantized-mesh")));
    assert_eq!(
        get(&format!("{}/terrain/ground/15/0/0.terrain", server.url), &[]).status,
        404,
        "no data there"
    );
    assert_eq!(get(&format!("{}/terrain/ground/15/x/0.terrain", server.url), &[]).status, 400);
    let globe = std::env::temp_dir().join("cim-e2e-cesium-terrain-globe.png");
    let seen = oracle(
        "cesium_terrain.mjs",
        &[
            &format!("{}/terrain/ground", server.url),
            &serde_json::to_string(&points).expect("json"),
            globe.to_str().expect("path"),
        ],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported: {seen}");
    assert_eq!(seen["loaded"], true, "{seen}");
    assert_eq!(seen["hasVertexNormals"], true, "{seen}");
    let cesium: Vec<f64> =
        seen["heights"].as_array().expect("heights").iter().map(|h| h.as_f64().expect("height")).collect();
    for ([lon, lat], h) in points.iter().zip(&cesium) {
        let ours = get_json(&format!("{}/api/elevation?lon={lon}&lat={lat}", server.url))["height"]
            .as_f64()
            .expect("height");
        assert!((h - ours).abs() < 0.02, "at {lon},{lat}: CesiumJS {h} vs ours {ours}");
    }

    // CesiumJS loads the whole tree at full detail without a failed tile.
    let shot = std::env::temp_dir().join("cim-e2e-cesium-terrain.png");
    let seen = oracle(
        "cesium_check.mjs",
        &[&format!("{}/3dtiles/ground/tileset.json", server.url), shot.to_str().expect("path")],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported: {seen}");
    assert_eq!(seen["loaded"], true, "{seen}");
    assert!(seen["tiles"].as_u64() >= finest["tiles"].as_u64(), "the finest level drawn: {seen}");
}

#[test]
fn float_dems_with_no_data_holes_missing_crs_and_corrupt_files_are_handled_and_the_served_terrain_stays() {
    let store = temp_dir("terrain-holes");
    let dir = temp_dir("terrain-holes-src");
    // An ESRI ASCII grid (Float32 to GDAL) of a tilted plane in EPSG:3946, with a
    // block of no data inside.
    let (cols, rows, cell) = (60usize, 40usize, 10.0);
    let (x0, y0) = (1_842_000.0, 5_175_000.0);
    let height = |c: usize, r: usize| 200.0 + 0.5 * c as f64 - 0.25 * r as f64 + 0.125;
    let hole = |c: usize, r: usize| (20..40).contains(&c) && (10..25).contains(&r);
    let mut text = format!(
        "ncols {cols}\nnrows {rows}\nxllcorner {x0}\nyllcorner {y0}\ncellsize {cell}\nNODATA_value -9999\n"
    );
    for r in 0..rows {
        let row: Vec<String> = (0..cols)
            .map(|c| if hole(c, r) { "-9999".to_owned() } else { format!("{:.3}", height(c, r)) })
            .collect();
        text.push_str(&row.join(" "));
        text.push('\n');
    }
    let asc = dir.join("plane.asc");
    std::fs::write(&asc, text).expect("write");

    let missing = ingest(&store, "ground", &[], &[&asc]);
    assert!(
        !missing.ok && missing.stderr.contains("plane.asc") && missing.stderr.contains("declares no CRS"),
        "{}",
        missing.stderr
    );
    let out = ingest_ok(&store, "ground", &["--src-crs", "EPSG:3946"], &[&asc]);
    assert!(out.contains("terrain, 60x40 pixels"), "{out}");
    // A photograph of the ground is not its heights.
    let version = std::fs::read_link(store.join("ground")).expect("link");
    for image in ["imagery/RGB.byte.tif", "imagery/RGBA.byte.tif"] {
        let refused = ingest(&store, "ground", &[], &[&data(image)]);
        let said = &refused.stderr;
        assert!(
            !refused.ok
                && said.contains(image.trim_start_matches("imagery/"))
                && said.contains("not a DEM")
                && said.contains("band 1 red (Byte), band 2 green (Byte), band 3 blue (Byte)"),
            "{said}"
        );
        assert_eq!(std::fs::read_link(store.join("ground")).expect("link"), version);
    }
    let quality: Value =
        serde_json::from_slice(&std::fs::read(store.join("ground/quality.json")).expect("quality"))
            .expect("json");
    assert_eq!(quality["dropped"]["no data pixels"], 20 * 15, "{quality}");

    let server = Server::start(&store);
    // GDAL's view of the grid: the same CRS given on the command line.
    let pixels: Vec<(usize, usize)> =
        (0..rows).step_by(3).flat_map(|r| (0..cols).step_by(4).map(move |c| (c, r))).collect();
    let values = gdal_pixel_values(&asc, &pixels);
    let centres: Vec<[f64; 2]> = pixels
        .iter()
        .map(|&(c, r)| [x0 + (c as f64 + 0.5) * cell, y0 + (rows as f64 - r as f64 - 0.5) * cell])
        .collect();
    let degrees = gdal_transform_many("EPSG:3946", "EPSG:4326", &centres);
    let (mut answered, mut holes) = (0, 0);
    for ((&(c, r), value), [lon, lat]) in pixels.iter().zip(values).zip(degrees) {
        let reply = get(&format!("{}/api/elevation?lon={lon}&lat={lat}", server.url), &[]);
        // Pixels next to the hole or the raster's edge may fall where triangles were
        // left out; deep inside either, the answer is certain.
        let deep_in_hole = (22..38).contains(&c) && (12..23).contains(&r);
        let deep_in_data = !hole(c, r)
            && (2..cols - 2).contains(&c)
            && (2..rows - 2).contains(&r)
            && !((18..42).contains(&c) && (8..27).contains(&r));
        if deep_in_hole {
            assert_eq!(
                reply.status,
                404,
                "pixel ({c}, {r}) has no data: {}",
                String::from_utf8_lossy(&reply.body)
            );
            holes += 1;
        } else if deep_in_data {
            assert_eq!(reply.status, 200, "pixel ({c}, {r})");
            let h = reply.json()["height"].as_f64().expect("height");
            assert!((value - height(c, r)).abs() < 1e-3, "GDAL reads what was written");
            // A plane is exact up to the projection's bending of straight lines over 10 m.
            assert!((h - value).abs() < 0.05, "pixel ({c}, {r}): {h} vs {value}");
            answered += 1;
        }
    }
    assert!(answered > 40 && holes >= 4, "{answered} answered, {holes} holes");

    // Broken files fail with their name, and the served terrain stays.
    let version = get_json(&format!("{}/api/layers", server.url))[0]["version"].clone();
    let truncated = dir.join("truncated.tif");
    std::fs::write(&truncated, &std::fs::read(data("dem/lyon_dem.tif")).expect("dem")[..2000])
        .expect("write");
    let garbage = dir.join("garbage.tif");
    std::fs::write(&garbage, b"II*\0 this is not a tiff at all").expect("write");
    for bad in [&truncated, &garbage] {
        let o = ingest(&store, "ground", &[], &[bad]);
        let name = bad.file_name().expect("name").to_string_lossy().into_owned();
        assert!(!o.ok && o.stderr.contains(&name), "{name}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
    let wrong = ingest(&store, "ground", &["--src-crs", "EPSG:4326"], &[&asc]);
    assert!(!wrong.ok && wrong.stderr.contains("not on the Earth"), "{}", wrong.stderr);
    assert_eq!(get_json(&format!("{}/api/layers", server.url))[0]["version"], version);
}

#[test]
fn buildings_ingested_on_the_terrain_stand_on_it_however_far_from_the_layer_centre() {
    let store = lyon_on_terrain("terrain-buildings");
    let server = Server::start(&store);
    let items = get_json(&format!("{}/collections/buildings/items?limit=100", server.url));
    let items: Vec<&Value> = items["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter(|f| f["geometry"]["type"] == "Polygon")
        .collect();
    assert_eq!(items.len(), 30);
    let m = root_transform(&store.join("buildings"));
    let files: Vec<PathBuf> = std::fs::read_dir(store.join("buildings/3dtiles/content"))
        .expect("content")
        .map(|e| e.expect("entry").path())
        .collect();
    // Each building's lowest drawn vertex, in metres above the ellipsoid, by fid.
    let mut floors: HashMap<u64, f64> = HashMap::new();
    for (file, decoded) in files.iter().zip(decode_meshes(&files)) {
        let fids = glb_fids(&std::fs::read(file).expect("glb"));
        for p in decoded["primitives"].as_array().expect("primitives") {
            let pos: Vec<f64> =
                p["positions"].as_array().expect("p").iter().map(|v| v.as_f64().expect("f")).collect();
            let rows: Vec<u64> =
                p["feature_ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("u")).collect();
            for (k, g) in pos.chunks(3).enumerate() {
                let [_, _, h] = gltf_to_geodetic(&m, g);
                let floor = floors.entry(fids[rows[k] as usize]).or_insert(f64::INFINITY);
                *floor = floor.min(h);
            }
        }
    }
    let mut slopes = Vec::new();
    for item in items {
        let fid = item["id"].as_u64().expect("fid");
        let ring = item["geometry"]["coordinates"][0].as_array().expect("ring");
        let ground: Vec<f64> = ring[..4]
            .iter()
            .map(|c| {
                let reply = get_json(&format!("{}/api/elevation?lon={}&lat={}", server.url, c[0], c[1]));
                reply["height"].as_f64().expect("height")
            })
            .collect();
        let lowest = ground.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = ground.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let base = item["properties"]["base_height"].as_f64().expect("base_height");
        assert!((base - lowest).abs() < 0.002, "fid {fid}: base {base} vs lowest ground {lowest}");
        let floor = floors[&fid];
        // Drawn where the API says, to the centimetre: no floating, no sinking
        // beyond the slope under the footprint.
        assert!(
            (floor - lowest).abs() < 0.02,
            "fid {fid}: floor drawn at {floor}, ground {lowest}..{highest}"
        );
        slopes.push(highest - lowest);
    }
    let steepest = slopes.iter().copied().fold(0.0, f64::max);
    println!("30 buildings on the ground; the steepest footprint spans {steepest:.1} m of height");
    assert!(steepest > 3.0, "some blocks stand on the hillside ({steepest} m)");
    let quality: Value =
        serde_json::from_slice(&std::fs::read(store.join("buildings/quality.json")).expect("quality"))
            .expect("json");
    assert!(quality["repaired"].get("building partly or wholly off the ground layer").is_none(), "{quality}");
    // Clients that drape on the ground fetch the same meshes whole.
    let surface = get(&format!("{}/api/terrain/ground/surface", server.url), &[]);
    assert_eq!(surface.status, 200);
    assert_eq!(surface.body, std::fs::read(store.join("ground/terrain_surface.bin")).expect("surface"));
    let etag = surface.header("etag").expect("etag").to_owned();
    assert_eq!(
        get(&format!("{}/api/terrain/ground/surface", server.url), &[("if-none-match", &etag)]).status,
        304
    );
    assert_eq!(get(&format!("{}/api/terrain/buildings/surface", server.url), &[]).status, 404);
    assert_eq!(get(&format!("{}/api/terrain/..%2Fetc/surface", server.url), &[]).status, 404);
    // Asking for ground that is not a terrain layer is refused by name.
    let o = ingest(&store, "more", &["--ground", "buildings"], &[&store.join("lyon_blocks.geojson")]);
    assert!(!o.ok && o.stderr.contains("--ground must name a terrain layer"), "{}", o.stderr);
}

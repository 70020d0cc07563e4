//! The main job end to end on real data: ingest with the real binary, serve over
//! HTTP, and check the output with decoders nobody here wrote.

use std::collections::HashSet;
use std::sync::OnceLock;

use cim_e2e::*;
use serde_json::Value;

/// Helsinki (OSM PBF), countries (FlatGeobuf) and Manhattan roads (GeoJSON), ingested
/// once for the read-only tests of this file.
fn city_store() -> &'static TempDir {
    static STORE: OnceLock<TempDir> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = temp_dir("city");
        ingest_ok(&store, "helsinki", &[], &[&data("osm/Helsinki.osm.pbf")]);
        ingest_ok(&store, "countries", &["--max-zoom", "5"], &[&data("fgb/countries.fgb")]);
        ingest_ok(&store, "roads", &["--max-zoom", "15"], &[&data("geojson/tiger_roads.geojson")]);
        store
    })
}

fn all_items(server: &Server, layer: &str, limit: usize) -> (Vec<Value>, u64) {
    let mut url = format!("{}/collections/{layer}/items?limit={limit}", server.url);
    let mut features = Vec::new();
    let mut matched = 0;
    loop {
        let page = get_json(&url);
        matched = page["numberMatched"].as_u64().unwrap_or(matched);
        let batch = page["features"].as_array().expect("features").clone();
        assert_eq!(page["numberReturned"].as_u64(), Some(batch.len() as u64));
        features.extend(batch);
        match page["links"].as_array().expect("links").iter().find(|l| l["rel"] == "next") {
            Some(next) => url = next["href"].as_str().expect("href").to_owned(),
            None => break,
        }
    }
    (features, matched)
}

#[test]
fn ogc_api_paging_returns_every_feature_exactly_once() {
    let server = Server::start(city_store());
    for (layer, expected) in [("countries", 179u64), ("roads", 8333)] {
        let (features, matched) = all_items(&server, layer, 1000);
        let ids: HashSet<u64> = features.iter().map(|f| f["id"].as_u64().expect("numeric id")).collect();
        assert_eq!(matched, expected, "{layer}");
        assert_eq!(features.len() as u64, expected, "{layer}: every feature once");
        assert_eq!(ids.len() as u64, expected, "{layer}: no repeats");
    }
    // A bbox query pages the same way and stays inside the box.
    let page = get_json(&format!("{}/collections/countries/items?bbox=20,55,32,71&limit=100", server.url));
    let names: Vec<&str> = page["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f["properties"]["name"].as_str())
        .collect();
    assert!(names.contains(&"Finland") && names.contains(&"Estonia"), "{names:?}");
    assert!(!names.contains(&"Brazil"));
}

#[test]
fn helsinki_tiles_decode_with_mapbox_vector_tile_at_the_source_coordinates() {
    let server = Server::start(city_store());
    let tilejson = get_json(&format!("{}/tiles/helsinki.json", server.url));
    assert_eq!(tilejson["tilejson"], "3.0.0");
    let template = tilejson["tiles"][0].as_str().expect("tile URL template").to_owned();
    // A building from the feature API, and the z15 tile holding its first vertex.
    let (features, _) = all_items(&server, "helsinki", 5000);
    let building = features
        .iter()
        .find(|f| f["properties"]["building"].is_string() && f["geometry"]["type"] == "MultiPolygon")
        .expect("a building");
    let ring = building["geometry"]["coordinates"][0][0].as_array().expect("ring");
    let (lon, lat) = (ring[0][0].as_f64().expect("lon"), ring[0][1].as_f64().expect("lat"));
    let z = 15;
    let (x, y) = tile_of(lon, lat, z);
    let url =
        template.replace("{z}", &z.to_string()).replace("{x}", &x.to_string()).replace("{y}", &y.to_string());
    let reply = get(&url, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/vnd.mapbox-vector-tile"));
    assert_eq!(reply.header("content-encoding"), None, "no gzip unless asked for");
    let scratch = temp_dir("mvt");
    let file = scratch.join("tile.mvt");
    std::fs::write(&file, &reply.body).expect("write tile");
    let decoded = oracle(
        "decode_mvt.mjs",
        &[file.to_str().expect("path"), &z.to_string(), &x.to_string(), &y.to_string()],
    );
    let layer = &decoded["helsinki"];
    assert_eq!(layer["version"], 2);
    assert_eq!(layer["extent"], 4096);
    let id = building["id"].as_u64().expect("id");
    let found = layer["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["id"].as_u64() == Some(id))
        .expect("building in its tile, same id");
    assert_eq!(found["type"], 3, "polygon");
    assert_eq!(found["properties"]["building"], building["properties"]["building"]);
    // Decoded vertices sit within one tile pixel (4096 per tile) of the source vertex.
    let pixel_deg = 360.0 / f64::from(1u32 << z) / 4096.0;
    let coords = found["geojson"]["coordinates"].to_string();
    let numbers: Vec<f64> = coords
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|s| s.parse().ok())
        .collect();
    let nearest = numbers
        .chunks_exact(2)
        .map(|p| ((p[0] - lon) / pixel_deg).hypot((p[1] - lat) / (pixel_deg * 0.5)))
        .fold(f64::MAX, f64::min);
    assert!(nearest < 1.5, "closest decoded vertex is {nearest:.2} px away");
}

#[test]
fn roads_keep_every_line_at_full_zoom_and_tiles_clip_to_their_buffer() {
    let server = Server::start(city_store());
    let (features, _) = all_items(&server, "roads", 10_000);
    let road = &features[features.len() / 2];
    let c = &road["geometry"]["coordinates"][0];
    let (lon, lat) = (c[0].as_f64().expect("lon"), c[1].as_f64().expect("lat"));
    let (x, y) = tile_of(lon, lat, 15);
    let reply = get(&format!("{}/tiles/roads/15/{x}/{y}.mvt", server.url), &[("Accept-Encoding", "gzip")]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&reply.body[..]), &mut raw).expect("gunzip");
    let scratch = temp_dir("roads");
    let file = scratch.join("t.mvt");
    std::fs::write(&file, &raw).expect("write");
    let decoded =
        oracle("decode_mvt.mjs", &[file.to_str().expect("path"), "15", &x.to_string(), &y.to_string()]);
    let feats = decoded["roads"]["features"].as_array().expect("features");
    assert!(feats.iter().any(|f| f["id"] == road["id"] && f["type"] == 2), "road {} in its tile", road["id"]);
    // Nothing strays beyond the 80/4096 buffer around the tile.
    let n = f64::from(1u32 << 15);
    let (w, e) = (f64::from(x) / n * 360.0 - 180.0, f64::from(x + 1) / n * 360.0 - 180.0);
    let margin = (e - w) * 81.0 / 4096.0;
    for f in feats {
        let text = f["geojson"]["coordinates"].to_string();
        let nums: Vec<f64> = text
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|s| s.parse().ok())
            .collect();
        for p in nums.chunks_exact(2) {
            assert!(p[0] >= w - margin && p[0] <= e + margin, "lon {} outside tile+buffer", p[0]);
        }
    }
}

#[test]
fn pmtiles_archive_is_read_by_the_reference_pmtiles_library() {
    let store = city_store();
    let archive = store.join("helsinki/tiles.pmtiles");
    let (x, y) = tile_of(24.9445, 60.1716, 14);
    let out =
        oracle("read_pmtiles.mjs", &[archive.to_str().expect("path"), "14", &x.to_string(), &y.to_string()]);
    assert_eq!(out["header"]["specVersion"], 3);
    assert_eq!(out["header"]["tileType"], 1, "MVT");
    assert_eq!(out["header"]["maxZoom"], 16);
    assert_eq!(out["metadata"]["vector_layers"][0]["id"], "helsinki");
    let server = Server::start(store);
    let reply = get(&format!("{}/tiles/helsinki/14/{x}/{y}.mvt", server.url), &[]);
    assert_eq!(
        out["tileLength"].as_u64(),
        Some(reply.body.len() as u64),
        "same tile bytes through both readers"
    );
}

#[test]
fn building_glbs_pass_the_khronos_validator_and_the_tileset_is_honest() {
    let server = Server::start(city_store());
    let tileset = get_json(&format!("{}/3dtiles/helsinki/tileset.json", server.url));
    assert_eq!(tileset["asset"]["version"], "1.1");
    assert!(tileset["root"]["transform"].as_array().is_some_and(|m| m.len() == 16));
    let dir = temp_dir("glb");
    let mut files = Vec::new();
    let mut buildings = 0u64;
    fn walk(tile: &Value, parent_error: f64, out: &mut Vec<(String, f64, usize)>) {
        let error = tile["geometricError"].as_f64().expect("geometricError");
        assert!(error <= parent_error, "child error {error} above parent {parent_error}");
        let children = tile["children"].as_array().map_or(0, Vec::len);
        if children == 0 {
            assert_eq!(error, 0.0, "leaves are exact");
        }
        out.push((tile["content"]["uri"].as_str().expect("uri").to_owned(), error, children));
        for c in tile["children"].as_array().into_iter().flatten() {
            walk(c, error, out);
        }
    }
    let mut tiles = Vec::new();
    walk(&tileset["root"], tileset["geometricError"].as_f64().expect("error"), &mut tiles);
    assert!(tiles.len() > 1, "Helsinki's buildings need more than one tile");
    for (i, (uri, _, _)) in tiles.iter().enumerate() {
        let reply = get(&format!("{}/3dtiles/helsinki/{uri}", server.url), &[]);
        assert_eq!(reply.status, 200, "{uri}");
        assert_eq!(reply.header("content-type"), Some("model/gltf-binary"));
        let path = dir.join(format!("{i}.glb"));
        std::fs::write(&path, &reply.body).expect("write");
        files.push(path.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    for report in oracle("validate_glb.mjs", &args).as_array().expect("reports") {
        assert_eq!(report["errors"], 0, "gltf-validator: {report}");
    }
    // Every building is in exactly one tile's property table: count the fids.
    for path in &files {
        let glb = std::fs::read(path).expect("read");
        let json = cim_core::glb::json_chunk(&glb).expect("json");
        let used = json["extensionsUsed"].to_string();
        assert!(used.contains("EXT_mesh_features") && used.contains("EXT_structural_metadata"), "{used}");
        buildings += json["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"]
            .as_u64()
            .expect("count");
    }
    // A click traces back: every fid in a property table is a feature of the OGC API.
    let glb = std::fs::read(&files[0]).expect("read");
    for fid in glb_fids(&glb).iter().take(40) {
        let item = get(&format!("{}/collections/helsinki/items/{fid}", server.url), &[]);
        assert_eq!(item.status, 200, "fid {fid} from the GLB is not a feature");
        assert!(item.json()["properties"]["building"].is_string(), "fid {fid} is a building");
    }
    let catalogue = get_json(&format!("{}/api/layers", server.url));
    let helsinki =
        catalogue.as_array().expect("layers").iter().find(|l| l["id"] == "helsinki").expect("helsinki");
    assert_eq!(Some(buildings), helsinki["building_count"].as_u64());
}

#[test]
fn cesiums_3d_tiles_validator_finds_no_error_in_the_served_buildings() {
    let server = Server::start(city_store());
    let (report, files) = assert_served_tileset_valid(&server.url, "helsinki");
    let glbs = walk_files(&city_store().join("helsinki/3dtiles"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "glb"))
        .count();
    assert_eq!(files, glbs + 1, "the tileset and every building GLB were validated");
    println!("3d-tiles-validator: {files} files, {} warnings", report["numWarnings"]);
}

/// 6 000 buildings, twelve shifted copies of Helsinki's (about 6 km across), made in
/// `dir` as the city benchmark makes its cities (`scripts/bench_city.py`).
fn twelve_helsinkis(dir: &std::path::Path) -> std::path::PathBuf {
    let city = dir.join("city.geojsonl");
    let made = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/bench_city.py"))
        .args(["make", "6000"])
        .arg(data("osm/helsinki_buildings.geojson"))
        .arg(&city)
        .status()
        .expect("python3");
    assert!(made.success(), "bench_city.py make");
    city
}

#[test]
fn a_tileset_cut_into_external_tilesets_passes_the_validator_and_cesium_draws_it_as_whole_and_overviews_it_in_blocks()
 {
    // Twelve shifted copies of Helsinki's buildings (scripts/bench_city.py, as the
    // city benchmark makes them) under a 4 kB budget: cut as a 1 MB one cuts a city.
    let store = temp_dir("city-cut");
    let city = twelve_helsinkis(&store);
    ingest_ok(&store, "cut", &["--max-tileset-kb", "4", "--max-zoom", "14"], &[&city]);
    ingest_ok(&store, "whole", &["--max-zoom", "14"], &[&city]);
    let tileset_files = |layer: &str| -> Vec<u64> {
        walk_files(&store.join(layer).join("3dtiles"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| std::fs::metadata(p).expect("meta").len())
            .collect()
    };
    let (cut, whole) = (tileset_files("cut"), tileset_files("whole"));
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert!(whole[0] > 3 * 4000, "the whole tileset is {} bytes", whole[0]);
    assert!(cut.len() > 3, "{} tileset files", cut.len());
    assert!(cut.iter().all(|&len| len <= 4000), "every tileset JSON within 4 kB: {cut:?}");
    let server = Server::start(&store);
    let (_, files) = assert_served_tileset_valid(&server.url, "cut");
    assert_eq!(
        files,
        walk_files(&store.join("cut/3dtiles")).len(),
        "every tileset and GLB reached from the root"
    );
    // CesiumJS at full detail (screen-space error 1) from 1.2 radii, or as a viewer
    // sees the whole city (its default 16) from 3.
    let cesium = |layer: &str, sse: &str, range: &str| {
        let shot = std::env::temp_dir().join(format!("cim-e2e-cesium-{layer}-{sse}.png"));
        let seen = oracle(
            "cesium_check.mjs",
            &[
                &format!("{}/3dtiles/{layer}/tileset.json", server.url),
                shot.to_str().expect("path"),
                sse,
                range,
            ],
        );
        assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported on {layer}: {seen}");
        assert_eq!(seen["loaded"], true, "all tiles loaded: {seen}");
        seen
    };
    let drawn = cesium("cut", "1", "1.2")["features"].as_u64().expect("features");
    assert!(drawn > 3000, "CesiumJS drew {drawn} buildings of the cut tileset");
    assert_eq!(
        Some(drawn),
        cesium("whole", "1", "1.2")["features"].as_u64(),
        "the same buildings from the same view, cut or whole"
    );
    // About 6 km across: the whole city in view is drawn from the overview's blocks
    // (one per 100 m cell or more), which the buildings replace nearer.
    let overview = cesium("whole", "16", "3");
    assert_eq!(
        overview["picked"]["names"],
        serde_json::json!(["buildings", "height"]),
        "a block: {overview}"
    );
    assert!(overview["tiles"].as_u64() < Some(10), "a few overview tiles: {overview}");
}

#[test]
fn a_pick_inside_a_known_building_returns_that_building() {
    let server = Server::start(city_store());
    let (features, _) = all_items(&server, "helsinki", 5000);
    let mut checked = 0;
    for b in features.iter().filter(|f| f["properties"]["building"].is_string()).take(25) {
        let polygon = &b["geometry"]["coordinates"][0];
        let ring = polygon[0].as_array().expect("ring");
        let [x0, y0, x1, y1] = ring_bounds(ring);
        // A grid point inside the outer ring and outside every hole, found independently.
        let holes: Vec<&Vec<Value>> =
            polygon.as_array().expect("rings").iter().skip(1).filter_map(Value::as_array).collect();
        let inside = (1..20)
            .flat_map(|i| {
                (1..20).map(move |j| {
                    (x0 + (x1 - x0) * f64::from(i) / 20.0, y0 + (y1 - y0) * f64::from(j) / 20.0)
                })
            })
            .find(|&(x, y)| point_in_ring(ring, x, y) && !holes.iter().any(|h| point_in_ring(h, x, y)));
        let Some((lon, lat)) = inside else { continue };
        let hits = get_json(&format!("{}/api/pick?lon={lon}&lat={lat}&layer=helsinki", server.url));
        let ids: Vec<&Value> =
            hits["features"].as_array().expect("features").iter().map(|f| &f["id"]).collect();
        assert!(ids.contains(&&b["id"]), "pick at {lon},{lat} gave {ids:?}, wanted {}", b["id"]);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} buildings checked");
    // Across all layers, the same point also lies in Finland.
    let hits = get_json(&format!("{}/api/pick?lon=24.9445&lat=60.1716", server.url));
    assert!(
        hits["features"].as_array().expect("features").iter().any(|f| f["properties"]["name"] == "Finland")
    );
}

#[test]
fn ogrinfo_reads_the_server_as_oapif_and_counts_the_same_features() {
    let server = Server::start(city_store());
    let out = std::process::Command::new("ogrinfo")
        .args(["-ro", "-so", "-al", &format!("OAPIF:{}", server.url)])
        .output()
        .expect("ogrinfo (apt-get install gdal-bin)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", text, String::from_utf8_lossy(&out.stderr));
    for (layer, count) in [("countries", 179), ("roads", 8333)] {
        let section = text
            .split("Layer name: ")
            .find(|s| s.starts_with(layer))
            .unwrap_or_else(|| panic!("{layer} missing in:\n{text}"));
        assert!(section.contains(&format!("Feature Count: {count}")), "{layer}: {section}");
    }
    // And GDAL reads the features themselves, following our next links.
    let out = std::process::Command::new("ogrinfo")
        .args(["-ro", "-q", &format!("OAPIF:{}", server.url), "countries", "-where", "name = 'Finland'"])
        .output()
        .expect("ogrinfo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name (String) = Finland") && text.contains("MULTIPOLYGON"), "{text}");
}

#[test]
fn http_caching_compression_cors_and_errors_behave() {
    let server = Server::start(city_store());
    let url = format!("{}/tiles/countries/2/2/1.mvt", server.url);
    let first = get(&url, &[("Accept-Encoding", "gzip"), ("Origin", "http://example.org")]);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("access-control-allow-origin"), Some("*"));
    assert!(first.header("cache-control").is_some_and(|c| c.contains("max-age")));
    let etag = first.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong etag: {etag}");
    let again = get(&url, &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    // A client taking only brotli gets a brotli tile with a tag of its own (the
    // stored gzip tile re-encoded once, then kept), which debrotli's to the same
    // bytes as the gzip one gunzips to; its tag never revalidates another coding.
    let br = get(&url, &[("Accept-Encoding", "br")]);
    assert_eq!((br.status, br.header("content-encoding")), (200, Some("br")));
    let br_tag = br.header("etag").expect("etag").to_owned();
    assert!(br_tag.ends_with("-br\"") && br_tag != etag, "{br_tag} vs {etag}");
    let unbrotli = |bytes: &[u8]| {
        let dir = temp_dir("br");
        std::fs::write(dir.join("t.br"), bytes).expect("write");
        let out = std::process::Command::new("brotli")
            .args(["-d", "-c"])
            .arg(dir.join("t.br"))
            .output()
            .expect("brotli");
        assert!(out.status.success());
        out.stdout
    };
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&first.body[..]), &mut plain)
        .expect("gunzip");
    assert_eq!(unbrotli(&br.body), plain);
    assert_eq!(get(&url, &[("Accept-Encoding", "br"), ("If-None-Match", &br_tag)]).status, 304);
    let crossed = get(&url, &[("If-None-Match", &br_tag)]);
    assert_eq!((crossed.status, crossed.body.len()), (200, plain.len()), "no 304 into a refused coding");
    assert_eq!(crossed.header("etag").expect("etag"), etag.trim_end_matches("-gzip\"").to_owned() + "\"");
    // The same for a body the compression layer encodes (a JSON page).
    let page = format!("{}/collections/roads/items?limit=3", server.url);
    let br_page = get(&page, &[("Accept-Encoding", "br")]);
    assert_eq!(br_page.header("content-encoding"), Some("br"));
    let page_tag = br_page.header("etag").expect("etag").to_owned();
    assert!(page_tag.ends_with("-br\""), "{page_tag}");
    assert_eq!(get(&page, &[("Accept-Encoding", "br"), ("If-None-Match", &page_tag)]).status, 304);
    assert_eq!(get(&page, &[("If-None-Match", &page_tag)]).status, 200);
    // JSON responses are compressed when asked for.
    let listing =
        get(&format!("{}/collections/roads/items?limit=500", server.url), &[("Accept-Encoding", "br")]);
    assert_eq!(listing.header("content-encoding"), Some("br"));
    // Errors: JSON bodies with the right status.
    for (path, status) in [
        ("/tiles/nosuch/1/0/0.mvt", 404),
        ("/tiles/countries/30/0/0.mvt", 404),
        ("/tiles/countries/2/9/9.mvt", 404),
        ("/tiles/countries/a/b/c.mvt", 400),
        ("/collections/countries/items?limit=-3", 400),
        ("/collections/countries/items?limit=100000", 400),
        ("/collections/countries/items?bbox=10,10,5,5", 400),
        ("/collections/countries/items/999999", 404),
        ("/api/pick?lon=500&lat=0", 400),
        ("/api/pick?lon=abc", 400),
        ("/api/query?bbox=1,2,3", 400),
        ("/3dtiles/helsinki/..%2F..%2Fcatalogue.json", 400),
        ("/collections/..%2Fetc", 404),
    ] {
        let r = get(&format!("{}{path}", server.url), &[]);
        assert_eq!(r.status, status, "{path}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["description"].is_string(), "{path}: JSON error body");
    }
    // Inside the grid but empty: no content.
    assert_eq!(get(&format!("{}/tiles/helsinki/16/0/0.mvt", server.url), &[]).status, 204);
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).status, 200);
}

#[test]
fn cesiumjs_loads_every_building_tile_and_picks_a_feature_back_to_the_feature_api() {
    let server = Server::start(city_store());
    let shot = std::env::temp_dir().join("cim-e2e-cesium-helsinki.png");
    let seen = oracle(
        "cesium_check.mjs",
        &[&format!("{}/3dtiles/helsinki/tileset.json", server.url), shot.to_str().expect("path")],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported: {seen}");
    assert_eq!(seen["loaded"], true, "all tiles loaded: {seen}");
    let catalogue = get_json(&format!("{}/api/layers", server.url));
    let helsinki =
        catalogue.as_array().expect("layers").iter().find(|l| l["id"] == "helsinki").expect("layer");
    assert_eq!(seen["features"], helsinki["building_count"], "CesiumJS counts every building once");
    let fid = seen["picked"]["fid"].as_str().expect("CesiumJS picked a building at the screen centre");
    let item = get(&format!("{}/collections/helsinki/items/{fid}", server.url), &[]);
    assert_eq!(item.status, 200, "picked fid {fid} resolves in the feature API");
    // The screenshot stays for a person to look at.
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "screenshot at {}", shot.display());
}

#[test]
fn maplibre_renders_the_tilejson_layer_and_its_feature_ids_resolve() {
    let server = Server::start(city_store());
    let shot = std::env::temp_dir().join("cim-e2e-maplibre-helsinki.png");
    let seen = oracle(
        "maplibre_check.mjs",
        &[
            &format!("{}/tiles/helsinki.json", server.url),
            "helsinki",
            "24.9445",
            "60.1716",
            "15.5",
            shot.to_str().expect("path"),
        ],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "MapLibre reported: {seen}");
    assert_eq!(seen["maxzoom"], 16, "TileJSON maxzoom honoured");
    let types = seen["types"].to_string();
    assert!(types.contains("Polygon") && types.contains("LineString"), "{types}");
    let ids = seen["ids"].as_array().expect("ids");
    assert!(ids.len() > 500, "a city centre at z15.5 shows hundreds of features, got {}", ids.len());
    for id in ids.iter().step_by(ids.len() / 25) {
        let r = get(&format!("{}/collections/helsinki/items/{id}", server.url), &[]);
        assert_eq!(r.status, 200, "rendered feature id {id} resolves in the feature API");
    }
}

/// Web Mercator metres of a longitude/latitude (EPSG:3857, written out here).
fn mercator(lon: f64, lat: f64) -> [f64; 2] {
    const R: f64 = 6_378_137.0;
    [R * lon.to_radians(), R * (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0).tan().ln()]
}

/// A line feature in Web Mercator metres.
struct LineFacts {
    length: f64,
    /// Of its box.
    centre: [f64; 2],
    first: [f64; 2],
    /// Its box's width and height.
    extent: [f64; 2],
}

fn line_facts(geometry: &Value) -> LineFacts {
    let parts: Vec<&Value> = match geometry["type"].as_str() {
        Some("LineString") => vec![&geometry["coordinates"]],
        Some("MultiLineString") => geometry["coordinates"].as_array().expect("parts").iter().collect(),
        other => panic!("a road is a line, got {other:?}"),
    };
    let (mut length, mut lo, mut hi) = (0.0, [f64::MAX; 2], [f64::MIN; 2]);
    let mut first = None;
    for part in parts {
        let pts: Vec<[f64; 2]> = part
            .as_array()
            .expect("line")
            .iter()
            .map(|c| mercator(c[0].as_f64().expect("lon"), c[1].as_f64().expect("lat")))
            .collect();
        first.get_or_insert(pts[0]);
        for w in pts.windows(2) {
            length += (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
        }
        for p in &pts {
            lo = [lo[0].min(p[0]), lo[1].min(p[1])];
            hi = [hi[0].max(p[0]), hi[1].max(p[1])];
        }
    }
    LineFacts {
        length,
        centre: [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0],
        first: first.expect("a vertex"),
        extent: [hi[0] - lo[0], hi[1] - lo[1]],
    }
}

#[test]
fn vector_tiles_keep_to_their_budget_keep_their_largest_features_and_count_what_they_leave_out() {
    let store = temp_dir("budget");
    let (max_bytes, max_features) = (5_000u64, 400u64);
    let stdout = ingest_ok(
        &store,
        "roads",
        &["--max-zoom", "14", "--max-tile-kb", "5", "--max-tile-features", "400"],
        &[&data("geojson/tiger_roads.geojson")],
    );
    assert!(stdout.contains("kept their largest features; left out by zoom"), "{stdout}");
    let quality: Value =
        serde_json::from_slice(&std::fs::read(store.join("roads/quality.json")).expect("quality"))
            .expect("json");
    let tiling = &quality["tiling"];
    assert_eq!(
        (tiling["max_tile_bytes"].as_u64(), tiling["max_tile_features"].as_u64()),
        (Some(max_bytes), Some(max_features))
    );
    let server = Server::start(&store);
    let tilejson = get_json(&format!("{}/tiles/roads.json", server.url));
    // Roads shorter than a pixel stay as one-pixel marks, so every zoom from 0 has tiles
    // and TileJSON's minzoom is true.
    assert_eq!((tilejson["minzoom"].as_u64(), tilejson["maxzoom"].as_u64()), (Some(0), Some(14)));
    assert_eq!((tiling["min_zoom"].as_u64(), tiling["max_zoom"].as_u64()), (Some(0), Some(14)));
    let b: Vec<f64> =
        tilejson["bounds"].as_array().expect("bounds").iter().map(|v| v.as_f64().expect("deg")).collect();
    let (features, _) = all_items(&server, "roads", 1000);
    let facts: std::collections::HashMap<u64, LineFacts> =
        features.iter().map(|f| (f["id"].as_u64().expect("id"), line_facts(&f["geometry"]))).collect();
    let scratch = temp_dir("budget-tiles");
    let mut zooms_with_drops = 0;
    for z in 0..=15u32 {
        let (x0, y0) = tile_of(b[0], b[3], z);
        let (x1, y1) = tile_of(b[2], b[1], z);
        if z == 15 {
            let r = get(&format!("{}/tiles/roads/15/{x0}/{y0}.mvt", server.url), &[]);
            assert_eq!(r.status, 404, "past the layer's zooms");
            continue;
        }
        // A tile beside the bounds may hold a feature's buffered edge only.
        let last = (1u32 << z) - 1;
        let (x0, y0, x1, y1) =
            (x0.saturating_sub(1), y0.saturating_sub(1), (x1 + 1).min(last), (y1 + 1).min(last));
        let size = 2.0 * std::f64::consts::PI * 6_378_137.0 / f64::from(1u32 << z);
        let unit = size / 4096.0;
        let zq = &tiling["zooms"][z.to_string()];
        let (mut tiles, mut largest, mut most) = (0u64, 0u64, 0u64);
        let (mut surely_dropped, mut maybe_dropped) = (0u64, 0u64);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let url = format!("{}/tiles/roads/{z}/{x}/{y}.mvt", server.url);
                let gz = get(&url, &[("accept-encoding", "gzip")]);
                if gz.status == 204 {
                    assert!(
                        gz.header("etag").is_some() && gz.header("cache-control").is_some(),
                        "{url}: a cacheable 204"
                    );
                    continue;
                }
                assert_eq!(gz.status, 200, "{url}");
                assert!(gz.body.len() as u64 <= max_bytes, "{url}: {} bytes compressed", gz.body.len());
                tiles += 1;
                largest = largest.max(gz.body.len() as u64);
                let file = scratch.join("t.mvt");
                std::fs::write(&file, &get(&url, &[]).body).expect("write");
                let decoded = oracle(
                    "decode_mvt.mjs",
                    &[file.to_str().expect("path"), &z.to_string(), &x.to_string(), &y.to_string()],
                );
                let ids: HashSet<u64> = decoded["roads"]["features"]
                    .as_array()
                    .expect("features")
                    .iter()
                    .map(|f| f["id"].as_u64().expect("id"))
                    .collect();
                most = most.max(ids.len() as u64);
                assert!(ids.len() as u64 <= max_features, "{url}: {} features", ids.len());
                if zq["features_dropped"].as_u64().unwrap_or(0) == 0 || z < 12 {
                    continue;
                }
                // Whose own tile this is (box centre inside), what it kept and what it left out.
                let half = std::f64::consts::PI * 6_378_137.0;
                let (min_x, max_y) = (-half + f64::from(x) * size, half - f64::from(y) * size);
                let inside = |p: [f64; 2]| {
                    p[0] >= min_x && p[0] < min_x + size && p[1] <= max_y && p[1] > max_y - size
                };
                let (mut kept, mut left): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
                for (id, f) in &facts {
                    if !inside(f.centre) {
                        continue;
                    }
                    if ids.contains(id) {
                        kept.push(f.length);
                    } else {
                        maybe_dropped += 1;
                        // Surely placed in this tile, had it been kept: it starts here
                        // and is more than a pixel long.
                        if inside(f.first) && f.extent[0].max(f.extent[1]) > 2.0 * unit {
                            surely_dropped += 1;
                            left.push(f.length);
                        }
                    }
                }
                if let (Some(shortest_kept), Some(longest_left)) =
                    (kept.iter().copied().reduce(f64::min), left.iter().copied().reduce(f64::max))
                {
                    assert!(
                        shortest_kept >= longest_left * 0.99,
                        "{url}: kept a {shortest_kept:.1} m road but left out a {longest_left:.1} m one"
                    );
                }
            }
        }
        assert_eq!(zq["tiles"].as_u64(), Some(tiles), "z{z}: tiles written and served");
        assert_eq!(zq["largest_tile_bytes"].as_u64(), Some(largest), "z{z}");
        assert_eq!(zq["most_features"].as_u64(), Some(most), "z{z}");
        let dropped = zq["features_dropped"].as_u64().expect("count");
        if dropped > 0 {
            zooms_with_drops += 1;
            assert!(zq["tiles_over_budget"].as_u64().expect("count") > 0, "z{z}");
            if z >= 12 {
                assert!(
                    (surely_dropped..=maybe_dropped).contains(&dropped),
                    "z{z}: quality counts {dropped} left out, the tiles show {surely_dropped}..{maybe_dropped}"
                );
            }
        }
    }
    assert!(zooms_with_drops >= 3, "a 5 kB budget thins several zooms of Manhattan's roads: {tiling}");
    // Both limits bite: some tiles stop at 400 features, others at 5 kB with fewer.
    let zooms = tiling["zooms"].as_object().expect("zooms");
    let capped = |z: &Value| z["tiles_over_budget"].as_u64() > Some(0);
    assert!(zooms.values().any(|z| capped(z) && z["most_features"] == max_features), "{tiling}");
    assert!(
        zooms.values().any(|z| capped(z) && z["most_features"].as_u64() < Some(max_features)),
        "{tiling}"
    );
    // MapLibre draws the thinned z9 tile without complaint.
    let shot = std::env::temp_dir().join("cim-e2e-maplibre-budget.png");
    let seen = oracle(
        "maplibre_check.mjs",
        &[
            &format!("{}/tiles/roads.json", server.url),
            "roads",
            &((b[0] + b[2]) / 2.0).to_string(),
            &((b[1] + b[3]) / 2.0).to_string(),
            "9",
            shot.to_str().expect("path"),
        ],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "MapLibre reported: {seen}");
    assert!(seen["distinct"].as_u64().unwrap_or(0) > 50, "z9 shows the road network: {seen}");
}

#[test]
fn maplibre_draws_a_city_z9_tile_thinned_to_its_budget() {
    // Twelve copies of Helsinki's buildings: their one z9 tile holds 5 300 features and
    // 62 kB; a 20 kB / 2 000-feature budget thins it as 500 kB / 200 000 thins a city's.
    let store = temp_dir("city-z9");
    let city = twelve_helsinkis(&store);
    ingest_ok(
        &store,
        "city",
        &["--max-zoom", "10", "--max-tile-kb", "20", "--max-tile-features", "2000"],
        &[&city],
    );
    let quality: Value =
        serde_json::from_slice(&std::fs::read(store.join("city/quality.json")).expect("quality"))
            .expect("json");
    let z9 = &quality["tiling"]["zooms"]["9"];
    assert!(z9["features_dropped"].as_u64() > Some(1000), "the z9 tile was thinned: {z9}");
    assert!(
        z9["largest_tile_bytes"].as_u64() <= Some(20_000) && z9["most_features"].as_u64() <= Some(2000),
        "{z9}"
    );
    let server = Server::start(&store);
    let tilejson = get_json(&format!("{}/tiles/city.json", server.url));
    let b: Vec<f64> =
        tilejson["bounds"].as_array().expect("bounds").iter().map(|v| v.as_f64().expect("deg")).collect();
    let (lon, lat) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let (x, y) = tile_of(lon, lat, 9);
    let gz = get(&format!("{}/tiles/city/9/{x}/{y}.mvt", server.url), &[("accept-encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert!(gz.body.len() <= 20_000, "{} bytes", gz.body.len());
    let shot = std::env::temp_dir().join("cim-e2e-maplibre-city-z9.png");
    let seen = oracle(
        "maplibre_check.mjs",
        &[
            &format!("{}/tiles/city.json", server.url),
            "city",
            &lon.to_string(),
            &lat.to_string(),
            "9",
            shot.to_str().expect("path"),
        ],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "MapLibre reported: {seen}");
    let distinct = seen["distinct"].as_u64().unwrap_or(0);
    assert!((200..=2000).contains(&distinct), "MapLibre drew {distinct} of the tile's buildings: {seen}");
}

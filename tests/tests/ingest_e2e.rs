//! Every sample format in, bad input refused with a reason, and the served layer
//! untouched by a failed ingest.

use cim_e2e::*;
use serde_json::Value;

#[test]
fn every_vector_format_ingests_with_the_expected_feature_counts() {
    let store = temp_dir("formats");
    for (layer, file, count) in [
        ("c_fgb", "fgb/countries.fgb", 179),
        ("c_geojson", "geojson/countries.geojson", 179),
        ("c_shp", "shapefile/countries.shp", 179),
        ("h_gpkg", "osm/helsinki_buildings.gpkg", 482),
        ("h_geojson", "osm/helsinki_buildings.geojson", 482),
        ("h_fgb", "osm/helsinki_buildings.fgb", 482),
        ("states", "geojson/states.geojson", 49),
        ("mixed", "fgb/heterogeneous.fgb", 0),
    ] {
        // heterogeneous.fgb declares no CRS; its coordinates are lon/lat.
        let args: &[&str] = if layer == "mixed" {
            &["--max-zoom", "4", "--src-crs", "EPSG:4326"]
        } else {
            &["--max-zoom", "4"]
        };
        let o = ingest(&store, layer, args, &[&data(file)]);
        assert!(o.ok, "{file}: {}", o.stderr);
        if count > 0 {
            assert!(o.stdout.contains(&format!(": {count} features")), "{file}: {}", o.stdout);
        }
        let catalogue: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.join(layer).join("catalogue.json")).expect("catalogue"),
        )
        .expect("json");
        assert_eq!(catalogue["sources"][0]["sha256"].as_str().map(str::len), Some(64), "lineage checksum");
    }
}

#[test]
fn helsinki_dirt_is_repaired_or_dropped_and_counted() {
    let store = temp_dir("dirt");
    let out = ingest_ok(&store, "h", &["--max-zoom", "14"], &[&data("osm/helsinki_buildings.geojson")]);
    let q: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("h/quality.json")).expect("quality")).expect("json");
    assert_eq!(q["features_read"], 494);
    assert_eq!(q["features_written"], 482);
    // 12 features whose only ring has under 4 points (counted independently with a
    // few lines of Python over the GeoJSON); dropped, and counted once.
    assert_eq!(q["dropped"]["ring with fewer than 4 points"], 12);
    assert!(q["repaired"].get("degenerate part removed").is_none(), "{q}");
    assert!(q["repaired"]["self-intersection resolved"].as_u64().unwrap_or(0) > 0);
    // 175 of 494 carry a height; of the 482 kept, the rest default to 10 m.
    assert_eq!(q["missing_heights"], 316);
    assert!(out.lines().next().is_some_and(|l| l.starts_with("quality h: read 494")), "{out}");
}

#[test]
fn bad_input_fails_with_a_reason_and_the_previous_layer_stays_served() {
    let store = temp_dir("bad");
    let dir = temp_dir("bad-files");
    ingest_ok(&store, "layer", &["--max-zoom", "4"], &[&data("fgb/countries.fgb")]);
    let version = |s: &std::path::Path| {
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.join("layer/catalogue.json")).expect("catalogue"))
                .expect("json");
        c["version"].as_str().expect("version").to_owned()
    };
    let before = version(&store);
    let server = Server::start(&store);

    let truncate = |src: &str, name: &str, keep: f64| {
        let bytes = std::fs::read(data(src)).expect("read");
        let path = dir.join(name);
        std::fs::write(&path, &bytes[..(bytes.len() as f64 * keep) as usize]).expect("write");
        path
    };
    let garbage = dir.join("garbage.geojson");
    std::fs::write(&garbage, b"{\"type\": \"FeatureCollection\", \"features\": [ {\"type\": \"Fea")
        .expect("write");
    let noise = dir.join("noise.gpkg");
    std::fs::write(&noise, vec![0x5a; 4096]).expect("write");
    let shp_no_prj = dir.join("nocrs.shp");
    for ext in ["shp", "shx", "dbf"] {
        std::fs::copy(data(&format!("shapefile/countries.{ext}")), dir.join(format!("nocrs.{ext}")))
            .expect("copy");
    }
    let cases: Vec<(std::path::PathBuf, Vec<&str>, &str)> = vec![
        (truncate("fgb/countries.fgb", "cut.fgb", 0.5), vec![], "cut.fgb"),
        (truncate("osm/Helsinki.osm.pbf", "cut.osm.pbf", 0.3), vec![], "cut.osm.pbf"),
        (truncate("shapefile/countries.shp", "cut.shp", 0.4), vec![], ""),
        (data("fgb/topp_states.fgb"), vec![], "FlatGeobuf version 2 is not supported"),
        (garbage.clone(), vec![], "garbage.geojson"),
        (noise.clone(), vec![], "noise.gpkg"),
        (shp_no_prj.clone(), vec![], "no CRS"),
        (data("fgb/countries.fgb"), vec!["--src-crs", "EPSG:999999"], "EPSG:999999"),
        (
            data("fgb/countries.fgb"),
            vec!["--memory-mb", "16"],
            "--memory-mb 16: too small to run in; at least 512 MB",
        ),
        (data("fgb/countries.fgb"), vec!["--src-crs", "EPSG:32650"], "outside the area of use of EPSG:32650"),
        // A real file whose coordinates do not fit its declared British National Grid.
        (data("fgb/poly00.fgb"), vec![], "outside the area of use of EPSG:27700"),
        (dir.join("missing.geojson"), vec![], "missing.geojson"),
        (dir.join("x.unknownformat"), vec![], "no importer"),
    ];
    std::fs::write(dir.join("x.unknownformat"), b"hello").expect("write");
    let _ = std::fs::remove_file(dir.join("cut.prj"));
    for (file, args, reason) in &cases {
        let mut all: Vec<&str> = args.clone();
        all.extend(["--max-zoom", "3"]);
        let o = ingest(&store, "layer", &all, &[file]);
        assert!(!o.ok, "{} should fail", file.display());
        let last = o.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("cim-ingest: "), "{}: one-line reason, got {:?}", file.display(), o.stderr);
        assert!(last.contains(reason), "{}: {last}", file.display());
        assert!(!o.stderr.contains("panicked"), "{}: panic", file.display());
        assert_eq!(version(&store), before, "{}: previous layer untouched", file.display());
    }
    let page = get_json(&format!("{}/collections/layer/items?limit=1", server.url));
    assert_eq!(page["numberMatched"], 179, "still served");
}

#[test]
fn a_reingested_layer_is_served_without_restart() {
    let store = temp_dir("reingest");
    ingest_ok(&store, "live", &["--max-zoom", "3"], &[&data("fgb/countries.fgb")]);
    let server = Server::start(&store);
    assert_eq!(get_json(&format!("{}/collections/live/items?limit=1", server.url))["numberMatched"], 179);
    let etag = get(&format!("{}/tiles/live/0/0/0.mvt", server.url), &[]).header("etag").map(str::to_owned);
    ingest_ok(&store, "live", &["--max-zoom", "3"], &[&data("geojson/states.geojson")]);
    assert_eq!(get_json(&format!("{}/collections/live/items?limit=1", server.url))["numberMatched"], 49);
    let fresh = get(&format!("{}/tiles/live/0/0/0.mvt", server.url), &[]);
    assert_ne!(fresh.header("etag").map(str::to_owned), etag, "new tiles, new ETag");
}

#[test]
fn reprojected_and_gcj02_sources_land_where_wgs84_puts_them() {
    let store = temp_dir("crs");
    let dir = temp_dir("crs-files");
    // The same Helsinki buildings, exported by GDAL in UTM 35N and in Web Mercator.
    for (name, srs) in [("utm.gpkg", "EPSG:32635"), ("merc.shp", "EPSG:3857")] {
        let status = std::process::Command::new("ogr2ogr")
            .args([
                "-t_srs",
                srs,
                dir.join(name).to_str().expect("path"),
                data("osm/helsinki_buildings.gpkg").to_str().expect("path"),
            ])
            .status()
            .expect("ogr2ogr");
        assert!(status.success());
    }
    ingest_ok(&store, "wgs", &["--max-zoom", "3"], &[&data("osm/helsinki_buildings.gpkg")]);
    ingest_ok(&store, "utm", &["--max-zoom", "3"], &[&dir.join("utm.gpkg")]);
    ingest_ok(&store, "merc", &["--max-zoom", "3"], &[&dir.join("merc.shp")]);
    let bounds = |layer: &str| {
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join(layer).join("catalogue.json")).expect("read"))
                .expect("json");
        (
            c["bounds_wgs84"]
                .as_array()
                .expect("bounds")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect::<Vec<_>>(),
            c["source_crs"].clone(),
        )
    };
    let (wgs, _) = bounds("wgs");
    for layer in ["utm", "merc"] {
        let (b, crs) = bounds(layer);
        for i in 0..4 {
            assert!((b[i] - wgs[i]).abs() < 1e-6, "{layer} ({crs}): {b:?} vs {wgs:?}");
        }
    }
    assert_eq!(bounds("utm").1, "EPSG:32635");
}

#[test]
fn ctrl_c_mid_ingest_leaves_the_previous_layer_served() {
    let store = temp_dir("sigint");
    ingest_ok(&store, "roads", &["--max-zoom", "3"], &[&data("fgb/countries.fgb")]);
    let catalogue = || std::fs::read(store.join("roads/catalogue.json")).expect("catalogue");
    let before = catalogue();
    // A z18 cut of every Manhattan road takes seconds; interrupt it early.
    let child = std::process::Command::new(bin_dir().join("cim-ingest"))
        .arg("--store")
        .arg(&store)
        .args(["--layer", "roads", "--max-zoom", "18", "--max-tiles-per-zoom", "10000000"])
        .arg(data("geojson/tiger_roads.geojson"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status =
        std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "interrupted ingest must fail");
    assert!(stderr.contains("interrupted") && stderr.contains("still served"), "{stderr}");
    assert_eq!(catalogue(), before, "previous version untouched");
    let partials = std::fs::read_dir(store.join(".versions"))
        .expect("versions")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .count();
    assert_eq!(partials, 0, "the half-built version is cleaned up");
}

#[test]
fn kept_versions_roll_back_and_the_server_serves_the_one_rolled_back_to() {
    let store = temp_dir("versions");
    let square = |k: usize| {
        let x = 24.94 + 0.001 * k as f64;
        serde_json::json!({"type": "Feature", "properties": {"k": k},
            "geometry": {"type": "Polygon", "coordinates": [[[x, 60.17], [x + 0.0005, 60.17], [x + 0.0005, 60.1703], [x, 60.1703], [x, 60.17]]]}})
    };
    // Four drops of one layer, the n-th with n features; three versions kept.
    for n in 1..=4 {
        let file = store.join(format!("drop{n}.geojson"));
        let features: Vec<_> = (0..n).map(square).collect();
        std::fs::write(
            &file,
            serde_json::json!({"type": "FeatureCollection", "features": features}).to_string(),
        )
        .expect("write");
        ingest_ok(&store, "drop", &["--keep-versions", "3"], &[&file]);
    }
    let server = Server::start(&store);
    let served = || -> u64 {
        let layers = get_json(&format!("{}/api/layers", server.url));
        layers.as_array().expect("layers").iter().find(|l| l["id"] == "drop").expect("drop")["feature_count"]
            .as_u64()
            .expect("count")
    };
    assert_eq!(served(), 4);
    let catalog = get_json(&format!("{}/api/catalog?q=drop", server.url));
    let kept: Vec<String> = catalog["layers"][0]["versions_kept"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v.as_str().expect("version").to_owned())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert_eq!(catalog["layers"][0]["version"], kept[2].as_str(), "the newest is served");

    let back = ingest(&store, "drop", &["--rollback"], &[]);
    assert!(back.ok && back.stdout.contains(&kept[1]), "{} {}", back.stdout, back.stderr);
    assert_eq!(served(), 3, "the version before is served again");
    let oldest = ingest(&store, "drop", &["--rollback", &kept[0]], &[]);
    assert!(oldest.ok, "{}", oldest.stderr);
    assert_eq!(served(), 2);
    let gone = ingest(&store, "drop", &["--rollback", "19990101T000000.000000Z-1"], &[]);
    assert!(!gone.ok && gone.stderr.contains("is not kept"), "{}", gone.stderr);
    let nothing_older = ingest(&store, "drop", &["--rollback"], &[]);
    assert!(
        !nothing_older.ok && nothing_older.stderr.contains("no version older"),
        "{}",
        nothing_older.stderr
    );
    assert_eq!(served(), 2, "failed rollbacks change nothing");
}

#[test]
fn a_layer_reaching_the_antimeridian_keeps_its_bounds_within_180_degrees_everywhere() {
    // Web Mercator's edge, ±20037508.342789244 m, is ±180° (a few ulps past it once
    // reprojected); two buildings touch it from either side, near Fiji.
    let store = temp_dir("antimeridian");
    let edge = 20_037_508.342_789_244_f64;
    let (y0, y1) = (-1_862_000.0, -1_861_900.0);
    let square = |x0: f64, x1: f64| {
        serde_json::json!({
            "type": "Feature",
            "properties": {"building": "yes", "height": 9},
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
        })
    };
    let doc = serde_json::json!({"type": "FeatureCollection", "features": [
        square(edge - 120.0, edge), square(-edge, -edge + 120.0)
    ]});
    let file = store.join("edge.geojson");
    std::fs::write(&file, doc.to_string()).expect("write");
    ingest_ok(&store, "edge", &["--src-crs", "EPSG:3857", "--max-zoom", "12"], &[&file]);
    let server = Server::start(&store);
    let layers = get_json(&format!("{}/api/layers", server.url));
    let catalogue =
        layers.as_array().and_then(|l| l.iter().find(|e| e["id"] == "edge")).expect("edge listed").clone();
    let b: Vec<f64> =
        catalogue["bounds_wgs84"].as_array().expect("bounds").iter().filter_map(Value::as_f64).collect();
    assert_eq!((b[0], b[2]), (-180.0, 180.0), "catalogue bounds {b:?}");
    let tilejson = get_json(&format!("{}/tiles/edge.json", server.url));
    assert_eq!(tilejson["bounds"][2].as_f64(), Some(180.0), "{tilejson}");
    assert_eq!(tilejson["bounds"][0].as_f64(), Some(-180.0), "{tilejson}");
    let collection = get_json(&format!("{}/collections/edge", server.url));
    let bbox = &collection["extent"]["spatial"]["bbox"][0];
    assert!(
        bbox[2].as_f64().is_some_and(|e| e <= 180.0) && bbox[0].as_f64().is_some_and(|w| w >= -180.0),
        "{bbox}"
    );
    let tileset = get_json(&format!("{}/3dtiles/edge/tileset.json", server.url));
    let mut regions = Vec::new();
    fn walk(tile: &Value, out: &mut Vec<Value>) {
        if let Some(r) = tile["boundingVolume"].get("region") {
            out.push(r.clone());
        }
        for c in tile["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    walk(&tileset["root"], &mut regions);
    for r in &regions {
        let east = r[2].as_f64().expect("east");
        assert!(east <= std::f64::consts::PI && r[0].as_f64().expect("west") >= -std::f64::consts::PI, "{r}");
    }
    assert_served_tileset_valid(&server.url, "edge");
}

/// A zip of `files` (name in the archive, source) made by Python's zipfile.
fn zip_of(dest: &std::path::Path, files: &[(&str, std::path::PathBuf)]) {
    let mut script =
        String::from("import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\n");
    for (name, path) in files {
        script.push_str(&format!("z.write({:?}, {:?})\n", path.display().to_string(), name));
    }
    script.push_str("z.close()\n");
    let out =
        std::process::Command::new("python3").arg("-c").arg(&script).arg(dest).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn zipped_shapefiles_and_geopackages_are_read_as_they_are_and_through_vsizip() {
    let store = temp_dir("zips");
    let parts: Vec<(String, std::path::PathBuf)> = ["shp", "shx", "dbf", "prj"]
        .iter()
        .map(|e| (format!("countries/countries.{e}"), data(&format!("shapefile/countries.{e}"))))
        .collect();
    let shapes = store.join("countries.zip");
    zip_of(&shapes, &parts.iter().map(|(n, p)| (n.as_str(), p.clone())).collect::<Vec<_>>());
    let gpkg = store.join("buildings.zip");
    zip_of(&gpkg, &[("helsinki_buildings.gpkg", data("osm/helsinki_buildings.gpkg"))]);
    let vsizip = std::path::PathBuf::from(format!("/vsizip/{}/countries/countries.shp", shapes.display()));
    for (layer, file, count) in [("zipped", &shapes, 179), ("vsizip", &vsizip, 179), ("gpkg_zip", &gpkg, 482)]
    {
        let out = ingest_ok(&store, layer, &["--max-zoom", "4"], &[file.as_path()]);
        assert!(out.contains(&format!("{count} features")), "{layer}: {out}");
        let catalogue: Value = serde_json::from_slice(
            &std::fs::read(store.join(layer).join("catalogue.json")).expect("catalogue"),
        )
        .expect("json");
        assert_eq!(catalogue["feature_count"], count, "{layer}");
        // Lineage: the archive's own size and checksum.
        let archive = if layer == "gpkg_zip" { &gpkg } else { &shapes };
        assert_eq!(
            catalogue["sources"][0]["bytes"],
            std::fs::metadata(archive).expect("zip").len(),
            "{layer}"
        );
    }
    let other = store.join("photos.zip");
    zip_of(&other, &[("readme.txt", data("README.md"))]);
    let refused = ingest(&store, "photos", &[], &[&other]);
    assert!(
        !refused.ok && refused.stderr.contains("photos.zip") && refused.stderr.contains("holds no Shapefile"),
        "{}",
        refused.stderr
    );
}

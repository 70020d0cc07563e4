//! BIM: every IFC model in `../shared/data/ifc` through the real `cim-ingest` and
//! `cim-server`, checked against IfcOpenShell (PyPI), the Khronos glTF validator,
//! CesiumJS and the data README's counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use cim_e2e::*;
use serde_json::Value;

/// Anchor for the model without a georeference of its own (IfcOpenHouse).
const OPEN_HOUSE_ANCHOR: &str = "24.9445,60.1705,0,0";

/// (layer, file, extra ingest arguments)
const MODELS: [(&str, &str, &[&str]); 6] = [
    ("fzk", "ifc/AC20-FZK-Haus.ifc", &[]),
    ("openhouse", "ifc/IfcOpenHouse_IFC4.ifc", &["--anchor", OPEN_HOUSE_ANCHOR]),
    ("road", "ifc/KIT-Simple-Road-Test-Web-IFC4x3_RC2.ifc", &[]),
    ("duplex", "ifc/duplex.ifc", &[]),
    ("example", "ifc/example.ifc", &[]),
    ("sample", "ifc/tested_sample_project.ifc", &[]),
];

/// One store with every model ingested, shared by the tests of this file.
fn bim_store() -> &'static TempDir {
    static STORE: OnceLock<TempDir> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = temp_dir("bim");
        for (layer, file, args) in MODELS {
            ingest_ok(&store, layer, args, &[&data(file)]);
        }
        store
    })
}

fn catalogue(store: &Path, layer: &str) -> Value {
    let text = std::fs::read(store.join(layer).join("catalogue.json")).expect("catalogue");
    serde_json::from_slice(&text).expect("catalogue json")
}

fn features(store: &Path, layer: &str) -> Vec<Value> {
    stored_features(&store.join(layer))
}

/// IfcOpenShell's view of a model (tests/oracles/ifc_bounds.py).
fn ifcopenshell(file: &str) -> Value {
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("tests/oracles/ifc_bounds.py"))
        .arg(data(file))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "IfcOpenShell failed on {file} (pip install ifcopenshell): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("oracle json")
}

fn count(by_class: &Value, classes: &[&str]) -> u64 {
    classes.iter().map(|c| by_class[*c].as_u64().unwrap_or(0)).sum()
}

#[test]
fn every_shared_ifc_model_ingests_with_the_element_counts_the_data_readme_lists() {
    let store = bim_store();
    let walls = ["IfcWall", "IfcWallStandardCase"];
    let fzk = &catalogue(store, "fzk")["bim"];
    assert_eq!(fzk["models"][0]["schema"], "IFC4");
    let by = &fzk["elements_by_class"];
    assert_eq!(count(by, &walls), 13);
    assert_eq!(count(by, &["IfcSlab"]), 4);
    assert_eq!(count(by, &["IfcWindow"]), 11);
    assert_eq!(count(by, &["IfcDoor"]), 5);
    assert_eq!(count(by, &["IfcSpace"]), 7);
    assert_eq!(fzk["storeys"].as_array().map(Vec::len), Some(2));
    let duplex = &catalogue(store, "duplex")["bim"];
    assert_eq!(duplex["models"][0]["schema"], "IFC2X3");
    let by = &duplex["elements_by_class"];
    assert_eq!(count(by, &walls), 57);
    assert_eq!(count(by, &["IfcSlab"]), 21);
    assert_eq!(count(by, &["IfcWindow"]), 24);
    assert_eq!(count(by, &["IfcDoor"]), 14);
    assert_eq!(count(by, &["IfcSpace"]), 21);
    assert_eq!(duplex["storeys"].as_array().map(Vec::len), Some(4));
    let storeys: Vec<f64> = duplex["storeys"]
        .as_array()
        .expect("storeys")
        .iter()
        .filter_map(|s| s["elevation"].as_f64())
        .collect();
    assert!(storeys.windows(2).all(|w| w[0] <= w[1]), "storeys bottom to top: {storeys:?}");
    let house = &catalogue(store, "openhouse")["bim"]["elements_by_class"];
    assert_eq!((count(house, &walls), count(house, &["IfcWindow"]), count(house, &["IfcDoor"])), (4, 5, 1));
    assert_eq!(count(house, &["IfcRoof"]), 1);
    let example = &catalogue(store, "example")["bim"]["elements_by_class"];
    assert_eq!((count(example, &["IfcColumn"]), count(example, &["IfcBeam"])), (42, 43));
    let road = &catalogue(store, "road")["bim"];
    assert_eq!(road["models"][0]["schema"], "IFC4X3_RC2");
    assert_eq!(count(&road["elements_by_class"], &["IfcRoad"]), 1);
    // Every class, not only the README's: IfcOpenShell counts the same products
    // (less the openings, which are voids rather than elements).
    for (layer, file, _) in MODELS.iter().filter(|(l, _, _)| *l != "road") {
        let theirs = ifcopenshell(file);
        let ours = &catalogue(store, layer)["bim"]["elements_by_class"];
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for (class, n) in theirs["counts"].as_object().expect("counts") {
            if class != "IfcOpeningElement" {
                want.insert(class.clone(), n.as_u64().expect("n"));
            }
        }
        let got: BTreeMap<String, u64> = ours
            .as_object()
            .expect("by class")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
            .collect();
        assert_eq!(got, want, "{layer}: elements by class");
    }
}

#[test]
fn element_bounds_and_property_sets_agree_with_ifcopenshell() {
    let store = bim_store();
    let mut report = Vec::new();
    for (layer, file, _) in MODELS.iter().filter(|(l, _, _)| *l != "road") {
        let theirs = ifcopenshell(file);
        let ours: BTreeMap<String, Value> = features(store, layer)
            .into_iter()
            .map(|f| {
                (f["properties"]["GlobalId"].as_str().expect("GlobalId").to_owned(), f["properties"].clone())
            })
            .collect();
        let mut both = 0;
        let mut off = Vec::new();
        let mut theirs_only = 0;
        for (guid, b) in theirs["bounds"].as_object().expect("bounds") {
            let Some(mine) = ours.get(guid).and_then(|p| p["bounds_model"].as_array()) else {
                // IfcOpenShell also meshes the openings, which are not elements here.
                theirs_only += 1;
                continue;
            };
            both += 1;
            let b: Vec<f64> = b.as_array().expect("box").iter().map(|v| v.as_f64().expect("f64")).collect();
            let worst =
                mine.iter().zip(&b).map(|(m, t)| (m.as_f64().expect("f64") - t).abs()).fold(0.0, f64::max);
            if worst > 0.01 {
                off.push(format!("{} {guid} by {worst:.3} m", ours[guid]["ifc_class"]));
            }
        }
        let ours_only = ours.values().filter(|p| p["bounds_model"].is_array()).count() - both;
        report.push(format!(
            "{layer}: {both} elements measured by both, {} within 1 cm, {theirs_only} only by IfcOpenShell, {ours_only} only here",
            both - off.len()
        ));
        assert!(both > 0, "{layer}: no element in common");
        assert_eq!(ours_only, 0, "{layer}: elements with geometry here but none in IfcOpenShell");
        assert!(off.is_empty(), "{layer}: bounds differ by over 1 cm: {off:?}");
        // Property sets and quantities, value by value.
        let mut compared = 0;
        for (guid, sets) in theirs["psets"].as_object().expect("psets") {
            let Some(mine) = ours.get(guid) else { continue };
            for (set, values) in sets.as_object().expect("set") {
                for (key, want) in values.as_object().expect("values") {
                    let got = &mine["property_sets"][set][key];
                    let same = match (got.as_f64(), want.as_f64()) {
                        (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                        _ => got == want || got.as_str().is_some_and(|g| Some(g) == want.as_str()),
                    };
                    assert!(same, "{layer} {guid} {set}.{key}: {got} here, {want} in IfcOpenShell");
                    compared += 1;
                }
            }
        }
        report.push(format!("{layer}: {compared} property values equal"));
        if *layer == "fzk" {
            assert!(compared > 5000, "FZK-Haus carries thousands of property values: {compared}");
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// Column-major 4×4 applied to a point.
fn apply(m: &[f64], p: [f64; 3]) -> [f64; 3] {
    [
        m[0] * p[0] + m[4] * p[1] + m[8] * p[2] + m[12],
        m[1] * p[0] + m[5] * p[1] + m[9] * p[2] + m[13],
        m[2] * p[0] + m[6] * p[1] + m[10] * p[2] + m[14],
    ]
}

#[test]
fn the_fzk_haus_lands_at_its_site_reference_point() {
    let store = bim_store();
    let server = Server::start(store);
    let tileset = get_json(&format!("{}/3dtiles/fzk/tileset.json", server.url));
    assert_eq!(tileset["asset"]["version"], "1.1");
    let transform: Vec<f64> = tileset["root"]["transform"]
        .as_array()
        .expect("transform")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    let (lon, lat, h) = cim_core::frame::ecef_to_geodetic([transform[12], transform[13], transform[14]]);
    // IfcSite: RefLatitude (49,6,1,566000), RefLongitude (8,26,11,540400), 110 m.
    let want_lat = 49.0 + 6.0 / 60.0 + 1.566 / 3600.0;
    let want_lon = 8.0 + 26.0 / 60.0 + 11.5404 / 3600.0;
    assert!((lat - want_lat).abs() < 1e-8 && (lon - want_lon).abs() < 1e-8, "{lon} {lat}");
    assert!((h - 110.0).abs() < 0.01, "height {h}");
    // Every vertex of every storey, through node matrices and the root transform,
    // lies within the house's 20 m of its reference point.
    let mut vertices = 0;
    for child in tileset["root"]["children"].as_array().expect("storeys") {
        let uri = child["content"]["uri"].as_str().expect("uri");
        let glb = get(&format!("{}/3dtiles/fzk/{uri}", server.url), &[]).body;
        let json = cim_core::glb::json_chunk(&glb).expect("json");
        let bin_start = 20 + u32::from_le_bytes(glb[12..16].try_into().expect("len")) as usize + 8;
        for node in json["nodes"].as_array().expect("nodes") {
            let matrix: Vec<f64> = match node["matrix"].as_array() {
                Some(m) => m.iter().map(|v| v.as_f64().expect("f64")).collect(),
                None => vec![1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.],
            };
            let mesh = &json["meshes"][node["mesh"].as_u64().expect("mesh") as usize];
            let accessor = &json["accessors"]
                [mesh["primitives"][0]["attributes"]["POSITION"].as_u64().expect("pos") as usize];
            let view = &json["bufferViews"][accessor["bufferView"].as_u64().expect("view") as usize];
            let start = bin_start + view["byteOffset"].as_u64().unwrap_or(0) as usize;
            for i in 0..accessor["count"].as_u64().expect("count") as usize {
                let f = |k: usize| {
                    let at = start + i * 12 + k * 4;
                    f64::from(f32::from_le_bytes(glb[at..at + 4].try_into().expect("f32")))
                };
                // glTF y-up → tile z-up (x, -z, y), then the tile's transform.
                let local = apply(&matrix, [f(0), f(1), f(2)]);
                let ecef = apply(&transform, [local[0], -local[2], local[1]]);
                let (vlon, vlat, vh) = cim_core::frame::ecef_to_geodetic(ecef);
                let east = (vlon - want_lon).to_radians() * 6_378_137.0 * want_lat.to_radians().cos();
                let north = (vlat - want_lat).to_radians() * 6_378_137.0;
                assert!(east.hypot(north) < 20.0 && (vh - 110.0).abs() < 15.0, "vertex {east} {north} {vh}");
                vertices += 1;
            }
        }
    }
    assert!(vertices > 1000, "{vertices} vertices checked");
}

#[test]
fn bim_glbs_pass_the_khronos_validator_and_cesiumjs_picks_an_element_back_to_the_element_api() {
    let store = bim_store();
    let server = Server::start(store);
    let dir = temp_dir("bim-glb");
    let mut files = Vec::new();
    let mut instanced_nodes = 0;
    for (layer, _, _) in MODELS {
        let tileset = get_json(&format!("{}/3dtiles/{layer}/tileset.json", server.url));
        let mut uris = Vec::new();
        fn walk(tile: &Value, out: &mut Vec<String>) {
            if let Some(uri) = tile["content"]["uri"].as_str() {
                out.push(uri.to_owned());
            }
            for c in tile["children"].as_array().into_iter().flatten() {
                walk(c, out);
            }
        }
        walk(&tileset["root"], &mut uris);
        assert!(!uris.is_empty(), "{layer}: no content");
        for uri in uris {
            let reply = get(&format!("{}/3dtiles/{layer}/{uri}", server.url), &[]);
            assert_eq!(reply.status, 200, "{layer}/{uri}");
            let json = cim_core::glb::json_chunk(&reply.body).expect("json");
            instanced_nodes +=
                json["nodes"].as_array().map_or(0, |n| n.iter().filter(|n| n["matrix"].is_array()).count());
            let path = dir.join(format!("{layer}-{}.glb", files.len()));
            std::fs::write(&path, &reply.body).expect("write");
            files.push(path.to_string_lossy().into_owned());
        }
    }
    assert!(instanced_nodes > 20, "repeated maps are instanced: {instanced_nodes} nodes");
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    for report in oracle("validate_glb.mjs", &args).as_array().expect("reports") {
        assert_eq!(report["errors"], 0, "gltf-validator: {report}");
    }
    let shot = std::env::temp_dir().join("cim-e2e-cesium-fzk.png");
    let seen = oracle(
        "cesium_check.mjs",
        &[&format!("{}/3dtiles/fzk/tileset.json", server.url), shot.to_str().expect("path")],
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "CesiumJS reported: {seen}");
    assert_eq!(seen["loaded"], true, "all tiles loaded: {seen}");
    let with_geometry = catalogue(store, "fzk")["bim"]["elements_with_geometry"].as_u64();
    assert_eq!(seen["features"].as_u64(), with_geometry, "CesiumJS counts every drawn element once");
    let fid = seen["picked"]["fid"].as_str().expect("CesiumJS picked an element at the screen centre");
    let item = get_json(&format!("{}/collections/fzk/items/{fid}", server.url));
    let guid = item["properties"]["GlobalId"].as_str().expect("GlobalId");
    let element = get_json(&format!("{}/api/bim/fzk/elements/{guid}", server.url));
    assert_eq!(element["fid"].to_string(), fid);
    assert!(element["ifc_class"].as_str().is_some_and(|c| c.starts_with("Ifc")), "{element}");
    assert!(element["storey"].is_string(), "picked elements sit on a storey: {element}");
}

#[test]
fn cesiums_3d_tiles_validator_finds_no_error_in_any_served_bim_model() {
    let server = Server::start(bim_store());
    for (layer, _, _) in MODELS {
        let (report, files) = assert_served_tileset_valid(&server.url, layer);
        assert!(files >= 2, "{layer}: the tileset and its storeys");
        println!("{layer}: 3d-tiles-validator on {files} files: {} warnings", report["numWarnings"]);
    }
}

#[test]
fn the_element_api_serves_a_wall_and_refuses_what_is_not_one() {
    let store = bim_store();
    let server = Server::start(store);
    let wall = features(store, "fzk")
        .into_iter()
        .find(|f| f["properties"]["ifc_class"] == "IfcWallStandardCase")
        .expect("a wall");
    let guid = wall["properties"]["GlobalId"].as_str().expect("guid");
    let element = get_json(&format!("{}/api/bim/fzk/elements/{guid}", server.url));
    assert_eq!(element["GlobalId"], guid);
    assert_eq!(element["ifc_class"], "IfcWallStandardCase");
    assert!(element["name"].is_string() && element["storey"].is_string(), "{element}");
    assert!(
        element["property_sets"].as_object().is_some_and(|s| s.keys().any(|k| k.starts_with("Pset_Wall"))),
        "{element}"
    );
    assert_eq!(element["bounds_model"].as_array().map(Vec::len), Some(6));
    for (path, status) in [
        ("/api/bim/fzk/elements/0000000000000000000000", 404),
        ("/api/bim/nosuchlayer/elements/abc", 404),
        ("/api/bim/fzk/elements/..%2F..%2Fcatalogue.json", 400),
        ("/api/bim/fzk/elements/a%20b", 400),
        ("/api/bim/..%2Ffzk/elements/abc", 404),
    ] {
        let reply = get(&format!("{}{path}", server.url), &[]);
        assert_eq!(reply.status, status, "{path}: {}", String::from_utf8_lossy(&reply.body));
        assert!(reply.json()["description"].is_string(), "{path}: a JSON error");
    }
}

/// A copy of FZK-Haus edited by `edit`, ingested into `store` as `layer`.
fn ingest_edited(store: &Path, layer: &str, edit: impl Fn(&str) -> String) -> Outcome {
    let text = std::fs::read_to_string(data("ifc/AC20-FZK-Haus.ifc")).expect("read");
    let path = store.join(format!("{layer}.ifc"));
    std::fs::write(&path, edit(&text)).expect("write");
    ingest(store, layer, &[], &[&path])
}

#[test]
fn malformed_step_gives_a_clear_error_and_leaves_the_served_model_alone() {
    let store = temp_dir("bim-bad");
    ingest_ok(&store, "house", &[], &[&data("ifc/AC20-FZK-Haus.ifc")]);
    let before = std::fs::read(store.join("house/features.cimf")).expect("features");

    let truncated = ingest_edited(&store, "house", |t| t[..t.len() * 3 / 5].to_owned());
    assert!(!truncated.ok);
    assert!(
        truncated.stderr.contains("truncated") && truncated.stderr.contains("line "),
        "{}",
        truncated.stderr
    );

    // A broken attribute list: the message names the line and the instance.
    let garbled = ingest_edited(&store, "house", |t| t.replacen("#389= IFCSITE('", "#389= IFCSITE(('", 1));
    assert!(!garbled.ok);
    assert!(garbled.stderr.contains("#389") && garbled.stderr.contains("line "), "{}", garbled.stderr);

    // A storey that contains the building that contains it.
    let looped = ingest_edited(&store, "house", |t| {
        let (storey, building) = (first_id(t, "IFCBUILDINGSTOREY("), first_id(t, "IFCBUILDING("));
        let rel = t
            .lines()
            .find(|l| l.contains("IFCRELAGGREGATES(") && l.contains(&format!("(#{building})")))
            .expect("the relation that holds the building");
        let parts: Vec<&str> = rel.split(',').collect();
        let looped = format!("{},#{storey},{}", parts[..4].join(","), parts[5..].join(","));
        t.replacen(rel, &looped, 1)
    });
    assert!(!looped.ok);
    assert!(looped.stderr.contains("loops"), "{}", looped.stderr);
    // The same loop closed by a second relation: the site, already the project's,
    // also made a part of a storey.
    let second_parent = ingest_edited(&store, "house", |t| {
        let (storey, site) = (first_id(t, "IFCBUILDINGSTOREY("), first_id(t, "IFCSITE("));
        let rel = format!("#9999990= IFCRELAGGREGATES('0LoopThroughASecondW',$,$,$,#{storey},(#{site}));\n");
        let at = t.rfind("ENDSEC;").expect("the data section's end");
        format!("{}{rel}{}", &t[..at], &t[at..])
    });
    assert!(!second_parent.ok, "a loop through a second whole was published");
    assert!(
        second_parent.stderr.contains("loops") && second_parent.stderr.contains("IfcSite"),
        "{}",
        second_parent.stderr
    );

    assert_eq!(std::fs::read(store.join("house/features.cimf")).expect("features"), before, "still served");

    // A placement that refers to itself and a reference to nothing: those elements
    // lose their geometry, named in the quality report; the rest is ingested.
    let damaged = ingest_edited(&store, "damaged", |t| {
        let wall = t.lines().find(|l| l.contains("IFCWALLSTANDARDCASE(")).expect("wall");
        let placement = wall.split(',').nth(5).expect("placement").trim().to_owned();
        let line = t.lines().find(|l| l.starts_with(&format!("{placement}="))).expect("placement line");
        let args = line.find("IFCLOCALPLACEMENT(").expect("a local placement") + "IFCLOCALPLACEMENT(".len();
        let first_end = args + line[args..].find(',').expect("two arguments");
        let cycled = format!("{}{placement}{}", &line[..args], &line[first_end..]);
        let door = t.lines().find(|l| l.contains("IFCDOOR(")).expect("door");
        let broken_door = door.replacen(door.split(',').nth(6).expect("shape"), "#9999999", 1);
        t.replacen(line, &cycled, 1).replacen(door, &broken_door, 1)
    });
    assert!(damaged.ok, "{}", damaged.stderr);
    let quality: Value =
        serde_json::from_slice(&std::fs::read(store.join("damaged/quality.json")).expect("quality"))
            .expect("json");
    let examples = quality["examples"].to_string();
    assert!(examples.contains("PlacementRelTo chain loops"), "{examples}");
    assert!(examples.contains("#9999999, which the file does not define"), "{examples}");

    // A building with neither placement nor shape is still the model's building:
    // in the features, holding its storeys.
    let bare = ingest_edited(&store, "bare", |t| {
        t.replacen("'Wohnhaus',#432,$,$,.ELEMENT.", "'Wohnhaus',$,$,$,.ELEMENT.", 1)
    });
    assert!(bare.ok, "{}", bare.stderr);
    let features = stored_features(&store.join("bare"));
    let building = features
        .iter()
        .find(|f| f["properties"]["GlobalId"] == "2hQBAVPOr5VxhS3Jl0O47h")
        .unwrap_or_else(|| panic!("the bare IfcBuilding is a feature: {}", features.len()));
    assert_eq!(building["properties"]["ifc_class"], "IfcBuilding", "{building}");
    let all = features.len();
    assert_eq!(all, stored_features(&store.join("house")).len(), "no element lost or added");
}

/// `gdaltransform` between two CRSs, one point.
fn gdal_transform(from: &str, to: &str, x: f64, y: f64) -> [f64; 2] {
    use std::io::Write;
    let mut child = std::process::Command::new("gdaltransform")
        .args(["-s_srs", from, "-t_srs", to, "-output_xy"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gdaltransform (apt-get install gdal-bin)");
    writeln!(child.stdin.take().expect("stdin"), "{x} {y}").expect("write");
    let out = child.wait_with_output().expect("gdaltransform");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().map(|t| t.parse().expect("number")).collect();
    [v[0], v[1]]
}

#[test]
fn an_ifc_map_conversion_places_the_model_where_gdal_puts_its_map_coordinates() {
    let store = temp_dir("bim-mapconversion");
    // A false origin in UTM 32N (EPSG:25832) near Karlsruhe, the model's x axis
    // turned 30 degrees from grid east, scale 1.
    let [e, n] = gdal_transform("EPSG:4326", "EPSG:25832", 8.40, 49.01);
    let (a, b) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let out = ingest_edited(&store, "utm", |t| {
        let context = first_id(t, "IFCGEOMETRICREPRESENTATIONCONTEXT(");
        format!(
            "{}#900001= IFCPROJECTEDCRS('EPSG:25832',$,$,$,$,$,$);\n#900002= IFCMAPCONVERSION(#{context},#900001,{e:.4},{n:.4},115.5,{a},{b},$);\nENDSEC;\nEND-ISO-10303-21;\n",
            &t[..t.rfind("ENDSEC;").expect("ENDSEC")]
        )
    });
    assert!(out.ok, "{}", out.stderr);
    let model = &catalogue(&store, "utm")["bim"]["models"][0];
    assert!(model["georeference"].as_str().is_some_and(|g| g.contains("IfcMapConversion")), "{model}");
    let anchor: Vec<f64> =
        model["anchor"].as_array().expect("anchor").iter().map(|v| v.as_f64().expect("f64")).collect();
    let m: Vec<f64> =
        model["model_to_enu"].as_array().expect("matrix").iter().map(|v| v.as_f64().expect("f64")).collect();
    let frame = cim_core::frame::EnuFrame::at(anchor[0], anchor[1], anchor[2]);
    let to_ecef = frame.to_ecef_matrix();
    // Model points 40 m out along x and y: GDAL reprojects their map coordinates;
    // ours go through the anchor's frame. Within a centimetre.
    for (x, y) in [(0.0, 0.0), (40.0, 0.0), (0.0, 40.0), (-25.0, 30.0)] {
        let [lon, lat] = gdal_transform("EPSG:25832", "EPSG:4326", e + a * x - b * y, n + b * x + a * y);
        let (glon, glat, gh) = cim_core::frame::ecef_to_geodetic(apply(&to_ecef, apply(&m, [x, y, 0.0])));
        let east = (glon - lon).to_radians() * 6_378_137.0 * lat.to_radians().cos();
        let north = (glat - lat).to_radians() * 6_378_137.0;
        assert!(
            east.hypot(north) < 0.01,
            "model ({x}, {y}) is {east:.3} m east, {north:.3} m north of GDAL's"
        );
        assert!((gh - 115.5).abs() < 0.01, "height {gh}");
    }
}

fn first_id(text: &str, class: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(&format!("= {class}")) || l.contains(&format!("={class}")))
        .expect(class);
    line.split('=').next().expect("id").trim().trim_start_matches('#').to_owned()
}

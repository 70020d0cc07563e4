//! City models: every CityJSON file in `../shared/data/cityjson` through the real
//! `cim-ingest` and `cim-server`, checked against the source JSON (read here with
//! serde_json), GDAL's `gdaltransform`, glTF-Transform, the Khronos glTF validator
//! and CesiumJS.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cim_e2e::*;
use serde_json::{Value, json};

/// Every file, with the CRS it needs on the command line (three declare none; all
/// are in the Dutch RD New + NAP system).
const FILES: &[(&str, &[&str])] = &[
    ("delft.json", &[]),
    ("delft_1b.json", &[]),
    ("multi_lod.json", &["--src-crs", "EPSG:7415"]),
    ("rotterdam_subset.json", &["--src-crs", "EPSG:7415"]),
    ("DH_01_subs.city.json", &["--src-crs", "EPSG:7415"]),
];

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

fn layer_name(file: &str) -> String {
    file.split('.').next().expect("name").replace('.', "_")
}

/// Source vertices in RD metres (the transform applied), per city object.
fn source_vertices(doc: &Value) -> HashMap<String, Vec<[f64; 3]>> {
    let t = &doc["transform"];
    let s: Vec<f64> = (0..3).map(|k| t["scale"][k].as_f64().unwrap_or(1.0)).collect();
    let o: Vec<f64> = (0..3).map(|k| t["translate"][k].as_f64().unwrap_or(0.0)).collect();
    let vertices: Vec<[f64; 3]> = doc["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .map(|v| [0, 1, 2].map(|k| v[k].as_f64().expect("coordinate") * s[k] + o[k]))
        .collect();
    fn indices(v: &Value, out: &mut Vec<usize>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| indices(x, out)),
            Value::Number(n) => out.push(n.as_u64().expect("index") as usize),
            _ => {}
        }
    }
    doc["CityObjects"]
        .as_object()
        .expect("objects")
        .iter()
        .map(|(id, o)| {
            let mut ix = Vec::new();
            for g in o["geometry"].as_array().into_iter().flatten() {
                indices(&g["boundaries"], &mut ix);
            }
            (id.clone(), ix.into_iter().map(|i| vertices[i]).collect())
        })
        .collect()
}

fn glb_files(layer_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(layer_dir.join("3dtiles/content"))
        .expect("content")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn ingest_all(tag: &str) -> TempDir {
    let store = temp_dir(tag);
    for (file, args) in FILES {
        let out = ingest_ok(&store, &layer_name(file), args, &[&data(&format!("cityjson/{file}"))]);
        assert!(out.contains(": city model, ") && out.contains(" objects ("), "{out}");
    }
    store
}

#[test]
fn every_cityjson_file_keeps_its_objects_by_type_levels_and_versions_and_its_glbs_validate() {
    let store = ingest_all("city-models");
    for (file, _) in FILES {
        let source = json_file(&data(&format!("cityjson/{file}")));
        let catalogue = json_file(&store.join(layer_name(file)).join("catalogue.json"));
        assert_eq!(catalogue["kind"], "city_model");
        let summary = &catalogue["city_model"];
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_lod: BTreeMap<String, u64> = BTreeMap::new();
        for o in source["CityObjects"].as_object().expect("objects").values() {
            *by_type.entry(o["type"].as_str().expect("type").to_owned()).or_default() += 1;
            let mut lods: Vec<String> = o["geometry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| match &g["lod"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            lods.dedup();
            for l in lods {
                *by_lod.entry(l).or_default() += 1;
            }
        }
        assert_eq!(summary["objects_by_type"], json!(by_type), "{file}");
        assert_eq!(summary["objects_by_lod"], json!(by_lod), "{file}");
        assert_eq!(summary["versions"], json!([source["version"]]), "{file}: version as read");
        let with_geometry = source["CityObjects"]
            .as_object()
            .expect("objects")
            .values()
            .filter(|o| o["geometry"].as_array().is_some_and(|g| !g.is_empty()))
            .count();
        // Objects made only of parts (a Building of BuildingParts) are features too.
        let objects = source["CityObjects"].as_object().expect("objects");
        let has_geometry = |o: &Value| o["geometry"].as_array().is_some_and(|g| !g.is_empty());
        let assemblies: Vec<&String> = objects
            .iter()
            .filter(|(_, o)| {
                !has_geometry(o)
                    && o["children"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c.as_str().and_then(|c| objects.get(c)).is_some_and(has_geometry))
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(catalogue["feature_count"], with_geometry + assemblies.len(), "{file}");
        let features = stored_features(&store.join(layer_name(file)));
        let by_fid = |fid: &Value| features.iter().find(|f| &f["id"] == fid).expect("a linked feature");
        for id in &assemblies {
            let whole =
                features.iter().find(|f| f["properties"]["cityjson_id"] == **id).expect("assembly feature");
            let kids = whole["properties"]["children_fids"].as_array().expect("children_fids");
            assert!(!kids.is_empty(), "{file} {id}");
            assert!(
                whole["geometry"]["type"].as_str().is_some_and(|t| t.ends_with("Polygon")),
                "{file} {id}"
            );
            // Bounds over every ring of a Polygon or MultiPolygon.
            let bounds = |g: &Value| {
                let rings: Vec<&Value> = match g["type"].as_str() {
                    Some("Polygon") => g["coordinates"].as_array().into_iter().flatten().collect(),
                    _ => g["coordinates"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|p| p.as_array().into_iter().flatten())
                        .collect(),
                };
                rings
                    .iter()
                    .filter_map(|r| r.as_array())
                    .map(|r| ring_bounds(r))
                    .fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |a, b| {
                        [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
                    })
            };
            let wb = bounds(&whole["geometry"]);
            for kid in kids {
                let part = by_fid(kid);
                assert_eq!(part["properties"]["parent_fid"], whole["id"], "{file}: {id}'s part links back");
                let pb = bounds(&part["geometry"]);
                assert!(
                    pb[0] >= wb[0] - 1e-7
                        && pb[1] >= wb[1] - 1e-7
                        && pb[2] <= wb[2] + 1e-7
                        && pb[3] <= wb[3] + 1e-7,
                    "{file}: {id}'s outline {wb:?} holds its part's {pb:?}"
                );
            }
        }
        if file == &"DH_01_subs.city.json" {
            assert_eq!(assemblies.len(), 3, "the three buildings of BuildingParts");
            assert_eq!(catalogue["feature_count"], catalogue["building_count"], "{catalogue}");
        }
        let args: Vec<String> =
            glb_files(&store.join(layer_name(file))).iter().map(|p| p.display().to_string()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for r in oracle("validate_glb.mjs", &args).as_array().expect("reports") {
            assert_eq!(r["errors"], 0, "{file}: {r}");
        }
    }
    // The README's figures for delft.json.
    let delft = json_file(&store.join("delft/catalogue.json"));
    assert_eq!(
        delft["city_model"]["objects_by_type"],
        json!({"Bridge": 3, "Building": 160, "GenericCityObject": 54, "LandUse": 81, "PlantCover": 126, "Road": 143, "WaterBody": 3})
    );
    // Appearances are skipped and said so.
    let rotterdam = json_file(&store.join("rotterdam_subset/catalogue.json"));
    assert!(rotterdam["city_model"]["skipped"].to_string().contains("appearances"), "{rotterdam}");
    let quality = json_file(&store.join("rotterdam_subset/quality.json"));
    assert_eq!(quality["dropped"]["degenerate surface"], 17, "zero-area surfaces in the source: {quality}");

    // multi_lod: every object at 1.2, 1.3 and 2.2 in one chain, coarsest first.
    let tileset = json_file(&store.join("multi_lod/3dtiles/tileset.json"));
    let mut chain = Vec::new();
    let mut tile = &tileset["root"]["children"][0];
    loop {
        chain.push((
            tile["refine"].clone(),
            tile["geometricError"].as_f64().expect("error"),
            tile["content"]["uri"].clone(),
        ));
        match tile["children"].get(0) {
            Some(c) => tile = c,
            None => break,
        }
    }
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(chain.iter().all(|(r, _, _)| r == "REPLACE"), "{chain:?}");
    assert!(
        chain[0].1 >= chain[1].1 && chain[1].1 > 0.0 && chain[2].1 == 0.0,
        "errors shrink to 0: {chain:?}"
    );
    let lod_of = |uri: &Value| -> Vec<u64> {
        let glb =
            std::fs::read(store.join("multi_lod/3dtiles").join(uri.as_str().expect("uri"))).expect("glb");
        glb_fids(&glb)
    };
    assert_eq!(lod_of(&chain[0].2).len(), 10, "all ten buildings in the coarsest link");
    assert_eq!(lod_of(&chain[2].2), lod_of(&chain[0].2), "and the same ones in the finest");

    // Roofs red, walls light: the semantics of rotterdam, and the slope of delft's LoD1 blocks.
    for layer in ["rotterdam_subset", "delft"] {
        let decoded = decode_meshes(&glb_files(&store.join(layer)));
        let (mut roofs, mut red_roofs, mut walls, mut light_walls) = (0, 0, 0, 0);
        for f in &decoded {
            for p in f["primitives"].as_array().expect("primitives") {
                let pos: Vec<f64> =
                    p["positions"].as_array().expect("p").iter().map(|v| v.as_f64().expect("f")).collect();
                let col: Vec<f64> =
                    p["colors"].as_array().expect("COLOR_0").iter().map(|v| v.as_f64().expect("f")).collect();
                let idx: Vec<usize> = p["indices"]
                    .as_array()
                    .expect("i")
                    .iter()
                    .map(|v| v.as_u64().expect("u") as usize)
                    .collect();
                for t in idx.chunks(3) {
                    let v = |k: usize| [pos[3 * t[k]], pos[3 * t[k] + 1], pos[3 * t[k] + 2]];
                    let (a, b, c) = (v(0), v(1), v(2));
                    let e1 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
                    let e2 = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
                    let n = [
                        e1[1] * e2[2] - e1[2] * e2[1],
                        e1[2] * e2[0] - e1[0] * e2[2],
                        e1[0] * e2[1] - e1[1] * e2[0],
                    ];
                    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
                    if len < 1e-6 {
                        continue;
                    }
                    let up = n[1] / len; // glTF y is up
                    let rgb = [col[3 * t[0]], col[3 * t[0] + 1], col[3 * t[0] + 2]];
                    if up > 0.9 && rgb[0] > 2.0 * rgb[2] && rgb[0] > 0.4 {
                        red_roofs += 1;
                    }
                    if up > 0.9 && rgb[0] > 2.0 * rgb[2] {
                        roofs += 1;
                    }
                    if up.abs() < 0.1 {
                        walls += 1;
                        if rgb.iter().all(|&c| c > 0.6) {
                            light_walls += 1;
                        }
                    }
                }
            }
        }
        println!("{layer}: {red_roofs} red roof triangles, {light_walls}/{walls} light wall triangles");
        assert!(red_roofs > 20 && roofs == red_roofs, "{layer}: {red_roofs}/{roofs}");
        if layer == "rotterdam_subset" {
            // Every wall is a WallSurface there (delft's vertical faces also belong to
            // bridges and other objects, grey by type).
            assert!(light_walls == walls && walls > 100, "{layer}: {light_walls}/{walls} light walls");
        }
    }
    // Cesium's validator reads EXT_structural_metadata, which gltf-validator skips.
    let server = Server::start(&store);
    // A pick inside a part finds the part and the building it belongs to.
    let layer = layer_name("DH_01_subs.city.json");
    let features = stored_features(&store.join(&layer));
    let mut picked = 0;
    for part in features.iter().filter(|f| f["properties"]["parent_fid"].is_u64()) {
        let ring = match part["geometry"]["type"].as_str() {
            Some("Polygon") => &part["geometry"]["coordinates"][0],
            Some("MultiPolygon") => &part["geometry"]["coordinates"][0][0],
            _ => continue,
        };
        let ring = ring.as_array().expect("ring");
        let [x0, y0, x1, y1] = ring_bounds(ring);
        let inside = (1..20)
            .flat_map(|i| {
                (1..20).map(move |j| {
                    (x0 + (x1 - x0) * f64::from(i) / 20.0, y0 + (y1 - y0) * f64::from(j) / 20.0)
                })
            })
            .find(|&(x, y)| point_in_ring(ring, x, y));
        let Some((lon, lat)) = inside else { continue };
        let hits = get_json(&format!("{}/api/pick?lon={lon}&lat={lat}&layer={layer}", server.url));
        let ids: Vec<&Value> =
            hits["features"].as_array().expect("features").iter().map(|f| &f["id"]).collect();
        assert!(
            ids.contains(&&part["id"]) && ids.contains(&&part["properties"]["parent_fid"]),
            "pick {lon},{lat}: {ids:?}"
        );
        picked += 1;
    }
    assert!(picked >= 6, "{picked} parts picked with their buildings");
    for (file, _) in FILES {
        let (report, files) = assert_served_tileset_valid(&server.url, &layer_name(file));
        println!("{file}: 3d-tiles-validator on {files} served files: {} warnings", report["numWarnings"]);
    }
}

#[test]
fn every_delft_object_lands_where_gdal_puts_its_source_vertices_within_a_centimetre() {
    let store = temp_dir("city-delft-place");
    ingest_ok(&store, "delft", &[], &[&data("cityjson/delft.json")]);
    let source = json_file(&data("cityjson/delft.json"));
    let by_id = source_vertices(&source);
    let dir = store.join("delft");
    let m = root_transform(&dir);
    let id_of_fid: HashMap<u64, String> = stored_features(&dir)
        .iter()
        .map(|f| {
            (f["id"].as_u64().expect("fid"), f["properties"]["cityjson_id"].as_str().expect("id").to_owned())
        })
        .collect();

    // Every drawn vertex, by object, in degrees and metres.
    let files = glb_files(&dir);
    let decoded = decode_meshes(&files);
    let mut drawn: HashMap<u64, Vec<[f64; 3]>> = HashMap::new();
    for (file, f) in files.iter().zip(&decoded) {
        let fids = glb_fids(&std::fs::read(file).expect("glb"));
        for p in f["primitives"].as_array().expect("primitives") {
            let pos: Vec<f64> =
                p["positions"].as_array().expect("p").iter().map(|v| v.as_f64().expect("f")).collect();
            let rows: Vec<u64> = p["feature_ids"]
                .as_array()
                .expect("feature ids")
                .iter()
                .map(|v| v.as_u64().expect("u"))
                .collect();
            for (k, g) in pos.chunks(3).enumerate() {
                let [lon, lat, h] = gltf_to_geodetic(&m, g);
                drawn.entry(fids[rows[k] as usize]).or_default().push([lon, lat, h]);
            }
        }
    }
    assert_eq!(drawn.len(), 570, "every object drawn");
    // Back to RD New by GDAL, all at once.
    let order: Vec<u64> = {
        let mut o: Vec<u64> = drawn.keys().copied().collect();
        o.sort();
        o
    };
    let flat: Vec<[f64; 2]> = order.iter().flat_map(|f| drawn[f].iter().map(|p| [p[0], p[1]])).collect();
    let rd = gdal_transform_many("EPSG:4326", "EPSG:28992", &flat);
    let mut at = 0;
    let mut worst: f64 = 0.0;
    for fid in &order {
        let pts = &drawn[fid];
        let id = &id_of_fid[fid];
        let src = &by_id[id];
        let bbox = |it: &mut dyn Iterator<Item = [f64; 3]>| {
            it.fold([f64::MAX, f64::MAX, f64::MAX, f64::MIN, f64::MIN, f64::MIN], |b, p| {
                [
                    b[0].min(p[0]),
                    b[1].min(p[1]),
                    b[2].min(p[2]),
                    b[3].max(p[0]),
                    b[4].max(p[1]),
                    b[5].max(p[2]),
                ]
            })
        };
        let mine = bbox(&mut (0..pts.len()).map(|k| [rd[at + k][0], rd[at + k][1], pts[k][2]]));
        let theirs = bbox(&mut src.iter().copied());
        for k in 0..6 {
            let d = (mine[k] - theirs[k]).abs();
            worst = worst.max(d);
            assert!(d < 0.01, "{id}: footprint and heights {mine:?} vs source {theirs:?}");
        }
        at += pts.len();
    }
    println!("delft: 570 objects within {:.4} m of their source boxes", worst);

    // The feature API serves each object's footprint, type and heights.
    let server = Server::start(&store);
    let items = get_json(&format!("{}/collections/delft/items?limit=1000", server.url));
    let items = items["features"].as_array().expect("items");
    assert_eq!(items.len(), 570);
    let building = items.iter().find(|f| f["properties"]["type"] == "Building").expect("a building");
    let src = &by_id[building["properties"]["cityjson_id"].as_str().expect("id")];
    let top = src.iter().map(|p| p[2]).fold(f64::MIN, f64::max);
    assert!((building["properties"]["top"].as_f64().expect("top") - top).abs() < 0.001);
    assert_eq!(building["geometry"]["type"], "Polygon", "{building}");

    // CesiumJS draws every object once and picks one back to the feature API.
    let shot = std::env::temp_dir().join("cim-e2e-cesium-delft.png");
    let seen = oracle(
        "cesium_check.mjs",
        &[&format!("{}/3dtiles/delft/tileset.json", server.url), shot.to_str().expect("path")],
    );
    assert_eq!(seen["errors"], json!([]), "{seen}");
    assert_eq!(seen["features"], 570, "{seen}");
    let fid = seen["picked"]["fid"].as_str().expect("CesiumJS picked an object");
    assert_eq!(get(&format!("{}/collections/delft/items/{fid}", server.url), &[]).status, 200);
}

#[test]
fn cityjson_1_0_and_cityjsonseq_read_like_their_newer_forms_and_broken_files_fail_clearly() {
    let store = temp_dir("city-versions");
    let work = temp_dir("city-versions-src");
    // delft_1b (1.1) written the 1.0 way: float vertices, no transform, numeric
    // LoDs, a URN for the CRS.
    let v11 = json_file(&data("cityjson/delft_1b.json"));
    let mut v10 = v11.clone();
    let t = &v11["transform"];
    let real: Vec<Value> = v11["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .map(|v| {
            json!(
                (0..3)
                    .map(|k| v[k].as_f64().expect("c") * t["scale"][k].as_f64().expect("s")
                        + t["translate"][k].as_f64().expect("t"))
                    .collect::<Vec<f64>>()
            )
        })
        .collect();
    v10["vertices"] = json!(real);
    v10.as_object_mut().expect("doc").remove("transform");
    v10["version"] = json!("1.0");
    v10["metadata"] = json!({"referenceSystem": "urn:ogc:def:crs:EPSG::7415"});
    for o in v10["CityObjects"].as_object_mut().expect("objects").values_mut() {
        for g in o["geometry"].as_array_mut().into_iter().flatten() {
            g["lod"] = json!(1);
        }
    }
    let v10_path = work.join("delft_1b_v10.json");
    std::fs::write(&v10_path, v10.to_string()).expect("write");
    ingest_ok(&store, "v11", &[], &[&data("cityjson/delft_1b.json")]);
    ingest_ok(&store, "v10", &[], &[&v10_path]);
    let a = json_file(&store.join("v10/catalogue.json"));
    assert_eq!(a["city_model"]["versions"], json!(["1.0"]));
    assert_eq!(a["city_model"]["objects_by_lod"], json!({"1": 1}));
    assert_eq!(a["source_crs"], "EPSG:7415");
    let positions = |layer: &str| -> Vec<i64> {
        let decoded = decode_meshes(&glb_files(&store.join(layer)));
        let mut p: Vec<i64> = decoded
            .iter()
            .flat_map(|f| {
                f["primitives"][0]["positions"]
                    .as_array()
                    .expect("p")
                    .iter()
                    .map(|v| (v.as_f64().expect("f") * 1000.0).round() as i64)
                    .collect::<Vec<_>>()
            })
            .collect();
        p.sort();
        p
    };
    assert_eq!(positions("v10"), positions("v11"), "the same vertices to the millimetre");
    let feature = |layer: &str| stored_features(&store.join(layer))[0]["properties"].clone();
    let (p10, p11) = (feature("v10"), feature("v11"));
    assert_eq!(p10["identificatiebagpnd"], p11["identificatiebagpnd"]);
    assert_eq!(p10["lod"], "1");

    // delft.json as CityJSONSeq: a header line, then one feature per top-level
    // object with its own vertices.
    let delft = json_file(&data("cityjson/delft.json"));
    let all: Vec<Value> = delft["vertices"].as_array().expect("v").clone();
    let mut lines = vec![json!({"type": "CityJSON", "version": "2.0", "transform": delft["transform"], "metadata": delft["metadata"], "CityObjects": {}, "vertices": []}).to_string()];
    for (id, o) in delft["CityObjects"].as_object().expect("objects") {
        let mut map: HashMap<u64, usize> = HashMap::new();
        let mut verts = Vec::new();
        fn remap(v: &mut Value, map: &mut HashMap<u64, usize>, verts: &mut Vec<Value>, all: &[Value]) {
            match v {
                Value::Array(a) => a.iter_mut().for_each(|x| remap(x, map, verts, all)),
                Value::Number(n) => {
                    let i = n.as_u64().expect("index");
                    let k = *map.entry(i).or_insert_with(|| {
                        verts.push(all[i as usize].clone());
                        verts.len() - 1
                    });
                    *v = json!(k);
                }
                _ => {}
            }
        }
        let mut o = o.clone();
        for g in o["geometry"].as_array_mut().into_iter().flatten() {
            remap(&mut g["boundaries"], &mut map, &mut verts, &all);
        }
        lines.push(
            json!({"type": "CityJSONFeature", "id": id, "CityObjects": {id.clone(): o}, "vertices": verts})
                .to_string(),
        );
    }
    let seq = work.join("delft.city.jsonl");
    std::fs::write(&seq, lines.join("\n") + "\n").expect("write");
    ingest_ok(&store, "seq", &[], &[&seq]);
    let s = json_file(&store.join("seq/catalogue.json"));
    assert_eq!(s["city_model"]["versions"], json!(["2.0 (CityJSONSeq)"]));
    assert_eq!(s["city_model"]["objects_by_type"]["Building"], 160);
    assert_eq!(s["feature_count"], 570);

    // Broken files name the file and the place; the served layer stays.
    let server = Server::start(&store);
    let before = get_json(&format!("{}/api/layers", server.url));
    let text = std::fs::read_to_string(data("cityjson/delft_1b.json")).expect("read");
    let truncated = work.join("truncated.city.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).expect("write");
    let o = ingest(&store, "v11", &[], &[&truncated]);
    assert!(!o.ok && o.stderr.contains("truncated.city.json") && o.stderr.contains("line"), "{}", o.stderr);
    let mut bad_index = v11.clone();
    let id = bad_index["CityObjects"].as_object().expect("objects").keys().next().expect("id").clone();
    bad_index["CityObjects"][&id]["geometry"][0]["boundaries"][0][0][0][0] = json!(999_999);
    let bad_path = work.join("bad_index.city.json");
    std::fs::write(&bad_path, bad_index.to_string()).expect("write");
    let o = ingest(&store, "v11", &[], &[&bad_path]);
    assert!(
        !o.ok && o.stderr.contains(&id) && o.stderr.contains("vertex 999999 does not exist"),
        "{}",
        o.stderr
    );
    let no_crs = ingest(&store, "v11", &[], &[&data("cityjson/multi_lod.json")]);
    assert!(
        !no_crs.ok && no_crs.stderr.contains("multi_lod.json") && no_crs.stderr.contains("declares no CRS"),
        "{}",
        no_crs.stderr
    );
    let wrong = ingest(&store, "v11", &["--src-crs", "EPSG:4326"], &[&data("cityjson/delft_1b.json")]);
    assert!(!wrong.ok && wrong.stderr.contains("wrong CRS"), "{}", wrong.stderr);
    for o in [&no_crs, &wrong] {
        assert!(!o.stderr.contains("panicked"));
    }
    assert_eq!(get_json(&format!("{}/api/layers", server.url)), before, "nothing changed");
}

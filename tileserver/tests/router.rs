//! The router driven in-process with `oneshot`, on a store written with cim-core.

use std::path::{Path, PathBuf};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use cim_core::catalogue::{CatalogueEntry, FEATURES_FILE, LayerContent, SERVICE_FRAME};
use cim_core::feature_file::FeatureFileWriter;
use cim_core::mvt::{DEFAULT_EXTENT, LayerBuilder, TileGeometry, encode_tile};
use cim_core::pmtiles::{ArchiveInfo, Compression, TileType, Writer, gzip};
use cim_core::tile::TileId;
use cim_tileserver::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

fn square(fid: u64, x: f64, y: f64) -> Value {
    json!({"type": "Feature", "id": fid, "properties": {"name": format!("sq{fid}")},
           "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 1.0, y], [x + 1.0, y + 1.0], [x, y + 1.0], [x, y]]]}})
}

/// Writes version `version` of layer `demo` with `n` unit squares and points the
/// layer's symlink at it, as cim-ingest does.
fn publish(store: &Path, version: &str, n: u64) {
    let dir = store.join(".versions").join(format!("demo@{version}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut features = FeatureFileWriter::new(Vec::new()).expect("features");
    for i in 1..=n {
        let x = i as f64 * 2.0;
        features
            .push(i, Some([x, 10.0, x + 1.0, 11.0]), square(i, x, 10.0).to_string().as_bytes())
            .expect("feature");
    }
    std::fs::write(dir.join(FEATURES_FILE), features.finish().expect("features")).expect("features");
    let mut layer = LayerBuilder::new("demo", DEFAULT_EXTENT);
    for i in 1..=n {
        layer.add_feature(i, &TileGeometry::Points(vec![[2048 + i as i32, 2000]]), &[]);
    }
    let mut writer = Writer::new(TileType::Mvt, Compression::Gzip);
    writer.add_tile(TileId::new(0, 0, 0).expect("tile"), &gzip(&encode_tile(&[layer]))).expect("tile");
    let info = ArchiveInfo {
        bounds: [2.0, 10.0, 12.0, 11.0],
        center: [7.0, 10.5],
        center_zoom: 0,
        metadata: json!({}),
    };
    let file = std::fs::File::create(dir.join("tiles.pmtiles")).expect("archive");
    writer.finish(&info, &mut std::io::BufWriter::new(file)).expect("write archive");
    let catalogue = CatalogueEntry {
        id: "demo".into(),
        content: LayerContent::Vector,
        version: version.into(),
        bounds_wgs84: [2.0, 10.0, 2.0 * n as f64 + 1.0, 11.0],
        bounds_service_frame: [2.0, 10.0, 0.0, 2.0 * n as f64 + 1.0, 11.0, 0.0],
        service_frame: SERVICE_FRAME.into(),
        source_crs: "EPSG:4326".into(),
        sources: vec![],
        feature_count: n,
        geometry_types: vec!["Polygon".into()],
        attributes: vec![],
        min_zoom: 0,
        max_zoom: 1,
        mvt_archive: Some("tiles.pmtiles".into()),
        tileset: None,
        features: FEATURES_FILE.into(),
        building_count: 0,
        ingested_at: "2026-11-22T00:00:00Z".into(),
        tool: "test".into(),
        classification: cim_core::catalogue::Classification::Public,
        owner: None,
        update_cycle: None,
        attribute_rules: Vec::new(),
        coarsen: None,
        governance_history: Vec::new(),
    };
    std::fs::write(dir.join("catalogue.json"), serde_json::to_vec(&catalogue).expect("json"))
        .expect("catalogue");
    let link = store.join("demo");
    let tmp = store.join(".demo.swap");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new(".versions").join(format!("demo@{version}")), &tmp)
        .expect("symlink");
    std::fs::rename(&tmp, &link).expect("swap");
}

fn store(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cim-router-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("store");
    dir
}

async fn call(
    state: &AppState,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri).header(header::HOST, "test.local");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app(state.clone()).oneshot(req.body(Body::empty()).expect("request")).await.expect("response");
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, to_bytes(body, usize::MAX).await.expect("body").to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("json body")
}

#[tokio::test]
async fn serves_catalogue_items_pick_and_tiles() {
    let dir = store("serve");
    publish(&dir, "v1", 3);
    let state = AppState::open(&dir).expect("state");
    let (status, _, body) = call(&state, "/api/layers", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)[0]["id"], "demo");

    let (_, _, body) = call(&state, "/collections/demo/items?limit=2", &[]).await;
    let page = json_of(&body);
    assert_eq!(page["numberMatched"], 3);
    assert_eq!(page["features"].as_array().map(Vec::len), Some(2));
    let next =
        page["links"].as_array().expect("links").iter().find(|l| l["rel"] == "next").expect("next link");
    assert_eq!(next["href"], "http://test.local/collections/demo/items?limit=2&offset=2");

    let (status, _, body) = call(&state, "/collections/demo/items/2", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["properties"]["name"], "sq2");
    assert_eq!(call(&state, "/collections/demo/items/99", &[]).await.0, StatusCode::NOT_FOUND);

    let (_, _, body) = call(&state, "/api/pick?lon=4.5&lat=10.5", &[]).await;
    let ids: Vec<u64> = json_of(&body)["features"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|f| f["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![2]);
    let (_, _, body) = call(&state, "/api/query?bbox=1,9,5,12", &[]).await;
    assert_eq!(json_of(&body)["numberMatched"], 2);
    // Any box can be fetched whole, a page at a time.
    let mut url = "/api/query?bbox=0,9,10,12&limit=2".to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, headers, body) = call(&state, &url, &[("accept-encoding", "gzip")]).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let page = if headers.get(header::CONTENT_ENCODING).is_some() {
            json_of(&cim_core::pmtiles::decompress(&body, Compression::Gzip).expect("gunzip"))
        } else {
            json_of(&body)
        };
        assert_eq!(page["numberMatched"], 3);
        pages.push(
            page["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f["id"].clone())
                .collect::<Vec<_>>(),
        );
        match page["links"].as_array().expect("links").iter().find(|l| l["rel"] == "next") {
            Some(next) => {
                url = next["href"].as_str().expect("href").trim_start_matches("http://test.local").to_owned()
            }
            None => {
                assert_eq!(page["truncated"], false);
                break;
            }
        }
    }
    assert_eq!(pages, vec![vec![json!(1), json!(2)], vec![json!(3)]]);

    let (status, headers, gz) = call(&state, "/tiles/demo/0/0/0.mvt", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let etag = headers[header::ETAG].to_str().expect("etag").to_owned();
    let (status, _, plain) = call(&state, "/tiles/demo/0/0/0.mvt", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cim_core::pmtiles::decompress(&gz, Compression::Gzip).expect("gunzip"), plain);
    let (status, _, body) =
        call(&state, "/tiles/demo/0/0/0.mvt", &[("accept-encoding", "gzip"), ("if-none-match", &etag)]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    // Inside the layer's zooms but empty: 204, cacheable and revalidated like a tile.
    let (status, headers, body) = call(&state, "/tiles/demo/1/0/0.mvt", &[]).await;
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
    assert!(headers[header::CACHE_CONTROL].to_str().expect("cache").contains("max-age=60"));
    let empty = headers[header::ETAG].to_str().expect("etag").to_owned();
    assert_eq!(empty, "\"v1-empty\"");
    let (status, _, _) = call(&state, "/tiles/demo/1/1/1.mvt", &[("if-none-match", &empty)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // Past the layer's zooms: not found, naming the zooms there are.
    let (status, _, body) = call(&state, "/tiles/demo/2/0/0.mvt", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("zooms 0 to 1"), "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn garbage_parameters_get_json_errors() {
    let dir = store("errors");
    publish(&dir, "v1", 1);
    let state = AppState::open(&dir).expect("state");
    for (uri, status) in [
        ("/tiles/demo/x/0/0.mvt", StatusCode::BAD_REQUEST),
        ("/tiles/demo/1/5/0.mvt", StatusCode::NOT_FOUND),
        ("/tiles/demo/0/0/0.png", StatusCode::NOT_FOUND),
        ("/tiles/other.json", StatusCode::NOT_FOUND),
        ("/tiles/..%2Fdemo.json", StatusCode::NOT_FOUND),
        ("/collections/demo/items?offset=x", StatusCode::BAD_REQUEST),
        ("/collections/demo/items?bbox=0,0,1", StatusCode::BAD_REQUEST),
        ("/collections/demo/items?bbox=0,0,1,nan", StatusCode::BAD_REQUEST),
        ("/api/pick?lon=1", StatusCode::BAD_REQUEST),
        ("/3dtiles/demo/tileset.json", StatusCode::NOT_FOUND),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        let (got, headers, body) = call(&state, uri, &[]).await;
        assert_eq!(got, status, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        assert!(json_of(&body)["description"].is_string(), "{uri}");
    }
}

#[tokio::test]
async fn a_republished_layer_replaces_the_cached_one() {
    let dir = store("reload");
    publish(&dir, "v1", 1);
    let state = AppState::open(&dir).expect("state");
    let (_, _, body) = call(&state, "/collections/demo/items", &[]).await;
    assert_eq!(json_of(&body)["numberMatched"], 1);
    publish(&dir, "v2", 4);
    let (_, _, body) = call(&state, "/collections/demo/items", &[]).await;
    assert_eq!(json_of(&body)["numberMatched"], 4);
}

async fn post(state: &AppState, uri: &str, body: &Value) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header(header::HOST, "test.local")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = app(state.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    (
        status,
        serde_json::from_slice(&to_bytes(resp.into_body(), usize::MAX).await.expect("body"))
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn sensors_are_a_catalogue_layer_and_an_ogc_collection_and_sit_on_their_feature() {
    let dir = store("sensors");
    publish(&dir, "v1", 3);
    let state = AppState::open(&dir).expect("state");

    // Attached to square 3 (6..7 E, 10..11 N) with no position: placed inside it.
    let (status, body) =
        post(&state, "/api/sensors", &json!({"id":"door-3","kind":"door","unit":"open","feature":"demo/3"}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (lon, lat) = (body["lon"].as_f64().expect("lon"), body["lat"].as_f64().expect("lat"));
    assert!((6.0..=7.0).contains(&lon) && (10.0..=11.0).contains(&lat), "{lon},{lat}");
    // A bare feature id is searched in every layer.
    let (status, body) =
        post(&state, "/api/sensors", &json!({"id":"t-1","kind":"temperature","unit":"°C","feature":"1"}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!((2.0..=3.0).contains(&body["lon"].as_f64().expect("lon")), "{body}");
    // One that matches nothing is refused with the reason.
    for reference in ["demo/99", "2O2Fr$t4X7Zf8NOew3FLOH", "nolayer/1"] {
        let (status, body) =
            post(&state, "/api/sensors", &json!({"id":"x","kind":"t","unit":"C","feature":reference})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reference}");
        assert!(body["description"].as_str().is_some_and(|d| d.contains("matches no feature")), "{body}");
    }
    let (status, _) = post(
        &state,
        "/api/sensors",
        &json!({"id":"far","kind":"temperature","unit":"°C","lon":100.0,"lat":-5.0,"height":3.0}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // In the catalogue after the ingested layers, with its extent and attributes.
    let (_, _, body) = call(&state, "/api/layers", &[]).await;
    let layers = json_of(&body);
    assert_eq!(layers[0]["id"], "demo");
    let sensors = &layers[1];
    assert_eq!((sensors["id"].as_str(), sensors["kind"].as_str()), (Some("sensors"), Some("sensors")));
    assert_eq!(sensors["feature_count"], 3);
    assert_eq!(sensors["bounds_wgs84"][2], 100.0);
    assert_eq!(sensors["bounds_wgs84"][1], -5.0);
    assert!(sensors["attributes"].as_array().expect("attributes").iter().any(|a| a["name"] == "state"));
    let version = sensors["version"].clone();
    post(
        &state,
        "/api/sensors",
        &json!({"id":"far","kind":"temperature","unit":"°C","lon":101.0,"lat":-5.0}),
    )
    .await;
    let (_, _, body) = call(&state, "/api/layers", &[]).await;
    assert_ne!(json_of(&body)[1]["version"], version, "moving a sensor changes the layer version");

    // OGC API - Features: listed, filtered by bbox and kind, paged, one by id.
    let (_, _, body) = call(&state, "/collections", &[]).await;
    let ids: Vec<String> = json_of(&body)["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["demo", "sensors"]);
    let (status, _, body) = call(&state, "/collections/sensors/items?bbox=0,0,10,20", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let page = json_of(&body);
    assert_eq!(page["numberMatched"], 2);
    assert_eq!(page["features"][0]["id"], "door-3");
    assert_eq!(page["features"][0]["geometry"]["type"], "Point");
    assert_eq!(page["features"][0]["properties"]["state"], "unknown");
    let (_, _, body) = call(&state, "/collections/sensors/items?kind=temperature&limit=1", &[]).await;
    let page = json_of(&body);
    assert_eq!((page["numberMatched"].as_u64(), page["numberReturned"].as_u64()), (Some(2), Some(1)));
    let next = page["links"].as_array().expect("links").iter().find(|l| l["rel"] == "next").expect("next");
    assert_eq!(next["href"], "http://test.local/collections/sensors/items?limit=1&kind=temperature&offset=1");
    let (status, _, body) = call(&state, "/collections/sensors/items/far", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["geometry"]["coordinates"], json!([101.0, -5.0]));
    assert_eq!(call(&state, "/collections/sensors/items/nobody", &[]).await.0, StatusCode::NOT_FOUND);
    let (_, _, body) = call(&state, "/collections/sensors", &[]).await;
    assert!(json_of(&body)["description"].as_str().is_some_and(|d| d.contains("3 live sensors")));
}

#[tokio::test]
async fn the_web_bundle_is_served_in_the_encoding_asked_for_and_a_stale_variant_is_never_used() {
    let dir = store("web");
    let module = b"\0asm\x01\0\0\0 a module".repeat(40);
    std::fs::write(dir.join("index.html"), "<canvas id=\"cim-viewer\"></canvas>").expect("page");
    for js in ["cim_viewer.js", "cim_viewer_webgpu.js", "decode-worker.js"] {
        std::fs::write(dir.join(js), "export default async function init() {}").expect("js");
    }
    std::fs::write(dir.join("cim_viewer_webgpu_bg.wasm"), &module).expect("wasm");
    std::fs::write(dir.join("cim_viewer_bg.wasm"), &module).expect("wasm");
    std::fs::write(dir.join("cim_viewer_bg.wasm.gz"), gzip(&module)).expect("gz");
    // The brotli variant is left from an older build: it does not decode to the module.
    std::fs::write(dir.join("cim_viewer_bg.wasm.br"), b"old bytes").expect("br");
    let mut state = AppState::open(&dir).expect("state");
    state.web = Some(std::sync::Arc::new(cim_tileserver::web::WebBundle::load(&dir).expect("bundle")));

    let url = "/viewer/cim_viewer_bg.wasm";
    let (status, headers, body) = call(&state, url, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "the stale .br must not be served");
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded).expect("gunzip");
    assert_eq!(decoded, module);
    let (_, headers, body) = call(&state, url, &[]).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body, module);

    let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    let (status, headers, body) = call(&state, "/", &html).await;
    assert_eq!(
        (status, &headers[header::CONTENT_TYPE]),
        (StatusCode::OK, &"text/html; charset=utf-8".parse().expect("value"))
    );
    assert!(String::from_utf8_lossy(&body).contains("cim-viewer"));
    let (_, _, body) = call(&state, "/", &[("accept", "*/*")]).await;
    assert_eq!(json_of(&body)["links"][3]["href"], "http://test.local/?f=html");
    assert_eq!(call(&state, "/viewer/index.html", &[]).await.0, StatusCode::NOT_FOUND);

    // Without a bundle a browser still gets the API's landing page; f=html says why not.
    state.web = None;
    let (status, _, body) = call(&state, "/", &html).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json_of(&body)["links"].as_array().is_some_and(|l| l.len() == 3));
    let (status, _, body) = call(&state, "/?f=html", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json_of(&body)["description"].as_str().is_some_and(|d| d.contains("build-web.sh")));
    assert_eq!(call(&state, "/viewer/cim_viewer.js", &[]).await.0, StatusCode::NOT_FOUND);

    // A bundle directory without the module is refused at start, naming the file.
    std::fs::remove_file(dir.join("cim_viewer_bg.wasm")).expect("rm");
    let error = cim_tileserver::web::WebBundle::load(&dir).err().expect("refused").to_string();
    assert!(error.contains("cim_viewer_bg.wasm"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_load_of_a_layer_version() {
    let dir = store("single-flight");
    publish(&dir, "v1", 80);
    let state = AppState::open(&dir).expect("state");
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move {
                let uri =
                    if i % 2 == 0 { "/collections/demo/items?limit=1" } else { "/tiles/demo/0/0/0.mvt" };
                call(&state, uri, &[]).await.0
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(state.layers.loads(), 1, "eight first requests, one load");
    publish(&dir, "v2", 3);
    assert_eq!(call(&state, "/collections/demo/items?limit=1", &[]).await.0, StatusCode::OK);
    assert_eq!(state.layers.loads(), 2, "a new version is loaded once more");
}

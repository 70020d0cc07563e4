//! The WebAssembly viewer end to end: `cim-server --web` serves the bundle that
//! `scripts/build-web.sh` made, and headless Chromium (Debian's, driven by
//! playwright-core, WebGL2 through SwiftShader) opens it over Helsinki as a browser
//! user would: the page loads from `/`, the module fetches the tiles from the page's
//! own origin, the canvas shows the buildings, and a click on a known building shows
//! that building's attributes from the feature API. Any console error fails the test.

use std::path::PathBuf;

use cim_e2e::*;
use serde_json::Value;

/// The bundle `scripts/build-web.sh` wrote (the README's test command runs it first).
fn web_bundle() -> PathBuf {
    let dir = std::env::var_os("CIM_WEB_DIST").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/cim/target")
        });
        PathBuf::from(format!("{}-web/dist", target.display()))
    });
    assert!(
        dir.join("cim_viewer_bg.wasm").is_file(),
        "no browser bundle in {}: run scripts/build-web.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn helsinki_with_viewer(tag: &str) -> (TempDir, Server, Value) {
    let store = temp_dir(tag);
    ingest_ok(&store, "helsinki", &["--max-zoom", "16"], &[&data("osm/Helsinki.osm.pbf")]);
    let bundle = web_bundle();
    let server = Server::start_with(&store, &["--web", bundle.to_str().expect("utf-8 path")]);
    let items = get_json(&format!("{}/collections/helsinki/items?limit=10000", server.url));
    (store, server, items)
}

const CHROMIUM_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

#[test]
fn browsers_get_the_viewer_at_root_precompressed_while_api_clients_keep_the_json_landing_page() {
    let (_store, server, _) = helsinki_with_viewer("browser-http");
    let bundle = web_bundle();
    let page = get(&format!("{}/", server.url), &[("Accept", CHROMIUM_ACCEPT)]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains(r#"<canvas id="cim-viewer""#) && html.contains("'cim_viewer_webgpu' : 'cim_viewer'"),
        "{html}"
    );

    // curl, GDAL and OGC clients ask for anything or for JSON: the API's landing page,
    // now with a link to the viewer.
    for accept in ["*/*", "application/json"] {
        let landing = get(&format!("{}/", server.url), &[("Accept", accept)]).json();
        let links = landing["links"].as_array().expect("links");
        assert!(links.iter().any(|l| l["rel"] == "data"), "{landing}");
        assert!(links.iter().any(|l| l["rel"] == "alternate" && l["type"] == "text/html"), "{landing}");
    }
    assert_eq!(
        get(&format!("{}/?f=json", server.url), &[("Accept", CHROMIUM_ACCEPT)]).json()["links"][0]["rel"],
        "self"
    );
    assert_eq!(get(&format!("{}/?f=pdf", server.url), &[]).status, 400);

    // The module in the best encoding the client takes, byte-identical once decoded.
    let raw = std::fs::read(bundle.join("cim_viewer_bg.wasm")).expect("bundle wasm");
    assert_eq!(&raw[..4], b"\0asm");
    let wasm_url = format!("{}/viewer/cim_viewer_bg.wasm", server.url);
    let identity = get(&wasm_url, &[("Accept-Encoding", "identity")]);
    assert_eq!(identity.header("content-type"), Some("application/wasm"));
    assert_eq!(identity.header("content-encoding"), None);
    assert!(identity.body == raw, "identity body differs from the bundle's file");
    let gz = get(&wasm_url, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut unzipped)
        .expect("gunzip");
    assert!(unzipped == raw, "gzip variant decodes to a different module");
    let br = get(&wasm_url, &[("Accept-Encoding", "gzip, deflate, br, zstd")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(
        br.body.len() < gz.body.len() && gz.body.len() < raw.len() / 2,
        "br {} gz {} raw {}",
        br.body.len(),
        gz.body.len(),
        raw.len()
    );
    // Unversioned names: revalidated each time, 304 when unchanged.
    assert_eq!(br.header("cache-control"), Some("no-cache"));
    let etag = br.header("etag").expect("etag").to_owned();
    let again = get(&wasm_url, &[("Accept-Encoding", "br"), ("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    for js in ["cim_viewer.js", "cim_viewer_webgpu.js"] {
        let js = get(&format!("{}/viewer/{js}", server.url), &[]);
        assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    }
    let webgpu =
        get(&format!("{}/viewer/cim_viewer_webgpu_bg.wasm", server.url), &[("Accept-Encoding", "br")]);
    assert_eq!((webgpu.status, webgpu.header("content-encoding")), (200, Some("br")));
    assert_eq!(get(&format!("{}/viewer/secrets.txt", server.url), &[]).status, 404);
    assert_eq!(get(&format!("{}/viewer/..%2FCargo.toml", server.url), &[]).status, 404);
}

#[test]
fn the_browser_viewer_draws_helsinki_from_its_own_origin_and_a_click_shows_the_buildings_attributes() {
    let (_store, server, items) = helsinki_with_viewer("browser");
    let (fid, lon, lat) = deep_inside_the_largest_building(&items);
    let out = temp_dir("browser-shots");
    let url = format!("{}/?camera={lon},{lat},700,0,-89.9&hide=helsinki/ground&shadows=off", server.url);
    let run = oracle(
        "browser_viewer.mjs",
        &["--url", &url, "--out", out.to_str().expect("utf-8 path"), "--click", "400,300"],
    );
    assert!(run["failure"].is_null(), "{}", run);
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    assert_eq!(run["status"], "", "the page's status line should be cleared: {}", run["status"]);

    // Everything came from the page's origin; the module itself arrived compressed.
    let responses = run["responses"].as_array().expect("responses");
    let from = |path: &'static str| {
        responses.iter().filter(move |r| r["url"].as_str().is_some_and(|u| u.contains(path)))
    };
    let wasm = from("/viewer/cim_viewer_bg.wasm").next().expect("the module was fetched");
    assert_eq!((wasm["status"].as_u64(), wasm["type"].as_str()), (Some(200), Some("application/wasm")));
    assert!(wasm["encoding"] == "br" || wasm["encoding"] == "gzip", "{wasm}");
    // This browser has no WebGPU adapter: the page took the WebGL2 build alone.
    assert_eq!(from("/viewer/cim_viewer_webgpu").count(), 0);
    assert!(renderer_line(&run).starts_with("renderer Gl "), "{}", run["log"]);
    let glbs: Vec<&Value> = from("/3dtiles/helsinki/").filter(|r| r["type"] == "model/gltf-binary").collect();
    assert!(glbs.len() >= 2, "building tiles fetched: {}", glbs.len());
    assert!(glbs.iter().all(|r| r["status"] == 200 && r["bytes"].as_u64() > Some(1000)), "{glbs:?}");
    // The tiles were decoded in Web Workers running the same module, not on the page.
    let (workers, decoded) = decoders_line(&run);
    assert!(workers >= 1 && run["workers"].as_array().map(Vec::len) == Some(workers), "{run}");
    assert!(decoded >= 2, "{decoded} tiles decoded in workers");
    assert!(from("/viewer/decode-worker.js").any(|r| r["status"] == 200));
    assert!(from("/api/layers").any(|r| r["status"] == 200), "catalogue fetched");
    assert!(responses.iter().all(|r| r["url"].as_str().is_some_and(|u| u.starts_with(&server.url))));
    let failed: Vec<&Value> = responses.iter().filter(|r| r["status"].as_u64() >= Some(400)).collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");

    let _ = std::fs::copy(out.join("view.png"), std::env::temp_dir().join("cim-e2e-browser-view.png"));
    let _ = std::fs::copy(out.join("clicked.png"), std::env::temp_dir().join("cim-e2e-browser-clicked.png"));
    let (width, samples, roofs) = roofs_in_view(&out);

    // The click picked that building: its attributes reached the page, and it glows.
    let selection = run["selection"].as_str().expect("selection text");
    assert!(selection.starts_with(&format!("helsinki #{fid}\n")), "{selection}");
    let feature = get_json(&format!("{}/collections/helsinki/items/{fid}", server.url));
    let building = feature["properties"]["building"].as_str().expect("building tag");
    assert!(selection.contains(&format!("building: {building}")), "{selection}");
    let (_, _, clicked) = read_png_rgb(&out.join("clicked.png"));
    assert!(is_highlight(clicked[300 * width + 400]), "highlighted: {:?}", clicked[300 * width + 400]);
    let lit = samples.iter().filter(|&&i| is_highlight(clicked[i])).count();
    assert!(lit > 20 && lit < roofs / 3, "highlight {lit} of {roofs} roof samples");
}

/// The canvas (`view.png` in `out`) shows the city from above the largest building:
/// roofs and ground both take real shares of the view, and the centre is a roof.
/// Returns the width, the sampled pixels (the layer panel left out) and the roofs.
fn roofs_in_view(out: &std::path::Path) -> (usize, Vec<usize>, usize) {
    let (width, height, view) = read_png_rgb(&out.join("view.png"));
    assert_eq!((width, height), (800, 600));
    let samples: Vec<usize> = (40..height - 40)
        .step_by(4)
        .flat_map(|y| (0..width).step_by(4).map(move |x| y * width + x))
        .filter(|&i| !(i % width < 200 && i / width > height - 260))
        .collect();
    let roofs = samples.iter().filter(|&&i| is_building(view[i])).count();
    assert!(
        roofs > samples.len() / 20 && roofs < samples.len() * 19 / 20,
        "building share {roofs}/{}",
        samples.len()
    );
    assert!(
        is_building(view[300 * width + 400]),
        "the centre is the largest building's roof: {:?}",
        view[300 * width + 400]
    );
    (width, samples, roofs)
}

/// The viewer's `renderer BACKEND ADAPTER` console line: what bevy actually drew with.
fn renderer_line(run: &Value) -> String {
    run["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str()?.strip_prefix("log: "))
        .find(|l| l.starts_with("renderer ") && !l.starts_with("renderer build"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_browser_with_webgpu_gets_the_webgpu_build_and_sees_and_picks_the_same_city() {
    let (_store, server, items) = helsinki_with_viewer("browser-webgpu");
    let (fid, lon, lat) = deep_inside_the_largest_building(&items);
    let out = temp_dir("browser-webgpu-shots");
    let url = format!("{}/?camera={lon},{lat},700,0,-89.9&hide=helsinki/ground&shadows=off", server.url);
    let run = oracle(
        "browser_viewer.mjs",
        &["--url", &url, "--out", out.to_str().expect("utf-8 path"), "--click", "400,300", "--webgpu"],
    );
    assert!(run["failure"].is_null(), "{}", run);
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    assert_eq!(run["status"], "", "{}", run["status"]);
    let responses = run["responses"].as_array().expect("responses");
    let fetched =
        |path: &str| responses.iter().filter(|r| r["url"].as_str().is_some_and(|u| u.contains(path))).count();
    assert_eq!(fetched("/viewer/cim_viewer_webgpu_bg.wasm"), 1);
    assert_eq!(fetched("/viewer/cim_viewer_bg.wasm"), 0, "the WebGL2 module too");
    // bevy drew through the browser's WebGPU, not a WebGL context.
    assert!(renderer_line(&run).starts_with("renderer BrowserWebGpu "), "{}", run["log"]);
    let (_, decoded) = decoders_line(&run);
    assert!(decoded >= 2, "{decoded} tiles decoded in workers");

    let _ = std::fs::copy(out.join("view.png"), std::env::temp_dir().join("cim-e2e-browser-webgpu-view.png"));
    let (width, _, _) = roofs_in_view(&out);
    let selection = run["selection"].as_str().expect("selection text");
    assert!(selection.starts_with(&format!("helsinki #{fid}\n")), "{selection}");
    let (_, _, clicked) = read_png_rgb(&out.join("clicked.png"));
    assert!(is_highlight(clicked[300 * width + 400]), "highlighted: {:?}", clicked[300 * width + 400]);

    // Insisting on WebGPU where there is none is said on the page, not a blank canvas.
    let run = oracle(
        "browser_viewer.mjs",
        &[
            "--url",
            &format!("{}/?backend=webgpu", server.url),
            "--out",
            out.to_str().expect("utf-8 path"),
            "--until-status",
            "--timeout",
            "120",
        ],
    );
    let status = run["status"].as_str().expect("status line");
    assert!(status.contains("no WebGPU adapter"), "{status}");
    assert_eq!(fetched_in(&run, "/viewer/cim_viewer"), 0);
}

#[test]
fn when_the_decoding_workers_cannot_start_the_page_decodes_the_tiles_itself_and_draws_the_same_city() {
    let (_store, server, items) = helsinki_with_viewer("browser-no-workers");
    let (_, lon, lat) = deep_inside_the_largest_building(&items);
    let out = temp_dir("browser-no-workers-shots");
    let url = format!("{}/?camera={lon},{lat},700,0,-89.9&hide=helsinki/ground&shadows=off", server.url);
    let run = oracle(
        "browser_viewer.mjs",
        &["--url", &url, "--out", out.to_str().expect("utf-8 path"), "--break-workers"],
    );
    assert!(run["failure"].is_null(), "{}", run);
    // The browser's own complaint about the missing script is the only error.
    let errors: Vec<&str> =
        run["errors"].as_array().expect("errors").iter().filter_map(Value::as_str).collect();
    assert!(errors.iter().all(|e| e.contains("404")), "console errors: {errors:?}");
    let scripts: Vec<&Value> = responses_to(&run, "/viewer/decode-worker.js").collect();
    assert!(!scripts.is_empty() && scripts.iter().all(|r| r["status"] == 404), "{scripts:?}");
    assert_eq!(run["status"], "", "{}", run["status"]);

    // Every worker started and failed; each one's tiles went back to the page.
    let (workers, decoded) = decoders_line(&run);
    assert_eq!(decoded, 0, "{}", run["log"]);
    let handed_back = run["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|l| {
            l.starts_with("log: decoding worker ") && l.ends_with("its tiles are decoded on the page")
        })
        .count();
    assert!(
        workers >= 1 && handed_back == workers,
        "{workers} workers, {handed_back} failed: {}",
        run["log"]
    );
    let glbs = responses_to(&run, "/3dtiles/helsinki/")
        .filter(|r| r["status"] == 200 && r["type"] == "model/gltf-binary")
        .count();
    assert!(glbs >= 2, "building tiles fetched: {glbs}");
    let _ = std::fs::copy(out.join("view.png"), std::env::temp_dir().join("cim-e2e-browser-no-workers.png"));
    roofs_in_view(&out);
}

/// The viewer's `decoders N workers decoded M tiles` line at view_complete.
fn decoders_line(run: &Value) -> (usize, usize) {
    let line = run["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str()?.strip_prefix("log: decoders "))
        .next()
        .unwrap_or_else(|| panic!("no decoders line: {}", run["log"]));
    let numbers: Vec<usize> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    (numbers[0], numbers[1])
}

fn fetched_in(run: &Value, path: &str) -> usize {
    responses_to(run, path).count()
}

/// The responses the page got for addresses containing `path`.
fn responses_to<'a>(run: &'a Value, path: &'a str) -> impl Iterator<Item = &'a Value> {
    run["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |r| r["url"].as_str().is_some_and(|u| u.contains(path)))
}

#[test]
fn live_sensor_alarms_reach_the_browser_viewer_over_its_websocket() {
    let (_store, server, items) = helsinki_with_viewer("browser-live");
    let (lon, lat) = boiler_in_alarm_on_the_largest_building(&server, &items);
    let out = temp_dir("browser-live-shots");
    let url = format!("{}/?camera={lon},{lat},700,0,-89.9&hide=helsinki/ground&shadows=off", server.url);
    let run = oracle("browser_viewer.mjs", &["--url", &url, "--out", out.to_str().expect("utf-8 path")]);
    assert!(run["failure"].is_null(), "{}", run);
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    // The page's own WebSocket brought the sensors' state (at least the snapshot).
    let sockets = run["websockets"].as_array().expect("websockets");
    assert!(
        sockets.iter().any(|w| w["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&server.url.replace("http", "ws")) && u.contains("/api/live"))
            && w["frames_received"].as_u64() >= Some(1)
            && w["closed"] == false),
        "{sockets:?}"
    );
    let (width, height, view) = read_png_rgb(&out.join("view.png"));
    let _ = std::fs::copy(out.join("view.png"), std::env::temp_dir().join("cim-e2e-browser-live.png"));
    assert!(
        is_alarm_red(view[300 * width + 400]),
        "an alarm marker over the building: {:?}",
        view[300 * width + 400]
    );
    // One marker, not a red wash.
    let red: Vec<usize> = (40..height - 40)
        .step_by(4)
        .flat_map(|y| (0..width).step_by(4).map(move |x| y * width + x))
        .filter(|&i| is_alarm_red(view[i]))
        .collect();
    assert!(
        red.iter().all(|&i| (i % width).abs_diff(400) < 40 && (i / width).abs_diff(300) < 40),
        "{} red",
        red.len()
    );
}

#[test]
fn a_mistyped_page_option_is_named_on_the_page_instead_of_a_blank_canvas() {
    let (_store, server, _) = helsinki_with_viewer("browser-bad-option");
    let out = temp_dir("browser-bad-option-shots");
    let url = format!("{}/?zoom=3&camera=24.9,60.1,700", server.url);
    let run = oracle(
        "browser_viewer.mjs",
        &["--url", &url, "--out", out.to_str().expect("utf-8 path"), "--until-status", "--timeout", "120"],
    );
    assert!(run["failure"].is_null(), "{}", run);
    let status = run["status"].as_str().expect("status line");
    assert!(status.starts_with("The viewer cannot start: unknown option 'zoom'"), "{status}");
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    // It stopped before asking the server for anything.
    let responses = run["responses"].as_array().expect("responses");
    assert!(!responses.iter().any(|r| r["url"].as_str().is_some_and(|u| u.contains("/api/layers"))));
}

#[test]
fn chinese_attributes_fetch_the_cjk_font_on_demand_and_the_canvas_panel_switches_to_it() {
    // One 60 m x 40 m, 40 m tall building at Jiefangbei, Chongqing, named in Chinese.
    let store = temp_dir("browser-cjk");
    let (lon, lat): (f64, f64) = (106.5775, 29.5576);
    let (dx, dy) = (30.0 / (111_320.0 * lat.to_radians().cos()), 20.0 / 110_574.0);
    let ring = serde_json::json!([
        [lon - dx, lat - dy],
        [lon + dx, lat - dy],
        [lon + dx, lat + dy],
        [lon - dx, lat + dy],
        [lon - dx, lat - dy]
    ]);
    let collection = serde_json::json!({"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"building": "commercial", "height": 40, "name": "解放碑步行街", "addr:street": "民族路"},
        "geometry": {"type": "Polygon", "coordinates": [ring]}
    }]});
    let file = store.join("jiefangbei.geojson");
    std::fs::write(&file, collection.to_string()).expect("write GeoJSON");
    ingest_ok(&store, "cq", &[], &[&file]);
    let bundle = web_bundle();
    let server = Server::start_with(&store, &["--web", bundle.to_str().expect("utf-8 path")]);
    let out = temp_dir("browser-cjk-shots");
    let url = format!("{}/?camera={lon},{lat},300,0,-89.9&shadows=off", server.url);
    let run = oracle(
        "browser_viewer.mjs",
        &[
            "--url",
            &url,
            "--out",
            out.to_str().expect("utf-8 path"),
            "--click",
            "400,300",
            "--wait-log",
            "WenQuanYi",
        ],
    );
    assert!(run["failure"].is_null(), "{}", run);
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    let selection = run["selection"].as_str().expect("selection text");
    assert!(selection.contains("name: 解放碑步行街"), "{selection}");
    // Both fonts came from the server, compressed, only after the click needed them.
    let responses = run["responses"].as_array().expect("responses");
    for (file, kind) in [("/viewer/ui-sans.ttf", "font/ttf"), ("/viewer/ui-cjk.ttc", "font/collection")] {
        let font = responses.iter().find(|r| r["url"].as_str().is_some_and(|u| u.ends_with(file)));
        let font = font.unwrap_or_else(|| panic!("{file} fetched: {responses:?}"));
        assert_eq!((font["status"].as_u64(), font["type"].as_str()), (Some(200), Some(kind)), "{font}");
        assert!(font["encoding"] == "br" || font["encoding"] == "gzip", "{font}");
    }
    assert_eq!(run["waited"], "UI fonts ready: DejaVu Sans, WenQuanYi Micro Hei", "{}", run["log"]);
    eprintln!("fonts ready {} ms after the attributes arrived", run["waited_ms"]);
    let _ = std::fs::copy(out.join("clicked.png"), std::env::temp_dir().join("cim-e2e-browser-cjk.png"));
}

#[test]
fn a_point_cloud_draws_in_the_browser_coloured_by_class() {
    // West half class 2 (ground), east half class 6 (building).
    let store = split_survey("browser-points");
    let bundle = web_bundle();
    let server = Server::start_with(&store, &["--web", bundle.to_str().expect("utf-8 path")]);
    let out = temp_dir("browser-points-shots");
    let url = format!(
        "{}/?camera=24.95,60.17,400,0,-89.9&max_sse=0.01&point_colour=classification&shadows=off",
        server.url
    );
    let run = oracle("browser_viewer.mjs", &["--url", &url, "--out", out.to_str().expect("utf-8 path")]);
    assert!(run["failure"].is_null(), "{}", run);
    assert_eq!(run["errors"], serde_json::json!([]), "console errors: {}", run["log"]);
    let responses = run["responses"].as_array().expect("responses");
    let tiles = responses
        .iter()
        .filter(|r| {
            r["url"].as_str().is_some_and(|u| u.contains("/3dtiles/survey/"))
                && r["type"] == "model/gltf-binary"
        })
        .count();
    assert_eq!(tiles, 5, "the root and its four leaves: {responses:?}");
    let (width, _, view) = read_png_rgb(&out.join("view.png"));
    let _ = std::fs::copy(out.join("view.png"), std::env::temp_dir().join("cim-e2e-browser-points.png"));
    // As in the desktop test: about 1.7 px per metre around the centre of 800x600.
    let share = |xs: std::ops::Range<usize>, want: [u8; 3]| {
        let pixels: Vec<[u8; 3]> =
            (230..370).flat_map(|y| xs.clone().map(move |x| y * width + x)).map(|i| view[i]).collect();
        let near = |p: &[u8; 3]| p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 8);
        pixels.iter().filter(|p| near(p)).count() as f64 / pixels.len() as f64
    };
    let (ground, building) = (share(250..380, [161, 120, 79]), share(420..550, [230, 89, 64]));
    assert!(ground > 0.9 && building > 0.9, "ground brown {ground:.3} west, building red {building:.3} east");
}

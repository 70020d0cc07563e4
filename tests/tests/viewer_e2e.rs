//! The bevy viewer end to end: under Xvfb with llvmpipe it streams Helsinki from a
//! real cim-server, renders from fixed cameras and writes PNGs that are checked pixel
//! by pixel: buildings where the footprints are, the clicked building picked and
//! highlighted, roads draped where the data puts them and switched off on request,
//! and a tileset rewritten by Cesium's 3d-tiles-tools (external tilesets) drawn like
//! ours.

use std::path::Path;

use cim_e2e::*;
use serde_json::Value;

/// Major roads are drawn amber (sRGB 0.98, 0.82, 0.45 before light).
fn is_major_road([r, g, b]: [u8; 3]) -> bool {
    r > 120 && i32::from(r) - i32::from(b) > 45 && i32::from(g) - i32::from(b) > 25 && r >= g
}

struct Shot {
    stdout: String,
    stderr: String,
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// Every fourth pixel in both directions, away from the on-screen panels.
    fn samples(&self) -> Vec<(usize, usize)> {
        (40..self.height - 40)
            .step_by(4)
            .flat_map(|y| (0..self.width).step_by(4).map(move |x| (x, y)))
            .filter(|&(x, y)| !(x < 200 && y > self.height - 260))
            .collect()
    }
}

/// One viewer at a time: software rendering on a small CI machine is slow enough
/// without four rasterisers competing for two cores.
static ONE_VIEWER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs the viewer in `--screenshot` mode at 800x600 and reads the PNG back. A frame
/// that is black from corner to corner (not even the on-screen text), or only sky
/// under the panels (not even the ground plane), is a capture that Xvfb/llvmpipe
/// lost, not a rendering: that one is taken again, once.
fn shoot(server: &str, camera: &str, extra: &[&str], name: &str) -> Shot {
    let shot = shoot_once(server, camera, extra, name);
    if shot.rgb.iter().all(|p| *p == [0, 0, 0]) {
        eprintln!("{name}: an all-black capture; taking it again");
        return shoot_once(server, camera, extra, name);
    }
    // Seen once in CI: the UI drawn over a frame whose 3D pass llvmpipe lost, so
    // not even the ground plane shows, only the clear colour. Also taken again.
    // Nearly all: the layer panel grows past the area `samples` leaves out when a
    // row's label is long.
    let sky = |p: &[u8; 3]| p.iter().zip([158u8, 184, 209]).all(|(c, s)| c.abs_diff(s) <= 3);
    let samples = shot.samples();
    if samples.iter().filter(|&&(x, y)| sky(&shot.px(x, y))).count() * 100 >= samples.len() * 98 {
        eprintln!("{name}: a capture without the 3D scene; taking it again");
        return shoot_once(server, camera, extra, name);
    }
    shot
}

fn shoot_once(server: &str, camera: &str, extra: &[&str], name: &str) -> Shot {
    let _turn = ONE_VIEWER_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = temp_dir("viewer-shot");
    let png_path = out.join(format!("{name}.png"));
    let run = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24", "env", "WGPU_BACKEND=vulkan"])
        .arg(bin_dir().join("cim-viewer"))
        .args(["--server", server, "--window", "800x600", "--camera", camera])
        .args(extra)
        .arg("--screenshot")
        .arg(&png_path)
        .output()
        .expect("xvfb-run (apt-get install xvfb mesa-vulkan-drivers)");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "viewer failed: {stdout}\n{stderr}");
    // Keep a copy for a person to look at.
    let _ = std::fs::copy(&png_path, std::env::temp_dir().join(format!("cim-e2e-viewer-{name}.png")));
    let (width, height, rgb) = read_png_rgb(&png_path);
    assert_eq!((width, height), (800, 600));
    Shot { stdout, stderr, width, height, rgb }
}

fn helsinki(tag: &str) -> (TempDir, Server, Value) {
    let store = temp_dir(tag);
    ingest_ok(&store, "helsinki", &["--max-zoom", "16"], &[&data("osm/Helsinki.osm.pbf")]);
    let server = Server::start(&store);
    let items = get_json(&format!("{}/collections/helsinki/items?limit=10000", server.url));
    (store, server, items)
}

#[test]
fn the_viewer_draws_helsinki_and_a_click_selects_and_highlights_the_building_under_it() {
    let (_store, server, items) = helsinki("viewer");
    let (fid, lon, lat) = deep_inside_the_largest_building(&items);
    let camera = format!("{lon},{lat},700,0,-89.9");
    let shot = shoot(&server.url, &camera, &["--click", "400,300", "--hide", "helsinki/ground"], "helsinki");
    assert!(
        shot.stdout.contains(&format!("picked helsinki {fid}")),
        "click at the centre should pick {fid}: {}",
        shot.stdout
    );
    assert!(is_highlight(shot.px(400, 300)), "the picked building is highlighted: {:?}", shot.px(400, 300));
    let samples = shot.samples();
    let lit = samples.iter().filter(|&&(x, y)| is_highlight(shot.px(x, y))).count();
    let roofs =
        samples.iter().filter(|&&(x, y)| is_building(shot.px(x, y)) || is_highlight(shot.px(x, y))).count();
    // Over a dense centre from 700 m: buildings and ground both take real shares, and
    // the highlight covers one building, not the tile.
    assert!(
        roofs > samples.len() / 20 && roofs < samples.len() * 19 / 20,
        "building share {roofs}/{}",
        samples.len()
    );
    assert!(lit > 20 && lit < roofs / 3, "highlight {lit} of {roofs} roof samples");
}

/// Metres east and north of `(lon0, lat0)`: plenty for a few hundred metres.
fn local(lon0: f64, lat0: f64, lon: f64, lat: f64) -> (f64, f64) {
    let k = std::f64::consts::PI / 180.0 * 6_378_137.0;
    ((lon - lon0) * k * lat0.to_radians().cos(), (lat - lat0) * k)
}

#[test]
fn roads_are_draped_where_the_data_says_and_the_layer_panel_switches_them_off() {
    let (_store, server, items) = helsinki("viewer-roads");
    // The longest straight piece of a primary road, and a point 3 m off its centre line.
    let mut best: Option<(f64, f64, f64)> = None;
    for f in items["features"].as_array().expect("features") {
        if f["properties"]["highway"] != "primary" || f["geometry"]["type"] != "LineString" {
            continue;
        }
        let line = f["geometry"]["coordinates"].as_array().expect("line");
        for pair in line.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (ax, ay, bx, by) = (a[0].as_f64(), a[1].as_f64(), b[0].as_f64(), b[1].as_f64());
            let (Some(ax), Some(ay), Some(bx), Some(by)) = (ax, ay, bx, by) else { continue };
            let (dx, dy) = local(ax, ay, bx, by);
            let length = dx.hypot(dy);
            if best.is_none_or(|b| length > b.0) {
                let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
                // 3 m to the left of the direction of travel.
                let (nx, ny) = (-dy / length * 3.0, dx / length * 3.0);
                let k = std::f64::consts::PI / 180.0 * 6_378_137.0;
                best = Some((length, mx + nx / (k * my.to_radians().cos()), my + ny / k));
            }
        }
    }
    let (length, lon, lat) = best.expect("a primary road");
    assert!(length > 40.0, "a long straight piece: {length} m");
    let camera = format!("{lon},{lat},300,0,-89.9");
    let on = shoot(&server.url, &camera, &["--hide", "helsinki/buildings,rail"], "roads");
    assert!(on.stdout.contains("ground tiles drawn"), "{}", on.stdout);
    assert!(is_major_road(on.px(400, 300)), "a primary road under the centre: {:?}", on.px(400, 300));
    // Land use, parks and water are drawn too, in their own colours.
    let samples = on.samples();
    let road = samples.iter().filter(|&&(x, y)| is_major_road(on.px(x, y))).count();
    assert!(road > 50 && road < samples.len() / 2, "road share {road}/{}", samples.len());
    let off = shoot(&server.url, &camera, &["--hide", "helsinki/buildings,rail,roads"], "roads-off");
    assert!(!is_major_road(off.px(400, 300)), "roads switched off: {:?}", off.px(400, 300));
    let left = samples.iter().filter(|&&(x, y)| is_major_road(off.px(x, y))).count();
    assert!(left < road / 10, "{left} road-coloured samples left of {road}");
}

/// Cesium's 3d-tiles-tools (npm) rewrites our content as a tileset of its own
/// (`createTilesetJson`: its own root transform and boxes), then wraps that in another
/// (`merge`: the first becomes an external tileset). The viewer must draw the same
/// buildings in the same places from it as from our server.
#[test]
fn a_tileset_written_by_3d_tiles_tools_with_an_external_tileset_draws_like_ours() {
    let (store, server, items) = helsinki("viewer-foreign");
    let tools = repo_root().join("tests/oracles/node_modules/.bin/3d-tiles-tools");
    assert!(tools.exists(), "run `npm ci` in tests/oracles first (the README test command does)");
    let ours = store.join("helsinki/3dtiles");
    let tileset: Value = serde_json::from_slice(&std::fs::read(ours.join("tileset.json")).expect("tileset"))
        .expect("tileset JSON");
    let m: Vec<f64> = tileset["root"]["transform"]
        .as_array()
        .expect("transform")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let (lon0, lat0, h0) = cim_core::frame::ecef_to_geodetic([m[12], m[13], m[14]]);
    let work = temp_dir("viewer-foreign-work");
    let created = work.join("created");
    std::fs::create_dir_all(&created).expect("mkdir");
    let run_tools = |args: &[&str]| {
        let out = std::process::Command::new(&tools).args(args).output().expect("3d-tiles-tools");
        assert!(out.status.success(), "3d-tiles-tools {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let content = ours.join("content");
    let (lon_s, lat_s, h_s) = (format!("{lon0:.10}"), format!("{lat0:.10}"), format!("{h0:.4}"));
    run_tools(&[
        "createTilesetJson",
        "-f",
        "-i",
        path_str(&content),
        "-o",
        path_str(&created.join("tileset.json")),
        "--cartographicPositionDegrees",
        &lon_s,
        &lat_s,
        &h_s,
    ]);
    for entry in std::fs::read_dir(&content).expect("content") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, created.join(path.file_name().expect("name"))).expect("copy");
    }
    let merged = work.join("merged");
    run_tools(&["merge", "-f", "-i", path_str(&created), "-o", path_str(&merged)]);
    let outer: Value = serde_json::from_slice(&std::fs::read(merged.join("tileset.json")).expect("merged"))
        .expect("merged JSON");
    let external = outer["root"]["children"][0]["content"]["uri"].as_str().expect("external reference");
    assert!(external.ends_with(".json"), "merge writes an external tileset reference: {external}");

    let catalogue = get_json(&format!("{}/api/layers", server.url));
    let mut layer = catalogue[0].clone();
    layer["id"] = "foreign".into();
    layer.as_object_mut().expect("object").remove("mvt_archive");
    let foreign = StaticServer::start(
        vec![("/api/layers".into(), serde_json::to_vec(&Value::Array(vec![layer])).expect("json"))],
        vec![("/3dtiles/foreign/".into(), merged.to_path_buf())],
    );
    let (_, lon, lat) = deep_inside_the_largest_building(&items);
    let camera = format!("{lon},{lat},900,0,-89.9");
    let a = shoot(&server.url, &camera, &["--hide", "helsinki/ground"], "ours");
    let b = shoot(&foreign.url, &camera, &[], "foreign");
    assert!(b.stdout.contains("errors 0"), "{}", b.stdout);
    let samples = a.samples();
    let (mut both, mut either) = (0, 0);
    for &(x, y) in &samples {
        let (p, q) = (is_building(a.px(x, y)), is_building(b.px(x, y)));
        both += usize::from(p && q);
        either += usize::from(p || q);
    }
    assert!(both > samples.len() / 20, "buildings drawn: {both}/{}", samples.len());
    // Same buildings, same places: the building masks agree (intersection over union).
    assert!(both as f64 / either as f64 > 0.97, "IoU {both}/{either}");
}

/// Serves a copy of our tileset from a static server, with `edit` applied to the copy.
fn serve_tileset_copy(store: &Path, server: &Server, work: &Path, edit: impl Fn(&Path)) -> StaticServer {
    let copy = work.join("tileset");
    std::fs::create_dir_all(copy.join("content")).expect("mkdir");
    let ours = store.join("helsinki/3dtiles");
    std::fs::copy(ours.join("tileset.json"), copy.join("tileset.json")).expect("copy");
    for entry in std::fs::read_dir(ours.join("content")).expect("content") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, copy.join("content").join(path.file_name().expect("name"))).expect("copy");
    }
    edit(&copy);
    let catalogue = get_json(&format!("{}/api/layers", server.url));
    let mut layer = catalogue[0].clone();
    layer["id"] = "copy".into();
    layer.as_object_mut().expect("object").remove("mvt_archive");
    StaticServer::start(
        vec![("/api/layers".into(), serde_json::to_vec(&Value::Array(vec![layer])).expect("json"))],
        vec![("/3dtiles/copy/".into(), copy)],
    )
}

#[test]
fn a_missing_tile_a_corrupt_glb_and_an_unreachable_server_are_reported_while_the_rest_draws() {
    let (store, server, items) = helsinki("viewer-broken");
    let work = temp_dir("viewer-broken-work");
    let broken = serve_tileset_copy(&store, &server, &work, |copy| {
        let glb = copy.join("content/r0.glb");
        let bytes = std::fs::read(&glb).expect("glb");
        std::fs::write(&glb, &bytes[..bytes.len() / 3]).expect("truncate");
        std::fs::remove_file(copy.join("content/r1.glb")).expect("remove");
    });
    let (_, lon, lat) = deep_inside_the_largest_building(&items);
    let camera = format!("{lon},{lat},900,0,-89.9");
    let shot = shoot(&broken.url, &camera, &[], "broken");
    assert!(shot.stdout.contains("errors 2"), "{}", shot.stdout);
    assert!(shot.stderr.contains("r1.glb: HTTP 404"), "{}", shot.stderr);
    assert!(shot.stderr.contains("not a valid GLB"), "{}", shot.stderr);
    let samples = shot.samples();
    let roofs = samples.iter().filter(|&&(x, y)| is_building(shot.px(x, y))).count();
    assert!(roofs > samples.len() / 20, "the other tiles still draw: {roofs}/{}", samples.len());

    // Nothing listens on the discard port: a message, a picture, exit 0.
    let nowhere = shoot("http://127.0.0.1:9", &camera, &[], "unreachable");
    assert!(nowhere.stdout.contains("errors 1"), "{}", nowhere.stdout);
    assert!(nowhere.stderr.contains("server unreachable"), "{}", nowhere.stderr);
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn live_sensor_markers_sit_on_their_buildings_coloured_by_state() {
    let (_store, server, items) = helsinki("viewer-live");
    let (lon, lat) = boiler_in_alarm_on_the_largest_building(&server, &items);
    let camera = format!("{lon},{lat},700,0,-89.9");
    let shot = shoot(&server.url, &camera, &["--hide", "helsinki/ground"], "live");
    assert!(is_alarm_red(shot.px(400, 300)), "an alarm marker over the building: {:?}", shot.px(400, 300));
    // One marker, a few pixels across, not a red wash: red only near the centre.
    let red: Vec<(usize, usize)> =
        shot.samples().into_iter().filter(|&(x, y)| is_alarm_red(shot.px(x, y))).collect();
    assert!(!red.is_empty() && red.len() < 40, "{} red samples", red.len());
    assert!(red.iter().all(|&(x, y)| x.abs_diff(400) < 40 && y.abs_diff(300) < 40), "{red:?}");
    // Switched off from the layer panel's entry, or its kind's, the marker is gone.
    let off = shoot(&server.url, &camera, &["--hide", "helsinki/ground,sensors"], "live-off");
    assert!(!is_alarm_red(off.px(400, 300)), "{:?}", off.px(400, 300));
    let kind_off =
        shoot(&server.url, &camera, &["--hide", "helsinki/ground,sensors/temperature"], "live-kind-off");
    assert!(!is_alarm_red(kind_off.px(400, 300)), "{:?}", kind_off.px(400, 300));

    // A heat map of temperature: a cool sensor 400 m east of the hot one. Seen from
    // 1.6 km up, the west of the picture (the alarm) turns red, the east green.
    let east = lon + 400.0 / (111_320.0 * lat.to_radians().cos());
    let cool = serde_json::json!({"id":"cool","kind":"temperature","unit":"°C","lon":east,"lat":lat,
        "warn":80,"alarm":90});
    assert_eq!(post_json(&format!("{}/api/sensors", server.url), &cool), 201);
    // Both heard from just now: a sensor silent for three periods (3 min by default)
    // is stale and leaves the heat map, and the shots above can take that long on a
    // busy machine.
    let readings = serde_json::json!([{"sensor":"cool","t":"2026-11-22T08:00:00Z","value":20.0},
        {"sensor":"boiler","t":"2026-11-22T08:01:00Z","value":97.5}]);
    assert_eq!(post_json(&format!("{}/api/readings", server.url), &readings), 200);
    let between = format!("{},{lat},1600,0,-89.9", (lon + east) / 2.0);
    let plain = shoot(&server.url, &between, &["--hide", "helsinki/ground,helsinki/buildings"], "heat-off");
    let heat = shoot(
        &server.url,
        &between,
        &["--hide", "helsinki/ground,helsinki/buildings", "--heat-map", "temperature"],
        "heat-on",
    );
    // Mean red-minus-green change from the plain picture, in a box on each side of
    // the centre (each sensor's 150 m reach is about 55 px from 1.6 km).
    let tint = |from: usize, to: usize| {
        let points: Vec<(usize, usize)> = heat
            .samples()
            .into_iter()
            .filter(|&(x, y)| x >= from && x < to && y.abs_diff(300) < 30)
            .collect();
        let shift: i64 = points
            .iter()
            .map(|&(x, y)| {
                let (h, p) = (heat.px(x, y), plain.px(x, y));
                (i64::from(h[0]) - i64::from(h[1])) - (i64::from(p[0]) - i64::from(p[1]))
            })
            .sum();
        shift / points.len().max(1) as i64
    };
    let (west, east_side) = (tint(280, 360), tint(440, 520));
    assert!(west > 40, "the alarm's side turns red: {west}");
    assert!(east_side < -20, "the cool sensor's side turns green: {east_side}");
}

/// The FZK-Haus stood on Helsinki's Senate Square, its x axis 20° from east.
const SQUARE: (f64, f64) = (24.9522, 60.1693);

fn picked_fid(stdout: &str, layer: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("picked {layer} ")))
        .and_then(|f| f.trim().parse().ok())
}

#[test]
fn a_bim_model_stands_in_the_city_and_xray_picks_through_its_shell() {
    let store = temp_dir("viewer-bim");
    ingest_ok(&store, "helsinki", &["--max-zoom", "16"], &[&data("osm/Helsinki.osm.pbf")]);
    let anchor = format!("{},{},0,20", SQUARE.0, SQUARE.1);
    ingest_ok(&store, "fzk", &["--anchor", &anchor], &[&data("ifc/AC20-FZK-Haus.ifc")]);
    let server = Server::start(&store);
    // 45 m south of the house, 14 m up, looking north and a little down at it.
    let camera = format!("{},{},14,0,-12", SQUARE.0, SQUARE.1 - 0.0004);
    let element = |fid: u64| {
        let item = get_json(&format!("{}/collections/fzk/items/{fid}", server.url));
        item["properties"]["ifc_class"].as_str().expect("ifc_class").to_owned()
    };
    let solid = shoot(&server.url, &camera, &["--click", "400,330", "--no-shadows"], "bim");
    let fid = picked_fid(&solid.stdout, "fzk")
        .unwrap_or_else(|| panic!("the click hits the house: {}", solid.stdout));
    let class = element(fid);
    assert!(
        ["IfcWallStandardCase", "IfcWindow", "IfcSlab", "IfcDoor", "IfcMember"].contains(&class.as_str()),
        "from outside the click meets the shell: {class}"
    );
    let xray = shoot(&server.url, &camera, &["--click", "400,330", "--no-shadows", "--xray"], "bim-xray");
    if let Some(inner) = picked_fid(&xray.stdout, "fzk") {
        let inner_class = element(inner);
        assert_ne!(inner, fid, "x-ray: the click passes the {class} it hit before");
        assert!(
            !inner_class.starts_with("IfcWall") && inner_class != "IfcWindow",
            "x-ray picks what is inside, not {inner_class}"
        );
    }
    // Translucent shell: the centre shows what is behind it, so it changes colour.
    let (a, b) = (solid.px(400, 330), xray.px(400, 330));
    let moved: i32 = a.iter().zip(b).map(|(x, y)| (i32::from(*x) - i32::from(y)).abs()).sum();
    assert!(moved > 30, "x-ray changes the centre: {a:?} vs {b:?}");
}

/// A number printed after `label` on the viewer's summary line.
fn figure(stdout: &str, label: &str) -> usize {
    let at = stdout.find(label).unwrap_or_else(|| panic!("'{label}' in {stdout}")) + label.len();
    stdout[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after '{label}' in {stdout}"))
}

/// Share of the pixels in a screen rectangle that pass `test`.
fn share(
    shot: &Shot,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    test: impl Fn([u8; 3]) -> bool,
) -> f64 {
    let pixels: Vec<[u8; 3]> =
        ys.flat_map(|y| xs.clone().map(move |x| (x, y))).map(|(x, y)| shot.px(x, y)).collect();
    pixels.iter().filter(|p| test(**p)).count() as f64 / pixels.len() as f64
}

/// Most of a screen rectangle passes `test`, or the message shows its mean colour.
fn mostly(
    shot: &Shot,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    test: impl Fn([u8; 3]) -> bool,
    what: &str,
) {
    let passing = share(shot, xs.clone(), ys.clone(), test);
    assert!(passing > 0.95, "{what}: only {passing:.3} pass; mean colour {:?}", mean(shot, xs, ys));
}

fn mean(shot: &Shot, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> [f64; 3] {
    let pixels: Vec<[u8; 3]> =
        ys.flat_map(|y| xs.clone().map(move |x| (x, y))).map(|(x, y)| shot.px(x, y)).collect();
    [0, 1, 2].map(|k| pixels.iter().map(|p| f64::from(p[k])).sum::<f64>() / pixels.len() as f64)
}

fn near(p: [u8; 3], want: [u8; 3], tolerance: u8) -> bool {
    p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= tolerance)
}

#[test]
fn a_point_cloud_draws_every_point_in_each_colour_mode_and_the_point_budget_caps_what_is_resident() {
    // A 200 m x 100 m survey written by laspy: west half red, class 2 (ground); east
    // half blue, class 6 (building); intensity rising eastwards; heights rising 20 m
    // northwards. Placed beside Helsinki, its lowest point 10 m up.
    let store = split_survey("viewer-points");
    let server = Server::start(&store);
    let layers = get_json(&format!("{}/api/layers", server.url));
    let survey =
        layers.as_array().and_then(|l| l.iter().find(|l| l["id"] == "survey")).expect("survey layer");
    let total = survey["point_cloud"]["points"].as_u64().expect("point count") as usize;
    assert_eq!(total, 80_000);

    // Straight down from 400 m over the survey's centre, north up: about 1.7 px per
    // metre, so the survey spans x 231..569 and y 215..385 on the 800x600 picture.
    let camera = "24.95,60.17,400,0,-89.9";
    let (west, east, rows) = (250..380, 420..550, 230..370);
    // Every tile refined: the finest level's points plus all coarser ones are drawn.
    let all = ["--max-sse", "0.01", "--no-shadows"];
    let rgb = shoot(&server.url, camera, &all, "points-rgb");
    assert_eq!(figure(&rgb.stdout, "points drawn"), total, "{}", rgb.stdout);
    assert_eq!(figure(&rgb.stdout, "errors"), 0, "{}\n{}", rgb.stdout, rgb.stderr);
    let red = |[r, g, b]: [u8; 3]| r > 200 && g < 60 && b < 60;
    let blue = |[r, g, b]: [u8; 3]| b > 200 && r < 60 && g < 60;
    mostly(&rgb, west.clone(), rows.clone(), red, "west half red");
    mostly(&rgb, east.clone(), rows.clone(), blue, "east half blue");

    // The shader's ASPRS palette: ground (0.63, 0.47, 0.31), building (0.90, 0.35, 0.25).
    let class = shoot(
        &server.url,
        camera,
        &[&all[..], &["--point-colour", "classification"]].concat(),
        "points-class",
    );
    let ground = |p| near(p, [161, 120, 79], 6);
    let building = |p| near(p, [230, 89, 64], 6);
    mostly(&class, west.clone(), rows.clone(), ground, "west half ground brown");
    mostly(&class, east.clone(), rows.clone(), building, "east half building red");

    // Intensity: grey, brighter eastwards band by band.
    let grey = shoot(
        &server.url,
        camera,
        &[&all[..], &["--point-colour", "intensity"]].concat(),
        "points-intensity",
    );
    let bands: Vec<f64> = [250..290, 330..370, 430..470, 510..550]
        .into_iter()
        .map(|xs| mean(&grey, xs, rows.clone())[1])
        .collect();
    assert!(bands.windows(2).all(|w| w[1] > w[0] + 10.0), "intensity bands {bands:?}");
    let [r, g, b] = mean(&grey, 250..550, rows.clone());
    assert!((r - g).abs() < 3.0 && (g - b).abs() < 3.0, "grey, not {r} {g} {b}");

    // Elevation under a budget of 10 000 points: only the coarsest level fits, which
    // still covers the survey; south (low) is blue-green, north (high) yellow-red.
    let budget = shoot(
        &server.url,
        camera,
        &[&all[..], &["--point-colour", "elevation", "--point-budget", "10000"]].concat(),
        "points-elevation-budget",
    );
    let drawn = figure(&budget.stdout, "points drawn");
    let resident = figure(&budget.stdout, "points resident");
    assert!(drawn > 1_000 && drawn <= 10_000 && resident <= 10_000, "{}", budget.stdout);
    let north = mean(&budget, 250..550, 225..245);
    let south = mean(&budget, 250..550, 355..375);
    assert!(north[0] > south[0] + 60.0 && south[2] > north[2] + 60.0, "north {north:?} south {south:?}");
}

#[test]
fn buildings_stand_on_the_lyon_terrain_tinted_by_height() {
    let store = lyon_on_terrain("viewer-terrain");
    let server = Server::start(&store);
    // From the east bank, looking west at Fourvière's slope.
    let shot = shoot(&server.url, "4.845,45.7645,450,270,-20", &["--max-sse", "2"], "lyon-terrain");
    assert!(shot.stdout.contains("tiles drawn"), "{}", shot.stdout);
    let samples = shot.samples();
    let green = |[r, g, b]: [u8; 3]| g > r && g > b && g > 40;
    let stone = |[r, g, b]: [u8; 3]| r > 150 && g > 140 && b > 120 && r.abs_diff(b) < 60;
    let terrain = samples.iter().filter(|&&(x, y)| green(shot.px(x, y))).count();
    let buildings = samples.iter().filter(|&&(x, y)| stone(shot.px(x, y))).count();
    // The road is a ground layer: draped on the terrain, not buried under it at 0 m.
    let road = samples.iter().filter(|&&(x, y)| is_major_road(shot.px(x, y))).count();
    println!(
        "lyon terrain: {terrain} tinted ground, {buildings} building and {road} road samples of {}",
        samples.len()
    );
    assert!(road > 20, "the road shows on the hillside: {road} samples");
    assert!(terrain * 5 > samples.len(), "the ground fills the lower view: {terrain}/{}", samples.len());
    assert!(buildings * 50 > samples.len(), "buildings show: {buildings}/{}", samples.len());
}

#[test]
fn a_restricted_layer_draws_only_in_a_viewer_given_a_cleared_token() {
    let store = temp_dir("viewer-token");
    let (lon, lat) = (24.9445, 60.1716);
    let block = |x: f64| {
        serde_json::json!({"type": "Feature", "properties": {"building": "yes", "height": 40},
        "geometry": {"type": "Polygon", "coordinates": [[[x, lat], [x + 0.0008, lat], [x + 0.0008, lat + 0.0004], [x, lat + 0.0004], [x, lat]]]}})
    };
    for (layer, x, classification) in
        [("open", lon - 0.0012, "public"), ("vault", lon + 0.0004, "restricted")]
    {
        let file = store.join(format!("{layer}.geojson"));
        std::fs::write(
            &file,
            serde_json::json!({"type": "FeatureCollection", "features": [block(x)]}).to_string(),
        )
        .expect("write");
        ingest_ok(&store, layer, &["--classification", classification, "--height-attr", "height"], &[&file]);
    }
    let tokens = serde_json::json!([{"name": "wall", "sha256": sha256_hex("wall-token"), "role": "viewer", "clearance": "restricted"}]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    let server = Server::start_with(&store, &["--tokens", token_file.to_str().expect("path")]);
    // From the south, both blocks side by side: the public one left, the vault right.
    let camera = format!("{lon},{},500,0,-35", lat - 0.006);
    let count = |shot: &Shot, left: bool| {
        shot.samples()
            .iter()
            .filter(|&&(x, y)| (x < shot.width / 2) == left && is_building(shot.px(x, y)))
            .count()
    };
    let public = shoot(&server.url, &camera, &["--hide", "open/ground,vault/ground"], "token-public");
    let cleared = shoot(
        &server.url,
        &camera,
        &["--hide", "open/ground,vault/ground", "--token", "wall-token"],
        "token-cleared",
    );
    let (pl, pr, cl, cr) =
        (count(&public, true), count(&public, false), count(&cleared, true), count(&cleared, false));
    println!("building samples: public {pl} left, {pr} right; cleared {cl} left, {cr} right");
    assert!(pl > 20 && cl > 20, "the public block shows for both");
    assert!(cr > 20 && pr * 10 < cr, "the vault shows only with the token: {pr} vs {cr}");
    let audit = std::fs::read_to_string(store.join(".audit/audit.jsonl")).expect("audit");
    assert!(
        audit.contains("\"who\":\"wall\"") && audit.contains("/3dtiles/vault/"),
        "the cleared viewer's fetches are audited by name"
    );
    assert!(!audit.contains("wall-token"), "the token itself is never logged");
}

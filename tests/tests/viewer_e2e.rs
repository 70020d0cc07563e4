//! The bevy viewer end to end: under Xvfb with llvmpipe it streams the Helsinki
//! tileset from a real cim-server, renders from a fixed camera, picks at a known
//! building's screen position and writes a PNG that is checked pixel by pixel.

mod common;

use common::*;

/// Lit roofs are near white; the viewer's ground is a dark grey (sRGB 0.30, 0.33, 0.31).
fn is_building(p: &[u8]) -> bool {
    p.iter().map(|c| u32::from(*c)).sum::<u32>() / 3 > 170
}

#[test]
fn the_viewer_draws_helsinki_and_a_click_selects_the_building_under_it() {
    let store = temp_dir("viewer");
    ingest_ok(&store, "helsinki", &["--max-zoom", "12"], &[&data("osm/Helsinki.osm.pbf")]);
    let server = Server::start(&store);
    let items = get_json(&format!("{}/collections/helsinki/items?limit=10000", server.url));
    // A point at least 15 m inside the largest building (checked with an independent
    // point-in-polygon test in all eight directions), so the click cannot graze an edge.
    let mut best: Option<(f64, u64, f64, f64)> = None;
    for f in items["features"].as_array().expect("features") {
        if !f["properties"]["building"].is_string()
            || f["geometry"]["coordinates"][0].as_array().map_or(0, Vec::len) != 1
        {
            continue;
        }
        let ring = f["geometry"]["coordinates"][0][0].as_array().expect("ring");
        let xs: Vec<f64> = ring.iter().filter_map(|p| p[0].as_f64()).collect();
        let ys: Vec<f64> = ring.iter().filter_map(|p| p[1].as_f64()).collect();
        let (w, e) =
            (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max));
        let (s, n) =
            (ys.iter().copied().fold(f64::MAX, f64::min), ys.iter().copied().fold(f64::MIN, f64::max));
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
    let out = temp_dir("viewer-shot");
    let png_path = out.join("helsinki.png");
    let run = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24", "env", "WGPU_BACKEND=vulkan"])
        .arg(bin_dir().join("cim-viewer"))
        .args(["--server", &server.url, "--window", "800x600", "--click", "400,300"])
        .arg("--camera")
        .arg(format!("{lon},{lat},700,0,-89.9"))
        .arg("--screenshot")
        .arg(&png_path)
        .output()
        .expect("xvfb-run (apt-get install xvfb mesa-vulkan-drivers)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "viewer failed: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    // Keep a copy for a person to look at.
    let _ = std::fs::copy(&png_path, std::env::temp_dir().join("cim-e2e-viewer-helsinki.png"));
    assert!(
        stdout.contains(&format!("picked helsinki {fid}")),
        "click at the centre should pick {fid}: {stdout}"
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).expect("png")));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!((w, h), (800, 600));
    let px = |x: usize, y: usize| &buf[(y * w + x) * channels..(y * w + x) * channels + 3];
    assert!(is_building(px(400, 300)), "the building under the centre is drawn: {:?}", px(400, 300));
    let samples: Vec<(usize, usize)> =
        (0..h).step_by(4).flat_map(|y| (0..w).step_by(4).map(move |x| (x, y))).collect();
    let roofs = samples.iter().filter(|&&(x, y)| is_building(px(x, y))).count();
    // Over a dense centre from 700 m: buildings and ground both take real shares.
    assert!(
        roofs > samples.len() / 20 && roofs < samples.len() * 19 / 20,
        "building share {roofs}/{}",
        samples.len()
    );
}

//! In a browser the viewer has no command line: its options come from the page's
//! address, `?camera=lon,lat,h,heading,pitch&hide=roads,sensors/noise&heat_map=temperature`
//! (BIM: `&xray=on&explode=4&hide=<layer>/storey/<name>`; point clouds:
//! `&point_budget=2000000&point_colour=classification`; the renderer:
//! `&backend=webgpu|webgl2`, default auto),
//! and the server is the page's own origin unless `server=` names another.

use super::ViewerOptions;
use crate::points::PointColouring;

/// Tile memory budget in a browser: a wasm32 page has 4 GiB of address space at most,
/// and the browser's own copy of every GPU buffer counts against the tab too.
pub const WEB_CACHE_MB: usize = 256;

/// Points resident at once in a browser (about 90 MB of vertex buffers).
pub const WEB_POINT_BUDGET: usize = 1_000_000;

/// Options from a page address's query (`search`, with or without the leading `?`).
/// Unknown keys are refused so that a typo does not silently show something else.
pub fn from_query(origin: &str, search: &str) -> Result<ViewerOptions, String> {
    let mut options = ViewerOptions {
        server: origin.trim_end_matches('/').to_owned(),
        layers: None,
        max_sse: 16.0,
        cache_bytes: WEB_CACHE_MB * 1024 * 1024,
        camera: None,
        screenshot: None,
        click: None,
        hidden: Vec::new(),
        bench_seconds: None,
        shadows: true,
        heat_map: None,
        xray: false,
        explode_m: 0.0,
        point_budget: WEB_POINT_BUDGET,
        point_colouring: PointColouring::default(),
        access_token: None,
    };
    for pair in search.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| format!("{key}: bad %-escape in '{value}'"))?;
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        match key {
            "server" => options.server = value.trim_end_matches('/').to_owned(),
            "access_token" => options.access_token = Some(value).filter(|v| !v.is_empty()),
            "layers" => options.layers = Some(list()),
            "hide" => options.hidden = list(),
            "camera" => options.camera = Some(numbers::<5>(&value, key)?),
            "max_sse" => options.max_sse = positive(&value, key)?,
            "cache_mb" => options.cache_bytes = (positive(&value, key)? as usize).saturating_mul(1 << 20),
            "point_budget" => options.point_budget = positive(&value, key)? as usize,
            "point_colour" => {
                options.point_colouring = PointColouring::parse(&value).ok_or_else(|| {
                    format!("point_colour: '{value}' is not rgb, intensity, classification or elevation")
                })?
            }
            "bench" => options.bench_seconds = Some(positive(&value, key)?),
            "heat_map" => options.heat_map = Some(value).filter(|v| !v.is_empty()),
            "shadows" => options.shadows = on_off(&value, key)?,
            "xray" => options.xray = on_off(&value, key)?,
            "explode" => {
                let metres = value.parse::<f32>().ok().filter(|m| (0.0..=100.0).contains(m));
                options.explode_m =
                    metres.ok_or_else(|| format!("explode: '{value}' is not 0..100 metres"))?;
            }
            // The page itself loads the WebGPU or the WebGL2 build by it (viewer/web/index.html).
            "backend" => {
                if !matches!(value.as_str(), "auto" | "webgpu" | "webgl2") {
                    return Err(format!("backend: '{value}' is not auto, webgpu or webgl2"));
                }
            }
            other => return Err(format!("unknown option '{other}' in the page address")),
        }
    }
    if !(options.server.starts_with("http://") || options.server.starts_with("https://")) {
        return Err(format!("server: '{}' is not an http(s) address", options.server));
    }
    Ok(options)
}

fn on_off(value: &str, key: &str) -> Result<bool, String> {
    match value {
        "1" | "on" | "true" => Ok(true),
        "0" | "off" | "false" => Ok(false),
        other => Err(format!("{key}: '{other}' is not on/off")),
    }
}

fn numbers<const N: usize>(value: &str, key: &str) -> Result<[f64; N], String> {
    let parsed: Vec<f64> = value
        .split(',')
        .map(|p| p.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{key}: '{value}' is not {N} numbers"))?;
    parsed.try_into().map_err(|_| format!("{key}: '{value}' needs {N} numbers"))
}

fn positive(value: &str, key: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{key}: '{value}' is not a positive number")),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut input = s.bytes();
    while let Some(b) = input.next() {
        bytes.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [input.next()?, input.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_the_page_origin_and_the_query_sets_the_rest() {
        let o = from_query(
            "http://127.0.0.1:8080/",
            "?camera=24.944%2C60.162,900,0,-35&hide=roads,sensors%2Fnoise&shadows=off&heat_map=temperature&bench=12&layers=helsinki",
        )
        .expect("valid");
        assert_eq!(o.server, "http://127.0.0.1:8080");
        assert_eq!(o.camera, Some([24.944, 60.162, 900.0, 0.0, -35.0]));
        assert_eq!(o.hidden, ["roads", "sensors/noise"]);
        assert!(!o.shadows);
        assert_eq!(o.heat_map.as_deref(), Some("temperature"));
        assert_eq!(o.bench_seconds, Some(12.0));
        assert_eq!(o.layers, Some(vec!["helsinki".to_owned()]));
        assert_eq!(o.cache_bytes, WEB_CACHE_MB << 20);

        let plain = from_query("https://cim.example", "").expect("no query");
        assert_eq!(plain.server, "https://cim.example");
        let huge = from_query("http://a", "cache_mb=1e30").expect("huge budget");
        assert_eq!(huge.cache_bytes, usize::MAX);
        assert!(plain.shadows && plain.camera.is_none() && plain.hidden.is_empty());
        let bim = from_query("http://a", "xray=on&explode=3.5&hide=fzk%2Fstorey%2FOG").expect("bim");
        assert!(bim.xray && bim.explode_m == 3.5 && bim.hidden == ["fzk/storey/OG"]);
        let other = from_query("http://a", "server=http%3A%2F%2Fb%3A9000%2F").expect("server");
        assert_eq!(other.server, "http://b:9000");
        let points = from_query("http://a", "point_budget=2e6&point_colour=Elevation").expect("points");
        assert_eq!((points.point_budget, points.point_colouring), (2_000_000, PointColouring::Elevation));
        assert_eq!((plain.point_budget, plain.point_colouring), (WEB_POINT_BUDGET, PointColouring::Rgb));
    }

    #[test]
    fn an_access_token_in_the_address_is_taken_and_an_empty_one_ignored() {
        let o = from_query("http://a", "access_token=ab%2Bc&layers=x").expect("options");
        assert_eq!(o.access_token.as_deref(), Some("ab+c"));
        assert_eq!(from_query("http://a", "access_token=").expect("options").access_token, None);
    }

    #[test]
    fn the_renderer_choice_is_the_pages_and_is_accepted_here() {
        for backend in ["auto", "webgpu", "webgl2"] {
            assert!(from_query("http://a", &format!("backend={backend}")).is_ok(), "{backend}");
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        for (query, names) in [
            ("camera=1,2,3", "camera"),
            ("camera=1,2,x,4,5", "camera"),
            ("max_sse=-1", "max_sse"),
            ("bench=NaN", "bench"),
            ("explode=200", "explode"),
            ("xray=maybe", "xray"),
            ("shadows=maybe", "shadows"),
            ("hide=%G1", "hide"),
            ("zoom=3", "zoom"),
            ("server=file:///etc", "server"),
            ("point_colour=height", "point_colour"),
            ("point_budget=0", "point_budget"),
            ("backend=vulkan", "backend"),
        ] {
            let e = from_query("http://a", query).expect_err(query);
            assert!(e.contains(names), "{query}: {e}");
        }
    }
}

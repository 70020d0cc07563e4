//! Every query and path the server parses: arbitrary GET addresses against the real
//! router over a store with one vector layer. A 500 is a finding like a panic: bad
//! input must get a 4xx naming the parameter.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Served {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cim-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let features: Vec<serde_json::Value> = (0..50)
            .map(|i| {
                let (x, y) = (24.9 + f64::from(i) * 1e-3, 60.17);
                serde_json::json!({"type": "Feature", "properties": {"name": format!("b{i}"), "height": 12},
                    "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 5e-4, y], [x + 5e-4, y + 3e-4], [x, y + 3e-4], [x, y]]]}})
            })
            .collect();
        let input = dir.join("city.geojson");
        std::fs::write(&input, serde_json::json!({"type": "FeatureCollection", "features": features}).to_string())
            .expect("write input");
        let store = dir.join("store");
        let mut options = cim_ingest::IngestOptions::new(&store, "city", vec![input]);
        options.max_zoom = 14;
        cim_ingest::ingest(&options).expect("ingest the fuzz store");
        let mut state = cim_tileserver::AppState::open(&store).expect("open the store");
        state.audit = None;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Served { runtime, router: cim_tileserver::app(state) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(uri) = Uri::try_from(format!("/{}", text.trim_start_matches('/'))) else { return };
    let Ok(request) = Request::get(uri.clone()).body(Body::empty()) else { return };
    let served = served();
    let status = served.runtime.block_on(async {
        let response = served.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let _ = axum::body::to_bytes(response.into_body(), 64 << 20).await;
        status
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "GET {uri} answered 500");
});

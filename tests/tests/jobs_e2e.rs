//! Ingest jobs over HTTP: survey drops uploaded to the real `cim-server`, ingested by
//! the real `cim-ingest` it runs, with roles, size limits, failures that leave the
//! served layer alone, and cancellation.

mod common;

use common::*;
use serde_json::{Value, json};

fn upload(url: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut req = ureq::post(url).set("content-type", "application/octet-stream");
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    let (status, resp) = match req.send_bytes(body) {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("POST {url}: {e}"),
    };
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn wait_for(base: &str, id: u64) -> Value {
    let started = std::time::Instant::now();
    loop {
        let job = get(&format!("{base}/api/jobs/{id}"), &[("authorization", "Bearer feeder-token")]).json();
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(started.elapsed().as_secs() < 120, "job {id} never ended: {job}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_uploaded_drop_is_ingested_a_broken_one_fails_and_leaves_the_layer_and_roles_and_limits_hold() {
    let store = temp_dir("jobs");
    let tokens = json!([
        {"name": "feeder", "sha256": sha256_hex("feeder-token"), "role": "ingest", "clearance": "public"},
        {"name": "wall", "sha256": sha256_hex("wall-token"), "role": "viewer", "clearance": "restricted"}
    ]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    let server = Server::start_with(
        &store,
        &[
            "--tokens",
            token_file.to_str().expect("path"),
            "--max-upload-mb",
            "2",
            "--ingest-bin",
            bin_dir().join("cim-ingest").to_str().expect("path"),
        ],
    );
    let base = &server.url;
    let geojson = std::fs::read(data("geojson/tiger_roads.geojson")).unwrap_or_else(|_| {
        json!({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "a"}, "geometry": {"type": "Point", "coordinates": [24.94, 60.17]}}]}).to_string().into_bytes()
    });
    let drop_url = format!("{base}/api/jobs?layer=roads&filename=roads.geojson");

    // Roles: only ingest (or admin) tokens submit and read jobs.
    assert_eq!(upload(&drop_url, None, &geojson).0, 401);
    assert_eq!(upload(&drop_url, Some("wall-token"), &geojson).0, 403);
    assert_eq!(get(&format!("{base}/api/jobs"), &[("authorization", "Bearer wall-token")]).status, 404);

    let (status, job) = upload(&drop_url, Some("feeder-token"), &geojson);
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["state"].as_str(), job["bytes"].as_u64()), (Some("queued"), Some(geojson.len() as u64)));
    let done = wait_for(base, job["id"].as_u64().expect("id"));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["message"].as_str().is_some_and(|m| m.contains("layer roads")), "{done}");
    let written = done["quality"]["features_written"].as_u64().expect("quality report");
    assert!(written > 0);
    let layers = get_json(&format!("{base}/api/layers"));
    let roads =
        layers.as_array().expect("layers").iter().find(|l| l["id"] == "roads").expect("published").clone();
    assert_eq!(roads["feature_count"].as_u64(), Some(written));
    assert_eq!(roads["sources"][0]["sha256"], done["sha256"], "lineage names the uploaded bytes");

    // A broken drop fails with the ingest's reason; the served layer stays.
    let (status, bad) = upload(
        &format!("{base}/api/jobs?layer=roads&filename=broken.geojson"),
        Some("feeder-token"),
        b"{\"type\": \"FeatureCollection\", \"features\": [ {",
    );
    assert_eq!(status, 202);
    let failed = wait_for(base, bad["id"].as_u64().expect("id"));
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["message"].as_str().is_some_and(|m| m.contains("broken.geojson")), "{failed}");
    let again = get_json(&format!("{base}/api/layers"));
    let still = again.as_array().expect("layers").iter().find(|l| l["id"] == "roads").expect("still served");
    assert_eq!(still["version"], roads["version"], "the previous version is still served");

    // Limits and bad names.
    let big = vec![b' '; 3 << 20];
    assert_eq!(upload(&drop_url, Some("feeder-token"), &big).0, 413);
    for q in [
        "layer=../x&filename=a.geojson",
        "layer=ok&filename=../../etc/passwd",
        "layer=ok&filename=noext",
        "layer=ok",
    ] {
        assert_eq!(upload(&format!("{base}/api/jobs?{q}"), Some("feeder-token"), b"x").0, 400, "{q}");
    }
    assert_eq!(upload(&drop_url, Some("feeder-token"), b"").0, 400, "empty body");
    // Ended jobs cannot be cancelled; unknown ones do not exist.
    let cancel = |id: &str| -> u16 {
        match ureq::delete(&format!("{base}/api/jobs/{id}"))
            .set("authorization", "Bearer feeder-token")
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(cancel(&done["id"].to_string()), 409);
    assert_eq!(cancel("999"), 404);
    let listed = get(&format!("{base}/api/jobs"), &[("authorization", "Bearer feeder-token")]).json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(2));
    assert!(!store.join(".uploads/1").exists(), "uploads are removed once ingested");
}

//! Ingest jobs over HTTP: survey drops uploaded to the real `cim-server`, ingested by
//! the real `cim-ingest` it runs, with roles, size limits, failures that leave the
//! served layer alone, and cancellation.

use cim_e2e::*;
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
    wait_as(base, id, "feeder-token")
}

/// Waits until a job has ended (and its ingest is gone), as `token` sees it.
fn wait_as(base: &str, id: u64, token: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let job =
            get(&format!("{base}/api/jobs/{id}"), &[("authorization", &format!("Bearer {token}"))]).json();
        if !job["finished_ms"].is_null() {
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

    // Roles: only ingest (or admin) tokens submit and read jobs. The client sends the
    // whole body before reading the answer, and gets the refusal, not a broken pipe.
    assert_eq!(upload(&drop_url, None, &geojson).0, 401);
    assert_eq!(upload(&drop_url, Some("wall-token"), &geojson).0, 403);
    // curl asking `Expect: 100-continue` is refused before it sends the body.
    let refused = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "-H", "Expect: 100-continue"])
        .args(["-H", "Authorization: Bearer wall-token", "--data-binary"])
        .arg(format!("@{}", data("geojson/tiger_roads.geojson").display()))
        .arg(&drop_url)
        .output()
        .expect("run curl");
    let answer = String::from_utf8_lossy(&refused.stdout).into_owned();
    let (code, sent) = answer.split_once(' ').expect("curl's -w output");
    assert_eq!(code, "403", "{answer}");
    assert!(
        sent.parse::<u64>().expect("bytes sent") < geojson.len() as u64 / 10,
        "curl sent the body: {answer}"
    );
    assert_eq!(get(&format!("{base}/api/jobs"), &[("authorization", "Bearer wall-token")]).status, 404);

    let (status, job) = upload(&drop_url, Some("feeder-token"), &geojson);
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["state"].as_str(), job["bytes"].as_u64()), (Some("queued"), Some(geojson.len() as u64)));
    let done = wait_for(base, job["id"].as_u64().expect("id"));
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["message"].as_str().is_some_and(|m| m.contains("layer roads")), "{done}");
    assert_eq!(done["format"], "GeoJSON", "sniffed from the first bytes");
    assert_eq!(done["progress"]["stage"], "tiles", "the ingest's progress lines reach the job: {done}");
    assert_eq!(done["progress"]["percent"], 100.0, "{done}");
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

    // Limits, bad names and formats that the name and the content disagree on.
    let big = vec![b' '; 3 << 20];
    assert_eq!(upload(&drop_url, Some("feeder-token"), &big).0, 413);
    for q in ["layer=../x&filename=a.geojson", "layer=ok&filename=../../etc/passwd", "filename=a.geojson"] {
        assert_eq!(upload(&format!("{base}/api/jobs?{q}"), Some("feeder-token"), b"x").0, 400, "{q}");
    }
    for q in ["layer=ok&filename=noext", "layer=ok"] {
        let (status, reply) = upload(&format!("{base}/api/jobs?{q}"), Some("feeder-token"), b"x");
        assert_eq!(status, 415, "{q}: {reply}");
        assert!(
            reply["description"].as_str().is_some_and(|d| d.contains("cannot tell the format")),
            "{reply}"
        );
    }
    let (status, reply) =
        upload(&format!("{base}/api/jobs?layer=ok&filename=roads.las"), Some("feeder-token"), &geojson);
    assert_eq!(status, 415, "{reply}");
    assert_eq!(reply["description"], "'roads.las' is named as LAS but holds GeoJSON");
    assert_eq!(upload(&drop_url, Some("feeder-token"), b"").0, 400, "empty body");
    assert!(
        std::fs::read_dir(store.join(".uploads")).expect("uploads").all(|e| {
            let name = e.expect("entry").file_name();
            !name.to_string_lossy().starts_with("incoming-")
        }),
        "refused uploads leave nothing behind"
    );
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

/// A GeoJSON of `n` small square buildings in Helsinki: big enough that its ingest
/// runs for seconds.
fn many_buildings(n: usize) -> Vec<u8> {
    let features: Vec<Value> = (0..n)
        .map(|i| {
            let (x, y) = (24.90 + (i % 300) as f64 * 3e-4, 60.15 + (i / 300) as f64 * 2e-4);
            let d = 1e-4;
            json!({"type": "Feature", "properties": {"id": i, "height": 10 + i % 30},
                   "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]}})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string().into_bytes()
}

/// `cim-ingest` processes working on a store (from /proc).
fn ingests_on(store: &std::path::Path) -> usize {
    let needle = store.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).into_owned())
                .filter(|c| {
                    c.split('\0').next().is_some_and(|p| p.ends_with("cim-ingest")) && c.contains(&needle)
                })
                .count()
        })
        .unwrap_or(0)
}

fn partial_versions(store: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(store.join(".versions"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_multipart_drop_is_sniffed_jobs_survive_a_server_crash_and_a_running_job_is_cancelled() {
    let store = temp_dir("jobs-crash");
    let tokens = json!([{"name": "feeder", "sha256": sha256_hex("feeder-token"), "role": "ingest", "clearance": "restricted"}]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    let ingest_bin = bin_dir().join("cim-ingest");
    let args =
        ["--tokens", token_file.to_str().expect("path"), "--ingest-bin", ingest_bin.to_str().expect("path")];
    let mut server = Server::start_with(&store, &args);
    let feeder = [("authorization", "Bearer feeder-token")];

    // curl's multipart form, with a browser-style file name and a `.json` that only
    // the content tells apart (GeoJSON, not CityJSON); options ride in the query.
    let drops = temp_dir("jobs-drops");
    let small = drops.join("Helsinki roads.json");
    std::fs::write(&small, many_buildings(20)).expect("write");
    let posted = std::process::Command::new("curl")
        .args(["-sS", "-H", "Authorization: Bearer feeder-token", "-F"])
        .arg(format!("file=@{};type=application/json", small.display()))
        .arg(format!("{}/api/jobs?layer=districts&classification=internal&owner=Survey%20Dept", server.url))
        .output()
        .expect("run curl");
    let job: Value = serde_json::from_slice(&posted.stdout).expect("curl gets the job as JSON");
    assert_eq!(job["filename"], "Helsinki_roads.json.geojson", "{job}");
    assert_eq!(
        (job["format"].as_str(), job["bytes"].as_u64()),
        (Some("GeoJSON"), Some(std::fs::metadata(&small).expect("size").len()))
    );
    let done = wait_for(&server.url, job["id"].as_u64().expect("id"));
    assert_eq!(done["state"], "succeeded", "{done}");
    let entry = get(&format!("{}/api/catalog?q=districts", server.url), &feeder).json();
    let district = &entry["layers"][0];
    assert_eq!(
        (district["classification"].as_str(), district["owner"].as_str()),
        (Some("internal"), Some("Survey Dept")),
        "{entry}"
    );

    // A long job runs, a second waits behind it, and the server dies.
    let (status, long) = upload(
        &format!("{}/api/jobs?layer=big&filename=big.geojson", server.url),
        Some("feeder-token"),
        &many_buildings(60_000),
    );
    assert_eq!(status, 202, "{long}");
    let long_id = long["id"].as_u64().expect("id");
    let (status, later) =
        upload(&format!("{}/api/jobs?layer=later", server.url), Some("feeder-token"), &many_buildings(10));
    assert_eq!(status, 202, "{later}");
    assert_eq!(later["filename"], "upload.geojson", "named from its sniffed format");
    let started = std::time::Instant::now();
    loop {
        let job = get(&format!("{}/api/jobs/{long_id}", server.url), &feeder).json();
        if job["state"] == "running" && job["progress"].is_object() {
            break;
        }
        assert!(job["finished_ms"].is_null(), "the long job ended before the crash: {job}");
        assert!(started.elapsed().as_secs() < 60, "the long job never reported progress: {job}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ingests_on(&store), 1);
    server.kill_9();
    // Its ingest sees its stdin close and stops without publishing.
    let started = std::time::Instant::now();
    while ingests_on(&store) > 0 {
        assert!(started.elapsed().as_secs() < 30, "the orphaned ingest kept running");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!store.join("big").exists(), "the orphaned ingest published");
    assert_eq!(partial_versions(&store), Vec::<String>::new(), "the orphaned ingest left its staging");

    // The restarted server remembers both and runs them again; cancel the long one
    // while it runs.
    let server = Server::start_with(&store, &args);
    let jobs = get(&format!("{}/api/jobs", server.url), &feeder).json();
    let remembered: Vec<(u64, String)> = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| (j["id"].as_u64().unwrap_or(0), j["layer"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(remembered, vec![(1, "districts".into()), (2, "big".into()), (3, "later".into())]);
    let started = std::time::Instant::now();
    loop {
        let job = get(&format!("{}/api/jobs/{long_id}", server.url), &feeder).json();
        if job["state"] == "running" {
            assert!(job["message"].as_str().is_some_and(|m| m.contains("requeued")), "{job}");
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the remembered job never ran again: {job}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let cancelled = ureq::delete(&format!("{}/api/jobs/{long_id}", server.url))
        .set("authorization", "Bearer feeder-token")
        .call()
        .expect("cancel");
    assert_eq!(cancelled.status(), 200);
    let long = wait_for(&server.url, long_id);
    assert_eq!(long["state"], "cancelled", "{long}");
    let later = wait_for(&server.url, later["id"].as_u64().expect("id"));
    assert_eq!(later["state"], "succeeded", "{later}");
    let layers = get(&format!("{}/api/layers", server.url), &feeder).json();
    let names: Vec<&str> =
        layers.as_array().expect("layers").iter().filter_map(|l| l["id"].as_str()).collect();
    assert!(names.contains(&"later") && names.contains(&"districts") && !names.contains(&"big"), "{names:?}");
    assert_eq!(partial_versions(&store), Vec::<String>::new(), "the cancelled ingest left its staging");
    assert_eq!(ingests_on(&store), 0);
    assert_eq!(
        std::fs::read_dir(store.join(".uploads")).expect("uploads").count(),
        0,
        "uploads are removed once done"
    );
}

fn catalogue_of(store: &std::path::Path, layer: &str) -> Value {
    serde_json::from_slice(&std::fs::read(store.join(layer).join("catalogue.json")).expect("catalogue"))
        .expect("json")
}

#[test]
fn a_job_needs_clearance_for_the_layer_it_replaces_and_sets_inherits_its_governance_and_hides_from_callers_below()
 {
    let store = temp_dir("jobs-clearance");
    let tokens = json!([
        {"name": "feeder", "sha256": sha256_hex("feeder-token"), "role": "ingest", "clearance": "public"},
        {"name": "chief", "sha256": sha256_hex("chief-token"), "role": "ingest", "clearance": "restricted"},
        {"name": "admin", "sha256": sha256_hex("admin-token"), "role": "admin", "clearance": "restricted"}
    ]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    let blocks = many_buildings(3);
    let file = store.join("vault.geojson");
    std::fs::write(&file, &blocks).expect("write");
    ingest_ok(
        &store,
        "vault",
        &["--classification", "restricted", "--owner", "civil defence", "--protect", "name:mask:internal"],
        &[&file],
    );
    let server = Server::start_with(
        &store,
        &[
            "--tokens",
            token_file.to_str().expect("path"),
            "--ingest-bin",
            bin_dir().join("cim-ingest").to_str().expect("path"),
        ],
    );
    let base = &server.url;
    let uploads =
        |store: &std::path::Path| std::fs::read_dir(store.join(".jobs/uploads")).map_or(0, |d| d.count());

    // A public-cleared writer may neither replace the restricted layer nor publish above itself.
    let (status, body) =
        upload(&format!("{base}/api/jobs?layer=vault&filename=v.geojson"), Some("feeder-token"), &blocks);
    assert_eq!(status, 403, "{body}");
    let (status, body) = upload(
        &format!("{base}/api/jobs?layer=vault&filename=v.geojson&classification=public"),
        Some("feeder-token"),
        &blocks,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = upload(
        &format!("{base}/api/jobs?layer=fresh&filename=f.geojson&classification=internal"),
        Some("feeder-token"),
        &blocks,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(uploads(&store), 0, "nothing of a refused upload is stored");
    // Unknown options are refused by name, not ignored.
    let (status, body) =
        upload(&format!("{base}/api/jobs?layer=fresh&colour=red&anchr=1,2,3"), Some("chief-token"), &blocks);
    assert_eq!(status, 400, "{body}");
    let said = body["description"].as_str().unwrap_or_default();
    assert!(said.contains("'colour'") && said.contains("'anchr'") && said.contains("anchor"), "{said}");
    assert!(catalogue_of(&store, "vault")["classification"] == "restricted");

    // The cleared writer re-ingests without repeating the governance: it is inherited.
    let (status, job) =
        upload(&format!("{base}/api/jobs?layer=vault&filename=v.geojson"), Some("chief-token"), &blocks);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_u64().expect("id");
    let done = wait_as(base, id, "chief-token");
    assert_eq!(done["state"], "succeeded", "{done}");
    let c = catalogue_of(&store, "vault");
    assert_eq!(c["classification"], "restricted", "{c}");
    assert_eq!(c["owner"], "civil defence");
    assert_eq!(
        c["attribute_rules"],
        json!([{"attribute": "name", "action": "mask", "clearance": "internal"}])
    );
    assert_eq!(
        get(&format!("{base}/collections/vault/items"), &[]).status,
        404,
        "still hidden from the public"
    );

    // Its record is hidden from callers below the layer, as the layer is.
    let feeder = [("authorization", "Bearer feeder-token")];
    let listed = get(&format!("{base}/api/jobs"), &feeder).json();
    assert!(!listed.to_string().contains("vault"), "{listed}");
    assert_eq!(get(&format!("{base}/api/jobs/{id}"), &feeder).status, 404);
    let cancel =
        ureq::delete(&format!("{base}/api/jobs/{id}")).set("authorization", "Bearer feeder-token").call();
    assert!(matches!(cancel, Err(ureq::Error::Status(404, _))), "{cancel:?}");
    let chief_view = get(&format!("{base}/api/jobs"), &[("authorization", "Bearer chief-token")]).json();
    assert!(chief_view.to_string().contains("vault"));

    // Lowering needs declassify: without it the job fails and the layer stays.
    let (_, job) = upload(
        &format!("{base}/api/jobs?layer=vault&filename=v.geojson&classification=public"),
        Some("chief-token"),
        &blocks,
    );
    let done = wait_as(base, job["id"].as_u64().expect("id"), "chief-token");
    assert_eq!(done["state"], "failed", "{done}");
    let said = done["message"].as_str().unwrap_or_default();
    assert!(said.contains("--declassify") && said.contains("restricted -> public"), "{said}");
    // Below admin, messages name files, never the ingest host's directories.
    assert!(!said.contains(store.to_str().expect("path")), "{said}");
    let admin_sees =
        get(&format!("{base}/api/jobs/{}", job["id"]), &[("authorization", "Bearer admin-token")]).json();
    assert!(
        admin_sees["message"].as_str().unwrap_or_default().contains(store.to_str().expect("path")),
        "{admin_sees}"
    );
    assert_eq!(catalogue_of(&store, "vault")["classification"], "restricted");
    let (_, job) = upload(
        &format!(
            "{base}/api/jobs?layer=vault&filename=v.geojson&classification=public&declassify=true&protect=none"
        ),
        Some("chief-token"),
        &blocks,
    );
    let done = wait_as(base, job["id"].as_u64().expect("id"), "chief-token");
    assert_eq!(done["state"], "succeeded", "{done}");
    let c = catalogue_of(&store, "vault");
    assert_eq!(c["classification"], "public");
    assert!(c.get("attribute_rules").is_none(), "{c}");
    let history = c["governance_history"].as_array().expect("history");
    let last = history.last().expect("entry");
    assert_eq!(last["declassified"], true);
    assert_eq!(last["version"], c["version"]);
    let changes = last["changes"].to_string();
    assert!(
        changes.contains("classification restricted -> public")
            && changes.contains("name:mask:internal -> dropped"),
        "{changes}"
    );
    assert_eq!(get(&format!("{base}/collections/vault/items"), &[]).status, 200);

    // Every option that makes sense over HTTP: an IFC without a georeference, placed.
    let ifc = std::fs::read(data("ifc/IfcOpenHouse_IFC4.ifc")).expect("ifc");
    let (status, job) = upload(
        &format!("{base}/api/jobs?layer=house&filename=house.ifc&anchor=24.9445,60.1705,0,30"),
        Some("chief-token"),
        &ifc,
    );
    assert_eq!(status, 202, "{job}");
    let done = wait_as(base, job["id"].as_u64().expect("id"), "chief-token");
    assert_eq!(done["state"], "succeeded", "{done}");
    let anchor = &catalogue_of(&store, "house")["bim"]["models"][0];
    assert!(anchor.to_string().contains("24.9445"), "{anchor}");
    // The refusals are in the audit log with who made them.
    let audit =
        get(&format!("{base}/api/audit?status=403"), &[("authorization", "Bearer admin-token")]).json();
    let refused = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["who"] == "feeder" && r["method"] == "POST")
        .count();
    assert_eq!(refused, 3, "{audit}");
}

#[test]
fn a_job_past_its_time_limit_is_stopped_failed_and_leaves_the_layer_and_the_queue_moves_on() {
    let store = temp_dir("jobs-limit");
    let tokens = json!([{"name": "feeder", "sha256": sha256_hex("feeder-token"), "role": "ingest", "clearance": "public"}]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    let small = store.join("small.geojson");
    std::fs::write(&small, many_buildings(20)).expect("write");
    ingest_ok(&store, "city", &[], &[&small]);
    let before = std::fs::read_link(store.join("city")).expect("published");
    let server = Server::start_with(
        &store,
        &[
            "--tokens",
            token_file.to_str().expect("path"),
            "--job-time-limit-s",
            "2",
            "--ingest-bin",
            bin_dir().join("cim-ingest").to_str().expect("path"),
        ],
    );
    let base = &server.url;
    let started = std::time::Instant::now();
    let (status, slow) = upload(
        &format!("{base}/api/jobs?layer=city&filename=big.geojson"),
        Some("feeder-token"),
        &many_buildings(60_000),
    );
    assert_eq!(status, 202, "{slow}");
    let (_, quick) = upload(
        &format!("{base}/api/jobs?layer=next&filename=s.geojson"),
        Some("feeder-token"),
        &many_buildings(10),
    );
    let slow = wait_for(base, slow["id"].as_u64().expect("id"));
    assert_eq!(slow["state"], "failed", "{slow}");
    assert!(slow["message"].as_str().is_some_and(|m| m.contains("2 s job time limit")), "{slow}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    assert_eq!(
        std::fs::read_link(store.join("city")).expect("still published"),
        before,
        "the served layer stays"
    );
    // Nothing of the stopped run is left (the next job may be staging its own).
    let left: Vec<String> = partial_versions(&store).into_iter().filter(|p| p.starts_with("city@")).collect();
    assert!(left.is_empty(), "{left:?}");
    let quick = wait_for(base, quick["id"].as_u64().expect("id"));
    assert_eq!(quick["state"], "succeeded", "the queue moved on: {quick}");
}

//! Classified access: layers ingested as public, internal and restricted, served by
//! the real `cim-server --tokens FILE`, asked for by every kind of caller on every
//! read endpoint, plus bad, expired and missing tokens, writes and path tricks.

use cim_e2e::*;
use serde_json::{Value, json};

const LAYERS: [(&str, &str); 3] = [("open", "public"), ("plans", "internal"), ("secret", "restricted")];
/// (token, clearance rank: 0 public .. 2 restricted); `None` is no token.
const CALLERS: [(Option<&str>, usize); 4] =
    [(None, 0), (Some("viewer-token"), 0), (Some("planner-token"), 1), (Some("admin-token"), 2)];

thread_local! {
    /// Requests this test (its thread) made, each of which the audit log must hold.
    static REQUESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn hit(url: &str, headers: &[(&str, &str)]) -> Reply {
    REQUESTS.with(|n| n.set(n.get() + 1));
    get(url, headers)
}

fn ask(url: &str, token: Option<&str>) -> Reply {
    match token {
        Some(t) => hit(url, &[("authorization", &format!("Bearer {t}"))]),
        None => hit(url, &[]),
    }
}

fn post(url: &str, token: Option<&str>, body: &Value) -> u16 {
    REQUESTS.with(|n| n.set(n.get() + 1));
    let mut req = ureq::post(url).set("content-type", "application/json");
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    match req.send_string(&body.to_string()) {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {url}: {e}"),
    }
}

const LON: f64 = 24.9445;
const LAT: f64 = 60.1716;

/// Three layers of the same two buildings, public, internal and restricted, and a
/// token file for them.
fn classified_store(tag: &str) -> (TempDir, std::path::PathBuf) {
    let store = temp_dir(tag);
    // Two buildings near Helsinki's centre, in every layer.
    let (lon, lat) = (LON, LAT);
    let square = |x: f64, y: f64| {
        json!([[[x, y], [x + 0.0004, y], [x + 0.0004, y + 0.0002], [x, y + 0.0002], [x, y]]])
    };
    let geojson = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building": "yes", "height": 20, "name": "a"}, "geometry": {"type": "Polygon", "coordinates": square(lon, lat)}},
        {"type": "Feature", "properties": {"building": "yes", "height": 12, "name": "b"}, "geometry": {"type": "Polygon", "coordinates": square(lon + 0.001, lat)}}
    ]});
    let file = store.join("blocks.geojson");
    std::fs::write(&file, geojson.to_string()).expect("write");
    for (layer, classification) in LAYERS {
        ingest_ok(
            &store,
            layer,
            &["--classification", classification, "--owner", "planning bureau", "--max-zoom", "15"],
            &[&file],
        );
    }
    let catalogue: Value =
        serde_json::from_slice(&std::fs::read(store.join("secret/catalogue.json")).expect("catalogue"))
            .expect("json");
    assert_eq!(
        (catalogue["classification"].as_str(), catalogue["owner"].as_str()),
        (Some("restricted"), Some("planning bureau"))
    );

    let tokens = json!([
        {"name": "wall", "sha256": sha256_hex("viewer-token"), "role": "viewer", "clearance": "public"},
        {"name": "planner", "sha256": sha256_hex("planner-token"), "role": "planner", "clearance": "internal"},
        {"name": "admin", "sha256": sha256_hex("admin-token"), "role": "admin", "clearance": "restricted"},
        {"name": "feeder", "sha256": sha256_hex("ingest-token"), "role": "ingest", "clearance": "public"},
        {"name": "old", "sha256": sha256_hex("expired-token"), "role": "admin", "clearance": "restricted", "expires": "2020-01-01T00:00:00Z"}
    ]);
    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, tokens.to_string()).expect("write");
    assert!(
        !std::fs::read_to_string(&token_file).expect("read").contains("admin-token"),
        "tokens are stored hashed"
    );
    (store, token_file)
}

#[test]
fn every_caller_sees_exactly_the_layers_at_or_below_its_clearance_on_every_endpoint() {
    let (store, token_file) = classified_store("access");
    let (lon, lat) = (LON, LAT);
    // Each request its own audit record here (tile reads are folded by default).
    let server = Server::start_with(
        &store,
        &["--tokens", token_file.to_str().expect("path"), "--audit-aggregate-s", "0"],
    );
    let base = &server.url;

    let (tx, ty) = tile_of(lon + 0.0002, lat + 0.0001, 15);
    let endpoints = |layer: &str| -> Vec<String> {
        vec![
            format!("{base}/tiles/{layer}.json"),
            format!("{base}/tiles/{layer}/15/{tx}/{ty}.mvt"),
            format!("{base}/3dtiles/{layer}/tileset.json"),
            format!("{base}/collections/{layer}"),
            format!("{base}/collections/{layer}/items"),
            format!("{base}/collections/{layer}/items/1"),
            format!("{base}/api/pick?lon={}&lat={}&layer={layer}", lon + 0.0002, lat + 0.0001),
            format!(
                "{base}/api/query?bbox={},{},{},{}&layer={layer}",
                lon - 0.01,
                lat - 0.01,
                lon + 0.01,
                lat + 0.01
            ),
        ]
    };
    let mut checked = 0;
    for (token, clearance) in CALLERS {
        let listed: Vec<String> = ask(&format!("{base}/api/layers"), token)
            .json()
            .as_array()
            .expect("layers")
            .iter()
            .filter_map(|l| l["id"].as_str().map(str::to_owned))
            .filter(|id| id != "sensors")
            .collect();
        let collections: Vec<String> = ask(&format!("{base}/collections"), token).json()["collections"]
            .as_array()
            .expect("collections")
            .iter()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .filter(|id| id != "sensors")
            .collect();
        let picked_anywhere =
            ask(&format!("{base}/api/pick?lon={}&lat={}", lon + 0.0002, lat + 0.0001), token).json();
        for (rank, (layer, _)) in LAYERS.iter().enumerate() {
            let may = rank <= clearance;
            assert_eq!(listed.contains(&layer.to_string()), may, "{token:?} lists {layer}: {listed:?}");
            assert_eq!(collections.contains(&layer.to_string()), may, "{token:?} collections {layer}");
            assert_eq!(
                picked_anywhere.to_string().contains(&format!("\"{layer}\"")),
                may,
                "{token:?} pick across layers: {picked_anywhere}"
            );
            for url in endpoints(layer) {
                let r = ask(&url, token);
                if may {
                    assert_eq!(r.status, 200, "{token:?} {url}: {}", String::from_utf8_lossy(&r.body));
                } else {
                    assert_eq!(r.status, 404, "{token:?} must not see {url}");
                    assert!(
                        !String::from_utf8_lossy(&r.body).contains("\"name\""),
                        "no attributes leak: {url}"
                    );
                }
                checked += 1;
            }
        }
    }
    // The restricted layer's GLB is served to the admin only, byte for byte.
    let glb = store.join("secret/3dtiles/content/r.glb");
    let url = format!("{base}/3dtiles/secret/content/r.glb");
    assert_eq!(ask(&url, Some("admin-token")).body, std::fs::read(&glb).expect("glb"));
    assert_eq!(ask(&url, Some("planner-token")).status, 404);
    // The query parameter works where a header cannot be set.
    assert_eq!(hit(&format!("{base}/collections/secret?access_token=admin-token"), &[]).status, 200);
    println!("access: {checked} endpoint checks for 4 callers and 3 classifications");

    // Bad, expired and malformed tokens are refused, not treated as public.
    for token in ["expired-token", "nonsense", "", "admin-token "] {
        let r = hit(&format!("{base}/api/layers"), &[("authorization", &format!("Bearer {token}"))]);
        let want = if token == "admin-token " { 200 } else { 401 };
        assert_eq!(r.status, want, "token {token:?}: {}", String::from_utf8_lossy(&r.body));
    }
    let expired = hit(&format!("{base}/api/layers"), &[("authorization", "Bearer expired-token")]);
    assert!(String::from_utf8_lossy(&expired.body).contains("expired"), "says why");

    // Writes need the ingest or admin role.
    let reading = json!({"sensor": "nope", "value": 1.0});
    assert_eq!(post(&format!("{base}/api/readings"), None, &reading), 401);
    assert_eq!(post(&format!("{base}/api/readings"), Some("viewer-token"), &reading), 403);
    assert_eq!(post(&format!("{base}/api/readings"), Some("planner-token"), &reading), 403);
    for token in ["ingest-token", "admin-token"] {
        let status = post(&format!("{base}/api/readings"), Some(token), &reading);
        assert!(status != 401 && status != 403, "{token} may write: {status}");
    }

    // Garbage parameters are refused the same way for every caller, and never with
    // something of a layer the caller may not see.
    for (token, clearance) in CALLERS {
        for (rank, (layer, _)) in LAYERS.iter().enumerate() {
            let may = rank <= clearance;
            for (path, want_if_visible) in [
                (format!("/collections/{layer}/items?limit=100000000"), 400),
                (format!("/collections/{layer}/items?bbox=-200,0,10,10"), 400),
                (format!("/collections/{layer}/items?bbox=1,2,3"), 400),
                (format!("/collections/{layer}/items?limit=-1"), 400),
                (format!("/tiles/{layer}/99/0/0.mvt"), 404),
                (format!("/tiles/{layer}/15/abc/0.mvt"), 400),
                (format!("/api/query?bbox=-180,-90,180,90&layer={layer}&limit=999999999"), 400),
                (format!("/api/query?bbox=-180,-90,180,90&layer={layer}&limit=10000"), 200),
            ] {
                let r = ask(&format!("{base}{path}"), token);
                if may {
                    assert_eq!(
                        r.status,
                        want_if_visible,
                        "{token:?} {path}: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                } else {
                    // Hidden first or refused first, but never served.
                    assert!(r.status == 404 || r.status == 400, "{token:?} {path}: {}", r.status);
                    assert!(!String::from_utf8_lossy(&r.body).contains("\"name\""), "{path} leaks");
                }
                if r.status == 200 {
                    let n = r.json()["features"].as_array().map_or(0, Vec::len);
                    assert!(n <= 10_000, "{path}: {n} features in one page");
                }
            }
        }
    }

    // Path tricks reach nothing.
    for path in [
        "/3dtiles/..%2Fsecret/tileset.json",
        "/3dtiles/open/..%2F..%2Fsecret%2F3dtiles%2Ftileset.json",
        "/3dtiles/open/../secret/tileset.json",
        "/tiles/..%2Fsecret.json",
        "/collections/%2E%2E%2Fsecret",
        "/collections/secret%00/items",
    ] {
        let r = hit(&format!("{base}{path}"), &[]);
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("\"name\""), "{path} leaks");
    }

    // Every request above is in the audit log, whose chain holds; only an admin reads it.
    let made = REQUESTS.with(std::cell::Cell::get);
    assert_eq!(ask(&format!("{base}/api/audit"), Some("planner-token")).status, 404);
    let audit = ask(&format!("{base}/api/audit?limit=10000"), Some("admin-token")).json();
    let records = audit["records"].as_array().expect("records");
    assert_eq!(records.len(), made + 1, "one record per request (the planner's refused look included)");
    assert_eq!(audit["last_seq"].as_u64(), records.last().and_then(|r| r["seq"].as_u64()));
    let refused = records.iter().filter(|r| r["who"] == "invalid token" && r["status"] == 401).count();
    assert_eq!(refused, 4, "bad and expired tokens are recorded too");
    assert!(records.iter().any(|r| r["who"] == "admin"
        && r["target"] == "/3dtiles/secret/content/r.glb"
        && r["status"] == 200));
    assert!(records.iter().any(|r| r["who"] == "wall" && r["method"] == "POST" && r["status"] == 403));
    // Queries select on the server: who, status, a target substring, a cursor.
    let expected: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["who"] == "wall"
                && r["status"] == 404
                && r["target"].as_str().is_some_and(|t| t.contains("secret"))
        })
        .collect();
    let selected =
        ask(&format!("{base}/api/audit?who=wall&status=404&target=secret&limit=10000"), Some("admin-token"))
            .json();
    assert_eq!(selected["records"].as_array().map(|a| a.iter().collect::<Vec<_>>()), Some(expected.clone()));
    assert!(expected.len() >= 8, "{}", expected.len());
    let second = expected[1]["seq"].as_u64().expect("seq");
    let after = ask(
        &format!("{base}/api/audit?who=wall&status=404&target=secret&limit=1&after={}", expected[0]["seq"]),
        Some("admin-token"),
    )
    .json();
    assert_eq!(after["records"][0]["seq"].as_u64(), Some(second));
    assert_eq!(after["next_after"].as_u64(), Some(second));
    let verify = ask(&format!("{base}/api/audit/verify"), Some("admin-token")).json();
    assert_eq!(verify["intact"], true, "{verify}");
    // Breaking one record breaks the chain there.
    let path = store.join(".audit/audit.jsonl");
    let text = std::fs::read_to_string(&path).expect("audit log");
    let tampered = text.replacen("\"who\":\"wall\"", "\"who\":\"someone else\"", 1);
    assert_ne!(tampered, text);
    std::fs::write(&path, &tampered).expect("write");
    let first = text.lines().position(|l| l.contains("\"who\":\"wall\"")).expect("a wall record") + 1;
    let verify = ask(&format!("{base}/api/audit/verify"), Some("admin-token")).json();
    assert_eq!(
        (verify["intact"].as_bool(), verify["first_broken"].as_u64()),
        (Some(false), Some(first as u64)),
        "{verify}"
    );
}

#[test]
fn the_catalogue_search_finds_by_keyword_kind_bbox_and_classification_within_clearance_and_tokens_are_rate_limited()
 {
    let (store, token_file) = classified_store("access-catalog");
    let server =
        Server::start_with(&store, &["--tokens", token_file.to_str().expect("path"), "--rate-limit", "5"]);
    let base = &server.url;
    let ids = |url: &str, token: Option<&str>| -> Vec<String> {
        let reply = match token {
            Some(t) => get(url, &[("authorization", &format!("Bearer {t}"))]),
            None => get(url, &[]),
        };
        assert_eq!(reply.status, 200, "{url}: {}", String::from_utf8_lossy(&reply.body));
        reply.json()["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&format!("{base}/api/catalog?q=planning+bureau"), None), ["open"]);
    assert_eq!(
        ids(&format!("{base}/api/catalog?q=planning+bureau"), Some("admin-token")),
        ["open", "plans", "secret"]
    );
    assert_eq!(
        ids(&format!("{base}/api/catalog?q=blocks.geojson+height"), Some("planner-token")),
        ["open", "plans"]
    );
    assert_eq!(ids(&format!("{base}/api/catalog?classification=internal"), Some("admin-token")), ["plans"]);
    assert!(ids(&format!("{base}/api/catalog?classification=restricted"), Some("planner-token")).is_empty());
    assert_eq!(ids(&format!("{base}/api/catalog?kind=vector&bbox=24.9,60.1,25.0,60.2"), None), ["open"]);
    assert!(ids(&format!("{base}/api/catalog?bbox=0,0,1,1"), Some("admin-token")).is_empty());
    assert!(ids(&format!("{base}/api/catalog?q=nothing-like-this"), Some("admin-token")).is_empty());
    assert_eq!(get(&format!("{base}/api/catalog?bbox=1,2"), &[]).status, 400);
    assert_eq!(get(&format!("{base}/api/catalog?classification=secret"), &[]).status, 400);

    // Five requests a second per token: a burst of twenty is cut, the public is not.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = (0..20)
        .map(|_| get(&format!("{base}/api/layers"), &[("authorization", "Bearer viewer-token")]).status)
        .collect();
    // Admitted: the bucket's five plus what refilled meanwhile (however slow the machine).
    let most = 5.0 + 5.0 * started.elapsed().as_secs_f64() + 1.0;
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(admitted + statuses.iter().filter(|&&s| s == 429).count(), 20, "{statuses:?}");
    assert!(
        admitted >= 5 && (admitted as f64) <= most,
        "{admitted} admitted, at most {most:.1}: {statuses:?}"
    );
    assert!(statuses[..4].iter().all(|&s| s == 200), "the first ones pass: {statuses:?}");
    assert!(
        (0..20).all(|_| get(&format!("{base}/api/layers"), &[]).status == 200),
        "no token, no token limit"
    );
    assert_eq!(
        get(&format!("{base}/api/layers"), &[("authorization", "Bearer planner-token")]).status,
        200,
        "per token"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        get(&format!("{base}/api/layers"), &[("authorization", "Bearer viewer-token")]).status,
        200,
        "refilled"
    );
}

#[test]
fn protected_attributes_never_reach_a_tile_and_show_by_clearance() {
    let (store, token_file) = classified_store("access-protect");
    let (lon, lat) = (LON, LAT);
    let square = |x: f64| {
        json!([[[x, lat], [x + 0.0004, lat], [x + 0.0004, lat + 0.0002], [x, lat + 0.0002], [x, lat]]])
    };
    let people = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building": "yes", "height": 20, "name": "north block", "phone": "+86 23 6000 1234", "owner": "Li Wei", "id_card": "500101199001011234"},
         "geometry": {"type": "Polygon", "coordinates": square(lon)}},
        {"type": "Feature", "properties": {"building": "yes", "height": 15, "name": "south block", "phone": "+86 23 6000 9876", "owner": "Zhang Min", "id_card": "500101198502029876"},
         "geometry": {"type": "Polygon", "coordinates": square(lon + 0.001)}}
    ]});
    let file = store.join("people.geojson");
    std::fs::write(&file, people.to_string()).expect("write");
    ingest_ok(
        &store,
        "people",
        &[
            "--protect",
            "phone:mask:internal",
            "--protect",
            "owner:drop:restricted",
            "--protect",
            "id_card:hash:restricted",
            "--max-zoom",
            "15",
        ],
        &[&file],
    );
    let server = Server::start_with(&store, &["--tokens", token_file.to_str().expect("path")]);
    let base = &server.url;
    let secrets = [
        "6000 1234",
        "6000 9876",
        "Li Wei",
        "Zhang Min",
        "500101199001011234",
        "500101198502029876",
        "phone",
        "owner",
        "id_card",
    ];

    // No tile carries them: every MVT tile over the blocks, the GLB, the TileJSON.
    let scratch = temp_dir("access-protect-tiles");
    for z in 0..=15u32 {
        let (x, y) = tile_of(lon + 0.0002, lat + 0.0001, z);
        let reply =
            get(&format!("{base}/tiles/people/{z}/{x}/{y}.mvt"), &[("authorization", "Bearer admin-token")]);
        // Small blocks vanish at low zooms (204); from zoom 12 on they are there.
        assert!(reply.status == 200 || (reply.status == 204 && z < 12), "z{z}: {}", reply.status);
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        for s in secrets {
            assert!(!text.contains(s), "tile {z}/{x}/{y} holds '{s}'");
        }
        if z == 15 {
            let tile = scratch.join("t.mvt");
            std::fs::write(&tile, &reply.body).expect("write");
            let decoded = oracle(
                "decode_mvt.mjs",
                &[tile.to_str().expect("path"), "15", &x.to_string(), &y.to_string()],
            );
            let props = decoded["people"]["features"][0]["properties"].clone();
            assert!(props["name"].is_string(), "the tile keeps what is not protected: {props}");
            assert!(
                props.get("phone").is_none()
                    && props.get("owner").is_none()
                    && props.get("id_card").is_none(),
                "{props}"
            );
        }
    }
    let glb =
        get(&format!("{base}/3dtiles/people/content/r.glb"), &[("authorization", "Bearer admin-token")]);
    assert_eq!(glb.status, 200);
    let glb_text = String::from_utf8_lossy(&glb.body).into_owned();
    assert!(glb_text.contains("north block"), "the GLB keeps the name");
    for s in secrets {
        assert!(!glb_text.contains(s), "the GLB holds '{s}'");
    }
    let tilejson = get(&format!("{base}/tiles/people.json"), &[]).json().to_string();
    for s in ["phone", "owner", "id_card"] {
        assert!(!tilejson.contains(s), "TileJSON names {s}");
    }

    // The feature API shows each by clearance: masked, dropped, hashed, or in full.
    let props = |token: Option<&str>| -> Vec<Value> {
        let reply = match token {
            Some(t) => {
                get(&format!("{base}/collections/people/items"), &[("authorization", &format!("Bearer {t}"))])
            }
            None => get(&format!("{base}/collections/people/items"), &[]),
        };
        reply.json()["features"]
            .as_array()
            .expect("features")
            .iter()
            .map(|f| f["properties"].clone())
            .collect()
    };
    let public = props(None);
    assert_eq!(public.len(), 2);
    for p in &public {
        assert_eq!(p["phone"], "***");
        assert!(p.get("owner").is_none());
        let hashed = p["id_card"].as_str().expect("pseudonym");
        assert!(hashed.starts_with("h:") && !hashed.contains("500101"), "{hashed}");
    }
    assert_ne!(public[0]["id_card"], public[1]["id_card"], "different people, different pseudonyms");
    assert_eq!(props(None)[0]["id_card"], public[0]["id_card"], "stable within the version");
    let planner = props(Some("planner-token"));
    assert_eq!(planner[0]["phone"], "+86 23 6000 1234");
    assert!(planner[0].get("owner").is_none());
    assert_eq!(planner[0]["id_card"], public[0]["id_card"]);
    let admin = props(Some("admin-token"));
    assert_eq!(
        (admin[0]["owner"].as_str(), admin[0]["id_card"].as_str()),
        (Some("Li Wei"), Some("500101199001011234"))
    );
    // Pick answers the same way.
    let picked =
        get(&format!("{base}/api/pick?lon={}&lat={}&layer=people", lon + 0.0002, lat + 0.0001), &[]).json();
    let text = picked.to_string();
    assert!(
        text.contains("north block")
            && text.contains("***")
            && !text.contains("Li Wei")
            && !text.contains("6000 1234"),
        "{text}"
    );
    // Rules where they do not apply are refused.
    let o = ingest(&store, "ground", &["--protect", "a:drop:internal"], &[&data("dem/lyon_dem.tif")]);
    assert!(
        !o.ok && o.stderr.contains("attribute rules apply to vector and city model layers"),
        "{}",
        o.stderr
    );
}

#[test]
fn classified_live_sensors_are_hidden_behind_every_door_from_callers_below_their_clearance() {
    let (store, token_file) = classified_store("access-sensors");
    let server = Server::start_with(
        &store,
        &["--tokens", token_file.to_str().expect("path"), "--sensors-classification", "internal"],
    );
    let base = &server.url;
    let doors = [
        "/api/sensors",
        "/api/alerts",
        "/api/live/stats",
        "/api/live",
        "/collections/sensors",
        "/collections/sensors/items",
    ];
    for (token, clearance) in CALLERS {
        let may = clearance >= 1;
        for door in doors {
            let r = ask(&format!("{base}{door}"), token);
            if may {
                // The WebSocket door wants an upgrade; the rest answer.
                assert!(r.status != 404 && r.status != 401, "{token:?} {door}: {}", r.status);
            } else {
                assert_eq!(r.status, 404, "{token:?} must not reach {door}");
            }
        }
        let listed = ask(&format!("{base}/api/layers"), token).json().to_string().contains("\"sensors\"");
        let collections =
            ask(&format!("{base}/collections"), token).json().to_string().contains("\"sensors\"");
        assert_eq!((listed, collections), (may, may), "{token:?}");
    }
}

/// Ground metres from a position to the centre of its cell in the coarsening grid
/// (rows `metres` tall; columns `metres` wide at the row's centre latitude).
fn off_grid(lon: f64, lat: f64, metres: f64) -> f64 {
    let lat_step = metres / 111_320.0;
    let cy = ((lat / lat_step).floor() + 0.5) * lat_step;
    let lon_step = metres / (111_320.0 * cy.to_radians().cos());
    let cx = ((lon / lon_step).floor() + 0.5) * lon_step;
    ((lon - cx) * 111_320.0 * cy.to_radians().cos()).hypot((lat - cy) * 111_320.0)
}

fn positions(geometry: &Value, out: &mut Vec<[f64; 2]>) {
    match geometry {
        Value::Array(a) if a.len() >= 2 && a[0].is_number() => {
            out.push([a[0].as_f64().unwrap_or(f64::NAN), a[1].as_f64().unwrap_or(f64::NAN)]);
        }
        Value::Array(a) => a.iter().for_each(|v| positions(v, out)),
        Value::Object(o) => o.get("coordinates").into_iter().for_each(|v| positions(v, out)),
        _ => {}
    }
}

fn content_uris(tile: &Value, out: &mut Vec<String>) {
    if let Some(uri) = tile["content"]["uri"].as_str() {
        out.push(uri.to_owned());
    }
    for child in tile["children"].as_array().into_iter().flatten() {
        content_uris(child, out);
    }
}

#[test]
fn coarsened_positions_are_all_that_tiles_and_uncleared_callers_get_and_cleared_ones_get_the_truth() {
    let (store, token_file) = classified_store("access-coarsen");
    // Forty 20 m x 15 m houses 60 m apart in Chongqing, two 600 m blocks, a road.
    let (lon0, lat0) = (106.5512, 29.5617);
    let (dx, dy) = (20.0 / 96_850.0, 15.0 / 111_320.0);
    let rect =
        |x: f64, y: f64, w: f64, h: f64| json!([[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]);
    let mut features = Vec::new();
    for i in 0..40 {
        let (x, y) = (lon0 + f64::from(i % 10) * 0.00062, lat0 + f64::from(i / 10) * 0.00054);
        features.push(json!({"type": "Feature", "properties": {"building": "yes", "height": 9, "name": format!("house {i}")},
            "geometry": {"type": "Polygon", "coordinates": rect(x, y, dx, dy)}}));
    }
    for j in 0..2 {
        let x = lon0 + 0.01 + f64::from(j) * 0.008;
        features.push(json!({"type": "Feature", "properties": {"building": "yes", "height": 30, "name": format!("block {j}")},
            "geometry": {"type": "Polygon", "coordinates": rect(x, lat0, 0.0062, 0.0054)}}));
    }
    features.push(json!({"type": "Feature", "properties": {"name": "road"},
        "geometry": {"type": "LineString", "coordinates": [[lon0 - 0.002, lat0 - 0.001], [lon0 + 0.0135, lat0 - 0.0012]]}}));
    let file = store.join("district.geojson");
    std::fs::write(&file, json!({"type": "FeatureCollection", "features": features}).to_string())
        .expect("write");
    let mut exact = Vec::new();
    for f in &features {
        positions(&f["geometry"], &mut exact);
    }
    let far = exact.iter().filter(|p| off_grid(p[0], p[1], 200.0) > 5.0).count();
    assert!(
        far * 10 >= exact.len() * 9,
        "the source's vertices are mostly off the grid ({far} of {})",
        exact.len()
    );
    ingest_ok(&store, "district", &["--coarsen", "200:internal", "--max-zoom", "15"], &[&file]);
    let server = Server::start_with(&store, &["--tokens", token_file.to_str().expect("path")]);
    let base = &server.url;
    let items = |token: Option<&str>| -> Vec<Value> {
        let url = format!("{base}/collections/district/items?limit=100");
        let reply = match token {
            Some(t) => get(&url, &[("authorization", &format!("Bearer {t}"))]),
            None => get(&url, &[]),
        };
        reply.json()["features"].as_array().expect("features").clone()
    };

    // Below the clearance: every position is a cell centre; houses are their cell.
    let public = items(Some("viewer-token"));
    assert_eq!(public.len(), 43);
    let mut seen = Vec::new();
    for f in &public {
        positions(&f["geometry"], &mut seen);
    }
    let worst = seen.iter().map(|p| off_grid(p[0], p[1], 200.0)).fold(0.0, f64::max);
    assert!(worst < 1e-3, "a public position lies {worst} m off the grid");
    let kinds: Vec<&str> = public.iter().filter_map(|f| f["geometry"]["type"].as_str()).collect();
    // A house across a cell corner keeps a polygon of cell centres; most are one cell.
    let points = kinds.iter().filter(|k| **k == "Point").count();
    assert!(points >= 30 && points + kinds.iter().filter(|k| **k == "Polygon").count() == 42, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "LineString").count(), 1, "{kinds:?}");
    // At or above it: the source, exactly.
    let planner = items(Some("planner-token"));
    let mut truth = Vec::new();
    for f in &planner {
        positions(&f["geometry"], &mut truth);
    }
    assert_eq!(truth.len(), exact.len());
    for (a, b) in truth.iter().zip(&exact) {
        assert!((a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9, "{a:?} vs {b:?}");
    }

    // Tiles, fetched by the cleared caller: grid positions only (decoded by
    // @mapbox/vector-tile; within 1.5 units of the tile's own grid).
    let scratch = temp_dir("access-coarsen-tiles");
    let mut decoded_positions = 0;
    for z in 12..=15u32 {
        // One unit of the tile's 4096 grid, in ground metres.
        let unit = 40_075_016.7 * lat0.to_radians().cos() / f64::from(1u32 << z) / 4096.0;
        let (x0, y1) = tile_of(lon0 - 0.003, lat0 - 0.002, z);
        let (x1, y0) = tile_of(lon0 + 0.025, lat0 + 0.008, z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let reply = get(
                    &format!("{base}/tiles/district/{z}/{x}/{y}.mvt"),
                    &[("authorization", "Bearer planner-token")],
                );
                if reply.status == 204 {
                    continue;
                }
                assert_eq!(reply.status, 200);
                let tile = scratch.join("t.mvt");
                std::fs::write(&tile, &reply.body).expect("write");
                let decoded = oracle(
                    "decode_mvt.mjs",
                    &[tile.to_str().expect("path"), &z.to_string(), &x.to_string(), &y.to_string()],
                );
                for f in decoded["district"]["features"].as_array().into_iter().flatten() {
                    let mut ps = Vec::new();
                    positions(&f["geojson"], &mut ps);
                    for p in ps {
                        let off = off_grid(p[0], p[1], 200.0);
                        // Clipped edges end on the tile's buffered border (80 units
                        // out), off the grid by design.
                        let n = f64::from(1u32 << z);
                        let u = ((p[0] + 180.0) / 360.0 * n - f64::from(x)) * 4096.0;
                        let phi = p[1].to_radians();
                        let v = ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0 * n
                            - f64::from(y))
                            * 4096.0;
                        let on_border =
                            [u, v].iter().any(|t| (t + 80.0).abs() < 1.0 || (t - 4176.0).abs() < 1.0);
                        assert!(
                            off < unit * 1.5 || on_border,
                            "tile {z}/{x}/{y} holds {p:?}, {off} m off the grid"
                        );
                        decoded_positions += 1;
                    }
                }
            }
        }
    }
    assert!(decoded_positions > 100, "{decoded_positions} positions decoded");
    // 3D tiles extrude only what kept an outline (the blocks, and houses across cells).
    let tileset =
        get(&format!("{base}/3dtiles/district/tileset.json"), &[("authorization", "Bearer planner-token")])
            .json();
    let mut uris = Vec::new();
    content_uris(&tileset["root"], &mut uris);
    let mut fids: Vec<u64> = uris
        .iter()
        .flat_map(|u| {
            glb_fids(
                &get(&format!("{base}/3dtiles/district/{u}"), &[("authorization", "Bearer planner-token")])
                    .body,
            )
        })
        .collect();
    fids.sort_unstable();
    fids.dedup();
    let outlined: Vec<u64> = public
        .iter()
        .filter(|f| f["geometry"]["type"] == "Polygon")
        .filter_map(|f| f["id"].as_u64())
        .collect();
    assert_eq!(fids, outlined);

    // Probing inside a cell learns nothing below the clearance; box queries around a
    // house's exact outline miss it; cleared callers find it.
    let (hx, hy) = (lon0 + dx / 2.0, lat0 + dy / 2.0);
    let pick = |lon: f64, lat: f64, token: &str| {
        get(
            &format!("{base}/api/pick?lon={lon}&lat={lat}&layer=district"),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .json()
    };
    let inside = pick(hx, hy, "viewer-token");
    // Halfway to the cell's centre is still in the cell.
    let lat_step = 200.0 / 111_320.0;
    let cy = ((hy / lat_step).floor() + 0.5) * lat_step;
    let lon_step = 200.0 / (111_320.0 * cy.to_radians().cos());
    let cx = ((hx / lon_step).floor() + 0.5) * lon_step;
    let beside = pick((hx + cx) / 2.0, (hy + cy) / 2.0, "viewer-token");
    assert!(inside.to_string().contains("house 0"), "the house's cell holds it: {inside}");
    assert_eq!(inside, beside, "two probes in one cell answer alike");
    let found = pick(hx, hy, "planner-token");
    assert!(found.to_string().contains("house 0"), "{found}");
    let bbox = format!("{},{},{},{}", lon0 - dx * 0.1, lat0 - dy * 0.1, lon0 + dx * 1.1, lat0 + dy * 1.1);
    let boxed = |token: &str| {
        get(
            &format!("{base}/collections/district/items?bbox={bbox}"),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .json()["features"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let centre_inside = off_grid(lon0 + dx / 2.0, lat0 + dy / 2.0, 200.0) < 10.0;
    if !centre_inside {
        assert_eq!(boxed("viewer-token"), 0, "a box around the exact outline finds the coarse house");
    }
    assert_eq!(boxed("planner-token"), 1);

    // Where it does not apply, it is refused.
    let o = ingest(&store, "ground", &["--coarsen", "100:internal"], &[&data("dem/lyon_dem.tif")]);
    assert!(!o.ok && o.stderr.contains("--coarsen applies to vector layers"), "{}", o.stderr);
    let o = ingest(&store, "bad", &["--coarsen", "0.1:internal"], &[&file]);
    assert!(!o.ok && o.stderr.contains("1 to 100000 metres"), "{}", o.stderr);
}

/// Adds "pumps" (`pumps-token`): an ingest token cleared for internal sensors.
fn add_sensor_feeder(token_file: &std::path::Path) {
    let mut tokens: Value =
        serde_json::from_slice(&std::fs::read(token_file).expect("tokens")).expect("json");
    tokens.as_array_mut().expect("array").push(
        json!({"name": "pumps", "sha256": sha256_hex("pumps-token"), "role": "ingest", "clearance": "internal"}),
    );
    std::fs::write(token_file, tokens.to_string()).expect("write");
}

/// `mosquitto_pub` (one message) or `mosquitto_sub` with optional credentials;
/// whether it succeeded, and what it printed.
fn mosquitto(tool: &str, broker: &str, token: Option<&str>, args: &[&str]) -> (bool, String) {
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let mut command = std::process::Command::new("timeout");
    command.args(["10", tool, "-h", host, "-p", port, "-i", &format!("e2e-{tool}-{}", std::process::id())]);
    if let Some(t) = token {
        command.args(["-u", "e2e", "-P", t]);
    }
    let out = command.args(args).output().expect("mosquitto clients (apt-get install mosquitto-clients)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_embedded_broker_takes_tokens_refuses_publishers_and_watchers_without_the_right_and_audits_it_all() {
    let (store, token_file) = classified_store("access-mqtt");
    add_sensor_feeder(&token_file);
    let server = Server::start_with(
        &store,
        &[
            "--tokens",
            token_file.to_str().expect("path"),
            "--mqtt-listen",
            "127.0.0.1:0",
            "--sensors-classification",
            "internal",
        ],
    );
    let base = &server.url;
    let broker = server.mqtt.clone().expect("the server prints its MQTT address");
    let sensor = json!({"id": "pump", "kind": "pressure", "unit": "bar", "lon": LON, "lat": LAT});
    assert_eq!(post(&format!("{base}/api/sensors"), Some("pumps-token"), &sensor), 201);
    let reading =
        |i: u32| json!({"t": format!("2026-12-01T10:{i:02}:00Z"), "value": f64::from(i)}).to_string();

    // A bad token is refused at CONNECT; no token may connect but not publish.
    let (ok, said) = mosquitto(
        "mosquitto_pub",
        &broker,
        Some("wrong-token"),
        &["-q", "1", "-t", "cim/sensors/pump", "-m", &reading(1)],
    );
    assert!(!ok && said.to_lowercase().contains("bad user name or password"), "{said}");
    let (ok, said) =
        mosquitto("mosquitto_pub", &broker, None, &["-q", "1", "-t", "cim/sensors/pump", "-m", &reading(2)]);
    assert!(!ok, "a public client published: {said}");
    let (ok, said) = mosquitto(
        "mosquitto_pub",
        &broker,
        Some("planner-token"),
        &["-q", "1", "-t", "cim/sensors/pump", "-m", &reading(3)],
    );
    assert!(!ok, "a planner published: {said}");
    let (ok, said) = mosquitto(
        "mosquitto_pub",
        &broker,
        Some("ingest-token"),
        &["-q", "1", "-t", "cim/sensors/pump", "-m", &reading(4)],
    );
    assert!(!ok, "an ingest token without clearance for the sensors published: {said}");
    // Watchers below the sensors' classification are refused their filters.
    let (ok, said) =
        mosquitto("mosquitto_sub", &broker, Some("viewer-token"), &["-t", "cim/#", "-C", "1", "-W", "3"]);
    let _ = ok; // mosquitto_sub exits 0 even when every filter is denied
    assert!(said.contains("All subscription requests were denied"), "{said}");

    // The cleared ingest token publishes, and a cleared watcher sees it.
    let watcher = {
        let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
        std::process::Command::new("timeout")
            .args(["15", "mosquitto_sub", "-h", host, "-p", port, "-u", "e2e", "-P", "planner-token"])
            .args(["-t", "cim/sensors/#", "-C", "1", "-v"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub")
    };
    let mut published = 0;
    let mut heard = String::new();
    let watcher = std::thread::spawn(move || watcher.wait_with_output().expect("mosquitto_sub"));
    for i in 10..40 {
        let (ok, said) = mosquitto(
            "mosquitto_pub",
            &broker,
            Some("pumps-token"),
            &["-q", "1", "-t", "cim/sensors/pump", "-m", &reading(i)],
        );
        assert!(ok, "{said}");
        published += 1;
        if watcher.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Ok(out) = watcher.join() {
        heard = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    assert!(heard.starts_with("cim/sensors/pump {"), "the cleared watcher heard: {heard:?}");
    let readings = ask(&format!("{base}/api/sensors/pump/readings"), Some("planner-token")).json();
    assert_eq!(
        readings.as_array().map(Vec::len),
        Some(published),
        "only the cleared feeder's readings are stored"
    );

    // Every CONNECT, refused publish, stored publish and filter is in the audit log.
    let audit = ask(&format!("{base}/api/audit?limit=100000"), Some("admin-token")).json();
    let records = audit["records"].as_array().expect("records");
    let count = |who: &str, method: &str, status: u64| {
        records.iter().filter(|r| r["who"] == who && r["method"] == method && r["status"] == status).count()
    };
    assert_eq!(count("invalid token", "MQTT CONNECT", 401), 1);
    assert_eq!(count("public", "MQTT PUBLISH", 403), 1);
    assert_eq!(count("planner", "MQTT PUBLISH", 403), 1);
    assert_eq!(count("feeder", "MQTT PUBLISH", 403), 1);
    assert_eq!(count("wall", "MQTT SUBSCRIBE", 404), 1);
    assert_eq!(count("planner", "MQTT SUBSCRIBE", 200), 1);
    assert_eq!(count("pumps", "MQTT PUBLISH", 200), published);
    assert_eq!(count("pumps", "MQTT CONNECT", 200), published);
    let verify = ask(&format!("{base}/api/audit/verify"), Some("admin-token")).json();
    assert_eq!(verify["intact"], true, "{verify}");
}

/// A WebSocket to `/api/live` as `token` (in the address, as browsers do).
fn live_socket(
    base: &str,
    token: &str,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>> {
    let url = format!("{}/api/live?access_token={token}", base.replacen("http://", "ws://", 1));
    let (socket, _) = tungstenite::connect(url.as_str()).expect("websocket");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
        s.set_read_timeout(Some(std::time::Duration::from_millis(300))).expect("timeout");
    }
    socket
}

/// Text frames until the socket stays quiet.
fn drain(
    socket: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(message) = socket.read() {
        if let tungstenite::Message::Text(t) = message {
            out.push(serde_json::from_str(t.as_str()).expect("json frame"));
        }
    }
    out
}

#[test]
fn a_sensor_classified_above_a_caller_is_hidden_from_it_everywhere_and_refused_to_its_writes() {
    let (store, token_file) = classified_store("access-sensor-class");
    add_sensor_feeder(&token_file);
    let server = Server::start_with(
        &store,
        &["--tokens", token_file.to_str().expect("path"), "--mqtt-listen", "127.0.0.1:0"],
    );
    let base = &server.url;
    let broker = server.mqtt.clone().expect("mqtt");
    let sensor = |id: &str, classification: Option<&str>| {
        let mut s = json!({"id": id, "kind": "temperature", "unit": "°C", "lon": LON, "lat": LAT, "warn": 50, "alarm": 80});
        if let Some(c) = classification {
            s["classification"] = json!(c);
        }
        s
    };
    assert_eq!(post(&format!("{base}/api/sensors"), Some("admin-token"), &sensor("lobby", None)), 201);
    assert_eq!(
        post(&format!("{base}/api/sensors"), Some("admin-token"), &sensor("vault", Some("restricted"))),
        201
    );
    assert_eq!(
        post(&format!("{base}/api/sensors"), Some("admin-token"), &sensor("odd", Some("secret-ish"))),
        400
    );
    // Writers cannot classify above themselves nor overwrite what they cannot see.
    assert_eq!(
        post(&format!("{base}/api/sensors"), Some("pumps-token"), &sensor("mine", Some("restricted"))),
        403
    );
    // Over a sensor it cannot see, a writer learns only that the id is taken.
    let over = ureq::post(&format!("{base}/api/sensors"))
        .set("authorization", "Bearer pumps-token")
        .send_string(&sensor("vault", None).to_string());
    let Err(ureq::Error::Status(409, reply)) = over else { panic!("not a plain conflict: {over:?}") };
    let said = reply.into_string().expect("body");
    assert!(
        said.contains("'vault' is taken") && !said.contains("classif") && !said.contains("clearance"),
        "{said}"
    );

    // Live subscribers, each with its clearance, before any reading.
    let mut planner_socket = live_socket(base, "planner-token");
    let mut admin_socket = live_socket(base, "admin-token");
    let planner_snapshot = drain(&mut planner_socket);
    let ids = |v: &Value| -> Vec<String> {
        v["sensors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&planner_snapshot[0]), ["lobby"]);
    assert_eq!(ids(&drain(&mut admin_socket)[0]), ["lobby", "vault"]);
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let watch = |token: &str| {
        std::process::Command::new("timeout")
            .args([
                "6",
                "mosquitto_sub",
                "-h",
                host,
                "-p",
                port,
                "-u",
                "e2e",
                "-P",
                token,
                "-t",
                "cim/sensors/#",
                "-v",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub")
    };
    let (planner_watch, admin_watch) = (watch("planner-token"), watch("admin-token"));
    std::thread::sleep(std::time::Duration::from_millis(500));

    // The cleared feeder's vault reading is refused as unknown; the admin's are stored.
    let readings = |sensor: &str, minute: u32, value: f64| json!([{"sensor": sensor, "t": format!("2026-12-01T10:{minute:02}:00Z"), "value": value}]);
    let refused = ureq::post(&format!("{base}/api/readings"))
        .set("authorization", "Bearer pumps-token")
        .send_string(&readings("vault", 1, 90.0).to_string());
    let Err(ureq::Error::Status(400, reply)) = refused else { panic!("the feeder wrote to the vault") };
    let reply: Value = serde_json::from_str(&reply.into_string().expect("body")).expect("json");
    assert_eq!(reply["rejected"][0]["reason"], "unknown sensor 'vault'", "{reply}");
    for (sensor, value) in [("lobby", 20.0), ("vault", 90.0)] {
        let (ok, said) = mosquitto(
            "mosquitto_pub",
            &broker,
            Some("admin-token"),
            &[
                "-q",
                "1",
                "-t",
                &format!("cim/sensors/{sensor}"),
                "-m",
                &json!({"t": "2026-12-01T10:02:00Z", "value": value}).to_string(),
            ],
        );
        assert!(ok, "{said}");
    }
    let (ok, said) = mosquitto(
        "mosquitto_pub",
        &broker,
        Some("pumps-token"),
        &[
            "-q",
            "1",
            "-t",
            "cim/sensors/vault",
            "-m",
            &json!({"t": "2026-12-01T10:03:00Z", "value": 1.0}).to_string(),
        ],
    );
    assert!(ok, "MQTT 3.1.1 acknowledges what it will not store: {said}");

    // Every door answers the planner without the vault, the admin with it.
    let seen = |token: &str| ask(&format!("{base}/api/sensors"), Some(token)).json().to_string();
    assert!(seen("planner-token").contains("lobby") && !seen("planner-token").contains("vault"));
    assert!(seen("admin-token").contains("vault"));
    assert_eq!(ask(&format!("{base}/api/sensors/vault"), Some("planner-token")).status, 404);
    assert_eq!(ask(&format!("{base}/api/sensors/vault/readings"), Some("planner-token")).status, 404);
    let vault = ask(&format!("{base}/api/sensors/vault/readings"), Some("admin-token")).json();
    assert_eq!(vault.as_array().map(Vec::len), Some(1), "only the admin's vault reading was stored: {vault}");
    let alerts = |token: &str| ask(&format!("{base}/api/alerts"), Some(token)).json();
    assert!(alerts("admin-token").to_string().contains("\"vault\""), "the vault's alarm exists");
    assert!(!alerts("planner-token").to_string().contains("vault"));
    let items = ask(&format!("{base}/collections/sensors/items"), Some("planner-token")).json().to_string();
    assert!(items.contains("lobby") && !items.contains("vault"), "{items}");
    assert_eq!(ask(&format!("{base}/collections/sensors/items/vault"), Some("planner-token")).status, 404);
    let planner_events =
        drain(&mut planner_socket).iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let admin_events = drain(&mut admin_socket).iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert!(planner_events.contains("lobby") && !planner_events.contains("vault"), "{planner_events}");
    assert!(admin_events.contains("vault"), "{admin_events}");
    let heard = |child: std::process::Child| {
        String::from_utf8_lossy(&child.wait_with_output().expect("sub").stdout).into_owned()
    };
    let (planner_heard, admin_heard) = (heard(planner_watch), heard(admin_watch));
    assert!(
        planner_heard.contains("cim/sensors/lobby") && !planner_heard.contains("vault"),
        "{planner_heard}"
    );
    assert!(admin_heard.contains("cim/sensors/vault"), "{admin_heard}");
}

/// `cim-simulate` against `server` on the `open` layer's two buildings for 1.5 s:
/// (succeeded, readings it says it sent, stderr).
fn simulate(server: &Server, args: &[&str], env_token: Option<&str>) -> (bool, u64, String) {
    let mut command = std::process::Command::new(bin_dir().join("cim-simulate"));
    command
        .args([
            "--server",
            &server.url,
            "--layer",
            "open",
            "--sensors",
            "2",
            "--rate",
            "40",
            "--seconds",
            "1.5",
        ])
        .args(args)
        .env_remove("CIM_TOKEN");
    if let Some(token) = env_token {
        command.env("CIM_TOKEN", token);
    }
    let out = command.output().expect("cim-simulate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let sent = stderr
        .split("sent ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (out.status.success(), sent, stderr)
}

#[test]
fn the_simulator_feeds_a_secured_server_over_http_and_mqtt_with_its_token_and_classification() {
    let (store, token_file) = classified_store("access-simulate");
    let server = Server::start_with(
        &store,
        &["--tokens", token_file.to_str().expect("path"), "--mqtt-listen", "127.0.0.1:0"],
    );
    let base = &server.url;
    let broker = server.mqtt.clone().expect("mqtt");
    let stored = || ask(&format!("{base}/api/live/stats"), Some("admin-token")).json()["stored"].as_u64();
    let sensors = |token: &str| ask(&format!("{base}/api/sensors"), Some(token)).json();

    // No token: the first write is refused, by URL and status, before any reading.
    let (ok, _, said) = simulate(&server, &[], None);
    assert!(!ok && said.contains("/api/sensors") && said.contains("HTTP 401"), "{said}");
    assert_eq!(stored(), Some(0));

    // An ingest token cleared for public: public sensors on the buildings, readings
    // over HTTP, every one stored.
    let (ok, sent, said) = simulate(&server, &["--token", "ingest-token"], None);
    assert!(ok && sent > 0, "{said}");
    assert_eq!(stored(), Some(sent), "{said}");
    let public = sensors("viewer-token");
    let listed = public.as_array().expect("sensor list");
    assert_eq!(listed.len(), 2, "{public}");
    for sensor in listed {
        assert_eq!(sensor["classification"].as_str().unwrap_or("public"), "public", "{sensor}");
        assert!(sensor["feature"].as_str().is_some_and(|f| f.starts_with("open/")), "{sensor}");
        let (lon, lat) = (sensor["lon"].as_f64().expect("lon"), sensor["lat"].as_f64().expect("lat"));
        assert!((lon - LON).abs() < 0.002 && (lat - LAT).abs() < 0.001, "on a building: {sensor}");
    }

    // The same token cannot classify above its clearance: a clear refusal.
    let (ok, _, said) = simulate(&server, &["--token", "ingest-token", "--classification", "internal"], None);
    assert!(!ok && said.contains("would be classified above your clearance"), "{said}");

    // An admin token from CIM_TOKEN, internal sensors, readings over MQTT (the token is
    // the CONNECT password): all acknowledged and stored, hidden from the public.
    let before = stored().expect("stored");
    let (ok, sent, said) =
        simulate(&server, &["--classification", "internal", "--mqtt", &broker], Some("admin-token"));
    assert!(ok && sent > 0, "{said}");
    assert_eq!(stored(), Some(before + sent), "{said}");
    assert_eq!(sensors("viewer-token").as_array().map(Vec::len), Some(0));
    let internal = sensors("planner-token");
    assert_eq!(internal.as_array().map(Vec::len), Some(2), "{internal}");
    assert!(internal.to_string().contains("\"internal\""), "{internal}");
}

#[test]
fn a_reingest_keeps_the_governance_it_is_not_given_lowers_it_only_when_told_and_name_patterns_cover_every_variant()
 {
    let store = temp_dir("access-inherit");
    let (lon, lat) = (LON, LAT);
    let ring = json!([[
        [lon, lat],
        [lon + 0.0004, lat],
        [lon + 0.0004, lat + 0.0002],
        [lon, lat + 0.0002],
        [lon, lat]
    ]]);
    let doc = json!({"type": "FeatureCollection", "features": [{"type": "Feature",
        "properties": {"building": "yes", "height": 30, "name": "Shelter 7", "name:fi": "Väestönsuoja 7", "name:en": "Shelter 7", "use": "shelter"},
        "geometry": {"type": "Polygon", "coordinates": ring}}]});
    let file = store.join("shelters.geojson");
    std::fs::write(&file, doc.to_string()).expect("write");
    let catalogue = || -> Value {
        serde_json::from_slice(&std::fs::read(store.join("shelters/catalogue.json")).expect("catalogue"))
            .expect("json")
    };
    ingest_ok(
        &store,
        "shelters",
        &["--classification", "internal", "--owner", "civil defence", "--protect", "name*:drop:restricted"],
        &[&file],
    );
    // Not repeated: inherited, and said so.
    let again = ingest(&store, "shelters", &[], &[&file]);
    assert!(again.ok, "{}", again.stderr);
    assert!(
        again.stderr.contains("classification internal")
            && again.stderr.contains("owner 'civil defence'")
            && again.stderr.contains("--protect name*:drop:restricted"),
        "{}",
        again.stderr
    );
    let kept = catalogue();
    assert_eq!(
        (kept["classification"].as_str(), kept["owner"].as_str()),
        (Some("internal"), Some("civil defence"))
    );
    assert_eq!(kept["attribute_rules"][0]["attribute"], "name*");
    // Lowering without saying so is refused, and the served version stays.
    for lowering in
        [&["--classification", "public"][..], &["--protect", "name:drop:restricted"], &["--protect", "none"]]
    {
        let refused = ingest(&store, "shelters", lowering, &[&file]);
        assert!(!refused.ok && refused.stderr.contains("--declassify"), "{lowering:?}: {}", refused.stderr);
        assert_eq!(catalogue()["version"], kept["version"], "{lowering:?}");
    }

    let token_file = store.join("tokens.json");
    std::fs::write(&token_file, json!([
        {"name": "planner", "sha256": sha256_hex("planner-token"), "role": "planner", "clearance": "internal"},
        {"name": "admin", "sha256": sha256_hex("admin-token"), "role": "admin", "clearance": "restricted"}
    ]).to_string()).expect("write");
    let server = Server::start_with(&store, &["--tokens", token_file.to_str().expect("path")]);
    let base = &server.url;
    let props = |token: &str| {
        let items = ask(&format!("{base}/collections/shelters/items"), Some(token)).json();
        items["features"][0]["properties"].clone()
    };
    let planner = props("planner-token");
    assert_eq!(planner["use"], "shelter", "{planner}");
    for key in ["name", "name:fi", "name:en"] {
        assert!(planner.get(key).is_none(), "{key} shown below its clearance: {planner}");
        assert!(props("admin-token").get(key).is_some(), "{key} hidden from the admin");
    }
    let (tx, ty) = tile_of(lon + 0.0002, lat + 0.0001, 15);
    let tile = ask(&format!("{base}/tiles/shelters/15/{tx}/{ty}.mvt"), Some("admin-token"));
    assert_eq!(tile.status, 200);
    let mut body = tile.body.clone();
    if tile.header("content-encoding") == Some("gzip") {
        body.clear();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&tile.body[..]), &mut body)
            .expect("gunzip");
    }
    assert!(body.windows(3).any(|w| w == b"use"), "the tile carries the open attribute");
    assert!(!body.windows(4).any(|w| w == b"name"), "no name variant reaches a tile");

    // Below admin, the lineage names files; the admin sees where the host read them.
    let dir = store.to_str().expect("path").to_owned();
    for url in
        [format!("{base}/api/layers"), format!("{base}/collections/shelters"), format!("{base}/api/catalog")]
    {
        let seen = ask(&url, Some("planner-token"));
        let text = String::from_utf8_lossy(&seen.body).into_owned();
        assert!(text.contains("shelters.geojson") && !text.contains(&dir), "{url}: {text}");
    }
    let admin =
        String::from_utf8_lossy(&ask(&format!("{base}/api/layers"), Some("admin-token")).body).into_owned();
    assert!(admin.contains(&format!("{dir}/shelters.geojson")), "{admin}");

    // Said explicitly, lowering happens and is recorded in the lineage.
    let lowered = ingest(&store, "shelters", &["--classification", "public", "--declassify"], &[&file]);
    assert!(lowered.ok, "{}", lowered.stderr);
    let now = catalogue();
    assert_eq!(now["classification"], "public");
    assert_eq!(now["attribute_rules"][0]["attribute"], "name*", "rules not given are still inherited");
    let change = &now["governance_history"][0];
    assert_eq!(
        (change["declassified"].as_bool(), change["from_version"].as_str()),
        (Some(true), kept["version"].as_str())
    );
    assert_eq!(change["changes"], json!(["classification internal -> public"]));
    let open = ask(&format!("{base}/collections/shelters/items"), None);
    assert_eq!((open.status, open.json()["features"].as_array().map(Vec::len)), (200, Some(1)));
}

#[test]
fn a_shared_cache_in_front_never_gives_one_callers_answer_to_another() {
    let (store, token_file) = classified_store("access-cache");
    // The open layer also masks a name below internal: its features differ by caller.
    let file = store.join("blocks.geojson");
    ingest_ok(&store, "open", &["--protect", "name:mask:internal"], &[&file]);
    let server = Server::start_with(&store, &["--tokens", token_file.to_str().expect("path")]);
    let proxy = CachingProxy::start(&server.url);
    let via = &proxy.url;
    let (tx, ty) = tile_of(LON + 0.0002, LAT + 0.0001, 15);

    // Anonymous answers are shared: the second comes from the cache.
    let tile = format!("{via}/tiles/open/15/{tx}/{ty}.mvt");
    assert_eq!(ask(&tile, None).status, 200);
    let again = ask(&tile, None);
    assert_eq!((again.status, again.header("x-cache-status")), (200, Some("HIT")), "the cache works");
    assert!(again.header("cache-control").is_some_and(|c| c.contains("public")));

    for (url, token, hidden_from_anonymous) in [
        (format!("{via}/collections/secret/items/1"), "admin-token", true),
        (format!("{via}/collections/plans/items/1"), "planner-token", true),
        (format!("{via}/collections/open/items/1"), "planner-token", false),
        (format!("{via}/api/layers"), "admin-token", false),
    ] {
        let mine = ask(&url, Some(token));
        assert_eq!(mine.status, 200, "{url}");
        let control = mine.header("cache-control").unwrap_or_default().to_owned();
        assert!(control.contains("private") || control.contains("no-store"), "{url}: {control}");
        assert!(
            mine.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("authorization")),
            "{url}: {:?}",
            mine.headers
        );
        if url.contains("secret") {
            assert_eq!(control, "no-store", "{url}");
        }
        for _ in 0..2 {
            let theirs = ask(&url, None);
            assert_ne!(theirs.body, mine.body, "{url}: the anonymous caller got the {token} answer");
            if hidden_from_anonymous {
                assert_eq!(theirs.status, 404, "{url}");
            }
        }
        // And the other way round: the token's answer is not the cached anonymous one.
        assert_eq!(ask(&url, Some(token)).body, mine.body, "{url}");
    }
    let open = ask(&format!("{via}/collections/open/items/1"), None).json();
    assert_eq!(open["properties"]["name"], "***", "{open}");
    let planner = ask(&format!("{via}/collections/open/items/1"), Some("planner-token")).json();
    assert!(["a", "b"].contains(&planner["properties"]["name"].as_str().unwrap_or_default()), "{planner}");
}

#[test]
fn slow_clients_at_the_connection_cap_are_cut_off_and_healthz_and_tiles_still_answer() {
    use std::io::{Read, Write};
    let (store, _) = classified_store("access-slow");
    let server = Server::start_with(
        &store,
        &["--max-connections", "64", "--header-timeout-s", "2", "--anonymous-rate-limit", "40"],
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let (tx, ty) = tile_of(LON + 0.0002, LAT + 0.0001, 15);
    let tile = format!("{}/tiles/open/15/{tx}/{ty}.mvt", server.url);
    // 100 clients that start a request and never finish its headers.
    let mut slow: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: cim\r\nX-Slow: ").expect("write");
            s
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // At the cap a newcomer hears so at once rather than waiting in the queue.
    let started = std::time::Instant::now();
    let busy = get(&format!("{}/healthz", server.url), &[]);
    assert_eq!(busy.status, 503, "{}", String::from_utf8_lossy(&busy.body));
    assert!(busy.header("retry-after").is_some());
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    // Past the header timeout the slow ones are cut off, and everyone is served again.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mut cut = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(std::time::Duration::from_millis(500))).expect("timeout");
        let mut buf = [0u8; 512];
        // Closed (end of file or a reset), possibly after a 408 or 503 answer;
        // a read that times out means the server still holds it.
        let ended = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break false;
                }
                Err(_) => break true,
            }
        };
        if ended {
            cut += 1;
        }
    }
    assert_eq!(cut, slow.len(), "every slow client was cut off");
    assert_eq!(get(&format!("{}/healthz", server.url), &[]).status, 200);
    assert_eq!(get(&tile, &[]).status, 200);
    // Callers without a token are limited by address; 40 a second here.
    let statuses: Vec<u16> = (0..120).map(|_| get(&format!("{}/healthz", server.url), &[]).status).collect();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited > 0 && statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
}

/// Checks an Ed25519 signature with OpenSSL's command line, nobody's code here.
fn openssl_verifies(public_key_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let dir = temp_dir("openssl");
    let key: Vec<u8> = (0..public_key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&public_key_hex[i..i + 2], 16).expect("hex"))
        .collect();
    let sig: Vec<u8> = (0..signature_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&signature_hex[i..i + 2], 16).expect("hex"))
        .collect();
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed prefix and the key.
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend_from_slice(&key);
    std::fs::write(dir.join("pub.der"), der).expect("write");
    std::fs::write(dir.join("msg"), message).expect("write");
    std::fs::write(dir.join("sig"), sig).expect("write");
    std::process::Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-rawin"])
        .arg("-inkey")
        .arg(dir.join("pub.der"))
        .arg("-in")
        .arg(dir.join("msg"))
        .arg("-sigfile")
        .arg(dir.join("sig"))
        .output()
        .expect("openssl")
        .status
        .success()
}

#[test]
fn with_keys_outside_the_store_a_cut_or_rewritten_audit_log_is_reported_broken_and_tile_reads_are_folded() {
    let (store, token_file) = classified_store("access-audit-keys");
    let keys = temp_dir("audit-keys");
    std::fs::write(keys.join("mac.key"), b"0123456789abcdef0123456789abcdef-mac").expect("write");
    std::fs::write(keys.join("sign.key"), "11".repeat(32)).expect("write");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--tokens".into(),
            token_file.display().to_string(),
            "--audit-key".into(),
            keys.join("mac.key").display().to_string(),
            "--audit-signing-key".into(),
            keys.join("sign.key").display().to_string(),
            "--audit-checkpoint-s".into(),
            "1".into(),
            "--audit-aggregate-s".into(),
            "1".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let start = |extra: &[&str]| {
        let a = args(extra);
        Server::start_with(&store, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let admin = Some("admin-token");
    let mut server = start(&[]);
    let base = server.url.clone();
    let (tx, ty) = tile_of(LON + 0.0002, LAT + 0.0001, 15);
    for _ in 0..30 {
        assert_eq!(ask(&format!("{base}/tiles/open/15/{tx}/{ty}.mvt"), None).status, 200);
    }
    assert_eq!(ask(&format!("{base}/api/layers"), None).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let records = ask(&format!("{base}/api/audit?limit=10000"), admin).json();
    let records = records["records"].as_array().expect("records").clone();
    let folded: Vec<&Value> = records
        .iter()
        .filter(|r| r["target"].as_str().is_some_and(|t| t.starts_with("/tiles/open/*")))
        .collect();
    assert_eq!(folded.len(), 1, "{records:?}");
    assert!(folded[0]["target"].as_str().is_some_and(|t| t.contains("(30 requests")), "{}", folded[0]);
    assert!(records.iter().all(|r| r["mac"].as_str().is_some_and(|m| m.len() == 64)), "every record keyed");
    let points = ask(&format!("{base}/api/audit/checkpoints"), admin).json();
    let list = points["checkpoints"].as_array().expect("checkpoints");
    let last = list.last().expect("a checkpoint within a second").clone();
    let message = format!(
        "cim-audit-checkpoint\n{}\n{}\n{}",
        last["seq"],
        last["hash"].as_str().expect("hash"),
        last["time_ms"]
    );
    assert!(openssl_verifies(
        points["public_key"].as_str().expect("key"),
        message.as_bytes(),
        last["signature"].as_str().expect("sig")
    ));
    assert!(!openssl_verifies(
        points["public_key"].as_str().expect("key"),
        b"something else",
        last["signature"].as_str().expect("sig")
    ));
    let verdict = ask(&format!("{base}/api/audit/verify"), admin).json();
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["keyed"].as_bool()),
        (Some(true), Some(true)),
        "{verdict}"
    );
    // A monitor's kept checkpoint checks too.
    let kept = format!(
        "/api/audit/verify?seq={}&hash={}&time_ms={}&signature={}",
        last["seq"],
        last["hash"].as_str().unwrap_or(""),
        last["time_ms"],
        last["signature"].as_str().unwrap_or("")
    );
    assert_eq!(ask(&format!("{base}{kept}"), admin).json()["intact"], true);

    // Cut the log's end behind the server's back (after a checkpoint covered it),
    // then restart it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill_9();
    let path = store.join(".audit/audit.jsonl");
    let text = std::fs::read_to_string(&path).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, lines[..lines.len() - 3].iter().map(|l| format!("{l}\n")).collect::<String>())
        .expect("write");
    let server = start(&[]);
    let base = server.url.clone();
    let verdict = ask(&format!("{base}/api/audit/verify"), admin).json();
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert!(verdict["problems"].to_string().contains("were missing when the server started"), "{verdict}");
    let after = ask(&format!("{base}/api/audit?limit=10000"), admin).json();
    let seqs: Vec<u64> =
        after["records"].as_array().expect("records").iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1),
        "numbering goes on past the cut, never back to 1: {seqs:?}"
    );
    // A monitor's checkpoint of the longer log no longer holds either.
    assert_eq!(ask(&format!("{base}{kept}"), admin).json()["intact"], false);
    drop(server);

    // Keys inside the store are refused: whoever writes the store would hold them.
    std::fs::copy(keys.join("mac.key"), store.join("mac.key")).expect("copy");
    let refused = std::process::Command::new(bin_dir().join("cim-server"))
        .arg("--store")
        .arg(&*store)
        .args(["--bind", "127.0.0.1:0", "--audit-key"])
        .arg(store.join("mac.key"))
        .output()
        .expect("cim-server");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("outside the store"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

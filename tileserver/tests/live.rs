//! The live sensor API through the router (`oneshot`): registry, readings in,
//! durable storage across a reopen, downsampled queries, states and alerts on the
//! real NAB machine-temperature series, and bad input turned away with reasons.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use cim_tileserver::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(tag: &str) -> Dir {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cim-live-{}-{n}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    Dir(dir)
}

async fn call(state: &AppState, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let request = match body {
        Some(b) => request.body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn raw_call(state: &AppState, uri: &str, body: &'static str) -> (StatusCode, Value) {
    let request = Request::builder().method("POST").uri(uri).body(Body::from(body)).expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The sample IoT series beside the checkout, or `None` (with a note) on a clone
/// without `../shared`, where the tests that replay them skip.
fn iot_file(file: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/iot").join(file);
    if !path.exists() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: {} is absent (the sample data lives in ../shared)", path.display());
        return None;
    }
    Some(path)
}

fn nab(file: &str) -> Option<Vec<(String, f64)>> {
    let path = iot_file(file)?;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let (t, v) = l.split_once(',')?;
                Some((format!("{}Z", t.replacen(' ', "T", 1)), v.parse().ok()?))
            })
            .collect(),
    )
}

#[tokio::test]
async fn sensors_register_validate_and_list_with_their_state() {
    let dir = temp("registry");
    let state = AppState::open(&dir.0).expect("state");
    let sensor =
        json!({"id":"m-1","kind":"temperature","unit":"°C","lon":24.94,"lat":60.17,"warn":60,"alarm":40});
    let (status, body) = call(&state, "POST", "/api/sensors", Some(sensor.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = call(&state, "POST", "/api/sensors", Some(sensor)).await;
    assert_eq!(status, StatusCode::OK, "a second POST replaces");
    let (status, body) =
        call(&state, "POST", "/api/sensors", Some(json!({"id":"x","kind":"t","unit":"C","lon":200,"lat":0})))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["description"].as_str().is_some_and(|d| d.contains("'lon'")), "{body}");
    let (status, _) = call(&state, "POST", "/api/sensors", Some(json!({"id":"x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, list) = call(&state, "GET", "/api/sensors", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["state"], "unknown");
    let (status, _) = call(&state, "GET", "/api/sensors/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&state, "DELETE", "/api/sensors/m-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&state, "GET", "/api/sensors/m-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Published anomaly windows of `machine_temperature_system_failure.csv` in NAB's
/// `labels/combined_windows.json`; the last one is the system failure.
const NAB_WINDOWS: [(&str, &str); 4] = [
    ("2013-12-10T06:25:00Z", "2013-12-12T05:35:00Z"),
    ("2013-12-15T17:50:00Z", "2013-12-17T17:00:00Z"),
    ("2014-01-27T14:20:00Z", "2014-01-29T13:30:00Z"),
    ("2014-02-07T14:55:00Z", "2014-02-09T14:05:00Z"),
];

#[tokio::test]
async fn the_machine_temperature_series_raises_an_alarm_in_its_labelled_failure_and_survives_a_reopen() {
    let dir = temp("nab");
    let Some(series) = nab("nab_machine_temperature_system_failure.csv") else { return };
    assert_eq!(series.len(), 22_695);
    {
        let state = AppState::open(&dir.0).expect("state");
        // Low is bad for this machine: warn below 60, alarm below 40, 5 degrees of hysteresis.
        let sensor = json!({"id":"machine","kind":"temperature","unit":"°C","lon":24.94,"lat":60.17,
            "warn":60,"alarm":40,"hysteresis":5,"period_s":300});
        assert_eq!(call(&state, "POST", "/api/sensors", Some(sensor)).await.0, StatusCode::CREATED);
        for chunk in series.chunks(5000) {
            let batch: Vec<Value> =
                chunk.iter().map(|(t, v)| json!({"sensor":"machine","t":t,"value":v})).collect();
            let (status, body) = call(&state, "POST", "/api/readings", Some(Value::Array(batch))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["stored"].as_u64(), Some(chunk.len() as u64));
        }
        // The same readings again: duplicates, nothing new, no new alerts.
        let again: Vec<Value> =
            series[..100].iter().map(|(t, v)| json!({"sensor":"machine","t":t,"value":v})).collect();
        let (_, body) = call(&state, "POST", "/api/readings", Some(Value::Array(again))).await;
        assert_eq!((body["stored"].as_u64(), body["duplicates"].as_u64()), (Some(0), Some(100)));
    }
    // Reopen the database: everything acknowledged is there.
    let state = AppState::open(&dir.0).expect("reopen");
    // A page at a time: 10 000 unless `limit` asks for more (100 000 at most).
    let (_, page) = call(&state, "GET", "/api/sensors/machine/readings", None).await;
    assert_eq!(page.as_array().map(Vec::len), Some(10_000));
    for bad in ["0", "100001", "x", "-1"] {
        let (status, body) =
            call(&state, "GET", &format!("/api/sensors/machine/readings?limit={bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
    }
    let (_, raw) = call(&state, "GET", "/api/sensors/machine/readings?limit=100000", None).await;
    let raw = raw.as_array().expect("array");
    assert_eq!(&raw[..10_000], page.as_array().expect("page").as_slice());
    // The series repeats 12 timestamps (a clock stepping back on 2014-01-07): a
    // reading for a time already stored replaces it.
    let distinct = series.iter().map(|(t, _)| t).collect::<std::collections::HashSet<_>>().len();
    assert_eq!(distinct, series.len() - 12);
    assert_eq!(raw.len(), distinct);
    assert_eq!(raw[0]["t"], "2013-12-02T21:15:00.000Z");
    assert!((raw[0]["value"].as_f64().unwrap_or(0.0) - series[0].1).abs() < 1e-9);
    let (_, alerts) = call(&state, "GET", "/api/alerts", None).await;
    let alarms: Vec<&str> = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["to"] == "alarm")
        .filter_map(|a| a["t"].as_str())
        .collect();
    let inside = |t: &str, (from, to): (&str, &str)| {
        let t = &t[..19];
        t >= &from[..19] && t <= &to[..19]
    };
    assert!(alarms.iter().any(|t| inside(t, NAB_WINDOWS[3])), "an alarm in the system failure: {alarms:?}");
    assert!(alarms.iter().all(|t| NAB_WINDOWS.iter().any(|w| inside(t, *w))), "no false alarm: {alarms:?}");
    // A viewer starting late asks for the newest few: the tail of the same list.
    let all = alerts.as_array().expect("alerts");
    assert!(all.len() > 3, "{}", all.len());
    let (_, last) = call(&state, "GET", "/api/alerts?last=3", None).await;
    assert_eq!(last.as_array().map(Vec::as_slice), Some(&all[all.len() - 3..]));
    let (_, sensor) = call(&state, "GET", "/api/sensors/machine", None).await;
    assert_eq!(sensor["latest"]["t"], "2014-02-19T15:25:00.000Z");
    assert_eq!(sensor["state"], "ok", "the series ends healthy: {sensor}");

    // Downsampled: one hour of 5-minute readings is 12 raw values; their mean.
    let hour = "from=2013-12-03T00:00:00Z&to=2013-12-03T01:00:00Z";
    let (_, raw_hour) = call(&state, "GET", &format!("/api/sensors/machine/readings?{hour}"), None).await;
    let values: Vec<f64> =
        raw_hour.as_array().expect("raw").iter().filter_map(|r| r["value"].as_f64()).collect();
    assert_eq!(values.len(), 12);
    let mean = values.iter().sum::<f64>() / 12.0;
    for step in ["1h", "3600", "60m"] {
        let (_, agg) =
            call(&state, "GET", &format!("/api/sensors/machine/readings?{hour}&step={step}"), None).await;
        assert_eq!(agg.as_array().map(Vec::len), Some(1), "{step}: {agg}");
        assert!((agg[0]["value"].as_f64().unwrap_or(0.0) - mean).abs() < 1e-9, "{step}");
        assert_eq!(agg[0]["t"], "2013-12-03T00:00:00.000Z");
    }
    let (_, per_15) =
        call(&state, "GET", &format!("/api/sensors/machine/readings?{hour}&step=15m"), None).await;
    assert_eq!(per_15.as_array().map(Vec::len), Some(4));
    let first: f64 = values[..3].iter().sum::<f64>() / 3.0;
    assert!((per_15[0]["value"].as_f64().unwrap_or(0.0) - first).abs() < 1e-9);
    // Retention: keep one day of raw readings before the newest; the hour means of
    // older days still answer, and the newest day is whole.
    let dropped = state.live.as_ref().expect("live").store.prune(86_400_000, 7 * 86_400_000).expect("prune");
    let (_, kept) = call(&state, "GET", "/api/sensors/machine/readings", None).await;
    let kept = kept.as_array().expect("kept");
    assert_eq!(dropped + kept.len(), distinct);
    assert_eq!(kept.first().and_then(|r| r["t"].as_str()), Some("2014-02-18T15:25:00.000Z"));
    let (_, old_hour) =
        call(&state, "GET", &format!("/api/sensors/machine/readings?{hour}&step=1h"), None).await;
    assert!((old_hour[0]["value"].as_f64().unwrap_or(0.0) - mean).abs() < 1e-9, "hour means outlive raw");
    let (_, old_raw) = call(&state, "GET", &format!("/api/sensors/machine/readings?{hour}"), None).await;
    assert_eq!(old_raw.as_array().map(Vec::len), Some(0));
    for bad in ["step=5x", "from=yesterday", "from=2014-01-02T00:00:00Z&to=2014-01-01T00:00:00Z"] {
        let (status, _) = call(&state, "GET", &format!("/api/sensors/machine/readings?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn bad_readings_are_turned_away_with_reasons_and_counted() {
    let dir = temp("bad");
    let state = AppState::open(&dir.0).expect("state");
    let sensor = json!({"id":"s","kind":"speed","unit":"km/h","lon":24.9,"lat":60.1});
    call(&state, "POST", "/api/sensors", Some(sensor)).await;
    let batch = json!([
        {"sensor":"s","t":"2015-09-01T13:45:00Z","value":3.0},
        {"sensor":"ghost","t":"2015-09-01T13:45:00Z","value":3.0},
        {"sensor":"s","t":"13:45 yesterday","value":3.0},
        {"sensor":"s","t":"2015-09-01T13:40:00Z","value":2.0}
    ]);
    let (status, body) = call(&state, "POST", "/api/readings", Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "the good ones are stored: {body}");
    assert_eq!(body["stored"], 2);
    let reasons: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["index"].as_u64().unwrap_or(99), r["reason"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0].0, 1);
    assert!(reasons[0].1.contains("unknown sensor 'ghost'"));
    assert_eq!(reasons[1].0, 2);
    assert!(reasons[1].1.contains("RFC 3339"));
    let (status, _) =
        call(&state, "POST", "/api/readings", Some(json!([{"sensor":"ghost","t":"x","value":1}]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "nothing usable");
    for garbage in ["{", "[{\"sensor\":1}]", "null", "[1,2,3]"] {
        let (status, body) = raw_call(&state, "/api/readings", garbage).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{garbage}: {body}");
    }
    let (_, stats) = call(&state, "GET", "/api/live/stats", None).await;
    assert_eq!(stats["stored"], 2);
    assert_eq!(stats["out_of_order"], 1, "13:40 arrived after 13:45");
    assert_eq!(stats["rejected"]["unknown_sensor"], 2);
    assert_eq!(stats["rejected"]["bad_time"], 1);
    assert_eq!(stats["rejected"]["bad_payload"], 4);
    // The out-of-order reading is stored but does not become the latest.
    let (_, s) = call(&state, "GET", "/api/sensors/s", None).await;
    assert_eq!(s["latest"]["t"], "2015-09-01T13:45:00.000Z");
    let (_, all) = call(&state, "GET", "/api/sensors/s/readings", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert_eq!(all[0]["t"], "2015-09-01T13:40:00.000Z", "in time order");
}

#[tokio::test]
async fn a_second_instance_on_the_same_store_serves_without_live_data() {
    let dir = temp("replica");
    let first = AppState::open(&dir.0).expect("first");
    let second = AppState::open(&dir.0).expect("a read replica still opens");
    assert!(first.live.is_some() && second.live.is_none());
    let (status, body) = call(&second, "GET", "/api/sensors", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "ServiceUnavailable");
    let (status, _) = call(&second, "GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&first, "GET", "/api/sensors", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_share_commits_yet_each_gets_its_own_counts_and_means_stay_exact() {
    let dir = temp("group");
    let state = AppState::open(&dir.0).expect("state");
    for id in ["g-0", "g-1", "g-2", "g-3"] {
        let sensor = json!({"id": id, "kind": "flow", "unit": "l/s", "lon": 24.9, "lat": 60.1});
        assert_eq!(call(&state, "POST", "/api/sensors", Some(sensor)).await.0, StatusCode::CREATED);
    }
    // 16 requests at once, 4 per sensor, each 60 one-second readings of one minute;
    // values k + 100 * request so every minute's mean is known.
    let batch = |request: usize| {
        let sensor = format!("g-{}", request % 4);
        let minute = request / 4;
        let readings: Vec<Value> = (0..60)
            .map(|k| {
                json!({"sensor": sensor, "t": format!("2026-01-01T00:{minute:02}:{k:02}Z"),
                       "value": (k + 100 * request) as f64})
            })
            .collect();
        Value::Array(readings)
    };
    let replies = futures_util::future::join_all((0..16).map(|r| {
        let state = state.clone();
        let body = batch(r);
        async move { call(&state, "POST", "/api/readings", Some(body)).await }
    }))
    .await;
    for (status, body) in &replies {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!((body["stored"].as_u64(), body["duplicates"].as_u64()), (Some(60), Some(0)), "{body}");
    }
    // Sent again: each request is told all 60 were already there.
    let again = futures_util::future::join_all((0..4).map(|r| {
        let state = state.clone();
        let body = batch(r);
        async move { call(&state, "POST", "/api/readings", Some(body)).await }
    }))
    .await;
    for (_, body) in &again {
        assert_eq!((body["stored"].as_u64(), body["duplicates"].as_u64()), (Some(0), Some(60)), "{body}");
    }
    // Minute means across requests and commits: mean of k + 100 r over k = 29.5 + 100 r.
    for sensor in 0..4 {
        let (_, means) =
            call(&state, "GET", &format!("/api/sensors/g-{sensor}/readings?step=1m"), None).await;
        let got: Vec<f64> =
            means.as_array().expect("means").iter().filter_map(|m| m["value"].as_f64()).collect();
        let want: Vec<f64> = (0..4).map(|minute| 29.5 + 100.0 * (minute * 4 + sensor) as f64).collect();
        assert_eq!(got, want, "g-{sensor}");
        let (_, hour) = call(&state, "GET", &format!("/api/sensors/g-{sensor}/readings?step=1h"), None).await;
        let mean = want.iter().sum::<f64>() / 4.0;
        assert!((hour[0]["value"].as_f64().unwrap_or(0.0) - mean).abs() < 1e-9, "{hour}");
    }
    let (_, stats) = call(&state, "GET", "/api/live/stats", None).await;
    assert_eq!((stats["stored"].as_u64(), stats["duplicates"].as_u64()), (Some(960), Some(240)), "{stats}");
}

#[tokio::test]
async fn after_a_reopen_the_state_and_the_newest_reading_are_those_last_stored() {
    let dir = temp("restore");
    {
        let state = AppState::open(&dir.0).expect("state");
        let sensor =
            json!({"id":"p","kind":"pressure","unit":"bar","lon":24.9,"lat":60.1,"warn":5,"alarm":8});
        call(&state, "POST", "/api/sensors", Some(sensor)).await;
        // ok, then alarm, then more alarm readings that change nothing but the value.
        for (t, v) in [("00", 1.0), ("01", 9.0), ("02", 9.5), ("03", 9.7)] {
            let body = json!([{"sensor":"p","t":format!("2026-01-01T00:{t}:00Z"),"value":v}]);
            assert_eq!(call(&state, "POST", "/api/readings", Some(body)).await.0, StatusCode::OK);
        }
    }
    let state = AppState::open(&dir.0).expect("reopen");
    let (_, sensor) = call(&state, "GET", "/api/sensors/p", None).await;
    assert_eq!(sensor["state"], "alarm", "{sensor}");
    assert_eq!(sensor["latest"], json!({"t":"2026-01-01T00:03:00.000Z","value":9.7}), "{sensor}");
    // An older reading after the reopen is out of order: the state stays.
    let body = json!([{"sensor":"p","t":"2026-01-01T00:02:30Z","value":1.0}]);
    call(&state, "POST", "/api/readings", Some(body)).await;
    let (_, sensor) = call(&state, "GET", "/api/sensors/p", None).await;
    assert_eq!((sensor["state"].as_str(), sensor["latest"]["value"].as_f64()), (Some("alarm"), Some(9.7)));
}

#[tokio::test]
async fn every_real_reading_comes_back_bit_for_bit_as_sent() {
    let dir = temp("exact");
    let state = AppState::open(&dir.0).expect("state");
    let mut compared = 0;
    for (id, file) in [
        ("machine", "nab_machine_temperature_system_failure.csv"),
        ("occupancy", "nab_occupancy_6005.csv"),
        ("speed", "nab_speed_6005.csv"),
    ] {
        let sensor = json!({"id": id, "kind": "k", "unit": "u", "lon": 24.94, "lat": 60.17});
        assert_eq!(call(&state, "POST", "/api/sensors", Some(sensor)).await.0, StatusCode::CREATED);
        let Some(path) = iot_file(file) else { return };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The values as the file writes them, sent as that text, and what Rust's
        // correctly rounded parse makes of it.
        let mut sent = std::collections::BTreeMap::new();
        let mut repeated = std::collections::HashSet::new();
        let mut body = String::from("[");
        for line in text.lines().skip(1) {
            let Some((t, v)) = line.split_once(',') else { continue };
            let t = format!("{}.000Z", t.replacen(' ', "T", 1));
            if body.len() > 1 {
                body.push(',');
            }
            body.push_str(&format!(r#"{{"sensor":"{id}","t":"{t}","value":{v}}}"#));
            if sent.insert(t.clone(), v.parse::<f64>().expect("value")).is_some() {
                repeated.insert(t); // the series steps its clock back: either value may stand
            }
        }
        body.push(']');
        let request = Request::builder()
            .method("POST")
            .uri("/api/readings")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let response = app(state.clone()).oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let mut back = Vec::new();
        let mut next = Some(format!("/api/sensors/{id}/readings?limit=5000"));
        while let Some(uri) = next.take() {
            let request = Request::builder().uri(&uri).body(Body::empty()).expect("request");
            let response = app(state.clone()).oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            next = response.headers().get("link").and_then(|l| l.to_str().ok()).and_then(|l| {
                l.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(u, _)| u.to_owned())
            });
            let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("body");
            back.extend(serde_json::from_slice::<Vec<Value>>(&bytes).expect("readings"));
        }
        assert_eq!(back.len(), sent.len(), "{id}: every distinct timestamp comes back");
        for r in &back {
            let t = r["t"].as_str().expect("t");
            if repeated.contains(t) {
                continue;
            }
            // The number as the server wrote it, parsed by std, not by serde_json.
            let written = r["value"].to_string();
            let got: f64 = written.parse().expect("number");
            assert_eq!(got.to_bits(), sent[t].to_bits(), "{id} at {t}: sent {} got {written}", sent[t]);
            compared += 1;
        }
    }
    assert!(compared > 27_000, "{compared}");
}

/// A request with headers; the status, the headers and the JSON body.
async fn call_with(
    state: &AppState,
    method: &str,
    uri: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.expect("body");
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn grid_sensor(i: usize) -> Value {
    // A 150 x 134 grid over Helsinki, 100 m apart.
    json!({"id": format!("s{i:06}"), "kind": if i.is_multiple_of(3) { "noise" } else { "temperature" },
           "unit": "C", "lon": 24.80 + (i % 150) as f64 * 0.0018, "lat": 60.10 + (i / 150) as f64 * 0.0009})
}

#[tokio::test]
async fn twenty_thousand_sensors_register_in_one_commit_and_page_and_search_by_box_exactly() {
    let dir = temp("batch");
    let state = AppState::open(&dir.0).expect("state");
    let n = 20_000;
    // One bad sensor refuses the whole batch, naming its place; nothing is stored.
    let mut docs: Vec<Value> = (0..n).map(grid_sensor).collect();
    docs[7]["lon"] = json!(400.0);
    let (status, _, body) =
        call_with(&state, "POST", "/api/sensors", "application/json", Value::Array(docs.clone()).to_string())
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["description"].as_str().is_some_and(|d| d.starts_with("sensor 7: ")), "{body}");
    let twice = json!([grid_sensor(1), grid_sensor(1)]).to_string();
    let (status, _, body) = call_with(&state, "POST", "/api/sensors", "application/json", twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(call(&state, "GET", "/api/sensors", None).await.1, json!([]), "nothing stored");
    // The whole batch, then its last thousand again as NDJSON (replaced, not added).
    docs[7] = grid_sensor(7);
    let (status, _, body) =
        call_with(&state, "POST", "/api/sensors", "application/json", Value::Array(docs.clone()).to_string())
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"registered": n, "created": n, "replaced": 0}));
    let lines: Vec<String> = docs[n - 1000..].iter().map(Value::to_string).collect();
    let (status, _, body) =
        call_with(&state, "POST", "/api/sensors", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"registered": 1000, "created": 0, "replaced": 1000})));

    // Pages follow their Link header and return every sensor once, in id order.
    let mut uri = "/api/sensors?limit=3000".to_owned();
    let mut ids = Vec::new();
    loop {
        let (status, headers, page) = call_with(&state, "GET", &uri, "application/json", String::new()).await;
        assert_eq!(status, StatusCode::OK);
        ids.extend(page.as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_owned()));
        match headers.get("link").and_then(|l| l.to_str().ok()) {
            Some(link) => uri = link.trim_start_matches('<').split('>').next().expect("uri").to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..n).map(|i| format!("s{i:06}")).collect();
    assert_eq!(ids, expected);
    let (status, body) = call(&state, "GET", "/api/sensors?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A box through the R-tree finds exactly what a scan of the grid finds.
    let b = [24.85, 60.13, 24.90, 60.15];
    let inside: Vec<String> = (0..n)
        .map(grid_sensor)
        .filter(|s| {
            let (x, y) = (s["lon"].as_f64().expect("lon"), s["lat"].as_f64().expect("lat"));
            x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3] && s["kind"] == "noise"
        })
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    let uri =
        format!("/collections/sensors/items?bbox={},{},{},{}&kind=noise&limit=10000", b[0], b[1], b[2], b[3]);
    let (status, page) = call(&state, "GET", &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let found: Vec<String> = page["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(inside.len() > 50, "{}", inside.len());
    assert_eq!((page["numberMatched"].as_u64(), found), (Some(inside.len() as u64), inside));

    // The layer listing counts them, and sees a removal at once.
    let (_, layers) = call(&state, "GET", "/api/layers", None).await;
    let entry =
        layers.as_array().expect("layers").iter().find(|l| l["id"] == "sensors").expect("sensors").clone();
    assert_eq!(entry["feature_count"], n);
    assert_eq!(call(&state, "DELETE", "/api/sensors/s000000", None).await.0, StatusCode::NO_CONTENT);
    let (_, layers) = call(&state, "GET", "/api/layers", None).await;
    let after =
        layers.as_array().expect("layers").iter().find(|l| l["id"] == "sensors").expect("sensors").clone();
    assert_eq!(after["feature_count"], n - 1);
    assert_ne!(after["version"], entry["version"]);
}

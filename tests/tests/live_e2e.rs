//! Live sensors through the real `cim-server`: readings acknowledged over HTTP survive
//! `kill -9` in the middle of a stream, and a WebSocket subscriber gets a snapshot,
//! then the readings and alerts of the sensors it asked for, in order.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cim_e2e::*;
use serde_json::{Value, json};

fn post(url: &str, body: &Value) -> Result<(u16, Value), String> {
    let response =
        match ureq::post(url).set("content-type", "application/json").send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
    let status = response.status();
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn time(i: usize) -> String {
    // One reading a second from 2026-01-01T00:00:00Z.
    let (h, m, s) = (i / 3600, i / 60 % 60, i % 60);
    let (d, h) = (1 + h / 24, h % 24);
    format!("2026-01-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[test]
fn every_acknowledged_reading_survives_kill_9_mid_stream() {
    let store = temp_dir("live-kill");
    let mut server = Server::start(&store);
    let sensor = json!({"id":"flow-1","kind":"water_flow","unit":"l/s","lon":24.94,"lat":60.17});
    let (status, _) = post(&format!("{}/api/sensors", server.url), &sensor).expect("register");
    assert_eq!(status, 201);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, acked, stop) = (format!("{}/api/readings", server.url), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Value> = (next..next + 200)
                    .map(|i| json!({"sensor":"flow-1","t":time(i),"value":i as f64}))
                    .collect();
                match post(&url, &Value::Array(batch)) {
                    Ok((200, body)) if body["stored"] == 200 => {
                        acked.lock().expect("lock").extend(next..next + 200);
                    }
                    // The server died under us: this batch was never acknowledged.
                    _ => break,
                }
                next += 200;
            }
        })
    };
    // Let a good number of batches through, then pull the plug mid-stream.
    while acked.lock().expect("lock").len() < 20_000 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acknowledged = acked.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 20_000);

    let server = Server::start(&store);
    let stored = get_json(&format!("{}/api/sensors/flow-1/readings?limit=100000", server.url));
    let stored = stored.as_array().expect("readings");
    let values: std::collections::HashSet<u64> =
        stored.iter().filter_map(|r| r["value"].as_f64()).map(|v| v as u64).collect();
    let lost: Vec<usize> = acknowledged.iter().copied().filter(|i| !values.contains(&(*i as u64))).collect();
    assert!(lost.is_empty(), "{} acknowledged readings lost, first {:?}", lost.len(), lost.first());
    // Nothing invented either: every stored reading was sent, at most one batch past
    // the last acknowledged one (committed, but the reply died with the server).
    let sent_end = acknowledged.iter().max().copied().unwrap_or(0) + 1 + 200;
    assert!(values.iter().all(|v| (*v as usize) < sent_end), "a reading nobody sent");
    let sensor = get_json(&format!("{}/api/sensors/flow-1", server.url));
    assert_eq!(sensor["state"], "ok", "the registry and state survive too: {sensor}");
}

#[test]
fn a_websocket_subscriber_gets_a_snapshot_then_its_sensors_readings_and_alerts_in_order() {
    let store = temp_dir("live-ws");
    let server = Server::start(&store);
    let sensors = [
        json!({"id":"boiler","kind":"temperature","unit":"°C","lon":24.94,"lat":60.17,"warn":80,"alarm":90}),
        json!({"id":"road","kind":"speed","unit":"km/h","lon":24.95,"lat":60.17}),
        json!({"id":"far","kind":"temperature","unit":"°C","lon":121.47,"lat":31.23}),
    ];
    for s in &sensors {
        assert_eq!(post(&format!("{}/api/sensors", server.url), s).expect("register").0, 201);
    }
    let ws_url =
        format!("{}/api/live?kind=temperature&bbox=24,59,26,61", server.url.replacen("http://", "ws://", 1));
    let (mut socket, _) = tungstenite::connect(ws_url.as_str()).expect("websocket");
    let mut next = || -> Value {
        loop {
            match socket.read().expect("message") {
                tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    };
    let snapshot = next();
    assert_eq!(snapshot["type"], "snapshot");
    let ids: Vec<&str> =
        snapshot["sensors"].as_array().expect("sensors").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["boiler"], "only temperature sensors inside the bbox");

    let values = [70.0, 85.0, 95.0, 75.0];
    for (i, v) in values.iter().enumerate() {
        let batch = json!([
            {"sensor":"road","t":time(i),"value":50.0},
            {"sensor":"far","t":time(i),"value":99.0},
            {"sensor":"boiler","t":time(i),"value":v}
        ]);
        let (status, body) = post(&format!("{}/api/readings", server.url), &batch).expect("post");
        assert_eq!(status, 200, "{body}");
    }
    let mut readings = Vec::new();
    let mut alerts = Vec::new();
    while readings.len() < values.len() || alerts.len() < 3 {
        let event = next();
        assert_eq!(event["sensor"], "boiler", "nothing from other kinds or places: {event}");
        match event["type"].as_str() {
            Some("reading") => {
                readings.push((event["value"].as_f64().unwrap_or(f64::NAN), event["state"].clone()))
            }
            Some("alert") => alerts.push((event["from"].clone(), event["to"].clone())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        readings,
        [(70.0, json!("ok")), (85.0, json!("warn")), (95.0, json!("alarm")), (75.0, json!("ok"))],
        "in order, with states"
    );
    assert_eq!(
        alerts,
        [(json!("ok"), json!("warn")), (json!("warn"), json!("alarm")), (json!("alarm"), json!("ok"))]
    );
    let listed = get_json(&format!("{}/api/alerts", server.url));
    let far_alarm =
        listed.as_array().expect("alerts").iter().any(|a| a["sensor"] == "far" && a["to"] == "alarm");
    assert!(!far_alarm, "far has no thresholds, so no alarm");
    let stats = get_json(&format!("{}/api/live/stats", server.url));
    assert_eq!(stats["subscribers"], 1);
    assert_eq!(stats["stored"], 12);
}

/// A real mosquitto on a free loopback port, gone with the test.
struct Mosquitto {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    fn start() -> Self {
        let dir = temp_dir("mosquitto");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nmessage_size_limit 1048576\n"),
        )
        .expect("config");
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto (apt-get install mosquitto mosquitto-clients)");
        // Owned from here on: Drop kills and reaps it, also when the wait below fails.
        let broker = Self { child, port, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return broker;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on {port}");
    }

    /// `mosquitto_pub -q 1 -l`: one message per line of `lines`, QoS 1.
    fn publish(&self, topic: &str, lines: &[String]) {
        mosquitto_pub(&format!("127.0.0.1:{}", self.port), 1, topic, lines);
    }
}

/// `mosquitto_pub -q QOS -l`: one message per line of `lines`. It returns once every
/// message was acknowledged (PUBACK / PUBCOMP) and it disconnected.
fn mosquitto_pub(broker: &str, qos: u8, topic: &str, lines: &[String]) {
    use std::io::Write;
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let mut child = std::process::Command::new("mosquitto_pub")
        .args(["-h", host, "-p", port, "-q", &qos.to_string(), "-t", topic, "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        writeln!(stdin, "{line}").expect("write");
    }
    drop(stdin);
    assert!(child.wait().expect("mosquitto_pub").success());
}

/// The NAB machine-temperature series (timestamps made RFC 3339) within `[from, to)`.
fn nab_series(from: &str, to: &str) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(data("iot/nab_machine_temperature_system_failure.csv")).expect("csv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (t, v) = l.split_once(',')?;
            Some((format!("{}Z", t.replacen(' ', "T", 1)), v.parse().ok()?))
        })
        .filter(|(t, _)| t.as_str() >= from && t.as_str() < to)
        .collect()
}

#[test]
fn the_embedded_broker_acknowledges_only_stored_readings_and_mosquitto_clients_work_with_it() {
    let store = temp_dir("live-broker");
    let mut server = Server::start_with(&store, &["--mqtt-listen", "127.0.0.1:0"]);
    let broker = server.mqtt.clone().expect("the server prints its MQTT address");
    let sensor = json!({"id":"machine","kind":"temperature","unit":"°C","lon":24.94,"lat":60.17,
        "warn":60,"alarm":40,"hysteresis":5,"period_s":300});
    assert_eq!(post(&format!("{}/api/sensors", server.url), &sensor).expect("register").0, 201);

    // A mosquitto_sub watching everything under cim/ sees what publishers send.
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let series = nab_series("2014-02-07T12:00:00Z", "2014-02-08T06:00:00Z");
    assert!(series.len() > 200, "{}", series.len());
    let mut watcher = std::process::Command::new("mosquitto_sub")
        .args(["-h", host, "-p", port, "-t", "cim/#", "-v"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let watched: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        use std::io::BufRead;
        let (out, watched) = (watcher.stdout.take().expect("stdout"), watched.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                watched.lock().expect("lock").push(line);
            }
        });
    }
    // Topics outside cim/sensors/ are only passed on: probe until the watcher hears one.
    let mut listening = false;
    for _ in 0..50 {
        mosquitto_pub(&broker, 0, "cim/hello", &["probe".to_owned()]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        if !watched.lock().expect("lock").is_empty() {
            listening = true;
            break;
        }
    }
    assert!(listening, "mosquitto_sub never heard the probe");

    // Half the series at QoS 1, half at QoS 2; then bad messages; then kill -9 at
    // once: mosquitto_pub returned, so every message was acknowledged.
    let lines: Vec<String> = series.iter().map(|(t, v)| json!({"t": t, "value": v}).to_string()).collect();
    let half = lines.len() / 2;
    mosquitto_pub(&broker, 1, "cim/sensors/machine", &lines[..half]);
    mosquitto_pub(&broker, 2, "cim/sensors/machine", &lines[half..]);
    mosquitto_pub(&broker, 1, "cim/sensors/machine", &["not json".to_owned()]);
    mosquitto_pub(
        &broker,
        1,
        "cim/sensors/ghost",
        &[json!({"t":"2014-02-08T00:00:00Z","value":1.0}).to_string()],
    );
    let stats = get_json(&format!("{}/api/live/stats", server.url));
    assert_eq!(stats["stored"].as_u64(), Some(series.len() as u64), "{stats}");
    assert_eq!(stats["rejected"]["bad_payload"], 1, "{stats}");
    assert_eq!(stats["rejected"]["unknown_sensor"], 1, "{stats}");
    assert_eq!(stats["mqtt_broker"]["protocol_errors"], 0, "{stats}");
    assert!(stats["mqtt_broker"]["publishes"].as_u64() >= Some(series.len() as u64 + 3), "{stats}");
    server.kill_9();

    let _ = watcher.kill();
    let _ = watcher.wait();
    let watched: Vec<String> = watched
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.starts_with("cim/sensors/machine "))
        .cloned()
        .collect();
    assert_eq!(watched.len(), series.len() + 1, "mosquitto_sub saw every message, the bad one too");
    assert_eq!(watched[0], format!("cim/sensors/machine {}", lines[0]));

    let server = Server::start(&store);
    let stored = get_json(&format!("{}/api/sensors/machine/readings", server.url));
    let stored = stored.as_array().expect("readings");
    assert_eq!(stored.len(), series.len(), "every acknowledged reading survived kill -9");
    for ((t, v), r) in series.iter().zip(stored) {
        assert_eq!(r["t"].as_str().map(|s| &s[..19]), Some(&t[..19]));
        assert!((r["value"].as_f64().unwrap_or(f64::NAN) - v).abs() < 1e-9);
    }
    let alerts = get_json(&format!("{}/api/alerts", server.url));
    let alarm =
        alerts.as_array().expect("alerts").iter().find(|a| a["to"] == "alarm").expect("failure alarm");
    let at = alarm["t"].as_str().expect("t");
    assert!(("2014-02-07T14:55"..="2014-02-09T14:05").contains(&at), "{at}");
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn readings_published_to_mosquitto_reach_a_websocket_with_the_failure_alarm_and_bad_messages_are_counted() {
    let broker = Mosquitto::start();
    let store = temp_dir("live-mqtt");
    let server = Server::start_with(
        &store,
        &["--mqtt-broker", &format!("127.0.0.1:{}", broker.port), "--mqtt-client-id", "cim-e2e"],
    );
    let sensor = json!({"id":"machine","kind":"temperature","unit":"°C","lon":24.94,"lat":60.17,
        "warn":60,"alarm":40,"hysteresis":5,"period_s":300});
    assert_eq!(post(&format!("{}/api/sensors", server.url), &sensor).expect("register").0, 201);
    let (mut socket, _) =
        tungstenite::connect(format!("{}/api/live", server.url.replacen("http://", "ws://", 1)).as_str())
            .expect("ws");
    let mut next = move || -> Value {
        loop {
            match socket.read().expect("message") {
                tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
                tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    };
    assert_eq!(next()["type"], "snapshot");
    // Wait until the bridge has subscribed: a probe reading comes back over the socket.
    let probe = json!({"t":"2014-02-07T00:00:00Z","value":80.0}).to_string();
    let mut seen = false;
    for _ in 0..50 {
        broker.publish("cim/sensors/machine", std::slice::from_ref(&probe));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let stats = get_json(&format!("{}/api/live/stats", server.url));
        if stats["stored"].as_u64() >= Some(1) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the MQTT bridge never stored the probe");
    assert_eq!(next()["value"], 80.0);

    // The real series through the labelled system failure (NAB): 2014-02-07 12:00 to
    // 2014-02-08 06:00, one QoS 1 message per reading.
    let series = nab_series("2014-02-07T12:00:00Z", "2014-02-08T06:00:00Z");
    assert!(series.len() > 200, "{}", series.len());
    let lines: Vec<String> = series.iter().map(|(t, v)| json!({"t": t, "value": v}).to_string()).collect();
    broker.publish("cim/sensors/machine", &lines);
    // Bad messages on the way: not JSON, far too big, an unknown sensor, a bad topic level.
    broker.publish(
        "cim/sensors/machine",
        &["not json".to_owned(), format!("{{\"t\":\"{}\"}}", "x".repeat(100_000))],
    );
    broker.publish("cim/sensors/ghost", &[json!({"t":"2014-02-08T00:00:00Z","value":1.0}).to_string()]);

    let mut received = Vec::new();
    let mut alarm_at = None;
    while received.len() < series.len() {
        let event = next();
        match event["type"].as_str() {
            Some("reading") => {
                received.push((event["t"].as_str().unwrap_or("").to_owned(), event["value"].as_f64()))
            }
            Some("alert") if event["to"] == "alarm" => alarm_at = event["t"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    // Every reading, in order, with its value.
    for ((t, v), (rt, rv)) in series.iter().zip(&received) {
        assert_eq!(&rt[..19], &t[..19]);
        assert!((rv.unwrap_or(f64::NAN) - v).abs() < 1e-9);
    }
    let alarm_at = alarm_at.expect("the failure raises an alarm");
    assert!(alarm_at.as_str() >= "2014-02-07T14:55" && alarm_at.as_str() <= "2014-02-09T14:05", "{alarm_at}");
    // The bad ones were counted and the server still answers.
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = get_json(&format!("{}/api/live/stats", server.url));
        if stats["rejected"]["bad_payload"].as_u64() >= Some(2)
            && stats["rejected"]["unknown_sensor"].as_u64() >= Some(1)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(stats["rejected"]["bad_payload"], 2, "{stats}");
    assert_eq!(stats["rejected"]["unknown_sensor"], 1, "{stats}");
    assert_eq!(stats["stored"].as_u64(), Some(series.len() as u64 + 1), "{stats}");
}

#[test]
fn a_silent_sensor_goes_stale_and_the_alert_says_so() {
    let store = temp_dir("live-stale");
    let server = Server::start(&store);
    let sensor = json!({"id":"gauge","kind":"water_level","unit":"m","lon":24.94,"lat":60.17,"period_s":0.2});
    assert_eq!(post(&format!("{}/api/sensors", server.url), &sensor).expect("register").0, 201);
    let reading = json!([{"sensor":"gauge","t":"2026-11-22T08:00:00Z","value":1.2}]);
    assert_eq!(post(&format!("{}/api/readings", server.url), &reading).expect("post").0, 200);
    // Three missed periods (0.6 s) and the next once-a-second check.
    let mut state = Value::Null;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        state = get_json(&format!("{}/api/sensors/gauge", server.url));
        if state["state"] == "stale" {
            break;
        }
    }
    assert_eq!(state["state"], "stale", "{state}");
    let alerts = get_json(&format!("{}/api/alerts", server.url));
    let last = alerts.as_array().and_then(|a| a.last()).cloned().unwrap_or(Value::Null);
    assert_eq!((last["from"].as_str(), last["to"].as_str()), (Some("ok"), Some("stale")), "{alerts}");
    // A reading brings it back, with an alert.
    let reading = json!([{"sensor":"gauge","t":"2026-11-22T08:00:05Z","value":1.3}]);
    post(&format!("{}/api/readings", server.url), &reading).expect("post");
    assert_eq!(get_json(&format!("{}/api/sensors/gauge", server.url))["state"], "ok");
    let alerts = get_json(&format!("{}/api/alerts", server.url));
    let last = alerts.as_array().and_then(|a| a.last()).cloned().unwrap_or(Value::Null);
    assert_eq!((last["from"].as_str(), last["to"].as_str()), (Some("stale"), Some("ok")), "{alerts}");
}

#[test]
fn server_sent_events_carry_the_same_snapshot_and_readings() {
    use std::io::BufRead;
    let store = temp_dir("live-sse");
    let server = Server::start(&store);
    let sensor =
        json!({"id":"pump","kind":"pressure","unit":"bar","lon":24.94,"lat":60.17,"warn":2,"alarm":1});
    assert_eq!(post(&format!("{}/api/sensors", server.url), &sensor).expect("register").0, 201);
    let response = ureq::get(&format!("{}/api/live/sse?kind=pressure", server.url)).call().expect("sse");
    assert_eq!(response.content_type(), "text/event-stream");
    let mut lines = std::io::BufReader::new(response.into_reader()).lines();
    let mut next_event = move || -> (String, Value) {
        let mut kind = String::new();
        loop {
            let line = lines.next().expect("stream open").expect("line");
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                return (kind, serde_json::from_str(d).expect("JSON"));
            }
        }
    };
    let (kind, snapshot) = next_event();
    assert_eq!((kind.as_str(), snapshot["sensors"][0]["id"].as_str()), ("snapshot", Some("pump")));
    let low = json!([{"sensor":"pump","t":"2026-11-22T08:00:00Z","value":0.5}]);
    assert_eq!(post(&format!("{}/api/readings", server.url), &low).expect("post").0, 200);
    let (kind, reading) = next_event();
    assert_eq!(
        (kind.as_str(), reading["value"].as_f64(), reading["state"].as_str()),
        ("reading", Some(0.5), Some("alarm"))
    );
    let (kind, alert) = next_event();
    assert_eq!((kind.as_str(), alert["to"].as_str()), ("alert", Some("alarm")));
}

/// One MQTT 3.1.1 packet: type and flags, remaining length, body.
fn mqtt_packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn mqtt_string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

fn mqtt_connect(flags: u8) -> Vec<u8> {
    let mut body = mqtt_string(b"MQTT");
    body.extend_from_slice(&[4, flags, 0, 30]);
    body.extend(mqtt_string(b"raw-client"));
    mqtt_packet(0x10, &body)
}

/// Sends `bytes` and reads until the broker closes or 3 s pass; returns what came
/// back and whether the connection was closed.
fn exchange(broker: &str, bytes: &[u8]) -> (Vec<u8>, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(broker).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(3))).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut got = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

#[test]
fn the_embedded_broker_closes_connections_that_break_mqtt_3_1_1_and_acknowledges_none_of_it() {
    let store = temp_dir("mqtt-raw");
    let server = Server::start_with(&store, &["--mqtt-listen", "127.0.0.1:0"]);
    let broker = server.mqtt.clone().expect("mqtt");
    let sensor = json!({"id": "raw-1", "kind": "temperature", "unit": "°C", "lon": 24.94, "lat": 60.17});
    assert_eq!(post(&format!("{}/api/sensors", server.url), &sensor).expect("register").0, 201);
    let connack = [0x20, 2, 0, 0];
    let publish = |topic: &[u8], pkid: u16| {
        let mut body = mqtt_string(topic);
        body.extend_from_slice(&pkid.to_be_bytes());
        body.extend_from_slice(br#"{"t":"2026-12-01T10:00:00Z","value":21.5}"#);
        mqtt_packet(0x32, &body) // QoS 1
    };
    // A well-formed session: CONNACK, PUBACK once stored, and the connection open.
    let mut good = mqtt_connect(0x02);
    good.extend(publish(b"cim/sensors/raw-1", 7));
    let (got, closed) = exchange(&broker, &good);
    assert!(!closed);
    assert_eq!(got, [&connack[..], &[0x40, 2, 0, 7]].concat(), "CONNACK then PUBACK 7");

    // The reserved connect flag set (bit 0): closed without a CONNACK.
    let (got, closed) = exchange(&broker, &mqtt_connect(0x03));
    assert!(closed && got.is_empty(), "reserved flag: {got:?}");
    // A password without a user name, and a will QoS without a will.
    for flags in [0x42, 0x0a] {
        let (got, closed) = exchange(&broker, &mqtt_connect(flags));
        assert!(closed && got.is_empty(), "flags {flags:#x}: {got:?}");
    }
    // Wildcards or U+0000 in a topic name: closed, never acknowledged.
    for topic in [&b"cim/sensors/+"[..], b"cim/sensors/#", b"cim/sensors/raw-1\0x", b"cim/+/raw-1"] {
        let mut bytes = mqtt_connect(0x02);
        bytes.extend(publish(topic, 9));
        bytes.extend(publish(b"cim/sensors/raw-1", 10));
        let (got, closed) = exchange(&broker, &bytes);
        assert!(closed, "{topic:?}");
        assert_eq!(
            got,
            connack,
            "{:?}: only the CONNACK, no PUBACK for either publish",
            String::from_utf8_lossy(topic)
        );
    }
    let stored = get_json(&format!("{}/api/sensors/raw-1/readings", server.url));
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "{stored}");
}

#[test]
fn the_simulator_replays_every_series_in_a_directory_at_its_own_timestamps() {
    let store = temp_dir("simulate-replay");
    let ring =
        |x: f64| json!([[[x, 60.17], [x + 0.0004, 60.17], [x + 0.0004, 60.1702], [x, 60.1702], [x, 60.17]]]);
    let blocks = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building": "yes", "height": 20}, "geometry": {"type": "Polygon", "coordinates": ring(24.94)}},
        {"type": "Feature", "properties": {"building": "yes", "height": 12}, "geometry": {"type": "Polygon", "coordinates": ring(24.942)}}
    ]});
    std::fs::write(store.join("blocks.geojson"), blocks.to_string()).expect("write");
    ingest_ok(&store, "blocks", &[], &[&store.join("blocks.geojson")]);
    let iot = temp_dir("simulate-series");
    // A NAB file (known kind and thresholds), one of our own, and a CSV of something else.
    let speed: String = std::fs::read_to_string(data("iot/nab_speed_6005.csv"))
        .expect("csv")
        .lines()
        .take(31)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(iot.join("nab_speed_6005.csv"), &speed).expect("write");
    let mut river = String::from("timestamp,value\n");
    for m in 0..20 {
        river.push_str(&format!("2026-03-01 06:{m:02}:00,{}\n", 1.25 + f64::from(m) * 0.015625));
    }
    std::fs::write(iot.join("river_level.csv"), &river).expect("write");
    std::fs::write(iot.join("notes.csv"), "id,name\n1,pump\n").expect("write");
    let server = Server::start(&store);
    let out = std::process::Command::new(bin_dir().join("cim-simulate"))
        .args(["--server", &server.url, "--layer", "blocks", "--sensors", "2", "--seconds", "60"])
        .arg("--iot")
        .arg(&*iot)
        .args(["--replay-speed", "3000"])
        .output()
        .expect("cim-simulate");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("notes.csv is not a timestamp,value series") && said.contains("replaying 2 series"),
        "{said}"
    );
    let sensors = get_json(&format!("{}/api/sensors", server.url));
    let kinds: Vec<&str> =
        sensors.as_array().expect("sensors").iter().filter_map(|s| s["kind"].as_str()).collect();
    assert!(kinds.contains(&"traffic_speed") && kinds.contains(&"river_level"), "{sensors}");
    for (file, text) in [("nab_speed_6005", &speed), ("river_level", &river)] {
        let sensor = sensors
            .as_array()
            .expect("sensors")
            .iter()
            .find(|s| s["kind"] == if file == "river_level" { "river_level" } else { "traffic_speed" })
            .expect("sensor");
        let id = sensor["id"].as_str().expect("id");
        let stored = get_json(&format!("{}/api/sensors/{id}/readings", server.url));
        let stored = stored.as_array().expect("readings");
        let rows: Vec<(String, f64)> = text
            .lines()
            .skip(1)
            .map(|l| {
                let (t, v) = l.split_once(',').expect("row");
                (format!("{}.000Z", t.replacen(' ', "T", 1)), v.parse().expect("value"))
            })
            .collect();
        assert_eq!(stored.len(), rows.len(), "{file}: every row replayed once");
        for (r, (t, v)) in stored.iter().zip(&rows) {
            assert_eq!(r["t"].as_str(), Some(t.as_str()), "{file}: the row's own time");
            assert_eq!(r["value"].as_f64(), Some(*v), "{file}");
        }
    }
}

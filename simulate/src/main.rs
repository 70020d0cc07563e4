//! `cim-simulate --server URL [--layer L] [--sensors N] [--rate R] [--seconds S] [--iot DIR] [--mqtt HOST:PORT]
//! [--classification C] [--token T] [--viewers V]`
//!
//! Puts N sensors on the city's buildings (from the server's feature API), registers
//! them, and replays real series through `POST /api/readings`, or as QoS 1 MQTT
//! messages on `cim/sensors/{id}` with `--mqtt` (the server's embedded broker or any
//! broker it bridges from): the NAB machine
//! temperature, road speed and road occupancy from `--iot DIR` when given, otherwise
//! series generated here with the same shape (daily cycle, noise, rare excursions).
//! Each sensor starts at its own place in its series; readings carry the wall-clock
//! time, so the operations centre sees them as live. On a server with `--tokens` the
//! simulator needs an ingest token (`--token` or `CIM_TOKEN`) cleared for the
//! sensors' `--classification`; it goes as a bearer token and as the MQTT password.
//! With `--viewers V` it is also the WebSocket fan-out benchmark ([`viewers`]).

mod viewers;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(name = "cim-simulate", version, about = "Replay sensor series as live readings into a cim-server")]
struct Cli {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    server: String,
    /// Layer whose buildings carry the sensors (default: the first layer listed).
    #[arg(long)]
    layer: Option<String>,
    #[arg(long, default_value_t = 30)]
    sensors: usize,
    /// Readings per second across all sensors.
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Stop after this many seconds (0: run until interrupted).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// Directory of `timestamp,value` CSV series, every one of them read (the NAB
    /// files get their kind's unit and thresholds); generated series without it.
    #[arg(long)]
    iot: Option<PathBuf>,
    /// Replay the series' own timestamps, this many times faster than they were
    /// recorded (1: real time), instead of readings at --rate stamped now.
    #[arg(long, value_name = "TIMES")]
    replay_speed: Option<f64>,
    /// Publish readings to this MQTT broker (QoS 1) instead of POSTing them.
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,
    /// The sensors' classification: public, internal or restricted. Public by default,
    /// so a server without tokens (whose callers are public) shows them.
    #[arg(long, default_value = "public")]
    classification: cim_core::catalogue::Classification,
    /// The fan-out benchmark: this many WebSocket viewers subscribe to every sensor
    /// first, readings go out every 10 ms stamped when sent, and each viewer times
    /// them to their arrival; the latencies are printed at the end.
    #[arg(long, default_value_t = 0)]
    viewers: usize,
    /// Access token (ingest role) for a server started with --tokens; CIM_TOKEN if unset.
    #[arg(long)]
    token: Option<String>,
}

/// One kind of sensor: its series and thresholds.
struct Kind {
    name: &'static str,
    unit: &'static str,
    file: &'static str,
    warn: f64,
    alarm: f64,
    hysteresis: f64,
}

const KINDS: [Kind; 3] = [
    Kind {
        name: "temperature",
        unit: "°C",
        file: "nab_machine_temperature_system_failure.csv",
        warn: 60.0,
        alarm: 40.0,
        hysteresis: 5.0,
    },
    Kind {
        name: "traffic_speed",
        unit: "km/h",
        file: "nab_speed_6005.csv",
        warn: 50.0,
        alarm: 30.0,
        hysteresis: 5.0,
    },
    Kind {
        name: "occupancy",
        unit: "%",
        file: "nab_occupancy_6005.csv",
        warn: 12.0,
        alarm: 18.0,
        hysteresis: 1.0,
    },
];

/// One series: its rows' times (Unix ms) and values, and the kind its sensors get.
struct Series {
    times: Vec<i64>,
    values: Vec<f64>,
    kind: SensorKind,
}

/// A sensor kind: a known NAB one, or one named after a series file.
#[derive(Clone)]
struct SensorKind {
    name: String,
    unit: String,
    /// Warn, alarm, hysteresis.
    thresholds: Option<(f64, f64, f64)>,
}

impl From<&Kind> for SensorKind {
    fn from(k: &Kind) -> Self {
        Self { name: k.name.into(), unit: k.unit.into(), thresholds: Some((k.warn, k.alarm, k.hysteresis)) }
    }
}

/// `2013-12-02 21:15:00`, or RFC 3339; a time without a zone is UTC.
fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim().replacen(' ', "T", 1);
    cim_core::sensors::parse_rfc3339_ms(&t)
        .or_else(|_| cim_core::sensors::parse_rfc3339_ms(&format!("{t}Z")))
        .ok()
}

/// Reads a `timestamp,value` CSV; `None` when its header says it is something else.
fn read_series(path: &std::path::Path) -> anyhow::Result<Option<(Vec<i64>, Vec<f64>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim().to_ascii_lowercase().replace(' ', "");
    if header != "timestamp,value" {
        return Ok(None);
    }
    let (mut times, mut values) = (Vec::new(), Vec::new());
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row =
            line.split_once(',').and_then(|(t, v)| Some((parse_time(t)?, v.trim().parse::<f64>().ok()?)));
        let (t, v) =
            row.with_context(|| format!("{}:{}: 'timestamp,value' expected", path.display(), n + 2))?;
        times.push(t);
        values.push(v);
    }
    if values.is_empty() {
        bail!("{}: no readings", path.display());
    }
    Ok(Some((times, values)))
}

/// Every `timestamp,value` CSV in `dir`, by file name.
fn read_series_dir(dir: &std::path::Path) -> anyhow::Result<Vec<Series>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("--iot {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Some((times, values)) = read_series(&file)? else {
            eprintln!("cim-simulate: {} is not a timestamp,value series; skipped", file.display());
            continue;
        };
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let kind = match KINDS.iter().find(|k| k.file == name) {
            Some(k) => k.into(),
            None => SensorKind {
                name: file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("series")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                    .collect(),
                // The series says nothing of its unit; the registry wants one.
                unit: "value".into(),
                thresholds: None,
            },
        };
        out.push(Series { times, values, kind });
    }
    if out.is_empty() {
        bail!("--iot {}: no timestamp,value CSV files there", dir.display());
    }
    Ok(out)
}

/// A deterministic stand-in for a NAB series: daily cycle around the kind's normal
/// level, noise, and an excursion past the alarm threshold about once a day.
fn generated_series(kind: &Kind, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut noise = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let high_is_bad = kind.alarm > kind.warn;
    let normal = if high_is_bad { kind.warn * 0.5 } else { kind.warn * 1.5 };
    let span = (kind.warn - kind.alarm).abs();
    (0..2880)
        .map(|i| {
            let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
            let excursion = if i % 288 > 200 && i % 288 < 212 { 4.0 * span } else { 0.0 };
            let swing = span * 0.6 * day + span * 0.3 * noise() + excursion;
            if high_is_bad { normal + swing } else { normal - swing }
        })
        .collect()
}

fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> anyhow::Result<Value> {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.set("authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Some(b) => request.set("content-type", "application/json").send_string(&b.to_string()),
        None => request.call(),
    };
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let mut text = String::new();
            let _ = r.into_reader().take(4096).read_to_string(&mut text);
            bail!("{method} {url}: HTTP {code}: {text}");
        }
        Err(e) => bail!("{method} {url}: {e}"),
    };
    let mut text = String::new();
    response.into_reader().take(256 << 20).read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Roughly the middle of a footprint: the mean of its outer ring's vertices.
fn centroid(geometry: &Value) -> Option<(f64, f64)> {
    let ring = match geometry["type"].as_str()? {
        "Polygon" => &geometry["coordinates"][0],
        "MultiPolygon" => &geometry["coordinates"][0][0],
        _ => return None,
    };
    let points: Vec<(f64, f64)> =
        ring.as_array()?.iter().filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?))).collect();
    (!points.is_empty()).then(|| {
        let n = points.len() as f64;
        (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n)
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !(cli.rate > 0.0 && cli.rate.is_finite()) {
        bail!("--rate must be a positive number of readings per second");
    }
    let base = cli.server.trim_end_matches('/');
    let token = cli.token.clone().or_else(|| std::env::var("CIM_TOKEN").ok()).filter(|t| !t.is_empty());
    let token = token.as_deref();
    let layer = match &cli.layer {
        Some(l) => l.clone(),
        None => http("GET", &format!("{base}/api/layers"), token, None)?[0]["id"]
            .as_str()
            .context("the server lists no layers to put sensors on")?
            .to_owned(),
    };
    let items = http("GET", &format!("{base}/collections/{layer}/items?limit=10000"), token, None)?;
    let mut spots: Vec<(String, f64, f64, f64)> = items["features"]
        .as_array()
        .context("feature API answered without features")?
        .iter()
        .filter(|f| f["properties"]["building"].is_string())
        .filter_map(|f| {
            let (lon, lat) = centroid(&f["geometry"])?;
            let height = f["properties"]["height"]
                .as_str()
                .and_then(|h| h.trim_end_matches(" m").parse().ok())
                .unwrap_or(10.0);
            Some((f["id"].to_string(), lon, lat, height))
        })
        .collect();
    if spots.is_empty() {
        bail!("layer '{layer}' has no buildings to put sensors on");
    }
    // Spread the sensors over the city rather than down one street.
    let stride = (spots.len() / cli.sensors.max(1)).max(1);
    spots = spots.into_iter().step_by(stride).take(cli.sensors).collect();
    let series: Vec<Series> = match &cli.iot {
        Some(dir) => read_series_dir(dir)?,
        None => KINDS
            .iter()
            .enumerate()
            .map(|(k, kind)| {
                let values = generated_series(kind, k as u64 + 1);
                // Five-minute steps, as the NAB series have.
                let times = (0..values.len() as i64).map(|i| i * 300_000).collect();
                Series { times, values, kind: kind.into() }
            })
            .collect(),
    };
    if let Some(speed) = cli.replay_speed
        && !(speed.is_finite() && speed > 0.0)
    {
        bail!("--replay-speed {speed} must be a positive factor");
    }
    // Each sensor speaks every `sensors / rate` seconds; allow for the 100 ms ticks.
    let period_s = match cli.replay_speed {
        Some(speed) => {
            series
                .iter()
                .map(|s| s.times.windows(2).map(|w| (w[1] - w[0]) as f64 / 1000.0).fold(0.0, f64::max))
                .fold(1.0, f64::max)
                / speed
        }
        None => (spots.len() as f64 / cli.rate).max(1.0),
    };
    let mut cursors = Vec::with_capacity(spots.len());
    let mut sensors = Vec::with_capacity(spots.len());
    for (i, (fid, lon, lat, height)) in spots.iter().enumerate() {
        let kind = &series[i % series.len()].kind;
        let id = format!("{}-{i:04}", kind.name);
        let mut sensor = json!({
            "id": id, "kind": kind.name, "unit": kind.unit, "lon": lon, "lat": lat, "height": height,
            "feature": format!("{layer}/{fid}"),
            "period_s": period_s, "owner": "simulator", "classification": cli.classification.to_string(),
        });
        if let Some((warn, alarm, hysteresis)) = kind.thresholds {
            sensor["warn"] = json!(warn);
            sensor["alarm"] = json!(alarm);
            sensor["hysteresis"] = json!(hysteresis);
        }
        sensors.push(sensor);
        let len = series[i % series.len()].values.len();
        // A replay starts every series at its first row; otherwise sensors start apart.
        let start = if cli.replay_speed.is_some() { 0 } else { (i * 7919) % len };
        cursors.push((id, i % series.len(), start));
    }
    // One request and one commit for all of them.
    http("POST", &format!("{base}/api/sensors"), token, Some(&Value::Array(sensors)))?;
    match cli.replay_speed {
        Some(speed) => eprintln!(
            "cim-simulate: {} sensors on '{layer}' replaying {} series at {speed}x their own times",
            cursors.len(),
            series.len()
        ),
        None => eprintln!("cim-simulate: {} sensors on '{layer}', {} readings/s", cursors.len(), cli.rate),
    }
    let mut mqtt = cli.mqtt.as_deref().map(|addr| MqttPublisher::connect(addr, token)).transpose()?;
    let viewers = (cli.viewers > 0).then(|| viewers::Viewers::connect(base, cli.viewers)).transpose()?;
    // Viewers time readings from their stamps: ticks short enough that a stamp is
    // the moment of sending, and every sensor's stamps distinct.
    let tick = Duration::from_millis(if viewers.is_some() { 10 } else { 100 });
    if viewers.is_some() && (cursors.len() as f64) < cli.rate * tick.as_secs_f64() {
        bail!("--viewers: give at least {} --sensors for {} readings/s", (cli.rate / 100.0).ceil(), cli.rate);
    }
    let started = Instant::now();
    let (mut sent, mut next) = (0u64, 0usize);
    // Readings due by now at --rate, so time spent sending never lowers the rate.
    let mut generated = 0u64;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        if cli.seconds > 0.0 && elapsed >= cli.seconds {
            break;
        }
        let mut batch = Vec::new();
        if let Some(speed) = cli.replay_speed {
            // Every row whose own time, from its series' first, has come round.
            let due = elapsed * 1000.0 * speed;
            let mut left = false;
            for (id, k, at) in &mut cursors {
                let s = &series[*k];
                while *at < s.values.len() && ((s.times[*at] - s.times[0]) as f64) <= due {
                    let t = cim_core::sensors::format_rfc3339_ms(s.times[*at]);
                    batch.push(json!({"sensor": id, "t": t, "value": s.values[*at]}));
                    *at += 1;
                }
                left |= *at < s.values.len();
            }
            if !left && batch.is_empty() {
                break;
            }
        } else {
            let due = (cli.rate * elapsed).floor() as u64;
            let count = due.saturating_sub(generated) as usize;
            generated += count as u64;
            let tick_start = now_ms();
            let n = cursors.len();
            for j in 0..count {
                let (id, k, at) = &mut cursors[next % n];
                let values = &series[*k].values;
                // Spread over the tick so a sensor's readings never share a time
                // (with viewers: stamped now, each sensor at most once a tick).
                let spread = if viewers.is_some() { 0 } else { (j * 100 / count.max(1)) as i64 };
                let t = cim_core::sensors::format_rfc3339_ms(tick_start + spread);
                batch.push(json!({"sensor": id, "t": t, "value": values[*at % values.len()]}));
                *at += 1;
                next += 1;
            }
        }
        let count = batch.len();
        if !batch.is_empty() {
            match &mut mqtt {
                Some(publisher) => {
                    for r in &batch {
                        let topic = format!("cim/sensors/{}", r["sensor"].as_str().unwrap_or_default());
                        let payload = json!({"t": r["t"], "value": r["value"]}).to_string();
                        publisher.publish(&topic, payload.into_bytes())?;
                    }
                }
                None => {
                    // A fast replay can owe more in one tick than a request may carry.
                    for part in batch.chunks(10_000) {
                        http(
                            "POST",
                            &format!("{base}/api/readings"),
                            token,
                            Some(&Value::Array(part.to_vec())),
                        )?;
                    }
                }
            }
            sent += count as u64;
        }
        std::thread::sleep(
            tick.saturating_sub(Duration::from_secs_f64(
                (started.elapsed().as_secs_f64() - elapsed).min(0.1),
            )),
        );
    }
    if let Some(publisher) = &mut mqtt {
        publisher.wait_for_acks(Duration::from_secs(30))?;
    }
    eprintln!("cim-simulate: sent {sent} readings in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(viewers) = viewers {
        viewers.report(sent, Duration::from_secs(2))?;
    }
    Ok(())
}

/// Enough MQTT 3.1.1 to publish at QoS 1 over a plain socket, with a window of
/// unacknowledged messages so a slow broker slows the simulator down.
struct MqttPublisher {
    stream: std::net::TcpStream,
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: u64,
    pkid: u16,
    buffer: bytes::BytesMut,
}

const MQTT_WINDOW: u64 = 1000;
const MQTT_MAX_PACKET: usize = 1 << 20;

fn read_mqtt_packet(
    stream: &mut std::net::TcpStream,
    buffer: &mut bytes::BytesMut,
) -> anyhow::Result<rumqttc::Packet> {
    let mut chunk = [0u8; 8192];
    loop {
        match rumqttc::Packet::read(buffer, MQTT_MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => bail!("MQTT: {e}"),
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("MQTT broker closed the connection");
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

impl MqttPublisher {
    /// `token` goes as the CONNECT password (the embedded broker's way to name a caller).
    fn connect(addr: &str, token: Option<&str>) -> anyhow::Result<Self> {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let mut stream = std::net::TcpStream::connect(addr).with_context(|| format!("MQTT broker {addr}"))?;
        stream.set_nodelay(true)?;
        let mut connect = rumqttc::Connect::new(format!("cim-simulate-{}", std::process::id()));
        connect.keep_alive = 60;
        if let Some(token) = token {
            connect.set_login("cim-simulate", token);
        }
        let mut buffer = bytes::BytesMut::new();
        rumqttc::Packet::Connect(connect).write(&mut buffer, MQTT_MAX_PACKET)?;
        stream.write_all(&buffer)?;
        buffer.clear();
        let mut reader = stream.try_clone()?;
        match read_mqtt_packet(&mut reader, &mut buffer)? {
            rumqttc::Packet::ConnAck(a) if a.code == rumqttc::ConnectReturnCode::Success => {}
            other => bail!("MQTT broker {addr} refused the connection: {other:?}"),
        }
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, c) = (acked.clone(), closed.clone());
        std::thread::spawn(move || {
            while let Ok(p) = read_mqtt_packet(&mut reader, &mut buffer) {
                if matches!(p, rumqttc::Packet::PubAck(_)) {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }
            c.store(true, Ordering::Relaxed);
        });
        Ok(Self { stream, acked, closed, sent: 0, pkid: 0, buffer: bytes::BytesMut::new() })
    }

    fn publish(&mut self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        while self.sent - self.acked.load(Ordering::Relaxed) >= MQTT_WINDOW {
            if self.closed.load(Ordering::Relaxed) {
                bail!("MQTT broker closed the connection");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.pkid = self.pkid.checked_add(1).unwrap_or(1);
        let mut p = rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, payload);
        p.pkid = self.pkid;
        self.buffer.clear();
        rumqttc::Packet::Publish(p).write(&mut self.buffer, MQTT_MAX_PACKET)?;
        self.stream.write_all(&self.buffer)?;
        self.sent += 1;
        Ok(())
    }

    /// Waits until the broker acknowledged everything published.
    fn wait_for_acks(&self, timeout: Duration) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering;
        let until = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.sent {
            if self.closed.load(Ordering::Relaxed) || Instant::now() > until {
                bail!(
                    "{} of {} MQTT messages unacknowledged",
                    self.sent - self.acked.load(Ordering::Relaxed),
                    self.sent
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_series_cross_the_thresholds_of_their_kind() {
        for (k, kind) in KINDS.iter().enumerate() {
            let s = generated_series(kind, k as u64);
            let high_is_bad = kind.alarm > kind.warn;
            let bad = |v: f64| if high_is_bad { v >= kind.alarm } else { v <= kind.alarm };
            let fine = |v: f64| if high_is_bad { v < kind.warn } else { v > kind.warn };
            let alarms = s.iter().filter(|v| bad(**v)).count();
            let ok = s.iter().filter(|v| fine(**v)).count();
            assert!(alarms > 0 && alarms < s.len() / 10, "{}: {alarms} alarms", kind.name);
            assert!(ok > s.len() / 2, "{}: mostly fine ({ok})", kind.name);
        }
    }

    #[test]
    fn centroids_of_footprints() {
        let square = json!({"type":"Polygon","coordinates":[[[0,0],[2,0],[2,2],[0,2]]]});
        assert_eq!(centroid(&square), Some((1.0, 1.0)));
        assert_eq!(centroid(&json!({"type":"Point","coordinates":[1,2]})), None);
    }
}

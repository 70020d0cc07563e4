//! Live ingest figures for the real `cim-server`, with mosquitto's own rate beside them.
//!
//!     cargo bench -p cim-tileserver --bench live [-- --seconds 10 --sensors 10000]
//!
//! 1. HTTP: 4 clients post batches of 10 000 readings (every sensor once per batch);
//!    readings/s acknowledged after commit, from the server's counters.
//! 2. MQTT into the embedded broker: 4 publishers, QoS 1, 5 000 unacknowledged each;
//!    messages/s PUBACKed (so stored).
//! 3. mosquitto alone, same publishers, a QoS 1 subscriber acknowledging everything:
//!    its pass-through messages/s; then cim-server bridging from that mosquitto.
//! 4. Publish → WebSocket latency p50 / p99 on loopback: one publisher paced at a fixed
//!    rate, the value carrying its send time, one viewer subscribed.
//! 5. The same with 100 viewers subscribed: the server's resident memory before and
//!    with them, and the latency one of them sees.
//!
//! Prints figures; asserts nothing (speed is not a test).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rumqttc::{Connect, Packet, PubAck, Publish, QoS, Subscribe};
use serde_json::{Value, json};

const MAX_PACKET: usize = 1 << 20;

struct Options {
    seconds: f64,
    sensors: usize,
    /// `http`, `mqtt`, `mosquitto` or `latency`: run that part alone.
    only: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok());
    Options {
        seconds: value("--seconds").unwrap_or(10.0),
        sensors: value("--sensors").unwrap_or(10_000.0) as usize,
        only: args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1).cloned()),
    }
}

fn main() {
    let o = options();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let store = std::env::temp_dir().join(format!("cim-bench-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    std::fs::create_dir_all(&store).expect("store");
    let part = |name: &str| o.only.as_deref().is_none_or(|only| only == name);
    if part("http") {
        let server = Server::start(&store, &[]);
        register(&server.url, o.sensors);
        http_rate(&server.url, o.sensors, o.seconds);
    }
    if part("mqtt") {
        mqtt_embedded(o.sensors);
    }
    match Mosquitto::start().filter(|_| part("mosquitto")) {
        Some(broker) => {
            let n = 200_000;
            let (rate, got) = publish_all(&broker.addr, "bench/", o.sensors, n, Some(&broker.addr));
            println!(
                "MQTT  mosquitto alone (pass-through to a QoS 1 subscriber): {got} of {n} delivered, {rate:.0} msg/s"
            );
            let _ = std::fs::remove_dir_all(store.join(".live"));
            let server =
                Server::start(&store, &["--mqtt-broker", &broker.addr, "--mqtt-client-id", "bench-bridge"]);
            register(&server.url, o.sensors);
            std::thread::sleep(Duration::from_millis(500));
            let before = stored(&server.url);
            let t0 = Instant::now();
            publish_all(&broker.addr, "cim/sensors/", o.sensors, n, None);
            let got = wait_stored(&server.url, before, n as u64, Duration::from_secs(120));
            let rate = got as f64 / t0.elapsed().as_secs_f64();
            println!("MQTT  mosquitto -> cim-server bridge: {got} of {n} stored, {rate:.0} readings/s");
        }
        None if part("mosquitto") => println!("MQTT  mosquitto not installed: no reference figure"),
        None => {}
    }
    if !part("latency") {
        let _ = std::fs::remove_dir_all(&store);
        return;
    }

    let _ = std::fs::remove_dir_all(store.join(".live"));
    let server = Server::start(&store, &["--mqtt-listen", "127.0.0.1:0"]);
    register(&server.url, o.sensors);
    latency(&server, o.sensors, 10_000.0, o.seconds, 1);
    latency(&server, o.sensors, 1_000.0, o.seconds, 100);
    drop(server);
    let _ = std::fs::remove_dir_all(&store);
}

struct Server {
    child: Child,
    url: String,
    mqtt: Option<String>,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(store: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cim-server"))
            .arg("--store")
            .arg(store)
            .args(["--bind", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("cim-server");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("address");
        let url = line.trim().rsplit(' ').next().expect("url").to_owned();
        let mut mqtt = None;
        if extra.contains(&"--mqtt-listen") {
            line.clear();
            out.read_line(&mut line).expect("mqtt address");
            mqtt = line.trim().rsplit("mqtt://").next().map(str::to_owned);
        }
        Self { child, url, mqtt, _stdout: out }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(url: &str, body: &str) -> Value {
    match ureq::post(url).set("content-type", "application/json").send_string(body) {
        Ok(r) => r.into_string().ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

fn stored(url: &str) -> u64 {
    let stats: Value = ureq::get(&format!("{url}/api/live/stats"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    stats["stored"].as_u64().unwrap_or(0)
}

fn wait_stored(url: &str, before: u64, n: u64, limit: Duration) -> u64 {
    let t0 = Instant::now();
    let (mut last, mut still) = (u64::MAX, 0);
    loop {
        let got = stored(url) - before;
        if got >= n || t0.elapsed() > limit || still > 50 {
            return got;
        }
        still = if got == last { still + 1 } else { 0 };
        last = got;
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sensor_id(i: usize) -> String {
    format!("b{i:05}")
}

fn register(url: &str, sensors: usize) {
    for i in 0..sensors {
        let s = json!({"id": sensor_id(i), "kind": "bench", "unit": "1",
            "lon": 24.9 + (i % 100) as f64 * 1e-4, "lat": 60.1 + (i / 100) as f64 * 1e-4,
            "period_s": 3600});
        post(&format!("{url}/api/sensors"), &s.to_string());
    }
}

fn stamp(i: u64) -> String {
    cim_core::sensors::format_rfc3339_ms(1_700_000_000_000 + i as i64 * 1000)
}

fn http_rate(url: &str, sensors: usize, seconds: f64) {
    let batch = 10_000;
    // Bodies are made before the clock starts: the client shares the CPU with the
    // server, and formatting JSON is not what is measured.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..(seconds * 25.0).ceil() as u64)
            .map(|tick| {
                let t = stamp(tick);
                let mut body = String::with_capacity(batch * 48);
                body.push('[');
                for k in 0..batch {
                    let sensor = sensor_id((tick as usize * batch + k) % sensors);
                    let sep = if k == 0 { "" } else { "," };
                    body.push_str(&format!(r#"{sep}{{"sensor":"{sensor}","t":"{t}","value":{}}}"#, k % 100));
                }
                body.push(']');
                body
            })
            .collect(),
    );
    let before = stored(url);
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, next, bodies) = (url.to_owned(), next.clone(), bodies.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed) as usize) else {
                        return;
                    };
                    post(&format!("{url}/api/readings"), body);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let got = stored(url) - before;
    println!(
        "HTTP  {sensors} sensors, batches of {batch}, 4 clients: {got} stored in {elapsed:.1} s = {:.0} readings/s",
        got as f64 / elapsed
    );
}

/// A QoS 1 publisher over a plain socket, at most `window` messages unacknowledged.
struct Publisher {
    stream: TcpStream,
    acked: Arc<AtomicU64>,
    sent: u64,
    pkid: u16,
    window: u64,
    buffer: BytesMut,
}

fn read_packet(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Packet> {
    let mut chunk = [0u8; 65536];
    loop {
        match Packet::read(buffer, MAX_PACKET) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(_) => return None,
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: &str, id: &str) -> (TcpStream, BytesMut) {
    let mut stream = TcpStream::connect(addr).expect("MQTT connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut c = Connect::new(id);
    c.keep_alive = 120;
    let mut out = BytesMut::new();
    Packet::Connect(c).write(&mut out, MAX_PACKET).expect("encode");
    stream.write_all(&out).expect("send CONNECT");
    let mut buffer = BytesMut::new();
    match read_packet(&mut stream, &mut buffer) {
        Some(Packet::ConnAck(_)) => {}
        other => panic!("no CONNACK: {other:?}"),
    }
    (stream, buffer)
}

impl Publisher {
    fn new(addr: &str, id: &str, window: u64) -> Self {
        let (stream, mut buffer) = connect(addr, id);
        let acked = Arc::new(AtomicU64::new(0));
        let (mut reader, counter) = (stream.try_clone().expect("clone"), acked.clone());
        std::thread::spawn(move || {
            while let Some(p) = read_packet(&mut reader, &mut buffer) {
                if matches!(p, Packet::PubAck(_)) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self { stream, acked, sent: 0, pkid: 0, window, buffer: BytesMut::with_capacity(1 << 16) }
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, qos: QoS) {
        while self.sent - self.acked.load(Ordering::Relaxed) >= self.window {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut p = Publish::new(topic, qos, payload);
        if qos != QoS::AtMostOnce {
            self.pkid = self.pkid.checked_add(1).unwrap_or(1);
            p.pkid = self.pkid;
            self.sent += 1;
        }
        Packet::Publish(p).write(&mut self.buffer, MAX_PACKET).expect("encode");
        if self.buffer.len() > 32 * 1024 || self.sent - self.acked.load(Ordering::Relaxed) < 16 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.stream.write_all(&self.buffer).expect("publish");
        self.buffer.clear();
    }

    fn finish(mut self) {
        self.flush();
        let t0 = Instant::now();
        while self.acked.load(Ordering::Relaxed) < self.sent && t0.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `n` QoS 1 messages from 4 publishers over `sensors` topics under `prefix`; returns
/// messages/s until every one was acknowledged, or, with `subscribe_at`, until a QoS 1
/// subscriber there received them all.
fn publish_all(addr: &str, prefix: &str, sensors: usize, n: usize, subscribe_at: Option<&str>) -> (f64, u64) {
    let received = Arc::new(AtomicU64::new(0));
    if let Some(at) = subscribe_at {
        let (mut stream, mut buffer) = connect(at, "bench-subscriber");
        let mut out = BytesMut::new();
        let mut subscribe = Subscribe::new(format!("{prefix}#"), QoS::AtLeastOnce);
        subscribe.pkid = 1; // 0 is not a packet id: brokers drop the connection
        Packet::Subscribe(subscribe).write(&mut out, MAX_PACKET).expect("encode");
        stream.write_all(&out).expect("subscribe");
        let counter = received.clone();
        std::thread::spawn(move || {
            let mut writer = stream.try_clone().expect("clone");
            let mut acks = BytesMut::new();
            while let Some(p) = read_packet(&mut stream, &mut buffer) {
                if let Packet::Publish(p) = p {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if p.qos != QoS::AtMostOnce {
                        acks.clear();
                        Packet::PubAck(PubAck::new(p.pkid)).write(&mut acks, MAX_PACKET).expect("encode");
                        if writer.write_all(&acks).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
    }
    let t0 = Instant::now();
    let per = n / 4;
    let publishers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, prefix) = (addr.to_owned(), prefix.to_owned());
            std::thread::spawn(move || {
                let mut p = Publisher::new(&addr, &format!("bench-pub-{w}"), 5_000);
                for i in 0..per {
                    let k = w * per + i;
                    let topic = format!("{prefix}{}", sensor_id(k % sensors));
                    let payload = format!(
                        r#"{{"t":"{}","value":{}}}"#,
                        stamp((k / sensors) as u64 + 1_000_000),
                        k % 100
                    );
                    p.publish(topic, payload.into_bytes(), QoS::AtLeastOnce);
                }
                p.finish();
            })
        })
        .collect();
    for p in publishers {
        let _ = p.join();
    }
    if subscribe_at.is_some() {
        while received.load(Ordering::Relaxed) < (per * 4) as u64 && t0.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let delivered = if subscribe_at.is_some() { received.load(Ordering::Relaxed) } else { (per * 4) as u64 };
    (delivered as f64 / t0.elapsed().as_secs_f64(), delivered)
}

fn mqtt_embedded(sensors: usize) {
    let dir = std::env::temp_dir().join(format!("cim-bench-live-mqtt-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let server = Server::start(&dir, &["--mqtt-listen", "127.0.0.1:0"]);
    register(&server.url, sensors);
    let addr = server.mqtt.clone().expect("mqtt address");
    let n = 400_000;
    let before = stored(&server.url);
    let (rate, _) = publish_all(&addr, "cim/sensors/", sensors, n, None);
    let got = stored(&server.url) - before;
    println!(
        "MQTT  embedded broker, 4 publishers, QoS 1: {got} of {n} stored and acknowledged, {rate:.0} readings/s"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn now_us() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_micros() as f64)
}

/// Paced QoS 1 publishes at `rate`/s whose value is the send time; `viewers` WebSocket
/// clients subscribed; the first one measures publish → receive.
fn latency(server: &Server, sensors: usize, rate: f64, seconds: f64, viewers: usize) {
    let rss_before = server.rss_mib();
    let ws_url = format!("{}/api/live", server.url.replacen("http://", "ws://", 1));
    let stop = Arc::new(AtomicBool::new(false));
    let delays: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    let ready = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for v in 0..viewers {
        let (url, stop, delays, ready) = (ws_url.clone(), stop.clone(), delays.clone(), ready.clone());
        threads.push(std::thread::spawn(move || {
            let Ok((mut socket, _)) = tungstenite::connect(url.as_str()) else { return };
            // The first message is the snapshot: this viewer is in steady state after it.
            if socket.read().is_ok() {
                ready.fetch_add(1, Ordering::Relaxed);
            }
            if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            }
            while !stop.load(Ordering::Relaxed) {
                match socket.read() {
                    Ok(tungstenite::Message::Text(t)) if v == 0 => {
                        let at = now_us();
                        if let Ok(e) = serde_json::from_str::<Value>(t.as_str())
                            && e["type"] == "reading"
                            && let Some(sent) = e["value"].as_f64()
                            && let Ok(mut d) = delays.lock()
                        {
                            d.push((at - sent) / 1000.0);
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }));
    }
    // Steady state: every viewer has its snapshot before the clock starts.
    let t_wait = Instant::now();
    while ready.load(Ordering::Relaxed) < viewers as u64 && t_wait.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_subscribed = server.rss_mib();
    let addr = server.mqtt.clone().expect("mqtt");
    let mut publisher = Publisher::new(&addr, "bench-latency", 10_000);
    let t0 = Instant::now();
    let total = (rate * seconds) as u64;
    let mut rss_peak: f64 = rss_subscribed;
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let sensor = sensor_id(i as usize % sensors);
        let t = stamp(i / sensors as u64 + 2_000_000 + (viewers as u64) * 1000);
        let payload = format!(r#"{{"t":"{t}","value":{}}}"#, now_us());
        publisher.publish(format!("cim/sensors/{sensor}"), payload.into_bytes(), QoS::AtLeastOnce);
        publisher.flush();
        if i % 2000 == 0 {
            rss_peak = rss_peak.max(server.rss_mib());
        }
    }
    publisher.finish();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut d = delays.lock().map(|d| d.clone()).unwrap_or_default();
    d.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    println!(
        "LIVE  publish -> WebSocket, {rate:.0} readings/s for {seconds:.0} s, {viewers} viewer(s): {} received by one, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server RSS {rss_before:.0} MiB idle, {rss_subscribed:.0} MiB subscribed, {rss_peak:.0} MiB peak",
        d.len(),
        pct(0.5),
        pct(0.99),
        d.last().copied().unwrap_or(f64::NAN),
    );
}

/// mosquitto on a free loopback port with no in-flight cap, gone with the value.
struct Mosquitto {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Mosquitto {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("cim-bench-mosquitto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n\
                 max_queued_messages 0\nmax_queued_bytes 0\n"
            ),
        )
        .ok()?;
        let child = Command::new("mosquitto").arg("-c").arg(&conf).stderr(Stdio::null()).spawn().ok()?;
        let broker = Self { child, addr: format!("127.0.0.1:{port}"), dir };
        for _ in 0..100 {
            if TcpStream::connect(&broker.addr).is_ok() {
                return Some(broker);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Viewers for the fan-out benchmark (`--viewers N`): WebSocket subscribers to
//! `/api/live` that time every reading from its stamp (`t`, set when the simulator
//! sends it) to its arrival, as an operations-centre screen would receive it.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use tungstenite::{Message, WebSocket};

/// What one viewer saw.
#[derive(Default)]
struct Seen {
    latencies_ms: Vec<f32>,
    /// Closed by the server for falling behind (code 1008).
    too_slow: bool,
}

pub struct Viewers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<anyhow::Result<Seen>>>,
}

fn now_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The stamp of a reading event (`{"type":"reading",...,"t":"..."}`), in ms.
fn reading_stamp(text: &str) -> Option<i64> {
    if !text.starts_with("{\"type\":\"reading\"") {
        return None;
    }
    let at = text.find("\"t\":\"")? + 5;
    let end = at + text[at..].find('"')?;
    cim_core::sensors::parse_rfc3339_ms(&text[at..end]).ok()
}

fn watch(mut socket: WebSocket<TcpStream>, stop: &AtomicBool) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                if let Some(t) = reading_stamp(text.as_str()) {
                    seen.latencies_ms.push((now_ms_f64() - t as f64) as f32);
                }
            }
            Ok(Message::Close(frame)) => {
                seen.too_slow = frame.is_some_and(|f| u16::from(f.code) == 1008);
                return Ok(seen);
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Ok(seen);
                }
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(seen),
            Err(e) => return Err(e).context("live socket"),
        }
    }
}

impl Viewers {
    /// Opens `n` subscriptions to every sensor and reads their snapshots.
    pub fn connect(base: &str, n: usize) -> anyhow::Result<Self> {
        let Some(rest) = base.strip_prefix("http://") else {
            bail!("--viewers needs an http:// server URL (plain WebSocket)");
        };
        let url = format!("ws://{rest}/api/live");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            let stream =
                TcpStream::connect(rest.trim_end_matches('/')).with_context(|| format!("connect {url}"))?;
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
            let (mut socket, _) =
                tungstenite::client(url.as_str(), stream).with_context(|| format!("upgrade {url}"))?;
            // The snapshot first: the viewer is live once it has read it.
            loop {
                match socket.read() {
                    Ok(Message::Text(t))
                        if serde_json::from_str::<serde_json::Value>(t.as_str())
                            .is_ok_and(|v| v["type"] == "snapshot") =>
                    {
                        break;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e).context("live snapshot"),
                }
            }
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || watch(socket, &stop)));
        }
        Ok(Self { stop, threads })
    }

    /// Stops the viewers after `grace` and prints what they saw, given how many
    /// readings were sent.
    pub fn report(self, sent: u64, grace: Duration) -> anyhow::Result<()> {
        std::thread::sleep(grace);
        self.stop.store(true, Ordering::Relaxed);
        let n = self.threads.len();
        let mut all: Vec<f32> = Vec::new();
        let (mut fewest, mut too_slow) = (u64::MAX, 0);
        for t in self.threads {
            let seen = t.join().map_err(|_| anyhow::anyhow!("a viewer thread panicked"))??;
            fewest = fewest.min(seen.latencies_ms.len() as u64);
            too_slow += usize::from(seen.too_slow);
            all.extend(seen.latencies_ms);
        }
        all.sort_by(f32::total_cmp);
        let at =
            |q: f64| all.get(((all.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f32::NAN);
        println!(
            "fan-out: {n} viewers, {sent} readings sent; {} delivered ({:.1}% of sent × viewers), fewest to one \
             viewer {fewest}; closed as too slow {too_slow}; latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            all.len(),
            100.0 * all.len() as f64 / (sent as f64 * n as f64).max(1.0),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stamps_are_read_and_other_events_skipped() {
        let r = r#"{"type":"reading","sensor":"s-1","t":"2026-12-07T16:00:00.250Z","value":3.0,"state":"normal"}"#;
        assert_eq!(reading_stamp(r), cim_core::sensors::parse_rfc3339_ms("2026-12-07T16:00:00.250Z").ok());
        assert_eq!(reading_stamp(r#"{"type":"alert","t":"2026-12-07T16:00:00Z"}"#), None);
        assert_eq!(reading_stamp(r#"{"type":"reading","t":"garbage"}"#), None);
    }
}

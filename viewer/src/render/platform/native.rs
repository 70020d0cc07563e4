use std::io::Read;
use std::sync::{Arc, Mutex};

use super::{Inbox, Pending, Subscription};

/// Most bytes accepted for one response (a tile or a tileset).
const MAX_RESPONSE: u64 = 512 * 1024 * 1024;

/// Fetches `url` on a worker thread and hands the body to `then` there (decoding
/// happens off the frame too).
pub fn fetch_then<T: Send + 'static>(
    url: String,
    then: impl FnOnce(Vec<u8>) -> Result<T, String> + Send + 'static,
) -> Pending<T> {
    let slot = Arc::new(Mutex::new(None));
    let worker = slot.clone();
    std::thread::spawn(move || {
        let result = get(&url).and_then(then);
        if let Ok(mut s) = worker.lock() {
            *s = Some(result);
        }
    });
    Pending(slot)
}

/// Fetches `url` and decodes it as `job` on a worker thread.
pub fn fetch_decode(
    url: String,
    job: crate::render::decode::Job,
    terrain: Option<Arc<cim_core::terrain::TerrainSurface>>,
) -> Pending<crate::render::decode::Decoded> {
    fetch_then(url, move |body| job.run(body, terrain.as_deref()))
}

/// Natively decoding runs on the fetch threads; there are no decoding workers.
pub fn decoder_summary() -> Option<(usize, usize)> {
    None
}

pub fn get(url: &str) -> Result<Vec<u8>, String> {
    let mut request = ureq::get(url);
    if let Some(token) = super::access_token() {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("{url}: HTTP {code}"),
        other => format!("{url}: {other}"),
    })?;
    let mut body = Vec::new();
    response.into_reader().take(MAX_RESPONSE).read_to_end(&mut body).map_err(|e| format!("{url}: {e}"))?;
    Ok(body)
}

/// Wall-clock milliseconds since 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The process's peak resident memory (Linux `VmHWM`), if the platform tells.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Opens `url` (ws://) and collects its text messages until it closes.
pub fn subscribe(url: String) -> Subscription {
    let slot: Inbox = Arc::default();
    let worker = slot.clone();
    std::thread::spawn(move || {
        let ended = match tungstenite::connect(super::with_token_query(&url).as_str()) {
            Err(tungstenite::Error::Http(response)) => format!("{url}: HTTP {}", response.status().as_u16()),
            Err(e) => format!("{url}: {e}"),
            Ok((mut socket, _)) => loop {
                match socket.read() {
                    Ok(tungstenite::Message::Text(t)) => {
                        if let Ok(mut s) = worker.lock() {
                            s.0.push(t.as_str().to_owned());
                        }
                    }
                    Ok(tungstenite::Message::Close(frame)) => {
                        break format!(
                            "{url}: closed {}",
                            frame.map(|f| f.reason.to_string()).unwrap_or_default()
                        );
                    }
                    Ok(_) => {}
                    Err(e) => break format!("{url}: {e}"),
                }
            },
        };
        if let Ok(mut s) = worker.lock() {
            s.1 = Some(ended);
        }
    });
    Subscription(slot)
}

/// A line for whoever runs the viewer: stdout natively (tests read it).
pub fn report(line: &str) {
    println!("{line}");
}

/// The picked building's attributes for the page (browser only; natively the panel
/// on screen is all there is).
pub fn show_selection(_text: &str) {}

/// The page's status line (browser only: natively, problems show in the HUD).
pub fn show_status(_message: &str) {}

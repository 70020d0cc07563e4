//! Network and threads: the only place that knows whether we run natively or in a
//! browser. Callers get a channel and never block a frame.

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;

use std::sync::{Arc, Mutex, OnceLock};

/// The API token every request carries (`--token`, or `access_token=` in a browser's
/// address), for servers that classify layers.
static ACCESS_TOKEN: OnceLock<String> = OnceLock::new();

/// Sets the token for the rest of the run (the first call wins).
pub fn set_access_token(token: String) {
    let _ = ACCESS_TOKEN.set(token);
}

pub(crate) fn access_token() -> Option<&'static str> {
    ACCESS_TOKEN.get().map(String::as_str).filter(|t| !t.is_empty())
}

/// `url` with the token as `access_token=`, where headers cannot be set (a
/// browser's fetch without extra bindings, WebSockets).
pub(crate) fn with_token_query(url: &str) -> String {
    match access_token() {
        Some(t) => {
            let encoded: String = t
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{url}{}access_token={encoded}", if url.contains('?') { '&' } else { '?' })
        }
        None => url.to_owned(),
    }
}

/// A result that a worker (native) or the page (web) fills in; polled once per
/// frame, never waited on.
pub struct Pending<T>(Arc<Mutex<Option<Result<T, String>>>>);

impl<T> Pending<T> {
    /// The result, once; `None` while the work is still running.
    pub fn take(&self) -> Option<Result<T, String>> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Text messages of a WebSocket and why it ended, filled in as they arrive.
type Inbox = Arc<Mutex<(Vec<String>, Option<String>)>>;

/// Messages of a WebSocket; `take` them once per frame.
pub struct Subscription(Inbox);

impl Subscription {
    /// Text messages so far, and the error that ended the stream, if it ended.
    pub fn take(&self) -> (Vec<String>, Option<String>) {
        self.0.lock().map(|mut s| (std::mem::take(&mut s.0), s.1.take())).unwrap_or_default()
    }
}

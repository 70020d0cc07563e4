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

use std::sync::{Arc, Mutex};

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

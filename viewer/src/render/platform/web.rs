//! The browser side of the seam: `fetch` and `WebSocket` from the page, driven by
//! the browser's event loop. There are no worker threads here, so `then` (decoding)
//! runs on the main thread between frames, as soon as the body arrived.

use std::sync::{Arc, Mutex};

use super::{Inbox, Pending, Subscription};

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;

fn js_error(url: &str, e: wasm_bindgen::JsValue) -> String {
    format!("{url}: {}", e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or_else(|| format!("{url}: no window"))?;
    let response = JsFuture::from(window.fetch_with_str(&super::with_token_query(url)))
        .await
        .map_err(|e| js_error(url, e))?;
    let response: web_sys::Response = response.dyn_into().map_err(|e| js_error(url, e))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let buffer = response.array_buffer().map_err(|e| js_error(url, e))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| js_error(url, e))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Fetches `url` and hands the body to `then` once it arrived.
pub fn fetch_then<T: Send + 'static>(
    url: String,
    then: impl FnOnce(Vec<u8>) -> Result<T, String> + Send + 'static,
) -> Pending<T> {
    let slot = Arc::new(Mutex::new(None));
    let filled = slot.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let result = get(&url).await.and_then(then);
        if let Ok(mut s) = filled.lock() {
            *s = Some(result);
        }
    });
    Pending(slot)
}

/// Wall-clock milliseconds since 1970 (`std::time::SystemTime` panics in browsers).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Browsers do not tell a page its resident memory.
pub fn peak_memory_bytes() -> Option<u64> {
    None
}

/// Opens `url` (ws:// or wss://) and collects its text messages until it closes.
pub fn subscribe(url: String) -> Subscription {
    let slot: Inbox = Arc::default();
    let socket = match web_sys::WebSocket::new(&super::with_token_query(&url)) {
        Ok(s) => s,
        Err(e) => {
            if let Ok(mut s) = slot.lock() {
                s.1 = Some(js_error(&url, e));
            }
            return Subscription(slot);
        }
    };
    let messages = slot.clone();
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        if let (Some(text), Ok(mut s)) = (event.data().as_string(), messages.lock()) {
            s.0.push(text);
        }
    });
    let ended = slot.clone();
    let closed_url = url.clone();
    let on_close = Closure::<dyn FnMut(web_sys::CloseEvent)>::new(move |event: web_sys::CloseEvent| {
        if let Ok(mut s) = ended.lock() {
            s.1 = Some(format!("{closed_url}: closed {} {}", event.code(), event.reason()));
        }
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    // The socket owns its handlers for as long as it lives; they are small and a
    // viewer opens one subscription at a time.
    on_message.forget();
    on_close.forget();
    Subscription(slot)
}

/// A line for whoever runs the viewer: the browser console (tests read it there).
pub fn report(line: &str) {
    web_sys::console::log_1(&line.into());
}

/// Mirrors the picked building's attributes into the page's `#cim-selection`, a live
/// region: screen readers announce it and the text can be copied, which the canvas
/// cannot offer.
pub fn show_selection(text: &str) {
    if let Some(element) =
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("cim-selection"))
    {
        element.set_text_content(Some(text));
    }
}

/// Shows `message` in the page's `#cim-status` line (errors before the canvas works).
pub fn show_status(message: &str) {
    if let Some(element) =
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("cim-status"))
    {
        element.set_text_content(Some(message));
    }
}

/// The page's origin (`http://host:port`) and query (`?...`).
pub fn page_address() -> (String, String) {
    let location = web_sys::window().map(|w| w.location());
    let origin = location.as_ref().and_then(|l| l.origin().ok()).unwrap_or_default();
    let search = location.as_ref().and_then(|l| l.search().ok()).unwrap_or_default();
    (origin, search)
}

//! The browser side of the seam: `fetch` and `WebSocket` from the page, driven by
//! the browser's event loop. A page has one thread, so tile decoding goes to Web
//! Workers that run this same module (see [`fetch_decode`]); what `fetch_then` is
//! given runs on the page's thread as soon as the body arrived.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cim_core::terrain::TerrainSurface;

use super::{Inbox, Pending, Subscription};
use crate::render::decode::{Decoded, Job};

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;

fn js_error(url: &str, e: wasm_bindgen::JsValue) -> String {
    format!("{url}: {}", e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    let address = super::with_token_query(url);
    // The page's fetch, or a decoding worker's.
    let request = match web_sys::window() {
        Some(window) => window.fetch_with_str(&address),
        None => js_sys::global()
            .dyn_into::<web_sys::WorkerGlobalScope>()
            .map_err(|_| format!("{url}: neither a page nor a worker"))?
            .fetch_with_str(&address),
    };
    let response = JsFuture::from(request).await.map_err(|e| js_error(url, e))?;
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

/// Decoding workers at most: each holds its own copy of the module's memory.
const MAX_DECODERS: usize = 4;

type Slot = Arc<Mutex<Option<Result<Decoded, String>>>>;

/// The page's decoding workers. `viewer/web/index.html` publishes `globalThis.cimViewer`:
/// the compiled module, and `newWorker()`, which starts `decode-worker.js` with it.
/// The worker runs this module's `main`, which finds itself in a worker and calls
/// [`serve_decoding`] instead of starting the viewer.
struct Decoders {
    workers: Vec<web_sys::Worker>,
    /// Said "ready": its `main` took over its messages.
    ready: Vec<bool>,
    /// Jobs sent to each worker and not answered yet.
    load: Vec<usize>,
    /// Messages for workers not ready yet.
    queued: Vec<VecDeque<js_sys::Array>>,
    /// Per job id.
    waiting: HashMap<u32, Waiting>,
    next_id: u32,
    /// Tiles decoded by workers so far.
    decoded: usize,
}

/// A job sent to a worker: what it was (to run on the page if that worker fails)
/// and where its result goes.
struct Waiting {
    worker: usize,
    url: String,
    job: Job,
    terrain: Option<Arc<TerrainSurface>>,
    slot: Slot,
}

thread_local! {
    /// `None` until first asked for; then `Some(None)` where workers cannot start.
    static DECODERS: RefCell<Option<Option<Decoders>>> = const { RefCell::new(None) };
}

/// Fetches `url` and decodes it as `job` in a Web Worker, or on the page's thread
/// where workers are not available (then `terrain` is the surface to drape on;
/// a worker fetches the job's `terrain_url` itself, once).
pub fn fetch_decode(url: String, job: Job, terrain: Option<Arc<TerrainSurface>>) -> Pending<Decoded> {
    let slot: Slot = Arc::new(Mutex::new(None));
    let sent = job.off_thread()
        && DECODERS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let decoders = cell.get_or_insert_with(start_decoders);
            match decoders {
                Some(d) => d.send(url.clone(), job.clone(), terrain.clone(), slot.clone()),
                None => false,
            }
        });
    if sent {
        return Pending(slot);
    }
    on_the_page(url, job, terrain, slot.clone());
    Pending(slot)
}

fn on_the_page(url: String, job: Job, terrain: Option<Arc<TerrainSurface>>, slot: Slot) {
    wasm_bindgen_futures::spawn_local(async move {
        let result = match get(&url).await {
            Ok(body) => job.run(body, terrain.as_deref()),
            Err(e) => Err(e),
        };
        if let Ok(mut s) = slot.lock() {
            *s = Some(result);
        }
    });
}

/// Workers started for decoding and tiles they decoded, for the milestone lines.
pub fn decoder_summary() -> Option<(usize, usize)> {
    DECODERS
        .with(|cell| cell.borrow().as_ref().and_then(|d| d.as_ref().map(|d| (d.workers.len(), d.decoded))))
}

fn start_decoders() -> Option<Decoders> {
    let setup =
        js_sys::Reflect::get(&js_sys::global(), &"cimViewer".into()).ok().filter(|v| v.is_object())?;
    let new_worker: js_sys::Function =
        js_sys::Reflect::get(&setup, &"newWorker".into()).ok()?.dyn_into().ok()?;
    let cores = web_sys::window().map_or(2.0, |w| w.navigator().hardware_concurrency()) as usize;
    // One core stays with the page (and, in software rendering, the rasteriser).
    let count = cores.saturating_sub(1).clamp(1, MAX_DECODERS);
    let mut workers = Vec::new();
    for index in 0..count {
        let Ok(worker) = new_worker.call0(&setup).and_then(|w| w.dyn_into::<web_sys::Worker>()) else {
            report(&format!("decoding on the page: worker {index} did not start"));
            break;
        };
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                answered(index, event.data());
            });
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let message = js_sys::Reflect::get(&event, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| "failed".into());
            failed(index, &message);
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The workers live as long as the page.
        on_message.forget();
        on_error.forget();
        workers.push(worker);
    }
    if workers.is_empty() {
        return None;
    }
    let n = workers.len();
    Some(Decoders {
        workers,
        ready: vec![false; n],
        load: vec![0; n],
        queued: vec![VecDeque::new(); n],
        waiting: HashMap::new(),
        next_id: 0,
        decoded: 0,
    })
}

impl Decoders {
    /// Hands the job to the least busy worker; false if none can take it.
    fn send(&mut self, url: String, job: Job, terrain: Option<Arc<TerrainSurface>>, slot: Slot) -> bool {
        let Some(worker) =
            (0..self.workers.len()).min_by_key(|&i| self.load[i]).filter(|&i| self.load[i] < usize::MAX)
        else {
            return false;
        };
        // The worker has no token of its own: addresses go with it.
        let for_worker = match &job {
            Job::Ground { tile, to_render, terrain_url } => Job::Ground {
                tile: *tile,
                to_render: *to_render,
                terrain_url: terrain_url.as_deref().map(super::with_token_query),
            },
            other => other.clone(),
        };
        let Ok(bytes) = for_worker.to_bytes() else { return false };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let message = js_sys::Array::of3(
            &f64::from(id).into(),
            &super::with_token_query(&url).into(),
            &js_sys::Uint8Array::from(&bytes[..]),
        );
        self.waiting.insert(id, Waiting { worker, url, job, terrain, slot });
        self.load[worker] += 1;
        if self.ready[worker] {
            self.post(worker, &message);
        } else {
            self.queued[worker].push_back(message);
        }
        true
    }

    fn post(&mut self, worker: usize, message: &js_sys::Array) {
        if let Err(e) = self.workers[worker].post_message(message) {
            failed_jobs(self, worker, &js_error("decoding worker", e));
        }
    }
}

/// A worker's message: "ready", or `[id, bytes]` / `[id, error text]`.
fn answered(worker: usize, data: wasm_bindgen::JsValue) {
    DECODERS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let Some(Some(decoders)) = cell.as_mut() else { return };
        if data.as_string().as_deref() == Some("ready") {
            decoders.ready[worker] = true;
            while let Some(message) = decoders.queued[worker].pop_front() {
                decoders.post(worker, &message);
            }
            return;
        }
        let reply = js_sys::Array::from(&data);
        let Some(id) = reply.get(0).as_f64().map(|id| id as u32) else { return };
        let Some(Waiting { slot, .. }) = decoders.waiting.remove(&id) else { return };
        decoders.load[worker] = decoders.load[worker].saturating_sub(1);
        let payload = reply.get(1);
        let result = match payload.as_string() {
            Some(error) => Err(error),
            None => {
                decoders.decoded += 1;
                Decoded::from_bytes(&js_sys::Uint8Array::new(&payload).to_vec())
            }
        };
        if let Ok(mut s) = slot.lock() {
            *s = Some(result);
        }
    });
}

/// A worker failed (its script did not load, say): its jobs run on the page, and it
/// gets no more.
fn failed(worker: usize, message: &str) {
    DECODERS.with(|cell| {
        if let Some(Some(decoders)) = cell.borrow_mut().as_mut() {
            failed_jobs(decoders, worker, message);
        }
    });
}

fn failed_jobs(decoders: &mut Decoders, worker: usize, message: &str) {
    report(&format!("decoding worker {worker}: {message}; its tiles are decoded on the page"));
    // Never chosen again.
    decoders.load[worker] = usize::MAX;
    decoders.queued[worker].clear();
    let ids: Vec<u32> =
        decoders.waiting.iter().filter(|(_, w)| w.worker == worker).map(|(id, _)| *id).collect();
    for id in ids {
        if let Some(w) = decoders.waiting.remove(&id) {
            on_the_page(w.url, w.job, w.terrain, w.slot);
        }
    }
}

thread_local! {
    /// A worker's terrain surfaces by address, fetched once.
    static SURFACES: RefCell<HashMap<String, Arc<TerrainSurface>>> = RefCell::new(HashMap::new());
}

/// In a decoding worker (no window): takes the page's jobs from here on and answers
/// each with the decoded bytes, transferred rather than copied. Returns false on
/// the page itself.
pub fn serve_decoding() -> bool {
    if web_sys::window().is_some() {
        return false;
    }
    let global = js_sys::global();
    let Some(post) = js_sys::Reflect::get(&global, &"postMessage".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    else {
        return true;
    };
    let reply_to = post.clone();
    let on_job = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let message = js_sys::Array::from(&event.data());
        let (id, url, job) = (message.get(0), message.get(1).as_string(), message.get(2));
        let job = js_sys::Uint8Array::new(&job).to_vec();
        let post = reply_to.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let payload: wasm_bindgen::JsValue = match decode_job(url, &job).await {
                Ok(bytes) => js_sys::Uint8Array::from(&bytes[..]).into(),
                Err(e) => e.into(),
            };
            let transfer = js_sys::Array::new();
            if let Some(bytes) = payload.dyn_ref::<js_sys::Uint8Array>() {
                transfer.push(&bytes.buffer());
            }
            let _ = post.call2(&js_sys::global(), &js_sys::Array::of2(&id, &payload), &transfer);
        });
    });
    let _ = js_sys::Reflect::set(&global, &"onmessage".into(), on_job.as_ref());
    on_job.forget();
    let _ = post.call1(&global, &"ready".into());
    true
}

async fn decode_job(url: Option<String>, job: &[u8]) -> Result<Vec<u8>, String> {
    let job = Job::from_bytes(job)?;
    let url = url.ok_or("decode job without an address")?;
    let body = get(&url).await?;
    let terrain = match &job {
        Job::Ground { terrain_url: Some(address), .. } => Some(surface(address).await?),
        _ => None,
    };
    job.run(body, terrain.as_deref())?.to_bytes()
}

async fn surface(address: &str) -> Result<Arc<TerrainSurface>, String> {
    if let Some(known) = SURFACES.with(|s| s.borrow().get(address).cloned()) {
        return Ok(known);
    }
    let bytes = get(address).await?;
    let surface = Arc::new(TerrainSurface::from_bytes(&bytes).map_err(|e| format!("{address}: {e}"))?);
    SURFACES.with(|s| s.borrow_mut().insert(address.to_owned(), surface.clone()));
    Ok(surface)
}

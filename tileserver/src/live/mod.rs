//! Live IoT: the sensor registry, readings in over HTTP, durable storage with
//! downsampling, per-sensor state with alerts, and a push channel for viewers.
//!
//! * [`store`]: the redb file (registry, raw / minute / hour readings, states, alerts).
//! * [`socket`]: `GET /api/live`, WebSocket push with a snapshot then deltas.
//! * [`mqtt`]: readings from a broker's `cim/sensors/+`, acknowledged after commit.
//! * [`broker`]: the embedded MQTT broker publishers connect to directly.
//! * [`features`]: the registry as a catalogue layer and an OGC API collection.
//!
//! Handlers sit beside their routes here. Writes run on the blocking pool; a reading
//! is acknowledged only after its transaction committed.

pub mod broker;
pub mod features;
pub mod mqtt;
pub mod socket;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cim_core::catalogue::Classification;
use cim_core::sensors::{Reading, Sensor, format_rfc3339_ms, parse_rfc3339_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::{ApiError, AppState};
use store::{Alert, Current, Fate, SensorStore, StoreError};

/// Readings accepted in one request or message batch.
pub const MAX_BATCH: usize = 50_000;
/// Live events buffered per subscriber before a slow one is dropped.
pub const LIVE_BUFFER: usize = 65_536;

/// What subscribers hear.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LiveEvent {
    Reading { sensor: String, t: String, value: f64, state: cim_core::sensors::SensorState },
    Alert(Alert),
}

/// An event as subscribers get it: serialised once for all of them, with what their
/// filters look at, so a subscriber neither locks the registry nor encodes JSON.
#[derive(Debug)]
pub struct Published {
    /// `"reading"` or `"alert"` (the SSE event name).
    pub name: &'static str,
    pub json: axum::extract::ws::Utf8Bytes,
    pub lon: f64,
    pub lat: f64,
    pub kind: String,
    /// The sensor's own classification: subscribers below it do not get the event.
    pub classification: Classification,
}

impl Published {
    fn new(event: &LiveEvent, sensor: Option<&Sensor>) -> Option<Arc<Self>> {
        let sensor = sensor?;
        let name = match event {
            LiveEvent::Reading { .. } => "reading",
            LiveEvent::Alert(_) => "alert",
        };
        let json = serde_json::to_string(event).ok()?;
        Some(Arc::new(Self {
            name,
            json: json.into(),
            lon: sensor.lon,
            lat: sensor.lat,
            kind: sensor.kind.clone(),
            classification: sensor.clearance_needed(),
        }))
    }
}

/// Why readings were turned away, counted for `/api/live/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    pub rejected_unknown_sensor: AtomicU64,
    pub rejected_bad_time: AtomicU64,
    pub rejected_bad_value: AtomicU64,
    pub rejected_bad_payload: AtomicU64,
}

pub struct Live {
    pub store: SensorStore,
    sensors: RwLock<HashMap<String, Sensor>>,
    /// Wall-clock ms of each sensor's last reading, for staleness.
    heard: RwLock<HashMap<String, i64>>,
    pub counters: Counters,
    pub broker: broker::BrokerCounters,
    pub events: broadcast::Sender<Arc<Published>>,
    /// Batches waiting for the next group commit, each with where its result goes.
    waiting: Mutex<Vec<Queued>>,
    /// Held by the caller committing for everyone.
    committing: Mutex<()>,
}

/// A batch's (stored, duplicates), or why the shared transaction failed.
type GroupResult = Result<(usize, usize), String>;
type ResultSlot = Arc<Mutex<Option<GroupResult>>>;
/// Validated readings (sensor, ms, value) and where their result goes.
type Queued = (Vec<(String, i64, f64)>, ResultSlot);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Live {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = SensorStore::open(path)?;
        let sensors = store.sensors()?.into_iter().map(|s| (s.id.clone(), s)).collect();
        // After a restart every sensor gets a fresh grace period before going stale.
        let now = now_ms();
        let heard = store.states()?.into_keys().map(|id| (id, now)).collect();
        let (events, _) = broadcast::channel(LIVE_BUFFER);
        Ok(Self {
            store,
            sensors: RwLock::new(sensors),
            heard: RwLock::new(heard),
            counters: Counters::default(),
            broker: broker::BrokerCounters::default(),
            events,
            waiting: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        })
    }

    /// A sensor the current caller may see (its own classification; the sensors
    /// layer's is checked at the door).
    pub fn sensor(&self, id: &str) -> Option<Sensor> {
        self.sensor_for(id, crate::access::current().clearance)
    }

    pub fn sensor_for(&self, id: &str, clearance: Classification) -> Option<Sensor> {
        self.sensors.read().ok()?.get(id).filter(|s| s.clearance_needed() <= clearance).cloned()
    }

    /// The sensors the current caller may see, by id.
    pub fn sensors(&self) -> Vec<Sensor> {
        self.sensors_for(crate::access::current().clearance)
    }

    pub fn sensors_for(&self, clearance: Classification) -> Vec<Sensor> {
        let mut all: Vec<Sensor> = self
            .sensors
            .read()
            .map(|m| m.values().filter(|s| s.clearance_needed() <= clearance).cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Whether any sensor (seen or not) has this id.
    fn exists(&self, id: &str) -> bool {
        self.clearance_of(id).is_some()
    }

    /// The clearance a sensor needs, whoever asks; `None` for an unknown id. One
    /// lookup without a clone, for per-message checks.
    pub fn clearance_of(&self, id: &str) -> Option<Classification> {
        self.sensors.read().ok()?.get(id).map(Sensor::clearance_needed)
    }

    /// Validates and stores readings; the reasons for rejected ones come back by index.
    /// Blocking: call it from the blocking pool.
    pub fn ingest(&self, readings: Vec<Reading>) -> Result<Ingested, StoreError> {
        self.ingest_as(readings, Classification::Restricted)
    }

    /// [`Live::ingest`] for a writer cleared to `clearance`: readings of sensors
    /// above it are refused as unknown (their existence is not told).
    pub fn ingest_as(
        &self,
        readings: Vec<Reading>,
        clearance: Classification,
    ) -> Result<Ingested, StoreError> {
        let c = &self.counters;
        c.received.fetch_add(readings.len() as u64, Ordering::Relaxed);
        // Read under the lock rather than cloning the registry per batch (10 000
        // sensors per request on the hot path).
        let sensors = self.sensors.read().map_err(|_| StoreError::Poisoned)?;
        let mut good = Vec::with_capacity(readings.len());
        let mut rejected = Vec::new();
        for (index, r) in readings.into_iter().enumerate() {
            let reason = if sensors.get(&r.sensor).is_none_or(|s| s.clearance_needed() > clearance) {
                c.rejected_unknown_sensor.fetch_add(1, Ordering::Relaxed);
                format!("unknown sensor '{}'", r.sensor.chars().take(64).collect::<String>())
            } else if !r.value.is_finite() {
                c.rejected_bad_value.fetch_add(1, Ordering::Relaxed);
                "value must be a finite number".to_owned()
            } else {
                match parse_rfc3339_ms(&r.t) {
                    Ok(t) => {
                        good.push((r.sensor, t, r.value));
                        continue;
                    }
                    Err(e) => {
                        c.rejected_bad_time.fetch_add(1, Ordering::Relaxed);
                        e.to_string()
                    }
                }
            };
            rejected.push((index, reason));
        }
        drop(sensors);
        let (stored, duplicates) = self.commit_grouped(good)?;
        Ok(Ingested { stored, duplicates, rejected })
    }

    /// Stores `readings` together with whatever other batches are waiting, in one
    /// transaction (group commit): the caller that gets the commit lock commits every
    /// queued batch; the others find theirs done when they get it. One commit then
    /// carries many requests' readings, which is what makes durable ingest fast.
    /// Returns this batch's (stored, duplicates) once it is durable.
    fn commit_grouped(&self, readings: Vec<(String, i64, f64)>) -> Result<(usize, usize), StoreError> {
        let slot: ResultSlot = Arc::default();
        self.waiting.lock().map_err(|_| StoreError::Poisoned)?.push((readings, slot.clone()));
        let _leader = self.committing.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(done) = slot.lock().map_err(|_| StoreError::Poisoned)?.take() {
            return done.map_err(StoreError::Grouped);
        }
        let jobs = std::mem::take(&mut *self.waiting.lock().map_err(|_| StoreError::Poisoned)?);
        let mut all = Vec::with_capacity(jobs.iter().map(|(r, _)| r.len()).sum());
        let mut spans = Vec::with_capacity(jobs.len());
        for (readings, slot) in jobs {
            let start = all.len();
            all.extend(readings);
            spans.push((start..all.len(), slot));
        }
        let sensors = self.sensors.read().map_err(|_| StoreError::Poisoned)?;
        let outcome = match self.store.store_batch(&sensors, &all) {
            Ok(o) => o,
            Err(e) => {
                let reason = e.to_string();
                for (_, slot) in &spans {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(Err(reason.clone()));
                    }
                }
                return Err(e);
            }
        };
        for (span, slot) in &spans {
            let fates = &outcome.fates[span.clone()];
            let count = |f: Fate| fates.iter().filter(|x| **x == f).count();
            if let Ok(mut s) = slot.lock() {
                *s = Some(Ok((count(Fate::Stored), count(Fate::Duplicate))));
            }
        }
        let c = &self.counters;
        c.stored.fetch_add(outcome.stored as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(outcome.duplicates as u64, Ordering::Relaxed);
        c.out_of_order.fetch_add(outcome.out_of_order as u64, Ordering::Relaxed);
        let now = now_ms();
        if let Ok(mut heard) = self.heard.write() {
            for (id, _) in &outcome.changed {
                heard.insert(id.clone(), now);
            }
        }
        // Subscribers hear every stored reading in order, each followed by its alert.
        if self.events.receiver_count() > 0 {
            for (sensor, t, value, state, alert) in outcome.stored_readings {
                let at = sensors.get(&sensor);
                let reading = LiveEvent::Reading { sensor, t: format_rfc3339_ms(t), value, state };
                if let Some(p) = Published::new(&reading, at) {
                    let _ = self.events.send(p);
                }
                if let Some(p) = alert.and_then(|a| Published::new(&LiveEvent::Alert(a), at)) {
                    let _ = self.events.send(p);
                }
            }
        }
        let mine = slot.lock().map_err(|_| StoreError::Poisoned)?.take();
        mine.unwrap_or_else(|| Err("group commit lost a batch".into())).map_err(StoreError::Grouped)
    }

    /// Marks sensors silent for longer than their stale period; run it every second.
    pub fn check_stale(&self, now: i64) -> Result<usize, StoreError> {
        let silent: Vec<String> = {
            let sensors = self.sensors.read().map_err(|_| StoreError::Poisoned)?;
            let heard = self.heard.read().map_err(|_| StoreError::Poisoned)?;
            heard
                .iter()
                .filter(|(id, at)| sensors.get(*id).is_some_and(|s| now - **at > s.stale_after_ms()))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let alerts = self.store.mark_stale(&silent, now)?;
        if self.events.receiver_count() > 0 {
            let sensors = self.sensors.read().map_err(|_| StoreError::Poisoned)?;
            for alert in &alerts {
                if let Some(p) = Published::new(&LiveEvent::Alert(alert.clone()), sensors.get(&alert.sensor))
                {
                    let _ = self.events.send(p);
                }
            }
        }
        Ok(alerts.len())
    }

    pub fn current(&self) -> HashMap<String, Current> {
        self.store.states().unwrap_or_default()
    }
}

#[derive(Debug, Serialize)]
pub struct Ingested {
    pub stored: usize,
    pub duplicates: usize,
    #[serde(skip)]
    pub rejected: Vec<(usize, String)>,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/sensors", get(list_sensors).post(put_sensor))
        .route("/api/sensors/{id}", get(get_sensor).delete(delete_sensor))
        .route("/api/sensors/{id}/readings", get(readings))
        .route("/api/readings", axum::routing::post(post_readings))
        .route("/api/alerts", get(alerts))
        .route("/api/live/stats", get(stats))
        .route("/api/live", get(socket::upgrade))
        .route("/api/live/sse", get(socket::sse))
}

/// The live service, or why this instance has none.
pub fn live_of(state: &AppState) -> Result<&Arc<Live>, ApiError> {
    state.live.as_ref().ok_or_else(|| {
        ApiError::Unavailable("live sensors are served by another instance on this store".into())
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?.map_err(internal)
}

fn sensor_json(sensor: &Sensor, current: Option<&Current>) -> Value {
    let mut v = serde_json::to_value(sensor).unwrap_or(Value::Null);
    let cur = current.copied().unwrap_or_default();
    v["state"] = serde_json::to_value(cur.state).unwrap_or(Value::Null);
    if let (Some(t), Some(value)) = (cur.t, cur.value) {
        v["latest"] = json!({"t": format_rfc3339_ms(t), "value": value});
    }
    v
}

async fn list_sensors(State(state): State<AppState>) -> Result<Response, ApiError> {
    let current = live_of(&state)?.current();
    let all: Vec<Value> =
        live_of(&state)?.sensors().iter().map(|s| sensor_json(s, current.get(&s.id))).collect();
    Ok(Json(all).into_response())
}

async fn get_sensor(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let sensor = live_of(&state)?
        .sensor(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no sensor '{}'", clip(&id))))?;
    let current = live_of(&state)?.current();
    Ok(Json(sensor_json(&sensor, current.get(&id))).into_response())
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

async fn put_sensor(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let mut doc: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("sensor JSON: {e}")))?;
    // Attached to a feature and no position given: it sits on that feature.
    if doc.get("lon").is_none()
        && doc.get("lat").is_none()
        && let Some(reference) = doc.get("feature").and_then(Value::as_str).map(str::to_owned)
    {
        let (lon, lat, height) = features::place_on_feature(&state, &reference).await?;
        doc["lon"] = json!(lon);
        doc["lat"] = json!(lat);
        if doc.get("height").is_none()
            && let Some(h) = height
        {
            doc["height"] = json!(h);
        }
    }
    let sensor: Sensor =
        serde_json::from_value(doc).map_err(|e| ApiError::BadRequest(format!("sensor JSON: {e}")))?;
    sensor.validate().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let caller = crate::access::current();
    if !caller.may_see(sensor.clearance_needed()) {
        return Err(ApiError::Forbidden(format!(
            "sensor '{}' would be classified above your clearance",
            clip(&sensor.id)
        )));
    }
    // A sensor the caller may not see is not there for it: its id is merely taken,
    // with nothing said of why.
    if live_of(&state)?.exists(&sensor.id) && live_of(&state)?.sensor(&sensor.id).is_none() {
        return Err(ApiError::Conflict(format!("sensor id '{}' is taken; choose another", clip(&sensor.id))));
    }
    let live = live_of(&state)?.clone();
    let stored = sensor.clone();
    blocking(move || live.store.put_sensor(&stored)).await?;
    let existed = live_of(&state)?
        .sensors
        .write()
        .map_err(internal)?
        .insert(sensor.id.clone(), sensor.clone())
        .is_some();
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(sensor_json(&sensor, None))).into_response())
}

async fn delete_sensor(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let live = live_of(&state)?.clone();
    if live.sensor(&id).is_none() {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    let key = id.clone();
    if !blocking(move || live.store.delete_sensor(&key)).await? {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    live_of(&state)?.sensors.write().map_err(internal)?.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_readings(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let readings: Vec<Reading> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            live_of(&state)?.counters.rejected_bad_payload.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::BadRequest(format!(
                "readings: a JSON array of {{\"sensor\",\"t\",\"value\"}} expected ({e})"
            )));
        }
    };
    if readings.len() > MAX_BATCH {
        live_of(&state)?.counters.rejected_bad_payload.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::BadRequest(format!(
            "{} readings in one request; at most {MAX_BATCH}",
            readings.len()
        )));
    }
    let count = readings.len();
    let live = live_of(&state)?.clone();
    let clearance = crate::access::current().clearance;
    let outcome = blocking(move || live.ingest_as(readings, clearance)).await?;
    let rejected: Vec<Value> =
        outcome.rejected.iter().map(|(i, reason)| json!({"index": i, "reason": reason})).collect();
    let body = json!({"stored": outcome.stored, "duplicates": outcome.duplicates, "rejected": rejected});
    // Nothing usable: a client error. Partly usable: stored what could be, said why not.
    let status = if count > 0 && rejected.len() == count { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    limit: Option<String>,
}

/// Readings per page unless `limit` says otherwise, and the most it may say: a
/// sensor's whole history is never one response.
pub const READINGS_PAGE: usize = 10_000;
pub const MAX_READINGS_PAGE: usize = 100_000;

/// A path segment or query value with everything but RFC 3986's unreserved
/// characters percent-encoded.
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `step` as seconds (`300`) or with a unit (`30s`, `5m`, `1h`, `1d`).
fn parse_step(s: &str) -> Option<i64> {
    let (digits, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale).filter(|ms| *ms > 0)
}

async fn readings(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<RangeParams>,
) -> Result<Response, ApiError> {
    if live_of(&state)?.sensor(&id).is_none() {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    let time = |name: &str, v: &Option<String>, default: i64| match v {
        None => Ok(default),
        Some(s) => parse_rfc3339_ms(s).map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
    };
    let from = time("from", &params.from, i64::MIN)?;
    let to = time("to", &params.to, i64::MAX)?;
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let step = match &params.step {
        None => 0,
        Some(s) => parse_step(s).ok_or_else(|| {
            ApiError::BadRequest(format!("step '{}': seconds or a number with s, m, h, d", clip(s)))
        })?,
    };
    let limit = match &params.limit {
        None => READINGS_PAGE,
        Some(l) => {
            l.parse::<usize>().ok().filter(|n| (1..=MAX_READINGS_PAGE).contains(n)).ok_or_else(|| {
                ApiError::BadRequest(format!("limit '{}': a number from 1 to {MAX_READINGS_PAGE}", clip(l)))
            })?
        }
    };
    let live = live_of(&state)?.clone();
    let path = format!("/api/sensors/{}/readings", encode_component(&id));
    let (rows, next) = blocking(move || live.store.readings(&id, from, to, step, limit)).await?;
    let out: Vec<Value> = rows.iter().map(|(t, v)| json!({"t": format_rfc3339_ms(*t), "value": v})).collect();
    let mut response = Json(out).into_response();
    if let Some(next) = next {
        // The next page is the same query from the first reading this one left out.
        let mut query = format!("from={}&limit={limit}", format_rfc3339_ms(next));
        if let Some(to) = &params.to {
            query.push_str(&format!("&to={}", encode_component(to)));
        }
        if let Some(step) = &params.step {
            query.push_str(&format!("&step={}", encode_component(step)));
        }
        if let Ok(link) = header::HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
struct AlertParams {
    after: Option<u64>,
    limit: Option<usize>,
    /// The newest N instead (oldest first), for a viewer catching up at start.
    last: Option<usize>,
}

async fn alerts(State(state): State<AppState>, Query(p): Query<AlertParams>) -> Result<Response, ApiError> {
    let live = live_of(&state)?.clone();
    let limit = p.limit.unwrap_or(1000).min(10_000);
    let list = match p.last {
        Some(n) => blocking(move || live.store.latest_alerts(n.min(10_000))).await?,
        None => blocking(move || live.store.alerts(p.after.unwrap_or(0), limit)).await?,
    };
    let seen: std::collections::HashSet<String> =
        live_of(&state)?.sensors().into_iter().map(|s| s.id).collect();
    let list: Vec<_> = list.into_iter().filter(|a| seen.contains(&a.sensor)).collect();
    Ok(Json(list).into_response())
}

async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let live = live_of(&state)?;
    let c = &live.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(Json(json!({
        "received": n(&c.received),
        "stored": n(&c.stored),
        "duplicates": n(&c.duplicates),
        "out_of_order": n(&c.out_of_order),
        "rejected": {
            "unknown_sensor": n(&c.rejected_unknown_sensor),
            "bad_time": n(&c.rejected_bad_time),
            "bad_value": n(&c.rejected_bad_value),
            "bad_payload": n(&c.rejected_bad_payload),
        },
        "subscribers": live.events.receiver_count(),
        "mqtt_broker": {
            "connections": n(&live.broker.connections),
            "publishes": n(&live.broker.publishes),
            "protocol_errors": n(&live.broker.protocol_errors),
        },
    }))
    .into_response())
}

/// Drops raw readings older than `raw_days` and minute means older than
/// `minute_days` (before each sensor's newest reading) once an hour; hour means stay.
pub fn spawn_pruner(live: Arc<Live>, raw_days: f64, minute_days: f64) {
    let day = 86_400_000.0;
    let (raw_ms, minute_ms) = ((raw_days * day) as i64, (minute_days * day) as i64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let l = live.clone();
            match tokio::task::spawn_blocking(move || l.store.prune(raw_ms, minute_ms)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!("retention: {n} raw readings dropped"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("retention: {e}"),
                Err(e) => tracing::error!("retention: {e}"),
            }
        }
    });
}

/// Runs the staleness check every second for as long as the server lives.
pub fn spawn_stale_checker(live: Arc<Live>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let l = live.clone();
            match tokio::task::spawn_blocking(move || l.check_stale(now_ms())).await {
                Ok(Err(e)) => tracing::error!("stale check: {e}"),
                Err(e) => tracing::error!("stale check: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_with_units() {
        assert_eq!(parse_step("300"), Some(300_000));
        assert_eq!(parse_step("5m"), Some(300_000));
        assert_eq!(parse_step("1h"), Some(3_600_000));
        assert_eq!(parse_step("2d"), Some(172_800_000));
        for bad in ["", "0", "-5", "5x", "m", "99999999999999999999"] {
            assert_eq!(parse_step(bad), None, "{bad}");
        }
    }
}

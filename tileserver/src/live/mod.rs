//! Live IoT: the sensor registry, readings in over HTTP, durable storage with
//! downsampling, per-sensor state with alerts, and a push channel for viewers.
//!
//! * [`store`]: the redb file (registry, raw / minute / hour readings, states, alerts).
//! * [`socket`]: `GET /api/live`, WebSocket push with a snapshot then deltas.
//! * [`mqtt`]: readings from a broker's `cim/sensors/+`, acknowledged after commit.
//! * [`broker`]: the embedded MQTT broker publishers connect to directly.
//! * [`features`]: the registry as a catalogue layer and an OGC API collection.
//!
//! The service is here; `handlers` are the HTTP routes beside their handlers,
//! `tasks` the background work (retention, staleness). Writes run on the blocking pool; a reading
//! is acknowledged only after its transaction committed.

pub mod broker;
pub mod features;
pub mod mqtt;
pub mod socket;
pub mod store;

mod handlers;
mod registry;
mod tasks;

use handlers::sensor_json;
pub use handlers::{MAX_READINGS_PAGE, READINGS_PAGE, live_of, routes};
pub use tasks::{spawn_pruner, spawn_stale_checker};

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cim_core::catalogue::Classification;
use cim_core::sensors::{Reading, Sensor, format_rfc3339_ms, parse_rfc3339_ms};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::now_ms;
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
    sensors: RwLock<registry::Registry>,
    /// The sensors layer's catalogue entry per clearance, with the registry
    /// generation it was made from.
    catalogue: Mutex<Vec<(Classification, u64, Arc<cim_core::catalogue::CatalogueEntry>)>>,
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

impl Live {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let store = SensorStore::open(path)?;
        let sensors = registry::Registry::new(store.sensors()?);
        // After a restart every sensor gets a fresh grace period before going stale.
        let now = now_ms();
        let heard = store.states()?.into_keys().map(|id| (id, now)).collect();
        let (events, _) = broadcast::channel(LIVE_BUFFER);
        Ok(Self {
            store,
            sensors: RwLock::new(sensors),
            catalogue: Mutex::new(Vec::new()),
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
        self.sensors.read().map(|r| r.visible(clearance).cloned().collect()).unwrap_or_default()
    }

    /// The sensors the current caller may see, in a box when given, that `keep`
    /// keeps: how many, and the `limit` from `offset` (only those are copied).
    pub fn sensors_matching(
        &self,
        bbox: Option<[f64; 4]>,
        keep: impl Fn(&Sensor) -> bool,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<Sensor>) {
        let clearance = crate::access::current().clearance;
        let Ok(registry) = self.sensors.read() else { return (0, Vec::new()) };
        let (mut matched, mut page) = (0, Vec::new());
        let mut take = |s: &Sensor| {
            if keep(s) {
                if matched >= offset && page.len() < limit {
                    page.push(s.clone());
                }
                matched += 1;
            }
        };
        match bbox {
            Some(b) => registry.in_box(b, clearance).into_iter().for_each(&mut take),
            None => registry.visible(clearance).for_each(&mut take),
        }
        (matched, page)
    }

    /// A page of the sensors the current caller may see, in id order after `after`,
    /// and whether more follow.
    pub fn sensors_page(&self, after: Option<&str>, limit: usize) -> (Vec<Sensor>, bool) {
        let clearance = crate::access::current().clearance;
        self.sensors
            .read()
            .map(|r| {
                let (page, more) = r.page(after, limit, clearance);
                (page.into_iter().cloned().collect(), more)
            })
            .unwrap_or_default()
    }

    /// Stores sensors in one transaction, then lists them; returns how many were
    /// new. Blocking: call it from the blocking pool.
    pub fn register(&self, sensors: Vec<Sensor>) -> Result<usize, StoreError> {
        self.store.put_sensors(&sensors)?;
        let mut registry = self.sensors.write().map_err(|_| StoreError::Poisoned)?;
        Ok(sensors.into_iter().map(|s| registry.insert(s)).filter(|replaced| !replaced).count())
    }

    /// Removes a sensor from the store and the registry; false when it was not there.
    pub fn unregister(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.store.delete_sensor(id)?;
        self.sensors.write().map_err(|_| StoreError::Poisoned)?.remove(id);
        Ok(existed)
    }

    /// The sensors layer's catalogue entry as the current caller sees it, made once
    /// per registry change and clearance.
    pub fn catalogue_entry(&self) -> Arc<cim_core::catalogue::CatalogueEntry> {
        let clearance = crate::access::current().clearance;
        let generation = self.sensors.read().map(|r| r.generation()).unwrap_or(u64::MAX);
        if let Ok(cache) = self.catalogue.lock()
            && let Some((_, _, entry)) = cache.iter().find(|(c, g, _)| *c == clearance && *g == generation)
        {
            return entry.clone();
        }
        let entry = Arc::new(features::catalogue_entry(&self.sensors_for(clearance)));
        if let Ok(mut cache) = self.catalogue.lock() {
            cache.retain(|(c, g, _)| *c != clearance && *g == generation);
            cache.push((clearance, generation, entry.clone()));
        }
        entry
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

    /// The current states of these sensors.
    pub fn current_of<'a>(&self, ids: impl Iterator<Item = &'a str>) -> HashMap<String, Current> {
        self.store.states_of(ids).unwrap_or_default()
    }
}

#[derive(Debug, Serialize)]
pub struct Ingested {
    pub stored: usize,
    pub duplicates: usize,
    #[serde(skip)]
    pub rejected: Vec<(usize, String)>,
}

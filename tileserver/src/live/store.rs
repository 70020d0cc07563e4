//! Durable sensor storage in one redb file: the registry, raw readings, per-minute
//! and per-hour aggregates, each sensor's current state and the alert log. A batch
//! of readings is one transaction, committed (fsync) before anyone is told it is
//! stored, so an acknowledged reading survives `kill -9`.

use std::collections::HashMap;
use std::path::Path;

use cim_core::sensors::{Sensor, SensorState};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const SENSORS: TableDefinition<&str, &str> = TableDefinition::new("sensors");
const RAW: TableDefinition<(&str, i64), f64> = TableDefinition::new("raw");
/// (count, sum, min, max) per sensor and bucket start (ms).
const MINUTE: TableDefinition<(&str, i64), (u64, f64, f64, f64)> = TableDefinition::new("minute");
const HOUR: TableDefinition<(&str, i64), (u64, f64, f64, f64)> = TableDefinition::new("hour");
const STATE: TableDefinition<&str, &str> = TableDefinition::new("state");
const ALERTS: TableDefinition<u64, &str> = TableDefinition::new("alerts");

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sensor database: {0}")]
    Db(#[from] redb::Error),
    #[error("sensor database record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("sensor registry lock poisoned by a panic")]
    Poisoned,
    /// The shared transaction this batch rode in failed (the reason is the leader's).
    #[error("{0}")]
    Grouped(String),
}

macro_rules! db_error {
    ($($t:ty),*) => {$(impl From<$t> for StoreError {
        fn from(e: $t) -> Self { StoreError::Db(e.into()) }
    })*};
}
db_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What the server remembers about a sensor between readings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Current {
    pub state: SensorState,
    /// Newest reading time (ms) and value, if any.
    pub t: Option<i64>,
    pub value: Option<f64>,
}

/// A state change, as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub seq: u64,
    pub sensor: String,
    pub from: SensorState,
    pub to: SensorState,
    /// Reading time (RFC 3339) that caused it; for `stale`, when it was noticed.
    pub t: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// What a stored batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    pub stored: usize,
    /// Same sensor, same time, same value: already there.
    pub duplicates: usize,
    /// Same sensor and time, new value: replaced.
    pub replaced: usize,
    /// Older than the sensor's newest reading (stored, state unchanged).
    pub out_of_order: usize,
    /// What became of each reading passed in, by index.
    pub fates: Vec<Fate>,
    /// Sensors whose current state or value changed, for live subscribers.
    pub changed: Vec<(String, Current)>,
    /// Every newly stored reading in arrival order: sensor, time, value, the sensor's
    /// state after it, and the alert it raised, if any.
    pub stored_readings: Vec<(String, i64, f64, SensorState, Option<Alert>)>,
}

/// What storing did with one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Stored,
    Duplicate,
    /// Its sensor is not registered (the caller should have refused it).
    Unregistered,
}

pub struct SensorStore {
    db: Database,
    /// The STATE table in memory: read on every reading and every snapshot, so it is
    /// not parsed from disk each time. Held across a write transaction and updated
    /// only once that committed, so it never runs ahead of the file.
    states: std::sync::Mutex<HashMap<String, Current>>,
    /// Each sensor's newest minute and hour aggregate as committed, so an in-order
    /// reading updates them without reading the bucket back first.
    open_buckets: std::sync::Mutex<HashMap<String, OpenBuckets>>,
}

/// `[minute, hour]`: bucket start (ms) and its aggregate.
type OpenBuckets = [Option<(i64, Aggregate)>; 2];

/// Start of the bucket holding `t`; open-ended queries pass i64::MIN / MAX.
fn bucket(t: i64, size: i64) -> i64 {
    t.div_euclid(size).saturating_mul(size)
}

type Aggregate = (u64, f64, f64, f64);

/// A page of readings (time ms, value) and where the next one starts.
pub type ReadingsPage = (Vec<(i64, f64)>, Option<i64>);

impl SensorStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        {
            tx.open_table(SENSORS)?;
            tx.open_table(RAW)?;
            tx.open_table(MINUTE)?;
            tx.open_table(HOUR)?;
            tx.open_table(STATE)?;
            tx.open_table(ALERTS)?;
        }
        tx.commit()?;
        let states = {
            let tx = db.begin_read()?;
            let table = tx.open_table(STATE)?;
            let raw = tx.open_table(RAW)?;
            let mut out = HashMap::new();
            for row in table.iter()? {
                let (id, json) = row?;
                let id = id.value().to_owned();
                let mut cur: Current = serde_json::from_str(json.value())?;
                // STATE is written when the state changes; the newest reading is RAW's.
                if let Some(last) = raw.range((id.as_str(), i64::MIN)..=(id.as_str(), i64::MAX))?.next_back()
                {
                    let (k, v) = last?;
                    (cur.t, cur.value) = (Some(k.value().1), Some(v.value()));
                }
                out.insert(id, cur);
            }
            out
        };
        Ok(Self { db, states: std::sync::Mutex::new(states), open_buckets: Default::default() })
    }

    fn cached_states(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Current>>, StoreError> {
        self.states.lock().map_err(|_| StoreError::Poisoned)
    }

    pub fn put_sensor(&self, sensor: &Sensor) -> Result<(), StoreError> {
        self.put_sensors(std::slice::from_ref(sensor))
    }

    /// Stores sensors in one durable transaction: all of them or none.
    pub fn put_sensors(&self, sensors: &[Sensor]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(SENSORS)?;
            for sensor in sensors {
                let json = serde_json::to_string(sensor)?;
                table.insert(sensor.id.as_str(), json.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn delete_sensor(&self, id: &str) -> Result<bool, StoreError> {
        let mut states = self.cached_states()?;
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(SENSORS)?.remove(id)?.is_some();
        tx.open_table(STATE)?.remove(id)?;
        tx.commit()?;
        states.remove(id);
        Ok(existed)
    }

    pub fn sensors(&self) -> Result<Vec<Sensor>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(SENSORS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, json) = row?;
            out.push(serde_json::from_str(json.value())?);
        }
        Ok(out)
    }

    pub fn states(&self) -> Result<HashMap<String, Current>, StoreError> {
        Ok(self.cached_states()?.clone())
    }

    /// The states of these sensors only (a page's, not the whole registry's).
    pub fn states_of<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Current>, StoreError> {
        let states = self.cached_states()?;
        Ok(ids.filter_map(|id| states.get(id).map(|c| (id.to_owned(), *c))).collect())
    }

    /// Adds `value` to bucket `key`, whose aggregate is `known` when cached.
    fn add_to(
        table: &mut redb::Table<(&str, i64), Aggregate>,
        key: (&str, i64),
        value: f64,
        known: Option<Aggregate>,
    ) -> Result<Aggregate, StoreError> {
        let (n, sum, min, max) = match known {
            Some(a) => a,
            None => table.get(key)?.map(|g| g.value()).unwrap_or((0, 0.0, f64::INFINITY, f64::NEG_INFINITY)),
        };
        let updated = (n + 1, sum + value, min.min(value), max.max(value));
        table.insert(key, updated)?;
        Ok(updated)
    }

    /// Rebuilds one aggregate bucket from the raw readings (after a replaced value).
    fn rebuild(
        raw: &redb::Table<(&str, i64), f64>,
        table: &mut redb::Table<(&str, i64), Aggregate>,
        sensor: &str,
        start: i64,
        size: i64,
    ) -> Result<(), StoreError> {
        let mut agg = (0u64, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for row in raw.range((sensor, start)..(sensor, start + size))? {
            let v = row?.1.value();
            agg = (agg.0 + 1, agg.1 + v, agg.2.min(v), agg.3.max(v));
        }
        table.insert((sensor, start), agg)?;
        Ok(())
    }

    /// Stores a batch in one transaction and moves states; `sensors` are the
    /// registered sensors (readings of others are the caller's to reject).
    pub fn store_batch(
        &self,
        sensors: &std::collections::BTreeMap<String, Sensor>,
        readings: &[(String, i64, f64)],
    ) -> Result<BatchOutcome, StoreError> {
        let mut out = BatchOutcome::default();
        let mut states = self.cached_states()?;
        let mut open = self.open_buckets.lock().map_err(|_| StoreError::Poisoned)?;
        // This batch's view of the open buckets; `None` in a slot: read it from disk.
        let mut touched: HashMap<&str, OpenBuckets> = HashMap::new();
        let tx = self.db.begin_write()?;
        {
            let mut raw = tx.open_table(RAW)?;
            let mut minute = tx.open_table(MINUTE)?;
            let mut hour = tx.open_table(HOUR)?;
            let mut state = tx.open_table(STATE)?;
            let mut alerts = tx.open_table(ALERTS)?;
            let mut next_seq = alerts.last()?.map_or(1, |(k, _)| k.value() + 1);
            let mut current: HashMap<&str, Current> = HashMap::new();
            out.fates.reserve(readings.len());
            for (id, t, value) in readings {
                let Some(sensor) = sensors.get(id) else {
                    out.fates.push(Fate::Unregistered);
                    continue;
                };
                let key = (id.as_str(), *t);
                let previous = raw.insert(key, *value)?.map(|old| old.value());
                match previous {
                    Some(old) if old.to_bits() == value.to_bits() => {
                        out.duplicates += 1;
                        out.fates.push(Fate::Duplicate);
                        continue;
                    }
                    Some(_) => {
                        out.replaced += 1;
                        Self::rebuild(&raw, &mut minute, id, bucket(*t, MINUTE_MS), MINUTE_MS)?;
                        Self::rebuild(&raw, &mut hour, id, bucket(*t, HOUR_MS), HOUR_MS)?;
                        // Rebuilt from disk: forget what we knew of this sensor's buckets.
                        touched.insert(id.as_str(), [None, None]);
                    }
                    None => {
                        let slots = touched
                            .entry(id.as_str())
                            .or_insert_with(|| open.get(id.as_str()).copied().unwrap_or([None, None]));
                        for (level, size) in [(0, MINUTE_MS), (1, HOUR_MS)] {
                            let start = bucket(*t, size);
                            let known = slots[level].filter(|(s, _)| *s == start).map(|(_, a)| a);
                            let table = if level == 0 { &mut minute } else { &mut hour };
                            let updated = Self::add_to(table, (id.as_str(), start), *value, known)?;
                            // Only the newest bucket is worth remembering.
                            if slots[level].is_none_or(|(s, _)| s <= start) {
                                slots[level] = Some((start, updated));
                            }
                        }
                    }
                }
                out.stored += 1;
                out.fates.push(Fate::Stored);
                let cur = match current.get(id.as_str()) {
                    Some(c) => *c,
                    None => states.get(id.as_str()).copied().unwrap_or_default(),
                };
                if cur.t.is_some_and(|newest| *t < newest) {
                    out.out_of_order += 1;
                    out.stored_readings.push((id.clone(), *t, *value, cur.state, None));
                    continue;
                }
                let next = sensor.next_state(cur.state, *value);
                // Every change is an alert, except a sensor's first reading being fine.
                if next != cur.state && !(cur.state == SensorState::Unknown && next == SensorState::Ok) {
                    let alert = Alert {
                        seq: next_seq,
                        sensor: id.clone(),
                        from: cur.state,
                        to: next,
                        t: cim_core::sensors::format_rfc3339_ms(*t),
                        value: Some(*value),
                    };
                    alerts.insert(next_seq, serde_json::to_string(&alert)?.as_str())?;
                    next_seq += 1;
                    out.stored_readings.push((id.clone(), *t, *value, next, Some(alert)));
                } else {
                    out.stored_readings.push((id.clone(), *t, *value, next, None));
                }
                current.insert(id.as_str(), Current { state: next, t: Some(*t), value: Some(*value) });
            }
            for (id, cur) in &current {
                // Only a new state is written: the newest time and value are RAW's last
                // row (read back at open), which saves a tree write per reading.
                if states.get(*id).is_none_or(|before| before.state != cur.state) {
                    state.insert(*id, serde_json::to_string(cur)?.as_str())?;
                }
                out.changed.push(((*id).to_owned(), *cur));
            }
        }
        tx.commit()?;
        for (id, cur) in &out.changed {
            states.insert(id.clone(), *cur);
        }
        for (id, slots) in touched {
            open.insert(id.to_owned(), slots);
        }
        Ok(out)
    }

    /// Marks silent sensors stale (one transaction); returns the alerts.
    pub fn mark_stale(&self, ids: &[String], now_ms: i64) -> Result<Vec<Alert>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut states = self.cached_states()?;
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        let mut changed = Vec::new();
        {
            let mut state = tx.open_table(STATE)?;
            let mut alerts = tx.open_table(ALERTS)?;
            let mut next_seq = alerts.last()?.map_or(1, |(k, _)| k.value() + 1);
            for id in ids {
                let Some(mut cur) = states.get(id.as_str()).copied() else { continue };
                if cur.state == SensorState::Stale {
                    continue;
                }
                let alert = Alert {
                    seq: next_seq,
                    sensor: id.clone(),
                    from: cur.state,
                    to: SensorState::Stale,
                    t: cim_core::sensors::format_rfc3339_ms(now_ms),
                    value: None,
                };
                alerts.insert(next_seq, serde_json::to_string(&alert)?.as_str())?;
                next_seq += 1;
                cur.state = SensorState::Stale;
                state.insert(id.as_str(), serde_json::to_string(&cur)?.as_str())?;
                changed.push((id.clone(), cur));
                out.push(alert);
            }
        }
        tx.commit()?;
        states.extend(changed);
        Ok(out)
    }

    pub fn alerts(&self, after_seq: u64, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ALERTS)?;
        let mut out = Vec::new();
        for row in table.range(after_seq.saturating_add(1)..)?.take(limit) {
            out.push(serde_json::from_str(row?.1.value())?);
        }
        Ok(out)
    }

    /// The newest `count` alerts, oldest first: what a viewer shows when it starts.
    pub fn latest_alerts(&self, count: usize) -> Result<Vec<Alert>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ALERTS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(count) {
            out.push(serde_json::from_str(row?.1.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// At most `limit` readings in `[from, to)`: raw when `step_ms` is 0, else the
    /// mean per step, read from the coarsest stored level that divides the step; and
    /// the time the next page starts at when there is more. Reads stop one row past
    /// the page, so memory follows the page, not the history.
    pub fn readings(
        &self,
        sensor: &str,
        from: i64,
        to: i64,
        step_ms: i64,
        limit: usize,
    ) -> Result<ReadingsPage, StoreError> {
        let tx = self.db.begin_read()?;
        if step_ms <= 0 {
            let raw = tx.open_table(RAW)?;
            let mut out = Vec::new();
            for row in raw.range((sensor, from)..(sensor, to))? {
                let (k, v) = row?;
                if out.len() == limit {
                    return Ok((out, Some(k.value().1)));
                }
                out.push((k.value().1, v.value()));
            }
            return Ok((out, None));
        }
        // Buckets come in time order; the one after the page's last is the cursor.
        let mut sums: Vec<(i64, u64, f64)> = Vec::new();
        let mut next = None;
        let mut add = |t: i64, n: u64, sum: f64| -> bool {
            let b = bucket(t, step_ms);
            if let Some(last) = sums.last_mut().filter(|last| last.0 == b) {
                last.1 += n;
                last.2 += sum;
            } else if sums.len() == limit {
                next = Some(b);
                return false;
            } else {
                sums.push((b, n, sum));
            }
            true
        };
        if step_ms % HOUR_MS == 0 || step_ms % MINUTE_MS == 0 {
            let table = tx.open_table(if step_ms % HOUR_MS == 0 { HOUR } else { MINUTE })?;
            let size = if step_ms % HOUR_MS == 0 { HOUR_MS } else { MINUTE_MS };
            for row in table.range((sensor, bucket(from, size))..(sensor, to))? {
                let (k, v) = row?;
                let (t, (n, sum, _, _)) = (k.value().1, v.value());
                if t >= bucket(from, step_ms) && n > 0 && !add(t, n, sum) {
                    break;
                }
            }
        } else {
            let raw = tx.open_table(RAW)?;
            for row in raw.range((sensor, from)..(sensor, to))? {
                let (k, v) = row?;
                if !add(k.value().1, 1, v.value()) {
                    break;
                }
            }
        }
        let out =
            sums.into_iter().filter(|(_, n, _)| *n > 0).map(|(t, n, sum)| (t, sum / n as f64)).collect();
        Ok((out, next))
    }

    /// Drops raw readings older than `raw_ms` and minute aggregates older than
    /// `minute_ms` before each sensor's newest reading (hours are kept). Relative to
    /// the newest reading, not the clock, so replayed history is not wiped on arrival.
    pub fn prune(&self, raw_ms: i64, minute_ms: i64) -> Result<usize, StoreError> {
        let newest = self.states()?;
        // Pruned buckets must not come back from the cache.
        self.open_buckets.lock().map_err(|_| StoreError::Poisoned)?.clear();
        let tx = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut raw = tx.open_table(RAW)?;
            let mut minute = tx.open_table(MINUTE)?;
            for (id, cur) in &newest {
                let Some(t) = cur.t else { continue };
                let before = raw.len()?;
                raw.retain_in((id.as_str(), i64::MIN)..(id.as_str(), t - raw_ms), |_, _| false)?;
                removed += (before - raw.len()?) as usize;
                minute.retain_in((id.as_str(), i64::MIN)..(id.as_str(), t - minute_ms), |_, _| false)?;
            }
        }
        tx.commit()?;
        Ok(removed)
    }
}

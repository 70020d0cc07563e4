//! The live sensor picture as the viewer keeps it: sensors with their state and
//! latest value, and recent alerts, updated from `/api/live` messages (a snapshot,
//! then readings and alerts). GPU-free; the markers and panels are in `render`.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

/// Alerts kept for the list.
pub const ALERTS_KEPT: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct SensorView {
    pub id: String,
    pub kind: String,
    pub unit: String,
    pub lon: f64,
    pub lat: f64,
    pub height: f64,
    pub state: String,
    pub latest: Option<(String, f64)>,
    pub warn: Option<f64>,
    pub alarm: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    /// The server's sequence number: orders alerts and spots ones already known.
    pub seq: u64,
    pub sensor: String,
    pub from: String,
    pub to: String,
    pub t: String,
}

#[derive(Debug, Default)]
pub struct LiveModel {
    pub sensors: BTreeMap<String, SensorView>,
    /// Newest first.
    pub alerts: VecDeque<AlertView>,
    /// Bumped on every change, so the render side redraws only when needed.
    pub revision: u64,
    /// Snapshots applied: the set of sensors (and kinds) changes only with one.
    pub snapshots: u64,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

impl LiveModel {
    /// Applies one message from `/api/live`; unknown or malformed ones are ignored
    /// (and reported by the caller through the error).
    pub fn apply(&mut self, message: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(message).map_err(|e| format!("live message: {e}"))?;
        match v["type"].as_str() {
            Some("snapshot") => {
                self.snapshots += 1;
                self.sensors.clear();
                for s in v["sensors"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    let (Some(id), Some(lon), Some(lat)) =
                        (text(s, "id"), s["lon"].as_f64(), s["lat"].as_f64())
                    else {
                        continue;
                    };
                    let latest = s["latest"]["value"]
                        .as_f64()
                        .map(|value| (text(&s["latest"], "t").unwrap_or_default(), value));
                    self.sensors.insert(
                        id.clone(),
                        SensorView {
                            id,
                            kind: text(s, "kind").unwrap_or_default(),
                            unit: text(s, "unit").unwrap_or_default(),
                            lon,
                            lat,
                            height: s["height"].as_f64().unwrap_or(0.0),
                            state: text(s, "state").unwrap_or_else(|| "unknown".into()),
                            latest,
                            warn: s["warn"].as_f64(),
                            alarm: s["alarm"].as_f64(),
                        },
                    );
                }
            }
            Some("reading") => {
                let id = text(&v, "sensor").ok_or("reading without sensor")?;
                if let Some(s) = self.sensors.get_mut(&id) {
                    if let Some(value) = v["value"].as_f64() {
                        s.latest = Some((text(&v, "t").unwrap_or_default(), value));
                    }
                    if let Some(state) = text(&v, "state") {
                        s.state = state;
                    }
                }
            }
            Some("alert") => {
                let alert = alert_of(&v).ok_or("alert without sensor")?;
                if let Some(s) = self.sensors.get_mut(&alert.sensor) {
                    s.state = alert.to.clone();
                }
                self.alerts.push_front(alert);
                self.alerts.truncate(ALERTS_KEPT);
            }
            other => return Err(format!("live message of unknown type {other:?}")),
        }
        self.revision += 1;
        Ok(())
    }
}

fn alert_of(v: &Value) -> Option<AlertView> {
    Some(AlertView {
        seq: v["seq"].as_u64().unwrap_or(0),
        sensor: text(v, "sensor")?,
        from: text(v, "from").unwrap_or_default(),
        to: text(v, "to").unwrap_or_default(),
        t: text(v, "t").unwrap_or_default(),
    })
}

impl LiveModel {
    /// Adds alerts raised before this viewer connected (`GET /api/alerts?last=N`),
    /// skipping those the live stream already brought; newest stay first.
    pub fn merge_history(&mut self, json: &[u8]) -> Result<(), String> {
        let v: Value = serde_json::from_slice(json).map_err(|e| format!("alert history: {e}"))?;
        let list = v.as_array().ok_or("alert history: not a JSON array")?;
        let known: std::collections::HashSet<u64> = self.alerts.iter().map(|a| a.seq).collect();
        let mut all: Vec<AlertView> = self.alerts.drain(..).collect();
        all.extend(list.iter().filter_map(alert_of).filter(|a| !known.contains(&a.seq)));
        all.sort_by_key(|a| std::cmp::Reverse(a.seq));
        all.truncate(ALERTS_KEPT);
        self.alerts = all.into();
        self.revision += 1;
        Ok(())
    }

    /// The sensor kinds present, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = self.sensors.values().map(|s| s.kind.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }
}

/// How bad a value is on a 0..1 scale: 0.5 at the warning threshold, 1 at the alarm
/// (either direction), 0 as far below warn as alarm is above it. Without thresholds,
/// where it lies between `low` and `high` of its kind.
pub fn badness(s: &SensorView, value: f64, low: f64, high: f64) -> f64 {
    let b = match (s.warn, s.alarm) {
        (Some(w), Some(a)) if a != w => 0.5 + 0.5 * (value - w) / (a - w),
        _ if high > low => (value - low) / (high - low),
        _ => 0.5,
    };
    b.clamp(0.0, 1.0)
}

/// A heat map of one kind's latest values: badness at the corners of a grid over the
/// sensors' extent, blended by inverse squared distance from the sensors within
/// `reach_m`; `None` where no sensor reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatGrid {
    /// `[west, south, east, north]`, degrees.
    pub bounds: [f64; 4],
    pub cols: usize,
    pub rows: usize,
    /// `(cols + 1) * (rows + 1)` corner values, row by row from the south-west.
    pub values: Vec<Option<f64>>,
}

pub fn heat_grid(model: &LiveModel, kind: &str, cols: usize, rows: usize) -> Option<HeatGrid> {
    let points: Vec<(&SensorView, f64)> = model
        .sensors
        .values()
        // A stale sensor's last value is not the present: leave it out.
        .filter(|s| s.kind == kind && s.state != "stale")
        .filter_map(|s| s.latest.as_ref().map(|(_, v)| (s, *v)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if points.is_empty() || cols == 0 || rows == 0 {
        return None;
    }
    let (low, high) =
        points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, v)| (l.min(*v), h.max(*v)));
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    for (s, _) in &points {
        b = [b[0].min(s.lon), b[1].min(s.lat), b[2].max(s.lon), b[3].max(s.lat)];
    }
    // Metres per degree near the middle (the city is small next to the Earth).
    let lat0 = ((b[1] + b[3]) / 2.0).to_radians();
    let (m_lon, m_lat) = (111_320.0 * lat0.cos(), 110_540.0);
    let (w_m, h_m) = ((b[2] - b[0]) * m_lon, (b[3] - b[1]) * m_lat);
    // Reach: a sensor colours about the area it stands for, at least 150 m.
    let reach_m = ((w_m * h_m / points.len() as f64).sqrt() * 1.5).max(150.0);
    let pad = (reach_m / m_lon, reach_m / m_lat);
    let bounds = [b[0] - pad.0, b[1] - pad.1, b[2] + pad.0, b[3] + pad.1];
    let mut values = Vec::with_capacity((cols + 1) * (rows + 1));
    for r in 0..=rows {
        let lat = bounds[1] + (bounds[3] - bounds[1]) * r as f64 / rows as f64;
        for c in 0..=cols {
            let lon = bounds[0] + (bounds[2] - bounds[0]) * c as f64 / cols as f64;
            let (mut sum, mut weight) = (0.0, 0.0);
            for (s, v) in &points {
                let (dx, dy) = ((s.lon - lon) * m_lon, (s.lat - lat) * m_lat);
                let d2 = dx * dx + dy * dy;
                if d2 > reach_m * reach_m {
                    continue;
                }
                let w = 1.0 / d2.max(1.0);
                sum += w * badness(s, *v, low, high);
                weight += w;
            }
            values.push((weight > 0.0).then(|| sum / weight));
        }
    }
    Some(HeatGrid { bounds, cols, rows, values })
}

/// Heat-map colour for a badness: green (fine) through amber (warn) to red (alarm).
pub fn heat_colour(b: f64) -> [f32; 3] {
    let b = b.clamp(0.0, 1.0) as f32;
    if b < 0.5 {
        let t = b / 0.5;
        [0.15 + 0.85 * t, 0.75, 0.30 * (1.0 - t)]
    } else {
        let t = (b - 0.5) / 0.5;
        [1.0 - 0.05 * t, 0.75 * (1.0 - t) + 0.10 * t, 0.10 * t]
    }
}

/// Marker colour per state (sRGB).
pub fn state_colour(state: &str) -> [f32; 3] {
    match state {
        "ok" => [0.15, 0.75, 0.30],
        "warn" => [1.0, 0.75, 0.0],
        "alarm" => [0.95, 0.10, 0.10],
        "stale" => [0.55, 0.55, 0.55],
        _ => [0.35, 0.55, 0.95],
    }
}

/// A one-line chart of `values` in block characters, lowest to highest.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    finite
        .iter()
        .map(|v| {
            let level = if hi > lo { ((v - lo) / (hi - lo) * 7.0).round() as usize } else { 3 };
            BARS[level.min(7)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_then_readings_and_alerts_update_the_picture() {
        let mut model = LiveModel::default();
        model
            .apply(r#"{"type":"snapshot","sensors":[
                {"id":"b","kind":"temperature","unit":"°C","lon":24.9,"lat":60.1,"state":"ok","latest":{"t":"T0","value":70}},
                {"id":"r","kind":"speed","unit":"km/h","lon":24.95,"lat":60.2,"height":3,"state":"unknown"},
                {"kind":"broken"}]}"#)
            .expect("snapshot");
        assert_eq!(model.sensors.len(), 2);
        assert_eq!(model.sensors["b"].latest, Some(("T0".into(), 70.0)));
        model
            .apply(r#"{"type":"reading","sensor":"b","t":"T1","value":95,"state":"alarm"}"#)
            .expect("reading");
        model
            .apply(r#"{"type":"alert","seq":1,"sensor":"b","from":"ok","to":"alarm","t":"T1","value":95}"#)
            .expect("alert");
        model
            .apply(r#"{"type":"reading","sensor":"nobody","t":"T1","value":1,"state":"ok"}"#)
            .expect("ignored");
        assert_eq!(model.sensors["b"].state, "alarm");
        assert_eq!(model.sensors["b"].latest, Some(("T1".into(), 95.0)));
        assert_eq!(model.alerts.front().map(|a| (a.from.as_str(), a.to.as_str())), Some(("ok", "alarm")));
        assert_eq!(model.revision, 4);
        assert!(model.apply("{").is_err());
        assert!(model.apply(r#"{"type":"gossip"}"#).is_err());
        for n in 0..60 {
            model
                .apply(&format!(r#"{{"type":"alert","sensor":"r","from":"ok","to":"warn","t":"{n}"}}"#))
                .expect("alert");
        }
        assert_eq!(model.alerts.len(), ALERTS_KEPT);
        assert_eq!(model.alerts[0].t, "59", "newest first");
    }

    fn sensor(id: &str, kind: &str, lon: f64, value: f64) -> String {
        format!(
            r#"{{"id":"{id}","kind":"{kind}","unit":"u","lon":{lon},"lat":60.0,"warn":60,"alarm":80,"state":"ok","latest":{{"t":"T","value":{value}}}}}"#
        )
    }

    #[test]
    fn alert_history_merges_without_repeats_newest_first() {
        let mut model = LiveModel::default();
        model
            .apply(r#"{"type":"alert","seq":7,"sensor":"a","from":"ok","to":"warn","t":"T7"}"#)
            .expect("live alert");
        let history = br#"[{"seq":5,"sensor":"a","from":"unknown","to":"ok","t":"T5"},
                           {"seq":6,"sensor":"b","from":"ok","to":"alarm","t":"T6"},
                           {"seq":7,"sensor":"a","from":"ok","to":"warn","t":"T7"}]"#;
        model.merge_history(history).expect("history");
        let seqs: Vec<u64> = model.alerts.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [7, 6, 5]);
        assert!(model.merge_history(b"{}").is_err());
    }

    #[test]
    fn the_heat_map_is_hot_at_the_alarm_and_cool_at_the_fine_sensor() {
        let mut model = LiveModel::default();
        let snapshot = format!(
            r#"{{"type":"snapshot","sensors":[{},{},{}]}}"#,
            sensor("hot", "temperature", 24.90, 90.0),
            sensor("cool", "temperature", 24.95, 20.0),
            sensor("other", "speed", 24.92, 1000.0)
        );
        let snapshot = snapshot.replace(
            "]}",
            &format!(",{}]}}", sensor("silent", "temperature", 24.925, 95.0).replace("\"ok\"", "\"stale\"")),
        );
        model.apply(&snapshot).expect("snapshot");
        assert_eq!(model.sensors["silent"].state, "stale");
        assert_eq!(model.kinds(), ["speed", "temperature"]);
        let grid = heat_grid(&model, "temperature", 40, 10).expect("grid");
        assert_eq!(grid.values.len(), 41 * 11);
        let at = |lon: f64, lat: f64| {
            let c = ((lon - grid.bounds[0]) / (grid.bounds[2] - grid.bounds[0]) * 40.0).round() as usize;
            let r = ((lat - grid.bounds[1]) / (grid.bounds[3] - grid.bounds[1]) * 10.0).round() as usize;
            grid.values[r * 41 + c]
        };
        // Above alarm: 1; far below warn: 0; the speed sensor does not count.
        assert!(at(24.90, 60.0).is_some_and(|v| v > 0.95), "{:?}", at(24.90, 60.0));
        assert!(at(24.95, 60.0).is_some_and(|v| v < 0.05), "{:?}", at(24.95, 60.0));
        // The corners are out of every sensor's reach, and so is the stale sensor's
        // spot (between the two, 1.4 km from each).
        assert_eq!(grid.values[0], None);
        assert_eq!(at(24.925, 60.0), None);
        assert!(heat_grid(&model, "nothing", 4, 4).is_none());
        assert!(heat_colour(1.0)[0] > 0.9 && heat_colour(1.0)[1] < 0.2);
        assert!(heat_colour(0.0)[1] > 0.7 && heat_colour(0.0)[0] < 0.2);
    }

    #[test]
    fn badness_follows_thresholds_both_ways() {
        let high_bad: SensorView = SensorView {
            id: "t".into(),
            kind: "k".into(),
            unit: "u".into(),
            lon: 0.0,
            lat: 0.0,
            height: 0.0,
            state: "ok".into(),
            latest: None,
            warn: Some(60.0),
            alarm: Some(80.0),
        };
        assert_eq!(badness(&high_bad, 60.0, 0.0, 0.0), 0.5);
        assert_eq!(badness(&high_bad, 80.0, 0.0, 0.0), 1.0);
        let low_bad = SensorView { warn: Some(50.0), alarm: Some(30.0), ..high_bad.clone() };
        assert_eq!(badness(&low_bad, 30.0, 0.0, 0.0), 1.0);
        assert_eq!(badness(&low_bad, 70.0, 0.0, 0.0), 0.0);
        let plain = SensorView { warn: None, alarm: None, ..high_bad };
        assert_eq!(badness(&plain, 5.0, 0.0, 10.0), 0.5);
    }

    #[test]
    fn sparklines_span_the_blocks() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(sparkline(&[5.0, 5.0]), "▄▄");
        assert_eq!(sparkline(&[]), "");
        assert_ne!(state_colour("alarm"), state_colour("ok"));
    }
}

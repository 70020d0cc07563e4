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
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
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
                let alert = AlertView {
                    sensor: text(&v, "sensor").ok_or("alert without sensor")?,
                    from: text(&v, "from").unwrap_or_default(),
                    to: text(&v, "to").unwrap_or_default(),
                    t: text(&v, "t").unwrap_or_default(),
                };
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

    #[test]
    fn sparklines_span_the_blocks() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(sparkline(&[5.0, 5.0]), "▄▄");
        assert_eq!(sparkline(&[]), "");
        assert_ne!(state_colour("alarm"), state_colour("ok"));
    }
}

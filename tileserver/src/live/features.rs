//! The sensor registry as a layer: a catalogue entry in `/api/layers`, an OGC API
//! collection (`/collections/sensors`), and sensors placed by the feature they are
//! attached to.

use std::collections::HashMap;

use cim_core::catalogue::{AttributeField, CatalogueEntry, LayerContent, SENSORS_LAYER, SERVICE_FRAME};
use cim_core::sensors::{Sensor, format_rfc3339_ms};
use serde_json::{Value, json};

use super::Live;
use super::store::Current;
use crate::{ApiError, AppState};

/// Properties every sensor feature carries, for the catalogue's attribute list.
const ATTRIBUTES: [(&str, &str); 11] = [
    ("kind", "string"),
    ("unit", "string"),
    ("state", "string"),
    ("value", "number"),
    ("t", "string"),
    ("warn", "number"),
    ("alarm", "number"),
    ("feature", "string"),
    ("owner", "string"),
    ("classification", "string"),
    ("period_s", "number"),
];

/// A sensor as a GeoJSON point feature with its latest reading and state.
pub fn feature(sensor: &Sensor, current: Option<&Current>) -> Value {
    let cur = current.copied().unwrap_or_default();
    let mut coordinates = vec![json!(sensor.lon), json!(sensor.lat)];
    if let Some(h) = sensor.height {
        coordinates.push(json!(h));
    }
    let mut properties = json!({
        "kind": sensor.kind, "unit": sensor.unit, "state": cur.state,
        "value": cur.value, "t": cur.t.map(format_rfc3339_ms),
    });
    for (key, value) in [
        ("warn", sensor.warn.map(Value::from)),
        ("alarm", sensor.alarm.map(Value::from)),
        ("feature", sensor.feature.clone().map(Value::from)),
        ("owner", sensor.owner.clone().map(Value::from)),
        ("classification", sensor.classification.clone().map(Value::from)),
        ("period_s", sensor.period_s.map(Value::from)),
    ] {
        if let Some(v) = value {
            properties[key] = v;
        }
    }
    json!({
        "type": "Feature",
        "id": sensor.id,
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    })
}

/// The live layer's catalogue entry: its extent is the registry's, its version
/// changes whenever a sensor is added, moved or removed.
pub fn catalogue_entry(sensors: &[Sensor]) -> CatalogueEntry {
    let mut bounds = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in sensors {
        bounds = [bounds[0].min(s.lon), bounds[1].min(s.lat), bounds[2].max(s.lon), bounds[3].max(s.lat)];
        let h = s.height.unwrap_or(0.0);
        (low, high) = (low.min(h), high.max(h));
    }
    if sensors.is_empty() {
        (bounds, low, high) = ([0.0; 4], 0.0, 0.0);
    }
    // Same registry, same version, also across restarts.
    let version = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for s in sensors {
            h.update(serde_json::to_vec(s).unwrap_or_default());
        }
        hex::encode(&h.finalize()[..8])
    };
    let mut kinds: Vec<&str> = sensors.iter().map(|s| s.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    CatalogueEntry {
        id: SENSORS_LAYER.to_owned(),
        content: LayerContent::Sensors,
        version: format!("registry-{version}"),
        bounds_wgs84: bounds,
        bounds_service_frame: [bounds[0], bounds[1], low, bounds[2], bounds[3], high],
        service_frame: SERVICE_FRAME.to_owned(),
        source_crs: "EPSG:4326".to_owned(),
        sources: Vec::new(),
        feature_count: sensors.len() as u64,
        geometry_types: vec!["Point".to_owned()],
        attributes: ATTRIBUTES
            .iter()
            .map(|(name, kind)| AttributeField { name: (*name).to_owned(), kind: (*kind).to_owned() })
            .collect(),
        min_zoom: 0,
        max_zoom: 0,
        mvt_archive: None,
        tileset: None,
        features: format!("/collections/{SENSORS_LAYER}/items"),
        building_count: 0,
        ingested_at: String::new(),
        tool: format!("cim-server live registry; kinds: {}", kinds.join(", ")),
        classification: cim_core::catalogue::Classification::Public,
        owner: None,
        update_cycle: None,
        attribute_rules: Vec::new(),
        coarsen: None,
        governance_history: Vec::new(),
    }
}

/// Sensors in `bbox` (through the registry's R-tree) and of `kind`, in id order:
/// how many match, and the GeoJSON features of `offset..offset + limit` (only those
/// are built).
pub fn query(
    live: &Live,
    bbox: Option<[f64; 4]>,
    kind: Option<&str>,
    offset: usize,
    limit: usize,
) -> (usize, Vec<Value>) {
    let (matched, page) = live.sensors_matching(bbox, |s| kind.is_none_or(|k| s.kind == k), offset, limit);
    let current: HashMap<String, Current> = live.current_of(page.iter().map(|s| s.id.as_str()));
    (matched, page.iter().map(|s| feature(s, current.get(&s.id))).collect())
}

/// Where a sensor registered without `lon`/`lat` sits: on the feature it names,
/// `LAYER/FID` or a bare `FID` searched in every layer. Its height is the feature's
/// `height` (roof) when known.
pub async fn place_on_feature(
    state: &AppState,
    reference: &str,
) -> Result<(f64, f64, Option<f64>), ApiError> {
    let (only, fid) = match reference.split_once('/') {
        Some((layer, fid)) => (Some(layer.to_owned()), fid),
        None => (None, reference),
    };
    let not_found = || {
        ApiError::BadRequest(format!(
            "feature '{}' matches no feature in {}; give lon and lat, or a LAYER/FID that exists \
             (IFC GlobalIds resolve once a BIM layer holds them)",
            reference.chars().take(64).collect::<String>(),
            only.as_deref().map_or("any layer".to_owned(), |l| format!("layer '{l}'")),
        ))
    };
    let fid: u64 = fid.parse().map_err(|_| not_found())?;
    let names = match &only {
        Some(l) => vec![l.clone()],
        None => state.layers.names(),
    };
    for name in names {
        let Ok(layer) = state.layers.get(&name).await else { continue };
        if let Some(index) = layer.find_fid(fid)?
            && let Some((lon, lat)) = layer.anchor(index)
        {
            let stored = layer.stored(index)?;
            return Ok((lon, lat, roof_height(&stored["properties"])));
        }
    }
    Err(not_found())
}

/// A building's height from its attributes: `height` ("12", "12 m") or 3 m a storey.
fn roof_height(props: &Value) -> Option<f64> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('m').trim().parse().ok(),
        _ => None,
    };
    number(&props["height"]).or_else(|| number(&props["building:levels"]).map(|l| l * 3.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roof_heights_read_from_attributes() {
        assert_eq!(roof_height(&json!({"height": "12.5 m"})), Some(12.5));
        assert_eq!(roof_height(&json!({"height": 7})), Some(7.0));
        assert_eq!(roof_height(&json!({"building:levels": "4"})), Some(12.0));
        assert_eq!(roof_height(&json!({"name": "x"})), None);
    }

    #[test]
    fn a_sensor_feature_is_a_point_with_its_state() {
        let sensor: Sensor = serde_json::from_value(json!({
            "id": "t-1", "kind": "temperature", "unit": "°C", "lon": 24.9, "lat": 60.1, "height": 20.0,
            "warn": 60.0, "alarm": 80.0, "owner": "dept"
        }))
        .expect("sensor");
        let cur = Current { state: cim_core::sensors::SensorState::Warn, t: Some(0), value: Some(65.0) };
        let f = feature(&sensor, Some(&cur));
        assert_eq!(f["geometry"]["coordinates"], json!([24.9, 60.1, 20.0]));
        assert_eq!(f["properties"]["state"], "warn");
        assert_eq!(f["properties"]["value"], 65.0);
        assert_eq!(f["properties"]["t"], "1970-01-01T00:00:00.000Z");
        assert_eq!(f["properties"]["owner"], "dept");
        assert!(f["properties"].get("classification").is_none());
    }
}

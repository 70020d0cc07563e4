//! GeoJSON geometry as the feature API reads it, then the ingest's geometry repair.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let geometry = value.get("geometry").unwrap_or(&value);
    if let Ok(g) = cim_core::features::from_geojson(geometry) {
        let _ = cim_core::features::to_geojson(&g);
        let _ = cim_ingest::repair::clean(g);
    }
});

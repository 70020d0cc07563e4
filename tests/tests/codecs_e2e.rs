//! Our codecs against other people's: the MVT decoder the viewer drapes ground layers
//! with reads tiles written by GDAL's MVT driver exactly as Mapbox's reference
//! decoder (`@mapbox/vector-tile`) does.

use cim_core::mvt::{PropertyValue, TileGeometry};
use cim_core::mvt_decode::decode_tile;
use cim_e2e::*;
use serde_json::Value;

fn as_json(v: &PropertyValue) -> Value {
    match v {
        PropertyValue::String(s) => Value::from(s.as_str()),
        PropertyValue::Double(d) => Value::from(*d),
        PropertyValue::Int(i) => Value::from(*i),
        PropertyValue::Bool(b) => Value::from(*b),
    }
}

/// Polygons and their ring counts as the reference decoder's GeoJSON has them.
fn reference_rings(geometry: &Value) -> Vec<usize> {
    let coordinates = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => vec![coordinates.as_array().map_or(0, Vec::len)],
        Some("MultiPolygon") => coordinates
            .as_array()
            .map(|p| p.iter().map(|r| r.as_array().map_or(0, Vec::len)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn our_mvt_decoder_reads_gdal_tiles_like_the_mapbox_reference_decoder() {
    let work = temp_dir("codecs-mvt");
    let out = work.join("tiles");
    let status = std::process::Command::new("ogr2ogr")
        .args(["-q", "-f", "MVT"])
        .arg(&out)
        .arg(data("fgb/countries.fgb"))
        .args(["-dsco", "MINZOOM=0", "-dsco", "MAXZOOM=2", "-dsco", "COMPRESS=NO"])
        .status()
        .expect("ogr2ogr (apt-get install gdal-bin)");
    assert!(status.success());
    let (mut tiles, mut features, mut polygons) = (0, 0, 0);
    for z in 0..=2u32 {
        for x in 0..(1u32 << z) {
            for y in 0..(1u32 << z) {
                let file = out.join(format!("{z}/{x}/{y}.pbf"));
                let Ok(bytes) = std::fs::read(&file) else { continue };
                tiles += 1;
                let ours = decode_tile(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let path = file.to_str().expect("path");
                let reference =
                    oracle("decode_mvt.mjs", &[path, &z.to_string(), &x.to_string(), &y.to_string()]);
                let names: Vec<&str> = ours.iter().map(|l| l.name.as_str()).collect();
                let mut expected: Vec<&str> =
                    reference.as_object().expect("layers").keys().map(String::as_str).collect();
                expected.sort_unstable();
                let mut sorted = names.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, expected, "{z}/{x}/{y}");
                for layer in &ours {
                    let theirs = reference[&layer.name]["features"].as_array().expect("features");
                    assert_eq!(
                        layer.extent,
                        reference[&layer.name]["extent"].as_u64().expect("extent") as u32
                    );
                    assert_eq!(layer.features.len(), theirs.len(), "{z}/{x}/{y} {}", layer.name);
                    for (f, t) in layer.features.iter().zip(theirs) {
                        features += 1;
                        assert_eq!(f.id, t["id"].as_u64(), "{z}/{x}/{y}");
                        let props: serde_json::Map<String, Value> =
                            f.properties.iter().map(|(k, v)| (k.clone(), as_json(v))).collect();
                        assert_eq!(Value::Object(props), t["properties"], "{z}/{x}/{y} feature {:?}", f.id);
                        let kind = match &f.geometry {
                            TileGeometry::Points(_) => 1,
                            TileGeometry::Lines(_) => 2,
                            TileGeometry::Polygons(_) => 3,
                        };
                        assert_eq!(Some(kind), t["type"].as_u64(), "{z}/{x}/{y} feature {:?}", f.id);
                        if let TileGeometry::Polygons(p) = &f.geometry {
                            polygons += p.len();
                            let rings: Vec<usize> = p.iter().map(Vec::len).collect();
                            assert_eq!(
                                rings,
                                reference_rings(&t["geojson"]),
                                "{z}/{x}/{y} feature {:?}",
                                f.id
                            );
                        }
                    }
                }
            }
        }
    }
    // All 21 tiles of zooms 0-2 hold land; each country shows up at least once per zoom.
    assert!(tiles >= 15, "{tiles} tiles");
    assert!(features >= 3 * 179, "{features} features");
    assert!(polygons > features, "multipolygons split into their parts: {polygons}");
}

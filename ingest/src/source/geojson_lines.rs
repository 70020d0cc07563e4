//! Line-delimited GeoJSON (GeoJSONSeq, RFC 8142 record separators allowed), read
//! natively: batches of lines are parsed on every core and handed on in order.
//! GDAL's driver parses on one thread and is what bounded a city's ingest.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use cim_core::features::from_geojson;
use rayon::prelude::*;
use serde_json::{Map, Value};

use super::{FeatureSink, Importer, RawFeature, SourceMeta};
use crate::IngestError;
use crate::crs::DeclaredCrs;

pub struct GeoJsonLinesImporter;

/// Extensions of line-delimited GeoJSON.
const EXTENSIONS: [&str; 4] = ["geojsonl", "geojsons", "geojsonseq", "ndjson"];

/// Whether `path` names line-delimited GeoJSON.
pub(super) fn is_geojson_lines(path: &Path) -> bool {
    let ext = super::extension(path);
    EXTENSIONS.iter().any(|e| ext == *e || ext.ends_with(&format!(".{e}")))
}

/// Lines parsed side by side.
const BATCH: usize = 8192;

/// One line's feature; `None` for a blank line.
fn parse(line: &str, at: u64, path: &Path) -> Result<Option<RawFeature>, IngestError> {
    let text = line.trim_matches(|c: char| c == '\u{1e}' || c.is_whitespace());
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |why: String| IngestError::source(path, format!("line {at}: {why}"));
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(object) = v.as_object_mut() else {
        return Err(bad("not a GeoJSON Feature object".into()));
    };
    if object.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err(bad("not a GeoJSON Feature (its \"type\" is not \"Feature\")".into()));
    }
    let mut properties = match object.remove("properties") {
        Some(Value::Object(m)) => m,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err(bad("\"properties\" is not an object".into())),
    };
    // An id that is a whole number is the feature's id, as GDAL reads it; any other
    // is kept as an attribute.
    let fid = match object.remove("id") {
        Some(id) => match id.as_u64() {
            Some(n) => Some(n),
            None => {
                properties.entry("id").or_insert(id);
                None
            }
        },
        None => None,
    };
    let geometry = match object.get("geometry") {
        None | Some(Value::Null) => None,
        // A geometry that does not parse is counted as empty, as GDAL reads one.
        Some(g) => from_geojson(g).ok(),
    };
    Ok(Some(RawFeature { fid, geometry, properties }))
}

impl Importer for GeoJsonLinesImporter {
    fn name(&self) -> &'static str {
        "GeoJSONSeq"
    }

    fn read(&self, path: &Path, sink: &mut dyn FeatureSink) -> Result<(), IngestError> {
        let file = File::open(path).map_err(|e| IngestError::source(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let layer = path.file_stem().and_then(|s| s.to_str()).unwrap_or("features").to_owned();
        // RFC 7946: longitude, latitude on WGS84.
        let crs = Some(DeclaredCrs::Epsg(4326));
        sink.begin_layer(&SourceMeta { format: self.name().into(), layer, crs })?;
        let mut lines: Vec<String> = Vec::with_capacity(BATCH);
        let mut first_line = 1u64;
        let mut done = false;
        while !done {
            lines.clear();
            while lines.len() < BATCH {
                let mut line = String::new();
                let n = reader.read_line(&mut line).map_err(|e| {
                    IngestError::source(path, format!("line {}: {e}", first_line + lines.len() as u64))
                })?;
                if n == 0 {
                    done = true;
                    break;
                }
                lines.push(line);
            }
            let parsed: Vec<Option<RawFeature>> = lines
                .par_iter()
                .enumerate()
                .map(|(k, line)| parse(line, first_line + k as u64, path))
                .collect::<Result<_, _>>()?;
            first_line += lines.len() as u64;
            for feature in parsed.into_iter().flatten() {
                sink.feature(feature)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_features_with_their_ids_and_bad_lines_are_named() {
        let p = Path::new("city.geojsonl");
        let f = parse(
            "\u{1e}{\"type\":\"Feature\",\"id\":7,\"properties\":{\"h\":3},\"geometry\":{\"type\":\"Point\",\"coordinates\":[24.9,60.1]}}\n",
            1,
            p,
        )
        .expect("parsed")
        .expect("a feature");
        assert_eq!(f.fid, Some(7));
        assert_eq!(f.properties["h"], 3);
        assert!(f.geometry.is_some());
        let g = parse("{\"type\":\"Feature\",\"id\":\"a-1\",\"properties\":null,\"geometry\":null}", 2, p)
            .expect("parsed")
            .expect("a feature");
        assert_eq!((g.fid, g.properties["id"].as_str(), g.geometry.is_none()), (None, Some("a-1"), true));
        assert!(parse("   \n", 3, p).expect("blank").is_none());
        let e = parse("{\"type\":\"Feature\",", 41, p).expect_err("cut").to_string();
        assert!(e.starts_with("city.geojsonl: line 41: not JSON"), "{e}");
        let e = parse("[1,2]", 9, p).expect_err("array").to_string();
        assert!(e.contains("line 9: not a GeoJSON Feature"), "{e}");
        assert!(is_geojson_lines(Path::new("/x/city.geojsonl")) && !is_geojson_lines(Path::new("a.geojson")));
    }
}

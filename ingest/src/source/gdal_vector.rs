//! Every other vector format through GDAL/OGR: GeoJSON, Shapefile, GeoPackage,
//! OpenStreetMap PBF/XML, GML, KML and the rest of OGR's drivers.

use std::path::Path;

use gdal::vector::{FieldValue, LayerAccess};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use serde_json::{Map, Value};

use super::{FeatureSink, Importer, RawFeature, SourceMeta};
use crate::IngestError;
use crate::crs::DeclaredCrs;

pub struct GdalVectorImporter;

/// Extensions we hand to OGR; anything else is declined rather than guessed at.
const EXTENSIONS: &[&str] = &[
    "geojson", "json", "geojsonl", "geojsons", "shp", "gpkg", "osm.pbf", "pbf", "osm", "gml", "kml",
    "sqlite", "csv", "tab", "mif", "gpx", "dxf", "fgb",
];

/// Whether GDAL is the reader for a file whose first bytes say nothing we know.
pub(super) fn reads_by_name(path: &Path) -> bool {
    let ext = super::extension(path);
    EXTENSIONS.iter().any(|e| ext == *e || ext.ends_with(&format!(".{e}")))
}

/// What GDAL opens for a zip: `/vsizip/` over it, at its GeoPackage if it holds one
/// (a zipped Shapefile opens as the archive's directory).
fn zip_member(path: &Path) -> Result<std::path::PathBuf, IngestError> {
    let is_zip = super::extension(path).ends_with("zip") && super::archive_of(path).is_none();
    if !is_zip {
        return Ok(path.to_path_buf());
    }
    let absolute = std::path::absolute(path).map_err(|e| IngestError::source(path, e))?;
    let root = std::path::PathBuf::from(format!("/vsizip/{}", absolute.display()));
    let members = gdal::vsi::read_dir(&root, true)
        .map_err(|e| IngestError::source(path, format!("not a zip archive GDAL can read: {e}")))?;
    let named = |ext: &str| {
        members.iter().find(|m| m.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))).cloned()
    };
    match (named("gpkg"), named("shp")) {
        (Some(gpkg), _) => Ok(root.join(gpkg)),
        (None, Some(shp)) => Ok(root.join(shp)),
        (None, None) => Err(IngestError::source(
            path,
            format!(
                "the zip holds no Shapefile (.shp) or GeoPackage (.gpkg): {}",
                members.iter().take(8).map(|m| m.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// OSM tags that make a feature part of the city base map.
const OSM_KEEP: &[&str] =
    &["building", "highway", "landuse", "natural", "waterway", "water", "leisure", "railway"];

impl Importer for GdalVectorImporter {
    fn name(&self) -> &'static str {
        "OGR"
    }

    fn read(&self, path: &Path, sink: &mut dyn FeatureSink) -> Result<(), IngestError> {
        route_gdal_messages();
        let options = DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
            ..Default::default()
        };
        let opened = zip_member(path)?;
        let dataset = Dataset::open_ex(&opened, options)
            .map_err(|e| IngestError::source(path, format!("GDAL cannot open it as vector data: {e}")))?;
        let driver = dataset.driver().short_name();
        let is_osm = driver == "OSM";
        for mut layer in dataset.layers() {
            let layer_name = layer.name();
            if is_osm && layer_name != "lines" && layer_name != "multipolygons" {
                continue;
            }
            let crs = layer.spatial_ref().map(|srs| match (srs.auth_name(), srs.auth_code()) {
                (Some(org), Ok(code)) if org == "EPSG" => DeclaredCrs::Epsg(code as u32),
                _ => DeclaredCrs::Definition(srs.to_wkt().unwrap_or_default()),
            });
            sink.begin_layer(&SourceMeta {
                format: format!("OGR/{driver}"),
                layer: layer_name.clone(),
                crs,
            })?;
            for (index, feature) in layer.features().enumerate() {
                let mut properties = Map::new();
                for (name, value) in feature.fields() {
                    if let Some(v) = value {
                        properties.insert(name, field_to_json(v));
                    }
                }
                let mut fid = feature.fid();
                if is_osm {
                    // The OSM driver reports unset tags as empty strings.
                    properties.retain(|_, v| v.as_str() != Some(""));
                    expand_other_tags(&mut properties);
                    if !OSM_KEEP.iter().any(|k| properties.contains_key(*k)) {
                        continue;
                    }
                    fid = osm_fid(&properties).or(fid);
                }
                let geometry = match feature.geometry() {
                    None => None,
                    Some(g) if g.is_empty() => None,
                    Some(g) => Some(g.to_geo().map_err(|e| {
                        IngestError::source(
                            path,
                            format!("layer '{layer_name}' feature {index}: unsupported geometry: {e}"),
                        )
                    })?),
                };
                sink.feature(RawFeature { fid, geometry, properties })?;
            }
        }
        Ok(())
    }
}

/// GDAL reports data problems (unclosed rings, odd polygons) on stderr; those are
/// counted in the quality report already, so they go to the log instead.
fn route_gdal_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gdal::config::set_error_handler(|class, code, message| match class {
            gdal::errors::CplErrType::Failure | gdal::errors::CplErrType::Fatal => {
                tracing::warn!(code, "GDAL: {message}")
            }
            _ => tracing::debug!(code, "GDAL: {message}"),
        });
    });
}

fn field_to_json(v: FieldValue) -> Value {
    match v {
        FieldValue::IntegerValue(i) => Value::from(i),
        FieldValue::Integer64Value(i) => Value::from(i),
        FieldValue::RealValue(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        FieldValue::StringValue(s) => Value::from(s),
        FieldValue::IntegerListValue(l) => Value::from(l),
        FieldValue::Integer64ListValue(l) => Value::from(l),
        FieldValue::RealListValue(l) => Value::from(l),
        FieldValue::StringListValue(l) => Value::from(l),
        FieldValue::DateValue(d) => Value::from(d.to_string()),
        FieldValue::DateTimeValue(d) => Value::from(d.to_rfc3339()),
    }
}

/// OSM ids are unique per element type only: ways map to even, relations to odd ids,
/// so ids stay stable across re-ingests of the same extract.
fn osm_fid(properties: &Map<String, Value>) -> Option<u64> {
    let id = |key: &str| {
        properties.get(key).and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()).or(v.as_u64()))
    };
    if let Some(way) = id("osm_way_id") {
        return Some(way * 2);
    }
    id("osm_id").map(|rel_or_way| rel_or_way * 2 + u64::from(properties.contains_key("type")))
}

/// OGR's OSM driver packs unlisted tags as an hstore string: `"k"=>"v","k2"=>"v2"`;
/// files exported from it (GeoPackage, FlatGeobuf, GeoJSON) keep that column.
pub(crate) fn expand_other_tags(properties: &mut Map<String, Value>) {
    let Some(Value::String(packed)) = properties.remove("other_tags") else {
        return;
    };
    for (k, v) in parse_hstore(&packed) {
        properties.entry(k).or_insert(Value::String(v));
    }
}

pub(crate) fn parse_hstore(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut strings = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut cur = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                '"' => break,
                _ => cur.push(c),
            }
        }
        strings.push(cur);
        if strings.len() == 2 {
            let v = strings.pop().unwrap_or_default();
            let k = strings.pop().unwrap_or_default();
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_osm_other_tags() {
        let tags = parse_hstore(r#""building:levels"=>"5","name:sv"=>"Ateneum \"A\"","height"=>"21""#);
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[0], ("building:levels".into(), "5".into()));
        assert_eq!(tags[1].1, "Ateneum \"A\"");
    }
}

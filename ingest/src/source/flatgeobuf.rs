//! FlatGeobuf, read natively and streamed feature by feature.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use flatgeobuf::{FallibleStreamingIterator, FeatureProperties, FgbReader};
use geozero::{ColumnValue, PropertyProcessor, ToGeo};
use serde_json::{Map, Value};

use super::{FeatureSink, Importer, RawFeature, SourceMeta};
use crate::IngestError;
use crate::crs::DeclaredCrs;

pub struct FlatGeobufImporter;

const MAGIC: &[u8; 3] = b"fgb";

impl Importer for FlatGeobufImporter {
    fn name(&self) -> &'static str {
        "FlatGeobuf"
    }

    fn read(&self, path: &Path, sink: &mut dyn FeatureSink) -> Result<(), IngestError> {
        let file = File::open(path).map_err(|e| IngestError::source(path, e))?;
        let mut head = [0u8; 8];
        std::io::Read::read_exact(&mut &file, &mut head)
            .map_err(|e| IngestError::source(path, format!("cannot read the FlatGeobuf magic bytes: {e}")))?;
        if &head[..3] != MAGIC {
            return Err(IngestError::source(path, "not a FlatGeobuf file (magic bytes missing)"));
        }
        if head[3] != 3 {
            return Err(IngestError::source(
                path,
                format!(
                    "FlatGeobuf version {} is not supported (only version 3); convert it with `ogr2ogr -f FlatGeobuf`",
                    head[3]
                ),
            ));
        }
        let file = File::open(path).map_err(|e| IngestError::source(path, e))?;
        let reader = FgbReader::open(BufReader::new(file))
            .map_err(|e| IngestError::source(path, format!("bad FlatGeobuf header: {e}")))?;
        let header = reader.header();
        let crs = header.crs().and_then(|c| match (c.org(), c.code(), c.wkt()) {
            (_, code, _) if code > 0 => Some(DeclaredCrs::Epsg(code as u32)),
            (_, _, Some(wkt)) if !wkt.is_empty() => Some(DeclaredCrs::Definition(wkt.to_owned())),
            _ => None,
        });
        let layer = header.name().unwrap_or("fgb").to_owned();
        sink.begin_layer(&SourceMeta { format: self.name().into(), layer, crs })?;
        let mut features = reader
            .select_all()
            .map_err(|e| IngestError::source(path, format!("cannot read FlatGeobuf features: {e}")))?;
        let mut index = 0u64;
        loop {
            let feature = match features.next() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(IngestError::source(
                        path,
                        format!("feature {index}: {e} (file truncated or corrupt?)"),
                    ));
                }
            };
            let geometry = feature
                .to_geo()
                .map_err(|e| IngestError::source(path, format!("feature {index}: bad geometry: {e}")))?;
            let mut props = PropertyCollector(Map::new());
            feature
                .process_properties(&mut props)
                .map_err(|e| IngestError::source(path, format!("feature {index}: bad properties: {e}")))?;
            sink.feature(RawFeature { fid: Some(index), geometry: Some(geometry), properties: props.0 })?;
            index += 1;
        }
        Ok(())
    }
}

struct PropertyCollector(Map<String, Value>);

impl PropertyProcessor for PropertyCollector {
    fn property(&mut self, _idx: usize, name: &str, value: &ColumnValue) -> geozero::error::Result<bool> {
        let v = match value {
            ColumnValue::Byte(v) => Value::from(*v),
            ColumnValue::UByte(v) => Value::from(*v),
            ColumnValue::Bool(v) => Value::from(*v),
            ColumnValue::Short(v) => Value::from(*v),
            ColumnValue::UShort(v) => Value::from(*v),
            ColumnValue::Int(v) => Value::from(*v),
            ColumnValue::UInt(v) => Value::from(*v),
            ColumnValue::Long(v) => Value::from(*v),
            ColumnValue::ULong(v) => Value::from(*v),
            ColumnValue::Float(v) => Value::from(f64::from(*v)),
            ColumnValue::Double(v) => Value::from(*v),
            ColumnValue::String(v) | ColumnValue::Json(v) | ColumnValue::DateTime(v) => Value::from(*v),
            ColumnValue::Binary(b) => Value::from(format!("<{} bytes>", b.len())),
        };
        self.0.insert(name.to_owned(), v);
        Ok(false)
    }
}

//! One importer per vector source format behind one trait, chosen by the format
//! [`crate::sniff`] tells.

mod flatgeobuf;
mod gdal_vector;
mod geojson_lines;

pub(crate) use gdal_vector::expand_other_tags;

use std::path::Path;

use geo_types::Geometry;
use serde_json::{Map, Value};

use cim_core::formats::DropFormat;

use crate::IngestError;
use crate::crs::DeclaredCrs;

/// What a source layer says about itself before its features stream.
#[derive(Debug, Clone)]
pub struct SourceMeta {
    pub format: String,
    pub layer: String,
    pub crs: Option<DeclaredCrs>,
}

/// One feature as read, still in the source CRS.
#[derive(Debug, Clone)]
pub struct RawFeature {
    pub fid: Option<u64>,
    pub geometry: Option<Geometry<f64>>,
    pub properties: Map<String, Value>,
}

/// Receives a source's layers and features as they stream.
pub trait FeatureSink {
    fn begin_layer(&mut self, meta: &SourceMeta) -> Result<(), IngestError>;
    fn feature(&mut self, feature: RawFeature) -> Result<(), IngestError>;
}

pub trait Importer: Sync {
    fn name(&self) -> &'static str;
    fn read(&self, path: &Path, sink: &mut dyn FeatureSink) -> Result<(), IngestError>;
}

/// The importer that reads a vector input of this format ([`crate::sniff`]).
pub fn importer_for(path: &Path, format: Option<DropFormat>) -> Result<&'static dyn Importer, IngestError> {
    match format {
        Some(DropFormat::FlatGeobuf) => Ok(&flatgeobuf::FlatGeobufImporter),
        // Line-delimited GeoJSON on disk (not inside a zip, which GDAL reads).
        Some(DropFormat::GeoJson) | None
            if geojson_lines::is_geojson_lines(path) && archive_of(path).is_none() =>
        {
            Ok(&geojson_lines::GeoJsonLinesImporter)
        }
        Some(_) => Ok(&gdal_vector::GdalVectorImporter),
        // Formats only GDAL knows (MapInfo, GPX, DXF ...), and `.json` that does not
        // say what it is: GDAL decides.
        None if gdal_vector::reads_by_name(path) => Ok(&gdal_vector::GdalVectorImporter),
        None => Err(IngestError::UnknownFormat { path: path.to_path_buf() }),
    }
}

/// The zip archive a GDAL `/vsizip/ARCHIVE.zip[/MEMBER]` path reads from.
pub fn archive_of(path: &Path) -> Option<std::path::PathBuf> {
    let text = path.to_str()?.strip_prefix("/vsizip/")?;
    let lower = text.to_ascii_lowercase();
    let end = lower.find(".zip").map(|i| i + 4)?;
    Some(std::path::PathBuf::from(&text[..end]))
}

pub(crate) fn extension(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.to_ascii_lowercase())
        .and_then(|n| n.split_once('.').map(|(_, ext)| ext.to_owned()))
        .unwrap_or_default()
}

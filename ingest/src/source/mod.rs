//! One importer per source format behind one trait. Each looks at a file's
//! extension and first bytes and declines early if it does not own it.

mod flatgeobuf;
mod gdal_vector;

pub(crate) use gdal_vector::expand_other_tags;

use std::io::Read;
use std::path::Path;

use geo_types::Geometry;
use serde_json::{Map, Value};

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
    /// Cheap test on extension and the first bytes of the file.
    fn accepts(&self, path: &Path, head: &[u8]) -> bool;
    fn read(&self, path: &Path, sink: &mut dyn FeatureSink) -> Result<(), IngestError>;
}

static IMPORTERS: [&dyn Importer; 2] = [&flatgeobuf::FlatGeobufImporter, &gdal_vector::GdalVectorImporter];

/// The importer that owns `path`.
pub fn importer_for(path: &Path) -> Result<&'static dyn Importer, IngestError> {
    let mut head = [0u8; 16];
    let on_disk = archive_of(path).unwrap_or_else(|| path.to_path_buf());
    let n = std::fs::File::open(&on_disk)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| IngestError::source(path, e))?;
    let n = if on_disk == path { n } else { 0 };
    IMPORTERS
        .iter()
        .copied()
        .find(|i| i.accepts(path, &head[..n]))
        .ok_or_else(|| IngestError::UnknownFormat { path: path.to_path_buf() })
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

//! Writing a layer's feature store ([`cim_core::feature_file`]): GeoJSON records in
//! id order with an id table and an R-tree, which the server reads by range.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use cim_core::feature_file::{FeatureFileError, FeatureFileWriter};
use cim_core::features::{from_geojson, to_geojson};
use geo::BoundingRect;
use geo_types::Geometry;
use serde_json::{Map, Value, json};

use crate::IngestError;

fn error(path: &Path, e: FeatureFileError) -> IngestError {
    match e {
        FeatureFileError::Io(io) => IngestError::store(path, io),
        other => IngestError::store(path, std::io::Error::other(other)),
    }
}

fn bbox(g: &Geometry<f64>) -> Option<[f64; 4]> {
    g.bounding_rect().map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

/// A feature store being written, features in increasing id order.
pub struct FeatureStore {
    path: PathBuf,
    writer: FeatureFileWriter<BufWriter<File>>,
    record: Vec<u8>,
}

impl FeatureStore {
    pub fn create(path: &Path) -> Result<Self, IngestError> {
        let file = File::create(path).map_err(|e| IngestError::store(path, e))?;
        let writer =
            FeatureFileWriter::new(BufWriter::with_capacity(1 << 20, file)).map_err(|e| error(path, e))?;
        Ok(Self { path: path.to_owned(), writer, record: Vec::new() })
    }

    /// Adds one feature as [`encode`] gave it, in increasing id order.
    pub fn push_encoded(&mut self, feature: &Encoded) -> Result<(), IngestError> {
        self.writer.push(feature.id, feature.bbox, &feature.geojson).map_err(|e| error(&self.path, e))
    }

    /// Adds one feature given as its GeoJSON.
    fn push_json(&mut self, id: u64, bbox: Option<[f64; 4]>, feature: &Value) -> Result<(), IngestError> {
        self.record.clear();
        serde_json::to_writer(&mut self.record, feature)
            .map_err(|e| IngestError::store(&self.path, std::io::Error::other(e)))?;
        self.writer.push(id, bbox, &self.record).map_err(|e| error(&self.path, e))
    }

    pub fn finish(self) -> Result<(), IngestError> {
        let path = self.path;
        let out = self.writer.finish().map_err(|e| error(&path, e))?;
        let file = out.into_inner().map_err(|e| IngestError::store(&path, e.into_error()))?;
        file.sync_all().map_err(|e| IngestError::store(&path, e))
    }
}

/// A feature's record, made ready on any thread.
pub struct Encoded {
    id: u64,
    bbox: Option<[f64; 4]>,
    geojson: Vec<u8>,
}

/// A feature as GeoJSON (`id`, `geometry`, `properties`).
pub fn encode(id: u64, geometry: &Geometry<f64>, properties: &Map<String, Value>) -> Encoded {
    let v = json!({"type": "Feature", "id": id, "geometry": to_geojson(geometry), "properties": properties});
    // A Value always serialises.
    Encoded { id, bbox: bbox(geometry), geojson: serde_json::to_vec(&v).unwrap_or_default() }
}

/// Writes GeoJSON features (each with a numeric `id`) sorted by id: the small
/// stores of BIM models and city models, and the empty one of layers without features.
pub fn write_values(path: &Path, mut features: Vec<Value>) -> Result<(), IngestError> {
    features.sort_by_key(|f| f["id"].as_u64());
    let mut store = FeatureStore::create(path)?;
    for f in &features {
        let id = f["id"].as_u64().ok_or_else(|| {
            IngestError::store(
                path,
                std::io::Error::other(format!("a feature without a numeric id: {}", f["id"])),
            )
        })?;
        let geometry = from_geojson(&f["geometry"]).ok();
        store.push_json(id, geometry.as_ref().and_then(bbox), f)?;
    }
    store.finish()
}

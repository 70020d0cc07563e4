//! `cim-ingest`: survey drops into the CIM store.
//!
//! A run reads every input through the [`source`] importer that owns its format,
//! reprojects into the service frame ([`crs`]), repairs or drops bad geometry
//! ([`repair`], counted in the quality report), then builds from one R-tree:
//! Mapbox Vector Tiles in a PMTiles archive ([`mvt_tiles`]) and extruded buildings as
//! 3D Tiles ([`buildings`]). IFC models take their own path ([`ifc`] reads them,
//! [`bim`] writes a BIM layer). [`store`] swaps the finished layer in atomically.

pub mod bim;
pub mod buildings;
pub mod citymodel;
pub mod clip;
pub mod crs;
pub mod error;
pub mod feature;
pub mod gcj02;
pub mod governance;
pub mod ifc;
pub mod layer;
pub mod mvt_tiles;
pub mod options;
pub mod pointcloud;
pub mod progress;
pub mod repair;
pub mod run;
pub mod source;
pub mod store;
pub mod terrain;
pub mod vector;

pub use error::IngestError;
pub use layer::ingest;
pub use options::IngestOptions;
pub use run::IngestSummary;

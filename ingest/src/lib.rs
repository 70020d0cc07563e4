//! `cim-ingest`: survey drops into the CIM store.
//!
//! [`layer::ingest`] tells the kind of layer the inputs make ([`sniff`], on
//! `cim_core::formats`), refuses options that kind cannot honour, and runs the kind's
//! build inside one [`run::LayerRun`]: lineage, staged version, progress, then one
//! catalogue entry and the atomic publish ([`store`]). The kinds, one module each:
//! [`vector`] (GIS through [`source`], [`crs`], [`repair`], then [`mvt_tiles`] and
//! [`buildings`]), [`bim`] (IFC through [`ifc`]), [`pointcloud`], [`terrain`] and
//! [`citymodel`]; [`mesh`] and [`quadtree`] are the 3D maths and tiling they share.

pub mod bim;
pub mod buildings;
pub mod citymodel;
pub mod clip;
pub mod crs;
pub mod error;
pub mod feature;
pub mod feature_store;
pub mod gcj02;
pub mod governance;
pub mod ifc;
pub mod layer;
pub mod mesh;
pub mod mvt_tiles;
pub mod options;
pub mod pointcloud;
pub mod progress;
pub mod quadtree;
pub mod repair;
pub mod run;
pub mod sniff;
pub mod source;
pub mod spill;
pub mod store;
pub mod terrain;
pub mod tileset_files;
pub mod vector;

pub use error::IngestError;
pub use layer::ingest;
pub use options::IngestOptions;
pub use run::IngestSummary;

//! What every part of the CIM service agrees on.
//!
//! * [`tile`]: XYZ / Web Mercator tile addressing and the PMTiles Hilbert tile id.
//! * [`frame`]: the service frame (WGS84 longitude, latitude, ellipsoidal height) and
//!   its exact conversions to ECEF and local east-north-up frames used by 3D Tiles.
//! * [`formats`]: which survey drop format a file is, from its first bytes and name.
//! * [`catalogue`]: the catalogue entry and data-quality report written per layer.
//! * [`feature_file`]: the feature store (GeoJSON records, id table, packed R-tree)
//!   the server reads by range.
//! * [`mvt`] and [`mvt_decode`]: a Mapbox Vector Tile 2.1 encoder and decoder.
//! * [`pmtiles`]: PMTiles v3 archive writer and byte-level reader.
//! * [`points`]: point cloud tile content (GLB `POINTS`, quantised, with intensity
//!   and classification).
//! * [`quantized_mesh`]: Cesium's quantized-mesh-1.0 terrain tiles.
//! * [`terrain`]: the geographic terrain tiling scheme and the terrain surface
//!   heights are sampled from.
//! * [`sensors`]: live sensors, readings, thresholds with hysteresis, RFC 3339 times.
//! * [`tileset`] and [`glb`]: OGC 3D Tiles 1.1 `tileset.json` and GLB content with
//!   `EXT_mesh_features` / `EXT_structural_metadata`.
//!
//! The crate does no I/O beyond `std::io::Write` sinks and positioned reads it is handed and stays pure Rust so that the
//! viewer can build it for `wasm32-unknown-unknown`.

pub mod catalogue;
pub mod feature_file;
pub mod features;
pub mod formats;
pub mod frame;
pub mod glb;
pub mod mvt;
pub mod mvt_decode;
pub mod pmtiles;
pub mod points;
pub mod quantized_mesh;
pub mod read_at;
pub mod sensors;
pub mod terrain;
pub mod tile;
pub mod tileset;

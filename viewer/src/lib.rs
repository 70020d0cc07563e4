//! The city viewer: streams OGC 3D Tiles from `cim-server` and renders them with bevy.
//!
//! The GPU-free part lives here and builds without the `render` feature (and for
//! wasm32): [`tree`] flattens a tileset, [`select`] picks tiles by frustum and
//! screen-space error, [`cache`] bounds memory, [`ground`] styles and drapes vector
//! tiles, [`points`] packs point cloud tiles for the point shader. The bevy app is `src/main.rs` with its
//! plugins under [`render`].

pub mod cache;
pub mod ground;
pub mod live;
pub mod points;
pub mod select;
pub mod tree;

#[cfg(feature = "render")]
pub mod render;

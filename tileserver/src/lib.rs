//! `cim-server`: the CIM store over HTTP.
//!
//! [`app`] builds the whole router so tests drive it with `oneshot`; each module
//! holds the handlers of one API beside its routes.

mod api;
mod error;
mod http_cache;
mod layers;
mod ogc;
mod tiles;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Method, header};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;
pub use layers::LayerCache;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub layers: Arc<LayerCache>,
}

impl AppState {
    pub fn new(store: impl Into<PathBuf>) -> Self {
        Self { layers: Arc::new(LayerCache::new(store.into())) }
    }
}

pub fn app(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([header::IF_NONE_MATCH, header::ACCEPT, header::ACCEPT_ENCODING])
        .expose_headers([header::ETAG, header::CONTENT_ENCODING, HeaderName::from_static("content-length")]);
    Router::new()
        .merge(api::routes())
        .merge(tiles::routes())
        .merge(ogc::routes())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .with_state(state)
        .layer(CompressionLayer::new().gzip(true).br(true))
        .layer(cors)
}

//! `cim-server`: the CIM store over HTTP.
//!
//! [`app`] builds the whole router so tests drive it with `oneshot`; each module
//! holds the handlers of one API beside its routes.

pub mod access;
mod api;
pub mod audit;
mod bim;
pub mod clock;
mod error;
mod heavy;
mod http_cache;
pub mod jobs;
mod layers;
pub mod live;
mod ogc;
mod paths;
pub mod serve;
mod terrain;
mod tiles;
pub mod web;

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
    /// `None` when another instance holds the store's live database: this one then
    /// serves tiles and features only (read replicas for scale-out).
    pub live: Option<Arc<live::Live>>,
    /// The browser viewer's bundle (`--web DIR`), served at `/` to browsers.
    pub web: Option<Arc<web::WebBundle>>,
    /// API tokens (`--tokens FILE`); without them writes are open (development).
    pub tokens: access::SharedTokens,
    /// Every request, hash-chained (`STORE/.audit/audit.jsonl`).
    pub audit: Option<Arc<audit::AuditLog>>,
    /// Requests per second per token (`--rate-limit`).
    pub rate_limit: Option<Arc<access::RateLimiter>>,
    /// Requests per second per client address without a token (`--anonymous-rate-limit`).
    pub anonymous_rate_limit: Option<Arc<access::RateLimiter>>,
    /// Who may see the live sensors (`--sensors-classification`): their layer,
    /// registry, readings, alerts and streams.
    pub sensors_classification: cim_core::catalogue::Classification,
    /// Ingest jobs over HTTP (`cim-server` starts them; absent in bare routers).
    pub jobs: Option<Arc<jobs::Jobs>>,
    /// Largest upload a job accepts, bytes.
    pub max_upload_bytes: usize,
}

impl AppState {
    /// Whether the caller of the current request may see the live sensors.
    pub fn sensors_visible(&self) -> bool {
        access::current().may_see(self.sensors_classification)
    }
}

/// Why a server could not start on a store.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Live { path: PathBuf, source: live::store::StoreError },
}

/// Where the live sensor database sits inside a store.
pub const LIVE_DB: &str = ".live/sensors.redb";

impl AppState {
    /// Serves the layers of `store` and keeps live sensor data in `store/.live`.
    pub fn open(store: impl Into<PathBuf>) -> Result<Self, StartError> {
        let store = store.into();
        let db = store.join(LIVE_DB);
        if let Some(dir) = db.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StartError::Io { path: dir.to_path_buf(), source: e })?;
        }
        let live = match live::Live::open(&db) {
            Ok(live) => Some(Arc::new(live)),
            Err(live::store::StoreError::Db(redb::Error::DatabaseAlreadyOpen)) => {
                tracing::warn!(
                    "{} is in use by another instance: serving without live sensors",
                    db.display()
                );
                None
            }
            Err(e) => return Err(StartError::Live { path: db, source: e }),
        };
        let audit = audit::AuditLog::open(&store, audit::AuditPolicy::default())
            .map_err(|e| StartError::Io { path: store.join(audit::AUDIT_LOG), source: e })?;
        Ok(Self {
            layers: Arc::new(LayerCache::new(store)),
            live,
            web: None,
            tokens: None,
            audit: Some(Arc::new(audit)),
            rate_limit: None,
            anonymous_rate_limit: None,
            sensors_classification: cim_core::catalogue::Classification::Public,
            jobs: None,
            max_upload_bytes: 1 << 30,
        })
    }
}

pub fn app(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS, Method::POST, Method::DELETE])
        .allow_headers([
            header::IF_NONE_MATCH,
            header::ACCEPT,
            header::ACCEPT_ENCODING,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
        .expose_headers([header::ETAG, header::CONTENT_ENCODING, HeaderName::from_static("content-length")]);
    Router::new()
        .merge(api::routes())
        .merge(bim::routes())
        .merge(audit::routes())
        .merge(jobs::routes())
        .merge(terrain::routes())
        .merge(tiles::routes())
        .merge(ogc::routes())
        .merge(live::routes())
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        // Audit inside access: the record names the caller access resolved.
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::middleware))
        .layer(axum::middleware::from_fn_with_state(state.clone(), access::middleware))
        .with_state(state)
        .layer(CompressionLayer::new().gzip(true).br(true))
        .layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            http_cache::tag_encoding(&mut response);
            response
        }))
        .layer(cors)
        .layer(axum::middleware::map_response(|mut response: axum::response::Response| async move {
            http_cache::one_vary(&mut response);
            response
        }))
}

//! Ground heights: `GET /api/elevation?lon=&lat=[&layer=]`, and a terrain layer's
//! finest meshes whole (`GET /api/terrain/{layer}/surface`, the
//! [`cim_core::terrain::TerrainSurface`] bytes) for clients that drape on it.
//!
//! Heights come from a terrain layer's finest meshes, the very triangles a client
//! draws at full detail, so what the API says and what the screen shows agree.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use cim_core::catalogue::LayerKind;
use serde_json::json;

use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/elevation", get(elevation)).route("/api/terrain/{layer}/surface", get(surface))
}

fn coordinate(params: &HashMap<String, String>, key: &str, limit: f64) -> Result<f64, ApiError> {
    let raw = params.get(key).ok_or_else(|| ApiError::BadRequest(format!("missing parameter '{key}'")))?;
    let v: f64 = raw.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!("{key} '{}' is not a number", raw.chars().take(30).collect::<String>()))
    })?;
    if !(-limit..=limit).contains(&v) {
        return Err(ApiError::BadRequest(format!("{key} {v} is outside -{limit}..{limit} degrees")));
    }
    Ok(v)
}

async fn elevation(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lon = coordinate(&params, "lon", 180.0)?;
    let lat = coordinate(&params, "lat", 90.0)?;
    let names = match params.get("layer") {
        Some(name) => vec![name.clone()],
        None => state.layers.names(),
    };
    let asked_for_one = params.contains_key("layer");
    for name in names {
        let layer = state.layers.get(&name).await?;
        let Some(surface) = layer.terrain.as_ref().filter(|_| layer.catalogue.kind == LayerKind::Terrain)
        else {
            if asked_for_one {
                return Err(ApiError::NotFound(format!("layer '{name}' is not a terrain layer")));
            }
            continue;
        };
        let Some(height) = surface.height_at(lon, lat) else { continue };
        let finest = layer.catalogue.terrain.as_ref().and_then(|t| t.levels.last());
        let doc = json!({
            "lon": lon,
            "lat": lat,
            "height": (height * 1000.0).round() / 1000.0,
            "layer": name,
            "version": layer.catalogue.version,
            "zoom": surface.zoom,
            "geometric_error": finest.map(|l| l.geometric_error_m),
            "height_reference": layer.catalogue.terrain.as_ref().map(|t| t.height_reference.clone()),
        });
        return Ok(respond(
            &headers,
            doc.to_string().into_bytes(),
            "application/json",
            None,
            None,
            Freshness::Content,
        ));
    }
    Err(ApiError::NotFound(format!("no terrain layer covers lon {lon}, lat {lat}")))
}

async fn surface(
    State(state): State<AppState>,
    Path(layer_name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layer = state.layers.get(&layer_name).await?;
    let Some(summary) =
        layer.catalogue.terrain.as_ref().filter(|_| layer.catalogue.kind == LayerKind::Terrain)
    else {
        return Err(ApiError::NotFound(format!("layer '{layer_name}' is not a terrain layer")));
    };
    let path = layer.dir.join(&summary.surface);
    let bytes =
        tokio::fs::read(&path).await.map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
    let etag = format!("\"{}-surface\"", layer.catalogue.version);
    Ok(respond(&headers, bytes, "application/octet-stream", None, Some(&etag), Freshness::Content))
}

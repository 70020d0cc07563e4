//! Terrain layers over HTTP:
//! * `GET /api/elevation?lon=&lat=[&layer=]`: ground heights;
//! * `GET /api/terrain/{layer}/surface`: the finest meshes whole (the
//!   [`cim_core::terrain::TerrainSurface`] bytes) for clients that drape on them;
//! * `GET /terrain/{layer}/layer.json` and `/terrain/{layer}/{z}/{x}/{y}.terrain`:
//!   quantized-mesh-1.0 for Cesium's terrain provider, with flat tiles filling the
//!   zooms above the data.
//!
//! Heights come from a terrain layer's finest meshes, the very triangles a client
//! draws at full detail, so what the API says and what the screen shows agree.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use cim_core::catalogue::QUANTIZED_MESH_DIR;
use cim_core::terrain::TerrainTile;
use serde_json::json;

use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/elevation", get(elevation))
        .route("/api/terrain/{layer}/surface", get(surface))
        .route("/terrain/{layer}/layer.json", get(layer_json))
        .route("/terrain/{layer}/{z}/{x}/{file}", get(quantized_tile))
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
        let (Some(surface), Some(summary)) = (layer.terrain.as_ref(), layer.catalogue.terrain()) else {
            if asked_for_one {
                return Err(ApiError::NotFound(format!("layer '{name}' is not a terrain layer")));
            }
            continue;
        };
        let Some(height) = surface.height_at(lon, lat) else { continue };
        let finest = summary.levels.last();
        let doc = json!({
            "lon": lon,
            "lat": lat,
            "height": (height * 1000.0).round() / 1000.0,
            "layer": name,
            "version": layer.catalogue.version,
            "zoom": surface.zoom,
            "geometric_error": finest.map(|l| l.geometric_error_m),
            "height_reference": summary.height_reference,
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
    let Some(summary) = layer.catalogue.terrain() else {
        return Err(ApiError::NotFound(format!("layer '{layer_name}' is not a terrain layer")));
    };
    let path = layer.dir.join(&summary.surface);
    let bytes =
        tokio::fs::read(&path).await.map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
    let etag = format!("\"{}-surface\"", layer.catalogue.version);
    Ok(respond(&headers, bytes, "application/octet-stream", None, Some(&etag), Freshness::Content))
}

fn terrain_layer(layer: &crate::layers::Layer, name: &str) -> Result<(), ApiError> {
    if layer.catalogue.terrain().is_some() {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("layer '{name}' is not a terrain layer")))
    }
}

async fn layer_json(
    State(state): State<AppState>,
    Path(layer_name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let layer = state.layers.get(&layer_name).await?;
    terrain_layer(&layer, &layer_name)?;
    let path = layer.dir.join(QUANTIZED_MESH_DIR).join("layer.json");
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::NotFound(format!("layer '{layer_name}' has no quantized-mesh tiles (re-ingest it)"))
    })?;
    Ok(respond(&headers, bytes, "application/json", None, None, Freshness::Content))
}

async fn quantized_tile(
    State(state): State<AppState>,
    Path((layer_name, z, x, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bad = || ApiError::BadRequest("terrain tiles are /terrain/{layer}/{z}/{x}/{y}.terrain".into());
    let y = file.strip_suffix(".terrain").ok_or_else(bad)?;
    let (z, x, y): (u8, u32, u32) =
        (z.parse().map_err(|_| bad())?, x.parse().map_err(|_| bad())?, y.parse().map_err(|_| bad())?);
    let layer = state.layers.get(&layer_name).await?;
    terrain_layer(&layer, &layer_name)?;
    let max_zoom = layer.catalogue.max_zoom;
    if z > max_zoom || z > 30 || x >= (2u32 << z) || y >= (1u32 << z) {
        return Err(ApiError::NotFound(format!("no terrain tile {z}/{x}/{y} in layer '{layer_name}'")));
    }
    let tile = TerrainTile { z, x, y };
    let path = layer
        .dir
        .join(QUANTIZED_MESH_DIR)
        .join(z.to_string())
        .join(x.to_string())
        .join(format!("{y}.terrain"));
    let bytes = match tokio::fs::read(&path).await {
        Ok(mut bytes) => {
            // The normals extension only when asked for (Accept: ...;extensions=octvertexnormals).
            let wants_normals = headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("octvertexnormals"));
            if wants_normals && let Ok(oct) = tokio::fs::read(path.with_extension("normals")).await {
                bytes.extend(cim_core::quantized_mesh::normals_extension(&oct));
            }
            bytes
        }
        // Above the data every tile is available: flat ones where there is no data.
        Err(_) if z < layer.catalogue.min_zoom => flat_with_normals(tile, &headers),
        Err(_) => {
            return Err(ApiError::NotFound(format!("no terrain tile {z}/{x}/{y} in layer '{layer_name}'")));
        }
    };
    Ok(respond(&headers, bytes, "application/vnd.quantized-mesh", None, None, Freshness::Content))
}

/// A flat tile, with straight-up normals when the client asked for normals.
fn flat_with_normals(tile: TerrainTile, headers: &HeaderMap) -> Vec<u8> {
    let mut bytes = cim_core::quantized_mesh::flat_tile(tile);
    let wants = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("octvertexnormals"));
    if wants {
        let [west, south, east, north] = tile.bounds();
        let up = |lon: f64, lat: f64| {
            let (lon, lat) = (lon.to_radians(), lat.to_radians());
            cim_core::quantized_mesh::oct_encode([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()])
        };
        // Vertex order of the flat tile: south-west, south-east, north-east, north-west.
        let oct: Vec<u8> = [(west, south), (east, south), (east, north), (west, north)]
            .iter()
            .flat_map(|&(lon, lat)| up(lon, lat))
            .collect();
        bytes.extend(cim_core::quantized_mesh::normals_extension(&oct));
    }
    bytes
}

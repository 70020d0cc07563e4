//! Vector tiles (`/tiles/...`), TileJSON 3.0 and 3D Tiles (`/3dtiles/...`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use cim_core::catalogue::{CatalogueEntry, TILESET_DIR};
use cim_core::pmtiles::{Compression, decompress};
use cim_core::tile::TileId;

use crate::http_cache::{Freshness, Prepared, accepts_encoding, accepts_gzip, respond, respond_empty};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tiles/{file}", get(tilejson))
        .route("/tiles/{layer}/{z}/{x}/{y}", get(mvt_tile))
        .route("/3dtiles/{layer}/{*path}", get(tileset_file))
}

/// Scheme and host the client used, for absolute URLs in documents.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{proto}://{host}")
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

async fn tilejson(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".json").ok_or_else(|| {
        ApiError::NotFound(format!("'{}': TileJSON lives at /tiles/<layer>.json", clip(&file, 64)))
    })?;
    let layer = state.layers.get(name).await?;
    let base = base_url(&headers);
    let prepared = layer.prepared(&format!("tilejson {base}"), || {
        Ok(Prepared::new("application/json", tilejson_doc(&layer.catalogue, &base)))
    })?;
    Ok(prepared.respond(&headers, Freshness::Listing))
}

fn tilejson_doc(c: &CatalogueEntry, base: &str) -> Vec<u8> {
    // TileJSON field descriptions, in the words tippecanoe and MapLibre use.
    // Protected attributes are not in the tiles.
    let fields: serde_json::Map<String, serde_json::Value> = c
        .attributes
        .iter()
        .filter(|a| !c.attribute_rules.iter().any(|r| r.attribute == a.name))
        .map(|a| {
            let kind = match a.kind.as_str() {
                "string" => "String",
                "boolean" => "Boolean",
                _ => "Number",
            };
            (a.name.clone(), serde_json::Value::from(kind))
        })
        .collect();
    let b = c.bounds_wgs84;
    let attribution: Vec<&str> =
        c.sources.iter().map(|s| s.path.rsplit('/').next().unwrap_or_default()).collect();
    serde_json::json!({
        "tilejson": "3.0.0",
        "name": c.id,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", c.id)],
        "minzoom": c.min_zoom,
        "maxzoom": c.max_zoom,
        "bounds": b,
        "center": [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, c.max_zoom.saturating_sub(2).max(c.min_zoom)],
        "vector_layers": [{"id": c.id, "fields": fields, "minzoom": c.min_zoom, "maxzoom": c.max_zoom}],
        "attribution": attribution.join(", "),
    })
    .to_string()
    .into_bytes()
}

fn parse_coord(what: &str, s: &str) -> Result<u32, ApiError> {
    s.parse::<u32>().map_err(|_| {
        ApiError::BadRequest(format!("tile {what} '{}' is not a non-negative integer", clip(s, 20)))
    })
}

async fn mvt_tile(
    State(state): State<AppState>,
    Path((name, z, x, y_file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let y = y_file
        .strip_suffix(".mvt")
        .or_else(|| y_file.strip_suffix(".pbf"))
        .ok_or_else(|| ApiError::NotFound(format!("'{}': tiles end in .mvt", clip(&y_file, 40))))?;
    let (z, x, y) = (parse_coord("z", &z)?, parse_coord("x", &x)?, parse_coord("y", y)?);
    let tile = TileId::new(z, x, y).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let layer = state.layers.get(&name).await?;
    let Some(archive) = &layer.archive else {
        return Err(ApiError::NotFound(format!("layer '{name}' has no vector tiles")));
    };
    let (min_zoom, max_zoom) = (layer.catalogue.min_zoom, layer.catalogue.max_zoom);
    if !(u32::from(min_zoom)..=u32::from(max_zoom)).contains(&z) {
        return Err(ApiError::NotFound(format!(
            "layer '{name}' has vector tiles at zooms {min_zoom} to {max_zoom}, not {z} (clients overzoom {max_zoom})"
        )));
    }
    let Some((bytes, offset)) = archive.tile(tile)? else {
        // Inside the layer's zooms but without data: empty, and as cacheable as a tile.
        let etag = format!("\"{}-empty\"", layer.catalogue.version);
        return Ok(respond_empty(&headers, &etag, Freshness::Content));
    };
    // Identity without hashing: the layer version and the tile's place in the
    // deduplicated archive.
    let etag = format!("\"{}-{offset:x}\"", layer.catalogue.version);
    let content_type = "application/vnd.mapbox-vector-tile";
    let fresh = Freshness::Content;
    match archive.header.tile_compression {
        Compression::Gzip if accepts_gzip(&headers) => {
            Ok(respond(&headers, bytes, content_type, Some("gzip"), Some(&etag), fresh))
        }
        compression if accepts_encoding(&headers, "br") => {
            let cache = crate::http_cache::brotli_tiles();
            let br = match cache.get(&etag) {
                Some(hit) => hit,
                None => {
                    let plain =
                        decompress(&bytes, compression).map_err(|e| ApiError::Internal(e.to_string()))?;
                    cache.get_or_make(&etag, || plain)
                }
            };
            Ok(respond(&headers, br, content_type, Some("br"), Some(&etag), fresh))
        }
        compression => {
            let plain = decompress(&bytes, compression).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(respond(&headers, plain, content_type, None, Some(&etag), fresh))
        }
    }
}

async fn tileset_file(
    State(state): State<AppState>,
    Path((name, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != "." && !part.contains('\\'));
    if !safe {
        return Err(ApiError::BadRequest(format!("bad path '{}'", clip(&path, 100))));
    }
    let layer = state.layers.get(&name).await?;
    if layer.catalogue.tileset.is_none() {
        return Err(ApiError::NotFound(format!("layer '{name}' has no 3D tiles")));
    }
    let file = layer.dir.join(TILESET_DIR).join(&path);
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("glb") => "model/gltf-binary",
        _ => return Err(ApiError::NotFound(format!("no 3D Tiles resource '{}'", clip(&path, 100)))),
    };
    let prepared = layer.prepared(&format!("3dtiles {path}"), || {
        let bytes = std::fs::read(&file)
            .map_err(|_| ApiError::NotFound(format!("no 3D Tiles resource '{}'", clip(&path, 100))))?;
        Ok(Prepared::new(content_type, bytes))
    })?;
    Ok(prepared.respond(&headers, Freshness::Content))
}

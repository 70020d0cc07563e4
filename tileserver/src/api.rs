//! Catalogue, pick and query: the service's own JSON API, plus `/healthz`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::http_cache::{Freshness, Prepared, respond};
use crate::ogc::{MAX_LIMIT, parse_bbox, parse_usize};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/layers", get(layers))
        .route("/api/catalog", get(catalog))
        .route("/api/pick", get(pick))
        .route("/api/query", get(query))
}

async fn layers(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let mut entries = Vec::new();
    for name in state.layers.names() {
        let layer = state.layers.get(&name).await?;
        entries.push(
            serde_json::to_value(layer.catalogue_for_caller())
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    if let Some(live) = state.live.as_ref().filter(|_| state.sensors_visible()) {
        let entry = live.catalogue_entry();
        entries.push(serde_json::to_value(&*entry).map_err(|e| ApiError::Internal(e.to_string()))?);
    }
    Ok(respond(
        &headers,
        Value::Array(entries).to_string().into_bytes(),
        "application/json",
        None,
        None,
        Freshness::Listing,
    ))
}

/// Searches the catalogue the caller may see: `q` (words, all must appear in the
/// id, owner, update cycle, CRS, source files or attribute names), `kind`, `bbox`
/// (intersecting), `classification`, `limit`.
async fn catalog(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let words: Vec<String> =
        params.get("q").map(|q| q.split_whitespace().map(str::to_lowercase).collect()).unwrap_or_default();
    let bbox = params.get("bbox").map(|b| parse_bbox(b)).transpose()?;
    let kind = params.get("kind").map(|k| k.trim().to_lowercase());
    let classification = params
        .get("classification")
        .map(|c| c.parse::<cim_core::catalogue::Classification>().map_err(ApiError::BadRequest))
        .transpose()?;
    let limit = parse_usize(&params, "limit", 100)?.min(MAX_LIMIT);
    let mut matched = Vec::new();
    for name in state.layers.names() {
        let layer = state.layers.get(&name).await?;
        let c = layer.catalogue_for_caller();
        let entry = serde_json::to_value(c).map_err(|e| ApiError::Internal(e.to_string()))?;
        if kind.as_deref().is_some_and(|k| entry["kind"].as_str() != Some(k)) {
            continue;
        }
        if classification.is_some_and(|want| c.classification != want) {
            continue;
        }
        if let Some(b) = bbox {
            let l = c.bounds_wgs84;
            if l[0] > b[2] || l[2] < b[0] || l[1] > b[3] || l[3] < b[1] {
                continue;
            }
        }
        let text = [
            c.id.clone(),
            c.owner.clone().unwrap_or_default(),
            c.update_cycle.clone().unwrap_or_default(),
            c.source_crs.clone(),
            c.sources.iter().map(|s| format!("{} {}", s.path, s.format)).collect::<Vec<_>>().join(" "),
            c.attributes.iter().map(|a| a.name.clone()).collect::<Vec<_>>().join(" "),
        ]
        .join(" ")
        .to_lowercase();
        if words.iter().all(|w| text.contains(w.as_str())) {
            let mut entry = entry;
            entry["versions_kept"] = json!(state.layers.versions(&name));
            matched.push(entry);
        }
    }
    let total = matched.len();
    matched.truncate(limit);
    let doc = json!({"layers": matched, "total": total});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

fn number(
    params: &HashMap<String, String>,
    key: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, ApiError> {
    let raw = params.get(key).ok_or_else(|| ApiError::BadRequest(format!("missing parameter '{key}'")))?;
    let v: f64 = raw.parse().map_err(|_| {
        ApiError::BadRequest(format!("{key} '{}' is not a number", raw.chars().take(30).collect::<String>()))
    })?;
    if !range.contains(&v) {
        return Err(ApiError::BadRequest(format!("{key} {v} is outside {}..{}", range.start(), range.end())));
    }
    Ok(v)
}

async fn selected_layers(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<Vec<String>, ApiError> {
    match params.get("layer") {
        Some(l) => {
            state.layers.get(l).await?;
            Ok(vec![l.clone()])
        }
        None => Ok(state.layers.names()),
    }
}

/// Features whose geometry contains `lon,lat`, across layers (or one `layer`).
async fn pick(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lon = number(&params, "lon", -180.0..=180.0)?;
    let lat = number(&params, "lat", -90.0..=90.0)?;
    let mut hits = Vec::new();
    for name in selected_layers(&state, &params).await? {
        let layer = state.layers.get(&name).await?;
        for i in layer.pick(lon, lat)? {
            hits.push(tagged(&layer, i, &name)?);
        }
    }
    Ok(geojson(&headers, &json!({"type": "FeatureCollection", "features": hits})))
}

fn geojson(headers: &HeaderMap, doc: &Value) -> Response {
    respond(headers, doc.to_string().into_bytes(), "application/geo+json", None, None, Freshness::Content)
}

/// A stored feature with the layer it came from, for answers spanning layers.
fn tagged(layer: &crate::layers::Layer, index: usize, name: &str) -> Result<Value, ApiError> {
    let mut f = layer.feature(index)?;
    f["layer"] = Value::from(name);
    Ok(f)
}

/// Features intersecting `bbox` in `layer` (or every layer, in name order), a page
/// of `limit` from `offset` with a `next` link until every match was returned.
/// Searched, built and compressed in the bounded pool ([`crate::heavy`]).
async fn query(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bbox = parse_bbox(
        params.get("bbox").ok_or_else(|| ApiError::BadRequest("missing parameter 'bbox'".into()))?,
    )?;
    let limit = parse_usize(&params, "limit", 1000)?;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let offset = parse_usize(&params, "offset", 0)?;
    let mut layers = Vec::new();
    for name in selected_layers(&state, &params).await? {
        let layer = state.layers.get(&name).await?;
        layers.push((name, layer));
    }
    let mut link = format!(
        "{}/api/query?bbox={},{},{},{}&limit={limit}",
        crate::tiles::base_url(&headers),
        bbox[0],
        bbox[1],
        bbox[2],
        bbox[3]
    );
    if let Some(l) = params.get("layer") {
        link.push_str(&format!("&layer={l}"));
    }
    let answer = crate::heavy::run(move || {
        let mut hits = Vec::new();
        let mut matched = 0usize;
        for (name, layer) in &layers {
            let found = layer.query(bbox)?;
            // This layer's matches come after `matched` others in the whole answer.
            let skip = offset.saturating_sub(matched);
            for &i in found.iter().skip(skip).take(limit - hits.len()) {
                hits.push(tagged(layer, i, name)?);
            }
            matched += found.len();
        }
        let returned = hits.len();
        let more = offset + returned < matched;
        let mut links = vec![json!({"href": format!("{link}&offset={offset}"), "rel": "self"})];
        if more {
            links.push(json!({"href": format!("{link}&offset={}", offset + returned), "rel": "next"}));
        }
        let doc = json!({"type": "FeatureCollection", "numberMatched": matched, "numberReturned": returned,
                         "truncated": more, "features": hits, "links": links});
        Ok::<_, ApiError>(Prepared::new("application/geo+json", doc.to_string().into_bytes()))
    })
    .await??;
    Ok(answer.respond(&headers, Freshness::Content))
}

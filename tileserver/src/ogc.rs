//! OGC API - Features - Part 1: Core, with GeoJSON.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::http_cache::{Freshness, respond};
use cim_core::catalogue::{CatalogueEntry, LayerContent, SENSORS_LAYER};

use crate::live::{self, live_of};
use crate::tiles::base_url;
use crate::{ApiError, AppState};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 10_000;
const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
const GEOJSON: &str = "application/geo+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/conformance", get(conformance))
        .route("/collections", get(collections))
        .route("/collections/{id}", get(collection))
        .route("/collections/{id}/items", get(items))
        .route("/collections/{id}/items/{fid}", get(item))
}

fn json_response(headers: &HeaderMap, v: &Value, content_type: &'static str) -> Response {
    respond(headers, v.to_string().into_bytes(), content_type, None, None, Freshness::Listing)
}

/// The landing page: JSON for API clients, the browser viewer for browsers
/// (`f=json|html` overrides the `Accept` header).
async fn landing(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if crate::web::wants_html(&headers, query.get("f").map(String::as_str))? {
        match &state.web {
            Some(bundle) => {
                return bundle.respond(crate::web::INDEX, &headers).ok_or_else(crate::web::not_built);
            }
            // A browser still gets the API's entry point; only an explicit f=html fails.
            None if query.contains_key("f") => return Err(crate::web::not_built()),
            None => {}
        }
    }
    let base = base_url(&headers);
    let mut doc = json!({
        "title": "CIM spatial service",
        "description": "City Information Model layers: vector tiles, 3D Tiles and OGC API - Features",
        "links": [
            {"href": format!("{base}/"), "rel": "self", "type": "application/json", "title": "this document"},
            {"href": format!("{base}/conformance"), "rel": "conformance", "type": "application/json", "title": "conformance classes"},
            {"href": format!("{base}/collections"), "rel": "data", "type": "application/json", "title": "collections"},
        ]
    });
    if state.web.is_some()
        && let Some(links) = doc["links"].as_array_mut()
    {
        links.push(json!({"href": format!("{base}/?f=html"), "rel": "alternate", "type": "text/html", "title": "3D city viewer"}));
    }
    Ok(json_response(&headers, &doc, "application/json"))
}

async fn conformance(headers: HeaderMap) -> Response {
    let doc = json!({"conformsTo": [
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    ]});
    json_response(&headers, &doc, "application/json")
}

fn collection_doc(base: &str, c: &CatalogueEntry) -> Value {
    let description = match &c.content {
        LayerContent::Sensors => {
            format!("{} live sensors with their latest reading and state", c.feature_count)
        }
        LayerContent::Bim(_) => format!(
            "BIM model: {} elements from {}",
            c.feature_count,
            c.sources.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ")
        ),
        LayerContent::PointCloud(cloud) => format!(
            "point cloud: {} points from {} (3D Tiles at /3dtiles/{}/tileset.json)",
            cloud.points,
            c.sources.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", "),
            c.id
        ),
        LayerContent::Terrain(_) => format!(
            "terrain from {} (3D Tiles at /3dtiles/{}/tileset.json, heights at /api/elevation)",
            c.sources.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", "),
            c.id
        ),
        LayerContent::CityModel(_) | LayerContent::Vector => format!(
            "{} features from {}",
            c.feature_count,
            c.sources.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    json!({
        "id": c.id,
        "title": c.id,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [c.bounds_wgs84], "crs": CRS84}},
        "links": [
            {"href": format!("{base}/collections/{}", c.id), "rel": "self", "type": "application/json"},
            {"href": format!("{base}/collections/{}/items", c.id), "rel": "items", "type": GEOJSON},
        ]
    })
}

async fn collections(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let base = base_url(&headers);
    let mut docs = Vec::new();
    for name in state.layers.names() {
        docs.push(collection_doc(&base, state.layers.get(&name).await?.catalogue_for_caller()));
    }
    if let Some(live) = state.live.as_ref().filter(|_| state.sensors_visible()) {
        docs.push(collection_doc(&base, &live.catalogue_entry()));
    }
    let doc = json!({
        "links": [{"href": format!("{base}/collections"), "rel": "self", "type": "application/json"}],
        "collections": docs,
    });
    Ok(json_response(&headers, &doc, "application/json"))
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let entry = if id == SENSORS_LAYER {
        live_of(&state)?.catalogue_entry().as_ref().clone()
    } else {
        state.layers.get(&id).await?.catalogue_for_caller().clone()
    };
    Ok(json_response(&headers, &collection_doc(&base_url(&headers), &entry), "application/json"))
}

/// `minx,miny,maxx,maxy` in CRS84; 6-value boxes take their horizontal part.
pub fn parse_bbox(s: &str) -> Result<[f64; 4], ApiError> {
    let bad =
        |why: &str| ApiError::BadRequest(format!("bbox '{}': {why}", s.chars().take(80).collect::<String>()));
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("not numbers"))?;
    let b = match v.as_slice() {
        [a, b, c, d] => [*a, *b, *c, *d],
        [a, b, _, d, e, _] => [*a, *b, *d, *e],
        _ => return Err(bad("needs 4 numbers: minx,miny,maxx,maxy")),
    };
    if b.iter().any(|x| !x.is_finite()) || b[0] > b[2] || b[1] > b[3] {
        return Err(bad("min must not exceed max"));
    }
    if b[0] < -180.0 || b[2] > 180.0 || b[1] < -90.0 || b[3] > 90.0 {
        return Err(bad("outside -180,-90,180,90"));
    }
    Ok(b)
}

pub fn parse_usize(params: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, ApiError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!(
                "{key} '{}' is not a non-negative integer",
                v.chars().take(20).collect::<String>()
            ))
        }),
    }
}

async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = parse_usize(&params, "limit", DEFAULT_LIMIT)?;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let offset = parse_usize(&params, "offset", 0)?;
    let bbox = params.get("bbox").map(|b| parse_bbox(b)).transpose()?;
    let (matched, page): (usize, Vec<Value>) = if id == SENSORS_LAYER {
        // Live: read now, never cached as content (Freshness::Listing below).
        live::features::query(live_of(&state)?, bbox, params.get("kind").map(String::as_str), offset, limit)
    } else {
        let layer = state.layers.get(&id).await?;
        // A box over a city is heavy: searched in the bounded pool.
        crate::heavy::run(move || match bbox {
            Some(b) => {
                let matched = layer.query(b)?;
                let page = matched.iter().skip(offset).take(limit).map(|&i| layer.feature(i));
                Ok::<_, ApiError>((matched.len(), page.collect::<Result<_, _>>()?))
            }
            None => {
                let n = layer.feature_count();
                Ok((n, (offset.min(n)..n).take(limit).map(|i| layer.feature(i)).collect::<Result<_, _>>()?))
            }
        })
        .await??
    };
    let base = base_url(&headers);
    let mut query: Vec<String> = vec![format!("limit={limit}")];
    if let Some(b) = params.get("bbox") {
        query.push(format!("bbox={b}"));
    }
    if let Some(k) = params.get("kind").filter(|_| id == SENSORS_LAYER) {
        query.push(format!("kind={k}"));
    }
    let href = |off: usize| format!("{base}/collections/{id}/items?{}&offset={off}", query.join("&"));
    let mut links = vec![
        json!({"href": href(offset), "rel": "self", "type": GEOJSON}),
        json!({"href": format!("{base}/collections/{id}"), "rel": "collection", "type": "application/json"}),
    ];
    if offset + page.len() < matched {
        links.push(json!({"href": href(offset + page.len()), "rel": "next", "type": GEOJSON}));
    }
    if offset > 0 {
        links.push(json!({"href": href(offset.saturating_sub(limit)), "rel": "prev", "type": GEOJSON}));
    }
    let doc = json!({
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": page.len(),
        "features": page,
        "links": links,
    });
    Ok(json_response(&headers, &doc, GEOJSON))
}

async fn item(
    State(state): State<AppState>,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let missing =
        || ApiError::NotFound(format!("no feature '{}' in '{id}'", fid.chars().take(30).collect::<String>()));
    let mut doc = if id == SENSORS_LAYER {
        let live = live_of(&state)?;
        let sensor = live.sensor(&fid).ok_or_else(missing)?;
        live::features::feature(&sensor, live.current().get(&fid))
    } else {
        let layer = state.layers.get(&id).await?;
        let fid = fid.parse::<u64>().map_err(|_| missing())?;
        let index = layer.find_fid(fid)?.ok_or_else(missing)?;
        layer.feature(index)?
    };
    let base = base_url(&headers);
    doc["links"] = json!([
        {"href": format!("{base}/collections/{id}/items/{fid}"), "rel": "self", "type": GEOJSON},
        {"href": format!("{base}/collections/{id}"), "rel": "collection", "type": "application/json"},
    ]);
    Ok(json_response(&headers, &doc, GEOJSON))
}

//! BIM element lookups: `GET /api/bim/{layer}/elements/{GlobalId}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use cim_core::catalogue::LayerKind;
use serde_json::{Value, json};

use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/bim/{layer}/elements/{global_id}", get(element))
}

/// IFC GlobalIds are 22 characters of a base-64 alphabet; older tools wrote
/// 32-digit hex GUIDs.
fn valid_global_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-')
}

/// One element's IFC class, name, storey, property sets and model bounds.
async fn element(
    State(state): State<AppState>,
    Path((layer_name, global_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !valid_global_id(&global_id) {
        return Err(ApiError::BadRequest(
            "GlobalId must be 1 to 64 characters of 0-9, A-Z, a-z, '_', '$' and '-'".into(),
        ));
    }
    let layer = state.layers.get(&layer_name).await?;
    if layer.catalogue.kind() != LayerKind::Bim {
        return Err(ApiError::NotFound(format!("layer '{layer_name}' is not a BIM layer")));
    }
    let index = layer
        .global_id(&global_id)
        .ok_or_else(|| ApiError::NotFound(format!("no element {global_id} in layer '{layer_name}'")))?;
    let feature = &layer.feature(index)?;
    let mut doc = feature["properties"].clone();
    if let Value::Object(map) = &mut doc {
        map.insert("layer".into(), Value::from(layer_name.as_str()));
        map.insert("fid".into(), feature["id"].clone());
        map.insert("position".into(), feature["geometry"]["coordinates"].clone());
        map.insert(
            "links".into(),
            json!([{
                "rel": "alternate",
                "type": "application/geo+json",
                "href": format!("/collections/{layer_name}/items/{}", feature["id"]),
            }]),
        );
    }
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_are_checked_before_any_lookup() {
        assert!(valid_global_id("2O2Fr$t4X7Zf8NOew3FLOH"));
        assert!(valid_global_id("1c4b2b34-8a5c-4f5e-9a2e-0b8d2f9c6a11"));
        for bad in ["", "../../etc", "a b", "x%2F", &"A".repeat(65)] {
            assert!(!valid_global_id(bad), "{bad}");
        }
    }
}

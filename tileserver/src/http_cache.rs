//! Strong ETags, conditional GETs and cache headers for every payload.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

/// How long clients may reuse a response without asking again.
#[derive(Debug, Clone, Copy)]
pub enum Freshness {
    /// Tiles and layer content: revalidate after a minute (re-ingests replace them).
    Content,
    /// Catalogue-like listings.
    Listing,
}

pub fn etag_of(bytes: &[u8], variant: &str) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}{variant}\"", hex::encode(&digest[..16]))
}

fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// A 200 with the body, or a 304 when the client already holds this version.
pub fn respond(
    request: &HeaderMap,
    bytes: Vec<u8>,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
    freshness: Freshness,
) -> Response {
    let etag = etag_of(
        &bytes,
        content_encoding.map_or("", |e| if e == "gzip" { "-gz" } else { "-enc" }),
    );
    let cache = match freshness {
        Freshness::Content => "public, max-age=60, stale-while-revalidate=300",
        Freshness::Listing => "public, max-age=5",
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding");
    if matches(request, &etag) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).unwrap_or_default();
    }
    builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(enc) = content_encoding {
        builder = builder.header(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    builder.body(Body::from(bytes)).unwrap_or_default()
}

/// True when the request says the client takes gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let rejected = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !rejected
        })
}

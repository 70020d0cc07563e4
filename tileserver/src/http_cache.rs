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
    /// Files whose names do not change with their content (the viewer bundle): ask
    /// every time, a 304 when unchanged.
    Revalidate,
}

pub fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The ETag of another encoding of the same representation.
fn variant(etag: &str, encoding: Option<&str>) -> String {
    match encoding {
        None => etag.to_owned(),
        Some(enc) => format!("{}-{enc}\"", etag.trim_end_matches('"')),
    }
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
/// `etag` identifies the identity encoding; `None` hashes the body.
pub fn respond(
    request: &HeaderMap,
    bytes: impl Into<bytes::Bytes>,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
    etag: Option<&str>,
    freshness: Freshness,
) -> Response {
    let bytes: bytes::Bytes = bytes.into();
    let base = etag.map_or_else(|| etag_of(&bytes), str::to_owned);
    let etag = variant(&base, content_encoding);
    let cache = match freshness {
        Freshness::Content => "public, max-age=60, stale-while-revalidate=300",
        Freshness::Listing => "public, max-age=5",
        Freshness::Revalidate => "no-cache",
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding");
    if matches(request, &etag) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).unwrap_or_default();
    }
    builder = builder.status(StatusCode::OK).header(header::CONTENT_TYPE, content_type);
    if let Some(enc) = content_encoding {
        builder = builder.header(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    builder.body(Body::from(bytes)).unwrap_or_default()
}

/// A response body prepared once (hashed, gzipped) and served many times.
pub struct Prepared {
    content_type: &'static str,
    identity: Vec<u8>,
    gzip: Option<Vec<u8>>,
    etag: String,
}

impl Prepared {
    pub fn new(content_type: &'static str, identity: Vec<u8>) -> Self {
        let gzip = (identity.len() > 512)
            .then(|| cim_core::pmtiles::gzip(&identity))
            .filter(|g| g.len() < identity.len());
        Self { content_type, etag: etag_of(&identity), identity, gzip }
    }

    pub fn respond(&self, request: &HeaderMap, freshness: Freshness) -> Response {
        match &self.gzip {
            Some(gz) if accepts_gzip(request) => {
                respond(request, gz.clone(), self.content_type, Some("gzip"), Some(&self.etag), freshness)
            }
            _ => {
                respond(request, self.identity.clone(), self.content_type, None, Some(&self.etag), freshness)
            }
        }
    }
}

/// True when the request says the client takes gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    accepts_encoding(headers, "gzip")
}

/// True when the request's `Accept-Encoding` takes `encoding` (named or `*`, not `q=0`).
pub fn accepts_encoding(headers: &HeaderMap, encoding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let rejected = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case(encoding) || name == "*") && !rejected
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation_honours_q_zero() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).expect("header"));
            m
        };
        assert!(accepts_gzip(&h("br, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0, br")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert_eq!(variant("\"abc\"", Some("gzip")), "\"abc-gzip\"");
    }
}

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

impl Freshness {
    fn cache_control(self) -> &'static str {
        match self {
            Freshness::Content => "public, max-age=60, stale-while-revalidate=300",
            Freshness::Listing => "public, max-age=5",
            Freshness::Revalidate => "no-cache",
        }
    }
}

/// A 204 (no content, as martin and tippecanoe's servers answer an empty tile),
/// cacheable like the content around it, or a 304 when the client holds it.
pub fn respond_empty(request: &HeaderMap, etag: &str, freshness: Freshness) -> Response {
    let status = if matches(request, etag, None) { StatusCode::NOT_MODIFIED } else { StatusCode::NO_CONTENT };
    Response::builder()
        .status(status)
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, freshness.cache_control())
        .header(header::VARY, "Accept-Encoding")
        .body(Body::empty())
        .unwrap_or_default()
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

/// Whether the client holds a current representation: the one about to be sent
/// (`base` in `encoding`), the identity one, or another coding of it that the
/// request still accepts. A tag of a coding the client no longer takes never
/// matches, so a 304 never hands a client a body in a coding it refuses.
fn matches(headers: &HeaderMap, base: &str, encoding: Option<&str>) -> bool {
    let sent = variant(base, encoding);
    let held = |t: &str| {
        t == sent
            || t == base
            || ["gzip", "br"]
                .iter()
                .any(|enc| t == variant(base, Some(enc)) && accepts_encoding(headers, enc))
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || held(t.strip_prefix("W/").unwrap_or(t)))
}

/// Gives a body that the compression layer encoded the ETag of that coding (RFC
/// 9110 §8.8.3: strong validators differ per content coding).
pub fn tag_encoding(response: &mut Response) {
    let headers = response.headers_mut();
    let Some(encoding) =
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_owned)
    else {
        return;
    };
    let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else { return };
    if etag.ends_with(&format!("-{encoding}\"")) {
        return;
    }
    if let Ok(tagged) = HeaderValue::from_str(&variant(etag, Some(&encoding))) {
        headers.insert(header::ETAG, tagged);
    }
}

/// Folds every `Vary` line (the handlers', the compression layer's, CORS's) into
/// one that also names `Authorization`: nginx, for one, keeps only the last line it
/// reads, and an answer that depends on the caller must vary by the credential.
pub fn one_vary(response: &mut Response) {
    let headers = response.headers_mut();
    let mut names: Vec<String> = Vec::new();
    for value in headers.get_all(header::VARY).iter().filter_map(|v| v.to_str().ok()) {
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.to_owned());
            }
        }
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case("authorization")) {
        names.push("Authorization".into());
    }
    if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(header::VARY, value);
    }
}

/// A body brotli-encoded here, marking it done for the compression layer.
pub fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
    {
        // Quality 5: near gzip's speed, smaller; paid once per cached variant.
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        let _ = std::io::Write::write_all(&mut w, bytes);
    }
    out
}

/// Values kept under a byte budget, the oldest out first; one over an eighth of the
/// budget is handed back but never kept.
pub struct BudgetCache<V> {
    budget: usize,
    inner: std::sync::Mutex<Budgeted<V>>,
}

struct Budgeted<V> {
    map: std::collections::HashMap<String, (V, usize)>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

impl<V: Clone> BudgetCache<V> {
    pub fn new(budget: usize) -> Self {
        let inner = Budgeted { map: Default::default(), order: Default::default(), bytes: 0 };
        Self { budget, inner: std::sync::Mutex::new(inner) }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.inner.lock().ok().and_then(|m| m.map.get(key).map(|(v, _)| v.clone()))
    }

    /// Keeps `value` of `size` bytes under `key` (a key already held keeps its value).
    pub fn insert(&self, key: &str, value: V, size: usize) {
        if size > self.budget / 8 {
            return;
        }
        let Ok(mut guard) = self.inner.lock() else { return };
        let cache = &mut *guard;
        if cache.map.contains_key(key) {
            return;
        }
        cache.map.insert(key.to_owned(), (value, size));
        cache.order.push_back(key.to_owned());
        cache.bytes += size;
        while cache.bytes > self.budget {
            let Some(old) = cache.order.pop_front() else { break };
            if let Some((_, gone)) = cache.map.remove(&old) {
                cache.bytes -= gone;
            }
        }
    }

    /// Bytes held and entries.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        self.inner.lock().map_or((0, 0), |m| (m.bytes, m.map.len()))
    }
}

/// Brotli variants of tiles by ETag, made on first demand.
pub struct BrotliCache(BudgetCache<bytes::Bytes>);

impl BrotliCache {
    pub fn new(budget: usize) -> Self {
        Self(BudgetCache::new(budget))
    }

    pub fn get(&self, etag: &str) -> Option<bytes::Bytes> {
        self.0.get(etag)
    }

    /// The br variant of the representation tagged `etag`, made by `make` (the
    /// identity bytes) on a miss.
    pub fn get_or_make(&self, etag: &str, make: impl FnOnce() -> Vec<u8>) -> bytes::Bytes {
        if let Some(hit) = self.get(etag) {
            return hit;
        }
        let encoded = bytes::Bytes::from(brotli(&make()));
        self.0.insert(etag, encoded.clone(), encoded.len());
        encoded
    }
}

/// The process's cache of brotli tile variants (64 MiB).
pub fn brotli_tiles() -> &'static BrotliCache {
    static CACHE: std::sync::OnceLock<BrotliCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| BrotliCache::new(64 << 20))
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
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, freshness.cache_control())
        .header(header::VARY, "Accept-Encoding");
    if matches(request, &base, content_encoding) {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::empty()).unwrap_or_default();
    }
    builder = builder.status(StatusCode::OK).header(header::CONTENT_TYPE, content_type);
    if let Some(enc) = content_encoding {
        builder = builder.header(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    builder.body(Body::from(bytes)).unwrap_or_default()
}

/// A response body prepared once (hashed, gzipped; brotli on first demand) and
/// served many times.
pub struct Prepared {
    content_type: &'static str,
    identity: Vec<u8>,
    gzip: Option<Vec<u8>>,
    br: std::sync::OnceLock<Vec<u8>>,
    etag: String,
}

impl Prepared {
    pub fn new(content_type: &'static str, identity: Vec<u8>) -> Self {
        let gzip = (identity.len() > 512)
            .then(|| cim_core::pmtiles::gzip(&identity))
            .filter(|g| g.len() < identity.len());
        Self { content_type, etag: etag_of(&identity), identity, gzip, br: std::sync::OnceLock::new() }
    }

    /// What it holds in memory: the identity body and the gzip one (a brotli one is
    /// made only for the rare client that refuses gzip).
    pub fn bytes(&self) -> usize {
        self.identity.len() + self.gzip.as_ref().map_or(0, Vec::len)
    }

    pub fn respond(&self, request: &HeaderMap, freshness: Freshness) -> Response {
        match &self.gzip {
            Some(_) if !accepts_gzip(request) && accepts_encoding(request, "br") => {
                let br = self.br.get_or_init(|| brotli(&self.identity));
                respond(request, br.clone(), self.content_type, Some("br"), Some(&self.etag), freshness)
            }
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

    #[test]
    fn a_304_never_crosses_into_a_coding_the_client_refuses() {
        let h = |accept: &str, held: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(accept).expect("header"));
            m.insert(header::IF_NONE_MATCH, HeaderValue::from_str(held).expect("header"));
            m
        };
        let base = "\"v1-2a\"";
        assert!(matches(&h("br", "\"v1-2a-br\""), base, Some("br")));
        assert!(matches(&h("br, gzip", "\"v1-2a-br\""), base, Some("gzip")), "a held br variant is current");
        assert!(!matches(&h("identity", "\"v1-2a-br\""), base, None), "br refused now");
        assert!(!matches(&h("gzip", "\"v1-2a-br\""), base, Some("gzip")));
        assert!(matches(&h("gzip", "\"v1-2a\""), base, Some("gzip")));
        assert!(!matches(&h("br", "\"v0-2a-br\""), base, Some("br")));
        let mut r = Response::builder()
            .header(header::ETAG, base)
            .header(header::CONTENT_ENCODING, "br")
            .body(Body::empty())
            .expect("response");
        tag_encoding(&mut r);
        tag_encoding(&mut r);
        assert_eq!(r.headers()[header::ETAG], "\"v1-2a-br\"");
    }

    #[test]
    fn the_brotli_cache_keeps_to_its_budget() {
        let cache = BrotliCache::new(8192);
        let mut state = 7u64;
        let noise = |n: usize, state: &mut u64| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    *state ^= *state << 13;
                    *state ^= *state >> 7;
                    *state ^= *state << 17;
                    *state as u8
                })
                .collect()
        };
        for i in 0..40 {
            let body = noise(800, &mut state);
            let br = cache.get_or_make(&format!("\"t{i}\""), || body.clone());
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut brotli_decompressor::Decompressor::new(&br[..], 4096), &mut back)
                .expect("decodes");
            assert_eq!(back, body);
        }
        let (bytes, entries) = cache.0.held();
        assert!(bytes <= 8192 && entries > 0, "{bytes} bytes in {entries}");
    }

    #[test]
    fn a_budget_cache_drops_the_oldest_and_never_keeps_a_giant() {
        let cache = BudgetCache::new(800);
        for i in 0..10 {
            cache.insert(&format!("k{i}"), i, 100);
        }
        assert_eq!(cache.held(), (800, 8));
        assert_eq!(cache.get("k1"), None, "the oldest went first");
        assert_eq!(cache.get("k2"), Some(2));
        assert_eq!(cache.get("k9"), Some(9));
        cache.insert("big", 99, 101);
        assert_eq!(cache.get("big"), None, "over an eighth of the budget");
        cache.insert("k9", 42, 100);
        assert_eq!((cache.get("k9"), cache.held()), (Some(9), (800, 8)), "a held key keeps its value");
    }
}

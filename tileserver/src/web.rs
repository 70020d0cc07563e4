//! The browser viewer: `scripts/build-web.sh`'s bundle, its page at `/` (for clients
//! that ask for HTML) and its script and WebAssembly under `/viewer/`. The bundle is
//! read into memory at start with its precompressed variants, so a request is a
//! lookup and a rebuild on disk never serves a half-written file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;

use crate::http_cache::{Freshness, accepts_encoding, etag_of, respond};
use crate::{ApiError, AppState};

/// The page; its script and module live under `/viewer/`.
pub const INDEX: &str = "index.html";
/// What the bundle holds, with each file's media type and whether it must be there.
const FILES: [(&str, &str, bool); 8] = [
    (INDEX, "text/html; charset=utf-8", true),
    // Two builds of the viewer (bevy picks its renderer when compiled): the page
    // loads the WebGPU one where the browser has an adapter, WebGL2 otherwise.
    ("cim_viewer.js", "text/javascript; charset=utf-8", true),
    // Browsers compile `application/wasm` while it downloads (streaming instantiation).
    ("cim_viewer_bg.wasm", "application/wasm", true),
    ("cim_viewer_webgpu.js", "text/javascript; charset=utf-8", true),
    ("cim_viewer_webgpu_bg.wasm", "application/wasm", true),
    // Runs the page's module again in Web Workers, which decode tiles off the page's
    // thread (viewer/src/render/platform/web.rs).
    ("decode-worker.js", "text/javascript; charset=utf-8", true),
    // The UI's fonts for non-ASCII and CJK text, fetched only when some text needs
    // them (viewer/src/render/fonts.rs). A bundle without them still serves; its
    // viewer reports the missing font.
    ("ui-sans.ttf", "font/ttf", false),
    ("ui-cjk.ttc", "font/collection", false),
];

#[derive(Debug, thiserror::Error)]
pub enum WebBundleError {
    #[error("{path}: {source} (build the browser viewer with scripts/build-web.sh)")]
    Read { path: PathBuf, source: std::io::Error },
}

struct WebFile {
    content_type: &'static str,
    identity: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
    etag: String,
}

/// The built viewer, ready to serve.
pub struct WebBundle {
    files: HashMap<&'static str, WebFile>,
}

impl WebBundle {
    /// Reads the bundle in `dir`. `NAME.gz` and `NAME.br` are served where the client
    /// takes them, but only if they decode to `NAME` byte for byte: a rebuild that
    /// stopped half-way leaves stale variants, and those are dropped with a warning.
    pub fn load(dir: &Path) -> Result<Self, WebBundleError> {
        let read =
            |path: PathBuf| std::fs::read(&path).map_err(|source| WebBundleError::Read { path, source });
        let mut files = HashMap::new();
        for (name, content_type, required) in FILES {
            if !required && !dir.join(name).is_file() {
                tracing::warn!("{}: not in the web bundle; not served", dir.join(name).display());
                continue;
            }
            let identity = read(dir.join(name))?;
            let variant = |suffix: &str, decode: fn(&[u8]) -> std::io::Result<Vec<u8>>| {
                let path = dir.join(format!("{name}.{suffix}"));
                let bytes = std::fs::read(&path).ok()?;
                if decode(&bytes).ok().as_deref() == Some(&identity[..]) {
                    Some(Bytes::from(bytes))
                } else {
                    tracing::warn!("{}: does not decode to {name}; not served", path.display());
                    None
                }
            };
            let file = WebFile {
                content_type,
                etag: etag_of(&identity),
                gzip: variant("gz", gunzip),
                brotli: variant("br", unbrotli),
                identity: Bytes::from(identity),
            };
            files.insert(name, file);
        }
        Ok(Self { files })
    }

    /// `name` in the encoding the request prefers: brotli, then gzip, then none.
    pub fn respond(&self, name: &str, request: &HeaderMap) -> Option<Response> {
        let file = self.files.get(name)?;
        let (body, encoding) = match (&file.brotli, &file.gzip) {
            (Some(br), _) if accepts_encoding(request, "br") => (br.clone(), Some("br")),
            (_, Some(gz)) if accepts_encoding(request, "gzip") => (gz.clone(), Some("gzip")),
            _ => (file.identity.clone(), None),
        };
        // Names are not content-hashed: revalidate every time (a 304 when unchanged).
        Some(respond(request, body, file.content_type, encoding, Some(&file.etag), Freshness::Revalidate))
    }
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)?;
    Ok(out)
}

fn unbrotli(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut brotli_decompressor::Decompressor::new(bytes, 1 << 16), &mut out)?;
    Ok(out)
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/viewer/{file}", get(asset))
}

async fn asset(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bundle = state.web.as_deref().ok_or_else(not_built)?;
    match file.as_str() {
        // The page belongs at `/`, where its relative links resolve.
        INDEX => Err(ApiError::NotFound("the viewer's page is at /".into())),
        _ => bundle
            .respond(&file, &headers)
            .ok_or_else(|| ApiError::NotFound(format!("no viewer file '{file}'"))),
    }
}

pub fn not_built() -> ApiError {
    ApiError::NotFound("this server has no browser viewer: build it with scripts/build-web.sh and start cim-server with --web DIR".into())
}

/// True when the landing page should be the viewer: `f=html`, or an `Accept` header
/// that ranks `text/html` above JSON (browsers do; curl and OGC clients do not).
pub fn wants_html(request: &HeaderMap, f: Option<&str>) -> Result<bool, ApiError> {
    match f {
        Some("html") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) => return Err(ApiError::BadRequest(format!("f: '{other}' is not json or html"))),
        None => {}
    }
    let mut html = 0.0f32;
    let mut json = 0.0f32;
    let accept = request.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
    for range in accept.flat_map(|v| v.split(',')) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" => html = html.max(q),
            "application/json" | "application/geo+json" => json = json.max(q),
            _ => {}
        }
    }
    Ok(html > json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().expect("header"));
        h
    }

    #[test]
    fn browsers_get_the_page_and_api_clients_json() {
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(wants_html(&accept(chromium), None).expect("ok"));
        assert!(!wants_html(&accept("*/*"), None).expect("ok"));
        assert!(!wants_html(&HeaderMap::new(), None).expect("ok"));
        assert!(!wants_html(&accept("application/json, text/html;q=0.5"), None).expect("ok"));
        assert!(!wants_html(&accept(chromium), Some("json")).expect("ok"));
        assert!(wants_html(&accept("*/*"), Some("html")).expect("ok"));
        assert!(wants_html(&HeaderMap::new(), Some("xml")).is_err());
    }
}

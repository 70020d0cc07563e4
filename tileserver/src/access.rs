//! Who is asking, and what they may see: API tokens with a role and a clearance.
//!
//! Tokens live in a JSON file (`cim-server --tokens FILE`) as SHA-256 digests, never
//! in clear: `[{"name": "ops-wall", "sha256": "<hex>", "role": "viewer",
//! "clearance": "internal", "expires": "2027-01-01T00:00:00Z"}]`. A request names
//! its token as `Authorization: Bearer <token>` (or `?access_token=` where a client
//! cannot set headers, such as a browser's WebSocket). Its digest is compared with
//! every stored one in constant time.
//!
//! A request without a token is public: it sees public layers only, whether or not
//! a token file is configured. A token that is unknown or expired is refused (401),
//! never quietly downgraded. Layers above a request's clearance do not exist for it
//! (404, the same answer as a missing layer), everywhere: listings, tiles, 3D Tiles,
//! features, pick, query, terrain. With a token file, writes (sensor registry,
//! readings) need the `ingest` or `admin` role; without one the server is in
//! development mode and writes are open, which it logs at start.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cim_core::catalogue::Classification;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Planner,
    Ingest,
    Admin,
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub clearance: Classification,
}

impl Principal {
    pub fn public() -> Self {
        Self { name: "public".into(), role: Role::Viewer, clearance: Classification::Public }
    }

    pub fn may_see(&self, classification: Classification) -> bool {
        classification <= self.clearance
    }
}

tokio::task_local! {
    static PRINCIPAL: Principal;
    /// The highest classification of what the request was answered from.
    static SERVED: std::cell::Cell<Classification>;
}

/// Notes that the current request's answer draws on content of `classification`
/// (for its cache headers: [`cache_for_caller`]).
pub fn note_served(classification: Classification) {
    let _ = SERVED.try_with(|s| s.set(s.get().max(classification)));
}

/// Runs `f` as `principal`: work handed to another thread keeps its caller.
pub fn as_caller<T>(principal: Principal, f: impl FnOnce() -> T) -> T {
    PRINCIPAL.sync_scope(principal, f)
}

/// The caller of the request being handled (public outside a request).
pub fn current() -> Principal {
    PRINCIPAL.try_with(Clone::clone).unwrap_or_else(|_| Principal::public())
}

#[derive(Debug, Deserialize)]
struct StoredToken {
    name: String,
    sha256: String,
    role: Role,
    clearance: Classification,
    #[serde(default)]
    expires: Option<String>,
}

struct Token {
    principal: Principal,
    digest: [u8; 32],
    /// Unix milliseconds.
    expires: Option<i64>,
}

/// The configured tokens.
pub struct Tokens {
    tokens: Vec<Token>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let invalid = |reason: String| TokenFileError::Invalid { path: path.display().to_string(), reason };
        let text = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        let stored: Vec<StoredToken> = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        let mut tokens = Vec::with_capacity(stored.len());
        for (k, t) in stored.into_iter().enumerate() {
            let digest: [u8; 32] = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| invalid(format!("token {k} ({}): sha256 is not 64 hex digits", t.name)))?;
            let expires = match &t.expires {
                Some(e) => Some(
                    cim_core::sensors::parse_rfc3339_ms(e)
                        .map_err(|err| invalid(format!("token {k} ({}): expires '{e}': {err}", t.name)))?,
                ),
                None => None,
            };
            tokens.push(Token {
                principal: Principal { name: t.name, role: t.role, clearance: t.clearance },
                digest,
                expires,
            });
        }
        Ok(Self { tokens })
    }

    /// The principal of a presented token; every stored digest is compared, each in
    /// constant time, so timing tells nothing about which or how much matched.
    pub fn resolve(&self, presented: &str) -> Result<Principal, ApiError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Token> = None;
        for t in &self.tokens {
            let diff = t.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(t);
            }
        }
        let t = found.ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
        if t.expires.is_some_and(|e| e <= crate::clock::now_ms()) {
            return Err(ApiError::Unauthorized(format!("token '{}' has expired", t.principal.name)));
        }
        Ok(t.principal.clone())
    }
}

/// Requests per second each token (or, for callers without one, each address)
/// may make: a bucket of that many, refilled continuously.
pub struct RateLimiter {
    per_second: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        Self { per_second, buckets: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Takes one request from the caller's bucket; false when it is empty.
    fn admit(&self, who: &str) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        let now = std::time::Instant::now();
        // Many addresses must not grow the table without bound: a full bucket is
        // the same as none.
        if buckets.len() >= 65_536 {
            let rate = self.per_second;
            buckets
                .retain(|_, (tokens, last)| *tokens + now.duration_since(*last).as_secs_f64() * rate < rate);
        }
        let (tokens, last) = buckets.entry(who.to_owned()).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.per_second);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The token a request presents, if any.
fn presented(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        return Some(text.strip_prefix("Bearer ").unwrap_or(text).trim().to_owned());
    }
    request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("access_token=").map(str::to_owned)))
}

/// Resolves the caller, refuses bad tokens and unauthorised writes, and runs the
/// request with the caller known to every handler ([`current`]).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match admit(&state, &request) {
        Ok(principal) => {
            let credentialed = principal != Principal::public();
            let start = if is_sensor_path(request.uri().path()) {
                state.sensors_classification
            } else {
                Classification::Public
            };
            let (mut response, served) = SERVED
                .scope(std::cell::Cell::new(start), async {
                    let response = PRINCIPAL.scope(principal, next.run(request)).await;
                    (response, SERVED.with(std::cell::Cell::get))
                })
                .await;
            cache_for_caller(&mut response, credentialed, served);
            response
        }
        Err(refusal) => {
            let (who, mut response) = *refusal;
            // A refusal is about this request's credentials: no shared cache keeps it.
            cache_for_caller(&mut response, true, Classification::Restricted);
            // Refusals here never reach the audit layer inside, so they are recorded here.
            if let Some(log) = &state.audit {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
                log.append(&who, request.method().as_str(), &target, response.status().as_u16());
            }
            linger(request).await;
            response
        }
    }
}

/// The live sensors are one classified layer with many doors.
fn is_sensor_path(path: &str) -> bool {
    ["/api/sensors", "/api/alerts", "/api/live", "/collections/sensors"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
}

/// The caller of a request, or who it was refused for and the refusal.
fn admit(state: &AppState, request: &Request) -> Result<Principal, Box<(String, Response)>> {
    let principal = match (presented(request), &state.tokens) {
        (None, _) => Principal::public(),
        (Some(token), Some(tokens)) => {
            tokens.resolve(&token).map_err(|e| Box::new(("invalid token".to_owned(), e.into_response())))?
        }
        (Some(_), None) => {
            return Err(Box::new((
                "invalid token".into(),
                ApiError::Unauthorized("this server has no tokens configured".into()).into_response(),
            )));
        }
    };
    let anonymous = principal == Principal::public();
    if !anonymous
        && let Some(limiter) = &state.rate_limit
        && !limiter.admit(&principal.name)
    {
        let body = serde_json::json!({"code": "TooManyRequests", "description": format!("token '{}' is over its rate limit", principal.name)});
        let response =
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], axum::Json(body)).into_response();
        return Err(Box::new((principal.name, response)));
    }
    // Callers without a token are told apart by their address.
    if anonymous
        && let Some(limiter) = &state.anonymous_rate_limit
        && !limiter.admit(
            &crate::serve::peer(request).map_or_else(|| "anonymous".to_owned(), |p| p.ip().to_string()),
        )
    {
        let body = serde_json::json!({"code": "TooManyRequests", "description": "this address is over the rate limit for callers without a token"});
        let response =
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], axum::Json(body)).into_response();
        return Err(Box::new((principal.name, response)));
    }
    let sensors = is_sensor_path(request.uri().path());
    if sensors && !principal.may_see(state.sensors_classification) {
        return Err(Box::new((
            principal.name,
            ApiError::NotFound("no such resource".into()).into_response(),
        )));
    }
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && state.tokens.is_some() && principal.role < Role::Ingest {
        let status =
            if principal == Principal::public() { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        let body = serde_json::json!({
            "code": if status == StatusCode::UNAUTHORIZED { "Unauthorized" } else { "Forbidden" },
            "description": format!("{} {} needs a token with the ingest or admin role", request.method(), request.uri().path()),
        });
        return Err(Box::new((principal.name, (status, axum::Json(body)).into_response())));
    }
    Ok(principal)
}

/// Cache headers that keep one caller's answer from another through any shared
/// cache: every answer varies by `Authorization`; one made for a token may differ
/// from what an anonymous caller gets (hidden layers, unmasked attributes, finer
/// positions), so only the caller's own cache may keep it (`private`), and nothing
/// may keep one drawn from restricted content (`no-store`). Anonymous answers keep
/// their public caching.
fn cache_for_caller(response: &mut Response, credentialed: bool, served: Classification) {
    let headers = response.headers_mut();
    // Vary: Authorization on every answer is added outermost, one line for all
    // (`http_cache::one_vary`), as shared caches read one Vary line.
    if !credentialed {
        return;
    }
    let cache = if served == Classification::Restricted {
        "no-store".to_owned()
    } else {
        let was = headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).unwrap_or("no-cache");
        let kept: Vec<&str> = was
            .split(',')
            .map(str::trim)
            .filter(|d| !d.eq_ignore_ascii_case("public") && !d.is_empty())
            .collect();
        std::iter::once("private").chain(kept).collect::<Vec<_>>().join(", ")
    };
    if let Ok(value) = header::HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

/// How much of a refused request's body is read and dropped before the answer.
pub const LINGER_BYTES: usize = 8 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads (and drops) what is left of a refused request's body, up to a bound.
///
/// A client that sends its whole upload before reading the answer (most do, unless
/// they ask `Expect: 100-continue`) gets a broken pipe instead of the refusal when the
/// server answers and closes with the body unread; nginx lingers the same way. A
/// client that asked `Expect: 100-continue` has sent nothing yet: reading would tell
/// it to go on, so it gets the refusal at once.
pub async fn linger(request: Request) {
    let expects = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if expects || (declared.unwrap_or(0) == 0 && !chunked) {
        return;
    }
    let drain = axum::body::to_bytes(request.into_body(), LINGER_BYTES);
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Shared by `AppState`.
pub type SharedTokens = Option<Arc<Tokens>>;

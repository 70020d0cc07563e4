//! The live HTTP API: sensors, readings, alerts and stats, each handler beside its
//! route.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cim_core::sensors::{Reading, Sensor, format_rfc3339_ms, parse_rfc3339_ms};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};
use store::{Current, StoreError};

/// Readings accepted in one request or message batch.
use super::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/sensors",
            get(list_sensors)
                .post(put_sensor)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_REGISTRATION_BYTES)),
        )
        .route("/api/sensors/{id}", get(get_sensor).delete(delete_sensor))
        .route("/api/sensors/{id}/readings", get(readings))
        .route("/api/readings", axum::routing::post(post_readings))
        .route("/api/alerts", get(alerts))
        .route("/api/live/stats", get(stats))
        .route("/api/live", get(socket::upgrade))
        .route("/api/live/sse", get(socket::sse))
}

/// The live service, or why this instance has none.
pub fn live_of(state: &AppState) -> Result<&Arc<Live>, ApiError> {
    state.live.as_ref().ok_or_else(|| {
        ApiError::Unavailable("live sensors are served by another instance on this store".into())
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?.map_err(internal)
}

pub(super) fn sensor_json(sensor: &Sensor, current: Option<&Current>) -> Value {
    let mut v = serde_json::to_value(sensor).unwrap_or(Value::Null);
    let cur = current.copied().unwrap_or_default();
    v["state"] = serde_json::to_value(cur.state).unwrap_or(Value::Null);
    if let (Some(t), Some(value)) = (cur.t, cur.value) {
        v["latest"] = json!({"t": format_rfc3339_ms(t), "value": value});
    }
    v
}

/// Sensors per page of `/api/sensors` unless `limit` says otherwise, and the most
/// it may say.
pub const SENSORS_PAGE: usize = 10_000;
pub const MAX_SENSORS_PAGE: usize = 100_000;
/// Sensors registered in one request at most, and the body that may carry them.
pub const MAX_REGISTRATION: usize = 100_000;
const MAX_REGISTRATION_BYTES: usize = 64 << 20;

#[derive(Deserialize)]
struct SensorPage {
    limit: Option<String>,
    after: Option<String>,
}

/// The sensors the caller may see in id order, a page at a time: a `Link` header
/// (rel="next") names the page after this one.
async fn list_sensors(
    State(state): State<AppState>,
    Query(q): Query<SensorPage>,
) -> Result<Response, ApiError> {
    let live = live_of(&state)?;
    let limit = page_limit(q.limit.as_deref(), SENSORS_PAGE, MAX_SENSORS_PAGE)?;
    let (page, more) = live.sensors_page(q.after.as_deref(), limit);
    let current = live.current_of(page.iter().map(|s| s.id.as_str()));
    let all: Vec<Value> = page.iter().map(|s| sensor_json(s, current.get(&s.id))).collect();
    let mut response = Json(all).into_response();
    if let (true, Some(last)) = (more, page.last())
        && let Ok(link) = header::HeaderValue::from_str(&format!(
            "</api/sensors?limit={limit}&after={}>; rel=\"next\"",
            encode_component(&last.id)
        ))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

async fn get_sensor(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let sensor = live_of(&state)?
        .sensor(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no sensor '{}'", clip(&id))))?;
    let current = live_of(&state)?.current();
    Ok(Json(sensor_json(&sensor, current.get(&id))).into_response())
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A page size from a `limit` parameter: `default` when absent, else 1..=`max`.
fn page_limit(limit: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit '{}': a number from 1 to {max}", clip(l)))),
    }
}

/// Registers one sensor (a JSON object: 201 new, 200 replaced, the sensor back), or
/// many in one durable commit (a JSON array, or one object a line): all of them or,
/// when any is refused, none, with the refusal naming the sensor's place in the body.
async fn put_sensor(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-ndjson") || t.starts_with("application/jsonl"));
    // Parsing and checking up to MAX_REGISTRATION sensors is heavy: in the bounded
    // pool, the rare placement on a feature awaited there.
    let runtime = tokio::runtime::Handle::current();
    let pool_state = state.clone();
    let (one, sensors) = crate::heavy::run(move || {
        let (one, docs) = sensor_docs(&body, ndjson)?;
        let mut sensors = Vec::with_capacity(docs.len());
        let mut ids = std::collections::HashSet::with_capacity(docs.len());
        for (i, doc) in docs.into_iter().enumerate() {
            let checked = runtime.block_on(checked_sensor(&pool_state, doc));
            let sensor =
                if one { checked? } else { checked.map_err(|e| e.context(&format!("sensor {i}")))? };
            if !ids.insert(sensor.id.clone()) {
                return Err(ApiError::BadRequest(format!(
                    "sensor {i}: id '{}' is given twice",
                    clip(&sensor.id)
                )));
            }
            sensors.push(sensor);
        }
        Ok((one, sensors))
    })
    .await??;
    let live = live_of(&state)?.clone();
    let registered = sensors.len();
    let single = sensors.first().filter(|_| one).cloned();
    let created = blocking(move || live.register(sensors)).await?;
    if let Some(sensor) = single {
        let status = if created == 1 { StatusCode::CREATED } else { StatusCode::OK };
        return Ok((status, Json(sensor_json(&sensor, None))).into_response());
    }
    Ok(Json(json!({"registered": registered, "created": created, "replaced": registered - created}))
        .into_response())
}

/// The sensor documents of a registration body, and whether it was one object (not
/// an array or lines).
fn sensor_docs(body: &[u8], ndjson: bool) -> Result<(bool, Vec<Value>), ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| ApiError::BadRequest(format!("sensor JSON: {e}")))?;
    let (one, docs) = if ndjson {
        let docs = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| ApiError::BadRequest(format!("sensor JSON, line {}: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        (false, docs)
    } else {
        match serde_json::from_str(text).map_err(|e| ApiError::BadRequest(format!("sensor JSON: {e}")))? {
            Value::Array(docs) => (false, docs),
            doc => (true, vec![doc]),
        }
    };
    if docs.len() > MAX_REGISTRATION {
        return Err(ApiError::BadRequest(format!(
            "{} sensors in one request; at most {MAX_REGISTRATION}",
            docs.len()
        )));
    }
    Ok((one, docs))
}

/// A sensor from its JSON, placed on its feature when it names one and no position,
/// validated and cleared for the caller.
async fn checked_sensor(state: &AppState, mut doc: Value) -> Result<Sensor, ApiError> {
    // Attached to a feature and no position given: it sits on that feature.
    if doc.get("lon").is_none()
        && doc.get("lat").is_none()
        && let Some(reference) = doc.get("feature").and_then(Value::as_str).map(str::to_owned)
    {
        let (lon, lat, height) = features::place_on_feature(state, &reference).await?;
        doc["lon"] = json!(lon);
        doc["lat"] = json!(lat);
        if doc.get("height").is_none()
            && let Some(h) = height
        {
            doc["height"] = json!(h);
        }
    }
    let sensor: Sensor =
        serde_json::from_value(doc).map_err(|e| ApiError::BadRequest(format!("sensor JSON: {e}")))?;
    sensor.validate().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let caller = crate::access::current();
    if !caller.may_see(sensor.clearance_needed()) {
        return Err(ApiError::Forbidden(format!(
            "sensor '{}' would be classified above your clearance",
            clip(&sensor.id)
        )));
    }
    // A sensor the caller may not see is not there for it: its id is merely taken,
    // with nothing said of why.
    if live_of(state)?.exists(&sensor.id) && live_of(state)?.sensor(&sensor.id).is_none() {
        return Err(ApiError::Conflict(format!("sensor id '{}' is taken; choose another", clip(&sensor.id))));
    }
    Ok(sensor)
}

async fn delete_sensor(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let live = live_of(&state)?.clone();
    if live.sensor(&id).is_none() {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    let key = id.clone();
    if !blocking(move || live.unregister(&key)).await? {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn post_readings(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let readings: Vec<Reading> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            live_of(&state)?.counters.rejected_bad_payload.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::BadRequest(format!(
                "readings: a JSON array of {{\"sensor\",\"t\",\"value\"}} expected ({e})"
            )));
        }
    };
    if readings.len() > MAX_BATCH {
        live_of(&state)?.counters.rejected_bad_payload.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::BadRequest(format!(
            "{} readings in one request; at most {MAX_BATCH}",
            readings.len()
        )));
    }
    let count = readings.len();
    let live = live_of(&state)?.clone();
    let clearance = crate::access::current().clearance;
    let outcome = blocking(move || live.ingest_as(readings, clearance)).await?;
    let rejected: Vec<Value> =
        outcome.rejected.iter().map(|(i, reason)| json!({"index": i, "reason": reason})).collect();
    let body = json!({"stored": outcome.stored, "duplicates": outcome.duplicates, "rejected": rejected});
    // Nothing usable: a client error. Partly usable: stored what could be, said why not.
    let status = if count > 0 && rejected.len() == count { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    limit: Option<String>,
}

/// Readings per page unless `limit` says otherwise, and the most it may say: a
/// sensor's whole history is never one response.
pub const READINGS_PAGE: usize = 10_000;
pub const MAX_READINGS_PAGE: usize = 100_000;

/// A path segment or query value with everything but RFC 3986's unreserved
/// characters percent-encoded.
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `step` as seconds (`300`) or with a unit (`30s`, `5m`, `1h`, `1d`).
fn parse_step(s: &str) -> Option<i64> {
    let (digits, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale).filter(|ms| *ms > 0)
}

async fn readings(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(params): Query<RangeParams>,
) -> Result<Response, ApiError> {
    if live_of(&state)?.sensor(&id).is_none() {
        return Err(ApiError::NotFound(format!("no sensor '{}'", clip(&id))));
    }
    let time = |name: &str, v: &Option<String>, default: i64| match v {
        None => Ok(default),
        Some(s) => parse_rfc3339_ms(s).map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
    };
    let from = time("from", &params.from, i64::MIN)?;
    let to = time("to", &params.to, i64::MAX)?;
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let step = match &params.step {
        None => 0,
        Some(s) => parse_step(s).ok_or_else(|| {
            ApiError::BadRequest(format!("step '{}': seconds or a number with s, m, h, d", clip(s)))
        })?,
    };
    let limit = page_limit(params.limit.as_deref(), READINGS_PAGE, MAX_READINGS_PAGE)?;
    let live = live_of(&state)?.clone();
    let path = format!("/api/sensors/{}/readings", encode_component(&id));
    let (rows, next) = blocking(move || live.store.readings(&id, from, to, step, limit)).await?;
    let out: Vec<Value> = rows.iter().map(|(t, v)| json!({"t": format_rfc3339_ms(*t), "value": v})).collect();
    let mut response = Json(out).into_response();
    if let Some(next) = next {
        // The next page is the same query from the first reading this one left out.
        let mut query = format!("from={}&limit={limit}", format_rfc3339_ms(next));
        if let Some(to) = &params.to {
            query.push_str(&format!("&to={}", encode_component(to)));
        }
        if let Some(step) = &params.step {
            query.push_str(&format!("&step={}", encode_component(step)));
        }
        if let Ok(link) = header::HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
struct AlertParams {
    after: Option<u64>,
    limit: Option<usize>,
    /// The newest N instead (oldest first), for a viewer catching up at start.
    last: Option<usize>,
}

async fn alerts(State(state): State<AppState>, Query(p): Query<AlertParams>) -> Result<Response, ApiError> {
    let live = live_of(&state)?.clone();
    let limit = p.limit.unwrap_or(1000).min(10_000);
    let list = match p.last {
        Some(n) => blocking(move || live.store.latest_alerts(n.min(10_000))).await?,
        None => blocking(move || live.store.alerts(p.after.unwrap_or(0), limit)).await?,
    };
    let seen: std::collections::HashSet<String> =
        live_of(&state)?.sensors().into_iter().map(|s| s.id).collect();
    let list: Vec<_> = list.into_iter().filter(|a| seen.contains(&a.sensor)).collect();
    Ok(Json(list).into_response())
}

async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let live = live_of(&state)?;
    let c = &live.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(Json(json!({
        "received": n(&c.received),
        "stored": n(&c.stored),
        "duplicates": n(&c.duplicates),
        "out_of_order": n(&c.out_of_order),
        "rejected": {
            "unknown_sensor": n(&c.rejected_unknown_sensor),
            "bad_time": n(&c.rejected_bad_time),
            "bad_value": n(&c.rejected_bad_value),
            "bad_payload": n(&c.rejected_bad_payload),
        },
        "subscribers": live.events.receiver_count(),
        "mqtt_broker": {
            "connections": n(&live.broker.connections),
            "publishes": n(&live.broker.publishes),
            "protocol_errors": n(&live.broker.protocol_errors),
        },
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_with_units() {
        assert_eq!(parse_step("300"), Some(300_000));
        assert_eq!(parse_step("5m"), Some(300_000));
        assert_eq!(parse_step("1h"), Some(3_600_000));
        assert_eq!(parse_step("2d"), Some(172_800_000));
        for bad in ["", "0", "-5", "5x", "m", "99999999999999999999"] {
            assert_eq!(parse_step(bad), None, "{bad}");
        }
    }
}

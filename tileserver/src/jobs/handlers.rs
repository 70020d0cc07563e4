//! The `/api/jobs` routes: list, look at and cancel jobs, as the caller may see them.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::access::Role;
use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

use super::upload::submit;
use super::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        // The handler streams and limits the body itself.
        .route("/api/jobs", get(list).post(submit).layer(DefaultBodyLimit::disable()))
        .route("/api/jobs/{id}", get(one).delete(cancel))
}

pub(super) fn jobs_of(state: &AppState) -> Result<&Arc<Jobs>, ApiError> {
    // Reading the queue tells which layers change: ingest and admin roles only
    // (writes are checked by the access layer already).
    let caller = crate::access::current();
    if state.tokens.is_some() && caller.role < Role::Ingest {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    state.jobs.as_ref().ok_or_else(|| ApiError::Unavailable("this server runs no ingest jobs".into()))
}

/// Whether the caller may see a job: cleared for what it touched and for the
/// layer as it is now.
pub(super) fn may_see_job(state: &AppState, job: &Job) -> bool {
    let caller = crate::access::current();
    let seen = caller.may_see(job.clearance)
        && state.layers.classification_of(&job.layer).is_none_or(|c| caller.may_see(c));
    if seen {
        crate::access::note_served(job.clearance);
    }
    seen
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let list: Vec<Job> = jobs.jobs.lock().map(|l| l.clone()).unwrap_or_default();
    let list: Vec<Value> = list.iter().filter(|j| may_see_job(&state, j)).map(shown).collect();
    let doc = json!({"jobs": list});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

fn job_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no job '{}'", id.chars().take(20).collect::<String>())))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let job = jobs
        .get(job_id(&id)?)
        .filter(|j| may_see_job(&state, j))
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    Ok(respond(
        &headers,
        shown(&job).to_string().into_bytes(),
        "application/json",
        None,
        None,
        Freshness::Listing,
    ))
}

async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let id = job_id(&id)?;
    if !jobs.get(id).is_some_and(|j| may_see_job(&state, &j)) {
        return Err(ApiError::NotFound(format!("no job {id}")));
    }
    let job = jobs.cancel(id)?;
    Ok((StatusCode::OK, axum::Json(shown(&job))).into_response())
}

/// A job as its caller may read it: host paths in its message and quality report
/// cut to file names for callers below admin.
fn shown(job: &Job) -> Value {
    let mut doc = json!(job);
    if crate::access::current().role < Role::Admin {
        crate::paths::scrub(&mut doc);
    }
    doc
}

//! Ingest jobs over HTTP: a survey drop uploaded to `POST /api/jobs?layer=&filename=`
//! (the file as the request body) is queued and ingested by the `cim-ingest` binary,
//! one job at a time; `GET /api/jobs[/{id}]` tells its state, the ingest's own
//! summary or error and, once done, the layer's quality report; `DELETE
//! /api/jobs/{id}` cancels a queued or running one. The server runs the binary rather
//! than linking the ingest crate (the crates never depend on each other), and a
//! failed or cancelled job leaves the served layer as it was: the ingest publishes
//! only a finished version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::access::Role;
use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub layer: String,
    pub filename: String,
    pub bytes: u64,
    pub sha256: String,
    pub state: JobState,
    pub submitted_by: String,
    pub submitted_ms: i64,
    pub finished_ms: Option<i64>,
    /// The ingest's summary line (succeeded) or its error (failed).
    pub message: Option<String>,
    /// The published layer's quality report, once succeeded.
    pub quality: Option<Value>,
}

/// The queue and its one worker.
pub struct Jobs {
    store: PathBuf,
    ingest_bin: PathBuf,
    jobs: Mutex<Vec<Job>>,
    running: Mutex<HashMap<u64, tokio::process::Child>>,
    queue: tokio::sync::mpsc::UnboundedSender<u64>,
}

impl Jobs {
    /// Starts the worker; `ingest_bin` is the `cim-ingest` to run.
    pub fn start(store: PathBuf, ingest_bin: PathBuf) -> Arc<Self> {
        let (queue, mut next) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let jobs = Arc::new(Self {
            store,
            ingest_bin,
            jobs: Mutex::new(Vec::new()),
            running: Mutex::new(HashMap::new()),
            queue,
        });
        let worker = jobs.clone();
        tokio::spawn(async move {
            while let Some(id) = next.recv().await {
                worker.run(id).await;
            }
        });
        jobs
    }

    fn upload_dir(&self, id: u64) -> PathBuf {
        self.store.join(".uploads").join(id.to_string())
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(job) = jobs.iter_mut().find(|j| j.id == id)
        {
            f(job);
        }
    }

    fn get(&self, id: u64) -> Option<Job> {
        self.jobs.lock().ok()?.iter().find(|j| j.id == id).cloned()
    }

    async fn run(&self, id: u64) {
        let Some(job) = self.get(id).filter(|j| j.state == JobState::Queued) else { return };
        let file = self.upload_dir(id).join(&job.filename);
        let child = tokio::process::Command::new(&self.ingest_bin)
            .arg("--store")
            .arg(&self.store)
            .arg("--layer")
            .arg(&job.layer)
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                self.finish(id, JobState::Failed, format!("{}: {e}", self.ingest_bin.display()), None);
                return;
            }
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        self.update(id, |j| j.state = JobState::Running);
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, child);
        }
        // Both pipes at once, so a chatty one never blocks the other.
        let (out, err) = tokio::join!(
            async move {
                let mut text = String::new();
                if let Some(mut p) = stdout {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut p, &mut text).await;
                }
                text
            },
            async move {
                let mut text = String::new();
                if let Some(mut p) = stderr {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut p, &mut text).await;
                }
                text
            }
        );
        let child = self.running.lock().ok().and_then(|mut r| r.remove(&id));
        let status = match child {
            Some(mut c) => c.wait().await.ok(),
            None => None, // cancelled: the canceller killed and removed it
        };
        if self.get(id).is_some_and(|j| j.state == JobState::Cancelled) {
            let _ = std::fs::remove_dir_all(self.upload_dir(id));
            return;
        }
        let ok = status.is_some_and(|s| s.success());
        let quality = ok
            .then(|| std::fs::read(self.store.join(&job.layer).join("quality.json")).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let message = if ok {
            out.lines().last().unwrap_or_default().to_owned()
        } else {
            err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("cim-ingest failed").to_owned()
        };
        self.finish(id, if ok { JobState::Succeeded } else { JobState::Failed }, message, quality);
    }

    fn finish(&self, id: u64, state: JobState, message: String, quality: Option<Value>) {
        self.update(id, |j| {
            j.state = state;
            j.message = Some(message);
            j.quality = quality;
            j.finished_ms = Some(crate::live::now_ms());
        });
        let _ = std::fs::remove_dir_all(self.upload_dir(id));
    }
}

pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/api/jobs", get(list).post(submit).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/api/jobs/{id}", get(one).delete(cancel))
}

fn jobs_of(state: &AppState) -> Result<&Arc<Jobs>, ApiError> {
    // Reading the queue tells which layers change: ingest and admin roles only
    // (writes are checked by the access layer already).
    let caller = crate::access::current();
    if state.tokens.is_some() && caller.role < Role::Ingest {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    state.jobs.as_ref().ok_or_else(|| ApiError::Unavailable("this server runs no ingest jobs".into()))
}

fn valid_filename(name: &str) -> bool {
    (3..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.contains('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn submit(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let layer =
        params.get("layer").ok_or_else(|| ApiError::BadRequest("missing parameter 'layer'".into()))?;
    if !crate::layers::valid_layer_name(layer) || layer == cim_core::catalogue::SENSORS_LAYER {
        return Err(ApiError::BadRequest("layer: use 1-64 letters, digits, '-' and '_'".into()));
    }
    let filename =
        params.get("filename").ok_or_else(|| ApiError::BadRequest("missing parameter 'filename'".into()))?;
    if !valid_filename(filename) {
        return Err(ApiError::BadRequest(
            "filename: 3-128 letters, digits, '.', '_' and '-', with an extension, not starting with '.'"
                .into(),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request body (the file) is empty".into()));
    }
    let id = {
        let mut list = jobs.jobs.lock().map_err(|_| ApiError::Internal("job list poisoned".into()))?;
        let id = list.last().map_or(1, |j| j.id + 1);
        list.push(Job {
            id,
            layer: layer.clone(),
            filename: filename.clone(),
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(&body)),
            state: JobState::Queued,
            submitted_by: crate::access::current().name,
            submitted_ms: crate::live::now_ms(),
            finished_ms: None,
            message: None,
            quality: None,
        });
        id
    };
    let dir = jobs.upload_dir(id);
    let written =
        tokio::fs::create_dir_all(&dir).await.and(tokio::fs::write(dir.join(filename), &body).await);
    if let Err(e) = written {
        jobs.finish(id, JobState::Failed, "the upload could not be stored".into(), None);
        return Err(ApiError::Internal(format!("{}: {e}", dir.display())));
    }
    jobs.queue.send(id).map_err(|_| ApiError::Unavailable("the job worker stopped".into()))?;
    let job = jobs.get(id);
    Ok((StatusCode::ACCEPTED, axum::Json(json!(job))).into_response())
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let list: Vec<Job> = jobs.jobs.lock().map(|l| l.clone()).unwrap_or_default();
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
    let job = jobs.get(job_id(&id)?).ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    Ok(respond(
        &headers,
        json!(job).to_string().into_bytes(),
        "application/json",
        None,
        None,
        Freshness::Listing,
    ))
}

async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?;
    let id = job_id(&id)?;
    let job = jobs.get(id).ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    match job.state {
        JobState::Queued | JobState::Running => {
            jobs.update(id, |j| {
                j.state = JobState::Cancelled;
                j.finished_ms = Some(crate::live::now_ms());
                j.message = Some("cancelled; the served layer is unchanged".into());
            });
            let child = jobs.running.lock().ok().and_then(|mut r| r.remove(&id));
            if let Some(mut child) = child {
                let _ = child.kill().await;
            }
            Ok((StatusCode::OK, axum::Json(json!(jobs.get(id)))).into_response())
        }
        done => Ok((
            StatusCode::CONFLICT,
            axum::Json(
                json!({"code": "Conflict", "description": format!("job {id} has already ended ({done:?})")}),
            ),
        )
            .into_response()),
    }
}

//! `POST /api/jobs`: an upload streamed to disk under its size limit, its format
//! sniffed and checked against its name, recorded and queued.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cim_core::formats::{DropFormat, SNIFF_BYTES, sniff};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{ApiError, AppState};

use super::handlers::jobs_of;
use super::options::{clearance_needed, job_options};
use super::*;

fn valid_filename(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A browser's file name (`C:\fakepath\My roads (2).geojson`) as a safe one.
fn safe_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .take(128)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// An upload on its way to disk.
struct Incoming {
    dir: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
    head: Vec<u8>,
    limit: u64,
}

impl Incoming {
    async fn new(jobs: &Jobs) -> Result<Self, ApiError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let dir = jobs.uploads().join(format!("incoming-{nanos}-{n}"));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
        let path = dir.join("data");
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
        Ok(Self {
            dir,
            file,
            hasher: Sha256::new(),
            bytes: 0,
            head: Vec::new(),
            limit: jobs.max_upload_bytes,
        })
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.limit {
            return Err(too_large(self.limit));
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", self.dir.display())))
    }

    /// Flushes the upload to disk: it is acknowledged only once it is there.
    async fn close(mut self) -> Result<(PathBuf, u64, String, Vec<u8>), ApiError> {
        let synced = async {
            self.file.flush().await?;
            self.file.sync_all().await
        };
        synced.await.map_err(|e| ApiError::Internal(format!("{}: {e}", self.dir.display())))?;
        Ok((self.dir, self.bytes, hex::encode(self.hasher.finalize()), self.head))
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!("the upload is larger than this server's limit of {} MiB", limit >> 20))
}

/// Removes an incoming upload's folder when the request fails half-way.
struct Discard(Option<PathBuf>);

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(super) async fn submit(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, ApiError> {
    let jobs = jobs_of(&state)?.clone();
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    let checked = (|| {
        let layer =
            params.get("layer").ok_or_else(|| ApiError::BadRequest("missing parameter 'layer'".into()))?;
        if !crate::layers::valid_layer_name(layer) {
            return Err(ApiError::BadRequest("layer: use 1-64 letters, digits, '-' and '_'".into()));
        }
        if let Some(name) = params.get("filename")
            && !valid_filename(name)
        {
            return Err(ApiError::BadRequest(
                "filename: 1-128 letters, digits, '.', '_' and '-', not starting with '.'".into(),
            ));
        }
        let declared =
            request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > jobs.max_upload_bytes) {
            return Err(too_large(jobs.max_upload_bytes));
        }
        let options = job_options(&state, &pairs)?;
        // A writer must be cleared for the layer it replaces and for the one it sets.
        let caller = crate::access::current();
        let current = state.layers.classification_of(layer);
        let (set, clearance) = clearance_needed(&options, current);
        if current.is_some_and(|c| !caller.may_see(c)) {
            return Err(ApiError::Forbidden(format!(
                "layer '{layer}' may not be replaced with a {} clearance",
                caller.clearance
            )));
        }
        if !caller.may_see(set) {
            return Err(ApiError::Forbidden(format!(
                "a job may not publish a {set} layer with a {} clearance",
                caller.clearance
            )));
        }
        Ok((layer.clone(), options, clearance))
    })();
    let (layer, options, clearance) = match checked {
        Ok(c) => c,
        Err(e) => {
            crate::access::linger(request).await;
            return Err(e);
        }
    };
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"));
    let mut incoming = Incoming::new(&jobs).await?;
    let mut discard = Discard(Some(incoming.dir.clone()));
    let mut claimed = params.get("filename").cloned();
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest(format!("multipart: {}", e.body_text())))?;
        let mut found = false;
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(format!("multipart: {}", e.body_text())))?
        {
            if field.file_name().is_none() && field.name() != Some("file") {
                continue; // form fields other than the file are not read
            }
            if found {
                return Err(ApiError::BadRequest("multipart: send one file per job".into()));
            }
            found = true;
            if claimed.is_none() {
                claimed = field.file_name().and_then(safe_filename);
            }
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| ApiError::BadRequest(format!("multipart: {}", e.body_text())))?
            {
                incoming.push(&chunk).await?;
            }
        }
        if !found {
            return Err(ApiError::BadRequest("multipart: no file part (name it 'file')".into()));
        }
    } else {
        let mut body = request.into_body().into_data_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
            incoming.push(&chunk).await?;
        }
    }
    let (dir, bytes, sha256, head) = incoming.close().await?;
    if bytes == 0 {
        return Err(ApiError::BadRequest("the request body (the file) is empty".into()));
    }
    let sniffed = sniff(&head);
    let named = claimed.as_deref().and_then(DropFormat::from_name);
    let filename = match (&claimed, named, sniffed) {
        (Some(name), Some(by_name), Some(by_content)) if !by_content.agrees_with(by_name) => {
            return Err(ApiError::UnsupportedFormat(format!(
                "'{name}' is named as {} but holds {}",
                by_name.name(),
                by_content.name()
            )));
        }
        (Some(name), Some(_), _) => name.clone(),
        // `.json` and other names that do not tell: the content does.
        (Some(name), None, Some(by_content)) => format!("{name}.{}", by_content.extension()),
        (None, _, Some(by_content)) => format!("upload.{}", by_content.extension()),
        _ => {
            return Err(ApiError::UnsupportedFormat(format!(
                "cannot tell the format of {}: name the file with its extension (.geojson, .las, .ifc, .tif, ...)",
                claimed.as_deref().map_or_else(|| "the upload".to_owned(), |n| format!("'{n}'"))
            )));
        }
    };
    let id = jobs.next_id.fetch_add(1, Ordering::Relaxed);
    let final_dir = jobs.upload_dir(id);
    let stored = std::fs::rename(&dir, &final_dir)
        .and_then(|()| std::fs::rename(final_dir.join("data"), final_dir.join(&filename)));
    if let Err(e) = stored {
        let _ = std::fs::remove_dir_all(&final_dir);
        return Err(ApiError::Internal(format!("{}: {e}", final_dir.display())));
    }
    discard.0 = None;
    let job = Job {
        id,
        layer,
        filename,
        format: sniffed.map(|f| f.name().to_owned()),
        bytes,
        sha256,
        options,
        state: JobState::Queued,
        submitted_by: crate::access::current().name,
        submitted_ms: crate::clock::now_ms(),
        started_ms: None,
        finished_ms: None,
        progress: None,
        message: None,
        quality: None,
        clearance,
    };
    if let Ok(mut list) = jobs.jobs.lock() {
        list.push(job.clone());
    }
    if let Err(e) = jobs.persist() {
        jobs.update(id, |j| j.state = JobState::Failed);
        let _ = std::fs::remove_dir_all(&final_dir);
        return Err(ApiError::Internal(format!("recording job {id}: {e}")));
    }
    jobs.queue.send(id).map_err(|_| ApiError::Unavailable("the job worker stopped".into()))?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/api/jobs/{id}"))], axum::Json(json!(job)))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_file_names_become_safe_ones() {
        assert_eq!(
            safe_filename(r"C:\fakepath\My roads (2).geojson").as_deref(),
            Some("My_roads__2_.geojson")
        );
        assert_eq!(safe_filename("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_filename("...").as_deref(), None);
        assert!(!valid_filename("../x.las") && valid_filename("noext") && !valid_filename(".hidden"));
    }
}

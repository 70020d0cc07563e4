//! Ingest jobs over HTTP. A survey drop is uploaded to `POST /api/jobs?layer=` as
//! the raw request body (`&filename=` names it) or as the file part of a
//! `multipart/form-data` form; either way it streams to disk under a size limit
//! (413), its format is sniffed from its first bytes and checked against its name
//! (415 when they disagree or nothing is recognised), and it is queued once stored
//! and recorded, so an acknowledged (202) upload survives a server restart.
//!
//! One worker runs the jobs in order through the `cim-ingest` binary (the crates never
//! depend on each other), reading its progress lines (`--progress json`) into the
//! job. `GET /api/jobs[/{id}]` tells the state, progress, the ingest's summary or
//! error and, once done, the layer's quality report; `DELETE /api/jobs/{id}` cancels a
//! queued job, or interrupts a running one (its stdin closed and SIGINT, which the
//! ingest honours by discarding its staged version; SIGKILL after a grace period). A failed or cancelled
//! job leaves the served layer as it was: the ingest publishes only a finished version.

mod handlers;
mod options;
mod queue;
mod upload;

pub use handlers::routes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use cim_core::catalogue::Classification;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Where a running ingest is: its current stage and how far through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    /// `done / total` in percent, for the current stage.
    pub percent: f64,
}

/// Ingest options a job may set, as `cim-ingest` takes them; everything else takes
/// the ingest's defaults, and governance a re-ingest does not give is inherited from
/// the layer's current version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_cycle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_crs: Option<String>,
    /// Every other option, as (query name, value), in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub layer: String,
    /// The stored file's name: the upload's, or one made from its sniffed format.
    pub filename: String,
    /// The format its first bytes announce (`None`: the name's extension decides).
    pub format: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    pub options: JobOptions,
    pub state: JobState,
    pub submitted_by: String,
    pub submitted_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub progress: Option<Progress>,
    /// The ingest's summary line (succeeded) or its error (failed).
    pub message: Option<String>,
    /// The published layer's quality report, once succeeded.
    pub quality: Option<Value>,
    /// The highest classification it touches: of the layer it replaces and of the
    /// one it publishes. Callers below it do not see the job (records from before
    /// this field are restricted: fail closed).
    #[serde(default = "restricted")]
    pub clearance: Classification,
}

fn restricted() -> Classification {
    Classification::Restricted
}

/// Jobs remembered across restarts (the oldest ended ones are forgotten first).
const KEPT_JOBS: usize = 1000;
/// A running `cim-ingest` child.
struct RunningIngest {
    pid: u32,
    /// Its stdin (`--stop-on-stdin-close`): dropping it stops the ingest.
    stdin: Option<tokio::process::ChildStdin>,
}

/// How long a running ingest has to stop after SIGINT before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// The tail of the ingest's stderr kept for the error message.
const STDERR_TAIL: usize = 16 << 10;

/// The queue and its one worker.
pub struct Jobs {
    store: PathBuf,
    ingest_bin: PathBuf,
    max_upload_bytes: u64,
    jobs: Mutex<Vec<Job>>,
    next_id: AtomicU64,
    /// Running ingests, by job.
    running: Mutex<HashMap<u64, RunningIngest>>,
    queue: tokio::sync::mpsc::UnboundedSender<u64>,
    /// A running ingest past this is stopped and its job failed.
    time_limit: Option<Duration>,
    /// Held while `jobs.json` is rewritten: the upload handler and the worker both
    /// record, and two writers of the one temporary file made one rename fail (CI:
    /// an upload answered 500 "recording job 3: No such file or directory").
    persisting: Mutex<()>,
}

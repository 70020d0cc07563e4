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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cim_core::catalogue::Classification;
use cim_core::formats::{DropFormat, SNIFF_BYTES, sniff};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::access::Role;
use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

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

/// What a job's query may carry besides its options.
const JOB_PARAMETERS: [&str; 3] = ["layer", "filename", "access_token"];

/// Options a job passes on to `cim-ingest` (query name; the flag is `--` and the
/// name with '-' for '_'), how each value is checked here (the ingest checks it in
/// full), and whether it may repeat.
const JOB_OPTIONS: [(&str, OptionValue, bool); 16] = [
    ("classification", OptionValue::Classification, false),
    ("owner", OptionValue::Text, false),
    ("update_cycle", OptionValue::Text, false),
    ("src_crs", OptionValue::Text, false),
    ("anchor", OptionValue::Numbers(3, 4), false),
    ("height_attr", OptionValue::Text, false),
    ("default_height", OptionValue::Numbers(1, 1), false),
    ("min_zoom", OptionValue::Count, false),
    ("max_zoom", OptionValue::Count, false),
    ("max_tiles_per_zoom", OptionValue::Count, false),
    ("terrain_error", OptionValue::Numbers(1, 1), false),
    ("keep_versions", OptionValue::Count, false),
    ("ground", OptionValue::Layer, false),
    ("protect", OptionValue::Rule, true),
    ("coarsen", OptionValue::Coarsen, false),
    ("declassify", OptionValue::Flag, false),
];

#[derive(Debug, Clone, Copy)]
enum OptionValue {
    Classification,
    Text,
    /// Comma-separated finite numbers, between so many and so many.
    Numbers(usize, usize),
    Count,
    /// A published layer the caller may see.
    Layer,
    Rule,
    Coarsen,
    /// `true` or `false`; only `true` is passed on.
    Flag,
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

impl Jobs {
    /// Loads the remembered jobs, requeues those a restart interrupted, and starts
    /// the worker; `ingest_bin` is the `cim-ingest` to run.
    pub fn start(store: PathBuf, ingest_bin: PathBuf, max_upload_bytes: u64) -> Arc<Self> {
        Self::start_with_limit(store, ingest_bin, max_upload_bytes, None)
    }

    /// [`Jobs::start`], stopping and failing any ingest that runs past `time_limit`,
    /// so that one drop cannot hold the queue for hours.
    pub fn start_with_limit(
        store: PathBuf,
        ingest_bin: PathBuf,
        max_upload_bytes: u64,
        time_limit: Option<Duration>,
    ) -> Arc<Self> {
        let (queue, mut next) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let mut remembered: Vec<Job> = std::fs::read(store.join(".jobs").join("jobs.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut requeue = Vec::new();
        for job in &mut remembered {
            if matches!(job.state, JobState::Queued | JobState::Running) {
                if job.state == JobState::Running {
                    job.message = Some("requeued: the server restarted while it ran".into());
                }
                job.state = JobState::Queued;
                job.progress = None;
                requeue.push(job.id);
            }
        }
        let next_id = remembered.iter().map(|j| j.id).max().unwrap_or(0) + 1;
        let jobs = Arc::new(Self {
            store,
            ingest_bin,
            max_upload_bytes,
            jobs: Mutex::new(remembered),
            next_id: AtomicU64::new(next_id),
            running: Mutex::new(HashMap::new()),
            queue,
            persisting: Mutex::new(()),
            time_limit,
        });
        jobs.clean_incoming();
        for id in requeue {
            let _ = jobs.queue.send(id);
        }
        let worker = jobs.clone();
        tokio::spawn(async move {
            while let Some(id) = next.recv().await {
                worker.run(id).await;
            }
        });
        jobs
    }

    fn uploads(&self) -> PathBuf {
        self.store.join(".uploads")
    }

    fn upload_dir(&self, id: u64) -> PathBuf {
        self.uploads().join(id.to_string())
    }

    /// Uploads cut off by a restart before they were acknowledged.
    fn clean_incoming(&self) {
        if let Ok(entries) = std::fs::read_dir(self.uploads()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("incoming-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
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

    /// Writes the job list (atomically: a temporary file renamed over the old one).
    fn persist(&self) -> std::io::Result<()> {
        // Taken before the snapshot, so the file ends with the latest one written.
        let _writing = self.persisting.lock().map_err(|_| std::io::Error::other("job recorder poisoned"))?;
        let doc = {
            let mut jobs = self.jobs.lock().map_err(|_| std::io::Error::other("job list poisoned"))?;
            while jobs.len() > KEPT_JOBS {
                match jobs.iter().position(|j| !matches!(j.state, JobState::Queued | JobState::Running)) {
                    Some(i) => jobs.remove(i),
                    None => break,
                };
            }
            serde_json::to_vec(&*jobs)?
        };
        let dir = self.store.join(".jobs");
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("jobs.json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &doc)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join("jobs.json"))
    }

    fn persist_or_log(&self) {
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "cannot record the ingest jobs");
        }
    }

    async fn run(&self, id: u64) {
        let Some(job) = self.get(id).filter(|j| j.state == JobState::Queued) else { return };
        let file = self.upload_dir(id).join(&job.filename);
        let mut command = tokio::process::Command::new(&self.ingest_bin);
        command.arg("--store").arg(&self.store).arg("--layer").arg(&job.layer).args([
            "--progress",
            "json",
            "--stop-on-stdin-close",
        ]);
        let o = &job.options;
        for (flag, value) in [
            ("--classification", &o.classification),
            ("--owner", &o.owner),
            ("--update-cycle", &o.update_cycle),
            ("--src-crs", &o.src_crs),
        ] {
            if let Some(v) = value {
                command.arg(flag).arg(v);
            }
        }
        for (name, value) in &o.more {
            let flag = format!("--{}", name.replace('_', "-"));
            match name.as_str() {
                "declassify" => command.arg(flag),
                // A terrain layer is named by the store's directory for it.
                "ground" => command.arg(flag).arg(value),
                // `=` so that a value starting with '-' (a western anchor) stays a value.
                _ => command.arg(format!("{flag}={value}")),
            };
        }
        let child = command
            .arg("--")
            .arg(&file)
            .stdin(std::process::Stdio::piped())
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
        // Held open while it runs: if this server dies, the ingest sees its stdin
        // close and stops rather than publishing behind a restarted server's back.
        // A cancel closes it too.
        let stdin = child.stdin.take();
        if let (Some(pid), Ok(mut running)) = (child.id(), self.running.lock()) {
            running.insert(id, RunningIngest { pid, stdin });
        }
        self.update(id, |j| {
            j.state = JobState::Running;
            j.started_ms = Some(crate::live::now_ms());
        });
        self.persist_or_log();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // Past the time limit the ingest is stopped as a cancel stops it.
        let overdue = std::sync::atomic::AtomicBool::new(false);
        let watchdog = async {
            match self.time_limit {
                Some(limit) => {
                    tokio::time::sleep(limit).await;
                    overdue.store(true, Ordering::Relaxed);
                    let pid = self.running.lock().ok().and_then(|mut r| {
                        let ingest = r.get_mut(&id)?;
                        ingest.stdin = None;
                        Some(ingest.pid)
                    });
                    if let Some(pid) = pid {
                        tracing::warn!(job = id, pid, "the ingest ran past its time limit; stopping it");
                        signal(pid, nix::sys::signal::Signal::SIGINT);
                        tokio::time::sleep(CANCEL_GRACE).await;
                        signal(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    std::future::pending::<()>().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        // Both pipes at once, so a chatty one never blocks the other.
        let pipes = async {
            tokio::join!(
                async move {
                    let mut text = String::new();
                    if let Some(mut p) = stdout {
                        let _ = tokio::io::AsyncReadExt::read_to_string(&mut p, &mut text).await;
                    }
                    text
                },
                async {
                    let mut tail = String::new();
                    if let Some(p) = stderr {
                        let mut lines = tokio::io::BufReader::new(p).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if let Some(progress) = parse_progress(&line) {
                                self.update(id, |j| j.progress = Some(progress));
                            } else {
                                tail.push_str(&line);
                                tail.push('\n');
                                if tail.len() > STDERR_TAIL {
                                    let cut = tail.len() - STDERR_TAIL;
                                    let cut =
                                        (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(0);
                                    tail.drain(..cut);
                                }
                            }
                        }
                    }
                    tail
                }
            )
        };
        let (out, err) = tokio::select! {
            done = pipes => done,
            () = watchdog => unreachable!("the watchdog never ends"),
        };
        let status = child.wait().await.ok();
        if overdue.load(Ordering::Relaxed) && !status.is_some_and(|s| s.success()) {
            if let Ok(mut running) = self.running.lock() {
                running.remove(&id);
            }
            self.discard_staging(&job.layer);
            let limit = self.time_limit.map_or(0, |l| l.as_secs());
            self.finish(
                id,
                JobState::Failed,
                format!(
                    "stopped after running past the {limit} s job time limit; the served layer is unchanged"
                ),
                None,
            );
            return;
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        let ok = status.is_some_and(|s| s.success());
        let cancelled = self.get(id).is_some_and(|j| j.state == JobState::Cancelled);
        if cancelled && !ok {
            // An ingest killed after the grace period could not discard its staged
            // version; the next ingest of the layer would, but do it now.
            self.discard_staging(&job.layer);
            self.finish(id, JobState::Cancelled, "cancelled; the served layer is unchanged".into(), None);
            return;
        }
        let quality = ok
            .then(|| std::fs::read(self.store.join(&job.layer).join("quality.json")).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let message = if ok {
            let summary = out.lines().last().unwrap_or_default().to_owned();
            if cancelled {
                format!("{summary} (it had finished before the cancel reached it)")
            } else {
                summary
            }
        } else {
            err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("cim-ingest failed").to_owned()
        };
        if ok {
            // What it published may be classified higher than it asked (inherited).
            let published =
                std::fs::read(self.store.join(&job.layer).join(cim_core::catalogue::CATALOGUE_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<cim_core::catalogue::CatalogueEntry>(&b).ok())
                    .map_or(Classification::Restricted, |c| c.classification);
            // The last progress line may be rate-limited away; a finished job is done.
            self.update(id, |j| {
                j.clearance = j.clearance.max(published);
                if let Some(p) = &mut j.progress {
                    p.done = p.total;
                    p.percent = 100.0;
                }
            });
        }
        self.finish(id, if ok { JobState::Succeeded } else { JobState::Failed }, message, quality);
    }

    fn discard_staging(&self, layer: &str) {
        let versions = self.store.join(cim_core::catalogue::VERSIONS_DIR);
        for entry in std::fs::read_dir(&versions).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{layer}@")) && name.ends_with(cim_core::catalogue::PARTIAL_SUFFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn finish(&self, id: u64, state: JobState, message: String, quality: Option<Value>) {
        self.update(id, |j| {
            j.state = state;
            j.message = Some(message);
            j.quality = quality;
            j.finished_ms = Some(crate::live::now_ms());
        });
        self.persist_or_log();
        let _ = std::fs::remove_dir_all(self.upload_dir(id));
    }

    /// Stops a job: a queued one never runs; a running one is interrupted.
    fn cancel(self: &Arc<Self>, id: u64) -> Result<Job, ApiError> {
        let job = self.get(id).ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
        match job.state {
            JobState::Queued => {
                self.finish(id, JobState::Cancelled, "cancelled before it ran".into(), None);
            }
            JobState::Running => {
                self.update(id, |j| j.state = JobState::Cancelled);
                // Its stdin closes, which it reads as a stop at any time, even before
                // it set up its SIGINT handler (a SIGINT that early is lost where the
                // server was started with SIGINT ignored, as background jobs are).
                let pid = self.running.lock().ok().and_then(|mut r| {
                    let ingest = r.get_mut(&id)?;
                    ingest.stdin = None;
                    Some(ingest.pid)
                });
                if let Some(pid) = pid {
                    signal(pid, nix::sys::signal::Signal::SIGINT);
                    let jobs = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(CANCEL_GRACE).await;
                        let still = jobs.running.lock().ok().and_then(|r| r.get(&id).map(|i| i.pid));
                        if still == Some(pid) {
                            tracing::warn!(job = id, pid, "the ingest ignored SIGINT; killing it");
                            signal(pid, nix::sys::signal::Signal::SIGKILL);
                        }
                    });
                }
            }
            done => return Err(ApiError::Conflict(format!("job {id} has already ended ({done:?})"))),
        }
        self.get(id).ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
    }
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// A `{"progress": {"stage", "done", "total"}}` line of `cim-ingest --progress json`.
fn parse_progress(line: &str) -> Option<Progress> {
    let doc: Value = serde_json::from_str(line.trim()).ok()?;
    let p = doc.get("progress")?;
    let done = p["done"].as_u64()?;
    let total = p["total"].as_u64()?;
    let percent = if total == 0 { 0.0 } else { (done as f64 * 100.0 / total as f64).min(100.0) };
    Some(Progress {
        stage: p["stage"].as_str()?.to_owned(),
        done,
        total,
        percent: (percent * 10.0).round() / 10.0,
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        // The handler streams and limits the body itself.
        .route("/api/jobs", get(list).post(submit).layer(DefaultBodyLimit::disable()))
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

/// A job's options from its query, every name and value checked; unknown names are
/// refused by name rather than ignored.
fn job_options(state: &AppState, params: &[(String, String)]) -> Result<JobOptions, ApiError> {
    let mut options = JobOptions::default();
    let mut seen = std::collections::HashSet::new();
    let unknown: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !JOB_PARAMETERS.contains(k) && !JOB_OPTIONS.iter().any(|(n, _, _)| n == k))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = JOB_OPTIONS.iter().map(|(n, _, _)| *n).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown job option{} {}: a job takes layer, filename and {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("'{}'", k.chars().take(40).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    for (key, value) in params {
        let Some(&(name, kind, repeats)) = JOB_OPTIONS.iter().find(|(n, _, _)| n == key) else { continue };
        if !seen.insert(name) && !repeats {
            return Err(ApiError::BadRequest(format!("{name}: given more than once")));
        }
        let bad = |what: &str| ApiError::BadRequest(format!("{name}: {what}"));
        if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
            return Err(bad("1-200 printable characters"));
        }
        match kind {
            OptionValue::Classification => {
                value.parse::<Classification>().map_err(|_| bad("public, internal or restricted"))?;
            }
            OptionValue::Text => {}
            OptionValue::Numbers(least, most) => {
                let numbers: Vec<Option<f64>> = value
                    .split(',')
                    .map(|n| n.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect();
                if numbers.iter().any(Option::is_none) || !(least..=most).contains(&numbers.len()) {
                    return Err(bad(&if least == most {
                        "a number".to_owned()
                    } else {
                        format!("{least} to {most} comma-separated numbers")
                    }));
                }
            }
            OptionValue::Count => {
                value.parse::<u32>().map_err(|_| bad("a whole number"))?;
            }
            OptionValue::Layer => {
                // A layer the caller may not see does not exist for it.
                if !crate::layers::valid_layer_name(value)
                    || !state
                        .layers
                        .classification_of(value)
                        .is_some_and(|c| crate::access::current().may_see(c))
                {
                    return Err(bad(&format!("no layer '{}'", value.chars().take(64).collect::<String>())));
                }
            }
            // `none` removes the current version's rules.
            OptionValue::Rule if value == "none" => {}
            OptionValue::Rule => {
                value.parse::<cim_core::catalogue::AttributeRule>().map_err(|e| bad(&e))?;
            }
            OptionValue::Coarsen if value == "none" => {}
            OptionValue::Coarsen => {
                value.parse::<cim_core::catalogue::CoarsenRule>().map_err(|e| bad(&e))?;
            }
            OptionValue::Flag => match value.as_str() {
                "true" => {}
                "false" => continue,
                _ => return Err(bad("true or false")),
            },
        }
        match name {
            "classification" => {
                options.classification = value.parse::<Classification>().ok().map(|c| c.to_string())
            }
            "owner" => options.owner = Some(value.clone()),
            "update_cycle" => options.update_cycle = Some(value.clone()),
            "src_crs" => options.src_crs = Some(value.clone()),
            _ => options.more.push((name.to_owned(), value.clone())),
        }
    }
    Ok(options)
}

/// The classification a job would publish at: the one it gives, else the current
/// version's (a re-ingest inherits it), else public.
fn clearance_needed(
    options: &JobOptions,
    current: Option<Classification>,
) -> (Classification, Classification) {
    let set = options
        .classification
        .as_deref()
        .and_then(|c| c.parse::<Classification>().ok())
        .or(current)
        .unwrap_or(Classification::Public);
    (set, current.map_or(set, |c| c.max(set)))
}

/// Whether the caller may see a job: cleared for what it touched and for the
/// layer as it is now.
fn may_see_job(state: &AppState, job: &Job) -> bool {
    let caller = crate::access::current();
    let seen = caller.may_see(job.clearance)
        && state.layers.classification_of(&job.layer).is_none_or(|c| caller.may_see(c));
    if seen {
        crate::access::note_served(job.clearance);
    }
    seen
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

async fn submit(
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
        submitted_ms: crate::live::now_ms(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse_and_others_do_not() {
        let p = parse_progress(r#"{"progress":{"stage":"tiles","done":3,"total":12}}"#).expect("progress");
        assert_eq!((p.stage.as_str(), p.done, p.total, p.percent), ("tiles", 3, 12, 25.0));
        assert!(parse_progress("cim-ingest: roads.geojson: broken").is_none());
        assert!(parse_progress(r#"{"progress":{"stage":"x"}}"#).is_none());
    }

    #[test]
    fn the_job_list_is_recorded_whole_when_many_record_at_once() {
        let store = std::env::temp_dir().join(format!("cim-jobs-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let (queue, _next) = tokio::sync::mpsc::unbounded_channel();
        let jobs = Jobs {
            store: store.clone(),
            ingest_bin: PathBuf::from("cim-ingest"),
            max_upload_bytes: 1 << 20,
            jobs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            running: Mutex::new(HashMap::new()),
            queue,
            persisting: Mutex::new(()),
            time_limit: None,
        };
        let job = |id: u64| Job {
            id,
            layer: format!("layer{id}"),
            filename: "drop.geojson".into(),
            format: Some("GeoJSON".into()),
            bytes: 1,
            sha256: String::new(),
            options: JobOptions::default(),
            state: JobState::Queued,
            submitted_by: "feeder".into(),
            submitted_ms: 0,
            started_ms: None,
            finished_ms: None,
            progress: None,
            message: None,
            quality: None,
            clearance: Classification::Public,
        };
        // The upload handlers and the worker, each adding and recording.
        let failures = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for writer in 0..8u64 {
                let (jobs, failures) = (&jobs, &failures);
                scope.spawn(move || {
                    for k in 0..25u64 {
                        if let Ok(mut list) = jobs.jobs.lock() {
                            list.push(job(writer * 100 + k + 1));
                        }
                        if jobs.persist().is_err() {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failures.load(Ordering::Relaxed), 0, "every recording succeeds");
        let recorded: Vec<Job> =
            serde_json::from_slice(&std::fs::read(store.join(".jobs/jobs.json")).expect("jobs.json"))
                .expect("whole JSON");
        assert_eq!(recorded.len(), 200.min(KEPT_JOBS), "the last recording holds every job");
        assert!(!store.join(".jobs/jobs.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&store);
    }

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

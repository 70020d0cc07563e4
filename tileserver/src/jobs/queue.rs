//! The queue and its one worker: jobs recorded in `jobs.json`, run in order through
//! `cim-ingest`, their progress read from its JSON lines, stopped on cancel or past
//! the time limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cim_core::catalogue::Classification;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::ApiError;

use super::*;

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

    pub(super) fn uploads(&self) -> PathBuf {
        self.store.join(".uploads")
    }

    pub(super) fn upload_dir(&self, id: u64) -> PathBuf {
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

    pub(super) fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(job) = jobs.iter_mut().find(|j| j.id == id)
        {
            f(job);
        }
    }

    pub(super) fn get(&self, id: u64) -> Option<Job> {
        self.jobs.lock().ok()?.iter().find(|j| j.id == id).cloned()
    }

    /// Writes the job list (atomically: a temporary file renamed over the old one).
    pub(super) fn persist(&self) -> std::io::Result<()> {
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

    pub(super) fn persist_or_log(&self) {
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
            j.started_ms = Some(crate::clock::now_ms());
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
            j.finished_ms = Some(crate::clock::now_ms());
        });
        self.persist_or_log();
        let _ = std::fs::remove_dir_all(self.upload_dir(id));
    }

    /// Stops a job: a queued one never runs; a running one is interrupted.
    pub(super) fn cancel(self: &Arc<Self>, id: u64) -> Result<Job, ApiError> {
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
}

//! The audit log: one record per request (who, what, when, the answer), appended to
//! `STORE/.audit/audit.jsonl` and chained: each record carries the SHA-256 of the
//! one before it and its own, over its canonical JSON, so changing, removing or
//! reordering any record breaks every hash after it.
//!
//! `GET /api/audit?after=SEQ&limit=N` lists records and `GET /api/audit/verify`
//! checks the whole chain; both need the admin role.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::access::{Principal, Role};
use crate::http_cache::{Freshness, respond};
use crate::{ApiError, AppState};

/// Where the log sits inside a store.
pub const AUDIT_LOG: &str = ".audit/audit.jsonl";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Unix milliseconds.
    pub time_ms: i64,
    pub who: String,
    pub method: String,
    /// Path and query as asked.
    pub target: String,
    pub status: u16,
    pub prev: String,
    pub hash: String,
}

impl Record {
    /// SHA-256 over every field but `hash`, in a fixed order.
    /// The body is the compact JSON array of those fields, serialised from references
    /// (no `Value` copies); logs written before keep verifying (unit test).
    fn digest(&self) -> String {
        let body = (self.seq, self.time_ms, &self.who, &self.method, &self.target, self.status, &self.prev);
        let body = serde_json::to_vec(&body).unwrap_or_default();
        hex::encode(Sha256::digest(&body))
    }
}

/// A request target with any `access_token` value hidden: the log names the caller,
/// never their secret.
fn redacted(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else { return target.to_owned() };
    let query: Vec<String> =
        query
            .split('&')
            .map(|pair| {
                if pair.starts_with("access_token=") {
                    "access_token=***".to_owned()
                } else {
                    pair.to_owned()
                }
            })
            .collect();
    format!("{path}?{}", query.join("&"))
}

/// One request to record: who asked, how, for what, and the answer's status.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub who: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
}

/// When the log rolls over and what it forgets.
#[derive(Debug, Clone, Copy)]
pub struct AuditPolicy {
    /// The current file is closed and a new one begun past this size.
    pub max_file_bytes: u64,
    /// Closed files older than this are removed (the chain then starts from an
    /// anchor: the last record removed).
    pub keep_days: Option<f64>,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self { max_file_bytes: 256 << 20, keep_days: None }
    }
}

/// Where the chain of the kept records starts: after `seq`, from `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

struct Tail {
    seq: u64,
    hash: String,
    file: Option<std::fs::File>,
    bytes: u64,
    /// Sequence number of the current file's first record.
    first: u64,
}

/// The append-only log: closed files `audit-<first seq>.jsonl` and the current one.
pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    policy: AuditPolicy,
    tail: Mutex<Tail>,
    /// The lock that makes this server the log's only writer ([`AuditLog::claim`]).
    claimed: Mutex<Option<std::fs::File>>,
}

fn parse_line(line: String) -> Record {
    serde_json::from_str::<Record>(&line).unwrap_or(Record {
        seq: u64::MAX,
        time_ms: 0,
        who: String::new(),
        method: String::new(),
        target: line,
        status: 0,
        prev: String::new(),
        hash: String::new(),
    })
}

fn read_records(path: &Path) -> std::io::Result<Vec<Record>> {
    let file = std::fs::File::open(path)?;
    std::io::BufReader::new(file).lines().map(|l| l.map(parse_line)).collect()
}

impl AuditLog {
    /// Opens (or starts) the log, continuing the chain from its last record.
    pub fn open(store: &Path, policy: AuditPolicy) -> std::io::Result<Self> {
        Self::open_instance(store, None, policy)
    }

    /// The log of one of several servers sharing a store: each keeps its own chain
    /// in `.audit/INSTANCE/` (one chain cannot have two writers).
    pub fn open_instance(store: &Path, instance: Option<&str>, policy: AuditPolicy) -> std::io::Result<Self> {
        let path = match instance {
            None => store.join(AUDIT_LOG),
            Some(name) => {
                let valid = (1..=64).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !valid {
                    return Err(std::io::Error::other(format!(
                        "audit instance '{}': use 1-64 letters, digits, '-' and '_'",
                        name.chars().take(64).collect::<String>()
                    )));
                }
                store.join(".audit").join(name).join("audit.jsonl")
            }
        };
        let dir = path.parent().map_or_else(|| store.to_path_buf(), Path::to_path_buf);
        std::fs::create_dir_all(&dir)?;
        let log = Self {
            claimed: Mutex::new(None),
            dir,
            path: path.clone(),
            policy,
            tail: Mutex::new(Tail { seq: 0, hash: GENESIS.into(), file: None, bytes: 0, first: 1 }),
        };
        let (mut seq, mut hash) = match log.anchor() {
            Some(a) => (a.seq, a.hash),
            None => (0, GENESIS.to_owned()),
        };
        for closed in log.closed_files() {
            if let Some(r) = read_records(&closed)?.into_iter().rev().find(|r| r.seq != u64::MAX) {
                (seq, hash) = (r.seq, r.hash);
            }
        }
        let current = if path.exists() { read_records(&path)? } else { Vec::new() };
        let first = current.first().map_or(seq + 1, |r| r.seq);
        if let Some(r) = current.iter().rev().find(|r| r.seq != u64::MAX) {
            (seq, hash) = (r.seq, r.hash.clone());
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let bytes = file.metadata()?.len();
        if let Ok(mut tail) = log.tail.lock() {
            *tail = Tail { seq, hash, file: Some(file), bytes, first };
        }
        Ok(log)
    }

    /// Makes this process the log's only writer until it exits: a second server on
    /// the same store and instance is refused instead of interleaving the chain.
    pub fn claim(&self) -> Result<(), String> {
        let lock = self.dir.join(".writer.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| format!("{}: {e}", lock.display()))?;
        file.try_lock().map_err(|_| {
            format!(
                "the audit log in {} has another writer (a server on the same store): give each server its own --audit-instance",
                self.dir.display()
            )
        })?;
        if let Ok(mut claimed) = self.claimed.lock() {
            *claimed = Some(file);
        }
        Ok(())
    }

    fn anchor(&self) -> Option<Anchor> {
        serde_json::from_slice(&std::fs::read(self.dir.join("anchor.json")).ok()?).ok()
    }

    /// Closed files, oldest first.
    fn closed_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        files
    }

    /// Appends one record; the chain advances only if the write succeeded.
    pub fn append(&self, who: &str, method: &str, target: &str, status: u16) {
        self.append_all([Entry { who, method, target, status }]);
    }

    /// Appends records in order with one write: the broker audits every message of a
    /// group commit, and a system call per record halved its rate. The chain
    /// advances only if the write succeeded; records the caller has not yet
    /// acknowledged are lost together or kept together.
    pub fn append_all<'a>(&self, entries: impl IntoIterator<Item = Entry<'a>>) {
        let Ok(mut tail) = self.tail.lock() else { return };
        let (mut seq, mut hash) = (tail.seq, tail.hash.clone());
        let mut lines = String::new();
        let time_ms = crate::live::now_ms();
        for entry in entries {
            let mut record = Record {
                seq: seq + 1,
                time_ms,
                who: entry.who.to_owned(),
                method: entry.method.to_owned(),
                target: redacted(entry.target).chars().take(2048).collect(),
                status: entry.status,
                prev: hash,
                hash: String::new(),
            };
            record.hash = record.digest();
            let Ok(line) = serde_json::to_string(&record) else { return };
            lines.push_str(&line);
            lines.push('\n');
            seq = record.seq;
            hash = record.hash;
        }
        if lines.is_empty() {
            return;
        }
        match tail.file.as_mut().map(|f| f.write_all(lines.as_bytes())) {
            Some(Ok(())) => {
                tail.seq = seq;
                tail.hash = hash;
                tail.bytes += lines.len() as u64;
            }
            _ => {
                tracing::error!(path = %self.path.display(), "the audit log could not be written");
                return;
            }
        }
        if tail.bytes >= self.policy.max_file_bytes
            && let Err(e) = self.roll_over(&mut tail)
        {
            tracing::error!(path = %self.path.display(), error = %e, "the audit log could not roll over");
        }
    }

    /// Closes the current file under its first sequence number, starts a new one, and
    /// removes closed files past the retention, anchoring the chain at the last
    /// record removed.
    fn roll_over(&self, tail: &mut Tail) -> std::io::Result<()> {
        let closed = self.dir.join(format!("audit-{:012}.jsonl", tail.first));
        std::fs::rename(&self.path, &closed)?;
        tail.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        tail.bytes = 0;
        tail.first = tail.seq + 1;
        let Some(days) = self.policy.keep_days else { return Ok(()) };
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs_f64(days * 86_400.0);
        for old in self.closed_files() {
            let modified = std::fs::metadata(&old)?.modified()?;
            if modified >= cutoff {
                break;
            }
            if let Some(last) = read_records(&old)?.into_iter().rev().find(|r| r.seq != u64::MAX) {
                let anchor = Anchor { seq: last.seq, hash: last.hash };
                let tmp = self.dir.join("anchor.json.tmp");
                std::fs::write(&tmp, serde_json::to_vec(&anchor).unwrap_or_default())?;
                std::fs::rename(&tmp, self.dir.join("anchor.json"))?;
            }
            std::fs::remove_file(&old)?;
        }
        Ok(())
    }

    /// Every kept record in order, and where their chain starts.
    pub fn records(&self) -> std::io::Result<(Option<Anchor>, Vec<Record>)> {
        let mut out = Vec::new();
        for closed in self.closed_files() {
            out.extend(read_records(&closed)?);
        }
        if self.path.exists() {
            out.extend(read_records(&self.path)?);
        }
        Ok((self.anchor(), out))
    }
}

/// Which records an admin asks for: all given conditions hold.
#[derive(Debug, Default)]
pub struct RecordFilter {
    pub who: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    /// A substring of the path and query (a layer name, a tile address).
    pub target: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl RecordFilter {
    fn matches(&self, r: &Record) -> bool {
        self.who.as_ref().is_none_or(|w| &r.who == w)
            && self.method.as_ref().is_none_or(|m| r.method.eq_ignore_ascii_case(m))
            && self.status.is_none_or(|s| r.status == s)
            && self.target.as_ref().is_none_or(|t| r.target.contains(t.as_str()))
            && self.from_ms.is_none_or(|f| r.time_ms >= f)
            && self.to_ms.is_none_or(|t| r.time_ms <= t)
    }
}

impl AuditLog {
    /// Up to `limit` records after sequence number `after` that match, reading only
    /// the files that can hold them (files are named by their first record's number)
    /// and stopping once the page is full; and the last sequence number written.
    pub fn page(
        &self,
        after: u64,
        limit: usize,
        filter: &RecordFilter,
    ) -> std::io::Result<(Vec<Record>, u64)> {
        let (last, current_first) = self.tail.lock().map_or((0, 1), |t| (t.seq, t.first));
        let first_of = |p: &Path| -> u64 {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("audit-")?.strip_suffix(".jsonl")?.parse().ok())
                .unwrap_or(0)
        };
        let mut files: Vec<(u64, PathBuf)> =
            self.closed_files().into_iter().map(|p| (first_of(&p), p)).collect();
        files.push((current_first, self.path.clone()));
        let mut out = Vec::new();
        for (k, (_, path)) in files.iter().enumerate() {
            // Every record of this file precedes the next file's first.
            if files.get(k + 1).is_some_and(|(next_first, _)| *next_first <= after + 1) {
                continue;
            }
            let Ok(file) = std::fs::File::open(path) else { continue };
            for line in std::io::BufReader::new(file).lines() {
                let r = parse_line(line?);
                if r.seq != u64::MAX && r.seq > after && filter.matches(&r) {
                    out.push(r);
                    if out.len() >= limit {
                        return Ok((out, last));
                    }
                }
            }
        }
        Ok((out, last))
    }
}

/// The first record (by position, from 1) where the chain breaks, if any; the chain
/// starts at the anchor when older records were removed.
pub fn verify(anchor: Option<&Anchor>, records: &[Record]) -> Option<usize> {
    let (mut seq, mut prev) = anchor.map_or((0, GENESIS.to_owned()), |a| (a.seq, a.hash.clone()));
    for (k, r) in records.iter().enumerate() {
        if r.prev != prev || r.digest() != r.hash || r.seq != seq + 1 {
            return Some(k + 1);
        }
        seq = r.seq;
        prev = r.hash.clone();
    }
    None
}

/// Records every request once its answer is known.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
    let who = crate::access::current().name;
    let response = next.run(request).await;
    if let Some(log) = &state.audit {
        log.append(&who, &method, &target, response.status().as_u16());
    }
    response
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/audit", get(list)).route("/api/audit/verify", get(check))
}

fn admin_log(state: &AppState) -> Result<Arc<AuditLog>, ApiError> {
    let caller: Principal = crate::access::current();
    if caller.role != Role::Admin {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    state.audit.clone().ok_or_else(|| ApiError::NotFound("this server keeps no audit log".into()))
}

#[derive(Deserialize)]
struct ListParams {
    after: Option<u64>,
    limit: Option<usize>,
    // Not a flattened RecordFilter: query strings carry numbers as text, which
    // serde's flatten cannot turn back into numbers.
    who: Option<String>,
    method: Option<String>,
    status: Option<u16>,
    target: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let after = p.after.unwrap_or(0);
    let filter = RecordFilter {
        who: p.who,
        method: p.method,
        status: p.status,
        target: p.target,
        from_ms: p.from_ms,
        to_ms: p.to_ms,
    };
    let (page, last) = tokio::task::spawn_blocking(move || log.page(after, limit, &filter))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // The next page starts after the last record here (or, when none matched, after
    // everything written so far).
    let next_after = page.last().map_or(last, |r| r.seq);
    let doc = json!({"records": page, "last_seq": last, "next_after": next_after});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

async fn check(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let (anchor, records) = tokio::task::spawn_blocking(move || log.records())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let broken = verify(anchor.as_ref(), &records);
    let doc = json!({
        "records": records.len(),
        "intact": broken.is_none(),
        "first_broken": broken,
        "starts_after": anchor.map(|a| a.seq),
    });
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cim-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_digest_hashes_the_same_bytes_as_the_logs_written_before() {
        let record = Record {
            seq: 18_446_744_073_709_551_615,
            time_ms: -1_764_000_000_000,
            who: "ops \"night\" 值班 \u{7}\\".into(),
            method: "MQTT PUBLISH".into(),
            target: "cim/sensors/weir-3?access_token=***&q=\u{1f600}\n".into(),
            status: 503,
            prev: GENESIS.into(),
            hash: String::new(),
        };
        // The form every record before this change was chained with.
        let before = json!([
            record.seq,
            record.time_ms,
            record.who,
            record.method,
            record.target,
            record.status,
            record.prev
        ]);
        assert_eq!(record.digest(), hex::encode(Sha256::digest(before.to_string().as_bytes())));
    }

    #[test]
    fn a_batch_is_one_chain_with_the_single_appends_around_it() {
        let dir = temp("batch");
        let log = AuditLog::open(&dir, AuditPolicy::default()).expect("open");
        log.append("ops", "GET", "/api/layers?access_token=secret", 200);
        let topics: Vec<String> = (0..500).map(|k| format!("cim/sensors/s{k}")).collect();
        log.append_all(topics.iter().map(|t| Entry {
            who: "gauge",
            method: "MQTT PUBLISH",
            target: t,
            status: 200,
        }));
        log.append_all([]);
        log.append("ops", "GET", "/healthz", 200);
        let (anchor, records) = log.records().expect("records");
        assert_eq!(records.len(), 502);
        assert_eq!(verify(anchor.as_ref(), &records), None, "the chain holds across the batch");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=502).collect::<Vec<u64>>());
        assert_eq!(records[0].target, "/api/layers?access_token=***");
        assert_eq!(records[1].target, "cim/sensors/s0");
        assert_eq!(records[500].target, "cim/sensors/s499");
        assert_eq!(records[501].target, "/healthz");
        let mut tampered = records.clone();
        tampered[250].status = 404;
        assert_eq!(verify(anchor.as_ref(), &tampered), Some(251));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_writer_per_chain_and_instances_keep_their_own() {
        let dir = temp("claim");
        let first = AuditLog::open(&dir, AuditPolicy::default()).expect("open");
        first.claim().expect("the first server claims the log");
        let second = AuditLog::open(&dir, AuditPolicy::default()).expect("open");
        let refused = second.claim().expect_err("a second writer is refused");
        assert!(refused.contains("--audit-instance"), "{refused}");
        let other = AuditLog::open_instance(&dir, Some("east-2"), AuditPolicy::default()).expect("open");
        other.claim().expect("another instance has its own chain");
        other.append("public", "GET", "/healthz", 200);
        first.append("public", "GET", "/api/layers", 200);
        assert_eq!(other.records().expect("records").1.len(), 1);
        assert_eq!(first.records().expect("records").1.len(), 1);
        assert!(dir.join(".audit/east-2/audit.jsonl").exists());
        assert!(AuditLog::open_instance(&dir, Some("../x"), AuditPolicy::default()).is_err());
        drop(first);
        second.claim().expect("free again once the first is gone");
    }

    #[test]
    fn pages_skip_files_before_the_cursor_and_filters_select_records() {
        let dir = temp("page");
        let log = AuditLog::open(&dir, AuditPolicy { max_file_bytes: 2000, keep_days: None }).expect("open");
        for k in 0..60u16 {
            log.append(
                if k % 3 == 0 { "planner" } else { "public" },
                "GET",
                &format!("/tiles/l{k}/1/2/3"),
                200 + k % 2,
            );
        }
        assert!(log.closed_files().len() >= 3, "rotation made several files");
        let (page, last) = log.page(20, 10, &RecordFilter::default()).expect("page");
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), (21..=30).collect::<Vec<_>>());
        assert_eq!(last, 60);
        let planner = RecordFilter { who: Some("planner".into()), status: Some(201), ..Default::default() };
        let (page, _) = log.page(0, 100, &planner).expect("page");
        // k % 3 == 0 and k odd: k = 3, 9, ..., 57 -> seq k + 1.
        assert_eq!(
            page.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (3..60).step_by(6).map(|k| k + 1).collect::<Vec<_>>()
        );
        let one = RecordFilter { target: Some("/l42/".into()), ..Default::default() };
        assert_eq!(log.page(0, 100, &one).expect("page").0.iter().map(|r| r.seq).collect::<Vec<_>>(), [43]);
        // Files wholly before the cursor are not read: a damaged early file does not matter.
        let first = log.closed_files()[0].clone();
        std::fs::write(&first, "garbage\n").expect("write");
        assert_eq!(log.page(55, 100, &RecordFilter::default()).expect("page").0.len(), 5);
    }

    #[test]
    fn the_chain_continues_across_reopening_and_any_edit_breaks_it() {
        let dir = temp("chain");
        let log = AuditLog::open(&dir, AuditPolicy::default()).expect("open");
        log.append("public", "GET", "/api/layers", 200);
        log.append("admin", "GET", "/collections/secret", 200);
        drop(log);
        let log = AuditLog::open(&dir, AuditPolicy::default()).expect("reopen");
        log.append("wall", "GET", "/collections/secret", 404);
        let (anchor, records) = log.records().expect("records");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(verify(anchor.as_ref(), &records), None);
        let text = std::fs::read_to_string(dir.join(AUDIT_LOG)).expect("read");
        std::fs::write(dir.join(AUDIT_LOG), text.replacen("\"status\":404", "\"status\":200", 1))
            .expect("write");
        assert_eq!(verify(None, &log.records().expect("records").1), Some(3));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(dir.join(AUDIT_LOG), format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert_eq!(
            verify(None, &log.records().expect("records").1),
            Some(2),
            "a removed record breaks the next"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_in_addresses_are_not_logged() {
        assert_eq!(redacted("/a?x=1&access_token=s3cret&y=2"), "/a?x=1&access_token=***&y=2");
        assert_eq!(redacted("/a"), "/a");
    }

    #[test]
    fn files_roll_over_and_old_ones_go_leaving_an_anchored_chain() {
        let dir = temp("roll");
        // Files of about three records; closed files older than zero days go at once.
        let policy = AuditPolicy { max_file_bytes: 500, keep_days: None };
        let log = AuditLog::open(&dir, policy).expect("open");
        for k in 0..10 {
            log.append("public", "GET", &format!("/tiles/a/{k}"), 200);
        }
        let (anchor, records) = log.records().expect("records");
        assert_eq!(records.len(), 10, "nothing lost across files");
        assert!(log.closed_files().len() >= 2, "rolled over");
        assert_eq!((anchor, verify(None, &records)), (None, None));
        drop(log);
        let log =
            AuditLog::open(&dir, AuditPolicy { max_file_bytes: 500, keep_days: Some(0.0) }).expect("reopen");
        for k in 10..14 {
            log.append("public", "GET", &format!("/tiles/a/{k}"), 200);
        }
        let (anchor, records) = log.records().expect("records");
        let anchor = anchor.expect("older records removed behind an anchor");
        assert!(
            records.len() < 14 && records[0].seq == anchor.seq + 1,
            "{} kept after {}",
            records.len(),
            anchor.seq
        );
        assert_eq!(verify(Some(&anchor), &records), None, "the kept chain holds from the anchor");
        assert_eq!(records.last().map(|r| r.seq), Some(14));
        assert_eq!(verify(None, &records), Some(1), "but not from the start");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

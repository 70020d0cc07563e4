//! The audit log: one record per request (who, what, when, the answer), appended to
//! `STORE/.audit/audit.jsonl` and chained: each record carries the SHA-256 of the
//! one before it and its own, over its canonical JSON, so changing, removing or
//! reordering any record breaks every hash after it.
//!
//! `GET /api/audit?after=SEQ&limit=N` lists records and `GET /api/audit/verify`
//! checks the whole chain; both need the admin role.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    fn digest(&self) -> String {
        let body =
            json!([self.seq, self.time_ms, self.who, self.method, self.target, self.status, self.prev]);
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    }
}

/// The append-only log.
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<(u64, String, Option<std::fs::File>)>,
}

impl AuditLog {
    /// Opens (or starts) the log, continuing the chain from its last record.
    pub fn open(store: &Path) -> std::io::Result<Self> {
        let path = store.join(AUDIT_LOG);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (mut seq, mut prev) = (0, GENESIS.to_owned());
        if let Ok(file) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(file).lines() {
                if let Ok(r) = serde_json::from_str::<Record>(&line?) {
                    (seq, prev) = (r.seq, r.hash);
                }
            }
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self { path, tail: Mutex::new((seq, prev, Some(file))) })
    }

    /// Appends one record; the chain advances only if the write succeeded.
    pub fn append(&self, who: &str, method: &str, target: &str, status: u16) {
        let Ok(mut tail) = self.tail.lock() else { return };
        let mut record = Record {
            seq: tail.0 + 1,
            time_ms: crate::live::now_ms(),
            who: who.to_owned(),
            method: method.to_owned(),
            target: target.chars().take(2048).collect(),
            status,
            prev: tail.1.clone(),
            hash: String::new(),
        };
        record.hash = record.digest();
        let Ok(line) = serde_json::to_string(&record) else { return };
        let written = tail.2.as_mut().map(|f| f.write_all(format!("{line}\n").as_bytes()));
        match written {
            Some(Ok(())) => {
                tail.0 = record.seq;
                tail.1 = record.hash;
            }
            _ => tracing::error!(path = %self.path.display(), "the audit log could not be written"),
        }
    }

    /// Every record, in order.
    pub fn records(&self) -> std::io::Result<Vec<Record>> {
        let file = std::fs::File::open(&self.path)?;
        let mut out = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => out.push(r),
                Err(_) => out.push(Record {
                    seq: u64::MAX,
                    time_ms: 0,
                    who: String::new(),
                    method: String::new(),
                    target: line,
                    status: 0,
                    prev: String::new(),
                    hash: String::new(),
                }),
            }
        }
        Ok(out)
    }
}

/// The first record (by position, from 1) where the chain breaks, if any.
pub fn verify(records: &[Record]) -> Option<usize> {
    let mut prev = GENESIS.to_owned();
    for (k, r) in records.iter().enumerate() {
        if r.prev != prev || r.digest() != r.hash || r.seq != k as u64 + 1 {
            return Some(k + 1);
        }
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

fn admin_log(state: &AppState) -> Result<&AuditLog, ApiError> {
    let caller: Principal = crate::access::current();
    if caller.role != Role::Admin {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    state.audit.as_deref().ok_or_else(|| ApiError::NotFound("this server keeps no audit log".into()))
}

#[derive(Deserialize)]
struct ListParams {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let records = log.records().map_err(|e| ApiError::Internal(e.to_string()))?;
    let limit = p.limit.unwrap_or(1000).min(10_000);
    let after = p.after.unwrap_or(0);
    let page: Vec<&Record> = records.iter().filter(|r| r.seq > after).take(limit).collect();
    let doc = json!({"records": page, "total": records.len()});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

async fn check(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let records = log.records().map_err(|e| ApiError::Internal(e.to_string()))?;
    let broken = verify(&records);
    let doc = json!({"records": records.len(), "intact": broken.is_none(), "first_broken": broken});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_continues_across_reopening_and_any_edit_breaks_it() {
        let dir = std::env::temp_dir().join(format!("cim-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = AuditLog::open(&dir).expect("open");
        log.append("public", "GET", "/api/layers", 200);
        log.append("admin", "GET", "/collections/secret", 200);
        drop(log);
        let log = AuditLog::open(&dir).expect("reopen");
        log.append("wall", "GET", "/collections/secret", 404);
        let records = log.records().expect("records");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(verify(&records), None);
        let text = std::fs::read_to_string(dir.join(AUDIT_LOG)).expect("read");
        std::fs::write(dir.join(AUDIT_LOG), text.replacen("\"status\":404", "\"status\":200", 1))
            .expect("write");
        assert_eq!(verify(&log.records().expect("records")), Some(3));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(dir.join(AUDIT_LOG), format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert_eq!(verify(&log.records().expect("records")), Some(2), "a removed record breaks the next");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

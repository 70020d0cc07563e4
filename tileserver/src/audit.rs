//! The audit log: one record per request (who, what, when, the answer), appended to
//! `STORE/.audit/audit.jsonl` and chained: each record carries the SHA-256 of the
//! one before it and its own, over its canonical JSON, so changing, removing or
//! reordering any record breaks every hash after it.
//!
//! `GET /api/audit?after=SEQ&limit=N` lists records and `GET /api/audit/verify`
//! checks the whole chain; both need the admin role.
//!
//! A chain alone is only as good as the file it is in: whoever can write the store
//! can cut its end, empty it, or edit a record and recompute every hash after it.
//! So, with `--audit-key FILE` (a secret kept outside the store) each record also
//! carries an HMAC of its hash that nobody without the key can recompute; with
//! `--audit-signing-key FILE` (an Ed25519 seed, outside the store) the server signs
//! its chain's head once a minute and at shutdown into `checkpoints.jsonl` beside
//! the chain and at `GET /api/audit/checkpoints`, where a monitor can keep them:
//! verify then reports a log that ends before a checkpoint, or differs from one,
//! as broken, and a server finding its log shorter than its last checkpoint
//! continues the numbering from the checkpoint instead of starting again at 1.
//!
//! Tile, 3D Tiles and terrain reads, the bulk of the traffic, are recorded as one
//! record per caller, layer, kind and answer per interval (`--audit-aggregate-s`,
//! 60 s by default) naming how many there were and when, so the log grows with
//! the callers, not with the tiles they fetch.

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
    /// HMAC-SHA256 of `hash` under the server's audit key, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
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

/// When the log rolls over, what it forgets, what it folds together, and the keys
/// that make tampering show.
#[derive(Clone)]
pub struct AuditPolicy {
    /// The current file is closed and a new one begun past this size.
    pub max_file_bytes: u64,
    /// Closed files older than this are removed (the chain then starts from an
    /// anchor: the last record removed); `None` keeps everything.
    pub keep_days: Option<f64>,
    /// Bulk reads (tiles, 3D Tiles, terrain) folded into one record per caller,
    /// layer, kind and status per this interval; `None` records each.
    pub aggregate: Option<std::time::Duration>,
    /// The secret each record's MAC is keyed with.
    pub key: Option<Arc<[u8]>>,
    /// Signs the chain's head into checkpoints.
    pub signer: Option<Arc<ed25519_dalek::SigningKey>>,
}

/// Closed files are kept this long unless told otherwise.
pub const DEFAULT_KEEP_DAYS: f64 = 90.0;
/// Bulk reads are folded per this many seconds unless told otherwise.
pub const DEFAULT_AGGREGATE_S: u64 = 60;

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 << 20,
            keep_days: Some(DEFAULT_KEEP_DAYS),
            aggregate: Some(std::time::Duration::from_secs(DEFAULT_AGGREGATE_S)),
            key: None,
            signer: None,
        }
    }
}

/// A signed statement of the chain's head: records up to `seq` end in `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub time_ms: i64,
    /// Ed25519 over `checkpoint_message`, hex.
    pub signature: String,
    /// The verifying key, hex.
    pub public_key: String,
}

impl Checkpoint {
    fn message(seq: u64, hash: &str, time_ms: i64) -> Vec<u8> {
        format!("cim-audit-checkpoint\n{seq}\n{hash}\n{time_ms}").into_bytes()
    }

    /// Whether the signature holds for the key it names.
    pub fn signed(&self) -> bool {
        let key = hex::decode(&self.public_key).ok().and_then(|k| <[u8; 32]>::try_from(k).ok());
        let sig = hex::decode(&self.signature).ok().and_then(|s| <[u8; 64]>::try_from(s).ok());
        let (Some(key), Some(sig)) = (key, sig) else { return false };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else { return false };
        key.verify_strict(
            &Self::message(self.seq, &self.hash, self.time_ms),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

/// Which bulk reads fold together: who, method, target prefix, status.
type FoldKey = (String, String, String, u16);
/// Bulk reads waiting to be recorded: how many, first and last (ms).
type Folded = std::collections::HashMap<FoldKey, (u64, i64, i64)>;

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
    folded: Mutex<(Folded, std::time::Instant)>,
    /// The sequence number last checkpointed.
    checkpointed: Mutex<u64>,
    /// Records a checkpoint vouched for that the log no longer holds, found at
    /// start: (first missing, last missing).
    gap: Option<(u64, u64)>,
}

/// Where a chain's checkpoints are kept, beside its files.
const CHECKPOINTS: &str = "checkpoints.jsonl";

/// The last complete record of a file, read from its end.
fn last_record(path: &Path) -> std::io::Result<Option<Record>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity((len - start) as usize);
        Read::by_ref(&mut file).take(len - start).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        // The first line of a window that starts mid-file may be cut: skip it.
        let lines: Vec<&str> = text.lines().skip(usize::from(start > 0)).collect();
        if let Some(r) = lines.iter().rev().filter_map(|l| serde_json::from_str::<Record>(l).ok()).next() {
            return Ok(Some(r));
        }
        if start == 0 {
            return Ok(None);
        }
        window *= 4;
    }
}

/// The first record of a file, from its first line.
fn first_record(path: &Path) -> Option<Record> {
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
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
        mac: None,
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
        let mut log = Self {
            claimed: Mutex::new(None),
            dir,
            path: path.clone(),
            policy,
            tail: Mutex::new(Tail { seq: 0, hash: GENESIS.into(), file: None, bytes: 0, first: 1 }),
            folded: Mutex::new((Folded::new(), std::time::Instant::now())),
            checkpointed: Mutex::new(0),
            gap: None,
        };
        // Only the ends are read: the newest record of the current file, else of the
        // newest closed file, else the anchor (start-up no longer parses history).
        let (mut seq, mut hash) = match log.anchor() {
            Some(a) => (a.seq, a.hash),
            None => (0, GENESIS.to_owned()),
        };
        let current = last_record(&path)?;
        let newest = match current.clone() {
            Some(r) => Some(r),
            None => match log.closed_files().last() {
                Some(closed) => last_record(closed)?,
                None => None,
            },
        };
        if let Some(r) = newest {
            (seq, hash) = (r.seq, r.hash);
        }
        // A log that ends before what was signed has lost records: continue after
        // the checkpoint (so the numbering never restarts) and remember the gap.
        if let Some(c) = log.checkpoints()?.into_iter().last()
            && c.seq > seq
        {
            tracing::error!(log_ends = seq, checkpoint = c.seq, dir = %log.dir.display(), "the audit log is shorter than its last checkpoint");
            log.gap = Some((seq + 1, c.seq));
            (seq, hash) = (c.seq, c.hash);
        }
        let first = match &current {
            Some(_) => first_record(&path).map_or(seq + 1, |r| r.seq),
            None => seq + 1,
        };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let bytes = file.metadata()?.len();
        if let Ok(mut tail) = log.tail.lock() {
            *tail = Tail { seq, hash, file: Some(file), bytes, first };
        }
        if let Ok(mut c) = log.checkpointed.lock() {
            *c = seq;
        }
        Ok(log)
    }

    /// Every checkpoint of this chain, oldest first.
    pub fn checkpoints(&self) -> std::io::Result<Vec<Checkpoint>> {
        let path = self.dir.join(CHECKPOINTS);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// Signs the chain's head into the checkpoint file, if it moved since the last
    /// checkpoint and the server has a signing key.
    pub fn checkpoint(&self) -> std::io::Result<Option<Checkpoint>> {
        let Some(signer) = &self.policy.signer else { return Ok(None) };
        let (seq, hash) = match self.tail.lock() {
            Ok(t) => (t.seq, t.hash.clone()),
            Err(_) => return Ok(None),
        };
        let Ok(mut last) = self.checkpointed.lock() else { return Ok(None) };
        if seq == *last && self.dir.join(CHECKPOINTS).exists() {
            return Ok(None);
        }
        let time_ms = crate::clock::now_ms();
        let signature =
            ed25519_dalek::Signer::sign(signer.as_ref(), &Checkpoint::message(seq, &hash, time_ms));
        let c = Checkpoint {
            seq,
            hash,
            time_ms,
            signature: hex::encode(signature.to_bytes()),
            public_key: hex::encode(signer.verifying_key().to_bytes()),
        };
        let mut line = serde_json::to_string(&c).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(CHECKPOINTS))?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        *last = seq;
        Ok(Some(c))
    }

    /// The verifying key of this server's checkpoints, hex.
    pub fn public_key(&self) -> Option<String> {
        self.policy.signer.as_ref().map(|s| hex::encode(s.verifying_key().to_bytes()))
    }

    /// Records a bulk read: folded with the others of its caller, layer, kind and
    /// status until the interval ends ([`AuditLog::flush_due`]), or at once when
    /// the policy folds nothing.
    pub fn record_bulk(&self, who: &str, method: &str, prefix: &str, target: &str, status: u16) {
        if self.policy.aggregate.is_none() {
            self.append(who, method, target, status);
            return;
        }
        let now = crate::clock::now_ms();
        if let Ok(mut folded) = self.folded.lock() {
            let e = folded
                .0
                .entry((who.to_owned(), method.to_owned(), prefix.to_owned(), status))
                .or_insert((0, now, now));
            e.0 += 1;
            e.2 = now;
        }
        self.flush_due();
    }

    /// Writes the folded bulk reads once their interval is over.
    pub fn flush_due(&self) {
        let Some(every) = self.policy.aggregate else { return };
        let due = self.folded.lock().is_ok_and(|f| f.1.elapsed() >= every && !f.0.is_empty());
        if due {
            self.flush_folded();
        }
    }

    /// Writes every folded bulk read now (at shutdown, say).
    pub fn flush_folded(&self) {
        let taken: Vec<(FoldKey, (u64, i64, i64))> = match self.folded.lock() {
            Ok(mut f) => {
                f.1 = std::time::Instant::now();
                let mut taken: Vec<_> = f.0.drain().collect();
                taken.sort_by(|a, b| a.1.1.cmp(&b.1.1).then_with(|| a.0.cmp(&b.0)));
                taken
            }
            Err(_) => return,
        };
        let targets: Vec<String> = taken
            .iter()
            .map(|((_, _, prefix, _), (n, first, last))| {
                format!(
                    "{prefix}* ({n} requests, {} to {})",
                    cim_core::sensors::format_rfc3339_ms(*first),
                    cim_core::sensors::format_rfc3339_ms(*last)
                )
            })
            .collect();
        self.append_all(taken.iter().zip(&targets).map(|(((who, method, _, status), _), target)| Entry {
            who: who.as_str(),
            method: method.as_str(),
            target: target.as_str(),
            status: *status,
        }));
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
        let time_ms = crate::clock::now_ms();
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
                mac: None,
            };
            record.hash = record.digest();
            if let Some(key) = &self.policy.key {
                record.mac = Some(hex::encode(hmac_sha256(key, record.hash.as_bytes())));
            }
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

/// What a full check of a chain found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub records: usize,
    pub intact: bool,
    /// Position (from 1) of the first record whose chain breaks.
    pub first_broken: Option<usize>,
    /// The chain starts after this sequence number (older records removed).
    pub starts_after: Option<u64>,
    /// Whether records are checked against the server's audit key.
    pub keyed: bool,
    /// Sequence number of the first record whose MAC is missing or wrong.
    pub first_bad_mac: Option<u64>,
    pub checkpoints_checked: usize,
    /// Everything wrong, in words.
    pub problems: Vec<String>,
}

/// Checks a chain against everything that vouches for it: its own hashes, the MAC
/// key, the checkpoints (this server's and one a monitor kept), and a gap found at
/// start.
pub fn verify_all(
    anchor: Option<&Anchor>,
    records: &[Record],
    key: Option<&[u8]>,
    checkpoints: &[Checkpoint],
    gap: Option<(u64, u64)>,
) -> Verdict {
    let mut v = Verdict {
        records: records.len(),
        starts_after: anchor.map(|a| a.seq),
        keyed: key.is_some(),
        ..Verdict::default()
    };
    v.first_broken = verify(anchor, records);
    if let Some(k) = v.first_broken {
        v.problems.push(format!("the chain breaks at record {k} of {}", records.len()));
    }
    if let Some(key) = key {
        let bad = records
            .iter()
            .find(|r| r.mac.as_deref() != Some(hex::encode(hmac_sha256(key, r.hash.as_bytes())).as_str()));
        if let Some(r) = bad {
            v.first_bad_mac = Some(r.seq);
            let missing = records.iter().filter(|r| r.mac.is_none()).count();
            v.problems.push(format!(
                "record {} has {} MAC under the audit key ({missing} records carry none)",
                r.seq,
                if r.mac.is_some() { "a wrong" } else { "no" }
            ));
        }
    }
    let last = records.last().map_or_else(|| anchor.map_or(0, |a| a.seq), |r| r.seq);
    let kept_from = anchor.map_or(1, |a| a.seq + 1);
    for c in checkpoints {
        v.checkpoints_checked += 1;
        if !c.signed() {
            v.problems.push(format!("the checkpoint at record {} is not validly signed", c.seq));
            continue;
        }
        if c.seq < kept_from {
            if anchor.is_some_and(|a| a.seq == c.seq && a.hash != c.hash) {
                v.problems.push(format!("the anchor at record {} differs from its checkpoint", c.seq));
            }
            continue;
        }
        match records.iter().find(|r| r.seq == c.seq) {
            Some(r) if r.hash == c.hash => {}
            Some(_) => v.problems.push(format!("record {} differs from the checkpoint signed for it", c.seq)),
            None if c.seq > last => v.problems.push(format!(
                "the log ends at record {last}, but a checkpoint signed at {} vouches for {} records",
                cim_core::sensors::format_rfc3339_ms(c.time_ms),
                c.seq
            )),
            None => v.problems.push(format!("record {} that a checkpoint vouches for is missing", c.seq)),
        }
    }
    if let Some((from, to)) = gap {
        v.problems.push(format!(
            "records {from} to {to} were missing when the server started (the log was cut, emptied or removed)"
        ));
    }
    v.intact = v.problems.is_empty();
    v
}

/// Records every request once its answer is known.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
    let who = crate::access::current().name;
    let response = next.run(request).await;
    if let Some(log) = &state.audit {
        let status = response.status().as_u16();
        match bulk_prefix(&method, &target, status) {
            Some(prefix) => log.record_bulk(&who, &method, &prefix, &target, status),
            None => log.append(&who, &method, &target, status),
        }
    }
    response
}

/// The layer and kind of a bulk read (a served tile, 3D Tiles file or terrain
/// tile), as the prefix its folded record names: `/tiles/LAYER/`,
/// `/3dtiles/LAYER/`, `/terrain/LAYER/`. Refusals and errors are recorded one by one.
fn bulk_prefix(method: &str, target: &str, status: u16) -> Option<String> {
    if !(method == "GET" || method == "HEAD") || !matches!(status, 200 | 204 | 304) {
        return None;
    }
    let path = target.split('?').next()?;
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (kind, layer, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let bulk = match kind {
        "tiles" => rest.ends_with(".mvt") || rest.ends_with(".pbf"),
        "3dtiles" => rest.ends_with(".glb") || rest.starts_with("content/"),
        "terrain" => rest.ends_with(".terrain"),
        _ => false,
    };
    bulk.then(|| format!("/{kind}/{layer}/"))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/audit", get(list))
        .route("/api/audit/verify", get(check))
        .route("/api/audit/checkpoints", get(checkpoints))
}

fn admin_log(state: &AppState) -> Result<Arc<AuditLog>, ApiError> {
    let caller: Principal = crate::access::current();
    if caller.role != Role::Admin {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    // Who read what is for the admin alone: no cache keeps it.
    crate::access::note_served(cim_core::catalogue::Classification::Restricted);
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

#[derive(Deserialize)]
struct CheckParams {
    /// A checkpoint a monitor kept: the chain must still hold record `seq` with
    /// `hash`, and signed `signature` with this server's key if given.
    seq: Option<u64>,
    hash: Option<String>,
    time_ms: Option<i64>,
    signature: Option<String>,
}

async fn check(
    State(state): State<AppState>,
    Query(p): Query<CheckParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let kept = match (p.seq, p.hash) {
        (Some(seq), Some(hash)) => Some((seq, hash, p.time_ms, p.signature)),
        (None, None) => None,
        _ => return Err(ApiError::BadRequest("a kept checkpoint needs both seq and hash".into())),
    };
    let verdict = tokio::task::spawn_blocking(move || -> std::io::Result<Verdict> {
        let (anchor, records) = log.records()?;
        let mut checkpoints = log.checkpoints()?;
        let mut monitor_problem = None;
        if let Some((seq, hash, time_ms, signature)) = kept {
            match (time_ms, signature, log.public_key()) {
                (Some(time_ms), Some(signature), Some(public_key)) => {
                    checkpoints.push(Checkpoint { seq, hash, time_ms, signature, public_key })
                }
                _ => match records.iter().find(|r| r.seq == seq) {
                    Some(r) if r.hash == hash => {}
                    Some(_) => {
                        monitor_problem = Some(format!("record {seq} differs from the monitor's checkpoint"))
                    }
                    None => {
                        monitor_problem = Some(format!(
                            "record {seq}, which the monitor's checkpoint names, is not in the log"
                        ))
                    }
                },
            }
        }
        let mut v = verify_all(anchor.as_ref(), &records, log.policy.key.as_deref(), &checkpoints, log.gap);
        if let Some(problem) = monitor_problem {
            v.problems.push(problem);
            v.intact = false;
        }
        Ok(v)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let doc = serde_json::to_value(&verdict).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

/// The chain's signed checkpoints and the key they verify with, for a monitor to
/// keep elsewhere and hand back to `verify`.
async fn checkpoints(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let log = admin_log(&state)?;
    let public_key = log.public_key();
    let list = tokio::task::spawn_blocking(move || log.checkpoints())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let doc = json!({"public_key": public_key, "checkpoints": list});
    Ok(respond(&headers, doc.to_string().into_bytes(), "application/json", None, None, Freshness::Listing))
}

/// Flushes folded bulk reads when their interval ends and signs a checkpoint each
/// `every`, until the process ends.
pub fn spawn_keeper(log: Arc<AuditLog>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut since = std::time::Instant::now();
        loop {
            tick.tick().await;
            let log = log.clone();
            let sign = since.elapsed() >= every;
            if sign {
                since = std::time::Instant::now();
            }
            let _ = tokio::task::spawn_blocking(move || {
                log.flush_due();
                if sign && let Err(e) = log.checkpoint() {
                    tracing::error!(error = %e, "the audit checkpoint could not be written");
                }
            })
            .await;
        }
    });
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
            mac: None,
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
        let log = AuditLog::open(
            &dir,
            AuditPolicy { max_file_bytes: 2000, keep_days: None, ..AuditPolicy::default() },
        )
        .expect("open");
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
        let policy = AuditPolicy { max_file_bytes: 500, keep_days: None, ..AuditPolicy::default() };
        let log = AuditLog::open(&dir, policy).expect("open");
        for k in 0..10 {
            log.append("public", "GET", &format!("/tiles/a/{k}"), 200);
        }
        let (anchor, records) = log.records().expect("records");
        assert_eq!(records.len(), 10, "nothing lost across files");
        assert!(log.closed_files().len() >= 2, "rolled over");
        assert_eq!((anchor, verify(None, &records)), (None, None));
        drop(log);
        let log = AuditLog::open(
            &dir,
            AuditPolicy { max_file_bytes: 500, keep_days: Some(0.0), ..AuditPolicy::default() },
        )
        .expect("reopen");
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

    fn keyed(dir: &Path) -> AuditPolicy {
        let _ = dir;
        AuditPolicy {
            key: Some(Arc::from(&b"a secret kept outside the store, 32+ bytes"[..])),
            signer: Some(Arc::new(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))),
            aggregate: None,
            ..AuditPolicy::default()
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        assert_eq!(
            hex::encode(hmac_sha256(&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn cutting_emptying_deleting_or_rewriting_the_log_is_caught_with_the_keys() {
        let verdict = |log: &AuditLog| {
            let (anchor, records) = log.records().expect("records");
            let checkpoints = log.checkpoints().expect("checkpoints");
            verify_all(anchor.as_ref(), &records, log.policy.key.as_deref(), &checkpoints, log.gap)
        };
        let fill = |log: &AuditLog, n: u64| {
            for k in 0..n {
                log.append("ops", "GET", &format!("/api/layers?k={k}"), 200);
            }
        };
        // Untouched: intact, with MACs and a signed checkpoint.
        let dir = temp("keys-intact");
        let log = AuditLog::open(&dir, keyed(&dir)).expect("open");
        fill(&log, 50);
        let c = log.checkpoint().expect("write").expect("a checkpoint");
        assert!(c.signed() && c.seq == 50);
        let v = verdict(&log);
        assert!(v.intact && v.keyed && v.checkpoints_checked == 1, "{v:?}");
        drop(log);

        // The last 20 records cut off: the checkpoint says 50, the log ends at 30.
        let text = std::fs::read_to_string(dir.join(AUDIT_LOG)).expect("read");
        let kept: String = text.lines().take(30).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(AUDIT_LOG), &kept).expect("write");
        let log = AuditLog::open(&dir, keyed(&dir)).expect("reopen");
        let v = verdict(&log);
        assert!(!v.intact && v.problems.iter().any(|p| p.contains("ends at record 30")), "{v:?}");
        assert!(v.problems.iter().any(|p| p.contains("records 31 to 50 were missing")), "{v:?}");
        // And the server goes on numbering after the checkpoint, not from 31 or 1.
        log.append("ops", "GET", "/healthz", 200);
        assert_eq!(log.records().expect("records").1.last().map(|r| r.seq), Some(51));
        drop(log);

        // Emptied, and deleted: both broken, numbering continues.
        for wipe in [true, false] {
            if wipe {
                std::fs::write(dir.join(AUDIT_LOG), "").expect("empty");
            } else {
                std::fs::remove_file(dir.join(AUDIT_LOG)).expect("delete");
            }
            let log = AuditLog::open(&dir, keyed(&dir)).expect("reopen");
            let v = verdict(&log);
            assert!(!v.intact, "wipe={wipe}: {v:?}");
            log.append("ops", "GET", "/healthz", 200);
            assert!(log.records().expect("records").1[0].seq > 50, "wipe={wipe}");
        }

        // Edited and every hash after recomputed: the MACs no longer match.
        let dir = temp("keys-rewrite");
        let log = AuditLog::open(&dir, keyed(&dir)).expect("open");
        fill(&log, 10);
        let (_, mut records) = log.records().expect("records");
        drop(log);
        records[3].status = 404;
        let mut prev = GENESIS.to_owned();
        let mut text = String::new();
        for r in &mut records {
            r.prev = prev.clone();
            r.hash = r.digest();
            prev = r.hash.clone();
            text.push_str(&serde_json::to_string(r).expect("json"));
            text.push('\n');
        }
        std::fs::write(dir.join(AUDIT_LOG), &text).expect("write");
        let log = AuditLog::open(&dir, keyed(&dir)).expect("reopen");
        let v = verdict(&log);
        assert_eq!(verify(None, &records), None, "the bare chain is fooled");
        assert!(!v.intact && v.first_bad_mac == Some(4), "but the keyed check is not: {v:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bulk_reads_fold_into_one_record_per_caller_layer_and_answer() {
        let dir = temp("fold");
        let policy =
            AuditPolicy { aggregate: Some(std::time::Duration::from_secs(3600)), ..AuditPolicy::default() };
        let log = AuditLog::open(&dir, policy).expect("open");
        for k in 0..500 {
            let target = format!("/tiles/roads/14/{k}/7.mvt");
            let prefix = bulk_prefix("GET", &target, 200).expect("a tile");
            log.record_bulk(if k % 5 == 0 { "planner" } else { "public" }, "GET", &prefix, &target, 200);
        }
        log.append("public", "GET", "/api/layers", 200);
        log.flush_folded();
        let (_, records) = log.records().expect("records");
        assert_eq!(records.len(), 3, "{records:?}");
        let public = records
            .iter()
            .find(|r| r.who == "public" && r.target.starts_with("/tiles/roads/*"))
            .expect("folded");
        assert!(public.target.contains("(400 requests"), "{}", public.target);
        assert!(records.iter().any(|r| r.who == "planner" && r.target.contains("(100 requests")));
        assert_eq!(bulk_prefix("GET", "/tiles/roads.json", 200), None, "TileJSON is not bulk");
        assert_eq!(
            bulk_prefix("GET", "/tiles/roads/1/2/3.mvt", 404),
            None,
            "refusals are recorded one by one"
        );
        assert_eq!(
            bulk_prefix("GET", "/3dtiles/city/content/r0.glb", 200).as_deref(),
            Some("/3dtiles/city/")
        );
        assert_eq!(bulk_prefix("GET", "/3dtiles/city/tileset.json", 200), None);
        assert_eq!(bulk_prefix("GET", "/terrain/dem/3/1/2.terrain", 200).as_deref(), Some("/terrain/dem/"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn start_up_reads_only_the_ends_of_the_history() {
        let dir = temp("tail");
        let log = AuditLog::open(&dir, AuditPolicy { max_file_bytes: 4000, ..AuditPolicy::default() })
            .expect("open");
        for k in 0..200 {
            log.append("public", "GET", &format!("/api/layers?k={k}"), 200);
        }
        drop(log);
        // Damage the middle of every closed file but the newest: a start-up that
        // parsed history would stumble, one that reads the ends does not.
        let closed = AuditLog::open(&dir, AuditPolicy::default()).expect("open").closed_files();
        assert!(closed.len() > 3);
        for f in &closed[..closed.len() - 1] {
            std::fs::write(f, "not json at all\n").expect("write");
        }
        let log = AuditLog::open(&dir, AuditPolicy { max_file_bytes: 4000, ..AuditPolicy::default() })
            .expect("reopen");
        log.append("public", "GET", "/healthz", 200);
        assert_eq!(log.records().expect("records").1.last().map(|r| r.seq), Some(201));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

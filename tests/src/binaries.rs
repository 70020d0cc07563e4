//! The real binaries, scratch stores and the sample data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `target/<profile>/`, where cargo put the workspace binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..").to_path_buf()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// The shared sample data beside the checkout.
pub fn data(rel: &str) -> PathBuf {
    let p = repo_root().join("../shared/data").join(rel);
    assert!(p.exists(), "sample data missing: {} (tests read ../shared/data)", p.display());
    p
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "cim-e2e-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn ingest(store: &Path, layer: &str, args: &[&str], files: &[&Path]) -> Outcome {
    let out = Command::new(bin_dir().join("cim-ingest"))
        .arg("--store")
        .arg(store)
        .arg("--layer")
        .arg(layer)
        .args(args)
        .args(files)
        .output()
        .expect("run cim-ingest (build it first: cargo build --workspace)");
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ingest_ok(store: &Path, layer: &str, args: &[&str], files: &[&Path]) -> String {
    let o = ingest(store, layer, args, files);
    assert!(o.ok, "ingest {layer} failed: {}", o.stderr);
    o.stdout
}

/// A running `cim-server`, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    /// `HOST:PORT` of the embedded MQTT broker, when started with `--mqtt-listen`.
    pub mqtt: Option<String>,
    /// Held open: the server prints its addresses there.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    pub fn start(store: &Path) -> Self {
        Self::start_with(store, &[])
    }

    pub fn start_with(store: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(bin_dir().join("cim-server"))
            .arg("--store")
            .arg(store)
            .arg("--bind")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run cim-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("server prints its address");
        let url = line.trim().rsplit(' ').next().expect("url").to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {line}");
        let mut mqtt = None;
        if extra.contains(&"--mqtt-listen") {
            line.clear();
            reader.read_line(&mut line).expect("server prints its MQTT address");
            let addr = line.trim().rsplit("mqtt://").next().expect("mqtt address").to_owned();
            mqtt = Some(addr);
        }
        Self { child, url, mqtt, _stdout: reader }
    }
}

impl Server {
    /// SIGKILL, no chance to flush or clean up: what a power cut looks like.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under a directory.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

/// Every feature a layer version stores, in id order, read from its feature store
/// (`features.cimf`) as GeoJSON.
pub fn stored_features(layer_dir: &Path) -> Vec<serde_json::Value> {
    use cim_core::feature_file::FeatureFile;
    let bytes = std::fs::read(layer_dir.join(cim_core::catalogue::FEATURES_FILE)).expect("feature store");
    let file = FeatureFile::open(bytes.as_slice(), bytes.len() as u64).expect("a feature store");
    (0..file.len())
        .map(|i| serde_json::from_slice(&file.record(i).expect("record")).expect("GeoJSON feature"))
        .collect()
}

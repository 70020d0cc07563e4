//! The whole ingest on fuzzed bytes saved under a name that picks the importer.
//! An `Err` is a clean refusal; the fuzzer looks for panics, crashes, hangs and leaks.

use std::path::PathBuf;

fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("cim-fuzz-{}", std::process::id()))
}

/// Ingests `bytes` as the file `name` into a scratch store, with `configure`
/// setting options beyond the defaults.
pub fn ingest_bytes(name: &str, bytes: &[u8], configure: impl FnOnce(&mut cim_ingest::IngestOptions)) {
    let dir = scratch();
    let input = dir.join(name);
    if std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&input, bytes)).is_err() {
        return;
    }
    let mut options = cim_ingest::IngestOptions::new(dir.join("store"), "fuzz", vec![input]);
    // Few zoom levels: the fuzzer is after the readers, not tiling time.
    options.max_zoom = 4;
    configure(&mut options);
    let _ = cim_ingest::ingest(&options);
}

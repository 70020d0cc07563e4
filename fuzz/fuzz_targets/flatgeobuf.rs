//! FlatGeobuf: header, index and features through the whole ingest.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/ingest_file.rs"]
mod ingest_file;

fuzz_target!(|data: &[u8]| {
    ingest_file::ingest_bytes("input.fgb", data, |_| {});
});

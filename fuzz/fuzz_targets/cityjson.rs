//! CityJSON (1.0 to 2.0) through the whole city model ingest; CityJSONSeq when the
//! input's first byte is odd.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/ingest_file.rs"]
mod ingest_file;

fuzz_target!(|data: &[u8]| {
    let name = if data.first().is_some_and(|b| b % 2 == 1) { "input.city.jsonl" } else { "input.city.json" };
    ingest_file::ingest_bytes(name, data, |_| {});
});

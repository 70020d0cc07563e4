//! IFC: the model, placements, georeference and geometry through the whole BIM ingest.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/ingest_file.rs"]
mod ingest_file;

fuzz_target!(|data: &[u8]| {
    let anchored = data.len() % 2 == 0;
    ingest_file::ingest_bytes("input.ifc", data, |o| {
        if anchored {
            o.anchor = "24.94,60.17,0".parse().ok();
        }
    });
});

//! LAS/LAZ: header, VLRs (CRS) and points through the whole point cloud ingest.
//! Half the inputs are anchored, so points are read even without a usable CRS.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/ingest_file.rs"]
mod ingest_file;

fuzz_target!(|data: &[u8]| {
    let anchored = data.len() % 2 == 0;
    ingest_file::ingest_bytes("input.las", data, |o| {
        if anchored {
            o.anchor = "24.94,60.17,0".parse().ok();
        }
    });
});

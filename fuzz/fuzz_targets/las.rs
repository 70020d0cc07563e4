//! LAS/LAZ: header, VLRs (CRS) and points through the whole point cloud ingest.
//! Half the inputs are anchored, so points are read even without a usable CRS.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/ingest_file.rs"]
mod ingest_file;

/// libFuzzer's panic hook aborts at once, before any `catch_unwind` runs. laz 0.13
/// panics on some corrupt streams (an empty chunk table indexed, GPS-time deltas
/// overflowing) and cim-ingest catches those around each decoder call, turning them
/// into an error naming the file: the binary's hook, wrapped around the fuzzer's,
/// lets those unwind to that guard. A laz panic the guard misses still aborts
/// (libfuzzer-sys's own `catch_unwind` around each run); every other panic keeps
/// the fuzzer's hook.
fn let_decoder_panics_reach_the_ingest_guard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(cim_ingest::pointcloud::route_decoder_panics_to_their_guard);
}

fuzz_target!(|data: &[u8]| {
    let_decoder_panics_reach_the_ingest_guard();
    let anchored = data.len() % 2 == 0;
    ingest_file::ingest_bytes("input.las", data, |o| {
        if anchored {
            o.anchor = "24.94,60.17,0".parse().ok();
        }
    });
});

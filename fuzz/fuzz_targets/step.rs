//! The STEP (ISO 10303-21) reader alone: header and every data instance.
#![no_main]

use cim_ingest::ifc::step::StepReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = StepReader::new(std::io::Cursor::new(data));
    if reader.header().is_err() {
        return;
    }
    while let Ok(Some(_)) = reader.next_instance() {}
});

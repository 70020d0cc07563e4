//! `cim-e2e`: what the end-to-end tests in `tests/` share. They drive the real
//! `cim-ingest`, `cim-server`, `cim-simulate` and `cim-viewer` binaries on the sample
//! data in `../shared/data` and check what comes out with decoders and tools nobody
//! here wrote (martin's `e2e-tests` is the model).

pub mod binaries;
pub mod http;
pub mod oracles;
pub mod pixels;
pub mod places;

pub use binaries::*;
pub use http::*;
pub use oracles::*;
pub use pixels::*;
pub use places::*;

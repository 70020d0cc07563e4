//! IFC (ISO 16739: IFC 2x3, IFC4, IFC4x3) building models.
//!
//! [`step`] reads the ISO 10303-21 encoding, [`model`] indexes the instances and
//! answers structure and property questions, [`geometry`] turns bodies into
//! triangles, and [`georef`] finds where the model stands on the Earth. The BIM
//! layer writer (`crate::bim`) puts them together.

pub mod class_names;
pub mod geometry;
pub mod georef;
pub mod model;
pub mod step;

pub use model::IfcModel;

#[derive(Debug, thiserror::Error)]
pub enum IfcError {
    #[error("{0}")]
    Step(#[from] step::StepError),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Georeference(String),
}

/// Cheap test on a file's first bytes.
pub fn looks_like_step(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.trim_start_matches('\u{feff}').trim_start().starts_with("ISO-10303-21")
}

//! One ingest run: which kind of layer its inputs make, that kind's build, and the
//! shared begin and finish around it ([`crate::run`]).
//!
//! A layer kind is one module exporting a [`Kind`] (from [`crate::run`], so the kinds
//! import nothing from here) and one arm in [`kind_of`].

use std::path::Path;

use cim_core::formats::DropFormat;

use crate::IngestError;
use crate::options::IngestOptions;
use crate::run::{IngestSummary, Kind, LayerRun};

/// The kind of layer one input feeds, from what it holds (or, where its first bytes
/// do not tell, its name).
fn kind_of(path: &Path) -> Result<&'static Kind, IngestError> {
    Ok(match crate::sniff::input_format(path)? {
        Some(DropFormat::Las | DropFormat::Laz) => &crate::pointcloud::KIND,
        Some(DropFormat::Ifc) => &crate::bim::KIND,
        Some(DropFormat::CityJson | DropFormat::CityJsonSeq) => &crate::citymodel::KIND,
        Some(DropFormat::GeoTiff | DropFormat::AsciiGrid | DropFormat::OtherRaster) => &crate::terrain::KIND,
        Some(DropFormat::GeoPackage) if crate::terrain::holds_raster(path) => &crate::terrain::KIND,
        _ => &crate::vector::KIND,
    })
}

/// Runs one ingest; on any error the previously published layer stays as it was.
pub fn ingest(options: &IngestOptions) -> Result<IngestSummary, IngestError> {
    crate::store::validate_layer_name(&options.layer)?;
    let Some(first) = options.files.first() else {
        return Err(IngestError::NoFeatures { layer: options.layer.clone(), why: "no input files".into() });
    };
    let kind = kind_of(first)?;
    for path in &options.files[1..] {
        let other = kind_of(path)?;
        if !std::ptr::eq(other, kind) {
            return Err(IngestError::source(
                path,
                format!(
                    "{} and {} go into separate layers; ingest them in separate runs",
                    kind.inputs, other.inputs
                ),
            ));
        }
    }
    check_options(options, kind, first)?;
    let mut run = LayerRun::begin(options);
    let built = (kind.build)(&mut run)?;
    run.finish(built)
}

/// Refuses options the kind cannot honour.
fn check_options(options: &IngestOptions, kind: &Kind, first: &Path) -> Result<(), IngestError> {
    if options.coarsen.is_some() && !kind.takes.coarsen {
        return Err(IngestError::source(
            first,
            format!("--coarsen applies to vector layers, not {} layers", kind.name),
        ));
    }
    if let Some(rule) = options.attribute_rules.first().filter(|_| !kind.takes.attribute_rules) {
        return Err(IngestError::source(
            first,
            format!(
                "--protect {}: attribute rules apply to vector and city model layers, not {} layers",
                rule.attribute, kind.name
            ),
        ));
    }
    if options.anchor.is_some() && !kind.takes.anchor {
        return Err(IngestError::source(
            first,
            format!("--anchor places IFC models and point clouds only; {} carry their CRS", kind.inputs),
        ));
    }
    Ok(())
}

//! What an input is, told once for the whole ingest by [`cim_core::formats`] (which
//! the server's uploads are checked by as well): from its first bytes, or where
//! they do not tell, its name.

use std::path::Path;

use cim_core::formats::{DropFormat, SNIFF_BYTES, sniff};

use crate::IngestError;

/// The input's format; `None` when neither its first bytes nor its name tell.
pub fn input_format(path: &Path) -> Result<Option<DropFormat>, IngestError> {
    if crate::source::archive_of(path).is_some() {
        return Ok(Some(DropFormat::Zip));
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let file = std::fs::File::open(path).map_err(|e| IngestError::source(path, e))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, SNIFF_BYTES as u64), &mut head)
        .map_err(|e| IngestError::source(path, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    Ok(sniff(&head).or_else(|| DropFormat::from_name(name)))
}

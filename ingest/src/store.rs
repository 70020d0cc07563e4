//! The store directory and its atomic layer swap.
//!
//! ```text
//! STORE/<layer>            symlink → .versions/<layer>@<version>
//! STORE/.versions/<layer>@<version>/   catalogue.json, quality.json, tiles.pmtiles, ...
//! ```
//! A layer is built in `.versions/<layer>@<version>.partial`, renamed when complete,
//! and published by renaming a fresh symlink over the old one: readers see the old
//! version or the new one, never a mix. The previous version is kept for readers
//! that still hold it open; older ones are removed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::IngestError;

pub const VERSIONS_DIR: &str = ".versions";
const PARTIAL: &str = ".partial";

pub fn validate_layer_name(name: &str) -> Result<(), IngestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-')
        && name != cim_core::catalogue::SENSORS_LAYER;
    if ok { Ok(()) } else { Err(IngestError::BadLayerName(name.to_owned())) }
}

/// A layer version being built; removed on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    store: PathBuf,
    layer: String,
    version: String,
    committed: bool,
}

impl Staging {
    pub fn begin(store: &Path, layer: &str, version: &str) -> Result<Self, IngestError> {
        validate_layer_name(layer)?;
        let versions = store.join(VERSIONS_DIR);
        fs::create_dir_all(&versions).map_err(|e| IngestError::store(&versions, e))?;
        // Leftovers of an interrupted earlier run of this layer.
        if let Ok(entries) = fs::read_dir(&versions) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{layer}@")) && name.ends_with(PARTIAL) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = versions.join(format!("{layer}@{version}{PARTIAL}"));
        fs::create_dir_all(&dir).map_err(|e| IngestError::store(&dir, e))?;
        Ok(Self {
            dir,
            store: store.to_path_buf(),
            layer: layer.to_owned(),
            version: version.to_owned(),
            committed: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Publishes the layer; returns the path the layer is served from.
    pub fn commit(mut self) -> Result<PathBuf, IngestError> {
        let final_name = format!("{}@{}", self.layer, self.version);
        let final_dir = self.store.join(VERSIONS_DIR).join(&final_name);
        fs::rename(&self.dir, &final_dir).map_err(|e| IngestError::store(&final_dir, e))?;
        self.dir = final_dir;
        let link = self.store.join(&self.layer);
        let tmp_link = self.store.join(format!(".{}.swap", self.layer));
        let _ = fs::remove_file(&tmp_link);
        symlink(&Path::new(VERSIONS_DIR).join(&final_name), &tmp_link)
            .map_err(|e| IngestError::store(&tmp_link, e))?;
        let previous = fs::read_link(&link).ok();
        fs::rename(&tmp_link, &link).map_err(|e| IngestError::store(&link, e))?;
        self.committed = true;
        prune(&self.store, &self.layer, &final_name, previous.as_deref());
        Ok(link)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

/// Removes versions of `layer` other than the current and the one just replaced.
fn prune(store: &Path, layer: &str, current: &str, previous: Option<&Path>) {
    let previous = previous.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let Ok(entries) = fs::read_dir(store.join(VERSIONS_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.strip_prefix(layer).is_some_and(|rest| rest.starts_with('@'));
        if ours && name != current && Some(&name) != previous.as_ref() && !name.ends_with(PARTIAL) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_swaps_and_drop_discards() {
        let store = std::env::temp_dir().join(format!("cim-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&store);
        let first = Staging::begin(&store, "roads", "v1").expect("stage");
        fs::write(first.dir().join("x"), "one").expect("write");
        let link = first.commit().expect("commit");
        assert_eq!(fs::read_to_string(link.join("x")).expect("read"), "one");
        {
            let failed = Staging::begin(&store, "roads", "v2").expect("stage");
            fs::write(failed.dir().join("x"), "half").expect("write");
            // Dropped without commit: an error or interrupt mid-build.
        }
        assert_eq!(fs::read_to_string(link.join("x")).expect("read"), "one");
        let second = Staging::begin(&store, "roads", "v3").expect("stage");
        fs::write(second.dir().join("x"), "three").expect("write");
        second.commit().expect("commit");
        assert_eq!(fs::read_to_string(link.join("x")).expect("read"), "three");
        let third = Staging::begin(&store, "roads", "v4").expect("stage");
        third.commit().expect("commit");
        let left: Vec<_> =
            fs::read_dir(store.join(VERSIONS_DIR)).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "current and previous kept: {left:?}");
        let _ = fs::remove_dir_all(&store);
    }

    #[test]
    fn rejects_unsafe_layer_names() {
        for bad in ["", "../x", "a/b", ".hidden", "-flag", "名", "sensors"] {
            assert!(validate_layer_name(bad).is_err(), "{bad}");
        }
        assert!(validate_layer_name("helsinki_buildings-2").is_ok());
    }
}

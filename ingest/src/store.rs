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

use cim_core::catalogue::PARTIAL_SUFFIX as PARTIAL;
pub use cim_core::catalogue::VERSIONS_DIR;

pub fn validate_layer_name(name: &str) -> Result<(), IngestError> {
    if cim_core::catalogue::is_layer_name(name) {
        Ok(())
    } else {
        Err(IngestError::BadLayerName(name.to_owned()))
    }
}

/// A layer version being built; removed on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    store: PathBuf,
    layer: String,
    version: String,
    committed: bool,
    /// Versions kept after publishing, the new one included.
    keep: usize,
}

/// Versions kept by default: the current one and the one it replaced.
pub const DEFAULT_KEEP_VERSIONS: usize = 2;

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
            keep: DEFAULT_KEEP_VERSIONS,
        })
    }

    /// Keeps this many versions (at least two) once published, for rollback.
    pub fn keeping(mut self, versions: usize) -> Self {
        self.keep = versions.max(DEFAULT_KEEP_VERSIONS);
        self
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
        let (link, previous) = point_at(&self.store, &self.layer, &final_name)?;
        self.committed = true;
        prune(&self.store, &self.layer, &final_name, previous.as_deref(), self.keep);
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

/// Renames a fresh symlink over `STORE/<layer>` so it points at `.versions/<name>`;
/// returns the link and what it pointed at before.
fn point_at(store: &Path, layer: &str, name: &str) -> Result<(PathBuf, Option<PathBuf>), IngestError> {
    let link = store.join(layer);
    let tmp_link = store.join(format!(".{layer}.swap"));
    let _ = fs::remove_file(&tmp_link);
    symlink(&Path::new(VERSIONS_DIR).join(name), &tmp_link).map_err(|e| IngestError::store(&tmp_link, e))?;
    let previous = fs::read_link(&link).ok();
    fs::rename(&tmp_link, &link).map_err(|e| IngestError::store(&link, e))?;
    Ok((link, previous))
}

/// The published versions of a layer kept in the store, oldest first (version names
/// start with their UTC time).
pub fn versions(store: &Path, layer: &str) -> Vec<String> {
    let names: Vec<String> = fs::read_dir(store.join(VERSIONS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cim_core::catalogue::layer_versions(layer, names.iter().map(String::as_str))
}

/// The version a layer is served from now.
pub fn current_version(store: &Path, layer: &str) -> Option<String> {
    let target = fs::read_link(store.join(layer)).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    name.strip_prefix(layer)?.strip_prefix('@').map(str::to_owned)
}

/// Serves a kept earlier version again: `to`, or the one before the current.
/// Returns the version now served.
pub fn rollback(store: &Path, layer: &str, to: Option<&str>) -> Result<String, IngestError> {
    validate_layer_name(layer)?;
    let kept = versions(store, layer);
    let current = current_version(store, layer)
        .ok_or_else(|| IngestError::source(&store.join(layer), "no published layer of that name"))?;
    let target = match to {
        Some(v) => kept.iter().find(|k| k.as_str() == v).cloned().ok_or_else(|| {
            IngestError::source(
                &store.join(layer),
                format!("version {v} is not kept (kept: {})", kept.join(", ")),
            )
        })?,
        None => kept.iter().rev().find(|k| k.as_str() < current.as_str()).cloned().ok_or_else(|| {
            IngestError::source(&store.join(layer), format!("no version older than {current} is kept"))
        })?,
    };
    point_at(store, layer, &format!("{layer}@{target}"))?;
    Ok(target)
}

/// Keeps the `keep` newest versions of `layer` plus the current and the one just
/// replaced; removes the rest.
fn prune(store: &Path, layer: &str, current: &str, previous: Option<&Path>, keep: usize) {
    let previous = previous.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let kept = versions(store, layer);
    let drop = kept.len().saturating_sub(keep);
    for version in &kept[..drop] {
        let name = format!("{layer}@{version}");
        if name != current && Some(&name) != previous.as_ref() {
            let _ = fs::remove_dir_all(store.join(VERSIONS_DIR).join(name));
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
        assert_eq!(versions(&store, "roads"), ["v3", "v4"]);
        assert_eq!(rollback(&store, "roads", None).expect("back"), "v3");
        assert_eq!(fs::read_to_string(link.join("x")).expect("read"), "three");
        assert!(
            rollback(&store, "roads", None)
                .expect_err("nothing older")
                .to_string()
                .contains("no version older than v3")
        );
        let fifth = Staging::begin(&store, "roads", "v5").expect("stage").keeping(3);
        fifth.commit().expect("commit");
        assert_eq!(versions(&store, "roads"), ["v3", "v4", "v5"]);
        assert_eq!(rollback(&store, "roads", Some("v4")).expect("to v4"), "v4");
        assert!(rollback(&store, "roads", Some("v1")).is_err(), "pruned versions are gone");
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

//! Writing a tileset as JSON files no larger than a budget: its largest subtrees go
//! to external tilesets beside `tileset.json`, each referenced by a tile without
//! content of its own, so a client reads the tree a part at a time (a city's single
//! `tileset.json` grew to 16.9 MB at 2 million buildings).
//!
//! External tilesets sit in the same directory as `tileset.json`, so the content
//! URIs inside them need no rewriting. A reference tile keeps the subtree's bounding
//! volume and takes its parent's geometric error: it is opened exactly when the
//! parent refines, as the subtree's root was before the cut.

use std::path::Path;

use cim_core::tileset::{Content, Tile, Tileset};

use crate::IngestError;

/// The largest tileset JSON written by default, bytes.
pub const MAX_TILESET_BYTES: usize = 1_000_000;

/// Writes `tileset` as `dir/tileset.json` plus external tilesets
/// (`dir/tileset-N.json`), none over `budget` bytes; returns how many external
/// tilesets were written.
pub fn write(dir: &Path, mut tileset: Tileset, budget: usize) -> Result<usize, IngestError> {
    let mut cut = Cut { dir, asset: &tileset.asset.clone(), budget, written: 0 };
    cut.split(&mut tileset.root)?;
    write_json(&dir.join("tileset.json"), &tileset)?;
    Ok(cut.written)
}

fn write_json(path: &Path, tileset: &Tileset) -> Result<(), IngestError> {
    let bytes =
        serde_json::to_vec(tileset).map_err(|e| IngestError::store(path, std::io::Error::other(e)))?;
    std::fs::write(path, bytes).map_err(|e| IngestError::store(path, e))
}

/// Bytes a tile adds to its document, not counting its children: its own JSON, the
/// `"children":[]` around them and a separating comma.
fn own_bytes(tile: &Tile) -> usize {
    let bare = Tile {
        bounding_volume: tile.bounding_volume.clone(),
        geometric_error: tile.geometric_error,
        refine: tile.refine,
        content: tile.content.clone(),
        transform: tile.transform,
        children: Vec::new(),
    };
    let text = serde_json::to_vec(&bare).map_or(0, |t| t.len());
    text + if tile.children.is_empty() { 1 } else { 14 }
}

fn is_reference(tile: &Tile) -> bool {
    tile.content.as_ref().is_some_and(|c| c.uri.ends_with(".json"))
}

struct Cut<'a> {
    dir: &'a Path,
    asset: &'a cim_core::tileset::Asset,
    budget: usize,
    written: usize,
}

impl Cut<'_> {
    /// Cuts `tile`'s subtree until what stays in its document fits the budget;
    /// returns the bytes that stay.
    fn split(&mut self, tile: &mut Tile) -> Result<usize, IngestError> {
        let mut sizes = Vec::with_capacity(tile.children.len());
        for child in &mut tile.children {
            sizes.push(self.split(child)?);
        }
        let mut total = own_bytes(tile) + sizes.iter().sum::<usize>();
        while total > self.budget {
            let Some(k) =
                (0..sizes.len()).filter(|&k| !is_reference(&tile.children[k])).max_by_key(|&k| sizes[k])
            else {
                break;
            };
            self.written += 1;
            let name = format!("tileset-{}.json", self.written);
            let reference = Tile {
                bounding_volume: tile.children[k].bounding_volume.clone(),
                geometric_error: tile.geometric_error,
                refine: None,
                content: Some(Content { uri: name.clone(), bounding_volume: None }),
                transform: None,
                children: Vec::new(),
            };
            let root = std::mem::replace(&mut tile.children[k], reference);
            let external = Tileset { asset: self.asset.clone(), geometric_error: root.geometric_error, root };
            write_json(&self.dir.join(&name), &external)?;
            let stays = own_bytes(&tile.children[k]);
            total = total - sizes[k] + stays;
            sizes[k] = stays;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_core::tileset::{Asset, BoundingVolume, Refine};

    fn tree(depth: usize, name: &str) -> Tile {
        Tile {
            bounding_volume: BoundingVolume::region([0.1, 0.2, 0.3, 0.4, 0.0, depth as f64]),
            geometric_error: depth as f64 * 10.0,
            refine: Some(Refine::Add),
            content: Some(Content { uri: format!("content/{name}.glb"), bounding_volume: None }),
            transform: None,
            children: if depth == 0 {
                Vec::new()
            } else {
                (0..4).map(|q| tree(depth - 1, &format!("{name}{q}"))).collect()
            },
        }
    }

    fn contents(dir: &Path, file: &str, out: &mut Vec<String>) {
        let t: Tileset = serde_json::from_slice(&std::fs::read(dir.join(file)).expect("read")).expect("json");
        fn walk(dir: &Path, t: &Tile, parent: f64, out: &mut Vec<String>) {
            assert!(t.geometric_error <= parent, "{} > {parent}", t.geometric_error);
            match &t.content {
                Some(c) if c.uri.ends_with(".json") => {
                    assert!(t.children.is_empty(), "a reference has no children");
                    assert_eq!(t.geometric_error, parent, "a reference takes its parent's error");
                    contents(dir, &c.uri, out);
                }
                Some(c) => out.push(c.uri.clone()),
                None => {}
            }
            for child in &t.children {
                walk(dir, child, t.geometric_error, out);
            }
        }
        walk(dir, &t.root, t.geometric_error, out);
    }

    #[test]
    fn a_large_tree_is_cut_into_files_under_the_budget_and_keeps_every_tile() {
        let dir = std::env::temp_dir().join(format!("cim-tileset-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let root = tree(5, "r");
        let asset = Asset { version: "1.1".into(), tileset_version: None, generator: None };
        let whole =
            serde_json::to_vec(&Tileset { asset: asset.clone(), geometric_error: 60.0, root: root.clone() })
                .expect("json")
                .len();
        let budget = 10_000;
        assert!(whole > 10 * budget, "{whole} bytes: a tree worth cutting");
        let files =
            write(&dir, Tileset { asset, geometric_error: 60.0, root: root.clone() }, budget).expect("write");
        assert!(files > 10, "{files} external tilesets");
        let mut sizes = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("list").flatten() {
            sizes.push(entry.metadata().expect("meta").len() as usize);
        }
        assert_eq!(sizes.len(), files + 1);
        assert!(sizes.iter().all(|&s| s <= budget), "{sizes:?}");
        let mut found = Vec::new();
        contents(&dir, "tileset.json", &mut found);
        let mut expected = Vec::new();
        fn all(t: &Tile, out: &mut Vec<String>) {
            out.extend(t.content.iter().map(|c| c.uri.clone()));
            t.children.iter().for_each(|c| all(c, out));
        }
        all(&root, &mut expected);
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "every content once");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}

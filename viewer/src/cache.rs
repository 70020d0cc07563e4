//! The tile cache: content stays while used, and least recently used tiles go first
//! once the memory budget is exceeded. Tiles in use this frame are never evicted.

use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
pub struct TileCache {
    budget: usize,
    used: usize,
    entries: HashMap<usize, (usize, u64)>,
}

impl TileCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self { budget: budget_bytes, ..Default::default() }
    }

    pub fn contains(&self, tile: usize) -> bool {
        self.entries.contains_key(&tile)
    }

    /// What the resident tiles count against the budget: bytes, or points for point clouds.
    pub fn used(&self) -> usize {
        self.used
    }

    /// What one tile counts against the budget (bytes, or points for point clouds).
    pub fn cost(&self, tile: usize) -> Option<usize> {
        self.entries.get(&tile).map(|e| e.0)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, tile: usize, bytes: usize, frame: u64) {
        if let Some((old, _)) = self.entries.insert(tile, (bytes, frame)) {
            self.used -= old;
        }
        self.used += bytes;
    }

    pub fn touch(&mut self, tile: usize, frame: u64) {
        if let Some(e) = self.entries.get_mut(&tile) {
            e.1 = frame;
        }
    }

    /// Evicts least recently used tiles outside `keep` until within budget; returns them.
    pub fn evict(&mut self, keep: &HashSet<usize>) -> Vec<usize> {
        if self.used <= self.budget {
            return Vec::new();
        }
        let mut candidates: Vec<(u64, usize)> =
            self.entries.iter().filter(|(t, _)| !keep.contains(t)).map(|(t, (_, f))| (*f, *t)).collect();
        candidates.sort_unstable();
        let mut gone = Vec::new();
        for (_, tile) in candidates {
            if self.used <= self.budget {
                break;
            }
            if let Some((bytes, _)) = self.entries.remove(&tile) {
                self.used -= bytes;
                gone.push(tile);
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent_first_and_spares_tiles_in_use() {
        let mut c = TileCache::new(250);
        c.insert(1, 100, 1);
        c.insert(2, 100, 2);
        c.insert(3, 100, 3);
        c.touch(1, 4);
        assert_eq!(c.evict(&HashSet::new()), vec![2], "2 is the least recently used");
        assert_eq!(c.used(), 200);
        c.insert(4, 100, 5);
        let keep: HashSet<usize> = [3, 1].into();
        assert_eq!(c.evict(&keep), vec![4], "only tile 4 is outside the frame's set");
        c.insert(5, 500, 6);
        let keep: HashSet<usize> = [1, 3, 5].into();
        assert!(c.evict(&keep).is_empty(), "over budget but everything is in use");
        assert_eq!(c.len(), 3);
    }
}

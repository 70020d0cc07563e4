//! Right-triangulated irregular networks over a `(2^k + 1)²` height grid: the
//! error-bounded simplification of Martini (Evans et al. 1997; mapbox/martini).
//!
//! Every triangle of the hierarchy is split at the midpoint of its hypotenuse. Unlike
//! Martini, whose midpoint deviation lets errors of nested triangles add up, a
//! midpoint's error here is the largest distance of any grid sample from the plane
//! of either triangle split there, raised to the largest error of its descendants;
//! so a mesh cut at `max_error` has every grid sample within `max_error` of it and
//! never a T-junction inside the tile. Samples of no data (NaN) force the full subdivision around them
//! and triangles touching them are left out. Vertices can be forced in, which is how
//! neighbouring tiles are made to agree on their shared edges.

/// The triangle hierarchy of one grid size.
pub struct Rtin {
    size: usize,
    /// `(ax, ay, bx, by)` of every triangle's hypotenuse, parents before children.
    coords: Vec<[u16; 4]>,
    parents: usize,
}

impl Rtin {
    /// `cells` must be a power of two (64 for terrain tiles).
    pub fn new(cells: usize) -> Self {
        debug_assert!(cells.is_power_of_two());
        let tile = cells as u16;
        let triangles = cells * cells * 2 - 2;
        let parents = triangles - cells * cells;
        let mut coords = Vec::with_capacity(triangles);
        for i in 0..triangles {
            let mut id = i + 2;
            let (mut ax, mut ay, mut bx, mut by, mut cx, mut cy) = (0u16, 0u16, 0u16, 0u16, 0u16, 0u16);
            if id & 1 == 1 {
                (bx, by, cx) = (tile, tile, tile);
            } else {
                (ax, ay, cy) = (tile, tile, tile);
            }
            loop {
                id >>= 1;
                if id <= 1 {
                    break;
                }
                let (mx, my) = ((ax + bx) >> 1, (ay + by) >> 1);
                if id & 1 == 1 {
                    (bx, by, ax, ay) = (ax, ay, cx, cy);
                } else {
                    (ax, ay, bx, by) = (bx, by, cx, cy);
                }
                (cx, cy) = (mx, my);
            }
            coords.push([ax, ay, bx, by]);
        }
        Self { size: cells + 1, coords, parents }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Each grid sample's error (index `y * size + x`); `forced` samples get infinity.
    pub fn errors(&self, heights: &[f64], forced: &[bool]) -> Vec<f64> {
        let size = self.size;
        let mut errors: Vec<f64> = forced.iter().map(|&f| if f { f64::INFINITY } else { 0.0 }).collect();
        errors.resize(size * size, 0.0);
        for (i, &[ax, ay, bx, by]) in self.coords.iter().enumerate().rev() {
            let (ax, ay, bx, by) = (usize::from(ax), usize::from(ay), usize::from(bx), usize::from(by));
            let (mx, my) = ((ax + bx) >> 1, (ay + by) >> 1);
            let (cx, cy) = (mx + my - ay, my + ax - mx);
            let middle_error = triangle_error(heights, size, [ax, ay, bx, by, cx, cy]);
            let middle = my * size + mx;
            let mut e = errors[middle].max(middle_error);
            if i < self.parents {
                let left = ((ay + cy) >> 1) * size + ((ax + cx) >> 1);
                let right = ((by + cy) >> 1) * size + ((bx + cx) >> 1);
                e = e.max(errors[left]).max(errors[right]);
            }
            errors[middle] = e;
        }
        errors
    }

    /// Whether the mesh cut at `max_error` has a vertex at grid sample `index`.
    pub fn has_vertex(&self, errors: &[f64], max_error: f64, x: usize, y: usize) -> bool {
        let last = self.size - 1;
        ((x == 0 || x == last) && (y == 0 || y == last)) || errors[y * self.size + x] > max_error
    }

    /// The mesh cut at `max_error`: grid sample indices of its vertices and
    /// counter-clockwise triangles (x east, y north) over them; triangles touching a
    /// sample of no data are left out.
    pub fn mesh(&self, heights: &[f64], errors: &[f64], max_error: f64) -> (Vec<u32>, Vec<[u32; 3]>) {
        self.mesh_with(heights, errors, max_error, false)
    }

    /// [`Rtin::mesh`] keeping the triangles that touch no data too: the same
    /// triangles over the data, plus the ones that cover the rest of the tile (a
    /// globe client wants every tile covered; the caller gives those vertices a
    /// height).
    pub fn mesh_covering(
        &self,
        heights: &[f64],
        errors: &[f64],
        max_error: f64,
    ) -> (Vec<u32>, Vec<[u32; 3]>) {
        self.mesh_with(heights, errors, max_error, true)
    }

    fn mesh_with(
        &self,
        heights: &[f64],
        errors: &[f64],
        max_error: f64,
        cover: bool,
    ) -> (Vec<u32>, Vec<[u32; 3]>) {
        let size = self.size;
        let last = (size - 1) as i32;
        let mut vertex_of = vec![u32::MAX; size * size];
        let mut vertices = Vec::new();
        let mut triangles = Vec::new();
        let mut stack: Vec<[i32; 6]> = vec![[0, 0, last, last, last, 0], [last, last, 0, 0, 0, last]];
        while let Some([ax, ay, bx, by, cx, cy]) = stack.pop() {
            let (mx, my) = ((ax + bx) >> 1, (ay + by) >> 1);
            if (ax - cx).abs() + (ay - cy).abs() > 1 && errors[(my as usize) * size + mx as usize] > max_error
            {
                stack.push([cx, cy, ax, ay, mx, my]);
                stack.push([bx, by, cx, cy, mx, my]);
                continue;
            }
            let corners = [(ax, ay), (bx, by), (cx, cy)].map(|(x, y)| (y as usize) * size + x as usize);
            if !cover && corners.iter().any(|&k| heights[k].is_nan()) {
                continue;
            }
            let mut tri = corners.map(|k| {
                if vertex_of[k] == u32::MAX {
                    vertex_of[k] = vertices.len() as u32;
                    vertices.push(k as u32);
                }
                vertex_of[k]
            });
            let cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
            if cross < 0 {
                tri.swap(1, 2);
            }
            triangles.push(tri);
        }
        (vertices, triangles)
    }
}

/// Largest distance between the triangle's plane and the grid samples it covers:
/// a true bound, unlike the midpoint deviation alone (errors of nested triangles
/// add up). Infinite when it mixes samples with and without data, 0 when all lack it.
fn triangle_error(heights: &[f64], size: usize, t: [usize; 6]) -> f64 {
    let [ax, ay, bx, by, cx, cy] = t;
    let (ha, hb, hc) = (heights[ay * size + ax], heights[by * size + bx], heights[cy * size + cx]);
    let corners_nodata = [ha, hb, hc].iter().filter(|h| h.is_nan()).count();
    let ti = t.map(|v| v as i32);
    let mut worst = 0.0f64;
    let mut any_nodata = corners_nodata > 0;
    let mut any_data = corners_nodata < 3;
    for y in ay.min(by).min(cy)..=ay.max(by).max(cy) {
        for x in ax.min(bx).min(cx)..=ax.max(bx).max(cx) {
            let w = weights(ti, x as f64, y as f64);
            if w.iter().any(|&v| v < -1e-9) {
                continue;
            }
            let h = heights[y * size + x];
            if h.is_nan() {
                any_nodata = true;
                continue;
            }
            any_data = true;
            if corners_nodata == 0 {
                worst = worst.max((h - (w[0] * ha + w[1] * hb + w[2] * hc)).abs());
            }
        }
    }
    match (any_data, any_nodata) {
        (true, true) => f64::INFINITY,
        (false, _) => 0.0,
        (true, false) => worst,
    }
}

/// Barycentric weights of `(x, y)` in triangle `t` (`[ax, ay, bx, by, cx, cy]`).
fn weights(t: [i32; 6], x: f64, y: f64) -> [f64; 3] {
    let [ax, ay, bx, by, cx, cy] = t.map(f64::from);
    let det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy);
    let a = ((by - cy) * (x - cx) + (cx - bx) * (y - cy)) / det;
    let b = ((cy - ay) * (x - cx) + (ax - cx) * (y - cy)) / det;
    [a, b, 1.0 - a - b]
}

impl Rtin {
    /// The mesh's height at grid coordinates `(x, y)`, found by walking down the
    /// triangle hierarchy (a dozen steps, not a search of every triangle).
    pub fn height_at(&self, heights: &[f64], errors: &[f64], max_error: f64, x: f64, y: f64) -> Option<f64> {
        let size = self.size;
        let last = (size - 1) as i32;
        if !(x >= 0.0 && y >= 0.0 && x <= f64::from(last) && y <= f64::from(last)) {
            return None;
        }
        let mut t = if y <= x { [0, 0, last, last, last, 0] } else { [last, last, 0, 0, 0, last] };
        loop {
            let [ax, ay, bx, by, cx, cy] = t;
            let (mx, my) = ((ax + bx) >> 1, (ay + by) >> 1);
            if (ax - cx).abs() + (ay - cy).abs() > 1 && errors[(my as usize) * size + mx as usize] > max_error
            {
                let first = [cx, cy, ax, ay, mx, my];
                t = if weights(first, x, y).iter().all(|&w| w >= -1e-9) {
                    first
                } else {
                    [bx, by, cx, cy, mx, my]
                };
                continue;
            }
            let w = weights(t, x, y);
            let h =
                [(ax, ay), (bx, by), (cx, cy)].map(|(px, py)| heights[(py as usize) * size + px as usize]);
            return h.iter().all(|v| !v.is_nan()).then(|| w[0] * h[0] + w[1] * h[1] + w[2] * h[2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rough_grid(size: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f64 / 100.0
        };
        (0..size * size)
            .map(|k| {
                let (x, y) = ((k % size) as f64, (k / size) as f64);
                50.0 * (x / 9.0).sin() * (y / 13.0).cos() + next()
            })
            .collect()
    }

    /// Linear interpolation of the mesh at a grid sample.
    fn mesh_height(
        size: usize,
        heights: &[f64],
        vertices: &[u32],
        tris: &[[u32; 3]],
        x: f64,
        y: f64,
    ) -> Option<f64> {
        for t in tris {
            let p = t.map(|v| {
                let k = vertices[v as usize] as usize;
                ((k % size) as f64, (k / size) as f64, heights[k])
            });
            let det = (p[1].1 - p[2].1) * (p[0].0 - p[2].0) + (p[2].0 - p[1].0) * (p[0].1 - p[2].1);
            let a = ((p[1].1 - p[2].1) * (x - p[2].0) + (p[2].0 - p[1].0) * (y - p[2].1)) / det;
            let b = ((p[2].1 - p[0].1) * (x - p[2].0) + (p[0].0 - p[2].0) * (y - p[2].1)) / det;
            let c = 1.0 - a - b;
            if a >= -1e-9 && b >= -1e-9 && c >= -1e-9 {
                return Some(a * p[0].2 + b * p[1].2 + c * p[2].2);
            }
        }
        None
    }

    #[test]
    fn every_sample_lies_within_the_error_bound_and_the_mesh_covers_the_tile() {
        let rtin = Rtin::new(64);
        let size = rtin.size();
        let heights = rough_grid(size, 7);
        let errors = rtin.errors(&heights, &[]);
        for max_error in [0.0, 0.5, 2.0, 10.0] {
            let (vertices, tris) = rtin.mesh(&heights, &errors, max_error);
            let area: f64 = tris
                .iter()
                .map(|t| {
                    let p = t
                        .map(|v| vertices[v as usize] as usize)
                        .map(|k| ((k % size) as f64, (k / size) as f64));
                    let cross = (p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[1].1 - p[0].1) * (p[2].0 - p[0].0);
                    assert!(cross > 0.0, "counter-clockwise");
                    cross / 2.0
                })
                .sum();
            assert_eq!(area, 64.0 * 64.0);
            for k in 0..size * size {
                let (x, y) = ((k % size) as f64, (k / size) as f64);
                let h = mesh_height(size, &heights, &vertices, &tris, x, y).expect("covered");
                assert!((h - heights[k]).abs() <= max_error + 1e-9, "sample {k} off by {}", h - heights[k]);
                let walked = rtin.height_at(&heights, &errors, max_error, x + 0.3, y + 0.6);
                let searched = mesh_height(size, &heights, &vertices, &tris, x + 0.3, y + 0.6);
                assert!(
                    walked.zip(searched).is_none_or(|(a, b)| (a - b).abs() < 1e-9),
                    "{walked:?} {searched:?}"
                );
                assert_eq!(walked.is_some(), searched.is_some());
            }
        }
        let (_, coarse) = rtin.mesh(&heights, &errors, 10.0);
        assert!(coarse.len() < 2 * 64 * 64 / 4, "{} triangles at 10 m", coarse.len());
    }

    #[test]
    fn has_vertex_predicts_the_edge_vertices_and_forced_samples_are_kept() {
        let rtin = Rtin::new(64);
        let size = rtin.size();
        let heights = rough_grid(size, 99);
        let mut forced = vec![false; size * size];
        forced[64 * size + 17] = true; // north edge
        forced[20 * size + 31] = true; // inside
        let errors = rtin.errors(&heights, &forced);
        let (vertices, _) = rtin.mesh(&heights, &errors, 6.0);
        let present: std::collections::HashSet<usize> = vertices.iter().map(|&v| v as usize).collect();
        assert!(present.contains(&(64 * size + 17)) && present.contains(&(20 * size + 31)));
        for k in 0..size {
            for (x, y) in [(k, 0), (k, 64), (0, k), (64, k)] {
                assert_eq!(
                    rtin.has_vertex(&errors, 6.0, x, y),
                    present.contains(&(y * size + x)),
                    "({x}, {y})"
                );
            }
        }
    }

    #[test]
    fn a_covering_mesh_adds_triangles_over_no_data_and_keeps_the_others() {
        let rtin = Rtin::new(64);
        let size = rtin.size();
        let mut heights = rough_grid(size, 5);
        for (k, h) in heights.iter_mut().enumerate() {
            if k / size > 40 {
                *h = f64::NAN;
            }
        }
        let errors = rtin.errors(&heights, &[]);
        let (v1, t1) = rtin.mesh(&heights, &errors, 3.0);
        let (v2, t2) = rtin.mesh_covering(&heights, &errors, 3.0);
        let key = |v: &[u32], t: &[u32; 3]| {
            let mut k = t.map(|i| v[i as usize]);
            k.sort();
            k
        };
        let covering: std::collections::HashSet<[u32; 3]> = t2.iter().map(|t| key(&v2, t)).collect();
        assert!(t1.iter().all(|t| covering.contains(&key(&v1, t))), "every data triangle kept");
        let area: usize = t2
            .iter()
            .map(|t| {
                let p = t.map(|i| v2[i as usize] as i64).map(|k| (k % size as i64, k / size as i64));
                ((p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[1].1 - p[0].1) * (p[2].0 - p[0].0)) as usize
            })
            .sum();
        assert_eq!(area, 2 * 64 * 64, "the whole tile covered");
    }

    #[test]
    fn no_data_leaves_holes_but_no_triangle_touches_it() {
        let rtin = Rtin::new(64);
        let size = rtin.size();
        let mut heights = rough_grid(size, 3);
        for (k, h) in heights.iter_mut().enumerate() {
            if k % size < 20 {
                *h = f64::NAN;
            }
        }
        let errors = rtin.errors(&heights, &[]);
        let (vertices, tris) = rtin.mesh(&heights, &errors, 5.0);
        assert!(!tris.is_empty());
        assert!(vertices.iter().all(|&v| !heights[v as usize].is_nan()));
        // The valid part is still covered up to the column next to the hole.
        assert!(mesh_height(size, &heights, &vertices, &tris, 21.0, 30.0).is_some());
    }
}

//! Which tiles to draw and which to fetch, from a camera: frustum culling plus
//! screen-space error, with additive and replacement refinement.

use cim_core::tileset::Refine;
use glam::{DMat4, DVec3, DVec4};

use crate::tree::{Sphere, TileTree};

/// The camera as tile selection sees it, in ECEF.
#[derive(Debug, Clone)]
pub struct View {
    pub position: DVec3,
    /// Inward-facing planes `(n, d)` with `n·p + d >= 0` inside, normalised.
    pub planes: [DVec4; 6],
    /// Pixels per metre at one metre: `viewport_height / (2 tan(fov_y / 2))`.
    pub sse_factor: f64,
}

impl View {
    /// From an ECEF → clip-space matrix (OpenGL/wgpu style, any depth convention:
    /// the near plane is taken as `row3 + row2`, which holds for 0..1 and -1..1 alike
    /// up to a looser near bound).
    pub fn new(position: DVec3, view_projection: DMat4, viewport_height: f64, fov_y: f64) -> Self {
        let m = view_projection.transpose();
        let (r0, r1, r2, r3) = (m.x_axis, m.y_axis, m.z_axis, m.w_axis);
        let normalise = |p: DVec4| p / p.truncate().length();
        Self {
            position,
            planes: [
                normalise(r3 + r0),
                normalise(r3 - r0),
                normalise(r3 + r1),
                normalise(r3 - r1),
                normalise(r3 + r2),
                normalise(r3 - r2),
            ],
            sse_factor: viewport_height / (2.0 * (fov_y / 2.0).tan()),
        }
    }

    pub fn sees(&self, s: &Sphere) -> bool {
        self.planes.iter().all(|p| p.truncate().dot(s.centre) + p.w >= -s.radius)
    }

    /// Screen-space error in pixels of drawing a tile instead of refining it.
    pub fn screen_space_error(&self, geometric_error: f64, s: &Sphere) -> f64 {
        let distance = (self.position.distance(s.centre) - s.radius).max(1e-3);
        geometric_error * self.sse_factor / distance
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    /// Loaded tiles to draw this frame.
    pub render: Vec<usize>,
    /// Tiles whose content is wanted but not loaded, most urgent first.
    pub load: Vec<usize>,
}

/// Walks the tree once. `loaded(i)` says whether tile `i`'s content is ready to draw.
pub fn select(tree: &TileTree, view: &View, max_sse: f64, loaded: &dyn Fn(usize) -> bool) -> Selection {
    let mut out = Selection::default();
    let mut wanted: Vec<(f64, usize)> = Vec::new();
    if !tree.nodes.is_empty() {
        visit(tree, view, max_sse, loaded, 0, &mut out.render, &mut wanted);
    }
    // Bigger on screen first.
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.load = wanted.into_iter().map(|(_, i)| i).collect();
    out
}

/// Returns whether the tile (or what replaces it) is fully drawn.
fn visit(
    tree: &TileTree,
    view: &View,
    max_sse: f64,
    loaded: &dyn Fn(usize) -> bool,
    i: usize,
    render: &mut Vec<usize>,
    wanted: &mut Vec<(f64, usize)>,
) -> bool {
    let node = &tree.nodes[i];
    if !view.sees(&node.bounds) {
        return true;
    }
    let sse = view.screen_space_error(node.geometric_error, &node.bounds);
    let own_ready = match &node.content {
        None => true,
        Some(_) if loaded(i) => true,
        Some(_) => {
            wanted.push((sse, i));
            false
        }
    };
    let refine = sse > max_sse && !node.children.is_empty();
    if !refine {
        if own_ready && node.content.is_some() {
            render.push(i);
        }
        return own_ready;
    }
    match node.refine {
        Refine::Add => {
            if own_ready && node.content.is_some() {
                render.push(i);
            }
            let mut all = own_ready;
            for &c in &node.children {
                all &= visit(tree, view, max_sse, loaded, c, render, wanted);
            }
            all
        }
        Refine::Replace => {
            let mark = render.len();
            let mut children_ready = true;
            for &c in &node.children {
                children_ready &= visit(tree, view, max_sse, loaded, c, render, wanted);
            }
            if !children_ready && own_ready && node.content.is_some() {
                // Keep the coarse tile on screen until its replacements arrive.
                render.truncate(mark);
                render.push(i);
                return true;
            }
            children_ready
        }
    }
}

/// Point cloud layers: the tiles to draw and fetch under a budget of resident points
/// (Potree's rule). Tiles are taken in order of screen-space error, biggest first, and
/// the walk stops at the first tile that would overflow the budget, so a dense close
/// view shows the coarse levels everywhere before the fine ones anywhere.
/// `points(i)` is a loaded tile's point count; a tile not yet loaded is counted at
/// `estimate`. The first tile with content (the coarsest level) is always taken, so a
/// budget smaller than it still shows the cloud's outline rather than nothing.
/// Additive trees only (what point clouds use); others go to [`select`].
pub fn select_points(
    tree: &TileTree,
    view: &View,
    max_sse: f64,
    points: &dyn Fn(usize) -> Option<usize>,
    estimate: usize,
    budget: usize,
) -> Selection {
    let mut out = Selection::default();
    let Some(root) = tree.nodes.first() else { return out };
    let mut queue = std::collections::BinaryHeap::new();
    let priority = |i: usize| {
        let node = &tree.nodes[i];
        OrderedSse(view.screen_space_error(node.geometric_error, &node.bounds), i)
    };
    if view.sees(&root.bounds) {
        queue.push(priority(0));
    }
    let mut resident = 0usize;
    while let Some(OrderedSse(sse, i)) = queue.pop() {
        let node = &tree.nodes[i];
        if node.content.is_some() {
            let loaded = points(i);
            let cost = loaded.unwrap_or(estimate);
            let first = out.render.is_empty() && out.load.is_empty();
            if resident + cost > budget && !first {
                break;
            }
            resident += cost;
            match loaded {
                Some(_) => out.render.push(i),
                None => out.load.push(i),
            }
        }
        if sse > max_sse {
            queue.extend(
                node.children.iter().filter(|&&c| view.sees(&tree.nodes[c].bounds)).map(|&c| priority(c)),
            );
        }
    }
    out
}

/// A tile keyed by its screen-space error for the budget walk's max-heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedSse(f64, usize);

impl Eq for OrderedSse {}

impl PartialOrd for OrderedSse {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedSse {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Ties go to the lower index: parents before children, a stable order.
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TileNode;
    use cim_core::frame::{EnuFrame, geodetic_to_ecef};

    /// A root with two children 1 km apart, around Helsinki.
    fn tree(refine: Refine) -> TileTree {
        let at = |lon: f64| DVec3::from(geodetic_to_ecef(lon, 60.17, 0.0));
        let node = |parent, children, centre, radius, error| TileNode {
            parent,
            children,
            content: Some("x.glb".into()),
            geometric_error: error,
            refine,
            transform: DMat4::IDENTITY,
            bounds: Sphere { centre, radius },
            depth: u32::from(parent.is_some()),
        };
        TileTree {
            nodes: vec![
                node(None, vec![1, 2], at(24.945), 1200.0, 40.0),
                node(Some(0), vec![], at(24.935), 500.0, 0.0),
                node(Some(0), vec![], at(24.955), 500.0, 0.0),
            ],
            geometric_error: 80.0,
        }
    }

    /// Looking straight down from `height` over a longitude.
    fn view_from(lon: f64, height: f64) -> View {
        let frame = EnuFrame::at(lon, 60.17, 0.0);
        let to_ecef = DMat4::from_cols_array(&frame.to_ecef_matrix());
        let eye = to_ecef.transform_point3(DVec3::new(0.0, 0.0, height));
        let target = to_ecef.transform_point3(DVec3::ZERO);
        let north = to_ecef.transform_vector3(DVec3::Y);
        let view = DMat4::look_at_rh(eye, target, north);
        let proj = DMat4::perspective_rh(60f64.to_radians(), 16.0 / 9.0, 1.0, 1e6);
        View::new(eye, proj * view, 1080.0, 60f64.to_radians())
    }

    #[test]
    fn near_refines_far_does_not() {
        let t = tree(Refine::Add);
        let all = |_| true;
        assert_eq!(select(&t, &view_from(24.945, 800.0), 16.0, &all).render, vec![0, 1, 2]);
        assert_eq!(select(&t, &view_from(24.945, 200_000.0), 16.0, &all).render, vec![0]);
    }

    #[test]
    fn tiles_outside_the_frustum_are_culled() {
        let t = tree(Refine::Add);
        // Low over the western child: the eastern one, 1.1 km away, is off screen.
        let s = select(&t, &view_from(24.935, 300.0), 16.0, &|_| true);
        assert!(s.render.contains(&1) && !s.render.contains(&2), "{s:?}");
    }

    #[test]
    fn replace_keeps_the_parent_until_children_arrive() {
        let t = tree(Refine::Replace);
        let v = view_from(24.945, 800.0);
        let only_root = |i| i == 0;
        let s = select(&t, &v, 16.0, &only_root);
        assert_eq!(s.render, vec![0]);
        assert_eq!(s.load.len(), 2);
        let s = select(&t, &v, 16.0, &|_| true);
        assert_eq!(s.render, vec![1, 2], "children replace the parent");
        let s = select(&t, &v, 16.0, &|_| false);
        assert!(s.render.is_empty());
        assert_eq!(s.load[0], 0, "the root matters most on screen");
    }

    #[test]
    fn sse_follows_the_formula() {
        let v = view_from(24.945, 1000.0);
        let s = Sphere { centre: v.position + DVec3::new(1100.0, 0.0, 0.0), radius: 100.0 };
        let expected = 10.0 * 1080.0 / (2.0 * (30f64.to_radians()).tan()) / 1000.0;
        assert!((v.screen_space_error(10.0, &s) - expected).abs() < 1e-9);
    }
    #[test]
    fn the_point_budget_takes_the_coarse_tiles_first_and_stops_at_the_budget() {
        let t = tree(Refine::Add);
        let v = view_from(24.945, 800.0);
        let loaded = |i: usize| (i != 2).then_some(1_000);
        // Everything fits: the root, then both children (1 loaded, 2 to fetch).
        let s = select_points(&t, &v, 16.0, &loaded, 5_000, 10_000);
        assert_eq!((s.render, s.load), (vec![0, 1], vec![2]));
        // Room for the root and one 1 000-point child, not for the 5 000-point guess.
        let s = select_points(&t, &v, 16.0, &loaded, 5_000, 2_500);
        assert_eq!((s.render, s.load), (vec![0, 1], vec![]));
        // Not even the root fits: it is drawn all the same, and nothing more.
        let s = select_points(&t, &v, 16.0, &loaded, 5_000, 999);
        assert_eq!((s.render, s.load), (vec![0], vec![]));
        let s = select_points(&t, &v, 16.0, &|_| None, 5_000, 999);
        assert_eq!((s.render, s.load), (vec![], vec![0]), "and fetched first");
        // From far away the root's error is small enough: no children.
        let s = select_points(&t, &view_from(24.945, 200_000.0), 16.0, &loaded, 5_000, 10_000);
        assert_eq!(s.render, vec![0]);
        // A child off screen is never counted against the budget.
        let s = select_points(&t, &view_from(24.935, 300.0), 16.0, &|_| Some(1_000), 0, 3_000);
        assert_eq!(s.render, vec![0, 1]);
    }

    #[test]
    fn the_point_budget_walk_goes_by_screen_space_error_not_by_tree_order() {
        // Two children at different distances under one root: the nearer one is bigger
        // on screen and is taken first, whatever its index.
        let mut t = tree(Refine::Add);
        t.nodes[1].geometric_error = 10.0;
        t.nodes[2].geometric_error = 10.0;
        let v = view_from(24.950, 800.0);
        let s = select_points(&t, &v, 1.0, &|_| Some(1_000), 0, 2_000);
        assert_eq!(s.render, vec![0, 2], "the eastern child is nearer to a camera at 24.950");
    }
}

//! Triangle meshes in 3D, shared by the IFC and CityJSON readers: affine maps, vector
//! arithmetic, planar faces with holes to triangles, and half-space cuts (clip,
//! subtract) that keep a closed solid closed by capping the cut.

use std::collections::HashMap;

use geo::TriangulateEarcut;
use geo_types::{Coord, LineString, Polygon};

/// An affine map: `p ↦ cols·p + t` (columns are the images of the unit axes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub cols: [[f64; 3]; 3],
    pub t: [f64; 3],
}

impl Affine {
    pub const IDENTITY: Self =
        Self { cols: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], t: [0.0; 3] };

    pub fn scale(s: f64) -> Self {
        Self { cols: [[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, s]], t: [0.0; 3] }
    }

    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let v = self.apply_vector(p);
        [v[0] + self.t[0], v[1] + self.t[1], v[2] + self.t[2]]
    }

    pub fn apply_vector(&self, v: [f64; 3]) -> [f64; 3] {
        let c = &self.cols;
        [
            c[0][0] * v[0] + c[1][0] * v[1] + c[2][0] * v[2],
            c[0][1] * v[0] + c[1][1] * v[1] + c[2][1] * v[2],
            c[0][2] * v[0] + c[1][2] * v[1] + c[2][2] * v[2],
        ]
    }

    /// `self ∘ inner`: apply `inner` first.
    pub fn then_after(&self, inner: &Affine) -> Affine {
        Affine {
            cols: [
                self.apply_vector(inner.cols[0]),
                self.apply_vector(inner.cols[1]),
                self.apply_vector(inner.cols[2]),
            ],
            t: self.apply(inner.t),
        }
    }

    pub fn determinant(&self) -> f64 {
        dot(self.cols[0], cross(self.cols[1], self.cols[2]))
    }

    /// Rotation times uniform scale, without mirroring: what a glTF node can carry
    /// exactly and every client draws with the right winding.
    pub fn is_similarity(&self) -> bool {
        let [a, b, c] = self.cols;
        let (la, lb, lc) = (norm(a), norm(b), norm(c));
        let tolerance = 1e-6 * la.max(1e-12);
        (la - lb).abs() < tolerance
            && (la - lc).abs() < tolerance
            && dot(a, b).abs() < tolerance * la
            && dot(a, c).abs() < tolerance * la
            && dot(b, c).abs() < tolerance * la
            && self.determinant() > 0.0
    }

    /// Column-major 4×4, as glTF and 3D Tiles write matrices.
    pub fn to_column_major(&self) -> [f64; 16] {
        let [a, b, c] = self.cols;
        [
            a[0], a[1], a[2], 0.0, b[0], b[1], b[2], 0.0, c[0], c[1], c[2], 0.0, self.t[0], self.t[1],
            self.t[2], 1.0,
        ]
    }
}

pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn normalized(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = norm(a);
    (n > 1e-12 && n.is_finite()).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

/// Triangles as three corners each, counter-clockwise seen from outside.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriMesh {
    pub triangles: Vec<[[f64; 3]; 3]>,
}

impl TriMesh {
    pub fn transformed(mut self, m: &Affine) -> Self {
        let flip = m.determinant() < 0.0;
        for t in &mut self.triangles {
            for p in t.iter_mut() {
                *p = m.apply(*p);
            }
            if flip {
                t.swap(1, 2);
            }
        }
        self
    }

    pub fn append(&mut self, other: TriMesh) {
        self.triangles.extend(other.triangles);
    }

    pub fn bounds(&self) -> Option<[[f64; 3]; 2]> {
        self.bounds_under(&Affine::IDENTITY)
    }

    /// Bounds of the mesh as `m` would place it, without copying it.
    pub fn bounds_under(&self, m: &Affine) -> Option<[[f64; 3]; 2]> {
        let mut it = self.triangles.iter().flatten().map(|p| m.apply(*p));
        let first = it.next()?;
        Some(it.fold([first, first], |[lo, hi], p| {
            [
                [lo[0].min(p[0]), lo[1].min(p[1]), lo[2].min(p[2])],
                [hi[0].max(p[0]), hi[1].max(p[1]), hi[2].max(p[2])],
            ]
        }))
    }

    /// Keeps the part with `dot(normal, p - origin) >= 0`, capping the cut.
    pub fn clip(&self, origin: [f64; 3], normal: [f64; 3]) -> TriMesh {
        let distance = |p: [f64; 3]| dot(normal, sub(p, origin));
        let mut out = TriMesh::default();
        let mut cut_segments: Vec<[[f64; 3]; 2]> = Vec::new();
        for t in &self.triangles {
            let d = t.map(distance);
            let kept: Vec<usize> = (0..3).filter(|&i| d[i] >= 0.0).collect();
            match kept.len() {
                3 => out.triangles.push(*t),
                0 => {}
                _ => {
                    // Walk the triangle's edges in order, keeping kept corners and
                    // adding the crossing points: the result is the kept polygon.
                    let mut polygon = Vec::with_capacity(4);
                    let mut crossings = Vec::with_capacity(2);
                    for i in 0..3 {
                        let j = (i + 1) % 3;
                        if d[i] >= 0.0 {
                            polygon.push(t[i]);
                        }
                        if (d[i] >= 0.0) != (d[j] >= 0.0) {
                            // Always interpolate from the kept end so neighbours that
                            // share the edge compute the same point, bit for bit.
                            let (a, b, da, db) =
                                if d[i] >= 0.0 { (t[i], t[j], d[i], d[j]) } else { (t[j], t[i], d[j], d[i]) };
                            let s = da / (da - db);
                            let p = [
                                a[0] + s * (b[0] - a[0]),
                                a[1] + s * (b[1] - a[1]),
                                a[2] + s * (b[2] - a[2]),
                            ];
                            polygon.push(p);
                            crossings.push(p);
                        }
                    }
                    for k in 1..polygon.len().saturating_sub(1) {
                        out.triangles.push([polygon[0], polygon[k], polygon[k + 1]]);
                    }
                    if let [a, b] = crossings[..] {
                        cut_segments.push([a, b]);
                    }
                }
            }
        }
        out.append(cap(&cut_segments, normal));
        out
    }
}

/// How far (in metres) a subtracted region's planes move outward, so that faces
/// lying on them (a wall end flush with a clipping polygon's edge, the seam between
/// two halves of a gable cut) count as inside and leave no zero-thickness slivers.
pub const SUBTRACT_MARGIN_M: f64 = 1e-5;

/// A half-space `dot(inward, p - origin) >= 0`.
#[derive(Debug, Clone, Copy)]
pub struct HalfSpace {
    pub origin: [f64; 3],
    pub inward: [f64; 3],
}

impl HalfSpace {
    fn distance(&self, p: [f64; 3]) -> f64 {
        dot(self.inward, sub(p, self.origin))
    }
}

/// Splits a convex polygon by a half-space into its inside and outside parts,
/// both keeping the polygon's winding.
fn split_polygon(polygon: &[[f64; 3]], by: &HalfSpace) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let d: Vec<f64> = polygon.iter().map(|p| by.distance(*p)).collect();
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for i in 0..polygon.len() {
        let j = (i + 1) % polygon.len();
        if d[i] >= 0.0 {
            inside.push(polygon[i]);
        } else {
            outside.push(polygon[i]);
        }
        if (d[i] >= 0.0) != (d[j] >= 0.0) {
            let (a, b, da, db) = if d[i] >= 0.0 {
                (polygon[i], polygon[j], d[i], d[j])
            } else {
                (polygon[j], polygon[i], d[j], d[i])
            };
            let s = da / (da - db);
            let p = [a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1]), a[2] + s * (b[2] - a[2])];
            inside.push(p);
            outside.push(p);
        }
    }
    (inside, outside)
}

fn fan(polygon: &[[f64; 3]], into: &mut TriMesh) {
    for k in 1..polygon.len().saturating_sub(1) {
        let t = [polygon[0], polygon[k], polygon[k + 1]];
        let (e1, e2) = (sub(t[1], t[0]), sub(t[2], t[0]));
        // Cuts near a corner leave needles of no area; they only confuse normals.
        let longest = dot(e1, e1).max(dot(e2, e2));
        if longest > 1e-16 && norm(cross(e1, e2)) > 1e-9 * longest {
            into.triangles.push(t);
        }
    }
}

impl TriMesh {
    /// Where the plane cuts the surface: one segment per crossed triangle, each end
    /// interpolated from the same side so neighbours agree bit for bit.
    fn section(&self, origin: [f64; 3], normal: [f64; 3]) -> Vec<[[f64; 3]; 2]> {
        let plane = HalfSpace { origin, inward: normal };
        let mut segments = Vec::new();
        for t in &self.triangles {
            let d = t.map(|p| plane.distance(p));
            let mut crossings = Vec::with_capacity(2);
            for i in 0..3 {
                let j = (i + 1) % 3;
                if (d[i] >= 0.0) != (d[j] >= 0.0) {
                    let (a, b, da, db) =
                        if d[i] >= 0.0 { (t[i], t[j], d[i], d[j]) } else { (t[j], t[i], d[j], d[i]) };
                    let s = da / (da - db);
                    crossings.push([
                        a[0] + s * (b[0] - a[0]),
                        a[1] + s * (b[1] - a[1]),
                        a[2] + s * (b[2] - a[2]),
                    ]);
                }
            }
            if let [a, b] = crossings[..] {
                segments.push([a, b]);
            }
        }
        segments
    }

    /// This solid minus the convex region where every half-space holds, with the
    /// region's faces inside the solid closing the hole.
    /// `margin` moves each plane outward (in the mesh's units).
    pub fn subtract_convex(&self, region: &[HalfSpace], margin: f64) -> TriMesh {
        let grown: Vec<HalfSpace> = region
            .iter()
            .filter_map(|h| {
                let inward = normalized(h.inward)?;
                Some(HalfSpace { origin: sub(h.origin, inward.map(|c| c * margin)), inward })
            })
            .collect();
        let mut out = TriMesh::default();
        // The surface outside the region: peel each triangle plane by plane.
        for t in &self.triangles {
            let mut rest = t.to_vec();
            for h in &grown {
                let (inside, outside) = split_polygon(&rest, h);
                fan(&outside, &mut out);
                rest = inside;
                if rest.len() < 3 {
                    break;
                }
            }
        }
        // The region's faces: the solid's cross-section on each plane, kept where
        // the other planes hold, facing into the region (out of what remains).
        for (k, h) in grown.iter().enumerate() {
            let cap = cap(&self.section(h.origin, h.inward), h.inward.map(|c| -c));
            for t in &cap.triangles {
                let mut rest = t.to_vec();
                for (j, other) in grown.iter().enumerate() {
                    if j != k && rest.len() >= 3 {
                        rest = split_polygon(&rest, other).0;
                    }
                }
                fan(&rest, &mut out);
            }
        }
        out
    }
}

/// Closes a planar cut: chains segments into loops and triangulates each, facing
/// against `normal` (out of the kept part).
fn cap(segments: &[[[f64; 3]; 2]], normal: [f64; 3]) -> TriMesh {
    let key = |p: [f64; 3]| p.map(|c| (c * 1e6).round() as i64);
    let mut at: HashMap<[i64; 3], Vec<usize>> = HashMap::new();
    for (i, s) in segments.iter().enumerate() {
        if key(s[0]) == key(s[1]) {
            continue;
        }
        at.entry(key(s[0])).or_default().push(i);
        at.entry(key(s[1])).or_default().push(i);
    }
    let mut used = vec![false; segments.len()];
    let mut mesh = TriMesh::default();
    for start in 0..segments.len() {
        if used[start] || key(segments[start][0]) == key(segments[start][1]) {
            continue;
        }
        used[start] = true;
        let mut ring = vec![segments[start][0]];
        let mut tip = segments[start][1];
        let first = key(segments[start][0]);
        let mut closed = false;
        for _ in 0..segments.len() {
            if key(tip) == first {
                closed = true;
                break;
            }
            ring.push(tip);
            let next = at.get(&key(tip)).and_then(|c| c.iter().copied().find(|&s| !used[s]));
            let Some(next) = next else { break };
            used[next] = true;
            tip = if key(segments[next][0]) == key(tip) { segments[next][1] } else { segments[next][0] };
        }
        if closed && ring.len() >= 3 {
            mesh.append(triangulate_face(&[ring], Some([-normal[0], -normal[1], -normal[2]])));
        }
    }
    mesh
}

/// Newell's normal of a 3D loop (length = twice its area).
pub(crate) fn newell(ring: &[[f64; 3]]) -> [f64; 3] {
    let mut n = [0.0; 3];
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        n[0] += (a[1] - b[1]) * (a[2] + b[2]);
        n[1] += (a[2] - b[2]) * (a[0] + b[0]);
        n[2] += (a[0] - b[0]) * (a[1] + b[1]);
    }
    n
}

/// Triangulates a planar face (outer loop then holes) so its triangles face `facing`,
/// or the outer loop's own orientation when `None`.
pub fn triangulate_face(loops: &[Vec<[f64; 3]>], facing: Option<[f64; 3]>) -> TriMesh {
    let mut mesh = TriMesh::default();
    let Some(outer) = loops.first() else { return mesh };
    if outer.len() < 3 {
        return mesh;
    }
    let n = newell(outer);
    let Some(unit) = normalized(n) else { return mesh };
    let want = facing.and_then(normalized).unwrap_or(unit);
    if outer.len() == 3 && loops.len() == 1 {
        let t = [outer[0], outer[1], outer[2]];
        mesh.triangles.push(if dot(unit, want) >= 0.0 { t } else { [t[0], t[2], t[1]] });
        return mesh;
    }
    // Project on the plane, in a basis where the outer loop runs counter-clockwise.
    let u = normalized(sub(outer[1], outer[0]))
        .filter(|u| dot(*u, unit).abs() < 0.999)
        .or_else(|| {
            normalized(cross(unit, if unit[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] }))
        })
        .unwrap_or([1.0, 0.0, 0.0]);
    let u = normalized(sub(u, unit.map(|c| c * dot(u, unit)))).unwrap_or(u);
    let v = cross(unit, u);
    let flat = |p: &[f64; 3]| Coord { x: dot(*p, u), y: dot(*p, v) };
    let ring = |l: &Vec<[f64; 3]>| LineString(l.iter().map(flat).collect());
    let holes: Vec<&Vec<[f64; 3]>> = loops[1..].iter().filter(|l| l.len() >= 3).collect();
    let polygon = Polygon::new(ring(outer), holes.iter().map(|h| ring(h)).collect());
    let raw = polygon.earcut_triangles_raw();
    let points: Vec<[f64; 3]> = outer.iter().chain(holes.iter().flat_map(|h| h.iter())).copied().collect();
    if points.len() != raw.vertices.len() {
        return mesh;
    }
    let same = dot(unit, want) >= 0.0;
    for t in raw.triangle_indices.chunks_exact(3) {
        let (a, b, c) = (points[t[0]], points[t[1]], points[t[2]]);
        let facing_n = cross(sub(b, a), sub(c, a));
        if norm(facing_n) < 1e-18 {
            continue;
        }
        // earcut's winding is its own; orient each triangle by the face normal.
        let agrees = dot(facing_n, unit) >= 0.0;
        mesh.triangles.push(if agrees == same { [a, b, c] } else { [a, c, b] });
    }
    mesh
}

/// The volume a closed, outward-facing mesh encloses.
#[cfg(test)]
pub(crate) fn volume(mesh: &TriMesh) -> f64 {
    mesh.triangles.iter().map(|t| dot(t[0], cross(t[1], t[2])) / 6.0).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_cube() -> TriMesh {
        let mut mesh = TriMesh::default();
        let c = |x: f64, y: f64, z: f64| [x, y, z];
        let faces = [
            [c(0., 0., 0.), c(0., 1., 0.), c(1., 1., 0.), c(1., 0., 0.)],
            [c(0., 0., 1.), c(1., 0., 1.), c(1., 1., 1.), c(0., 1., 1.)],
            [c(0., 0., 0.), c(1., 0., 0.), c(1., 0., 1.), c(0., 0., 1.)],
            [c(1., 1., 0.), c(0., 1., 0.), c(0., 1., 1.), c(1., 1., 1.)],
            [c(0., 1., 0.), c(0., 0., 0.), c(0., 0., 1.), c(0., 1., 1.)],
            [c(1., 0., 0.), c(1., 1., 0.), c(1., 1., 1.), c(1., 0., 1.)],
        ];
        for f in faces {
            mesh.append(triangulate_face(&[f.to_vec()], None));
        }
        mesh
    }

    #[test]
    fn faces_triangulate_outward_and_enclose_the_right_volume() {
        let cube = unit_cube();
        assert_eq!(cube.triangles.len(), 12);
        assert!((volume(&cube) - 1.0).abs() < 1e-12, "{}", volume(&cube));
        // A face with a hole: 2 × 2 square minus a 1 × 1 square.
        let outer = vec![[0., 0., 0.], [2., 0., 0.], [2., 2., 0.], [0., 2., 0.]];
        let hole = vec![[0.5, 0.5, 0.], [0.5, 1.5, 0.], [1.5, 1.5, 0.], [1.5, 0.5, 0.]];
        let face = triangulate_face(&[outer, hole], None);
        let area: f64 = face.triangles.iter().map(|t| cross(sub(t[1], t[0]), sub(t[2], t[0]))[2] / 2.0).sum();
        assert!((area - 3.0).abs() < 1e-12, "{area}");
    }

    #[test]
    fn clipping_by_a_plane_keeps_a_closed_solid() {
        let half = unit_cube().clip([0.0, 0.0, 0.25], [0.0, 0.0, 1.0]);
        assert!((volume(&half) - 0.75).abs() < 1e-9, "capped volume {}", volume(&half));
        let b = half.bounds().expect("bounds");
        assert_eq!(b[0][2], 0.25);
        // An oblique cut through a corner: the removed corner is a tetrahedron of 1/6.
        let n = normalized([-1.0, -1.0, -1.0]).expect("normal");
        let cut = unit_cube().clip([1.0, 0.0, 0.0], n);
        assert!((volume(&cut) - 1.0 / 6.0).abs() < 1e-9, "{}", volume(&cut));
    }

    #[test]
    fn subtracting_a_convex_region_leaves_a_closed_solid_without_seams() {
        let h = |origin: [f64; 3], inward: [f64; 3]| HalfSpace { origin, inward };
        // The top half of the cube's left half: a quarter of the volume.
        let step = unit_cube()
            .subtract_convex(&[h([0., 0., 0.5], [0., 0., 1.]), h([0.5, 0., 0.], [-1., 0., 0.])], 1e-7);
        assert!((volume(&step) - 0.75).abs() < 1e-5, "{}", volume(&step));
        // A gable cut in two halves meeting at x = 0.5: the ridge stays at 0.9, and
        // no sliver of the uncut top survives at the seam.
        let left = [h([0., 0., 0.8], [-0.2, 0., 1.]), h([0.5, 0., 0.], [-1., 0., 0.])];
        let right = [h([1., 0., 0.8], [0.2, 0., 1.]), h([0.5, 0., 0.], [1., 0., 0.])];
        let gable = unit_cube().subtract_convex(&left, 1e-7).subtract_convex(&right, 1e-7);
        assert!((volume(&gable) - 0.85).abs() < 1e-5, "{}", volume(&gable));
        let top = gable.bounds().expect("bounds")[1][2];
        assert!((top - 0.9).abs() < 1e-5, "ridge at {top}");
    }

    #[test]
    fn affine_composition_applies_the_inner_map_first() {
        let rotate =
            Affine { cols: [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], t: [10.0, 0.0, 0.0] };
        let scale = Affine::scale(0.001);
        let both = rotate.then_after(&scale);
        let p = both.apply([1000.0, 0.0, 0.0]);
        assert!((p[0] - 10.0).abs() < 1e-12 && (p[1] - 1.0).abs() < 1e-12);
        assert!(
            rotate.is_similarity()
                && !Affine { cols: [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], t: [0.0; 3] }
                    .is_similarity()
        );
    }
}

//! Clipping to a tile's buffered square, in tile pixel coordinates.

pub type Pt = [f64; 2];

/// Sutherland–Hodgman against the square `[min, max]²`. The ring may be open or
/// closed; the result is open (the MVT encoder closes it).
pub fn clip_ring(ring: &[Pt], min: f64, max: f64) -> Vec<Pt> {
    let mut pts: Vec<Pt> = ring.to_vec();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    for (axis, bound, keep_below) in [(0, min, false), (0, max, true), (1, min, false), (1, max, true)] {
        if pts.is_empty() {
            break;
        }
        let inside = |p: &Pt| {
            if keep_below { p[axis] <= bound } else { p[axis] >= bound }
        };
        let mut out = Vec::with_capacity(pts.len() + 4);
        for i in 0..pts.len() {
            let cur = pts[i];
            let prev = pts[(i + pts.len() - 1) % pts.len()];
            let (ci, pi) = (inside(&cur), inside(&prev));
            if ci != pi {
                out.push(intersect(prev, cur, axis, bound));
            }
            if ci {
                out.push(cur);
            }
        }
        pts = out;
    }
    pts
}

fn intersect(a: Pt, b: Pt, axis: usize, bound: f64) -> Pt {
    let t = (bound - a[axis]) / (b[axis] - a[axis]);
    let other = 1 - axis;
    let mut p = [0.0; 2];
    p[axis] = bound;
    p[other] = a[other] + t * (b[other] - a[other]);
    p
}

/// Liang–Barsky per segment, joining consecutive visible segments into parts.
pub fn clip_line(line: &[Pt], min: f64, max: f64) -> Vec<Vec<Pt>> {
    let mut parts: Vec<Vec<Pt>> = Vec::new();
    let mut current: Vec<Pt> = Vec::new();
    for seg in line.windows(2) {
        match clip_segment(seg[0], seg[1], min, max) {
            Some((a, b)) => {
                if current.last() != Some(&a) {
                    if current.len() >= 2 {
                        parts.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(a);
                }
                current.push(b);
            }
            None => {
                if current.len() >= 2 {
                    parts.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() >= 2 {
        parts.push(current);
    }
    parts
}

fn clip_segment(a: Pt, b: Pt, min: f64, max: f64) -> Option<(Pt, Pt)> {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a[0] - min), (dx, max - a[0]), (-dy, a[1] - min), (dy, max - a[1])] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| {
        if t == 0.0 {
            a
        } else if t == 1.0 {
            b
        } else {
            [a[0] + t * dx, a[1] + t * dy]
        }
    };
    Some((at(t0), at(t1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_covering_the_tile_becomes_the_square() {
        let big = [[-100.0, -100.0], [200.0, -100.0], [200.0, 200.0], [-100.0, 200.0]];
        let mut clipped = clip_ring(&big, 0.0, 100.0);
        clipped.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        assert_eq!(clipped, vec![[0.0, 0.0], [0.0, 100.0], [100.0, 0.0], [100.0, 100.0]]);
    }

    #[test]
    fn line_leaving_and_reentering_splits_in_two() {
        let line = [[10.0, 50.0], [150.0, 50.0], [150.0, 80.0], [10.0, 80.0]];
        let parts = clip_line(&line, 0.0, 100.0);
        assert_eq!(parts, vec![vec![[10.0, 50.0], [100.0, 50.0]], vec![[100.0, 80.0], [10.0, 80.0]]]);
    }

    #[test]
    fn line_outside_is_gone() {
        assert!(clip_line(&[[-5.0, -5.0], [-1.0, -9.0]], 0.0, 10.0).is_empty());
    }
}

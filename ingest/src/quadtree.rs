//! The quadtree that the 3D Tiles writers of footprinted objects (extruded buildings,
//! city models) share: with members sorted largest first, a tile shows the largest
//! ones and leaves the rest to its four quarters, so its geometric error is the size
//! of the largest member it leaves out.

/// Members at most in a leaf tile.
pub const LEAF_CAPACITY: usize = 200;
/// Members an inner tile shows itself.
pub const INNER_CAPACITY: usize = 100;
/// Depth at which a tile is a leaf whatever its count (members sharing one spot).
pub const MAX_DEPTH: usize = 12;
/// Estimated content bytes a tile shows at most (its GLB stays under 2 MB), so a
/// few very detailed members do not make one heavy tile.
pub const CONTENT_BUDGET: usize = 1_500_000;

/// What a tile of `members` (largest first) at `depth` shows itself, and what it
/// leaves to its children: at most [`INNER_CAPACITY`] members (all of them, up to
/// [`LEAF_CAPACITY`], in a leaf) and at most `budget` estimated bytes by `weight`,
/// though always its largest member.
pub fn split(
    members: &[usize],
    depth: usize,
    weight: impl Fn(usize) -> usize,
    budget: usize,
) -> (&[usize], &[usize]) {
    let mut total = 0usize;
    let fits = members
        .iter()
        .take_while(|&&i| {
            total = total.saturating_add(weight(i));
            total <= budget
        })
        .count()
        .max(1);
    if depth >= MAX_DEPTH || (members.len() <= LEAF_CAPACITY && fits >= members.len()) {
        (members, &[])
    } else {
        members.split_at(fits.min(INNER_CAPACITY).min(members.len()))
    }
}

/// Splits `members` (in order) between the four quarters of `area` by their centre:
/// south-west, south-east, north-west, north-east.
pub fn quadrants(
    area: [f64; 4],
    members: &[usize],
    centre: impl Fn(usize) -> [f64; 2],
) -> [([f64; 4], Vec<usize>); 4] {
    let mid = [(area[0] + area[2]) / 2.0, (area[1] + area[3]) / 2.0];
    let mut quads: [([f64; 4], Vec<usize>); 4] = [
        ([area[0], area[1], mid[0], mid[1]], Vec::new()),
        ([mid[0], area[1], area[2], mid[1]], Vec::new()),
        ([area[0], mid[1], mid[0], area[3]], Vec::new()),
        ([mid[0], mid[1], area[2], area[3]], Vec::new()),
    ];
    for &i in members {
        let c = centre(i);
        quads[usize::from(c[0] >= mid[0]) + 2 * usize::from(c[1] >= mid[1])].1.push(i);
    }
    quads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_keeps_its_largest_and_its_quarters_share_the_rest_by_centre() {
        let members: Vec<usize> = (0..LEAF_CAPACITY + 1).collect();
        let light = |_| 1;
        let (own, rest) = split(&members, 0, light, CONTENT_BUDGET);
        assert_eq!((own.len(), rest.len()), (INNER_CAPACITY, LEAF_CAPACITY + 1 - INNER_CAPACITY));
        assert_eq!(own[0], 0, "the largest first");
        assert_eq!(split(&members[..LEAF_CAPACITY], 0, light, CONTENT_BUDGET).1.len(), 0, "a full leaf");
        assert_eq!(split(&members, MAX_DEPTH, light, CONTENT_BUDGET).1.len(), 0, "too deep to split");
        // Heavy members: a tile shows what fits its byte budget, at least one.
        let heavy = |i: usize| if i < 3 { 600_000 } else { 10 };
        let (own, rest) = split(&members[..50], 0, heavy, CONTENT_BUDGET);
        assert_eq!((own, rest.len()), (&[0, 1][..], 48), "two of 600 kB fit 1.5 MB, the third goes down");
        assert_eq!(
            split(&members[2..4], 0, |_| 2 * CONTENT_BUDGET, CONTENT_BUDGET).0,
            &[2],
            "always the largest"
        );
        let centres = [[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9], [0.5, 0.5]];
        let quads = quadrants([0.0, 0.0, 1.0, 1.0], &[0, 1, 2, 3, 4], |i| centres[i]);
        let members: Vec<Vec<usize>> = quads.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(members, vec![vec![0], vec![1], vec![2], vec![3, 4]], "the midpoint goes north-east");
        assert_eq!(quads[3].0, [0.5, 0.5, 1.0, 1.0]);
    }
}

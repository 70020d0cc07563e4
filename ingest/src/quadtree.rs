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

/// What a tile of `members` (largest first) at `depth` shows itself, and what it
/// leaves to its children.
pub fn split(members: &[usize], depth: usize) -> (&[usize], &[usize]) {
    if members.len() <= LEAF_CAPACITY || depth >= MAX_DEPTH {
        (members, &[])
    } else {
        members.split_at(INNER_CAPACITY)
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
        let (own, rest) = split(&members, 0);
        assert_eq!((own.len(), rest.len()), (INNER_CAPACITY, LEAF_CAPACITY + 1 - INNER_CAPACITY));
        assert_eq!(own[0], 0, "the largest first");
        assert_eq!(split(&members[..LEAF_CAPACITY], 0).1.len(), 0, "a full leaf");
        assert_eq!(split(&members, MAX_DEPTH).1.len(), 0, "too deep to split");
        let centres = [[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9], [0.5, 0.5]];
        let quads = quadrants([0.0, 0.0, 1.0, 1.0], &[0, 1, 2, 3, 4], |i| centres[i]);
        let members: Vec<Vec<usize>> = quads.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(members, vec![vec![0], vec![1], vec![2], vec![3, 4]], "the midpoint goes north-east");
        assert_eq!(quads[3].0, [0.5, 0.5, 1.0, 1.0]);
    }
}

//! quantized-mesh-1.0 terrain tiles (Cesium's terrain format) from terrain surface
//! tiles, and the flat tiles that fill the zoom levels above a layer's data.
//!
//! A tile is: a header (centre, height range, bounding sphere, horizon occlusion
//! point), vertices as zig-zag delta-coded `u`, `v` (0..32767 across the tile, west
//! to east and south to north) and quantised heights, triangle indices coded by the
//! high-water mark, then the vertices on each edge, from which clients build skirts.

use crate::frame::geodetic_to_ecef;
use crate::terrain::{SurfaceTile, TILE_CELLS, TerrainTile};

const QUANTIZED_MAX: f64 = 32767.0;
const RADII: [f64; 3] = [6_378_137.0, 6_378_137.0, 6_356_752.314_245_179];

fn zigzag(v: i32) -> u16 {
    ((v << 1) ^ (v >> 31)) as u16
}

/// Cesium's horizon culling point for a set of ECEF points around `centre`, in the
/// ellipsoid-scaled space the format stores.
fn horizon_occlusion_point(centre: [f64; 3], points: &[[f64; 3]]) -> [f64; 3] {
    let scaled = |p: [f64; 3]| [p[0] / RADII[0], p[1] / RADII[1], p[2] / RADII[2]];
    let norm = |p: [f64; 3]| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    let c = scaled(centre);
    let len = norm(c);
    if len == 0.0 {
        return [0.0; 3];
    }
    let direction = c.map(|v| v / len);
    let mut magnitude: f64 = 0.0;
    for &p in points {
        let s = scaled(p);
        let m = norm(s);
        let unit = s.map(|v| v / m);
        let (m2, m) = ((m * m).max(1.0), m.max(1.0));
        let cos_alpha = unit[0] * direction[0] + unit[1] * direction[1] + unit[2] * direction[2];
        let cross = [
            unit[1] * direction[2] - unit[2] * direction[1],
            unit[2] * direction[0] - unit[0] * direction[2],
            unit[0] * direction[1] - unit[1] * direction[0],
        ];
        let sin_alpha = norm(cross);
        let cos_beta = 1.0 / m;
        let sin_beta = (m2 - 1.0).sqrt() * cos_beta;
        magnitude = magnitude.max(1.0 / (cos_alpha * cos_beta - sin_alpha * sin_beta));
    }
    direction.map(|v| v * magnitude)
}

/// A unit vector in the two bytes of the `octvertexnormals` extension.
pub fn oct_encode(v: [f64; 3]) -> [u8; 2] {
    let l1 = v[0].abs() + v[1].abs() + v[2].abs();
    if l1 == 0.0 {
        return [128, 128];
    }
    let (mut x, mut y) = (v[0] / l1, v[1] / l1);
    let sign = |a: f64| if a < 0.0 { -1.0 } else { 1.0 };
    if v[2] < 0.0 {
        (x, y) = ((1.0 - y.abs()) * sign(x), (1.0 - x.abs()) * sign(y));
    }
    [x, y].map(|c| ((c.clamp(-1.0, 1.0) * 0.5 + 0.5) * 255.0).round() as u8)
}

/// The `octvertexnormals` extension block for a tile, appended to its bytes when a
/// client asks for it.
pub fn normals_extension(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 5);
    out.push(1);
    out.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    out.extend_from_slice(encoded);
    out
}

/// Encodes one tile: vertices `(i, j)` on the tile's 64-cell grid with heights, and
/// triangles counter-clockwise seen from above. With ECEF unit normals per vertex,
/// also returns them oct-encoded in the tile's vertex order (else empty).
pub fn encode_with_normals(
    tile: TerrainTile,
    vertices: &[(u16, u16, f64)],
    triangles: &[[u32; 3]],
    normals: Option<&[[f64; 3]]>,
) -> (Vec<u8>, Vec<u8>) {
    // Vertices in order of first use, as the high-water-mark code needs.
    let mut order: Vec<u32> = Vec::with_capacity(vertices.len());
    let mut new_index = vec![u32::MAX; vertices.len()];
    let mut indices = Vec::with_capacity(triangles.len() * 3);
    for &k in triangles.iter().flatten() {
        let k = k as usize;
        if new_index[k] == u32::MAX {
            new_index[k] = order.len() as u32;
            order.push(k as u32);
        }
        indices.push(new_index[k]);
    }
    let used: Vec<(u16, u16, f64)> = order.iter().map(|&k| vertices[k as usize]).collect();
    let oct: Vec<u8> = match normals {
        Some(n) if n.len() == vertices.len() => {
            order.iter().flat_map(|&k| oct_encode(n[k as usize])).collect()
        }
        _ => Vec::new(),
    };
    let (min_h, max_h) =
        used.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v.2), hi.max(v.2)));
    let (min_h, max_h) = if used.is_empty() { (0.0, 0.0) } else { (min_h, max_h) };
    let [west, south, east, north] = tile.bounds();
    let position = |v: &(u16, u16, f64)| {
        let lon = west + (east - west) * f64::from(v.0) / f64::from(TILE_CELLS);
        let lat = south + (north - south) * f64::from(v.1) / f64::from(TILE_CELLS);
        geodetic_to_ecef(lon, lat, v.2)
    };
    let ecef: Vec<[f64; 3]> = used.iter().map(position).collect();
    let centre = geodetic_to_ecef((west + east) / 2.0, (south + north) / 2.0, (min_h + max_h) / 2.0);
    let radius = ecef
        .iter()
        .map(|p| {
            ((p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2) + (p[2] - centre[2]).powi(2)).sqrt()
        })
        .fold(0.0, f64::max);
    let horizon = horizon_occlusion_point(centre, &ecef);

    let mut out = Vec::with_capacity(88 + used.len() * 6 + indices.len() * 2 + 64);
    for v in centre {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(min_h as f32).to_le_bytes());
    out.extend_from_slice(&(max_h as f32).to_le_bytes());
    for v in centre {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&radius.to_le_bytes());
    for v in horizon {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(used.len() as u32).to_le_bytes());
    let quantise_grid = |g: u16| (f64::from(g) / f64::from(TILE_CELLS) * QUANTIZED_MAX).round() as i32;
    let span = max_h - min_h;
    let quantise_height =
        |h: f64| if span > 0.0 { ((h - min_h) / span * QUANTIZED_MAX).round() as i32 } else { 0 };
    for column in 0..3 {
        let mut previous = 0i32;
        for v in &used {
            let q = match column {
                0 => quantise_grid(v.0),
                1 => quantise_grid(v.1),
                _ => quantise_height(v.2),
            };
            out.extend_from_slice(&zigzag(q - previous).to_le_bytes());
            previous = q;
        }
    }
    let wide = used.len() > 65_536;
    let align = if wide { 4 } else { 2 };
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
    let write_index = |out: &mut Vec<u8>, i: u32| {
        if wide {
            out.extend_from_slice(&i.to_le_bytes());
        } else {
            out.extend_from_slice(&(i as u16).to_le_bytes());
        }
    };
    out.extend_from_slice(&((indices.len() / 3) as u32).to_le_bytes());
    let mut highest = 0u32;
    for &i in &indices {
        write_index(&mut out, highest - i);
        if i == highest {
            highest += 1;
        }
    }
    let last = TILE_CELLS as u16;
    // West, south, east, north: which grid coordinate and which value.
    let edges = [(0usize, 0u16), (1, 0), (0, last), (1, last)];
    for (axis, value) in edges {
        let on_edge = |v: &(u16, u16, f64)| if axis == 0 { v.0 == value } else { v.1 == value };
        let members: Vec<u32> = (0..used.len() as u32).filter(|&k| on_edge(&used[k as usize])).collect();
        out.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for k in members {
            write_index(&mut out, k);
        }
    }
    (out, oct)
}

/// [`encode_with_normals`] without normals.
pub fn encode(tile: TerrainTile, vertices: &[(u16, u16, f64)], triangles: &[[u32; 3]]) -> Vec<u8> {
    encode_with_normals(tile, vertices, triangles, None).0
}

/// A surface tile as quantized-mesh, with its normals (ECEF, one per vertex)
/// oct-encoded for the extension.
pub fn encode_surface(tile: TerrainTile, surface: &SurfaceTile, normals: &[[f64; 3]]) -> (Vec<u8>, Vec<u8>) {
    let vertices: Vec<(u16, u16, f64)> =
        surface.vertices.iter().map(|v| (v.i, v.j, f64::from(v.h))).collect();
    encode_with_normals(tile, &vertices, &surface.triangles, Some(normals))
}

/// A flat tile at ellipsoid height 0: what fills the zooms above (and the places
/// beside) a terrain layer's data, so a globe has a tile everywhere.
pub fn flat_tile(tile: TerrainTile) -> Vec<u8> {
    let n = TILE_CELLS as u16;
    encode(tile, &[(0, 0, 0.0), (n, 0, 0.0), (n, n, 0.0), (0, n, 0.0)], &[[0, 1, 2], [0, 2, 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes what [`encode`] wrote, following the format's description.
    fn decode(bytes: &[u8]) -> (f32, f32, Vec<[u16; 3]>, Vec<u32>) {
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4"));
        let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().expect("2"));
        let min = f32::from_le_bytes(bytes[24..28].try_into().expect("4"));
        let max = f32::from_le_bytes(bytes[28..32].try_into().expect("4"));
        let n = u32_at(88) as usize;
        let mut at = 92;
        let mut columns = vec![vec![0u16; n]; 3];
        for column in &mut columns {
            let mut value = 0i32;
            for slot in column.iter_mut() {
                let z = i32::from(u16_at(at));
                value += (z >> 1) ^ -(z & 1);
                *slot = value as u16;
                at += 2;
            }
        }
        let vertices = (0..n).map(|k| [columns[0][k], columns[1][k], columns[2][k]]).collect();
        at += at % 2;
        let count = u32_at(at) as usize * 3;
        at += 4;
        let mut highest = 0u32;
        let mut indices = Vec::new();
        for _ in 0..count {
            let code = u32::from(u16_at(at));
            at += 2;
            indices.push(highest - code);
            if code == 0 {
                highest += 1;
            }
        }
        (min, max, vertices, indices)
    }

    #[test]
    fn vertices_heights_and_triangles_survive_the_codes() {
        let tile = TerrainTile::containing(15, 4.84, 45.76).expect("tile");
        let vertices = [(0, 0, 160.0), (64, 0, 170.0), (64, 64, 295.0), (0, 64, 200.0), (32, 16, 181.5)];
        let triangles = [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]];
        let (min, max, decoded, indices) = decode(&encode(tile, &vertices, &triangles));
        assert_eq!((min, max), (160.0, 295.0));
        assert_eq!(indices.len(), 12);
        for (t, tri) in triangles.iter().enumerate() {
            for k in 0..3 {
                let [u, v, h] = decoded[indices[3 * t + k] as usize];
                let want = vertices[tri[k] as usize];
                assert_eq!(u32::from(u), (f64::from(want.0) / 64.0 * 32767.0).round() as u32);
                assert_eq!(u32::from(v), (f64::from(want.1) / 64.0 * 32767.0).round() as u32);
                let height = 160.0 + f64::from(h) / 32767.0 * 135.0;
                assert!((height - want.2).abs() < 0.003, "{height} vs {}", want.2);
            }
        }
        let flat = decode(&flat_tile(tile));
        assert_eq!((flat.0, flat.1, flat.2.len(), flat.3.len()), (0.0, 0.0, 4, 6));
    }

    #[test]
    fn oct_encoding_round_trips_unit_vectors_to_a_degree() {
        let decode = |[a, b]: [u8; 2]| {
            let (mut x, mut y) = (f64::from(a) / 255.0 * 2.0 - 1.0, f64::from(b) / 255.0 * 2.0 - 1.0);
            let z = 1.0 - x.abs() - y.abs();
            if z < 0.0 {
                let (ox, oy) = (x, y);
                x = (1.0 - oy.abs()) * ox.signum();
                y = (1.0 - ox.abs()) * oy.signum();
            }
            let l = (x * x + y * y + z * z).sqrt();
            [x / l, y / l, z / l]
        };
        for v in [[0.0, 0.0, 1.0], [0.6, 0.0, -0.8], [-0.48, 0.6, 0.64], [0.0, -1.0, 0.0]] {
            let back = decode(oct_encode(v));
            let dot: f64 = (0..3).map(|k| v[k] * back[k]).sum();
            assert!(dot > 1f64.to_radians().cos(), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn the_horizon_point_lies_beyond_the_tile_seen_from_the_earth_centre() {
        let centre = geodetic_to_ecef(4.84, 45.76, 200.0);
        let points = [geodetic_to_ecef(4.83, 45.75, 160.0), geodetic_to_ecef(4.85, 45.77, 295.0)];
        let h = horizon_occlusion_point(centre, &points);
        let scaled_len = (h[0] * h[0] + h[1] * h[1] + h[2] * h[2]).sqrt();
        assert!(scaled_len > 1.0 && scaled_len < 1.001, "{scaled_len}");
    }
}

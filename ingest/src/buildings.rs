//! Extruded buildings as an OGC 3D Tiles 1.1 tileset.
//!
//! Footprints become walls plus an ear-cut roof (holes kept) in one local
//! east-north-up frame at the layer's centre (the root tile's `transform`). Tiles form
//! a quadtree with additive refinement: a tile shows the largest buildings of its area
//! and leaves the rest to its children. Its geometric error is therefore the size of
//! the largest building it leaves out, a true bound on what is missing on screen;
//! leaves are exact (error 0).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cim_core::frame::EnuFrame;
use cim_core::glb::{FeatureMesh, PropertyColumn, PropertyTable, identifier, write_glb};
use cim_core::mvt::PropertyValue;
use cim_core::tileset::{Asset, BoundingVolume, Content, Refine, Tile, Tileset, region_from_degrees};
use geo::{Area, TriangulateEarcut};
use geo_types::{Coord, Geometry, LineString, Polygon};
use rayon::prelude::*;

use crate::IngestError;
use crate::feature::{Extrusion, Summary};
use crate::quadtree;
use crate::spill::SpillReader;

const MAX_ATTRIBUTE_COLUMNS: usize = 64;

/// A building as the tree is cut: which feature, and its size.
struct Building {
    /// Index into the layer's features.
    feature: usize,
    /// Largest of footprint diagonal and height, metres.
    size: f64,
    extrusion: Extrusion,
}

fn polygons(g: &Geometry<f64>) -> Vec<&Polygon<f64>> {
    match g {
        Geometry::Polygon(p) => vec![p],
        Geometry::MultiPolygon(mp) => mp.0.iter().collect(),
        _ => Vec::new(),
    }
}

/// Estimated bytes of a building in a tile: about 180 a vertex of its outline (four
/// wall vertices, a roof vertex, their indices) and its attributes.
fn weight(f: &Summary) -> usize {
    180 * (f.vertices as usize).min(DENSE_OUTLINE) + f.attribute_bytes as usize
}

/// Builds the tileset of the features that are buildings (their records read from
/// `spill`), attribute columns named by `attribute_keys`; returns the number of
/// tiles written.
pub fn build_tileset(
    features: &[Summary],
    spill: &SpillReader,
    attribute_keys: &std::collections::BTreeSet<String>,
    out: &Path,
    layer: &str,
    max_tileset_bytes: usize,
    cancel: &AtomicBool,
) -> Result<usize, IngestError> {
    let mut buildings: Vec<Building> = features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let e = f.building?;
            let b = f.bbox;
            let lat = ((b[1] + b[3]) / 2.0).to_radians();
            let w = (b[2] - b[0]) * 111_320.0 * lat.cos();
            let h = (b[3] - b[1]) * 110_540.0;
            Some(Building { feature: i, size: (w * w + h * h).sqrt().max(e.height), extrusion: e })
        })
        .collect();
    // Largest first, then by id: the order every tile's content is drawn from.
    buildings.par_sort_unstable_by(|a, b| b.size.total_cmp(&a.size).then(a.feature.cmp(&b.feature)));
    let extent = buildings.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |e, b| {
        let r = features[b.feature].bbox;
        [e[0].min(r[0]), e[1].min(r[1]), e[2].max(r[2]), e[3].max(r[3])]
    });
    let frame = EnuFrame::at((extent[0] + extent[2]) / 2.0, (extent[1] + extent[3]) / 2.0, 0.0);
    let columns = attribute_columns(attribute_keys);
    let content_dir = out.join("content");
    std::fs::create_dir_all(&content_dir).map_err(|e| IngestError::store(&content_dir, e))?;
    let all: Vec<usize> = (0..buildings.len()).collect();
    let ctx = Ctx {
        features,
        spill,
        buildings: &buildings,
        frame,
        columns,
        out,
        layer,
        written: AtomicUsize::new(0),
        cancel,
    };
    let mut root = ctx.node(&all, extent, "r", 0)?;
    root.transform = Some(frame.to_ecef_matrix());
    let tileset = Tileset {
        asset: Asset {
            version: "1.1".into(),
            tileset_version: None,
            generator: Some(concat!("cim-ingest ", env!("CARGO_PKG_VERSION")).into()),
        },
        geometric_error: buildings.first().map_or(0.0, |b| b.size),
        root,
    };
    crate::tileset_files::write(out, tileset, max_tileset_bytes)?;
    Ok(ctx.written.into_inner())
}

/// Attribute names shared by all tiles' property tables: (source key, identifier).
fn attribute_columns(keys: &std::collections::BTreeSet<String>) -> Vec<(String, String)> {
    let mut used: std::collections::HashSet<String> = ["fid".to_owned(), "height".to_owned()].into();
    let mut columns = Vec::new();
    for key in keys.iter().take(MAX_ATTRIBUTE_COLUMNS) {
        let mut id = identifier(key);
        while !used.insert(id.clone()) {
            id.push('_');
        }
        columns.push((key.clone(), id));
    }
    columns
}

struct Ctx<'a> {
    features: &'a [Summary],
    spill: &'a SpillReader,
    buildings: &'a [Building],
    frame: EnuFrame,
    columns: Vec<(String, String)>,
    out: &'a Path,
    layer: &'a str,
    written: AtomicUsize,
    cancel: &'a AtomicBool,
}

impl Ctx<'_> {
    fn summary(&self, building: usize) -> &Summary {
        &self.features[self.buildings[building].feature]
    }

    /// `members` are indices into the size-sorted buildings, so the first ones are
    /// the largest.
    /// Quarters are built in parallel, each writing its own files.
    fn node(&self, members: &[usize], area: [f64; 4], name: &str, depth: usize) -> Result<Tile, IngestError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(self.layer.to_owned()));
        }
        let (own, rest) =
            quadtree::split(members, depth, |i| weight(self.summary(i)), quadtree::CONTENT_BUDGET);
        let uri = format!("content/{name}.glb");
        self.write_content(own, &self.out.join(&uri))?;
        let children = quadtree::quadrants(area, rest, |i| self.summary(i).centre())
            .into_par_iter()
            .enumerate()
            .filter(|(_, (_, quad))| !quad.is_empty())
            .map(|(q, (quad_area, quad))| self.node(&quad, quad_area, &format!("{name}{q}"), depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        // The region must hold this tile's content and all of its children.
        let mut bounds = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        let mut top: f64 = f64::NEG_INFINITY;
        let mut bottom: f64 = f64::INFINITY;
        let mut any_dense = false;
        for &i in members {
            let f = self.summary(i);
            let b = f.bbox;
            bounds = [bounds[0].min(b[0]), bounds[1].min(b[1]), bounds[2].max(b[2]), bounds[3].max(b[3])];
            let e = self.buildings[i].extrusion;
            top = top.max(e.base + e.height);
            bottom = bottom.min(e.base);
            any_dense |= f.vertices as usize > DENSE_OUTLINE;
        }
        Ok(Tile {
            bounding_volume: BoundingVolume::region(region_from_degrees(bounds, bottom, top)),
            geometric_error: rest.first().map_or(0.0, |&i| self.buildings[i].size).max(if any_dense {
                DENSE_OUTLINE_TOLERANCE_M
            } else {
                0.0
            }),
            refine: Some(Refine::Add),
            content: Some(Content { uri, bounding_volume: None }),
            transform: None,
            children,
        })
    }

    fn write_content(&self, members: &[usize], path: &Path) -> Result<(), IngestError> {
        let mut mesh = FeatureMesh::default();
        let mut fids = Vec::with_capacity(members.len());
        let mut heights = Vec::with_capacity(members.len());
        let mut attrs: Vec<Vec<String>> = vec![Vec::with_capacity(members.len()); self.columns.len()];
        for (row, &i) in members.iter().enumerate() {
            let (f, e) = (self.summary(i), self.buildings[i].extrusion);
            let part = self.spill.tile_part(f.span)?;
            for poly in polygons(&part.geometry) {
                extrude(&self.frame, poly, e.base, e.height, row as u32, &mut mesh);
            }
            fids.push(f.fid);
            heights.push(e.height);
            for (c, (key, _)) in self.columns.iter().enumerate() {
                attrs[c].push(match part.properties.iter().find(|(k, _)| k == key) {
                    None => String::new(),
                    Some((_, PropertyValue::String(s))) => s.clone(),
                    Some((_, PropertyValue::Int(i))) => i.to_string(),
                    Some((_, PropertyValue::Bool(b))) => b.to_string(),
                    // As JSON writes it, so a column reads as the feature API does.
                    Some((_, PropertyValue::Double(d))) => {
                        serde_json::Number::from_f64(*d).map_or_else(String::new, |n| n.to_string())
                    }
                });
            }
        }
        let mut columns = vec![
            ("fid".to_owned(), PropertyColumn::UInt64(fids)),
            ("height".to_owned(), PropertyColumn::Float64(heights)),
        ];
        columns.extend(
            self.columns.iter().zip(attrs).map(|((_, id), v)| (id.clone(), PropertyColumn::String(v))),
        );
        let table = PropertyTable { class: "building".into(), count: members.len(), columns };
        let glb = write_glb(&mesh, &table, concat!("cim-ingest ", env!("CARGO_PKG_VERSION")));
        std::fs::write(path, glb).map_err(|e| IngestError::store(path, e))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn signed_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n).map(|i| ring[i][0] * ring[(i + 1) % n][1] - ring[(i + 1) % n][0] * ring[i][1]).sum::<f64>() / 2.0
}

/// Local (east, north, up) ring at ellipsoidal height 0, open, oriented
/// counter-clockwise (exterior) or clockwise. The up value is the Earth's curvature
/// below the frame's plane (−d²/2R): kept, so a floor at a given height lands on
/// terrain drawn at that height, kilometres from the layer's centre too.
fn local_ring(frame: &EnuFrame, ring: &LineString<f64>, ccw: bool) -> Vec<[f64; 3]> {
    let mut pts: Vec<[f64; 3]> = ring.0.iter().map(|c| frame.to_local(c.x, c.y, 0.0)).collect();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    let flat: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], p[1]]).collect();
    if (signed_area(&flat) > 0.0) != ccw {
        pts.reverse();
    }
    pts
}

/// glTF is y-up: (east, up, -north).
fn gltf(e: f64, n: f64, up: f64) -> [f32; 3] {
    [e as f32, up as f32, -n as f32]
}

/// Outlines with more vertices than this are drawn from their simplification
/// within [`DENSE_OUTLINE_TOLERANCE_M`]: the roof's ear-clipping grows faster than
/// the vertex count (a 1 000 000-vertex outline, its vertices 6 mm apart, took
/// 88 s), and a tile's mesh gains nothing from vertices closer than that. The
/// feature API keeps the exact outline.
const DENSE_OUTLINE: usize = 20_000;
/// How far a drawn dense outline may depart from the exact one, metres; a tile
/// drawing one declares at least this geometric error.
pub const DENSE_OUTLINE_TOLERANCE_M: f64 = 0.01;

/// `ring` (open, in the local frame) thinned by Ramer-Douglas-Peucker within the
/// tolerance, heights kept with their vertices.
fn thin(ring: Vec<[f64; 3]>) -> Vec<[f64; 3]> {
    use geo::SimplifyIdx;
    let Some(first) = ring.first() else { return ring };
    let closed: Vec<Coord<f64>> =
        ring.iter().chain(std::iter::once(first)).map(|p| Coord { x: p[0], y: p[1] }).collect();
    let keep = LineString(closed).simplify_idx(DENSE_OUTLINE_TOLERANCE_M);
    let thinned: Vec<[f64; 3]> = keep.into_iter().filter(|&i| i < ring.len()).map(|i| ring[i]).collect();
    if thinned.len() >= 3 { thinned } else { ring }
}

#[cfg(test)]
fn dense(geometry: &Geometry<f64>) -> bool {
    geo::CoordsIter::coords_count(geometry) > DENSE_OUTLINE
}

/// Walls from `floor` to `floor + height` (metres above the ellipsoid) and a flat roof.
fn extrude(frame: &EnuFrame, poly: &Polygon<f64>, floor: f64, height: f64, row: u32, mesh: &mut FeatureMesh) {
    let roof = floor + height;
    let mut exterior = local_ring(frame, poly.exterior(), true);
    let mut holes: Vec<Vec<[f64; 3]>> =
        poly.interiors().iter().map(|r| local_ring(frame, r, false)).collect();
    if exterior.len() + holes.iter().map(Vec::len).sum::<usize>() > DENSE_OUTLINE {
        exterior = thin(exterior);
        holes = holes.into_iter().map(thin).collect();
    }
    if exterior.len() < 3 {
        return;
    }
    for ring in std::iter::once(&exterior).chain(holes.iter()) {
        for i in 0..ring.len() {
            let a = ring[i];
            let b = ring[(i + 1) % ring.len()];
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len = (dx * dx + dy * dy).sqrt();
            if len < 1e-6 {
                continue;
            }
            // Outward for a counter-clockwise exterior, into the courtyard for holes.
            let normal = gltf(dy / len, -dx / len, 0.0);
            let first = mesh.positions.len() as u32;
            for p in [
                gltf(a[0], a[1], a[2] + floor),
                gltf(b[0], b[1], b[2] + floor),
                gltf(b[0], b[1], b[2] + roof),
                gltf(a[0], a[1], a[2] + roof),
            ] {
                mesh.positions.push(p);
                mesh.normals.push(normal);
                mesh.feature_ids.push(row);
            }
            mesh.indices.extend_from_slice(&[first, first + 1, first + 2, first, first + 2, first + 3]);
        }
    }
    let to_ls = |r: &Vec<[f64; 3]>| LineString(r.iter().map(|p| Coord { x: p[0], y: p[1] }).collect());
    let local = Polygon::new(to_ls(&exterior), holes.iter().map(to_ls).collect());
    if local.unsigned_area() <= 0.0 {
        return;
    }
    let tri = local.earcut_triangles_raw();
    // earcut keeps the input's vertices in order: exterior, then each hole.
    let drops: Vec<f64> = exterior.iter().chain(holes.iter().flatten()).map(|p| p[2]).collect();
    let first = mesh.positions.len() as u32;
    for (k, v) in tri.vertices.iter().enumerate() {
        let drop = if drops.len() == tri.vertices.len() { drops[k] } else { 0.0 };
        mesh.positions.push(gltf(v[0], v[1], drop + roof));
        mesh.normals.push([0.0, 1.0, 0.0]);
        mesh.feature_ids.push(row);
    }
    let at = |k: usize| tri.vertices[k];
    for t in tri.triangle_indices.chunks_exact(3) {
        let (p0, p1, p2) = (at(t[0]), at(t[1]), at(t[2]));
        let cross = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0]);
        if cross.abs() < 1e-9 {
            continue;
        }
        // Counter-clockwise seen from above, so the roof faces up.
        let (i1, i2) = if cross > 0.0 { (t[1], t[2]) } else { (t[2], t[1]) };
        mesh.indices.extend_from_slice(&[first + t[0] as u32, first + i1 as u32, first + i2 as u32]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    #[test]
    fn a_box_with_a_courtyard_extrudes_watertight_walls_and_roof() {
        let frame = EnuFrame::at(24.94, 60.17, 0.0);
        // About 100 m × 100 m with a 30 m × 30 m courtyard.
        let d = 0.0009;
        let poly = polygon!(
            exterior: [(x: 24.94, y: 60.17), (x: 24.94 + 2.0 * d, y: 60.17), (x: 24.94 + 2.0 * d, y: 60.17 + d), (x: 24.94, y: 60.17 + d)],
            interiors: [[(x: 24.9406, y: 60.1703), (x: 24.9412, y: 60.1703), (x: 24.9412, y: 60.1706), (x: 24.9406, y: 60.1706)]],
        );
        let mut mesh = FeatureMesh::default();
        extrude(&frame, &poly, 0.0, 12.0, 3, &mut mesh);
        // 8 wall quads (4 outside, 4 courtyard) of 4 vertices + 8 roof vertices.
        assert_eq!(mesh.positions.len(), 8 * 4 + 8);
        assert!(mesh.feature_ids.iter().all(|&f| f == 3));
        // Roof area equals footprint minus courtyard (within float error).
        let mut roof_area = 0.0;
        for t in mesh.indices.chunks_exact(3).skip(16) {
            let p = |i: u32| mesh.positions[i as usize];
            let (a, b, c) = (p(t[0]), p(t[1]), p(t[2]));
            // In glTF x = east, z = -north: area from the x/z cross product.
            let cross = (b[0] - a[0]) * (c[2] - a[2]) - (b[2] - a[2]) * (c[0] - a[0]);
            assert!(cross < 0.0, "roof triangle faces up (y) when x×(-z) is negative");
            roof_area += -cross as f64 / 2.0;
        }
        let ring = |r: &LineString<f64>| -> Vec<[f64; 2]> {
            local_ring(&frame, r, true).iter().map(|p| [p[0], p[1]]).collect()
        };
        let want = signed_area(&ring(poly.exterior())) - signed_area(&ring(&poly.interiors()[0]));
        assert!((roof_area - want).abs() / want < 1e-4, "{roof_area} vs {want}");
        // Floor and roof, lowered by the Earth's curvature only (millimetres here).
        assert!(mesh.positions.iter().all(|p| p[1].abs() < 0.01 || (p[1] - 12.0).abs() < 0.01));
    }

    #[test]
    fn a_dense_outline_is_drawn_from_its_centimetre_simplification() {
        let frame = EnuFrame::at(24.94, 60.17, 0.0);
        let n = 200_000;
        let ring: Vec<Coord<f64>> = (0..=n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                Coord { x: 24.94 + 0.018 * a.cos(), y: 60.17 + 0.009 * a.sin() }
            })
            .collect();
        let poly = Polygon::new(LineString(ring.clone()), vec![]);
        let mut mesh = FeatureMesh::default();
        extrude(&frame, &poly, 0.0, 10.0, 0, &mut mesh);
        // Walls: four vertices per kept edge; far fewer than the 200 000 given.
        let roof_up = mesh.normals.iter().filter(|n| n[1] == 1.0).count();
        assert!(roof_up > 100 && roof_up < 20_000, "{roof_up} roof vertices");
        // Every drawn roof vertex is one of the outline's, and none of the given
        // vertices is more than the tolerance from the drawn outline (the ellipse's
        // chord error), checked at the widest gap.
        let local: Vec<[f64; 3]> = ring.iter().map(|c| frame.to_local(c.x, c.y, 0.0)).collect();
        let drawn: Vec<[f64; 2]> = mesh
            .positions
            .iter()
            .zip(&mesh.normals)
            .filter(|(_, n)| n[1] == 1.0)
            .map(|(p, _)| [f64::from(p[0]), -f64::from(p[2])])
            .collect();
        for d in drawn.iter().step_by(97) {
            assert!(local.iter().any(|l| (l[0] - d[0]).abs() < 0.01 && (l[1] - d[1]).abs() < 0.01), "{d:?}");
        }
        assert!(dense(&Geometry::Polygon(poly)));
    }
}

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
    let (mut root, _) = ctx.overview(&all, extent, "", overview_levels(extent))?;
    root.transform = Some(frame.to_ecef_matrix());
    let tileset = Tileset {
        asset: Asset {
            version: "1.1".into(),
            tileset_version: None,
            generator: Some(concat!("cim-ingest ", env!("CARGO_PKG_VERSION")).into()),
        },
        geometric_error: buildings.first().map_or(0.0, |b| b.size).max(root.geometric_error),
        root,
    };
    crate::tileset_files::write(out, tileset, max_tileset_bytes)?;
    Ok(ctx.written.into_inner())
}

/// Cells across one overview tile: its content is at most this squared blocks
/// (1 024, about 700 kB).
pub const BLOCK_GRID: usize = 32;
/// The finest overview cell, metres: below it the buildings themselves are shown.
pub const BLOCK_MIN_M: f64 = 100.0;
const MAX_OVERVIEW_LEVELS: usize = 8;

/// Width and height of a box in degrees, metres.
fn metres(area: [f64; 4]) -> (f64, f64) {
    let lat = ((area[1] + area[3]) / 2.0).to_radians();
    ((area[2] - area[0]) * 111_320.0 * lat.cos(), (area[3] - area[1]) * 110_540.0)
}

/// Overview levels above the buildings: as many as halve the cells of a
/// [`BLOCK_GRID`]-wide tile over the layer while they stay at least [`BLOCK_MIN_M`];
/// none for a district.
fn overview_levels(extent: [f64; 4]) -> usize {
    let (w, h) = metres(extent);
    let size = w.max(h);
    (0..MAX_OVERVIEW_LEVELS)
        .take_while(|&d| size / f64::from(1u32 << d) / BLOCK_GRID as f64 >= BLOCK_MIN_M)
        .count()
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

    /// A tile of the city's overview over `area` (`levels` more above the
    /// buildings): blocks, one per occupied cell, each the footprint area of the
    /// buildings whose centre it holds, at their area-weighted height, replaced by
    /// its quarters when nearer; below the last level, the buildings' own tree.
    /// Returns the tile and the box (degrees) it and its children reach.
    fn overview(
        &self,
        members: &[usize],
        area: [f64; 4],
        path: &str,
        levels: usize,
    ) -> Result<(Tile, [f64; 4]), IngestError> {
        if levels == 0 {
            return Ok((self.node(members, area, &format!("r{path}"), 0)?, self.extent_of(members).0));
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(IngestError::Interrupted(self.layer.to_owned()));
        }
        let uri = format!("content/b{path}.glb");
        let reach = self.write_blocks(members, area, &self.out.join(&uri))?;
        let children = quadtree::quadrants(area, members, |i| self.summary(i).centre())
            .into_par_iter()
            .enumerate()
            .filter(|(_, (_, quad))| !quad.is_empty())
            .map(|(q, (quad_area, quad))| self.overview(&quad, quad_area, &format!("{path}{q}"), levels - 1))
            .collect::<Result<Vec<_>, _>>()?;
        let (w, h) = metres(area);
        let cell = (w * w + h * h).sqrt() / BLOCK_GRID as f64;
        let (b, bottom, top) = self.extent_of(members);
        let union =
            |a: [f64; 4], b: [f64; 4]| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])];
        let bounds = children.iter().map(|(_, reach)| *reach).fold(union(b, reach), union);
        let children: Vec<Tile> = children.into_iter().map(|(tile, _)| tile).collect();
        let tile = Tile {
            bounding_volume: BoundingVolume::region(region_from_degrees(bounds, bottom, top)),
            // A block stands for buildings anywhere in its cell; never less than what
            // its children leave out.
            geometric_error: children.iter().map(|c| c.geometric_error).fold(cell, f64::max),
            refine: Some(Refine::Replace),
            content: Some(Content { uri, bounding_volume: None }),
            transform: None,
            children,
        };
        Ok((tile, bounds))
    }

    /// Box in degrees, lowest floor and highest roof of `members`.
    fn extent_of(&self, members: &[usize]) -> ([f64; 4], f64, f64) {
        let mut bounds = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        let mut top: f64 = f64::NEG_INFINITY;
        let mut bottom: f64 = f64::INFINITY;
        for &i in members {
            let b = self.summary(i).bbox;
            bounds = [bounds[0].min(b[0]), bounds[1].min(b[1]), bounds[2].max(b[2]), bounds[3].max(b[3])];
            let e = self.buildings[i].extrusion;
            top = top.max(e.base + e.height);
            bottom = bottom.min(e.base);
        }
        (bounds, bottom, top)
    }

    /// The blocks of one overview tile: its area cut into [`BLOCK_GRID`]² cells.
    /// Returns the box the blocks reach (a block can stand wider than its buildings).
    fn write_blocks(&self, members: &[usize], area: [f64; 4], path: &Path) -> Result<[f64; 4], IngestError> {
        #[derive(Default, Clone, Copy)]
        struct Cell {
            count: u64,
            area: f64,
            /// Area-weighted sums of centre and height.
            x: f64,
            y: f64,
            height: f64,
            base: f64,
        }
        let g = BLOCK_GRID;
        let mut cells = vec![Cell { base: f64::INFINITY, ..Cell::default() }; g * g];
        let (cw, ch) = ((area[2] - area[0]) / g as f64, (area[3] - area[1]) / g as f64);
        for &i in members {
            let f = self.summary(i);
            let e = self.buildings[i].extrusion;
            let c = f.centre();
            let col = (((c[0] - area[0]) / cw) as usize).min(g - 1);
            let row = (((c[1] - area[1]) / ch) as usize).min(g - 1);
            // The footprint's true area from its Web Mercator one; at least a square metre.
            let lat = c[1].to_radians();
            let a = (f.rank * lat.cos() * lat.cos()).max(1.0);
            let cell = &mut cells[row * g + col];
            cell.count += 1;
            cell.area += a;
            cell.x += c[0] * a;
            cell.y += c[1] * a;
            cell.height += (e.base + e.height) * a;
            cell.base = cell.base.min(e.base);
        }
        let (w, h) = metres(area);
        let cell_m2 = w * h / (g * g) as f64;
        let mut mesh = FeatureMesh::default();
        let (mut counts, mut heights) = (Vec::new(), Vec::new());
        let mut reach = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for cell in cells.iter().filter(|c| c.count > 0) {
            let (x, y) = (cell.x / cell.area, cell.y / cell.area);
            let roof = cell.height / cell.area;
            let half = cell.area.min(cell_m2).sqrt() / 2.0;
            let lat = y.to_radians();
            let (dx, dy) = (half / (111_320.0 * lat.cos()), half / 110_540.0);
            let square = Polygon::new(
                LineString::from(vec![
                    (x - dx, y - dy),
                    (x + dx, y - dy),
                    (x + dx, y + dy),
                    (x - dx, y + dy),
                ]),
                vec![],
            );
            let height = (roof - cell.base).max(0.5);
            extrude(&self.frame, &square, cell.base, height, counts.len() as u32, &mut mesh);
            reach = [reach[0].min(x - dx), reach[1].min(y - dy), reach[2].max(x + dx), reach[3].max(y + dy)];
            counts.push(cell.count);
            heights.push(height);
        }
        let table = PropertyTable {
            class: "block".into(),
            count: counts.len(),
            columns: vec![
                ("buildings".to_owned(), PropertyColumn::UInt64(counts)),
                ("height".to_owned(), PropertyColumn::Float64(heights)),
            ],
        };
        let glb = write_glb(&mesh, &table, concat!("cim-ingest ", env!("CARGO_PKG_VERSION")));
        std::fs::write(path, glb).map_err(|e| IngestError::store(path, e))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(reach)
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
        let (bounds, bottom, top) = self.extent_of(members);
        let dense = members.iter().any(|&i| self.summary(i).vertices as usize > DENSE_OUTLINE);
        Ok(Tile {
            bounding_volume: BoundingVolume::region(region_from_degrees(bounds, bottom, top)),
            geometric_error: rest.first().map_or(0.0, |&i| self.buildings[i].size).max(if dense {
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

    /// `n` square buildings of 10–40 m on a jittered grid over about 20 km of
    /// Helsinki, spilled to `dir`.
    fn city(n: usize, dir: &Path) -> (Vec<Summary>, SpillReader) {
        let mut spill = crate::spill::SpillWriter::create(&dir.join("spill")).expect("spill");
        let props = serde_json::Map::new();
        let side = (n as f64).sqrt().ceil() as usize;
        let features = (0..n)
            .map(|k| {
                let (i, j) = ((k % side) as f64, (k / side) as f64);
                let step = 0.36 / side as f64;
                let (x, y) = (24.7 + i * step + (k % 7) as f64 * 1e-4, 60.1 + j * step / 2.0);
                let s = (10.0 + (k % 31) as f64) / 111_320.0 * 2.0;
                let ring = vec![(x, y), (x + s, y), (x + s, y + s / 2.0), (x, y + s / 2.0), (x, y)];
                let tile = crate::spill::TilePart {
                    geometry: Geometry::Polygon(Polygon::new(LineString::from(ring), vec![])),
                    properties: Vec::new(),
                };
                let building = Some(Extrusion { height: 5.0 + (k % 13) as f64 * 3.0, base: 0.0 });
                let incoming = crate::feature::Incoming {
                    fid: Some(k as u64),
                    tile,
                    exact: None,
                    properties: &props,
                    building,
                };
                incoming.spill(&mut spill).expect("spilled").expect("a box")
            })
            .collect();
        (features, spill.finish().expect("reader"))
    }

    #[test]
    fn a_city_is_overviewed_by_blocks_that_its_buildings_replace_and_each_building_is_drawn_once() {
        let dir = std::env::temp_dir().join(format!("cim-overview-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let n = 3000;
        let (features, spill) = city(n, &dir);
        let out = dir.join("3dtiles");
        build_tileset(
            &features,
            &spill,
            &Default::default(),
            &out,
            "city",
            1_000_000,
            &AtomicBool::new(false),
        )
        .expect("tileset");
        let tileset: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("tileset.json")).expect("json")).expect("parse");
        let root = &tileset["root"];
        assert_eq!(root["refine"], "REPLACE");
        assert_eq!(root["content"]["uri"], "content/b.glb");
        let rows = |uri: &str| {
            let glb = std::fs::read(out.join(uri)).expect("glb");
            assert!(glb.len() < 2_000_000, "{uri}: {} bytes", glb.len());
            let json = cim_core::glb::json_chunk(&glb).expect("json chunk");
            let table = &json["extensions"]["EXT_structural_metadata"]["propertyTables"][0];
            (table["class"].as_str().unwrap_or_default().to_owned(), table["count"].as_u64().expect("count"))
        };
        // Walks the tree: block levels over building levels, errors never growing
        // downwards, every building in exactly one building tile.
        fn walk(
            tile: &serde_json::Value,
            parent: f64,
            visit: &mut dyn FnMut(&serde_json::Value, usize),
            depth: usize,
        ) {
            let e = tile["geometricError"].as_f64().expect("error");
            assert!(e <= parent, "a child's error {e} over its parent's {parent}");
            visit(tile, depth);
            for c in tile["children"].as_array().into_iter().flatten() {
                walk(c, e, visit, depth + 1);
            }
        }
        let (mut buildings, mut block_levels, mut blocks_at_root) = (0, 0, 0);
        walk(
            root,
            tileset["geometricError"].as_f64().expect("error"),
            &mut |tile, depth| {
                let uri = tile["content"]["uri"].as_str().expect("uri");
                let (class, count) = rows(uri);
                if uri.starts_with("content/b") {
                    assert_eq!(
                        (class.as_str(), tile["refine"].as_str()),
                        ("block", Some("REPLACE")),
                        "{uri}"
                    );
                    assert!(count as usize <= BLOCK_GRID * BLOCK_GRID);
                    block_levels = block_levels.max(depth + 1);
                    if depth == 0 {
                        blocks_at_root = count;
                    }
                } else {
                    assert_eq!(class, "building", "{uri}");
                    buildings += count;
                }
            },
            0,
        );
        // About 20 km across: 32 cells of 625 m, 312 m, 156 m; 78 m would be under 100 m.
        assert_eq!(block_levels, 3);
        assert_eq!(buildings, n as u64);
        assert!(blocks_at_root > 100, "the root draws the city's blocks: {blocks_at_root}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_district_has_no_overview_levels() {
        // Central Helsinki's sample, 2 km: 32 cells of 62 m are finer than a block.
        assert_eq!(overview_levels([24.93, 60.16, 24.966, 60.175]), 0);
        assert_eq!(overview_levels([24.7, 60.1, 25.06, 60.28]), 3);
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

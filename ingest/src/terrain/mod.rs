//! DEM rasters into terrain tiles: a quadtree of the geographic tiling scheme
//! ([`cim_core::terrain::TerrainTile`]), one error-bounded mesh per tile ([`rtin`]),
//! written as 3D Tiles GLB content with replacement refinement.
//!
//! * Heights are sampled bilinearly from the raster (no data skipped) at each tile's
//!   65×65 grid positions, reprojected by PROJ; coarse levels sample a mean pyramid.
//! * Neighbours of one level share their edge vertices exactly: edge positions come
//!   from global sample indices, and each tile is forced to keep the edge vertices its
//!   neighbour keeps until both agree. Skirts hang from every tile edge to hide the
//!   gaps between tiles of different levels.
//! * Normals come from the height grid with a one-sample border, so shared vertices
//!   get the same normal on both sides.
//! * Each tile's geometric error is measured: the largest distance between its mesh
//!   and any raster pixel centre inside it (never less than the simplification bound).
//! * The finest level is also written as a [`TerrainSurface`] for height queries.

pub mod raster;
pub mod rtin;

use std::collections::HashMap;
use std::path::Path;

use cim_core::catalogue::{
    LayerContent, QUANTIZED_MESH_DIR, TERRAIN_SURFACE_FILE, TILESET_DIR, TerrainLevel, TerrainSummary,
};
use cim_core::frame::{EnuFrame, geodetic_to_ecef};
use cim_core::glb::{GlbMaterial, PlainPrimitive, write_plain_glb};
use cim_core::terrain::{SurfaceTile, SurfaceVertex, TILE_CELLS, TerrainSurface, TerrainTile};
use cim_core::tileset::{Asset, BoundingVolume, Content, Refine, Tile, Tileset, region_from_degrees};
use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use rayon::prelude::*;

use crate::IngestError;
use crate::run::{Built, GENERATOR, Kind, LayerRun, Takes, write_json};
use raster::Grid;
use rtin::Rtin;

pub const KIND: Kind = Kind {
    name: "terrain",
    inputs: "DEM rasters",
    takes: Takes { attribute_rules: false, coarsen: false, anchor: false },
    build,
};
/// Samples per tile side, plus one on each side for normals.
const SIDE: usize = TILE_CELLS as usize + 1;
const BORDERED: usize = SIDE + 2;
/// Default error bound of the finest level, metres; each coarser level doubles it.
pub const DEFAULT_FINEST_ERROR: f64 = 0.5;
/// At most this many raster pixel centres are used to measure tile errors.
const MAX_MEASURED_PIXELS: usize = 4_000_000;
/// Whether GDAL finds a raster in a file that may hold vectors as well (a GeoPackage).
pub fn holds_raster(path: &Path) -> bool {
    gdal::Dataset::open(path).is_ok_and(|d| d.raster_count() > 0)
}

struct Transforms {
    to_wgs84: CoordTransform,
    from_wgs84: CoordTransform,
    label: String,
}

fn transforms(path: &Path, spec: &str) -> Result<Transforms, IngestError> {
    let unknown = |e: gdal::errors::GdalError| IngestError::UnknownCrs {
        crs: spec.chars().take(80).collect(),
        reason: e.to_string(),
    };
    let mut srs = crate::crs::spatial_ref(spec).map_err(unknown)?;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let mut wgs84 = SpatialRef::from_epsg(4326).map_err(unknown)?;
    wgs84.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let label = match (srs.auth_name(), srs.auth_code()) {
        (Some(name), Ok(code)) => format!("{name}:{code}"),
        _ => srs.name().unwrap_or_else(|| format!("the CRS of {}", path.display())),
    };
    Ok(Transforms {
        to_wgs84: CoordTransform::new(&srs, &wgs84).map_err(unknown)?,
        from_wgs84: CoordTransform::new(&wgs84, &srs).map_err(unknown)?,
        label,
    })
}

fn transform(t: &CoordTransform, xs: &mut [f64], ys: &mut [f64]) -> Result<(), String> {
    t.transform_coords(xs, ys, &mut []).map_err(|e| e.to_string())
}

/// A tile's heights on its grid with a one-sample border, row `j` (north from the
/// south edge) major: index `(j + 1) * BORDERED + (i + 1)` for grid sample `(i, j)`.
struct TileGrid {
    tile: TerrainTile,
    bordered: Vec<f64>,
    inner: Vec<f64>,
}

fn sample_tile(tile: TerrainTile, grid: &Grid, from_wgs84: &CoordTransform) -> Result<TileGrid, String> {
    let (gi0, gj0) = tile.first_sample();
    let mut xs = Vec::with_capacity(BORDERED * BORDERED);
    let mut ys = Vec::with_capacity(BORDERED * BORDERED);
    for j in 0..BORDERED as i64 {
        for i in 0..BORDERED as i64 {
            let (lon, lat) = TerrainTile::sample_position(tile.z, gi0 + i - 1, gj0 + j - 1);
            xs.push(lon);
            ys.push(lat.clamp(-90.0, 90.0));
        }
    }
    transform(from_wgs84, &mut xs, &mut ys)?;
    let bordered: Vec<f64> = xs.iter().zip(&ys).map(|(&x, &y)| grid.sample(x, y)).collect();
    let inner = (0..SIDE * SIDE).map(|k| bordered[(k / SIDE + 1) * BORDERED + k % SIDE + 1]).collect();
    Ok(TileGrid { tile, bordered, inner })
}

/// Error arrays of one level's tiles, with edge vertices forced until every pair of
/// neighbours keeps the same vertices on the edge they share.
fn stitched_errors(rtin: &Rtin, grids: &[TileGrid], max_error: f64) -> Vec<Vec<f64>> {
    let index: HashMap<(u32, u32), usize> =
        grids.iter().enumerate().map(|(k, g)| ((g.tile.x, g.tile.y), k)).collect();
    let mut forced = vec![vec![false; SIDE * SIDE]; grids.len()];
    let last = SIDE - 1;
    let mut errors: Vec<Vec<f64>> = grids.par_iter().map(|g| rtin.errors(&g.inner, &[])).collect();
    loop {
        let mut dirty = vec![false; grids.len()];
        for (t, g) in grids.iter().enumerate() {
            let east = index.get(&(g.tile.x + 1, g.tile.y)).map(|&n| (n, true));
            let north = index.get(&(g.tile.x, g.tile.y + 1)).map(|&n| (n, false));
            for (n, vertical) in [east, north].into_iter().flatten() {
                for k in 0..SIDE {
                    // This tile's edge sample and the neighbour's matching one.
                    let (here, there) = if vertical { ((last, k), (0, k)) } else { ((k, last), (k, 0)) };
                    let a = rtin.has_vertex(&errors[t], max_error, here.0, here.1);
                    let b = rtin.has_vertex(&errors[n], max_error, there.0, there.1);
                    if a && !b {
                        forced[n][there.1 * SIDE + there.0] = true;
                        dirty[n] = true;
                    } else if b && !a {
                        forced[t][here.1 * SIDE + here.0] = true;
                        dirty[t] = true;
                    }
                }
            }
        }
        if !dirty.contains(&true) {
            return errors;
        }
        // Only tiles that gained a forced vertex change.
        let redone: Vec<(usize, Vec<f64>)> = (0..grids.len())
            .into_par_iter()
            .filter(|&t| dirty[t])
            .map(|t| (t, rtin.errors(&grids[t].inner, &forced[t])))
            .collect();
        for (t, e) in redone {
            errors[t] = e;
        }
    }
}

/// Hypsometric tint from low green to high pale stone, linear RGB.
fn tint(t: f64) -> [u8; 4] {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.0, [0.13, 0.32, 0.12]),
        (0.3, [0.35, 0.45, 0.16]),
        (0.6, [0.55, 0.45, 0.25]),
        (0.85, [0.42, 0.32, 0.24]),
        (1.0, [0.85, 0.84, 0.82]),
    ];
    let t = t.clamp(0.0, 1.0);
    let k = STOPS.iter().position(|s| s.0 >= t).unwrap_or(STOPS.len() - 1).max(1);
    let ((t0, c0), (t1, c1)) = (STOPS[k - 1], STOPS[k]);
    let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
    let c = [0, 1, 2].map(|i| ((c0[i] + (c1[i] - c0[i]) * f) * 255.0).round() as u8);
    [c[0], c[1], c[2], 255]
}

struct BuiltTile {
    tile: TerrainTile,
    surface: SurfaceTile,
    /// quantized-mesh-1.0 bytes and the oct-encoded normals of its vertices.
    quantized: (Vec<u8>, Vec<u8>),
    glb: Vec<u8>,
    /// `[west, south, east, north]` of the vertices, and heights with skirts.
    bounds: [f64; 4],
    heights: [f64; 2],
}

struct LevelContext<'a> {
    frame: &'a EnuFrame,
    height_range: [f64; 2],
    skirt: f64,
}

fn build_tile(
    grid: &TileGrid,
    rtin: &Rtin,
    errors: &[f64],
    max_error: f64,
    ctx: &LevelContext<'_>,
) -> Option<BuiltTile> {
    let (vertex_samples, triangles) = rtin.mesh(&grid.inner, errors, max_error);
    if triangles.is_empty() {
        return None;
    }
    let tile = grid.tile;
    let (gi0, gj0) = tile.first_sample();
    let step = TerrainTile::sample_step(tile.z);
    let mut surface = PlainPrimitive { material: 0, ..Default::default() };
    let mut vertices = Vec::with_capacity(vertex_samples.len());
    let mut bounds = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut heights = [f64::INFINITY, f64::NEG_INFINITY];
    let mut geodetic = Vec::with_capacity(vertex_samples.len());
    let mut normals_ecef = Vec::with_capacity(vertex_samples.len());
    for &k in &vertex_samples {
        let (i, j) = (k as usize % SIDE, k as usize / SIDE);
        let h = grid.inner[k as usize];
        let (lon, lat) = TerrainTile::sample_position(tile.z, gi0 + i as i64, gj0 + j as i64);
        bounds = [bounds[0].min(lon), bounds[1].min(lat), bounds[2].max(lon), bounds[3].max(lat)];
        heights = [heights[0].min(h - ctx.skirt), heights[1].max(h)];
        let p = ctx.frame.to_local(lon, lat, h);
        surface.positions.push([p[0] as f32, p[2] as f32, -p[1] as f32]);
        // Slopes from the bordered grid: central differences where both sides have data.
        let at = |di: i64, dj: i64| {
            grid.bordered[((j as i64 + 1 + dj) as usize) * BORDERED + (i as i64 + 1 + di) as usize]
        };
        let metres_east = step.to_radians() * cim_core::frame::WGS84_A * lat.to_radians().cos();
        let metres_north = step.to_radians() * cim_core::frame::WGS84_A;
        let slope = |minus: f64, plus: f64, metres: f64| match (minus.is_nan(), plus.is_nan()) {
            (false, false) => (plus - minus) / (2.0 * metres),
            (true, false) => (plus - h) / metres,
            (false, true) => (h - minus) / metres,
            (true, true) => 0.0,
        };
        let de = slope(at(-1, 0), at(1, 0), metres_east);
        let dn = slope(at(0, -1), at(0, 1), metres_north);
        let there = EnuFrame::at(lon, lat, 0.0).direction_to_ecef([-de, -dn, 1.0]);
        let there_len = (there[0] * there[0] + there[1] * there[1] + there[2] * there[2]).sqrt();
        normals_ecef.push(there.map(|c| c / there_len));
        let n = ctx.frame.direction_to_local(lon, lat, [-de, -dn, 1.0]);
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        surface.normals.push([(n[0] / len) as f32, (n[2] / len) as f32, (-n[1] / len) as f32]);
        let span = ctx.height_range[1] - ctx.height_range[0];
        surface.colors.push(tint(if span > 0.0 { (h - ctx.height_range[0]) / span } else { 0.5 }));
        vertices.push(SurfaceVertex { i: i as u16, j: j as u16, h: h as f32 });
        geodetic.push((lon, lat, h));
    }
    surface.indices = triangles.iter().flatten().copied().collect();

    // Skirts: every triangle edge on the tile's border hangs a wall outwards.
    let last = SIDE as u16 - 1;
    let on_same_side = |a: SurfaceVertex, b: SurfaceVertex| {
        (a.i == 0 && b.i == 0)
            || (a.i == last && b.i == last)
            || (a.j == 0 && b.j == 0)
            || (a.j == last && b.j == last)
    };
    let mut skirt = PlainPrimitive { material: 0, ..Default::default() };
    let mut skirt_vertex: HashMap<u32, (u32, u32)> = HashMap::new();
    let mut skirt_of = |v: u32, skirt: &mut PlainPrimitive| -> (u32, u32) {
        *skirt_vertex.entry(v).or_insert_with(|| {
            let (lon, lat, h) = geodetic[v as usize];
            let base = skirt.positions.len() as u32;
            for height in [h, h - ctx.skirt] {
                let p = ctx.frame.to_local(lon, lat, height);
                skirt.positions.push([p[0] as f32, p[2] as f32, -p[1] as f32]);
                skirt.normals.push(surface.normals[v as usize]);
                skirt.colors.push(surface.colors[v as usize]);
            }
            (base, base + 1)
        })
    };
    for tri in &triangles {
        for e in 0..3 {
            let (a, b) = (tri[e], tri[(e + 1) % 3]);
            if on_same_side(vertices[a as usize], vertices[b as usize]) {
                let (at, ab) = skirt_of(a, &mut skirt);
                let (bt, bb) = skirt_of(b, &mut skirt);
                skirt.indices.extend_from_slice(&[at, ab, bt, bt, ab, bb]);
            }
        }
    }
    let glb = write_plain_glb(
        &[surface, skirt],
        &[GlbMaterial { name: "terrain".into(), base_color: [1.0, 1.0, 1.0, 1.0] }],
        GENERATOR,
    );
    Some(BuiltTile {
        tile,
        quantized: quantized_tile(grid, rtin, errors, max_error, &vertices, &triangles, &normals_ecef),
        surface: SurfaceTile::new(tile.x, tile.y, vertices, triangles),
        glb,
        bounds,
        heights,
    })
}

/// The tile as quantized-mesh: the same mesh where there is data; where a tile has
/// none, triangles at ellipsoid height 0 cover the rest (a globe wants no holes, and
/// the flat tiles above the data are at 0 too).
fn quantized_tile(
    grid: &TileGrid,
    rtin: &Rtin,
    errors: &[f64],
    max_error: f64,
    vertices: &[SurfaceVertex],
    triangles: &[[u32; 3]],
    normals: &[[f64; 3]],
) -> (Vec<u8>, Vec<u8>) {
    let tile = grid.tile;
    if grid.inner.iter().all(|h| !h.is_nan()) {
        let v: Vec<(u16, u16, f64)> = vertices.iter().map(|v| (v.i, v.j, f64::from(v.h))).collect();
        return cim_core::quantized_mesh::encode_with_normals(tile, &v, triangles, Some(normals));
    }
    let (samples, covering) = rtin.mesh_covering(&grid.inner, errors, max_error);
    let by_sample: HashMap<(u16, u16), usize> =
        vertices.iter().enumerate().map(|(k, v)| ((v.i, v.j), k)).collect();
    let [west, south, east, north] = tile.bounds();
    let mut v = Vec::with_capacity(samples.len());
    let mut n = Vec::with_capacity(samples.len());
    for &k in &samples {
        let (i, j) = ((k as usize % SIDE) as u16, (k as usize / SIDE) as u16);
        match by_sample.get(&(i, j)) {
            Some(&m) => {
                v.push((i, j, f64::from(vertices[m].h)));
                n.push(normals[m]);
            }
            None => {
                let h = grid.inner[k as usize];
                v.push((i, j, if h.is_nan() { 0.0 } else { h }));
                let lon = west + (east - west) * f64::from(i) / f64::from(TILE_CELLS);
                let lat = south + (north - south) * f64::from(j) / f64::from(TILE_CELLS);
                n.push(EnuFrame::at(lon, lat, 0.0).direction_to_ecef([0.0, 0.0, 1.0]));
            }
        }
    }
    cim_core::quantized_mesh::encode_with_normals(tile, &v, &covering, Some(&n))
}

/// Meshes one DEM raster into terrain tiles.
fn build(run: &mut LayerRun<'_>) -> Result<Built, IngestError> {
    let options = run.options;
    let started = std::time::Instant::now();
    let [path] = options.files.as_slice() else {
        return Err(IngestError::source(
            options.files.first().map_or(Path::new(""), |p| p.as_path()),
            "a terrain layer is built from one DEM raster; mosaic several with gdalbuildvrt first",
        ));
    };
    let dem = raster::read_dem(path)?;
    let spec = match (&options.src_crs, &dem.crs_wkt) {
        (Some(s), _) => s.clone(),
        (None, Some(wkt)) => wkt.clone(),
        (None, None) => return Err(IngestError::MissingCrs { path: path.clone() }),
    };
    let crs = transforms(path, &spec)?;
    let grid = &dem.grid;
    let valid_pixels = grid.values.iter().filter(|v| !v.is_nan()).count() as u64;
    if valid_pixels == 0 {
        return Err(IngestError::NoFeatures {
            layer: options.layer.clone(),
            why: format!("{}: every pixel is no data", path.display()),
        });
    }
    let (min_h, max_h) = grid
        .values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(f64::from(v)), hi.max(f64::from(v)))
        });

    // The raster's footprint in degrees, from points along its border.
    let (w, h) = (grid.width as f64, grid.height as f64);
    let g = grid.geo;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for k in 0..=64 {
        let f = f64::from(k) / 64.0;
        for (c, r) in [(f * w, 0.0), (f * w, h), (0.0, f * h), (w, f * h)] {
            xs.push(g[0] + c * g[1] + r * g[2]);
            ys.push(g[3] + c * g[4] + r * g[5]);
        }
    }
    transform(&crs.to_wgs84, &mut xs, &mut ys).map_err(|e| {
        IngestError::source(path, format!("its corners cannot be moved into WGS84 from {}: {e}", crs.label))
    })?;
    let footprint = xs
        .iter()
        .zip(&ys)
        .fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |b, (&x, &y)| {
            [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)]
        });
    if !(footprint[0] >= -180.0 && footprint[2] <= 180.0 && footprint[1] >= -90.0 && footprint[3] <= 90.0) {
        return Err(IngestError::source(
            path,
            format!(
                "its footprint {footprint:?} is not on the Earth in {}; wrong CRS? (pass --src-crs)",
                crs.label
            ),
        ));
    }

    // Pixel size in metres, measured on the ground at the raster's centre.
    let (cc, cr) = (grid.width / 2, grid.height / 2);
    let mut pxs = Vec::new();
    let mut pys = Vec::new();
    for (c, r) in [(cc, cr), (cc + 1, cr), (cc, cr + 1)] {
        let (x, y) = grid.centre_of(c, r);
        pxs.push(x);
        pys.push(y);
    }
    transform(&crs.to_wgs84, &mut pxs, &mut pys).map_err(|e| IngestError::source(path, e))?;
    let ecef: Vec<[f64; 3]> = pxs.iter().zip(&pys).map(|(&x, &y)| geodetic_to_ecef(x, y, 0.0)).collect();
    let dist = |a: [f64; 3], b: [f64; 3]| {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    };
    let pixel_m = dist(ecef[0], ecef[1]).min(dist(ecef[0], ecef[2]));
    if !(pixel_m.is_finite() && pixel_m > 0.0) {
        return Err(IngestError::source(path, "its pixel size could not be measured on the ground"));
    }

    let centre_lat = (footprint[1] + footprint[3]) / 2.0;
    let metres_per_degree = std::f64::consts::PI / 180.0 * cim_core::frame::WGS84_A;
    let north_spacing = |z: u8| TerrainTile::sample_step(z) * metres_per_degree;
    let east_spacing = |z: u8| north_spacing(z) * centre_lat.to_radians().cos();
    let max_zoom = (0..=22u8).find(|&z| north_spacing(z) <= pixel_m * 1.0001).unwrap_or(22);
    let tile_range = |z: u8| -> Option<(TerrainTile, TerrainTile)> {
        Some((
            TerrainTile::containing(z, footprint[0], footprint[1])?,
            TerrainTile::containing(z, footprint[2], footprint[3])?,
        ))
    };
    let count = |z: u8| tile_range(z).map_or(0, |(a, b)| (b.x - a.x + 1) as u64 * (b.y - a.y + 1) as u64);
    let min_zoom = (0..=max_zoom).rev().find(|&z| count(z) <= 4).unwrap_or(0);
    let finest_error = options.terrain_error.unwrap_or(DEFAULT_FINEST_ERROR);

    // Mean pyramid: level p has pixels 2^p times the raster's.
    let mut pyramid = vec![grid.clone()];
    while pyramid.last().is_some_and(|l| l.width > 2 || l.height > 2)
        && pixel_m * f64::from(1u32 << pyramid.len()) <= east_spacing(min_zoom)
    {
        let next = pyramid.last().map(Grid::halve);
        pyramid.extend(next);
    }

    // Pixel centres in degrees, to measure each tile's real error.
    let stride =
        ((grid.width * grid.height) as f64 / MAX_MEASURED_PIXELS as f64).sqrt().ceil().max(1.0) as usize;
    let mut measured: Vec<(f64, f64, f64)> = Vec::new();
    {
        let (mut mx, mut my, mut mv) = (Vec::new(), Vec::new(), Vec::new());
        for row in (0..grid.height).step_by(stride) {
            for col in (0..grid.width).step_by(stride) {
                let v = grid.value(col, row);
                if !v.is_nan() {
                    let (x, y) = grid.centre_of(col, row);
                    mx.push(x);
                    my.push(y);
                    mv.push(f64::from(v));
                }
            }
        }
        transform(&crs.to_wgs84, &mut mx, &mut my).map_err(|e| IngestError::source(path, e))?;
        measured.extend(mx.into_iter().zip(my).zip(mv).map(|((x, y), v)| (x, y, v)));
    }

    let dir = run.stage()?;
    let version = run.version()?;
    let content_dir = dir.join(TILESET_DIR).join("content");
    std::fs::create_dir_all(&content_dir).map_err(|e| IngestError::store(&content_dir, e))?;
    let frame = EnuFrame::at((footprint[0] + footprint[2]) / 2.0, (footprint[1] + footprint[3]) / 2.0, min_h);
    let rtin = Rtin::new(TILE_CELLS as usize);
    let total_tiles: u64 = (min_zoom..=max_zoom).map(count).sum();
    let progress = run.progress(total_tiles, "terrain");

    struct LevelOut {
        tiles: HashMap<(u32, u32), (BuiltTile, f64)>,
        summary: TerrainLevel,
    }
    let mut levels: Vec<LevelOut> = Vec::new();
    let mut finest_surface = None;
    for z in min_zoom..=max_zoom {
        run.check_cancel()?;
        let error_bound = finest_error * f64::from(1u32 << (max_zoom - z));
        let level_grid = pyramid
            .iter()
            .rev()
            .find(|p| {
                let scale = p.geo[1].abs() / grid.geo[1].abs();
                pixel_m * scale <= east_spacing(z) * 1.0001
            })
            .unwrap_or(grid);
        let Some((first, last)) = tile_range(z) else { continue };
        let mut grids = Vec::new();
        for y in first.y..=last.y {
            for x in first.x..=last.x {
                let tile = TerrainTile { z, x, y };
                let sampled = sample_tile(tile, level_grid, &crs.from_wgs84)
                    .map_err(|e| IngestError::source(path, format!("sampling tile {z}/{x}/{y}: {e}")))?;
                if sampled.inner.iter().any(|v| !v.is_nan()) {
                    grids.push(sampled);
                }
                progress.inc(1);
            }
        }
        let errors = stitched_errors(&rtin, &grids, error_bound);
        let ctx =
            LevelContext { frame: &frame, height_range: [min_h, max_h], skirt: (4.0 * error_bound).max(5.0) };
        let built: Vec<BuiltTile> = grids
            .par_iter()
            .zip(&errors)
            .filter_map(|(g, e)| build_tile(g, &rtin, e, error_bound, &ctx))
            .collect();
        // Measure: each pixel centre against the mesh of the tile that holds it.
        let mut tile_error: HashMap<(u32, u32), f64> = HashMap::new();
        let mut deviations = Vec::with_capacity(measured.len());
        let index: HashMap<(u32, u32), usize> =
            grids.iter().enumerate().map(|(k, g)| ((g.tile.x, g.tile.y), k)).collect();
        let step = TerrainTile::sample_step(z);
        for &(lon, lat, value) in &measured {
            let Some(t) = TerrainTile::containing(z, lon, lat) else { continue };
            let Some(&k) = index.get(&(t.x, t.y)) else { continue };
            let [west, south, ..] = t.bounds();
            if let Some(mesh_h) = rtin.height_at(
                &grids[k].inner,
                &errors[k],
                error_bound,
                (lon - west) / step,
                (lat - south) / step,
            ) {
                let e = tile_error.entry((t.x, t.y)).or_insert(0.0);
                *e = e.max((mesh_h - value).abs());
                deviations.push((mesh_h - value).abs());
            }
        }
        deviations.sort_by(f64::total_cmp);
        let p99 = deviations.get(deviations.len() * 99 / 100).copied().unwrap_or(0.0);
        let mut tiles = HashMap::new();
        let mut triangles = 0u64;
        let mut level_error = error_bound;
        for mut b in built {
            let e = tile_error.get(&(b.tile.x, b.tile.y)).copied().unwrap_or(0.0).max(error_bound);
            level_error = level_error.max(e);
            triangles += b.surface.triangles.len() as u64;
            let file = content_dir.join(format!("{}-{}-{}.glb", b.tile.z, b.tile.x, b.tile.y));
            std::fs::write(&file, &b.glb).map_err(|err| IngestError::store(&file, err))?;
            let qm_dir = dir.join(QUANTIZED_MESH_DIR).join(b.tile.z.to_string()).join(b.tile.x.to_string());
            std::fs::create_dir_all(&qm_dir).map_err(|err| IngestError::store(&qm_dir, err))?;
            let (qm_bytes, oct) = &b.quantized;
            for (name, bytes) in
                [(format!("{}.terrain", b.tile.y), qm_bytes), (format!("{}.normals", b.tile.y), oct)]
            {
                let file = qm_dir.join(name);
                std::fs::write(&file, bytes).map_err(|err| IngestError::store(&file, err))?;
            }
            // Written: only the tree's facts stay in memory (and the finest meshes,
            // for the elevation surface), not every level's output.
            b.glb = Vec::new();
            b.quantized = Default::default();
            if z != max_zoom {
                b.surface = SurfaceTile::new(b.tile.x, b.tile.y, Vec::new(), Vec::new());
            }
            tiles.insert((b.tile.x, b.tile.y), (b, e));
        }
        if z == max_zoom {
            let mut surface_tiles: Vec<SurfaceTile> =
                tiles.values().map(|(b, _)| b.surface.clone()).collect();
            surface_tiles.sort_by_key(|t| (t.x, t.y));
            finest_surface = Some(TerrainSurface { zoom: z, tiles: surface_tiles });
        }
        tracing::info!(
            zoom = z,
            tiles = tiles.len(),
            triangles,
            error_bound,
            level_error,
            "terrain level built"
        );
        levels.push(LevelOut {
            summary: TerrainLevel {
                zoom: z,
                tiles: tiles.len() as u64,
                triangles,
                error_bound_m: error_bound,
                geometric_error_m: level_error,
                pixel_error_p99_m: p99,
                pixels_measured: deviations.len() as u64,
            },
            tiles,
        });
    }
    progress.finish_and_clear();

    // The tree: each tile's children are the existing tiles one zoom finer inside it.
    fn node(levels: &[LevelOut], depth: usize, x: u32, y: u32) -> Option<Tile> {
        let level = levels.get(depth)?;
        let (built, error) = level.tiles.get(&(x, y))?;
        let children: Vec<Tile> =
            built.tile.children().iter().filter_map(|c| node(levels, depth + 1, c.x, c.y)).collect();
        Some(Tile {
            bounding_volume: BoundingVolume::region(region_from_degrees(
                built.bounds,
                built.heights[0],
                built.heights[1],
            )),
            geometric_error: *error,
            refine: Some(Refine::Replace),
            content: Some(Content {
                uri: format!("content/{}-{}-{}.glb", built.tile.z, x, y),
                bounding_volume: None,
            }),
            transform: None,
            children,
        })
    }
    let mut roots: Vec<Tile> = Vec::new();
    if let Some(top) = levels.first() {
        let mut keys: Vec<&(u32, u32)> = top.tiles.keys().collect();
        keys.sort();
        roots = keys.into_iter().filter_map(|&(x, y)| node(&levels, 0, x, y)).collect();
    }
    let placed: u64 = {
        let mut n = 0;
        for r in &roots {
            r.walk(&mut |_| n += 1);
        }
        n
    };
    let written: u64 = levels.iter().map(|l| l.tiles.len() as u64).sum();
    let Some(surface) = finest_surface.filter(|s| !s.tiles.is_empty()) else {
        return Err(IngestError::NoFeatures {
            layer: options.layer.clone(),
            why: "no terrain tile has data".into(),
        });
    };
    let mut wgs = crate::run::NO_BOUNDS;
    for r in &roots {
        if let Some(reg) = r.bounding_volume.region {
            let d = [
                reg[0].to_degrees(),
                reg[1].to_degrees(),
                reg[4],
                reg[2].to_degrees(),
                reg[3].to_degrees(),
                reg[5],
            ];
            for k in 0..3 {
                wgs[k] = wgs[k].min(d[k]);
                wgs[k + 3] = wgs[k + 3].max(d[k + 3]);
            }
        }
    }
    let top_error = levels.first().map_or(0.0, |l| l.summary.geometric_error_m);
    let root = Tile {
        bounding_volume: BoundingVolume::region(region_from_degrees(
            [wgs[0], wgs[1], wgs[3], wgs[4]],
            wgs[2],
            wgs[5],
        )),
        geometric_error: top_error * 2.0,
        refine: Some(Refine::Replace),
        content: None,
        transform: Some(frame.to_ecef_matrix()),
        children: roots,
    };
    let tileset = Tileset {
        asset: Asset { version: "1.1".into(), tileset_version: None, generator: Some(GENERATOR.into()) },
        geometric_error: top_error * 4.0,
        root,
    };
    write_json(&dir.join(TILESET_DIR).join("tileset.json"), &tileset)?;
    // Cesium's terrain provider: every zoom above the data is available (the server
    // fills it with flat tiles), below it the tiles that exist, as runs along rows.
    let available: Vec<Vec<serde_json::Value>> = (0..=max_zoom)
        .map(|z| {
            if z < min_zoom {
                return vec![serde_json::json!({"startX": 0, "startY": 0, "endX": (2u64 << z) - 1, "endY": (1u64 << z) - 1})];
            }
            let Some(level) = levels.get(usize::from(z - min_zoom)) else { return Vec::new() };
            let mut keys: Vec<(u32, u32)> = level.tiles.keys().map(|&(x, y)| (y, x)).collect();
            keys.sort();
            let mut runs: Vec<serde_json::Value> = Vec::new();
            let mut span: Option<(u32, u32, u32)> = None;
            for (y, x) in keys {
                span = match span {
                    Some((ry, start, end)) if ry == y && end + 1 == x => Some((ry, start, x)),
                    Some((ry, start, end)) => {
                        runs.push(serde_json::json!({"startX": start, "startY": ry, "endX": end, "endY": ry}));
                        Some((y, x, x))
                    }
                    None => Some((y, x, x)),
                };
            }
            if let Some((ry, start, end)) = span {
                runs.push(serde_json::json!({"startX": start, "startY": ry, "endX": end, "endY": ry}));
            }
            runs
        })
        .collect();
    write_json(
        &dir.join(QUANTIZED_MESH_DIR).join("layer.json"),
        &serde_json::json!({
            "tilejson": "2.1.0",
            "name": options.layer,
            "format": "quantized-mesh-1.0",
            "version": "1.0.0",
            "scheme": "tms",
            "projection": "EPSG:4326",
            "tiles": [format!("{{z}}/{{x}}/{{y}}.terrain?v={version}")],
            "minzoom": 0,
            "maxzoom": max_zoom,
            "bounds": [wgs[0], wgs[1], wgs[3], wgs[4]],
            "available": available,
            "extensions": ["octvertexnormals"],
            "attribution": format!(
                "{} ({})",
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
                crs.label
            ),
        }),
    )?;
    crate::run::write_no_features(&dir)?;
    let surface_path = dir.join(TERRAIN_SURFACE_FILE);
    std::fs::write(&surface_path, surface.to_bytes()).map_err(|e| IngestError::store(&surface_path, e))?;

    run.source(path, format!("{} raster, {}", dem.driver, dem.data_type))?;
    let quality = &mut run.quality;
    quality.features_read = grid.values.len() as u64;
    quality.features_written = valid_pixels;
    if (grid.values.len() as u64) > valid_pixels {
        quality.dropped.insert("no data pixels".into(), grid.values.len() as u64 - valid_pixels);
    }
    if placed < written {
        quality.warnings.push(format!(
            "{} tiles had data but no parent tile and were left out of the tree",
            written - placed
        ));
    }
    let summary = TerrainSummary {
        raster_size: [grid.width as u32, grid.height as u32],
        pixel_size_m: pixel_m,
        nodata: dem.nodata,
        valid_pixels,
        levels: levels.iter().map(|l| l.summary.clone()).collect(),
        surface: TERRAIN_SURFACE_FILE.to_owned(),
        height_reference: "the raster's heights as given (no geoid model applied)".into(),
    };
    tracing::info!(
        stage = "terrain",
        tiles = written,
        seconds = started.elapsed().as_secs_f64(),
        "terrain written"
    );
    Ok(Built {
        geometry_types: vec!["TIN".into()],
        min_zoom,
        max_zoom,
        ..Built::tiles_3d(LayerContent::Terrain(summary), wgs, crs.label.clone(), written as usize)
    })
}

//! Ground layers from vector tiles: which tiles to fetch for a camera, how each
//! feature is styled (roads, rail, land use, water, borders), and the triangles that
//! drape it on the ground. GPU-free, so it is tested without a window.

use cim_core::mvt::{PropertyValue, TileGeometry, TilePoint};
use cim_core::mvt_decode::DecodedLayer;
use cim_core::tile::{TileId, mercator_to_lonlat};
use glam::DVec3;

use crate::select::View;
use crate::tree::Sphere;

/// How a ground feature is drawn. Order is draw order, bottom first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroundClass {
    Landuse,
    Green,
    Water,
    Path,
    MinorRoad,
    MajorRoad,
    Rail,
    Border,
}

/// What the layer panel toggles: a few classes at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroundGroup {
    Roads,
    Rail,
    LandUse,
    Water,
    Borders,
}

impl GroundGroup {
    pub const ALL: [GroundGroup; 5] = [
        GroundGroup::Roads,
        GroundGroup::Rail,
        GroundGroup::LandUse,
        GroundGroup::Water,
        GroundGroup::Borders,
    ];

    pub fn label(self) -> &'static str {
        match self {
            GroundGroup::Roads => "roads",
            GroundGroup::Rail => "rail",
            GroundGroup::LandUse => "land use",
            GroundGroup::Water => "water",
            GroundGroup::Borders => "district borders",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Linear-light-agnostic sRGB colour with alpha.
    pub srgba: [f32; 4],
    /// Ribbon width in metres for line features (and for outlines of polygons that
    /// are not filled).
    pub line_width_m: f64,
    /// Polygons are filled; otherwise only their rings are drawn as lines.
    pub fill: bool,
    /// Height above the ground, so later classes draw over earlier ones.
    pub lift_m: f64,
}

impl GroundClass {
    pub const ALL: [GroundClass; 8] = [
        GroundClass::Landuse,
        GroundClass::Green,
        GroundClass::Water,
        GroundClass::Path,
        GroundClass::MinorRoad,
        GroundClass::MajorRoad,
        GroundClass::Rail,
        GroundClass::Border,
    ];

    pub fn group(self) -> GroundGroup {
        match self {
            GroundClass::Landuse | GroundClass::Green => GroundGroup::LandUse,
            GroundClass::Water => GroundGroup::Water,
            GroundClass::Path | GroundClass::MinorRoad | GroundClass::MajorRoad => GroundGroup::Roads,
            GroundClass::Rail => GroundGroup::Rail,
            GroundClass::Border => GroundGroup::Borders,
        }
    }

    pub fn style(self) -> Style {
        let (srgba, line_width_m, fill) = match self {
            GroundClass::Landuse => ([0.52, 0.50, 0.47, 1.0], 2.0, true),
            GroundClass::Green => ([0.42, 0.58, 0.36, 1.0], 2.0, true),
            GroundClass::Water => ([0.30, 0.50, 0.75, 1.0], 8.0, true),
            GroundClass::Path => ([0.78, 0.74, 0.66, 1.0], 2.0, true),
            GroundClass::MinorRoad => ([0.93, 0.93, 0.90, 1.0], 6.0, true),
            GroundClass::MajorRoad => ([0.98, 0.82, 0.45, 1.0], 11.0, true),
            GroundClass::Rail => ([0.35, 0.30, 0.38, 1.0], 2.5, false),
            GroundClass::Border => ([0.80, 0.25, 0.55, 1.0], 5.0, false),
        };
        let lift_m = 0.15 + 0.1 * self as u8 as f64;
        Style { srgba, line_width_m, fill, lift_m }
    }
}

fn text<'a>(props: &'a [(String, PropertyValue)], key: &str) -> Option<&'a str> {
    props.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
        PropertyValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The class of a feature from its OpenStreetMap-style attributes; `None` for what
/// the ground does not draw (buildings are 3D tiles, points, unknown features).
pub fn classify(props: &[(String, PropertyValue)]) -> Option<GroundClass> {
    let has = |key: &str| text(props, key).filter(|v| !v.is_empty() && *v != "no");
    if has("building").is_some() {
        return None;
    }
    if has("boundary") == Some("administrative") {
        return Some(GroundClass::Border);
    }
    if let Some(highway) = has("highway") {
        let base = highway.trim_end_matches("_link");
        return match base {
            "motorway" | "trunk" | "primary" | "secondary" | "tertiary" => Some(GroundClass::MajorRoad),
            "residential" | "unclassified" | "service" | "living_street" | "road" | "busway" => {
                Some(GroundClass::MinorRoad)
            }
            "footway" | "path" | "cycleway" | "pedestrian" | "steps" | "track" | "bridleway" | "corridor" => {
                Some(GroundClass::Path)
            }
            _ => None,
        };
    }
    if let Some(railway) = has("railway") {
        return matches!(railway, "rail" | "tram" | "subway" | "light_rail" | "narrow_gauge" | "monorail")
            .then_some(GroundClass::Rail);
    }
    if has("water").is_some()
        || matches!(has("natural"), Some("water" | "bay" | "wetland"))
        || matches!(has("waterway"), Some("river" | "riverbank" | "stream" | "canal" | "dock"))
    {
        return Some(GroundClass::Water);
    }
    let green = matches!(
        has("landuse"),
        Some(
            "grass" | "forest" | "meadow" | "recreation_ground" | "village_green" | "cemetery" | "allotments"
        )
    ) || matches!(
        has("leisure"),
        Some("park" | "garden" | "pitch" | "playground" | "nature_reserve")
    ) || matches!(has("natural"), Some("wood" | "scrub" | "grassland" | "heath"));
    if green {
        return Some(GroundClass::Green);
    }
    has("landuse").map(|_| GroundClass::Landuse)
}

/// Triangles of one class in one tile, in the render frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GroundMesh {
    pub positions: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
}

impl GroundMesh {
    pub fn gpu_bytes(&self) -> usize {
        // Position and normal per vertex, u32 indices.
        self.positions.len() * 24 + self.indices.len() * 4
    }

    fn ribbon(&mut self, line: &[DVec3], width: f64) {
        if line.len() < 2 {
            return;
        }
        let half = width / 2.0;
        // Horizontal normal of each segment (render frame: y up).
        let normal = |a: DVec3, b: DVec3| {
            let d = b - a;
            DVec3::new(-d.z, 0.0, d.x).normalize_or_zero()
        };
        let base = self.positions.len() as u32;
        for (i, p) in line.iter().enumerate() {
            let before = (i > 0).then(|| normal(line[i - 1], *p));
            let after = (i + 1 < line.len()).then(|| normal(*p, line[i + 1]));
            let offset = match (before, after) {
                (Some(a), Some(b)) => {
                    let m = (a + b).normalize_or_zero();
                    // Miter, limited so sharp turns do not spike.
                    let cos = m.dot(b).max(0.5);
                    if m == DVec3::ZERO { b * half } else { m * (half / cos) }
                }
                (Some(a), None) | (None, Some(a)) => a * half,
                (None, None) => DVec3::ZERO,
            };
            for v in [*p + offset, *p - offset] {
                self.positions.push(v.as_vec3().to_array());
            }
        }
        for i in 0..line.len() as u32 - 1 {
            let (a, b, c, d) = (base + 2 * i, base + 2 * i + 1, base + 2 * i + 2, base + 2 * i + 3);
            self.indices.extend_from_slice(&[a, c, b, b, c, d]);
        }
    }

    /// Fills a polygon; with a `step` (tile units), triangles are split until no edge
    /// is longer, so the fill can follow the terrain between its vertices.
    fn fill(&mut self, rings: &[Vec<TilePoint>], place: &impl Fn([f64; 2]) -> DVec3, step: Option<f64>) {
        let mut flat: Vec<[f64; 2]> = Vec::new();
        let mut holes: Vec<u32> = Vec::new();
        for (k, ring) in rings.iter().enumerate() {
            // MVT rings repeat nothing, but tolerate a closing point from other encoders.
            let open =
                if ring.len() > 1 && ring.first() == ring.last() { &ring[..ring.len() - 1] } else { ring };
            if k > 0 {
                holes.push(flat.len() as u32);
            }
            flat.extend(open.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]));
        }
        let mut triangles: Vec<u32> = Vec::new();
        earcut::Earcut::new().earcut(flat.iter().copied(), &holes, &mut triangles);
        if let Some(step) = step {
            (flat, triangles) = refine(flat, &triangles, step);
        }
        let base = self.positions.len() as u32;
        self.positions.extend(flat.iter().map(|&p| place(p).as_vec3().to_array()));
        self.indices.extend(triangles.iter().map(|i| base + i));
    }
}

/// Splits triangles at the midpoint of their longest edge until no edge is longer
/// than `step`; a split edge's midpoint is shared by both triangles on it.
fn refine(mut points: Vec<[f64; 2]>, triangles: &[u32], step: f64) -> (Vec<[f64; 2]>, Vec<u32>) {
    let mut midpoints: std::collections::HashMap<(u32, u32), u32> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(triangles.len());
    let mut stack: Vec<[u32; 3]> = triangles.chunks_exact(3).map(|t| [t[0], t[1], t[2]]).collect();
    let len = |p: &[[f64; 2]], a: u32, b: u32| {
        let (a, b) = (p[a as usize], p[b as usize]);
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    };
    // Bounded: a triangle of a 4096-unit tile split down to one unit is ~2^24 pieces.
    let limit = triangles.len() * 4096 + 1024;
    while let Some(t) = stack.pop() {
        let edges = [(t[0], t[1], t[2]), (t[1], t[2], t[0]), (t[2], t[0], t[1])];
        let (a, b, c) = edges
            .into_iter()
            .max_by(|x, y| len(&points, x.0, x.1).total_cmp(&len(&points, y.0, y.1)))
            .unwrap_or(edges[0]);
        if len(&points, a, b) <= step || out.len() + stack.len() > limit {
            out.extend_from_slice(&t);
            continue;
        }
        let key = (a.min(b), a.max(b));
        let m = *midpoints.entry(key).or_insert_with(|| {
            let (pa, pb) = (points[a as usize], points[b as usize]);
            points.push([(pa[0] + pb[0]) / 2.0, (pa[1] + pb[1]) / 2.0]);
            points.len() as u32 - 1
        });
        stack.push([a, m, c]);
        stack.push([m, b, c]);
    }
    (points, out)
}

/// Points along a line no further apart than `step` (tile units).
fn densify(line: &[TilePoint], step: Option<f64>) -> Vec<[f64; 2]> {
    let mut out = Vec::with_capacity(line.len());
    for p in line {
        let p = [f64::from(p[0]), f64::from(p[1])];
        if let (Some(step), Some(prev)) = (step, out.last().copied()) {
            let [px, py]: [f64; 2] = prev;
            let d = ((p[0] - px).powi(2) + (p[1] - py).powi(2)).sqrt();
            let n = (d / step).ceil().min(4096.0) as usize;
            for k in 1..n {
                let f = k as f64 / n as f64;
                out.push([px + (p[0] - px) * f, py + (p[1] - py) * f]);
            }
        }
        out.push(p);
    }
    out
}

/// Tile pixel (x right, y down, `0..extent`) to longitude / latitude in degrees.
pub fn tile_point_to_lonlat(tile: TileId, extent: u32, [x, y]: TilePoint) -> (f64, f64) {
    tile_xy_to_lonlat(tile, extent, [f64::from(x), f64::from(y)])
}

/// [`tile_point_to_lonlat`] for fractional tile coordinates.
pub fn tile_xy_to_lonlat(tile: TileId, extent: u32, [x, y]: [f64; 2]) -> (f64, f64) {
    let [min_x, min_y, max_x, max_y] = tile.bounds_mercator();
    let e = f64::from(extent.max(1));
    let mx = min_x + x / e * (max_x - min_x);
    let my = max_y - y / e * (max_y - min_y);
    mercator_to_lonlat(mx, my)
}

/// Drapes the features of a decoded tile: one mesh per class, positions from
/// `to_render(lon, lat, height)`. On a terrain surface, heights are the ground's
/// plus the class's lift, and lines and fills are split finely enough (the
/// terrain's sample spacing) to follow it.
pub fn tessellate(
    layers: &[DecodedLayer],
    tile: TileId,
    to_render: &dyn Fn(f64, f64, f64) -> DVec3,
    ground: Option<&cim_core::terrain::TerrainSurface>,
) -> Vec<(GroundClass, GroundMesh)> {
    let mut meshes: Vec<(GroundClass, GroundMesh)> = Vec::new();
    let tile_degrees = 360.0 / f64::from(1u32 << tile.z);
    for layer in layers {
        let step = ground.map(|g| {
            let spacing = cim_core::terrain::TerrainTile::sample_step(g.zoom);
            (f64::from(layer.extent) * spacing / tile_degrees).max(1.0)
        });
        for feature in &layer.features {
            let Some(class) = classify(&feature.properties) else { continue };
            let style = class.style();
            let place = |p: [f64; 2]| {
                let (lon, lat) = tile_xy_to_lonlat(tile, layer.extent, p);
                let floor = ground.and_then(|g| g.height_at(lon, lat)).unwrap_or(0.0);
                to_render(lon, lat, floor + style.lift_m)
            };
            let slot = match meshes.iter().position(|(c, _)| *c == class) {
                Some(i) => i,
                None => {
                    meshes.push((class, GroundMesh::default()));
                    meshes.len() - 1
                }
            };
            let mesh = &mut meshes[slot].1;
            match &feature.geometry {
                TileGeometry::Points(_) => {}
                TileGeometry::Lines(lines) => {
                    for line in lines {
                        let points: Vec<DVec3> = densify(line, step).into_iter().map(place).collect();
                        mesh.ribbon(&points, style.line_width_m);
                    }
                }
                TileGeometry::Polygons(polygons) => {
                    for rings in polygons {
                        if style.fill {
                            mesh.fill(rings, &place, step);
                        } else {
                            for ring in rings {
                                let mut closed = ring.clone();
                                if let Some(first) = ring.first().copied() {
                                    closed.push(first);
                                }
                                let points: Vec<DVec3> =
                                    densify(&closed, step).into_iter().map(place).collect();
                                mesh.ribbon(&points, style.line_width_m);
                            }
                        }
                    }
                }
            }
        }
    }
    meshes.retain(|(_, m)| !m.indices.is_empty());
    meshes.sort_by_key(|(c, _)| *c);
    meshes
}

/// The ECEF bounding sphere of a tile's ground (ellipsoid height 0).
pub fn tile_sphere(tile: TileId) -> Sphere {
    let [w, s, e, n] = tile.bounds_lonlat();
    let mut corners = Vec::with_capacity(9);
    for lon in [w, (w + e) / 2.0, e] {
        for lat in [s, (s + n) / 2.0, n] {
            corners.push(DVec3::from(cim_core::frame::geodetic_to_ecef(lon, lat, 0.0)));
        }
    }
    let centre = corners.iter().copied().sum::<DVec3>() / corners.len() as f64;
    let radius = corners.iter().map(|c| c.distance(centre)).fold(0.0, f64::max);
    Sphere { centre, radius }
}

fn intersects(a: [f64; 4], b: [f64; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// Size on screen, in pixels, above which a ground tile is split into its children.
pub const MAX_TILE_PIXELS: f64 = 512.0;

/// Ground tiles to draw for a view: visible tiles over `bounds` (lon/lat degrees),
/// refined by screen size (nearest and biggest first) up to `max_tiles`.
pub fn select_ground_tiles(
    view: &View,
    bounds: [f64; 4],
    min_zoom: u8,
    max_zoom: u8,
    max_tiles: usize,
) -> Vec<TileId> {
    // Start at the deepest zoom where the bounds fit in a few tiles.
    let mut start = vec![];
    for z in (0..=max_zoom.max(min_zoom)).rev() {
        let tiles = tiles_over(bounds, z);
        if tiles.len() <= 4 || z <= min_zoom {
            start = tiles;
            break;
        }
    }
    // Each candidate's bounding sphere once: visible tiles come back with their width
    // on screen if seen face-on (geometric size over distance).
    let measured = |t: TileId| {
        if !intersects(t.bounds_lonlat(), bounds) {
            return None;
        }
        let sphere = tile_sphere(t);
        view.sees(&sphere)
            .then(|| (t, view.screen_space_error(sphere.radius * std::f64::consts::SQRT_2, &sphere)))
    };
    let mut chosen: Vec<(TileId, f64)> = start.into_iter().filter_map(measured).collect();
    while let Some((i, _)) = chosen
        .iter()
        .enumerate()
        .filter(|(_, (t, px))| t.z < max_zoom && *px > MAX_TILE_PIXELS)
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
    {
        let children: Vec<(TileId, f64)> = chosen[i].0.children().into_iter().filter_map(measured).collect();
        if chosen.len() - 1 + children.len() > max_tiles {
            break;
        }
        chosen.swap_remove(i);
        chosen.extend(children);
    }
    let mut out: Vec<TileId> = chosen.into_iter().map(|(t, _)| t).collect();
    out.sort_by_key(|t| (t.z, t.x, t.y));
    out
}

/// Every tile of zoom `z` that touches `bounds` (lon/lat degrees).
pub fn tiles_over(bounds: [f64; 4], z: u8) -> Vec<TileId> {
    let (x0, y0) = cim_core::tile::lonlat_to_mercator(bounds[0], bounds[3]);
    let (x1, y1) = cim_core::tile::lonlat_to_mercator(bounds[2], bounds[1]);
    let (min_x, min_y, max_x, max_y) = cim_core::tile::tile_range(z, [x0, y1, x1, y0]);
    let mut out = Vec::new();
    for x in min_x..=max_x {
        for y in min_y..=max_y {
            if let Ok(t) = TileId::new(u32::from(z), x, y) {
                out.push(t);
            }
        }
    }
    out
}

/// True when `a` covers `b` or `b` covers `a` (same tile, ancestor or descendant).
pub fn overlaps(a: TileId, b: TileId) -> bool {
    let (hi, lo) = if a.z <= b.z { (a, b) } else { (b, a) };
    let d = u32::from(lo.z - hi.z);
    lo.x >> d == hi.x && lo.y >> d == hi.y
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_core::mvt_decode::DecodedFeature;
    use glam::DMat4;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, PropertyValue)> {
        pairs.iter().map(|(k, v)| ((*k).into(), PropertyValue::String((*v).into()))).collect()
    }

    #[test]
    fn classifies_osm_features_like_a_map_style() {
        let c = |p: &[(&str, &str)]| classify(&props(p));
        assert_eq!(c(&[("highway", "primary")]), Some(GroundClass::MajorRoad));
        assert_eq!(c(&[("highway", "secondary_link")]), Some(GroundClass::MajorRoad));
        assert_eq!(c(&[("highway", "residential")]), Some(GroundClass::MinorRoad));
        assert_eq!(c(&[("highway", "footway")]), Some(GroundClass::Path));
        assert_eq!(c(&[("highway", "bus_stop")]), None);
        assert_eq!(c(&[("railway", "tram")]), Some(GroundClass::Rail));
        assert_eq!(c(&[("railway", "platform")]), None);
        assert_eq!(c(&[("natural", "water")]), Some(GroundClass::Water));
        assert_eq!(c(&[("waterway", "river")]), Some(GroundClass::Water));
        assert_eq!(c(&[("leisure", "park")]), Some(GroundClass::Green));
        assert_eq!(c(&[("landuse", "grass")]), Some(GroundClass::Green));
        assert_eq!(c(&[("landuse", "commercial")]), Some(GroundClass::Landuse));
        assert_eq!(c(&[("boundary", "administrative"), ("admin_level", "9")]), Some(GroundClass::Border));
        // Buildings are 3D tiles; a building that is also a landuse stays off the ground.
        assert_eq!(c(&[("building", "yes"), ("landuse", "retail")]), None);
        assert_eq!(c(&[("building", "no"), ("landuse", "retail")]), Some(GroundClass::Landuse));
        assert_eq!(c(&[("amenity", "bench")]), None);
        // Later classes draw above earlier ones.
        let lifts: Vec<f64> = GroundClass::ALL.iter().map(|c| c.style().lift_m).collect();
        assert!(lifts.windows(2).all(|w| w[0] < w[1]), "{lifts:?}");
        for class in GroundClass::ALL {
            assert!(GroundGroup::ALL.contains(&class.group()));
        }
    }

    fn flat(lon: f64, lat: f64, h: f64) -> DVec3 {
        // Metres east / up / south of (0, 0) on a sphere, good enough near the origin.
        let r = 6_378_137.0f64;
        DVec3::new(lon.to_radians() * r, h, -lat.to_radians() * r)
    }

    #[test]
    fn on_terrain_fills_and_lines_follow_the_ground_between_their_vertices() {
        use cim_core::terrain::{SurfaceTile, SurfaceVertex, TerrainSurface, TerrainTile};
        // A terrain tile whose surface is a tilted plane, and a map tile inside it.
        let ground_tile = TerrainTile::containing(13, 4.84, 45.76).expect("tile");
        let [west, south, east, north] = ground_tile.bounds();
        let plane = |lon: f64, lat: f64| 100.0 + 2000.0 * (lon - west) + 3000.0 * (lat - south);
        let n = 64u16;
        let corners = [(0, 0), (n, 0), (n, n), (0, n)].map(|(i, j)| {
            let lon = west + (east - west) * f64::from(i) / 64.0;
            let lat = south + (north - south) * f64::from(j) / 64.0;
            SurfaceVertex { i, j, h: plane(lon, lat) as f32 }
        });
        let surface = TerrainSurface {
            zoom: 13,
            tiles: vec![SurfaceTile::new(
                ground_tile.x,
                ground_tile.y,
                corners.to_vec(),
                vec![[0, 1, 2], [0, 2, 3]],
            )],
        };
        let (cx, cy) = ((west + east) / 2.0, (south + north) / 2.0);
        let scale = f64::from(1u32 << 16);
        let lat_r = cy.to_radians();
        let tx = ((cx + 180.0) / 360.0 * scale).floor() as u32;
        let ty = ((1.0 - (lat_r.tan() + 1.0 / lat_r.cos()).ln() / std::f64::consts::PI) / 2.0 * scale).floor()
            as u32;
        let tile = TileId::new(16, tx, ty).expect("map tile");
        let layer = DecodedLayer {
            name: "city".into(),
            extent: 4096,
            features: vec![
                DecodedFeature {
                    id: Some(1),
                    geometry: TileGeometry::Polygons(vec![vec![vec![
                        [0, 0],
                        [0, 4096],
                        [4096, 4096],
                        [4096, 0],
                    ]]]),
                    properties: props(&[("landuse", "grass")]),
                },
                DecodedFeature {
                    id: Some(2),
                    geometry: TileGeometry::Lines(vec![vec![[0, 2048], [4096, 2048]]]),
                    properties: props(&[("highway", "primary")]),
                },
            ],
        };
        // Metres east and south of the terrain tile's corner, so heights can be
        // checked against the plane.
        let (k_lon, k_lat) = (111_320.0 * 45.76f64.to_radians().cos(), 110_540.0);
        let to = |lon: f64, lat: f64, h: f64| DVec3::new((lon - west) * k_lon, h, -(lat - south) * k_lat);
        let meshes = tessellate(&[layer], tile, &to, Some(&surface));
        let (green, road) = (&meshes[0].1, &meshes[1].1);
        // The road's edges sit half its width beside the centre line, whose height they
        // share: the plane rises 0.027 m per metre northwards.
        for (mesh, class, tolerance) in
            [(green, GroundClass::Green, 0.01), (road, GroundClass::MajorRoad, 0.2)]
        {
            for p in &mesh.positions {
                let (lon, lat) = (west + f64::from(p[0]) / k_lon, south - f64::from(p[2]) / k_lat);
                let want = plane(lon, lat) + class.style().lift_m;
                assert!((f64::from(p[1]) - want).abs() < tolerance, "{class:?} at {p:?}: {} vs {want}", p[1]);
            }
        }
        // A z16 tile is about 430 m wide here and the zoom-13 ground's samples 27 m
        // apart east-west: the square becomes hundreds of triangles, the road 17 points.
        assert!(green.indices.len() / 3 > 500, "{} triangles", green.indices.len() / 3);
        assert_eq!(road.positions.len(), 2 * 17, "ribbon vertices");
    }

    #[test]
    fn polygons_fill_with_their_holes_and_lines_become_ribbons_of_the_styled_width() {
        let tile = TileId::new(20, 1 << 19, (1 << 19) - 1).expect("tile");
        let square = |lo: i32, hi: i32| vec![[lo, lo], [lo, hi], [hi, hi], [hi, lo]];
        let layer = DecodedLayer {
            name: "city".into(),
            extent: 4096,
            features: vec![
                DecodedFeature {
                    id: Some(1),
                    geometry: TileGeometry::Polygons(vec![vec![square(0, 4096), square(1024, 3072)]]),
                    properties: props(&[("landuse", "grass")]),
                },
                DecodedFeature {
                    id: Some(2),
                    geometry: TileGeometry::Lines(vec![vec![[0, 2048], [2048, 2048], [2048, 0]]]),
                    properties: props(&[("highway", "primary")]),
                },
                DecodedFeature {
                    id: Some(3),
                    geometry: TileGeometry::Polygons(vec![vec![square(0, 100)]]),
                    properties: props(&[("building", "yes")]),
                },
            ],
        };
        let meshes = tessellate(&[layer], tile, &flat, None);
        assert_eq!(
            meshes.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [GroundClass::Green, GroundClass::MajorRoad]
        );
        let area = |m: &GroundMesh| -> f64 {
            m.indices
                .chunks_exact(3)
                .map(|t| {
                    let [a, b, c] =
                        [0, 1, 2].map(|k| glam::Vec3::from(m.positions[t[k] as usize]).as_dvec3());
                    (b - a).cross(c - a).length() / 2.0
                })
                .sum()
        };
        // Zoom 20 at the equator: a tile is 38.2 m on a side; the hole takes a quarter.
        let side = 2.0 * std::f64::consts::PI * 6_378_137.0 / f64::from(1u32 << 20);
        let green = &meshes[0].1;
        assert!(
            (area(green) / (0.75 * side * side) - 1.0).abs() < 0.01,
            "{} vs {}",
            area(green),
            side * side
        );
        assert!(
            green
                .positions
                .iter()
                .all(|p| (f64::from(p[1]) - GroundClass::Green.style().lift_m).abs() < 1e-6)
        );
        // Two legs of half a tile each, 11 m wide (the miter adds a little at the turn).
        let road = &meshes[1].1;
        let expected = side * GroundClass::MajorRoad.style().line_width_m;
        assert!((area(road) / expected - 1.0).abs() < 0.15, "{} vs {expected}", area(road));
        assert_eq!(road.indices.len(), 12);
        // Every triangle faces the sky or the ground, none stands on its edge.
        for mesh in [green, road] {
            for t in mesh.indices.chunks_exact(3) {
                let [a, b, c] = [0, 1, 2].map(|k| glam::Vec3::from(mesh.positions[t[k] as usize]));
                assert!((b - a).cross(c - a).normalize().y.abs() > 0.99);
            }
        }
    }

    fn camera(lon: f64, lat: f64, height: f64, pitch_down_deg: f64) -> View {
        let eye = DVec3::from(cim_core::frame::geodetic_to_ecef(lon, lat, height));
        let enu = DMat4::from_cols_array(&cim_core::frame::EnuFrame::at(lon, lat, 0.0).to_ecef_matrix());
        let p = pitch_down_deg.to_radians();
        let forward_enu = DVec3::new(0.0, p.cos(), -p.sin());
        let target = eye + enu.transform_vector3(forward_enu);
        let up = enu.transform_vector3(DVec3::Z);
        let view = DMat4::look_at_rh(eye, target, up);
        let fov = 50f64.to_radians();
        View::new(eye, DMat4::perspective_rh(fov, 16.0 / 9.0, 1.0, 1e7) * view, 720.0, fov)
    }

    #[test]
    fn nearer_ground_gets_finer_tiles_within_the_budget() {
        let bounds = [24.90, 60.15, 25.00, 60.20];
        let low = camera(24.95, 60.16, 600.0, 35.0);
        let tiles = select_ground_tiles(&low, bounds, 0, 16, 64);
        assert!(!tiles.is_empty() && tiles.len() <= 64);
        let finest = tiles.iter().map(|t| t.z).max().unwrap_or(0);
        let coarsest = tiles.iter().map(|t| t.z).min().unwrap_or(0);
        assert_eq!(finest, 16, "the ground under a 600 m camera reaches the deepest zoom: {tiles:?}");
        assert!(coarsest < finest, "the horizon is coarser: {tiles:?}");
        // No tile overlaps another: each patch of ground is drawn once.
        for (i, a) in tiles.iter().enumerate() {
            for b in &tiles[i + 1..] {
                assert!(!overlaps(*a, *b), "{a:?} {b:?}");
            }
        }
        // All within the layer's bounds.
        for t in &tiles {
            assert!(intersects(t.bounds_lonlat(), bounds));
        }
        // From high above, fewer and coarser tiles; a tight budget is respected.
        let high = camera(24.95, 60.10, 40_000.0, 80.0);
        let far = select_ground_tiles(&high, bounds, 0, 16, 64);
        assert!(far.iter().map(|t| t.z).max() < Some(finest), "{far:?}");
        assert!(select_ground_tiles(&low, bounds, 0, 16, 8).len() <= 8);
        // Looking away from the city: nothing.
        let away = camera(24.0, 60.16, 300.0, 5.0);
        assert!(select_ground_tiles(&away, [24.90, 60.15, 25.0, 60.2], 0, 16, 64).is_empty());
    }

    #[test]
    fn tile_points_map_to_the_tile_corners() {
        let t = TileId::new(16, 37307, 18969).expect("tile");
        let [w, s, e, n] = t.bounds_lonlat();
        let (lon, lat) = tile_point_to_lonlat(t, 4096, [0, 0]);
        assert!((lon - w).abs() < 1e-9 && (lat - n).abs() < 1e-9);
        let (lon, lat) = tile_point_to_lonlat(t, 4096, [4096, 4096]);
        assert!((lon - e).abs() < 1e-9 && (lat - s).abs() < 1e-9);
        assert!(overlaps(t, TileId::new(14, 37307 >> 2, 18969 >> 2).expect("parent")));
        assert!(!overlaps(t, TileId::new(16, 37308, 18969).expect("neighbour")));
    }
}

//! IFC shape representations to triangles.
//!
//! Covers what real exports use for bodies: extruded area solids over parameterised
//! (rectangle, circle, hollow, I/L/T/U/C, ellipse), arbitrary (with voids),
//! composite and derived profiles; faceted breps, closed/open shells, face-based and
//! shell-based surface models; triangulated and polygonal face sets; mapped items
//! (kept apart when a map repeats, so the writer can instance it); boolean clipping
//! by half-spaces, with the cut capped (a polygonally bounded one removes only what
//! its boundary's prism encloses). Anything else is counted by class in
//! [`GeometryBuilder::unsupported`] and left out, never guessed.

use std::collections::{BTreeMap, HashMap};

use geo::TriangulateEarcut;
use geo_types::{Coord, LineString, Polygon};

use super::IfcError;
use super::model::{IfcModel, MAX_CHAIN};
use super::step::{Instance, StepValue};
use crate::mesh::*;

/// A closed 2D ring, first point not repeated.
pub type Ring = Vec<[f64; 2]>;

/// A profile in its own 2D frame: areas (outer ring, holes) and open curves.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub areas: Vec<(Ring, Vec<Ring>)>,
    pub open: Vec<Vec<[f64; 2]>>,
}

fn signed_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n).map(|i| ring[i][0] * ring[(i + 1) % n][1] - ring[(i + 1) % n][0] * ring[i][1]).sum::<f64>() / 2.0
}

fn is_convex(ring: &[[f64; 2]]) -> bool {
    let n = ring.len();
    (0..n).all(|i| {
        let (a, b, c) = (ring[i], ring[(i + 1) % n], ring[(i + 2) % n]);
        (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]) >= -1e-12
    })
}

fn oriented(mut ring: Vec<[f64; 2]>, counter_clockwise: bool) -> Vec<[f64; 2]> {
    if ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    ring.dedup();
    if (signed_area(&ring) > 0.0) != counter_clockwise {
        ring.reverse();
    }
    ring
}

/// Segments per full turn when sampling circles and arcs.
const SEGMENTS_PER_TURN: usize = 32;

/// Angles from `a0` sweeping `sweep` radians (signed), always including the
/// quarter-turn angles inside, so sampled bounds equal the true arc's.
fn arc_angles(a0: f64, sweep: f64) -> Vec<f64> {
    let steps = ((sweep.abs() / std::f64::consts::TAU) * SEGMENTS_PER_TURN as f64).ceil().max(1.0) as usize;
    let mut angles: Vec<f64> = (0..=steps).map(|i| a0 + sweep * i as f64 / steps as f64).collect();
    let (lo, hi) = if sweep >= 0.0 { (a0, a0 + sweep) } else { (a0 + sweep, a0) };
    let quarter = std::f64::consts::FRAC_PI_2;
    let mut k = (lo / quarter).ceil();
    while k * quarter < hi {
        angles.push(k * quarter);
        k += 1.0;
    }
    if sweep >= 0.0 {
        angles.sort_by(f64::total_cmp);
    } else {
        angles.sort_by(|a, b| b.total_cmp(a));
    }
    angles.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    angles
}

fn circle_ring(radius: f64) -> Vec<[f64; 2]> {
    (0..SEGMENTS_PER_TURN)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / SEGMENTS_PER_TURN as f64;
            [radius * a.cos(), radius * a.sin()]
        })
        .collect()
}

fn ellipse_ring(a: f64, b: f64) -> Vec<[f64; 2]> {
    circle_ring(1.0).into_iter().map(|p| [a * p[0], b * p[1]]).collect()
}

fn rectangle(w: f64, h: f64) -> Vec<[f64; 2]> {
    let (x, y) = (w / 2.0, h / 2.0);
    vec![[-x, -y], [x, -y], [x, y], [-x, y]]
}

/// Builds geometry for one model; caches placements and repeated maps.
pub struct GeometryBuilder<'m> {
    model: &'m IfcModel,
    placements: HashMap<u64, Affine>,
    /// Items left out, by IFC class (or by what was approximated).
    pub unsupported: BTreeMap<String, u64>,
}

/// One part of an element's body, in model units.
#[derive(Debug, Clone)]
pub enum BodyPart {
    /// Already placed in the model's world frame.
    Mesh(TriMesh),
    /// A repeated representation map: its mesh (see [`GeometryBuilder::map_mesh`])
    /// placed by `transform`.
    Instance { map: u64, transform: Affine },
}

impl<'m> GeometryBuilder<'m> {
    pub fn new(model: &'m IfcModel) -> Self {
        Self { model, placements: HashMap::new(), unsupported: BTreeMap::new() }
    }

    fn note(&mut self, what: &str) {
        *self.unsupported.entry(what.to_owned()).or_default() += 1;
    }

    fn malformed(&self, instance: &Instance, what: &str) -> IfcError {
        IfcError::Malformed(format!("line {}, #{} ({}): {what}", instance.line, instance.id, instance.class))
    }

    fn real(&self, instance: &Instance, index: usize) -> Result<f64, IfcError> {
        self.model
            .attribute(instance, index)
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.malformed(instance, &format!("attribute {} must be a number", index + 1)))
    }

    fn optional_real(&self, instance: &Instance, index: usize) -> Option<f64> {
        self.model.attribute(instance, index).as_f64().filter(|v| v.is_finite())
    }

    fn reference(&self, instance: &Instance, index: usize) -> Result<&'m Instance, IfcError> {
        match self.model.attribute(instance, index).as_ref() {
            Some(r) => self.model.get(r).map_err(|_| {
                self.malformed(
                    instance,
                    &format!("attribute {} refers to #{r}, which the file does not define", index + 1),
                )
            }),
            None => {
                Err(self.malformed(instance, &format!("attribute {} must refer to an instance", index + 1)))
            }
        }
    }

    fn optional_reference(&self, instance: &Instance, index: usize) -> Option<&'m Instance> {
        self.model.attribute(instance, index).as_ref().and_then(|r| self.model.get(r).ok())
    }

    fn coordinates(&self, values: &[StepValue], instance: &Instance) -> Result<[f64; 3], IfcError> {
        let mut p = [0.0; 3];
        if values.is_empty() || values.len() > 3 {
            return Err(self.malformed(instance, "a coordinate list needs 1 to 3 numbers"));
        }
        for (i, v) in values.iter().enumerate() {
            p[i] = v
                .as_f64()
                .filter(|c| c.is_finite())
                .ok_or_else(|| self.malformed(instance, "a coordinate must be a number"))?;
        }
        Ok(p)
    }

    pub fn point(&self, instance: &Instance) -> Result<[f64; 3], IfcError> {
        if &*instance.class != "IFCCARTESIANPOINT" {
            return Err(self.malformed(instance, "expected an IfcCartesianPoint"));
        }
        let values = self.model.attribute(instance, 0).as_list().unwrap_or(&[]);
        self.coordinates(values, instance)
    }

    pub fn direction(&self, instance: &Instance) -> Result<[f64; 3], IfcError> {
        let values = self.model.attribute(instance, 0).as_list().unwrap_or(&[]);
        let d = self.coordinates(values, instance)?;
        normalized(d).ok_or_else(|| self.malformed(instance, "a direction of length zero"))
    }

    /// `IfcAxis2Placement3D` / `2D` (and `IfcAxis1Placement`) as an affine map.
    pub fn axis_placement(&self, instance: &Instance) -> Result<Affine, IfcError> {
        let origin = self.point(self.reference(instance, 0)?)?;
        let (z, x) = match &*instance.class {
            "IFCAXIS2PLACEMENT3D" => {
                let z = match self.optional_reference(instance, 1) {
                    Some(d) => self.direction(d)?,
                    None => [0.0, 0.0, 1.0],
                };
                let x = match self.optional_reference(instance, 2) {
                    Some(d) => self.direction(d)?,
                    None => [1.0, 0.0, 0.0],
                };
                (z, x)
            }
            "IFCAXIS2PLACEMENT2D" => {
                let x = match self.optional_reference(instance, 1) {
                    Some(d) => self.direction(d)?,
                    None => [1.0, 0.0, 0.0],
                };
                ([0.0, 0.0, 1.0], [x[0], x[1], 0.0])
            }
            "IFCAXIS1PLACEMENT" => {
                let z = match self.optional_reference(instance, 1) {
                    Some(d) => self.direction(d)?,
                    None => [0.0, 0.0, 1.0],
                };
                (z, if z[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] })
            }
            _ => return Err(self.malformed(instance, "expected an axis placement")),
        };
        // Gram-Schmidt: RefDirection need only lie roughly in the XY plane.
        let x = normalized(sub(x, z.map(|c| c * dot(x, z))))
            .ok_or_else(|| self.malformed(instance, "RefDirection is parallel to Axis"))?;
        let y = cross(z, x);
        Ok(Affine { cols: [x, y, z], t: origin })
    }

    /// The world placement of an `IfcObjectPlacement`, following `PlacementRelTo`.
    pub fn placement(&mut self, id: u64) -> Result<Affine, IfcError> {
        let mut chain = Vec::new();
        let mut at = Some(id);
        let mut base = Affine::IDENTITY;
        while let Some(current) = at {
            if let Some(known) = self.placements.get(&current) {
                base = *known;
                break;
            }
            if chain.len() > MAX_CHAIN || chain.contains(&current) {
                let instance = self.model.get(id)?;
                return Err(self.malformed(instance, "its PlacementRelTo chain loops"));
            }
            chain.push(current);
            let instance = self.model.get(current)?;
            at = match &*instance.class {
                "IFCLOCALPLACEMENT" => self.model.attribute(instance, 0).as_ref(),
                _ => None,
            };
        }
        for &current in chain.iter().rev() {
            let instance = self.model.get(current)?;
            let local = match &*instance.class {
                "IFCLOCALPLACEMENT" => self.axis_placement(self.reference(instance, 1)?)?,
                other => {
                    self.note(&format!("{other} (placed at its parent's origin)"));
                    Affine::IDENTITY
                }
            };
            base = base.then_after(&local);
            self.placements.insert(current, base);
        }
        Ok(base)
    }

    /// `IfcCartesianTransformationOperator3D` (and non-uniform, and 2D).
    fn transformation_operator(&self, instance: &Instance) -> Result<Affine, IfcError> {
        let two_d = instance.class.contains("2D");
        let axis1 = self.optional_reference(instance, 0).map(|d| self.direction(d)).transpose()?;
        let axis2 = self.optional_reference(instance, 1).map(|d| self.direction(d)).transpose()?;
        let origin = self.point(self.reference(instance, 2)?)?;
        let scale = self.optional_real(instance, 3).unwrap_or(1.0);
        let axis3 = if two_d {
            None
        } else {
            self.optional_reference(instance, 4).map(|d| self.direction(d)).transpose()?
        };
        let z = axis3.unwrap_or_else(|| match (axis1, axis2) {
            (Some(a), Some(b)) => normalized(cross(a, b)).unwrap_or([0.0, 0.0, 1.0]),
            _ => [0.0, 0.0, 1.0],
        });
        let x = axis1.unwrap_or(if z[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] });
        let x = normalized(sub(x, z.map(|c| c * dot(x, z))))
            .ok_or_else(|| self.malformed(instance, "Axis1 is parallel to Axis3"))?;
        let mut y = cross(z, x);
        if let Some(b) = axis2 {
            // A left-handed operator (mirroring) keeps Axis2's sense.
            if dot(b, y) < 0.0 {
                y = y.map(|c| -c);
            }
        }
        let (s2, s3) = if instance.class.contains("NONUNIFORM") {
            (
                self.optional_real(instance, 5).unwrap_or(scale),
                self.optional_real(instance, 6).unwrap_or(scale),
            )
        } else {
            (scale, scale)
        };
        Ok(Affine { cols: [x.map(|c| c * scale), y.map(|c| c * s2), z.map(|c| c * s3)], t: origin })
    }

    /// The element's body (`IfcProductDefinitionShape` → the 'Body' representation,
    /// else the first 3D one), placed in the world frame.
    pub fn element_body(
        &mut self,
        product: &Instance,
        repeated_maps: &std::collections::HashSet<u64>,
    ) -> Result<Vec<BodyPart>, IfcError> {
        let Some(shape) = self.optional_reference(product, 6) else { return Ok(Vec::new()) };
        let placement = match self.model.attribute(product, 5).as_ref() {
            Some(p) => self.placement(p)?,
            None => Affine::IDENTITY,
        };
        let representations: Vec<&Instance> = self.model.follow_list(shape, 2).collect();
        let identifier = |r: &Instance| self.model.attribute(r, 1).as_str().unwrap_or("").to_owned();
        let kind = |r: &Instance| self.model.attribute(r, 2).as_str().unwrap_or("").to_owned();
        let body =
            representations.iter().find(|r| identifier(r).eq_ignore_ascii_case("body")).or_else(|| {
                representations.iter().find(|r| {
                    matches!(
                        kind(r).as_str(),
                        "SweptSolid"
                            | "Brep"
                            | "Clipping"
                            | "MappedRepresentation"
                            | "Tessellation"
                            | "SurfaceModel"
                            | "CSG"
                    ) && !matches!(
                        identifier(r).as_str(),
                        "Axis" | "FootPrint" | "Box" | "Annotation" | "Profile"
                    )
                })
            });
        let Some(body) = body else { return Ok(Vec::new()) };
        let mut parts = Vec::new();
        let mut merged = TriMesh::default();
        for item in self.model.follow_list(body, 3) {
            if &*item.class == "IFCMAPPEDITEM" {
                let map = self.reference(item, 0)?;
                let transform = self.mapped_transform(item)?;
                let world = placement.then_after(&transform);
                if repeated_maps.contains(&map.id) {
                    parts.push(BodyPart::Instance { map: map.id, transform: world });
                    continue;
                }
                merged.append(self.map_mesh(map.id, 0)?.transformed(&world));
                continue;
            }
            merged.append(self.item(item, 0)?.transformed(&placement));
        }
        if !merged.triangles.is_empty() {
            parts.insert(0, BodyPart::Mesh(merged));
        }
        Ok(parts)
    }

    /// A mapped item's map: `MappingTarget ∘ MappingOrigin`.
    fn mapped_transform(&self, item: &Instance) -> Result<Affine, IfcError> {
        let map = self.reference(item, 0)?;
        let origin = self.reference(map, 0)?;
        let origin = self.axis_placement(origin)?;
        let target = self.transformation_operator(self.reference(item, 1)?)?;
        Ok(target.then_after(&origin))
    }

    /// A representation map's items, in the map's own frame (before MappingOrigin).
    pub fn map_mesh(&mut self, map: u64, depth: usize) -> Result<TriMesh, IfcError> {
        let map = self.model.get(map)?;
        let representation = self.reference(map, 1)?;
        let mut mesh = TriMesh::default();
        for item in self.model.follow_list(representation, 3) {
            mesh.append(self.item(item, depth + 1)?);
        }
        Ok(mesh)
    }

    /// One representation item in its own frame.
    pub fn item(&mut self, item: &Instance, depth: usize) -> Result<TriMesh, IfcError> {
        if depth > 32 {
            return Err(self.malformed(item, "representation items nest deeper than 32 (a reference cycle?)"));
        }
        match &*item.class {
            "IFCEXTRUDEDAREASOLID" | "IFCEXTRUDEDAREASOLIDTAPERED" => self.extrusion(item),
            "IFCFACETEDBREP" | "IFCFACETEDBREPWITHVOIDS" => {
                let shell = self.reference(item, 0)?;
                self.faces(shell, 0)
            }
            "IFCCLOSEDSHELL" | "IFCOPENSHELL" | "IFCCONNECTEDFACESET" => self.faces(item, 0),
            "IFCSHELLBASEDSURFACEMODEL" | "IFCFACEBASEDSURFACEMODEL" => {
                let mut mesh = TriMesh::default();
                for shell in self.model.follow_list(item, 0).collect::<Vec<_>>() {
                    mesh.append(self.faces(shell, 0)?);
                }
                Ok(mesh)
            }
            "IFCTRIANGULATEDFACESET" | "IFCTRIANGULATEDIRREGULARNETWORK" => self.triangulated(item),
            "IFCPOLYGONALFACESET" => self.polygonal(item),
            "IFCMAPPEDITEM" => {
                let map = self.reference(item, 0)?;
                let transform = self.mapped_transform(item)?;
                Ok(self.map_mesh(map.id, depth + 1)?.transformed(&transform))
            }
            "IFCBOOLEANCLIPPINGRESULT" | "IFCBOOLEANRESULT" => self.boolean(item, depth),
            "IFCCSGSOLID" => {
                let root = self.reference(item, 0)?;
                self.item(root, depth + 1)
            }
            other => {
                self.note(other);
                Ok(TriMesh::default())
            }
        }
    }

    fn boolean(&mut self, item: &Instance, depth: usize) -> Result<TriMesh, IfcError> {
        let operator = self.model.attribute(item, 0).as_enum().unwrap_or("").to_owned();
        let first = self.reference(item, 1)?;
        let second = self.reference(item, 2)?;
        let base = self.item(first, depth + 1)?;
        match (operator.as_str(), &*second.class) {
            ("DIFFERENCE", "IFCHALFSPACESOLID" | "IFCBOXEDHALFSPACE" | "IFCPOLYGONALBOUNDEDHALFSPACE") => {
                let plane = self.reference(second, 0)?;
                if &*plane.class != "IFCPLANE" {
                    self.note(&format!("half-space on {}", plane.class));
                    return Ok(base);
                }
                let frame = self.axis_placement(self.reference(plane, 0)?)?;
                let agreement = self.model.attribute(second, 1).as_enum() != Some("F");
                // AgreementFlag true: the solid lies against the plane's normal, so
                // the difference keeps the side the normal points to.
                let normal = if agreement { frame.cols[2] } else { frame.cols[2].map(|c| -c) };
                if &*second.class == "IFCPOLYGONALBOUNDEDHALFSPACE" {
                    let removed = HalfSpace { origin: frame.t, inward: normal.map(|c| -c) };
                    return self.subtract_bounded_half_space(base, removed, second);
                }
                // A boxed half-space's box only speeds up the computation; the
                // result is that of the unbounded one.
                Ok(base.clip(frame.t, normal))
            }
            ("UNION", _) => {
                let mut mesh = base;
                mesh.append(self.item(second, depth + 1)?);
                Ok(mesh)
            }
            (op, class) => {
                self.note(&format!("boolean {op} with {class} (first operand kept)"));
                Ok(base)
            }
        }
    }

    /// `base` minus the half-space cut down to the prism its 2D boundary sweeps
    /// along the boundary frame's Z: one convex subtraction per convex piece.
    fn subtract_bounded_half_space(
        &mut self,
        base: TriMesh,
        removed: HalfSpace,
        solid: &Instance,
    ) -> Result<TriMesh, IfcError> {
        let position = self.axis_placement(self.reference(solid, 2)?)?;
        let boundary = self.curve(self.reference(solid, 3)?, 0)?;
        let boundary = oriented(boundary, true);
        if boundary.len() < 3 || signed_area(&boundary).abs() < 1e-12 {
            return Err(self.malformed(solid, "PolygonalBoundary encloses no area"));
        }
        let pieces: Vec<Vec<[f64; 2]>> = if is_convex(&boundary) {
            vec![boundary]
        } else {
            let polygon = Polygon::new(
                LineString(boundary.iter().map(|p| Coord { x: p[0], y: p[1] }).collect()),
                vec![],
            );
            polygon
                .earcut_triangles_iter()
                .map(|t| oriented(t.to_array().iter().map(|c| [c.x, c.y]).collect(), true))
                .filter(|t| t.len() == 3)
                .collect()
        };
        let mut mesh = base;
        for piece in pieces {
            let mut region = vec![removed];
            for i in 0..piece.len() {
                let (a, b) = (piece[i], piece[(i + 1) % piece.len()]);
                // Counter-clockwise: the inside lies left of each edge.
                region.push(HalfSpace {
                    origin: position.apply([a[0], a[1], 0.0]),
                    inward: position.apply_vector([a[1] - b[1], b[0] - a[0], 0.0]),
                });
            }
            mesh = mesh.subtract_convex(&region, SUBTRACT_MARGIN_M / self.model.length_unit);
        }
        Ok(mesh)
    }

    fn faces(&mut self, set: &Instance, _depth: usize) -> Result<TriMesh, IfcError> {
        let mut mesh = TriMesh::default();
        for face in self.model.follow_list(set, 0) {
            let mut loops: Vec<Vec<[f64; 3]>> = Vec::new();
            let mut outer_at = 0;
            for bound in self.model.follow_list(face, 0) {
                let Some(polyloop) = self.optional_reference(bound, 0) else { continue };
                if &*polyloop.class != "IFCPOLYLOOP" {
                    self.note(&format!("face bound {}", polyloop.class));
                    continue;
                }
                let mut ring = Vec::new();
                for p in self.model.follow_list(polyloop, 0) {
                    ring.push(self.point(p)?);
                }
                ring.dedup();
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                if self.model.attribute(bound, 1).as_enum() == Some("F") {
                    ring.reverse();
                }
                if &*bound.class == "IFCFACEOUTERBOUND" {
                    outer_at = loops.len();
                }
                loops.push(ring);
            }
            if loops.is_empty() {
                continue;
            }
            loops.swap(0, outer_at);
            // Holes run against the outer loop; triangulation wants that too.
            mesh.append(triangulate_face(&loops, None));
        }
        Ok(mesh)
    }

    fn point_list(&self, list: &Instance) -> Result<Vec<[f64; 3]>, IfcError> {
        let rows = self.model.attribute(list, 0).as_list().unwrap_or(&[]);
        rows.iter().map(|row| self.coordinates(row.as_list().unwrap_or(&[]), list)).collect()
    }

    fn index_list(&self, value: &StepValue, item: &Instance) -> Result<Vec<usize>, IfcError> {
        value
            .as_list()
            .unwrap_or(&[])
            .iter()
            .map(|v| match v {
                StepValue::Integer(i) if *i >= 1 => Ok(*i as usize - 1),
                _ => Err(self.malformed(item, "indices must be integers from 1")),
            })
            .collect()
    }

    fn lookup(
        &self,
        points: &[[f64; 3]],
        pn: &[usize],
        i: usize,
        item: &Instance,
    ) -> Result<[f64; 3], IfcError> {
        let at = if pn.is_empty() { Some(i) } else { pn.get(i).copied() };
        at.and_then(|a| points.get(a).copied()).ok_or_else(|| {
            self.malformed(item, &format!("index {} is past the {} points", i + 1, points.len()))
        })
    }

    fn triangulated(&mut self, item: &Instance) -> Result<TriMesh, IfcError> {
        let points = self.point_list(self.reference(item, 0)?)?;
        // IFC4: Coordinates, Normals, Closed, CoordIndex, PnIndex.
        let pn = self.index_list(self.model.attribute(item, 4), item)?;
        let mut mesh = TriMesh::default();
        for triangle in self.model.attribute(item, 3).as_list().unwrap_or(&[]) {
            let idx = self.index_list(triangle, item)?;
            if idx.len() != 3 {
                return Err(self.malformed(item, "CoordIndex needs three indices per triangle"));
            }
            mesh.triangles.push([
                self.lookup(&points, &pn, idx[0], item)?,
                self.lookup(&points, &pn, idx[1], item)?,
                self.lookup(&points, &pn, idx[2], item)?,
            ]);
        }
        Ok(mesh)
    }

    fn polygonal(&mut self, item: &Instance) -> Result<TriMesh, IfcError> {
        let points = self.point_list(self.reference(item, 0)?)?;
        let pn = self.index_list(self.model.attribute(item, 3), item)?;
        let mut mesh = TriMesh::default();
        for face in self.model.follow_list(item, 2) {
            let mut loops = Vec::new();
            let outer = self.index_list(self.model.attribute(face, 0), item)?;
            loops.push(
                outer.iter().map(|&i| self.lookup(&points, &pn, i, item)).collect::<Result<Vec<_>, _>>()?,
            );
            for inner in self.model.attribute(face, 1).as_list().unwrap_or(&[]) {
                let idx = self.index_list(inner, item)?;
                loops.push(
                    idx.iter().map(|&i| self.lookup(&points, &pn, i, item)).collect::<Result<Vec<_>, _>>()?,
                );
            }
            mesh.append(triangulate_face(&loops, None));
        }
        Ok(mesh)
    }

    fn extrusion(&mut self, item: &Instance) -> Result<TriMesh, IfcError> {
        let profile = self.profile(self.reference(item, 0)?, 0)?;
        let position = match self.optional_reference(item, 1) {
            Some(p) => self.axis_placement(p)?,
            None => Affine::IDENTITY,
        };
        let direction = self.direction(self.reference(item, 2)?)?;
        let depth = self.real(item, 3)?;
        if direction[2].abs() < 1e-9 {
            return Err(self.malformed(item, "ExtrudedDirection lies in the profile's plane"));
        }
        let offset = direction.map(|c| c * depth);
        let lift = |p: [f64; 2], top: bool| {
            if top { [p[0] + offset[0], p[1] + offset[1], offset[2]] } else { [p[0], p[1], 0.0] }
        };
        // Extruding towards -z turns every face inside out; flip at the end.
        let inverted = offset[2] < 0.0;
        let mut mesh = TriMesh::default();
        for (outer, holes) in &profile.areas {
            let outer = oriented(outer.clone(), true);
            if outer.len() < 3 {
                continue;
            }
            let holes: Vec<Vec<[f64; 2]>> =
                holes.iter().map(|h| oriented(h.clone(), false)).filter(|h| h.len() >= 3).collect();
            for ring in std::iter::once(&outer).chain(&holes) {
                for i in 0..ring.len() {
                    let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
                    let (a0, b0, a1, b1) = (lift(a, false), lift(b, false), lift(a, true), lift(b, true));
                    mesh.triangles.push([a0, b0, b1]);
                    mesh.triangles.push([a0, b1, a1]);
                }
            }
            let to3 = |r: &Vec<[f64; 2]>, top: bool| r.iter().map(|p| lift(*p, top)).collect::<Vec<_>>();
            let mut bottom_loops = vec![to3(&outer, false)];
            bottom_loops.extend(holes.iter().map(|h| to3(h, false)));
            let mut top_loops = vec![to3(&outer, true)];
            top_loops.extend(holes.iter().map(|h| to3(h, true)));
            mesh.append(triangulate_face(&bottom_loops, Some([0.0, 0.0, -1.0])));
            mesh.append(triangulate_face(&top_loops, Some([0.0, 0.0, 1.0])));
        }
        for curve in &profile.open {
            for w in curve.windows(2) {
                let (a0, b0, a1, b1) =
                    (lift(w[0], false), lift(w[1], false), lift(w[0], true), lift(w[1], true));
                // A sheet has two sides to see.
                mesh.triangles.extend([[a0, b0, b1], [a0, b1, a1], [a0, b1, b0], [a0, a1, b1]]);
            }
        }
        if inverted {
            for t in &mut mesh.triangles {
                t.swap(1, 2);
            }
        }
        Ok(mesh.transformed(&position))
    }

    /// A profile definition in its own 2D frame (its Position applied).
    pub fn profile(&mut self, profile: &Instance, depth: usize) -> Result<Profile, IfcError> {
        if depth > 16 {
            return Err(self.malformed(profile, "profiles nest deeper than 16 (a reference cycle?)"));
        }
        let class = &*profile.class;
        let mut out = Profile::default();
        let parameterised = |s: &Self, rings: Vec<Vec<[f64; 2]>>| -> Result<Profile, IfcError> {
            let position = match s.optional_reference(profile, 2) {
                Some(p) => s.axis_placement(p)?,
                None => Affine::IDENTITY,
            };
            let mut rings = rings.into_iter().map(|r| {
                r.into_iter()
                    .map(|p| {
                        let q = position.apply([p[0], p[1], 0.0]);
                        [q[0], q[1]]
                    })
                    .collect::<Vec<_>>()
            });
            let outer = rings.next().unwrap_or_default();
            Ok(Profile { areas: vec![(outer, rings.collect())], open: Vec::new() })
        };
        let r = |i: usize| self.real(profile, i);
        match class {
            "IFCRECTANGLEPROFILEDEF" | "IFCROUNDEDRECTANGLEPROFILEDEF" => {
                parameterised(self, vec![rectangle(r(3)?, r(4)?)])
            }
            "IFCRECTANGLEHOLLOWPROFILEDEF" => {
                let (w, h, t) = (r(3)?, r(4)?, r(5)?);
                parameterised(self, vec![rectangle(w, h), rectangle(w - 2.0 * t, h - 2.0 * t)])
            }
            "IFCCIRCLEPROFILEDEF" => parameterised(self, vec![circle_ring(r(3)?)]),
            "IFCCIRCLEHOLLOWPROFILEDEF" => {
                let (radius, t) = (r(3)?, r(4)?);
                parameterised(self, vec![circle_ring(radius), circle_ring(radius - t)])
            }
            "IFCELLIPSEPROFILEDEF" => parameterised(self, vec![ellipse_ring(r(3)?, r(4)?)]),
            "IFCISHAPEPROFILEDEF" | "IFCASYMMETRICISHAPEPROFILEDEF" => {
                let (b, h, tw, tf) = (r(3)?, r(4)?, r(5)?, r(6)?);
                let (x, y, w) = (b / 2.0, h / 2.0, tw / 2.0);
                parameterised(
                    self,
                    vec![vec![
                        [-x, -y],
                        [x, -y],
                        [x, -y + tf],
                        [w, -y + tf],
                        [w, y - tf],
                        [x, y - tf],
                        [x, y],
                        [-x, y],
                        [-x, y - tf],
                        [-w, y - tf],
                        [-w, -y + tf],
                        [-x, -y + tf],
                    ]],
                )
            }
            "IFCLSHAPEPROFILEDEF" => {
                let (d, t) = (r(3)?, r(5)?);
                let w = self.optional_real(profile, 4).unwrap_or(d);
                let (x, y) = (w / 2.0, d / 2.0);
                parameterised(
                    self,
                    vec![vec![[-x, -y], [x, -y], [x, -y + t], [-x + t, -y + t], [-x + t, y], [-x, y]]],
                )
            }
            "IFCTSHAPEPROFILEDEF" => {
                let (d, b, tw, tf) = (r(3)?, r(4)?, r(5)?, r(6)?);
                let (x, y, w) = (b / 2.0, d / 2.0, tw / 2.0);
                parameterised(
                    self,
                    vec![vec![
                        [-w, -y],
                        [w, -y],
                        [w, y - tf],
                        [x, y - tf],
                        [x, y],
                        [-x, y],
                        [-x, y - tf],
                        [-w, y - tf],
                    ]],
                )
            }
            "IFCUSHAPEPROFILEDEF" | "IFCCSHAPEPROFILEDEF" => {
                let (d, b, tw) = (r(3)?, r(4)?, r(5)?);
                let tf = if class == "IFCUSHAPEPROFILEDEF" { r(6)? } else { tw };
                let (x, y) = (b / 2.0, d / 2.0);
                parameterised(
                    self,
                    vec![vec![
                        [-x, -y],
                        [x, -y],
                        [x, -y + tf],
                        [-x + tw, -y + tf],
                        [-x + tw, y - tf],
                        [x, y - tf],
                        [x, y],
                        [-x, y],
                    ]],
                )
            }
            "IFCARBITRARYCLOSEDPROFILEDEF" | "IFCARBITRARYPROFILEDEFWITHVOIDS" => {
                let outer = self.curve(self.reference(profile, 2)?, 0)?;
                let mut holes = Vec::new();
                for inner in self.model.follow_list(profile, 3).collect::<Vec<_>>() {
                    holes.push(self.curve(inner, 0)?);
                }
                out.areas.push((outer, holes));
                Ok(out)
            }
            "IFCARBITRARYOPENPROFILEDEF" | "IFCCENTERLINEPROFILEDEF" => {
                if class == "IFCCENTERLINEPROFILEDEF" {
                    self.note("IfcCenterLineProfileDef drawn without thickness");
                }
                out.open.push(self.curve(self.reference(profile, 2)?, 0)?);
                Ok(out)
            }
            "IFCCOMPOSITEPROFILEDEF" => {
                for part in self.model.follow_list(profile, 2).collect::<Vec<_>>() {
                    let p = self.profile(part, depth + 1)?;
                    out.areas.extend(p.areas);
                    out.open.extend(p.open);
                }
                Ok(out)
            }
            "IFCDERIVEDPROFILEDEF" | "IFCMIRROREDPROFILEDEF" => {
                let parent = self.profile(self.reference(profile, 2)?, depth + 1)?;
                let operator = self.transformation_operator(self.reference(profile, 3)?)?;
                let map = |ring: Vec<[f64; 2]>| {
                    ring.into_iter()
                        .map(|p| {
                            let q = operator.apply([p[0], p[1], 0.0]);
                            [q[0], q[1]]
                        })
                        .collect::<Vec<_>>()
                };
                out.areas = parent
                    .areas
                    .into_iter()
                    .map(|(o, h)| (map(o), h.into_iter().map(map).collect()))
                    .collect();
                out.open = parent.open.into_iter().map(map).collect();
                Ok(out)
            }
            other => {
                self.note(other);
                Ok(out)
            }
        }
    }

    /// A bounded 2D curve as points (arcs sampled).
    pub fn curve(&mut self, curve: &Instance, depth: usize) -> Result<Vec<[f64; 2]>, IfcError> {
        if depth > 16 {
            return Err(self.malformed(curve, "curves nest deeper than 16 (a reference cycle?)"));
        }
        let xy = |p: [f64; 3]| [p[0], p[1]];
        match &*curve.class {
            "IFCPOLYLINE" => {
                let mut points = Vec::new();
                for p in self.model.follow_list(curve, 0) {
                    points.push(xy(self.point(p)?));
                }
                Ok(points)
            }
            "IFCINDEXEDPOLYCURVE" => {
                let points = self.point_list(self.reference(curve, 0)?)?;
                let at = |i: usize| -> Result<[f64; 2], IfcError> {
                    points
                        .get(i)
                        .map(|p| xy(*p))
                        .ok_or_else(|| self.malformed(curve, "a segment index is past the points"))
                };
                let segments = self.model.attribute(curve, 1).as_list().unwrap_or(&[]);
                if segments.is_empty() {
                    return Ok(points.iter().map(|p| xy(*p)).collect());
                }
                let mut out: Vec<[f64; 2]> = Vec::new();
                for segment in segments {
                    let StepValue::Typed(kind, inner) = segment else {
                        return Err(self.malformed(curve, "a segment must be IfcLineIndex or IfcArcIndex"));
                    };
                    let idx = self.index_list(inner, curve)?;
                    let mut pts = Vec::new();
                    if &**kind == "IFCARCINDEX" && idx.len() == 3 {
                        pts.extend(arc_through(at(idx[0])?, at(idx[1])?, at(idx[2])?));
                    } else {
                        for &i in &idx {
                            pts.push(at(i)?);
                        }
                    }
                    for p in pts {
                        if out.last() != Some(&p) {
                            out.push(p);
                        }
                    }
                }
                Ok(out)
            }
            "IFCCOMPOSITECURVE" | "IFCCOMPOSITECURVEONSURFACE" => {
                let mut out: Vec<[f64; 2]> = Vec::new();
                for segment in self.model.follow_list(curve, 0).collect::<Vec<_>>() {
                    let parent = self.reference(segment, 2)?;
                    let mut pts = self.curve(parent, depth + 1)?;
                    if self.model.attribute(segment, 1).as_enum() == Some("F") {
                        pts.reverse();
                    }
                    for p in pts {
                        if out.last().is_none_or(|l| (l[0] - p[0]).abs() + (l[1] - p[1]).abs() > 1e-9) {
                            out.push(p);
                        }
                    }
                }
                Ok(out)
            }
            "IFCTRIMMEDCURVE" => self.trimmed(curve, depth),
            "IFCCIRCLE" => {
                let position = self.axis_placement(self.reference(curve, 0)?)?;
                Ok(circle_ring(self.real(curve, 1)?)
                    .into_iter()
                    .map(|p| xy(position.apply([p[0], p[1], 0.0])))
                    .collect())
            }
            "IFCELLIPSE" => {
                let position = self.axis_placement(self.reference(curve, 0)?)?;
                let ring = ellipse_ring(self.real(curve, 1)?, self.real(curve, 2)?);
                Ok(ring.into_iter().map(|p| xy(position.apply([p[0], p[1], 0.0]))).collect())
            }
            other => {
                self.note(&format!("curve {other}"));
                Ok(Vec::new())
            }
        }
    }

    fn trimmed(&mut self, curve: &Instance, depth: usize) -> Result<Vec<[f64; 2]>, IfcError> {
        let basis = self.reference(curve, 0)?;
        let sense = self.model.attribute(curve, 3).as_enum() != Some("F");
        let trim = |index: usize| -> (Option<f64>, Option<[f64; 3]>) {
            let mut parameter = None;
            let mut point = None;
            for v in self.model.attribute(curve, index).as_list().unwrap_or(&[]) {
                match v {
                    StepValue::Typed(t, inner) if &**t == "IFCPARAMETERVALUE" => parameter = inner.as_f64(),
                    StepValue::Ref(r) => point = self.model.get(*r).ok().and_then(|p| self.point(p).ok()),
                    _ => {}
                }
            }
            (parameter, point)
        };
        let (t1, t2) = (trim(1), trim(2));
        let prefer_cartesian = self.model.attribute(curve, 4).as_enum() == Some("CARTESIAN");
        match &*basis.class {
            "IFCCIRCLE" | "IFCELLIPSE" => {
                let position = self.axis_placement(self.reference(basis, 0)?)?;
                let (a, b) = if &*basis.class == "IFCCIRCLE" {
                    let r = self.real(basis, 1)?;
                    (r, r)
                } else {
                    (self.real(basis, 1)?, self.real(basis, 2)?)
                };
                let angle_of = |(parameter, point): (Option<f64>, Option<[f64; 3]>)| -> Option<f64> {
                    let from_point = point.map(|p| {
                        let d = sub(p, position.t);
                        let (x, y) = (dot(d, position.cols[0]), dot(d, position.cols[1]));
                        (y / b).atan2(x / a)
                    });
                    let from_parameter = parameter.map(|t| t * self.model.angle_unit);
                    preferred(prefer_cartesian, from_point, from_parameter)
                };
                let (Some(a1), Some(a2)) = (angle_of(t1), angle_of(t2)) else {
                    return Err(self.malformed(curve, "trim values give no angle"));
                };
                let tau = std::f64::consts::TAU;
                let sweep = if sense { (a2 - a1).rem_euclid(tau) } else { -((a1 - a2).rem_euclid(tau)) };
                let sweep = if sweep.abs() < 1e-12 { if sense { tau } else { -tau } } else { sweep };
                Ok(arc_angles(a1, sweep)
                    .into_iter()
                    .map(|t| {
                        let p = position.apply([a * t.cos(), b * t.sin(), 0.0]);
                        [p[0], p[1]]
                    })
                    .collect())
            }
            "IFCLINE" => {
                let origin = self.point(self.reference(basis, 0)?)?;
                let vector = self.reference(basis, 1)?;
                let dir = self.direction(self.reference(vector, 0)?)?;
                let magnitude = self.optional_real(vector, 1).unwrap_or(1.0);
                let at = |(parameter, point): (Option<f64>, Option<[f64; 3]>)| -> Option<[f64; 2]> {
                    let from_parameter = parameter
                        .map(|t| [origin[0] + t * magnitude * dir[0], origin[1] + t * magnitude * dir[1]]);
                    let from_point = point.map(|p| [p[0], p[1]]);
                    preferred(prefer_cartesian, from_point, from_parameter)
                };
                let (Some(a), Some(b)) = (at(t1), at(t2)) else {
                    return Err(self.malformed(curve, "trim values give no point"));
                };
                Ok(if sense { vec![a, b] } else { vec![b, a] })
            }
            _ => {
                let mut pts = self.curve(basis, depth + 1)?;
                self.note(&format!("trimming of {} ignored", basis.class));
                if !sense {
                    pts.reverse();
                }
                Ok(pts)
            }
        }
    }
}

/// A trim given both ways: the one the curve's MasterRepresentation names, else the
/// other.
fn preferred<T>(cartesian_first: bool, from_point: Option<T>, from_parameter: Option<T>) -> Option<T> {
    if cartesian_first { from_point.or(from_parameter) } else { from_parameter.or(from_point) }
}

/// Points of the circular arc from `a` through `m` to `b`.
fn arc_through(a: [f64; 2], m: [f64; 2], b: [f64; 2]) -> Vec<[f64; 2]> {
    let d = 2.0 * (a[0] * (m[1] - b[1]) + m[0] * (b[1] - a[1]) + b[0] * (a[1] - m[1]));
    if d.abs() < 1e-12 {
        return vec![a, m, b];
    }
    let sq = |p: [f64; 2]| p[0] * p[0] + p[1] * p[1];
    let cx = (sq(a) * (m[1] - b[1]) + sq(m) * (b[1] - a[1]) + sq(b) * (a[1] - m[1])) / d;
    let cy = (sq(a) * (b[0] - m[0]) + sq(m) * (a[0] - b[0]) + sq(b) * (m[0] - a[0])) / d;
    let r = ((a[0] - cx).powi(2) + (a[1] - cy).powi(2)).sqrt();
    let angle = |p: [f64; 2]| (p[1] - cy).atan2(p[0] - cx);
    let (t0, tm, t1) = (angle(a), angle(m), angle(b));
    let tau = std::f64::consts::TAU;
    let ccw = (tm - t0).rem_euclid(tau) < (t1 - t0).rem_euclid(tau);
    let sweep = if ccw { (t1 - t0).rem_euclid(tau) } else { -((t0 - t1).rem_euclid(tau)) };
    let mut pts: Vec<[f64; 2]> =
        arc_angles(t0, sweep).into_iter().map(|t| [cx + r * t.cos(), cy + r * t.sin()]).collect();
    // The ends are the given points exactly, so neighbouring segments meet.
    if let Some(first) = pts.first_mut() {
        *first = a;
    }
    if let Some(last) = pts.last_mut() {
        *last = b;
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polygonal_bounded_half_space_removes_only_what_its_boundary_encloses() {
        // A 1 m cube (in mm) whose top half is cut away under an L-shaped boundary:
        // the notch at x, y > 500 keeps its full height.
        let m = model(
            "#10=IFCCARTESIANPOINT((500.,500.));#11=IFCAXIS2PLACEMENT2D(#10,$);\n\
             #12=IFCRECTANGLEPROFILEDEF(.AREA.,$,#11,1000.,1000.);\n\
             #13=IFCCARTESIANPOINT((0.,0.,0.));#14=IFCAXIS2PLACEMENT3D(#13,$,$);\n\
             #15=IFCDIRECTION((0.,0.,1.));#16=IFCEXTRUDEDAREASOLID(#12,#14,#15,1000.);\n\
             #20=IFCCARTESIANPOINT((0.,0.,500.));#21=IFCDIRECTION((0.,0.,-1.));\n\
             #22=IFCAXIS2PLACEMENT3D(#20,#21,$);#23=IFCPLANE(#22);\n\
             #30=IFCCARTESIANPOINT((-10.,-10.));#31=IFCCARTESIANPOINT((1010.,-10.));\n\
             #32=IFCCARTESIANPOINT((1010.,500.));#33=IFCCARTESIANPOINT((500.,500.));\n\
             #34=IFCCARTESIANPOINT((500.,1010.));#35=IFCCARTESIANPOINT((-10.,1010.));\n\
             #36=IFCPOLYLINE((#30,#31,#32,#33,#34,#35,#30));\n\
             #40=IFCPOLYGONALBOUNDEDHALFSPACE(#23,.T.,#14,#36);\n\
             #41=IFCBOOLEANCLIPPINGRESULT(.DIFFERENCE.,#16,#40);\n\
             #42=IFCPOLYGONALBOUNDEDHALFSPACE(#23,.F.,#14,#36);\n\
             #43=IFCBOOLEANCLIPPINGRESULT(.DIFFERENCE.,#16,#42);",
        );
        let mut b = GeometryBuilder::new(&m);
        let cut = b.item(m.get(41).expect("#41"), 0).expect("clipped");
        // The 0.01 mm margin removes a skin: 1.25e-5 of the volume here.
        assert!((volume(&cut) / 1e9 - 0.625).abs() < 5e-5, "{}", volume(&cut) / 1e9);
        assert_eq!(cut.bounds().expect("bounds")[1][2], 1000.0);
        // Every face looks out of what is left.
        let rest = |p: [f64; 3]| !(p[2] > 500.0 && (p[0] < 500.0 || p[1] < 500.0));
        for t in &cut.triangles {
            let centre = [0, 1, 2].map(|k| (t[0][k] + t[1][k] + t[2][k]) / 3.0);
            if (centre[0] - 500.0).abs() < 0.05 || (centre[1] - 500.0).abs() < 0.05 {
                continue; // within the margin's skin of the L's inner corner
            }
            let n = normalized(cross(sub(t[1], t[0]), sub(t[2], t[0])))
                .unwrap_or_else(|| panic!("no area: {t:?}"));
            let ahead = [0, 1, 2].map(|k| centre[k] + n[k] * 1.0);
            let behind = [0, 1, 2].map(|k| centre[k] - n[k] * 1.0);
            let inside = |p: [f64; 3]| rest(p) && p.iter().all(|c| (0.0..=1000.0).contains(c));
            assert!(!inside(ahead) && inside(behind), "face {t:?} looks the wrong way");
        }
        // The flag flipped: the bottom half goes under the L instead.
        let under = b.item(m.get(43).expect("#43"), 0).expect("clipped");
        assert!((volume(&under) / 1e9 - 0.625).abs() < 5e-5, "{}", volume(&under) / 1e9);
        assert_eq!(under.bounds().expect("bounds")[0][2], 0.0);
        assert!(b.unsupported.is_empty(), "{:?}", b.unsupported);
    }

    #[test]
    fn arcs_keep_their_extremes() {
        let angles = arc_angles(0.1, 3.0);
        assert!(angles.iter().any(|a| (a - std::f64::consts::FRAC_PI_2).abs() < 1e-12));
        assert!((angles[0] - 0.1).abs() < 1e-12 && (angles[angles.len() - 1] - 3.1).abs() < 1e-12);
        let pts = arc_through([1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]);
        let top = pts.iter().map(|p| p[1]).fold(f64::MIN, f64::max);
        assert!((top - 1.0).abs() < 1e-12);
        assert!(pts.iter().all(|p| ((p[0] * p[0] + p[1] * p[1]).sqrt() - 1.0).abs() < 1e-9));
        let clockwise = arc_through([-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]);
        assert!(clockwise.iter().all(|p| p[1] >= -1e-12), "the arc passes over the top");
    }

    /// A model of the given data lines, with the project and units every file has.
    fn model(data: &str) -> IfcModel {
        let text = format!(
            "ISO-10303-21;HEADER;FILE_SCHEMA(('IFC4'));ENDSEC;DATA;\n\
             #1=IFCPROJECT('0000000000000000000001',$,$,$,$,$,$,$,#2);\n\
             #2=IFCUNITASSIGNMENT((#3));#3=IFCSIUNIT(*,.LENGTHUNIT.,.MILLI.,.METRE.);\n{data}\nENDSEC;END-ISO-10303-21;"
        );
        IfcModel::read(std::io::Cursor::new(text.into_bytes()), |_| {}).expect("model")
    }

    #[test]
    fn tessellated_and_surface_model_items_mesh_what_they_say() {
        // A unit tetrahedron three ways: triangulated, polygonal (one quad face split
        // as a polygon), and as a shell-based surface model of poly loops.
        let m = model(
            "#10=IFCCARTESIANPOINTLIST3D(((0.,0.,0.),(1.,0.,0.),(0.,1.,0.),(0.,0.,1.)));\n\
             #11=IFCTRIANGULATEDFACESET(#10,$,.T.,((1,3,2),(1,2,4),(2,3,4),(3,1,4)),$);\n\
             #20=IFCINDEXEDPOLYGONALFACE((1,3,2));#21=IFCINDEXEDPOLYGONALFACE((1,2,4));\n\
             #22=IFCINDEXEDPOLYGONALFACE((2,3,4));#23=IFCINDEXEDPOLYGONALFACE((3,1,4));\n\
             #24=IFCPOLYGONALFACESET(#10,.T.,(#20,#21,#22,#23),$);\n\
             #30=IFCCARTESIANPOINT((0.,0.,0.));#31=IFCCARTESIANPOINT((1.,0.,0.));\n\
             #32=IFCCARTESIANPOINT((0.,1.,0.));#33=IFCCARTESIANPOINT((0.,0.,1.));\n\
             #40=IFCPOLYLOOP((#30,#32,#31));#41=IFCPOLYLOOP((#30,#31,#33));\n\
             #42=IFCPOLYLOOP((#31,#32,#33));#43=IFCPOLYLOOP((#33,#30,#32));\n\
             #50=IFCFACEOUTERBOUND(#40,.T.);#51=IFCFACEOUTERBOUND(#41,.T.);\n\
             #52=IFCFACEOUTERBOUND(#42,.T.);#53=IFCFACEOUTERBOUND(#43,.F.);\n\
             #60=IFCFACE((#50));#61=IFCFACE((#51));#62=IFCFACE((#52));#63=IFCFACE((#53));\n\
             #64=IFCOPENSHELL((#60,#61,#62,#63));#65=IFCSHELLBASEDSURFACEMODEL((#64));\n\
             #70=IFCTRIANGULATEDFACESET(#10,$,.T.,((1,2,9)),$);",
        );
        let mut b = GeometryBuilder::new(&m);
        let tri = b.item(m.get(11).expect("#11"), 0).expect("triangulated");
        let poly = b.item(m.get(24).expect("#24"), 0).expect("polygonal");
        let shell = b.item(m.get(65).expect("#65"), 0).expect("shell");
        assert_eq!(tri.triangles.len(), 4);
        assert!((volume(&tri) - 1.0 / 6.0).abs() < 1e-12, "{}", volume(&tri));
        assert!((volume(&poly) - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(shell.triangles.len(), 4);
        // Every face looks away from the centre, the one whose loop is written
        // inward and flagged .F. included.
        for mesh in [&tri, &poly, &shell] {
            for t in &mesh.triangles {
                let n = cross(sub(t[1], t[0]), sub(t[2], t[0]));
                assert!(dot(n, sub(t[0], [0.25, 0.25, 0.25])) > 0.0, "inward face {t:?}");
            }
        }
        let e = b.item(m.get(70).expect("#70"), 0).expect_err("index past the points");
        assert!(e.to_string().contains("#70") && e.to_string().contains("index 9"), "{e}");
    }

    #[test]
    fn extrusions_place_profiles_and_scale_by_the_length_unit_later() {
        // A 2000 × 1000 mm rectangle extruded 3000 mm up, and an I-beam profile.
        let m = model(
            "#10=IFCCARTESIANPOINT((0.,0.));#11=IFCAXIS2PLACEMENT2D(#10,$);\n\
             #12=IFCRECTANGLEPROFILEDEF(.AREA.,$,#11,2000.,1000.);\n\
             #13=IFCCARTESIANPOINT((0.,0.,0.));#14=IFCAXIS2PLACEMENT3D(#13,$,$);\n\
             #15=IFCDIRECTION((0.,0.,1.));#16=IFCEXTRUDEDAREASOLID(#12,#14,#15,3000.);\n\
             #20=IFCISHAPEPROFILEDEF(.AREA.,$,#11,200.,400.,10.,20.,$,$,$);\n\
             #21=IFCEXTRUDEDAREASOLID(#20,#14,#15,1000.);",
        );
        assert_eq!(m.length_unit, 0.001);
        let mut b = GeometryBuilder::new(&m);
        let boxed = b.item(m.get(16).expect("#16"), 0).expect("box");
        assert!((volume(&boxed) - 2000.0 * 1000.0 * 3000.0).abs() < 1e-3, "{}", volume(&boxed));
        assert_eq!(boxed.bounds(), Some([[-1000.0, -500.0, 0.0], [1000.0, 500.0, 3000.0]]));
        let beam = b.item(m.get(21).expect("#21"), 0).expect("beam");
        let area = 2.0 * 200.0 * 20.0 + (400.0 - 40.0) * 10.0;
        assert!((volume(&beam) - area * 1000.0).abs() < 1e-3, "{} vs {}", volume(&beam), area * 1000.0);
    }
}

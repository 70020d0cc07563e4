//! CityJSON 1.0, 1.1 and 2.0 documents and CityJSONSeq streams, upgraded on read
//! into one shape: city objects with their surfaces per level of detail, vertices
//! in the source CRS with the `transform` applied.
//!
//! Upgrades: 1.0's optional `transform` and float vertices, integer `lod`s
//! (`2` → `"2"`), and CRS names as URNs, URLs or `EPSG:n`. Geometry templates
//! (`GeometryInstance`) are placed by their matrix. Appearances (materials and
//! textures) are skipped and said so.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use crate::IngestError;

/// One planar surface: outer ring then holes, in source coordinates.
#[derive(Debug, Clone)]
pub struct Surface {
    pub rings: Vec<Vec<[f64; 3]>>,
    /// Semantic surface type (`RoofSurface`, `WallSurface`, ...).
    pub semantic: Option<String>,
}

/// A city object as read.
#[derive(Debug, Clone)]
pub struct RawObject {
    pub id: String,
    pub kind: String,
    pub attributes: Map<String, Value>,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    /// Surfaces by level of detail (`"1"`, `"1.2"`, `"2.2"`...).
    pub lods: BTreeMap<String, Vec<Surface>>,
    /// Geometries of a type without surfaces (points, lines), by type.
    pub skipped_geometries: Vec<String>,
}

/// What a source file holds.
#[derive(Debug, Default)]
pub struct CityFile {
    pub version: String,
    /// The CRS the file declares, as `EPSG:n` when it is an EPSG code.
    pub crs: Option<String>,
    pub objects: Vec<RawObject>,
    pub has_appearance: bool,
    pub seq: bool,
}

/// `EPSG:n` from any of the forms CityJSON versions used.
pub fn epsg_of(reference: &str) -> Option<String> {
    let r = reference.trim();
    let code = if let Some(rest) = r.strip_prefix("urn:ogc:def:crs:EPSG:") {
        rest.trim_start_matches(':').rsplit(':').next()
    } else if r.contains("/def/crs/EPSG/") {
        r.rsplit('/').next()
    } else {
        r.strip_prefix("EPSG:")
    }?;
    code.parse::<u32>().ok().map(|c| format!("EPSG:{c}"))
}

fn bad(path: &Path, at: &str, why: impl std::fmt::Display) -> IngestError {
    IngestError::source(path, format!("{at}: {why}"))
}

struct Vertices {
    list: Vec<[f64; 3]>,
}

fn read_vertices(
    path: &Path,
    at: &str,
    v: Option<&Value>,
    transform: Option<([f64; 3], [f64; 3])>,
) -> Result<Vertices, IngestError> {
    let arr = v.and_then(Value::as_array).ok_or_else(|| bad(path, at, "no \"vertices\" array"))?;
    let mut list = Vec::with_capacity(arr.len());
    for (i, p) in arr.iter().enumerate() {
        let c = p
            .as_array()
            .filter(|c| c.len() == 3)
            .ok_or_else(|| bad(path, &format!("{at}vertices[{i}]"), "not [x, y, z]"))?;
        let mut xyz = [0.0; 3];
        for k in 0..3 {
            xyz[k] = c[k]
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(path, &format!("{at}vertices[{i}]"), "not a number"))?;
        }
        if let Some((scale, translate)) = transform {
            xyz = [0, 1, 2].map(|k| xyz[k] * scale[k] + translate[k]);
        }
        list.push(xyz);
    }
    Ok(Vertices { list })
}

/// `(scale, translate)` of quantised vertices.
type Transform = ([f64; 3], [f64; 3]);

fn read_transform(path: &Path, doc: &Value) -> Result<Option<Transform>, IngestError> {
    let Some(t) = doc.get("transform") else { return Ok(None) };
    let three = |key: &str| -> Result<[f64; 3], IngestError> {
        let a = t[key]
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| bad(path, "transform", format!("\"{key}\" is not three numbers")))?;
        let mut out = [0.0; 3];
        for k in 0..3 {
            out[k] = a[k]
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(path, "transform", format!("\"{key}\" is not three numbers")))?;
        }
        Ok(out)
    };
    Ok(Some((three("scale")?, three("translate")?)))
}

/// A `lod` as a string whichever way the version wrote it.
fn lod_of(g: &Value) -> String {
    match g.get("lod") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(0.0);
            if v.fract() == 0.0 { format!("{}", v as i64) } else { format!("{v}") }
        }
        _ => "0".into(),
    }
}

struct Templates {
    geometries: Vec<Value>,
    vertices: Vec<[f64; 3]>,
}

struct Reader<'a> {
    path: &'a Path,
    vertices: &'a [[f64; 3]],
    templates: Option<&'a Templates>,
}

impl Reader<'_> {
    fn vertex(&self, at: &str, v: &Value, table: &[[f64; 3]]) -> Result<[f64; 3], IngestError> {
        let i = v.as_u64().ok_or_else(|| bad(self.path, at, "a vertex index that is not a number"))? as usize;
        table.get(i).copied().ok_or_else(|| {
            bad(self.path, at, format!("vertex {i} does not exist ({} vertices)", table.len()))
        })
    }

    /// One surface (`[[outer], [hole]...]`) with its semantic value.
    fn surface(
        &self,
        at: &str,
        s: &Value,
        semantic: Option<String>,
        table: &[[f64; 3]],
        place: &dyn Fn([f64; 3]) -> [f64; 3],
    ) -> Result<Surface, IngestError> {
        let rings =
            s.as_array().ok_or_else(|| bad(self.path, at, "a surface that is not a list of rings"))?;
        let mut out = Vec::with_capacity(rings.len());
        for (r, ring) in rings.iter().enumerate() {
            let ids = ring.as_array().ok_or_else(|| {
                bad(self.path, &format!("{at}[{r}]"), "a ring that is not a list of vertex indices")
            })?;
            let mut pts = Vec::with_capacity(ids.len());
            for v in ids {
                pts.push(place(self.vertex(&format!("{at}[{r}]"), v, table)?));
            }
            out.push(pts);
        }
        Ok(Surface { rings: out, semantic })
    }

    /// Surfaces of one geometry; `None` for a type without surfaces.
    fn geometry(&self, at: &str, g: &Value) -> Result<Option<(String, Vec<Surface>)>, IngestError> {
        let kind = g["type"].as_str().ok_or_else(|| bad(self.path, at, "a geometry without \"type\""))?;
        if kind == "GeometryInstance" {
            return self.instance(at, g);
        }
        self.plain(at, g, self.vertices, &|p| p)
    }

    fn plain(
        &self,
        at: &str,
        g: &Value,
        table: &[[f64; 3]],
        place: &dyn Fn([f64; 3]) -> [f64; 3],
    ) -> Result<Option<(String, Vec<Surface>)>, IngestError> {
        let kind = g["type"].as_str().unwrap_or_default();
        let lod = lod_of(g);
        let surfaces_json = g["semantics"]["surfaces"].as_array();
        let semantic_of = |v: &Value| -> Option<String> {
            let i = v.as_u64()? as usize;
            surfaces_json?.get(i)?["type"].as_str().map(str::to_owned)
        };
        let values = &g["semantics"]["values"];
        let b = &g["boundaries"];
        let boundaries = b.as_array().ok_or_else(|| bad(self.path, at, "no \"boundaries\" array"))?;
        let mut out = Vec::new();
        // Depth of surface lists: MultiSurface 1, Solid 2, MultiSolid 3.
        let depth = match kind {
            "MultiSurface" | "CompositeSurface" => 1,
            "Solid" => 2,
            "MultiSolid" | "CompositeSolid" => 3,
            "MultiPoint" | "MultiLineString" => return Ok(None),
            other => return Err(bad(self.path, at, format!("unknown geometry type '{other}'"))),
        };
        fn walk<'v>(
            v: &'v Value,
            sem: &'v Value,
            depth: usize,
            path: String,
            out: &mut Vec<(String, &'v Value, &'v Value)>,
        ) {
            if depth == 0 {
                out.push((path, v, sem));
                return;
            }
            for (i, child) in v.as_array().into_iter().flatten().enumerate() {
                walk(child, sem.get(i).unwrap_or(&Value::Null), depth - 1, format!("{path}[{i}]"), out);
            }
        }
        let mut list = Vec::new();
        walk(b, values, depth, format!("{at}.boundaries"), &mut list);
        if list.is_empty() && !boundaries.is_empty() {
            return Err(bad(self.path, at, format!("{kind} boundaries are not nested {depth} levels deep")));
        }
        for (p, s, sem) in list {
            out.push(self.surface(&p, s, semantic_of(sem), table, place)?);
        }
        Ok(Some((lod, out)))
    }

    /// A template placed by `transformationMatrix` (row-major 4×4) at its reference point.
    fn instance(&self, at: &str, g: &Value) -> Result<Option<(String, Vec<Surface>)>, IngestError> {
        let templates = self
            .templates
            .ok_or_else(|| bad(self.path, at, "a GeometryInstance but no \"geometry-templates\""))?;
        let t = g["template"]
            .as_u64()
            .ok_or_else(|| bad(self.path, at, "GeometryInstance without \"template\""))?
            as usize;
        let template = templates
            .geometries
            .get(t)
            .ok_or_else(|| bad(self.path, at, format!("template {t} does not exist")))?;
        let reference = g["boundaries"]
            .as_array()
            .and_then(|b| b.first())
            .ok_or_else(|| bad(self.path, at, "GeometryInstance without a reference point"))?;
        let origin = self.vertex(at, reference, self.vertices)?;
        let m: Vec<f64> = g["transformationMatrix"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        if m.len() != 16 {
            return Err(bad(self.path, at, "transformationMatrix is not 16 numbers"));
        }
        let place = move |p: [f64; 3]| {
            [0, 1, 2].map(|r| {
                m[r * 4] * p[0] + m[r * 4 + 1] * p[1] + m[r * 4 + 2] * p[2] + m[r * 4 + 3] + origin[r]
            })
        };
        self.plain(&format!("{at}.template"), template, &templates.vertices, &place)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
}

fn read_objects(
    path: &Path,
    objects: &Value,
    reader: &Reader<'_>,
    out: &mut Vec<RawObject>,
) -> Result<(), IngestError> {
    let map = objects.as_object().ok_or_else(|| bad(path, "CityObjects", "not an object"))?;
    for (id, o) in map {
        let at = format!("CityObjects[\"{id}\"]");
        let kind = o["type"].as_str().ok_or_else(|| bad(path, &at, "no \"type\""))?.to_owned();
        let mut lods: BTreeMap<String, Vec<Surface>> = BTreeMap::new();
        let mut skipped = Vec::new();
        for (i, g) in o["geometry"].as_array().into_iter().flatten().enumerate() {
            match reader.geometry(&format!("{at}.geometry[{i}]"), g)? {
                Some((lod, surfaces)) => lods.entry(lod).or_default().extend(surfaces),
                None => skipped.push(g["type"].as_str().unwrap_or("?").to_owned()),
            }
        }
        out.push(RawObject {
            id: id.clone(),
            kind,
            attributes: o["attributes"].as_object().cloned().unwrap_or_default(),
            parents: strings(&o["parents"]),
            children: strings(&o["children"]),
            lods,
            skipped_geometries: skipped,
        });
    }
    Ok(())
}

fn read_templates(path: &Path, doc: &Value) -> Result<Option<Templates>, IngestError> {
    let Some(t) = doc.get("geometry-templates") else { return Ok(None) };
    let geometries = t["templates"].as_array().cloned().unwrap_or_default();
    // Template vertices are never quantised by `transform`.
    let vertices = read_vertices(path, "geometry-templates.", t.get("vertices-templates"), None)?.list;
    Ok(Some(Templates { geometries, vertices }))
}

fn header(path: &Path, doc: &Value) -> Result<(String, Option<String>), IngestError> {
    let version = match &doc["version"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(bad(path, "version", "missing; is this CityJSON?")),
    };
    if !["1.0", "1.1", "2.0"].iter().any(|v| version == *v || version.starts_with(&format!("{v}."))) {
        return Err(bad(
            path,
            "version",
            format!("CityJSON {version} is not supported (1.0, 1.1 and 2.0 are)"),
        ));
    }
    let crs = doc["metadata"]["referenceSystem"].as_str().map(|r| epsg_of(r).unwrap_or_else(|| r.to_owned()));
    Ok((version, crs))
}

/// Reads a CityJSON file or a CityJSONSeq stream.
pub fn read_city_file(path: &Path) -> Result<CityFile, IngestError> {
    let file = std::fs::File::open(path).map_err(|e| IngestError::source(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| IngestError::source(path, e))?;
    // CityJSONSeq: a complete CityJSON object on the first line, features after.
    let first_doc: Option<Value> = serde_json::from_str(first.trim()).ok();
    let is_seq = first_doc
        .as_ref()
        .is_some_and(|d| d["type"] == "CityJSON" && d["CityObjects"].as_object().is_some_and(Map::is_empty))
        && path.extension().is_some_and(|e| e == "jsonl");
    if is_seq {
        let doc = first_doc.unwrap_or_default();
        let (version, crs) = header(path, &doc)?;
        let transform = read_transform(path, &doc)?;
        let templates = read_templates(path, &doc)?;
        let mut out = CityFile {
            version,
            crs,
            seq: true,
            has_appearance: doc.get("appearance").is_some(),
            ..Default::default()
        };
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| IngestError::source(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("line {}", n + 2);
            let feature: Value = serde_json::from_str(&line).map_err(|e| bad(path, &at, e))?;
            if feature["type"] != "CityJSONFeature" {
                return Err(bad(path, &at, "not a CityJSONFeature"));
            }
            out.has_appearance |= feature.get("appearance").is_some();
            let vertices = read_vertices(path, &format!("{at}: "), feature.get("vertices"), transform)?;
            let r = Reader { path, vertices: &vertices.list, templates: templates.as_ref() };
            read_objects(path, &feature["CityObjects"], &r, &mut out.objects).map_err(|e| match e {
                IngestError::Source { path, reason } => {
                    IngestError::Source { path, reason: format!("{at}: {reason}") }
                }
                other => other,
            })?;
        }
        return Ok(out);
    }
    let mut text = first;
    std::io::Read::read_to_string(&mut reader, &mut text).map_err(|e| IngestError::source(path, e))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(path, "JSON", e))?;
    if doc["type"] != "CityJSON" {
        return Err(bad(path, "type", "not \"CityJSON\""));
    }
    let (version, crs) = header(path, &doc)?;
    let transform = read_transform(path, &doc)?;
    if transform.is_none() && !version.starts_with("1.0") {
        return Err(bad(path, "transform", format!("CityJSON {version} requires a \"transform\"")));
    }
    let vertices = read_vertices(path, "", doc.get("vertices"), transform)?;
    let templates = read_templates(path, &doc)?;
    let r = Reader { path, vertices: &vertices.list, templates: templates.as_ref() };
    let mut out =
        CityFile { version, crs, has_appearance: doc.get("appearance").is_some(), ..Default::default() };
    read_objects(path, &doc["CityObjects"], &r, &mut out.objects)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crs_names_of_every_version_become_epsg_codes() {
        assert_eq!(epsg_of("urn:ogc:def:crs:EPSG::7415").as_deref(), Some("EPSG:7415"));
        assert_eq!(epsg_of("https://www.opengis.net/def/crs/EPSG/0/7415").as_deref(), Some("EPSG:7415"));
        assert_eq!(epsg_of("EPSG:28992").as_deref(), Some("EPSG:28992"));
        assert_eq!(epsg_of("urn:ogc:def:crs:EPSG:6.9:2056").as_deref(), Some("EPSG:2056"));
        assert_eq!(epsg_of("local"), None);
        assert_eq!(lod_of(&serde_json::json!({"lod": 2})), "2");
        assert_eq!(lod_of(&serde_json::json!({"lod": 1.3})), "1.3");
        assert_eq!(lod_of(&serde_json::json!({"lod": "2.2"})), "2.2");
    }

    #[test]
    fn solids_templates_and_semantics_are_read_with_their_surfaces() {
        let dir = std::env::temp_dir().join(format!("cim-cityjson-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.city.json");
        let doc = serde_json::json!({
            "type": "CityJSON", "version": "2.0",
            "transform": {"scale": [0.01, 0.01, 0.01], "translate": [100.0, 200.0, 0.0]},
            "vertices": [[0,0,0],[100,0,0],[100,100,0],[0,100,0],[0,0,300],[100,0,300],[100,100,300],[0,100,300]],
            "geometry-templates": {"templates": [{"type": "MultiSurface", "lod": "1", "boundaries": [[[0,1,2]]]}],
                                    "vertices-templates": [[0,0,0],[1,0,0],[0,1,0]]},
            "CityObjects": {
                "box": {"type": "Building", "attributes": {"name": "b"}, "children": ["part"],
                        "geometry": [{"type": "Solid", "lod": "1",
                        "boundaries": [[[[0,3,2,1]],[[4,5,6,7]],[[0,1,5,4]]]],
                        "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"}], "values": [[0, 1, null]]}}]},
                "tree": {"type": "SolitaryVegetationObject", "geometry": [{"type": "GeometryInstance", "template": 0,
                         "boundaries": [7], "transformationMatrix": [2,0,0,0, 0,2,0,0, 0,0,2,0, 0,0,0,1]}]},
                "line": {"type": "GenericCityObject", "geometry": [{"type": "MultiLineString", "lod": "0", "boundaries": [[0, 1]]}]}
            }
        });
        std::fs::write(&path, doc.to_string()).expect("write");
        let file = read_city_file(&path).expect("read");
        assert_eq!(file.version, "2.0");
        let by_id = |id: &str| file.objects.iter().find(|o| o.id == id).expect("object");
        let boxed = &by_id("box").lods["1"];
        assert_eq!(boxed.len(), 3);
        assert_eq!(boxed[1].semantic.as_deref(), Some("RoofSurface"));
        assert_eq!(boxed[2].semantic, None);
        assert_eq!(boxed[1].rings[0][0], [100.0, 200.0, 3.0]);
        let tree = &by_id("tree").lods["1"][0].rings[0];
        assert_eq!(tree[1], [102.0, 201.0, 3.0]);
        assert_eq!(by_id("line").skipped_geometries, vec!["MultiLineString"]);
        assert_eq!(by_id("box").children, vec!["part"]);

        let mut broken = doc.clone();
        broken["CityObjects"]["box"]["geometry"][0]["boundaries"][0][1][0][2] = serde_json::json!(99);
        std::fs::write(&path, broken.to_string()).expect("write");
        let e = read_city_file(&path).expect_err("bad index").to_string();
        assert!(
            e.contains("CityObjects[\"box\"].geometry[0].boundaries[0][1]")
                && e.contains("vertex 99 does not exist"),
            "{e}"
        );
        std::fs::write(&path, "{\"type\": \"CityJSON\", \"version\": \"3.0\"}").expect("write");
        assert!(
            read_city_file(&path).expect_err("version").to_string().contains("CityJSON 3.0 is not supported")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

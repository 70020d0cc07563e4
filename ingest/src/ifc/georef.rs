//! Where a model stands: a geodetic anchor and the affine map from the model's
//! world coordinates (metres) into the east-north-up frame at that anchor.
//!
//! Sources, most trusted first: an explicit `--anchor`; `IfcMapConversion` with its
//! `IfcProjectedCRS` (reprojected through PROJ, so grid convergence and scale are
//! honoured); `IfcSite` RefLatitude / RefLongitude / RefElevation with the model
//! context's TrueNorth.

use super::IfcError;
use super::model::IfcModel;
use super::step::StepValue;
use crate::mesh::Affine;

#[derive(Debug, Clone, PartialEq)]
pub struct Georeference {
    /// Longitude, latitude (degrees) and height (metres) of the model's origin.
    pub anchor: [f64; 3],
    /// Model world metres → east, north, up metres at `anchor`.
    pub to_enu: Affine,
    /// Where it came from, for the catalogue and the report.
    pub source: String,
}

/// `--anchor lon,lat,h[,rotation]`: the model origin's position, and the angle in
/// degrees of the model's +x axis counter-clockwise from east.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub lon: f64,
    pub lat: f64,
    pub height: f64,
    pub rotation_deg: f64,
}

impl std::str::FromStr for Anchor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(format!("'{s}': expected lon,lat,height[,rotation]"));
        }
        let number = |i: usize, what: &str| -> Result<f64, String> {
            parts[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{}' is not a {what}", parts[i]))
        };
        let anchor = Anchor {
            lon: number(0, "longitude")?,
            lat: number(1, "latitude")?,
            height: number(2, "height in metres")?,
            rotation_deg: if parts.len() == 4 { number(3, "rotation in degrees")? } else { 0.0 },
        };
        if !(-180.0..=180.0).contains(&anchor.lon) || !(-90.0..=90.0).contains(&anchor.lat) {
            return Err(format!("'{s}': longitude must be within ±180 and latitude within ±90"));
        }
        Ok(anchor)
    }
}

fn rotation(angle: f64) -> Affine {
    let (s, c) = angle.sin_cos();
    Affine { cols: [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], t: [0.0; 3] }
}

/// An `IfcCompoundPlaneAngleMeasure` (degrees, minutes, seconds, millionths) in
/// decimal degrees; every component carries the sign.
pub fn compound_angle(value: &StepValue) -> Option<f64> {
    let parts = value.as_list()?;
    let get = |i: usize| parts.get(i).and_then(StepValue::as_f64).unwrap_or(0.0);
    if parts.is_empty() {
        return None;
    }
    Some(get(0) + get(1) / 60.0 + get(2) / 3600.0 + get(3) / 3.6e9)
}

/// Reprojects map coordinates (easting, northing) in a named CRS to longitude and
/// latitude.
pub type MapProjection<'a> = dyn Fn(&str, &[[f64; 2]]) -> Result<Vec<[f64; 2]>, String> + 'a;

/// Resolves the model's georeference. `project` reprojects map coordinates
/// (easting, northing) in a named CRS to longitude/latitude.
pub fn locate(
    model: &IfcModel,
    anchor: Option<Anchor>,
    project: &MapProjection<'_>,
) -> Result<Georeference, IfcError> {
    if let Some(a) = anchor {
        return Ok(Georeference {
            anchor: [a.lon, a.lat, a.height],
            to_enu: rotation(a.rotation_deg.to_radians()),
            source: format!("--anchor {},{},{},{}", a.lon, a.lat, a.height, a.rotation_deg),
        });
    }
    if let Some(&conversion) = model.ids_of("IFCMAPCONVERSION").first() {
        return map_conversion(model, conversion, project);
    }
    for &site in model.ids_of("IFCSITE") {
        let site = model.get(site)?;
        let lat = compound_angle(model.attribute(site, 9));
        let lon = compound_angle(model.attribute(site, 10));
        if let (Some(lat), Some(lon)) = (lat, lon) {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(IfcError::Georeference(format!(
                    "line {}, #{} (IfcSite): RefLatitude {lat} / RefLongitude {lon} are outside the globe",
                    site.line, site.id
                )));
            }
            let elevation = model.attribute(site, 11).as_f64().unwrap_or(0.0) * model.length_unit;
            return Ok(Georeference {
                anchor: [lon, lat, elevation],
                to_enu: true_north_rotation(model),
                source: format!("IfcSite #{} RefLatitude/RefLongitude/RefElevation", site.id),
            });
        }
    }
    Err(IfcError::Georeference(
        "the model has no IfcMapConversion and its IfcSite no RefLatitude/RefLongitude; pass --anchor lon,lat,height[,rotation]"
            .into(),
    ))
}

/// TrueNorth of the 3D model context: the model direction that points north.
fn true_north_rotation(model: &IfcModel) -> Affine {
    for &id in model.ids_of("IFCGEOMETRICREPRESENTATIONCONTEXT") {
        let Ok(context) = model.get(id) else { continue };
        if model.attribute(context, 1).as_str().is_some_and(|t| !t.eq_ignore_ascii_case("model")) {
            continue;
        }
        let Some(north) = model.follow(context, 5) else { continue };
        let ratios: Vec<f64> =
            model.attribute(north, 0).as_list().unwrap_or(&[]).iter().filter_map(StepValue::as_f64).collect();
        if ratios.len() >= 2 && ratios[0].hypot(ratios[1]) > 1e-12 {
            // North at angle atan2(y, x) in the model; in ENU it is at 90°.
            let angle = std::f64::consts::FRAC_PI_2 - ratios[1].atan2(ratios[0]);
            return rotation(angle);
        }
    }
    Affine::IDENTITY
}

fn map_conversion(model: &IfcModel, id: u64, project: &MapProjection<'_>) -> Result<Georeference, IfcError> {
    let conversion = model.get(id)?;
    let at = |what: &str| format!("line {}, #{} (IfcMapConversion): {what}", conversion.line, conversion.id);
    let crs = model.follow(conversion, 1).ok_or_else(|| IfcError::Georeference(at("no TargetCRS")))?;
    let name = model
        .attribute(crs, 0)
        .as_str()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| IfcError::Georeference(at("its TargetCRS has no Name (e.g. 'EPSG:25832')")))?
        .to_owned();
    let number = |i: usize| model.attribute(conversion, i).as_f64();
    let (eastings, northings) = (number(2).unwrap_or(0.0), number(3).unwrap_or(0.0));
    let height = number(4).unwrap_or(0.0);
    let (a, b) = (number(5).unwrap_or(1.0), number(6).unwrap_or(0.0));
    let length = a.hypot(b);
    if length < 1e-12 {
        return Err(IfcError::Georeference(at("XAxisAbscissa and XAxisOrdinate are both zero")));
    }
    let (a, b) = (a / length, b / length);
    let scale = number(7).unwrap_or(1.0);
    let to_map = |x: f64, y: f64| [eastings + scale * (a * x - b * y), northings + scale * (b * x + a * y)];
    // Three points fix the local affine map, projection distortion included.
    let step = 10.0;
    let lonlat = project(&name, &[to_map(0.0, 0.0), to_map(step, 0.0), to_map(0.0, step)])
        .map_err(|e| IfcError::Georeference(at(&format!("reprojecting from {name}: {e}"))))?;
    let [origin, x, y] = lonlat[..] else {
        return Err(IfcError::Georeference(at("reprojection returned too few points")));
    };
    let frame = cim_core::frame::EnuFrame::at(origin[0], origin[1], height);
    let ex = frame.to_local(x[0], x[1], height);
    let ey = frame.to_local(y[0], y[1], height);
    Ok(Georeference {
        anchor: [origin[0], origin[1], height],
        to_enu: Affine {
            cols: [[ex[0] / step, ex[1] / step, 0.0], [ey[0] / step, ey[1] / step, 0.0], [0.0, 0.0, 1.0]],
            t: [0.0; 3],
        },
        source: format!("IfcMapConversion #{id} to {name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_parse_and_bad_ones_are_named() {
        let a: Anchor = "8.43,49.1,110,30".parse().expect("anchor");
        assert_eq!((a.lon, a.lat, a.height, a.rotation_deg), (8.43, 49.1, 110.0, 30.0));
        assert_eq!("8.43, 49.1, 110".parse::<Anchor>().map(|a| a.rotation_deg), Ok(0.0));
        assert!("8.43,49.1".parse::<Anchor>().expect_err("short").contains("lon,lat,height"));
        assert!("x,49.1,0".parse::<Anchor>().expect_err("x").contains("'x' is not a longitude"));
        assert!("200,49.1,0".parse::<Anchor>().is_err());
    }

    #[test]
    fn compound_angles_keep_their_sign() {
        let v = |p: &[i64]| StepValue::List(p.iter().map(|&i| StepValue::Integer(i)).collect());
        let north = compound_angle(&v(&[49, 6, 1, 566_000])).expect("angle");
        assert!((north - (49.0 + 6.0 / 60.0 + 1.566 / 3600.0)).abs() < 1e-12);
        let west = compound_angle(&v(&[-87, -38, -21, -839_999])).expect("angle");
        assert!((west + 87.639_399_999_7).abs() < 1e-9, "{west}");
    }

    #[test]
    fn rotation_turns_model_x_by_the_angle() {
        let r = rotation(90f64.to_radians());
        let p = r.apply([1.0, 0.0, 0.0]);
        assert!(p[0].abs() < 1e-12 && (p[1] - 1.0).abs() < 1e-12, "{p:?}");
    }
}

//! A DEM in memory: one band as f32 with no data as NaN, its geotransform, and a
//! mean pyramid that coarse terrain levels sample from (so they average the
//! ground rather than alias it).

use std::path::Path;

use crate::IngestError;

/// One raster level; pixel `(col, row)` covers `[col, col + 1) × [row, row + 1)` of
/// the geotransform's pixel space.
#[derive(Debug, Clone)]
pub struct Grid {
    pub width: usize,
    pub height: usize,
    /// GDAL geotransform: `x = g0 + col·g1 + row·g2`, `y = g3 + col·g4 + row·g5`.
    pub geo: [f64; 6],
    pub values: Vec<f32>,
}

impl Grid {
    /// Continuous pixel coordinates of a source-CRS position.
    pub fn pixel_of(&self, x: f64, y: f64) -> (f64, f64) {
        let g = self.geo;
        let det = g[1] * g[5] - g[2] * g[4];
        let (dx, dy) = (x - g[0], y - g[3]);
        ((g[5] * dx - g[2] * dy) / det, (-g[4] * dx + g[1] * dy) / det)
    }

    /// Source-CRS position of a pixel's centre.
    pub fn centre_of(&self, col: usize, row: usize) -> (f64, f64) {
        let (c, r) = (col as f64 + 0.5, row as f64 + 0.5);
        let g = self.geo;
        (g[0] + c * g[1] + r * g[2], g[3] + c * g[4] + r * g[5])
    }

    pub fn value(&self, col: usize, row: usize) -> f32 {
        self.values[row * self.width + col]
    }

    /// Bilinear between pixel centres, skipping pixels of no data; NaN where the
    /// nearest pixel has no data or more than one pixel outside the raster. (The
    /// edge pixels reach one pixel out so that a mesh whose samples do not line up
    /// with the pixels still covers every pixel centre.)
    pub fn sample(&self, x: f64, y: f64) -> f64 {
        let (px, py) = self.pixel_of(x, y);
        let (w, h) = (self.width, self.height);
        if !(px >= -1.0 && py >= -1.0 && px <= w as f64 + 1.0 && py <= h as f64 + 1.0) {
            return f64::NAN;
        }
        let nearest_col = (px.floor().max(0.0) as usize).min(w - 1);
        let nearest_row = (py.floor().max(0.0) as usize).min(h - 1);
        if self.value(nearest_col, nearest_row).is_nan() {
            return f64::NAN;
        }
        let u = (px - 0.5).clamp(0.0, (w - 1) as f64);
        let v = (py - 0.5).clamp(0.0, (h - 1) as f64);
        let (c0, r0) = (u.floor() as usize, v.floor() as usize);
        let (c1, r1) = ((c0 + 1).min(w - 1), (r0 + 1).min(h - 1));
        let (fu, fv) = (u - c0 as f64, v - r0 as f64);
        let mut sum = 0.0;
        let mut weight = 0.0;
        for (c, r, wt) in [
            (c0, r0, (1.0 - fu) * (1.0 - fv)),
            (c1, r0, fu * (1.0 - fv)),
            (c0, r1, (1.0 - fu) * fv),
            (c1, r1, fu * fv),
        ] {
            let value = self.value(c, r);
            if !value.is_nan() && wt > 0.0 {
                sum += f64::from(value) * wt;
                weight += wt;
            }
        }
        if weight > 0.0 { sum / weight } else { f64::from(self.value(nearest_col, nearest_row)) }
    }

    /// Half the resolution: each pixel the mean of the valid ones of its 2×2 block.
    pub fn halve(&self) -> Grid {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut values = Vec::with_capacity(w * h);
        for row in 0..h {
            for col in 0..w {
                let mut sum = 0.0f64;
                let mut n = 0u32;
                for (c, r) in [
                    (2 * col, 2 * row),
                    (2 * col + 1, 2 * row),
                    (2 * col, 2 * row + 1),
                    (2 * col + 1, 2 * row + 1),
                ] {
                    if c < self.width && r < self.height {
                        let value = self.value(c, r);
                        if !value.is_nan() {
                            sum += f64::from(value);
                            n += 1;
                        }
                    }
                }
                values.push(if n == 0 { f32::NAN } else { (sum / f64::from(n)) as f32 });
            }
        }
        let g = self.geo;
        Grid {
            width: w,
            height: h,
            geo: [g[0], g[1] * 2.0, g[2] * 2.0, g[3], g[4] * 2.0, g[5] * 2.0],
            values,
        }
    }
}

/// A DEM as read from its file.
pub struct Dem {
    pub grid: Grid,
    pub nodata: Option<f64>,
    /// The raster's CRS as WKT, if it declares one.
    pub crs_wkt: Option<String>,
    pub driver: String,
    pub data_type: String,
}

/// Refuses a picture: a raster whose first band is a colour (red, palette, ...) holds
/// colours, not heights, and its red channel would become a landscape.
fn refuse_images(path: &Path, dataset: &gdal::Dataset) -> Result<(), IngestError> {
    use gdal::raster::ColorInterpretation as C;
    let interp = |i: usize| dataset.rasterband(i).ok().map(|b| b.color_interpretation());
    let colour = |c: &C| !matches!(c, C::Undefined | C::GrayIndex);
    if !interp(1).as_ref().is_some_and(colour) {
        return Ok(());
    }
    let bands: Vec<String> = (1..=dataset.raster_count())
        .filter_map(|i| {
            let band = dataset.rasterband(i).ok()?;
            let kind = format!("{:?}", band.color_interpretation()).trim_end_matches("Band").to_lowercase();
            Some(format!("band {i} {kind} ({})", band.band_type().name()))
        })
        .collect();
    Err(IngestError::source(
        path,
        format!(
            "an image, not a DEM: {}; terrain takes one band of heights (ingest imagery as imagery)",
            bands.join(", ")
        ),
    ))
}

/// Reads band 1 of a GDAL raster.
pub fn read_dem(path: &Path) -> Result<Dem, IngestError> {
    let dataset = gdal::Dataset::open(path)
        .map_err(|e| IngestError::source(path, format!("not a raster GDAL can open: {e}")))?;
    if dataset.raster_count() < 1 {
        return Err(IngestError::source(path, "the file has no raster band"));
    }
    let geo = dataset.geo_transform().map_err(|e| {
        IngestError::source(path, format!("the raster has no geotransform, so it cannot be placed: {e}"))
    })?;
    if geo[1] == 0.0 || geo[5] == 0.0 || (geo[1] * geo[5] - geo[2] * geo[4]).abs() < f64::MIN_POSITIVE {
        return Err(IngestError::source(path, format!("degenerate geotransform {geo:?}")));
    }
    let band = dataset.rasterband(1).map_err(|e| IngestError::source(path, e))?;
    refuse_images(path, &dataset)?;
    let (width, height) = dataset.raster_size();
    if width == 0 || height == 0 {
        return Err(IngestError::source(path, "the raster is empty"));
    }
    let pixels = width.checked_mul(height).filter(|&n| n <= 1 << 31).ok_or_else(|| {
        IngestError::source(
            path,
            format!("{width}×{height} pixels exceed this reader's 2^31 limit; tile the DEM first"),
        )
    })?;
    let nodata = band.no_data_value();
    let scale = band.scale().unwrap_or(1.0);
    let offset = band.offset().unwrap_or(0.0);
    let data_type = format!("{:?}", band.band_type());
    let buffer = band
        .read_as::<f64>((0, 0), (width, height), (width, height), None)
        .map_err(|e| IngestError::source(path, format!("reading band 1: {e}")))?;
    let (_, data) = buffer.into_shape_and_vec();
    if data.len() != pixels {
        return Err(IngestError::source(path, "band 1 returned fewer pixels than the raster has"));
    }
    let values = data
        .into_iter()
        .map(|v| {
            let no = nodata.is_some_and(|n| v == n || (n.is_nan() && v.is_nan()));
            if no || !v.is_finite() { f32::NAN } else { (v * scale + offset) as f32 }
        })
        .collect();
    let crs_wkt = dataset.spatial_ref().ok().and_then(|s| s.to_wkt().ok()).filter(|w| !w.is_empty());
    Ok(Dem {
        grid: Grid { width, height, geo, values },
        nodata,
        crs_wkt,
        driver: dataset.driver().short_name(),
        data_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(values: Vec<f32>, width: usize) -> Grid {
        let height = values.len() / width;
        Grid { width, height, geo: [1000.0, 10.0, 0.0, 2000.0, 0.0, -10.0], values }
    }

    #[test]
    fn samples_hit_pixel_centres_exactly_and_interpolate_between_them() {
        let g = grid(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3);
        let (x, y) = g.centre_of(1, 1);
        assert_eq!((x, y), (1015.0, 1985.0));
        assert_eq!(g.sample(x, y), 5.0);
        assert_eq!(g.sample(1010.0, 1985.0), 4.5);
        assert_eq!(g.sample(1010.0, 1990.0), 3.0);
        assert!(g.sample(989.0, 1990.0).is_nan());
        // In the outer half pixel, and one pixel beyond, the edge value holds.
        assert_eq!(g.sample(1001.0, 1999.0), 1.0);
        assert_eq!(g.sample(995.0, 2005.0), 1.0);
    }

    #[test]
    fn no_data_is_skipped_not_averaged_in() {
        let n = f32::NAN;
        let g = grid(vec![10.0, n, 10.0, 10.0], 2);
        assert!(g.sample(1015.0, 1995.0).is_nan(), "nearest pixel has no data");
        assert_eq!(g.sample(1009.0, 1991.0), 10.0);
        let half = g.halve();
        assert_eq!((half.width, half.height, half.values[0]), (1, 1, 10.0));
        assert_eq!(half.geo[1], 20.0);
        assert!(grid(vec![n, n, n, n], 2).halve().values[0].is_nan());
    }
}

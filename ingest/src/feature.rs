//! What the vector kind keeps in memory of each feature between reading and tiling:
//! where its record lies in the spill file ([`crate::spill`]) and what the stages
//! decide on without reading it (box, rank, height). About 100 bytes a feature.

use geo::{BoundingRect, MapCoords};
use geo_types::Geometry;
use serde_json::{Map, Value};

use crate::IngestError;
use crate::spill::{Span, SpillWriter, TilePart};

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// The source's id until ids are assigned, then the feature's id in the layer.
    pub fid: u64,
    /// Whether the source gave an id (the first of a repeated one keeps it).
    pub source_fid: bool,
    pub span: Span,
    /// Box of the geometry tiles show (coarsened where the layer says), degrees:
    /// `[west, south, east, north]`.
    pub bbox: [f64; 4],
    /// What ranks the feature in a tile over its budget: area in Web Mercator square
    /// metres, else length in metres, 0 for points.
    pub rank: f64,
    /// Positions in its tile geometry.
    pub vertices: u32,
    /// Bytes of its attributes as tiles show them.
    pub attribute_bytes: u32,
    pub shape: Shape,
    pub building: Option<Extrusion>,
}

/// What a one-pixel stand-in of the feature looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Point,
    Line,
    Area,
}

impl Shape {
    pub fn of(g: &Geometry<f64>) -> Self {
        match g {
            Geometry::Polygon(_) | Geometry::MultiPolygon(_) | Geometry::Rect(_) | Geometry::Triangle(_) => {
                Self::Area
            }
            Geometry::LineString(_) | Geometry::MultiLineString(_) | Geometry::Line(_) => Self::Line,
            _ => Self::Point,
        }
    }
}

/// A cleaned feature on its way to the spill file.
pub struct Incoming<'a> {
    /// The source's id, if it gave one.
    pub fid: Option<u64>,
    /// The geometry tiles show, degrees.
    pub tile: TilePart,
    /// The exact geometry where it differs from the tiles' (a coarsened layer).
    pub exact: Option<&'a Geometry<f64>>,
    /// Every attribute, for the feature store.
    pub properties: &'a Map<String, Value>,
    pub building: Option<Extrusion>,
}

impl Incoming<'_> {
    /// Writes the feature's record and returns what stays in memory of it; `None`
    /// for a geometry without positions.
    pub fn spill(self, out: &mut SpillWriter) -> Result<Option<Summary>, IngestError> {
        let Some(r) = self.tile.geometry.bounding_rect() else { return Ok(None) };
        let mercator = self.tile.geometry.map_coords(|c| {
            let (x, y) = cim_core::tile::lonlat_to_mercator(c.x, c.y);
            geo_types::Coord { x, y }
        });
        let attribute_bytes = self
            .tile
            .properties
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        cim_core::mvt::PropertyValue::String(s) => s.len(),
                        _ => 8,
                    }
            })
            .sum::<usize>();
        let span = out.push(&self.tile, self.exact, self.properties)?;
        Ok(Some(Summary {
            fid: self.fid.unwrap_or(0),
            source_fid: self.fid.is_some(),
            span,
            bbox: [r.min().x, r.min().y, r.max().x, r.max().y],
            rank: crate::mvt_tiles::rank(&mercator),
            vertices: u32::try_from(geo::CoordsIter::coords_count(&self.tile.geometry)).unwrap_or(u32::MAX),
            attribute_bytes: u32::try_from(attribute_bytes).unwrap_or(u32::MAX),
            shape: Shape::of(&self.tile.geometry),
            building: self.building,
        }))
    }
}

/// A footprint that becomes a 3D building.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extrusion {
    /// Metres from floor to roof.
    pub height: f64,
    /// Height of the floor: the lowest ground under the footprint when the ingest is
    /// given a terrain layer (`--ground`), else 0.
    pub base: f64,
}

impl Summary {
    pub fn centre(&self) -> [f64; 2] {
        [(self.bbox[0] + self.bbox[2]) / 2.0, (self.bbox[1] + self.bbox[3]) / 2.0]
    }

    /// The box in Web Mercator metres.
    pub fn mercator_box(&self) -> [f64; 4] {
        let (x0, y0) = cim_core::tile::lonlat_to_mercator(self.bbox[0], self.bbox[1]);
        let (x1, y1) = cim_core::tile::lonlat_to_mercator(self.bbox[2], self.bbox[3]);
        [x0, y0, x1, y1]
    }
}

//! What a survey drop is, from its first bytes and its name.
//!
//! The ingest dispatches by extension and signature; the server receives uploads
//! whose names may be missing or wrong. Both agree here on the formats a drop can be,
//! the extension each goes by, and how each announces itself in its first bytes, so
//! an upload named `roads.las` holding GeoJSON is refused at the door rather than
//! failing deep in the LAS reader.

/// A format the ingest reads, as far as its first bytes or its name tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropFormat {
    GeoJson,
    CityJson,
    CityJsonSeq,
    FlatGeobuf,
    GeoPackage,
    Shapefile,
    OsmPbf,
    OsmXml,
    Kml,
    Gml,
    Csv,
    Las,
    Laz,
    Ifc,
    GeoTiff,
    AsciiGrid,
    /// Another raster GDAL reads, known by its extension only (`.hgt`, `.img`, `.vrt`,
    /// `.bil`, `.flt`, `.bt`, `.nc`, `.jp2`, `.dem`).
    OtherRaster,
    /// A zip archive holding a Shapefile (its .shp, .dbf, ... parts) or a GeoPackage.
    Zip,
}

/// Bytes enough for [`sniff`] to decide.
pub const SNIFF_BYTES: usize = 4096;

impl DropFormat {
    /// The extension the ingest recognises this format by.
    pub fn extension(self) -> &'static str {
        match self {
            Self::GeoJson => "geojson",
            Self::CityJson => "city.json",
            Self::CityJsonSeq => "city.jsonl",
            Self::FlatGeobuf => "fgb",
            Self::GeoPackage => "gpkg",
            Self::Shapefile => "shp",
            Self::OsmPbf => "osm.pbf",
            Self::OsmXml => "osm",
            Self::Kml => "kml",
            Self::Gml => "gml",
            Self::Csv => "csv",
            Self::Las => "las",
            Self::Laz => "laz",
            Self::Ifc => "ifc",
            Self::GeoTiff => "tif",
            Self::AsciiGrid => "asc",
            Self::OtherRaster => "img",
            Self::Zip => "zip",
        }
    }

    /// A name for people and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::GeoJson => "GeoJSON",
            Self::CityJson => "CityJSON",
            Self::CityJsonSeq => "CityJSONSeq",
            Self::FlatGeobuf => "FlatGeobuf",
            Self::GeoPackage => "GeoPackage",
            Self::Shapefile => "Shapefile",
            Self::OsmPbf => "OpenStreetMap PBF",
            Self::OsmXml => "OpenStreetMap XML",
            Self::Kml => "KML",
            Self::Gml => "GML",
            Self::Csv => "CSV",
            Self::Las => "LAS",
            Self::Laz => "LAZ",
            Self::Ifc => "IFC (STEP)",
            Self::GeoTiff => "GeoTIFF",
            Self::AsciiGrid => "ESRI ASCII grid",
            Self::OtherRaster => "GDAL raster",
            Self::Zip => "zipped Shapefile or GeoPackage",
        }
    }

    /// The format a file name's extension claims, if any. `.json` claims nothing on
    /// its own: it is GeoJSON or CityJSON by content.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let ends = |suffix: &str| lower.ends_with(&format!(".{suffix}"));
        Some(if ends("city.json") || ends("cityjson") {
            Self::CityJson
        } else if ends("city.jsonl") {
            Self::CityJsonSeq
        } else if ends("geojson") || ends("geojsonl") || ends("geojsons") {
            Self::GeoJson
        } else if ends("fgb") {
            Self::FlatGeobuf
        } else if ends("gpkg") {
            Self::GeoPackage
        } else if ends("shp") {
            Self::Shapefile
        } else if ends("osm.pbf") || ends("pbf") {
            Self::OsmPbf
        } else if ends("osm") {
            Self::OsmXml
        } else if ends("kml") {
            Self::Kml
        } else if ends("gml") {
            Self::Gml
        } else if ends("csv") {
            Self::Csv
        } else if ends("las") {
            Self::Las
        } else if ends("laz") {
            Self::Laz
        } else if ends("ifc") {
            Self::Ifc
        } else if ends("tif") || ends("tiff") {
            Self::GeoTiff
        } else if ends("asc") {
            Self::AsciiGrid
        } else if ["dem", "hgt", "img", "vrt", "bil", "flt", "bt", "nc", "jp2"].iter().any(|e| ends(e)) {
            Self::OtherRaster
        } else if ends("zip") {
            Self::Zip
        } else {
            return None;
        })
    }

    /// Whether a file named as `claimed` may hold this content. A LAS name on LAZ
    /// content (and the reverse) is tolerated: the reader takes both; so is one
    /// raster name on another raster's content (GDAL reads by content).
    pub fn agrees_with(self, claimed: Self) -> bool {
        let family = |f: Self| match f {
            Self::Las | Self::Laz => 1,
            Self::GeoJson => 2,
            Self::GeoTiff | Self::AsciiGrid | Self::OtherRaster => 3,
            other => 100 + other as u8,
        };
        family(self) == family(claimed)
    }
}

/// The format the first bytes of a file announce, when they announce one.
/// Text formats without a signature (CSV, GML without a root we know) give `None`.
pub fn sniff(head: &[u8]) -> Option<DropFormat> {
    if head.starts_with(b"PK\x03\x04") {
        return zipped_gis(head).then_some(DropFormat::Zip);
    }
    if head.starts_with(b"fgb") && head.len() >= 4 {
        return Some(DropFormat::FlatGeobuf);
    }
    if head.starts_with(b"LASF") {
        // The point data record format (byte 104) carries the compression bits.
        let compressed = head.get(104).is_some_and(|id| id & 0xC0 != 0);
        return Some(if compressed { DropFormat::Laz } else { DropFormat::Las });
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Some(DropFormat::GeoPackage);
    }
    if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|m| head.starts_with(*m)) {
        return Some(DropFormat::GeoTiff);
    }
    if head.starts_with(&[0x00, 0x00, 0x27, 0x0A]) {
        return Some(DropFormat::Shapefile);
    }
    // An OSM PBF file opens with a 4-byte length and a BlobHeader of type "OSMHeader".
    if head.len() > 8 && head[0] == 0 && head[1] == 0 {
        let window = &head[4..head.len().min(32)];
        if window.windows(9).any(|w| w == b"OSMHeader") {
            return Some(DropFormat::OsmPbf);
        }
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(SNIFF_BYTES)]);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("ISO-10303-21") {
        return Some(DropFormat::Ifc);
    }
    if text.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("ncols")) {
        return Some(DropFormat::AsciiGrid);
    }
    if text.starts_with('<') {
        let lower = text.to_ascii_lowercase();
        return if lower.contains("<kml") {
            Some(DropFormat::Kml)
        } else if lower.contains("<osm") {
            Some(DropFormat::OsmXml)
        } else if lower.contains("gml") {
            Some(DropFormat::Gml)
        } else {
            None
        };
    }
    if text.starts_with('{') {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let first_line = text.lines().next().unwrap_or_default();
        let first_compact: String = first_line.chars().filter(|c| !c.is_whitespace()).collect();
        if first_compact.contains("\"type\":\"CityJSON\"") && text.lines().nth(1).is_some() {
            // A CityJSON file is one document; a sequence starts with a one-line
            // header followed by CityJSONFeature lines.
            if text.lines().nth(1).is_some_and(|l| l.contains("CityJSONFeature")) {
                return Some(DropFormat::CityJsonSeq);
            }
        }
        if compact.contains("\"type\":\"CityJSON\"") || compact.starts_with("{\"CityObjects\"") {
            return Some(DropFormat::CityJson);
        }
        if compact.contains("\"type\":\"FeatureCollection\"")
            || compact.contains("\"type\":\"Feature\"")
            || compact.contains("\"features\":[")
        {
            return Some(DropFormat::GeoJson);
        }
    }
    None
}

/// Whether the local file headers at the start of a zip name a Shapefile's parts
/// or a GeoPackage (a zip of anything else is not a drop we read).
fn zipped_gis(head: &[u8]) -> bool {
    let mut at = 0usize;
    // Entries follow each other when their sizes are in the local headers; a
    // streamed entry (sizes in a trailing descriptor) ends the walk.
    for _ in 0..16 {
        let Some(entry) = head.get(at..at + 30).filter(|h| h.starts_with(b"PK\x03\x04")) else { break };
        let u16_at = |o: usize| usize::from(u16::from_le_bytes([entry[o], entry[o + 1]]));
        let u32_at =
            |o: usize| u32::from_le_bytes([entry[o], entry[o + 1], entry[o + 2], entry[o + 3]]) as usize;
        let (name_len, extra_len, size) = (u16_at(26), u16_at(28), u32_at(18));
        let Some(name) = head.get(at + 30..at + 30 + name_len) else { break };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if [".shp", ".shx", ".dbf", ".prj", ".cpg", ".gpkg"].iter().any(|e| name.ends_with(e)) {
            return true;
        }
        let streamed = u16_at(6) & 0x08 != 0;
        if streamed {
            break;
        }
        at = at.saturating_add(30 + name_len + extra_len).saturating_add(size);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_their_formats() {
        let mut las = b"LASF".to_vec();
        las.resize(227, 0);
        las[104] = 3;
        assert_eq!(sniff(&las), Some(DropFormat::Las));
        las[104] = 3 | 0x80;
        assert_eq!(sniff(&las), Some(DropFormat::Laz));
        assert_eq!(sniff(b"fgb\x03fgb\x00"), Some(DropFormat::FlatGeobuf));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(DropFormat::GeoTiff));
        assert_eq!(sniff(b"\xef\xbb\xbf ISO-10303-21;\nHEADER;"), Some(DropFormat::Ifc));
        assert_eq!(sniff(b"ncols 10\nnrows 4\n"), Some(DropFormat::AsciiGrid));
        assert_eq!(
            sniff(b"{ \"type\" : \"FeatureCollection\", \"features\": []}"),
            Some(DropFormat::GeoJson)
        );
        assert_eq!(
            sniff(b"{\"type\":\"CityJSON\",\"version\":\"2.0\",\n\"CityObjects\":{}}"),
            Some(DropFormat::CityJson)
        );
        assert_eq!(
            sniff(b"{\"type\":\"CityJSON\",\"version\":\"2.0\",\"CityObjects\":{}}\n{\"type\":\"CityJSONFeature\"}\n"),
            Some(DropFormat::CityJsonSeq)
        );
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><kml xmlns=\"x\">"), Some(DropFormat::Kml));
        let mut pbf = vec![0, 0, 0, 13, 10, 9];
        pbf.extend_from_slice(b"OSMHeader");
        pbf.extend_from_slice(&[24, 100]);
        assert_eq!(sniff(&pbf), Some(DropFormat::OsmPbf));
        assert_eq!(sniff(b"id,name,wkt\n1,a,POINT(1 2)\n"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"{"), None);
        // Found by the tiles_decode fuzz target: not UTF-8, so the lossy text's fifth
        // byte falls inside a replacement character.
        assert_eq!(sniff(b"\xca\xd2"), None);
        // Zips: by the names of their first entries.
        let entry = |name: &str, data: &[u8]| {
            let mut e = b"PK\x03\x04".to_vec();
            e.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            e.extend_from_slice(&(data.len() as u32).to_le_bytes());
            e.extend_from_slice(&(data.len() as u32).to_le_bytes());
            e.extend_from_slice(&(name.len() as u16).to_le_bytes());
            e.extend_from_slice(&0u16.to_le_bytes());
            e.extend_from_slice(name.as_bytes());
            e.extend_from_slice(data);
            e
        };
        let mut shapes = entry("roads/README.txt", b"hello");
        shapes.extend(entry("roads/roads.DBF", b"x"));
        assert_eq!(sniff(&shapes), Some(DropFormat::Zip));
        assert_eq!(sniff(&entry("city.gpkg", b"SQLite")), Some(DropFormat::Zip));
        assert_eq!(sniff(&entry("photo.jpg", b"\xff\xd8")), None);
        assert_eq!(sniff(b"PK\x03\x04\xff"), None, "a truncated header");
    }

    #[test]
    fn names_and_contents_agree_or_not() {
        assert_eq!(DropFormat::from_name("a.CITY.json"), Some(DropFormat::CityJson));
        assert_eq!(DropFormat::from_name("roads.json"), None);
        assert_eq!(DropFormat::from_name("x.osm.pbf"), Some(DropFormat::OsmPbf));
        assert!(DropFormat::Laz.agrees_with(DropFormat::Las));
        assert!(!DropFormat::GeoJson.agrees_with(DropFormat::Las));
        assert!(!DropFormat::CityJson.agrees_with(DropFormat::GeoJson));
        assert_eq!(DropFormat::from_name("N60E024.hgt"), Some(DropFormat::OtherRaster));
        assert!(DropFormat::GeoTiff.agrees_with(DropFormat::OtherRaster));
        assert!(!DropFormat::GeoTiff.agrees_with(DropFormat::Las));
        for f in [DropFormat::Las, DropFormat::CityJsonSeq, DropFormat::OsmPbf, DropFormat::GeoTiff] {
            assert_eq!(DropFormat::from_name(&format!("x.{}", f.extension())), Some(f));
        }
    }
}

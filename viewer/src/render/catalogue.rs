//! The server's catalogue (`/api/layers`): which layers exist, their extent, and
//! whether they have 3D tiles and vector tiles. It also fixes the render frame's
//! origin at the first layer's centre.

use bevy::prelude::*;

use super::platform::{Pending, fetch_then};
use super::{Problems, RenderFrame, ViewerOptions};

pub struct CataloguePlugin;

impl Plugin for CataloguePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Catalogue>()
            .add_systems(Startup, request_catalogue)
            .add_systems(PreUpdate, receive_catalogue);
    }
}

/// One layer as the viewer needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub id: String,
    /// `[west, south, east, north]`, degrees.
    pub bounds: Option<[f64; 4]>,
    /// Absolute URL of the 3D Tiles `tileset.json`, if the layer has buildings.
    pub tileset: Option<String>,
    /// Absolute URL of the TileJSON, if the layer has vector tiles.
    pub tilejson: Option<String>,
    /// BIM layers: storey names bottom to top, with the absolute URL of each one's
    /// content.
    pub storeys: Vec<(String, String)>,
    /// A point cloud: its tiles hold `POINTS` and draw with the point material.
    pub points: bool,
    /// The catalogue's `kind` (`vector`, `terrain`, `city_model`, ...).
    pub kind: String,
}

impl LayerInfo {
    /// What the layer's 3D tiles are, as the layer panel and `--hide` name them.
    pub fn tiles_part(&self) -> &'static str {
        match self.kind.as_str() {
            "point_cloud" => "points",
            "terrain" => "terrain",
            "city_model" => "city objects",
            _ => "buildings",
        }
    }
}

#[derive(Resource, Default)]
pub struct Catalogue {
    pending: Option<Pending<Vec<LayerInfo>>>,
    /// Set once the catalogue answered (or failed).
    pub loaded: bool,
    /// The server answered the catalogue request.
    pub reachable: bool,
    pub layers: Vec<LayerInfo>,
}

/// Reads `/api/layers`; `only` keeps the named layers.
pub fn parse_layers(json: &[u8], base: &str, only: Option<&[String]>) -> Result<Vec<LayerInfo>, String> {
    let layers: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("catalogue: {e}"))?;
    let list = layers.as_array().ok_or("catalogue: not a JSON array")?;
    Ok(list
        .iter()
        .filter_map(|l| {
            let id = l["id"].as_str()?.to_owned();
            // The live sensor layer streams over /api/live (render/sensors.rs), not as tiles.
            if l["kind"] == "sensors" {
                return None;
            }
            if only.is_some_and(|o| !o.contains(&id)) {
                return None;
            }
            let bounds = l["bounds_wgs84"].as_array().and_then(|b| {
                let v: Vec<f64> = b.iter().filter_map(serde_json::Value::as_f64).collect();
                <[f64; 4]>::try_from(v).ok()
            });
            let storeys = l["bim"]["storeys"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|s| {
                            let content = s["content"].as_str()?;
                            Some((
                                s["name"].as_str().unwrap_or("").to_owned(),
                                format!("{base}/3dtiles/{id}/{}", content.trim_start_matches("3dtiles/")),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(LayerInfo {
                storeys,
                points: l["kind"] == "point_cloud",
                kind: l["kind"].as_str().unwrap_or("vector").to_owned(),
                bounds,
                tileset: l["tileset"].is_string().then(|| format!("{base}/3dtiles/{id}/tileset.json")),
                tilejson: l["mvt_archive"].is_string().then(|| format!("{base}/tiles/{id}.json")),
                id,
            })
        })
        .collect())
}

fn request_catalogue(options: Res<ViewerOptions>, mut catalogue: ResMut<Catalogue>) {
    let base = options.server.trim_end_matches('/').to_owned();
    let only = options.layers.clone();
    let url = format!("{base}/api/layers");
    catalogue.pending = Some(fetch_then(url, move |bytes| parse_layers(&bytes, &base, only.as_deref())));
}

fn receive_catalogue(
    mut commands: Commands,
    mut catalogue: ResMut<Catalogue>,
    mut problems: ResMut<Problems>,
    frame: Option<Res<RenderFrame>>,
) {
    let Some(result) = catalogue.pending.as_ref().and_then(Pending::take) else { return };
    catalogue.pending = None;
    catalogue.loaded = true;
    match result {
        Err(e) => problems.report(format!("server unreachable: {e}")),
        Ok(layers) => {
            catalogue.reachable = true;
            if layers.is_empty() {
                problems.report("the server has no layers (or none of --layers)".into());
            }
            if frame.is_none()
                && let Some([w, s, e, n]) = layers.iter().find_map(|l| l.bounds)
            {
                commands.insert_resource(RenderFrame::at((w + e) / 2.0, (s + n) / 2.0));
            }
            catalogue.layers = layers;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_layers_the_server_lists() {
        let json = br#"[
            {"id":"city","bounds_wgs84":[24.9,60.1,25.0,60.2],"tileset":"3dtiles/tileset.json","mvt_archive":"tiles.pmtiles"},
            {"id":"roads","bounds_wgs84":[1,2,3],"mvt_archive":"tiles.pmtiles"},
            {"no_id":true},
            {"id":"sensors","kind":"sensors","bounds_wgs84":[0,0,1,1],"features":"/collections/sensors/items"},
            {"id":"house","kind":"bim","tileset":"3dtiles/tileset.json","bim":{"storeys":[
                {"name":"EG","content":"3dtiles/content/m0_s1.glb"},{"name":"OG","content":"3dtiles/content/m0_s2.glb"}]}},
            {"id":"survey","kind":"point_cloud","bounds_wgs84":[0,0,1,1],"tileset":"3dtiles/tileset.json"}
        ]"#;
        let layers = parse_layers(json, "http://h", None).expect("parses");
        assert_eq!(layers.len(), 4, "the live sensor layer is not streamed as tiles");
        assert_eq!(layers.iter().map(|l| l.points).collect::<Vec<_>>(), [false, false, false, true]);
        assert_eq!(
            layers[2].storeys[1],
            ("OG".to_owned(), "http://h/3dtiles/house/content/m0_s2.glb".to_owned())
        );
        assert_eq!(layers[0].bounds, Some([24.9, 60.1, 25.0, 60.2]));
        assert_eq!(layers[0].tileset.as_deref(), Some("http://h/3dtiles/city/tileset.json"));
        assert_eq!(layers[0].tilejson.as_deref(), Some("http://h/tiles/city.json"));
        assert_eq!((layers[1].bounds, layers[1].tileset.is_none()), (None, true));
        let only = parse_layers(json, "http://h", Some(&["roads".to_owned()])).expect("parses");
        assert_eq!(only.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["roads"]);
        assert!(parse_layers(b"{}", "http://h", None).is_err());
    }
}

//! On-screen readout (FPS, tiles drawn / loaded / in flight, tile memory, errors) and
//! the attribute panel of the picked building, fetched from the feature API.

use bevy::prelude::*;

use super::ViewerOptions;
use super::params::StreamStatus;
use super::pick::Picked;
use super::platform::{Pending, fetch_then};

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Attributes>()
            .add_systems(Startup, spawn_hud)
            .add_systems(Update, (fetch_attributes, update_hud).chain());
    }
}

#[derive(Component)]
struct Readout;

#[derive(Component)]
struct AttributePanel;

/// The picked building's attributes, as the feature API returns them.
#[derive(Resource, Default)]
pub struct Attributes {
    shown_for: Option<(String, u64)>,
    pending: Option<Pending<Vec<(String, String)>>>,
    lines: Vec<(String, String)>,
}

impl Attributes {
    /// True once the picked building's attributes are on screen (or nothing is picked).
    pub fn settled(&self, picked: &Picked) -> bool {
        picked.0.is_none() || (self.shown_for == picked.0 && self.pending.is_none() && !self.lines.is_empty())
    }
}

fn panel(text: &str) -> impl Bundle {
    (
        Text::new(text),
        super::fonts::ui_font(14.0),
        TextColor(Color::WHITE),
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
    )
}

fn spawn_hud(mut commands: Commands) {
    commands.spawn((
        panel(""),
        Node { position_type: PositionType::Absolute, top: px(6), left: px(6), ..default() },
        Readout,
    ));
    commands.spawn((
        panel(""),
        Node {
            position_type: PositionType::Absolute,
            top: px(32),
            right: px(6),
            max_width: px(360),
            ..default()
        },
        AttributePanel,
    ));
}

fn fetch_attributes(options: Res<ViewerOptions>, picked: Res<Picked>, mut attributes: ResMut<Attributes>) {
    if let Some(pending) = &attributes.pending
        && let Some(result) = pending.take()
    {
        attributes.lines = result.unwrap_or_else(|e| vec![("error".into(), e)]);
        attributes.pending = None;
        super::platform::show_selection(&attribute_text(&picked, &attributes.lines));
    }
    if picked.0 == attributes.shown_for {
        return;
    }
    attributes.shown_for = picked.0.clone();
    attributes.lines.clear();
    if picked.0.is_none() {
        super::platform::show_selection("");
    }
    if let Some((layer, fid)) = &picked.0 {
        let url = format!("{}/collections/{layer}/items/{fid}", options.server.trim_end_matches('/'));
        attributes.pending = Some(fetch_then(url, |bytes| {
            let feature: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            Ok(attribute_lines(&feature["properties"]))
        }));
    }
}

type PanelParts = (&'static mut Text, &'static mut Visibility);

fn update_hud(
    time: Res<Time>,
    status: StreamStatus,
    picked: Res<Picked>,
    attributes: Res<Attributes>,
    mut readout: Query<&mut Text, (With<Readout>, Without<AttributePanel>)>,
    mut panel: Query<PanelParts, (With<AttributePanel>, Without<Readout>)>,
    mut frame_time: Local<f32>,
) {
    let StreamStatus { streaming, ground, problems } = status;
    // Average the frame time, not the rate: a few near-zero frames must not read as
    // thousands of frames per second.
    let dt = time.delta_secs();
    *frame_time = if *frame_time == 0.0 { dt } else { 0.9 * *frame_time + 0.1 * dt };
    let fps = if *frame_time > 0.0 { 1.0 / *frame_time } else { 0.0 };
    let loaded: usize = streaming.layers.iter().map(|l| l.cache.len()).sum();
    let bytes: usize = streaming.layers.iter().map(|l| l.gpu_bytes()).sum::<usize>() + ground.gpu_bytes();
    if let Ok(mut text) = readout.single_mut() {
        let mut s = format!(
            "FPS {:.0}  |  3D tiles drawn {} loaded {} in flight {}  |  ground tiles drawn {} loaded {} in flight {}  |  draw calls {}  |  GPU est. {:.1} MB",
            fps,
            streaming.drawn,
            loaded,
            streaming.in_flight,
            ground.drawn,
            ground.loaded(),
            ground.in_flight,
            streaming.meshes_drawn + ground.meshes_drawn,
            bytes as f64 / 1_048_576.0
        );
        if streaming.layers.iter().any(|l| l.points) {
            s.push_str(&format!(
                "  |  points drawn {:.2} M resident {:.2} M",
                streaming.points_drawn as f64 / 1e6,
                streaming.points_resident as f64 / 1e6
            ));
        }
        for e in problems.0.iter().rev().take(3) {
            s.push_str("\n! ");
            s.push_str(e);
        }
        **text = s;
    }
    if let Ok((mut text, mut visibility)) = panel.single_mut() {
        let want = if picked.0.is_some() { Visibility::Inherited } else { Visibility::Hidden };
        if *visibility != want {
            *visibility = want;
        }
        **text = attribute_text(&picked, &attributes.lines);
    }
}

/// A feature's properties as panel lines. A BIM element's property sets come after
/// its own attributes, one `Set.Property: value` line each; its model bounds and
/// STEP number are for machines and stay out.
pub fn attribute_lines(properties: &serde_json::Value) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let Some(map) = properties.as_object() else { return Vec::new() };
    let mut lines: Vec<(String, String)> = map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "property_sets" | "bounds_model" | "step_id"))
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    if map.contains_key("ifc_class") {
        // The IFC facts first, in the order a person reads them.
        let rank =
            |k: &str| ["ifc_class", "name", "storey", "GlobalId"].iter().position(|r| *r == k).unwrap_or(9);
        lines.sort_by_key(|(k, _)| rank(k));
    }
    if let Some(sets) = map.get("property_sets").and_then(|s| s.as_object()) {
        for (set, values) in sets {
            for (key, value) in values.as_object().into_iter().flatten() {
                lines.push((format!("{set}.{key}"), text(value)));
            }
        }
    }
    lines
}

/// The attribute panel's text: `layer #fid`, then up to 16 `key: value` lines.
fn attribute_text(picked: &Picked, lines: &[(String, String)]) -> String {
    let Some((layer, fid)) = &picked.0 else { return String::new() };
    let mut s = format!("{layer} #{fid}");
    for (k, v) in lines.iter().take(16) {
        s.push_str(&format!("\n{k}: {v}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bim_elements_read_class_name_storey_then_property_sets() {
        let props = serde_json::json!({
            "GlobalId": "2O2Fr$t4X7Zf8NOew3FLOH", "name": "Wand", "ifc_class": "IfcWall", "storey": "EG",
            "bounds_model": [0, 0, 0, 1, 1, 1], "step_id": 7,
            "property_sets": {"Pset_WallCommon": {"IsExternal": true, "Reference": "W1"}}
        });
        let lines = attribute_lines(&props);
        let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ifc_class",
                "name",
                "storey",
                "GlobalId",
                "Pset_WallCommon.IsExternal",
                "Pset_WallCommon.Reference"
            ]
        );
        assert_eq!(lines[4].1, "true");
        let plain = attribute_lines(&serde_json::json!({"b": 2, "a": "x"}));
        assert_eq!(plain, [("a".to_owned(), "x".to_owned()), ("b".to_owned(), "2".to_owned())]);
    }
}

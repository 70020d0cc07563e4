//! The layer panel: one row per layer part (buildings, ground) and per ground group
//! (roads, rail, land use, water, borders) to switch on and off, and a fly-to row per
//! layer. Keys 1–9 toggle the first nine rows; a click on a row does the same.

use bevy::prelude::*;

use super::camera::{Flight, orbit_over};
use super::catalogue::Catalogue;
use super::{Hidden, RenderFrame};
use crate::ground::GroundGroup;

pub struct LayerPanelPlugin;

impl Plugin for LayerPanelPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (build_panel, press_rows, label_rows).chain());
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowAction {
    Toggle(String),
    FlyTo([f64; 4]),
}

#[derive(Component, Debug, Clone)]
pub struct PanelRow {
    pub label: String,
    pub action: RowAction,
    /// 1-based key for toggles, if it has one.
    pub key: Option<usize>,
}

/// The rows for a catalogue, in panel order.
pub fn rows_for(catalogue: &Catalogue) -> Vec<PanelRow> {
    let mut rows = Vec::new();
    let toggle = |label: String, key: String| PanelRow { label, action: RowAction::Toggle(key), key: None };
    for layer in &catalogue.layers {
        if layer.tileset.is_some() {
            rows.push(toggle(format!("{} · buildings", layer.id), format!("{}/buildings", layer.id)));
        }
        if layer.tilejson.is_some() {
            rows.push(toggle(format!("{} · ground", layer.id), format!("{}/ground", layer.id)));
        }
    }
    if catalogue.layers.iter().any(|l| l.tilejson.is_some()) {
        for group in GroundGroup::ALL {
            rows.push(toggle(format!("  {}", group.label()), group.label().to_owned()));
        }
    }
    rows.push(toggle("live sensors".to_owned(), "sensors".to_owned()));
    for (n, row) in rows.iter_mut().enumerate().take(9) {
        row.key = Some(n + 1);
    }
    for layer in &catalogue.layers {
        if let Some(bounds) = layer.bounds {
            rows.push(PanelRow {
                label: format!("fly to {}", layer.id),
                action: RowAction::FlyTo(bounds),
                key: None,
            });
        }
    }
    rows
}

#[derive(Component)]
struct Panel;

fn build_panel(mut commands: Commands, catalogue: Res<Catalogue>, panel: Query<(), With<Panel>>) {
    if !catalogue.loaded || !panel.is_empty() || catalogue.layers.is_empty() {
        return;
    }
    commands
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                bottom: px(6),
                left: px(6),
                flex_direction: FlexDirection::Column,
                padding: UiRect::all(px(4)),
                row_gap: px(2),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
            Panel,
        ))
        .with_children(|panel| {
            for row in rows_for(&catalogue) {
                panel.spawn((
                    Button,
                    Text::new(row.label.clone()),
                    super::hud::ui_font(13.0),
                    TextColor(Color::WHITE),
                    Node { padding: UiRect::axes(px(4), px(1)), ..default() },
                    BackgroundColor(Color::NONE),
                    row,
                ));
            }
        });
}

fn act(action: &RowAction, hidden: &mut Hidden, flight: &mut Flight, frame: Option<&RenderFrame>) {
    match action {
        RowAction::Toggle(key) => {
            if !hidden.0.remove(key) {
                hidden.0.insert(key.clone());
            }
        }
        RowAction::FlyTo(bounds) => {
            if let Some(frame) = frame {
                flight.target = Some(orbit_over(frame, *bounds, 50f32.to_radians()));
            }
        }
    }
}

const DIGITS: [KeyCode; 9] = [
    KeyCode::Digit1,
    KeyCode::Digit2,
    KeyCode::Digit3,
    KeyCode::Digit4,
    KeyCode::Digit5,
    KeyCode::Digit6,
    KeyCode::Digit7,
    KeyCode::Digit8,
    KeyCode::Digit9,
];

fn press_rows(
    keys: Res<ButtonInput<KeyCode>>,
    rows: Query<(&Interaction, &PanelRow, &mut BackgroundColor), Changed<Interaction>>,
    all: Query<&PanelRow>,
    frame: Option<Res<RenderFrame>>,
    mut hidden: ResMut<Hidden>,
    mut flight: ResMut<Flight>,
) {
    for (interaction, row, mut background) in rows {
        *background = BackgroundColor(match interaction {
            Interaction::Pressed => Color::srgba(1.0, 1.0, 1.0, 0.35),
            Interaction::Hovered => Color::srgba(1.0, 1.0, 1.0, 0.15),
            Interaction::None => Color::NONE,
        });
        if *interaction == Interaction::Pressed {
            act(&row.action, &mut hidden, &mut flight, frame.as_deref());
        }
    }
    for (n, key) in DIGITS.iter().enumerate() {
        if keys.just_pressed(*key)
            && let Some(row) = all.iter().find(|r| r.key == Some(n + 1))
        {
            act(&row.action, &mut hidden, &mut flight, frame.as_deref());
        }
    }
}

fn label_rows(hidden: Res<Hidden>, mut rows: Query<(&PanelRow, &mut Text)>) {
    for (row, mut text) in &mut rows {
        let label = match &row.action {
            RowAction::Toggle(key) => {
                let mark = if hidden.shows(key) { "[x]" } else { "[ ]" };
                let digit = row.key.map_or("  ".to_owned(), |k| format!("{k} "));
                format!("{digit}{mark} {}", row.label)
            }
            RowAction::FlyTo(_) => format!("   → {}", row.label),
        };
        if text.0 != label {
            text.0 = label;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::catalogue::LayerInfo;

    #[test]
    fn rows_follow_the_catalogue() {
        let mut catalogue = Catalogue::default();
        catalogue.layers = vec![
            LayerInfo {
                id: "city".into(),
                bounds: Some([1.0, 2.0, 3.0, 4.0]),
                tileset: Some("t".into()),
                tilejson: Some("j".into()),
            },
            LayerInfo { id: "roads".into(), bounds: None, tileset: None, tilejson: Some("j".into()) },
        ];
        let rows = rows_for(&catalogue);
        let toggles: Vec<_> = rows
            .iter()
            .filter_map(|r| match &r.action {
                RowAction::Toggle(k) => Some((r.key, k.as_str())),
                RowAction::FlyTo(_) => None,
            })
            .collect();
        assert_eq!(
            toggles,
            [
                (Some(1), "city/buildings"),
                (Some(2), "city/ground"),
                (Some(3), "roads/ground"),
                (Some(4), "roads"),
                (Some(5), "rail"),
                (Some(6), "land use"),
                (Some(7), "water"),
                (Some(8), "district borders"),
                (Some(9), "sensors"),
            ]
        );
        assert_eq!(rows.last().map(|r| &r.action), Some(&RowAction::FlyTo([1.0, 2.0, 3.0, 4.0])));
        let mut hidden = Hidden::default();
        let mut flight = Flight::default();
        act(&RowAction::Toggle("roads".into()), &mut hidden, &mut flight, None);
        assert!(!hidden.shows("roads"));
        act(&RowAction::Toggle("roads".into()), &mut hidden, &mut flight, None);
        assert!(hidden.shows("roads"));
    }
}

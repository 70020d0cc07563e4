//! The layer panel: one row per layer part (buildings, ground) and per ground group
//! (roads, rail, land use, water, borders) to switch on and off, and a fly-to row per
//! layer. Keys 1–9 toggle the first nine rows; a click on a row does the same. Once
//! live sensors arrive, each sensor kind gets a row to show or hide it and a row to
//! lay its values over the city as a heat map. Point cloud layers get a row that
//! switches their colouring (RGB, intensity, classification, elevation), as `C` does.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::bim::{BimView, EXPLODE_STEP_M};
use super::camera::{Flight, orbit_over};
use super::catalogue::Catalogue;
use super::live::{HeatMap, Live};
use super::points::PointColourMode;
use super::{Hidden, RenderFrame};
use crate::ground::GroundGroup;

pub struct LayerPanelPlugin;

impl Plugin for LayerPanelPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (build_panel, sync_kind_rows, press_rows, label_rows).chain());
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowAction {
    Toggle(String),
    FlyTo([f64; 4]),
    /// Show this sensor kind as the heat map, or stop if it is the one shown.
    Heat(String),
    /// BIM: shell translucent or not.
    Xray,
    /// BIM: storeys apart or together.
    Explode,
    /// Point clouds: the next colour mode.
    PointColour,
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
            let part = layer.tiles_part();
            rows.push(toggle(format!("{} / {part}", layer.id), format!("{}/{part}", layer.id)));
        }
        if layer.tilejson.is_some() {
            rows.push(toggle(format!("{} / ground", layer.id), format!("{}/ground", layer.id)));
        }
        for (name, _) in layer.storeys.iter().rev() {
            rows.push(toggle(format!("  storey {name}"), format!("{}/storey/{name}", layer.id)));
        }
    }
    if catalogue.layers.iter().any(|l| !l.storeys.is_empty()) {
        rows.push(PanelRow { label: "x-ray BIM shell".to_owned(), action: RowAction::Xray, key: None });
        rows.push(PanelRow { label: "explode storeys".to_owned(), action: RowAction::Explode, key: None });
    }
    if catalogue.layers.iter().any(|l| l.points) {
        rows.push(PanelRow { label: "point colour".to_owned(), action: RowAction::PointColour, key: None });
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

/// Rows for one sensor kind: show/hide, then heat map.
pub fn kind_rows(kind: &str) -> [PanelRow; 2] {
    [
        PanelRow {
            label: format!("  {kind}"),
            action: RowAction::Toggle(format!("sensors/{kind}")),
            key: None,
        },
        PanelRow {
            label: format!("    heat map of {kind}"),
            action: RowAction::Heat(kind.to_owned()),
            key: None,
        },
    ]
}

#[derive(Component)]
struct Panel;

#[derive(Component)]
struct KindRow;

/// Keeps one pair of rows per sensor kind the live stream has shown us. Kinds only
/// change with a snapshot, so readings do not make it look again.
fn sync_kind_rows(
    mut commands: Commands,
    live: Res<Live>,
    panel: Query<Entity, With<Panel>>,
    rows: Query<Entity, With<KindRow>>,
    mut shown: Local<Vec<String>>,
    mut seen_snapshots: Local<u64>,
) {
    let Ok(panel) = panel.single() else { return };
    if *seen_snapshots == live.model.snapshots {
        return;
    }
    *seen_snapshots = live.model.snapshots;
    let kinds = live.model.kinds();
    if kinds == *shown {
        return;
    }
    for row in &rows {
        commands.entity(row).despawn();
    }
    commands.entity(panel).with_children(|panel| {
        for row in kinds.iter().flat_map(|k| kind_rows(k)) {
            panel.spawn((row_bundle(row), KindRow));
        }
    });
    *shown = kinds;
}

/// A clickable panel row.
fn row_bundle(row: PanelRow) -> impl Bundle {
    (
        Button,
        Text::new(row.label.clone()),
        super::fonts::ui_font(13.0),
        TextColor(Color::WHITE),
        Node { padding: UiRect::axes(px(4), px(1)), ..default() },
        BackgroundColor(Color::NONE),
        row,
    )
}

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
                panel.spawn(row_bundle(row));
            }
        });
}

fn act(
    action: &RowAction,
    bim: Option<&mut BimView>,
    points: Option<&mut PointColourMode>,
    hidden: &mut Hidden,
    heat: &mut HeatMap,
    flight: &mut Flight,
    frame: Option<&RenderFrame>,
) {
    match action {
        RowAction::Heat(kind) => {
            heat.0 = if heat.0.as_ref() == Some(kind) { None } else { Some(kind.clone()) };
        }
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
        RowAction::Xray => {
            if let Some(view) = bim {
                view.xray = !view.xray;
            }
        }
        RowAction::Explode => {
            if let Some(view) = bim {
                view.explode_m = if view.explode_m > 0.0 { 0.0 } else { EXPLODE_STEP_M };
            }
        }
        RowAction::PointColour => {
            if let Some(mode) = points {
                mode.0 = mode.0.next();
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

/// What a row's action changes (and the frame a fly-to is computed in).
#[derive(SystemParam)]
struct RowTargets<'w> {
    frame: Option<Res<'w, RenderFrame>>,
    hidden: ResMut<'w, Hidden>,
    heat: ResMut<'w, HeatMap>,
    flight: ResMut<'w, Flight>,
    bim: Option<ResMut<'w, BimView>>,
    points: Option<ResMut<'w, PointColourMode>>,
}

fn press_rows(
    keys: Res<ButtonInput<KeyCode>>,
    rows: Query<(&Interaction, &PanelRow, &mut BackgroundColor), Changed<Interaction>>,
    all: Query<&PanelRow>,
    targets: RowTargets,
) {
    let RowTargets { frame, mut hidden, mut heat, mut flight, mut bim, mut points } = targets;
    // Clicked rows, then rows whose digit key went down.
    let mut actions = Vec::new();
    for (interaction, row, mut background) in rows {
        *background = BackgroundColor(match interaction {
            Interaction::Pressed => Color::srgba(1.0, 1.0, 1.0, 0.35),
            Interaction::Hovered => Color::srgba(1.0, 1.0, 1.0, 0.15),
            Interaction::None => Color::NONE,
        });
        if *interaction == Interaction::Pressed {
            actions.push(row.action.clone());
        }
    }
    for (n, key) in DIGITS.iter().enumerate() {
        if keys.just_pressed(*key)
            && let Some(row) = all.iter().find(|r| r.key == Some(n + 1))
        {
            actions.push(row.action.clone());
        }
    }
    for action in &actions {
        act(
            action,
            bim.as_deref_mut(),
            points.as_deref_mut(),
            &mut hidden,
            &mut heat,
            &mut flight,
            frame.as_deref(),
        );
    }
}

fn label_rows(
    hidden: Res<Hidden>,
    heat: Option<Res<HeatMap>>,
    bim: Option<Res<BimView>>,
    points: Option<Res<PointColourMode>>,
    mut rows: Query<(&PanelRow, &mut Text)>,
) {
    let mark = |on: bool| if on { "[x]" } else { "[ ]" };
    for (row, mut text) in &mut rows {
        let label = match &row.action {
            RowAction::Toggle(key) => {
                let mark = if hidden.shows(key) { "[x]" } else { "[ ]" };
                let digit = row.key.map_or("  ".to_owned(), |k| format!("{k} "));
                format!("{digit}{mark} {}", row.label)
            }
            RowAction::FlyTo(_) => format!("   > {}", row.label),
            RowAction::Heat(kind) => {
                let on = heat.as_ref().is_some_and(|h| h.0.as_ref() == Some(kind));
                format!("  {} {}", mark(on), row.label)
            }
            RowAction::Xray => format!("  {} {}", mark(bim.as_ref().is_some_and(|b| b.xray)), row.label),
            RowAction::Explode => {
                format!("  {} {}", mark(bim.as_ref().is_some_and(|b| b.explode_m > 0.0)), row.label)
            }
            RowAction::PointColour => {
                let mode = points.as_ref().map_or("", |p| p.0.label());
                format!("   C {}: {mode}", row.label)
            }
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
                storeys: Vec::new(),
                kind: "vector".into(),
                points: false,
            },
            LayerInfo {
                id: "roads".into(),
                bounds: None,
                tileset: None,
                tilejson: Some("j".into()),
                storeys: Vec::new(),
                kind: "vector".into(),
                points: false,
            },
        ];
        let rows = rows_for(&catalogue);
        let toggles: Vec<_> = rows
            .iter()
            .filter_map(|r| match &r.action {
                RowAction::Toggle(k) => Some((r.key, k.as_str())),
                RowAction::FlyTo(_)
                | RowAction::Heat(_)
                | RowAction::Xray
                | RowAction::Explode
                | RowAction::PointColour => None,
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
        let mut heat = HeatMap::default();
        let mut flight = Flight::default();
        act(&RowAction::Toggle("roads".into()), None, None, &mut hidden, &mut heat, &mut flight, None);
        assert!(!hidden.shows("roads"));
        act(&RowAction::Toggle("roads".into()), None, None, &mut hidden, &mut heat, &mut flight, None);
        assert!(hidden.shows("roads"));
        // Sensor kinds: a toggle keyed like --hide, and one heat map at a time.
        let [show, map] = kind_rows("temperature");
        act(&show.action, None, None, &mut hidden, &mut heat, &mut flight, None);
        assert!(!hidden.shows("sensors/temperature"));
        act(&map.action, None, None, &mut hidden, &mut heat, &mut flight, None);
        assert_eq!(heat.0.as_deref(), Some("temperature"));
        act(&kind_rows("speed")[1].action, None, None, &mut hidden, &mut heat, &mut flight, None);
        assert_eq!(heat.0.as_deref(), Some("speed"));
        act(&kind_rows("speed")[1].action, None, None, &mut hidden, &mut heat, &mut flight, None);
        assert_eq!(heat.0, None);
    }

    #[test]
    fn bim_layers_get_a_row_per_storey_and_the_xray_and_explode_switches() {
        let mut catalogue = Catalogue::default();
        catalogue.layers = vec![LayerInfo {
            id: "house".into(),
            bounds: None,
            tileset: Some("t".into()),
            tilejson: None,
            storeys: vec![("EG".into(), "a".into()), ("OG".into(), "b".into())],
            kind: "bim".into(),
            points: false,
        }];
        let rows = rows_for(&catalogue);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels[..5],
            ["house / buildings", "  storey OG", "  storey EG", "x-ray BIM shell", "explode storeys"]
        );
        assert_eq!(rows[1].action, RowAction::Toggle("house/storey/OG".into()));
        let mut view = BimView { xray: false, explode_m: 0.0 };
        let (mut hidden, mut heat, mut flight) = (Hidden::default(), HeatMap::default(), Flight::default());
        act(&RowAction::Xray, Some(&mut view), None, &mut hidden, &mut heat, &mut flight, None);
        act(&RowAction::Explode, Some(&mut view), None, &mut hidden, &mut heat, &mut flight, None);
        assert_eq!(view, BimView { xray: true, explode_m: EXPLODE_STEP_M });
        act(&RowAction::Explode, Some(&mut view), None, &mut hidden, &mut heat, &mut flight, None);
        assert_eq!(view.explode_m, 0.0);
    }
    #[test]
    fn terrain_and_city_model_layers_name_their_tiles() {
        let mut catalogue = Catalogue::default();
        let layer = |id: &str, kind: &str| LayerInfo {
            id: id.into(),
            bounds: None,
            tileset: Some("t".into()),
            tilejson: None,
            storeys: Vec::new(),
            kind: kind.into(),
            points: false,
        };
        catalogue.layers = vec![layer("lyon", "terrain"), layer("delft", "city_model")];
        let labels: Vec<String> = rows_for(&catalogue).into_iter().map(|r| r.label).collect();
        assert_eq!(labels[..2], ["lyon / terrain", "delft / city objects"]);
    }

    #[test]
    fn point_cloud_layers_get_a_points_row_and_the_colour_switch() {
        let mut catalogue = Catalogue::default();
        catalogue.layers = vec![LayerInfo {
            id: "survey".into(),
            bounds: None,
            tileset: Some("t".into()),
            tilejson: None,
            storeys: Vec::new(),
            kind: "point_cloud".into(),
            points: true,
        }];
        let rows = rows_for(&catalogue);
        assert_eq!(rows[0].action, RowAction::Toggle("survey/points".into()));
        assert_eq!(rows[1].action, RowAction::PointColour);
        let mut mode = PointColourMode::default();
        let (mut hidden, mut heat, mut flight) = (Hidden::default(), HeatMap::default(), Flight::default());
        for _ in 0..2 {
            act(&RowAction::PointColour, None, Some(&mut mode), &mut hidden, &mut heat, &mut flight, None);
        }
        assert_eq!(mode.0, crate::points::PointColouring::Classification);
    }
}

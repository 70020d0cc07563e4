//! Live sensors on the map: a marker per sensor coloured by state (pulsing on alarm),
//! kept a constant size on screen; an alert list whose rows fly to the sensor; a
//! click on a marker shows its latest value and a sparkline of the last hour. Alerts
//! raised before the viewer started are fetched once; a heat map of one kind's values
//! can be laid over the city.

use std::collections::HashMap;

use bevy::picking::mesh_picking::ray_cast::MeshRayCastSettings;
use bevy::prelude::*;
use glam::DVec3;

use super::camera::{Flight, Orbit};
use super::catalogue::Catalogue;
use super::params::{Drawing, Pointer, Ray};
use super::platform::{Pending, Subscription, fetch_then, subscribe};
use super::{Hidden, Problems, RenderFrame, ViewerOptions};
use crate::live::{LiveModel, heat_colour, heat_grid, sparkline, state_colour};

pub struct SensorsPlugin;

impl Plugin for SensorsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Live>()
            .init_resource::<MarkerClick>()
            .init_resource::<HeatMap>()
            .init_resource::<HeatDrawn>()
            .add_systems(Startup, (spawn_panels, start_heat_map))
            .add_systems(
                Update,
                (
                    connect,
                    receive,
                    place_markers,
                    size_markers,
                    click_marker,
                    press_alert,
                    update_panels,
                    draw_heat_map,
                )
                    .chain(),
            );
    }
}

#[derive(Resource, Default)]
pub struct Live {
    subscription: Option<Subscription>,
    retry_at: f32,
    pub model: LiveModel,
    drawn_revision: u64,
    selected: Option<String>,
    history: Option<Pending<Vec<f64>>>,
    spark: String,
    /// Alerts from before we connected, asked for once.
    past_alerts: Option<Pending<Vec<u8>>>,
    asked_past_alerts: bool,
}

/// The kind whose values are shown as a heat map, if any.
#[derive(Resource, Default, Debug, Clone, PartialEq)]
pub struct HeatMap(pub Option<String>);

/// Whether a heat map is on screen (screenshots wait for it when one was asked for).
#[derive(Resource, Default, Debug)]
pub struct HeatDrawn(pub bool);

/// Grid cells across the heat map's extent, each way.
const HEAT_CELLS: usize = 48;
/// Metres above the ellipsoid: over draped ground, under roofs.
const HEAT_HEIGHT: f64 = 4.0;

/// Set when this frame's click landed on a marker, so building picking skips it.
#[derive(Resource, Default)]
pub struct MarkerClick(pub bool);

#[derive(Component)]
pub struct Marker {
    pub id: String,
    state: String,
}

#[derive(Component)]
struct AlertList;

#[derive(Component)]
struct AlertRow(usize);

#[derive(Component)]
struct SensorPanel;

fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let rest = base.strip_prefix("https://").map(|r| format!("wss://{r}"));
    rest.unwrap_or_else(|| format!("ws://{}", base.trim_start_matches("http://"))) + "/api/live"
}

fn connect(options: Res<ViewerOptions>, catalogue: Res<Catalogue>, time: Res<Time>, mut live: ResMut<Live>) {
    // An unreachable server is reported once, by the catalogue.
    if live.subscription.is_none() && catalogue.reachable && time.elapsed_secs() >= live.retry_at {
        live.subscription = Some(subscribe(ws_url(&options.server)));
        if !live.asked_past_alerts {
            live.asked_past_alerts = true;
            let url = format!(
                "{}/api/alerts?last={}",
                options.server.trim_end_matches('/'),
                crate::live::ALERTS_KEPT
            );
            live.past_alerts = Some(fetch_then(url, Ok));
        }
    }
}

fn receive(time: Res<Time>, mut live: ResMut<Live>, mut problems: ResMut<Problems>) {
    if let Some(result) = live.past_alerts.as_ref().and_then(Pending::take) {
        live.past_alerts = None;
        // Without a live service (404/503) there is no history either: say nothing.
        if let Ok(bytes) = result
            && let Err(e) = live.model.merge_history(&bytes)
        {
            problems.report(e);
        }
    }
    let Some(subscription) = &live.subscription else { return };
    let (messages, ended) = subscription.take();
    for m in messages {
        if let Err(e) = live.model.apply(&m) {
            problems.report(e);
        }
    }
    if let Some(e) = ended {
        live.subscription = None;
        if e.ends_with("HTTP 404") || e.ends_with("HTTP 503") {
            // A plain tile server, or a replica without live data: nothing is wrong.
            info!("no live sensors here ({e})");
            live.retry_at = time.elapsed_secs() + 60.0;
        } else {
            // A dropped link: say so, try again soon.
            problems.report(format!("live sensors: {e}"));
            live.retry_at = time.elapsed_secs() + 5.0;
        }
    }
}

#[derive(Default)]
struct MarkerAssets {
    mesh: Option<Handle<Mesh>>,
    materials: HashMap<String, Handle<StandardMaterial>>,
}

fn material(
    assets: &mut MarkerAssets,
    materials: &mut Assets<StandardMaterial>,
    state: &str,
) -> Handle<StandardMaterial> {
    assets
        .materials
        .entry(state.to_owned())
        .or_insert_with(|| {
            let [r, g, b] = state_colour(state);
            materials.add(StandardMaterial { base_color: Color::srgb(r, g, b), unlit: true, ..default() })
        })
        .clone()
}

fn place_markers(
    drawing: Drawing,
    frame: Option<Res<RenderFrame>>,
    mut live: ResMut<Live>,
    mut markers: Query<(Entity, &mut Marker, &mut MeshMaterial3d<StandardMaterial>)>,
    mut assets: Local<MarkerAssets>,
) {
    let Drawing { mut commands, mut meshes, mut materials } = drawing;
    let Some(frame) = frame else { return };
    if live.drawn_revision == live.model.revision {
        return;
    }
    live.drawn_revision = live.model.revision;
    let mesh = assets.mesh.get_or_insert_with(|| meshes.add(Sphere::new(1.0).mesh().uv(16, 8))).clone();
    let mut seen = std::collections::HashSet::new();
    for (entity, mut marker, mut handle) in &mut markers {
        match live.model.sensors.get(&marker.id) {
            None => commands.entity(entity).despawn(),
            Some(s) => {
                seen.insert(marker.id.clone());
                if marker.state != s.state {
                    marker.state = s.state.clone();
                    handle.0 = material(&mut assets, &mut materials, &s.state);
                }
            }
        }
    }
    for s in live.model.sensors.values().filter(|s| !seen.contains(&s.id)) {
        let at = frame.ecef_to_render.transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(
            s.lon,
            s.lat,
            s.height + 4.0,
        )));
        commands.spawn((
            Mesh3d(mesh.clone()),
            MeshMaterial3d(material(&mut assets, &mut materials, &s.state)),
            Transform::from_translation(at.as_vec3()),
            Marker { id: s.id.clone(), state: s.state.clone() },
            bevy::light::NotShadowCaster,
        ));
    }
}

/// About 9 pixels across at any distance; alarms pulse.
fn size_markers(
    time: Res<Time>,
    hidden: Res<Hidden>,
    live: Res<Live>,
    camera: Query<&GlobalTransform, With<Camera3d>>,
    mut markers: Query<(&Marker, &mut Transform, &mut Visibility)>,
) {
    let Ok(eye) = camera.single() else { return };
    let eye = eye.translation();
    let pulse = 1.0 + 0.35 * (time.elapsed_secs() * 6.0).sin();
    for (marker, mut transform, mut visibility) in &mut markers {
        let kind = live.model.sensors.get(&marker.id).map_or("", |s| s.kind.as_str());
        let show = hidden.shows("sensors") && hidden.shows(&format!("sensors/{kind}"));
        let want = if show { Visibility::Inherited } else { Visibility::Hidden };
        if *visibility != want {
            *visibility = want;
        }
        let base = (transform.translation.distance(eye) * 0.006).max(2.0);
        transform.scale = Vec3::splat(if marker.state == "alarm" { base * pulse } else { base });
    }
}

pub fn click_marker(
    pointer: Pointer,
    mut rays: Ray,
    options: Res<ViewerOptions>,
    markers: Query<&Marker>,
    mut live: ResMut<Live>,
    mut clicked: ResMut<MarkerClick>,
) {
    clicked.0 = false;
    let Some(ray) = pointer.clicked_at().and_then(|c| rays.through(c)) else { return };
    let is_marker = |e: Entity| markers.contains(e);
    let hits = rays
        .ray_cast
        .cast_ray(ray, &MeshRayCastSettings::default().with_filter(&is_marker).always_early_exit());
    let Some(marker) = hits.first().and_then(|(e, _)| markers.get(*e).ok()) else { return };
    clicked.0 = true;
    let id = marker.id.clone();
    // The last hour at one value a minute, for the sparkline.
    let url = format!(
        "{}/api/sensors/{id}/readings?from={}&step=1m",
        options.server.trim_end_matches('/'),
        cim_core::sensors::format_rfc3339_ms(super::platform::now_ms() - 3_600_000)
    );
    live.history = Some(fetch_then(url, |bytes| {
        let rows: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(rows
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["value"].as_f64()).collect())
            .unwrap_or_default())
    }));
    live.selected = Some(id);
    live.spark.clear();
}

fn spawn_panels(mut commands: Commands) {
    commands.spawn((
        Node {
            position_type: PositionType::Absolute,
            bottom: px(6),
            right: px(6),
            flex_direction: FlexDirection::Column,
            padding: UiRect::all(px(4)),
            max_width: px(380),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        Visibility::Hidden,
        AlertList,
    ));
    commands.spawn((
        Text::new(""),
        super::fonts::ui_font(14.0),
        TextColor(Color::WHITE),
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        Node {
            position_type: PositionType::Absolute,
            bottom: px(180),
            right: px(6),
            max_width: px(380),
            ..default()
        },
        Visibility::Hidden,
        SensorPanel,
    ));
}

fn press_alert(
    rows: Query<(&Interaction, &AlertRow), Changed<Interaction>>,
    live: Res<Live>,
    frame: Option<Res<RenderFrame>>,
    camera: Query<&Orbit>,
    mut flight: ResMut<Flight>,
) {
    let (Some(frame), Ok(orbit)) = (frame, camera.single()) else { return };
    for (interaction, row) in &rows {
        if *interaction != Interaction::Pressed {
            continue;
        }
        let Some(alert) = live.model.alerts.get(row.0) else { continue };
        let Some(s) = live.model.sensors.get(&alert.sensor) else { continue };
        let at = frame
            .ecef_to_render
            .transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(s.lon, s.lat, 0.0)));
        flight.target = Some(Orbit { focus: at.as_vec3(), distance: 400.0, ..*orbit });
    }
}

type ListParts = (Entity, &'static mut Visibility);
type PanelParts = (&'static mut Text, &'static mut Visibility);

fn update_panels(
    mut commands: Commands,
    hidden: Res<Hidden>,
    mut live: ResMut<Live>,
    mut list: Query<ListParts, (With<AlertList>, Without<SensorPanel>)>,
    rows: Query<Entity, With<AlertRow>>,
    mut panel: Query<PanelParts, (With<SensorPanel>, Without<AlertList>)>,
    mut shown_revision: Local<u64>,
) {
    if let Some(result) = live.history.as_ref().and_then(Pending::take) {
        live.spark = result.map(|v| sparkline(&v)).unwrap_or_else(|e| format!("history: {e}"));
        live.history = None;
    }
    if let Ok((mut text, mut visibility)) = panel.single_mut() {
        let s = live.selected.as_ref().and_then(|id| live.model.sensors.get(id));
        *visibility = if s.is_some() { Visibility::Inherited } else { Visibility::Hidden };
        if let Some(s) = s {
            let latest = s
                .latest
                .as_ref()
                .map_or("no reading yet".to_owned(), |(t, v)| format!("{v:.2} {} at {t}", s.unit));
            let line = format!(
                "{} ({})  {}\n{latest}\nlast hour {}",
                s.id,
                s.kind,
                s.state.to_uppercase(),
                live.spark
            );
            if text.0 != line {
                text.0 = line;
            }
        }
    }
    if *shown_revision == live.model.revision && !hidden.is_changed() {
        return;
    }
    *shown_revision = live.model.revision;
    let Ok((list, mut visibility)) = list.single_mut() else { return };
    // Alerts of kinds switched off in the layer panel are not listed.
    let shows = |a: &crate::live::AlertView| {
        hidden.shows("sensors")
            && live.model.sensors.get(&a.sensor).is_none_or(|s| hidden.shows(&format!("sensors/{}", s.kind)))
    };
    let listed: Vec<(usize, &crate::live::AlertView)> =
        live.model.alerts.iter().enumerate().filter(|(_, a)| shows(a)).take(8).collect();
    *visibility = if listed.is_empty() { Visibility::Hidden } else { Visibility::Inherited };
    for row in &rows {
        commands.entity(row).despawn();
    }
    commands.entity(list).with_children(|list| {
        for (i, a) in listed {
            let time = a.t.get(11..19).unwrap_or(&a.t);
            list.spawn((
                Button,
                Text::new(format!("{time}  {}  {} -> {}", a.sensor, a.from, a.to)),
                super::fonts::ui_font(13.0),
                TextColor(Color::srgb_from_array(state_colour(&a.to))),
                AlertRow(i),
            ));
        }
    });
}

#[derive(Component)]
struct HeatLayer;

fn start_heat_map(mut commands: Commands, options: Res<ViewerOptions>) {
    commands.insert_resource(HeatMap(options.heat_map.clone()));
}

/// Rebuilds the heat map when its kind changes or, at most every two seconds, when
/// new readings came in.
fn draw_heat_map(
    drawing: Drawing,
    time: Res<Time>,
    (heat, mut drawn): (Res<HeatMap>, ResMut<HeatDrawn>),
    live: Res<Live>,
    frame: Option<Res<RenderFrame>>,
    layer: Query<Entity, With<HeatLayer>>,
    mut built: Local<(Option<String>, u64, f32)>,
) {
    let Drawing { mut commands, mut meshes, mut materials } = drawing;
    let Some(frame) = frame else { return };
    let due = built.1 != live.model.revision && (layer.is_empty() || time.elapsed_secs() - built.2 >= 2.0);
    if built.0 == heat.0 && !due {
        return;
    }
    *built = (heat.0.clone(), live.model.revision, time.elapsed_secs());
    for e in &layer {
        commands.entity(e).despawn();
    }
    drawn.0 = false;
    let Some(grid) = heat.0.as_deref().and_then(|kind| heat_grid(&live.model, kind, HEAT_CELLS, HEAT_CELLS))
    else {
        return;
    };
    let (cols, rows) = (grid.cols, grid.rows);
    let mut positions = Vec::with_capacity(grid.values.len());
    let mut colours = Vec::with_capacity(grid.values.len());
    for r in 0..=rows {
        let lat = grid.bounds[1] + (grid.bounds[3] - grid.bounds[1]) * r as f64 / rows as f64;
        for c in 0..=cols {
            let lon = grid.bounds[0] + (grid.bounds[2] - grid.bounds[0]) * c as f64 / cols as f64;
            let at = frame.ecef_to_render.transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(
                lon,
                lat,
                HEAT_HEIGHT,
            )));
            positions.push(at.as_vec3().to_array());
            let [red, green, blue] = grid.values[r * (cols + 1) + c].map_or([0.0; 3], heat_colour);
            colours.push([red, green, blue, 1.0]);
        }
    }
    let mut indices = Vec::new();
    let corner = |c: usize, r: usize| r * (cols + 1) + c;
    for r in 0..rows {
        for c in 0..cols {
            let quad = [corner(c, r), corner(c + 1, r), corner(c + 1, r + 1), corner(c, r + 1)];
            if quad.iter().all(|&i| grid.values[i].is_some()) {
                for i in [0, 1, 2, 0, 2, 3] {
                    indices.push(quad[i] as u32);
                }
            }
        }
    }
    if indices.is_empty() {
        return;
    }
    let mut mesh =
        Mesh::new(bevy::mesh::PrimitiveTopology::TriangleList, bevy::asset::RenderAssetUsages::RENDER_WORLD);
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, positions);
    mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, colours);
    mesh.insert_indices(bevy::mesh::Indices::U32(indices));
    commands.spawn((
        Mesh3d(meshes.add(mesh)),
        MeshMaterial3d(materials.add(StandardMaterial {
            // Vertex colours times a translucent white: the city shows through.
            base_color: Color::srgba(1.0, 1.0, 1.0, 0.55),
            alpha_mode: AlphaMode::Blend,
            unlit: true,
            cull_mode: None,
            depth_bias: 50.0,
            ..default()
        })),
        Transform::IDENTITY,
        bevy::light::NotShadowCaster,
        HeatLayer,
    ));
    drawn.0 = true;
}

//! Orbit camera in the render frame: left-drag orbits, right-drag pans, wheel zooms,
//! arrows pan, PageUp/PageDown zoom, Q/E turn, R/F tilt, N turns north up, H returns
//! home. Fly-to glides to a layer's extent.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use glam::DVec3;

use super::{RenderFrame, ViewerOptions};

pub struct OrbitCameraPlugin;

impl Plugin for OrbitCameraPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_camera)
            .add_systems(Update, no_multisampling_on_a_software_renderer)
            .init_resource::<Flight>()
            .add_systems(Update, (place_home, orbit_controls, fly, apply_orbit).chain());
    }
}

/// A glide from one orbit to another (fly-to, home).
#[derive(Resource, Default)]
pub struct Flight {
    path: Option<(Orbit, Orbit, f32)>,
    /// A new target; the flight starts from wherever the camera is.
    pub target: Option<Orbit>,
}

const FLIGHT_SECONDS: f32 = 1.5;

/// The orbit that shows `bounds` (degrees) whole, from the south-west at 50° down.
pub fn orbit_over(frame: &RenderFrame, bounds: [f64; 4], fov_y: f32) -> Orbit {
    let [w, s, e, n] = bounds;
    let corner = |lon: f64, lat: f64| {
        frame.ecef_to_render.transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(lon, lat, 0.0)))
    };
    let (a, b) = (corner(w, s), corner(e, n));
    let centre = corner((w + e) / 2.0, (s + n) / 2.0);
    let radius = (a.distance(b) / 2.0).max(50.0);
    let distance = radius / f64::from(fov_y / 2.0).tan() * 1.1;
    Orbit {
        focus: Vec3::new(centre.x as f32, 0.0, centre.z as f32),
        distance: distance as f32,
        heading: 0.0,
        pitch: 50f32.to_radians(),
    }
}

fn lerp_orbit(a: &Orbit, b: &Orbit, t: f32) -> Orbit {
    // Smoothstep in time; distance eases in log space so zooming feels even.
    let s = t * t * (3.0 - 2.0 * t);
    let turn = (b.heading - a.heading + std::f32::consts::PI).rem_euclid(std::f32::consts::TAU)
        - std::f32::consts::PI;
    Orbit {
        focus: a.focus.lerp(b.focus, s),
        distance: (a.distance.ln() + (b.distance.ln() - a.distance.ln()) * s).exp(),
        heading: a.heading + turn * s,
        pitch: a.pitch + (b.pitch - a.pitch) * s,
    }
}

fn fly(time: Res<Time>, mut flight: ResMut<Flight>, mut camera: Query<&mut Orbit>) {
    let Ok(mut orbit) = camera.single_mut() else { return };
    if let Some(target) = flight.target.take() {
        flight.path = Some((*orbit, target, 0.0));
    }
    let Some((from, to, elapsed)) = &mut flight.path else { return };
    *elapsed += time.delta_secs();
    let t = (*elapsed / FLIGHT_SECONDS).min(1.0);
    *orbit = lerp_orbit(from, to, t);
    if t >= 1.0 {
        flight.path = None;
    }
}

/// Where the camera looks and from how far: yaw is the heading (0 = north, clockwise),
/// pitch is below the horizon (positive looks down).
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Orbit {
    pub focus: Vec3,
    pub distance: f32,
    pub heading: f32,
    pub pitch: f32,
}

#[derive(Component, Clone, Copy)]
struct Home(Orbit);

fn spawn_camera(mut commands: Commands) {
    let orbit = Orbit { focus: Vec3::ZERO, distance: 1500.0, heading: 0.0, pitch: 45f32.to_radians() };
    commands.spawn((
        Camera3d::default(),
        Projection::Perspective(PerspectiveProjection {
            fov: 50f32.to_radians(),
            far: 200_000.0,
            ..default()
        }),
        Transform::default(),
        orbit,
    ));
}

/// A renderer running on the CPU (llvmpipe, lavapipe, SwiftShader) draws without
/// multisampling: four samples a pixel cost it a third of every frame (a Helsinki
/// view under lavapipe: 26 CPU-seconds to a settled picture instead of 40), where a
/// GPU resolves them for free.
fn no_multisampling_on_a_software_renderer(
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    cameras: Query<&mut Msaa, With<Camera3d>>,
    mut done: Local<bool>,
) {
    let Some(adapter) = adapter else { return };
    if *done {
        return;
    }
    *done = true;
    // wgpu's DeviceType is not re-exported by bevy; its name is stable.
    if format!("{:?}", adapter.device_type) != "Cpu" {
        return;
    }
    for mut msaa in cameras {
        *msaa = Msaa::Off;
    }
}

/// Once the render frame exists, put the camera where `--camera` says (or over the
/// origin) and remember that as home.
fn place_home(
    mut commands: Commands,
    frame: Option<Res<RenderFrame>>,
    options: Res<ViewerOptions>,
    camera: Query<(Entity, &mut Orbit), Without<Home>>,
) {
    let Some(frame) = frame else { return };
    for (entity, mut orbit) in camera {
        if let Some([lon, lat, h, heading, pitch]) = options.camera {
            let eye = frame
                .ecef_to_render
                .transform_point3(DVec3::from(cim_core::frame::geodetic_to_ecef(lon, lat, h)));
            let pitch_r = (-pitch).to_radians().clamp(1f64.to_radians(), 89.9f64.to_radians());
            // Distance along the view ray down to the ground plane y = 0.
            let distance = (eye.y / pitch_r.sin()).max(1.0);
            let heading_r = heading.to_radians();
            let forward =
                DVec3::new(heading_r.sin() * pitch_r.cos(), -pitch_r.sin(), -heading_r.cos() * pitch_r.cos());
            *orbit = Orbit {
                focus: (eye + forward * distance).as_vec3(),
                distance: distance as f32,
                heading: heading_r as f32,
                pitch: pitch_r as f32,
            };
        }
        commands.entity(entity).insert(Home(*orbit));
    }
}

fn orbit_controls(
    mouse: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    time: Res<Time>,
    mut flight: ResMut<Flight>,
    mut camera: Query<(&mut Orbit, &Home)>,
) {
    let Ok((mut orbit, home)) = camera.single_mut() else { return };
    let dt = time.delta_secs();
    for (key, turn, tilt) in [
        (KeyCode::KeyQ, -1.0, 0.0),
        (KeyCode::KeyE, 1.0, 0.0),
        (KeyCode::KeyR, 0.0, 1.0),
        (KeyCode::KeyF, 0.0, -1.0),
    ] {
        if keys.pressed(key) {
            orbit.heading += turn * dt;
            orbit.pitch = (orbit.pitch + tilt * dt * 0.7).clamp(0.05, 1.55);
        }
    }
    let d = motion.delta;
    if mouse.pressed(MouseButton::Left) {
        orbit.heading += d.x * 0.005;
        orbit.pitch = (orbit.pitch + d.y * 0.005).clamp(0.05, 1.55);
    }
    let scale = orbit.distance * 0.0015;
    let (sin, cos) = orbit.heading.sin_cos();
    let (right, ahead) = (Vec3::new(cos, 0.0, sin), Vec3::new(sin, 0.0, -cos));
    if mouse.pressed(MouseButton::Right) {
        orbit.focus += (-right * d.x + ahead * d.y) * scale;
    }
    let step = orbit.distance * dt;
    for (key, dir) in [
        (KeyCode::ArrowLeft, -right),
        (KeyCode::ArrowRight, right),
        (KeyCode::ArrowUp, ahead),
        (KeyCode::ArrowDown, -ahead),
    ] {
        if keys.pressed(key) {
            orbit.focus += dir * step;
        }
    }
    let mut zoom = scroll.delta.y * -0.1;
    if keys.pressed(KeyCode::PageUp) {
        zoom -= dt;
    }
    if keys.pressed(KeyCode::PageDown) {
        zoom += dt;
    }
    orbit.distance = (orbit.distance * (1.0 + zoom)).clamp(20.0, 150_000.0);
    if keys.just_pressed(KeyCode::KeyN) {
        flight.target = Some(Orbit { heading: 0.0, ..*orbit });
    }
    if keys.just_pressed(KeyCode::KeyH) {
        flight.target = Some(home.0);
    }
}

fn apply_orbit(mut camera: Query<(&Orbit, &mut Transform), Changed<Orbit>>) {
    for (orbit, mut transform) in &mut camera {
        let (sin, cos) = orbit.heading.sin_cos();
        let forward = Vec3::new(sin * orbit.pitch.cos(), -orbit.pitch.sin(), -cos * orbit.pitch.cos());
        let eye = orbit.focus - forward * orbit.distance;
        *transform = Transform::from_translation(eye).looking_at(orbit.focus, Vec3::Y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fly_to_frames_the_extent_and_glides_the_short_way_round() {
        let frame = RenderFrame::at(24.944, 60.1715);
        let bounds = [24.935, 60.164, 24.953, 60.179];
        let fov = 50f32.to_radians();
        let orbit = orbit_over(&frame, bounds, fov);
        // The extent is about 1 km by 1.7 km: its half-diagonal seen within half the fov.
        assert!(orbit.focus.length() < 100.0, "centre near the origin: {:?}", orbit.focus);
        let half_diagonal = orbit.distance * (fov / 2.0).tan() / 1.1;
        assert!((900.0..1100.0).contains(&half_diagonal), "{half_diagonal}");
        let a = Orbit { focus: Vec3::ZERO, distance: 100.0, heading: 350f32.to_radians(), pitch: 0.5 };
        let b = Orbit { focus: Vec3::X * 10.0, distance: 10_000.0, heading: 10f32.to_radians(), pitch: 1.0 };
        let start = lerp_orbit(&a, &b, 0.0);
        assert!((start.distance - a.distance).abs() < 1e-3 && start.focus == a.focus);
        let end = lerp_orbit(&a, &b, 1.0);
        assert!((end.distance - b.distance).abs() < 0.1 && (end.pitch - b.pitch).abs() < 1e-6);
        let mid = lerp_orbit(&a, &b, 0.5);
        assert!((mid.distance - 1000.0).abs() < 1.0, "log-space zoom: {}", mid.distance);
        // 350° → 10° passes north (360°), not back through 180°.
        assert!((mid.heading.to_degrees() - 360.0).abs() < 0.5, "{}", mid.heading.to_degrees());
    }
}

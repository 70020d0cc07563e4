//! Orbit camera in the render frame: left-drag orbits, right-drag pans, wheel zooms,
//! arrows pan, PageUp/PageDown zoom, N turns north up, H returns home.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use glam::DVec3;

use super::{RenderFrame, ViewerOptions};

pub struct OrbitCameraPlugin;

impl Plugin for OrbitCameraPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_camera)
            .add_systems(Update, (place_home, orbit_controls, apply_orbit).chain());
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
    mut camera: Query<(&mut Orbit, &Home)>,
) {
    let Ok((mut orbit, home)) = camera.single_mut() else { return };
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
    let step = orbit.distance * time.delta_secs();
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
        zoom -= time.delta_secs();
    }
    if keys.pressed(KeyCode::PageDown) {
        zoom += time.delta_secs();
    }
    orbit.distance = (orbit.distance * (1.0 + zoom)).clamp(20.0, 150_000.0);
    if keys.just_pressed(KeyCode::KeyN) {
        orbit.heading = 0.0;
    }
    if keys.just_pressed(KeyCode::KeyH) {
        *orbit = home.0;
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

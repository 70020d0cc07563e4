//! System parameter bundles the render plugins share, so a system names the few
//! groups it works with rather than a long list of resources and queries.

use bevy::ecs::system::SystemParam;
use bevy::picking::mesh_picking::ray_cast::MeshRayCast;
use bevy::prelude::*;

use super::ground::Ground;
use super::tiles::{Streaming, view_of};
use super::{Hidden, Problems, RenderFrame, ViewerOptions};
use crate::select::View;

/// What a streaming system reads to choose tiles: the options, what the layer panel
/// hides, the render frame and the camera's view of it.
#[derive(SystemParam)]
pub struct StreamView<'w, 's> {
    pub options: Res<'w, ViewerOptions>,
    pub hidden: Res<'w, Hidden>,
    pub frame: Option<Res<'w, RenderFrame>>,
    camera: Query<'w, 's, (&'static GlobalTransform, &'static Projection), With<Camera3d>>,
    windows: Query<'w, 's, &'static Window>,
}

impl StreamView<'_, '_> {
    /// The camera's view in the render frame, once there is a frame, a perspective
    /// camera and a window.
    pub fn view(&self) -> Option<(&RenderFrame, View)> {
        let frame = self.frame.as_deref()?;
        let (cam, projection) = self.camera.single().ok()?;
        let window = self.windows.single().ok()?;
        let Projection::Perspective(perspective) = projection else { return None };
        Some((frame, view_of(frame, cam, perspective, window)))
    }
}

/// What a system that puts meshes in the scene needs: commands to spawn and despawn,
/// and the mesh and material assets.
#[derive(SystemParam)]
pub struct Drawing<'w, 's> {
    pub commands: Commands<'w, 's>,
    pub meshes: ResMut<'w, Assets<Mesh>>,
    pub materials: ResMut<'w, Assets<StandardMaterial>>,
}

/// How the streaming stands, for the readout, the benchmark and the screenshot.
#[derive(SystemParam)]
pub struct StreamStatus<'w> {
    pub streaming: Res<'w, Streaming>,
    pub ground: Res<'w, Ground>,
    pub problems: Res<'w, Problems>,
}

/// The mouse over the city: its button, the window it is in, and whether a panel
/// is under it (a click on a panel is not a click on the city behind it).
#[derive(SystemParam)]
pub struct Pointer<'w, 's> {
    pub mouse: Res<'w, ButtonInput<MouseButton>>,
    pub windows: Query<'w, 's, &'static Window>,
    ui: Query<'w, 's, &'static Interaction>,
}

impl Pointer<'_, '_> {
    /// Where a left click was just released on the city (not on a panel).
    pub fn clicked_at(&self) -> Option<Vec2> {
        if !self.mouse.just_released(MouseButton::Left) || self.ui.iter().any(|i| *i != Interaction::None) {
            return None;
        }
        self.windows.single().ok()?.cursor_position()
    }
}

/// Rays from the camera through the screen, cast against meshes.
#[derive(SystemParam)]
pub struct Ray<'w, 's> {
    pub camera: Query<'w, 's, (&'static Camera, &'static GlobalTransform)>,
    pub ray_cast: MeshRayCast<'w, 's>,
}

impl Ray<'_, '_> {
    /// The ray through a screen position, in the render frame.
    pub fn through(&self, screen: Vec2) -> Option<Ray3d> {
        let (camera, at) = self.camera.single().ok()?;
        camera.viewport_to_world(at, screen).ok()
    }
}

//! BIM layers in the viewer: storeys lifted apart ("explode"), the shell (walls,
//! slabs, roofs, curtain walls, windows) drawn translucent so the interior shows
//! ("x-ray"), and picks that pass through an x-rayed shell to what is inside.
//! Storeys are shown and hidden through the layer panel's `<layer>/storey/<name>`
//! keys, in [`super::tiles`].

use bevy::prelude::*;

use super::ViewerOptions;

pub struct BimPlugin;

impl Plugin for BimPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, setup).add_systems(Update, apply_view);
    }
}

/// Metres between storeys when the panel switches explode on.
pub const EXPLODE_STEP_M: f32 = 4.0;

#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct BimView {
    pub xray: bool,
    pub explode_m: f32,
}

/// Which part of a building a BIM primitive draws (its glTF material's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Shell,
    Glazing,
    Interior,
}

impl PartKind {
    pub fn from_material(name: Option<&str>) -> Self {
        match name {
            Some("shell") => Self::Shell,
            Some("glazing") => Self::Glazing,
            _ => Self::Interior,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One BIM tile primitive: its storey (bottom = 0) and where it sits unexploded.
#[derive(Component, Debug, Clone)]
pub struct BimPart {
    pub storey: usize,
    pub kind: PartKind,
    pub base: Transform,
}

/// Picks ignore this entity (an x-rayed shell).
#[derive(Component)]
pub struct PickThrough;

#[derive(Resource)]
struct BimMaterials {
    opaque: [Handle<StandardMaterial>; 3],
    xray: [Handle<StandardMaterial>; 3],
}

fn setup(
    mut commands: Commands,
    options: Res<ViewerOptions>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let colours =
        [Color::srgb(0.86, 0.84, 0.80), Color::srgb(0.45, 0.62, 0.78), Color::srgb(0.78, 0.62, 0.42)];
    let opaque = colours
        .map(|c| materials.add(StandardMaterial { base_color: c, perceptual_roughness: 0.9, ..default() }));
    let xray = colours.map(|c| {
        materials.add(StandardMaterial {
            base_color: c.with_alpha(0.22),
            alpha_mode: AlphaMode::Blend,
            perceptual_roughness: 0.9,
            double_sided: true,
            cull_mode: None,
            ..default()
        })
    });
    commands.insert_resource(BimMaterials { opaque, xray });
    commands.insert_resource(BimView { xray: options.xray, explode_m: options.explode_m });
}

/// Where a part goes and how it looks under the current view.
pub fn placed(part: &BimPart, view: &BimView) -> (Transform, bool) {
    let mut t = part.base;
    // The render frame is y-up east-north-up near the city: lifting along +y is
    // lifting along the local vertical.
    t.translation.y += part.storey as f32 * view.explode_m;
    (t, view.xray && part.kind != PartKind::Interior)
}

type PartParts =
    (Entity, &'static BimPart, &'static mut Transform, &'static mut MeshMaterial3d<StandardMaterial>);

fn apply_view(
    mut commands: Commands,
    view: Option<Res<BimView>>,
    materials: Option<Res<BimMaterials>>,
    added: Query<(), Added<BimPart>>,
    mut parts: Query<PartParts>,
) {
    let (Some(view), Some(materials)) = (view, materials) else { return };
    if !view.is_changed() && added.is_empty() {
        return;
    }
    for (entity, part, mut transform, mut material) in &mut parts {
        let (t, see_through) = placed(part, &view);
        if *transform != t {
            *transform = t;
        }
        let want = if see_through { &materials.xray } else { &materials.opaque }[part.kind.index()].clone();
        if material.0 != want {
            material.0 = want;
        }
        if see_through {
            commands.entity(entity).insert(PickThrough);
        } else {
            commands.entity(entity).remove::<PickThrough>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explode_lifts_each_storey_and_xray_spares_the_interior() {
        let base = Transform::from_xyz(1.0, 2.0, 3.0);
        let part = |storey, kind| BimPart { storey, kind, base };
        let view = BimView { xray: true, explode_m: 4.0 };
        let (t, through) = placed(&part(2, PartKind::Shell), &view);
        assert_eq!(t.translation, Vec3::new(1.0, 10.0, 3.0));
        assert!(through);
        assert!(!placed(&part(0, PartKind::Interior), &view).1, "furniture stays solid and pickable");
        assert!(placed(&part(1, PartKind::Glazing), &view).1);
        let flat = BimView { xray: false, explode_m: 0.0 };
        assert_eq!(placed(&part(3, PartKind::Shell), &flat), (base, false));
        assert_eq!(PartKind::from_material(Some("glazing")), PartKind::Glazing);
        assert_eq!(PartKind::from_material(None), PartKind::Interior);
    }
}

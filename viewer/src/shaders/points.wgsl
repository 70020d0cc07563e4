// Point cloud splats. viewer/src/points.rs packs the vertices and
// viewer/src/render/points.rs owns the material; its test validates this file with naga.
//
// GPUs draw points one pixel wide, so every point arrives as four vertices that share
// its quantised position. The vertex stage pushes them apart on screen into a square
// whose side is the point spacing of the tile's level as seen from the camera (size
// attenuation), clamped in pixels; the fragment stage rounds the square into a disc.

#import bevy_pbr::mesh_functions::get_world_from_local
#import bevy_pbr::mesh_view_bindings::view

struct PointStyle {
    // 0 RGB, 1 intensity, 2 classification, 3 elevation (PointColouring).
    mode: u32,
    has_color: u32,
    // Metres between neighbouring points at this tile's level.
    spacing_m: f32,
    min_pixels: f32,
    max_pixels: f32,
    // Render-frame heights (y) of the layer's lowest and highest points.
    elevation_low: f32,
    elevation_high: f32,
    // Intensity shown as white.
    intensity_top: f32,
    pad0: f32,
    pad1: f32,
    pad2: f32,
    pad3: f32,
}

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> style: PointStyle;

struct Vertex {
    @builtin(instance_index) instance_index: u32,
    // Quantised position (the mesh transform scales and places it), then the corner 0..4.
    @location(0) corner: vec4<i32>,
    // r | g << 8 | b << 16 | class << 24, intensity.
    @location(1) packed: vec2<u32>,
}

struct VertexOutput {
    @builtin(position) clip: vec4<f32>,
    @location(0) color: vec3<f32>,
    // Where in its square this fragment lies, -1..1 on both axes.
    @location(1) offset: vec2<f32>,
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c <= vec3<f32>(0.04045));
}

// ASPRS LAS 1.4 standard classes 0..18, sRGB; anything else grey.
fn class_color(code: u32) -> vec3<f32> {
    var palette = array<vec3<f32>, 19>(
        vec3<f32>(0.60, 0.60, 0.60), // 0 created, never classified
        vec3<f32>(0.70, 0.70, 0.70), // 1 unclassified
        vec3<f32>(0.63, 0.47, 0.31), // 2 ground
        vec3<f32>(0.67, 0.87, 0.45), // 3 low vegetation
        vec3<f32>(0.35, 0.70, 0.30), // 4 medium vegetation
        vec3<f32>(0.13, 0.47, 0.17), // 5 high vegetation
        vec3<f32>(0.90, 0.35, 0.25), // 6 building
        vec3<f32>(0.95, 0.20, 0.85), // 7 low point (noise)
        vec3<f32>(0.95, 0.85, 0.20), // 8 reserved / model key
        vec3<f32>(0.20, 0.45, 0.90), // 9 water
        vec3<f32>(0.55, 0.30, 0.65), // 10 rail
        vec3<f32>(0.30, 0.30, 0.32), // 11 road surface
        vec3<f32>(0.95, 0.60, 0.10), // 12 reserved / overlap
        vec3<f32>(0.85, 0.85, 0.30), // 13 wire guard
        vec3<f32>(0.95, 0.95, 0.40), // 14 wire conductor
        vec3<f32>(0.80, 0.50, 0.20), // 15 transmission tower
        vec3<f32>(0.90, 0.70, 0.40), // 16 wire connector
        vec3<f32>(0.55, 0.55, 0.75), // 17 bridge deck
        vec3<f32>(1.00, 0.10, 0.10), // 18 high noise
    );
    if code < 19u {
        return palette[code];
    }
    return vec3<f32>(0.50, 0.50, 0.50);
}

// Low blue through green and yellow to high red: a terrain-style ramp.
fn elevation_color(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0) * 3.0;
    let blue = vec3<f32>(0.15, 0.30, 0.85);
    let green = vec3<f32>(0.20, 0.75, 0.35);
    let yellow = vec3<f32>(0.95, 0.85, 0.25);
    let red = vec3<f32>(0.85, 0.20, 0.15);
    if x < 1.0 {
        return mix(blue, green, x);
    }
    if x < 2.0 {
        return mix(green, yellow, x - 1.0);
    }
    return mix(yellow, red, x - 2.0);
}

@vertex
fn vertex(v: Vertex) -> VertexOutput {
    var out: VertexOutput;
    let world = get_world_from_local(v.instance_index) * vec4<f32>(vec3<f32>(v.corner.xyz), 1.0);
    var clip = view.clip_from_world * world;
    let k = v.corner.w;
    let offset = vec2<f32>(select(-1.0, 1.0, k == 1 || k == 2), select(-1.0, 1.0, k >= 2));
    // Pixels per metre at this depth; clip.w is the depth for a perspective view and
    // 1 for an orthographic one, where clip_from_view[1][1] is 2 / height instead.
    let pixels_per_metre = view.viewport.w * view.clip_from_view[1][1] * 0.5 / max(clip.w, 1e-3);
    let size = clamp(style.spacing_m * pixels_per_metre, style.min_pixels, style.max_pixels);
    clip.x += offset.x * size / view.viewport.z * clip.w;
    clip.y += offset.y * size / view.viewport.w * clip.w;
    out.clip = clip;
    out.offset = offset;

    let p = v.packed.x;
    var mode = style.mode;
    if mode == 0u && style.has_color == 0u {
        mode = 3u;
    }
    var color: vec3<f32>;
    switch mode {
        case 0u: {
            color = srgb_to_linear(vec3<f32>(f32(p & 255u), f32((p >> 8u) & 255u), f32((p >> 16u) & 255u)) / 255.0);
        }
        case 1u: {
            let t = clamp(f32(v.packed.y) / max(style.intensity_top, 1.0), 0.0, 1.0);
            color = srgb_to_linear(vec3<f32>(sqrt(t)));
        }
        case 2u: {
            color = srgb_to_linear(class_color(p >> 24u));
        }
        default: {
            let range = max(style.elevation_high - style.elevation_low, 1e-3);
            color = srgb_to_linear(elevation_color((world.y - style.elevation_low) / range));
        }
    }
    out.color = color;
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    if dot(in.offset, in.offset) > 1.0 {
        discard;
    }
    return vec4<f32>(in.color, 1.0);
}

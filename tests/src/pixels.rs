//! Screenshots: PNG pixels and the colours the viewer draws things in.

use std::path::Path;

/// Lit roofs are near white; the viewer's ground is a dark grey (sRGB 0.30, 0.33, 0.31).
pub fn is_building(p: [u8; 3]) -> bool {
    p.iter().map(|c| u32::from(*c)).sum::<u32>() / 3 > 170
}

/// The picked building's highlight: saturated orange.
pub fn is_highlight([r, g, b]: [u8; 3]) -> bool {
    r > 150 && i32::from(r) - i32::from(g) > 50 && g > b
}

/// A PNG's size and pixels as RGB (alpha dropped).
pub fn read_png_rgb(path: &Path) -> (usize, usize, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    let rgb = buf.chunks_exact(channels).take(width * height).map(|p| [p[0], p[1], p[2]]).collect();
    (width, height, rgb)
}

pub fn is_alarm_red([r, g, b]: [u8; 3]) -> bool {
    r > 180 && g < 90 && b < 90
}

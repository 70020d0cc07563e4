//! The decoders the viewer and the server run on stored bytes: MVT, PMTiles header,
//! directories and tile lookup, point cloud GLB, GLB JSON chunk; and drop sniffing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cim_core::formats::sniff(data);
    let _ = cim_core::mvt_decode::decode_tile(data);
    let _ = cim_core::pmtiles::Header::parse(data);
    let _ = cim_core::pmtiles::decode_directory(data);
    if let Ok((_, entries)) = cim_core::pmtiles::tile_entries(data) {
        for e in entries.iter().take(16) {
            if let Ok(tile) = cim_core::tile::TileId::from_hilbert_id(e.tile_id) {
                let _ = cim_core::pmtiles::read_tile(data, tile);
            }
        }
    }
    let _ = cim_core::points::read_points_glb(data);
    let _ = cim_core::glb::json_chunk(data);
});

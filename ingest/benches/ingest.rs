//! Ingest throughput on the shared sample data (`cargo bench -p cim-ingest`).
//! Features/s = feature count ÷ the reported time per iteration.

use std::path::PathBuf;

use cim_ingest::{IngestOptions, ingest};
use criterion::{Criterion, criterion_group, criterion_main};

fn sample(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data").join(rel)
}

fn bench_ingest(c: &mut Criterion) {
    let store = std::env::temp_dir().join(format!("cim-bench-{}", std::process::id()));
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    for (name, file, max_zoom) in [
        ("helsinki_osm_pbf_z16", "osm/Helsinki.osm.pbf", 16),
        ("helsinki_buildings_fgb_z16", "osm/helsinki_buildings.fgb", 16),
        ("helsinki_buildings_gpkg_z16", "osm/helsinki_buildings.gpkg", 16),
        ("tiger_roads_geojson_z16", "geojson/tiger_roads.geojson", 16),
        ("countries_shp_z6", "shapefile/countries.shp", 6),
    ] {
        let path = sample(file);
        if !path.exists() {
            eprintln!("skipping {name}: {} missing", path.display());
            continue;
        }
        let mut options = IngestOptions::new(&store, name, vec![path]);
        options.max_zoom = max_zoom;
        group.bench_function(name, |b| b.iter(|| ingest(&options).expect("ingest")));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&store);
}

criterion_group!(benches, bench_ingest);
criterion_main!(benches);

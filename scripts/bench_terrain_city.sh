#!/usr/bin/env bash
# Terrain and city model ingest figures on the shared sample data (../shared/data):
#  1. terrain: the Lyon DEM (352×169 pixels of 10 m) and the same ground resampled
#     by GDAL to 2 m (1760×845, cubic), at finest-level error bounds of 0.25 to 2 m:
#     wall time, tiles/s, and per zoom level the triangles per tile beside the
#     level's bound, its measured error against every pixel centre and the 99th
#     percentile; beside pymartini 0.6 (PyPI; Martini in Cython) meshing the same
#     number of 65×65 grids cut from the raster at the same bound. pymartini does
#     only the meshing (no reprojection, stitching, normals, skirts or GLB), and its
#     bound is Martini's midpoint test, not a bound on every sample as ours is.
#  2. CityJSON: every file, objects/s and triangles; delft.json beside cjio 0.10
#     (PyPI) exporting the same file to one GLB.
# Prints figures; asserts nothing. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
cargo build --release -q -p cim-ingest
bin="$CARGO_TARGET_DIR/release"
data=../shared/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
for mod in pymartini cjio triangle mapbox_earcut; do
  python3 -c "import $mod" 2>/dev/null || pip3 install -q --break-system-packages "${mod/_/-}" >/dev/null 2>&1 || true
done

gdalwarp -q -r cubic -tr 2 2 "$data/dem/lyon_dem.tif" "$work/lyon_2m.tif"
printf '\n%-14s %7s %7s %8s %9s   %s\n' DEM "bound m" tiles "ours s" "tiles/s" "per level: zoom tiles triangles/tile bound measured-max p99 (m)"
for dem in "$data/dem/lyon_dem.tif" "$work/lyon_2m.tif"; do
  for bound in 0.25 0.5 1 2; do
    t0=$(now)
    "$bin/cim-ingest" --store "$work/terrain" --layer t --terrain-error "$bound" "$dem" >/dev/null
    t1=$(now)
    python3 - "$work/terrain/t/catalogue.json" "$(basename "$dem")" "$bound" "$t0" "$t1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
levels = c["terrain"]["levels"]
tiles = sum(l["tiles"] for l in levels)
secs = float(sys.argv[5]) - float(sys.argv[4])
per = "  ".join(f"z{l['zoom']} {l['tiles']} {l['triangles'] / l['tiles']:.0f} {l['error_bound_m']:.2f} {l['geometric_error_m']:.2f} {l['pixel_error_p99_m']:.2f}" for l in levels)
print(f"{sys.argv[2]:<14} {float(sys.argv[3]):>7.2f} {tiles:>7} {secs:>8.2f} {tiles / secs:>9.0f}   {per}")
EOF
  done
done

if python3 -c "import pymartini, numpy" 2>/dev/null; then
  gdal_translate -q -of ENVI -ot Float32 "$work/lyon_2m.tif" "$work/lyon_2m.raw"
  size=$(gdalinfo "$work/lyon_2m.tif" | sed -n 's/^Size is \([0-9]*\), \([0-9]*\)/\1 \2/p')
  printf '\n%-30s %7s %7s %9s %14s\n' "pymartini 0.6 (mesh only)" "bound m" grids "tiles/s" "triangles/tile"
  for bound in 0.25 0.5 1 2; do
    python3 - "$work/lyon_2m.raw" "$bound" $size <<'EOF'
import sys, time, numpy as np
from pymartini import Martini
band = np.fromfile(sys.argv[1], dtype=np.float32).reshape(int(sys.argv[4]), int(sys.argv[3]))
bound = float(sys.argv[2])
martini = Martini(65)
grids = [band[r:r + 65, c:c + 65] for r in range(0, band.shape[0] - 65, 64) for c in range(0, band.shape[1] - 65, 64)]
t0 = time.perf_counter()
triangles = 0
for g in grids:
    tile = martini.create_tile(np.ascontiguousarray(g))
    _, tris = tile.get_mesh(bound)
    triangles += len(tris) // 3
secs = time.perf_counter() - t0
print(f"{'lyon_2m.tif':<30} {bound:>7.2f} {len(grids):>7} {len(grids) / secs:>9.0f} {triangles / len(grids):>14.0f}")
EOF
  done
fi

printf '\n%-24s %8s %9s %10s %11s\n' "CityJSON file" objects "ours s" "objects/s" triangles
for f in "$data"/cityjson/*.json; do
  name=$(basename "$f")
  t0=$(now)
  "$bin/cim-ingest" --store "$work/city" --layer c --src-crs EPSG:7415 "$f" >/dev/null
  t1=$(now)
  python3 - "$work/city/c/catalogue.json" "$name" "$t0" "$t1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
secs = float(sys.argv[4]) - float(sys.argv[3])
objects = sum(c["city_model"]["objects_by_type"].values())
triangles = sum(c["city_model"]["triangles_by_surface"].values())
print(f"{sys.argv[2]:<24} {objects:>8} {secs:>9.3f} {objects / secs:>10.0f} {triangles:>11}")
EOF
done
if command -v cjio >/dev/null; then
  t0=$(now)
  cjio --suppress_msg "$data/cityjson/delft.json" export glb "$work/delft_cjio.glb" >/dev/null 2>&1 || true
  t1=$(now)
  t2=$(now)
  "$bin/cim-ingest" --store "$work/city" --layer d "$data/cityjson/delft.json" >/dev/null
  t3=$(now)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "delft.json: cjio export glb %.2f s, ours (tiles, features, catalogue) %.2f s: %.0fx\n", b - a, d - c, (b - a) / (d - c) }'
fi

#!/usr/bin/env bash
# Side-by-side figures on the shared sample data (../shared/data):
#  1. ingest time and features/s per format, with the stage split (read / MVT / 3D),
#     next to GDAL's own MVT writer (ogr2ogr -f MBTILES) cutting the same zooms;
#  2. loopback requests/s (wrk, 2 threads, 32 connections, 5 s each) for a cached MVT
#     tile, TileJSON, a building GLB, an R-tree pick and a bbox query;
#  3. the viewer flying its scripted path over Helsinki for 30 s under Xvfb (software
#     rendering unless a GPU is there): frame times, tiles loaded per second, draw
#     calls, GPU-memory estimate and peak RSS, with and without shadows;
#  4. the same viewer as WebAssembly in headless Chromium (SwiftShader WebGL2) on the
#     same path: bundle size raw / gzip / brotli, time to first frame and to a
#     complete view from navigation, frame times beside the native row.
#  5. IFC models: our STEP parse (MB/s) and geometry (elements/s) beside IfcOpenShell's
#     (PyPI ifcopenshell: ifcopenshell.open, then its geometry iterator on every core).
# Prints figures; asserts nothing. Bounded: ~2 minutes of load in all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p cim-ingest -p cim-tileserver
cargo build -q --workspace  # the viewer (dev profile, optimised; see Cargo.toml)
bash scripts/build-web.sh >/dev/null
web="$CARGO_TARGET_DIR-web/dist"
bin="$CARGO_TARGET_DIR/release"
data=../shared/data
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }

printf '\n%-32s %8s %9s %11s %7s %7s %7s %10s %7s\n' dataset features "ours s" "features/s" read_ms mvt_ms 3d_ms "gdal s" "gdal/ours"
for spec in "helsinki_pbf:osm/Helsinki.osm.pbf:16" "helsinki_fgb:osm/helsinki_buildings.fgb:16" \
            "helsinki_gpkg:osm/helsinki_buildings.gpkg:16" "helsinki_geojson:osm/helsinki_buildings.geojson:16" \
            "tiger_roads:geojson/tiger_roads.geojson:16" "countries_shp:shapefile/countries.shp:6"; do
  IFS=: read -r name file zoom <<<"$spec"
  t0=$(now)
  out=$(RUST_LOG=cim_ingest=info "$bin/cim-ingest" --store "$work/store" --layer "$name" --max-zoom "$zoom" "$data/$file" 2>"$work/log")
  t1=$(now)
  features=$(sed -n 's/.*: \([0-9]*\) features.*/\1/p' <<<"$out")
  ms() { sed -n "s/.*stage=\"\?$1\"\? .*ms=\([0-9]*\).*/\1/p" "$work/log" | head -1; }
  t2=$(now)
  ogr2ogr -q -f MBTILES "$work/$name.mbtiles" "$data/$file" -dsco MINZOOM=0 -dsco MAXZOOM="$zoom" 2>/dev/null || true
  t3=$(now)
  awk -v n="$name" -v f="$features" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v r="$(ms read)" -v m="$(ms mvt)" -v g="$(ms 3dtiles)" \
    'BEGIN { ours = b - a; gdal = d - c; printf "%-32s %8d %9.2f %11.0f %7s %7s %7s %10.2f %7.1fx\n", n, f, ours, f / ours, r, m, (g == "" ? "-" : g), gdal, gdal / ours }'
  rm -f "$work/$name.mbtiles"
done

python3 -c "import ifcopenshell" 2>/dev/null || pip3 install -q --break-system-packages ifcopenshell >/dev/null 2>&1 || true
if python3 -c "import ifcopenshell" 2>/dev/null; then
  printf '\n%-28s %6s %9s %8s %9s %8s %7s %10s %9s %10s %7s\n' "IFC model (best of 3)" MB "parse ms" "MB/s" "IOS ms" "IOS/ours" elements "geom ms" "elem/s" "IOS geom" "IOS/ours"
  for file in AC20-FZK-Haus duplex tested_sample_project example; do
    best_parse=""; best_geom=""
    for _ in 1 2 3; do
      RUST_LOG=cim_ingest=info "$bin/cim-ingest" --store "$work/bim" --layer "ifc_$RANDOM" "$data/ifc/$file.ifc" >/dev/null 2>"$work/ifc.log"
      p=$(sed -n 's/.*stage="\?parse"\? .*us=\([0-9]*\).*/\1/p' "$work/ifc.log" | head -1)
      g=$(sed -n 's/.*stage="\?geometry"\? .*us=\([0-9]*\).*/\1/p' "$work/ifc.log" | head -1)
      elements=$(sed -n 's/.*stage="\?geometry"\? elements=\([0-9]*\).*/\1/p' "$work/ifc.log" | head -1)
      { [ -z "$best_parse" ] || [ "$p" -lt "$best_parse" ]; } && best_parse=$p
      { [ -z "$best_geom" ] || [ "$g" -lt "$best_geom" ]; } && best_geom=$g
    done
    peer=$(for _ in 1 2 3; do python3 scripts/bench_ifc_peer.py "$data/ifc/$file.ifc"; done | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print(min(x["parse_s"] for x in r), min(x["geometry_s"] for x in r))')
    bytes=$(stat -c %s "$data/ifc/$file.ifc")
    awk -v n="$file" -v b="$bytes" -v p="$best_parse" -v g="$best_geom" -v e="$elements" -v peer="$peer" 'BEGIN {
      split(peer, q, " "); mb = b / 1e6; ps = p / 1e6; gs = g / 1e6;
      printf "%-28s %6.2f %9.1f %8.1f %9.1f %7.1fx %10d %9.1f %10.0f %10.1f %7.1fx\n", n, mb, ps * 1e3, mb / ps, q[1] * 1e3, q[1] / ps, e, gs * 1e3, e / gs, q[2] * 1e3, q[2] / gs }'
  done
fi

"$bin/cim-server" --store "$work/store" --bind 127.0.0.1:0 --web "$web" >"$work/server.out" 2>/dev/null &
server=$!
for _ in $(seq 50); do [ -s "$work/server.out" ] && break; sleep 0.1; done
url=$(sed 's/.* //' "$work/server.out")
glb=$(ls "$work/store/helsinki_pbf/3dtiles/content" | head -1)
printf '\n%-40s %12s %12s\n' "endpoint (wrk -t2 -c32 -d5s)" "requests/s" "p50 latency"
for spec in "MVT z14 (gzip):/tiles/helsinki_pbf/14/9326/4741.mvt" "TileJSON:/tiles/helsinki_pbf.json" \
            "GLB $glb:/3dtiles/helsinki_pbf/content/$glb" "pick (R-tree):/api/pick?lon=24.9445&lat=60.1716" \
            "bbox query (R-tree):/api/query?bbox=24.94,60.165,24.945,60.17&layer=helsinki_pbf&limit=50"; do
  label=${spec%%:*}; path=${spec#*:}
  curl -s -o /dev/null "$url$path"  # load the layer first
  res=$(wrk -t2 -c32 -d5s --latency -H "Accept-Encoding: gzip" "$url$path")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$res")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$res")
  printf '%-40s %12s %12s\n' "$label" "$rps" "$p50"
done

if command -v xvfb-run >/dev/null; then
  printf '\n%-22s %6s %8s %8s %8s %9s %7s %8s %8s\n' "viewer (30 s path)" fps "p50 ms" "p95 ms" "max ms" "tiles/s" "draws" "GPU MB" "RSS MB"
  for variant in "shadows:" "no shadows:--no-shadows"; do
    label=${variant%%:*}; flag=${variant#*:}
    line=$(xvfb-run -a -s "-screen 0 1280x720x24" env WGPU_BACKEND=vulkan "$CARGO_TARGET_DIR/debug/cim-viewer" \
      --server "$url" --layers helsinki_pbf --window 1280x720 --bench 30 $flag 2>/dev/null | sed -n 's/^bench //p')
    python3 -c 'import json,sys; b=json.loads(sys.argv[2]); print("%-22s %6.1f %8.0f %8.0f %8.0f %9.1f %7d %8.1f %8.0f" % (sys.argv[1], b["fps"], b["frame_ms_p50"], b["frame_ms_p95"], b["frame_ms_max"], b["tiles_per_s"], b["max_draw_calls"], b["max_gpu_estimate_mb"], b["peak_rss_mb"] or 0))' "$label" "$line"
  done
fi

# The browser viewer: what a first visit downloads, and the same 30 s path.
printf '\n%-26s %10s %10s %10s\n' "web bundle (KiB)" raw gzip brotli
for f in cim_viewer_bg.wasm cim_viewer.js cim_viewer_webgpu_bg.wasm cim_viewer_webgpu.js index.html; do
  printf '%-26s %10d %10d %10d\n' "$f" $(( $(stat -c %s "$web/$f") / 1024 )) \
    $(( $(stat -c %s "$web/$f.gz") / 1024 )) $(( $(stat -c %s "$web/$f.br") / 1024 ))
done
if [ -d tests/oracles/node_modules ] && [ -x /usr/bin/chromium ]; then
  printf '%-26s %6s %8s %8s %8s %9s %7s %9s %9s\n' "browser (30 s path)" fps "p50 ms" "p95 ms" "max ms" tiles/s draws "1st frame" "all tiles"
  # Each build: a first visit (home view, nothing cached), then the scripted path.
  # SwiftShader renders both on the CPU, WebGL2 through ANGLE, WebGPU through Dawn.
  for backend in webgl2 webgpu; do
    flag=""
    [ "$backend" = webgpu ] && flag="--webgpu"
    first=$(node tests/oracles/browser_viewer.mjs $flag --out "$work/browser" --url "$url/?layers=helsinki_pbf&shadows=off&backend=$backend")
    run=$(node tests/oracles/browser_viewer.mjs $flag --bench --out "$work/browser" \
      --url "$url/?layers=helsinki_pbf&bench=30&shadows=off&backend=$backend")
    python3 -c 'import json,sys
f, r = json.loads(sys.argv[2]), json.loads(sys.argv[1])
for x in (f, r):
  if x.get("failure"): sys.exit("browser run failed: " + x["failure"])
m, b = f["milestones"], r["bench"]
print("%-26s %6.1f %8.0f %8.0f %8.0f %9.1f %7d %9d %9s" % ("chromium swiftshader " + sys.argv[3], b["fps"], b["frame_ms_p50"], b["frame_ms_p95"], b["frame_ms_max"], b["tiles_per_s"], b["max_draw_calls"], m["first_frame"], m.get("view_complete")))' "$run" "$first" "$backend"
  done
  echo "1st frame and all tiles: ms from navigation (a first visit to the home view)"
fi

# Live sensors: HTTP and MQTT readings/s with 10 000 sensors (mosquitto's own
# pass-through beside them), publish -> WebSocket latency, memory with 100 viewers.
echo
cargo bench -q -p cim-tileserver --bench live 2>/dev/null | grep -E '^(HTTP|MQTT|LIVE) '

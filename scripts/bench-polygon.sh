#!/usr/bin/env bash
# Ingest time of one polygon by its vertex count (issue 23: it grew with the square
# of the count). Builds the release cim-ingest, writes a city block's outline with
# N vertices (a wobbly circle 2 km across, valid), ingests it and prints seconds.
#   bash scripts/bench-polygon.sh [N ...]     (default 50000 100000 1000000)
#   CIM_INGEST=~/.cache/cim/target/debug/cim-ingest bash scripts/bench-polygon.sh 50000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
# CIM_INGEST=path times that binary instead (the dev build, say) without building.
if [ -n "${CIM_INGEST:-}" ]; then
  bin="$CIM_INGEST"
else
  cargo build --release --locked -p cim-ingest --bin cim-ingest >&2
  bin="$CARGO_TARGET_DIR/release/cim-ingest"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50000 100000 1000000)
printf '%10s %10s %14s\n' vertices seconds "us/vertex"
for n in "${sizes[@]}"; do
  python3 - "$n" "$work/p$n.geojson" <<'PY'
import json, math, sys
n, out = int(sys.argv[1]), sys.argv[2]
lon0, lat0, r = 24.94, 60.17, 0.009
ring = []
for i in range(n):
    a = 2 * math.pi * i / n
    k = r * (1 + 0.02 * math.sin(37 * a))
    ring.append([lon0 + 2 * k * math.cos(a), lat0 + k * math.sin(a)])
ring.append(ring[0])
json.dump({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"building": "yes", "height": 20},
           "geometry": {"type": "Polygon", "coordinates": [ring]}}]}, open(out, "w"))
PY
  start=$(date +%s.%N)
  "$bin" --store "$work/store" --layer "p$n" "$work/p$n.geojson" >/dev/null
  end=$(date +%s.%N)
  awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%10d %10.2f %14.2f\n", n, e - s, (e - s) * 1e6 / n }'
done

#!/usr/bin/env bash
# Live fan-out at city scale (issue 25): WebSocket viewers subscribed to every sensor
# while readings stream in, each reading timed from its stamp (set as the simulator
# sends it) to its arrival at every viewer.
#   bash scripts/bench_live.sh [VIEWERS] [READINGS_PER_S] [SECONDS]   (default 100 10000 10)
# Ingests the shared Helsinki buildings into a temporary store, serves it with the
# release cim-server and runs the release cim-simulate with --viewers on the same
# machine (client and server share its cores). Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
viewers=${1:-100}
rate=${2:-10000}
seconds=${3:-10}
source=../shared/data/osm/helsinki_buildings.geojson
[ -f "$source" ] || { echo "bench_live.sh: $source missing (../shared beside the checkout)" >&2; exit 1; }
cargo build --release --locked -p cim-ingest -p cim-tileserver -p cim-simulate >&2
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/cim-ingest" --store "$work/store" --layer city --max-zoom 14 "$source" >&2
port=$((20000 + RANDOM % 20000))
"$bin/cim-server" --store "$work/store" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sensors=$(( rate / 100 > 1000 ? rate / 100 : 1000 ))
"$bin/cim-simulate" --server "http://127.0.0.1:$port" --layer city --sensors "$sensors" \
  --rate "$rate" --seconds "$seconds" --viewers "$viewers"
echo "server peak RSS MB: $(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status")"

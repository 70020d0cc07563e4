#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, end-to-end tests on ../shared/data with
# the npm oracles and GDAL.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
bash scripts/install-deps.sh
(cd tests/oracles && npm ci --no-audit --no-fund --silent)
# PyPI oracles: IfcOpenShell for the BIM tests (tests/oracles/ifc_bounds.py), laspy
# with its LAZ backend for the point cloud tests (tests/oracles/las_facts.py).
pip_install() {
  local pip
  pip=$(command -v pip3 || command -v pip)
  "$pip" install --quiet "$@" 2>/dev/null || "$pip" install --quiet --break-system-packages "$@"
}
python3 -c "import ifcopenshell" 2>/dev/null || pip_install ifcopenshell==0.9.0.post1
python3 -c "import laspy, lazrs" 2>/dev/null || pip_install "laspy[lazrs]==2.7.0"
cargo fmt --all --check
# The shared crate and the whole viewer must stay pure Rust: the browser bundle builds
# them for wasm32 (bevy on WebGL2, render/platform/web.rs), and
# tests/tests/browser_e2e.rs opens it in headless Chromium. About 35 min cold (alone) on
# 2 cores; a few minutes when $CARGO_TARGET_DIR-web is warm and the viewer changed.
# It runs beside clippy and the native build: its own target directory, no shared
# lock, and each build leaves a core idle at the single-crate stretches of bevy's
# graph, so overlapping them shortens a cold run.
web_log=$(mktemp)
bash scripts/build-web.sh >"$web_log" 2>&1 &
web_build=$!
trap 'kill $web_build 2>/dev/null || true' EXIT
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
if ! wait $web_build; then
  cat "$web_log" >&2
  echo "the browser bundle failed to build" >&2
  exit 1
fi
cat "$web_log"
log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary (cargo prints one per binary, doc-tests last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"

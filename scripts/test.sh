#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, end-to-end tests on ../shared/data with
# the npm oracles and GDAL.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
# Each stage prints the seconds since the start, for the cold-run figures in README.md.
stage() { echo "== ${SECONDS}s: $*"; }
stage "installing system packages"
bash scripts/install-deps.sh
stage "rustfmt"
cargo fmt --all --check
stage "dependency direction"
python3 scripts/check_dependencies.py
# The test oracles install beside the builds (npm compiles better-sqlite3 for
# 3d-tiles-tools, a few CPU-minutes cold) and are awaited before the tests run.
# npm: tests/oracles and the 3D Tiles validator. PyPI: IfcOpenShell for the BIM tests (tests/oracles/ifc_bounds.py),
# laspy with its LAZ backend for the point cloud tests (tests/oracles/las_facts.py).
# tests/oracles/node_modules links to an install kept per lock file under
# ~/.cache/cim/oracles: `npm ci` on every run rebuilt better-sqlite3 each time (about a
# minute of a warm run).
install_oracles() {
  local lock cache
  lock=$(sha256sum tests/oracles/package-lock.json | cut -c1-16)
  cache="$(dirname "$CARGO_TARGET_DIR")/oracles/$lock"
  if [ ! -f "$cache/.installed" ]; then
    rm -rf "$cache"
    mkdir -p "$cache"
    cp tests/oracles/package.json tests/oracles/package-lock.json "$cache/"
    # better-sqlite3 has no prebuilt binary reachable here (GitHub), and node-gyp would
    # fetch node's headers from nodejs.org: on a new machine it builds against the
    # headers Debian's nodejs installs instead.
    if [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$cache/.installed"
  fi
  rm -rf tests/oracles/node_modules
  ln -s "$cache/node_modules" tests/oracles/node_modules
  # CesiumGS 3d-tiles-validator, from ../shared (not on the npm registry here); the
  # e2e tests run it on every layer kind's served tileset.
  bash ../shared/tools/3d-tiles-validator/install.sh >/dev/null
  local pip
  pip=$(command -v pip3 || command -v pip)
  pip_install() { "$pip" install --quiet "$@" 2>/dev/null || "$pip" install --quiet --break-system-packages "$@"; }
  python3 -c "import ifcopenshell" 2>/dev/null || pip_install ifcopenshell==0.9.0.post1
  python3 -c "import laspy, lazrs" 2>/dev/null || pip_install "laspy[lazrs]==2.7.0"
}
oracles_log=$(mktemp)
install_oracles >"$oracles_log" 2>&1 &
oracles=$!
# The shared crate and the whole viewer must stay pure Rust: the browser bundle builds
# them for wasm32 (bevy on WebGL2, render/platform/web.rs), and
# tests/tests/browser_e2e.rs opens it in headless Chromium. Cold on 2 cores, the WebGL2
# module was ready after 46 min beside the native build, the WebGPU module 7 min later;
# a few minutes when $CARGO_TARGET_DIR-web is warm and the viewer changed.
# It runs beside clippy and the native build: its own target directory, no shared
# lock, and each build leaves a core idle at the single-crate stretches of bevy's
# graph, so overlapping them shortens a cold run.
web_log=$(mktemp)
bash scripts/build-web.sh >"$web_log" 2>&1 &
web_build=$!
trap 'kill $web_build $oracles 2>/dev/null || true' EXIT
# Clippy lints while the workspace compiles: clippy-driver as the workspace wrapper is
# what `cargo clippy --workspace --all-targets -- -D warnings` runs, but it builds
# instead of only checking, so the dependencies are compiled once for both the lints
# and the tests instead of once checked and once built.
clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
native_cargo() {
  RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" cargo "$@"
}
stage "clippy and the native build"
# --timings leaves a per-crate report (the long poles of a cold build) in
# $CARGO_TARGET_DIR/cargo-timings/.
native_cargo test --workspace --all-targets --locked --no-run --timings
native_cargo build --workspace --locked
stage "native build done; waiting for the oracles"
if ! wait $oracles; then
  cat "$oracles_log" >&2
  echo "the test oracles failed to install" >&2
  exit 1
fi
# The tests that do not draw run while the browser bundle may still be building
# (cold, the WebGPU module is compiled after the native build is done); the viewer's
# screenshots (llvmpipe, timing-sensitive) and the browser's wait for the bundle and
# have the cores to themselves; the doc-tests last. Each part runs as long as the one
# before passed; the closing line counts all of them.
log=$(mktemp)
status=0
run_tests() { native_cargo test --workspace --locked "$@" 2>&1 | tee -a "$log"; }
drawing=(viewer_e2e browser_e2e)
test_targets=()
for t in */tests/*.rs; do
  t=$(basename "$t" .rs)
  [[ " ${drawing[*]} " == *" $t "* ]] || test_targets+=(--test "$t")
done
# One binary at a time: each already runs its tests on both cores; two at a time
# gained nothing (244 s, against 217 and 260 one at a time on warm runs).
stage "tests that do not draw"
run_tests --lib --bins "${test_targets[@]}" || status=1
stage "waiting for the browser bundle"
if ! wait $web_build; then
  cat "$web_log" >&2
  echo "the browser bundle failed to build" >&2
  exit 1
fi
cat "$web_log"
if [ $status = 0 ]; then
  stage "viewer and browser tests"
  run_tests --test viewer_e2e --test browser_e2e || status=1
fi
if [ $status = 0 ]; then
  stage "doc-tests"
  run_tests --doc || status=1
fi
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log" || status=1
stage "done"
exit $status

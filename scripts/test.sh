#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, end-to-end tests on ../shared/data with
# the npm oracles and GDAL.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
bash scripts/install-deps.sh
(cd tests/oracles && npm ci --no-audit --no-fund --silent)
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# The shared crate and the whole viewer must stay pure Rust: the browser bundle builds
# them for wasm32 (bevy on WebGL2, render/platform/web.rs), and
# tests/tests/browser_e2e.rs opens it in headless Chromium. About 25 min cold on
# 2 cores; a few minutes when $CARGO_TARGET_DIR-web is warm and the viewer changed.
bash scripts/build-web.sh
log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over every test binary (cargo prints one per binary, doc-tests last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"

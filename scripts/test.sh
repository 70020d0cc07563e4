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
cargo test --workspace --locked

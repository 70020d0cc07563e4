#!/usr/bin/env bash
# Installs what the build and the tests need on Debian 12, skipping what is there.
set -euo pipefail
packages=(pkg-config libgdal-dev gdal-bin clang libclang-dev nodejs npm python3-pip unzip curl wrk
  rustc-web cargo-web rust-web-src rust-web-clippy lld-22 brotli chromium
  xvfb mesa-vulkan-drivers libvulkan1 libasound2-dev libudev-dev libwayland-dev libxkbcommon-dev libxkbcommon-x11-0
  libfontconfig-dev fonts-dejavu-core fonts-wqy-microhei mosquitto mosquitto-clients nginx-light)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node from elsewhere (e.g. nodesource) is fine too.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
if command -v pip3 >/dev/null || command -v pip >/dev/null; then missing=("${missing[@]/python3-pip}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 (rustup) first" >&2; exit 1; }
# Debian's wasm-capable rustc, for checking that the shared crate and the viewer build
# for the browser (rustup cannot add targets here).
if command -v rustup >/dev/null && ! rustup toolchain list | grep -q '^debweb'; then
  rustup toolchain link debweb /usr
fi

#!/usr/bin/env bash
# The browser viewer: cim-viewer for wasm32 (a WebGL2 and a WebGPU module) with
# Debian's rustc-web (rustup cannot add targets here), bound by wasm-bindgen (the version Cargo.lock names), precompressed
# (gzip, brotli) for cim-server --web; WASM_OPT=1 also runs wasm-opt -Os (see below).
#   [WASM_OPT=1] scripts/build-web.sh [OUT_DIR]     default: $CARGO_TARGET_DIR-web/dist
# Cold on 2 cores and beside the native build (scripts/test.sh), the WebGL2 module takes
# about 46 minutes and the WebGPU one 7 more; later runs reuse $CARGO_TARGET_DIR-web
# and redo only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
web_target="$CARGO_TARGET_DIR-web"
out="${1:-$web_target/dist}"
tools="$(dirname "$CARGO_TARGET_DIR")/tools"

bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
bindgen="$tools/bin/wasm-bindgen"
if ! "$bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $bindgen_version"; then
  echo "installing wasm-bindgen-cli $bindgen_version into $tools"
  # Its own target directory. Not --locked: its lock file pins a yanked webpki-roots.
  CARGO_TARGET_DIR="$tools/build" cargo install -q --root "$tools" wasm-bindgen-cli --version "$bindgen_version"
  rm -rf "$tools/build"
fi

# Two builds, because bevy chooses its renderer when it is compiled: WebGL2 (every
# browser) and WebGPU (`--features webgpu`). They share the target directory: only
# wgpu, bevy's render crates and the viewer differ, the rest is built once. Each
# module is copied out at once, since both builds write the same file name.
modules="$web_target/modules"
mkdir -p "$modules"
# The workspace crates compile through rustc-web's clippy-driver (rust-web-clippy), so
# the wasm-only code (platform/web.rs and the rest behind cfg(target_arch)) is linted
# as the native build is, at no extra compile, with viewer/clippy-web/clippy.toml
# refusing file system and blocking calls there.
web_clippy=/usr/bin/clippy-driver
[ -x "$web_clippy" ] || { echo "build-web.sh: $web_clippy missing (apt-get install rust-web-clippy)" >&2; exit 1; }
build_module() { # NAME [CARGO FLAGS]
  local name=$1
  shift
  PATH=/usr/lib/llvm-22/bin:$PATH RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$web_target" \
    RUSTC_WORKSPACE_WRAPPER="$web_clippy" CLIPPY_CONF_DIR="$PWD/viewer/clippy-web" \
    CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo +debweb build -q --locked --profile web -p cim-viewer --bin cim-viewer \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort "$@"
  cp "$web_target/wasm32-unknown-unknown/web/cim-viewer.wasm" "$modules/$name.wasm.tmp"
  mv "$modules/$name.wasm.tmp" "$modules/$name.wasm"
  echo "$name.wasm built, ${SECONDS}s after the start of build-web.sh"
}
build_module cim_viewer
build_module cim_viewer_webgpu --features webgpu

mkdir -p "$(dirname "$out")"
stamp="$out/.built-from"
# The UI fonts for non-ASCII and CJK text, fetched by the page only when some text
# needs them (viewer/src/render/fonts.rs): Debian's fonts-dejavu-core (Bitstream Vera
# licence terms) and fonts-wqy-microhei (Apache-2.0).
sans_font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
cjk_font=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
fingerprint="$(sha256sum "$modules"/cim_viewer.wasm "$modules"/cim_viewer_webgpu.wasm viewer/web/index.html viewer/web/decode-worker.js "$sans_font" "$cjk_font" | sha256sum | cut -c1-16) $bindgen_version opt=${WASM_OPT:-0}"
if [ "$(cat "$stamp" 2>/dev/null)" = "$fingerprint" ]; then
  echo "web bundle up to date in $out"
  exit 0
fi
# Built beside the old bundle and swapped in at the end: a failed build leaves the
# previous bundle whole.
work=$(mktemp -d "$(dirname "$out")/.dist-XXXXXX")
trap 'rm -rf "$work"' EXIT
bundle="$work/bundle"
mkdir "$bundle"
for name in cim_viewer cim_viewer_webgpu; do
  # The name section (function names for stack traces) is 53 of the module's 93 MB.
  "$bindgen" --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-name "$name" --out-dir "$work" "$modules/$name.wasm"
  if [ "${WASM_OPT:-0}" = 1 ]; then
    # binaryen 132 from npm (a WebAssembly build of wasm-opt): -Os takes the module from
    # 40 to 34 MB but costs about 15 CPU-minutes here, so only on request. Debian's
    # binaryen 108 is not an option: it points wasm-bindgen's externref table export
    # at the function table, and the page fails with "WebAssembly.Table.set(): Argument
    # 1 is invalid for table".
    npm install --silent --no-audit --no-fund --prefix "$tools/binaryen" binaryen@132.0.0
    node --max-old-space-size=8000 "$tools/binaryen/node_modules/binaryen/bin/wasm-opt" -Os \
      --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
      --enable-reference-types --enable-multivalue "$work/${name}_bg.wasm" -o "$bundle/${name}_bg.wasm"
  else
    mv "$work/${name}_bg.wasm" "$bundle/"
  fi
  cp "$work/$name.js" "$bundle/"
done
cp viewer/web/index.html viewer/web/decode-worker.js "$bundle/"
cp "$sans_font" "$bundle/ui-sans.ttf"
cp "$cjk_font" "$bundle/ui-cjk.ttc"
# One file per core at a time, the two modules first: brotli -q 11 takes about a
# minute for each of them, and nothing else is left to run beside it.
printf '%s\0' "$bundle"/cim_viewer*_bg.wasm "$bundle"/ui-cjk.ttc "$bundle"/ui-sans.ttf "$bundle"/*.js "$bundle"/index.html |
  xargs -0 -n 1 -P "$(nproc)" sh -c 'gzip -9 -k -f "$0" && brotli -q 11 -k -f "$0"'
echo "$fingerprint" > "$bundle/.built-from"
rm -rf "$out"
mv "$bundle" "$out"
ls -l "$out"

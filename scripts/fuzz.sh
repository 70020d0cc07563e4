#!/usr/bin/env bash
# Fuzzes every input parser for a bounded time with cargo-fuzz (libFuzzer + ASan):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets (fuzz/fuzz_targets): geojson, flatgeobuf, las, step, ifc, cityjson,
# http_query, tiles_decode. Seeds come from ../shared/data where present and from
# small inputs written here; the corpus grows under $CARGO_TARGET_DIR-fuzz/corpus and
# is reused by later runs. A crash, a leak, a timeout or a 500 from the server fails
# the run and leaves the input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(geojson flatgeobuf las step ifc cityjson http_query tiles_decode)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
# cargo-fuzz needs nightly flags (-Zsanitizer); the stable toolchain allows them here.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}-fuzz"
corpus_root="$CARGO_TARGET_DIR/corpus"
data=../shared/data

seed() { # seed TARGET NAME CONTENT
  mkdir -p "$corpus_root/$1"
  printf '%s' "$3" >"$corpus_root/$1/seed-$2"
}
seed_files() { # seed_files TARGET MAX_BYTES FILE...
  local target=$1 max=$2
  shift 2
  mkdir -p "$corpus_root/$target"
  for f in "$@"; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$max" ] && cp "$f" "$corpus_root/$target/file-$(basename "$f")"
  done
  return 0
}

seed geojson polygon '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}'
seed geojson bowtie '{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}'
seed geojson collection '{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]},{"type":"MultiLineString","coordinates":[[[0,0],[1,1]]]}]}'
seed_files flatgeobuf 300000 "$data"/fgb/*.fgb
seed_files las 40000 "$data"/las/*.las "$data"/las/*.laz
seed step header "ISO-10303-21;HEADER;FILE_DESCRIPTION(('ViewDefinition'),'2;1');FILE_NAME('a','2020',(''),(''),'','','');FILE_SCHEMA(('IFC4'));ENDSEC;DATA;#1=IFCWALL('x',$,'it''s',(#2,#3),.T.,-1.5E-3,*);#2=(IFCA(1)IFCB(2.5));ENDSEC;END-ISO-10303-21;"
seed_files ifc 200000 "$data"/ifc/*.ifc
seed_files step 200000 "$data"/ifc/*.ifc
seed_files cityjson 60000 "$data"/cityjson/*.json "$data"/cityjson/*.jsonl
seed http_query tile 'tiles/city/14/9327/4742.mvt'
seed http_query tilejson 'tiles/city.json'
seed http_query items 'collections/city/items?bbox=24.9,60.1,25.1,60.2&limit=10&offset=3'
seed http_query item 'collections/city/items/7'
seed http_query catalog 'api/catalog?q=city&kind=vector&bbox=24,60,25,61&classification=public'
seed http_query pick 'api/pick?lon=24.9002&lat=60.1701'
seed http_query query 'api/query?layer=city&bbox=24.9,60.1,25,60.2&name=b3'
seed http_query tileset '3dtiles/city/tileset.json'
seed http_query elevation 'api/elevation?lon=24.9&lat=60.17'
seed http_query terrain 'terrain/city/3/1/2.terrain?extensions=octvertexnormals'

cd fuzz
# Overflow checks come from fuzz/Cargo.toml's release profile (all but laz), not
# debug assertions: the LAZ decoder (laz 0.13) debug-asserts on corrupt compressed
# data (a symbol >= 2^16) where its release build goes on, and libFuzzer counts that
# as a crash in every run of the las target. The dev profile turns both off for laz
# too (Cargo.toml), so no build of ours has them.
cargo fuzz build --release 2>&1 | tail -3
status=0
for target in "${targets[@]}"; do
  mkdir -p "$corpus_root/$target" "artifacts/$target"
  log=$(mktemp)
  # -rss_limit_mb: the ingest targets build real tiles; -timeout: one input's limit.
  if cargo fuzz run --release "$target" "$corpus_root/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=262144 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -40 "$log"
  fi
  runs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  printf '%-13s %-6s %10s runs in %ss, %s, corpus %s inputs\n' "$target" "$result" "${runs:-0}" "$seconds" \
    "${cov:-cov: ?}" "$(find "$corpus_root/$target" -type f | wc -l)"
  rm -f "$log"
done
exit $status

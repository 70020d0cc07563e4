#!/usr/bin/env bash
# What classified access costs, in one run on the same layer (Helsinki's buildings
# from ../shared/data), loopback, `wrk -t2 -c32 -d5s` per row:
#  - a cached MVT tile and a page of 50 features: on a server without tokens (every
#    request still audited and classification-checked), then on one with a token file
#    asked with a bearer token (digest comparison against 100 stored tokens), and with
#    the layer's attributes protected (masking on every feature served);
#  - the audit log's growth per request.
# Prints requests/s and the ratio to the first row; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p cim-ingest -p cim-tileserver
bin="$CARGO_TARGET_DIR/release"
data=../shared/data
work=$(mktemp -d)
server=
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/cim-ingest" --store "$work/store" --layer plain --max-zoom 15 "$data/osm/helsinki_buildings.fgb" >/dev/null
"$bin/cim-ingest" --store "$work/store" --layer masked --max-zoom 15 \
  --protect name:mask:internal --protect addr:street:hash:restricted "$data/osm/helsinki_buildings.fgb" >/dev/null
python3 - "$work/tokens.json" <<'EOF'
import hashlib, json, sys
tokens = [{"name": f"t{i}", "sha256": hashlib.sha256(f"token-{i}".encode()).hexdigest(), "role": "viewer", "clearance": "public"} for i in range(100)]
json.dump(tokens, open(sys.argv[1], "w"))
EOF

start() {
  "$bin/cim-server" --store "$work/store" --bind 127.0.0.1:0 "$@" >"$work/server.out" 2>/dev/null &
  server=$!
  for _ in $(seq 50); do [ -s "$work/server.out" ] && break; sleep 0.1; done
  url=$(sed 's/.* //' "$work/server.out")
}
run() {  # label path [header]
  local res
  curl -s -o /dev/null ${3:+-H "$3"} "$url$2"
  if [ -n "${3:-}" ]; then
    res=$(wrk -t2 -c32 -d5s -H "Accept-Encoding: gzip" -H "$3" "$url$2")
  else
    res=$(wrk -t2 -c32 -d5s -H "Accept-Encoding: gzip" "$url$2")
  fi
  awk -v l="$1" -v base="${base:-0}" '/Requests\/sec/ { r = $2; printf "%-46s %12.0f %8s\n", l, r, (base > 0 ? sprintf("%.2f", r / base) : "1.00") }' <<<"$res"
}
rps() { awk '/Requests\/sec/ { print $2 }'; }

printf '%-46s %12s %8s\n' "request (wrk -t2 -c32 -d5s)" "requests/s" ratio
tile=/tiles/plain/14/9326/4741.mvt
items="/collections/plain/items?bbox=24.94,60.165,24.95,60.17&limit=50"
start
base=$(wrk -t2 -c32 -d5s -H "Accept-Encoding: gzip" "$url$tile" | rps)
run "MVT tile, no token file" "$tile"
items_base=$(wrk -t2 -c32 -d5s -H "Accept-Encoding: gzip" "$url$items" | rps)
base=$items_base run "50 features, no token file" "$items"
before=$(stat -c %s "$work/store/.audit/audit.jsonl")
lines_before=$(wc -l <"$work/store/.audit/audit.jsonl")
kill $server; wait $server 2>/dev/null || true
start --tokens "$work/tokens.json"
run "MVT tile, bearer token (100 tokens)" "$tile" "Authorization: Bearer token-99"
base=$items_base run "50 features, bearer token" "$items" "Authorization: Bearer token-99"
base=$items_base run "50 masked features, bearer token" "${items//plain/masked}" "Authorization: Bearer token-99"
kill $server; wait $server 2>/dev/null || true
after=$(stat -c %s "$work/store/.audit/audit.jsonl")
lines=$(wc -l <"$work/store/.audit/audit.jsonl")
awk -v b="$before" -v lb="$lines_before" -v a="$after" -v l="$lines" 'BEGIN { printf "audit log: %d records, %.0f bytes each\n", l, (a - b) / (l - lb) }'

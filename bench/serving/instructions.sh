#!/usr/bin/env bash
# Instructions the server executes per invocation, counted by callgrind (repeatable, unlike timings
# on a shared VM): a baseline binary (e.g. an earlier commit's) against this tree's release build.
# One keep-alive client sends one-row iris requests to iris-prod; only those requests are counted.
# Usage: bench/serving/instructions.sh <baseline sagebrush binary> [requests, default 3000]
set -euo pipefail
cd "$(dirname "$0")/../.."
baseline=${1:?usage: bench/serving/instructions.sh <baseline sagebrush binary> [requests]}
n=${2:-3000}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
requests() { # url count
  python3 - "$1" "$2" <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); c = http.client.HTTPConnection(u.hostname, u.port)
for _ in range(int(sys.argv[2])):
    c.request("POST", "/endpoints/iris-prod/invocations", body=b"5.1,3.5,1.4,0.2\n", headers={"Content-Type": "text/csv"})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
PY
}
for side in baseline this; do
  bin=$baseline; [ "$side" = this ] && bin=$PWD/target/release/sagebrush
  home=$work/$side; mkdir -p "$home"
  SAGEBRUSH_HOME=$home "$bin" run examples/iris >/dev/null 2>&1
  SAGEBRUSH_HOME=$home valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$side.out" \
    "$bin" server --listen 127.0.0.1:0 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s "$home/server.json" ] && break; sleep 0.1; done
  url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
  requests "$url" 200 # warm up
  callgrind_control -i on "$pid" >/dev/null
  requests "$url" "$n"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  total=$(cat "$work/$side.out"* | awk '/^totals:/ {s+=$2} END {print s}')
  echo "$side ($bin): $((total / n)) instructions per request"
done

#!/usr/bin/env bash
# Multi-model endpoint (issue 5): 10,000 small built-in models in one folder behind one endpoint whose
# memory budget fits 1,000. wrk cycles through all 10,000 names (with LRU, every request is a load:
# cold) and then through 100 names (every request is a hit: warm), one connection, on loopback.
# The load time is the cold request's latency; the server's own load histogram is printed too.
# Usage: bench/multi-model/run.sh [models, default 10000] [seconds per load, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-10000}
seconds=${2:-10}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/sagebrush
home=$(mktemp -d)
export SAGEBRUSH_HOME=$home
trap 'kill $server 2>/dev/null || true; rm -rf "$home"' EXIT
project=$home/project
mkdir -p "$project/models"
model_bytes=$(python3 bench/multi-model/make_models.py "$project/models" "$count")
budget_mb=$(awk "BEGIN {print 1000.5 * $model_bytes / 1048576}")
cat > "$project/sagebrush.toml" <<TOML
[pipeline]
name = "many"
[algorithm]
builtin = "decision-tree"
[[stage]]
kind = "deploy"
endpoint = "many"
multi_model = "models"
memory_budget_mb = $budget_mb
TOML
$bin server --listen 127.0.0.1:0 2>"$home/server.log" &
server=$!
for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
$bin run "$project" >/dev/null
row=$(head -1 examples/iris/data/payload.csv)
script() { # distinct model names -> lua
  cat <<LUA
local i = 0
local body = "$row\n"
request = function()
  i = i + 1
  local name = string.format("model-%05d.tar.gz", i % $1)
  return wrk.format("POST", nil, { ["Content-Type"] = "text/csv", ["X-Amzn-SageMaker-Target-Model"] = name }, body)
end
LUA
}
measure() { # lua file -> "req/s p50_ms p99_ms"
  wrk -t1 -c1 -d"${seconds}s" --latency -s "$1" "$url/endpoints/many/invocations" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF}
    END {if (bad) {print "non-2xx responses: " bad > "/dev/stderr"; exit 1} printf "%.0f %.3f %.3f\n", rps, p50, p99}'
}
script "$count" > "$home/cold.lua"; script 100 > "$home/warm.lua"
read -r cold_rps cold_p50 cold_p99 < <(measure "$home/cold.lua")
read -r warm_rps warm_p50 warm_p99 < <(measure "$home/warm.lua")
view=$($bin endpoints --json | python3 -c 'import json,sys; m=json.load(sys.stdin)[0]["variants"][0]["models"]; print(m["loaded"], m["loads"], m["evictions"], m["load_p99_ms"])')
read -r loaded loads evictions load_p99 <<<"$view"
rss=$(( $(awk '/^VmRSS/ {print $2}' "/proc/$server/status") / 1024 ))
echo
echo "| $count models, budget fits 1,000, one connection | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "| cold: cycling all $count (every request loads its model) | $cold_rps | $cold_p50 | $cold_p99 |"
echo "| warm: cycling 100 (every request hits the cache) | $warm_rps | $warm_p50 | $warm_p99 |"
echo "server: $loaded models loaded, $loads loads, $evictions evictions, load p99 <= $load_p99 ms (histogram bucket), RSS $rss MB"
echo "reproduce: bench/multi-model/run.sh $count $seconds"

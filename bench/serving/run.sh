#!/usr/bin/env bash
# Serving, side by side in one run (issue 5): the same iris decision tree behind
#  - the workshop's stack: nginx -> gunicorn -> Flask + scikit-learn (examples/scikit-byo's container),
#  - `mlflow models serve` (MLflow from PyPI, in a venv under ~/.cache/sagebrush-bench),
#  - sagebrush (the built-in decision tree, answered in the router),
#  - a constant server on sagebrush's HTTP stack (the upper bound),
# each loaded with wrk on loopback: a one-row request, 8 connections (2 threads) and 1 connection.
# Prints a table and writes it to target/bench-serving.md. Needs Docker, docker-registry, wrk, python3.
# p99 at one connection is the machine's scheduling noise as much as the server's, so the p99
# ratio to the constant server is also taken over alternating rounds of the two (median of each).
# Usage: bench/serving/run.sh [seconds per load, default 10] [p99 rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
rounds=${2:-5}
for tool in docker docker-registry wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install docker.io docker-registry wrk curl python3-venv)" >&2; exit 2; }
done
venv=${SAGEBRUSH_BENCH_VENV:-$HOME/.cache/sagebrush-bench/venv}
if [ ! -x "$venv/bin/mlflow" ]; then
  echo "installing MLflow into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet mlflow scikit-learn
fi
bash examples/scikit-byo/base/offline-base.sh >/dev/null
cargo build --release --quiet
cargo build --release --quiet -p router --example constant
bin=$PWD/target/release/sagebrush
home=$(mktemp -d)
export SAGEBRUSH_HOME=$home
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for h in "$home" "$home/workshop"; do
    docker ps -aq --filter "label=dev.sagebrush.home=$h" | xargs -r docker rm -f >/dev/null
    [ -f "$h/registry/registry.json" ] && kill "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$h/registry/registry.json")" 2>/dev/null || true
  done
  rm -rf "$home"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
rss_kb() { # pids... -> total VmRSS in kB
  local total=0
  for pid in "$@"; do total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done
  echo "$total"
}
tree_pids() { # pid -> it and its descendants
  echo "$1"; for child in $(pgrep -P "$1"); do tree_pids "$child"; done
}

# sagebrush with the built-in tree on iris-prod.
$bin server --listen 127.0.0.1:0 2>"$home/server.log" &
server=$!; pids+=("$server")
for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
$bin run examples/iris >/dev/null 2>&1
# The run deletes its test endpoint (delete_after_run), so the server holds iris-prod only.
# The workshop's stack, trained and served by a second sagebrush home's container runtime (so the measured
# server holds one built-in endpoint only); measured on the container's own port.
mkdir -p "$home/workshop"
SAGEBRUSH_HOME=$home/workshop $bin server --listen 127.0.0.1:0 2>"$home/workshop-server.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$home/workshop/server.json" ] && break; sleep 0.05; done
SAGEBRUSH_HOME=$home/workshop $bin run examples/scikit-byo >/dev/null 2>&1
container=$(docker ps --filter "label=dev.sagebrush.home=$home/workshop" --filter name=scikit-byo-prod --format '{{.Names}}' | head -1)
workshop_port=$(docker port "$container" 8080/tcp | grep 127.0.0.1 | cut -d: -f2)
# MLflow.
"$venv/bin/python" bench/serving/mlflow_model.py examples/iris/data/train.csv "$home/mlflow-model" >/dev/null 2>&1
mlflow_port=$(free_port)
PATH="$venv/bin:$PATH" "$venv/bin/mlflow" models serve -m "$home/mlflow-model" -h 127.0.0.1 -p "$mlflow_port" --env-manager local >"$home/mlflow.log" 2>&1 &
pids+=($!); mlflow=$!
# The constant server.
constant_port=$(free_port)
target/release/examples/constant "$constant_port" &
constant=$!; pids+=("$constant")
wait_for "$url/ping"; wait_for "http://127.0.0.1:$mlflow_port/ping"; wait_for "http://127.0.0.1:$constant_port/invocations"

row=$(head -1 examples/iris/data/payload.csv)
csv=$home/csv.lua; json=$home/json.lua
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\nwrk.body = "%s\\n"\n' "$row" > "$csv"
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = "{\\"inputs\\": [[%s]]}"\n' "$row" > "$json"
measure() { # threads connections script url -> "req/s p50_ms p99_ms"
  wrk -t"$1" -c"$2" -d"${seconds}s" --latency -s "$3" "$4" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF}
    END {if (bad) {print "non-2xx responses: " bad > "/dev/stderr"; exit 1} printf "%.0f %.3f %.3f\n", rps, p50, p99}'
}
declare -A rps8 p50_8 p99_8 rps1 p50_1 p99_1 rss
run_one() { # name script url pids...
  local name=$1 script=$2 target=$3; shift 3
  read -r "rps8[$name]" "p50_8[$name]" "p99_8[$name]" < <(measure 2 8 "$script" "$target")
  read -r "rps1[$name]" "p50_1[$name]" "p99_1[$name]" < <(measure 1 1 "$script" "$target")
  rss[$name]=$(( $(rss_kb "$@") / 1024 ))
}
run_one constant "$csv" "http://127.0.0.1:$constant_port/invocations" "$constant"
run_one sagebrush "$csv" "$url/endpoints/iris-prod/invocations" "$server"
run_one workshop "$csv" "http://127.0.0.1:$workshop_port/invocations" $(docker top "$container" -o pid | tail -n +2)
run_one mlflow "$json" "http://127.0.0.1:$mlflow_port/invocations" $(tree_pids "$mlflow")
# Alternating rounds at one connection: constant, sagebrush, constant, sagebrush, ...
tails_constant=(); tails_sagebrush=()
for _ in $(seq "$rounds"); do
  read -r _ _ p99 < <(measure 1 1 "$csv" "http://127.0.0.1:$constant_port/invocations"); tails_constant+=("$p99")
  read -r _ _ p99 < <(measure 1 1 "$csv" "$url/endpoints/iris-prod/invocations"); tails_sagebrush+=("$p99")
done
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
tail_constant=$(printf '%s\n' "${tails_constant[@]}" | median)
tail_sagebrush=$(printf '%s\n' "${tails_sagebrush[@]}" | median)

out=target/bench-serving.md
{
  echo "| server (iris decision tree, one row) | req/s at 8 conn | p50 ms | p99 ms | req/s at 1 conn | p50 ms | p99 ms | RSS MB | req/s vs workshop | req/s vs constant |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for name in constant sagebrush workshop mlflow; do
    label=$name
    case $name in
      constant) label="constant answer, sagebrush's HTTP stack (bound)";;
      sagebrush) label="sagebrush, built-in tree";;
      workshop) label="workshop stack: nginx, gunicorn, Flask, scikit-learn";;
      mlflow) label="mlflow models serve (JSON inputs)";;
    esac
    echo "| $label | ${rps8[$name]} | ${p50_8[$name]} | ${p99_8[$name]} | ${rps1[$name]} | ${p50_1[$name]} | ${p99_1[$name]} | ${rss[$name]} | $(awk "BEGIN {printf \"%.1fx\", ${rps8[$name]} / ${rps8[workshop]}}") | $(awk "BEGIN {printf \"%.0f%%\", 100 * ${rps8[$name]} / ${rps8[constant]}}") |"
  done
  echo
  echo "sagebrush p99 at 1 connection / constant's, in the table's one run: $(awk "BEGIN {printf \"%.2f\", ${p99_1[sagebrush]} / ${p99_1[constant]}}")"
  echo "p99 at 1 connection, median of $rounds alternating rounds: constant ${tail_constant} ms, sagebrush ${tail_sagebrush} ms, ratio $(awk "BEGIN {printf \"%.2f\", $tail_sagebrush / $tail_constant}")"
  echo "reproduce: bench/serving/run.sh $seconds $rounds"
} | tee "$out"

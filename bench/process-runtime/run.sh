#!/usr/bin/env bash
# The workshop's container files served by the process runtime against the same files in Docker,
# side by side in one run (issue 15): examples/scikit-byo builds them into an image,
# examples/scikit-byo-process runs them unmodified in a sandbox; the same model is trained both ways.
#  1. cold start to the first /ping 200: `sagebrush deploy` of the model to a new endpoint, which
#     returns once its instance answers /ping (process sandbox or container), alternating; plus
#     `docker run <image> serve` alone, Docker's own start without sagebrush, for reference;
#  2. req/s at 8 connections through the router to each prod endpoint (one instance each), with
#     the workshop's one-row CSV body, in alternating rounds; the median of each side.
# Loads go to loopback only and are bounded in time. Needs Docker, docker-registry, wrk, curl,
# nginx, and Python with scikit-learn, Flask and gunicorn (test.sh installs them).
# Usage: bench/process-runtime/run.sh [cold starts, default 10] [wrk seconds, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
starts=${1:-10}
seconds=${2:-10}
rounds=${3:-3}
for tool in docker docker-registry wrk curl nginx gunicorn; do
  command -v "$tool" >/dev/null || { echo "needs $tool (see test.sh)" >&2; exit 2; }
done
bash examples/scikit-byo/base/offline-base.sh >/dev/null
cargo build --release --quiet
bin=$PWD/target/release/sagebrush
home=$(mktemp -d)
export SAGEBRUSH_HOME=$home
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  docker ps -aq --filter "label=dev.sagebrush.home=$home" | xargs -r docker rm -f >/dev/null
  [ -f "$home/registry/registry.json" ] && kill "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$home/registry/registry.json")" 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT
$bin server --listen 127.0.0.1:0 2>"$home/server.log" &
server=$!
for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

cli_log=$home/cli.log
$bin run examples/scikit-byo >/dev/null 2>>"$cli_log"
$bin run examples/scikit-byo-process >/dev/null 2>>"$cli_log"

# 1. Cold start.
deploy_ms() { # endpoint, model group -> ms until the endpoint's instance answered /ping, checked with one invocation
  local start elapsed
  start=$(now_ms)
  $bin deploy "$1" "$2" >/dev/null 2>>"$cli_log"
  elapsed=$(( $(now_ms) - start ))
  curl -sf -H 'Content-Type: text/csv' --data-binary @examples/iris/data/payload.csv "$url/endpoints/$1/invocations" >/dev/null
  $bin delete-endpoint "$1" >/dev/null 2>>"$cli_log"
  echo "$elapsed"
}
image=$($bin models scikit-byo --json | python3 -c 'import json,sys; print(max(json.load(sys.stdin), key=lambda m: m["version"])["algorithm"][6:])')
model=$($bin models scikit-byo --json | python3 -c 'import json,sys; print(max(json.load(sys.stdin), key=lambda m: m["version"])["artifact_uri"][7:])')
model_dir=$home/cold/model
mkdir -p "$model_dir"
tar -xzf "$model" -C "$model_dir"
docker_run_ms() { # Docker's own start of the same image, no sagebrush: docker run ... serve until /ping answers 200
  local name=sagebrush-bench-$$-$RANDOM start port
  start=$(now_ms)
  docker run -d --rm --name "$name" --label "dev.sagebrush.home=$home" -v "$model_dir:/opt/ml/model:ro" -p 127.0.0.1::8080 "$image" serve >/dev/null
  port=$(docker port "$name" 8080/tcp | grep 127.0.0.1 | cut -d: -f2)
  for _ in $(seq 2000); do curl -sf -o /dev/null "http://127.0.0.1:$port/ping" && break; sleep 0.005; done
  echo $(( $(now_ms) - start ))
  docker rm -f "$name" >/dev/null
}
# What each runtime itself takes, with nothing to start: the sandbox as process::sandboxed makes it
# (`unshare` around `sagebrush sandbox`, every mount, a network namespace) running `true`, against
# `docker run --rm <image> true`; and what the serving stack's imports take on each side (this
# machine's Python and packages, against the image's Debian ones).
empty=$home/empty
mkdir -p "$empty/opt_ml" "$empty/program"
printf '#!/bin/sh\nexec "$@"\n' > "$empty/program/run"
chmod +x "$empty/program/run"
sandbox_ms() { # -> ms for the sandbox around `$@`
  local start
  start=$(now_ms)
  unshare --pid --fork --kill-child --mount --propagation private --mount-proc --net -- \
    "$bin" sandbox --opt-ml "$empty/opt_ml" --program "$empty/program" --workdir /opt/program --serve-port 8080 \
    -- run "$@" </dev/null >/dev/null
  echo $(( $(now_ms) - start ))
}
container_ms() { # -> ms for docker run of the image with `$@`
  local start
  start=$(now_ms)
  docker run --rm --label "dev.sagebrush.home=$home" "$image" "$@" >/dev/null
  echo $(( $(now_ms) - start ))
}
imports=(python3 -c 'import sklearn.tree, flask, gunicorn')
p_times=(); d_times=(); r_times=(); se_times=(); ce_times=(); si_times=(); ci_times=()
for i in $(seq "$starts"); do
  p_times+=($(deploy_ms "cold-process-$i" scikit-byo-process))
  d_times+=($(deploy_ms "cold-docker-$i" scikit-byo))
  r_times+=($(docker_run_ms))
  se_times+=($(sandbox_ms true))
  ce_times+=($(container_ms true))
  si_times+=($(sandbox_ms "${imports[@]}"))
  ci_times+=($(container_ms "${imports[@]}"))
done
read -r p_min p_med p_max < <(printf '%s\n' "${p_times[@]}" | stats)
read -r d_min d_med d_max < <(printf '%s\n' "${d_times[@]}" | stats)
read -r r_min r_med r_max < <(printf '%s\n' "${r_times[@]}" | stats)
read -r se_min se_med se_max < <(printf '%s\n' "${se_times[@]}" | stats)
read -r ce_min ce_med ce_max < <(printf '%s\n' "${ce_times[@]}" | stats)
read -r si_min si_med si_max < <(printf '%s\n' "${si_times[@]}" | stats)
read -r ci_min ci_med ci_max < <(printf '%s\n' "${ci_times[@]}" | stats)

# 2. Throughput at 8 connections through the router.
lua=$home/post.lua
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\nwrk.body = "%s\\n"\n' "$(head -1 examples/iris/data/payload.csv)" > "$lua"
measure() { # url -> "req/s p50_ms p99_ms"
  wrk -t2 -c8 -d"${seconds}s" --latency -s "$lua" "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF} /Socket errors/ {bad=$0}
    END {if (bad) {print "errors: " bad > "/dev/stderr"; exit 1} printf "%.0f %.3f %.3f\n", rps, p50, p99}'
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
declare -A rps p50 p99
for side in process docker; do rps[$side]=""; p50[$side]=""; p99[$side]=""; done
for _ in $(seq "$rounds"); do
  for side in process docker; do
    endpoint=scikit-byo-prod
    [ "$side" = process ] && endpoint=scikit-byo-process-prod
    read -r r a b < <(measure "$url/endpoints/$endpoint/invocations")
    rps[$side]+="$r "; p50[$side]+="$a "; p99[$side]+="$b "
  done
done
m() { printf '%s\n' $1 | median; }

echo "## Process runtime against Docker, the workshop's container files (bench/process-runtime/run.sh $starts $seconds $rounds)"
echo
echo "| cold start to first /ping 200 ($starts starts each) | min ms | median ms | max ms |"
echo "|---|---|---|---|"
echo "| sagebrush deploy, process runtime (sandbox) | $p_min | $p_med | $p_max |"
echo "| sagebrush deploy, Docker runtime (container) | $d_min | $d_med | $d_max |"
echo "| docker run <image> serve alone (reference) | $r_min | $r_med | $r_max |"
echo
echo "cold start, Docker / process (median): $(awk -v a="$d_med" -v b="$p_med" 'BEGIN {printf "%.2fx", a / b}')"
echo
echo "| where the start goes ($starts each) | min ms | median ms | max ms |"
echo "|---|---|---|---|"
echo "| sandbox around \`true\` | $se_min | $se_med | $se_max |"
echo "| docker run --rm <image> true | $ce_min | $ce_med | $ce_max |"
echo "| sandbox around the imports (this machine's Python) | $si_min | $si_med | $si_max |"
echo "| docker run --rm <image> with the imports (the image's Python) | $ci_min | $ci_med | $ci_max |"
echo
echo "| 8 connections through the router, $rounds rounds of ${seconds} s | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
for side in process docker; do
  echo "| $side runtime | $(m "${rps[$side]}") | $(m "${p50[$side]}") | $(m "${p99[$side]}") |"
done
echo
echo "req/s, process / Docker (median): $(awk -v a="$(m "${rps[process]}")" -v b="$(m "${rps[docker]}")" 'BEGIN {printf "%.2fx", a / b}')"

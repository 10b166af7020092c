#!/usr/bin/env bash
# Containers, side by side in one run (issue 4):
#  1. push-to-prod wall-clock of examples/scikit-byo with a warm base image and registry
#     (build -> push -> SBOM + image gate -> train -> test endpoint -> smoke test -> prod);
#  2. container cold start to the first /ping 200: the workshop-style scikit-learn image
#     (nginx -> gunicorn -> Flask) against the built-in algorithm's FROM-scratch image;
#  3. the router's added latency at one connection: wrk through the sagebrush endpoint, to the
#     same container's published port (what a caller without sagebrush uses) and to its bridge
#     address, in alternating rounds, for both images; then the same three at 8 connections.
# Loads go to loopback only and are bounded in time. Needs Docker, docker-registry and wrk.
# Usage: bench/containers/run.sh [pipeline runs, default 5] [cold starts, default 10] [wrk seconds, default 10] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
starts=${2:-10}
seconds=${3:-10}
rounds=${4:-5}
for tool in docker docker-registry wrk curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install docker.io docker-registry wrk curl)" >&2; exit 2; }
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
row=$(head -1 examples/iris/data/payload.csv)
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# 1. Push to prod. The first run pushes the base layers to the new registry; it is reported apart.
start=$(now_ms); $bin run examples/scikit-byo >/dev/null 2>&1; first=$(( $(now_ms) - start ))
times=()
for i in $(seq "$runs"); do
  start=$(now_ms)
  $bin run examples/scikit-byo -p max_leaf_nodes=$((3 + i % 4)) >/dev/null 2>&1
  curl -sf -H 'Content-Type: text/csv' --data-binary @examples/iris/data/payload.csv "$url/endpoints/scikit-byo-prod/invocations" >/dev/null
  times+=($(( $(now_ms) - start )))
done
read -r p_min p_med p_max < <(printf '%s\n' "${times[@]}" | stats)

# 2. Cold start: docker run ... serve until GET /ping answers 200, with a model in /opt/ml/model.
model_dir=$home/cold/model
mkdir -p "$model_dir"
latest() { # model group -> "image artifact" of its newest version
  $bin models "$1" --json | python3 -c 'import json,sys; v=max(json.load(sys.stdin), key=lambda m: m["version"]); print(v["algorithm"][6:], v["artifact_uri"][7:])'
}
read -r scikit_image scikit_model < <(latest scikit-byo)
tar -xzf "$scikit_model" -C "$model_dir"
builtin_dir=$home/cold-builtin/model
mkdir -p "$builtin_dir"
boxed=$home/boxed; cp -r examples/iris "$boxed"
sed -i 's/^builtin = "decision-tree"/builtin = "decision-tree"\ncontainer = true/; s/name = "iris"/name = "boxed"/; s/"iris-/"boxed-/' "$boxed/sagebrush.toml"
$bin run "$boxed" >/dev/null 2>&1
read -r builtin_image builtin_model < <(latest boxed)
tar -xzf "$builtin_model" -C "$builtin_dir"
cold_start() { # image, model folder -> ms
  local name=sagebrush-bench-$$-$RANDOM start port
  start=$(now_ms)
  docker run -d --rm --name "$name" --label "dev.sagebrush.home=$home" -v "$2:/opt/ml/model:ro" -p 127.0.0.1::8080 "$1" serve >/dev/null
  port=$(docker port "$name" 8080/tcp | grep 127.0.0.1 | cut -d: -f2)
  for _ in $(seq 2000); do curl -sf -o /dev/null "http://127.0.0.1:$port/ping" && break; sleep 0.005; done
  echo $(( $(now_ms) - start ))
  docker rm -f "$name" >/dev/null
}
s_times=(); b_times=()
for _ in $(seq "$starts"); do
  s_times+=($(cold_start "$scikit_image" "$model_dir"))
  b_times+=($(cold_start "$builtin_image" "$builtin_dir"))
done
read -r s_min s_med s_max < <(printf '%s\n' "${s_times[@]}" | stats)
read -r c_min c_med c_max < <(printf '%s\n' "${b_times[@]}" | stats)
scikit_mb=$(( $(docker image inspect --format '{{.Size}}' "$scikit_image") / 1000000 ))
builtin_mb=$(( $(docker image inspect --format '{{.Size}}' "$builtin_image") / 1000000 ))

# 3. Router overhead: the same container through sagebrush, on its published port and on its bridge address.
lua=$home/post.lua
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\nwrk.body = "%s\\n"\n' "$row" > "$lua"
measure() { # connections, url -> "req/s p50_ms p99_ms"
  wrk -t1 -c"$1" -d"${seconds}s" --latency -s "$lua" "$2" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF}
    END {if (bad) {print "non-2xx responses: " bad > "/dev/stderr"; exit 1} printf "%.0f %.3f %.3f\n", rps, p50, p99}'
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
overhead_rows() { # endpoint, label -> table rows
  local prod port ip published direct routed r p b t
  prod=$(docker ps --filter "label=dev.sagebrush.home=$home" --filter "name=$1" --format '{{.Names}}' | head -1)
  port=$(docker port "$prod" 8080/tcp | grep 127.0.0.1 | cut -d: -f2)
  ip=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$prod")
  published=http://127.0.0.1:$port/invocations direct=http://$ip:8080/invocations routed=$url/endpoints/$1/invocations
  local ps=() bs=() ts=() over_p=() over_b=()
  for _ in $(seq "$rounds"); do
    read -r _ p _ < <(measure 1 "$published"); read -r _ b _ < <(measure 1 "$direct"); read -r _ t _ < <(measure 1 "$routed")
    ps+=("$p"); bs+=("$b"); ts+=("$t")
    over_p+=("$(awk "BEGIN {print $t - $p}")"); over_b+=("$(awk "BEGIN {print $t - $b}")")
  done
  echo "| $2 | $(printf '%s\n' "${ps[@]}" | median) | $(printf '%s\n' "${bs[@]}" | median) | $(printf '%s\n' "${ts[@]}" | median) | $(printf '%s\n' "${over_p[@]}" | median) | $(printf '%s\n' "${over_b[@]}" | median) |"
}
throughput_rows() { # endpoint, label -> table rows at 8 connections
  local prod port ip
  prod=$(docker ps --filter "label=dev.sagebrush.home=$home" --filter "name=$1" --format '{{.Names}}' | head -1)
  port=$(docker port "$prod" 8080/tcp | grep 127.0.0.1 | cut -d: -f2)
  ip=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$prod")
  for way in "published port|http://127.0.0.1:$port/invocations" "bridge address|http://$ip:8080/invocations" "through sagebrush|$url/endpoints/$1/invocations"; do
    read -r rps p50 p99 < <(measure 8 "${way#*|}")
    echo "| $2, ${way%%|*} | $rps | $p50 | $p99 |"
  done
}
overhead=$(overhead_rows scikit-byo-prod "workshop-style scikit-learn image"; overhead_rows boxed-prod "built-in tree, FROM scratch image")
throughput=$(throughput_rows scikit-byo-prod "scikit-learn image"; throughput_rows boxed-prod "built-in image")

echo
echo "| push to prod, examples/scikit-byo ($runs runs, warm base and registry) | min ms | median ms | max ms |"
echo "|---|---|---|---|"
echo "| sagebrush run -> prod serving | $p_min | $p_med | $p_max |"
echo "first run on a new registry (pushes the base layers): $first ms"
echo "SageMaker (documented): 2.5-4 min training start-up + 8.5-25 min endpoint creation = 660000+ ms -> $(awk "BEGIN {printf \"%.0f\", 660000 / $p_med}")x"
echo
echo "| container cold start to first /ping 200 ($starts starts each) | image MB | min ms | median ms | max ms |"
echo "|---|---|---|---|---|"
echo "| workshop-style scikit-learn image (nginx, gunicorn, Flask) | $scikit_mb | $s_min | $s_med | $s_max |"
echo "| built-in decision tree, FROM scratch | $builtin_mb | $c_min | $c_med | $c_max |"
echo
echo "| one connection, one-row CSV, median of $rounds alternating rounds of wrk ${seconds}s | published port p50 ms | bridge address p50 ms | through sagebrush p50 ms | added over published port ms | added over bridge address ms |"
echo "|---|---|---|---|---|---|"
echo "$overhead"
echo
echo "| 8 connections, wrk ${seconds}s | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "$throughput"
echo "reproduce: bench/containers/run.sh $runs $starts $seconds $rounds"

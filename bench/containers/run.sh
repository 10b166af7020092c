#!/usr/bin/env bash
# Containers, side by side in one run (issue 4):
#  1. push-to-prod wall-clock of examples/scikit-byo with a warm base image and registry
#     (build -> push -> SBOM + image gate -> train -> test endpoint -> smoke test -> prod);
#  2. container cold start to the first /ping 200: the workshop-style scikit-learn image
#     (nginx -> gunicorn -> Flask) against the built-in algorithm's FROM-scratch image;
#  3. the router's added latency at one connection: wrk through the sagebrush endpoint, to the
#     same container's published port (what a caller without sagebrush uses), to its bridge
#     address, and through nginx proxying to that address with keep-alive (the reference reverse
#     proxy), in alternating rounds, for both images; then the same four at 8 connections.
# Loads go to loopback only and are bounded in time. Needs Docker, docker-registry, wrk and nginx.
# Usage: bench/containers/run.sh [pipeline runs, default 5] [cold starts, default 10] [wrk seconds, default 10] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
starts=${2:-10}
seconds=${3:-10}
rounds=${4:-5}
for tool in docker docker-registry wrk curl nginx; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install docker.io docker-registry wrk curl nginx-light)" >&2; exit 2; }
done
bash examples/scikit-byo/base/offline-base.sh >/dev/null
cargo build --release --quiet
bin=$PWD/target/release/sagebrush
home=$(mktemp -d)
export SAGEBRUSH_HOME=$home
cleanup() {
  [ -f "$home/nginx/nginx.pid" ] && kill "$(cat "$home/nginx/nginx.pid")" 2>/dev/null || true
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

# 3. Router overhead: the same container on its published port, on its bridge address, through nginx and through sagebrush.
lua=$home/post.lua
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\nwrk.body = "%s\\n"\n' "$row" > "$lua"
measure() { # connections, url -> "req/s p50_ms p99_ms"
  wrk -t1 -c"$1" -d"${seconds}s" --latency -s "$lua" "$2" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec/ {rps=$2} /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /Non-2xx/ {bad=$NF}
    END {if (bad) {print "non-2xx responses: " bad > "/dev/stderr"; exit 1} printf "%.0f %.3f %.3f\n", rps, p50, p99}'
}
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
prod_of() { docker ps --filter "label=dev.sagebrush.home=$home" --filter "name=$1" --format '{{.Names}}' | head -1; }
bridge_of() { docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(prod_of "$1")"; }
published_of() { docker port "$(prod_of "$1")" 8080/tcp | grep 127.0.0.1 | cut -d: -f2; }
# nginx as people put it in front of containers: proxy_pass to the bridge address, keep-alive upstreams, one worker.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$home/nginx"
cat > "$home/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $home/nginx/nginx.pid;
error_log $home/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream scikit { server $(bridge_of scikit-byo-prod):8080; keepalive 16; }
  upstream boxed { server $(bridge_of boxed-prod):8080; keepalive 16; }
  server {
    listen 127.0.0.1:$nginx_port;
    location = /scikit-byo-prod { proxy_pass http://scikit/invocations; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /boxed-prod { proxy_pass http://boxed/invocations; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$home/nginx/nginx.conf" -p "$home/nginx"
ways_of() { # endpoint -> "label|url" lines: published port, bridge address, nginx, sagebrush
  echo "published port|http://127.0.0.1:$(published_of "$1")/invocations"
  echo "bridge address|http://$(bridge_of "$1"):8080/invocations"
  echo "through nginx|http://127.0.0.1:$nginx_port/$1"
  echo "through sagebrush|$url/endpoints/$1/invocations"
}
overhead_rows() { # endpoint, label -> a table row of p50 medians
  local ways=() p50s=() r i
  mapfile -t ways < <(ways_of "$1")
  for r in $(seq "$rounds"); do
    for i in "${!ways[@]}"; do read -r _ p _ < <(measure 1 "${ways[$i]#*|}"); p50s[$((r * 4 + i))]=$p; done
  done
  column() { for r in $(seq "$rounds"); do echo "${p50s[$((r * 4 + $1))]}"; done | median; }
  added() { for r in $(seq "$rounds"); do awk "BEGIN {print ${p50s[$((r * 4 + $1))]} - ${p50s[$((r * 4 + $2))]}}"; done | median; }
  echo "| $2 | $(column 0) | $(column 1) | $(column 2) | $(column 3) | $(added 2 1) | $(added 3 1) | $(added 3 0) |"
}
throughput_rows() { # endpoint, label -> table rows at 8 connections
  local way
  while read -r way; do
    read -r rps p50 p99 < <(measure 8 "${way#*|}")
    echo "| $2, ${way%%|*} | $rps | $p50 | $p99 |"
  done < <(ways_of "$1")
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
echo "| one connection, one-row CSV, median of $rounds alternating rounds of wrk ${seconds}s, p50 ms | published port | bridge address | through nginx | through sagebrush | nginx added over bridge | sagebrush added over bridge | sagebrush added over published port |"
echo "|---|---|---|---|---|---|---|---|"
echo "$overhead"
echo
echo "| 8 connections, wrk ${seconds}s | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|"
echo "$throughput"
echo "reproduce: bench/containers/run.sh $runs $starts $seconds $rounds"

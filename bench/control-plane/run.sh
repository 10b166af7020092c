#!/usr/bin/env bash
# The workshop's SageMaker calls end to end on sagebrush (issue 15): examples/scikit-byo/sagemaker-cli.sh
# (push the BYO image, two training jobs and their waiters, two models and configurations, an
# endpoint created, invoked and updated in place under load, deleted, a failing job) against a
# live `sagebrush server`, `runs` times over, each in a fresh home; wall-clock min/median/max and
# each step's time from the last run. SageMaker's side is its documented time for the same calls
# (training start-up 2.5-4 min per job, endpoint creation 8.5-25 min, an update as long again).
# Loads go to loopback only. Needs Docker, docker-registry, curl and the AWS CLI.
# Usage: bench/control-plane/run.sh [runs, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
for tool in docker docker-registry curl aws; do
  command -v "$tool" >/dev/null || { echo "needs $tool (test.sh installs each)" >&2; exit 2; }
done
bash examples/scikit-byo/base/offline-base.sh >/dev/null
cargo build --release --quiet
export PATH=$PWD/target/release:$PATH
image=sagebrush-bench/scikit-byo:cli
DOCKER_BUILDKIT=0 docker build --quiet --tag "$image" examples/scikit-byo/container >/dev/null

one_run() { # <run number>; prints the script's steps, then "wall <seconds>"
  local home server url start
  home=$(mktemp -d)
  export SAGEBRUSH_HOME=$home
  sagebrush server --listen 127.0.0.1:0 2>"$home/server.log" &
  server=$!
  for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
  url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
  start=$(date +%s.%N)
  bash examples/scikit-byo/sagemaker-cli.sh "$url" "$image" "b$1"
  awk -v now="$(date +%s.%N)" -v t0="$start" 'BEGIN { printf "wall %.1f\n", now - t0 }'
  kill "$server"
  wait "$server" 2>/dev/null || true
  docker ps -aq --filter "label=dev.sagebrush.home=$home" | xargs -r docker rm -f >/dev/null
  rm -rf "$home"
}

walls=()
for i in $(seq "$runs"); do
  out=$(one_run "$i")
  walls+=("$(echo "$out" | awk '/^wall/ { print $2 }')")
done
echo "last run, step by step:"
echo "$out" | grep -v '^wall'
printf '%s\n' "${walls[@]}" | sort -n | awk -v runs="$runs" '
  { a[NR] = $1 }
  END {
    median = a[int((NR + 1) / 2)]
    printf "\nsagebrush: %d runs, wall min %.1f s, median %.1f s, max %.1f s\n", runs, a[1], median, a[NR]
    # SageMaker, documented: 2 jobs + 1 failing job at 2.5-4 min start-up each, endpoint
    # creation 8.5-25 min, the update in place as long again.
    low = 3 * 150 + 2 * 510; high = 3 * 240 + 2 * 1500
    printf "SageMaker (documented): %.0f-%.0f s; ratio %.0fx-%.0fx\n", low, high, low / median, high / median
  }'
docker images --format '{{.Repository}}:{{.Tag}}' | grep '/scikit-byo:b[0-9]' | xargs -r docker rmi --force >/dev/null
docker rmi --force "$image" >/dev/null 2>&1 || true

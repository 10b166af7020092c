#!/usr/bin/env bash
# The workshop's SageMaker calls end to end on sagebrush (issue 15): examples/scikit-byo/sagemaker-cli.sh
# (push the BYO image, two training jobs and their waiters, two models and configurations, an
# endpoint created, invoked and updated in place under load, deleted, a failing job) against a
# live `sagebrush server`, `runs` times over, each in a fresh home; wall-clock min/median/max and
# each step's time from the last run. SageMaker's side is its documented time for the same calls
# (training start-up 2.5-4 min per job, endpoint creation 8.5-25 min, an update as long again).
# Loads go to loopback only. Needs Docker, docker-registry, curl and the AWS CLI.
# Usage: bench/control-plane/run.sh [runs, default 3]
#   SAGEBRUSH_BIN_DIR=<folder with a built sagebrush> skips the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
for tool in docker docker-registry curl aws; do
  command -v "$tool" >/dev/null || { echo "needs $tool (test.sh installs each)" >&2; exit 2; }
done
bash examples/scikit-byo/base/offline-base.sh >/dev/null
if [[ -z ${SAGEBRUSH_BIN_DIR:-} ]]; then
  cargo build --release --quiet
  SAGEBRUSH_BIN_DIR=$PWD/target/release
fi
export PATH=$SAGEBRUSH_BIN_DIR:$PATH
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

# Each run's wall-clock, and its SageMaker calls alone: from the first create-training-job on,
# as SageMaker's documented times do not count pushing the image to ECR.
rows=()
for i in $(seq "$runs"); do
  out=$(one_run "$i")
  wall=$(echo "$out" | awk '/^wall/ { print $2 }')
  pushed=$(echo "$out" | awk '/create-training-job byo-a/ { sub("s", "", $1); print $1; exit }')
  rows+=("$wall $(echo "$wall $pushed" | awk '{ print $1 - $2 }')")
done
echo "last run, step by step:"
echo "$out" | grep -v '^wall'
stat() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f %.1f %.1f\n", a[1], a[int((NR + 1) / 2)], a[NR] }'; }
read -r wall_min wall_median wall_max < <(printf '%s\n' "${rows[@]}" | awk '{ print $1 }' | stat)
read -r calls_min calls_median calls_max < <(printf '%s\n' "${rows[@]}" | awk '{ print $2 }' | stat)
echo
echo "sagebrush: $runs runs; whole script min $wall_min s, median $wall_median s, max $wall_max s"
echo "sagebrush: the SageMaker calls after the push: min $calls_min s, median $calls_median s, max $calls_max s"
# SageMaker, documented: 2 jobs + 1 failing job at 2.5-4 min start-up each, endpoint creation
# 8.5-25 min, the update in place as long again.
awk -v calls="$calls_median" -v wall="$wall_median" 'BEGIN {
  low = 3 * 150 + 2 * 510; high = 3 * 240 + 2 * 1500
  printf "SageMaker (documented) for the same calls: %.0f-%.0f s; ratio to the calls %.0fx-%.0fx, to the whole script %.0fx-%.0fx\n",
    low, high, low / calls, high / calls, low / wall, high / wall
}'
docker images --format '{{.Repository}}:{{.Tag}}' | grep '/scikit-byo:b[0-9]' | xargs -r docker rmi --force >/dev/null
docker rmi --force "$image" >/dev/null 2>&1 || true

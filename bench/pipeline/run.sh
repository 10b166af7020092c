#!/usr/bin/env bash
# Wall-clock of `sagebrush run` from start to a smoke-tested prod endpoint serving, against a running server.
# Side by side in one run: the built-in decision tree (examples/iris) and the workshop-style
# Python + scikit-learn algorithm (examples/iris-python) through the same pipeline.
# Usage: bench/pipeline/run.sh [runs per project, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
python3 -c 'import sklearn' 2>/dev/null || python3 -m pip install --quiet scikit-learn
cargo build --release --quiet
bin=$PWD/target/release/sagebrush
home=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$home"' EXIT
SAGEBRUSH_HOME=$home $bin server --listen 127.0.0.1:0 2>"$home/server.log" &
server=$!
for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")

time_runs() { # project, prod endpoint
  local times=()
  for i in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    SAGEBRUSH_HOME=$home $bin run "$1" -p max_leaf_nodes=$((3 + i % 3)) >/dev/null 2>&1
    # `run` returns once deploy-prod has finished; check prod really answers.
    curl -sf -H 'Content-Type: text/csv' --data-binary @examples/iris/data/payload.csv "$url/endpoints/$2/invocations" >/dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[1], a[int((NR+1)/2)], a[NR]}'
}
read -r b_min b_med b_max < <(time_runs examples/iris iris-prod)
read -r p_min p_med p_max < <(time_runs examples/iris-python iris-python-prod)
echo
echo "| pipeline (run -> prod serving, $runs runs each) | min ms | median ms | max ms |"
echo "|---|---|---|---|"
echo "| examples/iris, built-in decision tree | $b_min | $b_med | $b_max |"
echo "| examples/iris-python, Python + scikit-learn process runtime | $p_min | $p_med | $p_max |"
echo
echo "ratio (python / built-in, median): $(awk "BEGIN {printf \"%.1f\", $p_med / $b_med}")x"
echo "workshop on SageMaker (documented): 15-30 min = 900000-1800000 ms -> built-in is $(awk "BEGIN {printf \"%.0f\", 900000 / $b_med}")x faster at the low end"
echo "reproduce: bench/pipeline/run.sh $runs"

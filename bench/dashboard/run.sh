#!/usr/bin/env bash
# The web dashboard against MLflow's UI server (issue text: "With 10,000 runs in history: server
# time to render the projects page, a project's stage view and a run's detail (p50, p99), and the
# bytes sent. Target: p99 under 20 ms for each. Side by side, where it can run here, the same
# pages of MLflow's UI server on the same number of runs.")
# What it does, in a temp dir that the exit trap removes (the trap also kills every server this
# script started):
# - sagebrush: copies the binary there (so a rebuild in place cannot change it mid-run), makes a
#   fresh home and a copy of examples/iris as a git repository (`keep_runs = RUNS` in its
#   [pipeline], so retention would keep the whole history), and runs `sagebrush run` on it once,
#   with no server: a real run that trains the built-in decision tree, registers iris v1 and
#   deploys iris-prod. bench/dashboard/generate.py then copies that run's rows in the store (runs,
#   stages, training jobs, events) into RUNS runs over the past 42 days, from bench/dashboard/plan.py
#   (fixed seed: ~90% succeeded, ~8% failed at the gate or the smoke test, ~2% cancelled; manual
#   and push triggers; a new commit every dozen runs; max_leaf_nodes varies). `sagebrush runs
#   --json` and `sagebrush show iris <middle> --json` must read them back. Then `sagebrush server
#   --listen 127.0.0.1:0` on that home.
# - MLflow (PyPI, in a venv under ~/.cache/sagebrush-bench/mlflow-venv, installed there if
#   missing): bench/dashboard/mlflow_seed.py writes the same plan into a SQLite store, one run
#   through MlflowClient and RUNS-1 SQL copies of its rows (5 params, 1-4 metrics, 11-12 tags,
#   stage statuses as tags), then `mlflow server` on it with one worker (sagebrush is one process
#   too; the machine has 2 cores), no artifact serving, and without its job runner (huey workers
#   for GenAI scorers, which no page here uses: they would only take CPU from both servers).
# - bench/dashboard/measure.py, one keep-alive connection per server, one request at a time,
#   browser headers (Accept-Encoding: gzip, deflate, br): WARMUP requests of each kind, then ROUNDS
#   rounds of PER_ROUND timed requests of each kind in turn. Kinds: sagebrush's HTML pages `/`,
#   `/projects/iris`, `/runs/iris/<middle>`, `/runs/iris/<newest>` (and the stage view's next page
#   when it links one), and for the same views the calls MLflow's React UI makes to its server
#   (the UI's HTML is a static shell): experiments/search, runs/search (100 rows, the UI's page
#   size, and 25, the stage view's), runs/get. So this compares server-rendered HTML with JSON API
#   answers: what each server does to show the page. Also both servers' /health (the floor of
#   this client and each HTTP stack), and sagebrush's JSON API for the stage view's runs and the
#   middle run, to tell HTML rendering from the rest. Prints a table: view,
#   server, p50, p99, max ms, bytes sent (and uncompressed, and what gzip -6 would make of them),
#   and MLflow/sagebrush p99; then MLflow's static shell and the bytes of both UIs' assets.
# - Then the project is removed and added again from git (`project add file://<copy> --branch
#   main`, the same runs), and the stage view is timed again the same way: a git project's page
#   reads its pipeline file with `git show`.
# Usage: bench/dashboard/run.sh [runs, default 10000] [rounds, default 5] [per round, default 100] [warm-up, default 20]
# SAGEBRUSH_BIN=path uses that binary; the default is target/release/sagebrush of this tree, which
# this script does not build (`cargo build --release` first). It must serve the dashboard (`GET /`
# as text/html), or the script exits 2. SAGEBRUSH_BENCH_WAIT_QUIET=SECONDS waits, at most that
# long, for 10 seconds in which the machine is 90% idle before measuring. SAGEBRUSH_BENCH_MLFLOW_VENV
# names another virtualenv for MLflow. Exits 2 when a dependency is missing.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/../.."
count=${1:-10000}
rounds=${2:-5}
per_round=${3:-100}
warmup=${4:-20}
middle=$((count / 2))

src_bin=${SAGEBRUSH_BIN:-$PWD/target/release/sagebrush}
if [ ! -x "$src_bin" ]; then
  echo "no sagebrush binary at $src_bin: build it with \`cargo build --release\` or set SAGEBRUSH_BIN" >&2
  exit 2
fi
for tool in python3 git curl; do
  command -v "$tool" >/dev/null || { echo "this benchmark needs $tool on PATH" >&2; exit 2; }
done
python3 -c 'import sqlite3' 2>/dev/null || { echo "python3 has no sqlite3 module" >&2; exit 2; }
venv=${SAGEBRUSH_BENCH_MLFLOW_VENV:-$HOME/.cache/sagebrush-bench/mlflow-venv}
if [ ! -x "$venv/bin/mlflow" ]; then
  echo "installing MLflow into $venv ..." >&2
  { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet mlflow; } ||
    { echo "could not install MLflow into $venv (python3 -m venv, then pip install mlflow: needs PyPI)" >&2; exit 2; }
fi
mlflow_version=$("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null) ||
  { echo "MLflow in $venv does not import; remove the venv to reinstall it" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cp -p "$src_bin" "$tmp/sagebrush"
bin=$tmp/sagebrush
export SAGEBRUSH_HOME=$tmp/home
unset SAGEBRUSH_SERVER SAGEBRUSH_TOKEN SAGEBRUSH_LISTEN
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # url seconds: until it answers 200
  for _ in $(seq $(($2 * 10))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not answer within $2 s" >&2; exit 1
}
json_get() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval("d" + sys.argv[2]))' "$1" "$2"; }
wait_quiet() { # seconds: at most that long, for 10 s in which the machine is >= 90% idle
  local deadline=$((SECONDS + $1)) b1 t1 b2 t2
  while [ $SECONDS -lt "$deadline" ]; do
    read -r b1 t1 < <(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 10
    read -r b2 t2 < <(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    [ $((100 * (b2 - b1) / (t2 - t1))) -le 10 ] && return 0
  done
  echo "the machine did not go quiet within $1 s; measuring anyway" >&2
}

# One real run of examples/iris, as a git repository, with no server.
cp -r examples/iris "$tmp/iris"
sed -i "s/^name = \"iris\"\$/&\nkeep_runs = $count/" "$tmp/iris/sagebrush.toml"
grep -q "^keep_runs = $count\$" "$tmp/iris/sagebrush.toml" || { echo "could not set keep_runs in the copy of examples/iris" >&2; exit 1; }
git -C "$tmp/iris" init -q -b main
git -C "$tmp/iris" add -A
git -C "$tmp/iris" -c user.name=bench -c user.email=bench@localhost commit -qm "iris for the dashboard benchmark"
echo "one real run of examples/iris ..." >&2
"$bin" run "$tmp/iris" >"$tmp/run.log" 2>&1 || { echo "sagebrush run failed:" >&2; cat "$tmp/run.log" >&2; exit 1; }

echo "growing it into $count runs of history ..." >&2
end_ms=$(($(date +%s%N) / 1000000 - 60000))
gen=$(python3 bench/dashboard/generate.py "$SAGEBRUSH_HOME" "$count" "$end_ms")
project=$(json_get "$gen" '["project"]')
if ! "$bin" project list --json | grep -q "\"$project\""; then
  "$bin" project add "$tmp/iris" >"$tmp/project-add.log" 2>&1 || { cat "$tmp/project-add.log" >&2; exit 1; }
fi
# The store must read them back: the newest page of runs, and the middle run with its stages.
"$bin" runs --json | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["runs"] if isinstance(d, dict) else d
assert r and r[0]["number"] == int(sys.argv[1]), r[:1]' "$count" ||
  { echo "sagebrush runs --json does not list run $count first" >&2; exit 1; }
"$bin" show "$project" "$middle" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)
assert d["run"]["number"] == int(sys.argv[1]) and len(d["stages"]) == 7, d' "$middle" ||
  { echo "sagebrush show $project $middle --json does not show the run and its 7 stages" >&2; exit 1; }
sb_db_mb=$(du -cm "$SAGEBRUSH_HOME"/state.db* | tail -1 | cut -f1)

"$bin" server --listen 127.0.0.1:0 >"$tmp/server.log" 2>&1 &
sb_pid=$!; pids+=("$sb_pid")
for _ in $(seq 300); do [ -s "$SAGEBRUSH_HOME/server.json" ] && break; sleep 0.1; done
[ -s "$SAGEBRUSH_HOME/server.json" ] || { echo "sagebrush server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
sb_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$SAGEBRUSH_HOME/server.json")
wait_for "$sb_url/health" 60
ctype=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$sb_url/")
case $ctype in
  "200 text/html"*) ;;
  *) echo "this sagebrush binary has no dashboard: GET $sb_url/ answered \"$ctype\", not 200 text/html" >&2; exit 2 ;;
esac
sb_version="$("$bin" --version 2>/dev/null || echo unknown), sha256 $(sha256sum "$bin" | cut -c1-12), built $(date -u -r "$bin" '+%F %T UTC')"

echo "seeding MLflow $mlflow_version with the same $count runs ..." >&2
ml_seed=$("$venv/bin/python" bench/dashboard/mlflow_seed.py "$tmp/mlflow.db" "$tmp/mlartifacts" "$count" "$end_ms" 2>"$tmp/mlflow-seed.log") ||
  { echo "seeding MLflow failed:" >&2; tail -20 "$tmp/mlflow-seed.log" >&2; exit 1; }
ml_db_mb=$(du -cm "$tmp"/mlflow.db* | tail -1 | cut -f1)
ml_port=$(free_port)
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$venv/bin/mlflow" server --backend-store-uri "sqlite:///$tmp/mlflow.db" --default-artifact-root "$tmp/mlartifacts" \
  --no-serve-artifacts --host 127.0.0.1 --port "$ml_port" --workers 1 >"$tmp/mlflow.log" 2>&1 &
ml_pid=$!; pids+=("$ml_pid")
ml_url=http://127.0.0.1:$ml_port
wait_for "$ml_url/health" 180

[ -n "${SAGEBRUSH_BENCH_WAIT_QUIET:-}" ] && wait_quiet "$SAGEBRUSH_BENCH_WAIT_QUIET"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring: $rounds rounds x $per_round requests of each kind, after $warmup of each ..." >&2
python3 bench/dashboard/measure.py "$tmp/measure.json" "$sb_url" "$project" "$middle" "$count" "$ml_url" \
  "$(json_get "$ml_seed" '["experiment_id"]')" "$(json_get "$ml_seed" '["middle_run_id"]')" \
  "$(json_get "$ml_seed" '["newest_run_id"]')" "$warmup" "$rounds" "$per_round" "$sb_pid,$ml_pid"
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# The same stage view when the project comes from git (a push-triggered project is): the page then
# reads the pipeline file (for its run form) from the branch's head with `git show`.
echo "the stage view again, with $project added from git (file://, branch main) ..." >&2
"$bin" project remove "$project" >"$tmp/project-git.log" 2>&1 &&
  "$bin" project add "file://$tmp/iris" --branch main >>"$tmp/project-git.log" 2>&1 ||
  { echo "could not add $project from git:" >&2; cat "$tmp/project-git.log" >&2; exit 1; }
echo
python3 bench/dashboard/measure.py "$tmp/measure-git.json" "$sb_url" "$project" "$middle" "$count" "$ml_url" \
  "" "" "" "$warmup" "$rounds" "$per_round" "$sb_pid" "stage view" ", project from git"
echo
echo "history: sagebrush $(json_get "$gen" '["runs"]') runs $(json_get "$gen" '["by_status"]'), $(json_get "$gen" '["stages"]') stages, $(json_get "$gen" '["events"]') events over $(json_get "$gen" '["span_days"]') days, state.db* $sb_db_mb MB; MLflow $(json_get "$ml_seed" '["count"]') runs $(json_get "$ml_seed" '["by_status"]'), mlflow.db $ml_db_mb MB"
echo "servers: $sb_version (copied from $src_bin); MLflow $mlflow_version, mlflow server --workers 1 (uvicorn), SQLite store"
echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r); load average $load0 before, $load1 after"
echo "reproduce: bench/dashboard/run.sh $count $rounds $per_round $warmup"

#!/usr/bin/env bash
# Runs list and run detail against MLflow's tracking server (issue text: "With 10,000 runs in
# history, `GET /api/v1/runs?limit=50` and one run's detail: p50 and p99 against MLflow's tracking
# server (PyPI `mlflow`, SQLite backend) answering `runs/search` with `max_results=50` over 10,000
# runs, same machine, same run of the script. Target: p99 under 10 ms and at least 10x faster
# than MLflow.")
# - sagebrush: a fresh server (default --max-runs) is given 10,000 real runs of a one-stage
#   `shell` pipeline (`true`) through `POST /api/v1/runs`, one client (pausing while 100 or more
#   are queued), and they all run.
# - MLflow (PyPI, in a venv under ~/.cache/sagebrush-bench): 10,000 finished runs written with
#   MlflowClient into a SQLite store (bench/api/mlflow_seed.py), then `mlflow server` on that
#   store with one worker (sagebrush is one process too; and the machine has 2 cores).
# - Then ROUNDS alternating rounds of PER_ROUND sequential requests of each kind, one keep-alive
#   connection per server from the same Python http.client loop (bench/api/client.py), after
#   WARMUP requests of each: sagebrush list and detail (a run in the middle), MLflow runs/search
#   (max_results=50) and runs/get (a run in the middle). Latency is send to whole answer read.
# Usage: bench/api/runs.sh [runs, default 10000] [rounds, default 10] [per round, default 200] [warm-up, default 100]
# SAGEBRUSH_BIN=path uses that binary instead of building the release one; on a shared machine,
# SAGEBRUSH_BENCH_WAIT_QUIET=SECONDS waits (at most that long) for 10 quiet seconds before measuring.
# The last line says how much CPU other processes took during the measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-10000}
rounds=${2:-10}
per_round=${3:-200}
warmup=${4:-100}
venv=${SAGEBRUSH_BENCH_MLFLOW_VENV:-$HOME/.cache/sagebrush-bench/mlflow-venv}
if [ ! -x "$venv/bin/mlflow" ]; then
  echo "installing MLflow into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet mlflow
fi
source bench/api/common.sh
mlflow_version=$("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)')

echo "seeding sagebrush with $count runs through its API ..." >&2
start_sagebrush "$work/home" ""
# At most about 120 queued at once: the scheduler reads every queued run each time it wakes (at
# every submit and every run end), so an unbounded backlog of thousands slows the queue itself
# (see queue.sh); the history, not the backlog, is what this benchmark is about.
sb_seed=$(python3 "$client" seed-sagebrush "$sb_url" bench "$count" 900 0 0 100)
number=$(json_get "$sb_seed" '["middle_number"]')

echo "seeding MLflow $mlflow_version with $count runs through MlflowClient ..." >&2
sb_db_mb=$(du -cm "$work/home"/state.db* | tail -1 | cut -f1)
ml_seed=$("$venv/bin/python" bench/api/mlflow_seed.py "sqlite:///$work/mlflow.db" "$work/mlartifacts" "$count" 2>"$work/mlflow-seed.log")
exp=$(json_get "$ml_seed" '["experiment_id"]')
run_id=$(json_get "$ml_seed" '["middle_run_id"]')
ml_db_mb=$(du -cm "$work"/mlflow.db* | tail -1 | cut -f1)
ml_port=$(free_port)
"$venv/bin/mlflow" server --backend-store-uri "sqlite:///$work/mlflow.db" --default-artifact-root "$work/mlartifacts" \
  --no-serve-artifacts --host 127.0.0.1 --port "$ml_port" --workers 1 >"$work/mlflow.log" 2>&1 &
ml_pid=$!; pids+=("$ml_pid")
ml_url=http://127.0.0.1:$ml_port
wait_for "$ml_url/health"

echo "measuring: $rounds rounds x $per_round requests of each kind, after $warmup of each ..." >&2
# On a shared machine, SAGEBRUSH_BENCH_WAIT_QUIET=SECONDS waits (at most that long) for it to go quiet first.
[ -n "${SAGEBRUSH_BENCH_WAIT_QUIET:-}" ] && wait_quiet "$SAGEBRUSH_BENCH_WAIT_QUIET"
read -r busy0 total0 < <(cpu_sample); ours0=$(pids_jiffies "$sb_pid" "$ml_pid")
res=$(python3 "$client" measure "$sb_url" bench "$number" "$ml_url" "$exp" "$run_id" "$rounds" "$per_round" "$warmup")
read -r busy1 total1 < <(cpu_sample); ours1=$(pids_jiffies "$sb_pid" "$ml_pid")
# What else ran meanwhile: busy CPU time not used by the two servers or the client, in % of both cores.
other=$(python3 -c 'import json,sys; b0,t0,o0,b1,t1,o1,hz=map(int,sys.argv[1:8]); c=json.loads(sys.argv[8])["_client_cpu_s"]*hz
print(f"{max(0.0, 100 * (b1 - b0 - (o1 - o0) - c) / (t1 - t0)):.0f}")' "$busy0" "$total0" "$ours0" "$busy1" "$total1" "$ours1" "$(getconf CLK_TCK)" "$res")

python3 - "$res" "$sb_seed" "$ml_seed" "$count" "$mlflow_version" "$sb_db_mb" "$ml_db_mb" "$other" <<'PY'
import json, sys
res, sb, ml = (json.loads(a) for a in sys.argv[1:4])
count, version, sb_mb, ml_mb, other = sys.argv[4:9]
names = [k for k in res if not k.startswith("_")]
n = res[names[0]]["n"]
print()
print(f"| {count} runs in history, {n} sequential requests each, keep-alive | p50 ms | p99 ms | max ms | answer bytes |")
print("|---|---|---|---|---|")
for k in names:
    r = res[k]
    print(f"| {k} | {r['p50']:.3f} | {r['p99']:.3f} | {r['max']:.3f} | {r['bytes']} |")
print()
pairs = [("list: sagebrush runs?limit=50 vs MLflow runs/search max_results=50", names[0], names[2]),
         ("detail: sagebrush runs/{project}/{number} vs MLflow runs/get", names[1], names[3])]
print("| MLflow / sagebrush | p50 ratio | p99 ratio |")
print("|---|---|---|")
for label, a, b in pairs:
    print(f"| {label} | {res[b]['p50'] / res[a]['p50']:.1f}x | {res[b]['p99'] / res[a]['p99']:.1f}x |")
print()
ok = all(res[k]["p99"] < 10 for k in names[:2])
fast = all(res[b][p] / res[a][p] >= 10 for _, a, b in pairs for p in ("p50", "p99"))
print(f"target p99 < 10 ms: {'met' if ok else 'missed'}; target >= 10x MLflow (p50 and p99, both pairs): {'met' if fast else 'missed'}")
print()
print(f"seeding sagebrush: {sb['listed']} runs ({sb['by_status']}) through POST /api/v1/runs, one client, at most ~120 queued: "
      f"{sb['record_wall_ms'] / 1000:.1f} s first submit -> last finish ({sb['runs_per_s']} runs/s; "
      f"submit p50 {sb['submit_ms_p50']} ms, p99 {sb['submit_ms_p99']} ms); state.db* {sb_mb} MB")
print(f"seeding MLflow {version}: {ml['count']} runs with MlflowClient into SQLite, 3 calls a run: "
      f"{ml['seed_wall_s']:.1f} s ({ml['runs_per_s']} runs/s); mlflow.db {ml_mb} MB; server --workers 1")
print(f"other processes on the machine used {other}% of its CPU during the measurement; "
      f"reconnects: {res['_reconnects']}")
PY
echo "reproduce: bench/api/runs.sh $count $rounds $per_round $warmup"

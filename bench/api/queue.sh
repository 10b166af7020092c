#!/usr/bin/env bash
# Queue overhead (issue text: "1,000 runs of a one-stage `shell` pipeline (`true`) through the
# server: runs per second and the p99 from submit to start. Target: at least 100 runs/s.")
# A fresh server and home; one client submits the runs through `POST /api/v1/runs` as fast as it
# can (parameter i = 0..N-1, so none is a duplicate), polls until none is queued or running (with
# a deadline), then reads every run record back: runs/s is N over first created_at to last
# finished_at; submit-to-start is started_at - created_at of each run (the store's ms clock).
# Then, on the same server, PACED more runs submitted one every 20 ms (50/s, below what the queue
# drains), so that submit-to-start is the scheduler's own latency rather than time spent behind
# a backlog. There is no reference system here: the issue gives an absolute target.
# Usage: bench/api/queue.sh [runs, default 1000] [--max-runs, default the server's] [paced runs, default 200]
# SAGEBRUSH_BIN=path uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-1000}
max_runs=${2:-}
paced=${3:-200}
source bench/api/common.sh
start_sagebrush "$work/home" "$max_runs"
read -r busy0 total0 < <(cpu_sample); ours0=$(pids_jiffies "$sb_pid")
burst=$(python3 "$client" seed-sagebrush "$sb_url" bench "$count" 600)
read -r busy1 total1 < <(cpu_sample); ours1=$(pids_jiffies "$sb_pid")
# What else ran meanwhile: busy CPU time not used by the server (and its runs) or the client, in % of all cores.
other=$(python3 -c 'import json,sys; b0,t0,o0,b1,t1,o1,hz=map(int,sys.argv[1:8]); c=json.loads(sys.argv[8])["client_cpu_s"]*hz
print(f"{max(0.0, 100 * (b1 - b0 - (o1 - o0) - c) / (t1 - t0)):.0f}")' "$busy0" "$total0" "$ours0" "$busy1" "$total1" "$ours1" "$(getconf CLK_TCK)" "$burst")
slow=$(python3 "$client" seed-sagebrush "$sb_url" bench "$paced" 600 "$count" 20)
python3 - "$burst" "$slow" "$count" "$paced" "${max_runs:-default ($(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 )))}" "$other" <<'PY'
import json, sys
d, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
count, paced, max_runs, other = sys.argv[3:7]
print()
print(f"| one `shell` stage (`true`), one project, one client, --max-runs {max_runs} | {count} runs, submitted as fast as one client can | {paced} more runs, one submitted every 20 ms |")
print("|---|---|---|")
print(f"| runs succeeded | {d['by_status'].get('succeeded', 0)} of {d['listed']} | {p['by_status'].get('succeeded', 0)} of {p['listed']} |")
print(f"| first submit -> last finish (run records) | {d['record_wall_ms'] / 1000:.2f} s | {p['record_wall_ms'] / 1000:.2f} s |")
print(f"| **runs/s** (target >= 100) | **{d['runs_per_s']}** | {p['runs_per_s']} (paced at 50) |")
print(f"| submit -> start p50 / p99 / max, ms | {d['to_start_ms_p50']} / {d['to_start_ms_p99']} / {d['to_start_ms_max']} | {p['to_start_ms_p50']} / {p['to_start_ms_p99']} / {p['to_start_ms_max']} |")
print(f"| start -> finish p50 / p99 (the run itself), ms | {d['exec_ms_p50']} / {d['exec_ms_p99']} | {p['exec_ms_p50']} / {p['exec_ms_p99']} |")
print(f"| POST /api/v1/runs latency p50 / p99, ms | {d['submit_ms_p50']} / {d['submit_ms_p99']} ({d['submit_per_s']} submits/s) | {p['submit_ms_p50']} / {p['submit_ms_p99']} |")
print(f"| client: first submit -> all seen finished | {d['client_wall_s']} s | {p['client_wall_s']} s |")
print()
print(f"target >= 100 runs/s: {'met' if d['runs_per_s'] >= 100 else 'missed'} ({d['runs_per_s']} runs/s)")
print(f"other processes on the machine used {other}% of its CPU during the {count} runs")
PY
echo "raw: $burst"
echo "raw (paced): $slow"
echo "reproduce: bench/api/queue.sh $count ${max_runs:-\"\"} $paced"

#!/usr/bin/env bash
# Push webhook to run started (issue text: "Webhook to run started (queued, checkout begun): p50
# and p99 over 100 pushes. Target: p99 under 50 ms.")
# A fresh server and home on loopback (--max-runs 4, SB_HOOK_SECRET in its environment), and a
# real git repository (`git init -b main`) whose sagebrush.toml has `[triggers.push]` with
# `secret = "env:SB_HOOK_SECRET"` and one `shell` stage (`true`), added with
# `sagebrush project add file://<repo>`. bench/hooks/client.py follows the project's events
# (`GET /api/v1/events`, server-sent events) on one connection, then, one push at a time (WARMUP
# pushes first, not counted), commits a change to the repository and POSTs a signed GitHub push
# webhook for that commit to /hooks/github/hooked. Per push: (a) POST sent -> 201 read whole (the
# run is queued; the server fetched the commit first), (b) POST sent -> the run's `run_started`
# event (it left the queue; its checkout begins). Each run finishes before the next push.
# Then, for where the time of (a) goes, 30 timings of the `git fetch` the server runs for each
# push, against a `git clone --mirror` of the same repository made here (not the server's).
# There is no reference system here: the issue gives an absolute target.
# Usage: bench/hooks/push.sh [pushes, default 100] [warm-up pushes, default 5]   (105 in all at most)
# SAGEBRUSH_BIN=path uses that binary instead of building the release one; on a shared machine,
# SAGEBRUSH_BENCH_WAIT_QUIET=SECONDS waits (at most that long) for 10 quiet seconds before measuring.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-100}
warmup=${2:-5}
if [ $((count + warmup)) -gt 105 ] || [ "$count" -lt 1 ]; then
  echo "at most 105 pushes in all (asked for $count + $warmup warm-up)" >&2; exit 2
fi
source bench/api/common.sh
hooks_client=$PWD/bench/hooks/client.py
home=$work/home
repo=$work/repo
secret=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

mkdir -p "$repo"
cat >"$repo/sagebrush.toml" <<'TOML'
[pipeline]
name = "hooked"

[parameters]
i = { type = "int", default = 0 }

[triggers.push]
secret = "env:SB_HOOK_SECRET"

[[stage]]
name = "show"
kind = "shell"
command = "true"
TOML
echo start >"$repo/counter"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -qm hooked

SB_HOOK_SECRET=$secret "$bin" --home "$home" server --listen 127.0.0.1:0 --max-runs 4 >"$work/server.log" 2>&1 &
sb_pid=$!; pids+=("$sb_pid")
for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
sb_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
wait_for "$sb_url/api/v1/health"
"$bin" --home "$home" project add "file://$repo" >"$work/project-add.log" 2>&1 ||
  { cat "$work/project-add.log" >&2; exit 1; }

[ -n "${SAGEBRUSH_BENCH_WAIT_QUIET:-}" ] && wait_quiet "$SAGEBRUSH_BENCH_WAIT_QUIET"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
read -r busy0 total0 < <(cpu_sample); ours0=$(pids_jiffies "$sb_pid")
if ! out=$(python3 "$hooks_client" push "$sb_url" hooked "$repo" "$secret" "$count" "$warmup" 30); then
  echo "the client failed; the server's log ends:" >&2; tail -20 "$work/server.log" >&2; exit 1
fi
read -r busy1 total1 < <(cpu_sample); ours1=$(pids_jiffies "$sb_pid")
load1=$(cut -d' ' -f1-3 /proc/loadavg)
# The client's figure covers only the counted pushes (and its git commits); the samples above also
# take in the warm-up, so "other" is, if anything, a little high.
other=$(python3 -c 'import json,sys; b0,t0,o0,b1,t1,o1,hz=map(int,sys.argv[1:8]); c=json.loads(sys.argv[8])["client_cpu_s"]*hz
print(f"{max(0.0, 100 * (b1 - b0 - (o1 - o0) - c) / (t1 - t0)):.0f}")' "$busy0" "$total0" "$ours0" "$busy1" "$total1" "$ours1" "$(getconf CLK_TCK)" "$out")
git clone --quiet --mirror -- "file://$repo" "$work/mirror.git"
fetched=$(python3 "$hooks_client" fetch "$repo" "$work/mirror.git" 30)
python3 - "$out" "$other" "$load0" "$load1" "$(nproc)" "$fetched" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
other, load0, load1, cores = sys.argv[2:6]
g = json.loads(sys.argv[6])
a, s, f = d["answer_ms"], d["started_ms"], d["finished_ms"]
print()
print(f"| {d['pushes']} sequential GitHub push webhooks (after {d['warmup']} warm-up), one `shell` stage (`true`), --max-runs 4 | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|")
print(f"| (a) POST sent -> 201 read (run queued; commit fetched) | {a['p50']} | {a['p99']} | {a['max']} |")
print(f"| **(b) POST sent -> `run_started` event (checkout begun)** (target p99 < 50) | **{s['p50']}** | **{s['p99']}** | {s['max']} |")
print(f"| POST sent -> `run_finished` event (for reference) | {f['p50']} | {f['p99']} | {f['max']} |")
print()
print(f"runs {d['runs'][0]}..{d['runs'][1]}: {d['run_statuses']}; run_started seen before the 201 was read: {d['started_before_answer_read']} of {d['pushes']}")
print(f"target p99 < 50 ms (webhook -> run started): {'met' if s['p99'] < 50 else 'missed'} ({s['p99']} ms)")
print(f"other processes on the machine used {other}% of its CPU ({cores} cores) during the pushes ({d['wall_s']} s); load average {load0} before, {load1} after")
n, z = g["fetch_new_ms"], g["fetch_nothing_new_ms"]
print(f"where (a) goes: `git fetch --quiet --prune origin` into a mirror, after the pushes, {g['fetches']} times: "
      f"a new commit p50 {n['p50']} / p99 {n['p99']} ms, nothing new p50 {z['p50']} / p99 {z['p99']} ms")
PY
echo "raw: $out"
echo "raw (fetch): $fetched"
echo "reproduce: bench/hooks/push.sh $count $warmup"

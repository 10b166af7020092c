#!/usr/bin/env bash
# Drift over captured requests against numpy/pandas (issue text: "Drift computation over 100,000
# captured rows x 4 features against numpy/pandas doing the same computation: ratio, target at
# least as fast.")
# A fresh home and a copy of examples/iris whose iris-prod deploy stage gets `capture_percent =
# 100`; `sagebrush run` (no server) trains the built-in decision tree, registers iris v1 with the
# drift baseline of data/train.csv and deploys iris-prod. bench/drift/generate.py then writes
# ROWS captured requests (one row each, fixed seed) into the home's capture/iris-prod/ as capture
# files of at most 10,000 lines: half a training row's features as they are, half with feature 2
# (0-based, as `sagebrush drift` numbers them) shifted by +1.5. Then, interleaved, REPEATS times
# each (after one untimed warm-up of each, so both read the files from the page cache):
#   (a) `sagebrush drift iris-prod --window ROWS --json`, whole-process wall time;
#   (b) `python3 tests/drift/psi_numpy.py ... --window ROWS --time` (the numpy/pandas reference,
#       the definition sagebrush is checked against), whole-process wall time, and the seconds it
#       reports for reading the capture files and for computing PSI, in-process (no interpreter
#       start-up, no imports).
# Every run of both must report ROWS rows and the same PSI per feature within 1e-9, or this fails.
# Prints medians and minimums, and the ratios reference / sagebrush (> 1: sagebrush is faster).
# Usage: bench/drift/run.sh [repeats, default 5] [rows, default 100000]
# SAGEBRUSH_BIN=path uses that binary; the default is target/release/sagebrush of this tree, which
# this script does not build: run `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${1:-5}
rows=${2:-100000}
bin=${SAGEBRUSH_BIN:-$PWD/target/release/sagebrush}
if [ ! -x "$bin" ]; then
  echo "no sagebrush binary at $bin: build it with \`cargo build --release\` or set SAGEBRUSH_BIN" >&2
  exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
python3 -c 'import numpy, pandas' 2>/dev/null || { echo "the reference needs numpy and pandas (python3 -m pip install numpy pandas)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
home=$tmp/home
export SAGEBRUSH_HOME=$home
unset SAGEBRUSH_SERVER

cp -r examples/iris "$tmp/iris"
# The file ends with the iris-prod deploy stage: this line sets capture on it.
echo 'capture_percent = 100' >>"$tmp/iris/sagebrush.toml"
"$bin" run "$tmp/iris" >"$tmp/run.log" 2>&1 || { echo "sagebrush run failed:" >&2; cat "$tmp/run.log" >&2; exit 1; }

capture=$home/capture/iris-prod
generated=$(python3 bench/drift/generate.py "$tmp/iris/data/train.csv" "$capture" iris-prod "$rows" 10000)

ours=("$bin" drift iris-prod --window "$rows" --json)
theirs=(python3 tests/drift/psi_numpy.py --train "$tmp/iris/data/train.csv" --capture "$capture" --window "$rows" --time)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$repeats" "$rows" "$generated" "$load0" "$(nproc)" "$(uname -r)" "$tmp" "${#ours[@]}" "${ours[@]}" "${theirs[@]}" <<'PY'
import json, statistics, subprocess, sys, time

repeats, rows = int(sys.argv[1]), int(sys.argv[2])
generated = json.loads(sys.argv[3])
load0, cores, kernel, tmp = sys.argv[4:8]
n = int(sys.argv[8])
ours, theirs = sys.argv[9:9 + n], sys.argv[9 + n:]

def timed(cmd):
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr.decode()}{done.stdout.decode()}")
    return wall, json.loads(done.stdout)

def check(o, t):
    ours_psi = [f["psi"] for f in o["features"]]
    problems = []
    if o["rows"] != rows or t["rows"] != rows:
        problems.append(f"rows: sagebrush {o['rows']}, numpy/pandas {t['rows']}, want {rows}")
    if o["skipped"] != 0:
        problems.append(f"sagebrush left out {o['skipped']} rows")
    if len(ours_psi) != len(t["psi"]) or any(abs(a - b) > 1e-9 for a, b in zip(ours_psi, t["psi"])):
        problems.append(f"PSI differs: sagebrush {ours_psi}, numpy/pandas {t['psi']}")
    if problems:
        sys.exit("MISMATCH between sagebrush and the reference:\n  " + "\n  ".join(problems))
    return ours_psi

# One untimed warm-up of each (page cache, binary and libraries loaded), checked like the rest.
psi = check(timed(ours)[1], timed(theirs)[1])
walls_ours, walls_theirs, reads, computes = [], [], [], []
for _ in range(repeats):
    w, o = timed(ours)
    walls_ours.append(w)
    w2, t = timed(theirs)
    walls_theirs.append(w2)
    reads.append(t["read_seconds"])
    computes.append(t["compute_seconds"])
    check(o, t)
inproc = [r + c for r, c in zip(reads, computes)]
with open("/proc/loadavg") as f:
    load1 = " ".join(f.read().split()[:3])

med, low = statistics.median, min
ms = lambda s: f"{s * 1000:.1f}"
print()
print(f"| {rows:,} captured rows x {len(psi)} features, {generated['files']} capture files "
      f"({generated['bytes'] / 1e6:.1f} MB), {repeats} interleaved runs each | median ms | min ms |")
print("|---|---|---|")
print(f"| (a) sagebrush `drift --json`, whole process | **{ms(med(walls_ours))}** | {ms(low(walls_ours))} |")
print(f"| (b) numpy/pandas `psi_numpy.py`, whole process | **{ms(med(walls_theirs))}** | {ms(low(walls_theirs))} |")
print(f"| (b) numpy/pandas in-process: read + compute (no interpreter start, no imports) | {ms(med(inproc))} | {ms(low(inproc))} |")
print(f"| (b) numpy compute only (bins + PSI, capture already in an array) | {ms(med(computes))} | {ms(low(computes))} |")
print()
r_whole = med(walls_theirs) / med(walls_ours)
r_inproc = med(inproc) / med(walls_ours)
print(f"ratio reference / sagebrush (medians; > 1 means sagebrush is faster): "
      f"whole process {r_whole:.2f}x, in-process reference vs whole sagebrush process {r_inproc:.2f}x "
      f"(minimums: {low(walls_theirs) / low(walls_ours):.2f}x, {low(inproc) / low(walls_ours):.2f}x)")
met = r_whole >= 1 and r_inproc >= 1
print(f"target \"at least as fast\": {'met' if met else 'NOT met'} "
      f"(whole process {'met' if r_whole >= 1 else 'not met'}, in-process {'met' if r_inproc >= 1 else 'not met'})")
print(f"PSI per feature (both agree within 1e-9 in all {repeats + 1} runs): " + ", ".join(f"{p:.6f}" for p in psi))
print(f"machine: nproc {cores}, kernel {kernel}; load average {load0} before, {load1} after")
show = lambda cmd: " ".join(a.replace(tmp, "$tmp") for a in cmd)
print(f"commands ($tmp is this run's temp dir, SAGEBRUSH_HOME=$tmp/home):")
print(f"  (a) {show(ours)}")
print(f"  (b) {show(theirs)}")
print("raw ms: sagebrush " + " ".join(ms(w) for w in walls_ours) + "; numpy/pandas whole " + " ".join(ms(w) for w in walls_theirs)
      + "; in-process " + " ".join(ms(w) for w in inproc) + "; compute " + " ".join(ms(w) for w in computes))
PY
echo "reproduce: bench/drift/run.sh $repeats $rows"

#!/usr/bin/env bash
# Fit time of the built-in decision tree against scikit-learn's DecisionTreeClassifier, side by side:
# synthetic 100,000 rows x 20 features, 3 classes, fully grown, then accuracy on 20,000 held-out rows.
# Usage: bench/tree/run.sh [repeats, default 3]; each side's best time is reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${1:-3}
python3 -c 'import sklearn' 2>/dev/null || python3 -m pip install --quiet scikit-learn
cargo build --release --quiet -p builtin --example fit_bench
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import sys
import numpy as np
from sklearn.datasets import make_classification
x, y = make_classification(n_samples=120000, n_features=20, n_informative=10, n_classes=3, random_state=0)
rows = np.column_stack([np.array([f"c{c}" for c in y]), x.astype(str)])
np.savetxt(f"{sys.argv[1]}/train.csv", rows[:100000], fmt="%s", delimiter=",")
np.savetxt(f"{sys.argv[1]}/holdout.csv", rows[100000:], fmt="%s", delimiter=",")
PY
best() { # command...: the run with the lowest fit_seconds, as JSON
  for _ in $(seq "$repeats"); do "$@"; done | python3 -c 'import json,sys; print(json.dumps(min((json.loads(l) for l in sys.stdin), key=lambda r: r["fit_seconds"])))'
}
ours=$(best "${CARGO_TARGET_DIR:-target}/release/examples/fit_bench" "$dir/train.csv" "$dir/holdout.csv")
theirs=$(best python3 bench/tree/sklearn_fit.py "$dir/train.csv" "$dir/holdout.csv")
python3 - "$ours" "$theirs" "$repeats" <<'PY'
import json, sys
ours, theirs, repeats = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print("| 100,000 x 20, 3 classes, fully grown | fit s (best of %s) | held-out accuracy | leaves |" % repeats)
print("|---|---|---|---|")
print("| sagebrush built-in decision tree | %.3f | %.4f | %d |" % (ours["fit_seconds"], ours["holdout_accuracy"], ours["leaves"]))
print("| scikit-learn DecisionTreeClassifier | %.3f | %.4f | %d |" % (theirs["fit_seconds"], theirs["holdout_accuracy"], theirs["leaves"]))
print()
print("speed-up (scikit-learn / sagebrush): %.2fx" % (theirs["fit_seconds"] / ours["fit_seconds"]))
print("reproduce: bench/tree/run.sh %s" % repeats)
PY

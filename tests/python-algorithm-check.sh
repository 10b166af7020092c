#!/usr/bin/env bash
# The Python example algorithm on its own, outside sagebrush: train, a failing train, serve.
# SM_OPT_ML points the algorithm at a temp dir instead of /opt/ml, so no mount namespace is needed.
# Run from anywhere: bash tests/python-algorithm-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
algorithm=examples/iris-python/algorithm
data=examples/iris-python/data
tmp=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "python-algorithm-check: $*" >&2; exit 1; }

# Training with a training and a validation channel.
mkdir -p "$tmp/ok/input/config" "$tmp/ok/input/data/training" "$tmp/ok/input/data/validation" \
  "$tmp/ok/model" "$tmp/ok/output"
echo '{"max_leaf_nodes": "5", "sagemaker_region": "\"local\""}' > "$tmp/ok/input/config/hyperparameters.json"
cp "$data/train.csv" "$tmp/ok/input/data/training/"
cp "$data/validation.csv" "$tmp/ok/input/data/validation/"
out=$(SM_OPT_ML="$tmp/ok" "$algorithm/train") || fail "train failed: $(cat "$tmp/ok/output/failure" 2>/dev/null)"
grep -qE '^train_accuracy=0\.9[0-9]{3}$' <<<"$out" || fail "no train_accuracy >= 0.9 in: $out"
grep -qE '^validation_accuracy=[01]\.[0-9]{4}$' <<<"$out" || fail "no validation_accuracy in: $out"
[ -s "$tmp/ok/model/decision-tree-model.pkl" ] || fail "no model written"
[ ! -e "$tmp/ok/output/failure" ] || fail "a successful run wrote output/failure"

# A hyperparameter that is not an int: exit 255 and a failure reason that names it.
cp -r "$tmp/ok" "$tmp/bad"
echo '{"max_leaf_nodes": "many"}' > "$tmp/bad/input/config/hyperparameters.json"
rc=0
SM_OPT_ML="$tmp/bad" "$algorithm/train" >/dev/null 2>"$tmp/bad.stderr" || rc=$?
[ "$rc" -eq 255 ] || fail "bad hyperparameter: exit $rc, not 255"
grep -q "many" "$tmp/bad/output/failure" || fail "output/failure does not name the bad value"
grep -q "many" "$tmp/bad.stderr" || fail "stderr does not name the bad value"

# An unknown hyperparameter is an error too.
echo '{"max_depth": "3"}' > "$tmp/bad/input/config/hyperparameters.json"
rm -f "$tmp/bad/output/failure"
if SM_OPT_ML="$tmp/bad" "$algorithm/train" >/dev/null 2>&1; then fail "unknown hyperparameter accepted"; fi
grep -q "max_depth" "$tmp/bad/output/failure" || fail "output/failure does not name the unknown hyperparameter"

# Serving the model trained above.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SM_OPT_ML="$tmp/ok" SAGEMAKER_BIND_TO_PORT=$port "$algorithm/serve" 2>"$tmp/serve.log" &
server=$!
url=http://127.0.0.1:$port
deadline=$((SECONDS + 10))
until curl -sf -o /dev/null --max-time 2 "$url/ping"; do
  kill -0 "$server" 2>/dev/null || fail "serve exited: $(cat "$tmp/serve.log")"
  [ "$SECONDS" -lt "$deadline" ] || fail "serve did not answer /ping within 10 s: $(cat "$tmp/serve.log")"
  sleep 0.1
done

# Predictions: one label per row, the right ones for the test set (the pipeline's smoke test wants 0.9).
cut -d, -f2- "$data/test.csv" > "$tmp/rows.csv"
cut -d, -f1 "$data/test.csv" > "$tmp/expected.csv"
curl -sf -D "$tmp/headers" -o "$tmp/answer.csv" -H 'Content-Type: text/csv; charset=utf-8' \
  --data-binary @"$tmp/rows.csv" "$url/invocations" || fail "POST /invocations failed"
grep -qi '^content-type: text/csv' "$tmp/headers" || fail "answer is not text/csv: $(cat "$tmp/headers")"
rows=$(grep -c . "$tmp/rows.csv")
[ "$(grep -c . "$tmp/answer.csv")" -eq "$rows" ] || fail "$rows rows, but got: $(cat "$tmp/answer.csv")"
if grep -qvE '^(setosa|versicolor|virginica)$' "$tmp/answer.csv"; then fail "unexpected labels: $(cat "$tmp/answer.csv")"; fi
diff <(grep . "$tmp/expected.csv") "$tmp/answer.csv" >/dev/null || fail "wrong predictions: $(cat "$tmp/answer.csv")"

# Errors: 415 for anything but CSV, 400 naming the bad row.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data '{}' "$url/invocations")
[ "$code" = 415 ] || fail "JSON got $code, not 415"
code=$(curl -s -o "$tmp/error.txt" -w '%{http_code}' -H 'Content-Type: text/csv' \
  --data-binary $'5.1,3.5,1.4,0.2\na,b,c,d\n' "$url/invocations")
[ "$code" = 400 ] || fail "a non-numeric row got $code, not 400"
grep -q "row 2" "$tmp/error.txt" || fail "the 400 does not name row 2: $(cat "$tmp/error.txt")"
code=$(curl -s -o "$tmp/error.txt" -w '%{http_code}' -H 'Content-Type: text/csv' --data 'a,b' "$url/invocations")
[ "$code" = 400 ] || fail "a row with 2 columns got $code, not 400"
grep -q "row 1" "$tmp/error.txt" || fail "the 400 does not name row 1: $(cat "$tmp/error.txt")"

# SIGTERM shuts the server down cleanly.
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
server=""
[ "$rc" -eq 0 ] || fail "serve exited $rc after SIGTERM: $(cat "$tmp/serve.log")"
echo "python-algorithm-check: ok"

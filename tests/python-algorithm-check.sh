#!/usr/bin/env bash
# The Python example algorithm on its own, outside sagebrush: train, a failing train, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
algorithm=examples/iris-python/algorithm
data=examples/iris-python/data
tmp=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "python-algorithm-check: $*" >&2; exit 1; }

mkdir -p "$tmp/ok/input/config" "$tmp/ok/input/data/training" "$tmp/ok/model" "$tmp/ok/output"
echo '{"max_leaf_nodes": "5"}' > "$tmp/ok/input/config/hyperparameters.json"
cp "$data/train.csv" "$tmp/ok/input/data/training/"
out=$(SM_OPT_ML="$tmp/ok" "$algorithm/train")
grep -q '^train_accuracy=0\.9' <<<"$out" || fail "no train_accuracy in: $out"
[ -s "$tmp/ok/model/decision-tree-model.pkl" ] || fail "no model written"

cp -r "$tmp/ok" "$tmp/bad"
echo '{"max_leaf_nodes": "many"}' > "$tmp/bad/input/config/hyperparameters.json"
if SM_OPT_ML="$tmp/bad" "$algorithm/train" >/dev/null 2>&1; then fail "bad hyperparameter accepted"; fi
grep -q "many" "$tmp/bad/output/failure" || fail "failure file does not name the bad value"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SM_OPT_ML="$tmp/ok" SAGEMAKER_BIND_TO_PORT=$port "$algorithm/serve" 2>"$tmp/serve.log" &
server=$!
url=http://127.0.0.1:$port
for _ in $(seq 200); do
  curl -sf "$url/ping" >/dev/null && break
  kill -0 "$server" 2>/dev/null || fail "serve exited: $(cat "$tmp/serve.log")"
  sleep 0.05
done
curl -sf "$url/ping" >/dev/null || fail "serve did not answer /ping within 10 s"
cut -d, -f2- "$data/test.csv" > "$tmp/rows.csv"
answer=$(curl -sf -H 'Content-Type: text/csv' --data-binary @"$tmp/rows.csv" "$url/invocations")
[ "$(wc -l <<<"$answer")" -eq "$(grep -c . "$tmp/rows.csv")" ] || fail "wrong number of predictions: $answer"
grep -qvE '^(setosa|versicolor|virginica)$' <<<"$answer" && fail "unexpected labels: $answer"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data '{}' "$url/invocations")
[ "$code" = 415 ] || fail "JSON got $code, not 415"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/csv' --data 'a,b' "$url/invocations")
[ "$code" = 400 ] || fail "a bad row got $code, not 400"
echo "python-algorithm-check: ok"

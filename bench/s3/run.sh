#!/usr/bin/env bash
# The workshop's data step, `aws s3 cp`, against sagebrush's S3 API and against moto's server
# (the S3 a developer runs on a laptop without an account), side by side in one run, through the
# same AWS CLI: a 200 MB file up (multipart, 8 MB parts) and down (ranged GETs), 200 small files
# up with `cp --recursive`, and a listing of them. Each step alternates between the two, `rounds`
# times; the median of each is reported, with the ratio. Loads go to loopback only.
# Needs: awscli and moto[server] from PyPI (test.sh installs both).
# Usage: bench/s3/run.sh [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
for tool in aws moto_server curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (see test.sh)" >&2; exit 2; }
done
cargo build --release --quiet
bin=$PWD/target/release/sagebrush
work=$(mktemp -d)
export SAGEBRUSH_HOME=$work/home AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
cleanup() {
  kill "$server" "$moto" 2>/dev/null || true
  wait "$server" "$moto" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
$bin server --listen 127.0.0.1:0 2>"$work/server.log" &
server=$!
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
for _ in $(seq 200); do [ -s "$SAGEBRUSH_HOME/server.json" ] && break; sleep 0.05; done
sagebrush_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$SAGEBRUSH_HOME/server.json")
moto_url=http://127.0.0.1:$port
for _ in $(seq 200); do curl -sf -o /dev/null "$moto_url/moto-api/" && break; sleep 0.05; done

head -c 200000000 /dev/urandom >"$work/big.bin"
mkdir -p "$work/small"
for i in $(seq 200); do head -c 4096 /dev/urandom >"$work/small/$i.csv"; done
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
declare -A times
step() { # side url label command...
  local side=$1 url=$2 label=$3 start
  shift 3
  start=$(now_ms)
  aws --endpoint-url "$url" "$@" >/dev/null
  times[$side,$label]+="$(( $(now_ms) - start )) "
}
for url in "$sagebrush_url" "$moto_url"; do aws --endpoint-url "$url" s3 mb s3://bench >/dev/null; done
for round in $(seq "$rounds"); do
  for side in sagebrush moto; do
    url=$sagebrush_url
    [ "$side" = moto ] && url=$moto_url
    step "$side" "$url" "up 200 MB" s3 cp --only-show-errors "$work/big.bin" "s3://bench/big-$round.bin"
    step "$side" "$url" "down 200 MB" s3 cp --only-show-errors "s3://bench/big-$round.bin" "$work/back-$side.bin"
    cmp -s "$work/big.bin" "$work/back-$side.bin" || { echo "$side: the download is not the upload" >&2; exit 1; }
    step "$side" "$url" "up 200 x 4 KB" s3 cp --only-show-errors --recursive "$work/small" "s3://bench/small-$round/"
    step "$side" "$url" "list 200 keys" s3 ls "s3://bench/small-$round/"
    aws --endpoint-url "$url" s3 rm --only-show-errors "s3://bench/big-$round.bin"
  done
done

echo "## aws s3 cp: sagebrush's S3 API against moto's server (bench/s3/run.sh $rounds)"
echo
echo "| step ($rounds rounds each) | sagebrush min / median / max ms | moto min / median / max ms | moto / sagebrush (median) |"
echo "|---|---|---|---|"
for label in "up 200 MB" "down 200 MB" "up 200 x 4 KB" "list 200 keys"; do
  read -r smin smed smax <<<"$(tr ' ' '\n' <<<"${times[sagebrush,$label]}" | grep . | stats)"
  read -r mmin mmed mmax <<<"$(tr ' ' '\n' <<<"${times[moto,$label]}" | grep . | stats)"
  ratio=$(awk -v m="$mmed" -v s="$smed" 'BEGIN { printf "%.2fx", m / s }')
  echo "| $label | $smin / $smed / $smax | $mmin / $mmed / $mmax | $ratio |"
done

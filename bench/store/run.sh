#!/usr/bin/env bash
# The state store's write path on SQLite and on a local Postgres, side by side: 1,000 run
# submissions and 10,000 stage transitions, one client and four.
#
# Postgres runs twice: as installed (every commit flushed to disk), and with
# synchronous_commit=off, which is what SQLite's WAL with synchronous=NORMAL (sagebrush's setting)
# promises: nothing lost on a process crash, the last commits possibly lost on a power cut.
# Usage: bench/store/run.sh   (needs Debian's postgresql; run as root or as a user Postgres accepts)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p store --example store_bench
bench=target/release/examples/store_bench
bin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
work=$(mktemp -d)
trap 'pkill -INT -f "postgres -D $work" 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
as_pg "$bin/initdb" -U sagebrush -A trust -E UTF8 -D "$work/data" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_pg() { # extra postgres options...
  as_pg "$bin/postgres" -D "$work/data" -h 127.0.0.1 -p "$port" -k "$work" "$@" >"$work/pg.log" 2>&1 &
  for _ in $(seq 100); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && return; sleep 0.1; done
  echo "postgres did not start" >&2; cat "$work/pg.log" >&2; exit 1
}
stop_pg() { pkill -INT -f "postgres -D $work" || true; while pgrep -f "postgres -D $work" >/dev/null; do sleep 0.1; done; }

n=0
run() { # label database concurrency
  n=$((n + 1))
  printf '%-34s ' "$1 ($3 client$([ "$3" = 1 ] || echo s))"
  "$bench" "$2" "$3"
}
for clients in 1 4; do
  run "SQLite (WAL, synchronous=NORMAL)" "$work/state-$clients.db" "$clients"
done
start_pg
for clients in 1 4; do
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U sagebrush "durable$clients"
  run "Postgres (as installed)" "postgres://sagebrush@127.0.0.1:$port/durable$clients" "$clients"
done
stop_pg
start_pg -c synchronous_commit=off
for clients in 1 4; do
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U sagebrush "relaxed$clients"
  run "Postgres (synchronous_commit=off)" "postgres://sagebrush@127.0.0.1:$port/relaxed$clients" "$clients"
done

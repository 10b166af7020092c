# Shared by bench/api/runs.sh and bench/api/queue.sh (sourced, from the repository root).
# SAGEBRUSH_BIN names a built sagebrush binary to use; without it the release build is made here.
if [ -n "${SAGEBRUSH_BIN:-}" ]; then
  bin=$SAGEBRUSH_BIN
else
  cargo build --release --quiet
  bin=$PWD/target/release/sagebrush
fi
client=$PWD/bench/api/client.py
pids=()
work=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # url: until it answers, 60 s at most
  for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 never answered" >&2; exit 1
}
json_get() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval("d" + sys.argv[2]))' "$1" "$2"; }

# The benchmark project: one `shell` stage running `true`, an int parameter so that every
# submitted run is distinct (the queue answers a repeat of a queued commit + parameters with it).
make_project() { # folder
  mkdir -p "$1"
  cat >"$1/sagebrush.toml" <<'TOML'
[pipeline]
name = "bench"

[parameters]
i = { type = "int", default = 0, help = "a distinct value for each submitted run" }

[[stage]]
name = "noop"
kind = "shell"
command = "true"
TOML
  git -C "$1" init -q
  git -C "$1" add -A
  git -C "$1" -c user.name=bench -c user.email=bench@localhost commit -qm bench
}

start_sagebrush() { # home, max-runs ("" for the default) -> sets sb_url, sb_pid
  local home=$1 max_runs=$2 args=()
  [ -n "$max_runs" ] && args+=(--max-runs "$max_runs")
  make_project "$home.project"
  "$bin" --home "$home" project add "$home.project" >/dev/null 2>&1
  "$bin" --home "$home" server --listen 127.0.0.1:0 "${args[@]}" >"$home.server.log" 2>&1 &
  sb_pid=$!; pids+=("$sb_pid")
  for _ in $(seq 200); do [ -s "$home/server.json" ] && break; sleep 0.05; done
  sb_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$home/server.json")
  wait_for "$sb_url/api/v1/health"
}

# Other load on the machine: the benchmarks share it, so they say how busy it was meanwhile.
cpu_sample() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; } # -> busy total (jiffies)
tree_pids() { echo "$1"; for child in $(pgrep -P "$1"); do tree_pids "$child"; done; }
pids_jiffies() { # pids... -> CPU time of them, their descendants and the children they reaped
  local total=0 p
  for p in $(for root in "$@"; do tree_pids "$root"; done); do
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
wait_quiet() { # seconds: wait at most that long for 10 s in which the machine is >= 90% idle
  local deadline=$((SECONDS + $1)) b1 t1 b2 t2
  while [ $SECONDS -lt "$deadline" ]; do
    read -r b1 t1 < <(cpu_sample); sleep 10; read -r b2 t2 < <(cpu_sample)
    [ $((100 * (b2 - b1) / (t2 - t1))) -le 10 ] && return 0
  done
  echo "the machine did not go quiet within $1 s; measuring anyway" >&2
}

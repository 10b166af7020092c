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

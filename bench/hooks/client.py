#!/usr/bin/env python3
"""Push client for bench/hooks/push.sh: standard library only.

  client.py push URL PROJECT REPO SECRET COUNT WARMUP [TIMEOUT_S]
      Follows `GET /api/v1/events?project=PROJECT` (server-sent events) on one connection, in a
      thread that notes the arrival time (perf_counter) of every event. Then WARMUP + COUNT times,
      one after another: commits a change to REPO (a counter file; not timed), and POSTs a
      GitHub-format push webhook for that commit to /hooks/github/PROJECT on one keep-alive
      connection, signed with SECRET (X-Hub-Signature-256), with a unique X-GitHub-Delivery.
      For each push it takes (a) POST sent -> 201 answer read whole (the run is queued), and
      (b) POST sent -> the run's `run_started` event seen by the follower (the run left the
      queue; its checkout begins), then waits for the run's `run_finished` before the next push,
      so the queue is empty at every push. Prints a JSON summary of the COUNT counted pushes.
  client.py fetch REPO MIRROR COUNT
      Where the time of (a) goes: COUNT times, commits a change to REPO and times the command the
      server runs first for a push, `git -C MIRROR fetch --quiet --prune origin` (MIRROR made with
      `git clone --mirror`, as `project add` makes its own), then the same fetch with nothing new.
"""
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return None
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def cpu_s():
    """CPU seconds this process and the children it waited for (git) have used."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Follower(threading.Thread):
    """Reads the event stream; seen[(kind, number)] = (perf_counter at arrival, event)."""

    def __init__(self, host, port, project):
        super().__init__(daemon=True)
        self.seen = {}
        self.cond = threading.Condition()
        self.error = None
        self.c = http.client.HTTPConnection(host, port, timeout=120)
        self.c.request("GET", f"/api/v1/events?project={project}", headers={"Accept": "text/event-stream"})
        self.r = self.c.getresponse()  # the stream starts with the next change from here on
        if self.r.status != 200 or "text/event-stream" not in (self.r.getheader("Content-Type") or ""):
            sys.exit(f"events stream answered {self.r.status} {self.r.getheader('Content-Type')}: {self.r.read(500)!r}")

    def run(self):
        kind, data, arrived = None, None, None
        try:
            while True:
                line = self.r.readline()
                if not line:
                    raise EOFError("the event stream ended")
                line = line.decode().rstrip("\r\n")
                if line == "":  # end of one event
                    if kind and data:
                        event = json.loads(data)
                        with self.cond:
                            self.seen[(kind, event["data"]["number"])] = (arrived, event)
                            self.cond.notify_all()
                    kind, data, arrived = None, None, None
                    continue
                if arrived is None:
                    arrived = time.perf_counter()
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
        except Exception as e:  # noqa: BLE001 - reported by wait()
            with self.cond:
                self.error = repr(e)
                self.cond.notify_all()

    def wait(self, kind, number, timeout):
        deadline = time.perf_counter() + timeout
        with self.cond:
            while (kind, number) not in self.seen:
                if self.error:
                    sys.exit(f"event stream failed: {self.error}")
                left = deadline - time.perf_counter()
                if left <= 0:
                    sys.exit(f"no {kind} event for run {number} within {timeout} s")
                self.cond.wait(left)
            return self.seen[(kind, number)]


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def push(url, project, repo, secret, count, warmup, timeout_s=30.0):
    u = urllib.parse.urlsplit(url)
    follower = Follower(u.hostname, u.port, project)
    follower.start()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    key = secret.encode()
    answer_ms, started_ms, finished_ms, numbers, statuses = [], [], [], [], {}
    sample = None
    cpu0 = None
    t_first = None
    for k in range(warmup + count):
        counted = k >= warmup
        if counted and cpu0 is None:
            cpu0, t_first = cpu_s(), time.perf_counter()
        with open(os.path.join(repo, "counter"), "w") as f:
            f.write(f"{k}\n")
        git(repo, "commit", "-qam", f"push {k}")
        sha = git(repo, "rev-parse", "HEAD")
        body = json.dumps({
            "ref": "refs/heads/main",
            "after": sha,
            "commits": [{"added": [], "modified": ["counter"], "removed": []}],
            "pusher": {"name": "bench"},
        }).encode()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bench-{os.getpid()}-{k}",
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        }
        t0 = time.perf_counter()
        c.request("POST", f"/hooks/github/{project}", body=body, headers=headers)
        r = c.getresponse()
        raw = r.read()
        t1 = time.perf_counter()
        if r.status != 201:
            sys.exit(f"push {k} answered {r.status}: {raw[:1000]!r}")
        answer = json.loads(raw)
        if answer.get("outcome") != "started":
            sys.exit(f"push {k}: outcome {answer.get('outcome')!r}: {raw[:1000]!r}")
        number = answer["run"]["number"]
        if answer["run"].get("requested_commit") not in (None, sha):
            sys.exit(f"push {k}: run {number} builds {answer['run'].get('requested_commit')}, not {sha}")
        t_started, ev_started = follower.wait("run_started", number, timeout_s)
        t_finished, ev_finished = follower.wait("run_finished", number, timeout_s)
        status = ev_finished["data"]["status"]
        if sample is None:
            sample = ev_started
        if counted:
            answer_ms.append((t1 - t0) * 1000)
            started_ms.append((t_started - t0) * 1000)
            finished_ms.append((t_finished - t0) * 1000)
            numbers.append(number)
            statuses[status] = statuses.get(status, 0) + 1
    wall = time.perf_counter() - t_first
    client_cpu = cpu_s() - cpu0

    def summary(v):
        return {"p50": round(pct(v, 50), 2), "p99": round(pct(v, 99), 2), "max": round(max(v), 2)}

    # A run_started seen before the 201 was read: the run left the queue while the answer was on its way.
    early = sum(1 for a, s in zip(answer_ms, started_ms) if s < a)
    return {
        "pushes": count,
        "warmup": warmup,
        "runs": [numbers[0], numbers[-1]],
        "run_statuses": statuses,
        "answer_ms": summary(answer_ms),
        "started_ms": summary(started_ms),
        "finished_ms": summary(finished_ms),
        "started_before_answer_read": early,
        "wall_s": round(wall, 2),
        "client_cpu_s": round(client_cpu, 3),
        "sample_run_started_event": sample,
    }


def fetch(repo, mirror, count):
    new, none = [], []
    for k in range(count):
        with open(os.path.join(repo, "counter"), "w") as f:
            f.write(f"fetch {k}\n")
        git(repo, "commit", "-qam", f"fetch {k}")
        for out in (new, none):
            t0 = time.perf_counter()
            subprocess.run(["git", "-C", mirror, "fetch", "--quiet", "--prune", "origin"], check=True,
                           capture_output=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
            out.append((time.perf_counter() - t0) * 1000)
    if git(mirror, "rev-parse", "refs/heads/main") != git(repo, "rev-parse", "HEAD"):
        sys.exit("the mirror did not fetch the newest commit")

    def summary(v):
        return {"p50": round(pct(v, 50), 2), "p99": round(pct(v, 99), 2), "max": round(max(v), 2)}

    return {"fetches": count, "fetch_new_ms": summary(new), "fetch_nothing_new_ms": summary(none)}


def main():
    cmd, args = sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:]
    if cmd == "push" and len(args) >= 6:
        out = push(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]),
                   float(args[6]) if len(args) > 6 else 30.0)
    elif cmd == "fetch" and len(args) == 3:
        out = fetch(args[0], args[1], int(args[2]))
    else:
        sys.exit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

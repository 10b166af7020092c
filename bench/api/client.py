#!/usr/bin/env python3
"""Load client for bench/api/runs.sh and bench/api/queue.sh: standard library only.

One keep-alive `http.client` connection per server, requests sent one after another, each
request's latency taken with perf_counter_ns around sending it and reading the whole answer.

  client.py seed-sagebrush URL PROJECT COUNT [DEADLINE_S [FIRST [INTERVAL_MS [MAX_BACKLOG]]]]
      Submits COUNT runs (`POST /api/v1/runs`, parameter i = FIRST..FIRST+COUNT-1) as fast as one
      client can (or one every INTERVAL_MS; or, with MAX_BACKLOG, pausing every 20 submits while
      MAX_BACKLOG or more are queued), waits (polling, with a deadline) until none is queued
      or running, then reads those runs back from the API and prints a JSON summary: runs/s,
      submit-to-start percentiles, failures.
  client.py measure SB_URL PROJECT NUMBER ML_URL EXPERIMENT_ID RUN_ID ROUNDS PER_ROUND WARMUP
      Alternating rounds of PER_ROUND sequential requests of each of the four kinds; prints JSON
      with p50/p99 per kind (over all rounds).
"""
import http.client
import json
import os
import sys
import time
import urllib.parse


class Conn:
    """One keep-alive HTTP/1.1 connection; reconnects only if the server closed it."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.reconnects = 0
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, raw
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if attempt:
                    raise
                self.reconnects += 1
                self.c.close()
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def json(self, method, path, body=None, ok=(200, 201)):
        status, raw = self.request(method, path, body)
        if status not in ok:
            sys.exit(f"{method} {path} answered {status}: {raw[:500]!r}")
        return json.loads(raw)


def cpu_s():
    """CPU seconds this process has used."""
    t = os.times()
    return t.user + t.system


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return None
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def seed_sagebrush(url, project, count, deadline_s=900.0, first=0, interval_ms=0.0, max_backlog=0):
    c = Conn(url)
    submit_ms, statuses = [], {}
    cpu0 = cpu_s()
    t0 = time.time()
    for i in range(first, first + count):
        if interval_ms:  # paced: submission k at t0 + k * interval
            wait = t0 + (i - first) * interval_ms / 1000 - time.time()
            if wait > 0:
                time.sleep(wait)
        if max_backlog and (i - first) % 20 == 0:  # keep at most about max_backlog + 20 runs queued
            deadline = time.time() + deadline_s
            while len(c.json("GET", f"/api/v1/runs?project={project}&status=queued&limit={max_backlog}")["runs"]) >= max_backlog:
                if time.time() > deadline:
                    sys.exit(f"the queue did not drain below {max_backlog} in {deadline_s} s")
                time.sleep(0.01)
        a = time.perf_counter_ns()
        status, raw = c.request("POST", "/api/v1/runs", {"project": project, "parameters": [["i", str(i)]]})
        submit_ms.append((time.perf_counter_ns() - a) / 1e6)
        statuses[status] = statuses.get(status, 0) + 1
        if status != 201:
            sys.exit(f"submit {i} answered {status}: {raw[:500]!r}")
        if json.loads(raw).get("duplicate"):
            sys.exit(f"submit {i} was answered as a duplicate")
    t_submitted = time.time()
    # Runs only move forward (queued -> running -> finished), so once no run is queued and then
    # none is running, all are finished.
    deadline = time.time() + deadline_s
    polls = 0
    while True:
        polls += 1
        q = c.json("GET", f"/api/v1/runs?project={project}&status=queued&limit=1")["runs"]
        r = [] if q else c.json("GET", f"/api/v1/runs?project={project}&status=running&limit=1")["runs"]
        if not q and not r:
            break
        if time.time() > deadline:
            sys.exit(f"runs still queued or running after {deadline_s} s")
        time.sleep(0.05)  # poll interval, not a wait for an outcome
    t_done = time.time()
    client_cpu = cpu_s() - cpu0
    runs, cursor = [], None
    while True:
        page = c.json("GET", f"/api/v1/runs?project={project}&limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        runs += page["runs"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    runs = [r for r in runs if r["trigger"] == "manual" and first <= r["parameters"]["i"] < first + count]
    by_status = {}
    for r in runs:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    created = [r["created_at"] for r in runs]
    finished = [r["finished_at"] for r in runs if r["finished_at"] is not None]
    to_start = [r["started_at"] - r["created_at"] for r in runs if r["started_at"] is not None]
    exec_ms = [r["finished_at"] - r["started_at"] for r in runs if r["started_at"] and r["finished_at"]]
    wall_ms = max(finished) - min(created)
    numbers = sorted(r["number"] for r in runs)
    return {
        "count": count,
        "listed": len(runs),
        "by_status": by_status,
        "http_statuses": statuses,
        "submit_wall_s": round(t_submitted - t0, 3),
        "client_wall_s": round(t_done - t0, 3),
        "record_wall_ms": wall_ms,
        "runs_per_s": round(len(runs) / (wall_ms / 1000), 1),
        "submit_per_s": round(count / (t_submitted - t0), 1),
        "submit_ms_p50": round(pct(submit_ms, 50), 3),
        "submit_ms_p99": round(pct(submit_ms, 99), 3),
        "to_start_ms_p50": pct(to_start, 50),
        "to_start_ms_p99": pct(to_start, 99),
        "to_start_ms_max": max(to_start),
        "exec_ms_p50": pct(exec_ms, 50),
        "exec_ms_p99": pct(exec_ms, 99),
        "polls": polls,
        "middle_number": numbers[len(numbers) // 2],
        "reconnects": c.reconnects,
        "client_cpu_s": round(client_cpu, 3),
    }


def measure(sb_url, project, number, ml_url, exp, run_id, rounds, per_round, warmup):
    sb, ml = Conn(sb_url), Conn(ml_url)
    kinds = [
        ("sagebrush GET /api/v1/runs?limit=50", sb, "GET", "/api/v1/runs?limit=50", None,
         lambda d: len(d["runs"]) == 50),
        (f"sagebrush GET /api/v1/runs/{project}/{number}", sb, "GET", f"/api/v1/runs/{project}/{number}", None,
         lambda d: d["run"]["number"] == number),
        ("MLflow POST runs/search max_results=50", ml, "POST", "/api/2.0/mlflow/runs/search",
         {"experiment_ids": [exp], "max_results": 50}, lambda d: len(d["runs"]) == 50),
        ("MLflow GET runs/get", ml, "GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}", None,
         lambda d: d["run"]["info"]["run_id"] == run_id),
    ]
    lat = {k[0]: [] for k in kinds}
    sizes = {}
    for name, conn, method, path, body, check in kinds:
        for _ in range(warmup):
            status, raw = conn.request(method, path, body)
            if status != 200:
                sys.exit(f"{name} answered {status}: {raw[:500]!r}")
        if not check(json.loads(raw)):
            sys.exit(f"{name}: unexpected answer {raw[:500]!r}")
        sizes[name] = len(raw)
    cpu0 = cpu_s()
    for _ in range(rounds):
        for name, conn, method, path, body, _check in kinds:
            out = lat[name]
            for _ in range(per_round):
                a = time.perf_counter_ns()
                status, raw = conn.request(method, path, body)
                out.append((time.perf_counter_ns() - a) / 1e6)
                if status != 200:
                    sys.exit(f"{name} answered {status}: {raw[:500]!r}")
    res = {}
    for name in lat:
        v = lat[name]
        res[name] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v), "bytes": sizes[name]}
    res["_client_cpu_s"] = round(cpu_s() - cpu0, 3)
    res["_reconnects"] = {"sagebrush": sb.reconnects, "mlflow": ml.reconnects}
    return res


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seed-sagebrush":
        out = seed_sagebrush(args[0], args[1], int(args[2]), float(args[3]) if len(args) > 3 else 900.0,
                             int(args[4]) if len(args) > 4 else 0, float(args[5]) if len(args) > 5 else 0.0,
                             int(args[6]) if len(args) > 6 else 0)
    elif cmd == "measure":
        out = measure(args[0], args[1], int(args[2]), args[3], args[4], args[5], int(args[6]), int(args[7]),
                      int(args[8]))
    else:
        sys.exit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

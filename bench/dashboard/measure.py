#!/usr/bin/env python3
"""Load client for bench/dashboard/run.sh: standard library only.

  measure.py OUT_JSON SB_URL PROJECT MIDDLE NEWEST ML_URL EXPERIMENT_ID ML_MIDDLE_ID ML_NEWEST_ID
             WARMUP ROUNDS PER_ROUND PIDS [ONLY TAG]

For each view, sagebrush's server-rendered page and the request MLflow's UI makes to its server
for the same view (what its bundled JavaScript calls; the HTML page itself is a static shell):
  projects   sagebrush GET /                     MLflow GET  ajax-api/2.0/mlflow/experiments/search
                                                 (max_results=25, order_by last_update_time DESC, the
                                                 UI's filter)
  stage view sagebrush GET /projects/PROJECT     MLflow POST ajax-api/2.0/mlflow/runs/search
                                                 (max_results=100, start_time DESC, ACTIVE_ONLY)
  run detail sagebrush GET /runs/PROJECT/N       MLflow GET  ajax-api/2.0/mlflow/runs/get?run_id=..
             for the middle run and the newest
  older page the stage view's next page, if the sagebrush page links one, and MLflow's runs/search
             with the page_token of its first answer.
Also MLflow's runs/search with 25 rows, the stage view's page size (like for like on rows), both
servers' GET /health (the floor: this client and each HTTP stack), and, to tell rendering from
the rest, sagebrush's JSON API for the same data: the runs of the stage
view without their stages (/api/v1/runs?project=..&limit=25) and the middle run with its stages
(/api/v1/runs/PROJECT/N).
One keep-alive http.client connection per server, requests one at a time, each timed with
perf_counter_ns from sending it to having read its whole answer. Every request sends what a
browser sends: `Accept-Encoding: gzip, deflate, br` (and `Accept: text/html,...` for the pages),
so the bytes are what the server puts on the wire for a browser. First WARMUP requests of each
kind (each answer checked: 200, its content type, the run or rows it should show), then ROUNDS
rounds of PER_ROUND requests of each kind in turn, all kinds in each round, so that other load on
the machine falls on both servers alike. A request that found its connection closed by the server
(idle too long while the other server was being timed) is sent again and only that one counted. Also fetched once, untimed: each answer with
`Accept-Encoding: identity` (its uncompressed size, and what gzip -6 would make of it), MLflow's
static shell (GET /) and the scripts and stylesheets it and sagebrush's projects page reference.
PIDS (comma-separated): the servers, so the busy CPU time of everything else on the machine during
the timed rounds can be reported. Writes OUT_JSON and prints a Markdown table. With ONLY (view
names, comma-separated), only those views of sagebrush are timed, named with TAG appended, and
the table has just their rows (run.sh uses it for the stage view of a project added from git).
"""
import gzip
import html.parser
import http.client
import json
import os
import re
import sys
import time
import urllib.parse
import zlib

BROWSER = {"Accept-Encoding": "gzip, deflate, br", "User-Agent": "sagebrush-bench/1"}
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class Conn:
    """One keep-alive HTTP/1.1 connection; reconnects only if the server closed it. Keeps the
    cookies the server sets and sends them back, as a browser does (sagebrush opens a session for
    a visit without one)."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.reconnects = 0
        self.cookies = {}
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                for k, v in r.getheaders():
                    if k.lower() == "set-cookie":
                        name, _, value = v.split(";", 1)[0].strip().partition("=")
                        if value and "max-age=0" not in v.lower():
                            self.cookies[name] = value
                        else:
                            self.cookies.pop(name, None)
                return r.status, {k.lower(): v for k, v in r.getheaders()}, raw
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if attempt:
                    raise
                self.reconnects += 1
                self.c.close()
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def decode(headers, raw):
    enc = headers.get("content-encoding", "identity")
    if enc == "gzip":
        return gzip.decompress(raw)
    if enc == "deflate":
        return zlib.decompress(raw)
    if enc in ("identity", ""):
        return raw
    return None  # br or other: not decodable with the standard library


class Refs(html.parser.HTMLParser):
    """Same-origin scripts, stylesheets and hrefs of a page."""

    def __init__(self):
        super().__init__()
        self.assets, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.assets.append(a["src"])
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.assets.append(a["href"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def refs(body):
    p = Refs()
    p.feed(body.decode("utf-8", "replace"))
    return p


def local_path(ref, base="/"):
    u = urllib.parse.urlsplit(urllib.parse.urljoin(base, ref))
    if u.scheme and u.netloc and u.hostname not in ("127.0.0.1", "localhost"):
        return None
    return u.path + (f"?{u.query}" if u.query else "")


def cpu_sample():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy, busy + v[3] + v[4]


def tree_jiffies(pids):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(parts[1]), []).append(int(d))
            except OSError:
                pass
    total, todo = 0, list(pids)
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in parts[11:15])  # utime stime cutime cstime
        except OSError:
            pass
    return total


def main():
    (out_path, sb_url, project, middle, newest, ml_url, exp, ml_middle, ml_newest,
     warmup, rounds, per_round, pids) = sys.argv[1:14]
    # ONLY (views, comma-separated) and TAG: time only those sagebrush views, their names + TAG.
    only = [v for v in sys.argv[14].split(",") if v] if len(sys.argv) > 14 else []
    tag = sys.argv[15] if len(sys.argv) > 15 else ""
    middle, newest, warmup, rounds, per_round = int(middle), int(newest), int(warmup), int(rounds), int(per_round)
    pids = [int(p) for p in pids.split(",") if p]
    sb, ml = Conn(sb_url), Conn(ml_url)
    page_h = dict(BROWSER, Accept=PAGE_ACCEPT)
    api_h = dict(BROWSER, Accept="application/json, text/plain, */*")
    post_h = dict(api_h, **{"Content-Type": "application/json"})
    exp_search = "/ajax-api/2.0/mlflow/experiments/search?" + urllib.parse.urlencode(
        [("max_results", "25"), ("order_by", "last_update_time DESC"),
         ("filter", "tags.`mlflow.experiment.isGateway` IS NULL")])
    runs_body = {"experiment_ids": [exp], "filter": "", "run_view_type": "ACTIVE_ONLY", "max_results": 100,
                 "order_by": ["attributes.start_time DESC"]}

    def run_links(body):
        return sorted({int(m) for m in re.findall(rf'href="/runs/{re.escape(project)}/(\d+)"', body.decode())})

    def check_html(want):
        def check(h, body):
            if not h.get("content-type", "").startswith("text/html"):
                return f"content type {h.get('content-type')!r}"
            text = body.decode("utf-8", "replace")
            missing = [w for w in want if w not in text]
            return f"does not show {missing}" if missing else None
        return check

    def check_json(pred):
        def check(h, body):
            try:
                return None if pred(json.loads(body)) else f"unexpected answer {body[:300]!r}"
            except ValueError as e:
                return f"not JSON: {e}"
        return check

    # (view, server, label, conn, method, path, body, headers, check)
    kinds = [
        ("projects", "sagebrush", "GET /", sb, "GET", "/", None, page_h, check_html([project])),
        ("projects", "MLflow", "GET experiments/search (25, UI filter)", ml, "GET", exp_search, None, api_h,
         check_json(lambda d: any(e["name"] == "iris" for e in d["experiments"]))),
        ("stage view", "sagebrush", f"GET /projects/{project}", sb, "GET", f"/projects/{project}", None, page_h,
         check_html([str(newest)])),
        ("stage view", "MLflow", "POST runs/search (100, start_time DESC)", ml, "POST",
         "/ajax-api/2.0/mlflow/runs/search", json.dumps(runs_body).encode(), post_h,
         check_json(lambda d: len(d["runs"]) == 100 and d["runs"][0]["info"]["run_name"] == f"iris-{newest}")),
        ("run detail, middle", "sagebrush", f"GET /runs/{project}/{middle}", sb, "GET",
         f"/runs/{project}/{middle}", None, page_h, check_html([str(middle), "deploy-prod"])),
        ("run detail, middle", "MLflow", "GET runs/get (middle run)", ml, "GET",
         f"/ajax-api/2.0/mlflow/runs/get?run_id={ml_middle}", None, api_h,
         check_json(lambda d: d["run"]["info"]["run_name"] == f"iris-{middle}")),
        ("run detail, newest", "sagebrush", f"GET /runs/{project}/{newest}", sb, "GET",
         f"/runs/{project}/{newest}", None, page_h, check_html([str(newest), "deploy-prod"])),
        ("run detail, newest", "MLflow", "GET runs/get (newest run)", ml, "GET",
         f"/ajax-api/2.0/mlflow/runs/get?run_id={ml_newest}", None, api_h,
         check_json(lambda d: d["run"]["info"]["run_name"] == f"iris-{newest}")),
        # Like for like on rows: MLflow's runs/search with the stage view's page size.
        ("stage view, 25 rows", "MLflow", "POST runs/search (25, start_time DESC)", ml, "POST",
         "/ajax-api/2.0/mlflow/runs/search", json.dumps(dict(runs_body, max_results=25)).encode(), post_h,
         check_json(lambda d: len(d["runs"]) == 25)),
        # The floor: the same client and HTTP stack answering the smallest request each server has.
        ("floor", "sagebrush", "GET /health", sb, "GET", "/health", None, api_h, lambda h, b: None),
        ("floor", "MLflow", "GET /health", ml, "GET", "/health", None, api_h, lambda h, b: None),
        # Where sagebrush's time goes: its JSON API over the same service calls, without HTML.
        ("diagnostic: runs, no stages", "sagebrush API", f"GET /api/v1/runs?project={project}&limit=25", sb, "GET",
         f"/api/v1/runs?project={project}&limit=25", None, api_h, check_json(lambda d: len(d) == 25 if isinstance(d, list) else len(d["runs"]) == 25)),
        ("diagnostic: run detail", "sagebrush API", f"GET /api/v1/runs/{project}/{middle}", sb, "GET",
         f"/api/v1/runs/{project}/{middle}", None, api_h, check_json(lambda d: d["run"]["number"] == middle)),
    ]

    if only:
        kinds = [k for k in kinds if k[0] in only and k[1] == "sagebrush"]
        kinds = [(k[0] + tag,) + k[1:] for k in kinds]
    info = {}

    def identity(conn, method, path, body, headers):
        status, h, raw = conn.request(method, path, body, dict(headers, **{"Accept-Encoding": "identity"}))
        if status != 200:
            sys.exit(f"{method} {path} answered {status}: {raw[:300]!r}")
        return h, raw

    # Pages and answers as a browser gets them: checked, sizes, and the stage view's next page.
    for view, server, label, conn, method, path, body, headers, check in kinds:  # grows while it runs
        h, plain = identity(conn, method, path, body, headers)
        problem = check(h, plain)
        if problem:
            sys.exit(f"{server} {view} ({method} {path}): {problem}")
        if server == "sagebrush" and view == "stage view" and not only:
            shown = run_links(plain)
            info["sagebrush_stage_view_runs"] = len([n for n in shown if n > newest - 1000])
            older = None
            p = refs(plain)
            for href in p.links:
                lp = local_path(href, path)
                if lp and lp.startswith(f"/projects/{project}?"):
                    older = lp
                    break
            info["sagebrush_next_page"] = older
            if older:
                kinds.append(("stage view, next page", "sagebrush", f"GET {older}", sb, "GET", older, None, page_h,
                              check_html([f"/runs/{project}/"])))
        if server == "MLflow" and view == "stage view":
            token = json.loads(plain).get("next_page_token")
            if token and info.get("sagebrush_next_page"):
                body2 = json.dumps(dict(runs_body, page_token=token)).encode()
                kinds.append(("stage view, next page", "MLflow", "POST runs/search (100, page_token)", ml, "POST",
                              "/ajax-api/2.0/mlflow/runs/search", body2, post_h,
                              check_json(lambda d: len(d["runs"]) == 100)))
        info.setdefault("plain", {})[f"{view}|{server}"] = {
            "bytes": len(plain), "gzip6": len(gzip.compress(plain, 6)), "content_type": h.get("content-type")}

    # Warm-up, and what a browser gets: encoding and bytes on the wire.
    wire = {}
    for view, server, label, conn, method, path, body, headers, check in kinds:
        for _ in range(warmup):
            status, h, raw = conn.request(method, path, body, headers)
            if status != 200:
                sys.exit(f"{server} {view} ({method} {path}) answered {status}: {raw[:300]!r}")
        decoded = decode(h, raw)
        if decoded is not None:
            problem = check(h, decoded)
            if problem:
                sys.exit(f"{server} {view} ({method} {path}), as a browser asks: {problem}")
        wire[f"{view}|{server}"] = {"bytes": len(raw), "encoding": h.get("content-encoding", "identity"),
                                    "header_bytes": sum(len(k) + len(v) + 4 for k, v in h.items()) + 17}

    # Static shell and assets, once (a first visit; a browser caches them after).
    def assets_of(conn, page_path, page_body):
        total, n = 0, 0
        for ref in refs(page_body).assets:
            lp = local_path(ref, page_path)
            if not lp:
                continue
            status, h, raw = conn.request("GET", lp, None, BROWSER)
            if status == 200:
                total, n = total + len(raw), n + 1
        return {"files": n, "bytes": total}

    if not only:
        status, h, shell = ml.request("GET", "/", None, dict(BROWSER, Accept=PAGE_ACCEPT))
        info["mlflow_shell"] = {"status": status, "bytes": len(shell), "encoding": h.get("content-encoding", "identity"),
                                "assets": assets_of(ml, "/", decode(h, shell) or shell)}
        status, h, home = sb.request("GET", "/", None, dict(BROWSER, Accept=PAGE_ACCEPT))
        info["sagebrush_assets"] = assets_of(sb, "/", decode(h, home) or home)

    # Timed rounds.
    lat = {f"{k[0]}|{k[1]}": [] for k in kinds}
    busy0, total0 = cpu_sample()
    ours0 = tree_jiffies(pids)
    t = os.times()
    client0 = t.user + t.system
    wall0 = time.time()
    for _ in range(rounds):
        for view, server, label, conn, method, path, body, headers, check in kinds:
            out = lat[f"{view}|{server}"]
            timed = 0
            while timed < per_round:
                before = conn.reconnects
                a = time.perf_counter_ns()
                status, h, raw = conn.request(method, path, body, headers)
                took = (time.perf_counter_ns() - a) / 1e6
                if status != 200:
                    sys.exit(f"{server} {view} answered {status}: {raw[:300]!r}")
                if conn.reconnects != before:
                    # The server closed the connection while it sat idle (sagebrush closes idle
                    # keep-alive connections after its header timeout, 30 s, which the other server's
                    # slow rounds can exceed): that request also paid for a new connection, so it
                    # is not counted, and another one is sent.
                    continue
                out.append(took)
                timed += 1
    wall = time.time() - wall0
    busy1, total1 = cpu_sample()
    ours1 = tree_jiffies(pids)
    t = os.times()
    client_j = (t.user + t.system - client0) * os.sysconf("SC_CLK_TCK")
    other = max(0.0, 100 * (busy1 - busy0 - (ours1 - ours0) - client_j) / (total1 - total0))

    rows = []
    for view, server, label, *_ in kinds:
        key = f"{view}|{server}"
        v = lat[key]
        rows.append({"view": view, "server": server, "request": label, "n": len(v),
                     "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v),
                     "wire_bytes": wire[key]["bytes"], "encoding": wire[key]["encoding"],
                     "plain_bytes": info["plain"][key]["bytes"], "gzip6_bytes": info["plain"][key]["gzip6"]})
    res = {"rows": rows, "info": info, "other_cpu_percent": round(other, 1), "timed_wall_s": round(wall, 1),
           "reconnects": {"sagebrush": sb.reconnects, "mlflow": ml.reconnects},
           "warmup": warmup, "rounds": rounds, "per_round": per_round}
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)

    n = rows[0]["n"]
    print(f"| view | server | request | p50 ms | p99 ms | max ms | bytes sent (encoding) | uncompressed bytes | gzip -6 would send | MLflow / sagebrush p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by = {(r["view"], r["server"]): r for r in rows}
    for r in rows:
        ratio = ""
        base = (r["view"], "sagebrush") if (r["view"], "sagebrush") in by else (r["view"].split(",")[0], "sagebrush")
        if r["server"] == "MLflow" and base in by:
            ratio = f"{r['p99'] / by[base]['p99']:.1f}x"
        enc = "" if r["encoding"] == "identity" else f" ({r['encoding']})"
        print(f"| {r['view']} | {r['server']} | `{r['request']}` | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} "
              f"| {r['wire_bytes']}{enc} | {r['plain_bytes']} | {r['gzip6_bytes']} | {ratio} |")
    print()
    met = {r["view"]: r["p99"] < 20 for r in rows if r["server"] == "sagebrush" and r["view"] != "floor"}  # the pages
    print("target p99 < 20 ms (sagebrush): " + ", ".join(f"{v} {'met' if ok else 'MISSED'}" for v, ok in met.items()))
    print(f"{n} timed requests of each kind ({rounds} rounds x {per_round}, after {warmup} warm-up each); "
          f"other processes used {res['other_cpu_percent']}% of the machine's CPU meanwhile; "
          f"reconnects (idle connection closed by the server; that request not counted) {res['reconnects']}")
    if only:
        return
    sh = info["mlflow_shell"]
    print(f"MLflow's static shell GET /: {sh['bytes']} bytes ({sh['encoding']}), then {sh['assets']['files']} scripts/stylesheets "
          f"it names directly, {sh['assets']['bytes']} bytes on a first visit; sagebrush's projects page names "
          f"{info['sagebrush_assets']['files']} ({info['sagebrush_assets']['bytes']} bytes)")
    print(f"sagebrush stage view shows {info.get('sagebrush_stage_view_runs')} runs; its next page: {info.get('sagebrush_next_page')}")


if __name__ == "__main__":
    main()

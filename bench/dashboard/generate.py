#!/usr/bin/env python3
"""Grows a sagebrush home with one real iris run into COUNT runs of history, for run.sh.

  generate.py HOME COUNT END_MS

HOME is a sagebrush home in which `sagebrush run` ran examples/iris once, with no server running.
Its store (HOME/state.db, SQLite) then holds that one real run: its `runs` row, its 7 `stages`
rows with their outputs, its training job, model version, endpoints and events. This script,
with Python's sqlite3 and in one transaction:
  - moves the real run (and everything it wrote: stages, training job, model version, endpoints,
    events, the project and the audit) back in time to where bench/dashboard/plan.py puts run 1,
    SPAN_DAYS before END_MS, keeping every duration;
  - writes runs 2..COUNT from the plan as copies of the real run's rows: each its own id and
    number (ids in the order of numbers, as the store assigns them), status, reason, parameters
    (max_leaf_nodes varies), trigger and who, commit, and times (created, started after its time
    in the queue, finished; stage times are the real run's scaled by the plan's factor). A run
    that failed at the gate or the smoke test has that stage `failed` with the engine's reason
    and the later stages `skipped`; a cancelled run has `train` cancelled and the rest skipped,
    with cancel_requested set. Stage outputs are the real run's, with the job name, commit and
    the measured accuracies of that run (the model version in them stays v1: no model versions
    are added); each run gets its training job `iris-<number>` (Completed, or Stopped when the
    run was cancelled), which the run page shows;
  - appends each run's events as the engine writes them (run_queued, run_started, stage_started
    and stage_finished per stage, run_finished), so the events table has its realistic size.
Log files are not copied: a run's page loads its logs with a second request (/live/runs/...),
which run.sh does not time. Every run is finished: none is left queued or running. The runs table keeps its constraints
(UNIQUE (project, number)) and indexes (runs_by_status, runs_by_project_queue); they are updated
as the rows go in. Prints JSON: counts by status, the numbers of the middle and newest runs.
"""
import json
import os
import re
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from plan import STAGES, plan  # noqa: E402


def shift_all(con, delta):
    """Moves everything the real run wrote back by delta ms (columns that exist in this schema)."""
    cols = {
        "runs": ["created_at", "started_at", "finished_at"],
        "stages": ["started_at", "finished_at"],
        "training_jobs": ["created_at", "finished_at"],
        "model_versions": ["created_at"],
        "endpoints": ["updated_at"],
        "events": ["at"],
        "projects": ["added_at"],
        "audit": ["at"],
        "approvals": ["requested_at", "decided_at"],
    }
    for table, columns in cols.items():
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        for c in columns:
            if c in have:
                con.execute(f"UPDATE {table} SET {c} = {c} + ? WHERE {c} IS NOT NULL", (delta,))


def event_data(project, number, status, reason, stage, trigger):
    # As the store's json_object('project', .., 'number', .., 'status', .., 'reason', .., 'stage', .., 'trigger', ..).
    return json.dumps({"project": project, "number": number, "status": status, "reason": reason, "stage": stage,
                       "trigger": trigger}, separators=(",", ":"))


def set_metric(outputs, key, value):
    """Sets every `key` in a stage's outputs (nested) to value; returns whether one was found."""
    found = False
    if isinstance(outputs, dict):
        for k, v in outputs.items():
            if k == key and isinstance(v, (int, float)) and not isinstance(v, bool):
                outputs[k] = value
                found = True
            else:
                found = set_metric(v, key, value) or found
    elif isinstance(outputs, list):
        for v in outputs:
            found = set_metric(v, key, value) or found
    return found


def main():
    home, count, end_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    db = os.path.join(home, "state.db")
    if not os.path.exists(db):
        sys.exit(f"no store at {db}: {sorted(os.listdir(home))}")
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    runs = [dict(r) for r in con.execute("SELECT * FROM runs")]
    if len(runs) != 1 or runs[0]["status"] != "succeeded":
        sys.exit(f"expected one succeeded run in {db}, found {[(r['number'], r['status']) for r in runs]}")
    tpl = runs[0]
    stages = [dict(r) for r in con.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY position", (tpl["id"],))]
    names = [s["name"] for s in stages]
    if names != STAGES:
        sys.exit(f"the real run's stages are {names}, the plan's {STAGES}")
    project = tpl["project"]
    params = json.loads(tpl["parameters"])
    if "max_leaf_nodes" not in params:
        sys.exit(f"the real run has no max_leaf_nodes parameter: {params}")
    job = f"{project}-{tpl['number']}"
    jobs = [dict(r) for r in con.execute("SELECT * FROM training_jobs WHERE run_id = ?", (tpl["id"],))]
    if len(jobs) != 1 or jobs[0]["name"] != job:
        sys.exit(f"expected the real run's one training job {job}, found {[j['name'] for j in jobs]}")
    tpl_job = jobs[0]
    tpl_commit = tpl["commit_sha"]
    history = plan(count, end_ms)

    t_start = tpl["started_at"] or tpl["created_at"]
    run_total = tpl["finished_at"] - t_start
    offsets = [(s["started_at"] - t_start if s["started_at"] else None, s["finished_at"] - t_start) for s in stages]

    with con:
        first = history[0]
        shift_all(con, first["created_at"] - tpl["created_at"])
        (first_id,) = con.execute("SELECT id FROM runs").fetchone()
        run_cols = list(tpl)
        stage_cols = list(stages[0])
        job_cols = list(tpl_job)
        run_rows, stage_rows, event_rows, job_rows = [], [], [], []
        for p in history[1:]:
            n = p["number"]
            rid = first_id + n - 1
            started = p["created_at"] + p["queued_ms"]
            scale = p["scale"]
            par = dict(params, max_leaf_nodes=p["max_leaf_nodes"])
            events = [(p["created_at"], "run_queued", "queued", None, None), (started, "run_started", "running", None, None)]
            end = started + int(run_total * scale)
            ended = False
            for s, (so, eo) in zip(stages, offsets):
                row = dict(s, run_id=rid)
                text = s["outputs"]
                text = re.sub(rf"\b{re.escape(job)}(?!\d)", f"{project}-{n}", text)
                text = re.sub(rf"/{re.escape(project)}/{tpl['number']}(?=[/\"])", f"/{project}/{n}", text)
                if tpl_commit:
                    text = text.replace(tpl_commit, p["commit"])
                out = json.loads(text)
                set_metric(out, "train:accuracy", p["train_accuracy"])
                set_metric(out, "validation:accuracy", p["validation_accuracy"])
                if s["name"] == "smoke-test":
                    set_metric(out, "accuracy", p["smoke_accuracy"])
                s_start = started + int(so * scale) if so is not None else None
                s_end = started + int(eo * scale)
                if ended:
                    row.update(status="skipped", reason=None, attempts=0, outputs="{}", started_at=None, finished_at=end)
                    events.append((end, "stage_finished", "skipped", None, s["name"]))
                elif s["name"] == p["end_stage"]:
                    ended = True
                    end = s_end
                    if p["status"] == "failed":
                        row.update(status="failed", reason=p["stage_reason"], outputs=json.dumps(out, separators=(",", ":")),
                                   started_at=s_start, finished_at=s_end)
                    else:
                        row.update(status="cancelled", reason=None, outputs="{}", started_at=s_start, finished_at=s_end)
                    events += [(s_start, "stage_started", "running", None, s["name"]),
                               (s_end, "stage_finished", row["status"], row["reason"], s["name"])]
                else:
                    row.update(outputs=json.dumps(out, separators=(",", ":")), started_at=s_start, finished_at=s_end)
                    events += [(s_start, "stage_started", "running", None, s["name"]),
                               (s_end, "stage_finished", "succeeded", None, s["name"])]
                stage_rows.append([row[c] for c in stage_cols])
                if s["name"] == "train" and row["status"] != "skipped":
                    stopped = row["status"] == "cancelled"
                    j = dict(tpl_job, name=f"{project}-{n}", run_id=rid, created_at=s_start, finished_at=s_end,
                             hyperparameters=json.dumps({"max_leaf_nodes": str(p["max_leaf_nodes"])}, separators=(",", ":")),
                             metrics="{}" if stopped else json.dumps(
                                 {"train:accuracy": p["train_accuracy"], "validation:accuracy": p["validation_accuracy"]},
                                 separators=(",", ":")),
                             model_uri=None if stopped else re.sub(rf"\b{re.escape(job)}(?!\d)", f"{project}-{n}", tpl_job["model_uri"]),
                             model_sha256=None if stopped else tpl_job["model_sha256"])
                    if stopped:
                        j.update(status="Stopped", secondary_status="Stopped")
                    job_rows.append([j[c] for c in job_cols])
            events.append((end, "run_finished", p["status"], p["reason"], None))
            run = dict(tpl, id=rid, number=n, status=p["status"], reason=p["reason"],
                       parameters=json.dumps(par, separators=(",", ":")), trigger=p["trigger"],
                       trigger_detail=p["trigger_detail"], triggered_by=p["triggered_by"],
                       commit_sha=p["commit"] if tpl_commit else None,
                       requested_commit=p["commit"] if tpl_commit and p["trigger"] == "push" else tpl["requested_commit"],
                       cancel_requested=1 if p["status"] == "cancelled" else 0,
                       created_at=p["created_at"], started_at=started, finished_at=end)
            run_rows.append([run[c] for c in run_cols])
            for at, kind, status, reason, stage in events:
                event_rows.append((at, kind, project, event_data(project, n, status, reason, stage, p["trigger"])))
        q = lambda cols: ", ".join(f'"{c}"' for c in cols)
        con.executemany(f"INSERT INTO runs ({q(run_cols)}) VALUES ({', '.join('?' * len(run_cols))})", run_rows)
        con.executemany(f"INSERT INTO stages ({q(stage_cols)}) VALUES ({', '.join('?' * len(stage_cols))})", stage_rows)
        con.executemany(f"INSERT INTO training_jobs ({q(job_cols)}) VALUES ({', '.join('?' * len(job_cols))})", job_rows)
        con.executemany("INSERT INTO events (at, kind, project, data) VALUES (?, ?, ?, ?)", event_rows)
    by_status = dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    (n_runs,) = con.execute("SELECT COUNT(*) FROM runs").fetchone()
    (n_stages,) = con.execute("SELECT COUNT(*) FROM stages").fetchone()
    (n_events,) = con.execute("SELECT COUNT(*) FROM events").fetchone()
    (n_jobs,) = con.execute("SELECT COUNT(*) FROM training_jobs").fetchone()
    problems = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    if problems != "ok" or n_runs != count:
        sys.exit(f"store check: {problems}, {n_runs} runs")
    print(json.dumps({"runs": n_runs, "stages": n_stages, "events": n_events, "training_jobs": n_jobs, "by_status": by_status,
                      "project": project, "middle_number": count // 2, "newest_number": count,
                      "span_days": round((end_ms - history[0]["created_at"]) / 86_400_000, 1)}))


if __name__ == "__main__":
    main()

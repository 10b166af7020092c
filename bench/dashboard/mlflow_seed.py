#!/usr/bin/env python3
"""Seeds an MLflow tracking store with the history of bench/dashboard/plan.py, for run.sh.

  mlflow_seed.py DB_PATH ARTIFACT_DIR COUNT END_MS

Run it with the MLflow virtualenv's python. It does on MLflow's side what generate.py does on
sagebrush's: one real run written through MlflowClient (which also creates MLflow's schema in the
SQLite file DB_PATH), then copied with SQL into COUNT runs in all, one per run of the plan, each
with that run's own values. An experiment `iris` holds them; each run carries what the sagebrush
run record shows:
  - run name `iris-<number>`, status FINISHED / FAILED / KILLED, start and end time;
  - params: the pipeline's 5 parameters (max_leaf_nodes, train_data, smoke_data,
    min_train_accuracy, min_smoke_accuracy);
  - metrics: train_accuracy, validation_accuracy, smoke_accuracy (for runs that got that far),
    duration_ms;
  - tags: mlflow.runName, mlflow.user (who started it), mlflow.source.git.commit, trigger,
    reason (when it did not succeed) and one `stage.<name>` tag per stage with its status.
The copies are made from the template's rows column by column, so MLflow's own columns (ids,
lifecycle stage, artifact URI shape, is_nan, step) are what its client wrote.
Prints JSON: experiment id, the run ids of the middle (number COUNT/2) and newest runs, timings.
"""
import json
import os
import random
import sqlite3
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from plan import STAGES, plan  # noqa: E402

STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
# The same durations as generate.py gives sagebrush's runs, roughly: the template run's stages
# took ~70 ms in all; each planned run scales that.
BASE_MS = 70


def stage_statuses(run):
    out = {}
    ended = False
    for s in STAGES:
        if ended:
            out[s] = "skipped"
        elif run["end_stage"] == s:
            out[s] = "failed" if run["status"] == "failed" else "cancelled"
            ended = True
        else:
            out[s] = "succeeded"
    return out


def values(run):
    """params, metrics, tags of one planned run, as dicts."""
    params = {
        "max_leaf_nodes": str(run["max_leaf_nodes"]), "train_data": "data/train.csv", "smoke_data": "data/test.csv",
        "min_train_accuracy": "0.9", "min_smoke_accuracy": "0.9",
    }
    stages = stage_statuses(run)
    duration = int(BASE_MS * run["scale"])
    metrics = {"duration_ms": float(duration)}
    if stages["train"] != "cancelled":
        metrics["train_accuracy"] = run["train_accuracy"]
        metrics["validation_accuracy"] = run["validation_accuracy"]
    if stages["smoke-test"] in ("succeeded", "failed"):
        metrics["smoke_accuracy"] = run["smoke_accuracy"]
    tags = {
        "mlflow.runName": f"iris-{run['number']}", "mlflow.user": run["triggered_by"],
        "mlflow.source.git.commit": run["commit"], "trigger": run["trigger"],
    }
    if run["reason"]:
        tags["reason"] = run["reason"]
    for s, st in stages.items():
        tags[f"stage.{s}"] = st
    start = run["created_at"] + run["queued_ms"]
    return params, metrics, tags, start, start + duration


def main():
    db, artifacts, count, end_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    runs = plan(count, end_ms)
    t0 = time.time()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.create_experiment("iris", artifact_location=f"file://{artifacts}")
    first = runs[0]
    params, metrics, tags, start, end = values(first)
    run = client.create_run(exp, start_time=start, run_name=tags["mlflow.runName"])
    template = run.info.run_id
    client.log_batch(template, metrics=[Metric(k, v, end, 0) for k, v in metrics.items()],
                     params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items() if k != "mlflow.runName"])
    client.set_terminated(template, STATUS[first["status"]], end_time=end)
    t1 = time.time()

    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row

    def rows(table):
        return [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (template,))]

    def insert(table, row):
        cols = list(row)
        quoted = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"INSERT INTO {table} ({quoted}) "
                    f"VALUES ({', '.join('?' * len(cols))})", [row[c] for c in cols])

    run_row, = rows("runs")
    param_row, tag_row, metric_row = rows("params")[0], rows("tags")[0], rows("metrics")[0]
    latest_row = rows("latest_metrics")[0]
    ids = {1: template}
    with con:
        con.execute("UPDATE runs SET user_id = ? WHERE run_uuid = ?", (first["triggered_by"], template))
        for r in runs[1:]:
            rid = uuid.UUID(int=random.Random(r["number"]).getrandbits(128)).hex
            ids[r["number"]] = rid
            params, metrics, tags, start, end = values(r)
            row = dict(run_row, run_uuid=rid, name=tags["mlflow.runName"], status=STATUS[r["status"]],
                       user_id=r["triggered_by"],
                       start_time=start, end_time=end,
                       artifact_uri=run_row["artifact_uri"].replace(template, rid))
            insert("runs", row)
            for k, v in params.items():
                insert("params", dict(param_row, key=k, value=v, run_uuid=rid))
            for k, v in tags.items():
                insert("tags", dict(tag_row, key=k, value=v, run_uuid=rid))
            for k, v in metrics.items():
                insert("metrics", dict(metric_row, key=k, value=v, timestamp=end, run_uuid=rid))
                insert("latest_metrics", dict(latest_row, key=k, value=v, timestamp=end, run_uuid=rid))
        con.execute("UPDATE experiments SET last_update_time = ? WHERE experiment_id = ?", (end_ms, int(exp)))
    n, = con.execute("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (int(exp),)).fetchone()
    by_status = dict(con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    con.close()
    t2 = time.time()
    print(json.dumps({"count": n, "by_status": by_status, "experiment_id": exp,
                      "middle_number": count // 2, "middle_run_id": ids[count // 2],
                      "newest_number": count, "newest_run_id": ids[count],
                      "client_s": round(t1 - t0, 3), "copy_s": round(t2 - t1, 3)}))


if __name__ == "__main__":
    main()

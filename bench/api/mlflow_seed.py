#!/usr/bin/env python3
"""Seeds an MLflow tracking store for bench/api/runs.sh, with MLflow's own client.

  mlflow_seed.py TRACKING_URI ARTIFACT_DIR COUNT

Creates an experiment and COUNT finished runs with MlflowClient against the store itself
(sqlite:///...), three calls a run, each its own transaction: create_run (start time, run name and
2 tags), log_batch (3 params: i, project, commit; 2 metrics: exit_code, duration_ms) and
set_terminated (FINISHED, end time): about what a sagebrush run record and its one stage hold.
Run it with the MLflow virtualenv's python. Prints JSON: experiment id, a middle run's id, time.
"""
import json
import sys
import time

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient


def main():
    uri, artifacts, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.time()
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("bench", artifact_location=artifacts)
    ids = []
    t1 = time.time()
    for i in range(count):
        start = int(time.time() * 1000)
        run = client.create_run(exp, start_time=start, run_name=f"bench-{i + 1}",
                                tags={"trigger": "manual", "stage.noop.kind": "shell"})
        rid = run.info.run_id
        client.log_batch(rid,
                         metrics=[Metric("exit_code", 0, start + 5, 0), Metric("duration_ms", 5, start + 5, 0)],
                         params=[Param("i", str(i)), Param("project", "bench"),
                                 Param("commit", "348b06708d196c5e2356c1679cddcb5b0e5a5fbb")])
        client.set_terminated(rid, "FINISHED", end_time=start + 5)
        ids.append(rid)
    t2 = time.time()
    print(json.dumps({"count": count, "experiment_id": exp, "middle_run_id": ids[len(ids) // 2],
                      "store_setup_s": round(t1 - t0, 3), "seed_wall_s": round(t2 - t1, 3),
                      "runs_per_s": round(count / (t2 - t1), 1)}))


if __name__ == "__main__":
    main()

"""The history both servers get for bench/dashboard/run.sh: one plan, fixed seed, standard library.

plan(count, end_ms) returns `count` finished runs of the iris pipeline, oldest first, numbered
1..count, spread over the SPAN_DAYS before end_ms (one every ~6 minutes for 10,000 runs, with
jitter). Each run has a status (about 90% succeeded, 8% failed at the gate or the smoke test with
the reason the engine writes, 2% cancelled during training), what started it (mostly a person,
some push webhooks), a commit (a new one every dozen runs or so), the decision tree's
max_leaf_nodes, the accuracies its stages measured, how long it waited in the queue and a factor
its stage durations are scaled by. bench/dashboard/generate.py writes it into sagebrush's store
and bench/dashboard/mlflow_seed.py into MLflow's, so both show the same history.
"""
import random
import uuid

SPAN_DAYS = 42
# The stages of examples/iris/sagebrush.toml, in order (names as the engine gives them).
STAGES = ["checkout", "train", "gate", "register", "deploy-test", "smoke-test", "deploy-prod"]
PEOPLE = ["local", "local", "local", "alice", "bob"]
PUSHERS = ["alice", "bob", "carol"]


def plan(count, end_ms, seed=20261201):
    rng = random.Random(seed)
    start_ms = end_ms - SPAN_DAYS * 86_400_000
    step = (end_ms - start_ms) / count
    commit = None
    runs = []
    for n in range(1, count + 1):
        if commit is None or rng.random() < 1 / 12:
            commit = "%040x" % rng.getrandbits(160)
        created = int(start_ms + (n - 1) * step + rng.uniform(0, step * 0.5))
        queued_ms = rng.randint(1, 40) if rng.random() < 0.9 else rng.randint(40, 3000)
        scale = rng.uniform(0.8, 1.6)
        leaves = rng.choice([3, 4, 5, 5, 5, 6, 8])
        train_acc = round(rng.uniform(0.93, 0.99), 4)
        val_acc = round(rng.uniform(0.90, 0.98), 4)
        smoke_acc = round(rng.uniform(0.91, 1.0), 4)
        r = rng.random()
        if r < 0.90:
            status, end_stage, reason, stage_reason = "succeeded", None, None, None
        elif r < 0.98:
            status = "failed"
            if rng.random() < 0.6:
                end_stage = "gate"
                train_acc = round(rng.uniform(0.80, 0.899), 4)
                stage_reason = f"train:accuracy = {train_acc} is below the minimum 0.9"
            else:
                end_stage = "smoke-test"
                smoke_acc = round(rng.uniform(0.80, 0.899), 4)
                stage_reason = f"accuracy {smoke_acc:.4f} on data/test.csv is below the required 0.9"
            reason = f"stage `{end_stage}` failed: {stage_reason}"
        else:
            status, end_stage, reason, stage_reason = "cancelled", "train", "cancelled by request", None
        if rng.random() < 0.7:
            trigger, by, detail = "manual", rng.choice(PEOPLE), None
        else:
            trigger, by, detail = "push", rng.choice(PUSHERS), f"github {uuid.UUID(int=rng.getrandbits(128))}"
        runs.append({
            "number": n, "status": status, "end_stage": end_stage, "reason": reason, "stage_reason": stage_reason,
            "created_at": created, "queued_ms": queued_ms, "scale": scale, "commit": commit,
            "trigger": trigger, "triggered_by": by, "trigger_detail": detail, "max_leaf_nodes": leaves,
            "train_accuracy": train_acc, "validation_accuracy": val_acc, "smoke_accuracy": smoke_acc,
        })
    return runs

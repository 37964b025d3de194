"""A known MLflow history, written by the stock client into a real `mlflow server` (run in MLFLOW_PYTHON).

Prints one JSON object: what it wrote, for the import tests to compare field by field.
"""

import hashlib
import json
import os
import tempfile
import time

import mlflow
import numpy as np
from mlflow import MlflowClient

POINTS = int(os.environ.get("HISTORY_POINTS", "300"))
EXTRA_RUNS = int(os.environ.get("HISTORY_EXTRA_RUNS", "0"))
c = MlflowClient()
out = {"experiments": {}, "runs": {}, "models": {}}

eid = c.create_experiment(
    "fraud-detection", tags={"team": "risk", "mlflow.note.content": "Card fraud models"}
)
other = c.create_experiment("churn")
out["experiments"]["fraud-detection"] = {
    "id": eid,
    "tags": {"team": "risk"},
    "description": "Card fraud models",
}
out["experiments"]["churn"] = {"id": other, "tags": {}, "description": ""}


def history(run_id, key, n, base_step=0, t0=1_600_000_000_000):
    from mlflow.entities import Metric

    ms = [
        Metric(key, float(i) * 0.5 if i % 97 else float("nan"), t0 + i * 10, base_step + i) for i in range(n)
    ]
    for i in range(0, len(ms), 1000):
        c.log_batch(run_id, metrics=ms[i : i + 1000])
    return [[m.step, m.timestamp, repr(m.value)] for m in ms]


def files(run_id, tree):
    with tempfile.TemporaryDirectory() as d:
        digests = {}
        for rel, data in tree.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as fh:
                fh.write(data)
            digests[rel] = hashlib.sha256(data).hexdigest()
        c.log_artifacts(run_id, d)
        return digests


def run(exp, name, status, start, end, params, tags, keys, tree=None, parent=None):
    all_tags = dict(tags)
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    r = c.create_run(exp, start_time=start, tags=all_tags, run_name=name)
    rid = r.info.run_id
    for k, v in params.items():
        c.log_param(rid, k, v)
    hist = {k: history(rid, k, POINTS) for k in keys}
    digests = files(rid, tree) if tree else {}
    if status != "RUNNING":
        c.set_terminated(rid, status, end_time=end)
    out["runs"][name] = {
        "id": rid,
        "experiment": exp,
        "status": status,
        "start": start,
        "end": end if status != "RUNNING" else None,
        "params": params,
        "tags": all_tags,
        "metrics": hist,
        "files": digests,
        "user": r.info.user_id,
    }
    return rid


base = 1_600_000_000_000
r1 = run(
    eid,
    "baseline",
    "FINISHED",
    base,
    base + 60_000,
    {"lr": "0.01", "depth": "6"},
    {"stage": "dev"},
    ["loss", "auc"],
    {
        "model/model.pkl": b"\x80\x04pickle" * 100,
        "model/MLmodel": b"flavors: {}\n",
        "plots/roc.txt": b"roc curve data\n" * 50,
    },
)
with mlflow.start_run(run_id=r1):
    ds = mlflow.data.from_numpy(np.arange(12).reshape(4, 3), source="s3://bucket/train.npy", name="train-v1")
    mlflow.log_input(ds, context="training", tags={"split": "holdout"})
out["runs"]["baseline"]["dataset"] = {"name": "train-v1", "context": "training", "digest": ds.digest}
c.set_terminated(r1, "FINISHED", end_time=base + 60_000)
r2 = run(
    eid,
    "tuned",
    "FAILED",
    base + 100_000,
    base + 160_000,
    {"lr": "0.1"},
    {},
    ["loss"],
    {"notes.md": b"# tuned\n"},
)
run(eid, "tuned-child", "FINISHED", base + 110_000, base + 120_000, {"fold": "1"}, {}, ["loss"], parent=r2)
live = run(other, "live", "RUNNING", base + 200_000, None, {"epochs": "10"}, {}, ["loss"])
gone = run(other, "discarded", "KILLED", base + 300_000, base + 301_000, {}, {}, [])
c.delete_run(gone)
out["runs"]["discarded"]["deleted"] = True
for i in range(EXTRA_RUNS):
    run(other, f"sweep-{i}", "FINISHED", base + 400_000 + i, base + 500_000 + i, {"i": str(i)}, {}, ["loss"])

# The registry: a version from a run's files, a second one later, stages, aliases, tags, descriptions.
c.create_registered_model("fraud-model", tags={"owner": "risk"}, description="Scores card transactions")
v1 = c.create_model_version(
    "fraud-model", f"runs:/{r1}/model", run_id=r1, description="first cut", tags={"k": "v"}
)
time.sleep(0.05)
v2 = c.create_model_version("fraud-model", f"runs:/{r2}/notes.md", run_id=r2)
c.transition_model_version_stage("fraud-model", v1.version, "Production")
c.transition_model_version_stage("fraud-model", v2.version, "Staging")
c.set_registered_model_alias("fraud-model", "champion", v1.version)
c.set_registered_model_alias("fraud-model", "challenger", v2.version)
versions = {}
for v in (v1, v2):
    got = c.get_model_version("fraud-model", v.version)
    versions[v.version] = {
        "run": got.run_id,
        "stage": got.current_stage,
        "created": got.creation_timestamp,
        "updated": got.last_updated_timestamp,
        "user": got.user_id,
        "description": got.description,
        "tags": got.tags,
        "source": got.source,
    }
out["models"]["fraud-model"] = {
    "description": "Scores card transactions",
    "tags": {"owner": "risk"},
    "aliases": {"champion": v1.version, "challenger": v2.version},
    "versions": versions,
    "created": c.get_registered_model("fraud-model").creation_timestamp,
}
out["live"] = live
print(json.dumps(out))

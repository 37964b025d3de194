"""How tracking's experiments and runs look in MLflow's JSON, and the experiment ids MLflow shows.

Experiment "0" is how MLflow names its default experiment; here it is the experiment named "Default"
of the default project, created on first use with a fixed idempotency key (so every gateway process
agrees on it) and shown as "0" in every answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eventlog.errors import InvalidArgument, NotFound
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.common import Body, Call, json_number, pairs

DEFAULT_NAME = "Default"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
CONTEXT_TAG = "mlflow.data.context"
OUTPUTS_TAG = "modelog.mlflow.outputs"
"""The logged models a run output (runs/outputs), as JSON [{"model_id", "step"}]: runs/get shows them
as MLflow's `outputs.model_outputs`, never as a tag. Run tags under `modelog.mlflow.` are ours alone."""
INPUTS_TAG = "modelog.mlflow.inputs"
"""The logged models a run read (log-inputs `models`), as JSON [{"model_id"}]: `inputs.model_inputs`."""
RESERVED_PREFIX = "modelog.mlflow."


def check_reserved(tags: dict[str, str], field: str = "tags") -> None:
    for key in tags:
        if key.startswith(RESERVED_PREFIX):
            raise InvalidArgument.field(field, f"tag keys starting with {RESERVED_PREFIX!r} are reserved")


def _listed(tags: Mapping[str, str], tag: str) -> list[dict[str, Any]]:
    try:
        got = json.loads(tags.get(tag, "[]"))
    except ValueError:
        return []
    return got if isinstance(got, list) else []


def outputs_of(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return _listed(tags, OUTPUTS_TAG)


def model_inputs_of(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return _listed(tags, INPUTS_TAG)


_STATUS = {
    pb.RUN_STATUS_RUNNING: "RUNNING",
    pb.RUN_STATUS_FINISHED: "FINISHED",
    pb.RUN_STATUS_FAILED: "FAILED",
    pb.RUN_STATUS_KILLED: "KILLED",
}


class Experiments:
    """Experiment ids as MLflow shows them ("0" for Default) and back."""

    def __init__(self) -> None:
        self.default_id: str | None = None

    async def default(self, call: Call) -> str:
        if self.default_id is None:
            stub = call.upstream.stub(tracking_pb2_grpc.TrackingStub)
            try:
                got = await call(stub.GetExperiment, pb.GetExperimentRequest(name=DEFAULT_NAME))
            except NotFound:
                got = await call(
                    stub.CreateExperiment,
                    pb.CreateExperimentRequest(name=DEFAULT_NAME, description="MLflow's default experiment"),
                    idempotency_key="mlflow-default-experiment",
                )
            self.default_id = got.experiment.experiment_id
        return self.default_id

    async def ours(self, call: Call, experiment_id: str) -> str:
        return await self.default(call) if experiment_id == "0" else experiment_id

    def theirs(self, experiment_id: str) -> str:
        return "0" if experiment_id and experiment_id == self.default_id else experiment_id


def experiment_json(exp: pb.Experiment, ids: Experiments) -> Body:
    eid = ids.theirs(exp.experiment_id)
    return {
        "experiment_id": eid,
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{eid}",
        "lifecycle_stage": "deleted" if exp.deleted else "active",
        "last_update_time": exp.updated_at_ms,
        "creation_time": exp.created_at_ms,
        "tags": pairs(exp.tags),
    }


def run_info_json(info: pb.RunInfo, ids: Experiments) -> Body:
    eid = ids.theirs(info.experiment_id)
    out: Body = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "run_name": info.name,
        "experiment_id": eid,
        "user_id": info.source.user,
        "status": _STATUS.get(info.status, "RUNNING"),
        "start_time": info.start_time_ms,
        "artifact_uri": f"mlflow-artifacts:/{eid}/{info.run_id}/artifacts",
        "lifecycle_stage": "deleted" if info.deleted else "active",
    }
    if info.HasField("end_time_ms"):
        out["end_time"] = info.end_time_ms
    return out


def run_json(run: pb.Run, ids: Experiments) -> Body:
    tags = {k: v for k, v in run.tags.items() if not k.startswith(RESERVED_PREFIX)}
    tags.setdefault(RUN_NAME_TAG, run.info.name)
    if run.info.source.user:
        tags.setdefault(USER_TAG, run.info.source.user)
    metrics = [
        {"key": m.key, "value": json_number(m.last), "timestamp": m.last_timestamp_ms, "step": m.last_step}
        for m in run.metrics
        if not m.key.startswith(RESERVED_PREFIX)  # a logged model's copies (modelmetrics)
    ]
    datasets = []
    for d in run.datasets:
        entry: Body = {
            "dataset": {
                "name": d.name,
                "digest": d.digest,
                "source_type": d.source_type,
                "source": d.source,
                "schema": d.dataset_schema,
                "profile": d.dataset_profile,
            },
            "tags": pairs({**d.tags, CONTEXT_TAG: d.context} if d.context else d.tags),
        }
        datasets.append(entry)
    return {
        "info": run_info_json(run.info, ids),
        "data": {"metrics": metrics, "params": pairs(run.params), "tags": pairs(tags)},
        "inputs": {"dataset_inputs": datasets, "model_inputs": model_inputs_of(run.tags)},
        "outputs": {"model_outputs": outputs_of(run.tags)},
    }
